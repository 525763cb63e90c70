// Integration tests of the cancellable HTTP client (examples/http_client) over real sockets on
// 127.0.0.1: every phase of a request (connect, send, waiting for the head, reading the body)
// cancelled from another thread in both styles, with the time from Cancel to the client's
// return measured; the client's own deadline; bounded and malformed responses; and the chain
// of cancellation through the example server's /proxy: client FIN → front server's token →
// upstream socket shut down → back server's token.
//
// The client runs on the test's main thread and all assertions are made there (Catch2 v2
// assertions are not thread-safe); the cancelling "user" and the stub servers are other
// threads that only touch atomics. The measured latencies are printed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

#include "app.hpp"
#include "capture.hpp"
#include "ctoken_test.hpp"
#include "events.hpp"
#include "http_client.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using http_client::cancel_style;
using http_client::outcome;
using http_client::phase;
using http_test::monotonic_ns;
using http_test::recorder;
using http_test::steady;
using std::chrono::milliseconds;

namespace {

constexpr std::int64_t kNsPerMs = 1000000;
// Cancel → Get returns: measured well under a millisecond (a few ms in the send phase, where
// closing a socket with megabytes queued takes the time). The median of each phase and style
// must be under 100 ms; every single one under 500 ms, which survives a loaded two-core machine
// and the sanitizers (a lone scheduling stall of 200 ms was seen under TSan with load 4).
constexpr std::int64_t kTypicalBoundNs = 100 * kNsPerMs;
constexpr std::int64_t kReturnBoundNs = 500 * kNsPerMs;
constexpr cancel_style kStyles[] = {cancel_style::shutdown_socket, cancel_style::poll_fd};

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

// ---- sockets --------------------------------------------------------------------------------

// A listening socket on 127.0.0.1, an ephemeral port. `backlog` 0 with one pending connection
// makes further connects hang (their SYNs are dropped while the accept queue is full).
int listen_loopback(int backlog, std::uint16_t& port, int rcvbuf = 0) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

// A non-blocking connect to 127.0.0.1:port; returns the socket (connecting or connected).
int start_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  return fd;
}

bool connected_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return false;
  int err = 0;
  socklen_t len = sizeof err;
  return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

// A listener that never accepts, with its accept queue full: a connect to it hangs in SYN_SENT.
struct full_listener {
  std::uint16_t port = 0;
  int fd = -1;
  std::vector<int> fillers;
  bool hangs = false;  // a probe connect did not complete within 200 ms

  full_listener() {
    fd = listen_loopback(0, port);
    if (fd < 0) return;
    fillers.push_back(start_connect(port));  // completes: it fills the queue of size 0 (+1)
    (void)connected_within(fillers.back(), 1000);
    const int probe = start_connect(port);
    hangs = !connected_within(probe, 200);
    fillers.push_back(probe);  // stays in SYN_SENT, keeps the queue full
  }
  ~full_listener() {
    for (int f : fillers) ::close(f);
    if (fd >= 0) ::close(fd);
  }
  full_listener(const full_listener&) = delete;
  full_listener& operator=(const full_listener&) = delete;
};

// ---- a scripted server ------------------------------------------------------------------------

// One thread; serves one connection at a time (never_read: keeps accepting, never reads).
class stub_server {
 public:
  enum class behaviour {
    never_read,          // accepts and never reads: the client's send fills the buffers and blocks
    never_answer,        // reads the request, never answers
    headers_then_stall,  // answers a head announcing 1000 body bytes, then sends nothing
    slow_body,           // answers a head announcing 100000 bytes, then one byte every 5 ms
    canned,              // reads the request, sends `canned_response`, closes
  };

