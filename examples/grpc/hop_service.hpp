// The hop service of the gRPC example (and of its tests and benchmark): one class for both
// hops. With a next hop (service A) it forwards each call there under the call's own token, so
// cancellation and the remaining deadline travel on without a line of code for them; without
// one (service B) it waits `work_ms` on the call's token, without a thread.
#ifndef CTOKEN_EXAMPLES_GRPC_HOP_SERVICE_HPP
#define CTOKEN_EXAMPLES_GRPC_HOP_SERVICE_HPP

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>

#include <ctoken/ctoken.hpp>

#include "hops.grpc.pb.h"

namespace hops {

/// What a hop reports about each call (the example prints it, the tests and the benchmark
/// measure it). Called from gRPC's threads, ctoken's timer thread or the thread that cancelled
/// the server's token: implementations must be thread-safe and quick.
class HopObserver {
 public:
  virtual ~HopObserver() = default;
  /// The call arrived; `deadline` is its token's Deadline().
  virtual void OnStart(const std::string& /*hop*/, const std::string& /*id*/,
                       std::optional<std::chrono::steady_clock::time_point> /*deadline*/) {}
  /// The call's token was cancelled with `reason` at `when`.
  virtual void OnTokenCancelled(const std::string& /*hop*/, const std::string& /*id*/, std::error_code /*reason*/,
                                std::chrono::steady_clock::time_point /*when*/) {}
  /// The call ended (OnDone) with `status` as this hop answered it.
  virtual void OnDone(const std::string& /*hop*/, const std::string& /*id*/, const grpc::Status& /*status*/) {}
};

/// What happened to one call at one hop, as a RecordingObserver saw it.
struct HopEvents {
  bool started = false;
  std::optional<std::chrono::steady_clock::time_point> deadline;  ///< the token's, at the start
  std::error_code reason;                                         ///< empty: never cancelled
  std::chrono::steady_clock::time_point cancelled_at{};
  bool done = false;
  grpc::StatusCode status = grpc::StatusCode::OK;
};

/// A HopObserver that keeps every event, keyed by hop and call id, and lets a thread wait for
/// one. Thread-safe; its lock is never held while anything but its own code runs.
class RecordingObserver final : public HopObserver {
 public:
  void OnStart(const std::string& hop, const std::string& id,
               std::optional<std::chrono::steady_clock::time_point> deadline) override {
    Update(hop, id, [&](HopEvents& e) {
      e.started = true;
      e.deadline = deadline;
    });
  }
  void OnTokenCancelled(const std::string& hop, const std::string& id, std::error_code reason,
                        std::chrono::steady_clock::time_point when) override {
    Update(hop, id, [&](HopEvents& e) {
      e.reason = reason;
      e.cancelled_at = when;
    });
  }
  void OnDone(const std::string& hop, const std::string& id, const grpc::Status& status) override {
    Update(hop, id, [&](HopEvents& e) {
      e.done = true;
      e.status = status.error_code();
    });
  }

  /// Waits until `pred(events)` holds for (hop, id) or `limit` passes; returns the events seen last.
  template <class Pred>
  HopEvents WaitFor(const std::string& hop, const std::string& id, Pred pred, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    HopEvents& e = events_[hop + "/" + id];
    changed_.wait_for(lock, limit, [&] { return pred(e); });
    return e;
  }

  /// The events of (hop, id) so far.
  HopEvents Get(const std::string& hop, const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_[hop + "/" + id];
  }

 private:
  template <class F>
  void Update(const std::string& hop, const std::string& id, F f) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      f(events_[hop + "/" + id]);
    }
    changed_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, HopEvents> events_;
};

/// One hop. Thread-safe (gRPC calls Work() from its threads).
class HopService final : public ctoken_hops::Hop::CallbackService {
 public:
  /// `name` labels the hop; `next` is the channel to the next hop or null for the last one;
  /// `stopping` is cancelled (errc::shutdown) before the server shuts down; `max_work` bounds
  /// what a client may ask for; `observer` may be null and must outlive the server.
  HopService(std::string name, std::shared_ptr<grpc::Channel> next, ctoken::CancellationToken stopping,
             std::chrono::milliseconds max_work, HopObserver* observer);

  grpc::ServerUnaryReactor* Work(grpc::CallbackServerContext* context, const ctoken_hops::WorkRequest* request,
                                 ctoken_hops::WorkReply* reply) override;

  /// Calls whose reactor still exists (started and not yet past OnDone).
  int LiveCalls() const noexcept { return live_.load(std::memory_order_acquire); }

 private:
  class ForwardCall;
  class WaitCall;

  std::string name_;
  std::unique_ptr<ctoken_hops::Hop::Stub> next_;
  ctoken::CancellationToken stopping_;
  std::chrono::milliseconds max_work_;
  HopObserver* observer_;
  // Incremented by a reactor's constructor, decremented by its OnDone; acquire/release so that a
  // reader who sees 0 also sees everything the reactors did before they ended.
  std::atomic<int> live_{0};
};

/// A server on 127.0.0.1 (port 0: an ephemeral one) running `service`, with gRPC's callback
/// API. Returns null and sets `error` if it cannot listen.
std::unique_ptr<grpc::Server> StartServer(HopService& service, int port, int& bound_port, std::string& error);

}  // namespace hops

#endif
