// Integration tests of the production-shaped HTTP server (examples/http/server), run in-process
// over real sockets on 127.0.0.1. The server's lifecycle events (START, DONE, CANCELLED, with
// CLOCK_MONOTONIC timestamps) and its access log are captured in memory; requests carry ?id= so
// events are matched to the requests that caused them.
//
// All client I/O and every assertion run on the test's main thread (Catch2 v2 assertions are
// not thread-safe); concurrent clients are multiplexed with poll(). Bounds are generous (the
// suite also runs under TSan and ASan); the observed latencies are printed.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <ctoken/ctoken.hpp>

#include "app.hpp"
#include "capture.hpp"
#include "ctoken_test.hpp"
#include "events.hpp"
#include "request_registry.hpp"
#include "response.hpp"
#include "server.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using http_test::client;
using http_test::monotonic_ns;
using http_test::recorder;
using http_test::steady;
using std::chrono::milliseconds;

namespace {

constexpr std::int64_t kNsPerMs = 1000000;
constexpr std::int64_t kStopBoundNs = 5000 * kNsPerMs;  // "the handler stopped after the disconnect"

int env_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::atoi(text) : fallback;
}

// ---- a server on an ephemeral port ------------------------------------------------------------

http::server_config test_config() {
  http::server_config cfg;
  cfg.port = 0;
  cfg.max_connections = 4096;
  return cfg;
}

struct running_server {
  recorder rec;
  demo::output out;
  demo::server srv;
  std::uint16_t port;

  explicit running_server(http::server_config cfg = test_config())
      : out(rec.events_sink(), rec.log_sink()), srv(std::move(cfg), out), port(srv.start()) {}
};

std::uint64_t next_id() {
  static std::uint64_t id = 1000;  // main thread only
  return ++id;
}

std::string slow(std::uint64_t id, int steps, int step_us) {
  return "/slow?id=" + std::to_string(id) + "&steps=" + std::to_string(steps) + "&step_us=" + std::to_string(step_us);
}

std::string with_id(std::string_view path, std::uint64_t id) {
  return std::string(path) + (path.find('?') == std::string_view::npos ? "?" : "&") + "id=" + std::to_string(id);
}

client connect_to(const running_server& s) {
  client c = client::connect(s.port);
  INFO("connect: " << std::system_category().message(c.error()));
  REQUIRE(c.valid());
  return c;
}

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

void print_latencies(const char* what, const std::vector<std::int64_t>& stopped,
                     const std::vector<std::int64_t>& signalled) {
  const auto a = http_test::summarize(stopped);
  const auto b = http_test::summarize(signalled);
  std::printf(
      "[latency] %s, %zu requests: token cancelled p50 %.3f ms, max %.3f ms; handler stopped (CANCELLED event) "
      "p50 %.3f ms, max %.3f ms\n",
      what, a.count, ms(b.p50), ms(b.max), ms(a.p50), ms(a.max));
  std::fflush(stdout);
}

// Disconnects `rounds` requests mid-work, one at a time, with a FIN or an RST, and checks each
// is cancelled promptly with the right reason. Prints the detection latencies.
void disconnect_rounds(running_server& s, bool rst, int rounds) {
  std::vector<std::int64_t> stopped;
  std::vector<std::int64_t> signalled;
  const char* expected = rst ? "connection_reset" : "client_disconnected";
  for (int i = 0; i < rounds; ++i) {
    const std::uint64_t id = next_id();
    client c = connect_to(s);
    REQUIRE(c.send(http_test::get(slow(id, 1000, 5000))));  // 5 s of cancellable sleeps
    REQUIRE(s.rec.wait_event("START", id));
    std::this_thread::sleep_for(20ms);  // a few steps in
    // FIN: alternately shutdown(SHUT_WR) + close and a plain close.
    const std::int64_t closed = rst ? c.close_rst() : c.close_fin(i % 2 == 0);
    const auto ev = s.rec.wait_event("CANCELLED", id, milliseconds(kStopBoundNs / kNsPerMs));
    INFO(s.rec.describe(id));
    REQUIRE(ev);
    CHECK(ev->reason == expected);
    CHECK(ev->steps < 1000);
    CHECK(ev->ns - closed < kStopBoundNs);
    CHECK(ev->signal_ns >= closed);
    CHECK(s.rec.count("DONE", id) == 0);
    // The access log names the request 499 (client closed request) with the reason.
    const auto line = s.rec.wait_access_log(id);
    REQUIRE(line);
    CHECK(line->find(std::string("\" 499 ") + expected) != std::string::npos);
    stopped.push_back(ev->ns - closed);
    signalled.push_back(ev->signal_ns - closed);
  }
  print_latencies(rst ? "RST, one at a time" : "FIN, one at a time", stopped, signalled);
}

}  // namespace

// ---- 1. completion ----------------------------------------------------------------------------

TEST_CASE("http server: requests that complete are never cancelled") {
  running_server s;
  client c = connect_to(s);
  std::vector<std::uint64_t> ids;
  // /slow with each kind of step, then the other handlers, on one keep-alive connection.
  for (const char* work : {"sleep", "cpu", "idle"}) {
    const std::uint64_t id = next_id();
    ids.push_back(id);
    REQUIRE(c.send(http_test::get(slow(id, 5, 2000) + "&work=" + work)));
    const auto r = c.read_response();
    INFO(work << ": " << s.rec.describe(id));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "done 5 steps\n");
    CHECK_FALSE(r->connection_close());
    const auto done = s.rec.wait_event("DONE", id);
    REQUIRE(done);
    CHECK(done->steps == 5);
  }
  const std::pair<const char*, const char*> others[] = {
      {"/sleep?ms=10", "slept\n"}, {"/compute?ms=10", "found "}, {"/report?sections=2&rows=3", "section 0: "}};
  for (const auto& [path, body] : others) {
    const std::uint64_t id = next_id();
    ids.push_back(id);
    REQUIRE(c.send(http_test::get(with_id(path, id))));
    const auto r = c.read_response();
    INFO(path << ": " << s.rec.describe(id));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.rfind(body, 0) == 0);
    CHECK(s.rec.wait_event("DONE", id));
  }
  // The client leaving after its responses is not a cancellation of any of them.
  c.close_fin();
  std::this_thread::sleep_for(100ms);
  for (const std::uint64_t id : ids) {
    INFO(s.rec.describe(id));
    CHECK(s.rec.count("DONE", id) == 1);
    CHECK(s.rec.count("CANCELLED", id) == 0);
  }
  CHECK(http_test::wait_until([&] { return s.srv.active_connections() == 0; }));
}

