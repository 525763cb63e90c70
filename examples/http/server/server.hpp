// The production-shaped server: a listener, one thread per connection (bounded), one
// disconnect watcher for every in-flight request, per-request tokens linked from "client
// gone", "server shutdown" and a deadline, an access log, lifecycle events and a graceful
// shutdown.
#ifndef CTOKEN_EXAMPLE_HTTP_SERVER_HPP
#define CTOKEN_EXAMPLE_HTTP_SERVER_HPP

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

#include "disconnect_watcher.hpp"
#include "events.hpp"
#include "http_parser.hpp"
#include "request_registry.hpp"

namespace http {

struct server_config {
  std::string bind = "127.0.0.1";                    // loopback unless told otherwise
  std::uint16_t port = 0;                            // 0: an ephemeral port (start() returns it)
  std::size_t max_connections = 512;                 // more are answered 503 and closed
  limits parse_limits;                               // head size, header count, body size
  std::chrono::milliseconds header_timeout{10000};   // first byte → complete head (408: slowloris)
  std::chrono::milliseconds idle_timeout{30000};     // keep-alive connection with no request: closed
  std::chrono::milliseconds request_timeout{30000};  // per-request deadline (504)
  std::chrono::milliseconds write_timeout{10000};    // a client that stops reading (SO_SNDTIMEO)
  std::chrono::milliseconds drain_timeout{5000};     // graceful shutdown, then sockets are shut
  half_close_policy half_close = half_close_policy::cancel;
  // TCP keepalive: the only way to notice a silent peer (no FIN, no RST: cable pulled, host
  // gone) besides read timeouts. Linux: first probe after idle s, then every interval s,
  // dropped after count failed probes.
  bool tcp_keepalive = true;
  int keepalive_idle_s = 30;
  int keepalive_interval_s = 5;
  int keepalive_count = 3;
  // The backend that /proxy calls with each request's own token (--upstream HOST:PORT): a
  // numeric address; port 0: none (/proxy answers 502).
  std::string upstream_host = "127.0.0.1";
  std::uint16_t upstream_port = 0;
};

class server {
 public:
  server(server_config config, output& out);
  // Shuts down (as request_shutdown + wait) if still running.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds, listens and starts the accept thread; returns the port. Throws std::system_error.
  std::uint16_t start();

  // Stops accepting and cancels every in-flight request with errc::shutdown. Any thread;
  // safe to call more than once.
  void request_shutdown() noexcept;

  // After request_shutdown(): waits for the accept thread and for every connection to finish,
  // at most drain_timeout; then shuts the remaining sockets down and waits for their threads.
  // Returns true if everything finished within drain_timeout.
  bool wait();

  std::size_t active_connections() const;
  std::size_t watching() const { return watcher_.watching(); }

  // The last 1024 requests by id: running (steps so far), done or cancelled (reason, status).
  const request_registry& registry() const noexcept { return registry_; }

 private:
  void accept_loop();
  void serve_connection(int fd, std::string peer);
  void serve_requests(int fd, const std::string& peer);
  bool serve_request(int fd, const std::string& peer, const request& req);
  void configure_socket(int fd) const;
  void connection_finished(int fd);

  server_config config_;
  output& out_;
  ctoken::CancellationTokenSource shutdown_;
  // Readable once shutdown_ is cancelled; one for the whole server (it is never drained), so
  // the accept loop and every idle connection poll the same descriptor: a connection costs one
  // descriptor, its socket.
  ctoken::CancellationFd shutdown_fd_;
  disconnect_watcher watcher_;
  request_registry registry_;
  int listen_fd_ = -1;
  std::thread accept_thread_;
  std::atomic<std::uint64_t> next_request_id_{1};

  mutable std::mutex mutex_;
  std::condition_variable drained_;
  std::set<int> connections_;  // guarded by mutex_: sockets of live connection threads
  bool waited_ = false;        // guarded by mutex_
};

}  // namespace http

#endif
