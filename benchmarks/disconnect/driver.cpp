// ctoken_disconnect_bench: how soon does an HTTP server notice that its client has left?
//
// The driver starts every server itself (stdout piped: the event lines below; stderr to
// /dev/null or --log-dir), each on an ephemeral port of 127.0.0.1, and for each K:
//
//   1. opens K connections one at a time, each with a GET that waits forever without using CPU,
//      and waits for the request's START line before opening the next;
//   2. (first round of each server and K) measures the server's CPU time over an idle window
//      and its resident memory, per in-flight request;
//   3. disconnects the K connections one by one in a random order, with a FIN (close()) or an
//      RST (SO_LINGER {1, 0}, then close()), and waits for each request's CANCELLED line:
//
//        latency = server's detection time - client's close time
//
//      both CLOCK_MONOTONIC on this machine: the client reads the clock just before close(), the
//      server where it first knows (the signal_ns= field when the line has one: when ctoken's
//      watcher cancels the request's token; else the line's own time).
//
// With two CPUs or more, the driver runs on the first and the servers on the others (--no-pin:
// wherever the scheduler puts them).
//
// Servers (run in turn, in a random order per round, so machine noise hits them alike):
//   floor   disconnect_floor_server: one thread, epoll, the time right after epoll_wait()
//   ctoken  the demo server (examples/http/server + examples/demo): thread per connection, a disconnect
//           watcher thread (epoll), the request's CancellationToken
//   go      go/main.go: net/http, the handler waits on <-r.Context().Done()
//   node    node/server.js: http, res.on('close') before the response ended
// A server whose runtime is missing is skipped, with a message.
//
// Finally the "wasted work" figure (ctoken server only): the CPU a /slow?work=cpu handler
// burns after its client left, with the token checked (check=1) and ignored (check=0).
//
// Event lines (CLOCK_MONOTONIC ns): READY <port> | VERSION <v> | START <id> <ns> |
// CANCELLED <id> <ns> [reason=.. steps=.. signal_ns=<ns>] | DONE <id> <ns> [steps=..]
//
// Usage: see usage() below, or benchmarks/disconnect/README.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

// Paths of the servers, from CMake ($<TARGET_FILE:...>); each may be overridden by a flag.
#ifndef DISCONNECT_FLOOR_SERVER
#define DISCONNECT_FLOOR_SERVER ""
#endif
#ifndef DISCONNECT_CTOKEN_SERVER
#define DISCONNECT_CTOKEN_SERVER ""  // empty: the examples were not built
#endif
#ifndef DISCONNECT_GO_SERVER
#define DISCONNECT_GO_SERVER ""  // empty: no `go` when CMake configured
#endif
#ifndef DISCONNECT_NODE_SCRIPT
#define DISCONNECT_NODE_SCRIPT ""
#endif

namespace {

// ==== errors, signals, time =====================================================================

// Everything that stops the benchmark: the message names the server, K and request.
struct bench_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }
[[noreturn]] void fail_errno(const std::string& what) { throw bench_error(errno_text(what)); }

// SIGINT / SIGTERM set this flag; every blocking call returns EINTR (no SA_RESTART) and then
// checks it, so the driver unwinds normally and its destructors kill and reap the servers.
volatile sig_atomic_t g_interrupted = 0;
void on_stop_signal(int) { g_interrupted = 1; }

void check_interrupted() {
  if (g_interrupted != 0) throw bench_error("interrupted");
}

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + static_cast<std::int64_t>(ts.tv_nsec);
}

constexpr std::int64_t kMs = 1000000;  // ns per ms

timespec to_timespec(std::int64_t ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return ts;
}

// Sleeps until CLOCK_MONOTONIC reaches `deadline_ns` (interruptible by SIGINT).
void sleep_until_ns(std::int64_t deadline_ns) {
  const timespec until = to_timespec(deadline_ns);
  for (;;) {
    check_interrupted();
    const int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr);
    if (rc == 0) return;
    if (rc != EINTR) throw bench_error(std::string("clock_nanosleep: ") + std::strerror(rc));
  }
}

void sleep_ns(std::int64_t ns) { sleep_until_ns(monotonic_ns() + ns); }

// Milliseconds left until `deadline_ns`, for poll() (at least 0, rounded up).
int poll_timeout_ms(std::int64_t deadline_ns) {
  const std::int64_t left = deadline_ns - monotonic_ns();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<std::int64_t>((left + kMs - 1) / kMs, 1 << 30));
}

std::string seconds_text(std::int64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ns) / 1e9);
  return text;
}

// ==== descriptors and client sockets ===========================================================

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY.
unique_fd connect_loopback(std::uint16_t port) {
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(0x7f000001u);  // 127.0.0.1
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINTR) fail_errno("connect to 127.0.0.1:" + std::to_string(port));
    check_interrupted();
    // A signal we do not stop for: the connection goes on in the background; wait for it.
    pollfd p{fd.get(), POLLOUT, 0};
    while (::poll(&p, 1, 5000) < 0) {
      if (errno != EINTR) fail_errno("poll(connect)");
      check_interrupted();
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) fail_errno("getsockopt(SO_ERROR)");
    if (err != 0) throw bench_error("connect to 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(err));
  }
  const int one = 1;
  if (::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail_errno("TCP_NODELAY");
  return fd;
}

void send_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        check_interrupted();
        continue;
      }
      fail_errno("send");
    }
    done += static_cast<std::size_t>(n);
  }
}

// Opens a connection and sends one GET for `target`.
unique_fd open_request(std::uint16_t port, const std::string& target) {
  unique_fd fd = connect_loopback(port);
  send_all(fd.get(), "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  return fd;
}

enum class close_mode { fin, rst };
const char* mode_name(close_mode m) { return m == close_mode::fin ? "fin" : "rst"; }
const char* mode_label(close_mode m) { return m == close_mode::fin ? "FIN" : "RST"; }

// Closes the connection with a FIN, or with an RST (SO_LINGER {on, 0 s} makes close() abort the
// connection). Returns CLOCK_MONOTONIC read just before close(): the client's close time.
std::int64_t disconnect(unique_fd& fd, close_mode mode) {
  if (mode == close_mode::rst) {
    const linger abort_on_close{1, 0};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close) != 0)
      fail_errno("SO_LINGER");
  }
  const std::int64_t at = monotonic_ns();
  if (::close(fd.release()) != 0) fail_errno("close");
  return at;
}

// What the server sent on a connection instead of starting the request (a 503, a close ...).
std::string peek_answer(int fd) {
  char buffer[160];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return "the server closed the connection";
  if (n < 0) return errno_text("the connection failed");
  std::string text(buffer, static_cast<std::size_t>(n));
  text = text.substr(0, text.find("\r\n"));
  for (char& c : text)
    if (c < 0x20 || c > 0x7e) c = '?';
  return "the server answered '" + text + "'";
}

// ==== a server process and its event lines =====================================================

struct event {
  std::string kind;  // START, CANCELLED, DONE (READY and VERSION are taken by wait_ready)
  std::uint64_t id = 0;
  std::int64_t ns = 0;
  std::int64_t signal_ns = 0;  // 0: the line has none
  std::string reason;
  int steps = -1;  // -1: the line has none
  std::string line;
};

