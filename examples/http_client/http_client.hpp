// A small HTTP/1.1 client over raw POSIX sockets whose every phase — connect, send, waiting for
// the response head, reading the body — stops at once when a ctoken::CancellationToken is
// cancelled, and reports why. Linux (it uses poll, eventfd through CancellationFd, MSG_NOSIGNAL).
//
//   ctoken::CancellationTokenSource user;                       // e.g. a Cancel button
//   http_client::result r = http_client::Get("127.0.0.1", 8080, "/poll", user.Token());
//   if (r.ok())                 use(r.status, r.body);
//   else if (r.cancelled())     log("cancelled: ", r.error.message());   // == user.Token().Reason()
//   else if (r.timed_out())     log("no answer within options::timeout");
//   else                        log("failed in ", to_string(r.where), ": ", r.error.message());
//
// A blocking recv() does not look at any token. There are two reliable ways to interrupt it,
// both shown here and chosen with options::style (docs/http-client.md compares them):
//
// cancel_style::shutdown_socket — a callback registered on the token calls
//   ::shutdown(fd, SHUT_RDWR). The socket is an ordinary blocking socket; shutdown() changes its
//   state for good (the read side reports end of stream, the write side EPIPE, a pending connect
//   is aborted), so a recv/send/poll that is blocked wakes at once and one that starts later
//   fails at once: no wake-up can be lost between "check the token" and "block".
//   Why shutdown() and not close(): close() from another thread neither reliably wakes the call
//   blocked on that descriptor (on Linux the blocked call keeps the file open and goes on
//   waiting) nor keeps the number: the number is free the moment close() returns, another
//   thread's socket()/accept()/open() may get it, and the owner's next recv() — or its own
//   close() — then acts on a stranger's file. shutdown() leaves the descriptor allocated, so the
//   number cannot be reused until the owner closes it; and the owner closes it only after
//   disposing the registration, which waits for a callback running on another thread, so the
//   callback can never touch a closed or reused number.
//   Costs: no extra descriptor; the shutdown() system call runs on the cancelling thread (the
//   thread that calls Cancel(), or the library's timer thread for a deadline), inside Cancel().
//   It also sends a FIN to the server at once — for a proxy that is exactly the point: the
//   server upstream sees its client leave.
//
// cancel_style::poll_fd — the socket is non-blocking and every wait is a poll() on the socket
//   together with a ctoken::CancellationFd (an eventfd that turns readable on cancellation).
//   The cancelling thread does nothing but one write() to the eventfd; all socket work stays
//   on the requesting thread, which notices the cancellation, stops and closes the socket
//   itself. Costs: one eventfd (a descriptor) and one registration per request, a poll() before
//   every read and write; an event loop that already polls gets it for free.
//
// Everything the server controls is bounded: the response head (options::max_head_bytes), the
// body (options::max_body_bytes) and the whole exchange (options::timeout, a deadline applied
// through a linked CancellationTokenSource and CancelAfter, so it wakes the same way a
// cancellation does). Host names are not resolved: getaddrinfo() blocks and cannot be
// interrupted, so `host` must be a numeric IPv4 or IPv6 address (resolve names beforehand, on
// a thread you can abandon, or with getaddrinfo_a).
//
// One request per connection ("Connection: close"); no TLS, no redirects, no pooling. The
// responses read are HTTP/1.0 and 1.1 with Content-Length, chunked, or up to the end of the
// stream. This folder is a template: it builds alone (CMakeLists.txt) and knows nothing of any
// server; the demo's /proxy and long poll (examples/demo/) use it from above.
#ifndef CTOKEN_EXAMPLE_HTTP_CLIENT_HPP
#define CTOKEN_EXAMPLE_HTTP_CLIENT_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <ctoken/ctoken.hpp>

namespace http_client {

// How a cancellation reaches a socket that is waiting (see the top of this file).
enum class cancel_style {
  shutdown_socket,  // a registration shutdown()s the blocking socket from the cancelling thread
  poll_fd,          // a non-blocking socket polled together with a CancellationFd
};

struct options {
  cancel_style style = cancel_style::shutdown_socket;
  // The whole exchange, from connect to the last body byte. Its expiry is reported as
  // outcome::timed_out, distinct from the caller's token being cancelled.
  // std::chrono::milliseconds::max() (or <= 0): none; the caller's token is the only limit.
  std::chrono::milliseconds timeout{30000};
  std::size_t max_head_bytes = 16 * 1024;  // status line + headers + blank line
  std::size_t max_body_bytes = 1 << 20;    // decoded body
  std::string extra_headers;               // header lines to add, each ending in "\r\n"
};

// How the request ended.
enum class outcome {
  ok,         // a whole response arrived (any status: a 404 is an ok exchange)
  cancelled,  // the caller's token was cancelled; error == token.Reason()
  timed_out,  // options::timeout passed first; error == ctoken::errc::timed_out
  failed,     // an I/O error (error: std::system_category errno) or a bad response (error: http_client::errc)
};

// The phase a request was in when it ended (done for a whole response).
enum class phase { connect, send, head, body, done };

// The ways a response can be refused.
enum class errc {
  bad_address = 1,  // host is not a numeric IPv4/IPv6 address
  bad_response,     // not HTTP/1.x, or malformed framing
  head_too_large,   // the head exceeds options::max_head_bytes
  body_too_large,   // the body exceeds options::max_body_bytes
  closed_early,     // the server closed the connection before the response was whole
};
const std::error_category& client_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

struct header {
  std::string name;  // lower-cased
  std::string value;
};

struct result {
  outcome kind = outcome::failed;
  phase where = phase::connect;
  std::error_code error;  // empty for ok
  // What arrived. Complete only for ok; after a cancellation or an error, whatever had been
  // received is kept (status 0 if no head arrived), for diagnostics.
  int status = 0;
  std::vector<header> headers;
  std::string body;

  bool ok() const noexcept { return kind == outcome::ok; }
  bool cancelled() const noexcept { return kind == outcome::cancelled; }
  bool timed_out() const noexcept { return kind == outcome::timed_out; }
  // The value of the first header with that (lower-case) name, or nullptr.
  const std::string* find(std::string_view lower_name) const noexcept;
};

// GET `target` (origin-form: "/path?query") from host:port. Blocks until the response is whole,
// the token is cancelled, options::timeout passes or something fails; never throws for any of
// these (std::bad_alloc and std::system_error from creating the eventfd or the linked source
// may escape). Thread-safe: any number of requests may run at once; the token may be
// cancelled from any thread (or by a deadline) at any moment, also before the call.
result Get(const std::string& host, std::uint16_t port, std::string_view target, const ctoken::CancellationToken& token,
           const options& opts = {});

// Any method, with an optional body (sent with Content-Length when non-empty or when the
// method is POST/PUT). A HEAD response has no body.
result Request(std::string_view method, const std::string& host, std::uint16_t port, std::string_view target,
               std::string_view body, const ctoken::CancellationToken& token, const options& opts = {});

const char* to_string(outcome o) noexcept;
const char* to_string(phase p) noexcept;
const char* to_string(cancel_style s) noexcept;

}  // namespace http_client

namespace std {
template <>
struct is_error_code_enum<http_client::errc> : true_type {};
}  // namespace std

#endif
