// ctoken — cancellable blocking: SleepFor() and a condition variable whose waits also end
// when a token is cancelled. (Wait/WaitFor/WaitUntil themselves are members of
// CancellationToken.)
#ifndef CTOKEN_WAIT_HPP
#define CTOKEN_WAIT_HPP

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

namespace ctoken {

/// Sleeps for `duration` unless `token` is cancelled first (the Task.Delay(d, token) of this
/// library). Returns false iff the token is cancelled (already, or before `duration` elapsed),
/// true after sleeping all of it. Wakes promptly on Cancel (no polling). For a token that can
/// never be cancelled, or whose sources disappear meanwhile, it just sleeps. noexcept.
inline bool SleepFor(std::chrono::nanoseconds duration, const CancellationToken& token) noexcept {
  if (token.IsCancellationRequested()) return false;
  const detail::steady_deadline until = detail::deadline_after(duration);
  if (!until.timed) {  // "forever"
    if (token.Wait()) return false;
    for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
  }
  if (token.WaitUntil(until.at)) return false;
  std::this_thread::sleep_until(until.at);  // returns at once unless the token was orphaned
  return true;
}

/// A condition variable (like std::condition_variable_any) whose waits also return when a
/// token is cancelled: the cancellable wait on a condition, for any lockable (std::mutex,
/// std::unique_lock, std::shared_lock ...).
///
/// The waits register an in-place callback on the token for their duration (no allocation) and
/// follow the rules of std::condition_variable_any::wait(lock, stop_token, pred): evaluate
/// `pred` with the lock held; return pred()'s last value. Notify after changing the predicate's
/// state under the same lock, as with any condition variable. Thread-safe; not copyable.
class CancellableConditionVariable {
 public:
  CancellableConditionVariable() = default;
  CancellableConditionVariable(const CancellableConditionVariable&) = delete;
  CancellableConditionVariable& operator=(const CancellableConditionVariable&) = delete;

  /// Wakes one waiter.
  void NotifyOne() noexcept {
    { std::lock_guard<std::mutex> guard(mutex_); }
    cv_.notify_one();
  }
  /// Wakes every waiter.
  void NotifyAll() noexcept {
    { std::lock_guard<std::mutex> guard(mutex_); }
    cv_.notify_all();
  }

  /// Blocks until pred() holds (returns true) or `token` is cancelled (returns pred()).
  template <class Lock, class Predicate>
  bool Wait(Lock& lock, const CancellationToken& token, Predicate pred) {
    return wait_impl(lock, token, pred, false, std::chrono::steady_clock::time_point());
  }

  /// As Wait(), but also returns pred() once `timeout` has passed.
  template <class Lock, class Predicate>
  bool WaitFor(Lock& lock, const CancellationToken& token, std::chrono::nanoseconds timeout, Predicate pred) {
    const detail::steady_deadline until = detail::deadline_after(timeout);
    return wait_impl(lock, token, pred, until.timed, until.at);
  }

  /// As Wait(), but also returns pred() at `deadline` (steady_clock).
  template <class Lock, class Predicate>
  bool WaitUntil(Lock& lock, const CancellationToken& token, std::chrono::steady_clock::time_point deadline,
                 Predicate pred) {
    return wait_impl(lock, token, pred, true, deadline);
  }

 private:
  struct waker {
    CancellableConditionVariable* self;
    void operator()() const noexcept { self->NotifyAll(); }
  };

  template <class Lock, class Predicate>
  bool wait_impl(Lock& lock, const CancellationToken& token, Predicate& pred, bool timed,
                 std::chrono::steady_clock::time_point deadline) {
    if (token.IsCancellationRequested()) return pred();
    CancellationCallback<waker> wake_on_cancel(token, waker{this});
    while (!pred()) {
      std::unique_lock<std::mutex> inner(mutex_);
      // Checked with mutex_ held: the cancel callback's NotifyAll takes mutex_ too, so it either
      // ran before this check or wakes the wait below.
      if (token.IsCancellationRequested()) {
        inner.unlock();
        return pred();
      }
      if (timed && std::chrono::steady_clock::now() >= deadline) {
        inner.unlock();
        return pred();
      }
      lock.unlock();
      if (timed) {
        cv_.wait_until(inner, deadline);
      } else {
        cv_.wait(inner);
      }
      inner.unlock();  // never hold mutex_ while re-taking the caller's lock
      lock.lock();
    }
    return true;
  }

  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace ctoken

#endif