// Parses "KIND <id> <ns> key=value ...". Returns false if the line does not have that shape.
bool parse_event(const std::string& line, event& out) {
  std::istringstream in(line);
  std::string id_text, ns_text, field;
  if (!(in >> out.kind >> id_text >> ns_text)) return false;
  char* end = nullptr;
  errno = 0;
  out.id = std::strtoull(id_text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || id_text.empty()) return false;
  out.ns = std::strtoll(ns_text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || ns_text.empty()) return false;
  while (in >> field) {
    const std::size_t eq = field.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = field.substr(0, eq);
    const std::string value = field.substr(eq + 1);
    if (key == "signal_ns") {
      out.signal_ns = std::strtoll(value.c_str(), nullptr, 10);
    } else if (key == "reason") {
      out.reason = value;
    } else if (key == "steps") {
      out.steps = static_cast<int>(std::strtol(value.c_str(), nullptr, 10));
    }
  }
  out.line = line;
  return true;
}

// A server child: started by fork/exec in its own process group (Ctrl-C reaches only the
// driver), with PR_SET_PDEATHSIG so it dies with the driver even if the driver is killed. The
// destructor kills and reaps it.
class server_process {
 public:
  // `cpus`: where the server may run (null: wherever the driver may).
  server_process(std::string name, const std::vector<std::string>& argv, const std::string& stderr_path,
                 const cpu_set_t* cpus)
      : name_(std::move(name)) {
    int out_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
    unique_fd read_end(out_pipe[0]);
    unique_fd write_end(out_pipe[1]);
    int exec_pipe[2];  // the child reports a failed exec here; closed by a successful exec
    if (::pipe2(exec_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
    unique_fd exec_read(exec_pipe[0]);
    unique_fd exec_write(exec_pipe[1]);
    unique_fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_in.get() < 0) fail_errno("open /dev/null");
    unique_fd err_out(::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (err_out.get() < 0) fail_errno("open " + stderr_path);

    std::vector<char*> args;  // built before fork: the child may only make async-signal-safe calls
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) fail_errno("fork");
    if (pid_ == 0) {
      ::setpgid(0, 0);
      if (cpus != nullptr && ::sched_setaffinity(0, sizeof *cpus, cpus) != 0) {
        const int err = errno;
        (void)!::write(exec_write.get(), &err, sizeof err);
        ::_exit(127);
      }
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the driver died before prctl
      ::signal(SIGPIPE, SIG_DFL);               // ignored in the driver; exec would keep that
      // dup2 clears close-on-exec on the copy; a descriptor that already has the target number
      // (the driver started with 0, 1 or 2 closed) must have the flag cleared instead.
      auto place = [](int fd, int target) { return fd == target ? ::fcntl(fd, F_SETFD, 0) : ::dup2(fd, target); };
      if (place(null_in.get(), STDIN_FILENO) < 0 || place(write_end.get(), STDOUT_FILENO) < 0 ||
          place(err_out.get(), STDERR_FILENO) < 0) {
        const int err = errno;
        (void)!::write(exec_write.get(), &err, sizeof err);
        ::_exit(127);
      }
      ::execvp(args[0], args.data());
      const int err = errno;
      (void)!::write(exec_write.get(), &err, sizeof err);
      ::_exit(127);
    }
    exec_write.reset();
    write_end.reset();  // EOF on read_end once the child exits
    int exec_errno = 0;
    ssize_t n;
    do {
      n = ::read(exec_read.get(), &exec_errno, sizeof exec_errno);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      stop();
      throw bench_error(name_ + " server: cannot run " + argv[0] + ": " + std::strerror(exec_errno));
    }
    out_ = std::move(read_end);
  }
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;
  ~server_process() { stop(); }

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  std::uint16_t port() const { return port_; }
  const std::string& version() const { return version_; }
  std::uint64_t new_request_id() { return next_id_++; }

  // Reads lines until READY <port> (recording VERSION <v>).
  void wait_ready(std::int64_t timeout_ns) {
    const std::int64_t deadline = monotonic_ns() + timeout_ns;
    std::string line;
    for (;;) {
      if (next_line(deadline, -1, line) != wait_status::line)
        throw bench_error(name_ + " server: no READY line within " + seconds_text(timeout_ns));
      if (line.rfind("VERSION ", 0) == 0) {
        version_ = line.substr(8);
      } else if (line.rfind("READY ", 0) == 0) {
        const long port = std::strtol(line.c_str() + 6, nullptr, 10);
        if (port <= 0 || port > 65535) throw bench_error(name_ + " server: bad READY line '" + line + "'");
        port_ = static_cast<std::uint16_t>(port);
        return;
      }
    }
  }

  enum class wait_status { line, timeout, socket_readable };

  // The next line from the server's stdout, waiting until `deadline_ns`. If `watch_fd` (a
  // client socket, or -1) becomes readable first, returns socket_readable. Throws if the server
  // exits. Lines are bounded (kMaxLine): a server that writes garbage is an error.
  wait_status next_line(std::int64_t deadline_ns, int watch_fd, std::string& line) {
    for (;;) {
      check_interrupted();  // a signal that came outside poll() is seen here
      const std::size_t newline = pending_.find('\n');
      if (newline != std::string::npos) {
        line = pending_.substr(0, newline);
        pending_.erase(0, newline + 1);
        return wait_status::line;
      }
      if (pending_.size() > kMaxLine) throw bench_error(name_ + " server: an output line longer than 64 KiB");
      pollfd fds[2] = {{out_.get(), POLLIN, 0}, {watch_fd, POLLIN, 0}};
      const int n = ::poll(fds, watch_fd >= 0 ? 2 : 1, poll_timeout_ms(deadline_ns));
      if (n < 0) {
        if (errno != EINTR) fail_errno("poll");
        check_interrupted();
        continue;
      }
      if (n == 0) {
        if (monotonic_ns() >= deadline_ns) return wait_status::timeout;
        continue;
      }
      if (fds[0].revents != 0) {
        char chunk[65536];
        const ssize_t got = ::read(out_.get(), chunk, sizeof chunk);
        if (got < 0) {
          if (errno == EINTR || errno == EAGAIN) continue;
          fail_errno(name_ + " server: read(stdout pipe)");
        }
        if (got == 0) died();
        pending_.append(chunk, static_cast<std::size_t>(got));
        continue;
      }
      if (watch_fd >= 0 && fds[1].revents != 0) return wait_status::socket_readable;
    }
  }

  // Throws (prefix + how it ended) if the server has exited, waiting up to `wait_ms` for a dying
  // one to become reapable.
  void throw_if_exited(const std::string& prefix, int wait_ms = 0) {
    for (int i = 0; i <= wait_ms / 10 && pid_ > 0; ++i) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        throw bench_error(prefix + name_ + " server " + describe_exit(status) + " (--log-dir DIR keeps its stderr)");
      }
      if (r < 0 && errno != EINTR) return;
      if (i < wait_ms / 10) ::usleep(10000);
    }
  }

  // SIGKILL and reap (idempotent). The servers hold no state worth a graceful shutdown.
  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  static constexpr std::size_t kMaxLine = 65536;

  static std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
    return "ended";
  }

  // The server closed its stdout: it exited (or is exiting). Reap it and say how it ended.
  [[noreturn]] void died() {
    throw_if_exited("", 1000);  // up to 1 s for the exit to be reapable
    throw bench_error(name_ + " server closed its output (--log-dir DIR keeps its stderr)");
  }

  std::string name_;
  pid_t pid_ = -1;
  unique_fd out_;
  std::string pending_;  // read from the pipe, not yet a whole line
  std::uint16_t port_ = 0;
  std::string version_;
  std::uint64_t next_id_ = 1;
};

