#include "server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <system_error>

#include <ctoken/fd.hpp>

namespace http {

namespace {

using clock_type = std::chrono::steady_clock;

std::system_error sys_error(const char* what) { return std::system_error(errno, std::generic_category(), what); }

// A canned response outside any request (errors while reading a head, overload).
void send_error(int fd, int status, std::string_view reason) {
  std::string body =
      std::to_string(status) + " " + std::string(status_text(status)) + ": " + std::string(reason) + "\n";
  std::string message = "HTTP/1.1 " + std::to_string(status) + " " + std::string(status_text(status)) +
                        "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\nConnection: close\r\n\r\n" + body;
  (void)send_all(fd, message);  // best effort: the connection is closed next anyway
}

enum class wait_result { readable, timeout, stopped, error };

// Waits until `fd` is readable, `stop_fd` fires (shutdown) or `timeout` passes.
wait_result wait_readable(int fd, int stop_fd, std::chrono::milliseconds timeout) {
  const auto until = clock_type::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
    if (left.count() <= 0) return wait_result::timeout;
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return wait_result::error;
    }
    if (n == 0) return wait_result::timeout;
    if (fds[1].revents & POLLIN) return wait_result::stopped;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) return wait_result::readable;
  }
}

int status_for(const std::error_code& reason) {
  if (reason == ctoken::errc::shutdown) return 503;
  if (reason == ctoken::errc::timed_out) return 504;
  return 499;  // client_disconnected, connection_reset: the client closed the request
}

std::string peer_name(const sockaddr_storage& addr) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), sizeof addr, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return std::string(host) + ":" + port;
}

}  // namespace

std::string server_config::default_request_id(const request& req) {
  const std::string* given = req.find("x-request-id");
  return given != nullptr ? *given : std::string();
}

std::string sanitize_request_id(std::string_view given) {
  std::string id(given.substr(0, std::min(given.size(), max_request_id_bytes)));
  for (char& c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) c = '_';
  }
  return id;
}

server::server(server_config config, handler app, observer& events)
    : config_(std::move(config)),
      handler_(std::move(app)),
      observer_(events),
      shutdown_fd_(shutdown_.Token()),
      watcher_(config_.half_close) {}

server::~server() {
  request_shutdown();
  wait();
}

std::uint16_t server::start() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(config_.port);
  if (const int rc = ::getaddrinfo(config_.bind.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw std::system_error(EINVAL, std::generic_category(),
                            "bad --bind address " + config_.bind + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);

  listen_fd_ = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw sys_error("socket");
  const int one = 1;
  if (::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) throw sys_error("SO_REUSEADDR");
  if (::bind(listen_fd_, found->ai_addr, found->ai_addrlen) != 0) throw sys_error("bind");
  if (::listen(listen_fd_, SOMAXCONN) != 0) throw sys_error("listen");

  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len) != 0) throw sys_error("getsockname");
  const std::uint16_t actual = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                                 : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
  observer_.listening(config_.bind, actual);
  return actual;
}

void server::request_shutdown() noexcept {
  // Cancels every in-flight request's token (they are linked to this source), wakes the accept
  // loop and every idle connection (they poll this token's descriptor).
  shutdown_.Cancel(ctoken::errc::shutdown);
}

bool server::wait() {
  if (accept_thread_.joinable()) accept_thread_.join();
  std::unique_lock<std::mutex> lock(mutex_);
  if (waited_) return true;
  const bool drained = drained_.wait_for(lock, config_.drain_timeout, [this] { return connections_.empty(); });
  if (!drained) {
    observer_.message("drain timeout: shutting down " + std::to_string(connections_.size()) + " connection(s)");
    for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);  // their threads fail fast and exit
    drained_.wait(lock, [this] { return connections_.empty(); });
  }
  waited_ = true;
  return drained;
}

std::size_t server::active_connections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return connections_.size();
}

void server::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {shutdown_fd_.Get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      observer_.message(std::string("poll(listener): ") + std::strerror(errno));
      break;
    }
    if (fds[1].revents & POLLIN) break;  // shutting down: stop accepting
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      observer_.message(std::string("accept: ") + std::strerror(errno));
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: back off instead of spinning on the pending connection.
        ctoken::SleepFor(std::chrono::milliseconds(100), shutdown_.Token());
      }
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (connections_.size() >= config_.max_connections) {
        send_error(fd, 503, "too many connections");
        ::close(fd);
        continue;
      }
      connections_.insert(fd);
    }
    try {
      std::thread(&server::serve_connection, this, fd, peer_name(addr)).detach();
    } catch (const std::system_error& e) {
      observer_.message(std::string("cannot start a connection thread: ") + e.what());
      send_error(fd, 503, "overloaded");
      connection_finished(fd);
    }
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void server::connection_finished(int fd) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Closed under the lock, together with the erase: wait() shuts down the sockets listed in
  // connections_ under this lock after the drain timeout, and must never find a number that is
  // already closed, and may have been reused by another open() in the process.
  ::close(fd);
  connections_.erase(fd);
  if (connections_.empty()) drained_.notify_all();
}

