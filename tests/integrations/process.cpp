// <ctoken/process.hpp> against real child processes (/bin/sh and sleep): cooperative and
// stubborn children stopped by a token within the grace period, exit codes and signals
// reported, no zombie and no descriptor left behind; with a pidfd and with the fallback.
#include <ctoken/ctoken.hpp>
#include <ctoken/process.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"

namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
namespace proc = ctoken::process;

// Generous bounds for "promptly": the real figures are in benchmarks/integrations/.
constexpr milliseconds kSlack{1000};

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n - 1;  // the directory's own descriptor
}

// No child of this process is left, not even a zombie.
bool no_children() {
  const pid_t r = ::waitpid(-1, nullptr, WNOHANG);
  return r < 0 && errno == ECHILD;
}

// Whether `pid` is a live process (a zombie counts as gone).
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const std::size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// Checks, when the test ends, that it left no child and no descriptor behind.
struct hygiene {
  int fds = open_fds();
  ~hygiene() {
    CHECK(no_children());
    CHECK(open_fds() == fds);
  }
};

// Runs with the pidfd path, then again with the portable fallback.
struct path_choice {
  explicit path_choice(bool fallback) { proc::detail::pidfd_disabled() = fallback; }
  ~path_choice() { proc::detail::pidfd_disabled() = false; }
};

// A pipe for the child's standard output; the child says "ready" once its traps are set.
struct ready_pipe {
  int fds[2] = {-1, -1};
  ready_pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  ~ready_pipe() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  int write_end() const { return fds[1]; }
  void parent_side() {
    ::close(fds[1]);
    fds[1] = -1;
  }
  // Reads lines until one starting with "ready"; returns everything read.
  std::string wait_ready() {
    std::string got;
    const auto until = steady::now() + std::chrono::seconds(10);
    while (got.find("ready") == std::string::npos && steady::now() < until) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
  }
};

proc::Child start(const std::vector<std::string>& argv, const proc::Options& options = proc::Options()) {
  std::error_code ec;
  proc::Child child = proc::Child::Start(argv, ec, options);
  INFO("start: " << ec.message());
  REQUIRE(!ec);
  REQUIRE(child.Id() > 0);
  return child;
}

// Cancels `source` from another thread `after` from now; `at` receives the moment.
std::thread cancel_later(ctoken::CancellationTokenSource& source, milliseconds after, steady::time_point& at,
                         std::error_code reason = ctoken::errc::client_disconnected) {
  return std::thread([&source, after, &at, reason] {
    std::this_thread::sleep_for(after);
    at = steady::now();
    source.Cancel(reason);
  });
}

void cooperative(bool fallback) {
  hygiene h;
  path_choice path(fallback);
  ctoken::CancellationTokenSource source;
  proc::Child child = start({"sleep", "30"});
  const pid_t pid = child.Id();
  steady::time_point cancelled;
  std::thread canceller = cancel_later(source, milliseconds(100), cancelled);
  proc::Exit exit;
  const std::error_code ec = child.Wait(source.Token(), std::chrono::seconds(5), exit);
  const auto returned = steady::now();
  canceller.join();
  REQUIRE(!ec);
  CHECK(exit.Canceled);
  CHECK(!exit.Killed);
  CHECK(!exit.Exited);
  CHECK(exit.Signal == SIGTERM);
  CHECK(exit.Reason == ctoken::errc::client_disconnected);
  CHECK(returned - cancelled < kSlack);  // well inside the 5 s grace: SIGTERM was enough
  CHECK(child.Id() == -1);
  CHECK(!alive(pid));
}

void stubborn(bool fallback) {
  hygiene h;
  path_choice path(fallback);
  ctoken::CancellationTokenSource source;
  ready_pipe out;
  proc::Options options;
  options.Stdout = out.write_end();
  // SIG_IGN survives exec: the sleep itself ignores SIGTERM.
  proc::Child child = start({"sh", "-c", "trap '' TERM; echo ready; exec sleep 30"}, options);
  out.parent_side();
  REQUIRE(out.wait_ready().find("ready") != std::string::npos);
  steady::time_point cancelled;
  std::thread canceller = cancel_later(source, milliseconds(20), cancelled);
  const milliseconds grace(300);
  proc::Exit exit;
  const std::error_code ec = child.Wait(source.Token(), grace, exit);
  const auto returned = steady::now();
  canceller.join();
  REQUIRE(!ec);
  CHECK(exit.Canceled);
  CHECK(exit.Killed);
  CHECK(!exit.Exited);
  CHECK(exit.Signal == SIGKILL);
  CHECK(returned - cancelled >= grace);
  CHECK(returned - cancelled < grace + kSlack);
}

}  // namespace

