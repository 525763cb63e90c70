// ctoken — a child process stopped by a CancellationToken, like Go's exec.CommandContext with
// Cmd.Cancel and Cmd.WaitDelay: on cancellation the child gets SIGTERM, then SIGKILL once a
// grace period you choose has passed; it is always reaped. Linux (pidfd) with a POSIX fallback.
// Opt-in: <ctoken/ctoken.hpp> never includes it.
//
//   ctoken::process::Exit exit;
//   std::error_code ec = ctoken::process::Run({"convert", in, out}, token, std::chrono::seconds(2), exit);
//   if (ec) ...                        // could not start (ENOENT ...) or could not wait
//   else if (exit.Canceled) ...        // stopped by the token: exit.Reason says why
//   else if (exit.Exited) ...          // exit.Code; otherwise exit.Signal ended it
#ifndef CTOKEN_PROCESS_HPP
#define CTOKEN_PROCESS_HPP

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#include <sys/syscall.h>
#endif

#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

extern "C" char** environ;  // POSIX: the calling process's environment, passed to the child

namespace ctoken {
namespace process {

/// How a child is started. The defaults: it inherits the standard descriptors 0, 1 and 2 and
/// nothing else, runs in the caller's process group, with no signal blocked and every signal
/// at its default disposition.
struct Options {
  int Stdin = -1;   ///< a descriptor the child gets as its standard input; -1: the caller's own.
  int Stdout = -1;  ///< a descriptor the child gets as its standard output; -1: the caller's own.
  int Stderr = -1;  ///< a descriptor the child gets as its standard error; -1: the caller's own.
  /// The child starts its own process group and the signals of a cancellation go to the whole
  /// group: a shell script's own children are stopped with it. Otherwise only the child itself
  /// is signalled, and what it started lives on unless it passes the signal on.
  bool NewProcessGroup = false;
};

/// How a child ended, and whether the token had a hand in it.
struct Exit {
  bool Exited = false;     ///< true: it exited by itself with Code; false: Signal ended it.
  int Code = 0;            ///< the exit status (0-255) when Exited.
  int Signal = 0;          ///< the signal that ended it when !Exited (SIGTERM, SIGKILL, ...).
  bool Canceled = false;   ///< the token was cancelled before the child ended: it was signalled.
  bool Killed = false;     ///< it was still there when the grace period ran out: it got SIGKILL.
  std::error_code Reason;  ///< the token's Reason() when Canceled; empty otherwise.
};

namespace detail {

// Test hook: when true, Start() does not open a pidfd, so Wait() uses the portable fallback.
inline bool& pidfd_disabled() noexcept {
  static bool disabled = false;
  return disabled;
}

inline int pidfd_open(pid_t pid) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_open)
  // Linux 5.3+. The descriptor is close-on-exec by definition; ENOSYS on older kernels.
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

inline int send_signal(int pidfd, pid_t pid, bool group, int sig) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
  // Through the pidfd: never reaches another process even if the pid were reused.
  if (pidfd >= 0 && !group) return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
#else
  (void)pidfd;
#endif
  // The child is not reaped yet, so its pid (and its group id) cannot have been reused.
  return ::kill(group ? -pid : pid, sig);
}

// The token's callback: makes `fd` (an eventfd, or a pipe's write end) readable.
struct signal_fd {
  int fd;
  void operator()() const noexcept {
    const std::uint64_t one = 1;
    ssize_t n;
    do {
      n = ::write(fd, &one, sizeof one);  // EAGAIN: already readable, which is all we need
    } while (n < 0 && errno == EINTR);
  }
};

inline int poll_retry(pollfd* fds, nfds_t n, int timeout_ms) noexcept {
  int r;
  do {
    r = ::poll(fds, n, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r;
}

inline int ms_until(std::chrono::steady_clock::time_point t) noexcept {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - std::chrono::steady_clock::now()).count();
  if (left <= 0) return 0;
  return left > 60000 ? 60000 : static_cast<int>(left);
}

}  // namespace detail

/// A started child process that this object owns until it is reaped.
///
/// Move-only. Thread-safety: one thread at a time may use a Child (Wait, Id, destruction); the
/// token given to Wait may be cancelled from any thread. The calling process must leave the
/// child to this object: no waitpid(-1, ...) elsewhere and SIGCHLD not set to SIG_IGN (either
/// would reap it behind our back; Wait then reports ECHILD).
class Child {
 public:
  /// Holds no process: Id() is -1, Wait() reports ECHILD.
  Child() noexcept = default;
  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)), pidfd_(std::exchange(other.pidfd_, -1)), group_(other.group_) {}
  Child& operator=(Child&& other) noexcept {
    if (this != &other) {
      reset();
      pid_ = std::exchange(other.pid_, -1);
      pidfd_ = std::exchange(other.pidfd_, -1);
      group_ = other.group_;
    }
    return *this;
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// A child that was never waited for is killed (SIGKILL) and reaped here: this may block for
  /// as long as the kernel takes to end it (normally microseconds). Never leaves a zombie.
  ~Child() { reset(); }

  /// Starts `argv[0]` (searched on PATH, like execvp) with the arguments `argv`, in the
  /// caller's environment, with posix_spawn. The child gets descriptors 0, 1 and 2 (see
  /// Options) and no other: every other descriptor is closed in the child, close-on-exec or
  /// not (glibc 2.34 and newer; elsewhere descriptors without FD_CLOEXEC are inherited). On
  /// failure `ec` is set (ENOENT, EACCES, ENOEXEC, EAGAIN ...) and an empty Child is returned:
  /// glibc reports a failed exec as posix_spawn's error (other C libraries may instead report
  /// a child that exited with 127). Returns once the exec has happened. May throw
  /// std::bad_alloc. Thread-safe (posix_spawn does not copy the caller's address space).
  static Child Start(const std::vector<std::string>& argv, std::error_code& ec, const Options& options = Options()) {
    ec.clear();
    if (argv.empty()) {
      ec = std::make_error_code(std::errc::invalid_argument);
      return Child();
    }
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = ::posix_spawn_file_actions_init(&actions);
    if (rc != 0) {
      ec.assign(rc, std::generic_category());
      return Child();
    }
    rc = ::posix_spawnattr_init(&attr);
    if (rc != 0) {
      ::posix_spawn_file_actions_destroy(&actions);
      ec.assign(rc, std::generic_category());
      return Child();
    }
    const int stdio[3] = {options.Stdin, options.Stdout, options.Stderr};
    for (int target = 0; target < 3 && rc == 0; ++target) {
      if (stdio[target] >= 0) rc = ::posix_spawn_file_actions_adddup2(&actions, stdio[target], target);
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (options.NewProcessGroup) flags = static_cast<short>(flags | POSIX_SPAWN_SETPGROUP);
    if (rc == 0) rc = ::posix_spawnattr_setflags(&attr, flags);
    if (rc == 0) rc = ::posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0) rc = ::posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0 && options.NewProcessGroup) rc = ::posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = -1;
    if (rc == 0) rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    ::posix_spawnattr_destroy(&attr);
    ::posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ec.assign(rc, std::generic_category());
      return Child();
    }
    Child child;
    child.pid_ = pid;
    child.group_ = options.NewProcessGroup;
    if (!detail::pidfd_disabled()) child.pidfd_ = detail::pidfd_open(pid);  // -1: the fallback
    return child;
  }

  /// The child's process id; -1 once it has been reaped (or for an empty Child).
  pid_t Id() const noexcept { return pid_; }

  /// Waits until the child ends and reaps it, filling `exit`. If `token` is cancelled first
  /// (or already is), the child (its group with Options::NewProcessGroup) gets SIGTERM at
  /// once; if it is still there `grace` later it gets SIGKILL; Wait returns once it is gone
  /// and reaped, with exit.Canceled set and exit.Reason the token's reason. A `grace` of zero
  /// or less sends SIGKILL straight away. A child that ends by itself before the cancellation
  /// is seen keeps its own status and exit.Canceled stays false.
  ///
  /// Returns an empty error_code when the child was reaped; otherwise (ECHILD: no child, or
  /// reaped by someone else; EMFILE: no descriptor to wait with) `exit` is untouched and a
  /// child that is still there is left to the destructor.
  ///
  /// How: one poll() on a pidfd (Linux 5.3+) and an eventfd that a callback on the token
  /// makes readable, so SIGTERM follows Cancel() within microseconds and the exit is seen as
  /// soon as it happens. Without pidfd (older kernels) the exit is polled with waitid(WNOHANG)
  /// at least every 10 ms; cancellation is still seen at once. Costs one eventfd and one
  /// in-place registration for the duration of the call. Blocks; noexcept.
  std::error_code Wait(const CancellationToken& token, std::chrono::nanoseconds grace, Exit& exit) noexcept {
    if (pid_ <= 0) return std::make_error_code(std::errc::no_child_process);
#if defined(__linux__)
    const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake < 0) return std::error_code(errno, std::generic_category());
    const int wake_write = wake;
