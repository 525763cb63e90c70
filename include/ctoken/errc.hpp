// ctoken — why a token was cancelled: errc, cancellation_category(), make_error_code.
#ifndef CTOKEN_ERRC_HPP
#define CTOKEN_ERRC_HPP

#include <string>
#include <system_error>

namespace ctoken {

/// Why a token was cancelled. A reason is a plain std::error_code, so any category works
/// (e.g. std::errc::timed_out); these are the ones ctoken itself uses. Zero is "no reason".
enum class errc {
  canceled = 1,         ///< Cancel() without a reason, or with an empty error_code.
  timed_out,            ///< a CancelAfter() deadline fired.
  client_disconnected,  ///< the peer closed its side of the connection (recv() returned 0: FIN).
  connection_reset,     ///< the connection was reset (ECONNRESET, EPIPE: RST).
  shutdown,             ///< the process or server is shutting down.
};

namespace detail {

class cancellation_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ctoken"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::canceled:
        return "operation canceled";
      case errc::timed_out:
        return "operation timed out";
      case errc::client_disconnected:
        return "client disconnected";
      case errc::connection_reset:
        return "connection reset by peer";
      case errc::shutdown:
        return "shutting down";
    }
    return "unknown cancellation reason";
  }

  // Lets a reason compare equal to the portable std::errc it corresponds to, e.g.
  // `token.Reason() == std::errc::timed_out` holds after a CancelAfter deadline.
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::canceled:
        return std::make_error_condition(std::errc::operation_canceled);
      case errc::timed_out:
        return std::make_error_condition(std::errc::timed_out);
      case errc::client_disconnected:
        return std::make_error_condition(std::errc::connection_aborted);
      case errc::connection_reset:
        return std::make_error_condition(std::errc::connection_reset);
      case errc::shutdown:
        break;
    }
    return std::error_condition(value, *this);
  }
};

}  // namespace detail

/// The category of ctoken::errc; name() is "ctoken". One object per program (an inline
/// function's static), so comparisons across translation units and shared objects built from
/// the same headers work. Thread-safe, never allocates.
inline const std::error_category& cancellation_category() noexcept {
  static const detail::cancellation_category_impl category;
  return category;
}

/// Makes `ctoken::errc::timed_out` usable wherever a std::error_code is expected.
inline std::error_code make_error_code(errc e) noexcept {
  return std::error_code(static_cast<int>(e), cancellation_category());
}

}  // namespace ctoken

namespace std {
template <>
struct is_error_code_enum<ctoken::errc> : true_type {};
}  // namespace std

#endif
