#include "observer.hpp"

#include <cstdio>
#include <ctime>

#include <ctoken/errc.hpp>

namespace http {

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string reason_name(const std::error_code& reason) {
  if (!reason) return "none";
  if (reason.category() == ctoken::cancellation_category()) {
    switch (static_cast<ctoken::errc>(reason.value())) {
      case ctoken::errc::canceled:
        return "canceled";
      case ctoken::errc::timed_out:
        return "timed_out";
      case ctoken::errc::client_disconnected:
        return "client_disconnected";
      case ctoken::errc::connection_reset:
        return "connection_reset";
      case ctoken::errc::shutdown:
        return "shutdown";
    }
  }
  return std::string(reason.category().name()) + ":" + std::to_string(reason.value());
}

std::string access_log_line(const request& req, std::string_view peer, const request_outcome& outcome,
                            std::string_view extra) {
  // Appended piece by piece: g++ 12 at -O3 reports a false -Wrestrict inside libstdc++ for
  // `"literal" + std::string&&`, and this builds no temporaries either.
  std::string line(peer);
  line += " \"";
  line += req.method;
  line += ' ';
  line += req.target;
  line += " HTTP/1.";
  line += std::to_string(req.version_minor);
  line += "\" ";
  line += std::to_string(outcome.status);
  if (outcome.reason) {
    line += ' ';
    line += reason_name(outcome.reason);
  }
  if (!extra.empty()) {
    line += ' ';
    line += extra;
  }
  const std::int64_t ms = (outcome.finished_ns - outcome.started_ns) / 1000000;
  line += ' ';
  line += std::to_string(ms);
  line += "ms id=";
  line += req.id;
  return line;
}

void stderr_log::listening(const std::string& bind, std::uint16_t port) {
  message("listening on " + bind + ":" + std::to_string(port));
}

void stderr_log::request_finished(const request& req, std::string_view peer, const request_outcome& outcome) {
  message(access_log_line(req, peer, outcome));
}

void stderr_log::message(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fputc('\n', stderr);
}

}  // namespace http