  explicit stub_server(behaviour b, std::string canned_response = {})
      : behaviour_(b), canned_(std::move(canned_response)) {
    listen_fd_ = listen_loopback(16, port_, b == behaviour::never_read ? 4096 : 0);
    if (listen_fd_ >= 0) thread_ = std::thread([this] { run(); });
  }
  ~stub_server() {
    stop_.Cancel();
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  stub_server(const stub_server&) = delete;
  stub_server& operator=(const stub_server&) = delete;

  bool valid() const { return listen_fd_ >= 0; }
  std::uint16_t port() const { return port_; }

  std::atomic<int> accepted{0};          // connections accepted
  std::atomic<int> heads{0};             // request heads read whole
  std::atomic<int> answered{0};          // response heads sent
  std::atomic<int> slow_started{0};      // slow bodies with at least 20 bytes sent
  std::atomic<int> gone{0};              // connections whose client left (EOF, RST or a failed send)
  std::atomic<std::int64_t> gone_ns{0};  // when the last one was noticed

 private:
  enum class wait_result { ready, stopped, timeout };

  wait_result wait(int fd, short events, int stop_fd, int timeout_ms) {
    for (;;) {
      pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
      const int n = ::poll(fds, 2, timeout_ms);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return n == 0 ? wait_result::timeout : wait_result::stopped;
      if (fds[1].revents != 0) return wait_result::stopped;
      return wait_result::ready;
    }
  }

  void client_left() {
    gone_ns.store(monotonic_ns());
    gone.fetch_add(1);
  }

  // Reads until the end of a request head (and any Content-Length body is ignored: the tests
  // that send a body use never_read). False if the client left or we are stopping.
  bool read_head(int fd, int stop_fd) {
    std::string in;
    char chunk[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      if (wait(fd, POLLIN, stop_fd, -1) != wait_result::ready) return false;
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        client_left();
        return false;
      }
      if (n > 0) in.append(chunk, static_cast<std::size_t>(n));
    }
    heads.fetch_add(1);
    return true;
  }

  bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        client_left();
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Discards whatever the client sends until it leaves (or we stop).
  void until_client_leaves(int fd, int stop_fd) {
    char chunk[4096];
    for (;;) {
      if (wait(fd, POLLIN, stop_fd, -1) != wait_result::ready) return;
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return client_left();
    }
  }

  void serve(int fd, int stop_fd) {
    switch (behaviour_) {
      case behaviour::never_read:
        return;
      case behaviour::never_answer:
        if (read_head(fd, stop_fd)) until_client_leaves(fd, stop_fd);
        return;
      case behaviour::headers_then_stall:
        if (!read_head(fd, stop_fd)) return;
        if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")) return;
        answered.fetch_add(1);
        return until_client_leaves(fd, stop_fd);
      case behaviour::slow_body: {
        if (!read_head(fd, stop_fd)) return;
        if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")) return;
        answered.fetch_add(1);
        for (int i = 0; i < 100000; ++i) {
          if (wait(fd, POLLIN, stop_fd, 5) != wait_result::timeout) {
            // The client sent something (it never does), left, or we stop.
            return until_client_leaves(fd, stop_fd);
          }
          if (!send_all(fd, "x")) return;
          if (i == 20) slow_started.fetch_add(1);
        }
        return;
      }
      case behaviour::canned:
        if (read_head(fd, stop_fd)) (void)send_all(fd, canned_);
        return;
    }
  }

  void run() {
    const ctoken::CancellationFd stopping(stop_.Token());
    std::vector<int> kept;  // never_read: connections left open until the end
    for (;;) {
      if (wait(listen_fd_, POLLIN, stopping.Get(), -1) != wait_result::ready) break;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      accepted.fetch_add(1);
      if (behaviour_ == behaviour::never_read) {
        kept.push_back(fd);
        continue;
      }
      serve(fd, stopping.Get());
      ::close(fd);
    }
    for (int fd : kept) ::close(fd);
  }

  behaviour behaviour_;
  std::string canned_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  ctoken::CancellationTokenSource stop_;
  std::thread thread_;
};

// ---- cancelling from another thread -----------------------------------------------------------

struct measured {
  http_client::result r;
  std::int64_t cancel_ns = 0;  // just before Cancel(), on the cancelling thread
  std::int64_t return_ns = 0;  // just after Get returned, on this thread
  std::int64_t latency() const { return return_ns - cancel_ns; }
};

// Runs `call` on this thread; another thread waits until ready() (at most 10 s), then `settle`
// more (so the call is surely blocked), then cancels with `reason`.
measured cancel_when(const std::function<bool()>& ready, milliseconds settle,
                     const std::function<http_client::result(const ctoken::CancellationToken&)>& call,
                     std::error_code reason = ctoken::errc::shutdown) {
  ctoken::CancellationTokenSource source;
  std::atomic<std::int64_t> cancel_ns{0};
  std::thread user([&] {
    (void)http_test::wait_until(ready, 10s, 1ms);
    std::this_thread::sleep_for(settle);
    cancel_ns.store(monotonic_ns());
    source.Cancel(reason);
  });
  measured m;
  m.r = call(source.Token());
  m.return_ns = monotonic_ns();
  user.join();
  m.cancel_ns = cancel_ns.load();
  return m;
}

