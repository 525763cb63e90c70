// ctoken — where CancelAfter() deadlines live: TimeProvider, the process-wide timer thread
// (TimeProvider::System()) and ManualTimeProvider, a clock for tests that only moves when told.
#ifndef CTOKEN_TIME_HPP
#define CTOKEN_TIME_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>

#include <ctoken/detail/config.hpp>
#include <ctoken/detail/deadline_heap.hpp>
#include <ctoken/detail/state.hpp>
#include <ctoken/errc.hpp>

namespace ctoken {

class CancellationTokenSource;
class ManualTimeProvider;

namespace detail {
class system_time_provider;
}  // namespace detail

/// A clock plus the deadlines armed against it (the role of .NET 8's TimeProvider).
///
/// Every source has one provider: TimeProvider::System() unless it was constructed with
/// another one, e.g. a ManualTimeProvider in tests. A provider keeps the armed deadlines of its
/// sources in one binary heap: arming, re-arming and disarming are O(log n) under one mutex;
/// an armed deadline costs 8 bytes in that heap (plus fields every source state has anyway).
/// Not derivable outside the library: its constructor is private to the two providers it has,
/// System() and ManualTimeProvider, because a provider's contract (arming under the state's
/// lock, firing outside its own mutex, forgetting a state exactly once) is internal machinery,
/// not an extension point. Take a TimeProvider& to accept either. Thread-safe.
class TimeProvider : public detail::deadline_owner {
 public:
  TimeProvider(const TimeProvider&) = delete;
  TimeProvider& operator=(const TimeProvider&) = delete;

  /// The provider's current time. For System() this is std::chrono::steady_clock::now().
  virtual std::chrono::steady_clock::time_point Now() const noexcept = 0;

  /// The process-wide provider: real time, and one background thread that fires deadlines.
  /// The thread starts lazily on the first CancelAfter() with a positive finite delay (a
  /// program that never arms a deadline has no such thread), sleeps on a condition variable
  /// until the earliest deadline, and is stopped and joined when the program exits (deadlines
  /// armed after that never fire). Callbacks of a source whose deadline fires run on that
  /// thread; an exception escaping one of them there calls std::terminate, exactly as an
  /// exception escaping any std::thread does (and as .NET crashes the process when a
  /// CancelAfter callback throws). Catch inside callbacks that may throw.
  static TimeProvider& System();

  /// Number of deadlines currently armed with this provider (for tests and diagnostics).
  std::size_t ArmedCount() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return heap_.size();
  }

 private:
  friend class detail::system_time_provider;
  friend class ManualTimeProvider;
  TimeProvider() = default;

 protected:
  ~TimeProvider() override = default;

  // Called with mutex_ held before a deadline is armed; may throw (then nothing is armed).
  virtual void before_arm_locked() {}

  // Called with mutex_ held whenever the earliest deadline became earlier.
  virtual void on_earlier_deadline() noexcept {}

  // Pops the earliest deadline if it is due at `now` (ns since the steady epoch): marks it
  // fired and returns it with a reference the caller must release after fire(). Else null.
  detail::state* pop_due_locked(std::int64_t now) noexcept {
    if (heap_.empty() || heap_.top_due() > now) return nullptr;
    detail::state* s = heap_.top();
    heap_.remove(s);
    s->timer().fired_ = true;
    // The state is alive: an armed state is removed (under mutex_) by its last source's
    // teardown before that teardown can drop its reference.
    s->add_ref();
    return s;
  }

  // Cancels a state whose deadline fired (unless every source is gone: an orphaned token
  // never fires), then drops the reference pop_due_locked() took. Exceptions from callbacks
  // propagate to the caller; the reference is released either way.
  static void fire(detail::state* s) {
    struct release_on_exit {
      detail::state* s;
      ~release_on_exit() { s->release_ref(); }
    } guard{s};
    s->request_cancel(make_error_code(errc::timed_out));  // refused once orphaned
  }

  // When s's armed (or just popped) deadline falls due. Call with mutex_ held.
  static std::int64_t due_of(const detail::state* s) noexcept { return s->timer().due_; }

  static std::int64_t ticks(std::chrono::steady_clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  mutable std::mutex mutex_;
  detail::deadline_heap heap_;

 private:
  friend class CancellationTokenSource;

  // Makes this provider the one of s (a source being created, or a source's first CancelAfter).
  void attach(detail::state* s) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (s->timer().owner() == nullptr) {
      s->timer().set_owner(this);
      attached_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter read under mutex_
    }
  }

  // CancelAfter(delay) for delay > 0: (re-)arms s at Now() + delay; an overflowing sum disarms.
  void arm_after(detail::state* s, std::chrono::nanoseconds delay) {
    const std::int64_t now = ticks(Now());
    // Under the state's lock (then our mutex, the documented order): Cancel() sets kCancelled
    // under that lock and, before it returns, reads the provider under it and disarms. So
    // either we see the flag here and arm nothing, or that Cancel sees us and disarms what we
    // arm. A TryReset or the last source's teardown is serialised with us the same way.
    detail::state::arm_lock held(*s);
    if (held.settled()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (s->timer().owner() == nullptr) {  // first deadline of a source with no provider yet
      s->timer().set_owner(this);
      attached_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter read under mutex_
    }
    if (s->timer().fired_) return;  // fired already: the source is being cancelled
    if (delay.count() > INT64_MAX - now) {
      heap_.remove(s);
      return;
    }
    const std::int64_t due = now + delay.count();
    before_arm_locked();
    const bool earlier = heap_.empty() || due < heap_.top_due();
    heap_.arm(s, due);
    if (earlier) on_earlier_deadline();
  }

  bool disarm(detail::state* s) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (s->timer().fired_) return false;
    heap_.remove(s);
    return true;
  }

