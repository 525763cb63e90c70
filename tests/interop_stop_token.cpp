// std::stop_token bridges (C++20), both ways.
#include <ctoken/ctoken.hpp>
#include <ctoken/stop_token.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "ctoken_test.hpp"

using ctoken::CancellationTokenSource;
using namespace std::chrono_literals;

TEST_CASE("StopTokenBridge: request_stop cancels the ctoken token with errc::canceled") {
  std::stop_source stop;
  ctoken::StopTokenBridge bridge(stop.get_token());
  const ctoken::CancellationToken token = bridge.Token();
  CHECK(token.CanBeCanceled());
  int runs = 0;
  auto r = token.Register([&] { ++runs; });
  CHECK_FALSE(token.IsCancellationRequested());
  stop.request_stop();
  CHECK(token.IsCancellationRequested());
  CHECK(token.Reason() == ctoken::errc::canceled);
  CHECK(runs == 1);
}

TEST_CASE("StopTokenBridge: stop already requested gives a cancelled token") {
  std::stop_source stop;
  stop.request_stop();
  ctoken::StopTokenBridge bridge(stop.get_token());
  CHECK(bridge.Token().IsCancellationRequested());
}

TEST_CASE("StopTokenBridge: once the bridge is gone the token can no longer be cancelled") {
  std::stop_source stop;
  ctoken::CancellationToken token;
  {
    ctoken::StopTokenBridge bridge(stop.get_token());
    token = bridge.Token();
  }
  CHECK_FALSE(token.CanBeCanceled());
  stop.request_stop();
  CHECK_FALSE(token.IsCancellationRequested());
}

TEST_CASE("StopSourceBridge: Cancel requests stop") {
  CancellationTokenSource source;
  ctoken::StopSourceBridge bridge(source.Token());
  std::stop_token st = bridge.StopToken();
  CHECK(st.stop_possible());
  CHECK_FALSE(st.stop_requested());
  int std_callbacks = 0;
  std::stop_callback cb(st, [&] { ++std_callbacks; });
  source.Cancel();
  CHECK(st.stop_requested());
  CHECK(std_callbacks == 1);
}

TEST_CASE("StopSourceBridge: an already cancelled token requests stop at once") {
  CancellationTokenSource source;
  source.Cancel();
  ctoken::StopSourceBridge bridge(source.Token());
  CHECK(bridge.StopToken().stop_requested());
}

TEST_CASE("StopSourceBridge drives a std::jthread's own stop_source") {
  CancellationTokenSource source;
  std::atomic<int> loops{0};
  std::jthread worker([&](std::stop_token st) {
    while (!st.stop_requested()) {
      loops.fetch_add(1);
      std::this_thread::sleep_for(1ms);
    }
  });
  ctoken::StopSourceBridge bridge(source.Token(), worker.get_stop_source());
  REQUIRE(ctoken_test::eventually([&] { return loops.load() > 0; }));
  source.Cancel(ctoken::errc::shutdown);
  worker.join();  // returns because the thread saw stop_requested()
  CHECK(worker.get_stop_source().stop_requested());
}

TEST_CASE("StopSourceBridge wakes std::condition_variable_any::wait(lock, stop_token, pred)") {
  CancellationTokenSource source;
  ctoken::StopSourceBridge bridge(source.Token());
  std::mutex m;
  std::condition_variable_any cv;
  std::atomic<int> result{-1};
  std::thread waiter([&] {
    std::unique_lock lock(m);
    result = cv.wait(lock, bridge.StopToken(), [] { return false; }) ? 1 : 0;
  });
  std::this_thread::sleep_for(20ms);
  source.Cancel();
  waiter.join();
  CHECK(result.load() == 0);
}

TEST_CASE("StopSourceBridge: after the bridge is gone, Cancel no longer requests stop") {
  CancellationTokenSource source;
  std::stop_source target;
  { ctoken::StopSourceBridge bridge(source.Token(), target); }
  source.Cancel();
  CHECK_FALSE(target.stop_requested());
}

TEST_CASE("StopSourceBridge: StopSource() shares the stop state it requests stop on") {
  CancellationTokenSource source;
  std::stop_source target;
  ctoken::StopSourceBridge bridge(source.Token(), target);
  std::stop_source shared = bridge.StopSource();
  CHECK(shared == target);
  source.Cancel();
  CHECK(shared.stop_requested());
  CHECK(bridge.StopToken().stop_requested());
}

// The old snake_case accessors stay one release as [[deprecated]] members: they must still
// compile and behave the same. The warning is expected here and silenced for this test only.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
TEST_CASE("StopSourceBridge: the deprecated get_token and get_stop_source still work") {
  CancellationTokenSource source;
  ctoken::StopSourceBridge bridge(source.Token());
  std::stop_token st = bridge.get_token();
  std::stop_source ss = bridge.get_stop_source();
  CHECK(ss == bridge.StopSource());
  source.Cancel();
  CHECK(st.stop_requested());
  CHECK(ss.stop_requested());
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
