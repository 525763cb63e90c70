// The demo server: the server template (http::server) running the demo's routes, with an
// observer that writes the demo's events and access log and keeps the request registry behind
// /status. Every demo concern lives here, above the templates; the templates know none of it.
#ifndef CTOKEN_EXAMPLE_DEMO_APP_HPP
#define CTOKEN_EXAMPLE_DEMO_APP_HPP

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <ctoken/ctoken.hpp>

#include "events.hpp"
#include "handlers.hpp"
#include "request_registry.hpp"
#include "server.hpp"

namespace demo {

// The demo's request id: X-Request-Id, else ?id= (except on /status, whose ?id= names the
// request asked about); the server sanitises it.
std::string request_id(const http::request& req);

// The application and its observer. Thread-safe; must outlive the server that runs it.
class app : public http::observer {
 public:
  explicit app(output& out, services with = {});

  // The handler for http::server: counts the request's progress, then runs its route.
  http::response handle(const http::request& req, const ctoken::CancellationToken& token);

  // The last 1024 requests by id: running (steps so far), done or cancelled (reason, status).
  const request_registry& registry() const noexcept { return registry_; }

  void listening(const std::string& bind, std::uint16_t port) override;
  void request_started(const http::request& req, std::string_view peer) override;
  void request_finished(const http::request& req, std::string_view peer, const http::request_outcome& outcome) override;
  void message(const std::string& line) override;

 private:
  output& out_;
  // The listening port, for /fetch's call to this server's own /slow. Stored once in
  // listening() with release, read by handlers with acquire (a plain value: either order would
  // do, but the pair documents the hand-over).
  std::atomic<std::uint16_t> port_{0};
  services with_;
  request_registry registry_;
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::shared_ptr<progress>> running_;  // guarded by mutex_: by serial
};

// The demo server, ready to start: http::server with demo::app. Same contract as http::server.
class server {
 public:
  server(http::server_config config, output& out, services with = {});

  std::uint16_t start() { return server_.start(); }
  void request_shutdown() noexcept { server_.request_shutdown(); }
  bool wait() { return server_.wait(); }
  std::size_t active_connections() const { return server_.active_connections(); }
  std::size_t watching() const { return server_.watching(); }
  const request_registry& registry() const noexcept { return app_.registry(); }

 private:
  app app_;
  http::server server_;
};

}  // namespace demo

#endif
