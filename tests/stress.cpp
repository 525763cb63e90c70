// Stress tests: several real threads hammer shared sources, tokens and registrations for a
// while (ctoken_test::stress_duration(), scaled per test; set CTOKEN_STRESS_MS to run longer),
// and every round checks invariants that a race would break: a callback runs at most once,
// never after Dispose() returned and never after Unregister() returned true; a kept
// registration runs exactly once when the token is cancelled; waiters always return, with the
// right answer; a long-lived parent does not keep anything of its short-lived linked children.
// Run these under -fsanitize=thread and -fsanitize=address,undefined as well: most of the
// bugs they are after show up there first.
//
// Catch2 assertions are not thread-safe, so worker threads only record failures (Failures
// below); the main thread turns them into one REQUIRE per test case.
#include <ctoken/ctoken.hpp>

#include "ctoken_test.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

// ---- live heap (for "memory stays flat") ----------------------------------------------------
// Under ASan/TSan the sanitizer's allocator counts the live heap bytes itself (and its
// runtime owns operator new, so it cannot be replaced there). Elsewhere the global operator
// new/delete are replaced to count live allocations; every unaligned form is replaced so that
// nothing from another operator new is ever handed to our free().
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CTOKEN_STRESS_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CTOKEN_STRESS_SANITIZER_HEAP 1
#endif
#endif

#if defined(CTOKEN_STRESS_SANITIZER_HEAP)
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
namespace {
long long live_heap() { return static_cast<long long>(__sanitizer_get_current_allocated_bytes()); }
constexpr const char* kLiveHeapUnit = "bytes";
constexpr long long kLiveHeapSlack = 32 * 1024;
}  // namespace
#else
namespace {
std::atomic<long long> g_live_allocations{0};

void* counted_alloc(std::size_t size) noexcept {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p != nullptr) g_live_allocations.fetch_add(1, std::memory_order_relaxed);
  return p;
}
void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  g_live_allocations.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}
long long live_heap() { return g_live_allocations.load(std::memory_order_relaxed); }
constexpr const char* kLiveHeapUnit = "allocations";
constexpr long long kLiveHeapSlack = 16;
}  // namespace

