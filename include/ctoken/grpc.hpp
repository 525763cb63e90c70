// ctoken — gRPC (grpc++ 1.51 or newer, callback API): a call made under a token, and a token for
// the call being served, so that cancellation and deadlines cross service boundaries. Opt-in:
// only users who include this header need grpc++; <ctoken/ctoken.hpp> never includes it.
//
//   // client side: cancelling `token` ends the call with CANCELLED, token.Deadline() bounds it
//   ctoken::GrpcClientContext call(token);
//   stub->async()->Work(&call.Context(), &request, &reply, on_done);
//
//   // server side (callback API): Token() fires when the client cancels, leaves, or the
//   // deadline passes; passing it to the next GrpcClientContext propagates both
//   class Work : public ctoken::GrpcCancellableReactor<grpc::ServerUnaryReactor> { ... };
//
// What gRPC guarantees and where it is best effort: docs/grpc.md.
#ifndef CTOKEN_GRPC_HPP
#define CTOKEN_GRPC_HPP

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <optional>
#include <system_error>

#include <ctoken/errc.hpp>
#include <ctoken/registration.hpp>
#include <ctoken/source.hpp>
#include <ctoken/token.hpp>

namespace ctoken {

namespace detail {

// Deadlines further away than this are treated as "none": gRPC reports an infinite deadline as
// system_clock::time_point::max(), and a far one would overflow the clock conversions below.
inline constexpr std::chrono::hours grpc_far_deadline{24 * 365 * 100};

// A steady_clock deadline (ctoken's clock) as a system_clock one (gRPC's C++ clock), or nothing
// when it is too far away to matter.
inline std::optional<std::chrono::system_clock::time_point> grpc_to_system(
    std::chrono::steady_clock::time_point deadline) noexcept {
  const auto remaining = deadline - std::chrono::steady_clock::now();
  if (remaining >= grpc_far_deadline) return std::nullopt;
  return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(remaining);
}

// How long before a system_clock deadline from now, or nothing for "no deadline".
inline std::optional<std::chrono::nanoseconds> grpc_remaining(std::chrono::system_clock::time_point deadline) noexcept {
  const auto now = std::chrono::system_clock::now();
  if (deadline >= now + grpc_far_deadline) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
}

// Client side: within this much of the deadline it set, a binding leaves a timed_out token to
// gRPC's own deadline. The two timers are the same instant on different clocks (converted
// through system_clock), a few microseconds apart.
inline constexpr std::chrono::milliseconds grpc_deadline_slack{5};

// Server side: a cancellation that arrives within this much of the call's deadline counts as
// the deadline's (errc::timed_out). A deadline that expires at the client reaches the server as
// a stream reset; the server's own deadline is later than the client's by the time the request
// took to arrive, and the reset's trip is not exactly as long: on a loaded machine or a
// network the two differ by milliseconds.
inline constexpr std::chrono::milliseconds grpc_deadline_window{50};

}  // namespace detail

/// The gRPC status a handler answers with when it stopped because its token was cancelled with
/// `reason`: DEADLINE_EXCEEDED for errc::timed_out, UNAVAILABLE for errc::shutdown (the client
/// may retry elsewhere), CANCELLED for everything else (the client cancelled or left, or a
/// reason of your own). The message names the reason. Thread-safe; allocates the message.
inline ::grpc::Status GrpcStatusFor(std::error_code reason) {
  ::grpc::StatusCode code = ::grpc::StatusCode::CANCELLED;
  if (reason == errc::timed_out) code = ::grpc::StatusCode::DEADLINE_EXCEEDED;
  if (reason == errc::shutdown) code = ::grpc::StatusCode::UNAVAILABLE;
  return ::grpc::Status(code, reason ? reason.message() : "cancelled");
}

/// Binds a grpc::ClientContext to a CancellationToken, for one call. Client side.
///
/// The constructor (call it before the call starts, as gRPC reads the deadline only then):
/// - sets the context's deadline to token.Deadline() when the token has one and it is earlier
///   than the context's own (converted from steady_clock to gRPC's system_clock; a token on a
///   ManualTimeProvider has deadlines on that clock, do not bind it);
/// - registers a callback that calls context.TryCancel(): the call ends with CANCELLED at once,
///   in whatever stage it is (unary and streaming, sync, callback and async API). A token that
///   is already cancelled cancels the context before the constructor returns; gRPC then cancels
///   the call as soon as it starts. Exception: when the reason is errc::timed_out and the
///   deadline this object set has (within 5 ms) passed, it leaves the call to gRPC's own
///   deadline, so the call ends with DEADLINE_EXCEEDED as it would without ctoken.
///
/// The callback runs on the cancelling thread, inside Cancel(); TryCancel() takes a short
/// gRPC lock and does not block on the network. gRPC allows TryCancel() at any time, also after
/// the call finished, from any thread.
///
/// Lifetime: the context must outlive this object, which must outlive the call. Destroy this
/// object first (declare it after the context, or use GrpcClientContext, which does): the
/// destructor disposes the registration, which waits for a TryCancel() running on another
/// thread, so the context is never touched after it is destroyed. Not copyable, not movable
/// (the registration refers to the context). Costs one registration (no allocation in the
/// steady state) and, with a deadline, two clock reads.
class GrpcClientCancellation {
 public:
  /// Applies token.Deadline() to `context` if earlier and registers the TryCancel() callback
  /// (which runs before the constructor returns if the token is already cancelled). Call it
  /// before the call starts. May throw std::bad_alloc (Register), or what the callback run
  /// inline throws.
  GrpcClientCancellation(::grpc::ClientContext& context, const CancellationToken& token) : context_(&context) {
    if (const auto deadline = token.Deadline()) {
      if (const auto system = detail::grpc_to_system(*deadline)) {
        if (*system < context.deadline()) {
          context.set_deadline(*system);
          applied_deadline_ = system;
        }
      }
    }
    registration_ = token.Register([this](std::error_code reason) { on_cancel(reason); });
  }

