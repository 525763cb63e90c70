// ctoken — OperationCanceledException, what ThrowIfCancellationRequested() throws.
#ifndef CTOKEN_EXCEPTION_HPP
#define CTOKEN_EXCEPTION_HPP

#include <ctoken/token.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

namespace ctoken {

/// Thrown by CancellationToken::ThrowIfCancellationRequested(). Carries the token (so a
/// handler can tell "my request was cancelled" from "somebody else's operation was") and the
/// reason. Copying it never throws (the message is shared, as in std::runtime_error).
class OperationCanceledException : public std::exception {
 public:
  /// Builds the message from the token's reason; allocates once for the message.
  explicit OperationCanceledException(CancellationToken token)
      : token_(std::move(token)), message_(describe(token_.Reason())) {}

  /// The token whose cancellation this reports.
  const CancellationToken& Token() const noexcept { return token_; }

  /// Why it was cancelled; the same as Token().Reason().
  std::error_code Reason() const noexcept { return token_.Reason(); }

  /// "operation canceled: <reason message> [<category>:<value>]".
  const char* what() const noexcept override { return message_.what(); }

 private:
  static std::string describe(const std::error_code& reason) {
    std::string text = "operation canceled";
    if (reason) {
      text += ": ";
      text += reason.message();
      text += " [";
      text += reason.category().name();
      text += ':';
      text += std::to_string(reason.value());
      text += ']';
    }
    return text;
  }

  CancellationToken token_;
  std::runtime_error message_;  // a shared, nothrow-copyable string
};

namespace detail {

[[noreturn]] inline void throw_canceled(const CancellationToken& token) {
#if defined(CTOKEN_NO_EXCEPTIONS)
  const std::error_code reason = token.Reason();
  std::fprintf(stderr, "ctoken: operation canceled (%s) and exceptions are disabled: aborting\n",
               reason.message().c_str());
  std::abort();
#else
  throw OperationCanceledException(token);
#endif
}

}  // namespace detail
}  // namespace ctoken

#endif
