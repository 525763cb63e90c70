// disconnect_floor_server: the floor of the disconnect-detection benchmark.
//
// The least a server can do to notice that a client has left: one thread, one epoll set, no
// HTTP beyond finding the end of the request head. Each connection's head is read (at most
// kMaxHeadBytes); then the socket is watched for EPOLLRDHUP (FIN), EPOLLERR and EPOLLHUP (RST)
// only, never EPOLLIN, exactly as the example server's disconnect watcher does. Lines on stdout,
// the same as the example server's --events (CLOCK_MONOTONIC nanoseconds):
//
//   READY <port>
//   START <id> <ns>
//   CANCELLED <id> <ns> reason=client_disconnected|connection_reset steps=0 signal_ns=<ns>
//
// The CANCELLED time is taken right after epoll_wait() returns: nothing can notice sooner.
// <id> is the request's ?id= parameter (or a counter). Nothing is ever answered.
//
//   disconnect_floor_server [--port N]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

constexpr std::size_t kMaxHeadBytes = 8192;  // a longer head is not a benchmark request: dropped
constexpr int kMaxEvents = 256;
constexpr std::uint64_t kListenerKey = ~std::uint64_t{0};  // epoll key of the listening socket

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + static_cast<std::int64_t>(ts.tv_nsec);
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "disconnect_floor_server: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

// One line to stdout with one write() (a pipe to the driver: whole lines, never buffered).
void emit(const std::string& line) {
  const std::string text = line + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write(stdout)");  // the driver is gone
    }
    done += static_cast<std::size_t>(n);
  }
}

// The ?id= (or &id=) of the request line, if it is a number; otherwise `fallback`.
std::uint64_t request_id(std::string_view head, std::uint64_t fallback) {
  const std::string_view line = head.substr(0, head.find("\r\n"));
  for (const std::string_view key : {"?id=", "&id="}) {
    const std::size_t at = line.find(key);
    if (at == std::string_view::npos) continue;
    std::uint64_t id = 0;
    std::size_t i = at + key.size();
    const std::size_t first = i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') {
      id = id * 10 + static_cast<std::uint64_t>(line[i] - '0');
      ++i;
    }
    if (i > first) return id;
  }
  return fallback;
}

struct connection {
  std::string head;      // bytes received so far (until the head is complete)
  std::uint64_t id = 0;  // set when the head is complete
  bool started = false;  // the head is complete: only a disconnect is watched now
};

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--port" && i + 1 < argc) {
      char* end = nullptr;
      const long value = std::strtol(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || value < 0 || value > 65535) {
        std::fprintf(stderr, "disconnect_floor_server: --port needs a number in [0, 65535]\n");
        return 2;
      }
      port = static_cast<int>(value);
    } else {
      std::fprintf(stderr, "usage: disconnect_floor_server [--port N]\n");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);

  // ---- the listening socket: 127.0.0.1, non-blocking ----------------------------------------
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  const int one = 1;
  if (::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) die("SO_REUSEADDR");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(0x7f000001u);  // 127.0.0.1
  if (::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (::listen(listener, SOMAXCONN) != 0) die("listen");
  socklen_t len = sizeof addr;
  if (::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) die("getsockname");

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerKey;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) != 0) die("epoll_ctl(listener)");
  emit("READY " + std::to_string(ntohs(addr.sin_port)));

  std::unordered_map<int, connection> connections;
  std::uint64_t next_id = 1;
  auto drop = [&](int fd) {
    (void)::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    connections.erase(fd);
  };

  epoll_event events[kMaxEvents];
  for (;;) {
    const int n = ::epoll_wait(ep, events, kMaxEvents, -1);
    const std::int64_t woke_ns = monotonic_ns();  // the detection time of every disconnect below
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int e = 0; e < n; ++e) {
      const std::uint32_t what = events[e].events;
      if (events[e].data.u64 == kListenerKey) {
        // Accept everything pending; each socket is watched for its head (EPOLLIN).
        for (;;) {
          const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
              std::fprintf(stderr, "disconnect_floor_server: accept: %s\n", std::strerror(errno));
              break;  // the connection stays queued; the driver will time out and say so
            }
            die("accept4");
          }
          epoll_event conn_ev{};
          conn_ev.events = EPOLLIN | EPOLLRDHUP;
          conn_ev.data.u64 = static_cast<std::uint64_t>(fd);
          if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &conn_ev) != 0) die("epoll_ctl(ADD)");
          connections.emplace(fd, connection{});
        }
        continue;
      }

      const int fd = static_cast<int>(events[e].data.u64);
      const auto found = connections.find(fd);
      if (found == connections.end()) continue;  // dropped earlier in this batch
      connection& c = found->second;

      if (c.started) {
        // Only EPOLLRDHUP, EPOLLERR and EPOLLHUP can arrive here: the client has left.
        std::string reason = "client_disconnected";
        if (what & (EPOLLERR | EPOLLHUP)) {
          int err = 0;
          socklen_t err_len = sizeof err;
          if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) err = errno;
          if (err == ECONNRESET || err == EPIPE) reason = "connection_reset";
        }
        const std::string ns = std::to_string(woke_ns);
        emit("CANCELLED " + std::to_string(c.id) + " " + ns + " reason=" + reason + " steps=0 signal_ns=" + ns);
        drop(fd);
        continue;
      }

      // Still reading the head. Read what is there (bounded); a close or an error before the
      // head is complete ends the connection quietly: no request was started.
      bool gone = false;
      char chunk[4096];
      while (!c.started) {
        const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
        if (got > 0) {
          c.head.append(chunk, static_cast<std::size_t>(got));
          if (c.head.find("\r\n\r\n") != std::string::npos) {
            c.id = request_id(c.head, next_id++);
            c.started = true;
            c.head.clear();
            c.head.shrink_to_fit();
          } else if (c.head.size() > kMaxHeadBytes) {
            gone = true;
          }
          continue;
        }
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // wait for more
        gone = true;                                                      // 0 (FIN) or an error
        break;
      }
      if (gone) {
        drop(fd);
        continue;
      }
      if (c.started) {
        // From now on: the disconnect only. Level-triggered, so a FIN that came with the head is
        // reported by the next epoll_wait.
        epoll_event watch{};
        watch.events = EPOLLRDHUP;  // EPOLLERR and EPOLLHUP are always reported
        watch.data.u64 = static_cast<std::uint64_t>(fd);
        if (::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &watch) != 0) die("epoll_ctl(MOD)");
        emit("START " + std::to_string(c.id) + " " + std::to_string(monotonic_ns()));
      }
    }
  }
}
