// ctoken — CancellationFd: a file descriptor that becomes readable when a token is cancelled,
// so cancellation can sit in the same poll/epoll/select set as sockets. POSIX only.
#ifndef CTOKEN_FD_HPP
#define CTOKEN_FD_HPP

#include <ctoken/detail/config.hpp>
#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

namespace ctoken {

/// Owns a file descriptor that turns readable (POLLIN / EPOLLIN) once `token` is cancelled and
/// stays readable (it is never drained by the library). On Linux it is one eventfd; elsewhere
/// the read end of a pipe (two descriptors). Both are close-on-exec and non-blocking.
///
/// Nothing is created unless you construct one: a program that never asks has no descriptor.
/// The constructor registers a callback that writes to the descriptor (the callback runs on the
/// cancelling thread and makes one write() system call); if the token is already cancelled the
/// descriptor is readable before the constructor returns. For a token that can never be
/// cancelled the descriptor is created all the same (so it can always be added to a poll set)
/// and never becomes readable. The destructor unregisters (waiting for a callback running on
/// another thread, so the write can never hit a closed or reused descriptor) and closes.
/// Move-only. Thread-safety: as CancellationTokenRegistration.
class CancellationFd {
 public:
  /// Holds no descriptor: Get() is -1.
  CancellationFd() noexcept = default;

  /// Creates the descriptor and arms it for `token`. Throws std::system_error if the
  /// descriptor cannot be created (e.g. EMFILE), std::bad_alloc if registering fails.
  explicit CancellationFd(const CancellationToken& token) {
#if defined(__linux__)
    read_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (read_fd_ < 0) throw std::system_error(errno, std::generic_category(), "ctoken: eventfd");
    write_fd_ = read_fd_;
#else
    int fds[2];
    if (::pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "ctoken: pipe");
    for (int fd : fds) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    read_fd_ = fds[0];
    write_fd_ = fds[1];
#endif
    CTOKEN_TRY { registration_ = token.Register(signal{write_fd_}); }
    CTOKEN_CATCH_ALL {
      close_all();
#if defined(CTOKEN_HAS_EXCEPTIONS)
      throw;
#endif
    }
  }

  CancellationFd(CancellationFd&& other) noexcept
      : registration_(std::move(other.registration_)),
        read_fd_(std::exchange(other.read_fd_, -1)),
        write_fd_(std::exchange(other.write_fd_, -1)) {}
  CancellationFd& operator=(CancellationFd&& other) noexcept {
    if (this != &other) {
      reset();
      registration_ = std::move(other.registration_);
      read_fd_ = std::exchange(other.read_fd_, -1);
      write_fd_ = std::exchange(other.write_fd_, -1);
    }
    return *this;
  }
  CancellationFd(const CancellationFd&) = delete;
  CancellationFd& operator=(const CancellationFd&) = delete;

  ~CancellationFd() { reset(); }

  /// The descriptor to poll for readability; -1 for a default-constructed or moved-from object.
  /// Owned by this object: do not close it, do not read from it if other threads poll it too.
  int Get() const noexcept { return read_fd_; }

 private:
  struct signal {
    int fd;
    void operator()() const noexcept {
#if defined(__linux__)
      const std::uint64_t one = 1;
#else
      const unsigned char one = 1;
#endif
      // A failure can only be EAGAIN (the counter/pipe is already full, i.e. readable) or a
      // descriptor we no longer own, which the destructor's Dispose() rules out.
      ssize_t n;
      do {
        n = ::write(fd, &one, sizeof one);
      } while (n < 0 && errno == EINTR);
    }
  };

  void reset() noexcept {
    registration_ = CancellationTokenRegistration();  // disposes: waits for a running write()
    close_all();
  }

  void close_all() noexcept {
    if (write_fd_ >= 0 && write_fd_ != read_fd_) ::close(write_fd_);
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = -1;
    write_fd_ = -1;
  }

  CancellationTokenRegistration registration_;
  int read_fd_ = -1;
  int write_fd_ = -1;
};

}  // namespace ctoken

#endif
