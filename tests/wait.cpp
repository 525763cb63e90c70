// Rule 10 (waiting): Wait, WaitFor, WaitUntil, SleepFor and CancellableConditionVariable.
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationToken;
using ctoken::CancellationTokenSource;
using namespace std::chrono_literals;

namespace {
// A wake-up on Cancel (or on the last source going) must come well before any timeout the
// tests use (30 s and more): a wait that ignores the wake-up and sleeps to its timeout fails
// the bound instead of passing slowly. Generous for loaded machines and sanitizers; how fast it
// really is belongs to the benchmarks.
constexpr auto kPromptly = 5s;
using steady = std::chrono::steady_clock;
}  // namespace

TEST_CASE("Wait returns true when cancelled from another thread") {
  CancellationTokenSource source;
  std::atomic<steady::rep> cancelled_at{0};
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    cancelled_at = steady::now().time_since_epoch().count();
    source.Cancel();
  });
  CHECK(source.Token().Wait());
  CHECK(steady::now() - steady::time_point(steady::duration(cancelled_at.load())) < kPromptly);
  t.join();
}

TEST_CASE("Wait on a token that can never be cancelled returns false at once") {
  CHECK_FALSE(CancellationToken::None().Wait());
  CancellationToken orphan;
  { orphan = CancellationTokenSource().Token(); }
  CHECK_FALSE(orphan.Wait());
}

TEST_CASE("Wait returns false as soon as the last source disappears un-cancelled") {
  auto source = std::make_unique<CancellationTokenSource>();
  const CancellationToken token = source->Token();
  std::atomic<int> result{-1};
  std::atomic<steady::rep> returned_at{0};
  std::thread waiter([&] {
    result = token.Wait() ? 1 : 0;
    returned_at = steady::now().time_since_epoch().count();
  });
  std::this_thread::sleep_for(20ms);
  const auto gone = steady::now();
  source.reset();
  waiter.join();
  CHECK(result.load() == 0);
  CHECK(steady::time_point(steady::duration(returned_at.load())) - gone < kPromptly);
}

TEST_CASE("WaitFor: true iff cancelled - false at the timeout") {
  CancellationTokenSource source;
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(source.Token().WaitFor(30ms));
  CHECK(std::chrono::steady_clock::now() - start >= 30ms);
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    source.Cancel();
  });
  const auto waited = steady::now();
  CHECK(source.Token().WaitFor(30s));
  CHECK(steady::now() - waited < kPromptly);  // woke on Cancel, not at the timeout
  t.join();
  CHECK(source.Token().WaitFor(0ns));
  CHECK_FALSE(CancellationToken::None().WaitFor(1h));  // never cancellable: false at once
}

TEST_CASE("WaitUntil with steady_clock and with system_clock") {
  CancellationTokenSource source;
  CHECK_FALSE(source.Token().WaitUntil(std::chrono::steady_clock::now() + 10ms));
  CHECK_FALSE(source.Token().WaitUntil(std::chrono::system_clock::now() + 10ms));
  CHECK_FALSE(source.Token().WaitUntil(std::chrono::system_clock::now() - 1h));
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    source.Cancel();
  });
  const auto waited = steady::now();
  CHECK(source.Token().WaitUntil(std::chrono::system_clock::now() + 30s));
  CHECK(steady::now() - waited < kPromptly);  // woke on Cancel, not at the deadline
  t.join();
  CHECK(source.Token().WaitUntil(std::chrono::steady_clock::time_point::max()));
}

TEST_CASE("WaitFor with an enormous timeout still returns on Cancel") {
  CancellationTokenSource source;
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    source.Cancel();
  });
  const auto waited = steady::now();
  CHECK(source.Token().WaitFor(std::chrono::nanoseconds::max()));
  CHECK(steady::now() - waited < kPromptly);
  t.join();
}

