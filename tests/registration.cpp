// Rules 2, 3 and 9: registering, disposing, unregistering; the handle and in-place forms.
#include <ctoken/ctoken.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationCallback;
using ctoken::CancellationToken;
using ctoken::CancellationTokenRegistration;
using ctoken::CancellationTokenSource;

TEST_CASE("the registration handle is move-only and nothrow to move") {
  STATIC_REQUIRE_FALSE(std::is_copy_constructible<CancellationTokenRegistration>::value);
  STATIC_REQUIRE_FALSE(std::is_copy_assignable<CancellationTokenRegistration>::value);
  STATIC_REQUIRE(std::is_nothrow_move_constructible<CancellationTokenRegistration>::value);
  STATIC_REQUIRE(std::is_nothrow_move_assignable<CancellationTokenRegistration>::value);
  using Cb = CancellationCallback<void (*)()>;
  STATIC_REQUIRE_FALSE(std::is_copy_constructible<Cb>::value);
  STATIC_REQUIRE_FALSE(std::is_move_constructible<Cb>::value);
}

TEST_CASE("an empty registration") {
  CancellationTokenRegistration r;
  CHECK(r.Token() == CancellationToken::None());
  CHECK_FALSE(r.Unregister());
  r.Dispose();
  r.Dispose();
}

TEST_CASE("Register on an already cancelled token runs at once and returns an empty handle") {
  CancellationTokenSource source;
  source.Cancel(ctoken::errc::shutdown);
  std::thread::id ran_on;
  std::error_code why;
  auto r = source.Token().Register([&](std::error_code e) {
    ran_on = std::this_thread::get_id();
    why = e;
  });
  CHECK(ran_on == std::this_thread::get_id());
  CHECK(why == ctoken::errc::shutdown);
  CHECK(r.Token() == CancellationToken::None());
  CHECK_FALSE(r.Unregister());

  int in_place_runs = 0;
  CancellationCallback cb(source.Token(), [&] { ++in_place_runs; });
  CHECK(in_place_runs == 1);
}

TEST_CASE("Register on None() runs nothing and returns an empty handle") {
  int runs = 0;
  auto r = CancellationToken::None().Register([&] { ++runs; });
  CHECK(r.Token() == CancellationToken::None());
  CancellationCallback cb(CancellationToken::None(), [&] { ++runs; });
  CHECK(runs == 0);
}

TEST_CASE("Register on an orphaned token stores nothing and never runs") {
  CancellationToken token;
  {
    CancellationTokenSource source;
    token = source.Token();
  }
  CHECK_FALSE(token.CanBeCanceled());
  int runs = 0;
  auto r = token.Register([&] { ++runs; });
  CHECK(r.Token() == CancellationToken::None());
  CHECK_FALSE(r.Unregister());
  CancellationCallback cb(token, [&] { ++runs; });
  CHECK(runs == 0);
}

TEST_CASE("Token() of a registration is its token until disposed") {
  CancellationTokenSource source;
  auto r = source.Token().Register([] {});
  CHECK(r.Token() == source.Token());
  r.Dispose();
  CHECK(r.Token() == CancellationToken::None());
}

TEST_CASE("Dispose before Cancel: the callback never runs - Dispose after it ran is a no-op") {
  CancellationTokenSource source;
  int a = 0;
  int b = 0;
  auto ra = source.Token().Register([&] { ++a; });
  auto rb = source.Token().Register([&] { ++b; });
  ra.Dispose();
  source.Cancel();
  CHECK(a == 0);
  CHECK(b == 1);
  rb.Dispose();
  rb.Dispose();
  CHECK(b == 1);
}

TEST_CASE("destroying the handle disposes it") {
  CancellationTokenSource source;
  int runs = 0;
  {
    auto r = source.Token().Register([&] { ++runs; });
  }
  {
    CancellationCallback cb(source.Token(), [&] { ++runs; });
  }
  source.Cancel();
  CHECK(runs == 0);
}

TEST_CASE("moving a handle moves the registration") {
  CancellationTokenSource source;
  int runs = 0;
  CancellationTokenRegistration outer;
  {
    auto inner = source.Token().Register([&] { ++runs; });
    outer = std::move(inner);
    CHECK(inner.Token() == CancellationToken::None());  // NOLINT(bugprone-use-after-move)
  }
  CHECK(outer.Token() == source.Token());
  // Move-assigning over a live handle disposes what it held.
  CancellationTokenRegistration other = source.Token().Register([&] { runs += 100; });
  other = std::move(outer);
  source.Cancel();
  CHECK(runs == 1);
}

