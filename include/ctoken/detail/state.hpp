// ctoken — the shared state behind a CancellationTokenSource and its tokens.
//
// One heap object per source, allocated when the source is created. It holds:
//   * flags_   — one 32-bit word: kCancelled and the lock bit that guards everything marked
//                "guarded" below. Every write to flags_ happens while holding the lock, so the
//                holder may unlock with a plain store (one atomic RMW per lock/unlock pair).
//   * counts_  — one 64-bit word: source handles in the high half, every other reference
//                (tokens, registration handles, the timer while it fires, the last source's
//                teardown, kNodesRef and kCancellerRef below) in the low half. A token copy
//                is one fetch_add. The state dies at 0.
//   * owned_nodes_ — (guarded) how many caller-owned nodes (CancellationCallback objects and
//                the link nodes of linked children) are enlisted and not yet delisted. Such a
//                node takes no reference of its own: while a source handle exists the state
//                is alive anyway, and when the last one goes, on_last_source() takes a single
//                reference on behalf of all of them (kNodesRef), which the delist that brings
//                the count to 0 drops. Register + unregister in place is then two lock round
//                trips and no reference-count traffic.
//   * an intrusive doubly-linked list of callback nodes (O(1) push and unlink), newest first,
//     so Cancel() pops from the head and runs the last registered callback first.
//   * a per-state pool of heap nodes for Register(), so steady-state Register/Dispose does not
//     allocate. A registration handle names its node by (pointer, 64-bit id); the id changes
//     whenever the node is recycled, so a stale handle can never act on somebody else's node.
//   * the trailing link nodes of a linked source (one per parent), allocated with the state.
//
// The flags word also carries kOrphaned: set, under the lock, when the last source handle goes
// away un-cancelled; from then on nothing can cancel the state. kHadOwned (sticky) says a
// caller-owned node was ever enlisted, so the last source may not skip the teardown; kNodesRef
// says the state holds the reference described under owned_nodes_. kNotifying is set while
// Cancel() runs the callbacks (it takes no reference of its own); if the last source goes
// meanwhile, on_last_source() takes one for it and sets kCancellerRef.
//
// No lock is held while user code runs: callbacks, callable constructors and destructors
// all run outside the lock.
#ifndef CTOKEN_DETAIL_STATE_HPP
#define CTOKEN_DETAIL_STATE_HPP

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <ctoken/detail/config.hpp>
#include <ctoken/detail/waiter.hpp>
#include <ctoken/errc.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ctoken {
namespace detail {

class state;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

enum class node_status : std::uint8_t {
  free,      // heap node in the pool
  listed,    // in the state's list, waiting for Cancel
  running,   // popped by Cancel, its callback is executing on notifying_thread_
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

// Implemented by a time provider that has armed this state's deadline (see time.hpp).
class deadline_owner {
 public:
  // Removes the state's deadline. Returns false if it had already fired. noexcept, never
  // blocks on user code.
  virtual bool disarm(state* s) noexcept = 0;
  // If the state's deadline is armed, stores it in `due` and returns true.
  virtual bool armed_deadline(const state* s, std::chrono::steady_clock::time_point& due) const noexcept = 0;
  // The last source handle is gone: drop the deadline and every reference to the state.
  virtual void forget(state* s) noexcept = 0;

 protected:
  virtual ~deadline_owner() = default;
};

// Outcome of putting a node into a state's list.
enum class enlist_result { listed, cancelled, orphaned };

class state {
 public:
  static constexpr std::uint32_t kCancelled = 1u;
  static constexpr std::uint32_t kLocked = 2u;
  static constexpr std::uint32_t kOrphaned = 4u;       // last source gone un-cancelled (set under the lock)
  static constexpr std::uint32_t kHadOwned = 8u;       // a caller-owned node was enlisted once (sticky)
  static constexpr std::uint32_t kNodesRef = 16u;      // holding one reference for owned_nodes_ (see top)
  static constexpr std::uint32_t kNotifying = 32u;     // request_cancel is running the callbacks
  static constexpr std::uint32_t kCancellerRef = 64u;  // on_last_source took a reference for it
  static constexpr std::uint64_t kRef = 1u;
  static constexpr std::uint64_t kSource = std::uint64_t{1} << 32;

  // ---- creation and lifetime ------------------------------------------------------------

