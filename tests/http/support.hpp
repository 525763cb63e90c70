// A small HTTP/1.1 client toolkit for the integration tests of the example servers: connect to
// 127.0.0.1 with a timeout, send raw bytes, read whole responses with a deadline, close with a
// FIN or an RST, and count the process's open descriptors. Linux only. No test framework here:
// the tests assert on what these return.
#ifndef CTOKEN_TESTS_HTTP_SUPPORT_HPP
#define CTOKEN_TESTS_HTTP_SUPPORT_HPP

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Sanitizer builds run 5-10x slower: the tests scale their loads (never their correctness
// bounds, which are generous anyway) with this.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CTOKEN_HTTP_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CTOKEN_HTTP_TEST_SANITIZED 1
#endif
#endif
#ifndef CTOKEN_HTTP_TEST_SANITIZED
#define CTOKEN_HTTP_TEST_SANITIZED 0
#endif

namespace http_test {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

constexpr bool sanitized = CTOKEN_HTTP_TEST_SANITIZED != 0;

// CLOCK_MONOTONIC in nanoseconds: the clock of the server's START/DONE/CANCELLED events.
inline std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// CPU time used by the whole process (every thread), in nanoseconds.
inline std::int64_t process_cpu_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Milliseconds left until `deadline`, for poll(): never negative.
inline int poll_timeout(steady::time_point deadline) noexcept {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left + 1, 1 << 30));  // +1: do not wake just before it
}

// Number of open descriptors of this process (entries of /proc/self/fd, minus the one the
// listing itself uses).
inline std::size_t open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  const int own = ::dirfd(dir);
  std::size_t count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    if (std::atoi(entry->d_name) == own) continue;
    ++count;
  }
  ::closedir(dir);
  return count;
}

// Checks pred() every `step` until it holds or `timeout` passes; returns pred().
template <class Pred>
bool wait_until(Pred pred, milliseconds timeout = milliseconds(10000), milliseconds step = milliseconds(5)) {
  const auto deadline = steady::now() + timeout;
  while (!pred()) {
    if (steady::now() >= deadline) return pred();
    ::usleep(static_cast<useconds_t>(std::chrono::duration_cast<std::chrono::microseconds>(step).count()));
  }
  return true;
}

// The median and the maximum of some samples (0 for none).
struct summary {
  std::int64_t p50 = 0;
  std::int64_t max = 0;
  std::size_t count = 0;
};
inline summary summarize(std::vector<std::int64_t> samples) {
  summary s;
  s.count = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.p50 = samples[samples.size() / 2];
  s.max = samples.back();
  return s;
}

// A complete GET request head for the target (e.g. "/slow?id=3&steps=10"), with extra header
// lines (each ending in CRLF) before the blank line.
inline std::string get(std::string_view target, std::string_view extra_headers = {}) {
  std::string r = "GET ";
  r += target;
  r += " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  r += extra_headers;
  r += "\r\n";
  return r;
}

inline char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

struct response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;                                          // de-chunked if it was chunked

  // The first header with that (lower-case) name, or nullptr.
  const std::string* header(std::string_view name) const {
    for (const auto& h : headers) {
      if (h.first == name) return &h.second;
    }
    return nullptr;
  }
  bool connection_close() const {
    const std::string* c = header("connection");
    return c != nullptr && *c == "close";
  }
};

// Parses one response at the start of `data`. Returns the bytes it takes, 0 if `data` holds
// only part of one, or -1 if it is not a response. A response without Content-Length or
// chunked framing is taken as head only (what this server sends for HEAD is framed anyway).
// `head_only`: the response to a HEAD request, which has no body whatever its headers say.
inline long parse_response(std::string_view data, bool head_only, response& out) {
  const std::size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    // Not even a status line yet, or a head still arriving; reject obvious garbage early.
    if (data.size() >= 5 && data.substr(0, 5) != "HTTP/") return -1;
    return 0;
  }
  std::string_view head = data.substr(0, end + 2);
  const std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/" || status_line[8] != ' ') return -1;
  out = response{};
  out.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  head.remove_prefix(line_end + 2);
  while (!head.empty()) {
    const std::size_t eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return -1;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = lower(c);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    out.headers.emplace_back(std::move(name), std::string(value));
  }
  std::size_t pos = end + 4;
  if (head_only) return static_cast<long>(pos);
  if (const std::string* te = out.header("transfer-encoding"); te != nullptr && *te == "chunked") {
    for (;;) {
      const std::size_t eol = data.find("\r\n", pos);
      if (eol == std::string_view::npos) return 0;
      const unsigned long size = std::strtoul(std::string(data.substr(pos, eol - pos)).c_str(), nullptr, 16);
      pos = eol + 2;
      if (data.size() < pos + size + 2) return 0;
      if (size == 0) return static_cast<long>(pos + 2);  // no trailers from this server
      out.body.append(data.substr(pos, size));
      pos += size + 2;
    }
  }
  if (const std::string* cl = out.header("content-length")) {
    const auto length = static_cast<std::size_t>(std::strtoull(cl->c_str(), nullptr, 10));
    if (data.size() < pos + length) return 0;
    out.body.assign(data.substr(pos, length));
    return static_cast<long>(pos + length);
  }
  return static_cast<long>(pos);
}