TEST_CASE("process: a child that exits by itself reports its exit code") {
  hygiene h;
  proc::Exit exit;
  REQUIRE(!proc::Run({"sh", "-c", "exit 7"}, ctoken::CancellationTokenSource().Token(), milliseconds(100), exit));
  CHECK(exit.Exited);
  CHECK(exit.Code == 7);
  CHECK(exit.Signal == 0);
  CHECK(!exit.Canceled);
  CHECK(!exit.Killed);
  CHECK(!exit.Reason);
}

TEST_CASE("process: a child ended by a signal of its own reports the signal") {
  hygiene h;
  proc::Exit exit;
  REQUIRE(!proc::Run({"sh", "-c", "kill -USR1 $$"}, ctoken::CancellationToken::None(), milliseconds(100), exit));
  CHECK(!exit.Exited);
  CHECK(exit.Signal == SIGUSR1);
  CHECK(!exit.Canceled);
}

TEST_CASE("process: a program that cannot be started is reported as errno") {
  hygiene h;
  std::error_code ec;
  proc::Child child = proc::Child::Start({"/nonexistent/ctoken-no-such-program"}, ec);
  CHECK(ec == std::errc::no_such_file_or_directory);
  CHECK(child.Id() == -1);
  proc::Exit exit;
  CHECK(child.Wait(ctoken::CancellationToken::None(), milliseconds(1), exit) == std::errc::no_child_process);
  CHECK(proc::Run({}, ctoken::CancellationToken::None(), milliseconds(1), exit) == std::errc::invalid_argument);
}

TEST_CASE("process: a cooperative child is stopped by SIGTERM and reaped (pidfd)") { cooperative(false); }
TEST_CASE("process: a cooperative child is stopped by SIGTERM and reaped (fallback without pidfd)") {
  cooperative(true);
}
TEST_CASE("process: a stubborn child gets SIGKILL when the grace period ends (pidfd)") { stubborn(false); }
TEST_CASE("process: a stubborn child gets SIGKILL when the grace period ends (fallback without pidfd)") {
  stubborn(true);
}

TEST_CASE("process: a child that traps SIGTERM exits with its own code and its group goes too") {
  hygiene h;
  ctoken::CancellationTokenSource source;
  ready_pipe out;
  proc::Options options;
  options.Stdout = out.write_end();
  options.NewProcessGroup = true;
  // The shell waits on a background sleep; the trap exits 3. The sleep is the shell's child,
  // not ours: only the signal to the whole group stops it.
  proc::Child child = start({"sh", "-c", "trap 'exit 3' TERM; sleep 30 & echo ready $!; wait"}, options);
  out.parent_side();
  const std::string said = out.wait_ready();
  REQUIRE(said.find("ready ") != std::string::npos);
  const pid_t grandchild = static_cast<pid_t>(std::stol(said.substr(said.find("ready ") + 6)));
  REQUIRE(alive(grandchild));
  steady::time_point cancelled;
  std::thread canceller = cancel_later(source, milliseconds(20), cancelled, ctoken::errc::shutdown);
  proc::Exit exit;
  REQUIRE(!child.Wait(source.Token(), std::chrono::seconds(5), exit));
  const auto returned = steady::now();
  canceller.join();
  CHECK(exit.Canceled);
  CHECK(!exit.Killed);
  CHECK(exit.Exited);
  CHECK(exit.Code == 3);
  CHECK(exit.Reason == ctoken::errc::shutdown);
  CHECK(returned - cancelled < kSlack);
  CHECK(ctoken_test::eventually([&] { return !alive(grandchild); }));
}