  // A fresh state with one source reference and room for `links` parents. May throw bad_alloc.
  static state* create(std::size_t links = 0) {
    const std::size_t bytes = sizeof(state) + links * sizeof(link_node);
    void* raw = ::operator new(bytes);
    return ::new (raw) state(links);
  }

  // relaxed: the caller already holds a reference, so the state cannot die meanwhile, and
  // taking a reference publishes nothing.
  void add_ref() noexcept { counts_.fetch_add(kRef, std::memory_order_relaxed); }

  void release_ref() noexcept {
    // acq_rel: release publishes this thread's writes to whoever destroys the state; acquire
    // (on the final decrement) makes every other thread's writes visible before destruction.
    const std::uint64_t before = counts_.fetch_sub(kRef, std::memory_order_acq_rel);
    if (CTOKEN_UNLIKELY(before == kRef)) destroy(this);
  }

  void add_source() noexcept {
    // relaxed: as add_ref; the caller holds a source reference.
    const std::uint64_t before = counts_.fetch_add(kSource, std::memory_order_relaxed);
    if (CTOKEN_UNLIKELY((before >> 32) == 0xffffffffu)) fatal("too many CancellationTokenSource handles");
  }

  void add_token_ref() noexcept {
    const std::uint64_t before = counts_.fetch_add(kRef, std::memory_order_relaxed);  // relaxed: see add_ref
    if (CTOKEN_UNLIKELY((before & 0xffffffffu) == 0xffffffffu)) fatal("too many references to one source");
  }

