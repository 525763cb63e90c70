// ctoken — the shared state behind a CancellationTokenSource and its tokens.
//
// One heap object per source, allocated when the source is created. Its parts, each in its own
// header: the flags word and its lock bit (flag_word.hpp), the callback nodes and their list
// (callback_node.hpp), the pool of Register() nodes (node_pool.hpp) and the deadline slot a time
// provider uses (deadline_slot.hpp). This file holds what ties them together:
//   * flags_   — one 32-bit word: kCancelled and the lock bit that guards everything marked
//                "guarded" below (see flag_word.hpp).
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
//   * list_ (guarded) — the callbacks waiting for Cancel, newest first.
//   * pool_ — heap nodes for Register(). A registration handle names its node by (pointer,
//     64-bit id); the id changes whenever the node is recycled, so a stale handle can never act
//     on somebody else's node.
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
#include <exception>
#include <new>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include <ctoken/detail/callback_node.hpp>
#include <ctoken/detail/config.hpp>
#include <ctoken/detail/deadline_slot.hpp>
#include <ctoken/detail/flag_word.hpp>
#include <ctoken/detail/node_pool.hpp>
#include <ctoken/detail/waiter.hpp>
#include <ctoken/errc.hpp>

namespace ctoken {
namespace detail {

// Outcome of putting a node into a state's list.
enum class enlist_result { listed, cancelled, orphaned };

class state {
 public:
  static constexpr std::uint32_t kCancelled = 1u;
  static constexpr std::uint32_t kLocked = flag_word::kLocked;
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
    CTOKEN_ASSERT((before & 0xffffffffu) != 0);  // a reference was held
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
    if (c == kSource && timer_.owner() == nullptr && (flags_.load() & (kHadOwned | kNotifying)) == 0) {
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
    return (flags_.load() & kCancelled) != 0;
  }

  bool can_be_cancelled() const noexcept {
    const std::uint32_t f = flags_.load();
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
    // release (publish_locked): publishes reason_ to every acquire load that sees kCancelled
    // (is_cancelled), while we keep the lock.
    flags_.publish_locked(f);

    std::exception_ptr first;
    for (;;) {
      callback_node* n = list_.front();
      if (n == nullptr) break;
      callback_list::unlink(n);
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
        pool_.push_locked(recycle);
      } else if (!removed) {
        n->status = node_status::done;
        n->removed_during_run = nullptr;
      }
      wake = bump_epoch_if_waiting();
    }
    // Every callback ran (none can be added once kCancelled is set), and we still notify.
    CTOKEN_ASSERT(list_.empty());
    CTOKEN_ASSERT((f & (kCancelled | kNotifying)) == (kCancelled | kNotifying));
    // A cancelled source's deadline is pointless: drop it now rather than when it falls due.
    // Under the lock, so the provider cannot be forgotten (and destroyed) meanwhile.
    // Lock order: a state's lock, then its provider's mutex (never the reverse).
    if (deadline_owner* o = timer_.owner()) (void)o->disarm(this);
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
  CTOKEN_ALWAYS_INLINE enlist_result enlist(callback_node* n) noexcept {
    std::uint32_t f = lock();
    if (f & kCancelled) {
      unlock(f);
      return enlist_result::cancelled;
    }
    if (f & kOrphaned) {
      unlock(f);
      return enlist_result::orphaned;
    }
    list_.push_front(n);
    ++owned_nodes_;
    f |= kHadOwned;  // stored by unlock()
    unlock(f);
    return enlist_result::listed;
  }

  // Takes n out of the list. If its callback is running on another thread, blocks until it
  // has returned; from inside the callback itself, returns at once. No-op on the list when it
  // already ran or was dropped by TryReset. Ends the node's hold on the state: may destroy it.
  CTOKEN_ALWAYS_INLINE void delist(callback_node* n) noexcept {
    const std::uint32_t f = lock();
    if (CTOKEN_LIKELY(n->status == node_status::listed)) {  // the common case: never ran
      callback_list::unlink(n);
      n->status = node_status::unlinked;
      end_delist(f);
    } else {
      delist_not_listed(n, f);
    }
  }

