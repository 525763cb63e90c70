// Heap allocations, counted by replacing the global operator new in this test program.
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "ctoken_test.hpp"

namespace {
std::atomic<long> g_allocations{0};

void* counted_alloc(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

// Allocations made by `f`, on any thread, while it runs.
template <class F>
long allocations_in(F&& f) {
  const long before = g_allocations.load();
  f();
  return g_allocations.load() - before;
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using ctoken::CancellationCallback;
using ctoken::CancellationToken;
using ctoken::CancellationTokenSource;

TEST_CASE("creating a source is one allocation - tokens, copies and Cancel allocate nothing") {
  CHECK(allocations_in([] { CancellationTokenSource s; }) == 1);
  CancellationTokenSource source;
  CHECK(allocations_in([&] {
          CancellationToken a = source.Token();
          CancellationToken b = a;
          CancellationTokenSource copy = source;
          CHECK_FALSE(b.IsCancellationRequested());
          source.Cancel();
          CHECK(a.IsCancellationRequested());
        }) == 0);
}

TEST_CASE("CancellationCallback never allocates - not even the first one on a fresh source") {
  CancellationTokenSource source;
  int runs = 0;
  CHECK(allocations_in([&] {
          CancellationCallback cb(source.Token(), [&runs] { ++runs; });
          CancellationCallback cb2(source.Token(), [&runs](std::error_code) { ++runs; });
        }) == 0);
  CHECK(allocations_in([&] {
          CancellationCallback cb(source.Token(), [&runs] { ++runs; });
          source.Cancel();
        }) == 0);
  CHECK(runs == 1);
}

TEST_CASE("Register/Dispose does not allocate in steady state (nodes are recycled per source)") {
  CancellationTokenSource source;
  int runs = 0;
  {
    auto warm = source.Token().Register([&runs] { ++runs; });
  }
  CHECK(allocations_in([&] {
          for (int i = 0; i < 1000; ++i) {
            auto r = source.Token().Register([&runs] { ++runs; });
            r.Dispose();
          }
        }) == 0);
  // Non-trivially-copyable callables take the slower path but recycle their node just the same.
  {
    auto warm = source.Token().Register([&runs, tok = source.Token()] { ++runs; });
  }
  CHECK(allocations_in([&] {
          for (int i = 0; i < 1000; ++i) {
            auto r = source.Token().Register([&runs, tok = source.Token()] { ++runs; });
          }
        }) == 0);
  CHECK(runs == 0);
}

TEST_CASE("a pooled source can be reset many times without growing") {
  CancellationTokenSource source;
  int runs = 0;
  int failed_resets = 0;  // counted, not CHECKed, inside the measured region
  const auto round = [&] {
    auto r = source.Token().Register([&runs] { ++runs; });
    auto r2 = source.Token().Register([&runs, tok = source.Token()] { ++runs; });  // the general path
    if (!source.TryReset()) ++failed_resets;  // drops both; their nodes go back to the source's pool
  };
  round();  // warm-up: the pool gets its two nodes
  CHECK(allocations_in([&] {
          for (int i = 0; i < 1000; ++i) round();
        }) == 0);
  CHECK(failed_resets == 0);
  source.Cancel();
  CHECK(runs == 0);
}

TEST_CASE("registrations on several sources recycle their nodes - each source its own") {
  // Interleaved on four sources, at most two live per source: once every pool holds two nodes,
  // no further Register allocates, whichever source it is on and however it ended.
  constexpr int kSources = 4;
  std::vector<CancellationTokenSource> sources(kSources);
  int runs = 0;
  int failed_unregisters = 0;  // counted, not CHECKed, inside the measured region
  const auto round = [&](int i) {
    auto& a = sources[static_cast<std::size_t>(i % kSources)];
    auto& b = sources[static_cast<std::size_t>((i + 1) % kSources)];
    auto r1 = a.Token().Register([&runs] { ++runs; });
    auto r2 = b.Token().Register([&runs] { ++runs; });
    auto r3 = a.Token().Register([&runs, tok = a.Token()] { ++runs; });  // the general path
    if (i % 2 == 0 && !r1.Unregister()) ++failed_unregisters;
    r2.Dispose();
  };
  for (int i = 0; i < kSources; ++i) round(i);  // warm-up: every pool gets its nodes
  CHECK(allocations_in([&] {
          for (int i = 0; i < 1000; ++i) round(i);
        }) == 0);
  CHECK(failed_unregisters == 0);
  for (auto& s : sources) s.Cancel();
  CHECK(runs == 0);
}

TEST_CASE("a linked source with several parents is one allocation") {
  CancellationTokenSource a;
  CancellationTokenSource b;
  CancellationTokenSource c;
  CHECK(allocations_in([&] {
          auto linked = CancellationTokenSource::CreateLinkedTokenSource(a.Token(), b.Token(), c.Token());
        }) == 1);
}

TEST_CASE("waiting allocates nothing") {
  CancellationTokenSource source;
  source.Cancel();
  CHECK(allocations_in([&] {
          CHECK(source.Token().Wait());
          CHECK(source.Token().WaitFor(std::chrono::milliseconds(1)));
          CHECK_FALSE(ctoken::SleepFor(std::chrono::milliseconds(1), source.Token()));
        }) == 0);
  CancellationTokenSource idle;
  CHECK(allocations_in([&] { CHECK_FALSE(idle.Token().WaitFor(std::chrono::milliseconds(2))); }) == 0);
}

TEST_CASE("re-arming and disarming a deadline allocates nothing once the heap has room") {
  ctoken::ManualTimeProvider clock;
  CancellationTokenSource source(clock);
  source.CancelAfter(std::chrono::seconds(5));  // first arm: the heap's vector grows
  CHECK(allocations_in([&] {
          for (int i = 0; i < 100; ++i) {
            source.CancelAfter(std::chrono::seconds(10 + i));
            source.CancelAfter(std::chrono::nanoseconds::max());
          }
        }) == 0);
}
