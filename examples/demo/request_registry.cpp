#include "request_registry.hpp"

#include <algorithm>
#include <utility>

namespace demo {

const char* state_name(request_state state) noexcept {
  switch (state) {
    case request_state::running:
      return "running";
    case request_state::done:
      return "done";
    case request_state::cancelled:
      return "cancelled";
    case request_state::unknown:
      break;
  }
  return "unknown";
}

request_registry::entry& request_registry::insert_locked(const std::string& id) {
  auto found = entries_.find(id);
  if (found != entries_.end()) {
    // A reused id (clients choose ids): it becomes the newest again.
    order_.erase(std::find(order_.begin(), order_.end(), id));
  } else {
    while (entries_.size() >= capacity_ && !order_.empty()) {
      entries_.erase(order_.front());  // drops a running request's counters too
      order_.pop_front();
    }
    found = entries_.emplace(id, entry{}).first;
  }
  order_.push_back(id);
  return found->second;
}

void request_registry::started(const std::string& id, std::uint64_t serial, std::shared_ptr<const progress> live) {
  std::lock_guard<std::mutex> lock(mutex_);
  entry& e = insert_locked(id);
  e.record = request_record{};
  e.record.id = id;
  e.record.state = request_state::running;
  e.serial = serial;
  e.live = std::move(live);
}

void request_registry::finished(const std::string& id, std::uint64_t serial, const progress& last, request_state state,
                                std::string reason, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = entries_.find(id);
  if (found != entries_.end() && found->second.live != nullptr && found->second.serial != serial) {
    return;  // a newer request with the same id is running: its record stays
  }
  entry& e = found != entries_.end() ? found->second : insert_locked(id);  // evicted: record it again
  e.live.reset();
  e.serial = serial;
  e.record.id = id;
  e.record.state = state;
  e.record.steps = last.steps.load(std::memory_order_relaxed);  // relaxed: a statistic (see progress)
  e.record.total = last.total.load(std::memory_order_relaxed);
  e.record.reason = std::move(reason);
  e.record.status = status;
}

request_record request_registry::read_locked(const entry& e) {
  request_record r = e.record;
  if (e.live != nullptr) {
    // relaxed: progress figures, read while the handler updates them
    r.steps = e.live->steps.load(std::memory_order_relaxed);
    r.total = e.live->total.load(std::memory_order_relaxed);
  }
  return r;
}

request_record request_registry::get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = entries_.find(id);
  if (found == entries_.end()) {
    request_record none;
    none.id = id;
    return none;
  }
  return read_locked(found->second);
}

std::string request_registry::json(const std::string& id) const {
  const request_record r = get(id);
  const bool digits =
      !r.id.empty() && std::all_of(r.id.begin(), r.id.end(), [](char c) { return c >= '0' && c <= '9'; });
  std::string out = "{\"id\":" + (digits ? r.id : "\"" + r.id + "\"") + ",\"state\":\"" + state_name(r.state) +
                    "\",\"steps\":" + std::to_string(r.steps) + ",\"total\":" + std::to_string(r.total) +
                    ",\"reason\":";
  out += r.reason.empty() ? "null" : "\"" + r.reason + "\"";  // reason names are [a-z_:0-9]
  out += ",\"status\":";
  out += r.status == 0 ? "null" : std::to_string(r.status);
  out += "}";
  return out;
}

std::size_t request_registry::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

}  // namespace demo
