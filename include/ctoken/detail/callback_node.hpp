// ctoken — the nodes a state keeps in its list of callbacks, their type erasure, and the list.
//
// Three kinds of node share one header (callback_node):
//   * inplace — the node inside a CancellationCallback<F> (owned by the caller);
//   * heap    — a pooled node behind a CancellationTokenRegistration, holding the callable in
//               place when it fits in kInlineCallableSize bytes (see node_pool.hpp);
//   * link    — one per parent of a linked source, living in the child's state allocation.
// Every field of every node is guarded by the lock of the state whose list it is in.
#ifndef CTOKEN_DETAIL_CALLBACK_NODE_HPP
#define CTOKEN_DETAIL_CALLBACK_NODE_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

#include <ctoken/detail/config.hpp>

namespace ctoken {
namespace detail {

class state;

enum class node_status : std::uint8_t {
  free,      // heap node in the pool
  listed,    // in the state's list, waiting for Cancel
  running,   // popped by Cancel, its callback is executing on the notifying thread
  done,      // its callback has returned
  unlinked,  // removed without running (Unregister, TryReset, teardown)
};

enum class node_kind : std::uint8_t { inplace, heap, link };

// The part every registration shares. All fields are guarded by the owning state's lock.
struct callback_node {
  callback_node* next = nullptr;
  callback_node** prev = nullptr;  // the pointer that points at this node: O(1) unlink
  void (*invoke)(callback_node*, const std::error_code&) = nullptr;
  // While running: the canceller's "removed during its own callback" flag. Disposing the node
  // from inside its callback sets it, telling the canceller not to touch the node afterwards.
  bool* removed_during_run = nullptr;
  node_status status = node_status::free;
  node_kind kind = node_kind::inplace;
};

// Bytes of callable a pooled Register() node stores without a second allocation.
constexpr std::size_t kInlineCallableSize = 6 * sizeof(void*);

struct heap_node : callback_node {
  // 0 while pooled; otherwise the id handed to the one registration handle that owns the node.
  // Written under the lock; read without it only by CancellationTokenRegistration::Token().
  std::atomic<std::uint64_t> id{0};
  state* owner = nullptr;
  void (*destroy)(heap_node*) noexcept = nullptr;  // null when the callable is trivially destructible
  heap_node* pool_next = nullptr;
  alignas(std::max_align_t) unsigned char storage[kInlineCallableSize];
};

// One per parent of a linked source; lives in the child's state allocation.
struct link_node : callback_node {
  state* parent = nullptr;  // kept alive by this node (an owned node of the parent) until delisted
  state* child = nullptr;
};

// Calls f() or f(reason), whichever F supports (the reason form is preferred).
template <class F>
void call_with_reason(F& f, const std::error_code& reason) {
  if constexpr (std::is_invocable_v<F&, const std::error_code&>) {
    f(reason);
  } else {
    static_assert(std::is_invocable_v<F&>, "a cancellation callback must be invocable as f() or f(std::error_code)");
    f();
  }
}

// Type-erased storage of a Register() callable inside a heap_node.
template <class Fn>
struct stored_callable {
  static constexpr bool fits = sizeof(Fn) <= kInlineCallableSize && alignof(Fn) <= alignof(std::max_align_t);
  static constexpr bool trivially_destructible = std::is_trivially_destructible<Fn>::value;
  // Constructing Fn from a G and destroying it runs no user code, so both may happen under the lock.
  template <class G>
  static constexpr bool trivial = fits&& trivially_destructible&& std::is_trivially_constructible<Fn, G>::value;

  static Fn& get(heap_node* n) noexcept {
    if constexpr (fits) {
      return *std::launder(reinterpret_cast<Fn*>(n->storage));
    } else {
      Fn* p;
      std::memcpy(&p, n->storage, sizeof p);
      return *p;
    }
  }
  template <class G>
  static void construct(heap_node* n, G&& g) {
    if constexpr (fits) {
      ::new (static_cast<void*>(n->storage)) Fn(std::forward<G>(g));
    } else {
      Fn* p = new Fn(std::forward<G>(g));
      std::memcpy(n->storage, &p, sizeof p);
    }
    n->invoke = &invoke;
    n->destroy = trivially_destructible && fits ? nullptr : &destroy;
  }
  static void invoke(callback_node* n, const std::error_code& reason) {
    call_with_reason(get(static_cast<heap_node*>(n)), reason);
  }
  static void destroy(heap_node* n) noexcept {
    if constexpr (fits) {
      get(n).~Fn();
    } else {
      delete &get(n);
    }
  }
};

// The intrusive, doubly-linked list of a state's waiting callbacks, newest first (Cancel pops
// from the head, so the last registered callback runs first). O(1) push and unlink. Guarded by
// the owning state's lock, like the nodes.
class callback_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  callback_node* front() const noexcept { return head_; }

  void push_front(callback_node* n) noexcept {
    CTOKEN_ASSERT(n->prev == nullptr && n->next == nullptr);  // not in any list
    CTOKEN_ASSERT(n->status != node_status::listed);
    n->next = head_;
    n->prev = &head_;
    if (head_ != nullptr) head_->prev = &n->next;
    head_ = n;
    n->status = node_status::listed;
  }

  static void unlink(callback_node* n) noexcept {
    CTOKEN_ASSERT(n->prev != nullptr && *n->prev == n);  // in a list, and where it says it is
    *n->prev = n->next;
    if (n->next != nullptr) n->next->prev = n->prev;
    n->next = nullptr;
    n->prev = nullptr;
  }

  // Empties the list at once and returns what it held (nodes still chained through `next`).
  callback_node* take_all() noexcept { return std::exchange(head_, nullptr); }

 private:
  callback_node* head_ = nullptr;
};

}  // namespace detail
}  // namespace ctoken

#endif