TEST_CASE("many waiters all wake on one Cancel") {
  CancellationTokenSource source;
  std::atomic<int> woke{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 8; ++i) waiters.emplace_back([&] { woke += source.Token().WaitFor(30s) ? 1 : 0; });
  std::this_thread::sleep_for(20ms);
  const auto cancelled = steady::now();
  source.Cancel();
  for (auto& w : waiters) w.join();
  CHECK(woke.load() == 8);
  CHECK(steady::now() - cancelled < kPromptly);  // every one woke on Cancel, not at the timeout
}

TEST_CASE("SleepFor: false iff cancelled - true after the whole duration") {
  CancellationTokenSource source;
  const auto start = std::chrono::steady_clock::now();
  CHECK(ctoken::SleepFor(20ms, source.Token()));
  CHECK(std::chrono::steady_clock::now() - start >= 20ms);
  CHECK(ctoken::SleepFor(5ms, CancellationToken::None()));
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    source.Cancel();
  });
  const auto before = steady::now();
  CHECK_FALSE(ctoken::SleepFor(30s, source.Token()));
  CHECK(steady::now() - before < kPromptly);  // woke on Cancel, not after the 30 s
  t.join();
  CHECK_FALSE(ctoken::SleepFor(0ns, source.Token()));
}

TEST_CASE("SleepFor keeps sleeping when the source disappears meanwhile") {
  auto source = std::make_unique<CancellationTokenSource>();
  const CancellationToken token = source->Token();
  std::thread t([&] {
    std::this_thread::sleep_for(5ms);
    source.reset();
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK(ctoken::SleepFor(40ms, token));
  CHECK(std::chrono::steady_clock::now() - start >= 40ms);
  t.join();
}

TEST_CASE("CancellableConditionVariable: the predicate wins - the token wins - the timeout wins") {
  std::mutex m;
  bool ready = false;
  ctoken::CancellableConditionVariable cv;
  CancellationTokenSource source;

  std::thread producer([&] {
    std::this_thread::sleep_for(10ms);
    {
      std::lock_guard<std::mutex> g(m);
      ready = true;
    }
    cv.NotifyAll();
  });
  {
    std::unique_lock<std::mutex> lock(m);
    CHECK(cv.Wait(lock, source.Token(), [&] { return ready; }));
    CHECK(lock.owns_lock());
  }
  producer.join();

  ready = false;
  {
    std::unique_lock<std::mutex> lock(m);
    CHECK_FALSE(cv.WaitFor(lock, source.Token(), 20ms, [&] { return ready; }));
  }

  std::thread canceller([&] {
    std::this_thread::sleep_for(10ms);
    source.Cancel();
  });
  {
    std::unique_lock<std::mutex> lock(m);
    const auto waited = steady::now();
    CHECK_FALSE(cv.Wait(lock, source.Token(), [&] { return ready; }));
    CHECK(steady::now() - waited < kPromptly);
    CHECK(lock.owns_lock());
  }
  canceller.join();
  {
    std::unique_lock<std::mutex> lock(m);
    ready = true;  // already cancelled: returns pred() without waiting
    CHECK(cv.Wait(lock, source.Token(), [&] { return ready; }));
  }
}

TEST_CASE("CancellableConditionVariable: Cancel called while holding the caller's mutex does not deadlock") {
  std::mutex m;
  ctoken::CancellableConditionVariable cv;
  CancellationTokenSource source;
  std::atomic<bool> waiting{false};
  std::atomic<int> result{-1};
  std::thread waiter([&] {
    std::unique_lock<std::mutex> lock(m);
    waiting = true;
    result = cv.Wait(lock, source.Token(), [] { return false; }) ? 1 : 0;
  });
  REQUIRE(ctoken_test::eventually([&] { return waiting.load(); }));
  const auto cancelled = steady::now();
  {
    std::lock_guard<std::mutex> g(m);
    source.Cancel();
  }
  waiter.join();
  CHECK(result.load() == 0);
  CHECK(steady::now() - cancelled < kPromptly);
}