  // Drops one source reference. The last one turns into an ordinary reference for the time of
  // the teardown (unlink from parents, disarm the deadline, wake waiters), so the state cannot
  // die underneath it; unless nothing else can reach the state (the fast path below), which
  // only leaves its parents (leave_parents) and frees it.
  void release_source() noexcept {
    // acquire: pairs with the acq_rel decrements of every other reference and the acq_rel CAS
    // of every other source (a release sequence of RMWs), so whatever their holders wrote
    // (kHadOwned among it) is visible below.
    std::uint64_t c = counts_.load(std::memory_order_acquire);
    // kHadOwned is set by an enlist made through a token, whose reference was dropped after it
    // (made visible by the acquire above); no token is left to enlist another. kNotifying is
    // set by a Cancel() called through another source handle, which a callback destroyed on
    // this thread (sequenced after) or released before us (the acquire above), so we read it
    // or a later value. acquire: pairs with the release store of that Cancel's final unlock,
    // which clears kNotifying, so when we read the bit cleared every write of the canceller
    // (e.g. a recycled pool node) is visible, and it touches the state no more.
    if (c == kSource && deadline_owner_ptr() == nullptr &&
        (flags_.load(std::memory_order_acquire) & (kHadOwned | kNotifying)) == 0) {
      // Fast path: the last handle, and no other reference at all, so no token, registration,
      // waiter or running Cancel can reach this state, nor the timer (no provider), and no
      // caller-owned node was ever enlisted. Only our parents can, through our link nodes:
      // leave them (waiting for a link callback that is cancelling us right now), and nobody
      // can observe the rest of the teardown: skip it.
      leave_parents(link_count_);
      destroy(this);
      return;
    }
    for (;;) {
      if ((c >> 32) > 1) {
        // acq_rel: as release_ref (this can never bring the word to zero).
        if (counts_.compare_exchange_weak(c, c - kSource, std::memory_order_acq_rel, std::memory_order_relaxed)) return;
      } else if (counts_.compare_exchange_weak(c, c - kSource + kRef, std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
        on_last_source();
        release_ref();
        return;
      }
    }
  }

  // ---- observing ------------------------------------------------------------------------

  bool is_cancelled() const noexcept {
    // acquire: pairs with the release store in request_cancel that sets kCancelled, so reason_
    // and everything the canceller wrote before Cancel() is visible once this returns true.
    return (flags_.load(std::memory_order_acquire) & kCancelled) != 0;
  }

  bool can_be_cancelled() const noexcept {
    const std::uint32_t f = flags_.load(std::memory_order_acquire);
    return (f & kCancelled) != 0 || (f & kOrphaned) == 0;
  }

  // Only meaningful once is_cancelled() returned true: written once, before kCancelled.
  const std::error_code& reason() const noexcept { return reason_; }

  // ---- cancelling -----------------------------------------------------------------------

  // Sets the reason, marks the state cancelled and runs every listed callback on this thread,
  // newest first. Returns true iff this call made the transition; a concurrent second caller
  // returns false at once. Rethrows the first exception a callback threw, after all have run.
  // Once the last source handle is gone un-cancelled (kOrphaned, set under the lock) nothing
  // cancels the state any more, not even a parent's link or a deadline already taken off the
  // timer's heap: whoever was told "can never be cancelled" stays right.
  bool request_cancel(std::error_code why) {
    if (is_cancelled()) return false;
    std::uint32_t f = lock();
    if (f & (kCancelled | kOrphaned)) {
      unlock(f);
      return false;
    }
    reason_ = why ? why : make_error_code(errc::canceled);
    notifying_thread_ = std::this_thread::get_id();
    // No reference is taken for the callbacks' sake: our caller keeps the state alive (a source
    // handle, the timer's reference, or a parent's link node that the child's teardown waits
    // for), and only a callback can destroy that source handle. If the last source goes while
    // kNotifying is set, on_last_source() takes a reference for us (kCancellerRef), which we
    // drop at the end. That saves two RMWs per Cancel.
    bool wake = bump_epoch_if_waiting();
    f |= kCancelled | kNotifying;
    // release: publishes reason_ to every acquire load that sees kCancelled (is_cancelled).
    flags_.store(f, std::memory_order_release);

    std::exception_ptr first;
    for (;;) {
      callback_node* n = head_;
      if (n == nullptr) break;
      unlink(n);
      bool removed = false;
      n->status = node_status::running;
      n->removed_during_run = &removed;
      const bool pooled = n->kind == node_kind::heap;
      unlock(f);
      if (wake) wake_all(epoch_);
      CTOKEN_TRY { n->invoke(n, reason_); }
      CTOKEN_CATCH_ALL {
#if defined(CTOKEN_HAS_EXCEPTIONS)
        if (!first) first = std::current_exception();
#endif
      }
      heap_node* recycle = nullptr;
      if (removed && pooled) {
        // Its handle was disposed from inside the callback; we finish that job. Pool nodes live
        // as long as the state, so touching it is safe even though it was "removed".
        recycle = static_cast<heap_node*>(n);
        if (recycle->destroy != nullptr) recycle->destroy(recycle);
      }
      f = lock();
      if (recycle != nullptr) {
        recycle->id.store(0, std::memory_order_relaxed);  // relaxed: guarded by the lock
        recycle->status = node_status::free;
        push_pool_locked(recycle);
      } else if (!removed) {
        n->status = node_status::done;
        n->removed_during_run = nullptr;
      }
      wake = bump_epoch_if_waiting();
    }
    // A cancelled source's deadline is pointless: drop it now rather than when it falls due.
    // Under the lock, so the provider cannot be forgotten (and destroyed) meanwhile.
    // Lock order: a state's lock, then its provider's mutex (never the reverse).
    if (deadline_owner* o = deadline_owner_ptr()) (void)o->disarm(this);
    // Still under the lock: once kNotifying is cleared, nothing keeps the state alive for us
    // unless we hold kCancellerRef, so the unlock (or that release) must be the last touch.
    if (wake) wake_all(epoch_);
    const bool release = (f & kCancellerRef) != 0;
    unlock(f & ~(kNotifying | kCancellerRef));
    if (release) release_ref();  // may destroy *this: nothing below touches it
#if defined(CTOKEN_HAS_EXCEPTIONS)
    if (first) std::rethrow_exception(first);
#endif
    return true;
  }

  // ---- registration: nodes owned by the caller (CancellationCallback, links) ---------------

  // Puts n into the list unless the state is cancelled (caller runs the callback itself) or
  // orphaned (nothing will ever run it, so nothing is stored). The caller must hold a reference
  // for the time of the call (a token); after `listed` the node keeps the state alive until
  // its delist() (see owned_nodes_), and delist() must be called exactly once.
  enlist_result enlist(callback_node* n) noexcept {
    std::uint32_t f = lock();
    if (f & kCancelled) {
      unlock(f);
      return enlist_result::cancelled;
    }
    if (f & kOrphaned) {
      unlock(f);
      return enlist_result::orphaned;
    }
    push_front(n);
    ++owned_nodes_;
    f |= kHadOwned;  // stored by unlock()
    unlock(f);
    return enlist_result::listed;
  }

  // Takes n out of the list. If its callback is running on another thread, blocks until it
  // has returned; from inside the callback itself, returns at once. No-op on the list when it
  // already ran or was dropped by TryReset. Ends the node's hold on the state: may destroy it.
  void delist(callback_node* n) noexcept {
    std::uint32_t f = lock();
    for (;;) {
      if (n->status == node_status::listed) {
        unlink(n);
        n->status = node_status::unlinked;
        break;
      }
      if (n->status != node_status::running) break;
      if (notifying_thread_ == std::this_thread::get_id()) {
        mark_removed_during_run(n);
        break;
      }
      f = wait_while_running_locked(f);
    }
    const bool last = --owned_nodes_ == 0 && (f & kNodesRef) != 0;
    if (last) f &= ~kNodesRef;
    unlock(f);
    if (last) release_ref();  // the one on_last_source() took for the owned nodes
  }

  // ---- registration: pooled nodes owned by a CancellationTokenRegistration ---------------

  struct handle_ref {
    heap_node* node;
    std::uint64_t id;
  };

  // Register(): stores a copy of g (as Fn) in a pooled node. If the state is already cancelled
  // runs g at once on this thread and returns {nullptr, 0}; if orphaned, stores nothing.
  // On success the returned handle owns one reference to the state.
  template <class Fn, class G>
  handle_ref register_callable(G&& g) {
    using ops = stored_callable<Fn>;
    if (is_cancelled()) {
      run_inline<Fn>(std::forward<G>(g));
      return {nullptr, 0};
    }
    add_ref();  // the handle's reference; dropped again below if nothing gets registered
    heap_node* n = nullptr;
    std::uint32_t f = 0;
    if constexpr (ops::template trivial<G&&>) {
      // Fast path: copying Fn is a memcpy, so everything happens in one locked section.
      f = lock();
      if (!(f & (kCancelled | kOrphaned))) {
        n = pop_pool_locked();
        if (n == nullptr) {
          unlock(f);
          n = allocate_node_or_release();
          f = lock();
        }
      }
      if (n != nullptr && !(f & (kCancelled | kOrphaned))) {
        ops::construct(n, std::forward<G>(g));
        return commit_locked(n, f);
      }
      if (n != nullptr) push_pool_locked(n);
      const bool cancelled = (f & kCancelled) != 0;
      unlock(f);
      if (cancelled) {
        run_inline_guarded<Fn>(std::forward<G>(g));  // releases the reference, even if g throws
      } else {
        release_ref();
      }
      return {nullptr, 0};
    } else {
      // The callable's constructor and destructor are user code: run them outside the lock.
      f = lock();
      n = pop_pool_locked();
      unlock(f);
      if (n == nullptr) n = allocate_node_or_release();
      CTOKEN_TRY { ops::construct(n, std::forward<G>(g)); }
      CTOKEN_CATCH_ALL {
        return_node(n);
        release_ref();
#if defined(CTOKEN_HAS_EXCEPTIONS)
        throw;
#endif
      }
      f = lock();
      if (!(f & (kCancelled | kOrphaned))) return commit_locked(n, f);
      const bool cancelled = (f & kCancelled) != 0;
      unlock(f);
      struct cleanup {
        state* s;
        heap_node* n;
        ~cleanup() {
          if (n->destroy != nullptr) n->destroy(n);
          s->return_node(n);
          s->release_ref();
        }
      } guard{this, n};
      if (cancelled) n->invoke(n, reason_);
      return {nullptr, 0};
    }
  }

  // Dispose(): unregisters and releases the node named by (n, id). Waits for a callback that
  // runs on another thread; returns at once from inside the callback. Idempotent.
  void dispose(heap_node* n, std::uint64_t id) noexcept {
    std::uint32_t f = lock();
    for (;;) {
      if (n->id.load(std::memory_order_relaxed) != id) break;  // relaxed: guarded by the lock
      if (n->status == node_status::running) {
        if (notifying_thread_ == std::this_thread::get_id()) {
          mark_removed_during_run(n);  // the canceller recycles it once the callback returns
          break;
        }
        f = wait_while_running_locked(f);
        continue;
      }
      if (n->status == node_status::listed) unlink(n);
      n->id.store(0, std::memory_order_relaxed);  // relaxed: guarded by the lock
      n->status = node_status::free;
      if (n->destroy == nullptr) {
        push_pool_locked(n);
        break;
      }
      // The callable's destructor is user code and may drop the last reference to this state
      // (the "callback owns the operation that owns the registration" shape): hold one of our
      // own until the node is back in the pool.
      add_ref();
      unlock(f);
      n->destroy(n);
      return_node(n);
      release_ref();  // may destroy *this: nothing below touches it
      return;
    }
    unlock(f);
  }

  // Unregister(): true iff the callback was still waiting and now never runs. Never blocks.
  bool unregister(heap_node* n, std::uint64_t id) noexcept {
    const std::uint32_t f = lock();
    bool removed = false;
    // relaxed: guarded by the lock
    if (n->id.load(std::memory_order_relaxed) == id && n->status == node_status::listed) {
      unlink(n);
      n->status = node_status::unlinked;
      removed = true;
    }
    unlock(f);
    return removed;
  }

  // ---- linked sources -------------------------------------------------------------------

  // Links this (fresh, unpublished) state to `parent`. If the parent is already cancelled,
  // this state is cancelled with its reason and further links are pointless.
  void link_to(state* parent) {
    if (parent == nullptr || is_cancelled()) return;
    if (link_count_ >= link_capacity_) fatal("more parents than the linked state was sized for");
    link_node* l = links() + link_count_;
    ::new (static_cast<void*>(l)) link_node();
    l->kind = node_kind::link;
    l->invoke = &link_invoke;
    l->parent = parent;
    l->child = this;
    // The caller's token keeps the parent alive for the call; once listed, the link node does
    // (an owned node of the parent) until leave_parents() delists it.
    switch (parent->enlist(l)) {
      case enlist_result::listed:
        ++link_count_;
        return;
      case enlist_result::cancelled:
        request_cancel(parent->reason());  // nothing is registered here yet: cannot throw
        return;
      case enlist_result::orphaned:
        return;
    }
  }

  // ---- TryReset -------------------------------------------------------------------------

  bool try_reset() noexcept {
    if (is_cancelled()) return false;
    std::uint32_t f = lock();
    if (f & kCancelled) {
      unlock(f);
      return false;
    }
    // Checked and disarmed under the lock, so a failing TryReset changes nothing.
    if (deadline_owner* o = deadline_owner_ptr()) {
      if (!o->disarm(this)) {  // the deadline fired: this source is being cancelled
        unlock(f);
        return false;
      }
    }
    heap_node* to_destroy = nullptr;
    callback_node* n = head_;
    head_ = nullptr;
    while (n != nullptr) {
      callback_node* next = n->next;
      n->next = nullptr;
      n->prev = nullptr;
      if (n->kind == node_kind::heap) {
        auto* h = static_cast<heap_node*>(n);
        h->id.store(0, std::memory_order_relaxed);  // relaxed: guarded by the lock
        h->status = node_status::free;
        if (h->destroy == nullptr) {
          push_pool_locked(h);
        } else {
          h->pool_next = to_destroy;
          to_destroy = h;
        }
      } else {
        n->status = node_status::unlinked;
      }
      n = next;
    }
    if (to_destroy == nullptr) {
      unlock(f);
      return true;
    }
    // The callables' destructors are user code and may destroy the source handle being reset
    // (and with it every reference): hold one of our own until the nodes are back in the pool.
    add_ref();
    unlock(f);
    while (to_destroy != nullptr) {
      heap_node* next = to_destroy->pool_next;
      to_destroy->destroy(to_destroy);
      return_node(to_destroy);
      to_destroy = next;
    }
    release_ref();  // may destroy *this: nothing below touches it
    return true;
  }

  // ---- waiting --------------------------------------------------------------------------

  // Blocks until the state is cancelled (true), orphaned (false) or `deadline` passes (false;
  // only when `timed`). Never polls: sleeps on epoch_, which Cancel and the last source's
  // teardown bump when somebody waits.
  bool wait_until(bool timed, std::chrono::steady_clock::time_point deadline) noexcept {
    if (is_cancelled()) return true;
    std::uint32_t f = lock();
    for (;;) {
      if (f & kCancelled) {
        unlock(f);
        return true;
      }
      if (f & kOrphaned) {
        unlock(f);
        return false;
      }
      std::chrono::nanoseconds left(-1);
      if (timed) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
          unlock(f);
          return false;
        }
        left = deadline - now;
      }
      ++waiters_;
      // relaxed: epoch_ is only written under the lock we hold.
      const std::uint32_t seen = epoch_.load(std::memory_order_relaxed);
      unlock(f);
      wait_on(epoch_, seen, left);
      f = lock();
      --waiters_;
    }
  }