TEST_CASE("process: an already-cancelled token starts nothing, and stops a started child at once") {
  hygiene h;
  ctoken::CancellationTokenSource source;
  source.Cancel(ctoken::errc::timed_out);
  proc::Exit exit;
  CHECK(proc::Run({"sleep", "30"}, source.Token(), std::chrono::seconds(5), exit) == std::errc::operation_canceled);
  CHECK(exit.Canceled);
  CHECK(exit.Reason == ctoken::errc::timed_out);

  proc::Child child = start({"sleep", "30"});
  const auto t0 = steady::now();
  REQUIRE(!child.Wait(source.Token(), std::chrono::seconds(5), exit));
  CHECK(steady::now() - t0 < kSlack);
  CHECK(exit.Canceled);
  CHECK(exit.Signal == SIGTERM);
}

TEST_CASE("process: a zero grace period sends SIGKILL straight away") {
  hygiene h;
  ctoken::CancellationTokenSource source;
  source.Cancel();
  proc::Child child = start({"sleep", "30"});
  proc::Exit exit;
  REQUIRE(!child.Wait(source.Token(), milliseconds(0), exit));
  CHECK(exit.Killed);
  CHECK(exit.Signal == SIGKILL);
  CHECK(exit.Reason == ctoken::errc::canceled);
}

TEST_CASE("process: a Child never waited for is killed and reaped by its destructor") {
  hygiene h;
  pid_t pid = -1;
  {
    proc::Child child = start({"sleep", "30"});
    pid = child.Id();
    proc::Child moved = std::move(child);  // the moved-from object owns nothing
    CHECK(child.Id() == -1);
    CHECK(moved.Id() == pid);
  }
  CHECK(!alive(pid));
}

TEST_CASE("process: the child inherits descriptors 0, 1 and 2 and no other") {
  hygiene h;
  const int leaky = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  REQUIRE(leaky >= 3);
  proc::Exit exit;
  const std::string probe = "test -e /proc/self/fd/" + std::to_string(leaky);
  REQUIRE(!proc::Run({"sh", "-c", probe}, ctoken::CancellationToken::None(), milliseconds(100), exit));
  ::close(leaky);
  CHECK(exit.Exited);
  CHECK(exit.Code == 1);  // `test -e` failed: the descriptor did not reach the child
}

TEST_CASE("process: one Cancel stops children waited for on several threads") {
  hygiene h;
  constexpr int kThreads = 4;
  ctoken::CancellationTokenSource source;
  std::atomic<int> stopped{0};  // acq_rel/acquire: counted on the waiters, read after the joins
  std::vector<std::thread> waiters;
  for (int i = 0; i < kThreads; ++i) {
    waiters.emplace_back([&] {
      proc::Exit exit;
      const std::error_code ec = proc::Run({"sleep", "30"}, source.Token(), std::chrono::seconds(5), exit);
      if (!ec && exit.Canceled && exit.Signal == SIGTERM) stopped.fetch_add(1, std::memory_order_acq_rel);
    });
  }
  std::this_thread::sleep_for(milliseconds(100));
  const auto t0 = steady::now();
  source.Cancel();
  for (auto& t : waiters) t.join();
  CHECK(steady::now() - t0 < kSlack);
  CHECK(stopped.load(std::memory_order_acquire) == kThreads);
}

TEST_CASE("process: cancellations racing children that exit by themselves are reported either way") {
  hygiene h;
  int exited = 0;
  int stopped = 0;
  const auto until = steady::now() + ctoken_test::stress_duration();
  for (unsigned i = 0; steady::now() < until || i < 30; ++i) {
    ctoken::CancellationTokenSource source;
    proc::Child child = start({"true"});
    const auto delay = std::chrono::microseconds((i * 53u) % 1500u);  // around a child's life
    std::thread canceller([&source, delay] {
      std::this_thread::sleep_for(delay);
      source.Cancel();
    });
    proc::Exit exit;
    const std::error_code ec = child.Wait(source.Token(), milliseconds(500), exit);
    canceller.join();
    REQUIRE(!ec);
    CHECK(child.Id() == -1);
    if (exit.Exited) {
      ++exited;
      CHECK(exit.Code == 0);  // `true`, whether or not the SIGTERM came too late to matter
    } else {
      ++stopped;
      CHECK(exit.Canceled);
      CHECK(exit.Signal == SIGTERM);
      CHECK(exit.Reason == ctoken::errc::canceled);
    }
    CHECK(!exit.Killed);
  }
  INFO("exited " << exited << ", stopped " << stopped);
  CHECK(exited + stopped >= 30);
}