// ---- 2, 3. disconnects mid-request ------------------------------------------------------------

TEST_CASE("http server: a FIN mid-request cancels it promptly with client_disconnected") {
  running_server s;
  disconnect_rounds(s, false, 20);
}

TEST_CASE("http server: an RST mid-request cancels it promptly with connection_reset") {
  running_server s;
  disconnect_rounds(s, true, 20);
}

// ---- 4. pipelining ----------------------------------------------------------------------------

TEST_CASE("http server: pipelined requests all complete in order and none is cancelled") {
  running_server s;
  client c = connect_to(s);
  const std::uint64_t a = next_id();
  const std::uint64_t b = next_id();
  const std::uint64_t d = next_id();
  // Three requests in one write.
  REQUIRE(c.send(http_test::get(slow(a, 3, 20000)) + http_test::get(with_id("/now", b)) +
                 http_test::get(slow(d, 2, 1000))));
  const auto r1 = c.read_response();
  const auto r2 = c.read_response();
  const auto r3 = c.read_response();
  INFO(s.rec.describe(a) << "\n" << s.rec.describe(b) << "\n" << s.rec.describe(d));
  REQUIRE(r1);
  REQUIRE(r2);
  REQUIRE(r3);
  CHECK(r1->status == 200);
  CHECK(r1->body == "done 3 steps\n");
  CHECK(r2->status == 200);
  CHECK(r2->body.find_first_not_of("0123456789\n") == std::string::npos);
  CHECK(r3->status == 200);
  CHECK(r3->body == "done 2 steps\n");
  CHECK(c.buffered().empty());
  const auto e1 = s.rec.wait_event("DONE", a);
  const auto e2 = s.rec.wait_event("DONE", b);
  const auto e3 = s.rec.wait_event("DONE", d);
  REQUIRE(e1);
  REQUIRE(e2);
  REQUIRE(e3);
  CHECK(e1->ns <= e2->ns);
  CHECK(e2->ns <= e3->ns);
  for (const std::uint64_t id : {a, b, d}) CHECK(s.rec.count("CANCELLED", id) == 0);
}

TEST_CASE("http server: a pipelined request waiting in the socket neither cancels nor spins the watcher") {
  running_server s;
  client c = connect_to(s);
  const std::uint64_t a = next_id();
  const std::uint64_t b = next_id();
  REQUIRE(c.send(http_test::get(slow(a, 10, 50000))));  // 0.5 s of sleeping steps
  REQUIRE(s.rec.wait_event("START", a));
  // The next request arrives while the first runs, so its bytes wait, readable, in the server's
  // socket for the rest of the handler: neither a disconnect nor a reason to wake the watcher.
  const std::int64_t cpu0 = http_test::process_cpu_ns();
  const std::int64_t wall0 = monotonic_ns();
  REQUIRE(c.send(http_test::get(with_id("/now", b))));
  const auto r1 = c.read_response();
  const std::int64_t cpu = http_test::process_cpu_ns() - cpu0;
  const std::int64_t wall = monotonic_ns() - wall0;
  const auto r2 = c.read_response();
  INFO(s.rec.describe(a) << "\n" << s.rec.describe(b));
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->status == 200);
  CHECK(r1->body == "done 10 steps\n");
  CHECK(r2->status == 200);
  const double ratio = static_cast<double>(cpu) / static_cast<double>(wall);
  std::printf("[cpu] pipelined request waiting in the socket: %.1f ms CPU over %.1f ms wall (%.1f%%)\n", ms(cpu),
              ms(wall), 100 * ratio);
  std::fflush(stdout);
  CHECK(wall > 200 * kNsPerMs);  // the measurement covered the handler's sleep
  CHECK(ratio < 0.5);
  CHECK(s.rec.wait_event("DONE", a));
  CHECK(s.rec.wait_event("DONE", b));
  CHECK(s.rec.count("CANCELLED", a) == 0);
  CHECK(s.rec.count("CANCELLED", b) == 0);
}

// ---- 5. half-close ----------------------------------------------------------------------------

TEST_CASE("http server: a half-close after a complete request cancels it by default") {
  running_server s;
  client c = connect_to(s);
  const std::uint64_t id = next_id();
  REQUIRE(c.send(http_test::get(slow(id, 1000, 5000))));
  REQUIRE(s.rec.wait_event("START", id));
  std::this_thread::sleep_for(20ms);
  const std::int64_t closed = monotonic_ns();
  REQUIRE(c.shutdown_write());
  const auto ev = s.rec.wait_event("CANCELLED", id, 5s);
  INFO(s.rec.describe(id));
  REQUIRE(ev);
  CHECK(ev->reason == "client_disconnected");
  CHECK(ev->ns - closed < kStopBoundNs);
  // 499 is only logged: the server sends nothing and closes.
  CHECK(c.read_to_end(5s));
  CHECK(c.buffered().empty());
}

