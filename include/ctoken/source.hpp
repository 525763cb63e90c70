// ctoken — CancellationTokenSource: the cancelling side, linked sources and CancelAfter.
#ifndef CTOKEN_SOURCE_HPP
#define CTOKEN_SOURCE_HPP

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ctoken/detail/access.hpp>
#include <ctoken/detail/state.hpp>
#include <ctoken/errc.hpp>
#include <ctoken/time.hpp>
#include <ctoken/token.hpp>

namespace ctoken {

namespace detail {
template <class Range, class = void>
struct is_token_range : std::false_type {};
template <class Range>
struct is_token_range<Range, std::void_t<decltype(std::begin(std::declval<const Range&>())),
                                         decltype(std::end(std::declval<const Range&>()))>>
    : std::is_convertible<decltype(*std::begin(std::declval<const Range&>())), const CancellationToken&> {};
}  // namespace detail

/// Owns the right to cancel: a copyable handle to shared cancellation state.
///
/// Copies share the state (copying costs one atomic increment). The state is allocated by the
/// constructor (one allocation, ~120 bytes, plus one link node per parent for linked sources)
/// and outlives the last handle for as long as tokens or registrations refer to it. When the
/// last source handle is destroyed un-cancelled, its tokens can never be cancelled any more:
/// CanBeCanceled() turns false, waiters return false, a linked source leaves its parents and an
/// armed deadline is disarmed. A moved-from source has no state: it behaves like a source whose
/// token is None() (Cancel() returns false).
/// Thread-safety: every member may be called concurrently, on the same handle too, except that
/// assigning to or destroying a handle races with any other use of that same handle.
class CancellationTokenSource {
 public:
  /// A fresh, un-cancelled source using TimeProvider::System(). May throw std::bad_alloc.
  CancellationTokenSource() : state_(detail::state::create()) {}

  /// A source that cancels itself (reason errc::timed_out) after `delay`: same as constructing
  /// it and calling CancelAfter(delay). `delay <= 0` gives an already-cancelled source.
  explicit CancellationTokenSource(std::chrono::nanoseconds delay) : CancellationTokenSource() { CancelAfter(delay); }

  /// A fresh source whose CancelAfter() deadlines use `time` (e.g. a ManualTimeProvider,
  /// which must outlive the source).
  explicit CancellationTokenSource(TimeProvider& time) : CancellationTokenSource() { time.attach(state_); }

  /// As CancellationTokenSource(delay), on the clock of `time`.
  CancellationTokenSource(std::chrono::nanoseconds delay, TimeProvider& time) : CancellationTokenSource(time) {
    CancelAfter(delay);
  }

