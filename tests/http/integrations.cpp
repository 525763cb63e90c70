// The demo's routes that spend their time in a library (examples/demo/integrations.cpp), driven
// over real sockets on 127.0.0.1 against the demo server in-process: a client that leaves
// mid-query must stop the query itself (SQLite returns SQLITE_INTERRUPT, seen in the route's
// CALL_ENDED event), and the server must log 499; a client that leaves during /fetch must stop
// the outgoing libcurl call, whose upstream logs 499 too. Each case needs its library: where
// the demo was built without it, the case prints SKIPPED and ctest reports it skipped.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include <ctoken/ctoken.hpp>

#include "app.hpp"
#include "capture.hpp"
#include "ctoken_test.hpp"
#include "events.hpp"
#include "server.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using http_test::client;
using http_test::recorder;

namespace {

constexpr std::int64_t kNsPerMs = 1000000;
constexpr std::int64_t kBoundNs = 2000 * kNsPerMs;  // generous: loaded machines and sanitizers

struct running_server {
  recorder rec;
  demo::output out;
  demo::server srv;
  std::uint16_t port;

  running_server() : out(rec.events_sink(), rec.log_sink()), srv(config(), out), port(srv.start()) {}
  ~running_server() {
    srv.request_shutdown();
    srv.wait();
  }
  running_server(const running_server&) = delete;
  running_server& operator=(const running_server&) = delete;

  static http::server_config config() {
    http::server_config cfg;
    cfg.port = 0;
    return cfg;
  }
};

client connect_to(const running_server& s) {
  client c = client::connect(s.port);
  REQUIRE(c.valid());
  return c;
}

// The value of name=... in an event line ("" if absent).
std::string field(const std::string& line, const std::string& name) {
  const std::size_t at = line.find(" " + name + "=");
  if (at == std::string::npos) return std::string();
  const std::size_t from = at + name.size() + 2;
  return line.substr(from, line.find(' ', from) - from);
}

bool built_with(const char* library) {
  return std::string(demo::integrations_built()).find(library) != std::string::npos;
}

}  // namespace

TEST_CASE("a client that closes during the demo SQLite query gets 499 logged and the query interrupted") {
  if (!built_with("sqlite")) {
    std::puts("SKIPPED: the demo was built without SQLite (apt-get install libsqlite3-dev pkg-config)");
    return;
  }
  running_server s;

  // The route works when nobody leaves: the whole query's answer.
  {
    client c = connect_to(s);
    REQUIRE(c.send(http_test::get("/sqlite?id=100&rows=1000")));
    const auto r = c.read_response(5000ms);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "sqlite: 1000 rows, sum 500500\n");
  }

  // A billion rows (minutes of work), left after 200 ms.
  client c = connect_to(s);
  REQUIRE(c.send(http_test::get("/sqlite?id=101&rows=1000000000")));
  REQUIRE(s.rec.wait_event("START", 101));
  std::this_thread::sleep_for(200ms);
  const std::int64_t closed = c.close_fin();

  const auto cancelled = s.rec.wait_event("CANCELLED", 101, 10s);
  INFO(s.rec.describe(101));
  REQUIRE(cancelled);
  CHECK(cancelled->reason == "client_disconnected");
  CHECK(cancelled->steps == 0);  // the route's one step comes after the query's end
  // The query itself ended, interrupted, promptly after the close: not the handler around it.
  const auto ended = s.rec.find("CALL_ENDED", 101);
  REQUIRE(ended);
  CHECK(field(ended->line, "via") == "sqlite");
  CHECK(field(ended->line, "result") == "interrupted");
  CHECK(ended->ns >= closed);
  CHECK(ended->ns - closed < kBoundNs);
  std::printf("[sqlite] close → token cancelled %.3f ms, → query returned SQLITE_INTERRUPT %.3f ms\n",
              static_cast<double>(cancelled->signal_ns - closed) / 1e6, static_cast<double>(ended->ns - closed) / 1e6);
  // The access log names it 499 (client closed request).
  const auto line = s.rec.wait_access_log(101);
  REQUIRE(line);
  CHECK(line->find("\" 499 client_disconnected") != std::string::npos);
}

TEST_CASE("a client that closes during the demo outgoing call stops the call and the upstream logs 499") {
  if (!built_with("curl")) {
    std::puts("SKIPPED: the demo was built without libcurl (apt-get install libcurl4-openssl-dev)");
    return;
  }
  running_server s;

  // /fetch calls this server's own /slow (as request 200.up), here for five seconds.
  client c = connect_to(s);
  REQUIRE(c.send(http_test::get("/fetch?id=200&steps=50&step_us=100000")));
  REQUIRE(s.rec.wait_event("START", 200));
  std::this_thread::sleep_for(300ms);
  const std::int64_t closed = c.close_fin();

  // Both log lines say 499: the request whose client left, and its upstream (the outgoing
  // connection closed by the cancelled call). Upstream events carry the id "200.up", which the
  // recorder's numeric ids cannot tell apart: the access log can (" id=200" ends a line).
  const auto own = s.rec.wait_access_log(200, 10s);
  const auto upstream = s.rec.wait_log_containing("id=200.up", 10s);
  INFO(s.rec.log_tail());
  REQUIRE(own);
  REQUIRE(upstream);
  CHECK(own->find("\" 499 client_disconnected") != std::string::npos);
  CHECK(upstream->find("GET /slow?id=200&steps=50&step_us=100000") != std::string::npos);
  CHECK(upstream->find("\" 499 client_disconnected") != std::string::npos);
  CHECK(upstream->find("steps=50/50") == std::string::npos);  // it stopped early
  const auto ended = s.rec.find("CALL_ENDED", 200);
  REQUIRE(ended);
  CHECK(field(ended->line, "via") == "curl");
  CHECK(field(ended->line, "result") == "aborted");
  CHECK(ended->ns >= closed);
  CHECK(ended->ns - closed < kBoundNs);
  std::printf("[curl] close → Perform returned (aborted) %.3f ms\n", static_cast<double>(ended->ns - closed) / 1e6);
}
