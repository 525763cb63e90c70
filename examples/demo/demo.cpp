// The one-command demo: starts the example HTTP server (examples/http/server) in this process
// on an ephemeral loopback port, drives it with scripted clients over real sockets, and prints
// what the server did with each request: its status, the cancellation reason, how many of the
// handler's steps ran, and how long after the client left the request's token was cancelled.
// Two clients leave while their request spends its time in a library: a database query
// (/sqlite, or /postgres with --postgres) and an outgoing HTTP call (/fetch, to this server's
// own /slow); their rows check that the query itself was interrupted and that the upstream
// logged 499. Exits 1 if a scenario does not behave as labelled (ctest runs it).
//
//   demo [--postgres CONNINFO]  the scenarios and the table (a few seconds); with --postgres the
//                               database row runs SELECT pg_sleep(10) on that server
//   demo --serve [--port N] [--postgres CONNINFO]
//                               keeps the server up for a browser (the page at /), until Ctrl-C
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "app.hpp"
#include "events.hpp"
#include "request_registry.hpp"

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

constexpr int kSteps = 10;                          // /slow: ten steps ...
constexpr int kStepUs = 100000;                     // ... of 100 ms: one second of work
constexpr milliseconds kLeaveAfter{300};            // when the impatient clients leave
constexpr milliseconds kRequestTimeout{1500};       // the server's per-request deadline
constexpr std::int64_t kMaxLatencyNs = 1000000000;  // "cancelled at once": within 1 s (typically µs)

// ---- the server's events and access log, captured in memory ----------------------------------

class capture {
 public:
  demo::output::sink sink() {
    return [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mutex_);
      lines_.push_back(line);
    };
  }

  // The signal_ns field of the CANCELLED event of request `id` (when its token was cancelled),
  // or 0 if there is none.
  std::int64_t cancelled_signal_ns(const std::string& id) const {
    return std::atoll(field("CANCELLED", id, "signal_ns").c_str());
  }

  // The value of `name` (name=value) in the first `kind` event of request `id`; "<ns>" asks for
  // the event's own timestamp. Empty if there is no such event or field.
  std::string field(const std::string& kind, const std::string& id, const std::string& name) const {
    const std::string prefix = kind + " " + id + " ";
    std::lock_guard<std::mutex> lock(mutex_);
    for (const std::string& line : lines_) {
      if (line.compare(0, prefix.size(), prefix) != 0) continue;
      if (name == "<ns>") return line.substr(prefix.size(), line.find(' ', prefix.size()) - prefix.size());
      const std::size_t at = line.find(" " + name + "=");
      if (at == std::string::npos) return std::string();
      const std::size_t from = at + name.size() + 2;
      return line.substr(from, line.find(' ', from) - from);
    }
    return std::string();
  }

  void print(std::FILE* to) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const std::string& line : lines_) std::fprintf(to, "  %s\n", line.c_str());
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

// ---- a raw HTTP/1.1 client: it can leave in every way a real client can ---------------------

