// The demo server's view of its recent requests, by request id: running (with the steps done so
// far), done or cancelled (with the reason and the status that was logged). Bounded: the last
// `capacity` ids (1024 by default). Backs the `/status?id=` route of the demo page and the demo.
//
// While a request runs, its record shares the handler's progress counters and reads them when
// asked; finished() copies the final numbers and drops them. Ids come from clients, so two
// requests may share one: each request is told apart by its serial (request::serial), and the
// newer one keeps the record.
#ifndef CTOKEN_EXAMPLE_DEMO_REQUEST_REGISTRY_HPP
#define CTOKEN_EXAMPLE_DEMO_REQUEST_REGISTRY_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace demo {

// A handler's progress, updated while it works and read by /status and the access log.
// Relaxed atomics throughout: they are statistics, read for display; nothing is published
// through them.
struct progress {
  std::atomic<int> steps{0};  // units of work done so far
  std::atomic<int> total{0};  // units of work planned, when the handler knows
};

enum class request_state { unknown, running, done, cancelled };

// "unknown", "running", "done", "cancelled".
const char* state_name(request_state state) noexcept;

struct request_record {
  std::string id;
  request_state state = request_state::unknown;
  int steps = 0;       // units of work done (so far, while running)
  int total = 0;       // units of work planned; 0 when the handler does not say
  std::string reason;  // why it was cancelled ("client_disconnected", ...); empty: none
  int status = 0;      // the status logged at the end (499, 503, 504, 200, ...); 0 while running
};

// Thread-safe (one mutex); every call is O(1) but for the eviction of a reused id (O(capacity)).
class request_registry {
 public:
  static constexpr std::size_t default_capacity = 1024;
  explicit request_registry(std::size_t capacity = default_capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  request_registry(const request_registry&) = delete;
  request_registry& operator=(const request_registry&) = delete;

  // Request `serial`, named `id`, starts: a query reads `live` until finished().
  void started(const std::string& id, std::uint64_t serial, std::shared_ptr<const progress> live);

  // Request `serial`, named `id`, ended with the final counters `last`. If another request
  // with the same id started meanwhile, the newer one keeps the record.
  void finished(const std::string& id, std::uint64_t serial, const progress& last, request_state state,
                std::string reason, int status);

  // The record of request `id`; state unknown if there is none (never seen, or evicted).
  request_record get(const std::string& id) const;

  // The record as JSON: {"id":N|"id","state":"...","steps":S,"total":T,"reason":"..."|null,
  // "status":N|null}; an id of digits only is written as a number. `id` must be sanitised
  // (http::sanitize_request_id): it is written as it is.
  std::string json(const std::string& id) const;

  std::size_t size() const;

 private:
  struct entry {
    request_record record;
    std::uint64_t serial = 0;
    std::shared_ptr<const progress> live;  // set while the request runs
  };
  entry& insert_locked(const std::string& id);
  static request_record read_locked(const entry& e);

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> entries_;  // guarded by mutex_
  std::deque<std::string> order_;                   // guarded by mutex_: ids, oldest first
};

}  // namespace demo

#endif
