// The minimal thread-per-connection template (examples/http/minimal/main.cpp), run as a child
// process on an ephemeral port: a client disconnecting mid-request (FIN or RST) makes the
// handler stop and say why on stderr; the request deadline answers 504, SIGTERM answers the
// request in flight 503 and exits 0; bad arguments exit 2. Its steps are fixed at one second.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"
#include "support.hpp"

#ifndef HTTP_MINIMAL_PATH
#error "HTTP_MINIMAL_PATH must name the http_minimal binary"
#endif

extern char** environ;

using namespace std::chrono_literals;
using http_test::client;
using http_test::steady;
using std::chrono::milliseconds;

namespace {

// http_minimal with port 0, its stdout and stderr on pipes. SIGTERM and waitpid at the end.
class minimal_server {
 public:
  explicit minimal_server(std::vector<std::string> extra_args = {}) {
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    if (::pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<std::string> args = {HTTP_MINIMAL_PATH, "--port", "0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
    if (rc != 0) {
      pid_ = -1;
      spawn_error_ = rc;
    }
  }
  ~minimal_server() {
    stop();
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }
  minimal_server(const minimal_server&) = delete;
  minimal_server& operator=(const minimal_server&) = delete;

  bool running() const noexcept { return pid_ > 0; }
  int spawn_error() const noexcept { return spawn_error_; }

  // The port from "listening on http://127.0.0.1:PORT/slow"; 0 if it did not say in time.
  std::uint16_t wait_port(milliseconds timeout) {
    const std::string_view prefix = "listening on http://127.0.0.1:";
    if (!read_until(
            out_, out_text_, [&] { return out_text_.find("/slow\n") != std::string::npos; }, timeout))
      return 0;
    const std::size_t at = out_text_.find(prefix);
    if (at == std::string::npos) return 0;
    return static_cast<std::uint16_t>(std::atoi(out_text_.c_str() + at + prefix.size()));
  }

  // Waits until stderr holds a whole line containing `needle`; returns that line (or "").
  std::string wait_stderr_line(std::string_view needle, milliseconds timeout) {
    std::string line;
    read_until(
        err_, err_text_,
        [&] {
          const std::size_t at = err_text_.find(needle);
          if (at == std::string::npos) return false;
          const std::size_t begin = err_text_.rfind('\n', at);
          const std::size_t end = err_text_.find('\n', at);
          if (end == std::string::npos) return false;
          const std::size_t from = begin == std::string::npos ? 0 : begin + 1;
          line = err_text_.substr(from, end - from);
          return true;
        },
        timeout);
    return line;
  }

  // Everything it wrote to stderr so far (reads what is pending).
  const std::string& stderr_text() {
    read_until(
        err_, err_text_, [] { return false; }, 0ms);
    return err_text_;
  }

  // Waits at most `timeout` for the child to exit by itself; true (and its status) if it did.
  bool wait_exit(milliseconds timeout, int& status) {
    const auto deadline = steady::now() + timeout;
    while (steady::now() < deadline) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // SIGTERM, then waitpid; returns the wait status (-1 if it was not running).
  int stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    (void)stderr_text();  // whatever it wrote last (e.g. a sanitizer report)
    return status;
  }

 private:
  template <class Pred>
  static bool read_until(int fd, std::string& text, Pred done, milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      if (done()) return true;
      pollfd p{fd, POLLIN, 0};
      const int ready = ::poll(&p, 1, http_test::poll_timeout(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return done();
      char chunk[4096];
      const ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n <= 0) return done();  // the child is gone
      text.append(chunk, static_cast<std::size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int spawn_error_ = 0;
  int out_ = -1;
  int err_ = -1;
  std::string out_text_;
  std::string err_text_;
};

// GET /slow, disconnect half-way through the second one-second step, and check the template's
// own account of it on stderr.
void disconnect_mid_request(bool rst) {
  minimal_server server;
  INFO("posix_spawn " HTTP_MINIMAL_PATH ": " << server.spawn_error());
  REQUIRE(server.running());
  const std::uint16_t port = server.wait_port(10s);
  INFO("stderr:\n" << server.stderr_text());
  REQUIRE(port != 0);

  client c = client::connect(port);
  REQUIRE(c.valid());
  REQUIRE(c.send(http_test::get("/slow")));
  REQUIRE(!server.wait_stderr_line("step 1/10", 10s).empty());
  std::this_thread::sleep_for(500ms);  // ~1.5 s in, half-way through step 2
  const std::int64_t closed = rst ? c.close_rst() : c.close_fin();
  const std::string line = server.wait_stderr_line("request cancelled after", 5s);
  const std::int64_t seen = http_test::monotonic_ns();
  INFO("stderr:\n" << server.stderr_text());
  REQUIRE(!line.empty());
  // "request cancelled after N/10 steps: <reason>"
  const std::string expected = rst ? "connection reset by peer" : "client disconnected";
  CHECK(line.size() > expected.size());
  CHECK(line.compare(line.size() - expected.size(), expected.size(), expected) == 0);
  const std::size_t after = line.find("after ");
  REQUIRE(after != std::string::npos);
  const int steps = std::atoi(line.c_str() + after + 6);
  CHECK(line.compare(after + 6 + std::to_string(steps).size(), 4, "/10 ") == 0);
  CHECK(steps >= 1);
  CHECK(steps < 10);
  CHECK(seen - closed < 5000000000LL);
  std::printf("[latency] http_minimal, %s: the cancellation line was on stderr %.3f ms after the close (%s)\n",
              rst ? "RST" : "FIN", static_cast<double>(seen - closed) / 1e6, line.c_str());
  std::fflush(stdout);

  const int status = server.stop();
  const std::string& err = server.stderr_text();
  CHECK(err.find("request completed") == std::string::npos);
  CHECK(err.find("Sanitizer") == std::string::npos);
  CHECK(err.find("runtime error") == std::string::npos);
  // SIGTERM is a graceful stop: nothing in flight, so it drains at once and exits 0.
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(err.find("drained, bye") != std::string::npos);
}

}  // namespace

TEST_CASE("http minimal: a FIN mid-request stops the handler: client disconnected") { disconnect_mid_request(false); }

TEST_CASE("http minimal: an RST mid-request stops the handler: connection reset by peer") {
  disconnect_mid_request(true);
}

TEST_CASE("http minimal: the request deadline answers 504 and SIGTERM answers 503 then exits 0") {
  minimal_server server({"--request-timeout-ms", "1500"});
  REQUIRE(server.running());
  const std::uint16_t port = server.wait_port(10s);
  INFO("stderr:\n" << server.stderr_text());
  REQUIRE(port != 0);

  client late = client::connect(port);
  REQUIRE(late.valid());
  REQUIRE(late.send(http_test::get("/slow")));
  const auto timed_out = late.read_response(10s);
  REQUIRE(timed_out);
  CHECK(timed_out->status == 504);
  CHECK(!server.wait_stderr_line("request cancelled after 1/10 steps: ", 5s).empty());

  client waiting = client::connect(port);
  REQUIRE(waiting.valid());
  REQUIRE(waiting.send(http_test::get("/slow")));
  REQUIRE(!server.wait_stderr_line("step 1/10", 10s).empty());
  const int status = server.stop();  // SIGTERM while the request runs
  const auto refused = waiting.read_response(10s);
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("http minimal: bad arguments are refused with exit status 2") {
  for (const char* bad : {"70000", "12ab", "-1", ""}) {
    minimal_server server({"--port", bad});
    REQUIRE(server.running());
    int status = 0;
    // It exits at once, without a signal; stop() would send one: wait for it first.
    CHECK(server.wait_exit(5s, status));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
  }
}
