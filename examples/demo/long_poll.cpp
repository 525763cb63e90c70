// A long-poll client that the user can stop at any moment — the C++ form of Go's
// `req.WithContext(ctx)` + `cancel()` (and of .NET's `HttpClient.GetAsync(url, token)`).
//
// The client asks the server for news again and again; each request waits on the server until
// there is some (here: the example server's /sleep?ms=N stands for "news after N ms"). Three
// things can stop it, and it says which one did:
//
//   - the user pressing Enter            → user.Cancel(ctoken::errc::canceled)
//   - SIGINT (Ctrl-C), taken by a thread  → user.Cancel(std::errc::interrupted)
//   - the deadline (--deadline-ms)        → a linked source's CancelAfter: errc::timed_out
//
// One token carries all three into http_client::Get, which stops the request in whatever phase
// it is (connect, send, waiting for the answer, reading it) and returns the token's reason. The
// server sees its client leave and cancels its own work (its CANCELLED event is printed).
//
//   http_long_poll [--server HOST:PORT] [--poll-ms N] [--deadline-ms N]
//                  [--style shutdown_socket|poll_fd] [--sigint-after-ms N] [--expect WHAT]
//
// Without --server it starts the example server in-process on 127.0.0.1 (an ephemeral port).
// --sigint-after-ms sends this process a SIGINT (for ctest: the real signal path, no terminal);
// --expect Enter|SIGINT|deadline exits 1 unless that is what stopped the poll (and, with the
// in-process server, unless the server saw its client leave).
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

#include "app.hpp"
#include "events.hpp"
#include "http_client.hpp"

namespace {

using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

long long number(const char* flag, const char* text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi) {
    std::fprintf(stderr, "http_long_poll: %s needs a number in [%lld, %lld], got '%s'\n", flag, lo, hi, text);
    std::exit(2);
  }
  return value;
}

// What stopped the poll, from the token's reason.
const char* stopped_by(const std::error_code& reason) {
  if (reason == ctoken::errc::canceled) return "Enter";
  if (reason == std::errc::interrupted) return "SIGINT";
  if (reason == ctoken::errc::timed_out) return "deadline";
  return "something else";
}

// The user's side: one thread polls stdin (Enter), a signalfd (SIGINT) and its own stop
// descriptor, and cancels `user` with a reason that says which. Cancel() runs on this thread,
// so in the shutdown_socket style it is this thread that shuts the request's socket down.
class user_input {
 public:
  user_input(ctoken::CancellationTokenSource user, const sigset_t& signals, milliseconds sigint_after)
      : user_(std::move(user)) {
    signal_fd_ = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd_ < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
    thread_ = std::thread([this, sigint_after] { run(sigint_after); });
  }
  ~user_input() {
    stop_.Cancel();
    thread_.join();
    ::close(signal_fd_);
  }
  user_input(const user_input&) = delete;
  user_input& operator=(const user_input&) = delete;

 private:
  void run(milliseconds sigint_after) {
    const ctoken::CancellationFd stopped(stop_.Token());
    int input = STDIN_FILENO;  // -1 once stdin is at its end (e.g. /dev/null under ctest)
    const auto self_signal_at = clock_type::now() + sigint_after;
    bool self_signal = sigint_after.count() > 0;
    for (;;) {
      int timeout = -1;
      if (self_signal) {
        const auto left = std::chrono::duration_cast<milliseconds>(self_signal_at - clock_type::now()).count();
        timeout = static_cast<int>(left > 0 ? left : 0);
      }
      pollfd fds[3] = {{stopped.Get(), POLLIN, 0}, {signal_fd_, POLLIN, 0}, {input, POLLIN, 0}};
      const int n = ::poll(fds, 3, timeout);  // a negative fd is ignored by poll
      if (n < 0 && errno != EINTR) return;
      if (fds[0].revents & POLLIN) return;
      if (n == 0 && self_signal) {
        self_signal = false;
        std::printf("(sending myself SIGINT, as Ctrl-C would)\n");
        std::fflush(stdout);
        ::kill(::getpid(), SIGINT);  // blocked in every thread: it arrives through the signalfd
        continue;
      }
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info{};
        if (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
          user_.Cancel(std::make_error_code(std::errc::interrupted));
        }
      }
      if (fds[2].revents & (POLLIN | POLLHUP)) {
        char c[64];
        const ssize_t got = ::read(input, c, sizeof c);
        if (got <= 0) {
          input = -1;  // end of input: nobody will press Enter
        } else if (std::memchr(c, '\n', static_cast<std::size_t>(got)) != nullptr) {
          user_.Cancel(ctoken::errc::canceled);
        }
      }
    }
  }

  ctoken::CancellationTokenSource user_;
  ctoken::CancellationTokenSource stop_;
  int signal_fd_ = -1;
  std::thread thread_;
};

// The in-process server's events, printed, and whether it saw its client leave.
struct server_events {
  std::mutex mutex;
  std::condition_variable changed;
  int cancelled = 0;
  std::string last_cancel;

