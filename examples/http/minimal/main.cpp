// The minimal template: stop a request's work when its client disconnects.
//
// One thread per connection, one request per connection. While the handler runs, a second
// thread watches the socket: recv() returning 0 means the client sent FIN (closed the tab,
// aborted the fetch) → Cancel(errc::client_disconnected); ECONNRESET means RST →
// Cancel(errc::connection_reset). The handler checks the token between steps and stops.
//
//   build/default/examples/http_minimal [port]      (binds 127.0.0.1, default port 8080)
//   curl 'http://127.0.0.1:8080/slow'  then press Ctrl-C in curl after two seconds:
//     step 1/10 ... step 2/10 ... request cancelled after 2/10 steps: client disconnected
//
// Copy this when you have blocking, thread-per-connection code; examples/http/server/ shows
// the same mechanism with one epoll thread watching every connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

namespace {

constexpr std::size_t kMaxHeadBytes = 8192;  // request line + headers
constexpr int kHeadTimeoutMs = 10000;        // slow clients get 408
constexpr int kMaxConnections = 256;         // more are refused with 503
std::atomic<int> g_connections{0};

void log(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

bool send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;  // EPIPE / ECONNRESET: the client is gone
    }
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

void respond(int fd, int status, const char* text, const std::string& body) {
  const std::string message = "HTTP/1.1 " + std::to_string(status) + " " + text +
                              "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\nConnection: close\r\n\r\n" + body;
  (void)send_all(fd, message);
}

// Reads until the blank line that ends the request head. Returns the request line, or an
// empty string (after answering 4xx where it makes sense) if there is no usable request.
std::string read_request_line(int fd) {
  std::string head;
  char buf[1024];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kHeadTimeoutMs);
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    if (head.size() >= kMaxHeadBytes) {
      respond(fd, 431, "Request Header Fields Too Large", "request head too large\n");
      return {};
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      if (ready == 0) respond(fd, 408, "Request Timeout", "request head not received in time\n");
      return {};
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};  // closed or reset before sending a request
    head.append(buf, static_cast<std::size_t>(n));
  }
  const std::size_t end = head.find_first_of("\r\n");
  return head.substr(0, end);
}

// Watches `fd` until `done` is cancelled; cancels `client_gone` if the client disconnects.
// POLLRDHUP reports the peer's FIN even when unread bytes are pending; recv(MSG_PEEK) then
// tells FIN (0) from RST (ECONNRESET) without consuming anything.
void watch_for_disconnect(int fd, const ctoken::CancellationToken& done, ctoken::CancellationTokenSource client_gone) {
  ctoken::CancellationFd done_fd(done);
  for (;;) {
    pollfd fds[2] = {{fd, POLLRDHUP, 0}, {done_fd.Get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents & POLLIN) return;  // the handler finished: stop watching
    if (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      char byte;
      const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && errno == ECONNRESET) {
        client_gone.Cancel(ctoken::errc::connection_reset);
      } else {
        client_gone.Cancel(ctoken::errc::client_disconnected);
      }
      return;
    }
  }
}

// The handler: ten one-second steps, checking the token before each one. Without the check it
// would keep working for ten seconds for nobody.
void slow_handler(int fd, const ctoken::CancellationToken& token) {
  constexpr int kSteps = 10;
  for (int step = 1; step <= kSteps; ++step) {
    // SleepFor stands for a step of real work; it also returns early on cancellation.
    if (!ctoken::SleepFor(std::chrono::seconds(1), token)) {
      log("request cancelled after %d/%d steps: %s", step - 1, kSteps, token.Reason().message().c_str());
      return;  // nothing to send: nobody is listening
    }
    log("step %d/%d", step, kSteps);
  }
  respond(fd, 200, "OK", "done 10 steps\n");
  log("request completed");
}

void serve(int fd) {
  const std::string line = read_request_line(fd);
  if (line.rfind("GET /slow ", 0) == 0 || line.rfind("GET /slow?", 0) == 0) {
    ctoken::CancellationTokenSource client_gone;  // cancelled by the watcher
    ctoken::CancellationTokenSource done;         // tells the watcher to stop
    std::thread watcher(watch_for_disconnect, fd, done.Token(), client_gone);
    slow_handler(fd, client_gone.Token());
    done.Cancel();
    watcher.join();  // the watcher no longer touches fd: safe to close it
  } else if (!line.empty()) {
    respond(fd, 404, "Not Found", "try GET /slow\n");
  }
  ::close(fd);
  g_connections.fetch_sub(1);
}

}  // namespace

int main(int argc, char** argv) {
  const long port = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 8080;
  if (port < 0 || port > 65535) {
    log("usage: http_minimal [port]");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) {
    log("socket: %s", std::strerror(errno));
    return 1;
  }
  const int one = 1;
  if (::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    log("SO_REUSEADDR: %s", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, SOMAXCONN) != 0) {
    log("bind/listen on 127.0.0.1:%ld: %s", port, std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof addr;
  if (::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    log("getsockname: %s", std::strerror(errno));
    return 1;
  }
  std::printf("listening on http://127.0.0.1:%u/slow\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      log("accept: %s", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // e.g. EMFILE: do not spin
      continue;
    }
    if (g_connections.fetch_add(1) >= kMaxConnections) {
      respond(fd, 503, "Service Unavailable", "too many connections\n");
      ::close(fd);
      g_connections.fetch_sub(1);
      continue;
    }
    try {
      std::thread(serve, fd).detach();
    } catch (const std::system_error& e) {
      log("cannot start a thread: %s", e.what());
      ::close(fd);
      g_connections.fetch_sub(1);
    }
  }
}
