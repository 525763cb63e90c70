// ctoken — CancellationTokenRegistration (a handle to a registered callback) and
// CancellationCallback<F> (the callback stored in place, without allocating).
#ifndef CTOKEN_REGISTRATION_HPP
#define CTOKEN_REGISTRATION_HPP

#include <ctoken/token.hpp>

#include <atomic>
#include <cstdint>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ctoken/detail/access.hpp>
#include <ctoken/detail/state.hpp>

namespace ctoken {

/// The move-only RAII handle that Register() returns. Destroying it (or Dispose()) removes the
/// callback; see Dispose() for what that guarantees.
///
/// Two words: the node and its 64-bit id; the node's id changes whenever the
/// node is recycled, so a stale handle never touches another registration. Dispose(),
/// Unregister() and Token() may be called concurrently, on the same handle too; moving into or
/// destroying a handle while another thread uses it is a data race. A handle keeps the source's
/// shared state alive (not the source) until it is destroyed or assigned to.
class CancellationTokenRegistration {
 public:
  /// An empty registration: Dispose() does nothing, Unregister() is false, Token() is None().
  CancellationTokenRegistration() noexcept = default;

  CancellationTokenRegistration(CancellationTokenRegistration&& other) noexcept
      : node_(std::exchange(other.node_, nullptr)), id_(other.id_) {}
  CancellationTokenRegistration& operator=(CancellationTokenRegistration&& other) noexcept {
    if (this != &other) {
      release();
      node_ = std::exchange(other.node_, nullptr);
      id_ = other.id_;
    }
    return *this;
  }
  CancellationTokenRegistration(const CancellationTokenRegistration&) = delete;
  CancellationTokenRegistration& operator=(const CancellationTokenRegistration&) = delete;

  /// Same as Dispose(), then lets go of the shared state.
  ~CancellationTokenRegistration() { release(); }

  /// Unregisters the callback. Before Cancel it guarantees the callback never runs; after the
  /// callback finished it is a no-op; while the callback runs on another thread it blocks until
  /// the callback has returned (without spinning); from inside the callback itself (on the
  /// cancelling thread) it returns at once. Idempotent. The callable is destroyed here, or by
  /// the cancelling thread right after it returns when disposed from inside.
  void Dispose() noexcept {
    if (node_ != nullptr) node_->owner->dispose(node_, id_);
  }

  /// Unregisters without waiting: true iff the callback had not started and now never runs.
  /// False when it ran, is running, was dropped by TryReset, or the handle is empty. The handle
  /// stays live: a later Dispose() still waits for a callback running on another thread.
  bool Unregister() noexcept { return node_ != nullptr && node_->owner->unregister(node_, id_); }

  /// The token this callback was registered with; None() for an empty or disposed handle.
  CancellationToken Token() const noexcept {
    // relaxed: a snapshot; the handle's reference keeps the node's memory alive.
    if (node_ == nullptr || node_->id.load(std::memory_order_relaxed) != id_) return CancellationToken();
    node_->owner->add_token_ref();
    return detail::access::adopt<CancellationToken>(node_->owner);
  }

 private:
  friend class CancellationToken;
  CancellationTokenRegistration(detail::heap_node* node, std::uint64_t id) noexcept : node_(node), id_(id) {}

  void release() noexcept {
    if (node_ == nullptr) return;
    detail::state* owner = node_->owner;
    owner->dispose(node_, id_);
    node_ = nullptr;
    owner->release_ref();
  }

  detail::heap_node* node_ = nullptr;
  std::uint64_t id_ = 0;
};

template <class F>
CancellationTokenRegistration CancellationToken::Register(F&& callback) const {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&, const std::error_code&> || std::is_invocable_v<Fn&>,
                "Register: the callback must be invocable as f() or f(std::error_code)");
  if (state_ == nullptr) return CancellationTokenRegistration();
  const detail::state::handle_ref h = state_->register_callable<Fn>(std::forward<F>(callback));
  return CancellationTokenRegistration(h.node, h.id);
}

/// A callback registered for as long as this object lives, stored inside it: never allocates
/// (the source's state already exists), like std::stop_callback. Neither copyable nor movable.
///
/// The constructor registers `callback` (invocable as f() or f(std::error_code)); if the token
/// is already cancelled the callback runs before the constructor returns, on this thread, and
/// an exception from it escapes from the constructor. The destructor follows the rules of
/// CancellationTokenRegistration::Dispose(): it may block while the callback runs on another
/// thread, and returns at once when run from inside the callback.
template <class F>
class CancellationCallback {
  static_assert(std::is_invocable_v<F&, const std::error_code&> || std::is_invocable_v<F&>,
                "CancellationCallback: the callback must be invocable as f() or f(std::error_code)");

 public:
  using callback_type = F;

  template <class G, std::enable_if_t<std::is_constructible<F, G>::value, int> = 0>
  CancellationCallback(const CancellationToken& token, G&& callback) noexcept(
      std::is_nothrow_constructible<F, G>::value&& noexcept(detail::call_with_reason(std::declval<F&>(),
                                                                                     std::error_code())))
      : node_(std::forward<G>(callback)) {
    detail::state* s = detail::access::state_of(token);
    if (s == nullptr) return;
    if (s->is_cancelled()) {
      const std::error_code why = s->reason();
      detail::call_with_reason(node_.callback, why);
      return;
    }
    // `token` keeps the state alive during the call; once listed, the node itself does (the
    // state counts its enlisted in-place nodes), so no reference is taken here.
    switch (s->enlist(&node_)) {
      case detail::enlist_result::listed:
        state_ = s;
        return;
      case detail::enlist_result::cancelled: {
        const std::error_code why = s->reason();  // a copy: the callback may end the state's life
        detail::call_with_reason(node_.callback, why);
        return;
      }
      case detail::enlist_result::orphaned:
        return;
    }
  }

  ~CancellationCallback() {
    if (state_ != nullptr) state_->delist(&node_);  // may destroy the state: the node's hold ends
  }

  CancellationCallback(const CancellationCallback&) = delete;
  CancellationCallback& operator=(const CancellationCallback&) = delete;

 private:
  struct node_type : detail::callback_node {
    template <class G>
    explicit node_type(G&& g) : callback(std::forward<G>(g)) {
      invoke = &run;
    }
    static void run(detail::callback_node* n, const std::error_code& reason) {
      detail::call_with_reason(static_cast<node_type*>(n)->callback, reason);
    }
    F callback;
  };

  node_type node_;
  detail::state* state_ = nullptr;
};

template <class F>
CancellationCallback(CancellationToken, F) -> CancellationCallback<F>;

}  // namespace ctoken

#endif
