// The demo server's two outputs and the observer that fills them: the human access log
// (stderr) and, with --events, one machine-readable line per request lifecycle event (stdout),
// for tests, tools and benchmarks.
//
//   READY <port>
//   START <id> <ns>
//   CANCELLED <id> <ns> reason=<name> steps=<n> signal_ns=<ns>
//   DONE <id> <ns> steps=<n>                 (status=<n> added when the handler failed)
//
// Timestamps are CLOCK_MONOTONIC nanoseconds, the same clock a client on this machine reads.
// signal_ns is when the request's token was cancelled: for a client that left, taken by the
// disconnect watcher just before its Cancel(); for any other cause, by a callback on the token.
// The CANCELLED line's own <ns> is later: when the handler had stopped. <id> is the request id
// (sanitised: no spaces).
#ifndef CTOKEN_EXAMPLE_DEMO_EVENTS_HPP
#define CTOKEN_EXAMPLE_DEMO_EVENTS_HPP

#include <functional>
#include <mutex>
#include <string>

namespace demo {

// Where lines go. Thread-safe: each line is written whole. The default writes to stdout
// (events) or stderr (log) and flushes per line; tests pass their own.
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
  std::mutex mutex_;
  sink events_;
  sink log_;
};

}  // namespace demo

#endif