// Waits for `kind` (one of "START", "CANCELLED|DONE", ...) for request `id`. `where` names the
// server, K and request for the error. A line about another request, or another kind, is an
// error: one request is in motion at a time, so the order of lines is known.
event expect_event(server_process& server, const std::string& kinds, std::uint64_t id, int watch_fd,
                   std::int64_t timeout_ns, const std::string& where) {
  const std::int64_t deadline = monotonic_ns() + timeout_ns;
  std::string line;
  for (;;) {
    const auto status = server.next_line(deadline, watch_fd, line);
    if (status == server_process::wait_status::timeout)
      throw bench_error(where + ": no " + kinds + " line from the server within " + seconds_text(timeout_ns));
    if (status == server_process::wait_status::socket_readable) {
      const std::string answer = peek_answer(watch_fd);
      server.throw_if_exited(where + ": ", 200);  // a crash resets every connection: say so instead
      throw bench_error(where + ": " + answer + " instead of starting the request");
    }
    event e;
    if (!parse_event(line, e)) continue;  // not an event line (none are expected; harmless)
    const bool kind_ok = ("|" + kinds + "|").find("|" + e.kind + "|") != std::string::npos;
    if (!kind_ok || e.id != id) {
      std::string hint;
      if (e.kind == "DONE" && e.id == id)
        hint = " (the request ended by itself: did a server timeout or /sleep's 60 s cap run out?)";
      throw bench_error(where + ": expected " + kinds + " " + std::to_string(id) + ", got '" + line + "'" + hint);
    }
    return e;
  }
}

// ==== what /proc and the clock say about a process ===========================================

// CPU time of the whole process (every thread, living and exited) in ns: the process CPU-time
// clock, which Linux lets any process read.
std::int64_t process_cpu_ns(pid_t pid) {
  clockid_t clock{};
  if (const int rc = clock_getcpuclockid(pid, &clock); rc != 0)
    throw bench_error(std::string("clock_getcpuclockid: ") + std::strerror(rc));
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) fail_errno("clock_gettime(process CPU clock)");
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + static_cast<std::int64_t>(ts.tv_nsec);
}

// VmRSS of the process in bytes.
std::int64_t resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  }
  throw bench_error("no VmRSS in /proc/" + std::to_string(pid) + "/status");
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// ==== options ===================================================================================

struct options {
  std::vector<std::size_t> ks{1, 100, 1000, 10000};
  std::vector<close_mode> modes{close_mode::fin, close_mode::rst};
  std::vector<std::string> servers{"floor", "ctoken", "go", "node"};
  // Per server, K and mode: rounds repeat until reached. Whole rounds tend to land fast or slow
  // together (the CPUs' idle states), so several rounds per cell keep one from deciding a ratio.
  std::size_t min_samples = 2000;
  std::size_t warmup = 20;        // unmeasured connect/close cycles per server after each start
  std::int64_t gap_ns = 1 * kMs;  // between two disconnects: the previous one's clean-up is over
  std::int64_t timeout_ns = 5000 * kMs;
  std::int64_t idle_settle_ns = 500 * kMs;
  std::int64_t idle_window_ns = 2000 * kMs;
  std::int64_t quiet_check_ns = 1000 * kMs;  // how long the machine's idleness is sampled first
  bool wasted = true;
  int wasted_requests = 5;  // per check= value
  int wasted_steps = 40;
  int wasted_step_us = 25000;
  std::int64_t wasted_delay_ns = 100 * kMs;  // START → close
  std::string json_path;
  std::string log_dir;  // empty: the servers' stderr goes to /dev/null
  std::string floor_path = DISCONNECT_FLOOR_SERVER;
  std::string ctoken_path = DISCONNECT_CTOKEN_SERVER;
  std::string go_path = DISCONNECT_GO_SERVER;
  std::string node_bin = "node";
  std::string node_script = DISCONNECT_NODE_SCRIPT;
  std::optional<std::uint64_t> seed;
  bool pin = true;  // driver on one CPU, servers on the others (when there are at least two)
};

void usage(std::FILE* to) {
  std::fputs(
      "usage: ctoken_disconnect_bench [--json FILE] [--quick] [--k LIST] [--modes fin,rst]\n"
      "                               [--servers floor,ctoken,go,node] [--samples N] [--warmup N]\n"
      "                               [--gap-us N] [--timeout-ms N] [--idle-ms N] [--no-wasted]\n"
      "                               [--wasted-requests N] [--seed N] [--log-dir DIR]\n"
      "                               [--floor PATH] [--ctoken PATH] [--go PATH] [--node BIN]\n"
      "                               [--node-script PATH] [--no-pin]\n"
      "  --k LIST        in-flight requests per round (default 1,100,1000,10000)\n"
      "  --samples N     minimum samples per server, K and mode (default 2000; rounds repeat)\n"
      "  --quick         CI smoke run: K=1,10, 20 samples, short idle window, 1 wasted request each\n"
      "  --gap-us N      pause between two disconnects (default 1000)\n"
      "  --idle-ms N     idle CPU window (default 2000)\n"
      "  --log-dir DIR   keep each server's stderr in DIR/<server>-k<K>.log\n"
      "  --no-pin        let the scheduler place the driver and the servers (default: the driver\n"
      "                  on the first allowed CPU, every server on the others)\n",
      to);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "ctoken_disconnect_bench: %s\n", message.c_str());
  usage(stderr);
  std::exit(2);
}

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_list(const std::string& text, char separator = ',') {
  std::vector<std::string> items;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, separator))
    if (!item.empty()) items.push_back(item);
  return items;
}

long long parse_number(const std::string& flag, const std::string& text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || text.empty() || *end != '\0' || value < lo || value > hi)
    usage_error(flag + " needs a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text +
                "'");
  return value;
}

