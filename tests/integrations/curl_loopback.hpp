// Tiny scripted TCP servers on 127.0.0.1 for the libcurl tests and benchmarks: each one
// listens on an ephemeral port and behaves in one way (answers, never answers, never reads,
// stalls in the body, never accepts), and records what it saw, so a test can both provoke a
// phase of a transfer and check what crossed the wire. Linux only; no test framework here.
#ifndef CTOKEN_TESTS_CURL_LOOPBACK_HPP
#define CTOKEN_TESTS_CURL_LOOPBACK_HPP

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace curl_test {

enum class behaviour {
  answer,        // HTTP/1.1 keep-alive: every request gets "200 OK" with the body "ok"
  silent,        // reads the request (or any bytes: a TLS ClientHello), never answers
  never_read,    // accepts, never reads: a large upload fills the socket buffers
  stall_body,    // answers a head announcing 1 MB, sends 5 bytes of it, then nothing
  never_accept,  // listen() with the smallest backlog, never accept(): SYNs are dropped
};

class server {
 public:
  explicit server(behaviour b) : behaviour_(b) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0) throw std::runtime_error("socket");
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listener_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind");
    if (::listen(listener_, b == behaviour::never_accept ? 0 : 64) != 0) throw std::runtime_error("listen");
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (::pipe2(stop_, O_CLOEXEC) != 0 || ::pipe2(drain_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    if (b == behaviour::never_accept) {
      fill_backlog();
    } else {
      thread_ = std::thread([this] { run(); });
    }
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server() {
    const char x = 0;
    (void)!::write(stop_[1], &x, 1);
    if (thread_.joinable()) thread_.join();
    for (std::thread& t : connections_) t.join();
    for (int fd : fillers_) ::close(fd);
    ::close(listener_);
    ::close(stop_[0]);
    ::close(stop_[1]);
    ::close(drain_[0]);
    ::close(drain_[1]);
  }

  int port() const noexcept { return port_; }
  std::string url(const char* scheme = "http", const char* path = "/") const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  // Connections accepted, requests (or first bytes) received, connections the client closed.
  int accepted() const noexcept { return accepted_.load(std::memory_order_acquire); }
  int requests() const noexcept { return requests_.load(std::memory_order_acquire); }
  int client_closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  // never_read: from now on, read what the client sent until it closes.
  void drain() {
    const char x = 0;
    (void)!::write(drain_[1], &x, 1);
  }

 private:
  // listen(fd, 0) keeps one connection in the accept queue; once it is full the kernel drops
  // further SYNs, so a client's connect() stays in progress (retransmitting) until it gives up.
  void fill_backlog() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    for (int i = 0; i < 4; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      (void)::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
      fillers_.push_back(fd);
    }
    ::usleep(50 * 1000);  // let the handshakes that can complete do so
  }

  // Waits until `fd` has `events` or the server is stopped: false when stopped.
  bool wait_for(int fd, short events) const {
    pollfd p[2] = {{fd, events, 0}, {stop_[0], POLLIN, 0}};
    for (;;) {
      const int n = ::poll(p, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (p[1].revents & POLLIN) != 0) return false;
      if (p[0].revents != 0) return true;
    }
  }

  void run() {
    while (wait_for(listener_, POLLIN)) {
      const int conn = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      accepted_.fetch_add(1, std::memory_order_acq_rel);
      if (behaviour_ == behaviour::answer) {  // one thread per connection: several clients at once
        connections_.emplace_back([this, conn] {
          serve(conn);
          ::close(conn);
        });
        continue;
      }
      serve(conn);
      ::close(conn);
    }
  }

  // Reads until the end of a request head (or, for `silent`, any bytes); false when the
  // client closed or the server stops.
  bool read_request(int conn, std::string& buf) {
    for (;;) {
      const std::size_t end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        buf.erase(0, end + 4);
        return true;
      }
      if (behaviour_ == behaviour::silent && !buf.empty()) return true;
      if (!wait_for(conn, POLLIN)) return false;
      char chunk[4096];
      const ssize_t n = ::recv(conn, chunk, sizeof chunk, 0);
      if (n <= 0) {
        closed_.fetch_add(1, std::memory_order_acq_rel);
        return false;
      }
      buf.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Waits for the client to close (reads and drops anything it sends).
  void until_closed(int conn) {
    char chunk[4096];
    while (wait_for(conn, POLLIN)) {
      const ssize_t n = ::recv(conn, chunk, sizeof chunk, 0);
      if (n <= 0) {
        closed_.fetch_add(1, std::memory_order_acq_rel);
        return;
      }
    }
  }

  void send_all(int conn, const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::send(conn, data, size, MSG_NOSIGNAL);
      if (n <= 0) return;
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  void serve(int conn) {
    std::string buf;
    switch (behaviour_) {
      case behaviour::answer: {
        static const char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
        while (read_request(conn, buf)) {
          requests_.fetch_add(1, std::memory_order_acq_rel);
          send_all(conn, kOk, sizeof kOk - 1);
        }
        return;
      }
      case behaviour::silent:
        if (!read_request(conn, buf)) return;
        requests_.fetch_add(1, std::memory_order_acq_rel);
        until_closed(conn);
        return;
      case behaviour::never_read: {
        requests_.fetch_add(1, std::memory_order_acq_rel);
        // A client that closes with unsent data queues its FIN behind that data, which this
        // server's full window holds back: read nothing until drain(), then read to the end.
        if (wait_for(drain_[0], POLLIN)) until_closed(conn);
        return;
      }
      case behaviour::stall_body: {
        if (!read_request(conn, buf)) return;
        static const char kHead[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nhello";
        send_all(conn, kHead, sizeof kHead - 1);
        requests_.fetch_add(1, std::memory_order_acq_rel);
        until_closed(conn);
        return;
      }
      case behaviour::never_accept:
        return;
    }
  }

  behaviour behaviour_;
  int listener_ = -1;
  int port_ = 0;
  int stop_[2] = {-1, -1};
  int drain_[2] = {-1, -1};
  std::vector<int> fillers_;
  std::atomic<int> accepted_{0};  // acq_rel/acquire: the counters publish the server's progress
  std::atomic<int> requests_{0};
  std::atomic<int> closed_{0};
  std::thread thread_;
  std::vector<std::thread> connections_;  // answer: one per connection, joined by the destructor
};

}  // namespace curl_test

#endif
