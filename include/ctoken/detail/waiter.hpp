// ctoken — "block until this 32-bit atomic changes", with an optional timeout.
//
// Used for the two places where a thread has to sleep: Dispose() waiting for a callback that
// runs on another thread, and Wait()/WaitFor() waiting for cancellation. Both sides keep their
// own waiter count under the state's lock, so a wake-up is only issued when somebody sleeps.
//
// Linux: a private futex on the word itself (no allocation, no table). Elsewhere: a small
// striped table of mutex + condition variable pairs keyed by the word's address. C++20's
// std::atomic::wait is not used because it has no timed form, which WaitFor needs.
#ifndef CTOKEN_DETAIL_WAITER_HPP
#define CTOKEN_DETAIL_WAITER_HPP

#include <atomic>
#include <chrono>
#include <cstdint>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <ctime>
#else
#include <condition_variable>
#include <cstddef>
#include <mutex>
#endif

namespace ctoken {
namespace detail {

using wait_word = std::atomic<std::uint32_t>;

#if defined(__linux__)

// Sleeps while `word == expected`, at most `timeout` (negative = no limit). Returns when woken,
// when the value differs, on a signal, or at the timeout; callers always re-check their condition.
inline void wait_on(wait_word& word, std::uint32_t expected, std::chrono::nanoseconds timeout) noexcept {
  static_assert(sizeof(wait_word) == sizeof(std::uint32_t), "futex needs a plain 32-bit word");
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout.count() >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1000000000);
    tsp = &ts;
  }
  // The kernel compares *word with `expected` atomically with going to sleep, which is what
  // makes "check under the lock, then sleep after unlocking" free of lost wake-ups.
  (void)syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, tsp, nullptr, 0);
}

inline void wake_all(wait_word& word) noexcept {
  (void)syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr, nullptr,
                0);
}

#else

struct parking_slot {
  std::mutex mutex;
  std::condition_variable cv;
};

inline parking_slot& slot_for(const void* address) noexcept {
  static parking_slot slots[64];
  auto bits = reinterpret_cast<std::uintptr_t>(address);
  return slots[(bits >> 4) % 64];
}

inline void wait_on(wait_word& word, std::uint32_t expected, std::chrono::nanoseconds timeout) noexcept {
  parking_slot& slot = slot_for(&word);
  std::unique_lock<std::mutex> lock(slot.mutex);
  // relaxed: the mutex orders this load against the waker's increment-then-lock.
  if (word.load(std::memory_order_relaxed) != expected) return;
  if (timeout.count() < 0) {
    slot.cv.wait(lock);
  } else {
    slot.cv.wait_for(lock, timeout);
  }
}

inline void wake_all(wait_word& word) noexcept {
  parking_slot& slot = slot_for(&word);
  { std::lock_guard<std::mutex> lock(slot.mutex); }
  slot.cv.notify_all();
}

#endif

}  // namespace detail
}  // namespace ctoken

#endif