http_client::options with_style(cancel_style style) {
  http_client::options o;
  o.style = style;
  return o;
}

std::string describe(const http_client::result& r) {
  std::ostringstream s;
  s << "outcome " << http_client::to_string(r.kind) << " in " << http_client::to_string(r.where) << ": "
    << r.error.message() << " (status " << r.status << ", " << r.body.size() << " body bytes)";
  return s.str();
}

// Prints the Cancel → return figures of one phase and style, and checks their median.
void print_latencies(const char* phase_name, cancel_style style, const std::vector<std::int64_t>& samples) {
  const auto s = http_test::summarize(samples);
  std::printf("[cancel->return] %-13s %-15s %zu rounds: p50 %.3f ms, max %.3f ms\n", phase_name,
              http_client::to_string(style), s.count, ms(s.p50), ms(s.max));
  std::fflush(stdout);
  INFO(phase_name << " " << http_client::to_string(style) << ": median " << ms(s.p50) << " ms");
  CHECK(s.p50 < kTypicalBoundNs);
}

constexpr int kRounds = 5;

// The checks every phase shares: cancelled, the reason passed through, the phase, and prompt.
void check_cancelled(const measured& m, phase expected_phase) {
  INFO(describe(m.r) << "; Cancel -> return " << ms(m.latency()) << " ms");
  CHECK(m.r.kind == outcome::cancelled);
  CHECK(m.r.error == ctoken::errc::shutdown);
  CHECK(m.r.where == expected_phase);
  CHECK(m.cancel_ns > 0);
  CHECK(m.latency() >= 0);
  CHECK(m.latency() < kReturnBoundNs);
}

// A Get of `target` from the stub, cancelled `settle` after the stub's `counter` reached `expected`.
measured cancel_get_when(const stub_server& stub, const std::atomic<int>& counter, int expected, milliseconds settle,
                         cancel_style style, const char* target = "/") {
  return cancel_when([&] { return counter.load() >= expected; }, settle,
                     [&](const ctoken::CancellationToken& token) {
                       return http_client::Get("127.0.0.1", stub.port(), target, token, with_style(style));
                     });
}

// ---- the example servers, in-process, with their events captured -----------------------------

http::server_config test_config() {
  http::server_config cfg;
  cfg.port = 0;
  return cfg;
}

struct running_server {
  recorder rec;
  demo::output out;
  demo::server srv;
  std::uint16_t port;

  explicit running_server(http::server_config cfg = test_config(), demo::services with = {})
      : out(rec.events_sink(), rec.log_sink()), srv(std::move(cfg), out, std::move(with)), port(srv.start()) {}
};

}  // namespace

// ---- 1. whole responses, and what is refused --------------------------------------------------

TEST_CASE("http client: whole responses from the example server in both styles") {
  running_server s;
  for (const cancel_style style : kStyles) {
    INFO("style " << http_client::to_string(style));
    const ctoken::CancellationTokenSource source;
    const auto opts = with_style(style);

    const auto now = http_client::Get("127.0.0.1", s.port, "/now", source.Token(), opts);
    INFO(describe(now));
    CHECK(now.ok());
    CHECK(now.where == phase::done);
    CHECK(now.status == 200);
    CHECK_FALSE(now.error);
    CHECK(now.body.find_first_not_of("0123456789\n") == std::string::npos);

    const auto slow = http_client::Get("127.0.0.1", s.port, "/slow?steps=3&step_us=1000", source.Token(), opts);
    INFO(describe(slow));
    CHECK(slow.ok());
    CHECK(slow.body == "done 3 steps\n");
    REQUIRE(slow.find("content-type"));
    CHECK(*slow.find("content-type") == "text/plain");

    // Chunked.
    const auto stream = http_client::Get("127.0.0.1", s.port, "/stream?chunks=3&interval_ms=0", source.Token(), opts);
    INFO(describe(stream));
    CHECK(stream.ok());
    CHECK(stream.body == "tick 0\ntick 1\ntick 2\n");

    // A 404 is a whole exchange, not a failure; HEAD has no body.
    const auto missing = http_client::Get("127.0.0.1", s.port, "/nope", ctoken::CancellationToken::None(), opts);
    CHECK(missing.ok());
    CHECK(missing.status == 404);
    const auto head = http_client::Request("HEAD", "127.0.0.1", s.port, "/now", {}, source.Token(), opts);
    CHECK(head.ok());
    CHECK(head.status == 200);
    CHECK(head.body.empty());
  }
}