// One client connection. Blocking socket; every wait is bounded by a poll() timeout.
class client {
 public:
  client() = default;
  explicit client(int fd) noexcept : fd_(fd) {}
  client(client&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)), eof_(other.eof_), error_(other.error_) {}
  client& operator=(client&& other) noexcept {
    if (this != &other) {
      abandon();
      fd_ = std::exchange(other.fd_, -1);
      buffer_ = std::move(other.buffer_);
      eof_ = other.eof_;
      error_ = other.error_;
    }
    return *this;
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() { abandon(); }

  // Connects to 127.0.0.1:port within `timeout`. Check valid(); error() says why not.
  static client connect(std::uint16_t port, milliseconds timeout = milliseconds(5000)) {
    client c;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      c.error_ = errno;
      return c;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
      int err = ETIMEDOUT;
      if (rc == 1) {
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      c.error_ = errno;
      ::close(fd);
      return c;
    }
    (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.fd_ = fd;
    return c;
  }

  bool valid() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  bool eof() const noexcept { return eof_; }                        // the server closed its side (recv returned 0)
  int error() const noexcept { return error_; }                     // errno of the last failure (ECONNRESET, ...)
  const std::string& buffered() const noexcept { return buffer_; }  // received, not yet taken

  // Sends all of `data` within `timeout`.
  bool send(std::string_view data, milliseconds timeout = milliseconds(5000)) {
    const auto deadline = steady::now() + timeout;
    while (!data.empty()) {
      pollfd p{fd_, POLLOUT, 0};
      const int ready = ::poll(&p, 1, poll_timeout(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) {
        error_ = ready == 0 ? ETIMEDOUT : errno;
        return false;
      }
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        error_ = errno;
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Half-close: a FIN, and the socket can still read.
  bool shutdown_write() noexcept { return ::shutdown(fd_, SHUT_WR) == 0; }

  // Closes with a FIN (optionally shutdown(SHUT_WR) first). Returns CLOCK_MONOTONIC ns taken
  // just before. (With unread received data the kernel would send an RST instead: the tests
  // close this way only when nothing was received.)
  std::int64_t close_fin(bool shutdown_first = false) noexcept {
    const std::int64_t at = monotonic_ns();
    if (shutdown_first) (void)::shutdown(fd_, SHUT_WR);
    ::close(std::exchange(fd_, -1));
    return at;
  }

  // Closes with an RST (SO_LINGER {1, 0}). Returns CLOCK_MONOTONIC ns taken just before.
  std::int64_t close_rst() noexcept {
    const linger l{1, 0};
    (void)::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    const std::int64_t at = monotonic_ns();
    ::close(std::exchange(fd_, -1));
    return at;
  }

  // One recv() of whatever is there, waiting at most until `deadline`. False on timeout, end
  // of stream or error (see eof() and error()).
  bool receive(steady::time_point deadline) {
    if (eof_ || error_ != 0) return false;
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, poll_timeout(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) return false;
      if (ready < 0) {
        error_ = errno;
        return false;
      }
      return receive_now();
    }
  }

  // One non-blocking recv() (after poll() said readable). False on end of stream or error.
  bool receive_now() {
    char chunk[16 * 1024];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
      }
      if (n == 0) {
        eof_ = true;
        return false;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return true;
      error_ = errno;
      return false;
    }
  }

  // The next whole response, if one is buffered (and takes it out of the buffer).
  std::optional<response> take_response(bool head_only = false) {
    response r;
    const long used = parse_response(buffer_, head_only, r);
    if (used <= 0) return std::nullopt;
    buffer_.erase(0, static_cast<std::size_t>(used));
    return r;
  }

  // Reads until a whole response is in, within `timeout`; nullopt on timeout, end of stream or
  // error before that.
  std::optional<response> read_response(milliseconds timeout = milliseconds(10000), bool head_only = false) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      if (auto r = take_response(head_only)) return r;
      if (!receive(deadline)) return take_response(head_only);
    }
  }

  // Reads until the buffer contains `needle`, within `timeout`.
  bool read_until(std::string_view needle, milliseconds timeout = milliseconds(10000)) {
    const auto deadline = steady::now() + timeout;
    while (buffer_.find(needle) == std::string::npos) {
      if (!receive(deadline)) return buffer_.find(needle) != std::string::npos;
    }
    return true;
  }

  // Reads until the server closes (eof() or an error such as ECONNRESET), within `timeout`.
  // Returns whether the stream ended; what arrived stays in buffered().
  bool read_to_end(milliseconds timeout = milliseconds(10000)) {
    const auto deadline = steady::now() + timeout;
    while (receive(deadline)) {
    }
    return eof_ || error_ != 0;
  }

 private:
  void abandon() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
  int error_ = 0;
};

}  // namespace http_test

#endif
