// Copying is tested (tests/templates/CMakeLists.txt): each template folder is copied alone
// into an empty directory, configured as its own project against ctoken installed in a
// temporary prefix (find_package), built, and run against one request over a real socket on
// 127.0.0.1. Linux (posix_spawn, pipes, /proc-free).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"
#include "support.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using http_test::client;
using http_test::steady;
using std::chrono::milliseconds;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The last `n` bytes of `text`, for failure messages.
std::string tail(const std::string& text, std::size_t n = 4000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

// A child process; stdout on a pipe (or into `log` too), stderr into `log`.
class child {
 public:
  child(const std::vector<std::string>& args, const fs::path& log, bool stdout_to_pipe) {
    int out[2] = {-1, -1};
    if (stdout_to_pipe && ::pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (stdout_to_pipe) {
      posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    } else {
      posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    }
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    spawn_error_ = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (stdout_to_pipe) {
      ::close(out[1]);
      out_ = out[0];
    }
    if (spawn_error_ != 0) pid_ = -1;
  }
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      (void)::waitpid(pid_, &status, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  bool running() const noexcept { return pid_ > 0; }
  int spawn_error() const noexcept { return spawn_error_; }
  const std::string& out() const noexcept { return out_text_; }

  // Reads stdout until it holds `needle` followed by a newline, within `timeout`.
  bool read_until(std::string_view needle, milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      const std::size_t at = out_text_.find(needle);
      if (at != std::string::npos && out_text_.find('\n', at) != std::string::npos) return true;
      pollfd p{out_, POLLIN, 0};
      const int ready = ::poll(&p, 1, http_test::poll_timeout(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return false;
      out_text_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Waits at most `timeout` for the child to exit; its wait status, or nullopt (then SIGKILL).
  std::optional<int> wait(milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    int status = 0;
    while (pid_ > 0) {
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return status;
      }
      if (steady::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

  // SIGTERM, then wait().
  std::optional<int> terminate(milliseconds timeout) {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    return wait(timeout);
  }

 private:
  pid_t pid_ = -1;
  int spawn_error_ = 0;
  int out_ = -1;
  std::string out_text_;
};

// Runs a command to its end (at most `timeout`), its output in `log`. The exit status, or -1.
int run(const std::vector<std::string>& args, const fs::path& log, milliseconds timeout) {
  child c(args, log, false);
  if (!c.running()) return -1;
  const std::optional<int> status = c.wait(timeout);
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

// Copies examples/<folder> alone into an empty directory, configures it as a top-level project
// against the installed ctoken, builds it, and returns its build directory.
fs::path build_copy(const std::string& folder) {
  const fs::path source = fs::path(TEMPLATES_SOURCE_DIR) / folder;
  const fs::path work = fs::path(TEMPLATES_WORK_DIR) / fs::path(folder).filename();
  const fs::path copy = work / "src" / fs::path(folder).filename();  // nothing else under src/
  const fs::path build = work / "build";
  fs::remove_all(work);
  fs::create_directories(copy.parent_path());
  fs::copy(source, copy, fs::copy_options::recursive);
  INFO("template " << folder << " copied alone to " << copy.string());
  REQUIRE(fs::exists(copy / "CMakeLists.txt"));

  std::vector<std::string> configure = {TEMPLATES_CMAKE,
                                        "-S",
                                        copy.string(),
                                        "-B",
                                        build.string(),
                                        "-G",
                                        TEMPLATES_GENERATOR,
                                        "-DCMAKE_BUILD_TYPE=Debug",
                                        "-DCMAKE_CXX_COMPILER=" TEMPLATES_CXX_COMPILER,
                                        "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror",
                                        "-DCMAKE_PREFIX_PATH=" TEMPLATES_PREFIX,
                                        "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"};
  if (std::string_view(TEMPLATES_MAKE_PROGRAM).size() > 0)
    configure.push_back("-DCMAKE_MAKE_PROGRAM=" TEMPLATES_MAKE_PROGRAM);
  if (std::string_view(TEMPLATES_CXX_STANDARD).size() > 0)
    configure.push_back("-DCMAKE_CXX_STANDARD=" TEMPLATES_CXX_STANDARD);
  const fs::path configure_log = work / "configure.log";
  const int configured = run(configure, configure_log, 300s);
  INFO("configure log:\n" << tail(read_file(configure_log)));
  REQUIRE(configured == 0);
  // ctoken came from the temporary prefix, not from this tree or the system.
  const std::string cache = read_file(build / "CMakeCache.txt");
  CHECK(cache.find("ctoken_DIR:PATH=" TEMPLATES_PREFIX "/") != std::string::npos);

  const fs::path build_log = work / "build.log";
  const int built = run({TEMPLATES_CMAKE, "--build", build.string(), "--parallel", "2"}, build_log, 500s);
  INFO("build log:\n" << tail(read_file(build_log)));
  REQUIRE(built == 0);
  return build;
}

// The port from "listening on http://127.0.0.1:PORT/..." on the child's stdout; 0 if none.
std::uint16_t announced_port(child& server) {
  constexpr std::string_view prefix = "listening on http://127.0.0.1:";
  if (!server.read_until(prefix, 10s)) return 0;
  const std::size_t at = server.out().find(prefix);
  return static_cast<std::uint16_t>(std::atoi(server.out().c_str() + at + prefix.size()));
}

std::optional<http_test::response> ask(std::uint16_t port, const std::string& target) {
  client c = client::connect(port);
  if (!c.valid() || !c.send(http_test::get(target))) return std::nullopt;
  return c.read_response(10s);
}

}  // namespace

TEST_CASE("template http/minimal: copied alone it builds against an installed ctoken and serves") {
  const fs::path build = build_copy("http/minimal");
  const fs::path log = build / "server.log";
  child server({(build / "http_minimal").string(), "--port", "0", "--request-timeout-ms", "1500"}, log, true);
  INFO("stderr:\n" << tail(read_file(log)));
  REQUIRE(server.running());
  const std::uint16_t port = announced_port(server);
  REQUIRE(port != 0);
  // Its one route runs ten one-second steps: the request deadline (1.5 s) answers 504.
  const auto deadline = ask(port, "/slow");
  REQUIRE(deadline);
  CHECK(deadline->status == 504);
  const auto missing = ask(port, "/nothing");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  const std::optional<int> status = server.terminate(10s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("template http/server: copied alone it builds against an installed ctoken and serves") {
  const fs::path build = build_copy("http/server");
  const fs::path log = build / "server.log";
  child server({(build / "http_server_template").string(), "--port", "0"}, log, true);
  INFO("stderr:\n" << tail(read_file(log)));
  REQUIRE(server.running());
  const std::uint16_t port = announced_port(server);
  REQUIRE(port != 0);
  const auto hello = ask(port, "/hello");
  REQUIRE(hello);
  CHECK(hello->status == 200);
  CHECK(hello->body == "hello\n");
  const auto bad = ask(port, "/work?ms=abc");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(bad->body.find("ms:") == 0);
  const std::optional<int> status = server.terminate(10s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(read_file(log).find("\"GET /hello HTTP/1.1\" 200") != std::string::npos);  // the access log
}

namespace {

// A one-shot server on 127.0.0.1: accepts one connection, reads the request head, answers
// `reply` (or nothing, holding the connection until stopped, when it is empty).
class one_shot_server {
 public:
  explicit one_shot_server(std::string reply) : reply_(std::move(reply)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 4) != 0 || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~one_shot_server() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listener_ >= 0) ::close(listener_);
  }
  one_shot_server(const one_shot_server&) = delete;
  one_shot_server& operator=(const one_shot_server&) = delete;

  std::uint16_t port() const noexcept { return port_; }

 private:
  void serve() {
    pollfd p{listener_, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 50) == 0) {
    }
    if (stop_) return;
    client c(::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
    if (!c.valid() || !c.read_until("\r\n\r\n", 10s)) return;
    if (!reply_.empty()) {
      (void)c.send(reply_);
      return;
    }
    while (!stop_) std::this_thread::sleep_for(10ms);  // never answers
  }

  std::string reply_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};  // seq_cst: a flag polled every 10-50 ms, nothing published through it
  std::thread thread_;
};

}  // namespace

TEST_CASE("template http_client: copied alone it builds against an installed ctoken and fetches") {
  const fs::path build = build_copy("http_client");
  const std::string http_get = (build / "http_get").string();
  {
    one_shot_server server("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n");
    REQUIRE(server.port() != 0);
    const fs::path log = build / "get.log";
    const int status = run({http_get, "127.0.0.1", std::to_string(server.port()), "/x"}, log, 30s);
    INFO("output:\n" << read_file(log));
    CHECK(status == 0);
    CHECK(read_file(log).find("HTTP 200\nhello\n") != std::string::npos);
  }
  {
    // A server that never answers: the client's deadline stops the wait for the head.
    one_shot_server server("");
    REQUIRE(server.port() != 0);
    const fs::path log = build / "timeout.log";
    const auto began = steady::now();
    const int status =
        run({http_get, "--timeout-ms", "300", "127.0.0.1", std::to_string(server.port()), "/x"}, log, 30s);
    INFO("output:\n" << read_file(log));
    CHECK(status == 1);
    CHECK(read_file(log).find("timed_out during head") != std::string::npos);
    CHECK(steady::now() - began < 10s);
  }
}