TEST_CASE("http client: framing and limits of responses") {
  struct canned_case {
    const char* what;
    std::string response;
    outcome kind;
    std::error_code error;
    std::string body;
  };
  const std::string big_head = "HTTP/1.1 200 OK\r\nX-Pad: " + std::string(20000, 'a') + "\r\nContent-Length: 0\r\n\r\n";
  const canned_case cases[] = {
      {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", outcome::ok, {}, "hello"},
      {"chunked with extensions and trailers",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n",
       outcome::ok,
       {},
       "hello!"},
      {"until the server closes (HTTP/1.0)", "HTTP/1.0 200 OK\r\n\r\nall of it", outcome::ok, {}, "all of it"},
      {"a head over max_head_bytes", big_head, outcome::failed, http_client::errc::head_too_large, ""},
      {"a content-length over max_body_bytes", "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", outcome::failed,
       http_client::errc::body_too_large, ""},
      {"a chunk over max_body_bytes", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n",
       outcome::failed, http_client::errc::body_too_large, ""},
      {"a body closed short", "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly this", outcome::failed,
       http_client::errc::closed_early, ""},
      {"no response at all", "", outcome::failed, http_client::errc::closed_early, ""},
      {"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", outcome::failed, http_client::errc::bad_response, ""},
      {"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", outcome::failed,
       http_client::errc::bad_response, ""},
  };
  for (const cancel_style style : kStyles) {
    for (const canned_case& c : cases) {
      stub_server stub(stub_server::behaviour::canned, c.response);
      REQUIRE(stub.valid());
      const auto r =
          http_client::Get("127.0.0.1", stub.port(), "/", ctoken::CancellationToken::None(), with_style(style));
      INFO(c.what << " (" << http_client::to_string(style) << "): " << describe(r));
      CHECK(r.kind == c.kind);
      CHECK(r.error == c.error);
      if (c.kind == outcome::ok) CHECK(r.body == c.body);
    }
  }
}

TEST_CASE("http client: I/O errors are failures and not cancellations") {
  for (const cancel_style style : kStyles) {
    INFO("style " << http_client::to_string(style));
    // A port nobody listens on: ECONNREFUSED.
    std::uint16_t port = 0;
    const int fd = listen_loopback(1, port);
    REQUIRE(fd >= 0);
    ::close(fd);
    const ctoken::CancellationTokenSource source;
    const auto refused = http_client::Get("127.0.0.1", port, "/", source.Token(), with_style(style));
    INFO(describe(refused));
    CHECK(refused.kind == outcome::failed);
    CHECK(refused.where == phase::connect);
    CHECK(refused.error == std::errc::connection_refused);
    // Names are not resolved (getaddrinfo cannot be interrupted).
    const auto named = http_client::Get("localhost", port, "/", source.Token(), with_style(style));
    CHECK(named.kind == outcome::failed);
    CHECK(named.error == http_client::errc::bad_address);
  }
}

// ---- 2. cancellation in every phase -----------------------------------------------------------

TEST_CASE("http client: a token cancelled before the call returns at once without connecting") {
  stub_server stub(stub_server::behaviour::never_answer);
  REQUIRE(stub.valid());
  for (const cancel_style style : kStyles) {
    ctoken::CancellationTokenSource source;
    source.Cancel(ctoken::errc::shutdown);
    const auto t0 = steady::now();
    const auto r = http_client::Get("127.0.0.1", stub.port(), "/", source.Token(), with_style(style));
    const auto took = steady::now() - t0;
    INFO(describe(r));
    CHECK(r.kind == outcome::cancelled);
    CHECK(r.error == ctoken::errc::shutdown);
    CHECK(r.where == phase::connect);
    CHECK(took < milliseconds(kReturnBoundNs / kNsPerMs));
  }
  std::this_thread::sleep_for(50ms);
  CHECK(stub.accepted.load() == 0);
}

TEST_CASE("http client: cancelling during connect") {
  // On loopback a connect hangs only when the listener's accept queue is full: its SYNs are
  // dropped, and the client sits in SYN_SENT (retransmitting for two minutes).
  const full_listener full;
  REQUIRE(full.fd >= 0);
  if (!full.hangs) {
    // Reported skipped by ctest (ctoken_test()'s SKIP_REGULAR_EXPRESSION), never passed.
    std::printf(
        "SKIPPED: this kernel completed a connect to a full accept queue: the connect phase "
        "cannot be held on loopback\n");
    return;
  }
  const std::size_t baseline = http_test::open_fd_count();
  for (const cancel_style style : kStyles) {
    std::vector<std::int64_t> samples;
    for (int round = 0; round < kRounds; ++round) {
      const auto m = cancel_when([] { return true; }, 100ms,
                                 [&](const ctoken::CancellationToken& token) {
                                   return http_client::Get("127.0.0.1", full.port, "/", token, with_style(style));
                                 });
      check_cancelled(m, phase::connect);
      samples.push_back(m.latency());
    }
    print_latencies("connect", style, samples);
  }
  CHECK(http_test::open_fd_count() == baseline);  // every client socket and eventfd was closed
}

TEST_CASE("http client: cancelling during send to a server that never reads") {
  const std::size_t baseline = http_test::open_fd_count();
  {
    stub_server stub(stub_server::behaviour::never_read);
    REQUIRE(stub.valid());
    const std::string body(32u << 20, 'b');  // far more than the socket buffers hold
    int connections = 0;
    for (const cancel_style style : kStyles) {
      std::vector<std::int64_t> samples;
      for (int round = 0; round < kRounds; ++round) {
        const int expected = ++connections;
        const auto m = cancel_when([&] { return stub.accepted.load() >= expected; }, 100ms,
                                   [&](const ctoken::CancellationToken& token) {
                                     return http_client::Request("POST", "127.0.0.1", stub.port(), "/upload", body,
                                                                 token, with_style(style));
                                   });
        check_cancelled(m, phase::send);
        samples.push_back(m.latency());
      }
      print_latencies("send", style, samples);
    }
  }
  CHECK(http_test::wait_until([&] { return http_test::open_fd_count() == baseline; }));
}

TEST_CASE("http client: cancelling while waiting for the response head") {
  const std::size_t baseline = http_test::open_fd_count();
  {
    stub_server stub(stub_server::behaviour::never_answer);
    REQUIRE(stub.valid());
    int requests = 0;
    for (const cancel_style style : kStyles) {
      std::vector<std::int64_t> samples;
      std::vector<std::int64_t> noticed;  // Cancel → the server saw its client leave
      for (int round = 0; round < kRounds; ++round) {
        const int expected = ++requests;
        const auto m = cancel_get_when(stub, stub.heads, expected, 20ms, style, "/wait");
        check_cancelled(m, phase::head);
        CHECK(m.r.status == 0);
        samples.push_back(m.latency());
        CHECK(http_test::wait_until([&] { return stub.gone.load() >= expected; }));
        noticed.push_back(stub.gone_ns.load() - m.cancel_ns);
      }
      print_latencies("head", style, samples);
      const auto n = http_test::summarize(noticed);
      std::printf("[cancel->server sees the client leave] head %-15s p50 %.3f ms, max %.3f ms\n",
                  http_client::to_string(style), ms(n.p50), ms(n.max));
    }
  }
  CHECK(http_test::wait_until([&] { return http_test::open_fd_count() == baseline; }));
}

TEST_CASE("http client: cancelling after the head when the body stalls") {
  stub_server stub(stub_server::behaviour::headers_then_stall);
  REQUIRE(stub.valid());
  int requests = 0;
  for (const cancel_style style : kStyles) {
    std::vector<std::int64_t> samples;
    for (int round = 0; round < kRounds; ++round) {
      const int expected = ++requests;
      const auto m = cancel_get_when(stub, stub.answered, expected, 20ms, style);
      check_cancelled(m, phase::body);
      CHECK(m.r.status == 200);  // what arrived is kept
      CHECK(m.r.body.empty());
      samples.push_back(m.latency());
    }
    print_latencies("body (stall)", style, samples);
  }
}

TEST_CASE("http client: cancelling while a body arrives slowly") {
  stub_server stub(stub_server::behaviour::slow_body);
  REQUIRE(stub.valid());
  int requests = 0;
  for (const cancel_style style : kStyles) {
    std::vector<std::int64_t> samples;
    for (int round = 0; round < kRounds; ++round) {
      const int expected = ++requests;
      const auto m = cancel_get_when(stub, stub.slow_started, expected, 0ms, style);
      check_cancelled(m, phase::body);
      CHECK(m.r.body.size() > 0);
      CHECK(m.r.body.size() < 100000);
      samples.push_back(m.latency());
      CHECK(http_test::wait_until([&] { return stub.gone.load() >= expected; }));
    }
    print_latencies("body (slow)", style, samples);
  }
}

// ---- 3. the client's own deadline -------------------------------------------------------------

TEST_CASE("http client: options timeout is reported as timed_out and the caller's deadline as cancelled") {
  stub_server stub(stub_server::behaviour::never_answer);
  REQUIRE(stub.valid());
  for (const cancel_style style : kStyles) {
    INFO("style " << http_client::to_string(style));
    {
      // The client's own limit: a linked source with CancelAfter inside Get.
      auto opts = with_style(style);
      opts.timeout = 200ms;
      const ctoken::CancellationTokenSource caller;
      const auto t0 = steady::now();
      const auto r = http_client::Get("127.0.0.1", stub.port(), "/", caller.Token(), opts);
      const auto took = std::chrono::duration_cast<milliseconds>(steady::now() - t0);
      INFO(describe(r) << " after " << took.count() << " ms");
      CHECK(r.kind == outcome::timed_out);
      CHECK(r.error == ctoken::errc::timed_out);
      CHECK(r.where == phase::head);
      CHECK(took >= 190ms);
      CHECK(took < 200ms + milliseconds(kReturnBoundNs / kNsPerMs));
      CHECK_FALSE(caller.IsCancellationRequested());  // the caller's source is never touched
    }
    {
      // The caller's deadline is the caller's cancellation, whatever its reason.
      auto opts = with_style(style);
      opts.timeout = 10s;
      ctoken::CancellationTokenSource caller;
      caller.CancelAfter(100ms);
      const auto r = http_client::Get("127.0.0.1", stub.port(), "/", caller.Token(), opts);
      INFO(describe(r));
      CHECK(r.kind == outcome::cancelled);
      CHECK(r.error == ctoken::errc::timed_out);
      CHECK(r.where == phase::head);
    }
  }
}

// ---- 4. the proxy chain -----------------------------------------------------------------------

namespace {
struct chain {
  running_server back;
  running_server front;
  static http::server_config front_config(milliseconds request_timeout) {
    http::server_config cfg = test_config();
    cfg.request_timeout = request_timeout;
    return cfg;
  }
  static demo::services upstream(std::uint16_t back_port) {
    demo::services with;
    with.upstream_host = "127.0.0.1";
    with.upstream_port = back_port;
    return with;
  }
  explicit chain(milliseconds front_request_timeout = 30s)
      : back(test_config()), front(front_config(front_request_timeout), upstream(back.port)) {}
};
}  // namespace

TEST_CASE("http client: /proxy returns the backend's response and 502 without a backend") {
  chain c;
  const auto r = http_client::Get("127.0.0.1", c.front.port, "/proxy?id=71&steps=2&step_us=1000",
                                  ctoken::CancellationToken::None());
  INFO(describe(r) << c.front.rec.dump() << c.back.rec.dump());
  CHECK(r.ok());
  CHECK(r.status == 200);
  CHECK(r.body == "done 2 steps\n");
  CHECK(c.front.rec.wait_event("DONE", 71));
  CHECK(c.back.rec.wait_event("DONE", 71));

  running_server alone;
  const auto none = http_client::Get("127.0.0.1", alone.port, "/proxy", ctoken::CancellationToken::None());
  CHECK(none.ok());
  CHECK(none.status == 502);
}

TEST_CASE("http client: a client FIN travels up the proxy chain to the backend") {
  chain c;
  for (int round = 0; round < 3; ++round) {
    const std::uint64_t id = 7000 + static_cast<std::uint64_t>(round);
    http_test::client browser = http_test::client::connect(c.front.port);
    REQUIRE(browser.valid());
    // 5 s of work on the backend, reached through the front's /proxy (the query is passed on,
    // id included, so both servers name the request `id`).
    REQUIRE(browser.send(http_test::get("/proxy?id=" + std::to_string(id) + "&steps=1000&step_us=5000")));
    REQUIRE(c.front.rec.wait_event("START", id));
    REQUIRE(c.back.rec.wait_event("START", id));  // the upstream request is in flight
    std::this_thread::sleep_for(20ms);
    const std::int64_t fin = browser.close_fin();

    const auto front = c.front.rec.wait_event("CANCELLED", id, 5s);
    const auto back = c.back.rec.wait_event("CANCELLED", id, 5s);
    INFO("front:" << c.front.rec.dump() << "\nback:" << c.back.rec.dump());
    REQUIRE(front);
    REQUIRE(back);
    // The front's client left (FIN). The front's token shut its upstream socket down, which is
    // a FIN to the back: the back's client left too.
    CHECK(front->reason == "client_disconnected");
    CHECK(back->reason == "client_disconnected");
    CHECK(back->steps < 1000);
    CHECK(c.front.rec.count("DONE", id) == 0);
    CHECK(c.back.rec.count("DONE", id) == 0);
    // Causality, on one clock (CLOCK_MONOTONIC): FIN ≤ front's token cancelled ≤ front's
    // CANCELLED; FIN ≤ back's token cancelled ≤ back's CANCELLED. The back's cancellation is
    // caused by the front's, but front.signal_ns is written by a callback registered before the
    // proxy's (callbacks run newest first), i.e. just *after* the upstream shutdown(): the two
    // signal_ns may be within microseconds in either order, so only the causal bounds are
    // asserted, and the figures printed.
    CHECK(front->signal_ns >= fin);
    CHECK(back->signal_ns >= fin);
    CHECK(front->ns >= front->signal_ns);
    CHECK(back->ns >= back->signal_ns);
    CHECK(back->ns - fin < 5000 * kNsPerMs);
    CHECK(front->ns - fin < 5000 * kNsPerMs);
    std::printf(
        "[chain] round %d: client FIN t=0 -> front token cancelled +%.3f ms (reason %s) -> back token cancelled "
        "+%.3f ms (reason %s); CANCELLED events: front +%.3f ms, back +%.3f ms\n",
        round, ms(front->signal_ns - fin), front->reason.c_str(), ms(back->signal_ns - fin), back->reason.c_str(),
        ms(front->ns - fin), ms(back->ns - fin));
    std::fflush(stdout);
    // Both access logs say 499: each server's client closed the request.
    const auto front_log = c.front.rec.wait_access_log(id);
    const auto back_log = c.back.rec.wait_access_log(id);
    REQUIRE(front_log);
    REQUIRE(back_log);
    CHECK(front_log->find("\" 499 client_disconnected") != std::string::npos);
    CHECK(back_log->find("\" 499 client_disconnected") != std::string::npos);
  }
}

TEST_CASE("http client: the front's deadline also reaches the backend as a disconnect") {
  chain c(300ms);  // the front's per-request deadline
  const std::uint64_t id = 7100;
  const auto r =
      http_client::Get("127.0.0.1", c.front.port, "/proxy?id=" + std::to_string(id) + "&steps=1000&step_us=5000",
                       ctoken::CancellationToken::None());
  const auto front = c.front.rec.wait_event("CANCELLED", id, 5s);
  const auto back = c.back.rec.wait_event("CANCELLED", id, 5s);
  INFO(describe(r) << "\nfront:" << c.front.rec.dump() << "\nback:" << c.back.rec.dump());
  CHECK(r.ok());
  CHECK(r.status == 504);  // the front answers its own deadline
  REQUIRE(front);
  REQUIRE(back);
  CHECK(front->reason == "timed_out");
  CHECK(back->reason == "client_disconnected");  // to the back, the front simply left
  const auto started = c.front.rec.wait_event("START", id);
  REQUIRE(started);
  CHECK(back->signal_ns - started->ns >= 250 * kNsPerMs);  // not before the front's deadline
  CHECK(back->ns - started->ns < 5000 * kNsPerMs);
}