  // The earliest armed deadline of this state and, through the links, of its ancestors.
  // Lock order: a child's lock may be held while taking a parent's (never the reverse), and a
  // provider's mutex is never held while taking a state's lock.
  bool earliest_deadline(std::chrono::steady_clock::time_point& out) const noexcept {
    bool found = false;
    auto* self = const_cast<state*>(this);
    const std::uint32_t f = self->lock();
    // Under the lock: on_last_source() clears the provider pointer under it before forgetting,
    // so a provider seen here has not been forgotten (a ManualTimeProvider may die after that).
    if (const deadline_owner* o = deadline_owner_ptr()) found = o->armed_deadline(this, out);
    link_node* l = self->links();
    for (std::uint32_t i = 0; i < link_count_; ++i) {
      std::chrono::steady_clock::time_point parent_due;
      if (!l[i].parent->is_linked(&l[i])) continue;  // dropped by the parent's TryReset
      if (l[i].parent->earliest_deadline(parent_due) && (!found || parent_due < out)) {
        out = parent_due;
        found = true;
      }
    }
    self->unlock(f);
    return found;
  }

  // Whether n (a node of this state's list) is still waiting for Cancel.
  bool is_linked(const callback_node* n) noexcept {
    const std::uint32_t f = lock();
    const bool linked = n->status == node_status::listed;
    unlock(f);
    return linked;
  }

