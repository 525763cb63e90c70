// ctoken — a state's 32-bit flags word, whose bit kLocked is also the spin lock that guards
// the state's other fields.
//
// Every write to the word happens while holding the lock, so the holder knows the word exactly
// and unlocks with a plain store: one atomic RMW per lock/unlock pair. The word is `mutable`:
// taking the lock to read guarded fields does not change the state's observable value, so const
// members (the earliest deadline, whether a node is linked) may lock it.
#ifndef CTOKEN_DETAIL_FLAG_WORD_HPP
#define CTOKEN_DETAIL_FLAG_WORD_HPP

#include <atomic>
#include <cstdint>
#include <thread>

#include <ctoken/detail/config.hpp>

namespace ctoken {
namespace detail {

class flag_word {
 public:
  static constexpr std::uint32_t kLocked = 2u;

  // acquire: pairs with the release stores of unlock() and publish_locked(), so whatever the
  // last writer wrote before setting the bits read here is visible.
  std::uint32_t load() const noexcept { return bits_.load(std::memory_order_acquire); }

  // Takes the lock bit; returns the word as now held. A waiter pauses once, then yields its
  // time slice (as libstdc++'s stop_token does): the holder then gets a run of uncontended
  // operations instead of two threads taking strict turns and moving the cache line on every
  // operation. Test-and-set with fetch_or (g++ and clang emit a load + `lock cmpxchg` for it;
  // testing only the bit lets g++ emit `lock bts` plus a reload, which measured slower). A
  // fetch_or that finds the bit set changes nothing, because every other bit is only written
  // by the holder; then wait with plain loads.
  CTOKEN_ALWAYS_INLINE std::uint32_t lock() const noexcept {
    // acquire: pairs with the release store in unlock(), so the previous holder's writes to the
    // guarded fields are visible.
    const std::uint32_t before = bits_.fetch_or(kLocked, std::memory_order_acquire);
    if (CTOKEN_LIKELY((before & kLocked) == 0)) return before | kLocked;
    return lock_contended();
  }

  // `f` is the word as held, with the holder's changes (only the holder writes, so it is exact).
  CTOKEN_ALWAYS_INLINE void unlock(std::uint32_t f) const noexcept {
    // relaxed: a check of our own bit, which only we may clear.
    CTOKEN_ASSERT((bits_.load(std::memory_order_relaxed) & kLocked) != 0);
    CTOKEN_ASSERT((f & kLocked) != 0);
    // release: pairs with the acquire fetch_or in lock() and the acquire load().
    bits_.store(f & ~kLocked, std::memory_order_release);
  }

  // Stores `f` (which must keep kLocked) while the lock stays held: publishes bits to lock-free
  // readers before the holder is done. release: pairs with the acquire load().
  void publish_locked(std::uint32_t f) const noexcept {
    CTOKEN_ASSERT((f & kLocked) != 0);
    bits_.store(f, std::memory_order_release);
  }

 private:
  CTOKEN_NOINLINE std::uint32_t lock_contended() const noexcept {
    for (;;) {
      do {
        cpu_relax();
        std::this_thread::yield();
      } while ((bits_.load(std::memory_order_relaxed) & kLocked) != 0);  // relaxed: only a hint
      // acquire: as in lock().
      const std::uint32_t before = bits_.fetch_or(kLocked, std::memory_order_acquire);
      if ((before & kLocked) == 0) return before | kLocked;
    }
  }

  mutable std::atomic<std::uint32_t> bits_{0};
};

}  // namespace detail
}  // namespace ctoken

#endif
