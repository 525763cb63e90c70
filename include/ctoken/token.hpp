// ctoken — CancellationToken: the observing side of a CancellationTokenSource.
#ifndef CTOKEN_TOKEN_HPP
#define CTOKEN_TOKEN_HPP

#include <chrono>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ctoken/detail/access.hpp>
#include <ctoken/detail/config.hpp>
#include <ctoken/detail/state.hpp>
#include <ctoken/errc.hpp>

namespace ctoken {

class CancellationToken;
class CancellationTokenRegistration;

namespace detail {
[[noreturn]] void throw_canceled(const CancellationToken& token);  // defined in exception.hpp

// Converts a relative wait into an absolute steady_clock deadline; {false, _} means "no limit"
// (the delay is so large that the deadline would overflow).
struct steady_deadline {
  bool timed;
  std::chrono::steady_clock::time_point at;
};
inline steady_deadline deadline_after(std::chrono::nanoseconds delay) noexcept {
  using clock = std::chrono::steady_clock;
  const auto now = clock::now();
  if (delay <= std::chrono::nanoseconds::zero()) return {true, now};
  const auto room = clock::time_point::max() - now;
  if (delay >= std::chrono::duration_cast<std::chrono::nanoseconds>(room)) return {false, now};
  return {true, now + std::chrono::duration_cast<clock::duration>(delay)};
}
}  // namespace detail

/// A cheap, copyable handle that observes one CancellationTokenSource (or none).
///
/// The size of a pointer. Copying it is one atomic increment; moving it is free. Observing it
/// (IsCancellationRequested) is one atomic load and never takes a lock. A token keeps the
/// source's shared state alive, never the source itself: a token may outlive every source.
/// Thread-safety: every const member may be called concurrently on the same token; assigning
/// to or destroying a token while another thread uses that same token object is a data race
/// (as with std::shared_ptr).
class CancellationToken {
 public:
  /// The token that can never be cancelled; same as None(). Never allocates.
  CancellationToken() noexcept = default;

  /// The token that can never be cancelled: IsCancellationRequested() and CanBeCanceled() are
  /// false forever, Register() runs nothing, Wait() returns false at once.
  static CancellationToken None() noexcept { return CancellationToken(); }

  CancellationToken(const CancellationToken& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) state_->add_token_ref();
  }
  CancellationToken(CancellationToken&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  CancellationToken& operator=(const CancellationToken& other) noexcept {
    CancellationToken(other).swap(*this);
    return *this;
  }
  CancellationToken& operator=(CancellationToken&& other) noexcept {
    CancellationToken(std::move(other)).swap(*this);
    return *this;
  }
  ~CancellationToken() {
    if (state_ != nullptr) state_->release_ref();
  }
  void swap(CancellationToken& other) noexcept { std::swap(state_, other.state_); }

  /// True once the source has been cancelled (by Cancel, a linked parent or a deadline).
  /// One atomic load (acquire), no lock; after it returns true, Reason() is final.
  bool IsCancellationRequested() const noexcept { return state_ != nullptr && state_->is_cancelled(); }

  /// False for None(), and for a token whose every source handle is gone without having
  /// cancelled it (then it never will be). True otherwise, including once cancelled.
  bool CanBeCanceled() const noexcept { return state_ != nullptr && state_->can_be_cancelled(); }

  /// Why the token was cancelled; an empty error_code until then, never empty afterwards.
  std::error_code Reason() const noexcept { return IsCancellationRequested() ? state_->reason() : std::error_code(); }

  /// Throws OperationCanceledException (carrying this token and its reason) if cancelled.
  /// Costs one atomic load when not cancelled. With exceptions disabled (-fno-exceptions or
  /// CTOKEN_NO_EXCEPTIONS) it prints the reason to stderr and aborts instead.
  void ThrowIfCancellationRequested() const {
    if (CTOKEN_UNLIKELY(IsCancellationRequested())) detail::throw_canceled(*this);
  }

  /// Registers `callback`, invocable as f() or f(std::error_code reason), to run once when the
  /// token is cancelled: on the thread that cancels, newest registration first, before that
  /// Cancel() returns. If the token is already cancelled, runs it at once on this thread
  /// (an exception escapes from here) and returns an empty registration. On None() or an
  /// orphaned token (every source gone) stores nothing and returns an empty registration.
  /// Thread-safe. Does not allocate in steady state: nodes are recycled per source (a callable
  /// larger than six pointers costs one extra allocation). May throw std::bad_alloc, or what
  /// the callable's copy/move constructor throws; then nothing is registered.
  template <class F>
  [[nodiscard]] CancellationTokenRegistration Register(F&& callback) const;

  /// Blocks until the token is cancelled (returns true). Returns false at once for a token
  /// that can never be cancelled, and as soon as the last source disappears un-cancelled.
  /// Never polls: the thread sleeps on a futex (Linux) or a condition variable.
  bool Wait() const noexcept {
    return state_ != nullptr && state_->wait_until(false, std::chrono::steady_clock::time_point());
  }

  /// As Wait(), but gives up after `timeout`: true iff cancelled. Measured on steady_clock.
  bool WaitFor(std::chrono::nanoseconds timeout) const noexcept {
    if (state_ == nullptr) return false;
    const detail::steady_deadline d = detail::deadline_after(timeout);
    return state_->wait_until(d.timed, d.at);
  }

  /// As Wait(), but gives up at `deadline` of any clock: true iff cancelled. For clocks other
  /// than steady_clock the remaining time is re-measured on `Clock` after each wake-up (like
  /// std::condition_variable::wait_until).
  template <class Clock, class Duration>
  bool WaitUntil(const std::chrono::time_point<Clock, Duration>& deadline) const {
    if (state_ == nullptr) return false;
    for (;;) {
      const auto now = Clock::now();
      if (now >= deadline) return IsCancellationRequested();
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
      const detail::steady_deadline d = detail::deadline_after(left + std::chrono::nanoseconds(1));
      if (state_->wait_until(d.timed, d.at)) return true;
      if (!state_->can_be_cancelled()) return false;
      if (std::is_same<Clock, std::chrono::steady_clock>::value) return false;
    }
  }

  /// The earliest CancelAfter() deadline that applies to this token: its source's own, or one
  /// of a linked ancestor's (like Go's ctx.Deadline()), on the source's TimeProvider clock
  /// (steady_clock for the default provider). Empty if none is armed. Takes the source's lock
  /// and its provider's mutex briefly: meant for passing a deadline on, not for hot loops.
  std::optional<std::chrono::steady_clock::time_point> Deadline() const noexcept {
    std::chrono::steady_clock::time_point due;
    if (state_ != nullptr && state_->earliest_deadline(due)) return due;
    return std::nullopt;
  }

  /// Two tokens are equal when they observe the same source (or are both None()).
  friend bool operator==(const CancellationToken& a, const CancellationToken& b) noexcept {
    return a.state_ == b.state_;
  }
  friend bool operator!=(const CancellationToken& a, const CancellationToken& b) noexcept {
    return a.state_ != b.state_;
  }

 private:
  friend struct detail::access;
  CancellationToken(detail::state* adopted, int) noexcept : state_(adopted) {}

  detail::state* state_ = nullptr;
};

static_assert(sizeof(CancellationToken) == sizeof(void*), "a token is one pointer");

}  // namespace ctoken

// Register() returns a CancellationTokenRegistration and ThrowIfCancellationRequested() throws
// an OperationCanceledException; both types hold a CancellationToken, so their headers come
// after the class above. Each of them includes this header first, so any include order works.
#include <ctoken/exception.hpp>
#include <ctoken/registration.hpp>

#endif