  // ---- deadline bookkeeping (used by time providers, guarded by the provider's mutex) ------

  // Holds the state's lock while a provider arms its deadline. Cancel() sets kCancelled under
  // this lock and reads deadline_ under it again before it returns (to disarm), so arming under
  // it too serialises the two facts: either the arm sees kCancelled and arms nothing, or the
  // Cancel sees the provider and disarms. (Without it, "store the flag, load the provider" and
  // "store the provider, load the flag" is store-buffering, which acquire/release does not
  // order, and a cancelled source could keep an armed deadline.) Lock order: this lock, then
  // the provider's mutex.
  class arm_lock {
   public:
    explicit arm_lock(state& s) noexcept : s_(s), f_(s.lock()) {}
    ~arm_lock() { s_.unlock(f_); }
    arm_lock(const arm_lock&) = delete;
    arm_lock& operator=(const arm_lock&) = delete;
    // Cancelled, or orphaned: arming would be pointless.
    bool settled() const noexcept { return (f_ & (kCancelled | kOrphaned)) != 0; }

   private:
    state& s_;
    std::uint32_t f_;
  };

  void set_deadline_owner(deadline_owner* o) noexcept {
    // release: publishes the provider's bookkeeping for this state to try_reset/teardown.
    deadline_.store(o, std::memory_order_release);
  }
  deadline_owner* deadline_owner_ptr() const noexcept {
    return deadline_.load(std::memory_order_acquire);  // acquire: pairs with set_deadline_owner
  }
  std::size_t timer_index = static_cast<std::size_t>(-1);  // position in the provider's heap
  std::int64_t timer_due = 0;                              // steady_clock ns since its epoch
  bool timer_fired = false;                                // the deadline fired: TryReset fails