options parse_options(int argc, char** argv) {
  options opt;
  // --quick first, so explicit flags given with it still win.
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--quick") {
      opt.ks = {1, 10};
      opt.min_samples = 20;
      opt.warmup = 3;
      opt.idle_settle_ns = 100 * kMs;
      opt.idle_window_ns = 250 * kMs;
      opt.quiet_check_ns = 200 * kMs;
      opt.wasted_requests = 1;
      opt.wasted_steps = 8;
      opt.wasted_delay_ns = 50 * kMs;
    }
  }
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--quick") {
      continue;
    } else if (flag == "--json") {
      opt.json_path = value();
    } else if (flag == "--k") {
      opt.ks.clear();
      for (const std::string& k : split_list(value()))
        opt.ks.push_back(static_cast<std::size_t>(parse_number("--k", k, 1, 100000)));
      if (opt.ks.empty()) usage_error("--k needs at least one number");
    } else if (flag == "--modes") {
      opt.modes.clear();
      for (const std::string& m : split_list(value())) {
        if (m == "fin") {
          opt.modes.push_back(close_mode::fin);
        } else if (m == "rst") {
          opt.modes.push_back(close_mode::rst);
        } else {
          usage_error("--modes takes fin and/or rst, got '" + m + "'");
        }
      }
      if (opt.modes.empty()) usage_error("--modes needs fin and/or rst");
    } else if (flag == "--servers") {
      opt.servers = split_list(value());
      for (const std::string& s : opt.servers)
        if (s != "floor" && s != "ctoken" && s != "go" && s != "node")
          usage_error("--servers takes floor, ctoken, go and node, got '" + s + "'");
      if (opt.servers.empty()) usage_error("--servers needs at least one server");
    } else if (flag == "--samples") {
      opt.min_samples = static_cast<std::size_t>(parse_number(flag, value(), 1, 10000000));
    } else if (flag == "--warmup") {
      opt.warmup = static_cast<std::size_t>(parse_number(flag, value(), 0, 100000));
    } else if (flag == "--gap-us") {
      opt.gap_ns = parse_number(flag, value(), 0, 10000000) * 1000;
    } else if (flag == "--timeout-ms") {
      opt.timeout_ns = parse_number(flag, value(), 1, 3600000) * kMs;
    } else if (flag == "--idle-ms") {
      opt.idle_window_ns = parse_number(flag, value(), 1, 3600000) * kMs;
    } else if (flag == "--no-pin") {
      opt.pin = false;
    } else if (flag == "--no-wasted") {
      opt.wasted = false;
    } else if (flag == "--wasted-requests") {
      opt.wasted_requests = static_cast<int>(parse_number(flag, value(), 1, 1000));
    } else if (flag == "--seed") {
      opt.seed = static_cast<std::uint64_t>(parse_number(flag, value(), 0, std::numeric_limits<long long>::max()));
    } else if (flag == "--log-dir") {
      opt.log_dir = value();
    } else if (flag == "--floor") {
      opt.floor_path = value();
    } else if (flag == "--ctoken") {
      opt.ctoken_path = value();
    } else if (flag == "--go") {
      opt.go_path = value();
    } else if (flag == "--node") {
      opt.node_bin = value();
    } else if (flag == "--node-script") {
      opt.node_script = value();
    } else if (flag == "--help" || flag == "-h") {
      usage(stdout);
      std::exit(0);
    } else {
      usage_error("unknown option " + flag);
    }
  }
  return opt;
}

// ==== the servers ===============================================================================

// How to run one server and what to ask it.
struct server_def {
  std::string name;
  std::vector<std::string> base_argv;  // program and its fixed flags
  std::string wait_target;             // a request that waits forever without CPU; "&id=N" follows
  bool thread_per_connection = false;  // the ctoken server: --max-connections is its thread count
};

// The command line for K in-flight requests.
std::vector<std::string> command_for(const server_def& def, std::size_t k) {
  std::vector<std::string> argv = def.base_argv;
  if (def.thread_per_connection) {
    argv.push_back("--max-connections");
    argv.push_back(std::to_string(std::min<std::size_t>(k + 64, 100000)));
  }
  return argv;
}

bool executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

// `name` as execvp would find it: a path with a '/' as is, else the first match on $PATH.
std::string find_on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return executable(name) ? name : std::string();
  const char* path = std::getenv("PATH");
  for (const std::string& dir : split_list(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin", ':')) {
    const std::string candidate = dir + "/" + name;
    if (executable(candidate)) return candidate;
  }
  return {};
}

// The servers asked for whose programs exist, in the order asked. The others are skipped with a
// message on stderr.
std::vector<server_def> available_servers(const options& opt) {
  std::vector<server_def> defs;
  for (const std::string& name : opt.servers) {
    server_def def;
    def.name = name;
    std::string skip;
    if (name == "floor") {
      if (!executable(opt.floor_path)) skip = "no floor server at '" + opt.floor_path + "' (--floor PATH)";
      def.base_argv = {opt.floor_path, "--port", "0"};
      def.wait_target = "/wait?x=1";
    } else if (name == "ctoken") {
      if (opt.ctoken_path.empty()) {
        skip = "the http_server example was not built (configure with -DCTOKEN_BUILD_EXAMPLES=ON, or --ctoken PATH)";
      } else if (!executable(opt.ctoken_path)) {
        skip = "no http_server at '" + opt.ctoken_path + "' (--ctoken PATH)";
      }
      // Every timeout raised, so that only the client's close ends a request. /sleep's ms is
      // capped at 60 s by the server: each round must (and does, by far) finish within that.
      def.base_argv = {opt.ctoken_path,
                       "--port",
                       "0",
                       "--events",
                       "--request-timeout-ms",
                       "86400000",
                       "--idle-timeout-ms",
                       "86400000",
                       "--header-timeout-ms",
                       "3600000",
                       "--write-timeout-ms",
                       "3600000",
                       "--drain-timeout-ms",
                       "0",
                       "--keepalive-idle-s",
                       "32767"};
      def.wait_target = "/sleep?ms=60000";
      def.thread_per_connection = true;
    } else if (name == "go") {
      if (opt.go_path.empty()) {
        skip = "no `go` was found when CMake configured (apt-get install golang-go, then reconfigure; or --go PATH)";
      } else if (!executable(opt.go_path)) {
        skip = "no Go server binary at '" + opt.go_path + "' (was it built? --go PATH)";
      }
      def.base_argv = {opt.go_path, "-port", "0"};
      def.wait_target = "/wait?x=1";
    } else if (name == "node") {
      const std::string node = find_on_path(opt.node_bin);
      if (node.empty()) {
        skip = "no `" + opt.node_bin + "` on PATH (--node BIN)";
      } else if (::access(opt.node_script.c_str(), R_OK) != 0) {
        skip = "no Node server script at '" + opt.node_script + "' (--node-script PATH)";
      }
      def.base_argv = {node, opt.node_script, "--port", "0"};
      def.wait_target = "/wait?x=1";
    }
    if (!skip.empty()) {
      std::fprintf(stderr, "ctoken_disconnect_bench: skipping the %s server: %s\n", name.c_str(), skip.c_str());
      continue;
    }
    defs.push_back(def);
  }
  return defs;
}

std::string stderr_path(const options& opt, const std::string& server, const std::string& tag) {
  if (opt.log_dir.empty()) return "/dev/null";
  return opt.log_dir + "/" + server + "-" + tag + ".log";
}

// ==== CPU placement ==============================================================================

// Where the driver and the servers run. By default the driver takes the first CPU it may use
// and the servers the others, so that a server never waits for the driver to leave its CPU
// (left to itself, the scheduler tends to wake a server on the driver's CPU, behind it) and
// every server is measured on the same footing: woken on a CPU of its own.
struct cpu_placement {
  bool pinned = false;
  cpu_set_t servers{};
  std::string description;
};

