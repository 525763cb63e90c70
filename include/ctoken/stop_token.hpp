// ctoken — bridges to and from std::stop_token (C++20, needs <stop_token>).
//
// Both bridges are RAII objects: the link between the two worlds lasts exactly as long as the
// bridge object. Neither polls: each registers one callback on the other side.
#ifndef CTOKEN_STOP_TOKEN_HPP
#define CTOKEN_STOP_TOKEN_HPP

#include <version>

#if !defined(__cpp_lib_jthread)
#error "<ctoken/stop_token.hpp> needs C++20 std::stop_token (__cpp_lib_jthread); compile with -std=c++20"
#else

#include <stop_token>
#include <utility>

#include <ctoken/registration.hpp>
#include <ctoken/source.hpp>
#include <ctoken/token.hpp>

namespace ctoken {

/// std::stop_token → ctoken: owns a CancellationTokenSource that is cancelled (reason
/// errc::canceled) when `stop` is stop-requested, for as long as the bridge lives.
///
/// If stop was already requested, Token() is cancelled before the constructor returns. When the
/// bridge is destroyed un-cancelled, its token can never be cancelled any more (its only source
/// is gone). The std::stop_callback runs on the thread that calls request_stop(), and so do the
/// token's callbacks. Neither copyable nor movable (it contains a std::stop_callback).
/// One source allocation; thread-safe like the types it joins.
class StopTokenBridge {
 public:
  explicit StopTokenBridge(std::stop_token stop) : source_(), on_stop_(std::move(stop), canceller{source_}) {}

  StopTokenBridge(const StopTokenBridge&) = delete;
  StopTokenBridge& operator=(const StopTokenBridge&) = delete;

  /// The token that follows the std::stop_token. Thread-safe; one atomic increment.
  CancellationToken Token() const noexcept { return source_.Token(); }

 private:
  struct canceller {
    CancellationTokenSource source;  // a second handle: keeps the source alive for the callback
    void operator()() { source.Cancel(make_error_code(errc::canceled)); }
  };

  CancellationTokenSource source_;
  std::stop_callback<canceller> on_stop_;
};

/// ctoken → std::stop_token: requests stop on a std::stop_source when `token` is cancelled,
/// for as long as the bridge lives; so ctoken can drive std::jthread,
/// std::condition_variable_any::wait(lock, stop_token, pred) and any other std API.
///
/// By default the bridge owns a fresh std::stop_source; pass an existing one (e.g.
/// `thread.get_stop_source()` of a std::jthread) to drive that instead. If the token is already
/// cancelled, stop is requested before the constructor returns. request_stop() runs on the
/// cancelling thread, inside the token's callback (and so do the std::stop_callbacks it
/// triggers). Never allocates beyond what std::stop_source does. Neither copyable nor movable.
class StopSourceBridge {
 public:
  explicit StopSourceBridge(const CancellationToken& token, std::stop_source target = std::stop_source())
      : target_(std::move(target)), on_cancel_(token, requester{target_}) {}

  StopSourceBridge(const StopSourceBridge&) = delete;
  StopSourceBridge& operator=(const StopSourceBridge&) = delete;

  /// A std::stop_token that is stop-requested once the ctoken token is cancelled. Thread-safe;
  /// costs a copy of a std::stop_token (one atomic increment).
  std::stop_token StopToken() const noexcept { return target_.get_token(); }

  /// The std::stop_source the bridge requests stop on (a copy sharing its stop state).
  /// Thread-safe; one atomic increment.
  std::stop_source StopSource() const noexcept { return target_; }

  /// Deprecated spelling of StopToken() (one accessor style: PascalCase, as StopTokenBridge's
  /// Token()); removed in the next release.
  [[deprecated("use StopToken()")]] std::stop_token get_token() const noexcept { return StopToken(); }

  /// Deprecated spelling of StopSource(); removed in the next release.
  [[deprecated("use StopSource()")]] std::stop_source get_stop_source() const noexcept { return StopSource(); }

 private:
  struct requester {
    std::stop_source target;  // a copy shares the same stop state
    void operator()() noexcept { target.request_stop(); }
  };

  std::stop_source target_;
  CancellationCallback<requester> on_cancel_;
};

}  // namespace ctoken

#endif
#endif