  state(const state&) = delete;
  state& operator=(const state&) = delete;

 private:
  explicit state(std::size_t links) noexcept : link_capacity_(links) {}
  ~state() = default;

  static void destroy(state* s) noexcept {
    s->free_pool();
    s->~state();
    ::operator delete(static_cast<void*>(s));
  }

  link_node* links() noexcept {
    return std::launder(reinterpret_cast<link_node*>(reinterpret_cast<unsigned char*>(this) + sizeof(state)));
  }

  static void link_invoke(callback_node* n, const std::error_code& reason) {
    static_cast<link_node*>(n)->child->request_cancel(reason);
  }

  // The last source handle is gone. If nothing cancelled the state it never will be: wake the
  // waiters (Wait() now returns false), disarm the deadline and leave every parent.
  void on_last_source() noexcept {
    std::uint32_t f = lock();
    if (!(f & kCancelled)) f |= kOrphaned;  // stored by unlock(); from now on nothing cancels it
    if (owned_nodes_ != 0) {
      // No source keeps the state alive any more: one reference for all the owned nodes, which
      // the last delist() drops. None can be enlisted from now on (cancelled or orphaned).
      add_ref();
      f |= kNodesRef;
    }
    if (f & kNotifying) {
      // A callback destroyed the source handle whose Cancel() is running, or every other one
      // went meanwhile: keep the state alive for the canceller, which drops this at its end.
      add_ref();
      f |= kCancellerRef;
    }
    const bool wake = bump_epoch_if_waiting();
    // acq_rel: as set_deadline_owner/deadline_owner_ptr. Cleared under the lock, where
    // earliest_deadline, request_cancel and try_reset read it, before the provider forgets us.
    // Only exchanged if set (no RMW for the common source that never had a deadline): a
    // provider is only attached through a live source handle, so none can appear meanwhile.
    deadline_owner* const o = deadline_.load(std::memory_order_relaxed) == nullptr  // relaxed: see above
                                  ? nullptr
                                  : deadline_.exchange(nullptr, std::memory_order_acq_rel);
    const std::uint32_t count = link_count_;
    link_count_ = 0;  // guarded: earliest_deadline() no longer walks to the parents
    unlock(f);
    if (wake) wake_all(epoch_);
    if (o != nullptr) o->forget(this);
    leave_parents(count);
  }

