// ctoken — the per-state pool of heap nodes behind Register(), so that a steady stream of
// Register/Dispose on one source does not allocate.
//
// Two stacks: `pool_`, guarded by the owning state's lock, and `returned_`, a lock-free stack
// for nodes given back outside the lock (after their callable's destructor, which is user code
// and must not run under the lock). Only pushes happen on `returned_`; pops take the whole
// stack at once under the state's lock, so there is no ABA. Nodes are freed with the state.
#ifndef CTOKEN_DETAIL_NODE_POOL_HPP
#define CTOKEN_DETAIL_NODE_POOL_HPP

#include <atomic>
#include <cstdint>

#include <ctoken/detail/callback_node.hpp>
#include <ctoken/detail/config.hpp>

namespace ctoken {
namespace detail {

class node_pool {
 public:
  node_pool() noexcept = default;
  node_pool(const node_pool&) = delete;
  node_pool& operator=(const node_pool&) = delete;
  ~node_pool() { free_all(); }

  // ---- under the owning state's lock ----

  void push_locked(heap_node* n) noexcept {
    CTOKEN_ASSERT(n->status == node_status::free);
    CTOKEN_ASSERT(n->id.load(std::memory_order_relaxed) == 0);  // relaxed: guarded by the lock
    n->pool_next = pool_;
    pool_ = n;
  }

  heap_node* pop_locked() noexcept {
    if (pool_ == nullptr && returned_.load(std::memory_order_relaxed) != nullptr) {  // relaxed: a hint
      // acquire: pairs with the release CAS in give_back, so the node's fields written by the
      // returning thread are visible.
      pool_ = returned_.exchange(nullptr, std::memory_order_acquire);
    }
    heap_node* n = pool_;
    if (n != nullptr) pool_ = n->pool_next;
    return n;
  }

  // A fresh id for a node handed to a registration handle (never 0: 0 means "pooled").
  std::uint64_t next_id_locked() noexcept { return ++next_id_; }

  // ---- without the lock ----

  // Gives a node back after its callable was destroyed outside the lock.
  void give_back(heap_node* n) noexcept {
    n->status = node_status::free;
    heap_node* head = returned_.load(std::memory_order_relaxed);  // relaxed: a guess for the CAS
    do {
      n->pool_next = head;
      // release: publishes n's fields to the acquire exchange in pop_locked.
    } while (!returned_.compare_exchange_weak(head, n, std::memory_order_release, std::memory_order_relaxed));
  }

 private:
  // Only when the state dies: nobody else can reach the pool any more.
  void free_all() noexcept {
    heap_node* lists[2] = {pool_, returned_.load(std::memory_order_acquire)};  // acquire: as pop_locked
    for (heap_node* n : lists) {
      while (n != nullptr) {
        heap_node* next = n->pool_next;
        CTOKEN_ASSERT(n->status == node_status::free);
        delete n;
        n = next;
      }
    }
  }

  heap_node* pool_ = nullptr;                  // guarded
  std::atomic<heap_node*> returned_{nullptr};  // lock-free pushes, popped whole under the lock
  std::uint64_t next_id_ = 0;                  // guarded
};

}  // namespace detail
}  // namespace ctoken

#endif
