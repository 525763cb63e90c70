// ctoken — cancelling Asio asynchronous operations with a CancellationToken (standalone Asio
// 1.19 or newer: per-operation cancellation slots). Only users who include this header need
// Asio; define CTOKEN_ASIO_BOOST to use Boost.Asio (namespace boost::asio) instead.
//
//   ctoken::AsioCancellation cancel(token, socket.get_executor());
//   asio::async_read(socket, buffer, cancel.Bind([](std::error_code ec, std::size_t n) { ... }));
//   // token cancelled → the read completes with asio::error::operation_aborted
#ifndef CTOKEN_ASIO_HPP
#define CTOKEN_ASIO_HPP

#if defined(CTOKEN_ASIO_BOOST)
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>
namespace ctoken {
namespace asio_ns = ::boost::asio;
}
#else
#include <asio/associated_executor.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/post.hpp>
namespace ctoken {
namespace asio_ns = ::asio;
}
#endif

#include <memory>
#include <utility>

#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

namespace ctoken {

/// Connects a CancellationToken to the cancellation slot of Asio operations.
///
/// Bind() wraps a completion token (a handler, asio::use_future, asio::use_awaitable,
/// asio::deferred ...) so that the operation it starts is cancelled when `token` is: the
/// operation completes with asio::error::operation_aborted. The cancellation type is
/// asio::cancellation_type::terminal by default (the operation is abandoned; the I/O object
/// may be left in an unspecified state, so close it), or `partial` / `total` if the operation
/// supports them.
///
/// Asio cancellation signals are not thread-safe, so the token's callback does not emit the
/// signal itself: it posts the emission to `executor`, which must be the executor the
/// operation runs on (its strand, if it has one). Consequently the operation is cancelled
/// shortly after Cancel() returns, not during it.
///
/// One object serves one outstanding operation at a time (Asio's rule for a slot); it may be
/// reused for the next operation after the previous one completed. Keep it alive until the
/// operation's handler has run. Call Bind() and start the operation on the executor's thread
/// (or before the executor runs), as Asio requires for anything that touches a slot. If the
/// token is already cancelled when Bind() is called, the operation is cancelled as soon as the
/// executor gets to the posted emission.
/// The destructor unregisters from the token (waiting for a callback running on another thread).
/// One allocation (shared with posted emissions, which may outlive this object).
template <class Executor>
class AsioCancellation {
 public:
  AsioCancellation(const CancellationToken& token, const Executor& executor,
                   asio_ns::cancellation_type type = asio_ns::cancellation_type::terminal)
      : shared_(std::make_shared<shared>(token, executor, type)) {
    registration_ = token.Register(poster{shared_});
  }

  AsioCancellation(const AsioCancellation&) = delete;
  AsioCancellation& operator=(const AsioCancellation&) = delete;

  /// The slot to pass to asio::bind_cancellation_slot yourself.
  asio_ns::cancellation_slot Slot() noexcept { return shared_->signal.slot(); }

  /// `completion_token` with this object's slot bound to it.
  template <class CompletionToken>
  auto Bind(CompletionToken&& completion_token) {
    // Cancelled before this operation started: the emission posted now runs after the
    // operation has been initiated (both happen on the executor's thread, as Asio requires).
    if (shared_->token.IsCancellationRequested()) post_emit(shared_);
    return asio_ns::bind_cancellation_slot(shared_->signal.slot(), std::forward<CompletionToken>(completion_token));
  }

 private:
  struct shared {
    shared(const CancellationToken& t, const Executor& e, asio_ns::cancellation_type c)
        : token(t), executor(e), type(c) {}
    CancellationToken token;
    Executor executor;
    asio_ns::cancellation_type type;
    asio_ns::cancellation_signal signal;  // touched only on `executor`
  };

  static void post_emit(const std::shared_ptr<shared>& s) {
    asio_ns::post(s->executor, [s] { s->signal.emit(s->type); });
  }

  struct poster {
    std::shared_ptr<shared> s;
    void operator()() const { post_emit(s); }
  };

  std::shared_ptr<shared> shared_;
  CancellationTokenRegistration registration_;
};

template <class Executor>
AsioCancellation(const CancellationToken&, const Executor&) -> AsioCancellation<Executor>;
template <class Executor>
AsioCancellation(const CancellationToken&, const Executor&, asio_ns::cancellation_type) -> AsioCancellation<Executor>;

}  // namespace ctoken

#endif
