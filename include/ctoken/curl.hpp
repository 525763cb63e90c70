// ctoken — a libcurl transfer that stops when a CancellationToken is cancelled (opt-in: only
// users who include this header need libcurl; <ctoken/ctoken.hpp> never includes it).
//
//   CURL* easy = curl_easy_init();
//   curl_easy_setopt(easy, CURLOPT_URL, "http://127.0.0.1:8080/report");
//   CURLcode rc = ctoken::curl::Perform(easy, request_token);
//   // rc == CURLE_ABORTED_BY_CALLBACK: the token was cancelled and the connection was closed
#ifndef CTOKEN_CURL_HPP
#define CTOKEN_CURL_HPP

#include <curl/curl.h>

#include <system_error>

#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

#if !defined(LIBCURL_VERSION_NUM) || LIBCURL_VERSION_NUM < 0x074400
#error "<ctoken/curl.hpp> needs libcurl 7.68.0 or newer (curl_multi_poll and curl_multi_wakeup)"
#endif

namespace ctoken {
namespace curl {

namespace detail {

// The multi handle a thread drives its transfers with. Kept for the thread's lifetime so that
// libcurl's connection cache (which belongs to the multi handle) keeps connections alive from
// one Perform to the next, as curl_easy_perform's hidden multi handle does.
struct thread_multi {
  CURLM* multi = nullptr;
  bool busy = false;  // a Perform on this thread is running (we are inside one of its callbacks)
  thread_multi() noexcept = default;
  thread_multi(const thread_multi&) = delete;
  thread_multi& operator=(const thread_multi&) = delete;
  ~thread_multi() { release(); }
  void release() noexcept {
    if (multi != nullptr) curl_multi_cleanup(multi);
    multi = nullptr;
  }
};

inline thread_multi& this_thread_multi() noexcept {
  thread_local thread_multi m;
  return m;
}

// The token's callback: interrupts curl_multi_poll on the thread running the transfer.
// curl_multi_wakeup is documented as callable from any thread; it writes to a socket pair that
// curl_multi_poll watches, so a wake-up that arrives before the poll is not lost.
struct wakeup {
  CURLM* multi;
  void operator()() const noexcept { (void)curl_multi_wakeup(multi); }
};

// The mapping curl_easy_perform itself applies to a failing multi call.
inline CURLcode from_multi(CURLMcode mc, CURLcode otherwise) noexcept {
  return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : otherwise;
}

inline CURLcode perform_on(CURLM* multi, CURL* easy, const CancellationToken& token, std::error_code& reason) noexcept {
  const CURLMcode added = curl_multi_add_handle(multi, easy);
  if (added != CURLM_OK) return from_multi(added, CURLE_FAILED_INIT);

  CURLcode result = CURLE_OK;
  bool done = false;
  {
    // Registered after the handle is added, unregistered before it is removed; its destructor
    // waits for a wake-up running on the cancelling thread, so none outlives this block.
    CancellationCallback<wakeup> on_cancel(token, wakeup{multi});
    for (;;) {
      // Checked before every step: once cancelled, curl gets no further chance to send.
      if (token.IsCancellationRequested()) break;
      int running = 0;
      const CURLMcode mc = curl_multi_perform(multi, &running);
      if (mc != CURLM_OK) {
        result = from_multi(mc, CURLE_BAD_FUNCTION_ARGUMENT);
        done = true;
        break;
      }
      if (running == 0) {
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
          if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
            result = msg->data.result;
            done = true;
          }
        }
        if (!done) result = CURLE_FAILED_INIT;  // not expected: the handle left without a result
        done = true;
        break;
      }
      // Sleeps until a socket is ready, curl's own timer is due, or the token's wake-up.
      const CURLMcode pc = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
      if (pc != CURLM_OK) {
        result = from_multi(pc, CURLE_BAD_FUNCTION_ARGUMENT);
        done = true;
        break;
      }
    }
  }
  // Removing a handle whose transfer is not finished makes curl close its connection (the
  // peer sees the close) and leaves the easy handle ready for the next transfer.
  (void)curl_multi_remove_handle(multi, easy);
  if (!done) {
    reason = token.Reason();
    return CURLE_ABORTED_BY_CALLBACK;
  }
  return result;
}

}  // namespace detail