  // Delists the first `count` link nodes from their parents (waiting for one whose callback is
  // cancelling this state right now). A parent may be destroyed by it: not touched afterwards.
  void leave_parents(std::uint32_t count) noexcept {
    link_node* l = links();
    for (std::uint32_t i = 0; i < count; ++i) l[i].parent->delist(&l[i]);
  }

  // ---- the lock bit -----------------------------------------------------------------------

  // Takes the lock bit; returns flags_ as now held. A waiter pauses once, then yields its
  // time slice (as libstdc++'s stop_token does): the holder then gets a run of uncontended
  // operations instead of the two threads taking strict turns and moving the cache line on
  // every operation (2-thread register/unregister on one source: ~2x std -> below std).
  // Test-and-set with fetch_or (g++ and clang emit a load + `lock cmpxchg` for it; testing
  // only the bit lets g++ emit `lock bts` plus a reload, which measured slower here). A
  // fetch_or that finds the bit set changes nothing, because every other bit of flags_ is only
  // written by the holder; then wait with plain loads.
  std::uint32_t lock() noexcept {
    for (;;) {
      // acquire: pairs with the release store in unlock(), so the previous holder's writes
      // to the guarded fields are visible.
      const std::uint32_t before = flags_.fetch_or(kLocked, std::memory_order_acquire);
      if ((before & kLocked) == 0) return before | kLocked;
      do {
        cpu_relax();
        std::this_thread::yield();
      } while ((flags_.load(std::memory_order_relaxed) & kLocked) != 0);  // relaxed: only a hint
    }
  }

  // `f` is flags_ as held (only the holder writes flags_, so it is exact).
  void unlock(std::uint32_t f) noexcept {
    // release: pairs with the acquire fetch_or in lock() (and the acquire loads of kCancelled).
    flags_.store(f & ~kLocked, std::memory_order_release);
  }

  // Called with the lock held; returns with it held again. Sleeps until the running callback
  // returns (the canceller bumps epoch_ after each callback when waiters_ != 0).
  std::uint32_t wait_while_running_locked(std::uint32_t f) noexcept {
    ++waiters_;
    const std::uint32_t seen = epoch_.load(std::memory_order_relaxed);  // relaxed: written under the lock
    unlock(f);
    wait_on(epoch_, seen, std::chrono::nanoseconds(-1));
    f = lock();
    --waiters_;
    return f;
  }

  bool bump_epoch_if_waiting() noexcept {
    if (waiters_ == 0) return false;
    epoch_.fetch_add(1, std::memory_order_relaxed);  // relaxed: the lock orders it; the futex compares it
    return true;
  }

  static void mark_removed_during_run(callback_node* n) noexcept {
    if (n->removed_during_run != nullptr) {
      *n->removed_during_run = true;
      n->removed_during_run = nullptr;
    }
  }

  // ---- the list (guarded) ---------------------------------------------------------------