TEST_CASE("Unregister: true iff the callback will now never run - the handle stays live") {
  CancellationTokenSource source;
  int runs = 0;
  auto r = source.Token().Register([&] { ++runs; });
  CHECK(r.Unregister());
  CHECK_FALSE(r.Unregister());
  source.Cancel();
  CHECK(runs == 0);
  r.Dispose();

  CancellationTokenSource s2;
  auto r2 = s2.Token().Register([&] { ++runs; });
  s2.Cancel();
  CHECK(runs == 1);
  CHECK_FALSE(r2.Unregister());  // it already ran
}

TEST_CASE("the callable is destroyed by Dispose - not earlier and not never") {
  CancellationTokenSource source;
  auto tracker = std::make_shared<int>(7);
  std::weak_ptr<int> weak = tracker;
  auto r = source.Token().Register([keep = std::move(tracker)] { (void)keep; });
  CHECK_FALSE(weak.expired());
  source.Cancel();
  CHECK_FALSE(weak.expired());  // ran, but the handle still owns it (as std::stop_callback)
  r.Dispose();
  CHECK(weak.expired());
}

TEST_CASE("callables larger than the inline buffer work") {
  CancellationTokenSource source;
  std::array<long, 32> big{};
  big[31] = 5;
  long seen = 0;
  auto r = source.Token().Register([big, &seen] { seen = big[31]; });
  auto tracker = std::make_shared<int>(1);
  std::weak_ptr<int> weak = tracker;
  auto r2 = source.Token().Register([big, keep = std::move(tracker)] { (void)big; });
  source.Cancel();
  CHECK(seen == 5);
  r2.Dispose();
  CHECK(weak.expired());
}

TEST_CASE("function pointers and function objects are callbacks") {
  static std::atomic<int> hits{0};
  struct functor {
    void operator()(std::error_code) const { hits.fetch_add(10); }
  };
  CancellationTokenSource source;
  void (*fp)() = [] { hits.fetch_add(1); };
  auto r1 = source.Token().Register(fp);
  const functor f{};
  auto r2 = source.Token().Register(f);
  CancellationCallback<functor> cb(source.Token(), functor{});
  source.Cancel();
  CHECK(hits.load() == 21);
}

TEST_CASE("a registration handle keeps working after every source and token is gone") {
  CancellationTokenRegistration r;
  int runs = 0;
  {
    CancellationTokenSource source;
    r = source.Token().Register([&] { ++runs; });
  }
  CHECK(r.Token() != CancellationToken::None());  // still names its (orphaned) token...
  CHECK_FALSE(r.Token().CanBeCanceled());         // ...which can never be cancelled
  CHECK(r.Unregister());                          // ...but it is still registered until disposed, and can be removed
  r.Dispose();
  CHECK(runs == 0);
}

TEST_CASE("Dispose from another thread waits for a running callback to return") {
  for (int round = 0; round < 20; ++round) {
    CancellationTokenSource source;
    std::atomic<bool> entered{false};
    std::atomic<bool> finished{false};
    auto r = source.Token().Register([&] {
      entered = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      finished = true;
    });
    std::thread canceller([&] { source.Cancel(); });
    REQUIRE(ctoken_test::eventually([&] { return entered.load(); }));
    r.Dispose();
    CHECK(finished.load());
    canceller.join();
  }
}

TEST_CASE("destroying a CancellationCallback waits for its running callback") {
  CancellationTokenSource source;
  std::atomic<bool> entered{false};
  std::atomic<bool> finished{false};
  std::thread canceller;
  {
    CancellationCallback cb(source.Token(), [&] {
      entered = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      finished = true;
    });
    canceller = std::thread([&] { source.Cancel(); });
    REQUIRE(ctoken_test::eventually([&] { return entered.load(); }));
  }
  CHECK(finished.load());
  canceller.join();
}

TEST_CASE("Unregister while the callback runs elsewhere is false and does not wait - Dispose then waits") {
  CancellationTokenSource source;
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  auto r = source.Token().Register([&] {
    entered = true;
    while (!release.load()) std::this_thread::yield();
    finished = true;
  });
  std::thread canceller([&] { source.Cancel(); });
  REQUIRE(ctoken_test::eventually([&] { return entered.load(); }));
  CHECK_FALSE(r.Unregister());
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    release = true;
  });
  r.Dispose();
  CHECK(finished.load());
  releaser.join();
  canceller.join();
}

