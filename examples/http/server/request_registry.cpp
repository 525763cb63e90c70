#include "request_registry.hpp"

#include <algorithm>
#include <utility>

#include "handlers.hpp"

namespace http {

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

request_registry::entry& request_registry::insert_locked(std::uint64_t id) {
  auto found = entries_.find(id);
  if (found != entries_.end()) {
    // A reused id (clients choose ids with ?id=): it becomes the newest again.
    order_.erase(std::find(order_.begin(), order_.end(), id));
  } else {
    while (entries_.size() >= capacity_ && !order_.empty()) {
      entries_.erase(order_.front());  // drops a running request's pointer too: never dangles
      order_.pop_front();
    }
    found = entries_.emplace(id, entry{}).first;
  }
  order_.push_back(id);
  return found->second;
}

void request_registry::started(std::uint64_t id, const handler_context& ctx) {
  std::lock_guard<std::mutex> lock(mutex_);
  entry& e = insert_locked(id);
  e.record = request_record{};
  e.record.id = id;
  e.record.state = request_state::running;
  e.live = &ctx;
}

void request_registry::finished(std::uint64_t id, const handler_context& ctx, request_state state, std::string reason,
                                int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = entries_.find(id);
  if (found != entries_.end() && found->second.live != nullptr && found->second.live != &ctx) {
    return;  // a newer request with the same id is running: its record stays
  }
  entry& e = found != entries_.end() ? found->second : insert_locked(id);  // evicted: record it again
  e.live = nullptr;
  e.record.id = id;
  e.record.state = state;
  e.record.steps = ctx.steps.load(std::memory_order_relaxed);  // relaxed: the handler has returned
  e.record.total = ctx.total_steps.load(std::memory_order_relaxed);
  e.record.reason = std::move(reason);
  e.record.status = status;
}

request_record request_registry::read_locked(const entry& e) {
  request_record r = e.record;
  if (e.live != nullptr) {
    // relaxed: progress figures, read while the handler updates them
    r.steps = e.live->steps.load(std::memory_order_relaxed);
    r.total = e.live->total_steps.load(std::memory_order_relaxed);
  }
  return r;
}

request_record request_registry::get(std::uint64_t id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = entries_.find(id);
  if (found == entries_.end()) {
    request_record none;
    none.id = id;
    return none;
  }
  return read_locked(found->second);
}

std::string request_registry::json(std::uint64_t id) const {
  const request_record r = get(id);
  std::string out = "{\"id\":" + std::to_string(r.id) + ",\"state\":\"" + state_name(r.state) +
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

}  // namespace http
