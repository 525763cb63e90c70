// The server's view of its recent requests, by id: running (with the steps done so far), done
// or cancelled (with the reason and the status that was logged). Bounded: the last `capacity`
// requests (1024 by default). Backs the `/status?id=N` route of the demo page and the demo.
//
// While a request runs, its record points at the request's handler_context and reads the
// handler's step counters when asked; finished() copies the final numbers and drops the pointer
// before the context goes away, so a query never touches a finished request's memory.
#ifndef CTOKEN_EXAMPLE_HTTP_REQUEST_REGISTRY_HPP
#define CTOKEN_EXAMPLE_HTTP_REQUEST_REGISTRY_HPP

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace http {

struct handler_context;

enum class request_state { unknown, running, done, cancelled };

// "unknown", "running", "done", "cancelled".
const char* state_name(request_state state) noexcept;

struct request_record {
  std::uint64_t id = 0;
  request_state state = request_state::unknown;
  int steps = 0;       // units of work done (so far, while running)
  int total = 0;       // units of work planned; 0 when the handler does not say
  std::string reason;  // why it was cancelled ("client_disconnected", ...); empty: none
  int status = 0;      // the status logged at the end (499, 503, 504, 200, ...); 0 while running
};

class request_registry {
 public:
  static constexpr std::size_t default_capacity = 1024;
  explicit request_registry(std::size_t capacity = default_capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
  request_registry(const request_registry&) = delete;
  request_registry& operator=(const request_registry&) = delete;

  // Request `id` starts, running `ctx`: a query reads ctx's step counters until finished().
  void started(std::uint64_t id, const handler_context& ctx);

  // Request `id` (running `ctx`) ended. Call it before ctx is destroyed. If another request
  // with the same id started meanwhile, the newer one keeps the record.
  void finished(std::uint64_t id, const handler_context& ctx, request_state state, std::string reason, int status);

  // The record of request `id`; state unknown if there is none (never seen, or evicted).
  request_record get(std::uint64_t id) const;

  // The record as JSON: {"id":N,"state":"...","steps":S,"total":T,"reason":"..."|null,"status":N|null}
  std::string json(std::uint64_t id) const;

  std::size_t size() const;

 private:
  struct entry {
    request_record record;
    const handler_context* live = nullptr;  // set while the request runs
  };
  entry& insert_locked(std::uint64_t id);
  static request_record read_locked(const entry& e);

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, entry> entries_;  // guarded by mutex_
  std::deque<std::uint64_t> order_;                   // guarded by mutex_: ids, oldest first
};

}  // namespace http

#endif