class connection {
 public:
  explicit connection(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      const int error = errno;
      ::close(fd_);
      throw std::system_error(error, std::generic_category(), "connect");
    }
    const int one = 1;
    (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The three ways to leave. Each returns CLOCK_MONOTONIC ns taken just before.
  std::int64_t close_fin() {  // close(): a FIN (nothing unread is pending)
    const std::int64_t at = http::monotonic_ns();
    ::close(std::exchange(fd_, -1));
    return at;
  }
  std::int64_t close_rst() {  // SO_LINGER {1, 0} then close(): an RST
    const linger l{1, 0};
    (void)::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    const std::int64_t at = http::monotonic_ns();
    ::close(std::exchange(fd_, -1));
    return at;
  }
  std::int64_t shutdown_write() {  // a FIN, but the socket can still read the answer
    const std::int64_t at = http::monotonic_ns();
    (void)::shutdown(fd_, SHUT_WR);
    return at;
  }

  // Reads up to `count` whole responses (Content-Length framed, as this server sends them)
  // within `timeout`; returns their statuses. Stops early when the server closes.
  std::vector<int> read_responses(std::size_t count, milliseconds timeout) {
    std::vector<int> statuses;
    const auto deadline = steady::now() + timeout;
    while (statuses.size() < count) {
      if (take_response(statuses)) continue;
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
      if (left <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) break;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        closed_ = true;
        break;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
    return statuses;
  }
  bool closed_by_server() const noexcept { return closed_; }

 private:
  bool take_response(std::vector<int>& statuses) {
    const std::size_t end = buffer_.find("\r\n\r\n");
    if (end == std::string::npos || buffer_.size() < 12) return false;
    std::string head = buffer_.substr(0, end);
    for (char& c : head) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    std::size_t length = 0;
    if (const std::size_t at = head.find("\r\ncontent-length:"); at != std::string::npos) {
      length = static_cast<std::size_t>(std::strtoull(head.c_str() + at + 17, nullptr, 10));
    }
    if (buffer_.size() < end + 4 + length) return false;
    statuses.push_back(std::atoi(buffer_.c_str() + 9));  // "HTTP/1.1 200 ..."
    buffer_.erase(0, end + 4 + length);
    return true;
  }

  int fd_;
  std::string buffer_;
  bool closed_ = false;
};

std::string get(std::uint64_t id, int steps) {
  return "GET /slow?id=" + std::to_string(id) + "&steps=" + std::to_string(steps) +
         "&step_us=" + std::to_string(kStepUs) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
}

// ---- the scenarios -------------------------------------------------------------------------

struct expectation {
  demo::request_state state;
  int status;
  std::string reason;  // empty: none
  bool all_steps;      // all the steps ran (else: it stopped early)
  bool timed;          // a disconnect (or shutdown) time is measured: cancellation must follow it
};

// What a row checks beyond the request itself: the library call it was spending its time in.
enum class spends { handler, database, outgoing_call };

struct row {
  std::string scenario;
  std::uint64_t id = 0;
  expectation expected;
  spends in = spends::handler;
  std::string client{};           // what the client got: statuses, "closed" (no answer), "-" (it left)
  std::int64_t left_ns = 0;       // when the client left (or the shutdown began), CLOCK_MONOTONIC
  demo::request_record server{};  // the server's view, from its registry
  std::int64_t signal_ns = 0;     // when the request's token was cancelled (CANCELLED event)
  std::string failure{};          // empty: behaved as labelled
  std::string evidence{};         // the library call's end, for the "as labelled" column
};

struct context {
  demo::server& server;
  std::uint16_t port;
  capture& events;
  bool postgres;  // the database row queries PostgreSQL (--postgres), else SQLite
};

std::string join_statuses(const std::vector<int>& statuses) {
  std::string s;
  for (int status : statuses) {
    if (!s.empty()) s += ',';
    s += std::to_string(status);
  }
  return s.empty() ? "none" : s;
}

// Waits for the server to finish request `id` (its registry says done or cancelled).
demo::request_record finished(const context& ctx, const std::string& id) {
  const auto deadline = steady::now() + 10s;
  for (;;) {
    demo::request_record r = ctx.server.registry().get(id);
    if (r.state == demo::request_state::done || r.state == demo::request_state::cancelled) return r;
    if (steady::now() >= deadline) return r;
    std::this_thread::sleep_for(2ms);
  }
}
demo::request_record finished(const context& ctx, std::uint64_t id) { return finished(ctx, std::to_string(id)); }

std::string ms_text(std::int64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", static_cast<double>(ns) / 1e6);
  return text;
}

// The rows whose request spent its time in a library: the call itself must have ended early,
// promptly after the client left (the CALL_ENDED event, written when the library returned) and,
// for the outgoing call, the upstream must have seen its own client leave (its 499).
void judge_call(const context& ctx, row& r, std::ostringstream& why) {
  const std::string id = std::to_string(r.id);
  const std::string result = ctx.events.field("CALL_ENDED", id, "result");
  const std::int64_t ended_ns = std::atoll(ctx.events.field("CALL_ENDED", id, "<ns>").c_str());
  const std::int64_t after = ended_ns - r.left_ns;
  if (r.in == spends::database) {
    const char* expected = ctx.postgres ? "canceled_57014" : "interrupted";
    if (result != expected) why << "the query ended with '" << result << "', not " << expected << "; ";
    if (ended_ns == 0 || after < 0 || after > kMaxLatencyNs) why << "the query ended " << after << " ns after; ";
    if (why.tellp() == 0)
      r.evidence = std::string(ctx.postgres ? "query cancelled (57014) " : "query interrupted ") + ms_text(after) +
                   " ms after the close";
    return;
  }
  if (result != "aborted") why << "the call ended with '" << result << "', not aborted; ";
  const std::string up = id + ".up";
  const demo::request_record upstream = finished(ctx, up);
  const std::int64_t up_signal = ctx.events.cancelled_signal_ns(up);
  const std::int64_t up_after = up_signal - r.left_ns;
  if (upstream.state != demo::request_state::cancelled || upstream.status != 499 ||
      upstream.reason != "client_disconnected") {
    why << "upstream " << demo::state_name(upstream.state) << " " << upstream.status << " '" << upstream.reason
        << "'; ";
  }
  if (upstream.total == 0 || upstream.steps == upstream.total) {
    why << "upstream steps " << upstream.steps << "/" << upstream.total << "; ";
  }
  if (up_signal == 0 || up_after < 0 || up_after > kMaxLatencyNs)
    why << "upstream cancelled " << up_after << " ns after; ";
  if (why.tellp() == 0) r.evidence = "upstream 499, cancelled " + ms_text(up_after) + " ms after the close";
}

void judge(const context& ctx, row& r) {
  r.server = finished(ctx, r.id);
  r.signal_ns = ctx.events.cancelled_signal_ns(std::to_string(r.id));
  const expectation& e = r.expected;
  std::ostringstream why;
  if (r.server.state != e.state) why << "state " << demo::state_name(r.server.state) << "; ";
  if (r.server.status != e.status) why << "status " << r.server.status << "; ";
  if (r.server.reason != e.reason) why << "reason '" << r.server.reason << "'; ";
  const bool all = r.server.total > 0 && r.server.steps == r.server.total;
  if (all != e.all_steps) why << "steps " << r.server.steps << "/" << r.server.total << "; ";
  if (e.timed) {
    const std::int64_t latency = r.signal_ns - r.left_ns;
    if (r.signal_ns == 0 || latency < 0 || latency > kMaxLatencyNs) why << "cancelled " << latency << " ns after; ";
  }
  if (r.in != spends::handler) judge_call(ctx, r, why);
  r.failure = why.str();
  if (!r.failure.empty()) r.failure.resize(r.failure.size() - 2);  // the last "; "
}

row waits(const context& ctx) {
  row r{"waits for the answer", 1, {demo::request_state::done, 200, "", true, false}};
  connection c(ctx.port);
  c.send(get(r.id, kSteps));
  r.client = join_statuses(c.read_responses(1, 10s));
  if (r.client != "200") r.failure = "client got " + r.client;
  // Leaves only once the server has logged the request: a close racing the server's last
  // bookkeeping after the response was sent could be reported as a (harmless) disconnect.
  (void)finished(ctx, r.id);
  return r;
}

row closes(const context& ctx) {
  row r{"closes (FIN) after 300 ms", 2, {demo::request_state::cancelled, 499, "client_disconnected", false, true}};
  connection c(ctx.port);
  c.send(get(r.id, kSteps));
  std::this_thread::sleep_for(kLeaveAfter);
  r.left_ns = c.close_fin();
  r.client = "-";
  return r;
}

row resets(const context& ctx) {
  row r{"resets (RST) after 300 ms", 3, {demo::request_state::cancelled, 499, "connection_reset", false, true}};
  connection c(ctx.port);
  c.send(get(r.id, kSteps));
  std::this_thread::sleep_for(kLeaveAfter);
  r.left_ns = c.close_rst();
  r.client = "-";
  return r;
}

row half_closes(const context& ctx) {
  row r{"half-closes after the request", 4, {demo::request_state::cancelled, 499, "client_disconnected", false, true}};
  connection c(ctx.port);
  c.send(get(r.id, kSteps));
  r.left_ns = c.shutdown_write();  // still reading: but a FIN means "gone" (as Kestrel, Go)
  const auto statuses = c.read_responses(1, 10s);
  r.client = statuses.empty() && c.closed_by_server() ? "closed" : join_statuses(statuses);
  return r;
}

std::vector<row> pipelined(const context& ctx) {
  row first{"pipelined pair: first", 5, {demo::request_state::done, 200, "", true, false}};
  row second{"pipelined pair: second", 6, {demo::request_state::done, 200, "", true, false}};
  connection c(ctx.port);
  c.send(get(first.id, 3) + get(second.id, 3));  // both in one write: the second waits queued
  const auto statuses = c.read_responses(2, 10s);
  first.client = statuses.size() > 0 ? std::to_string(statuses[0]) : "none";
  second.client = statuses.size() > 1 ? std::to_string(statuses[1]) : "none";
  if (first.client != "200") first.failure = "client got " + first.client;
  if (second.client != "200") second.failure = "client got " + second.client;
  (void)finished(ctx, second.id);  // as in waits()
  return {first, second};
}

row deadline(const context& ctx) {
  row r{"exceeds the 1.5 s deadline", 7, {demo::request_state::cancelled, 504, "timed_out", false, false}};
  connection c(ctx.port);
  c.send(get(r.id, 3 * kSteps));  // three seconds of work
  r.client = join_statuses(c.read_responses(1, 10s));
  if (r.client != "504") r.failure = "client got " + r.client;
  return r;
}

// A client that leaves (FIN) 300 ms into a request spending its time in a library call.
row leaves_during_call(const context& ctx, row r, const std::string& target) {
  connection c(ctx.port);
  c.send("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  std::this_thread::sleep_for(kLeaveAfter);
  r.left_ns = c.close_fin();
  r.client = "-";
  return r;
}

constexpr demo::request_state kCancelled = demo::request_state::cancelled;

row database_query(const context& ctx) {
  // SQLite: sums 10^8 rows with a recursive CTE (a minute of work); PostgreSQL: 10 s of pg_sleep.
  row r{ctx.postgres ? "leaves during a PostgreSQL query" : "leaves during an SQLite query",
        9,
        {kCancelled, 499, "client_disconnected", false, true},
        spends::database};
  return leaves_during_call(ctx, r, ctx.postgres ? "/postgres?id=9&ms=10000" : "/sqlite?id=9&rows=100000000");
}

row outgoing_call(const context& ctx) {
  // /fetch calls this server's own /slow (ten 100 ms steps) with libcurl: the upstream is request 10.up.
  row r{"leaves during an outgoing call",
        10,
        {kCancelled, 499, "client_disconnected", false, true},
        spends::outgoing_call};
  return leaves_during_call(ctx, r,
                            "/fetch?id=10&steps=" + std::to_string(kSteps) + "&step_us=" + std::to_string(kStepUs));
}

row shutdown(const context& ctx) {
  row r{"shutdown with a request in flight", 8, {demo::request_state::cancelled, 503, "shutdown", false, true}};
  connection c(ctx.port);
  c.send(get(r.id, kSteps));
  std::this_thread::sleep_for(kLeaveAfter);
  r.left_ns = http::monotonic_ns();
  ctx.server.request_shutdown();
  r.client = join_statuses(c.read_responses(1, 10s));
  if (r.client != "503") r.failure = "client got " + r.client;
  return r;
}

// ---- the table ------------------------------------------------------------------------------

// Pads to `width` characters (UTF-8: "→" and "µ" are one character, several bytes).
std::string pad(const std::string& s, std::size_t width) {
  const auto chars = static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  return s + std::string(width > chars ? width - chars : 0, ' ');
}

void print_table(const std::vector<row>& rows) {
  const std::size_t widths[] = {34, 7, 7, 20, 6, 23};
  const auto line = [&widths](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) out += i < 6 ? pad(cells[i], widths[i]) + " " : cells[i];
    std::printf("%s\n", out.c_str());
  };
  line({"scenario", "client", "status", "reason", "steps", "disconnect→cancel (µs)", "as labelled"});
  line({std::string(34, '-'), std::string(7, '-'), std::string(7, '-'), std::string(20, '-'), std::string(6, '-'),
        std::string(23, '-'), std::string(11, '-')});
  for (const row& r : rows) {
    std::string latency = "-";
    if (r.expected.timed && r.signal_ns != 0) latency = std::to_string((r.signal_ns - r.left_ns) / 1000);
    line({r.scenario, r.client, r.server.status == 0 ? "-" : std::to_string(r.server.status),
          r.server.reason.empty() ? "-" : r.server.reason,
          std::to_string(r.server.steps) + "/" + std::to_string(r.server.total), latency,
          r.failure.empty() ? (r.evidence.empty() ? "yes" : "yes: " + r.evidence) : "NO: " + r.failure});
  }
}

int run_demo(const std::string& postgres) {
  capture events;
  capture log;
  demo::output out(events.sink(), log.sink());
  http::server_config config;
  config.port = 0;  // ephemeral
  config.request_timeout = kRequestTimeout;
  demo::services with;
  with.postgres = postgres;
  demo::server server(config, out, with);
  const std::uint16_t port = server.start();
  const context ctx{server, port, events, !postgres.empty()};
  const std::string built = demo::integrations_built();
  const bool database = ctx.postgres || built.find("sqlite") != std::string::npos;
  const bool outgoing = built.find("curl") != std::string::npos;
  std::printf("ctoken demo: the example HTTP server on 127.0.0.1:%u, request deadline %lld ms;\n", port,
              static_cast<long long>(kRequestTimeout.count()));
  std::printf("each client asks for GET /slow (%d steps of %d ms, the token checked between steps),\n", kSteps,
              kStepUs / 1000);
  // The rows that leave during a library call, where the demo was built with the library.
  std::string calls;
  if (database) {
    calls += ctx.postgres ? "a PostgreSQL query (/postgres: SELECT pg_sleep(10))"
                          : "an SQLite query (/sqlite: a recursive CTE of 10^8 rows, in memory)";
  }
  if (outgoing) {
    calls += database ? "\nand " : "";
    calls += "an outgoing call (/fetch: libcurl to this server's own /slow, as request 10.up)";
  }
  if (!calls.empty()) std::printf("except those that leave during a library call: %s\n", calls.c_str());
  std::printf("\n");
  const auto began = steady::now();

  // The clients run at the same time; the shutdown comes last (it stops the server).
  std::vector<std::future<std::vector<row>>> running;
  auto one = [&ctx](row (*scenario)(const context&)) {
    return std::async(std::launch::async, [&ctx, scenario] { return std::vector<row>{scenario(ctx)}; });
  };
  running.push_back(one(waits));
  running.push_back(one(closes));
  running.push_back(one(resets));
  running.push_back(one(half_closes));
  running.push_back(std::async(std::launch::async, [&ctx] { return pipelined(ctx); }));
  running.push_back(one(deadline));
  if (database) running.push_back(one(database_query));
  if (outgoing) running.push_back(one(outgoing_call));
  std::vector<row> rows;
  for (auto& f : running) {
    for (row& r : f.get()) rows.push_back(std::move(r));
  }
  rows.push_back(shutdown(ctx));
  for (row& r : rows) {
    const std::string client_failure = r.failure;
    judge(ctx, r);
    if (!client_failure.empty()) r.failure = client_failure + (r.failure.empty() ? "" : "; " + r.failure);
  }
  server.wait();
  const auto took = std::chrono::duration_cast<milliseconds>(steady::now() - began).count();

  print_table(rows);
  std::printf(
      "\ndisconnect→cancel: from the client's close() or shutdown() (the server's request_shutdown() on\n"
      "the last row) to the moment the request's token was cancelled, both CLOCK_MONOTONIC. The\n"
      "half-closing client leaves before the server has even started its request: its figure includes\n"
      "reading it. 499 is logged, never sent: nobody is listening. The steps not run are work saved.\n");
  if (!calls.empty()) {
    std::printf(
        "On the rows that leave during a library call, \"as labelled\" also checks the call itself:\n"
        "the query returned interrupted (or the upstream logged 499), timed from the close to that moment.\n");
  }
  if (!database) std::printf("(no database row: the demo was built without SQLite; apt-get install libsqlite3-dev)\n");
  if (!outgoing)
    std::printf("(no outgoing-call row: the demo was built without libcurl; apt-get install libcurl4-openssl-dev)\n");
  const auto failed = std::count_if(rows.begin(), rows.end(), [](const row& r) { return !r.failure.empty(); });
  if (failed != 0) {
    std::printf("\nFAILED: %ld scenario(s) did not behave as labelled. The server's events and log:\n",
                static_cast<long>(failed));
    events.print(stdout);
    log.print(stdout);
    return 1;
  }
  std::printf("\nall %zu scenarios behaved as labelled (%lld ms)\n", rows.size(), static_cast<long long>(took));
  return 0;
}

int serve(std::uint16_t port, const std::string& postgres) {
  // Signals are taken by sigwait() on this thread: block them before the server's threads start.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); rc != 0) {
    std::fprintf(stderr, "demo: pthread_sigmask: %s\n", std::strerror(rc));
    return 1;
  }
  demo::output out(demo::output::sink(), demo::output::stderr_sink());
  http::server_config config;
  config.port = port;
  demo::services with;
  with.postgres = postgres;
  demo::server server(config, out, with);
  const std::uint16_t actual = server.start();
  std::printf(
      "open http://127.0.0.1:%u/ in a browser: Start, then Cancel (or close the tab).\n"
      "The access log follows on stderr; Ctrl-C stops.\n",
      actual);
  std::fflush(stdout);
  int signal_number = 0;
  (void)sigwait(&stop_signals, &signal_number);
  server.request_shutdown();
  server.wait();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  bool serving = false;
  long port = 0;
  std::string postgres;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--serve") {
      serving = true;
    } else if (arg == "--port" && i + 1 < argc) {
      char* end = nullptr;
      port = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) {
        std::fprintf(stderr, "demo: --port needs a number in [0, 65535]\n");
        return 2;
      }
    } else if (arg == "--postgres" && i + 1 < argc) {
      postgres = argv[++i];
      if (postgres.empty() || std::string(demo::integrations_built()).find("postgres") == std::string::npos) {
        std::fprintf(stderr, "demo: --postgres needs a connection string and a demo built with libpq\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: demo [--serve [--port N]] [--postgres CONNINFO]\n");
      return arg == "--help" || arg == "-h" ? 0 : 2;
    }
  }
  try {
    return serving ? serve(static_cast<std::uint16_t>(port), postgres) : run_demo(postgres);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo: %s\n", e.what());
    return 1;
  }
}