cpu_placement place_cpus(bool pin) {
  cpu_placement p;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) fail_errno("sched_getaffinity");
  std::vector<std::size_t> cpus;
  for (std::size_t c = 0; c < static_cast<std::size_t>(CPU_SETSIZE); ++c)
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  if (!pin || cpus.size() < 2) {
    p.description = std::string("not pinned: the scheduler places the driver and the servers on ") +
                    std::to_string(cpus.size()) + " CPU(s)" + (pin ? " (pinning needs two)" : " (--no-pin)");
    return p;
  }
  cpu_set_t driver;
  CPU_ZERO(&driver);
  CPU_SET(cpus[0], &driver);
  CPU_ZERO(&p.servers);
  std::string list;
  for (std::size_t i = 1; i < cpus.size(); ++i) {
    CPU_SET(cpus[i], &p.servers);
    list += (list.empty() ? "" : ",") + std::to_string(cpus[i]);
  }
  if (::sched_setaffinity(0, sizeof driver, &driver) != 0) fail_errno("sched_setaffinity");
  p.pinned = true;
  p.description = "driver on CPU " + std::to_string(cpus[0]) + ", servers on CPU " + list;
  return p;
}

// ==== process limits =============================================================================

// Descriptors a server needs with K requests in flight: one socket per connection, plus a
// margin for its own (listener, epoll, eventfds, pipes).
std::size_t fds_needed(const server_def&, std::size_t k) { return k + 64; }

// Raises RLIMIT_NOFILE before any server starts (the children inherit it) and returns the limit
// they get. The hard limit is raised to `needed` when we may (CAP_SYS_RESOURCE); otherwise the
// soft limit goes up to the hard limit, and a server that needs more is skipped at that K, with
// the reason (see cannot_run).
rlim_t raise_fd_limit(std::size_t needed) {
  rlimit current{};
  if (::getrlimit(RLIMIT_NOFILE, &current) != 0) fail_errno("getrlimit(RLIMIT_NOFILE)");
  const auto wanted = static_cast<rlim_t>(needed);
  if (current.rlim_max != RLIM_INFINITY && current.rlim_max < wanted) {
    const rlimit raised{wanted, wanted};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      std::fprintf(stderr, "ctoken_disconnect_bench: RLIMIT_NOFILE raised to %llu (the hard limit was %llu)\n",
                   static_cast<unsigned long long>(wanted), static_cast<unsigned long long>(current.rlim_max));
      return wanted;
    }
    std::fprintf(stderr,
                 "ctoken_disconnect_bench: warning: RLIMIT_NOFILE: %llu descriptors wanted, but the hard limit is "
                 "%llu and cannot be raised (%s: no CAP_SYS_RESOURCE); raise `ulimit -Hn` first\n",
                 static_cast<unsigned long long>(wanted), static_cast<unsigned long long>(current.rlim_max),
                 std::strerror(errno));
  }
  const rlimit raised{current.rlim_max, current.rlim_max};
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) fail_errno("setrlimit(RLIMIT_NOFILE)");
  return current.rlim_max;
}

// Why `def` cannot hold K requests on this machine (empty: it can): descriptors, and for the
// ctoken server's thread per connection, pid_max and threads-max. Checked before the round so
// the report says why, instead of a crash or a timeout half-way.
std::string cannot_run(const server_def& def, std::size_t k, rlim_t fd_limit) {
  const std::size_t fds = fds_needed(def, k);
  if (fd_limit != RLIM_INFINITY && fds > fd_limit) {
    return "needs about " + std::to_string(fds) + " descriptors" + " but RLIMIT_NOFILE is " + std::to_string(fd_limit) +
           " and cannot be raised here (no CAP_SYS_RESOURCE): run with a larger `ulimit -Hn`";
  }
  if (!def.thread_per_connection) return {};
  const long long pid_max = std::atoll(read_first_line("/proc/sys/kernel/pid_max").c_str());
  const long long threads_max = std::atoll(read_first_line("/proc/sys/kernel/threads-max").c_str());
  // /proc/loadavg: "0.00 0.01 0.05 1/123 4567": 123 is the number of threads on the machine.
  const std::string loadavg = read_first_line("/proc/loadavg");
  const std::size_t slash = loadavg.find('/');
  const long long existing = slash == std::string::npos ? 0 : std::atoll(loadavg.c_str() + slash + 1);
  const long long threads = static_cast<long long>(k) + 64;
  if (pid_max > 0 && existing + threads > pid_max)
    return "needs " + std::to_string(threads) + " threads, but kernel.pid_max is " + std::to_string(pid_max) +
           " with " + std::to_string(existing) + " in use (sysctl -w kernel.pid_max=4194304)";
  if (threads_max > 0 && existing + threads > threads_max)
    return "needs " + std::to_string(threads) + " threads, but kernel.threads-max is " + std::to_string(threads_max) +
           " with " + std::to_string(existing) + " in use";
  return {};
}

// ==== measurements ===============================================================================

struct samples {
  std::vector<double> latency_us;  // detection - close
  std::vector<double> line_us;     // the CANCELLED line's own time - close (ctoken: handler unwound)
  std::map<std::string, std::size_t> reasons;
};

struct idle_figures {
  double cpu_us_per_s = 0;  // the whole server
  double cpu_us_per_s_per_request = 0;
  std::int64_t rss_before = 0, rss_after = 0;  // bytes
  double rss_bytes_per_request = 0;
};

// "ctoken server, K=1000, FIN, request 17 (connection 5 of 1000)"
std::string where(const std::string& server, std::size_t k, close_mode mode, std::uint64_t id, std::size_t index) {
  return server + " server, K=" + std::to_string(k) + ", " + mode_label(mode) + ", request " + std::to_string(id) +
         " (connection " + std::to_string(index + 1) + " of " + std::to_string(k) + ")";
}

// One round: K requests in flight, then disconnected one by one in a random order. `idle`, if
// given, receives the idle CPU and memory figures measured while all K are in flight.
void run_round(server_process& server, const server_def& def, std::size_t k, close_mode mode, const options& opt,
               std::mt19937_64& rng, samples* out, std::optional<idle_figures>* idle) {
  const std::int64_t rss_before = idle != nullptr ? resident_bytes(server.pid()) : 0;

  std::vector<unique_fd> connections;
  std::vector<std::uint64_t> ids;
  connections.reserve(k);
  ids.reserve(k);
  for (std::size_t i = 0; i < k; ++i) {
    const std::uint64_t id = server.new_request_id();
    connections.push_back(open_request(server.port(), def.wait_target + "&id=" + std::to_string(id)));
    ids.push_back(id);
    expect_event(server, "START", id, connections.back().get(), opt.timeout_ns, where(def.name, k, mode, id, i));
  }

  if (idle != nullptr) {
    sleep_ns(opt.idle_settle_ns);  // let the last START's aftermath (and any GC) pass
    server.throw_if_exited("idle window, K=" + std::to_string(k) + ": ");
    const std::int64_t cpu_before = process_cpu_ns(server.pid());
    const std::int64_t wall_before = monotonic_ns();
    sleep_ns(opt.idle_window_ns);
    server.throw_if_exited("idle window, K=" + std::to_string(k) + ": ");  // a zombie has no VmRSS
    const std::int64_t cpu_after = process_cpu_ns(server.pid());
    const std::int64_t wall_after = monotonic_ns();
    const std::int64_t rss_after = resident_bytes(server.pid());
    idle_figures f;
    const double window_s = static_cast<double>(wall_after - wall_before) / 1e9;
    f.cpu_us_per_s = static_cast<double>(cpu_after - cpu_before) / 1e3 / window_s;
    f.cpu_us_per_s_per_request = f.cpu_us_per_s / static_cast<double>(k);
    f.rss_before = rss_before;
    f.rss_after = rss_after;
    f.rss_bytes_per_request = static_cast<double>(rss_after - rss_before) / static_cast<double>(k);
    *idle = f;
  }

  std::vector<std::size_t> order(k);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  for (const std::size_t i : order) {
    if (opt.gap_ns > 0) sleep_ns(opt.gap_ns);
    const std::int64_t closed_at = disconnect(connections[i], mode);
    const event e = expect_event(server, "CANCELLED", ids[i], -1, opt.timeout_ns, where(def.name, k, mode, ids[i], i));
    const std::int64_t detected_at = e.signal_ns > 0 ? e.signal_ns : e.ns;
    if (out != nullptr) {
      out->latency_us.push_back(static_cast<double>(detected_at - closed_at) / 1e3);
      out->line_us.push_back(static_cast<double>(e.ns - closed_at) / 1e3);
      ++out->reasons[e.reason.empty() ? "-" : e.reason];
    }
  }
}