TEST_CASE("registrations on several sources: a recycled node runs only its new callback, on its own source") {
  // Nodes are recycled per source (tests/allocations.cpp checks that no Register allocates once
  // the pools are warm). Here: interleaved on four sources, a third kept, a third unregistered,
  // a third disposed, half through the general path; each source's Cancel then runs exactly the
  // kept callbacks registered on it, once each - never a disposed one, never another source's.
  constexpr std::size_t kSources = 4;
  constexpr std::size_t kCount = 12000;
  std::vector<CancellationTokenSource> sources(kSources);
  std::vector<int> runs(kCount, 0);
  std::vector<std::size_t> ran_on(kCount, kSources);  // the source whose Cancel ran callback i
  std::size_t cancelling = kSources;
  std::vector<CancellationTokenRegistration> kept;
  int failed_unregisters = 0;
  for (std::size_t i = 0; i < kCount; ++i) {
    const std::size_t s = i % kSources;
    const auto record = [&runs, &ran_on, &cancelling, i] {
      ++runs[i];
      ran_on[i] = cancelling;
    };
    CancellationTokenRegistration r =
        (i / kSources) % 2 == 0 ? sources[s].Token().Register(record)
                                : sources[s].Token().Register([record, tok = sources[s].Token()] { record(); });
    if (i % 3 == 0) {
      kept.push_back(std::move(r));
    } else if (i % 3 == 1) {
      if (!r.Unregister()) ++failed_unregisters;
    }  // else: disposed by the handle's destructor
  }
  CHECK(failed_unregisters == 0);
  for (std::size_t s = 0; s < kSources; ++s) {
    cancelling = s;
    sources[s].Cancel();
  }
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kCount; ++i) {
    const bool expected = i % 3 == 0;
    if (runs[i] != (expected ? 1 : 0) || (expected && ran_on[i] != i % kSources)) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(kept.size() == kCount / 3);
}

TEST_CASE("a const mutable callable is copied, and the copy is what runs") {
  CancellationTokenSource source;
  int last = 0;
  const auto counter = [&last, n = 0]() mutable { last = ++n; };
  auto r = source.Token().Register(counter);
  source.Cancel();
  CHECK(last == 1);
  auto inline_run = source.Token().Register(counter);  // runs a fresh copy at once
  CHECK(last == 1);
}

namespace {
// Fits the node and is trivially destructible, but its copy constructor is user code: takes
// the general (two-lock) path with no destroy function.
struct counted_copy {
  int* copies;
  int* runs;
  const counted_copy* original;  // the caller's object: never the one that runs
  int* ran_original;
  counted_copy(int* c, int* r, int* ro) : copies(c), runs(r), original(this), ran_original(ro) {}
  counted_copy(const counted_copy& other)
      : copies(other.copies), runs(other.runs), original(other.original), ran_original(other.ran_original) {
    ++*copies;
  }
  counted_copy& operator=(const counted_copy&) = delete;
  void operator()() const {
    ++*runs;
    if (this == original) ++*ran_original;
  }
};
static_assert(std::is_trivially_destructible<counted_copy>::value, "the case needs no destroy function");
static_assert(!std::is_trivially_copy_constructible<counted_copy>::value, "the case needs user copy code");
}  // namespace

TEST_CASE("a trivially destructible callable with a user copy constructor on every path") {
  // Each path is identified by what it must do: stored (a live handle, runs at Cancel), orphaned
  // (an empty handle, never runs), inline (runs before Register returns, an empty handle); the
  // stored and inline paths copy through the user's copy constructor and run the copy.
  int copies = 0;
  int runs = 0;
  int ran_original = 0;
  const counted_copy f(&copies, &runs, &ran_original);

  CancellationTokenSource live;
  auto r1 = live.Token().Register(f);  // stored
  CHECK(copies >= 1);
  CHECK(runs == 0);
  CHECK(r1.Token() == live.Token());

  CancellationToken orphan;
  { orphan = CancellationTokenSource().Token(); }
  auto r2 = orphan.Register(f);  // orphaned: released without running
  CHECK(runs == 0);
  CHECK(r2.Token() == CancellationToken::None());

  CancellationTokenSource cancelled;
  cancelled.Cancel();
  const int copies_before_inline = copies;
  auto r3 = cancelled.Token().Register(f);  // inline: runs a copy at once
  CHECK(copies > copies_before_inline);
  CHECK(runs == 1);
  CHECK(r3.Token() == CancellationToken::None());

  const int copies_before_cancel = copies;
  live.Cancel();  // runs the stored copy, without copying again
  CHECK(runs == 2);
  CHECK(copies == copies_before_cancel);
  r1.Dispose();
  CHECK(runs == 2);
  CHECK(ran_original == 0);
}