  void push_front(callback_node* n) noexcept {
    n->next = head_;
    n->prev = &head_;
    if (head_ != nullptr) head_->prev = &n->next;
    head_ = n;
    n->status = node_status::listed;
  }

  static void unlink(callback_node* n) noexcept {
    *n->prev = n->next;
    if (n->next != nullptr) n->next->prev = n->prev;
    n->next = nullptr;
    n->prev = nullptr;
  }

  // ---- the node pool ----------------------------------------------------------------------

  handle_ref commit_locked(heap_node* n, std::uint32_t f) noexcept {
    const std::uint64_t id = ++next_id_;
    n->id.store(id, std::memory_order_relaxed);  // relaxed: guarded by the lock
    push_front(n);
    unlock(f);
    return {n, id};
  }

  heap_node* allocate_node_or_release() {
    CTOKEN_TRY {
      auto* n = new heap_node();
      n->kind = node_kind::heap;
      n->owner = this;
      return n;
    }
    CTOKEN_CATCH_ALL {
      release_ref();
#if defined(CTOKEN_HAS_EXCEPTIONS)
      throw;
#endif
    }
    return nullptr;  // unreachable: without exceptions operator new terminates
  }

  void push_pool_locked(heap_node* n) noexcept {
    n->pool_next = pool_;
    pool_ = n;
  }

  heap_node* pop_pool_locked() noexcept {
    if (pool_ == nullptr && returned_.load(std::memory_order_relaxed) != nullptr) {
      // acquire: pairs with the release CAS in return_node, so the node's fields written by
      // the returning thread are visible.
      pool_ = returned_.exchange(nullptr, std::memory_order_acquire);
    }
    heap_node* n = pool_;
    if (n != nullptr) pool_ = n->pool_next;
    return n;
  }

  // Gives a node back without taking the lock (after its callable was destroyed outside it).
  // Only pushes happen here; pops take the whole stack under the lock, so there is no ABA.
  void return_node(heap_node* n) noexcept {
    n->status = node_status::free;
    heap_node* head = returned_.load(std::memory_order_relaxed);  // relaxed: a guess for the CAS
    do {
      n->pool_next = head;
      // release: publishes n's fields to the acquire exchange in pop_pool_locked.
    } while (!returned_.compare_exchange_weak(head, n, std::memory_order_release, std::memory_order_relaxed));
  }

  void free_pool() noexcept {
    heap_node* lists[2] = {pool_, returned_.load(std::memory_order_acquire)};  // acquire: as pop
    for (heap_node* n : lists) {
      while (n != nullptr) {
        heap_node* next = n->pool_next;
        delete n;
        n = next;
      }
    }
  }

  // Runs a copy of g (as Fn: the same object the registered path would have called) for a
  // cancelled state, on this thread.
  template <class Fn, class G>
  void run_inline(G&& g) {
    const std::error_code why = reason_;  // the callback may drop the state's last reference
    Fn f(std::forward<G>(g));
    call_with_reason(f, why);
  }

  // As run_inline, while holding a reference that must be dropped afterwards.
  template <class Fn, class G>
  void run_inline_guarded(G&& g) {
    struct release_on_exit {
      state* s;
      ~release_on_exit() { s->release_ref(); }
    } guard{this};
    run_inline<Fn>(std::forward<G>(g));
  }

  std::atomic<std::uint32_t> flags_{0};
  std::atomic<std::uint64_t> counts_{kSource};
  callback_node* head_ = nullptr;              // guarded
  heap_node* pool_ = nullptr;                  // guarded
  std::atomic<heap_node*> returned_{nullptr};  // lock-free pushes, popped whole under the lock
  std::uint64_t next_id_ = 0;                  // guarded
  std::thread::id notifying_thread_;           // guarded; set once when cancelled
  std::uint32_t waiters_ = 0;                  // guarded: threads sleeping on epoch_
  wait_word epoch_{0};                         // bumped (under the lock) to wake sleepers
  std::error_code reason_;                     // written once, before kCancelled is published
  std::atomic<deadline_owner*> deadline_{nullptr};
  std::uint32_t link_count_ = 0;   // parents actually linked; written before the state is shared
  std::uint32_t owned_nodes_ = 0;  // guarded: enlisted caller-owned nodes (see top)
  std::size_t link_capacity_;
};

}  // namespace detail
}  // namespace ctoken

#endif
