// A poll() loop that waits on a socket and on cancellation at the same time.
//
// Blocking I/O does not look at tokens. CancellationFd turns the token into a descriptor that
// becomes readable on Cancel, so it joins the same poll set as the socket: the loop wakes for
// data or for cancellation, whichever comes first, without timeouts or polling.
#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

namespace {

// Reads messages from `sock` until the peer closes it or `token` is cancelled.
// Returns the number of bytes read.
long read_until_cancelled(int sock, const ctoken::CancellationToken& token) {
  ctoken::CancellationFd cancelled(token);  // one eventfd, closed when this returns
  long total = 0;
  for (;;) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {cancelled.Get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::perror("poll");
      return total;
    }
    if (fds[1].revents & POLLIN) {
      std::printf("reader: cancelled (%s)\n", token.Reason().message().c_str());
      return total;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[256];
      const ssize_t n = ::recv(sock, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        std::perror("recv");
        return total;
      }
      if (n == 0) {
        std::puts("reader: peer closed");
        return total;
      }
      total += n;
      std::printf("reader: %zd bytes\n", n);
    }
  }
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) {
    std::perror("socketpair");
    return 1;
  }
  ctoken::CancellationTokenSource stop;
  std::thread writer([&] {
    const char msg[] = "hello";
    for (int i = 0; i < 3; ++i) {
      if (::send(pair[1], msg, sizeof msg - 1, 0) < 0) std::perror("send");
      std::this_thread::sleep_for(20ms);
    }
    stop.Cancel(ctoken::errc::shutdown);  // the peer stays open: only the token ends the loop
  });
  const long total = read_until_cancelled(pair[0], stop.Token());
  writer.join();
  ::close(pair[0]);
  ::close(pair[1]);
  std::printf("read %ld bytes in all\n", total);
  return 0;
}