TEST_CASE("http server: with half_close respond a half-closed client still gets its response") {
  http::server_config cfg = test_config();
  cfg.half_close = http::half_close_policy::respond;
  running_server s(cfg);
  {
    client c = connect_to(s);
    const std::uint64_t id = next_id();
    REQUIRE(c.send(http_test::get(slow(id, 20, 25000))));  // 0.5 s
    REQUIRE(s.rec.wait_event("START", id));
    const std::int64_t cpu0 = http_test::process_cpu_ns();
    const std::int64_t wall0 = monotonic_ns();
    REQUIRE(c.shutdown_write());
    const auto r = c.read_response();
    const std::int64_t cpu = http_test::process_cpu_ns() - cpu0;
    const std::int64_t wall = monotonic_ns() - wall0;
    INFO(s.rec.describe(id));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "done 20 steps\n");
    CHECK(s.rec.wait_event("DONE", id));
    CHECK(s.rec.count("CANCELLED", id) == 0);
    // The half-close keeps being true while the handler runs: the watcher must not spin on it.
    const double ratio = static_cast<double>(cpu) / static_cast<double>(wall);
    std::printf("[cpu] half-closed request under half_close=respond: %.1f ms CPU over %.1f ms wall (%.1f%%)\n", ms(cpu),
                ms(wall), 100 * ratio);
    std::fflush(stdout);
    CHECK(ratio < 0.5);
    CHECK(c.read_to_end(5s));  // then the server closes (the client has nothing more to send)
    CHECK(c.buffered().empty());
  }
  {
    // An RST still cancels under this policy, also after the half-close was seen.
    client c = connect_to(s);
    const std::uint64_t id = next_id();
    REQUIRE(c.send(http_test::get(slow(id, 1000, 5000))));
    REQUIRE(s.rec.wait_event("START", id));
    REQUIRE(c.shutdown_write());
    std::this_thread::sleep_for(100ms);
    INFO(s.rec.describe(id));
    CHECK(s.rec.count("CANCELLED", id) == 0);
    const std::int64_t closed = c.close_rst();
    const auto ev = s.rec.wait_event("CANCELLED", id, 5s);
    REQUIRE(ev);
    CHECK(ev->reason == "connection_reset");
    CHECK(ev->ns - closed < kStopBoundNs);
  }
}

// ---- 6. deadline ------------------------------------------------------------------------------

TEST_CASE("http server: the request deadline cancels with timed_out and answers 504") {
  http::server_config cfg = test_config();
  cfg.request_timeout = 200ms;
  running_server s(cfg);
  client c = connect_to(s);
  const std::uint64_t id = next_id();
  REQUIRE(c.send(http_test::get(slow(id, 100, 20000))));  // 2 s of work against a 200 ms deadline
  const auto r = c.read_response();
  INFO(s.rec.describe(id));
  REQUIRE(r);
  CHECK(r->status == 504);
  CHECK(r->connection_close());
  const auto start = s.rec.wait_event("START", id);
  const auto ev = s.rec.wait_event("CANCELLED", id);
  REQUIRE(start);
  REQUIRE(ev);
  CHECK(ev->reason == "timed_out");
  CHECK(ev->steps < 100);
  CHECK(ev->ns - start->ns >= 150 * kNsPerMs);
  CHECK(ev->ns - start->ns < kStopBoundNs);
  CHECK(c.read_to_end(5s));
  CHECK(c.eof());
}

// ---- 7. shutdown ------------------------------------------------------------------------------

TEST_CASE("http server: shutdown cancels in-flight requests with 503 and wait returns true") {
  running_server s;
  client busy = connect_to(s);
  const std::uint64_t id = next_id();
  REQUIRE(busy.send(http_test::get(slow(id, 1000, 5000))));
  // An idle keep-alive connection, between requests.
  client idle = connect_to(s);
  const std::uint64_t first = next_id();
  REQUIRE(idle.send(http_test::get(with_id("/now", first))));
  const auto answered = idle.read_response();
  REQUIRE(answered);
  REQUIRE(answered->status == 200);
  REQUIRE(s.rec.wait_event("START", id));

  const auto t0 = steady::now();
  s.srv.request_shutdown();
  const bool drained = s.srv.wait();
  const auto waited = steady::now() - t0;
  INFO(s.rec.describe(id) << "\n" << s.rec.log_tail());
  CHECK(drained);
  CHECK(waited < 5s);
  const auto ev = s.rec.wait_event("CANCELLED", id, 5s);
  REQUIRE(ev);
  CHECK(ev->reason == "shutdown");
  const auto r = busy.read_response(5s);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->connection_close());
  CHECK(busy.read_to_end(5s));
  CHECK(idle.read_to_end(5s));  // closed by the server too
  CHECK(idle.buffered().empty());
  CHECK(s.srv.active_connections() == 0);
  CHECK(s.srv.watching() == 0);
  // No longer accepting.
  const client late = client::connect(s.port, 1s);
  CHECK_FALSE(late.valid());
}

TEST_CASE("http server: a handler that ignores shutdown is cut off after drain_timeout and wait returns false") {
  http::server_config cfg = test_config();
  cfg.drain_timeout = 200ms;
  running_server s(cfg);
  client c = connect_to(s);
  const std::uint64_t id = next_id();
  REQUIRE(c.send(http_test::get(slow(id, 20, 50000) + "&check=0")));  // 1 s, deaf to its token
  REQUIRE(s.rec.wait_event("START", id));

  const auto t0 = steady::now();
  s.srv.request_shutdown();
  // wait() counts drain_timeout, then shuts the socket down: the client sees the end of the
  // stream long before the handler is done. wait() then waits for the handler's thread anyway.
  auto waiting = std::async(std::launch::async, [&s] { return s.srv.wait(); });
  CHECK(c.read_to_end(5s));
  const auto cut = steady::now() - t0;
  const bool drained = waiting.get();
  const auto waited = steady::now() - t0;
  INFO(s.rec.describe(id) << "\n" << s.rec.log_tail());
  CHECK_FALSE(drained);
  CHECK(c.buffered().empty());
  CHECK(cut >= 150ms);
  CHECK(cut < 900ms);
  CHECK(waited >= cut);
  CHECK(s.rec.wait_log_containing("drain timeout: shutting down 1 connection(s)"));
  CHECK(s.srv.active_connections() == 0);
}

// ---- 8. a body nobody reads -------------------------------------------------------------------

