// The demo server's two outputs and the observer that fills them: the human access log
// (stderr) and, with --events, one machine-readable line per request lifecycle event (stdout),
// for tests, tools and benchmarks.
//
//   READY <port>
//   START <id> <ns>
//   CANCELLED <id> <ns> reason=<name> steps=<n> signal_ns=<ns>
//   DONE <id> <ns> steps=<n>                 (status=<n> added when the handler failed)
//   CALL_ENDED <id> <ns> via=<sqlite|postgres|curl> result=<what it returned>
//
// Timestamps are CLOCK_MONOTONIC nanoseconds, the same clock a client on this machine reads.
// signal_ns is when the request's token was cancelled: for a client that left, taken by the
// disconnect watcher just before its Cancel(); for any other cause, by a callback on the token.
// The CANCELLED line's own <ns> is later: when the handler had stopped. CALL_ENDED is written by
// the routes that spend their time in a library (/sqlite, /postgres, /fetch) the moment that
// call returned: result=interrupted (SQLite's SQLITE_INTERRUPT), canceled (PostgreSQL's SQLSTATE
// 57014), aborted (libcurl's CURLE_ABORTED_BY_CALLBACK), ok, or the library's error name.
// <id> is the request id (sanitised: no spaces).
#ifndef CTOKEN_EXAMPLE_DEMO_EVENTS_HPP
#define CTOKEN_EXAMPLE_DEMO_EVENTS_HPP

#include <functional>
#include <string>
#include <utility>

namespace demo {

// Where lines go. Thread-safe if the sinks are: a sink is called from any server thread, with
// no lock held (it is the caller's code), so it must be thread-safe and keep each line whole
// itself. The defaults do (one fwrite per line, which stdio locks); they write to stdout
// (events, flushed per line) or stderr (log). Tests pass their own.
class output {
 public:
  using sink = std::function<void(const std::string& line)>;
  output(sink events, sink log) : events_(std::move(events)), log_(std::move(log)) {}

  bool events_enabled() const noexcept { return static_cast<bool>(events_); }
  void event(const std::string& line);
  void log(const std::string& line);

  static sink stdout_sink();
  static sink stderr_sink();

 private:
  sink events_;
  sink log_;
};

}  // namespace demo

#endif