#else
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) return std::error_code(errno, std::generic_category());
    for (int fd : pipe_fds) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    const int wake = pipe_fds[0];
    const int wake_write = pipe_fds[1];
#endif
    Exit result;
    std::error_code ec;
    {
      // Its destructor waits for a write running on the cancelling thread, so the descriptor
      // is closed only after it can no longer be written to.
      CancellationCallback<detail::signal_fd> on_cancel(token, detail::signal_fd{wake_write});
      ec = wait_until_gone(wake, grace, result);
      if (result.Canceled) result.Reason = token.Reason();
    }
    if (wake_write != wake) ::close(wake_write);
    ::close(wake);
    if (!ec) exit = result;
    return ec;
  }

 private:
  // Reaps the child if it has ended (block: waits until it has); `reaped` tells which.
  std::error_code reap(bool block, bool& reaped, Exit& out) noexcept {
    siginfo_t info{};
    int r;
    do {
      r = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | (block ? 0 : WNOHANG));
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      const int e = errno;
      if (e == ECHILD) forget();  // someone else reaped it: nothing left to kill or reap
      return std::error_code(e, std::generic_category());
    }
    if (info.si_pid == 0) {  // WNOHANG: still running
      reaped = false;
      return std::error_code();
    }
    reaped = true;
    out.Exited = info.si_code == CLD_EXITED;
    out.Code = out.Exited ? info.si_status : 0;
    out.Signal = out.Exited ? 0 : info.si_status;
    forget();
    return std::error_code();
  }

  void forget() noexcept {
    if (pidfd_ >= 0) ::close(pidfd_);
    pidfd_ = -1;
    pid_ = -1;
  }

  // Waits for the child's exit (pidfd readable, or the fallback's periodic waitid) or for
  // `wake` (cancellation; -1: not watched) or `until`, whichever first. `woken`: `wake` fired;
  // `reaped`: the child ended and its status is in `out`.
  std::error_code wait_step(int wake, bool timed, std::chrono::steady_clock::time_point until, bool& woken,
                            bool& reaped, Exit& out) noexcept {
    woken = false;
    reaped = false;
    int backoff_ms = 1;
    for (;;) {
      if (pidfd_ < 0) {  // fallback: look before sleeping
        const std::error_code ec = reap(false, reaped, out);
        if (ec || reaped) return ec;
      }
      int timeout = timed ? detail::ms_until(until) : -1;
      if (pidfd_ < 0 && (timeout < 0 || timeout > backoff_ms)) timeout = backoff_ms;
      pollfd fds[2] = {{wake, POLLIN, 0}, {pidfd_, POLLIN, 0}};
      const nfds_t n = pidfd_ >= 0 ? 2 : 1;
      if (wake < 0) fds[0].fd = -1;  // negative descriptors are ignored by poll
      if (detail::poll_retry(fds, n, timeout) < 0) return std::error_code(errno, std::generic_category());
      // POLLIN: the child ended. Anything else reported on a pidfd (POLLERR, POLLNVAL) would
      // make every further poll return at once: a blocking waitid is then the way to wait.
      if (pidfd_ >= 0 && fds[1].revents != 0) return reap(true, reaped, out);
      if (wake >= 0 && (fds[0].revents & POLLIN) != 0) {
        woken = true;
        return std::error_code();
      }
      if (timed && std::chrono::steady_clock::now() >= until) {
        if (pidfd_ < 0) return reap(false, reaped, out);
        return std::error_code();
      }
      backoff_ms = backoff_ms * 2 > 10 ? 10 : backoff_ms * 2;
    }
  }

  std::error_code wait_until_gone(int wake, std::chrono::nanoseconds grace, Exit& out) noexcept {
    bool woken = false;
    bool reaped = false;
    // 1. Until the child ends or the token is cancelled.
    std::error_code ec = wait_step(wake, false, {}, woken, reaped, out);
    if (ec || reaped) return ec;
    out.Canceled = true;
    // 2. SIGTERM, then up to `grace` for the child to go.
    if (grace > std::chrono::nanoseconds::zero()) {
      (void)detail::send_signal(pidfd_, pid_, group_, SIGTERM);
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(grace);
      ec = wait_step(-1, true, until, woken, reaped, out);
      if (ec || reaped) return ec;
    }
    // 3. SIGKILL, then until it is gone (SIGKILL cannot be caught or ignored).
    out.Killed = true;
    (void)detail::send_signal(pidfd_, pid_, group_, SIGKILL);
    return reap(true, reaped, out);
  }

  void reset() noexcept {
    if (pid_ > 0) {
      (void)detail::send_signal(pidfd_, pid_, group_, SIGKILL);
      Exit ignored;
      bool reaped = false;
      (void)reap(true, reaped, ignored);
    }
    forget();
  }

  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool group_ = false;
};

/// Start(argv, ec, options) then Wait(token, grace, exit): runs a program to its end, or stops
/// it when `token` is cancelled. A token cancelled before the call starts nothing: the result
/// is std::errc::operation_canceled, with exit.Canceled and exit.Reason set. Otherwise the
/// result is Start's error, or Wait's. May throw std::bad_alloc; blocks.
inline std::error_code Run(const std::vector<std::string>& argv, const CancellationToken& token,
                           std::chrono::nanoseconds grace, Exit& exit, const Options& options = Options()) {
  if (token.IsCancellationRequested()) {
    exit = Exit();
    exit.Canceled = true;
    exit.Reason = token.Reason();
    return std::make_error_code(std::errc::operation_canceled);
  }
  std::error_code ec;
  Child child = Child::Start(argv, ec, options);
  if (ec) return ec;
  return child.Wait(token, grace, exit);
}

}  // namespace process
}  // namespace ctoken

#endif
