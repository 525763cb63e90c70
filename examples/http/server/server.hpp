// The production-shaped server: a listener, one thread per connection (bounded), one
// disconnect watcher for every in-flight request, per-request tokens linked from "client
// gone", "server shutdown" and a deadline, and a graceful shutdown. The application comes from
// outside: a handler maps a request and its token to a response (no I/O: the server reads the
// request and writes the response), and an observer hears about every request (access log,
// metrics, events). The server knows no route.
//
//   http::response handle_request(const http::request& req, const ctoken::CancellationToken& token) {
//     if (req.path != "/work") return http::response::text(404, "not found\n");
//     for (int i = 0; i < 10; ++i) {
//       token.ThrowIfCancellationRequested();   // client gone, shutdown or deadline: stop
//       do_a_step();
//     }
//     return http::response::text(200, "done\n");
//   }
//   http::stderr_log log;
//   http::server server(http::server_config{}, handle_request, log);
//   server.start();  ...  server.request_shutdown(); server.wait();
#ifndef CTOKEN_EXAMPLE_HTTP_SERVER_HPP
#define CTOKEN_EXAMPLE_HTTP_SERVER_HPP

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

#include "disconnect_watcher.hpp"
#include "http_parser.hpp"
#include "observer.hpp"
#include "response.hpp"

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
  // The id a client gives its request, read before the handler runs; the server keeps at
  // most max_request_id_bytes of it and replaces every byte outside [A-Za-z0-9._:-] with '_'
  // (sanitize_request_id). Empty (or no function): the request's serial, in decimal. The
  // default reads the X-Request-Id header.
  std::function<std::string(const request&)> request_id = default_request_id;

  static std::string default_request_id(const request& req);
};

// The longest request id kept (longer ones are cut).
constexpr std::size_t max_request_id_bytes = 64;

// `given` cut to max_request_id_bytes, every byte outside [A-Za-z0-9._:-] replaced with '_':
// safe in a log line, an event line or a JSON string. Pure; no allocation beyond the result.
std::string sanitize_request_id(std::string_view given);

// The application: maps a request and its token to a response, and does no I/O on the
// connection (the server reads the request and writes the response). It runs on the request's
// connection thread, with no lock of the server held, and should stop when the token is
// cancelled by throwing ctoken::OperationCanceledException (ThrowIfCancellationRequested): the
// server then answers 503 (shutdown) or 504 (deadline), or nothing when the client is gone. A
// response it returns is sent as it is; any other exception is answered 500. It must be
// thread-safe: requests of different connections run concurrently.
using handler = std::function<response(const request& req, const ctoken::CancellationToken& token)>;

class server {
 public:
  // Takes the handler and the observer (which must outlive the server). Starts the watcher's
  // thread; throws std::system_error if it cannot.
  server(server_config config, handler app, observer& events);
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

  // Connections being served, and sockets being watched for a disconnect (for tests and stats).
  std::size_t active_connections() const;
  std::size_t watching() const { return watcher_.watching(); }

 private:
  void accept_loop();
  void serve_connection(int fd, std::string peer);
  void serve_requests(int fd, const std::string& peer);
  bool serve_request(int fd, const std::string& peer, request& req);
  void configure_socket(int fd) const;
  void connection_finished(int fd);

  server_config config_;
  handler handler_;
  observer& observer_;
  ctoken::CancellationTokenSource shutdown_;
  // Readable once shutdown_ is cancelled; one for the whole server (it is never drained), so
  // the accept loop and every idle connection poll the same descriptor: a connection costs one
  // descriptor, its socket.
  ctoken::CancellationFd shutdown_fd_;
  disconnect_watcher watcher_;
  int listen_fd_ = -1;
  std::thread accept_thread_;
  std::atomic<std::uint64_t> next_serial_{1};  // relaxed fetch_add: unique numbers, nothing published

  mutable std::mutex mutex_;
  std::condition_variable drained_;
  std::set<int> connections_;  // guarded by mutex_: sockets of live connection threads
  bool waited_ = false;        // guarded by mutex_
};

}  // namespace http

#endif