void server::configure_socket(int fd) const {
  // Failures here only lose an optimisation or a safety net; the connection still works.
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const timeval send_timeout{static_cast<time_t>(config_.write_timeout.count() / 1000),
                             static_cast<suseconds_t>((config_.write_timeout.count() % 1000) * 1000)};
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  if (config_.tcp_keepalive) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &config_.keepalive_idle_s, sizeof(int));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &config_.keepalive_interval_s, sizeof(int));
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &config_.keepalive_count, sizeof(int));
  }
}

// A connection's thread. Nothing may escape it (that would end the process): whatever throws
// (std::bad_alloc, a std::system_error from the watcher) ends this connection, not the server.
void server::serve_connection(int fd, std::string peer) {
  struct finish_on_exit {
    server* self;
    int fd;
    ~finish_on_exit() { self->connection_finished(fd); }
  } finish{this, fd};
  try {
    serve_requests(fd, peer);
  } catch (const std::exception& e) {
    observer_.message(peer + " connection error: " + e.what());
  } catch (...) {
    observer_.message(peer + " connection error");
  }
}

// One connection: read a request head (bounded in size and time), serve it, discard any body
// the handler did not read, repeat while the connection may be kept alive.
void server::serve_requests(int fd, const std::string& peer) {
  configure_socket(fd);
  const int stop = shutdown_fd_.Get();  // wakes the waits below on shutdown

  std::string buffer;  // received, not yet consumed: may hold a pipelined next request
  char chunk[16 * 1024];
  for (;;) {
    // ---- 1. the request head --------------------------------------------------------------
    request req;
    parse_result parsed{parse_status::incomplete};
    clock_type::time_point head_deadline{};  // set when the first byte of this request arrives
    if (!buffer.empty()) head_deadline = clock_type::now() + config_.header_timeout;
    for (;;) {
      if (!buffer.empty()) {
        parsed = parse_request_head(buffer, config_.parse_limits, req);
        if (parsed.status != parse_status::incomplete) break;
      }
      const auto timeout =
          buffer.empty() ? config_.idle_timeout
                         : std::chrono::duration_cast<std::chrono::milliseconds>(head_deadline - clock_type::now());
      const wait_result waited = wait_readable(fd, stop, timeout);
      if (waited == wait_result::stopped || waited == wait_result::error) return;
      if (waited == wait_result::timeout) {
        if (!buffer.empty()) {  // a started request that never finished: slowloris
          send_error(fd, 408, "request head not received in time");
          observer_.message(peer + " 408 header timeout");
        }
        return;  // an idle keep-alive connection: close quietly
      }
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n == 0) return;  // the client closed the connection between requests
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return;  // ECONNRESET and friends
      }
      if (buffer.empty()) head_deadline = clock_type::now() + config_.header_timeout;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
    if (parsed.status == parse_status::error) {
      send_error(fd, parsed.error_status, parsed.error_reason);
      observer_.message(peer + " " + std::to_string(parsed.error_status) + " " + parsed.error_reason);
      return;  // after a malformed request the byte stream cannot be trusted: close
    }
    buffer.erase(0, parsed.consumed);

    // ---- 2. the handler -----------------------------------------------------------------
    if (!serve_request(fd, peer, req)) return;

    // ---- 3. the body the handler did not read -------------------------------------------
    std::size_t body_left = req.content_length;
    const std::size_t from_buffer = std::min(body_left, buffer.size());
    buffer.erase(0, from_buffer);
    body_left -= from_buffer;
    const auto body_deadline = clock_type::now() + config_.header_timeout;
    while (body_left > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(body_deadline - clock_type::now());
      if (wait_readable(fd, stop, left) != wait_result::readable) return;
      const ssize_t n = ::recv(fd, chunk, std::min(sizeof chunk, body_left), 0);
      if (n == 0) return;
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return;
      }
      body_left -= static_cast<std::size_t>(n);
    }
  }
}