void* operator new(std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = counted_alloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_alloc(size); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
#endif

namespace {

using ctoken::CancellationCallback;
using ctoken::CancellationToken;
using ctoken::CancellationTokenRegistration;
using ctoken::CancellationTokenSource;
using Clock = std::chrono::steady_clock;
using Rng = std::minstd_rand;

const std::error_code kCanceled = ctoken::make_error_code(ctoken::errc::canceled);
const std::error_code kTimedOut = ctoken::make_error_code(ctoken::errc::timed_out);

// ---- small helpers -------------------------------------------------------------------------

// This test's share of the stress budget: the file runs ~12 cases, so each gets a fraction of
// stress_duration() (1.5 s by default) and the whole file stays around 15 s.
std::chrono::milliseconds budget(int num = 3, int den = 4) { return ctoken_test::stress_duration() * num / den; }

unsigned pick(Rng& rng, unsigned n) { return n == 0 ? 0u : static_cast<unsigned>(rng() % n); }

// Burns up to max_spins iterations (sometimes yields), to shift threads against each other.
void jitter(Rng& rng, unsigned max_spins) {
  const unsigned n = pick(rng, max_spins + 1);
  for (unsigned i = 0; i < n; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
  if (pick(rng, 8) == 0) std::this_thread::yield();
}

// Failures seen by any thread. The first message is kept for the report.
class Failures {
 public:
  void add(const char* what) noexcept {
    if (count_.fetch_add(1, std::memory_order_acq_rel) == 0) {
      std::lock_guard<std::mutex> guard(mutex_);
      first_ = what;
    }
  }
  void expect(bool ok, const char* what) noexcept {
    if (!ok) add(what);
  }
  long count() const noexcept { return count_.load(std::memory_order_acquire); }
  std::string first() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return first_ == nullptr ? std::string("none") : std::string(first_);
  }

 private:
  std::atomic<long> count_{0};
  mutable std::mutex mutex_;
  const char* first_ = nullptr;
};

#define CTOKEN_STRESS_REQUIRE_CLEAN(fails)                                   \
  do {                                                                       \
    INFO("failures: " << (fails).count() << ", first: " << (fails).first()); \
    REQUIRE((fails).count() == 0);                                           \
  } while (false)

// Runs rounds until `duration` has passed (and at least min_rounds). A round is: setup() on
// the main thread; work(index, rng) on `threads` persistent worker threads released together;
// check() on the main thread once every worker has finished. Stops early after a failure. A
// round that does not finish within a minute means a deadlock or a lost wake-up: the process
// is aborted with a message rather than left hanging.
template <class Setup, class Work, class Check>
long run_rounds(unsigned threads, std::chrono::milliseconds duration, Failures& fails, Setup setup, Work work,
                Check check, long min_rounds = 3) {
  std::atomic<long> generation{0};
  std::atomic<long> arrived{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  struct joiner {
    std::vector<std::thread>& pool;
    std::atomic<bool>& stop;
    std::atomic<long>& generation;
    ~joiner() {
      stop.store(true, std::memory_order_release);
      generation.fetch_add(1, std::memory_order_acq_rel);
      for (std::thread& t : pool) t.join();
    }
  } join_on_exit{pool, stop, generation};
  static std::atomic<unsigned> seed_base{12345};
  for (unsigned i = 0; i < threads; ++i) {
    const unsigned seed = seed_base.fetch_add(7919, std::memory_order_relaxed);
    pool.emplace_back([&, i, seed] {
      Rng rng(seed);
      long seen = 0;
      for (;;) {
        long g;
        while ((g = generation.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
        if (stop.load(std::memory_order_acquire)) return;
        seen = g;
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
        try {
          work(i, rng);
        } catch (...) {
          fails.add("a worker thread threw an exception");
        }
#else
        work(i, rng);
#endif
        arrived.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  const auto until = Clock::now() + duration;
  long rounds = 0;
  while (rounds < min_rounds || Clock::now() < until) {
    setup();
    ++rounds;
    generation.fetch_add(1, std::memory_order_acq_rel);
    const long target = rounds * static_cast<long>(threads);
    const auto give_up = Clock::now() + std::chrono::seconds(60);
    while (arrived.load(std::memory_order_acquire) < target) {
      if (Clock::now() > give_up) {
        std::fprintf(stderr, "ctoken stress: a round did not finish within 60 s (deadlock or lost wake-up)\n");
        std::abort();
      }
      std::this_thread::yield();
    }
    check();
    if (fails.count() != 0) break;
  }
  return rounds;
}

// ---- a probe callback and the record it writes ------------------------------------------------

// What one registration's callback did. Written by the callback (atomics) and by the one
// thread that owns the registration handle (plain fields, read by the main thread after the
// round's barrier).
struct Slot {
  std::atomic<int> ran{0};
  std::atomic<bool> running{false};
  std::atomic<long> seq{-1};  // when it ran, in a round-wide sequence
  std::atomic<std::thread::id> ran_on{};
  std::thread::id registrant;
  int snapshot = -1;  // ran, read right after the owner's Dispose() returned
  bool disposed = false;
  bool unregister_called = false;
  bool unregistered = false;  // Unregister() returned true
  bool empty = false;         // Register returned an empty registration

  void reset() {
    ran.store(0, std::memory_order_relaxed);
    running.store(false, std::memory_order_relaxed);
    seq.store(-1, std::memory_order_relaxed);
    ran_on.store(std::thread::id(), std::memory_order_relaxed);
    registrant = std::thread::id();
    snapshot = -1;
    disposed = false;
    unregister_called = false;
    unregistered = false;
    empty = false;
  }

  // After the owner's Dispose()/destructor returned: the callback has finished or never runs.
  void after_dispose(Failures& fails) {
    fails.expect(!running.load(std::memory_order_acquire),
                 "Dispose() returned while the callback was still running on another thread");
    snapshot = ran.load(std::memory_order_acquire);
    disposed = true;
  }
};

// Round-wide facts a probe checks while it runs.
struct Ctx {
  Failures* fails = nullptr;
  std::atomic<std::thread::id> canceller{};  // the thread that calls Cancel (unset: don't check)
  std::atomic<long> seq{0};
  std::error_code reason;                    // expected reason (empty: don't check)
  const CancellationToken* token = nullptr;  // must read cancelled while callbacks run
  unsigned spin = 0;                         // max busy iterations inside the callback

  void reset(Failures& f, const CancellationToken* t, std::error_code why, unsigned spins) {
    fails = &f;
    canceller.store(std::thread::id(), std::memory_order_relaxed);
    seq.store(0, std::memory_order_relaxed);
    reason = why;
    token = t;
    spin = spins;
  }
};

void probe_run(Slot& slot, Ctx& ctx, const std::error_code& why) {
  Failures& fails = *ctx.fails;
  fails.expect(!slot.running.exchange(true, std::memory_order_acq_rel), "a callback ran twice at the same time");
  fails.expect(static_cast<bool>(why), "a callback was given an empty reason");
  if (ctx.reason) fails.expect(why == ctx.reason, "a callback was given the wrong reason");
  if (ctx.token != nullptr)
    fails.expect(ctx.token->IsCancellationRequested() && ctx.token->Reason() == why,
                 "the token did not read as cancelled (with the reason) while a callback ran");
  const std::thread::id me = std::this_thread::get_id();
  const std::thread::id canceller = ctx.canceller.load(std::memory_order_acquire);
  if (canceller != std::thread::id())
    fails.expect(me == canceller || me == slot.registrant,
                 "a callback ran on neither the cancelling nor the registering thread");
  slot.seq.store(ctx.seq.fetch_add(1, std::memory_order_acq_rel), std::memory_order_relaxed);
  slot.ran_on.store(me, std::memory_order_relaxed);
  if (ctx.spin != 0) {
    const unsigned n = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(&slot) >> 4) % (ctx.spin + 1);
    for (unsigned i = 0; i < n; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  fails.expect(slot.ran.fetch_add(1, std::memory_order_acq_rel) == 0, "a callback ran more than once");
  slot.running.store(false, std::memory_order_release);
}

// Three shapes of callable, so that every storage path of Register() is exercised: a small
// trivially copyable one (stored under the lock), one with a non-trivial destructor (built and
// destroyed outside the lock) and one too big for the node (a second allocation).
struct SmallProbe {
  Slot* slot;
  Ctx* ctx;
  void operator()(std::error_code why) const { probe_run(*slot, *ctx, why); }
};
struct OwningProbe {
  Slot* slot;
  Ctx* ctx;
  std::shared_ptr<int> keep = std::make_shared<int>(1);
  void operator()(std::error_code why) const {
    if (!keep || *keep != 1) ctx->fails->add("a callable was destroyed before its callback ran");
    probe_run(*slot, *ctx, why);
  }
};
struct BigProbe {
  Slot* slot;
  Ctx* ctx;
  std::array<std::uintptr_t, 10> padding{};
  void operator()() const {  // the f() form: takes the reason from the token, when the test has one
    probe_run(*slot, *ctx, ctx->token != nullptr ? ctx->token->Reason() : ctx->reason ? ctx->reason : kCanceled);
  }
};

CancellationTokenRegistration register_probe(const CancellationToken& token, Slot& slot, Ctx& ctx, Rng& rng) {
  slot.registrant = std::this_thread::get_id();
  switch (pick(rng, 3)) {
    case 0:
      return token.Register(SmallProbe{&slot, &ctx});
    case 1:
      return token.Register(OwningProbe{&slot, &ctx});
    default:
      return token.Register(BigProbe{&slot, &ctx, {}});
  }
}

bool is_empty(const CancellationTokenRegistration& reg) { return reg.Token() == CancellationToken::None(); }

// ============================================================================================
// 1. Register / Unregister / Dispose racing one Cancel.
// ============================================================================================
TEST_CASE("stress: Register, Unregister and Dispose race Cancel - each callback runs at most once", "[stress]") {
  constexpr unsigned kRegistrants = 3;
  constexpr unsigned kPer = 24;
  Failures fails;
  struct Fixture {
    std::optional<CancellationTokenSource> source;
    CancellationToken token;
    Ctx ctx;
    std::array<std::array<Slot, kPer>, kRegistrants> slots;
    std::array<std::vector<CancellationTokenRegistration>, kRegistrants> kept;
  } fx;
  long registrations = 0;

  const long rounds = run_rounds(
      kRegistrants + 1, budget(), fails,
      [&] {
        fx.source.emplace();
        fx.token = fx.source->Token();
        fx.ctx.reset(fails, &fx.token, kCanceled, 64);
        for (auto& row : fx.slots)
          for (Slot& s : row) s.reset();
      },
      [&](unsigned me, Rng& rng) {
        if (me == kRegistrants) {  // the canceller
          jitter(rng, 3000);
          fx.ctx.canceller.store(std::this_thread::get_id(), std::memory_order_release);
          fails.expect(fx.source->Cancel(), "the only Cancel() call returned false");
          fails.expect(fx.token.Reason() == kCanceled, "wrong reason after Cancel()");
          return;
        }
        const CancellationToken local = fx.token;  // a copy per thread
        auto& kept = fx.kept[me];
        for (Slot& s : fx.slots[me]) {
          const bool cancelled_before = local.IsCancellationRequested();
          CancellationTokenRegistration reg = register_probe(local, s, fx.ctx, rng);
          s.empty = is_empty(reg);
          if (s.empty) {
            fails.expect(s.ran.load() == 1, "Register on a cancelled token returned before running the callback");
            fails.expect(local.IsCancellationRequested(), "Register returned an empty registration for a live token");
          } else {
            fails.expect(!cancelled_before, "Register on a cancelled token stored the callback");
          }
          switch (pick(rng, 5)) {
            case 0:
              kept.push_back(std::move(reg));
              break;
            case 1:
              jitter(rng, 200);
              s.unregister_called = true;
              s.unregistered = reg.Unregister();
              if (s.unregistered) fails.expect(s.ran.load() == 0, "Unregister() returned true after the callback ran");
              if (pick(rng, 2) == 0) {
                reg.Dispose();  // Unregister then Dispose: still waits for a running callback
                s.after_dispose(fails);
              } else {
                kept.push_back(std::move(reg));
              }
              break;
            case 2:
              reg.Dispose();
              s.after_dispose(fails);
              reg.Dispose();  // idempotent
              fails.expect(s.ran.load() == s.snapshot, "a second Dispose() changed something");
              break;
            case 3: {
              CancellationTokenRegistration sink = std::move(reg);
              (void)sink;
            }  // the destructor disposes
              s.after_dispose(fails);
              break;
            default:
              jitter(rng, 500);
              reg.Dispose();
              s.after_dispose(fails);
              break;
          }
          jitter(rng, 100);
        }
      },
      [&] {
        for (auto& row : fx.slots) {
          for (Slot& s : row) {
            ++registrations;
            const int ran = s.ran.load();
            fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
            if (s.unregistered) fails.expect(ran == 0, "a callback ran although Unregister() returned true");
            if (s.unregister_called && !s.unregistered)
              fails.expect(ran == 1, "Unregister() returned false but the callback never ran");
            if (s.disposed) {
              fails.expect(ran == s.snapshot, "a callback started after Dispose() had returned");
            } else if (!s.unregistered) {
              fails.expect(ran == 1, "a kept registration did not run exactly once on Cancel");
            }
          }
        }
        for (auto& kept : fx.kept) kept.clear();
        fx.token = CancellationToken();
        fx.source.reset();
      });
  INFO("rounds: " << rounds << ", registrations: " << registrations);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 2. Concurrent Cancel: one winner, callbacks once each, newest first, losers don't wait.
// ============================================================================================
TEST_CASE("stress: concurrent Cancel calls: exactly one wins, losers return without waiting", "[stress]") {
  constexpr unsigned kThreads = 3;
  constexpr unsigned kCallbacks = 8;
  Failures fails;
  struct Fixture {
    std::optional<CancellationTokenSource> source;
    CancellationToken token;
    Ctx ctx;
    std::array<Slot, kCallbacks> slots;
    std::vector<CancellationTokenRegistration> regs;
    std::atomic<int> winners{0};
    std::atomic<unsigned> losers_returned{0};
    std::atomic<bool> losers_waited_for_callbacks{false};
    std::array<std::error_code, kThreads> reasons;
    std::array<bool, kThreads> won{};
    std::array<std::thread::id, kThreads> ids{};
  } fx;
  const std::array<ctoken::errc, kThreads> reasons = {ctoken::errc::canceled, ctoken::errc::shutdown,
                                                      ctoken::errc::client_disconnected};
  Rng main_rng(7);

  const long rounds = run_rounds(
      kThreads, budget(), fails,
      [&] {
        fx.source.emplace();
        fx.token = fx.source->Token();
        fx.ctx.reset(fails, &fx.token, std::error_code(), 0);
        fx.winners.store(0);
        fx.losers_returned.store(0);
        fx.losers_waited_for_callbacks.store(false);
        for (Slot& s : fx.slots) s.reset();
        fx.regs.clear();
        for (unsigned i = 0; i < kCallbacks; ++i) {
          if (i + 1 == kCallbacks) {
            // Registered last, so it runs first: holds the winner inside its callbacks until
            // every loser's Cancel() has returned (they must not wait for callbacks).
            Slot* slot = &fx.slots[i];
            slot->registrant = std::this_thread::get_id();
            fx.regs.push_back(fx.token.Register([&fx, slot](std::error_code why) {
              const bool ok = ctoken_test::eventually([&] { return fx.losers_returned.load() == kThreads - 1; },
                                                      std::chrono::seconds(20));
              if (!ok) fx.losers_waited_for_callbacks.store(true);
              probe_run(*slot, fx.ctx, why);
            }));
          } else {
            fx.regs.push_back(register_probe(fx.token, fx.slots[i], fx.ctx, main_rng));
          }
        }
      },
      [&](unsigned me, Rng& rng) {
        jitter(rng, 200);
        const std::error_code why = ctoken::make_error_code(reasons[me]);
        fx.ids[me] = std::this_thread::get_id();
        const CancellationTokenSource& source = *fx.source;
        CancellationTokenSource copy = source;  // cancel through a copy: same state
        const bool won = copy.Cancel(why);
        fx.won[me] = won;
        fx.reasons[me] = why;
        if (won) {
          fx.winners.fetch_add(1);
        } else {
          fails.expect(copy.IsCancellationRequested(), "a losing Cancel() returned before the token read cancelled");
          fx.losers_returned.fetch_add(1);
        }
      },
      [&] {
        fails.expect(fx.winners.load() == 1, "not exactly one Cancel() call returned true");
        fails.expect(!fx.losers_waited_for_callbacks.load(), "a losing Cancel() waited for the callbacks");
        std::thread::id winner;
        for (unsigned t = 0; t < kThreads; ++t)
          if (fx.won[t]) {
            winner = fx.ids[t];
            fails.expect(fx.token.Reason() == fx.reasons[t], "the reason is not the winner's");
          }
        for (unsigned i = 0; i < kCallbacks; ++i) {
          fails.expect(fx.slots[i].ran.load() == 1, "a callback did not run exactly once");
          fails.expect(fx.slots[i].ran_on.load() == winner, "a callback did not run on the winning Cancel()'s thread");
          // newest first: callback i ran as number (kCallbacks - 1 - i)
          fails.expect(fx.slots[i].seq.load() == static_cast<long>(kCallbacks - 1 - i),
                       "callbacks did not run newest first");
        }
        fx.regs.clear();
        fx.token = CancellationToken();
        fx.source.reset();
      });
  INFO("rounds: " << rounds);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 3. CancellationCallback constructed and destroyed while another thread cancels.
// ============================================================================================
TEST_CASE("stress: CancellationCallback construction and destruction race Cancel", "[stress]") {
  constexpr unsigned kBuilders = 3;
  constexpr unsigned kPer = 32;
  Failures fails;
  struct Fixture {
    std::optional<CancellationTokenSource> source;
    CancellationToken token;
    Ctx ctx;
    std::array<std::array<Slot, kPer>, kBuilders> slots;
  } fx;

  const long rounds = run_rounds(
      kBuilders + 1, budget(), fails,
      [&] {
        fx.source.emplace();
        fx.token = fx.source->Token();
        fx.ctx.reset(fails, &fx.token, kCanceled, 64);
        for (auto& row : fx.slots)
          for (Slot& s : row) s.reset();
      },
      [&](unsigned me, Rng& rng) {
        if (me == kBuilders) {
          jitter(rng, 4000);
          fx.ctx.canceller.store(std::this_thread::get_id(), std::memory_order_release);
          fails.expect(fx.source->Cancel(), "the only Cancel() call returned false");
          return;
        }
        for (Slot& s : fx.slots[me]) {
          s.registrant = std::this_thread::get_id();
          const bool cancelled_before = fx.token.IsCancellationRequested();
          {
            const CancellationCallback<SmallProbe> cb(fx.token, SmallProbe{&s, &fx.ctx});
            if (cancelled_before)
              fails.expect(s.ran.load() == 1, "a CancellationCallback on a cancelled token did not run at once");
            jitter(rng, 300);
          }  // destroyed here
          s.after_dispose(fails);
        }
      },
      [&] {
        for (auto& row : fx.slots)
          for (Slot& s : row) {
            const int ran = s.ran.load();
            fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
            fails.expect(ran == s.snapshot, "a callback started after its CancellationCallback was destroyed");
          }
        fx.token = CancellationToken();
        fx.source.reset();
      });
  INFO("rounds: " << rounds);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 4. Callbacks that dispose themselves and others, register new ones and destroy the last
//    source / token, on plain, linked and two-level linked sources (nested cancellation),
//    while other threads Dispose and Unregister the same handles.
// ============================================================================================
TEST_CASE("stress: callbacks dispose themselves and others, register, destroy the last source", "[stress]") {
  constexpr unsigned kRegs = 16;
  enum class Act { none, self, other, register_new, destroy_token, destroy_sources };
  enum class Mode { plain, linked_cancel_parent, linked_cancel_child, chain };
  Failures fails;
  struct Fixture {
    Mode mode = Mode::plain;
    // unique_ptr, not optional: a callback destroys these, and ASan should see the memory go.
    std::unique_ptr<CancellationTokenSource> parent, child, grandchild;
    std::optional<CancellationToken> token;  // the token variable a callback may destroy
    CancellationToken observer;              // kept by the main thread for the checks
    Ctx ctx;
    std::array<CancellationTokenRegistration, kRegs> regs;
    std::array<Slot, kRegs> slots;
    std::array<Slot, kRegs> extra;  // callbacks registered from inside callbacks
    std::array<Act, kRegs> act{};
    std::array<unsigned, kRegs> other{};
    std::array<std::atomic<bool>, kRegs> disposed_by_callback{};
    std::array<int, kRegs> disposer_snapshot{};  // thread 1's Dispose
    std::array<bool, kRegs> unregistered{};      // thread 2's Unregister returned true
  } fx;
  Rng main_rng(99);
  long sources_destroyed_inside = 0;

  struct Callback {
    Fixture* fx;
    unsigned i;
    void operator()(std::error_code why) const {
      Fixture& f = *fx;
      Failures& fails = *f.ctx.fails;
      probe_run(f.slots[i], f.ctx, why);
      switch (f.act[i]) {
        case Act::none:
          break;
        case Act::self:
          f.regs[i].Dispose();
          break;  // must return at once
        case Act::other: {
          const unsigned j = f.other[i];  // j < i: not run yet (newest first)
          f.regs[j].Dispose();
          f.disposed_by_callback[j].store(true);
          fails.expect(f.slots[j].ran.load() == 0, "a callback registered earlier ran before a later one");
          break;
        }
        case Act::register_new: {
          Slot& s = f.extra[i];
          CancellationTokenRegistration r = f.observer.Register(SmallProbe{&s, &f.ctx});
          fails.expect(s.ran.load() == 1, "Register inside a callback did not run the new callback at once");
          fails.expect(is_empty(r), "Register inside a callback returned a live registration");
          break;
        }
        case Act::destroy_token:
          f.token.reset();
          break;
        case Act::destroy_sources:
          f.grandchild.reset();
          f.child.reset();
          if (f.mode == Mode::plain || (i & 1u) != 0) f.parent.reset();
          break;
      }
    }
  };

  const long rounds = run_rounds(
      3, budget(), fails,
      [&] {
        fx.mode = static_cast<Mode>(pick(main_rng, 4));
        fx.parent = std::make_unique<CancellationTokenSource>();
        if (fx.mode != Mode::plain)
          fx.child = std::make_unique<CancellationTokenSource>(
              CancellationTokenSource::CreateLinkedTokenSource(fx.parent->Token()));
        if (fx.mode == Mode::chain)
          fx.grandchild = std::make_unique<CancellationTokenSource>(
              CancellationTokenSource::CreateLinkedTokenSource(fx.child->Token()));
        CancellationTokenSource& leaf = fx.mode == Mode::chain   ? *fx.grandchild
                                        : fx.mode == Mode::plain ? *fx.parent
                                                                 : *fx.child;
        fx.token.emplace(leaf.Token());
        fx.observer = leaf.Token();
        fx.ctx.reset(fails, nullptr, kCanceled, 32);
        for (unsigned i = 0; i < kRegs; ++i) {
          fx.slots[i].reset();
          fx.extra[i].reset();
          fx.disposed_by_callback[i].store(false);
          fx.disposer_snapshot[i] = -1;
          fx.unregistered[i] = false;
          const unsigned roll = pick(main_rng, 20);
          fx.act[i] = roll < 8    ? Act::none
                      : roll < 11 ? Act::self
                      : roll < 15 ? (i == 0 ? Act::none : Act::other)
                      : roll < 19 ? Act::register_new
                                  : Act::destroy_token;
          fx.other[i] = i == 0 ? 0 : pick(main_rng, i);
        }
        if (pick(main_rng, 10) < 7) fx.act[pick(main_rng, kRegs)] = Act::destroy_sources;
        for (unsigned i = 0; i < kRegs; ++i) {
          fx.slots[i].registrant = std::this_thread::get_id();
          fx.regs[i] = fx.token->Register(Callback{&fx, i});
        }
      },
      [&](unsigned me, Rng& rng) {
        switch (me) {
          case 0: {  // the canceller
            jitter(rng, 2000);
            fx.ctx.canceller.store(std::this_thread::get_id(), std::memory_order_release);
            CancellationTokenSource* target = fx.mode == Mode::linked_cancel_child ? fx.child.get() : fx.parent.get();
            fails.expect(target->Cancel(), "the only Cancel() call returned false");  // may destroy *target
            break;
          }
          case 1:  // disposes handles the callbacks also dispose, from another thread
            for (unsigned k = 0; k < kRegs / 2; ++k) {
              const unsigned j = pick(rng, kRegs);
              jitter(rng, 400);
              fx.regs[j].Dispose();
              fails.expect(!fx.slots[j].running.load(), "Dispose() returned while the callback was running");
              if (fx.disposer_snapshot[j] < 0) fx.disposer_snapshot[j] = fx.slots[j].ran.load();
            }
            break;
          default:  // unregisters some of them
            for (unsigned k = 0; k < kRegs / 2; ++k) {
              const unsigned j = pick(rng, kRegs);
              jitter(rng, 400);
              if (fx.regs[j].Unregister()) fx.unregistered[j] = true;
            }
            break;
        }
      },
      [&] {
        if (!fx.parent && fx.mode == Mode::plain) ++sources_destroyed_inside;
        fails.expect(fx.observer.IsCancellationRequested(), "the token is not cancelled after Cancel()");
        long last_seq = -1;
        for (unsigned k = kRegs; k-- > 0;) {  // newest first
          const Slot& s = fx.slots[k];
          const int ran = s.ran.load();
          fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
          if (fx.disposed_by_callback[k].load())
            fails.expect(ran == 0, "a callback ran after another callback disposed it");
          if (fx.unregistered[k]) fails.expect(ran == 0, "a callback ran although Unregister() returned true");
          if (fx.disposer_snapshot[k] >= 0)
            fails.expect(ran == fx.disposer_snapshot[k], "a callback started after Dispose() returned");
          if (!fx.disposed_by_callback[k].load() && !fx.unregistered[k] && fx.disposer_snapshot[k] < 0)
            fails.expect(ran == 1, "a registration nobody removed did not run");
          if (ran == 1) {
            fails.expect(s.seq.load() > last_seq, "callbacks did not run newest first");
            last_seq = s.seq.load();
          }
        }
        for (auto& r : fx.regs) r = CancellationTokenRegistration();
        fx.token.reset();
        fx.observer = CancellationToken();
        fx.grandchild.reset();
        fx.child.reset();
        fx.parent.reset();
      });
  INFO("rounds: " << rounds << ", plain sources destroyed by their own callback: " << sources_destroyed_inside);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 5. The same registration disposed from two threads at once while a third cancels and a
//    fourth unregisters.
// ============================================================================================
TEST_CASE("stress: concurrent Dispose of the same registrations while another thread cancels", "[stress]") {
  constexpr unsigned kRegs = 32;
  Failures fails;
  struct Fixture {
    std::optional<CancellationTokenSource> source;
    CancellationToken token;
    Ctx ctx;
    std::array<Slot, kRegs> slots;
    std::array<CancellationTokenRegistration, kRegs> regs;
    std::array<std::array<int, kRegs>, 2> snap{};
    std::array<bool, kRegs> unregistered{};
  } fx;
  Rng main_rng(3);

  const long rounds = run_rounds(
      4, budget(), fails,
      [&] {
        fx.source.emplace();
        fx.token = fx.source->Token();
        fx.ctx.reset(fails, &fx.token, kCanceled, 400);  // callbacks take a while: Dispose must wait
        for (unsigned i = 0; i < kRegs; ++i) {
          fx.slots[i].reset();
          fx.unregistered[i] = false;
          fx.snap[0][i] = fx.snap[1][i] = -1;
          fx.regs[i] = register_probe(fx.token, fx.slots[i], fx.ctx, main_rng);
        }
      },
      [&](unsigned me, Rng& rng) {
        if (me < 2) {
          for (unsigned k = 0; k < kRegs; ++k) {
            const unsigned j = me == 0 ? k : kRegs - 1 - k;
            jitter(rng, 150);
            fx.regs[j].Dispose();
            fails.expect(!fx.slots[j].running.load(), "Dispose() returned while the callback was running");
            fx.snap[me][j] = fx.slots[j].ran.load();
          }
        } else if (me == 2) {
          jitter(rng, 3000);
          fx.ctx.canceller.store(std::this_thread::get_id(), std::memory_order_release);
          fails.expect(fx.source->Cancel(), "the only Cancel() call returned false");
        } else {
          for (unsigned k = 0; k < kRegs; ++k) {
            const unsigned j = pick(rng, kRegs);
            if (fx.regs[j].Unregister()) {
              fx.unregistered[j] = true;
              fails.expect(fx.slots[j].ran.load() == 0, "Unregister() returned true after the callback ran");
            }
            jitter(rng, 100);
          }
        }
      },
      [&] {
        for (unsigned j = 0; j < kRegs; ++j) {
          const int ran = fx.slots[j].ran.load();
          fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
          fails.expect(ran == fx.snap[0][j] && ran == fx.snap[1][j], "a callback started after Dispose() returned");
          if (fx.unregistered[j]) fails.expect(ran == 0, "a callback ran although Unregister() returned true");
          fails.expect(fx.regs[j].Token() == CancellationToken::None(),
                       "a disposed registration still names its token");
        }
        for (auto& r : fx.regs) r = CancellationTokenRegistration();
        fx.token = CancellationToken();
        fx.source.reset();
      });
  INFO("rounds: " << rounds);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 6. Linked sources.
// ============================================================================================

// Many short-lived linked children of long-lived parents, created, used and destroyed on
// several threads: afterwards the parents hold nothing of them (no allocation is left behind
// and the parent's Cancel runs none of their callbacks).
TEST_CASE("stress: short-lived linked children leave nothing behind in a long-lived parent", "[stress][linked]") {
  Failures fails;
  std::atomic<long> children{0};
  std::atomic<long> child_callbacks{0};
  std::atomic<bool> parent_cancelled{false};
  std::atomic<long> own_cancels{0};

  std::optional<CancellationTokenSource> parent;
  std::optional<CancellationTokenSource> other_parent;
  std::optional<CancellationTokenSource> dead_parent;  // its last source is gone
  CancellationTokenSource cancelled_parent;
  cancelled_parent.Cancel();
  parent.emplace();
  other_parent.emplace();
  dead_parent.emplace();
  const CancellationToken parent_token = parent->Token();
  const CancellationToken other_token = other_parent->Token();
  const CancellationToken dead_token = dead_parent->Token();
  const CancellationToken cancelled_token = cancelled_parent.Token();
  dead_parent.reset();

  // The parent's own registrations, churned by one thread: warm its node pool first so that
  // the measurement below sees steady state.
  constexpr unsigned kParentRegs = 8;
  {
    std::vector<CancellationTokenRegistration> warm;
    for (unsigned i = 0; i < kParentRegs * 2; ++i) warm.push_back(parent_token.Register([] {}));
  }

  auto churn = [&](unsigned me, Clock::time_point until) {
    Rng rng(1000u + me);
    long made = 0;
    if (me == 3) {  // churns the parent's own registrations meanwhile
      std::vector<CancellationTokenRegistration> regs;
      while (Clock::now() < until) {
        if (regs.size() < kParentRegs) {
          regs.push_back(parent_token.Register([] {}));
        } else {
          const std::size_t k = pick(rng, static_cast<unsigned>(regs.size()));
          if (pick(rng, 2) == 0) (void)regs[k].Unregister();
          regs.erase(regs.begin() + static_cast<std::ptrdiff_t>(k));
        }
        (void)parent_token.Deadline();
      }
      return;
    }
    while (Clock::now() < until) {
      std::optional<CancellationTokenSource> child;
      switch (pick(rng, 4)) {
        case 0:
          child.emplace(CancellationTokenSource::CreateLinkedTokenSource(parent_token));
          break;
        case 1:
          child.emplace(CancellationTokenSource::CreateLinkedTokenSource(parent_token, other_token));
          break;
        case 2:
          child.emplace(CancellationTokenSource::CreateLinkedTokenSource(
              std::vector<CancellationToken>{dead_token, parent_token, CancellationToken::None()}));
          break;
        default:
          child.emplace(CancellationTokenSource::CreateLinkedTokenSource({other_token, parent_token}));
          break;
      }
      ++made;
      const CancellationToken token = child->Token();
      CancellationTokenRegistration reg = token.Register([&] { child_callbacks.fetch_add(1); });
      {
        CancellationCallback in_place(token, [&] { child_callbacks.fetch_add(1); });
        std::optional<CancellationTokenSource> copy;
        if (pick(rng, 2) == 0) copy.emplace(*child);  // a second handle, dropped first or last
        if (pick(rng, 4) == 0) {
          fails.expect(child->Cancel(), "cancelling a fresh linked child returned false");
          fails.expect(!parent_token.IsCancellationRequested(), "cancelling a child cancelled its parent");
          own_cancels.fetch_add(1);
        }
        if (pick(rng, 4) == 0) {  // a grandchild, gone with this iteration too
          CancellationTokenSource grandchild = CancellationTokenSource::CreateLinkedTokenSource(token, parent_token);
          const CancellationTokenRegistration r = grandchild.Token().Register([&] { child_callbacks.fetch_add(1); });
          if (pick(rng, 2) == 0) child.reset();  // the child goes before its grandchild
        }
        if (pick(rng, 2) == 0) child.reset();
        jitter(rng, 50);
      }
      // A linked child of a cancelled parent starts cancelled; of a dead one, it's just a source.
      const CancellationTokenSource born_cancelled = CancellationTokenSource::CreateLinkedTokenSource(cancelled_token);
      fails.expect(born_cancelled.IsCancellationRequested(), "a child of a cancelled parent did not start cancelled");
      const CancellationTokenSource orphan_child = CancellationTokenSource::CreateLinkedTokenSource(dead_token);
      fails.expect(!orphan_child.IsCancellationRequested() && orphan_child.Token().CanBeCanceled(),
                   "a child of a dead parent is not a plain live source");
      fails.expect(!parent_cancelled.load(), "the parent was cancelled while children churned");
    }
    children.fetch_add(made);
  };

  auto run_phase = [&](std::chrono::milliseconds length) {
    const auto until = Clock::now() + length;
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (unsigned i = 0; i < 4; ++i) threads.emplace_back(churn, i, until);
    for (std::thread& t : threads) t.join();
  };

  run_phase(budget(1, 8));  // warm-up: pools, thread start-up, first-use statics
  const long long before = live_heap();
  const long children_before = children.load();
  run_phase(budget(5, 8));
  const long long after = live_heap();
  const long churned = children.load() - children_before;

  // No stale links: cancelling the parent now runs exactly the callbacks registered on it.
  const long child_callbacks_before = child_callbacks.load();
  int parent_callback_runs = 0;
  {
    const CancellationTokenRegistration r = parent_token.Register([&] { ++parent_callback_runs; });
    parent_cancelled.store(true);
    CHECK(parent->Cancel());
  }
  INFO("children churned: " << churned << ", own cancels: " << own_cancels.load() << ", live heap (" << kLiveHeapUnit
                            << ") before: " << before << ", after: " << after);
  CHECK(parent_callback_runs == 1);
  CHECK(child_callbacks.load() == child_callbacks_before);
  CHECK(churned > 200);
  // Flat: whatever a child allocated is gone with it. A parent keeping anything per child
  // would show up as thousands of allocations (hundreds of KiB) here; a little slack is allowed.
  CHECK(after - before <= kLiveHeapSlack);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// A parent's Cancel runs the links of its children on one thread while other threads destroy
// the children's last handles (the destructor must wait for a link that is running) and watch
// the children's tokens.
TEST_CASE("stress: parent Cancel races destruction of linked children's last handles", "[stress][linked]") {
  constexpr unsigned kChildren = 12;
  Failures fails;
  struct Fixture {
    std::optional<CancellationTokenSource> parent;
    std::array<std::optional<CancellationTokenSource>, kChildren> children;
    std::array<CancellationToken, kChildren> tokens;
    std::array<Slot, kChildren> slots;
    std::array<CancellationTokenRegistration, kChildren> regs;
    std::array<int, kChildren> snapshot{};
    Ctx ctx;
  } fx;
  Rng main_rng(5);

  const long rounds = run_rounds(
      4, budget(), fails,
      [&] {
        fx.parent.emplace();
        fx.ctx.reset(fails, nullptr, kCanceled, 200);
        for (unsigned k = 0; k < kChildren; ++k) {
          fx.children[k].emplace(CancellationTokenSource::CreateLinkedTokenSource(fx.parent->Token()));
          fx.tokens[k] = fx.children[k]->Token();
          fx.slots[k].reset();
          fx.snapshot[k] = -1;
          fx.regs[k] = register_probe(fx.tokens[k], fx.slots[k], fx.ctx, main_rng);
        }
      },
      [&](unsigned me, Rng& rng) {
        if (me == 0) {
          jitter(rng, 2500);
          fx.ctx.canceller.store(std::this_thread::get_id(), std::memory_order_release);
          fails.expect(fx.parent->Cancel(), "the only Cancel() call returned false");
          return;
        }
        if (me == 3) {  // watches: short waits and late registrations on the children's tokens
          for (unsigned k = 0; k < kChildren; ++k) {
            const bool cancelled = fx.tokens[k].WaitFor(std::chrono::microseconds(pick(rng, 50)));
            if (cancelled) fails.expect(fx.tokens[k].Reason() == kCanceled, "a linked child has the wrong reason");
            std::atomic<int> ran{0};
            {
              CancellationCallback cb(fx.tokens[k], [&ran] { ran.fetch_add(1); });
              jitter(rng, 100);
            }
            fails.expect(ran.load() <= 1, "a callback ran more than once");
          }
          return;
        }
        // threads 1 and 2 destroy half the children each
        for (unsigned k = me - 1; k < kChildren; k += 2) {
          jitter(rng, 400);
          fx.children[k].reset();
          // Once the last handle's destructor returned, the child is final: its callback has
          // run completely or never will.
          fails.expect(!fx.slots[k].running.load(), "a child's destructor returned while its link was running");
          fx.snapshot[k] = fx.slots[k].ran.load();
        }
      },
      [&] {
        for (unsigned k = 0; k < kChildren; ++k) {
          const int ran = fx.slots[k].ran.load();
          fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
          fails.expect(ran == fx.snapshot[k], "a child's callback ran after its last handle was destroyed");
          fails.expect(fx.tokens[k].IsCancellationRequested() == (ran == 1),
                       "a child's token is cancelled but its callback did not run (or the reverse)");
          if (ran == 0) fails.expect(!fx.tokens[k].CanBeCanceled(), "an orphaned child token still CanBeCanceled()");
          fx.regs[k] = CancellationTokenRegistration();
          fx.tokens[k] = CancellationToken();
        }
        fx.parent.reset();
      });
  INFO("rounds: " << rounds);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// TryReset on a parent drops its children's links (they are registrations like any other):
// a child created before a successful reset is never cancelled by the parent; one whose
// reset came too late (the parent was cancelled) is. Meanwhile other threads register on the
// parent and arm/disarm its deadline.
TEST_CASE("stress: parent TryReset drops linked children racing Cancel and Register", "[stress][linked][reset]") {
  constexpr unsigned kChildren = 16;
  constexpr unsigned kRegs = 16;
  Failures fails;
  struct Fixture {
    std::optional<CancellationTokenSource> parent;
    CancellationToken token;
    Ctx ctx;
    std::vector<CancellationTokenSource> children;
    std::vector<CancellationToken> child_tokens;
    std::vector<bool> reset_after;
    std::array<Slot, kChildren> child_slots;
    std::array<Slot, kRegs> reg_slots;
    std::array<CancellationTokenRegistration, kRegs> regs;
    std::array<CancellationTokenRegistration, kChildren> child_regs;
  } fx;
  long resets = 0;
  long late = 0;

  const long rounds = run_rounds(
      4, budget(), fails,
      [&] {
        fx.parent.emplace();
        fx.token = fx.parent->Token();
        fx.ctx.reset(fails, nullptr, kCanceled, 0);
        fx.children.clear();
        fx.child_tokens.clear();
        fx.reset_after.clear();
        for (Slot& s : fx.child_slots) s.reset();
        for (Slot& s : fx.reg_slots) s.reset();
      },
      [&](unsigned me, Rng& rng) {
        switch (me) {
          case 0:  // creates children, resetting the parent after each
            for (unsigned k = 0; k < kChildren; ++k) {
              fx.children.push_back(CancellationTokenSource::CreateLinkedTokenSource(fx.token));
              fx.child_tokens.push_back(fx.children.back().Token());
              fx.child_regs[k] = register_probe(fx.child_tokens.back(), fx.child_slots[k], fx.ctx, rng);
              jitter(rng, 100);
              fx.reset_after.push_back(fx.parent->TryReset());
            }
            break;
          case 1:
            jitter(rng, 6000);
            fails.expect(fx.parent->Cancel(), "the only Cancel() call returned false");
            break;
          case 2:  // registers on the parent meanwhile
            for (unsigned k = 0; k < kRegs; ++k) {
              fx.regs[k] = register_probe(fx.token, fx.reg_slots[k], fx.ctx, rng);
              jitter(rng, 200);
            }
            break;
          default:  // arms and disarms a far deadline; TryReset must disarm it, not fire it
            for (unsigned k = 0; k < 8; ++k) {
              fx.parent->CancelAfter(pick(rng, 2) == 0 ? std::chrono::nanoseconds(std::chrono::hours(1))
                                                       : std::chrono::nanoseconds::max());
              (void)fx.token.Deadline();
              jitter(rng, 300);
            }
            break;
        }
      },
      [&] {
        fails.expect(fx.token.IsCancellationRequested() && fx.token.Reason() == kCanceled,
                     "the parent is not cancelled with errc::canceled");
        for (std::size_t k = 0; k < fx.children.size(); ++k) {
          const bool cancelled = fx.child_tokens[k].IsCancellationRequested();
          if (fx.reset_after[k]) {
            ++resets;
            fails.expect(!cancelled, "a child whose link a later TryReset dropped was cancelled by the parent");
          } else {
            ++late;
            fails.expect(cancelled, "a child still linked to a cancelled parent was not cancelled");
          }
          fails.expect(fx.child_slots[k].ran.load() == (cancelled ? 1 : 0), "a child's callback count is wrong");
        }
        for (unsigned k = 0; k < kRegs; ++k) {
          const int ran = fx.reg_slots[k].ran.load();
          fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
          if (ran == 0)  // dropped by a TryReset: never runs, and Unregister says so
            fails.expect(!fx.regs[k].Unregister(), "Unregister() returned true for a registration TryReset dropped");
          fx.regs[k] = CancellationTokenRegistration();
        }
        for (auto& r : fx.child_regs) r = CancellationTokenRegistration();
        fx.children.clear();
        fx.child_tokens.clear();
        fx.token = CancellationToken();
        fx.parent.reset();
      });
  INFO("rounds: " << rounds << ", successful resets: " << resets << ", children cancelled: " << late);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 7. Waiters: every Wait/WaitFor/WaitUntil returns, with the right answer, whether the source
//    is cancelled or its last handle destroyed (or both, on different threads).
// ============================================================================================
TEST_CASE("stress: waiters return when another thread cancels or destroys the last source", "[stress][wait]") {
  constexpr unsigned kWaiters = 3;
  enum class Mode { cancel_then_destroy, destroy_only, cancel_keep };
  Failures fails;
  struct Fixture {
    Mode mode = Mode::cancel_keep;
    std::optional<CancellationTokenSource> first, second;
    CancellationToken token;
    std::array<bool, kWaiters> result{};
    std::array<bool, kWaiters> short_result{};
  } fx;
  Rng main_rng(11);
  long orphaned_rounds = 0;

  const long rounds = run_rounds(
      kWaiters + 2, budget(), fails,
      [&] {
        fx.mode = static_cast<Mode>(pick(main_rng, 3));
        fx.first.emplace();
        fx.second.emplace(*fx.first);
        fx.token = fx.first->Token();
      },
      [&](unsigned me, Rng& rng) {
        if (me == kWaiters) {  // owns `first`
          jitter(rng, 3000);
          if (fx.mode != Mode::destroy_only) fails.expect(fx.first->Cancel(), "the only Cancel() call returned false");
          if (fx.mode != Mode::cancel_keep) fx.first.reset();
          return;
        }
        if (me == kWaiters + 1) {  // owns `second`
          jitter(rng, 3000);
          if (fx.mode != Mode::cancel_keep) fx.second.reset();
          return;
        }
        const CancellationToken token = fx.token;
        fx.short_result[me] = token.WaitFor(std::chrono::microseconds(pick(rng, 100)));
        if (fx.short_result[me]) fails.expect(token.IsCancellationRequested(), "WaitFor returned true, not cancelled");
        const auto start = Clock::now();
        bool r = false;
        switch (me) {
          case 0:
            r = token.Wait();
            break;
          case 1:
            r = token.WaitFor(std::chrono::seconds(30));
            break;
          default:
            r = token.WaitUntil(std::chrono::system_clock::now() + std::chrono::seconds(30));
            break;
        }
        fails.expect(Clock::now() - start < std::chrono::seconds(20), "a wait did not return early");
        fx.result[me] = r;
      },
      [&] {
        const bool cancelled = fx.token.IsCancellationRequested();
        fails.expect(cancelled == (fx.mode != Mode::destroy_only), "the token's final state is wrong");
        if (!cancelled) {
          ++orphaned_rounds;
          fails.expect(!fx.token.CanBeCanceled(), "an orphaned token still CanBeCanceled()");
        }
        for (unsigned w = 0; w < kWaiters; ++w) {
          fails.expect(fx.result[w] == cancelled, "a wait returned the wrong value");
          if (fx.short_result[w]) fails.expect(cancelled, "a short wait returned true for a token never cancelled");
        }
        fx.token = CancellationToken();
        fx.first.reset();
        fx.second.reset();
      });
  INFO("rounds: " << rounds << ", orphaned: " << orphaned_rounds);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 8. CancelAfter with tiny delays (the real timer thread) racing TryReset, Register and the
//    destruction of every handle.
// ============================================================================================
TEST_CASE("stress: CancelAfter with tiny delays races TryReset, Register and destruction", "[stress][time]") {
  constexpr unsigned kRegs = 12;
  Failures fails;
  // Shared with the callbacks: a deadline may fire on the timer thread after the round ended.
  struct RoundData {
    Ctx ctx;
    std::array<Slot, kRegs> slots;
    std::array<bool, kRegs> dropped{};  // a later TryReset (same thread) returned true
    std::array<CancellationTokenRegistration, kRegs> regs;
  };
  struct Fixture {
    std::shared_ptr<RoundData> data;
    std::array<std::optional<CancellationTokenSource>, 3> handles;
    CancellationToken token;
    long reset_ok = 0;
  } fx;
  long cancelled_rounds = 0;
  long resets = 0;

  struct Probe {
    std::shared_ptr<RoundData> data;
    unsigned i;
    void operator()(std::error_code why) const { probe_run(data->slots[i], data->ctx, why); }
  };

  const long rounds = run_rounds(
      3, budget(), fails,
      [&] {
        fx.data = std::make_shared<RoundData>();
        fx.data->ctx.reset(fails, nullptr, kTimedOut, 0);
        fx.handles[0].emplace();
        fx.handles[1].emplace(*fx.handles[0]);
        fx.handles[2].emplace(*fx.handles[0]);
        fx.token = fx.handles[0]->Token();
        fx.reset_ok = 0;
      },
      [&](unsigned me, Rng& rng) {
        RoundData& d = *fx.data;
        CancellationTokenSource& mine = *fx.handles[me];
        if (me == 0) {  // arms, re-arms and disarms tiny deadlines, then lets go
          const unsigned n = 1 + pick(rng, 6);
          for (unsigned k = 0; k < n; ++k) {
            if (pick(rng, 5) == 0) {
              mine.CancelAfter(std::chrono::nanoseconds::max());
            } else {
              mine.CancelAfter(std::chrono::microseconds(1 + pick(rng, 60)));
            }
            jitter(rng, 2000);
          }
        } else if (me == 1) {  // registers and resets
          for (unsigned k = 0; k < kRegs; ++k) {
            d.regs[k] = fx.token.Register(Probe{fx.data, k});
            jitter(rng, 500);
            if (pick(rng, 3) == 0 && mine.TryReset()) {
              ++fx.reset_ok;
              // Everything registered so far was still waiting (a successful reset means no
              // cancellation happened yet): all of it is dropped now.
              for (unsigned j = 0; j <= k; ++j) {
                d.dropped[j] = true;
                fails.expect(!d.regs[j].Unregister(), "Unregister() returned true after TryReset dropped it");
                fails.expect(d.slots[j].ran.load() == 0, "a callback ran before a TryReset that succeeded");
              }
            }
          }
        } else {  // waits a little, then lets go
          const bool cancelled = fx.token.WaitFor(std::chrono::microseconds(pick(rng, 200)));
          if (cancelled) fails.expect(fx.token.Reason() == kTimedOut, "a deadline cancelled with the wrong reason");
        }
        jitter(rng, 1000);
        fx.handles[me].reset();  // the last of these three drops the deadline
      },
      [&] {
        RoundData& d = *fx.data;
        resets += fx.reset_ok;
        // Let a deadline that is firing right now finish its callbacks.
        auto settled = [&] {
          if (!fx.token.IsCancellationRequested()) return true;
          for (unsigned k = 0; k < kRegs; ++k)
            if (!d.dropped[k] && d.slots[k].ran.load() != 1) return false;
          return true;
        };
        fails.expect(ctoken_test::eventually(settled, std::chrono::seconds(10)),
                     "a token cancelled by its deadline did not run its registered callbacks");
        const bool cancelled = fx.token.IsCancellationRequested();
        if (cancelled) {
          ++cancelled_rounds;
          fails.expect(fx.token.Reason() == kTimedOut, "a deadline cancelled with the wrong reason");
        }
        for (unsigned k = 0; k < kRegs; ++k) {
          const int ran = d.slots[k].ran.load();
          fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
          if (d.dropped[k]) fails.expect(ran == 0, "a callback TryReset dropped ran anyway");
          if (!cancelled) fails.expect(ran == 0, "a callback ran although the token is not cancelled");
        }
        for (auto& r : d.regs) r = CancellationTokenRegistration();
        fx.token = CancellationToken();
        fx.data.reset();
      });
  // Every source is gone: none of their deadlines may still be armed.
  const bool disarmed =
      ctoken_test::eventually([] { return ctoken::TimeProvider::System().ArmedCount() == 0; }, std::chrono::seconds(5));
  INFO("rounds: " << rounds << ", cancelled by a deadline: " << cancelled_rounds << ", successful resets: " << resets);
  CHECK(disarmed);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 9. Source handles copied and destroyed on several threads while they register: the last
//    handle's destruction orphans the token, and nothing registered after that ever runs.
// ============================================================================================
TEST_CASE("stress: copying and destroying source handles races Register - orphaned tokens never fire",
          "[stress][lifetime]") {
  constexpr unsigned kThreads = 3;
  constexpr unsigned kPer = 16;
  Failures fails;
  struct Fixture {
    bool with_cancel = false;
    std::array<std::vector<CancellationTokenSource>, kThreads> handles;  // each thread's copies
    CancellationToken token;
    Ctx ctx;
    std::array<std::array<Slot, kPer>, kThreads> slots;
    std::array<std::vector<CancellationTokenRegistration>, kThreads> kept;
    std::array<std::array<bool, kPer>, kThreads> after_orphan{};
  } fx;
  Rng main_rng(21);

  const long rounds = run_rounds(
      kThreads, budget(), fails,
      [&] {
        fx.with_cancel = pick(main_rng, 2) == 0;
        {
          const CancellationTokenSource origin;  // gone at once: the threads hold the only handles
          fx.token = origin.Token();
          for (auto& mine : fx.handles) {
            const unsigned copies = 1 + pick(main_rng, 3);
            for (unsigned c = 0; c < copies; ++c) mine.push_back(origin);
          }
        }
        fx.ctx.reset(fails, &fx.token, kCanceled, 0);
        for (auto& row : fx.slots)
          for (Slot& s : row) s.reset();
        for (auto& row : fx.after_orphan) row.fill(false);
      },
      [&](unsigned me, Rng& rng) {
        std::vector<CancellationTokenSource> mine = std::move(fx.handles[me]);
        fx.handles[me].clear();
        const bool canceller = fx.with_cancel && me == 0;
        const unsigned cancel_at = pick(rng, kPer);
        // The canceller keeps its handles until it has cancelled: the token is never orphaned then.
        const unsigned drop_at = canceller ? cancel_at + pick(rng, kPer - cancel_at) : pick(rng, kPer);
        const CancellationToken token = mine.front().Token();
        bool saw_orphan = false;
        for (unsigned k = 0; k < kPer; ++k) {
          Slot& s = fx.slots[me][k];
          if (canceller && k == cancel_at) {
            fx.ctx.canceller.store(std::this_thread::get_id(), std::memory_order_release);
            fails.expect(mine.front().Cancel(), "the only Cancel() call returned false");
          }
          if (k == drop_at) {
            while (!mine.empty()) {
              CancellationTokenSource moved = std::move(mine.back());  // a move, then destruction
              mine.pop_back();
            }
          }
          const bool orphan_before = !token.CanBeCanceled();
          if (saw_orphan) fails.expect(orphan_before, "CanBeCanceled() turned true again");
          saw_orphan = orphan_before;
          CancellationTokenRegistration reg = register_probe(token, s, fx.ctx, rng);
          s.empty = is_empty(reg);
          if (orphan_before) {
            fx.after_orphan[me][k] = true;
            fails.expect(s.empty && s.ran.load() == 0, "Register on an orphaned token stored or ran something");
          }
          if (pick(rng, 3) == 0) {
            reg.Dispose();
            s.after_dispose(fails);
          } else {
            fx.kept[me].push_back(std::move(reg));
          }
          if (!mine.empty() && pick(rng, 3) == 0) {  // another copy
            CancellationTokenSource copy = mine.back();
            mine.push_back(std::move(copy));
          }
          jitter(rng, 200);
        }
      },
      [&] {
        // Every handle is gone by now.
        const bool cancelled = fx.token.IsCancellationRequested();
        fails.expect(cancelled == fx.with_cancel, "the token's final state is wrong");
        fails.expect(!fx.token.CanBeCanceled() || cancelled, "a token whose sources are gone still CanBeCanceled()");
        fails.expect(fx.token.Wait() == cancelled, "Wait() on a finished token returned the wrong value");
        for (unsigned t = 0; t < kThreads; ++t)
          for (unsigned k = 0; k < kPer; ++k) {
            const Slot& s = fx.slots[t][k];
            const int ran = s.ran.load();
            fails.expect(ran == 0 || ran == 1, "a callback ran more than once");
            if (!fx.with_cancel) fails.expect(ran == 0, "a callback ran although nothing cancelled the token");
            if (s.disposed)
              fails.expect(ran == s.snapshot, "a callback started after Dispose() returned");
            else if (fx.with_cancel)
              fails.expect(ran == 1, "a kept registration did not run on Cancel");
          }
        for (auto& kept : fx.kept) kept.clear();
        fx.token = CancellationToken();
      });
  INFO("rounds: " << rounds);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 10. Orphaning and cancelling are one linearizable choice: once a token has been reported as
//     "can never be cancelled" (Wait() returned false, CanBeCanceled() false, Register stored
//     nothing), it is never cancelled afterwards - also when the cancellation comes from a
//     parent's link or a deadline that were already under way when the last handle went.
// ============================================================================================
//     The last source's teardown sets kOrphaned under the lock; can_be_cancelled() reads it in
//     the same load as kCancelled, and request_cancel refuses an orphaned state.
TEST_CASE("stress: a token reported as never cancellable is never cancelled afterwards",
          "[stress][linked][time][orphan]") {
  Failures fails;
  struct Fixture {
    bool timer = false;
    std::optional<CancellationTokenSource> parent, child;
    CancellationToken token;
    bool wait_result = true;
    bool saw_orphan = false;
    std::atomic<int> late_callback{0};
    bool late_registration_empty = false;
  } fx;
  Rng main_rng(42);
  std::vector<CancellationToken> reported_orphaned;  // checked again once the timer is quiet
  long orphaned = 0;

  const long rounds = run_rounds(
      4, budget(), fails,
      [&] {
        fx.timer = pick(main_rng, 2) == 0;
        fx.parent.emplace();
        if (fx.timer) {
          fx.child.emplace(*fx.parent);  // a plain source with a tiny deadline
          fx.token = fx.parent->Token();
          fx.parent->CancelAfter(std::chrono::microseconds(1 + pick(main_rng, 40)));
          fx.parent.reset();
        } else {
          fx.child.emplace(CancellationTokenSource::CreateLinkedTokenSource(fx.parent->Token()));
          fx.token = fx.child->Token();
        }
        fx.wait_result = true;
        fx.saw_orphan = false;
        fx.late_callback.store(0);
        fx.late_registration_empty = false;
      },
      [&](unsigned me, Rng& rng) {
        switch (me) {
          case 0:
            jitter(rng, 1500);
            if (!fx.timer) (void)fx.parent->Cancel();
            break;
          case 1:
            jitter(rng, 1500);
            fx.child.reset();  // the last handle of the token's source
            break;
          case 2:
            fx.wait_result = fx.token.Wait();
            break;
          default: {
            // Spins until the token is cancelled or reported orphaned; in the latter case
            // registers a callback, which must store nothing and never run.
            while (!fx.token.IsCancellationRequested()) {
              if (!fx.token.CanBeCanceled()) {
                fx.saw_orphan = true;
                CancellationTokenRegistration r = fx.token.Register([&] { fx.late_callback.fetch_add(1); });
                fx.late_registration_empty = is_empty(r);
                r.Unregister();  // keeps the handle: it must not matter
                break;
              }
              std::this_thread::yield();
            }
            break;
          }
        }
      },
      [&] {
        const bool cancelled = fx.token.IsCancellationRequested();
        if (!fx.wait_result) {
          ++orphaned;
          fails.expect(!cancelled, fx.timer ? "Wait() returned false, yet the token's deadline cancelled it later"
                                            : "Wait() returned false, yet the parent's link cancelled it later");
          reported_orphaned.push_back(fx.token);
        }
        if (fx.saw_orphan) {
          fails.expect(!cancelled, fx.timer ? "CanBeCanceled() was false, yet the token's deadline cancelled it later"
                                            : "CanBeCanceled() was false, yet the parent's link cancelled it later");
          fails.expect(fx.late_registration_empty, "Register on an orphaned token returned a live registration");
        }
        fails.expect(fx.late_callback.load() == 0, "a callback registered on an orphaned token ran");
        fx.token = CancellationToken();
        fx.parent.reset();
        fx.child.reset();
      });
  // A deadline already popped by the timer thread could still be on its way: give it time.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (const CancellationToken& t : reported_orphaned)
    fails.expect(!t.IsCancellationRequested(), "an orphaned token fired after Wait() had returned false");
  INFO("rounds: " << rounds << ", reported orphaned: " << orphaned);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

// ============================================================================================
// 12. In-place callbacks and linked children hold no reference of their own: the source's
//     state lives on through them after its last source and token are gone, and the last one
//     of them to leave frees it. Here the last holder is decided by the race: the source's
//     last handle (sometimes after a Cancel whose callback destroys that very handle), an
//     in-place callback whose token is already gone, or a linked child whose handle is its
//     only reference (it leaves its parent without the full teardown). ASan catches a state
//     freed too early; the live heap, one freed too late (or never).
// ============================================================================================
TEST_CASE("stress: in-place callbacks and linked children outlive the last source and token", "[stress][linked]") {
  Failures fails;
  struct Fixture {
    std::optional<CancellationTokenSource> source;
    std::array<CancellationToken, 3> tokens;  // tokens[i] belongs to worker i, which drops it
    bool cancel = false;
    bool killer = false;  // Cancel's own callback destroys the source's last handle
    std::optional<CancellationCallback<std::function<void()>>> kill;
    std::atomic<bool> cancel_returned{false};
    std::atomic<int> inplace_ran{0};
    std::atomic<int> child_ran{0};
  } fx;
  Rng main_rng(12);
  long long baseline = 0;
  bool measured = false;

  const long rounds = run_rounds(
      3, budget(), fails,
      [&] {
        fx.source.emplace();
        for (CancellationToken& t : fx.tokens) t = fx.source->Token();
        fx.cancel = pick(main_rng, 3) != 0;
        fx.killer = fx.cancel && pick(main_rng, 2) == 0;
        if (fx.killer) fx.kill.emplace(fx.tokens[0], [&fx] { fx.source.reset(); });
        fx.cancel_returned.store(false);
        fx.inplace_ran.store(0);
        fx.child_ran.store(0);
      },
      [&](unsigned me, Rng& rng) {
        if (me == 0) {  // the source's owner
          fx.tokens[0] = CancellationToken();
          jitter(rng, 800);
          if (fx.cancel) {
            fails.expect(fx.source->Cancel(), "the only Cancel() call returned false");
            fx.cancel_returned.store(true);
            jitter(rng, 200);
          } else if (pick(rng, 2) == 0) {
            fails.expect(fx.source->TryReset(), "TryReset() of a source nobody cancelled failed");  // drops links
          }
          fx.source.reset();  // no-op when the killer callback already did it
          return;
        }
        if (me == 1) {  // in-place callbacks whose token dies first
          for (int i = 0; i < 3; ++i) {
            CancellationToken t = fx.tokens[1];
            const bool late = fx.cancel_returned.load();
            std::atomic<int> ran{0};
            {
              const CancellationCallback cb(t, [&ran] { ran.fetch_add(1); });
              t = CancellationToken();
              if (late) fails.expect(ran.load() == 1, "a callback on a cancelled token did not run at once");
              jitter(rng, 300);
            }
            const int seen = ran.load();
            fails.expect(seen <= 1, "an in-place callback ran more than once");
            fx.inplace_ran.fetch_add(seen);
            jitter(rng, 100);
            fails.expect(ran.load() == seen, "an in-place callback ran after its destructor returned");
          }
          fx.tokens[1] = CancellationToken();
          return;
        }
        // me == 2: a linked child whose handle is its only reference (the fast teardown; also
        // linked twice to the source and to a second parent), or one with a callback or a
        // grandchild of its own (the full one).
        const unsigned shape = pick(rng, 4);
        CancellationTokenSource other;
        std::optional<CancellationTokenSource> child(
            shape == 3 ? CancellationTokenSource::CreateLinkedTokenSource(fx.tokens[2], other.Token(), fx.tokens[2])
                       : CancellationTokenSource::CreateLinkedTokenSource(fx.tokens[2]));
        fx.tokens[2] = CancellationToken();
        std::optional<CancellationCallback<std::function<void()>>> on_child;
        std::optional<CancellationTokenSource> grandchild;
        if (shape == 1) on_child.emplace(child->Token(), [&fx] { fx.child_ran.fetch_add(1); });
        if (shape == 2) {
          grandchild.emplace(CancellationTokenSource::CreateLinkedTokenSource(child->Token()));
          (void)grandchild->Token().Deadline();  // walks up through the child to the source
        }
        jitter(rng, 800);
        child.reset();  // may race the parent's Cancel running this child's link
        jitter(rng, 100);
        grandchild.reset();
        on_child.reset();
        fails.expect(fx.child_ran.load() <= 1, "a linked child's callback ran more than once");
      },
      [&] {
        fails.expect(fx.cancel || fx.inplace_ran.load() == 0, "a callback ran on a source nobody cancelled");
        fails.expect(fx.cancel || fx.child_ran.load() == 0, "a linked child was cancelled by nobody");
        fx.kill.reset();  // may free the state: the last enlisted node
        fails.expect(!fx.source.has_value(), "the source survived its round");
        if (!measured) {  // every pool and buffer of the harness exists now
          baseline = live_heap();
          measured = true;
        }
      });
  const long long after = live_heap();
  INFO("rounds: " << rounds << ", live heap before " << baseline << " after " << after << " " << kLiveHeapUnit);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
  CHECK(after - baseline <= kLiveHeapSlack);
}

// ============================================================================================
// 13. Cancel() holds no reference while its callbacks run. Here a callback disposes its own
//     registration and destroys the source handle whose Cancel() is running, and another
//     thread then destroys the last handle, so the state's last release may race the end of
//     that Cancel (its recycling of the node, its final unlock): the teardown must see all of
//     it (ThreadSanitizer reports a data race otherwise) and never free the state under it
//     (ASan).
// ============================================================================================
TEST_CASE("stress: the last source goes on another thread while Cancel finishes through a destroyed handle",
          "[stress]") {
  Failures fails;
  struct Fixture {
    std::unique_ptr<CancellationTokenSource> first;  // Cancel() runs through this one
    std::optional<CancellationTokenSource> last;     // the other handle, destroyed by worker 1
    std::optional<CancellationTokenRegistration> reg;
    std::atomic<bool> first_gone{false};
    std::atomic<int> ran{0};
  } fx;

  const long rounds = run_rounds(
      2, budget(1, 2), fails,
      [&] {
        fx.first = std::make_unique<CancellationTokenSource>();
        fx.last.emplace(*fx.first);
        fx.first_gone.store(false);
        fx.ran.store(0);
        fx.reg.emplace(fx.first->Token().Register([&fx] {
          fx.ran.fetch_add(1);
          fx.reg.reset();    // disposed from inside: the canceller recycles the node afterwards
          fx.first.reset();  // the handle whose Cancel() is running; not the last one
          fx.first_gone.store(true, std::memory_order_release);
        }));
      },
      [&](unsigned me, Rng& rng) {
        if (me == 0) {
          CancellationTokenSource* const first = fx.first.get();
          fails.expect(first->Cancel(), "the only Cancel() call returned false");
          return;
        }
        while (!fx.first_gone.load(std::memory_order_acquire)) std::this_thread::yield();
        jitter(rng, 600);  // sometimes before the canceller's final unlock, sometimes after
        fx.last.reset();   // the last handle, with no token or registration left
      },
      [&] { fails.expect(fx.ran.load() == 1, "the callback did not run exactly once"); });
  INFO("rounds: " << rounds);
  CTOKEN_STRESS_REQUIRE_CLEAN(fails);
}

}  // namespace
