// The minimal template: stop a request's work when its client disconnects, at its deadline, or
// when the server is told to stop.
//
// One thread per connection, one request per connection. The handler maps a request to a
// response and does no I/O; the connection thread reads the request, writes the response, and
// while the handler runs a second thread watches the socket: recv() returning 0 means the
// client sent FIN (closed the tab, aborted the fetch) → Cancel(errc::client_disconnected);
// ECONNRESET means RST → Cancel(errc::connection_reset). The request's one token is linked
// from that "client gone" source and the server's "stopping" source, with a deadline
// (CancelAfter): the handler checks it between steps and stops, whatever the reason.
//
//   build/default/examples/http_minimal [--port N] [--request-timeout-ms N]   (127.0.0.1, port 8080)
//   curl 'http://127.0.0.1:8080/slow'  then press Ctrl-C in curl after two seconds:
//     step 1/10 ... step 2/10 ... request cancelled after 2/10 steps: client disconnected
//
// SIGINT/SIGTERM: stop accepting, cancel the requests in flight (503), wait for them, exit 0.
// Copy this folder when you have blocking, thread-per-connection code; examples/http/server/
// shows the same mechanism with one epoll thread watching every connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

namespace {

constexpr std::size_t kMaxHeadBytes = 8192;                             // request line + headers
constexpr auto kHeadTimeout = std::chrono::seconds(10);                 // slow clients get 408
constexpr auto kDrainTimeout = kHeadTimeout + std::chrono::seconds(5);  // on SIGINT/SIGTERM: a head still
                                                                        // arriving may take kHeadTimeout
constexpr std::size_t kMaxConnections = 256;                            // more are refused with 503

void log(const char* format, ...) __attribute__((format(printf, 1, 2)));
void log(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

// ---- the application: a request's token in, a response out, no I/O ----------------------------

struct response {
  int status = 200;
  std::string body;
};

// GET /slow: ten one-second steps, checking the token before each one. Without the check it
// would keep working for ten seconds for nobody. On cancellation it says why and throws
// OperationCanceledException; the connection answers by the reason.
response handle_slow(const ctoken::CancellationToken& token) {
  constexpr int kSteps = 10;
  for (int step = 1; step <= kSteps; ++step) {
    // SleepFor stands for a step of real work; it returns false at once on cancellation.
    if (!ctoken::SleepFor(std::chrono::seconds(1), token)) {
      log("request cancelled after %d/%d steps: %s", step - 1, kSteps, token.Reason().message().c_str());
      token.ThrowIfCancellationRequested();
    }
    log("step %d/%d", step, kSteps);
  }
  log("request completed");
  return {200, "done 10 steps\n"};
}

// ---- the connection: read, watch, answer --------------------------------------------------------

const char* status_text(int status) noexcept {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

// Sends the whole response (MSG_NOSIGNAL: a client that is gone gives EPIPE, not SIGPIPE).
// Best effort: the connection is closed next either way.
void send_response(int fd, const response& r) noexcept {
  char head[160];
  const int length = std::snprintf(head, sizeof head,
                                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                                   "Connection: close\r\n\r\n",
                                   r.status, status_text(r.status), r.body.size());
  if (length <= 0) return;
  const std::string_view parts[2] = {std::string_view(head, static_cast<std::size_t>(length)), r.body};
  for (std::string_view data : parts) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return;  // EPIPE / ECONNRESET: the client is gone
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
}

// Reads until the blank line that ends the request head, within kHeadTimeout and
// kMaxHeadBytes. Returns the request line, or std::nullopt (after answering 4xx where it makes
// sense) if there is no usable request.
std::optional<std::string> read_request_line(int fd) {
  std::string head;
  char buf[1024];
  const auto deadline = std::chrono::steady_clock::now() + kHeadTimeout;
  while (head.find("\r\n\r\n") == std::string::npos && head.find("\n\n") == std::string::npos) {
    if (head.size() >= kMaxHeadBytes) {
      send_response(fd, {431, "request head too large\n"});
      return std::nullopt;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      if (ready == 0) send_response(fd, {408, "request head not received in time\n"});
      return std::nullopt;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;  // closed or reset before sending a request
    head.append(buf, static_cast<std::size_t>(n));
  }
  return head.substr(0, head.find_first_of("\r\n"));
}

// Watches `fd` until `handler_finished` turns readable; cancels `client_gone` if the client
// disconnects first. POLLRDHUP reports the peer's FIN even when unread bytes are pending;
// recv(MSG_PEEK) then tells FIN (0) from RST (ECONNRESET) without consuming anything.
void watch_for_disconnect(int fd, ctoken::CancellationFd handler_finished,
                          ctoken::CancellationTokenSource client_gone) noexcept {
  for (;;) {
    pollfd fds[2] = {{fd, POLLRDHUP, 0}, {handler_finished.Get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;  // cannot watch: the request still ends at its deadline
    }
    if (fds[1].revents & POLLIN) return;  // the handler finished: stop watching
    if (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
      char byte;
      const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      client_gone.Cancel(n < 0 && errno == ECONNRESET ? ctoken::errc::connection_reset
                                                      : ctoken::errc::client_disconnected);
      return;
    }
  }
}

// One request on `fd`, under a token linked from "client gone" and `stopping`, with a deadline.
// Throws only before it has answered (out of descriptors or threads), never after.
void serve(int fd, const ctoken::CancellationToken& stopping, std::chrono::milliseconds request_timeout) {
  const std::optional<std::string> line = read_request_line(fd);
  if (!line) return;
  if (line->rfind("GET ", 0) != 0) return send_response(fd, {405, "only GET\n"});
  if (line->rfind("GET /slow ", 0) != 0 && line->rfind("GET /slow?", 0) != 0) {
    return send_response(fd, {404, "try GET /slow\n"});
  }

  ctoken::CancellationTokenSource client_gone;  // cancelled by the watcher
  auto request = ctoken::CancellationTokenSource::CreateLinkedTokenSource(client_gone.Token(), stopping);
  request.CancelAfter(request_timeout);  // the request's deadline: 504
  // A source used only as a signal, not as a request's token: the connection cancels it when
  // the handler has returned, and the watcher, polling its descriptor, stops.
  ctoken::CancellationTokenSource handler_finished;
  ctoken::CancellationFd handler_finished_fd(handler_finished.Token());                        // may throw (EMFILE)
  std::thread watcher(watch_for_disconnect, fd, std::move(handler_finished_fd), client_gone);  // may throw
  struct stop_watcher {  // on every way out: the watcher stops touching fd before it is closed
    ctoken::CancellationTokenSource& finished;
    std::thread& thread;
    ~stop_watcher() {
      finished.Cancel();
      thread.join();
    }
  };

  response answer;
  {
    const stop_watcher stop{handler_finished, watcher};
    try {
      answer = handle_slow(request.Token());
    } catch (const ctoken::OperationCanceledException& e) {
      if (e.Reason() == ctoken::errc::timed_out) {
        answer = {504, "request deadline passed\n"};
      } else if (e.Reason() == ctoken::errc::shutdown) {
        answer = {503, "server shutting down\n"};
      } else {
        return;  // the client is gone: nobody to answer
      }
    } catch (const std::exception& e) {
      log("handler error: %s", e.what());
      answer = {500, "internal error\n"};
    }
  }
  send_response(fd, answer);
}

// ---- the server: accept, bound, stop ------------------------------------------------------------

std::mutex g_mutex;
std::condition_variable g_drained;
std::size_t g_connections = 0;  // guarded by g_mutex

void connection_finished() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (--g_connections == 0) g_drained.notify_all();
}

// A connection's thread. Nothing escapes it (that would end the process in std::terminate):
// whatever serve() throws is answered 503, and the socket is always closed.
void connection_thread(int fd, ctoken::CancellationToken stopping, std::chrono::milliseconds request_timeout) {
  try {
    serve(fd, stopping, request_timeout);
  } catch (const std::exception& e) {
    log("cannot serve a connection: %s", e.what());
    send_response(fd, {503, "server overloaded, try again\n"});
  } catch (...) {
    send_response(fd, {503, "server overloaded, try again\n"});
  }
  ::close(fd);
  connection_finished();
}

// A whole decimal number in [lo, hi], or std::nullopt.
std::optional<long> number(const char* text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi) return std::nullopt;
  return value;
}

int usage() {
  log("usage: http_minimal [--port N (0..65535, 0: any)] [--request-timeout-ms N (1..3600000)]");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  long port = 8080;
  std::chrono::milliseconds request_timeout{30000};
  for (int i = 1; i < argc; i += 2) {  // flag, value
    const std::string flag = argv[i];
    const std::optional<long> value =
        i + 1 < argc ? number(argv[i + 1], 0, flag == "--port" ? 65535 : 3600000) : std::nullopt;
    if (!value) return usage();
    if (flag == "--port") {
      port = *value;
    } else if (flag == "--request-timeout-ms" && *value >= 1) {
      request_timeout = std::chrono::milliseconds(*value);
    } else {
      return usage();
    }
  }

  // SIGINT/SIGTERM are taken by sigwait() on one thread: blocked before any thread starts, so
  // every thread inherits the mask. SIGPIPE is ignored (sends use MSG_NOSIGNAL anyway).
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); rc != 0) {
    log("pthread_sigmask: %s", std::strerror(rc));
    return 1;
  }

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
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, SOMAXCONN) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    log("listening on 127.0.0.1:%ld: %s", port, std::strerror(errno));
    return 1;
  }

  try {
    // The server's "stopping" source: every request's token is linked to it.
    ctoken::CancellationTokenSource stopping;
    ctoken::CancellationFd stopping_fd(stopping.Token());  // wakes the accept loop
    std::thread signal_thread([&stop_signals, &stopping] {
      int signal_number = 0;
      if (sigwait(&stop_signals, &signal_number) == 0) log("signal %d: shutting down", signal_number);
      stopping.Cancel(ctoken::errc::shutdown);
    });
    std::printf("listening on http://127.0.0.1:%u/slow\n", ntohs(addr.sin_port));
    std::fflush(stdout);

    while (!stopping.IsCancellationRequested()) {
      pollfd fds[2] = {{listener, POLLIN, 0}, {stopping_fd.Get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 || !(fds[0].revents & POLLIN)) continue;  // EINTR, or stopping
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        log("accept: %s", std::strerror(errno));
        ctoken::SleepFor(std::chrono::milliseconds(100), stopping.Token());  // e.g. EMFILE: do not spin
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_connections >= kMaxConnections) {
          send_response(fd, {503, "too many connections\n"});
          ::close(fd);
          continue;
        }
        ++g_connections;
      }
      try {
        std::thread(connection_thread, fd, stopping.Token(), request_timeout).detach();
      } catch (const std::system_error& e) {
        log("cannot start a thread: %s", e.what());
        send_response(fd, {503, "server overloaded, try again\n"});
        ::close(fd);
        connection_finished();
      }
    }
    ::close(listener);
    signal_thread.join();
    // The requests in flight were cancelled with the source (503); wait for their threads.
    std::unique_lock<std::mutex> lock(g_mutex);
    if (!g_drained.wait_for(lock, kDrainTimeout, [] { return g_connections == 0; })) {
      log("drain timeout: %zu connection(s) still running", g_connections);
      std::_Exit(1);  // their detached threads still use this process: do not run destructors
    }
    log("drained, bye");
    return 0;
  } catch (const std::exception& e) {
    log("fatal: %s", e.what());
    return 1;
  }
}
