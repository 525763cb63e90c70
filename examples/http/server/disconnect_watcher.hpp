// One epoll thread that watches the sockets of every in-flight request and cancels a request's
// "client gone" source when its client disconnects: FIN (EPOLLRDHUP) → errc::client_disconnected,
// RST (EPOLLERR with ECONNRESET) → errc::connection_reset. No thread per watch.
//
// It asks epoll for EPOLLRDHUP and never for EPOLLIN, so bytes of a pipelined next request (or
// an unread body) neither look like a disconnect nor wake the thread: only the peer closing its
// side, an error or a hang-up does. Watching starts when a handler starts and stops when it
// ends; the watcher never touches a socket after unwatch() returned, so the connection may
// close it (and the number may be reused) at once.
#ifndef CTOKEN_EXAMPLE_HTTP_DISCONNECT_WATCHER_HPP
#define CTOKEN_EXAMPLE_HTTP_DISCONNECT_WATCHER_HPP

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <ctoken/ctoken.hpp>
#include <ctoken/fd.hpp>

namespace http {

// What a FIN from the client means while its request runs. RFC 9112 allows a client to
// half-close after sending a complete request and still read the response, but browsers never
// do that, and both Kestrel (RequestAborted) and Go's net/http (r.Context()) treat the end of
// the client's stream as "client gone". `cancel` follows them and is the default; `respond`
// keeps running the handler, answers, then closes (still cancelling on RST).
enum class half_close_policy { cancel, respond };

class disconnect_watcher {
 public:
  // Starts the epoll thread. Throws std::system_error if epoll or the thread cannot be created.
  explicit disconnect_watcher(half_close_policy policy);
  // Stops and joins the thread. Outstanding watches are dropped without cancelling.
  ~disconnect_watcher();
  disconnect_watcher(const disconnect_watcher&) = delete;
  disconnect_watcher& operator=(const disconnect_watcher&) = delete;

  // Starts watching `fd` for the current request; on disconnect, `client_gone` is cancelled
  // (from the watcher's thread). Returns an id for unwatch(). Throws std::system_error if the
  // socket cannot be added (e.g. already closed). Thread-safe; one epoll_ctl under a mutex.
  std::uint64_t watch(int fd, const ctoken::CancellationTokenSource& client_gone);

  // Stops watching. After it returns the watcher no longer touches the socket; it may still be
  // finishing a Cancel() it had started, which is harmless (the handler is done). Returns the
  // CLOCK_MONOTONIC time (monotonic_ns()) the watcher read just before it cancelled
  // `client_gone`, or 0 if it did not. Every watch() must be paired with one unwatch().
  std::int64_t unwatch(std::uint64_t id) noexcept;

  // Number of sockets being watched (for tests and stats).
  std::size_t watching() const;

 private:
  struct entry {
    int fd;
    ctoken::CancellationTokenSource client_gone;
    std::int64_t cancelled_ns = 0;  // when the watcher cancelled client_gone; 0: it did not
    bool in_epoll = true;           // false once reported: the socket left the epoll set
  };

  void run() noexcept;
  void on_event(std::uint64_t id, std::uint32_t events) noexcept;

  half_close_policy policy_;
  int epoll_fd_ = -1;
  ctoken::CancellationTokenSource stop_;
  ctoken::CancellationFd stop_fd_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, entry> entries_;  // guarded by mutex_: until unwatch()
  std::size_t watching_ = 0;                          // guarded by mutex_: entries still in_epoll
  std::uint64_t next_id_ = 1;                         // guarded by mutex_; 0 marks the stop fd
  std::thread thread_;
};

}  // namespace http

#endif
