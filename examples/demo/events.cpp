#include "events.hpp"

#include <cstdio>

namespace demo {

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

}  // namespace demo