  CancellationTokenSource(const CancellationTokenSource& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) state_->add_source();
  }
  CancellationTokenSource(CancellationTokenSource&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  CancellationTokenSource& operator=(const CancellationTokenSource& other) noexcept {
    CancellationTokenSource(other).swap(*this);
    return *this;
  }
  CancellationTokenSource& operator=(CancellationTokenSource&& other) noexcept {
    CancellationTokenSource(std::move(other)).swap(*this);
    return *this;
  }
  /// Releases this handle. The last handle's destructor unregisters a linked source from its
  /// parents (and may block while a parent's cancellation is running its link on another
  /// thread, as Dispose() does) and disarms the deadline.
  ~CancellationTokenSource() {
    if (state_ != nullptr) state_->release_source();
  }
  void swap(CancellationTokenSource& other) noexcept { std::swap(state_, other.state_); }

  /// A token observing this source. Costs one atomic increment.
  CancellationToken Token() const noexcept {
    if (state_ == nullptr) return CancellationToken();
    state_->add_token_ref();
    return detail::access::adopt<CancellationToken>(state_);
  }

  /// True once cancelled. One atomic load.
  bool IsCancellationRequested() const noexcept { return state_ != nullptr && state_->is_cancelled(); }

  /// Cancel(std::errc::...) for the portable reasons, e.g. Cancel(std::errc::timed_out).
  bool Cancel(std::errc reason) { return Cancel(std::make_error_code(reason)); }

  /// Cancels: the token reads as cancelled with `reason` (errc::canceled if `reason` is empty),
  /// then every registered callback runs once, on this thread, newest first, before Cancel
  /// returns. Returns true iff this call made the transition; other calls (concurrent or
  /// later) return false at once without waiting for the callbacks. If callbacks throw, all of
  /// them still run and the first exception is rethrown at the end (the source stays
  /// cancelled). No lock is held while callbacks run; a callback may destroy this source.
  bool Cancel(std::error_code reason = errc::canceled) {
    detail::state* s = state_;  // a callback may destroy *this; request_cancel keeps s alive
    return s != nullptr && s->request_cancel(reason);
  }

  /// Arms (or re-arms: each source has one deadline) a cancellation with reason
  /// errc::timed_out after `delay`, measured on the source's TimeProvider. `delay <= 0` cancels
  /// at once on this thread, exactly like Cancel(errc::timed_out) (callbacks run here; their
  /// exceptions escape). `std::chrono::nanoseconds::max()` disarms. Does nothing once the
  /// source is cancelled. O(log n) in the number of armed deadlines; the first call in the
  /// process starts the timer thread. May throw std::bad_alloc (the heap grows) or
  /// std::system_error (the thread could not start); then nothing is armed. Cancel() disarms.
  void CancelAfter(std::chrono::nanoseconds delay) {
    detail::state* s = state_;
    if (s == nullptr || s->is_cancelled()) return;
    if (delay <= std::chrono::nanoseconds::zero()) {
      s->request_cancel(make_error_code(errc::timed_out));
      return;
    }
    detail::deadline_owner* const owner = s->timer().owner();
    if (delay == std::chrono::nanoseconds::max()) {
      if (owner != nullptr) (void)static_cast<TimeProvider*>(owner)->disarm(s);  // nothing armed otherwise
      return;
    }
    // The first CancelAfter of a source without a provider adopts System() inside arm_after,
    // under the same mutex acquisition.
    TimeProvider& time = owner != nullptr ? *static_cast<TimeProvider*>(owner) : TimeProvider::System();
    time.arm_after(s, delay);
  }

  /// The source's armed deadline, or the earliest one of its linked ancestors; empty if none.
  std::optional<std::chrono::steady_clock::time_point> Deadline() const noexcept;

  /// Makes a cancelled-free source reusable for an unrelated operation (pooling): succeeds only
  /// if the source is not cancelled and no CancelAfter deadline has fired. Then it disarms the
  /// deadline, drops every registration without running it (their Unregister() returns false;
  /// callables are destroyed here, on this thread) and returns true. Otherwise returns false
  /// and changes nothing. Tokens handed out earlier keep referring to this source. Links of a
  /// linked source to its parents are kept; links of linked children *to this source* are
  /// registrations like any other and are dropped (as in .NET).
  bool TryReset() noexcept { return state_ != nullptr && state_->try_reset(); }

  /// A source that is cancelled when any parent is (with that parent's reason) or when it is
  /// cancelled itself; cancelling it never touches the parents. None() parents are ignored; if
  /// a parent is already cancelled the new source starts cancelled. One allocation; the links
  /// cost O(parents) and are removed from the parents when the last handle of the new source is
  /// destroyed. May throw std::bad_alloc.
  template <
      class... Tokens,
      std::enable_if_t<std::conjunction<std::is_same<std::decay_t<Tokens>, CancellationToken>...>::value, int> = 0>
  static CancellationTokenSource CreateLinkedTokenSource(const Tokens&... parents) {
    CancellationTokenSource source(detail::state::create(sizeof...(Tokens)));
    (source.state_->link_to(detail::access::state_of(parents)), ...);
    return source;
  }

  /// As above, for parents given as any range of tokens (a vector, an array, a span ...).
  template <class Range, std::enable_if_t<detail::is_token_range<Range>::value, int> = 0>
  static CancellationTokenSource CreateLinkedTokenSource(const Range& parents) {
    const auto count = static_cast<std::size_t>(std::distance(std::begin(parents), std::end(parents)));
    CancellationTokenSource source(detail::state::create(count));
    for (const CancellationToken& parent : parents) source.state_->link_to(detail::access::state_of(parent));
    return source;
  }

  /// As above, for a braced list: CreateLinkedTokenSource({a, b, c}).
  static CancellationTokenSource CreateLinkedTokenSource(std::initializer_list<CancellationToken> parents) {
    CancellationTokenSource source(detail::state::create(parents.size()));
    for (const CancellationToken& parent : parents) source.state_->link_to(detail::access::state_of(parent));
    return source;
  }

 private:
  friend struct detail::access;
  explicit CancellationTokenSource(detail::state* adopted) noexcept : state_(adopted) {}

  detail::state* state_;
};

inline std::optional<std::chrono::steady_clock::time_point> CancellationTokenSource::Deadline() const noexcept {
  std::chrono::steady_clock::time_point due;
  if (state_ != nullptr && state_->earliest_deadline(due)) return due;
  return std::nullopt;
}

}  // namespace ctoken

#endif