  GrpcClientCancellation(const GrpcClientCancellation&) = delete;
  GrpcClientCancellation& operator=(const GrpcClientCancellation&) = delete;

  /// Disposes the registration: waits for a TryCancel() running on another thread.
  ~GrpcClientCancellation() { registration_.Dispose(); }

  /// The deadline this object gave the context (system_clock), if the token's was earlier.
  /// Thread-safe (written only by the constructor); no cost.
  std::optional<std::chrono::system_clock::time_point> AppliedDeadline() const noexcept { return applied_deadline_; }

  /// Stops following the token before the call ends (e.g. to reuse the token elsewhere): from
  /// here on, cancelling it no longer cancels the call. Waits for a TryCancel() running on
  /// another thread; returns at once from inside the token's own callback. Idempotent.
  void Dispose() noexcept { registration_.Dispose(); }

 private:
  void on_cancel(std::error_code reason) {
    if (reason == errc::timed_out && applied_deadline_ &&
        *applied_deadline_ <= std::chrono::system_clock::now() + detail::grpc_deadline_slack) {
      return;  // gRPC's own deadline ends the call, with the status the caller expects
    }
    context_->TryCancel();
  }

  ::grpc::ClientContext* context_;
  std::optional<std::chrono::system_clock::time_point> applied_deadline_;  // set before Register
  CancellationTokenRegistration registration_;                             // last: disposed first
};

/// A grpc::ClientContext already bound to a token (GrpcClientCancellation), with the
/// destruction order right by construction. Pass Context() to the stub; keep the object alive
/// until the call is done (for the callback API: until the completion callback has been called;
/// it may destroy this object). One context per call, as gRPC requires. Set metadata,
/// compression and the like on Context() before starting the call; a deadline set on Context()
/// afterwards must not be later than the token's. Not copyable, not movable.
class GrpcClientContext {
 public:
  /// Binds a fresh context to `token`; see GrpcClientCancellation for what runs when.
  explicit GrpcClientContext(const CancellationToken& token) : cancellation_(context_, token) {}