TEST_CASE("http server: a disconnect is detected while the request body sits unread") {
  running_server s;
  client c = connect_to(s);
  const std::uint64_t id = next_id();
  // GET with a body the handler never reads; part of it arrives while the handler runs, so it
  // waits unread in the server's socket when the FIN comes.
  REQUIRE(c.send(http_test::get(slow(id, 1000, 5000), "Content-Length: 100000\r\n")));
  REQUIRE(s.rec.wait_event("START", id));
  REQUIRE(c.send(std::string(1000, 'x')));
  std::this_thread::sleep_for(20ms);
  const std::int64_t closed = c.close_fin();
  const auto ev = s.rec.wait_event("CANCELLED", id, 5s);
  INFO(s.rec.describe(id));
  REQUIRE(ev);
  CHECK(ev->reason == "client_disconnected");
  CHECK(ev->ns - closed < kStopBoundNs);
  print_latencies("FIN with an unread body", {ev->ns - closed}, {ev->signal_ns - closed});
}

// ---- 9. failed writes -------------------------------------------------------------------------

TEST_CASE("http server: a client that resets a stream stops the handler and is logged as 499") {
  running_server s;
  client c = connect_to(s);
  const std::uint64_t id = next_id();
  REQUIRE(c.send(http_test::get(with_id("/stream?interval_ms=2&chunks=100000", id))));
  REQUIRE(c.read_until("tick 5\n"));
  CHECK(c.buffered().rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  const std::int64_t closed = c.close_rst();
  const auto ev = s.rec.wait_event("CANCELLED", id, 5s);
  INFO(s.rec.describe(id));
  REQUIRE(ev);
  CHECK(ev->reason == "connection_reset");
  CHECK(ev->steps < 100000);
  CHECK(ev->ns - closed < kStopBoundNs);
  const auto line = s.rec.wait_access_log(id);
  REQUIRE(line);
  CHECK(line->find("\" 499 connection_reset") != std::string::npos);
}

TEST_CASE("http server: a write to a client that is gone cancels the request") {
  // The writer on its own, without the watcher: a TCP pair on 127.0.0.1.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 1) == 0);
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  client peer = client::connect(ntohs(addr.sin_port));
  REQUIRE(peer.valid());
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(listener);
  REQUIRE(fd >= 0);

  SECTION("the client reset the connection") {
    peer.close_rst();
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);  // the RST has arrived
  }
  SECTION("the client closed (FIN): a write draws an RST, the next one fails") { peer.close_fin(); }

  ctoken::CancellationTokenSource client_gone;
  http::response_writer out(fd, client_gone, false);
  bool ok = out.begin_chunked(200, "text/plain", true);
  const auto deadline = steady::now() + 5s;
  while (ok && steady::now() < deadline) {
    ok = out.chunk("tick\n");
    std::this_thread::sleep_for(1ms);
  }
  ::close(fd);
  CHECK_FALSE(ok);
  CHECK(out.failed());
  CHECK_FALSE(out.complete());
  REQUIRE(client_gone.IsCancellationRequested());
  CHECK(client_gone.Token().Reason() == ctoken::errc::connection_reset);
}

// ---- 10. many at once -------------------------------------------------------------------------

TEST_CASE("http server: many concurrent requests: every disconnect is cancelled and nothing else is") {
  const int n = env_int("CTOKEN_HTTP_CONCURRENT", http_test::sanitized ? 400 : 1000);
  const unsigned seed = static_cast<unsigned>(env_int("CTOKEN_HTTP_SEED", static_cast<int>(std::random_device{}())));
  std::printf("[concurrent] %d requests, seed %u (CTOKEN_HTTP_SEED to repeat)\n", n, seed);
  std::fflush(stdout);
  INFO("seed " << seed);
  http::server_config cfg = test_config();
  cfg.max_connections = static_cast<std::size_t>(n) + 64;
  running_server s(cfg);

  enum class fate { complete, fin, rst };
  struct conn {
    client c;
    std::uint64_t id = 0;
    fate f = fate::complete;
    std::int64_t closed_ns = 0;
    std::optional<http_test::response> r;
  };
  std::mt19937 rng(seed);
  std::vector<conn> conns(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i].f = i < conns.size() / 2 ? fate::complete : (rng() % 2 == 0 ? fate::fin : fate::rst);
  }
  std::shuffle(conns.begin(), conns.end(), rng);

  // Requests that complete run 50 steps of 100 ms: long enough to be in flight while the others
  // are dropped. The others would run for a minute.
  const int complete_steps = 50;
  const auto t0 = steady::now();
  for (conn& k : conns) {
    k.id = next_id();
    k.c = connect_to(s);
    REQUIRE(k.c.send(http_test::get(slow(k.id, k.f == fate::complete ? complete_steps : 600, 100000))));
  }
  const bool all_started = s.rec.wait_count("START", conns.size(), 120s);
  const auto started = steady::now() - t0;
  INFO(s.rec.log_tail());
  REQUIRE(all_started);

  // Drop half of them, in random order, with a FIN or an RST.
  for (conn& k : conns) {
    if (k.f == fate::fin) k.closed_ns = k.c.close_fin();
    if (k.f == fate::rst) k.closed_ns = k.c.close_rst();
  }
  const std::int64_t dropped_at = monotonic_ns();

  // Read the other half's responses (poll over all of them).
  std::size_t pending = 0;
  for (const conn& k : conns) pending += k.f == fate::complete ? 1 : 0;
  const auto deadline = steady::now() + 120s;
  while (pending > 0 && steady::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<conn*> who;
    for (conn& k : conns) {
      if (k.f != fate::complete || k.r || !k.c.valid() || k.c.eof() || k.c.error() != 0) continue;
      fds.push_back({k.c.fd(), POLLIN, 0});
      who.push_back(&k);
    }
    if (fds.empty()) break;
    if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      conn& k = *who[i];
      const bool open = k.c.receive_now();
      k.r = k.c.take_response();
      if (k.r || !open) --pending;
    }
  }
  const std::size_t half_complete = conns.size() / 2;
  const std::size_t half_dropped = conns.size() - half_complete;
  // Every request ends with an event; wait for all of them before counting.
  s.rec.wait_count("DONE", half_complete, 30s);
  s.rec.wait_count("CANCELLED", half_dropped, 30s);

  int missed = 0;
  int false_cancel = 0;
  int wrong_reason = 0;
  int bad_response = 0;
  int in_flight_at_drop = 0;
  std::vector<std::int64_t> stopped;
  std::vector<std::int64_t> signalled;
  std::string first_problem;
  auto problem = [&](const conn& k, const char* what) {
    if (first_problem.empty()) first_problem = std::string(what) + ": " + s.rec.describe(k.id);
  };
  for (const conn& k : conns) {
    const auto done = s.rec.find("DONE", k.id);
    const auto cancelled = s.rec.find("CANCELLED", k.id);
    if (k.f == fate::complete) {
      if (cancelled || !done) {
        ++false_cancel;
        problem(k, "completing request not DONE or CANCELLED");
      }
      if (!k.r || k.r->status != 200 || k.r->body != "done " + std::to_string(complete_steps) + " steps\n") {
        ++bad_response;
        problem(k, "completing request without its 200");
      }
      if (done && done->ns > dropped_at) ++in_flight_at_drop;
    } else {
      if (!cancelled || done) {
        ++missed;
        problem(k, "dropped request not CANCELLED");
        continue;
      }
      if (cancelled->reason != (k.f == fate::fin ? "client_disconnected" : "connection_reset")) {
        ++wrong_reason;
        problem(k, k.f == fate::fin ? "FIN with the wrong reason" : "RST with the wrong reason");
      }
      stopped.push_back(cancelled->ns - k.closed_ns);
      signalled.push_back(cancelled->signal_ns - k.closed_ns);
    }
  }
  std::printf("[concurrent] all %zu started after %.0f ms; %d of %zu completing requests were in flight at the drop\n",
              conns.size(), std::chrono::duration<double, std::milli>(started).count(), in_flight_at_drop,
              half_complete);
  print_latencies("FIN or RST, half of the concurrent requests at once", stopped, signalled);
  INFO(first_problem);
  CHECK(missed == 0);
  CHECK(false_cancel == 0);
  CHECK(wrong_reason == 0);
  CHECK(bad_response == 0);
  CHECK(in_flight_at_drop > 0);  // otherwise "no false cancellation" would prove little
  if (!stopped.empty()) CHECK(http_test::summarize(stopped).max < kStopBoundNs);
  conns.clear();
  CHECK(http_test::wait_until([&] { return s.srv.active_connections() == 0; }, 30s));
}