/// Performs the transfer set up on `easy`, like curl_easy_perform, but returns as soon as
/// `token` is cancelled: the result is then CURLE_ABORTED_BY_CALLBACK (what curl itself returns
/// when a progress callback aborts) and `reason` receives the token's Reason(); otherwise
/// `reason` is left untouched and the result is the transfer's own, exactly as libcurl reports
/// it (CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, ...). A transfer that finished before
/// the cancellation was seen keeps its own result.
///
/// How: the transfer runs on a multi handle private to the calling thread, driven with
/// curl_multi_perform + curl_multi_poll; a callback registered on the token calls
/// curl_multi_wakeup, so the poll ends within microseconds of Cancel() in whichever phase the
/// transfer is (connecting, TLS handshake, sending, waiting for the response head, reading the
/// body). The easy handle is then removed from the multi handle, which closes its connection
/// (a server sees the client leave), and it can be reused for the next transfer at once.
/// An already-cancelled token returns before anything is resolved, connected or sent.
///
/// Cost: one multi handle per thread, created by the thread's first call and kept until the
/// thread exits (see ReleaseThreadResources), which also keeps idle connections for reuse as
/// curl_easy_perform does; per call one curl_multi_add_handle/remove_handle and one in-place
/// registration on the token (no allocation by ctoken). A Perform started from inside a curl
/// callback of another Perform on the same thread uses a temporary multi handle instead (curl
/// forbids re-entering a multi handle), without connection reuse.
///
/// Limits:
/// - Resolving: with libcurl's threaded resolver (Debian's libcurl: feature AsynchDNS) the
///   call returns promptly, but removing the handle waits for the resolver thread's
///   getaddrinfo() to finish unless the easy handle has CURLOPT_QUICK_EXIT set to 1 (libcurl
///   7.87.0 and newer), which lets that thread finish on its own. With the synchronous resolver
///   (a libcurl built without AsynchDNS) resolving cannot be interrupted at all.
/// - Work libcurl does inside one step is not interrupted. The one that shows: libcurl reads
///   its whole CA bundle (CURLOPT_CAINFO) right after sending the TLS ClientHello, for every
///   new connection (Debian 12's 7.88 does not cache it), which takes tens of milliseconds; a
///   cancellation during that read returns when it ends. Setting CURLOPT_CAINFO to NULL and
///   CURLOPT_CAPATH to a hashed directory (Debian: /etc/ssl/certs) makes OpenSSL look
///   certificates up lazily instead, and a reused connection skips the handshake altogether.
/// - Only the easy interface: the handle must not be in a multi handle of yours. Callbacks of
///   the transfer (write, read, progress ...) run on the calling thread, as with
///   curl_easy_perform; a cancellation is seen between two of them, never inside one.
/// - Cancellation of a transfer in flight closes its connection: nothing of it is reused.
///
/// Thread-safety: `easy` must not be used by another thread during the call (libcurl's rule);
/// any number of threads may call Perform with their own handles; the token may be cancelled
/// from any thread. libcurl must be initialised: curl_global_init is thread-safe only in
/// libcurl 7.84.0 and newer built with the `threadsafe` feature (Debian 12's is); elsewhere
/// call it once in main() before starting threads. May block (it is a transfer); noexcept.
inline CURLcode Perform(CURL* easy, const CancellationToken& token, std::error_code& reason) noexcept {
  if (easy == nullptr) return CURLE_BAD_FUNCTION_ARGUMENT;
  if (token.IsCancellationRequested()) {
    reason = token.Reason();
    return CURLE_ABORTED_BY_CALLBACK;
  }
  detail::thread_multi& mine = detail::this_thread_multi();
  if (mine.busy) {  // re-entered from a callback of this thread's transfer: a private handle
    CURLM* temporary = curl_multi_init();
    if (temporary == nullptr) return CURLE_OUT_OF_MEMORY;
    const CURLcode rc = detail::perform_on(temporary, easy, token, reason);
    curl_multi_cleanup(temporary);
    return rc;
  }
  if (mine.multi == nullptr) {
    mine.multi = curl_multi_init();
    if (mine.multi == nullptr) return CURLE_OUT_OF_MEMORY;
  }
  mine.busy = true;
  const CURLcode rc = detail::perform_on(mine.multi, easy, token, reason);
  mine.busy = false;
  return rc;
}

/// As Perform(easy, token, reason) without asking for the reason: CURLE_ABORTED_BY_CALLBACK
/// when the token was cancelled first (token.Reason() then tells why).
inline CURLcode Perform(CURL* easy, const CancellationToken& token) noexcept {
  std::error_code ignored;
  return Perform(easy, token, ignored);
}

/// Closes the calling thread's multi handle and the idle connections it keeps (the next
/// Perform on this thread creates a new one). A thread's handle is otherwise closed when the
/// thread exits, which for the main thread is after main() returns (before the destructors of
/// static objects): call this on the main thread before a curl_global_cleanup() made in main()
/// itself. Does nothing when called from inside a transfer's callback on this thread.
/// Thread-safe: it touches only the calling thread's handle. noexcept.
inline void ReleaseThreadResources() noexcept {
  detail::thread_multi& mine = detail::this_thread_multi();
  if (!mine.busy) mine.release();
}

}  // namespace curl
}  // namespace ctoken

#endif
