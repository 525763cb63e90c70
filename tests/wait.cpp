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

TEST_CASE("Wait returns true when cancelled from another thread") {
  CancellationTokenSource source;
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    source.Cancel();
  });
  CHECK(source.Token().Wait());
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
  std::thread waiter([&] { result = token.Wait() ? 1 : 0; });
  std::this_thread::sleep_for(20ms);
  source.reset();
  waiter.join();
  CHECK(result.load() == 0);
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
  CHECK(source.Token().WaitFor(10s));
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
  CHECK(source.Token().WaitUntil(std::chrono::system_clock::now() + 10s));
  t.join();
  CHECK(source.Token().WaitUntil(std::chrono::steady_clock::time_point::max()));
}

TEST_CASE("WaitFor with an enormous timeout still returns on Cancel") {
  CancellationTokenSource source;
  std::thread t([&] {
    std::this_thread::sleep_for(10ms);
    source.Cancel();
  });
  CHECK(source.Token().WaitFor(std::chrono::nanoseconds::max()));
  t.join();
}

TEST_CASE("many waiters all wake on one Cancel") {
  CancellationTokenSource source;
  std::atomic<int> woke{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 8; ++i) waiters.emplace_back([&] { woke += source.Token().WaitFor(30s) ? 1 : 0; });
  std::this_thread::sleep_for(20ms);
  source.Cancel();
  for (auto& w : waiters) w.join();
  CHECK(woke.load() == 8);
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
  const auto before = std::chrono::steady_clock::now();
  CHECK_FALSE(ctoken::SleepFor(1h, source.Token()));
  CHECK(std::chrono::steady_clock::now() - before < 1h);
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
    CHECK_FALSE(cv.Wait(lock, source.Token(), [&] { return ready; }));
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
  {
    std::lock_guard<std::mutex> g(m);
    source.Cancel();
  }
  waiter.join();
  CHECK(result.load() == 0);
}