// ---- 11. descriptor leaks ---------------------------------------------------------------------

TEST_CASE("http server: ten thousand dropped connections leak no descriptors") {
  const int total = env_int("CTOKEN_HTTP_CHURN", 10000);
  running_server s;
  {
    // Warm-up, so that anything created lazily on the first request is in the baseline.
    client c = connect_to(s);
    REQUIRE(c.send(http_test::get("/now")));
    REQUIRE(c.read_response());
  }
  REQUIRE(http_test::wait_until([&] { return s.srv.active_connections() == 0; }));
  const std::size_t baseline = http_test::open_fd_count();

  // Batches of 100 open at once; six ways of leaving, in turn.
  const int batch = 100;
  std::size_t peak = baseline;
  int answered = 0;
  for (int first = 0; first < total; first += batch) {
    std::vector<client> open;
    for (int i = first; i < std::min(total, first + batch); ++i) {
      client c = connect_to(s);
      switch (i % 6) {
        case 0:  // nothing sent
          break;
        case 1:  // half a request head
          REQUIRE(c.send("GET /now HTTP/1.1\r\nHo"));
          break;
        case 2:  // a whole request; leaves without reading the response
          REQUIRE(c.send(http_test::get("/now")));
          break;
        case 3:  // a long request, then an RST
          REQUIRE(c.send(http_test::get(slow(next_id(), 1000, 1000))));
          break;
        case 4:  // a whole request, reads the whole response
          REQUIRE(c.send(http_test::get("/now", "Connection: close\r\n")));
          break;
        case 5:  // a request head with only part of its body
          REQUIRE(c.send(http_test::get("/now", "Content-Length: 100\r\n") + "0123456789"));
          break;
      }
      open.push_back(std::move(c));
    }
    peak = std::max(peak, http_test::open_fd_count());
    for (int i = first; i < std::min(total, first + batch); ++i) {
      client& c = open[static_cast<std::size_t>(i - first)];
      if (i % 6 == 3) {
        c.close_rst();
      } else if (i % 6 == 4) {
        if (const auto r = c.read_response(); r && r->status == 200) ++answered;
        c.close_fin();
      } else {
        c.close_fin();
      }
    }
  }
  const bool drained = http_test::wait_until(
      [&] {
        return s.srv.active_connections() == 0 && s.srv.watching() == 0 && http_test::open_fd_count() <= baseline;
      },
      60s);
  const std::size_t after = http_test::open_fd_count();
  std::printf("[fds] %d connections dropped: open descriptors baseline %zu, peak %zu, after %zu; active %zu\n", total,
              baseline, peak, after, s.srv.active_connections());
  std::fflush(stdout);
  INFO(s.rec.log_tail());
  CHECK(drained);
  CHECK(after == baseline);
  CHECK(s.srv.active_connections() == 0);
  CHECK(s.srv.watching() == 0);
  CHECK(answered == (total + 1) / 6);  // the i % 6 == 4 ones
  // Still serving.
  client c = connect_to(s);
  REQUIRE(c.send(http_test::get("/now")));
  const auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
}

// ---- 12. hostile input ------------------------------------------------------------------------

namespace {
// Sends `bytes` on a new connection; returns the response and whether the server then closed.
struct refusal {
  std::optional<http_test::response> r;
  bool closed = false;
};
refusal refused(const running_server& s, std::string_view bytes) {
  client c = connect_to(s);
  REQUIRE(c.send(bytes));
  refusal out;
  out.r = c.read_response(5s);
  out.closed = c.read_to_end(5s);
  return out;
}
}  // namespace