  demo::output::sink sink() {
    return [this](const std::string& line) {
      std::printf("  [server] %s\n", line.c_str());
      std::fflush(stdout);
      if (line.rfind("CANCELLED ", 0) == 0) {
        std::lock_guard<std::mutex> lock(mutex);
        ++cancelled;
        last_cancel = line;
        changed.notify_all();
      }
    };
  }
  bool wait_cancelled(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, timeout, [this] { return cancelled > 0; });
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = -1;  // -1: start the server in-process
  milliseconds poll_time(30000);
  milliseconds deadline(0);
  milliseconds sigint_after(0);
  std::string expect;
  http_client::options opts;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "http_long_poll: %s needs a value\n", flag.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--server") {
      const std::string address = value();
      const std::size_t colon = address.rfind(':');
      if (colon == std::string::npos || colon == 0) {
        std::fputs("http_long_poll: --server is HOST:PORT (a numeric address)\n", stderr);
        return 2;
      }
      host = address.substr(0, colon);
      port = static_cast<int>(number("--server port", address.c_str() + colon + 1, 1, 65535));
    } else if (flag == "--poll-ms") {
      poll_time = milliseconds(number("--poll-ms", value(), 0, 3600000));
    } else if (flag == "--deadline-ms") {
      deadline = milliseconds(number("--deadline-ms", value(), 0, 86400000));
    } else if (flag == "--sigint-after-ms") {
      sigint_after = milliseconds(number("--sigint-after-ms", value(), 1, 86400000));
    } else if (flag == "--style") {
      const std::string style = value();
      if (style == "shutdown_socket") {
        opts.style = http_client::cancel_style::shutdown_socket;
      } else if (style == "poll_fd") {
        opts.style = http_client::cancel_style::poll_fd;
      } else {
        std::fputs("http_long_poll: --style is shutdown_socket or poll_fd\n", stderr);
        return 2;
      }
    } else if (flag == "--expect") {
      expect = value();
    } else {
      std::fprintf(stderr,
                   "usage: http_long_poll [--server HOST:PORT] [--poll-ms N] [--deadline-ms N]\n"
                   "                      [--style shutdown_socket|poll_fd] [--sigint-after-ms N] [--expect WHAT]\n");
      return flag == "--help" || flag == "-h" ? 0 : 2;
    }
  }

  // SIGINT is taken by the input thread's signalfd: block it before any thread starts (the
  // server's, the input thread, ctoken's timer thread), so every thread inherits the mask.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) {
    std::fprintf(stderr, "http_long_poll: pthread_sigmask: %s\n", std::strerror(rc));
    return 1;
  }

  server_events seen;
  demo::output out(seen.sink(), demo::output::sink());
  std::unique_ptr<demo::server> server;
  if (port < 0) {
    http::server_config config;
    config.port = 0;
    config.request_timeout = poll_time + milliseconds(60000);
    server = std::make_unique<demo::server>(config, out);
    port = server->start();
  }
  const auto server_port = static_cast<std::uint16_t>(port);

  // The user's source (Enter, SIGINT), and the deadline as a linked source: cancelling either
  // cancels `poll_token`, and its Reason() says which came first.
  ctoken::CancellationTokenSource user;
  ctoken::CancellationTokenSource linked = ctoken::CancellationTokenSource::CreateLinkedTokenSource(user.Token());
  if (deadline.count() > 0) linked.CancelAfter(deadline);
  const ctoken::CancellationToken poll_token = linked.Token();
  std::atomic<std::int64_t> cancelled_ns{0};
  const ctoken::CancellationTokenRegistration mark =
      poll_token.Register([&cancelled_ns] { cancelled_ns.store(http::monotonic_ns(), std::memory_order_relaxed); });

  // Each request may take the server's hold time plus a margin: the client's own timeout, a
  // third limit, reported as timed_out (not as a cancellation).
  opts.timeout = poll_time + milliseconds(10000);
  const user_input input(user, signals, sigint_after);
  std::printf("long-polling http://%s:%u/sleep?ms=%lld (style %s%s%s); press Enter or Ctrl-C to stop\n", host.c_str(),
              server_port, static_cast<long long>(poll_time.count()), http_client::to_string(opts.style),
              deadline.count() > 0 ? ", deadline " : "",
              deadline.count() > 0 ? (std::to_string(deadline.count()) + " ms").c_str() : "");
  std::fflush(stdout);

  const auto started = clock_type::now();
  const std::string target = "/sleep?ms=" + std::to_string(poll_time.count());
  int messages = 0;
  http_client::result r;
  for (;;) {
    r = http_client::Get(host, server_port, target, poll_token, opts);
    if (!r.ok()) break;
    ++messages;
    std::printf("message %d: %d %s", messages, r.status, r.body.c_str());
    std::fflush(stdout);
  }
  const std::int64_t returned_ns = http::monotonic_ns();
  const double elapsed = std::chrono::duration<double, std::milli>(clock_type::now() - started).count();

  int exit_code = 0;
  if (r.cancelled()) {
    const char* who = stopped_by(r.error);
    const std::int64_t at = cancelled_ns.load(std::memory_order_relaxed);
    std::printf(
        "stopped by: %s (reason \"%s\") during %s, after %d message(s) and %.0f ms; Get returned %.3f ms after "
        "the cancellation\n",
        who, r.error.message().c_str(), http_client::to_string(r.where), messages, elapsed,
        at > 0 ? static_cast<double>(returned_ns - at) / 1e6 : 0.0);
    if (!expect.empty() && expect != who) exit_code = 1;
    if (server && r.where != http_client::phase::connect) {
      // The server noticed the client leave and stopped its side (reason client_disconnected).
      if (!seen.wait_cancelled(milliseconds(5000))) {
        std::printf("the server did not report its client leaving\n");
        if (!expect.empty()) exit_code = 1;
      }
    }
  } else {
    std::printf("stopped by: %s: %s during %s, after %d message(s)\n", http_client::to_string(r.kind),
                r.error.message().c_str(), http_client::to_string(r.where), messages);
    exit_code = 1;
  }
  std::fflush(stdout);
  if (server) {
    server->request_shutdown();
    server->wait();
  }
  return exit_code;
}
