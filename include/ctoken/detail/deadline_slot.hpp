// ctoken — a state's side of its CancelAfter deadline: which time provider (if any) holds it,
// and that provider's bookkeeping for it.
//
// The provider pointer is an atomic read by the state (under the state's lock, or by the last
// source's teardown). The other fields belong to the provider: they are guarded by the
// provider's mutex, not by the state's lock, and only the provider and its heap may touch them
// (they are private, with those two as friends).
#ifndef CTOKEN_DETAIL_DEADLINE_SLOT_HPP
#define CTOKEN_DETAIL_DEADLINE_SLOT_HPP

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace ctoken {

class TimeProvider;

namespace detail {

class state;
class deadline_heap;

// Implemented by a time provider that has armed a state's deadline (see time.hpp).
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

class deadline_slot {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  // The provider, or null. acquire: pairs with set_owner, so the provider's bookkeeping for
  // this state is visible to whoever disarms through it.
  deadline_owner* owner() const noexcept { return owner_.load(std::memory_order_acquire); }

  // Attaches (or, with null, detaches) a provider; called by the provider under its mutex
  // (and, for a first CancelAfter, with the state's lock held too: see state::arm_lock).
  // release: publishes the provider's bookkeeping to owner().
  void set_owner(deadline_owner* o) noexcept { owner_.store(o, std::memory_order_release); }

  // The last source's teardown (under the state's lock): detaches and returns the provider.
  // Only exchanged if set (no RMW for the common source that never had a deadline): a provider
  // is attached only through a live source handle, and this is the last one, so none can
  // appear meanwhile (relaxed is enough for that look). acq_rel: as set_owner / owner().
  deadline_owner* take_owner() noexcept {
    if (owner_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    return owner_.exchange(nullptr, std::memory_order_acq_rel);
  }

 private:
  friend class ::ctoken::TimeProvider;
  friend class deadline_heap;

  std::atomic<deadline_owner*> owner_{nullptr};
  // Guarded by the owning provider's mutex.
  std::size_t index_ = npos;  // position in the provider's heap, npos when not armed
  std::int64_t due_ = 0;      // steady_clock ns since its epoch
  bool fired_ = false;        // the deadline fired: TryReset fails
};

}  // namespace detail
}  // namespace ctoken

#endif
