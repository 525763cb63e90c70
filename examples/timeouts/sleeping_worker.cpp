// A background worker that does something every interval and stops promptly on shutdown.
//
// The classic bug is `while (running) { work(); sleep(interval); }`: shutdown waits for the
// sleep. SleepFor(interval, token) returns the moment the token is cancelled.
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <cstdio>
#include <thread>

int main() {
  using namespace std::chrono_literals;
  ctoken::CancellationTokenSource shutdown;
  std::atomic<int> ticks{0};

  std::thread worker([token = shutdown.Token(), &ticks] {
    while (ctoken::SleepFor(30ms, token)) {  // false once cancelled: leave the loop
      ticks.fetch_add(1);
    }
    std::printf("worker: stopping (%s)\n", token.Reason().message().c_str());
  });

  std::this_thread::sleep_for(100ms);
  const auto asked = std::chrono::steady_clock::now();
  shutdown.Cancel(ctoken::errc::shutdown);
  worker.join();
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - asked);
  std::printf("worker ticked %d times and stopped %lld us after Cancel (interval 30 ms)\n", ticks.load(),
              static_cast<long long>(took.count()));
  return 0;
}