 private:
  // delist(), for a node that is not waiting any more: it ran, was dropped by TryReset, or
  // its callback is running right now (wait for it unless that is on this thread).
  CTOKEN_NOINLINE void delist_not_listed(callback_node* n, std::uint32_t f) noexcept {
    CTOKEN_ASSERT(n->status != node_status::free);  // an enlisted node is never "free"
    for (;;) {
      if (n->status == node_status::listed) {
        callback_list::unlink(n);
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
    end_delist(f);
  }

  // The node is out of the list: it no longer counts as owned; the last one drops the
  // reference on_last_source() took for them all. Unlocks.
  CTOKEN_ALWAYS_INLINE void end_delist(std::uint32_t f) noexcept {
    CTOKEN_ASSERT(owned_nodes_ != 0);  // every delist matches one listed enlist
    const bool last = --owned_nodes_ == 0 && (f & kNodesRef) != 0;
    if (CTOKEN_LIKELY(!last)) {
      unlock(f);
      return;
    }
    unlock(f & ~kNodesRef);
    release_ref();  // the one on_last_source() took for the owned nodes
  }

 public:
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
        n = pool_.pop_locked();
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
      if (n != nullptr) pool_.push_locked(n);
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
      n = pool_.pop_locked();
      unlock(f);
      if (n == nullptr) n = allocate_node_or_release();
      CTOKEN_TRY { ops::construct(n, std::forward<G>(g)); }
      CTOKEN_CATCH_ALL {
        pool_.give_back(n);
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
          s->pool_.give_back(n);
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
      if (n->status == node_status::listed) callback_list::unlink(n);
      n->id.store(0, std::memory_order_relaxed);  // relaxed: guarded by the lock
      n->status = node_status::free;
      if (n->destroy == nullptr) {
        pool_.push_locked(n);
        break;
      }
      // The callable's destructor is user code and may drop the last reference to this state
      // (the "callback owns the operation that owns the registration" shape): hold one of our
      // own until the node is back in the pool.
      add_ref();
      unlock(f);
      n->destroy(n);
      pool_.give_back(n);
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
      callback_list::unlink(n);
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
    if (deadline_owner* o = timer_.owner()) {
      if (!o->disarm(this)) {  // the deadline fired: this source is being cancelled
        unlock(f);
        return false;
      }
    }
    heap_node* to_destroy = nullptr;
    callback_node* n = list_.take_all();
    while (n != nullptr) {
      callback_node* next = n->next;
      n->next = nullptr;
      n->prev = nullptr;
      if (n->kind == node_kind::heap) {
        auto* h = static_cast<heap_node*>(n);
        h->id.store(0, std::memory_order_relaxed);  // relaxed: guarded by the lock
        h->status = node_status::free;
        if (h->destroy == nullptr) {
          pool_.push_locked(h);
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
      pool_.give_back(to_destroy);
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
    const std::uint32_t f = lock();
    // Under the lock: on_last_source() clears the provider pointer under it before forgetting,
    // so a provider seen here has not been forgotten (a ManualTimeProvider may die after that).
    if (const deadline_owner* o = timer_.owner()) found = o->armed_deadline(this, out);
    link_node* l = self->links();
    for (std::uint32_t i = 0; i < link_count_; ++i) {
      std::chrono::steady_clock::time_point parent_due;
      if (!l[i].parent->is_linked(&l[i])) continue;  // dropped by the parent's TryReset
      if (l[i].parent->earliest_deadline(parent_due) && (!found || parent_due < out)) {
        out = parent_due;
        found = true;
      }
    }
    unlock(f);
    return found;
  }

  // Whether n (a node of this state's list) is still waiting for Cancel.
  bool is_linked(const callback_node* n) noexcept {
    const std::uint32_t f = lock();
    const bool linked = n->status == node_status::listed;
    unlock(f);
    return linked;
  }

  // ---- the deadline (used by time providers) ----------------------------------------------

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

  // The provider side of this state's deadline (owner pointer, heap position, due time, fired);
  // see deadline_slot.hpp for who may touch what.
  deadline_slot& timer() noexcept { return timer_; }
  const deadline_slot& timer() const noexcept { return timer_; }

  state(const state&) = delete;
  state& operator=(const state&) = delete;

 private:
  explicit state(std::size_t links) noexcept : link_capacity_(links) {}

  // Nobody can reach the state any more: nothing may be left in its list, nobody may hold its
  // lock, run its callbacks or wait on it, and no reference but (on the last source's fast path)
  // that source's own may be counted.
  ~state() {
    CTOKEN_ASSERT(list_.empty());
    CTOKEN_ASSERT(owned_nodes_ == 0);
    CTOKEN_ASSERT(waiters_ == 0);
    CTOKEN_ASSERT((flags_.load() & (kLocked | kNotifying | kNodesRef | kCancellerRef)) == 0);
    CTOKEN_ASSERT((counts_.load(std::memory_order_relaxed) & 0xffffffffu) == 0);  // relaxed: a check
    CTOKEN_ASSERT((counts_.load(std::memory_order_relaxed) >> 32) <= 1);          // relaxed: a check
  }

  static void destroy(state* s) noexcept {
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
    // Cleared under the lock, where earliest_deadline, request_cancel, arm_after and try_reset
    // read it, before the provider forgets us (memory orders: deadline_slot::take_owner).
    deadline_owner* const o = timer_.take_owner();
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

  // ---- the lock bit (see flag_word.hpp) ---------------------------------------------------

  CTOKEN_ALWAYS_INLINE std::uint32_t lock() const noexcept { return flags_.lock(); }
  CTOKEN_ALWAYS_INLINE void unlock(std::uint32_t f) const noexcept { flags_.unlock(f); }

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

  // ---- the node pool ----------------------------------------------------------------------

  handle_ref commit_locked(heap_node* n, std::uint32_t f) noexcept {
    const std::uint64_t id = pool_.next_id_locked();
    n->id.store(id, std::memory_order_relaxed);  // relaxed: guarded by the lock
    list_.push_front(n);
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

  flag_word flags_;  // kCancelled, kOrphaned, ... and the lock bit (mutable: see flag_word.hpp)
  std::atomic<std::uint64_t> counts_{kSource};
  callback_list list_;                // guarded
  node_pool pool_;                    // its own rules: see node_pool.hpp
  std::thread::id notifying_thread_;  // guarded; set once when cancelled
  std::uint32_t waiters_ = 0;         // guarded: threads sleeping on epoch_
  wait_word epoch_{0};                // bumped (under the lock) to wake sleepers
  std::error_code reason_;            // written once, before kCancelled is published
  deadline_slot timer_;               // its own rules: see deadline_slot.hpp
  // Parents actually linked. Written before the state is shared (link_to, from
  // CreateLinkedTokenSource); afterwards read under the lock (earliest_deadline), zeroed under
  // it by on_last_source, and read without it only by release_source's fast path, whose caller
  // holds the only reference of any kind (so nobody can write it concurrently).
  std::uint32_t link_count_ = 0;
  std::uint32_t owned_nodes_ = 0;  // guarded: enlisted caller-owned nodes (see top)
  std::size_t link_capacity_;
};

}  // namespace detail
}  // namespace ctoken

#endif
