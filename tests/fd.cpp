// CancellationFd: a descriptor that turns readable on cancellation, for poll/epoll sets.
#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationFd;
using ctoken::CancellationTokenSource;
using namespace std::chrono_literals;

namespace {
bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  const int n = ::poll(&p, 1, timeout_ms);
  return n == 1 && (p.revents & POLLIN) != 0;
}
int open_fd_count() {
  int count = 0;
  for (int fd = 0; fd < 4096; ++fd) count += ::fcntl(fd, F_GETFD) != -1 ? 1 : 0;
  return count;
}
}  // namespace

TEST_CASE("the descriptor is not readable until Cancel, then stays readable") {
  CancellationTokenSource source;
  CancellationFd fd(source.Token());
  REQUIRE(fd.Get() >= 0);
  CHECK_FALSE(readable(fd.Get(), 0));
  source.Cancel();
  CHECK(readable(fd.Get(), 0));
  CHECK(readable(fd.Get(), 0));
}

TEST_CASE("already cancelled: readable before the constructor returns") {
  CancellationTokenSource source;
  source.Cancel();
  CancellationFd fd(source.Token());
  CHECK(readable(fd.Get(), 0));
}

TEST_CASE("a token that can never be cancelled: a valid descriptor that never turns readable") {
  CancellationFd fd(ctoken::CancellationToken::None());
  CHECK(fd.Get() >= 0);
  CHECK_FALSE(readable(fd.Get(), 10));
  CancellationFd empty;
  CHECK(empty.Get() == -1);
}

TEST_CASE("poll on a socket and the token at once: Cancel from another thread wakes the poll") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  CancellationTokenSource source;
  CancellationFd cancel_fd(source.Token());
  std::thread canceller([&] {
    std::this_thread::sleep_for(20ms);
    source.Cancel(ctoken::errc::shutdown);
  });
  pollfd fds[2] = {{pair[0], POLLIN, 0}, {cancel_fd.Get(), POLLIN, 0}};
  const int n = ::poll(fds, 2, 10000);
  CHECK(n == 1);
  CHECK(fds[0].revents == 0);
  CHECK((fds[1].revents & POLLIN) != 0);
  canceller.join();
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST_CASE("descriptors are closed: no leak over many objects, moves included") {
  const int before = open_fd_count();
  for (int i = 0; i < 200; ++i) {
    CancellationTokenSource source;
    CancellationFd a(source.Token());
    CancellationFd b = std::move(a);
    CHECK(a.Get() == -1);  // NOLINT(bugprone-use-after-move): documented state
    CancellationFd c(source.Token());
    c = std::move(b);
    if (i % 2 == 0) source.Cancel();
  }
  CHECK(open_fd_count() == before);
}

#if defined(__linux__)
TEST_CASE("destroying the descriptor while another thread cancels never writes to a closed fd") {
  // The callback's write() is held: the eventfd behind fd.Get() is replaced (dup2) by the write
  // end of a full, blocking pipe, so Cancel blocks inside that write until the test drains the
  // pipe. The destructor, started meanwhile on a third thread, must not return (and so must not
  // have closed the descriptor) before the write has finished. A destructor that closes first
  // or does not wait for the running callback returns while the write is still blocked.
  int conclusive = 0;
  for (int attempt = 0; attempt < 20 && conclusive < 3; ++attempt) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    REQUIRE(::fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK) == 0);
    const char filler[4096] = {};
    std::size_t filled = 0;
    for (;;) {
      const ssize_t n = ::write(pipe_fds[1], filler, sizeof filler);
      if (n <= 0) break;
      filled += static_cast<std::size_t>(n);
    }
    for (;;) {  // then single bytes, until not even one more fits
      if (::write(pipe_fds[1], filler, 1) != 1) break;
      ++filled;
    }
    REQUIRE(::fcntl(pipe_fds[1], F_SETFL, 0) == 0);  // blocking from now on: the signal's write waits

    CancellationTokenSource source;
    auto fd = std::make_unique<CancellationFd>(source.Token());
    const int number = fd->Get();
    REQUIRE(::dup2(pipe_fds[1], number) == number);  // the eventfd is closed, the pipe takes its number
    std::atomic<bool> loop_started{false};
    // Newest first: this runs just before the descriptor's callback, on the cancelling thread.
    auto marker = source.Token().Register([&] { loop_started = true; });

    std::thread canceller([&] { source.Cancel(); });
    REQUIRE(ctoken_test::eventually([&] { return loop_started.load(); }));
    std::this_thread::sleep_for(50ms);  // the canceller is now in the blocked write (or about to be)
    std::atomic<bool> destroyed{false};
    std::thread destroyer([&] {
      fd.reset();
      destroyed = true;
    });
    std::this_thread::sleep_for(200ms);  // generous: a destructor that does not wait returns in microseconds
    const bool destroyed_while_blocked = destroyed.load();
    const bool open_while_blocked = ::fcntl(number, F_GETFD) != -1;

    // Drain what we put in; then the signal's 8 bytes arrive if its write was under way.
    std::vector<char> sink(filled + 64);
    std::size_t drained = 0;
    while (drained < filled) {
      const ssize_t n = ::read(pipe_fds[0], sink.data(), filled - drained);
      REQUIRE(n > 0);
      drained += static_cast<std::size_t>(n);
    }
    canceller.join();
    destroyer.join();
    REQUIRE(::fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK) == 0);
    const ssize_t signal_bytes = ::read(pipe_fds[0], sink.data(), sink.size());
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    if (signal_bytes <= 0) continue;  // the callback had not started: Dispose removed it (inconclusive)
    ++conclusive;
    CHECK(signal_bytes == 8);
    CHECK_FALSE(destroyed_while_blocked);  // the destructor waited for the running write
    CHECK(open_while_blocked);             // and had not closed the descriptor under it
  }
  CHECK(conclusive > 0);
}
#else
TEST_CASE("destroying the descriptor while another thread cancels never writes to a closed fd") {
  std::printf("SKIPPED: the check holds the callback's write on a full pipe dup2'ed over the eventfd (Linux)\n");
}
#endif