// Nearest-rank percentile of sorted values (q in (0, 1]).
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<std::size_t>(rank, 1)) - 1];
}

struct summary {
  double p50 = 0, p99 = 0, max = 0;
};
summary summarize(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  summary s;
  s.p50 = percentile(values, 0.50);
  s.p99 = percentile(values, 0.99);
  s.max = values.empty() ? 0 : values.back();
  return s;
}

struct wasted_result {
  bool check = true;
  std::vector<double> cpu_ms;  // CPU the server spent from the client's close until CANCELLED/DONE
  std::vector<int> steps;      // steps the handler completed in all
  std::vector<std::string> outcome;
};

// The CPU a /slow?work=cpu handler spends after its client left: with check=1 it stops at the
// next token check, with check=0 it runs all its steps. One request at a time, alternating.
std::vector<wasted_result> run_wasted(const server_def& def, const options& opt, const cpu_set_t* cpus) {
  server_process server(def.name, command_for(def, 16), stderr_path(opt, def.name, "wasted"), cpus);
  server.wait_ready(std::max<std::int64_t>(opt.timeout_ns, 10000 * kMs));
  std::vector<wasted_result> results(2);
  results[0].check = true;
  results[1].check = false;
  const std::int64_t work_ns = static_cast<std::int64_t>(opt.wasted_steps) * opt.wasted_step_us * 1000;
  for (int i = 0; i < 2 * opt.wasted_requests; ++i) {
    wasted_result& r = results[static_cast<std::size_t>(i % 2)];
    const std::uint64_t id = server.new_request_id();
    const std::string target = "/slow?steps=" + std::to_string(opt.wasted_steps) +
                               "&step_us=" + std::to_string(opt.wasted_step_us) +
                               "&work=cpu&check=" + (r.check ? "1" : "0") + "&id=" + std::to_string(id);
    const std::string context =
        "wasted work (ctoken server, check=" + std::string(r.check ? "1" : "0") + "), request " + std::to_string(id);
    unique_fd fd = open_request(server.port(), target);
    expect_event(server, "START", id, fd.get(), opt.timeout_ns, context);
    sleep_ns(opt.wasted_delay_ns);
    const std::int64_t cpu_before = process_cpu_ns(server.pid());
    disconnect(fd, close_mode::fin);
    const event e = expect_event(server, "CANCELLED|DONE", id, -1, opt.timeout_ns + work_ns, context);
    const std::int64_t cpu_after = process_cpu_ns(server.pid());
    r.cpu_ms.push_back(static_cast<double>(cpu_after - cpu_before) / 1e6);
    r.steps.push_back(e.steps);
    r.outcome.push_back(e.kind);
    sleep_ns(50 * kMs);  // the connection thread ends before the next request
  }
  return results;
}

