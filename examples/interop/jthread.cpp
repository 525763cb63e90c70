// Driving std::jthread and std::stop_token APIs from a ctoken token, and back (C++20).
//
// A service has one ctoken source for shutdown; some of its workers are std::jthreads that
// watch their own std::stop_token. StopSourceBridge makes the ctoken source request stop on
// each jthread; StopTokenBridge turns a std::stop_token into a ctoken token for code that
// takes ctoken.
#include <ctoken/ctoken.hpp>
#include <ctoken/stop_token.hpp>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

namespace {

// Library code written against ctoken.
bool poll_upstream(const ctoken::CancellationToken& token) {
  return !ctoken::SleepFor(std::chrono::milliseconds(10), token);  // true: stopped
}

}  // namespace

int main() {
  ctoken::CancellationTokenSource shutdown;

  // 1. ctoken → std: a jthread that only knows std::stop_token.
  std::jthread worker([](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    // Waits until stop is requested; no polling.
    cv.wait(lock, stop, [] { return false; });
    std::puts("jthread worker: stop requested, leaving");
  });
  ctoken::StopSourceBridge drive_worker(shutdown.Token(), worker.get_stop_source());

  // 2. std → ctoken: a jthread whose body calls ctoken-based code.
  std::jthread poller([](std::stop_token stop) {
    ctoken::StopTokenBridge bridge(stop);  // lives as long as this thread's loop
    int polls = 0;
    while (!poll_upstream(bridge.Token())) ++polls;
    std::printf("poller: stopped after %d polls (%s)\n", polls, bridge.Token().Reason().message().c_str());
  });
  ctoken::StopSourceBridge drive_poller(shutdown.Token(), poller.get_stop_source());

  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::puts("main: shutting down");
  shutdown.Cancel(ctoken::errc::shutdown);  // requests stop on both jthreads
  worker.join();
  poller.join();
  return 0;
}
