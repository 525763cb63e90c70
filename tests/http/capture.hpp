// The example server's lifecycle events (READY, START, DONE, CANCELLED: see events.hpp) and its
// access log, captured in memory: a recorder gives demo::output its two sinks (called from the
// server's threads) and lets the test's thread wait, with a deadline, for the line it expects.
#ifndef CTOKEN_TESTS_HTTP_CAPTURE_HPP
#define CTOKEN_TESTS_HTTP_CAPTURE_HPP

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events.hpp"

namespace http_test {

struct event {
  std::string kind;  // READY, START, DONE, CANCELLED
  std::uint64_t id = 0;
  std::int64_t ns = 0;
  std::string reason;  // CANCELLED only
  int steps = -1;
  std::int64_t signal_ns = 0;  // CANCELLED only: when the request's token was cancelled
  std::string line;
};

inline event parse_event(const std::string& line) {
  event e;
  e.line = line;
  std::istringstream in(line);
  in >> e.kind;
  if (e.kind == "READY") return e;
  in >> e.id >> e.ns;
  std::string field;
  while (in >> field) {
    const std::size_t eq = field.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = field.substr(0, eq);
    const std::string value = field.substr(eq + 1);
    if (key == "reason") e.reason = value;
    if (key == "steps") e.steps = std::atoi(value.c_str());
    if (key == "signal_ns") e.signal_ns = std::atoll(value.c_str());
  }
  return e;
}

// The sinks of demo::output: called from the server's threads, read by the test's thread.
class recorder {
 public:
  using milliseconds = std::chrono::milliseconds;

  demo::output::sink events_sink() {
    return [this](const std::string& line) { add(line, true); };
  }
  demo::output::sink log_sink() {
    return [this](const std::string& line) { add(line, false); };
  }

  // The first event of that kind for that request, waiting at most `timeout` for it.
  std::optional<event> wait_event(std::string_view kind, std::uint64_t id,
                                  milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mutex_);
    std::optional<event> found;
    cv_.wait_for(lock, timeout, [&] {
      found = find_locked(kind, id);
      return found.has_value();
    });
    return found;
  }

  // Waits until at least `n` events of that kind arrived (any request).
  bool wait_count(const std::string& kind, std::size_t n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return kind_count_[kind] >= n; });
  }

  std::size_t count(std::string_view kind, std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t n = 0;
    if (auto it = by_id_.find(id); it != by_id_.end()) {
      for (const event& e : it->second) n += e.kind == kind ? 1u : 0u;
    }
    return n;
  }

  std::optional<event> find(std::string_view kind, std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return find_locked(kind, id);
  }

  // The access-log line of request `id` (it ends in "id=<id>"), waiting at most `timeout`.
  std::optional<std::string> wait_access_log(std::uint64_t id, milliseconds timeout = std::chrono::seconds(5)) {
    const std::string suffix = id_suffix(id);
    return wait_log([&](const std::string& line) { return ends_with(line, suffix); }, timeout);
  }

  // The first log line containing `needle`, waiting at most `timeout`.
  std::optional<std::string> wait_log_containing(std::string_view needle,
                                                 milliseconds timeout = std::chrono::seconds(5)) {
    return wait_log([&](const std::string& line) { return line.find(needle) != std::string::npos; }, timeout);
  }

  // Everything recorded about request `id`, for failure messages.
  std::string describe(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text = "events of request " + std::to_string(id) + ":";
    if (auto it = by_id_.find(id); it != by_id_.end()) {
      for (const event& e : it->second) text += "\n  " + e.line;
    }
    const std::string suffix = id_suffix(id);
    for (const std::string& line : log_) {
      if (ends_with(line, suffix)) text += "\n  log: " + line;
    }
    return text;
  }

  // Every event (request by request) and every log line, for failure messages.
  std::string dump() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text;
    for (const auto& request : by_id_) {
      for (const event& e : request.second) text += "\n  " + e.line;
    }
    for (const std::string& line : log_) text += "\n  log: " + line;
    return text;
  }

  // The last `n` log lines, for failure messages.
  std::string log_tail(std::size_t n = 20) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text = "server log (last lines):";
    for (std::size_t i = log_.size() > n ? log_.size() - n : 0; i < log_.size(); ++i) text += "\n  " + log_[i];
    return text;
  }

 private:
  static std::string id_suffix(std::uint64_t id) { return " id=" + std::to_string(id); }
  static bool ends_with(const std::string& line, const std::string& suffix) {
    return line.size() >= suffix.size() && line.compare(line.size() - suffix.size(), suffix.size(), suffix) == 0;
  }

  void add(const std::string& line, bool is_event) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (is_event) {
        event e = parse_event(line);
        ++kind_count_[e.kind];
        by_id_[e.id].push_back(std::move(e));
      } else {
        log_.push_back(line);
      }
    }
    cv_.notify_all();
  }

  std::optional<event> find_locked(std::string_view kind, std::uint64_t id) const {
    if (auto it = by_id_.find(id); it != by_id_.end()) {
      for (const event& e : it->second) {
        if (e.kind == kind) return e;
      }
    }
    return std::nullopt;
  }

  template <class Pred>
  std::optional<std::string> wait_log(Pred pred, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    std::optional<std::string> found;
    cv_.wait_for(lock, timeout, [&] {
      for (const std::string& line : log_) {
        if (pred(line)) {
          found = line;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::uint64_t, std::vector<event>> by_id_;
  std::map<std::string, std::size_t> kind_count_;
  std::vector<std::string> log_;
};

}  // namespace http_test

#endif
