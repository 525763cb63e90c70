// ctoken — the binary min-heap of armed deadlines that every time provider uses.
//
// Each armed source is one slot (a state pointer, 8 bytes) in a std::vector; the state itself
// remembers its index, due time and "fired" bit (fields that every state has anyway), so arm,
// re-arm and disarm are O(log n) with no allocation except when the vector grows.
// Not thread-safe by itself: the owning provider guards it with its mutex.
#ifndef CTOKEN_DETAIL_DEADLINE_HEAP_HPP
#define CTOKEN_DETAIL_DEADLINE_HEAP_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include <ctoken/detail/state.hpp>

namespace ctoken {
namespace detail {

class deadline_heap {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  bool empty() const noexcept { return slots_.empty(); }
  std::size_t size() const noexcept { return slots_.size(); }
  state* top() const noexcept { return slots_.front(); }
  std::size_t capacity_bytes() const noexcept { return slots_.capacity() * sizeof(state*); }

  // Arms or re-arms s at `due` (ns on the provider's clock). May throw bad_alloc (nothing changes).
  void arm(state* s, std::int64_t due) {
    if (s->timer_index == npos) {
      slots_.push_back(s);  // may throw before anything changed
      s->timer_index = slots_.size() - 1;
      s->timer_due = due;
      sift_up(s->timer_index);
      return;
    }
    const std::int64_t before = s->timer_due;
    s->timer_due = due;
    if (due < before) {
      sift_up(s->timer_index);
    } else {
      sift_down(s->timer_index);
    }
  }

  // Removes s if armed; returns whether it was.
  bool remove(state* s) noexcept {
    const std::size_t i = s->timer_index;
    if (i == npos) return false;
    const std::size_t last = slots_.size() - 1;
    if (i != last) {
      place(i, slots_[last]);
      slots_.pop_back();
      sift_down(i);
      sift_up(i);
    } else {
      slots_.pop_back();
    }
    s->timer_index = npos;
    return true;
  }

 private:
  void place(std::size_t i, state* s) noexcept {
    slots_[i] = s;
    s->timer_index = i;
  }
  void sift_up(std::size_t i) noexcept {
    state* s = slots_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (slots_[parent]->timer_due <= s->timer_due) break;
      place(i, slots_[parent]);
      i = parent;
    }
    place(i, s);
  }
  void sift_down(std::size_t i) noexcept {
    const std::size_t n = slots_.size();
    if (i >= n) return;
    state* s = slots_[i];
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && slots_[child + 1]->timer_due < slots_[child]->timer_due) ++child;
      if (s->timer_due <= slots_[child]->timer_due) break;
      place(i, slots_[child]);
      i = child;
    }
    place(i, s);
  }

  std::vector<state*> slots_;
};

}  // namespace detail
}  // namespace ctoken

#endif