  /// The context to pass to the stub.
  ::grpc::ClientContext& Context() noexcept { return context_; }

  /// See GrpcClientCancellation::AppliedDeadline().
  std::optional<std::chrono::system_clock::time_point> AppliedDeadline() const noexcept {
    return cancellation_.AppliedDeadline();
  }

 private:
  ::grpc::ClientContext context_;
  GrpcClientCancellation cancellation_;  // after context_: destroyed first
};

/// A CancellationTokenSource for one call being served. Server side; the building block of
/// GrpcCancellableReactor, usable directly with the synchronous API.
///
/// The constructor reads the call's deadline (context.deadline()) and arms the source to cancel
/// with errc::timed_out when it passes (CancelAfter), so Token().Deadline() is the call's
/// deadline (on steady_clock, converted from gRPC's system_clock: within a few microseconds)
/// and a GrpcClientContext made from Token() passes the remaining time on. With
/// `server_stopping` (a token your server cancels with errc::shutdown before Server::Shutdown()),
/// the source is linked to it, so every call stops at once with reason shutdown instead of
/// running until Shutdown()'s own deadline.
///
/// Cancellation by the client reaches the source only when somebody reports it:
/// - callback API: NotifyCancelled() from the reactor's OnCancel() (GrpcCancellableReactor does
///   it). gRPC calls OnCancel() when the client cancelled (RST_STREAM), when the connection
///   dropped, when the deadline passed, or when the handler called context.TryCancel(). gRPC
///   does not tell which, so the reason is errc::timed_out if the deadline has passed or is less
///   than 50 ms away (the client's deadline arrives as a stream reset shortly before the
///   server's own, which is later by the request's transit time), else errc::canceled: a
///   connection drop cannot be told from a cancel (both mean "the client is gone");
/// - synchronous API: gRPC offers only polling (ServerContext::IsCancelled()). Call Poll()
///   between steps of the handler: it cancels the source if gRPC says the call is cancelled.
///   Deadline and shutdown need no polling: they cancel the source by themselves;
/// - asynchronous (completion-queue) API: request ServerContext::AsyncNotifyWhenDone() before
///   the call starts, and call NotifyCancelled() when its tag arrives with IsCancelled() true.
///
/// Thread-safety: every member may be called from any thread. Callbacks registered on Token()
/// run on the thread that cancels: a gRPC callback thread (OnCancel), ctoken's timer thread
/// (deadline) or the thread that cancelled `server_stopping`. Keep them short and non-blocking
/// (e.g. TryCancel an outgoing call, Finish the reactor, wake a worker).
/// Lifetime: the context must outlive this object. Destroying it while a callback runs on
/// another thread is safe for the source itself; registrations you made on Token() must be
/// disposed before what they touch dies (their destructor waits for a running callback).
/// Cost: one source (a linked one when `server_stopping` is given) and, when the call has a
/// deadline, one armed CancelAfter.
class GrpcServerCallCancellation {
 public:
  /// Reads the call's deadline from `context`, creates the source (linked to `server_stopping`
  /// when it can be cancelled: already cancelled means a token cancelled from the start) and
  /// arms the deadline. Call it in the method handler. May throw std::bad_alloc, or
  /// std::system_error if ctoken's timer thread cannot start (the first deadline of the process).
  explicit GrpcServerCallCancellation(const ::grpc::ServerContextBase& context,
                                      const CancellationToken& server_stopping = CancellationToken::None())
      : context_(&context),
        deadline_(context.deadline()),
        source_(server_stopping.CanBeCanceled() ? CancellationTokenSource::CreateLinkedTokenSource(server_stopping)
                                                : CancellationTokenSource()) {
    if (const auto remaining = detail::grpc_remaining(deadline_)) {
      source_.CancelAfter(*remaining > std::chrono::nanoseconds::zero() ? *remaining
                                                                        : std::chrono::nanoseconds::zero());
    }
  }

  GrpcServerCallCancellation(const GrpcServerCallCancellation&) = delete;
  GrpcServerCallCancellation& operator=(const GrpcServerCallCancellation&) = delete;

