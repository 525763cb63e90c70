// Rule 1: callbacks run once, on the cancelling thread, newest first, after the token reads
// as cancelled and before Cancel returns.
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationCallback;
using ctoken::CancellationToken;
using ctoken::CancellationTokenRegistration;
using ctoken::CancellationTokenSource;

TEST_CASE("callbacks run in reverse order of registration - handles and in-place mixed") {
  CancellationTokenSource source;
  const CancellationToken token = source.Token();
  std::vector<int> order;
  auto r1 = token.Register([&] { order.push_back(1); });
  CancellationCallback c2(token, [&] { order.push_back(2); });
  auto r3 = token.Register([&](std::error_code) { order.push_back(3); });
  CancellationCallback c4(token, [&](const std::error_code&) { order.push_back(4); });
  CHECK(order.empty());
  CHECK(source.Cancel());
  CHECK(order == std::vector<int>{4, 3, 2, 1});
  source.Cancel();
  CHECK(order.size() == 4);  // exactly once
}

TEST_CASE("the token reads cancelled - with its reason - before the first callback runs") {
  CancellationTokenSource source;
  const CancellationToken token = source.Token();
  bool seen_cancelled = false;
  std::error_code seen_reason;
  std::error_code passed_reason;
  auto r = token.Register([&](std::error_code why) {
    seen_cancelled = token.IsCancellationRequested();
    seen_reason = token.Reason();
    passed_reason = why;
  });
  source.Cancel(ctoken::errc::shutdown);
  CHECK(seen_cancelled);
  CHECK(seen_reason == ctoken::errc::shutdown);
  CHECK(passed_reason == ctoken::errc::shutdown);
}

TEST_CASE("callbacks run on the cancelling thread before Cancel returns") {
  CancellationTokenSource source;
  std::thread::id ran_on;
  std::atomic<int> runs{0};
  auto r = source.Token().Register([&] {
    ran_on = std::this_thread::get_id();
    runs.fetch_add(1);
  });
  std::thread::id canceller;
  bool ran_before_return = false;
  std::thread t([&] {
    canceller = std::this_thread::get_id();
    source.Cancel();
    ran_before_return = runs.load() == 1;
  });
  t.join();
  CHECK(ran_on == canceller);
  CHECK(ran_before_return);
}

TEST_CASE("concurrent Cancel: exactly one returns true and the losers do not wait for callbacks") {
  for (int round = 0; round < 50; ++round) {
    CancellationTokenSource source;
    std::atomic<bool> release{false};
    std::atomic<bool> in_callback{false};
    auto r = source.Token().Register([&] {
      in_callback = true;
      while (!release.load()) std::this_thread::yield();
    });
    std::atomic<int> winners{0};
    std::thread first([&] { winners += source.Cancel() ? 1 : 0; });
    REQUIRE(ctoken_test::eventually([&] { return in_callback.load(); }));
    // The callback is still blocked: a second Cancel must return false without waiting for it.
    const bool second = source.Cancel();
    CHECK_FALSE(second);
    CHECK_FALSE(release.load());
    release = true;
    first.join();
    CHECK(winners.load() == 1);
  }
}

TEST_CASE("many threads cancel at once: one winner - every callback ran once") {
  for (int round = 0; round < 100; ++round) {
    CancellationTokenSource source;
    std::atomic<int> runs{0};
    std::vector<CancellationTokenRegistration> regs;
    for (int i = 0; i < 8; ++i) regs.push_back(source.Token().Register([&] { runs.fetch_add(1); }));
    std::atomic<int> winners{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back([&] { winners += source.Cancel() ? 1 : 0; });
    for (auto& t : threads) t.join();
    CHECK(winners.load() == 1);
    CHECK(runs.load() == 8);
  }
}