TEST_CASE("http server: hostile input is refused and does not take the server down") {
  http::server_config cfg = test_config();
  cfg.parse_limits.max_head_bytes = 4096;
  cfg.parse_limits.max_body_bytes = 1000;
  cfg.header_timeout = 300ms;
  running_server s(cfg);

  {
    // A TLS ClientHello on the plain-text port, then plain garbage.
    const refusal tls = refused(s, std::string_view("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage", 18));
    REQUIRE(tls.r);
    CHECK(tls.r->status == 400);
    CHECK(tls.closed);
    const refusal words = refused(s, "HELLO THERE\r\n\r\n");
    REQUIRE(words.r);
    CHECK(words.r->status == 400);
    CHECK(words.closed);
  }
  {
    // A head over max_head_bytes (one write, so nothing is left unread when the server closes).
    const refusal big =
        refused(s, "GET /now HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + std::string(6000, 'a') + "\r\n\r\n");
    REQUIRE(big.r);
    CHECK(big.r->status == 431);
    CHECK(big.closed);
    const refusal long_line = refused(s, "GET /" + std::string(6000, 'a') + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    REQUIRE(long_line.r);
    CHECK(long_line.r->status == 414);
    CHECK(long_line.closed);
  }
  {
    // A Content-Length over max_body_bytes.
    const refusal body = refused(s, http_test::get("/now", "Content-Length: 5000\r\n"));
    REQUIRE(body.r);
    CHECK(body.r->status == 413);
    CHECK(body.closed);
  }
  {
    // Slowloris: a byte every 100 ms against header_timeout = 300 ms.
    const std::string head = http_test::get("/now");
    client c = connect_to(s);
    const auto t0 = steady::now();
    std::size_t sent = 0;
    bool readable = false;
    while (sent < head.size() && !readable && steady::now() - t0 < 10s) {
      if (!c.send(head.substr(sent, 1))) break;
      ++sent;
      pollfd p{c.fd(), POLLIN, 0};
      readable = ::poll(&p, 1, 100) == 1;
    }
    const auto r = c.read_response(5s);
    const auto elapsed = steady::now() - t0;
    CHECK(sent < head.size());  // the head was never complete
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(elapsed >= 250ms);
    CHECK(elapsed < 5s);
    CHECK(c.read_to_end(5s));
    CHECK(s.rec.wait_log_containing("408 header timeout"));
  }
  {
    // Still serving, and keep-alive still works.
    client c = connect_to(s);
    for (int i = 0; i < 2; ++i) {
      REQUIRE(c.send(http_test::get("/now")));
      const auto r = c.read_response();
      REQUIRE(r);
      CHECK(r->status == 200);
    }
  }
  CHECK(http_test::wait_until([&] { return s.srv.active_connections() == 0; }));
}

// ---- 13. routes and methods -------------------------------------------------------------------

TEST_CASE("http server: unknown paths get 404 and methods other than GET and HEAD get 405") {
  running_server s;
  client c = connect_to(s);
  const std::uint64_t a = next_id();
  const std::uint64_t b = next_id();
  const std::uint64_t d = next_id();
  REQUIRE(c.send(http_test::get(with_id("/nope", a))));
  const auto r404 = c.read_response();
  REQUIRE(r404);
  CHECK(r404->status == 404);
  CHECK(r404->body == "not found\n");
  CHECK_FALSE(r404->connection_close());
  // A POST with a body: 405, and the body is skipped, so the connection still works.
  REQUIRE(c.send("POST " + slow(b, 1, 0) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"));
  const auto r405 = c.read_response();
  REQUIRE(r405);
  CHECK(r405->status == 405);
  REQUIRE(c.send("DELETE /now HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  const auto delete405 = c.read_response();
  REQUIRE(delete405);
  CHECK(delete405->status == 405);
  REQUIRE(c.send(http_test::get(with_id("/now", d))));
  const auto r200 = c.read_response();
  REQUIRE(r200);
  CHECK(r200->status == 200);
  for (const std::uint64_t id : {a, b, d}) {
    INFO(s.rec.describe(id));
    CHECK(s.rec.wait_event("DONE", id));
    CHECK(s.rec.count("CANCELLED", id) == 0);
  }
}

TEST_CASE("http server: HEAD returns the headers without a body") {
  running_server s;
  client c = connect_to(s);
  // HEAD then GET on one connection: if HEAD sent any body bytes, the GET's response would not
  // parse where it should.
  REQUIRE(c.send("HEAD /now HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + http_test::get("/nope")));
  const auto head = c.read_response(10s, true);
  REQUIRE(head);
  CHECK(head->status == 200);
  const std::string* length = head->header("content-length");
  REQUIRE(length);
  CHECK(std::atoi(length->c_str()) > 0);
  const auto next = c.read_response();
  REQUIRE(next);
  CHECK(next->status == 404);
  CHECK(next->body == "not found\n");
  CHECK(c.buffered().empty());
}

TEST_CASE("http server: a query parameter that is not a valid value answers 400 naming it") {
  running_server s;
  client c = connect_to(s);
  const auto ask = [&c](const std::string& target) {
    REQUIRE(c.send(http_test::get(target)));
    const auto r = c.read_response();
    REQUIRE(r);
    return *r;
  };
  // Both bad parameters are named; none of the work runs.
  const auto both = ask("/slow?steps=-1&step_us=abc");
  CHECK(both.status == 400);
  CHECK(both.body ==
        "bad query parameter steps: expected an integer in [0, 1000]\n"
        "bad query parameter step_us: expected an integer in [0, 10000000]\n");
  CHECK_FALSE(both.connection_close());  // a 400 from the application keeps the connection
  const auto choice = ask("/slow?work=nap&steps=1&step_us=1");
  CHECK(choice.status == 400);
  CHECK(choice.body.find("work: expected one of sleep|cpu|idle") != std::string::npos);
  CHECK(ask("/sleep?ms=").status == 400);                        // present but empty
  CHECK(ask("/compute?ms=99999999999999999999").status == 400);  // out of range of long long
  CHECK(ask("/stream?chunks=0").status == 400);
  // Valid values still work, at the bounds too.
  CHECK(ask("/slow?steps=0&step_us=10000000").status == 200);
}

TEST_CASE("http server: a client-given request id is kept as a bounded sanitised string") {
  running_server s;
  client c = connect_to(s);
  const auto ask = [&c](const std::string& target, const std::string& headers = {}) {
    REQUIRE(c.send(http_test::get(target, headers)));
    const auto r = c.read_response();
    REQUIRE(r);
    return *r;
  };
  // X-Request-Id: kept, with every byte outside [A-Za-z0-9._:-] replaced.
  CHECK(ask("/slow?steps=1&step_us=1", "X-Request-Id: job 42/<x>\r\n").status == 200);
  CHECK(s.rec.wait_log_containing("\" 200 steps=1/1 ").has_value());
  const auto logged = s.rec.wait_log_containing(" id=job_42__x_");
  INFO(s.rec.log_tail());
  REQUIRE(logged);
  CHECK(ask("/status?id=job_42__x_").body ==
        "{\"id\":\"job_42__x_\",\"state\":\"done\",\"steps\":1,\"total\":1,\"reason\":null,\"status\":200}\n");
  // ?id= that is not a number is no longer replaced.
  CHECK(ask("/slow?id=abc-1&steps=1&step_us=1").status == 200);
  CHECK(s.rec.wait_log_containing("steps=1/1 ").has_value());
  CHECK(s.rec.wait_log_containing(" id=abc-1").has_value());
  // A long id is cut to max_request_id_bytes.
  const std::string long_id(200, 'a');
  CHECK(ask("/slow?steps=1&step_us=1", "X-Request-Id: " + long_id + "\r\n").status == 200);
  const auto cut = s.rec.wait_log_containing(" id=" + std::string(http::max_request_id_bytes, 'a'));
  REQUIRE(cut);
  CHECK(cut->find(std::string(http::max_request_id_bytes + 1, 'a')) == std::string::npos);
  CHECK(http::sanitize_request_id("a b\r\nc\x7f") == "a_b__c_");
  CHECK(http::sanitize_request_id("").empty());
}

TEST_CASE("http server: /status reports a request running, cancelled, done or unknown") {
  running_server s;
  client poller = connect_to(s);
  const auto ask = [&poller](const std::string& query) {
    REQUIRE(poller.send(http_test::get("/status?" + query)));
    const auto r = poller.read_response();
    REQUIRE(r);
    return *r;
  };
  const auto state_of = [&s](std::uint64_t id) { return s.srv.registry().get(std::to_string(id)).state; };

  // Running: the steps so far, read from the handler while it works.
  const std::uint64_t id = next_id();
  client worker = connect_to(s);
  REQUIRE(worker.send(http_test::get(slow(id, 10, 50000))));
  REQUIRE(http_test::wait_until([&] { return s.srv.registry().get(std::to_string(id)).steps >= 1; }));
  const auto running = ask("id=" + std::to_string(id));
  CHECK(running.status == 200);
  CHECK(running.body.find("{\"id\":" + std::to_string(id) + ",\"state\":\"running\",\"steps\":") == 0);
  CHECK(running.body.find(",\"total\":10,\"reason\":null,\"status\":null}") != std::string::npos);
  // The /status request took no ?id= for itself: request `id` started once.
  CHECK(s.rec.count("START", id) == 1);

  // Cancelled: the final numbers, the reason and the logged status.
  worker.close_fin();
  const auto cancelled_event = s.rec.wait_event("CANCELLED", id);
  REQUIRE(cancelled_event);
  REQUIRE(http_test::wait_until([&] { return state_of(id) == demo::request_state::cancelled; }));
  CHECK(ask("id=" + std::to_string(id)).body ==
        "{\"id\":" + std::to_string(id) +
            ",\"state\":\"cancelled\",\"steps\":" + std::to_string(cancelled_event->steps) +
            ",\"total\":10,\"reason\":\"client_disconnected\",\"status\":499}\n");

  // Done.
  const std::uint64_t done = next_id();
  REQUIRE(poller.send(http_test::get(slow(done, 2, 1000))));
  const auto answer = poller.read_response();
  REQUIRE(answer);
  CHECK(answer->status == 200);
  REQUIRE(http_test::wait_until([&] { return state_of(done) == demo::request_state::done; }));
  CHECK(ask("id=" + std::to_string(done)).body == "{\"id\":" + std::to_string(done) +
                                                      ",\"state\":\"done\",\"steps\":2,\"total\":2,\"reason\":null,"
                                                      "\"status\":200}\n");

  // Unknown, and a malformed id.
  const std::uint64_t never = next_id();
  CHECK(ask("id=" + std::to_string(never)).body == "{\"id\":" + std::to_string(never) +
                                                       ",\"state\":\"unknown\",\"steps\":0,\"total\":0,\"reason\":null,"
                                                       "\"status\":null}\n");
  CHECK(ask("id=").status == 400);       // no id
  CHECK(ask("id=a%20b").status == 400);  // not a request id: ids are sanitised, so none has a space
  CHECK(ask("").status == 400);
}

TEST_CASE("http server: the request registry is bounded and never lets an older request overwrite a newer one") {
  demo::request_registry registry(2);
  auto a = std::make_shared<demo::progress>();
  auto b = std::make_shared<demo::progress>();
  auto c = std::make_shared<demo::progress>();
  registry.started("1", 1, a);
  registry.started("2", 2, b);
  a->steps = 4;
  a->total = 9;
  CHECK(registry.get("1").steps == 4);  // read while running
  CHECK(registry.get("1").total == 9);
  registry.started("3", 3, c);  // evicts the oldest, 1: its counters go with it
  CHECK(registry.get("1").state == demo::request_state::unknown);
  registry.finished("1", 1, *a, demo::request_state::done, "", 200);  // evicted, then finished: recorded again
  a.reset();
  CHECK(registry.size() == 2);
  CHECK(registry.get("1").state == demo::request_state::done);
  CHECK(registry.get("1").steps == 4);
  CHECK(registry.get("2").state == demo::request_state::unknown);  // evicted by 1's return

  // Two requests with the same id (clients choose ids): the newer one keeps the record.
  auto older = std::make_shared<demo::progress>();
  auto newer = std::make_shared<demo::progress>();
  registry.started("job-7", 10, older);
  registry.started("job-7", 11, newer);
  newer->steps = 2;
  registry.finished("job-7", 10, *older, demo::request_state::cancelled, "client_disconnected", 499);
  CHECK(registry.get("job-7").state == demo::request_state::running);
  CHECK(registry.get("job-7").steps == 2);
  registry.finished("job-7", 11, *newer, demo::request_state::done, "", 200);
  const demo::request_record last = registry.get("job-7");
  CHECK(last.state == demo::request_state::done);
  CHECK(last.status == 200);
  CHECK(last.reason.empty());
  CHECK(registry.json("job-7") ==
        "{\"id\":\"job-7\",\"state\":\"done\",\"steps\":2,\"total\":0,\"reason\":null,\"status\":200}");
  CHECK(registry.get("3").state == demo::request_state::unknown);  // evicted by job-7
}

// ---- 14. the template alone: a handler and an observer from outside ---------------------------

namespace {

// Records what the server tells its observer, for the test's thread.
class recording_observer : public http::observer {
 public:
  struct finished_request {
    std::string id;
    std::string path;
    http::request_outcome outcome;
  };

  void request_started(const http::request& req, std::string_view) override {
    std::lock_guard<std::mutex> lock(mutex_);
    started_.push_back(req.id);
  }
  void request_finished(const http::request& req, std::string_view, const http::request_outcome& outcome) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_.push_back({req.id, req.path, outcome});
    }
    cv_.notify_all();
  }

  // The outcome of request `id`, waiting at most 10 s for it.
  std::optional<finished_request> wait_finished(const std::string& id) {
    std::unique_lock<std::mutex> lock(mutex_);
    std::optional<finished_request> found;
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (const auto& f : finished_) {
        if (f.id == id) found = f;
      }
      return found.has_value();
    });
    return found;
  }
  std::size_t started(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<std::size_t>(std::count(started_.begin(), started_.end(), id));
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> started_;
  std::vector<finished_request> finished_;
};

// An application of three routes: /hello, /wait (until cancelled) and /count (streamed).
http::response tiny_app(const http::request& req, const ctoken::CancellationToken& token) {
  if (req.path == "/hello") return http::response::text(200, "hello " + req.id + "\n");
  if (req.path == "/wait") {
    token.WaitFor(std::chrono::seconds(30));
    token.ThrowIfCancellationRequested();
    return http::response::text(200, "nobody cancelled\n");
  }
  if (req.path == "/count") {
    http::response r;
    r.next_chunk = [n = 0]() mutable -> std::optional<std::string> {
      if (n == 3) return std::nullopt;
      return std::to_string(n++) + "\n";
    };
    return r;
  }
  throw std::runtime_error("no such route");
}

}  // namespace

TEST_CASE("http server template: the handler and the observer come from outside") {
  recording_observer seen;
  http::server_config cfg = test_config();
  http::server srv(cfg, tiny_app, seen);
  const std::uint16_t port = srv.start();
  client c = client::connect(port);
  REQUIRE(c.valid());

  // A whole response, named by the client's X-Request-Id.
  REQUIRE(c.send(http_test::get("/hello", "X-Request-Id: first\r\n")));
  const auto hello = c.read_response();
  REQUIRE(hello);
  CHECK(hello->status == 200);
  CHECK(hello->body == "hello first\n");
  const auto first = seen.wait_finished("first");
  REQUIRE(first);
  CHECK(first->outcome.completed);
  CHECK(first->outcome.status == 200);
  CHECK_FALSE(first->outcome.reason);
  CHECK(first->outcome.cancelled_ns == 0);
  CHECK(first->outcome.finished_ns >= first->outcome.started_ns);
  CHECK(seen.started("first") == 1);

  // A streamed response, pulled chunk by chunk; and HEAD, which does not pull it.
  REQUIRE(c.send(http_test::get("/count", "X-Request-Id: streamed\r\n")));
  const auto counted = c.read_response();
  REQUIRE(counted);
  CHECK(counted->body == "0\n1\n2\n");
  REQUIRE(c.send("HEAD /count HTTP/1.1\r\nHost: x\r\nX-Request-Id: head\r\n\r\n"));
  const auto head = c.read_response(milliseconds(10000), true);
  REQUIRE(head);
  CHECK(head->status == 200);
  const auto head_outcome = seen.wait_finished("head");
  REQUIRE(head_outcome);
  CHECK(head_outcome->outcome.completed);

  // A handler that throws anything but OperationCanceledException: 500, not completed.
  REQUIRE(c.send(http_test::get("/nothing", "X-Request-Id: broken\r\n")));
  const auto broken = c.read_response();
  REQUIRE(broken);
  CHECK(broken->status == 500);
  const auto broken_outcome = seen.wait_finished("broken");
  REQUIRE(broken_outcome);
  CHECK_FALSE(broken_outcome->outcome.completed);
  CHECK(broken_outcome->outcome.status == 500);

  // The client leaves while the handler waits: the observer learns the reason and when the
  // watcher cancelled (its own stamp, returned by unwatch).
  client leaving = client::connect(port);
  REQUIRE(leaving.valid());
  REQUIRE(leaving.send(http_test::get("/wait")));  // no id given: the serial names it
  REQUIRE(http_test::wait_until([&] { return srv.watching() == 1; }));
  const std::int64_t closed = leaving.close_fin();
  REQUIRE(http_test::wait_until([&] { return srv.watching() == 0; }));
  srv.request_shutdown();
  CHECK(srv.wait());
  // Serials count every request of this server: /hello, /count, HEAD /count, /nothing, /wait.
  const auto left = seen.wait_finished("5");
  REQUIRE(left);
  CHECK_FALSE(left->outcome.completed);
  CHECK(left->outcome.status == 499);
  CHECK(left->outcome.reason == ctoken::errc::client_disconnected);
  CHECK(left->outcome.cancelled_ns >= closed);
  CHECK(left->outcome.cancelled_ns <= left->outcome.finished_ns);
}