  bool armed_deadline(const detail::state* s, std::chrono::steady_clock::time_point& due) const noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (s->timer().index_ == detail::deadline_slot::npos) return false;
    due = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(s->timer().due_));
    return true;
  }

  void forget(detail::state* s) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    heap_.remove(s);
    s->timer().set_owner(nullptr);
    attached_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a counter read under mutex_
  }

 protected:
  std::atomic<std::size_t> attached_{0};  // sources (alive) that use this provider
};

namespace detail {

// The provider behind TimeProvider::System(): real time and one lazily started thread.
class system_time_provider final : public TimeProvider {
 public:
  std::chrono::steady_clock::time_point Now() const noexcept override { return std::chrono::steady_clock::now(); }

  // At exit: stop the thread and join it (detach if exit() was called from the thread itself).
  void shutdown() noexcept {
    std::unique_lock<std::mutex> lock(mutex_);
    stopping_ = true;
    lock.unlock();
    wake_.notify_all();
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

 private:
  // The first deadline starts the thread; std::system_error from std::thread escapes
  // CancelAfter() with nothing armed.
  void before_arm_locked() override {
    if (!stopping_ && !thread_.joinable()) thread_ = std::thread([this] { run(); });
  }

  void on_earlier_deadline() noexcept override { wake_.notify_one(); }

  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      if (heap_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const std::int64_t now = ticks(std::chrono::steady_clock::now());
      state* due = pop_due_locked(now);
      if (due == nullptr) {
        const std::int64_t next = heap_.top_due();
        wake_.wait_until(lock, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(next)));
        continue;
      }
      lock.unlock();
      fire(due);  // an exception escaping a callback leaves run(): std::terminate, as documented
      lock.lock();
    }
  }

  std::condition_variable wake_;
  std::thread thread_;
  bool stopping_ = false;  // guarded by mutex_
};

struct system_time_provider_guard {
  system_time_provider* provider;
  ~system_time_provider_guard() { provider->shutdown(); }
};

inline system_time_provider& system_time_provider_instance() {
  // Never deleted: a source destroyed during static destruction may still call forget() on it.
  static system_time_provider* const instance = new system_time_provider();
  static system_time_provider_guard guard{instance};
  return *instance;
}

}  // namespace detail

inline TimeProvider& TimeProvider::System() { return detail::system_time_provider_instance(); }

/// A clock for tests: time stands still until Advance() or SetNow() moves it, and moving it
/// fires every deadline that falls due, synchronously, on the calling thread, in deadline
/// order, before the call returns. Lets tests of timeout paths run without sleeping.
///
/// Pass it to a source's constructor; it must outlive every source constructed with it
/// (destroying it earlier ends the process with a message). Thread-safe.
class ManualTimeProvider final : public TimeProvider {
 public:
  /// Starts at `start` (by default the real steady_clock::now(), so deadlines read sensibly).
  explicit ManualTimeProvider(std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now()) noexcept
      : now_(ticks(start)) {}

  ~ManualTimeProvider() {
    std::lock_guard<std::mutex> lock(mutex_);
    // relaxed: read under mutex_, which every attach/forget holds.
    if (attached_.load(std::memory_order_relaxed) != 0)
      detail::fatal("ManualTimeProvider destroyed while a source still uses it");
  }

  std::chrono::steady_clock::time_point Now() const noexcept override {
    // acquire: pairs with the release store in SetNow, so a callback fired "at" a time sees it.
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(now_.load(std::memory_order_acquire)));
  }

  /// Moves time forward by `delta` (negative values are ignored); see SetNow(). Concurrent
  /// calls add up: two Advance(1s) from two threads move time by 2 s.
  void Advance(std::chrono::nanoseconds delta) {
    std::int64_t target;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // relaxed: now_ is only written under mutex_
      horizon_ = std::max(horizon_, now_.load(std::memory_order_relaxed)) + std::max<std::int64_t>(delta.count(), 0);
      target = horizon_;
    }
    advance_to(target);
  }

  /// Moves time forward to `t` (never backward). Every deadline due at or before `t` fires on
  /// this thread, earliest first, with Now() reading its due time while its callbacks run.
  /// If callbacks throw, the first exception is rethrown after all due deadlines fired.
  void SetNow(std::chrono::steady_clock::time_point t) {
    const std::int64_t target = ticks(t);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      horizon_ = std::max(horizon_, target);
    }
    advance_to(target);
  }

 private:
  void advance_to(std::int64_t target) {
    std::exception_ptr first;
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      detail::state* due = pop_due_locked(target);
      if (due == nullptr) {
        if (target > now_.load(std::memory_order_relaxed))  // relaxed: only written under mutex_
          now_.store(target, std::memory_order_release);    // release: pairs with Now()
        return rethrow(first);
      }
      if (due_of(due) > now_.load(std::memory_order_relaxed))  // relaxed: only written under mutex_
        now_.store(due_of(due), std::memory_order_release);    // release: pairs with Now()
      lock.unlock();
      CTOKEN_TRY { fire(due); }
      CTOKEN_CATCH_ALL {
#if defined(CTOKEN_HAS_EXCEPTIONS)
        if (!first) first = std::current_exception();
#endif
      }
    }
  }

  static void rethrow(const std::exception_ptr& first) {
#if defined(CTOKEN_HAS_EXCEPTIONS)
    if (first) std::rethrow_exception(first);
#else
    (void)first;
#endif
  }

  std::atomic<std::int64_t> now_;
  std::int64_t horizon_ = 0;  // guarded by mutex_: the latest time any Advance/SetNow asked for
};

}  // namespace ctoken

#endif
