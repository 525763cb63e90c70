#include "app.hpp"

#include <utility>

namespace demo {

std::string request_id(const http::request& req) {
  std::string id = http::server_config::default_request_id(req);
  if (id.empty() && req.path != "/status") id = req.query_param("id").value_or(std::string());
  return id;
}

app::app(output& out, services with) : out_(out), with_(std::move(with)) {
  with_.registry = &registry_;
  with_.own_port = &port_;
  with_.out = &out_;
}

http::response app::handle(const http::request& req, const ctoken::CancellationToken& token) {
  auto done = std::make_shared<progress>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_[req.serial] = done;
  }
  registry_.started(req.id, req.serial, done);
  return handle_request(req, token, *done, with_);
}

void app::listening(const std::string& bind, std::uint16_t port) {
  port_.store(port, std::memory_order_release);  // pairs with the acquire load in /fetch
  out_.event("READY " + std::to_string(port));
  out_.log("listening on " + bind + ":" + std::to_string(port));
}

void app::request_started(const http::request& req, std::string_view) {
  out_.event("START " + req.id + " " + std::to_string(http::monotonic_ns()));
}

void app::request_finished(const http::request& req, std::string_view peer, const http::request_outcome& outcome) {
  std::shared_ptr<progress> done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = running_.find(req.serial); it != running_.end()) {
      done = std::move(it->second);
      running_.erase(it);
    }
  }
  if (done == nullptr) done = std::make_shared<progress>();  // the handler never ran
  // relaxed: the handler has returned (it ran on this thread)
  const int steps = done->steps.load(std::memory_order_relaxed);
  const int total = done->total.load(std::memory_order_relaxed);
  const std::string ns = std::to_string(outcome.finished_ns);
  request_state state = request_state::done;
  if (outcome.completed) {
    out_.event("DONE " + req.id + " " + ns + " steps=" + std::to_string(steps));
  } else if (outcome.reason) {
    state = request_state::cancelled;
    out_.event("CANCELLED " + req.id + " " + ns + " reason=" + http::reason_name(outcome.reason) +
               " steps=" + std::to_string(steps) + " signal_ns=" + std::to_string(outcome.cancelled_ns));
  } else {
    out_.event("DONE " + req.id + " " + ns + " steps=" + std::to_string(steps) +
               " status=" + std::to_string(outcome.status));
  }
  registry_.finished(req.id, req.serial, *done, state, outcome.reason ? http::reason_name(outcome.reason) : "",
                     outcome.status);
  std::string extra = "steps=" + std::to_string(steps);
  if (total > 0) extra += "/" + std::to_string(total);
  out_.log(http::access_log_line(req, peer, outcome, extra));
}

void app::message(const std::string& line) { out_.log(line); }

namespace {
http::server_config with_demo_ids(http::server_config config) {
  config.request_id = request_id;
  return config;
}
}  // namespace

server::server(http::server_config config, output& out, services with)
    : app_(out, std::move(with)),
      server_(
          with_demo_ids(std::move(config)),
          [this](const http::request& req, const ctoken::CancellationToken& token) { return app_.handle(req, token); },
          app_) {}

}  // namespace demo
