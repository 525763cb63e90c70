// ctoken — co_await support (C++20 coroutines), executor-agnostic.
//
//   std::error_code why = co_await ctoken::WhenCanceled(token);
//
// suspends the coroutine until `token` is cancelled and resumes it on the cancelling thread
// (inside Cancel(), like any callback), yielding the reason.
#ifndef CTOKEN_CORO_HPP
#define CTOKEN_CORO_HPP

#include <version>

#if !defined(__cpp_impl_coroutine) || !defined(__cpp_lib_coroutine)
#error "<ctoken/coro.hpp> needs C++20 coroutines; compile with -std=c++20"
#else

#include <atomic>
#include <coroutine>
#include <optional>
#include <system_error>
#include <utility>

#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

namespace ctoken {

/// The awaitable returned by WhenCanceled(). Awaiting it:
/// - completes at once with the reason if the token is already cancelled;
/// - completes at once with an empty error_code if the token can never be cancelled (None(),
///   or every source gone), rather than suspending forever;
/// - otherwise suspends; Cancel() resumes the coroutine on the cancelling thread, inside the
///   callback, and the co_await yields the reason. Resume your work on your own executor if
///   the cancelling thread is the wrong place for it (e.g. post to your event loop).
/// Destroying a coroutine suspended here is safe: the awaiter (in the coroutine frame) disposes
/// its registration, waiting if Cancel is resuming it on another thread at that very moment —
/// which means you destroyed a coroutine that is running: don't. If the token's sources all
/// disappear while suspended, nothing resumes the coroutine; destroy it. No allocation: the
/// registration lives in the coroutine frame (a CancellationCallback).
class CanceledAwaiter {
 public:
  explicit CanceledAwaiter(CancellationToken token) noexcept : token_(std::move(token)) {}
  CanceledAwaiter(const CanceledAwaiter&) = delete;
  CanceledAwaiter& operator=(const CanceledAwaiter&) = delete;
  // Movable only before it is awaited (so WhenCanceled can return it by value).
  CanceledAwaiter(CanceledAwaiter&& other) noexcept : token_(std::move(other.token_)) {}

  bool await_ready() const noexcept { return token_.IsCancellationRequested() || !token_.CanBeCanceled(); }

  // Registers the resumption. Returns false (do not suspend) if the token was cancelled
  // meanwhile: whichever of await_suspend and the callback comes second resumes.
  bool await_suspend(std::coroutine_handle<> continuation) {
    continuation_ = continuation;
    on_cancel_.emplace(token_, resumer{this});
    // The last source may have gone since await_ready(): then the callback was not stored and
    // never runs. Orphaning is final (nothing cancels the state afterwards), so "cannot be
    // cancelled and not cancelled" here means nobody will ever resume us: do not suspend.
    if (!token_.CanBeCanceled()) return false;
    // acq_rel: pairs with the exchange in resumer: the later of the two sees the earlier's writes.
    return !arrived_.exchange(true, std::memory_order_acq_rel);
  }

  std::error_code await_resume() const noexcept { return token_.Reason(); }

 private:
  struct resumer {
    CanceledAwaiter* self;
    void operator()() const noexcept {
      // acq_rel: see await_suspend. If await_suspend has not finished, it will not suspend.
      if (self->arrived_.exchange(true, std::memory_order_acq_rel)) self->continuation_.resume();
    }
  };

  CancellationToken token_;
  std::coroutine_handle<> continuation_;
  std::atomic<bool> arrived_{false};
  std::optional<CancellationCallback<resumer> > on_cancel_;
};

/// `co_await WhenCanceled(token)`: see CanceledAwaiter. Cheap: copies nothing but the token
/// (moved in); registers nothing until the awaiter is awaited.
inline CanceledAwaiter WhenCanceled(CancellationToken token) noexcept { return CanceledAwaiter(std::move(token)); }

/// Deprecated spelling of CanceledAwaiter (public names spell "Canceled", as .NET does); removed
/// in the next release.
using CancelledAwaiter [[deprecated("use ctoken::CanceledAwaiter")]] = CanceledAwaiter;

/// Deprecated spelling of WhenCanceled (public names spell "Canceled", as .NET does); removed in
/// the next release. Same behaviour and cost.
[[deprecated("use ctoken::WhenCanceled")]] inline CanceledAwaiter WhenCancelled(CancellationToken token) noexcept {
  return CanceledAwaiter(std::move(token));
}

}  // namespace ctoken

#endif
#endif