  /// The call's token: cancelled by the client (reported through NotifyCancelled() or Poll()),
  /// the deadline (errc::timed_out) or `server_stopping` (its reason). No cost beyond a copy.
  CancellationToken Token() const noexcept { return source_.Token(); }

  /// The source, e.g. to cancel the call's work for a reason of your own. The handler should
  /// then end the call itself (Finish with GrpcStatusFor(reason)).
  CancellationTokenSource& Source() noexcept { return source_; }

  /// Reports gRPC's cancellation of the call (from OnCancel()): cancels the source with
  /// errc::timed_out if the deadline has passed or is less than 50 ms away, errc::canceled
  /// otherwise. Runs the token's
  /// callbacks on this thread before it returns; a no-op if the source is already cancelled.
  /// Returns true iff this call cancelled the source.
  bool NotifyCancelled() { return source_.Cancel(reason_now()); }

  /// Synchronous API: asks gRPC whether the call is cancelled (ServerContext::IsCancelled(),
  /// safe from any thread for the sync and callback APIs, not for the async API before its
  /// AsyncNotifyWhenDone tag arrived) and if so reports it as NotifyCancelled() does. Returns
  /// Token().IsCancellationRequested() afterwards. Costs a gRPC lock; call it between steps.
  bool Poll() {
    if (!source_.IsCancellationRequested() && context_->IsCancelled()) (void)NotifyCancelled();
    return source_.IsCancellationRequested();
  }

  /// The call's deadline as gRPC reports it (system_clock::time_point::max() for none).
  std::chrono::system_clock::time_point GrpcDeadline() const noexcept { return deadline_; }

 private:
  std::error_code reason_now() const {
    const auto remaining = detail::grpc_remaining(deadline_);
    if (remaining && *remaining <= detail::grpc_deadline_window) return errc::timed_out;
    return errc::canceled;
  }

  const ::grpc::ServerContextBase* context_;
  std::chrono::system_clock::time_point deadline_;
  CancellationTokenSource source_;
};

/// A gRPC callback-API server reactor whose Token() is the call's cancellation: derive your
/// reactor from GrpcCancellableReactor<grpc::ServerUnaryReactor> (or ServerReadReactor<Req>,
/// ServerWriteReactor<Resp>, ServerBidiReactor<Req, Resp>) instead of the gRPC base.
///
/// OnCancel() cancels the token (see GrpcServerCallCancellation::NotifyCancelled for the
/// reason); if you override OnCancel(), call this class's OnCancel() in it. The token's
/// callbacks then run inside OnCancel(), on gRPC's thread: an exception from one would leave
/// through gRPC's code, which does not expect it, so catch inside them. gRPC calls
/// OnCancel() at most once, never before the method handler returned the reactor, and always
/// before OnDone(). The deadline and `server_stopping` cancel the token by themselves, on their
/// own threads, possibly while OnDone() runs: that is why registrations on Token() must be
/// members of your reactor (or of something it owns), declared in the derived class: their
/// destructors run before this base is destroyed and wait for a callback running elsewhere.
/// Construct it in the method handler, with the handler's context; `delete this` in OnDone()
/// as usual. Thread-safety and cost: as GrpcServerCallCancellation.
template <class Reactor>
class GrpcCancellableReactor : public Reactor {
 public:
  /// `context` is the method handler's; `server_stopping` as for GrpcServerCallCancellation.
  explicit GrpcCancellableReactor(const ::grpc::CallbackServerContext* context,
                                  const CancellationToken& server_stopping = CancellationToken::None())
      : call_(*context, server_stopping) {}

  /// The call's token: pass it to the work and to the next hop's GrpcClientContext.
  CancellationToken Token() const noexcept { return call_.Token(); }

  /// The call's cancellation state (source, gRPC deadline).
  GrpcServerCallCancellation& Cancellation() noexcept { return call_; }

  /// Cancels Token(); see the class comment.
  void OnCancel() override { (void)call_.NotifyCancelled(); }

 private:
  GrpcServerCallCancellation call_;
};

}  // namespace ctoken

#endif
