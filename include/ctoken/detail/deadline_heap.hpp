// ctoken — the binary min-heap of armed deadlines that every time provider uses.
//
// Each armed source is one slot (a state pointer, 8 bytes) in a std::vector; the state's
// deadline_slot remembers its index and due time (fields every state has anyway), so arm,
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
  static constexpr std::size_t npos = deadline_slot::npos;

  bool empty() const noexcept { return slots_.empty(); }
  std::size_t size() const noexcept { return slots_.size(); }
  state* top() const noexcept { return slots_.front(); }
  // When the earliest deadline falls due (ns on the provider's clock); the heap must not be empty.
  std::int64_t top_due() const noexcept { return slot(slots_.front()).due_; }
  std::size_t capacity_bytes() const noexcept { return slots_.capacity() * sizeof(state*); }

  // Arms or re-arms s at `due` (ns on the provider's clock). May throw bad_alloc (nothing changes).
  void arm(state* s, std::int64_t due) {
    if (slot(s).index_ == npos) {
      slots_.push_back(s);  // may throw before anything changed
      slot(s).index_ = slots_.size() - 1;
      slot(s).due_ = due;
      sift_up(slot(s).index_);
      return;
    }
    const std::int64_t before = slot(s).due_;
    slot(s).due_ = due;
    if (due < before) {
      sift_up(slot(s).index_);
    } else {
      sift_down(slot(s).index_);
    }
  }

  // Removes s if armed; returns whether it was.
  bool remove(state* s) noexcept {
    const std::size_t i = slot(s).index_;
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
    slot(s).index_ = npos;
    return true;
  }

 private:
  static deadline_slot& slot(state* s) noexcept { return s->timer(); }
  static const deadline_slot& slot(const state* s) noexcept { return s->timer(); }

  void place(std::size_t i, state* s) noexcept {
    slots_[i] = s;
    slot(s).index_ = i;
  }
  void sift_up(std::size_t i) noexcept {
    state* s = slots_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (slot(slots_[parent]).due_ <= slot(s).due_) break;
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
      if (child + 1 < n && slot(slots_[child + 1]).due_ < slot(slots_[child]).due_) ++child;
      if (slot(s).due_ <= slot(slots_[child]).due_) break;
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
