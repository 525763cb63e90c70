#include "disconnect_watcher.hpp"
#include "observer.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <system_error>

#include <ctoken/fd.hpp>

namespace http {

namespace {
constexpr std::uint64_t kStopId = 0;
constexpr int kMaxEvents = 64;
}  // namespace

disconnect_watcher::disconnect_watcher(half_close_policy policy) : policy_(policy), stop_fd_(stop_.Token()) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kStopId;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_.Get(), &ev) != 0) {
    const int err = errno;
    ::close(epoll_fd_);
    throw std::system_error(err, std::generic_category(), "epoll_ctl(stop fd)");
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    ::close(epoll_fd_);  // the destructor will not run
    throw;
  }
}

disconnect_watcher::~disconnect_watcher() {
  stop_.Cancel(ctoken::errc::shutdown);  // makes stop_fd_ readable: the loop ends
  thread_.join();
  ::close(epoll_fd_);
}

std::uint64_t disconnect_watcher::watch(int fd, const ctoken::CancellationTokenSource& client_gone) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::uint64_t id = next_id_++;
  // The entry first: if it cannot be stored (bad_alloc), epoll never learns of the socket.
  const auto stored = entries_.emplace(id, entry{fd, client_gone}).first;
  epoll_event ev{};
  // Level-triggered: a disconnect that happened before this call is reported at once.
  // EPOLLERR and EPOLLHUP are always reported; EPOLLIN is deliberately absent.
  ev.events = EPOLLRDHUP;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    entries_.erase(stored);
    throw std::system_error(err, std::generic_category(), "epoll_ctl(ADD)");
  }
  ++watching_;
  return id;
}

std::int64_t disconnect_watcher::unwatch(std::uint64_t id) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return 0;
  if (it->second.in_epoll) {
    // Cannot fail for a registered, still-open socket; nothing sensible to do if it did.
    (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
    --watching_;
  }
  const std::int64_t cancelled_ns = it->second.cancelled_ns;
  entries_.erase(it);
  return cancelled_ns;
}

std::size_t disconnect_watcher::watching() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return watching_;
}

void disconnect_watcher::run() noexcept {
  epoll_event events[kMaxEvents];
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EBADF/EINVAL: only possible if the object is being destroyed wrongly
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kStopId) return;
      on_event(events[i].data.u64, events[i].events);
    }
  }
}

void disconnect_watcher::on_event(std::uint64_t id, std::uint32_t events) noexcept {
  std::optional<ctoken::CancellationTokenSource> to_cancel;
  std::error_code reason;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second.in_epoll) return;  // unwatched or reported: stale
    const int fd = it->second.fd;
    if (events & (EPOLLERR | EPOLLHUP)) {
      // RST (or an error): SO_ERROR tells which. Read under the lock, while the fd is
      // guaranteed to be the connection's (unwatch has not returned).
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      reason = (err == ECONNRESET || err == EPIPE) ? make_error_code(ctoken::errc::connection_reset)
                                                   : make_error_code(ctoken::errc::client_disconnected);
    } else if (events & EPOLLRDHUP) {
      if (policy_ == half_close_policy::respond) {
        // Keep watching for RST only; without EPOLLRDHUP in the mask the level-triggered
        // half-close stops being reported, so this does not spin.
        epoll_event ev{};
        ev.events = 0;
        ev.data.u64 = id;
        (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
        return;
      }
      reason = make_error_code(ctoken::errc::client_disconnected);
    } else {
      return;  // nothing we asked for
    }
    // Stamped under the lock, before Cancel(): unwatch() returns it (under the same lock).
    it->second.cancelled_ns = monotonic_ns();
    to_cancel.emplace(it->second.client_gone);  // a copy: the entry stays until unwatch()
  }
  // Outside the lock: Cancel runs the request's callbacks, which are the server's own and do
  // not throw; if one did, losing it here is better than ending the watcher thread. Cancel
  // first, clean up after: the system call that removes the socket is not on the way.
  try {
    to_cancel->Cancel(reason);
  } catch (...) {
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.in_epoll) return;  // unwatched meanwhile: the socket is out
  // Level-triggered, so the socket must leave the set before this thread waits again. The
  // entry stays (with its stamp) until the request's unwatch().
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  it->second.in_epoll = false;
  --watching_;
}

}  // namespace http