// Writes the handler's response: whole, or chunked from its next_chunk() (which may throw
// OperationCanceledException). Returns whether all of it was sent.
bool send_response(response_writer& out, response& res, bool keep_alive) {
  if (!res.next_chunk) return out.respond(res.status, res.content_type, res.body, keep_alive);
  if (!out.begin_chunked(res.status, res.content_type, keep_alive)) return false;
  if (!out.head_only()) {
    while (std::optional<std::string> piece = res.next_chunk()) {
      if (!out.chunk(*piece)) return false;
    }
  }
  return out.end_chunked();
}

// Runs one request under its own token. Returns whether the connection may serve another.
bool server::serve_request(int fd, const std::string& peer, request& req) {
  req.serial = next_serial_.fetch_add(1, std::memory_order_relaxed);  // relaxed: unique numbers only
  req.id = config_.request_id ? sanitize_request_id(config_.request_id(req)) : std::string();
  if (req.id.empty()) req.id = std::to_string(req.serial);

  // The request's token: cancelled by whichever comes first of the client leaving (the
  // watcher, or a failed write), the server shutting down, or the request's own deadline.
  ctoken::CancellationTokenSource client_gone;
  auto source = ctoken::CancellationTokenSource::CreateLinkedTokenSource(client_gone.Token(), shutdown_.Token());
  source.CancelAfter(config_.request_timeout);
  const ctoken::CancellationToken token = source.Token();
  // When the token was cancelled, for the observer: the watcher stamps a disconnect itself,
  // just before its Cancel() (a callback here would run only after Cancel() has woken this
  // thread, which may then run first); any other cause is stamped by this callback. Relaxed:
  // read on this thread after mark.Dispose(), which waits for a running callback.
  std::atomic<std::int64_t> signal_ns{0};
  auto mark = token.Register([&signal_ns] { signal_ns.store(monotonic_ns(), std::memory_order_relaxed); });

  const bool keep_alive = req.keep_alive && !shutdown_.IsCancellationRequested();
  response_writer out(fd, client_gone, req.method == "HEAD");
  std::uint64_t watch = 0;
  try {
    watch = watcher_.watch(fd, client_gone);
  } catch (const std::system_error& e) {
    observer_.message(peer + " 503 cannot watch the connection: " + e.what());
    send_error(fd, 503, "cannot watch the connection");  // EMFILE and friends: try again later
    return false;
  }

  request_outcome outcome;
  outcome.started_ns = monotonic_ns();
  bool handled = false;  // the handler returned a response (it did not throw)
  try {
    observer_.request_started(req, peer);
    response res = handler_(req, token);
    handled = true;
    send_response(out, res, keep_alive);
  } catch (const ctoken::OperationCanceledException& e) {
    // The one place that turns cancellation into a log line, not an error with a stack: the
    // ASP.NET exception-filter idea. Handlers may simply call ThrowIfCancellationRequested().
    observer_.message("request " + req.id + " cancelled: reason=" + reason_name(e.Reason()) + " path=" + req.path);
  } catch (const std::exception& e) {
    observer_.message("request " + req.id + " handler error: " + std::string(e.what()) + " path=" + req.path);
    if (!out.started()) out.respond(500, "text/plain", "internal error\n", false);
  }
  const std::int64_t by_watcher = watcher_.unwatch(watch);
  mark.Dispose();
  outcome.cancelled_ns = by_watcher != 0 ? by_watcher : signal_ns.load(std::memory_order_relaxed);
  // A cancellation that came after the whole response was written (the client read it and
  // closed) is not about this request.
  const std::error_code reason =
      out.complete() && outcome.cancelled_ns >= out.complete_ns() ? std::error_code() : token.Reason();
  if (!reason) outcome.cancelled_ns = 0;
  outcome.reason = reason;
  if (handled && out.complete()) {
    // Completed. If the client had left before the response (a handler that ignores its
    // token), the outcome still names the reason: that work was wasted.
    outcome.completed = true;
    outcome.status = out.status();
  } else if (reason) {
    outcome.status = status_for(reason);
    // Somebody is still listening for 503/504; for 499 nobody is.
    if (outcome.status != 499 && !out.started())
      out.respond(outcome.status, "text/plain", std::string(status_text(outcome.status)) + "\n", false);
  } else {
    // Neither completed nor cancelled: the handler failed (an exception) or the write did.
    outcome.status = out.started() ? out.status() : 500;
    if (!out.started()) out.respond(500, "text/plain", "handler produced no response\n", false);
  }
  outcome.finished_ns = monotonic_ns();
  observer_.request_finished(req, peer, outcome);
  return keep_alive && out.complete() && !token.IsCancellationRequested();
}

}  // namespace http
