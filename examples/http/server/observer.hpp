// What the server tells the outside about its requests: an observer hook for access logs,
// metrics, traces and benchmark events, so none of that sits in the request path itself.
//
// The server calls an observer from its own threads (the accept thread and every connection
// thread), concurrently: an implementation must be thread-safe. A call runs on the request's
// connection thread, so a slow observer slows that request (not the others). An exception
// thrown by an observer ends that connection (it is caught and reported through message()).
#ifndef CTOKEN_EXAMPLE_HTTP_OBSERVER_HPP
#define CTOKEN_EXAMPLE_HTTP_OBSERVER_HPP

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>

#include "http_parser.hpp"

namespace http {

// CLOCK_MONOTONIC in nanoseconds: the clock of every time in request_outcome, and the clock a
// client on the same machine reads. Thread-safe, one system call (vDSO).
std::int64_t monotonic_ns() noexcept;

// The name used in logs for a cancellation reason: "client_disconnected", "connection_reset",
// "timed_out", "shutdown", "canceled"; "none" for no error; "<category>:<value>" otherwise.
std::string reason_name(const std::error_code& reason);

// How one request ended, as the server saw it.
struct request_outcome {
  // The status sent; for a request whose client left before an answer, 499 (logged only,
  // nginx's "client closed request"); 503 on shutdown and 504 at the deadline are sent.
  int status = 0;
  // Why the request's token was cancelled; empty if it was not, or only after the whole
  // response had been sent (the client read it and left: not about this request).
  std::error_code reason;
  // The handler returned a response and all of it was sent.
  bool completed = false;
  std::int64_t started_ns = 0;   // when the handler was about to run
  std::int64_t finished_ns = 0;  // when the handler and the response had ended
  // When the request's token was cancelled (0: it was not). For a disconnect this is the
  // watcher's clock reading just before its Cancel(); for any other cause, a callback's.
  std::int64_t cancelled_ns = 0;
};

// The hook. Every member has an empty default: override what you need. request.id (the
// request id, see server_config::request_id) names the request in every call.
class observer {
 public:
  virtual ~observer() = default;
  // The server listens on `bind`:`port`; called by server::start() before it returns.
  virtual void listening(const std::string& bind, std::uint16_t port) {
    (void)bind;
    (void)port;
  }
  // A request's handler is about to run, on the request's connection thread.
  virtual void request_started(const request& req, std::string_view peer) {
    (void)req;
    (void)peer;
  }
  // The request ended (handled, cancelled or failed), on its connection thread, after its
  // response (if any) was written and before the next request of that connection is read.
  virtual void request_finished(const request& req, std::string_view peer, const request_outcome& outcome) {
    (void)req;
    (void)peer;
    (void)outcome;
  }
  // A server-level message: errors outside a request, drain and overload notices.
  virtual void message(const std::string& line) { (void)line; }
};

// One access-log line: peer "METHOD target HTTP/1.x" status [reason] [extra] <ms>ms id=<id>.
// `extra` (e.g. "steps=3/10") is inserted before the duration. Cost: one string.
std::string access_log_line(const request& req, std::string_view peer, const request_outcome& outcome,
                            std::string_view extra = {});

// The observer a server needs at least: every message and one access-log line per request to
// stderr, whole lines (a mutex serialises them). Thread-safe.
class stderr_log : public observer {
 public:
  void listening(const std::string& bind, std::uint16_t port) override;
  void request_finished(const request& req, std::string_view peer, const request_outcome& outcome) override;
  void message(const std::string& line) override;

 private:
  std::mutex mutex_;
};

}  // namespace http

#endif
