// ctoken — the one door through which the public types reach each other's shared state.
#ifndef CTOKEN_DETAIL_ACCESS_HPP
#define CTOKEN_DETAIL_ACCESS_HPP

namespace ctoken {
namespace detail {

class state;

// Befriended by CancellationToken and CancellationTokenSource, so that other headers (and
// the optional interop headers) can get at the state without making it public API.
struct access {
  template <class Handle>
  static state* state_of(const Handle& h) noexcept {
    return h.state_;
  }
  // Wraps a state in a new handle that takes over one reference the caller already holds.
  template <class Handle>
  static Handle adopt(state* s) noexcept {
    return Handle(s, 0);
  }
};

}  // namespace detail
}  // namespace ctoken

#endif