// ==== output ======================================================================================

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double value, int decimals = 3) {
  if (!std::isfinite(value)) return "null";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

struct machine_info {
  long cpus = 0;
  std::string kernel;
  std::string model;
};

machine_info describe_machine() {
  machine_info m;
  m.cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  utsname u{};
  if (::uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) m.model = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  return m;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Results, keyed by (K, mode, server); the servers in the order they were asked for.
struct skipped_run {
  std::string server;
  std::size_t k = 0;
  std::string reason;
};

struct results {
  std::map<std::tuple<std::size_t, int, std::string>, samples> detection;
  std::map<std::pair<std::size_t, std::string>, idle_figures> idle;
  std::vector<wasted_result> wasted;
  std::map<std::string, std::string> versions;
  std::vector<skipped_run> skipped;  // server and K not run, and why (a machine limit)
  std::uint64_t seed = 0;
  double idle_before = 0;  // % of the machine's CPU time idle just before the run
  std::string placement;   // where the driver and the servers ran (cpu_placement)
};

std::string wasted_target(const options& opt) {
  return "/slow?steps=" + std::to_string(opt.wasted_steps) + "&step_us=" + std::to_string(opt.wasted_step_us) +
         "&work=cpu";
}

void print_tables(const results& res, const std::vector<server_def>& defs, const options& opt) {
  const machine_info m = describe_machine();
  std::printf("\nMachine: %ld CPUs, %s, %s; %.0f%% idle just before the run%s\n", m.cpus, m.model.c_str(),
              m.kernel.c_str(), res.idle_before, res.idle_before < 90 ? " (other work was running: expect noise)" : "");
  std::printf("Placement: %s\n", res.placement.c_str());
  std::printf("\nDisconnect detection: client close() -> server notices it, in microseconds\n");
  std::printf("(same CLOCK_MONOTONIC; ratio = this server's p50 (p99) / the floor's p50 (p99))\n");
  for (const std::size_t k : opt.ks) {
    for (const close_mode mode : opt.modes) {
      std::printf("\nK=%zu in flight, %s\n", k, mode_label(mode));
      std::printf("  %-7s %8s %10s %10s %10s %10s %10s\n", "server", "samples", "p50", "p99", "max", "p50/floor",
                  "p99/floor");
      const auto floor_it = res.detection.find({k, static_cast<int>(mode), "floor"});
      std::optional<summary> floor_summary;
      if (floor_it != res.detection.end()) floor_summary = summarize(floor_it->second.latency_us);
      for (const server_def& def : defs) {
        const auto it = res.detection.find({k, static_cast<int>(mode), def.name});
        if (it == res.detection.end()) continue;
        const summary s = summarize(it->second.latency_us);
        std::string ratio50 = "-", ratio99 = "-";
        if (floor_summary && floor_summary->p50 > 0) ratio50 = json_number(s.p50 / floor_summary->p50, 2);
        if (floor_summary && floor_summary->p99 > 0) ratio99 = json_number(s.p99 / floor_summary->p99, 2);
        std::printf("  %-7s %8zu %10.1f %10.1f %10.1f %10s %10s\n", def.name.c_str(), it->second.latency_us.size(),
                    s.p50, s.p99, s.max, ratio50.c_str(), ratio99.c_str());
      }
      for (const skipped_run& skip : res.skipped)
        if (skip.k == k) std::printf("  %-7s NOT RUN: %s\n", skip.server.c_str(), skip.reason.c_str());
      // The ctoken server's line also says when the handler had unwound (after signal_ns).
      const auto ctoken_it = res.detection.find({k, static_cast<int>(mode), "ctoken"});
      if (ctoken_it != res.detection.end()) {
        const summary u = summarize(ctoken_it->second.line_us);
        std::printf("  (ctoken: the handler had unwound and printed CANCELLED at p50 %.1f, p99 %.1f)\n", u.p50, u.p99);
      }
      // Reasons reported, as a sanity check of FIN vs RST.
      std::string reasons;
      for (const server_def& def : defs) {
        const auto it = res.detection.find({k, static_cast<int>(mode), def.name});
        if (it == res.detection.end()) continue;
        reasons += "  " + def.name + ":";
        for (const auto& [reason, count] : it->second.reasons) reasons += " " + reason + "x" + std::to_string(count);
      }
      std::printf("  reasons:%s\n", reasons.c_str());
    }
  }

  std::printf("\nIdle cost with K requests in flight, over a %.1f s window: the server's CPU (all threads) in\n",
              static_cast<double>(opt.idle_window_ns) / 1e9);
  std::printf("microseconds per second, in all and per in-flight request; its VmRSS before the first connection\n");
  std::printf("and with K in flight, and the growth per in-flight request (K=1: mostly page-size noise)\n");
  std::printf("  %-7s %-7s %12s %14s %11s %11s %12s\n", "K", "server", "cpu us/s", "cpu us/s/req", "rss before",
              "rss with K", "rss B/req");
  for (const std::size_t k : opt.ks) {
    for (const server_def& def : defs) {
      const auto it = res.idle.find({k, def.name});
      if (it == res.idle.end()) continue;
      const idle_figures& f = it->second;
      std::printf("  %-7zu %-7s %12.1f %14.5f %9.1f MB %8.1f MB %12.0f\n", k, def.name.c_str(), f.cpu_us_per_s,
                  f.cpu_us_per_s_per_request, static_cast<double>(f.rss_before) / 1048576.0,
                  static_cast<double>(f.rss_after) / 1048576.0, f.rss_bytes_per_request);
    }
  }

  if (!res.wasted.empty()) {
    std::printf("\nWasted work (ctoken server): %s, the client closes (FIN) %.0f ms after START;\n",
                wasted_target(opt).c_str(), static_cast<double>(opt.wasted_delay_ns) / 1e6);
    std::printf("server CPU from the close until CANCELLED/DONE, in ms\n");
    std::printf("  %-8s %8s %10s %10s   %s\n", "check", "requests", "mean", "max", "outcome (steps done)");
    for (const wasted_result& w : res.wasted) {
      const double mean = std::accumulate(w.cpu_ms.begin(), w.cpu_ms.end(), 0.0) / static_cast<double>(w.cpu_ms.size());
      const double max = *std::max_element(w.cpu_ms.begin(), w.cpu_ms.end());
      std::string outcomes;
      for (std::size_t i = 0; i < w.outcome.size(); ++i)
        outcomes += (i ? ", " : "") + w.outcome[i] + "(" + std::to_string(w.steps[i]) + "/" +
                    std::to_string(opt.wasted_steps) + ")";
      std::printf("  %-8s %8zu %10.3f %10.3f   %s\n", w.check ? "check=1" : "check=0", w.cpu_ms.size(), mean, max,
                  outcomes.c_str());
    }
  }
}

// --json FILE: one object (benchmarks/report/make_report.py reads it):
//   date, machine {cpus, kernel, model}, seed, placement (where the driver and servers ran),
//   detection [{server, mode (fin|rst), k, samples, p50_us, p99_us, max_us, latencies_us [every
//     sample], and for ctoken handler_p50_us, handler_p99_us (when its handler had unwound)}],
//   idle [{server, k, cpu_us_per_s_per_request, rss_bytes_per_request}],
//   wasted [{check, requests, cpu_ms_after_close_mean, cpu_ms_after_close_max}],
//   skipped [{server, k, reason}], versions {server: version}.
void write_json(const std::string& path, const results& res, const std::vector<server_def>& defs, const options& opt) {
  const machine_info m = describe_machine();
  std::ostringstream out;
  out << "{\"date\": " << json_string(utc_now()) << ",\n";
  out << " \"machine\": {\"cpus\": " << m.cpus << ", \"kernel\": " << json_string(m.kernel)
      << ", \"model\": " << json_string(m.model) << "},\n";
  out << " \"seed\": " << res.seed << ",\n";
  out << " \"placement\": " << json_string(res.placement) << ",\n";
  out << " \"detection\": [";
  bool first = true;
  for (const std::size_t k : opt.ks) {
    for (const close_mode mode : opt.modes) {
      for (const server_def& def : defs) {
        const auto it = res.detection.find({k, static_cast<int>(mode), def.name});
        if (it == res.detection.end()) continue;
        const summary s = summarize(it->second.latency_us);
        out << (first ? "\n" : ",\n") << "  {\"server\": " << json_string(def.name)
            << ", \"mode\": " << json_string(mode_name(mode)) << ", \"k\": " << k
            << ", \"samples\": " << it->second.latency_us.size() << ", \"p50_us\": " << json_number(s.p50)
            << ", \"p99_us\": " << json_number(s.p99) << ", \"max_us\": " << json_number(s.max);
        if (def.name == "ctoken" && !it->second.line_us.empty()) {
          // When the handler had unwound (its CANCELLED line's own time), after the token.
          const summary u = summarize(it->second.line_us);
          out << ", \"handler_p50_us\": " << json_number(u.p50) << ", \"handler_p99_us\": " << json_number(u.p99);
        }
        out << ", \"latencies_us\": [";
        for (std::size_t i = 0; i < it->second.latency_us.size(); ++i)
          out << (i ? ", " : "") << json_number(it->second.latency_us[i]);
        out << "]}";
        first = false;
      }
    }
  }
  out << "\n ],\n \"idle\": [";
  first = true;
  for (const std::size_t k : opt.ks) {
    for (const server_def& def : defs) {
      const auto it = res.idle.find({k, def.name});
      if (it == res.idle.end()) continue;
      out << (first ? "\n" : ",\n") << "  {\"server\": " << json_string(def.name) << ", \"k\": " << k
          << ", \"cpu_us_per_s_per_request\": " << json_number(it->second.cpu_us_per_s_per_request, 6)
          << ", \"rss_bytes_per_request\": " << json_number(it->second.rss_bytes_per_request, 1) << "}";
      first = false;
    }
  }
  out << "\n ],\n \"wasted\": [";
  first = true;
  for (const wasted_result& w : res.wasted) {
    const double mean = std::accumulate(w.cpu_ms.begin(), w.cpu_ms.end(), 0.0) / static_cast<double>(w.cpu_ms.size());
    const double max = *std::max_element(w.cpu_ms.begin(), w.cpu_ms.end());
    out << (first ? "\n" : ",\n") << "  {\"check\": " << (w.check ? "true" : "false")
        << ", \"requests\": " << w.cpu_ms.size() << ", \"cpu_ms_after_close_mean\": " << json_number(mean, 4)
        << ", \"cpu_ms_after_close_max\": " << json_number(max, 4) << "}";
    first = false;
  }
  out << "\n ],\n \"skipped\": [";
  first = true;
  for (const skipped_run& skip : res.skipped) {
    out << (first ? "\n" : ",\n") << "  {\"server\": " << json_string(skip.server) << ", \"k\": " << skip.k
        << ", \"reason\": " << json_string(skip.reason) << "}";
    first = false;
  }
  out << "\n ],\n \"versions\": {";
  first = true;
  for (const char* runtime : {"go", "node"}) {
    const auto it = res.versions.find(runtime);
    out << (first ? "" : ", ") << json_string(runtime) << ": "
        << (it == res.versions.end() || it->second.empty() ? std::string("null") : json_string(it->second));
    first = false;
  }
  out << "}}\n";

  std::ofstream file(path, std::ios::trunc);
  file << out.str();
  file.close();
  if (!file) throw bench_error("cannot write " + path);
}

// ==== the run =====================================================================================

// The share of the machine's CPU time (all CPUs) that was idle over `window_ns`, from
// /proc/stat: other work on the machine shows up as noise in every figure.
double machine_idle_percent(std::int64_t window_ns) {
  auto read_times = [](std::uint64_t& idle, std::uint64_t& total) {
    std::istringstream in(read_first_line("/proc/stat"));  // "cpu  user nice system idle iowait ..."
    std::string label;
    in >> label;
    idle = total = 0;
    std::uint64_t value = 0;
    for (int field = 0; field < 8 && in >> value; ++field) {
      total += value;
      if (field == 3 || field == 4) idle += value;  // idle, iowait
    }
  };
  std::uint64_t idle0 = 0, total0 = 0, idle1 = 0, total1 = 0;
  read_times(idle0, total0);
  sleep_ns(window_ns);
  read_times(idle1, total1);
  if (total1 <= total0) return 100;
  return 100.0 * static_cast<double>(idle1 - idle0) / static_cast<double>(total1 - total0);
}

int run(const options& opt) {
  const std::int64_t started = monotonic_ns();
  results res;
  res.idle_before = machine_idle_percent(opt.quiet_check_ns);
  const std::vector<server_def> defs = available_servers(opt);
  if (defs.empty()) throw bench_error("no server to measure");

  // Descriptors: the driver holds K client sockets; each server needs fds_needed(). The driver
  // must fit (else nothing can be measured at that K); a server that does not fit is skipped at
  // that K, with the reason in the tables and the JSON.
  const std::size_t max_k = *std::max_element(opt.ks.begin(), opt.ks.end());
  std::size_t most_fds = max_k + 256;
  for (const server_def& def : defs) most_fds = std::max(most_fds, fds_needed(def, max_k));
  const rlim_t fd_limit = raise_fd_limit(most_fds);
  if (fd_limit != RLIM_INFINITY && max_k + 256 > fd_limit)
    throw bench_error("K=" + std::to_string(max_k) + " needs " + std::to_string(max_k + 256) +
                      " descriptors in the driver, but RLIMIT_NOFILE is " + std::to_string(fd_limit));
  if (!opt.log_dir.empty()) ::mkdir(opt.log_dir.c_str(), 0755);  // may exist; open() reports real trouble

  const cpu_placement placement = place_cpus(opt.pin);
  res.placement = placement.description;
  std::fprintf(stderr, "ctoken_disconnect_bench: %s\n", placement.description.c_str());

  const std::uint64_t seed = opt.seed ? *opt.seed : std::random_device{}();
  std::mt19937_64 rng(seed);
  res.seed = seed;
  std::fprintf(stderr, "ctoken_disconnect_bench: seed %llu (--seed to repeat the order)\n",
               static_cast<unsigned long long>(seed));

  for (const std::size_t k : opt.ks) {
    // The servers that can hold K requests here.
    std::vector<const server_def*> here;
    for (const server_def& def : defs) {
      const std::string why = cannot_run(def, k, fd_limit);
      if (why.empty()) {
        here.push_back(&def);
      } else {
        std::fprintf(stderr, "ctoken_disconnect_bench: NOT RUN: the %s server at K=%zu: %s\n", def.name.c_str(), k,
                     why.c_str());
        res.skipped.push_back({def.name, k, why});
      }
    }

    // Fresh servers for each K: the memory baseline is not inflated by an earlier, larger K.
    std::vector<std::unique_ptr<server_process>> procs;
    for (const server_def* def : here) {
      procs.push_back(std::make_unique<server_process>(def->name, command_for(*def, k),
                                                       stderr_path(opt, def->name, "k" + std::to_string(k)),
                                                       placement.pinned ? &placement.servers : nullptr));
    }
    for (std::size_t s = 0; s < here.size(); ++s) {
      procs[s]->wait_ready(std::max<std::int64_t>(opt.timeout_ns, 10000 * kMs));
      if (!procs[s]->version().empty()) res.versions[here[s]->name] = procs[s]->version();
      // Unmeasured warm-up: first-request costs (page faults, JIT, goroutine stacks) out of the way.
      for (std::size_t w = 0; w < opt.warmup; ++w)
        run_round(*procs[s], *here[s], 1, close_mode::fin, opt, rng, nullptr, nullptr);
    }

    std::vector<bool> idle_done(here.size(), false);
    // At least two rounds per server, however large K: a single round that happens to land slow
    // (or fast) as a whole would decide the cell's ratio on its own.
    const std::size_t rounds = std::max<std::size_t>(2, (opt.min_samples + k - 1) / k);
    for (const close_mode mode : opt.modes) {
      std::fprintf(stderr, "K=%zu %s: %zu round(s) per server ...\n", k, mode_label(mode), rounds);
      for (std::size_t r = 0; r < rounds; ++r) {
        // A new random server order every round, so machine noise hits them alike.
        std::vector<std::size_t> order(here.size());
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::shuffle(order.begin(), order.end(), rng);
        for (const std::size_t s : order) {
          std::optional<idle_figures> idle;
          const bool measure_idle = !idle_done[s];
          run_round(*procs[s], *here[s], k, mode, opt, rng, &res.detection[{k, static_cast<int>(mode), here[s]->name}],
                    measure_idle ? &idle : nullptr);
          if (measure_idle && idle) {
            res.idle[{k, here[s]->name}] = *idle;
            idle_done[s] = true;
          }
        }
      }
    }
  }  // the servers of this K are killed and reaped here

  if (opt.wasted) {
    const auto ctoken =
        std::find_if(defs.begin(), defs.end(), [](const server_def& d) { return d.thread_per_connection; });
    if (ctoken != defs.end()) {
      std::fprintf(stderr, "wasted work: %d request(s) with check=1 and with check=0 ...\n", opt.wasted_requests);
      // Not pinned: with the server on one CPU, its watcher thread would wait for the scheduler
      // to preempt the handler burning that CPU (milliseconds), and the figure would measure
      // that instead of what the token checks save.
      res.wasted = run_wasted(*ctoken, opt, nullptr);
    }
  }

  print_tables(res, defs, opt);
  if (!opt.json_path.empty()) {
    write_json(opt.json_path, res, defs, opt);
    std::printf("\nJSON: %s\n", opt.json_path.c_str());
  }
  std::printf("\nTotal run time: %s\n", seconds_text(monotonic_ns() - started).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options opt = parse_options(argc, argv);

  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and the flag is checked
  ::sigaction(SIGINT, &stop, nullptr);
  ::sigaction(SIGTERM, &stop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  try {
    return run(opt);
  } catch (const bench_error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ctoken_disconnect_bench: error: %s\n", e.what());
    return g_interrupted != 0 ? 130 : 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "ctoken_disconnect_bench: error: %s\n", e.what());
    return 1;
  }
}
