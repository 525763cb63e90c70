#include "events.hpp"

#include <cstdio>
#include <ctime>

#include <ctoken/errc.hpp>

namespace http {

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
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

void output::event(const std::string& line) {
  if (!events_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  events_(line);
}

void output::log(const std::string& line) {
  if (!log_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  log_(line);
}

output::sink output::stdout_sink() {
  return [](const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  };
}

output::sink output::stderr_sink() {
  return [](const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fputc('\n', stderr);
  };
}

}  // namespace http
