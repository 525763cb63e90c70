// CancellationFd: a descriptor that turns readable on cancellation, for poll/epoll sets.
#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <thread>

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

TEST_CASE("destroying the descriptor while another thread cancels never writes to a closed fd") {
  for (int i = 0; i < 200; ++i) {
    CancellationTokenSource source;
    auto fd = std::make_unique<CancellationFd>(source.Token());
    std::thread canceller([&] { source.Cancel(); });
    fd.reset();
    canceller.join();
  }
}
