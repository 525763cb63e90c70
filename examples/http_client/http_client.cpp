#include "http_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include <ctoken/fd.hpp>

namespace http_client {

namespace {

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "http_client"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::bad_address:
        return "not a numeric IP address";
      case errc::bad_response:
        return "malformed HTTP response";
      case errc::head_too_large:
        return "response head too large";
      case errc::body_too_large:
        return "response body too large";
      case errc::closed_early:
        return "connection closed before the response was complete";
    }
    return "unknown http_client error";
  }
};

std::error_code sys(int e) { return {e, std::system_category()}; }

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Visible ASCII only: a target or method with a space, CR or LF could inject a header or a
// second request.
bool is_visible(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool numeric_address(const std::string& host, std::uint16_t port, sockaddr_storage& addr, socklen_t& len) {
  addr = sockaddr_storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  std::string bare = host;  // "[::1]" is accepted as well as "::1"
  if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (::inet_pton(AF_INET6, bare.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// Closes the socket when the request is over — after the cancellation registration (or the
// CancellationFd) declared after it is gone.
struct socket_guard {
  int fd;
  ~socket_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// The socket calls of one request, in one of the two styles. Every call returns as soon as the
// token `stop` is cancelled (with ECANCELED, or with the error the shut-down socket reports).
class transport {
 public:
  // cancel_fd < 0: the shutdown_socket style (a registration shuts `fd` down on cancellation);
  // otherwise the poll_fd style, with the descriptor of a CancellationFd for `stop`.
  transport(int fd, int cancel_fd, const ctoken::CancellationToken& stop) noexcept
      : fd_(fd), cancel_fd_(cancel_fd), stop_(stop) {}

  // The socket is non-blocking here (both styles). Returns 0 once connected, else an errno.
  int connect(const sockaddr* addr, socklen_t len) {
    if (::connect(fd_, addr, len) != 0) {
      if (errno != EINPROGRESS) return errno;
      // Both styles wait in poll(): in the shutdown style a shutdown() during the handshake
      // aborts it (the socket reports POLLHUP|POLLERR, SO_ERROR ECONNRESET), and a shutdown()
      // that came before connect() leaves the socket hung up, so this poll returns at once.
      if (const int waited = wait(POLLOUT); waited != 0) return waited;
      int err = 0;
      socklen_t err_len = sizeof err;
      if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) return errno;
      if (err != 0) return err;
    }
    if (cancel_fd_ < 0) {
      // The shutdown style uses plain blocking calls from here on: shutdown() wakes them.
      const int flags = ::fcntl(fd_, F_GETFL);
      if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK) != 0) return errno;
    }
    const int one = 1;
    (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
  }

  // > 0: bytes sent; < 0: -errno (-ECANCELED: the token).
  long send_some(const char* data, std::size_t size) {
    for (;;) {
      if (cancel_fd_ >= 0) {
        if (const int waited = wait(POLLOUT); waited != 0) return -waited;
      }
      // Shutdown style: a blocking send, which a shutdown() ends with EPIPE.
      const ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL | (cancel_fd_ >= 0 ? MSG_DONTWAIT : 0));
      if (n >= 0) return static_cast<long>(n);
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return -errno;
    }
  }

  // > 0: bytes received; 0: end of stream; < 0: -errno (-ECANCELED: the token).
  long recv_some(char* data, std::size_t size) {
    for (;;) {
      if (cancel_fd_ >= 0) {
        if (const int waited = wait(POLLIN); waited != 0) return -waited;
      }
      // Shutdown style: a blocking recv, which a shutdown() ends with 0 (end of stream).
      const ssize_t n = ::recv(fd_, data, size, cancel_fd_ >= 0 ? MSG_DONTWAIT : 0);
      if (n >= 0) return static_cast<long>(n);
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return -errno;
    }
  }

 private:
  // Waits until the socket has one of `events` (or an error/hang-up) or the token is
  // cancelled. No timeout: the deadline is a cancellation too. 0, ECANCELED, or an errno.
  int wait(short events) {
    for (;;) {
      pollfd fds[2] = {{fd_, events, 0}, {cancel_fd_, POLLIN, 0}};
      const int n = ::poll(fds, static_cast<nfds_t>(cancel_fd_ >= 0 ? 2 : 1), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      // The token reads cancelled before its callbacks run (the one that writes the eventfd,
      // or the one that shuts the socket down), so this check sees every wake-up they cause.
      if (stop_.IsCancellationRequested()) return ECANCELED;
      if (fds[0].revents != 0) return 0;
    }
  }

  int fd_;
  int cancel_fd_;
  const ctoken::CancellationToken& stop_;
};

// Reads and frames one response.
class exchange {
 public:
  exchange(transport& t, const ctoken::CancellationToken& caller, const ctoken::CancellationToken& stop,
           const options& opts, result& r) noexcept
      : t_(t), caller_(caller), stop_(stop), opts_(opts), r_(r) {}

  void run(const sockaddr* addr, socklen_t len, const std::string& request, bool head_only) {
    // ---- connect --------------------------------------------------------------------------
    r_.where = phase::connect;
    if (stop_.IsCancellationRequested()) return stopped();
    if (const int err = t_.connect(addr, len); err != 0) return fail(sys(err));
    // ---- send -----------------------------------------------------------------------------
    r_.where = phase::send;
    std::string_view rest = request;
    while (!rest.empty()) {
      if (stop_.IsCancellationRequested()) return stopped();
      const long n = t_.send_some(rest.data(), rest.size());
      if (n < 0) return fail(sys(static_cast<int>(-n)));
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    // ---- the response head (skipping 1xx interim responses) -------------------------------
    r_.where = phase::head;
    do {
      if (!read_head()) return;
    } while (r_.status >= 100 && r_.status < 200 && r_.status != 101);
    // ---- the body ---------------------------------------------------------------------------
    r_.where = phase::body;
    if (head_only || r_.status == 204 || r_.status == 304 || r_.status == 101) return done();
    bool chunked = false;
    bool until_close = false;
    if (const std::string* te = r_.find("transfer-encoding")) {
      // RFC 9112 §6.3: chunked must be the final coding; otherwise the body runs to the close.
      const std::string_view codings = *te;
      const std::size_t comma = codings.rfind(',');
      chunked = iequals(trim(comma == std::string_view::npos ? codings : codings.substr(comma + 1)), "chunked");
      until_close = !chunked;
    }
    if (chunked) return read_chunked();
    if (until_close) return read_to_close();
    std::size_t length = 0;
    bool have_length = false;
    for (const header& h : r_.headers) {
      if (h.name != "content-length") continue;
      std::size_t value = 0;
      if (h.value.empty() || h.value.size() > 18 ||
          !std::all_of(h.value.begin(), h.value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return fail(errc::bad_response);
      }
      for (char c : h.value) value = value * 10 + static_cast<std::size_t>(c - '0');
      if (have_length && value != length) return fail(errc::bad_response);
      length = value;
      have_length = true;
    }
    if (!have_length) return read_to_close();
    if (length > opts_.max_body_bytes) return fail(errc::body_too_large);
    return read_exactly(length);
  }

 private:
  enum class more { data, eof, stop };

  // Reads what is there into in_. `stop` means r_ is filled in (cancelled, timed out, failed).
  more fill() {
    if (stop_.IsCancellationRequested()) {
      stopped();
      return more::stop;
    }
    char chunk[16 * 1024];
    const long n = t_.recv_some(chunk, sizeof chunk);
    if (n > 0) {
      in_.append(chunk, static_cast<std::size_t>(n));
      return more::data;
    }
    if (n < 0) {
      fail(sys(static_cast<int>(-n)));
      return more::stop;
    }
    // End of stream — or, in the shutdown style, our own shutdown(): the token tells them apart.
    if (stop_.IsCancellationRequested()) {
      stopped();
      return more::stop;
    }
    return more::eof;
  }

  bool read_head() {
    std::size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
      if (in_.size() > opts_.max_head_bytes) return refuse(errc::head_too_large);
      const more m = fill();
      if (m == more::stop) return false;
      if (m == more::eof) return refuse(errc::closed_early);
    }
    if (end + 4 > opts_.max_head_bytes) return refuse(errc::head_too_large);
    const std::string_view head(in_.data(), end + 2);  // each line ends in CRLF
    std::size_t eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, eol);
    // "HTTP/1.x SSS reason"
    if (status_line.size() < 12 || status_line.compare(0, 7, "HTTP/1.") != 0 ||
        (status_line[7] != '0' && status_line[7] != '1') || status_line[8] != ' ' ||
        !std::all_of(status_line.begin() + 9, status_line.begin() + 12, [](char c) { return c >= '0' && c <= '9'; }) ||
        (status_line.size() > 12 && status_line[12] != ' ')) {
      return refuse(errc::bad_response);
    }
    r_.status = (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
    r_.headers.clear();
    std::size_t pos = eol + 2;
    while (pos < head.size()) {
      eol = head.find("\r\n", pos);
      const std::string_view line = head.substr(pos, eol - pos);
      pos = eol + 2;
      const std::size_t colon = line.find(':');
      // No obsolete line folding, no empty names, no whitespace before the colon.
      if (colon == std::string_view::npos || colon == 0 || line.front() == ' ' || line.front() == '\t' ||
          line[colon - 1] == ' ' || line[colon - 1] == '\t') {
        return refuse(errc::bad_response);
      }
      header h;
      h.name.reserve(colon);
      for (char c : line.substr(0, colon)) h.name.push_back(lower(c));
      h.value = std::string(trim(line.substr(colon + 1)));
      r_.headers.push_back(std::move(h));
    }
    in_.erase(0, end + 4);
    return true;
  }

  void read_exactly(std::size_t length) {
    while (r_.body.size() < length) {
      const std::size_t take = std::min(length - r_.body.size(), in_.size());
      r_.body.append(in_, 0, take);
      in_.erase(0, take);
      if (r_.body.size() == length) break;
      const more m = fill();
      if (m == more::stop) return;
      if (m == more::eof) return fail(errc::closed_early);
    }
    done();
  }

  void read_to_close() {
    for (;;) {
      if (r_.body.size() + in_.size() > opts_.max_body_bytes) return fail(errc::body_too_large);
      r_.body += in_;
      in_.clear();
      const more m = fill();
      if (m == more::stop) return;
      if (m == more::eof) return done();
    }
  }

  // Takes one CRLF-terminated line from in_ (without the CRLF); false with r_ filled on failure.
  bool line(std::string& out, std::size_t limit) {
    std::size_t eol;
    while ((eol = in_.find("\r\n")) == std::string::npos) {
      if (in_.size() >= limit + 2) return refuse(errc::bad_response);  // a longer line, and no CRLF yet
      const more m = fill();
      if (m == more::stop) return false;
      if (m == more::eof) return refuse(errc::closed_early);
    }
    if (eol > limit) return refuse(errc::bad_response);
    out.assign(in_, 0, eol);
    in_.erase(0, eol + 2);
    return true;
  }

  void read_chunked() {
    std::string size_line;
    for (;;) {
      if (!line(size_line, 1024)) return;
      // chunk-size [; extensions]
      const std::string_view digits = trim(std::string_view(size_line).substr(0, size_line.find(';')));
      if (digits.empty() || digits.size() > 15) return fail(errc::bad_response);
      std::size_t size = 0;
      for (char c : digits) {
        const char l = lower(c);
        int v;
        if (l >= '0' && l <= '9') {
          v = l - '0';
        } else if (l >= 'a' && l <= 'f') {
          v = l - 'a' + 10;
        } else {
          return fail(errc::bad_response);
        }
        size = size * 16 + static_cast<std::size_t>(v);
      }
      if (size == 0) break;
      if (size > opts_.max_body_bytes - r_.body.size()) return fail(errc::body_too_large);
      std::size_t left = size;
      while (left > 0) {
        const std::size_t take = std::min(left, in_.size());
        r_.body.append(in_, 0, take);
        in_.erase(0, take);
        left -= take;
        if (left == 0) break;
        const more m = fill();
        if (m == more::stop) return;
        if (m == more::eof) return fail(errc::closed_early);
      }
      std::string crlf;
      if (!line(crlf, 0)) return;  // the CRLF after the data, nothing before it
    }
    // Trailer fields, up to an empty line; bounded like a head.
    std::size_t trailer_bytes = 0;
    std::string trailer;
    do {
      if (!line(trailer, opts_.max_head_bytes)) return;
      trailer_bytes += trailer.size() + 2;
      if (trailer_bytes > opts_.max_head_bytes) return fail(errc::head_too_large);
    } while (!trailer.empty());
    done();
  }

  void done() {
    r_.kind = outcome::ok;
    r_.where = phase::done;
    r_.error = std::error_code();
  }

  // The token `stop_` is cancelled: by the caller (its reason), or by our own deadline. When
  // both happened, the caller's cancellation is reported.
  void stopped() {
    if (caller_.IsCancellationRequested()) {
      r_.kind = outcome::cancelled;
      r_.error = caller_.Reason();
    } else {
      r_.kind = outcome::timed_out;
      r_.error = make_error_code(ctoken::errc::timed_out);
    }
  }

  // A failed call or a bad response — unless the token was cancelled meanwhile, in which case
  // the failure is its consequence (the shut-down socket) and the cancellation is reported.
  void fail(std::error_code why) {
    if (stop_.IsCancellationRequested()) return stopped();
    r_.kind = outcome::failed;
    r_.error = why;
  }
  void fail(errc why) { fail(make_error_code(why)); }
  bool refuse(errc why) {
    fail(why);
    return false;
  }

  transport& t_;
  const ctoken::CancellationToken& caller_;
  const ctoken::CancellationToken& stop_;
  const options& opts_;
  result& r_;
  std::string in_;  // received, not yet consumed
};

}  // namespace

const std::error_category& client_category() noexcept {
  static const category_impl category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), client_category()}; }

const std::string* result::find(std::string_view lower_name) const noexcept {
  for (const header& h : headers) {
    if (h.name == lower_name) return &h.value;
  }
  return nullptr;
}

result Get(const std::string& host, std::uint16_t port, std::string_view target, const ctoken::CancellationToken& token,
           const options& opts) {
  return Request("GET", host, port, target, {}, token, opts);
}

result Request(std::string_view method, const std::string& host, std::uint16_t port, std::string_view target,
               std::string_view body, const ctoken::CancellationToken& token, const options& opts) {
  result r;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  if (!is_visible(method) || !is_visible(target) || target.front() != '/') {
    r.error = sys(EINVAL);
    return r;
  }
  if (!numeric_address(host, port, addr, addr_len)) {
    r.error = make_error_code(errc::bad_address);
    return r;
  }
  if (token.IsCancellationRequested()) {  // nothing to interrupt: do not even open a socket
    r.kind = outcome::cancelled;
    r.error = token.Reason();
    return r;
  }

  // One token for "stop now": the caller's token, linked with our own deadline. Whichever
  // fires first wakes the request the same way; exchange::stopped() tells them apart.
  ctoken::CancellationTokenSource linked = ctoken::CancellationTokenSource::CreateLinkedTokenSource(token);
  if (opts.timeout > std::chrono::milliseconds::zero() && opts.timeout != std::chrono::milliseconds::max()) {
    linked.CancelAfter(opts.timeout);
  }
  const ctoken::CancellationToken stop = linked.Token();

  std::string request;
  request.reserve(128 + target.size() + opts.extra_headers.size());
  request.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
  if (addr.ss_family == AF_INET6 && host.front() != '[') {
    request.append("[").append(host).append("]");
  } else {
    request.append(host);
  }
  request.append(":").append(std::to_string(port)).append("\r\nConnection: close\r\n");
  if (!body.empty() || method == "POST" || method == "PUT") {
    request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  request.append(opts.extra_headers).append("\r\n").append(body);
  const bool head_only = method == "HEAD";

  const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    r.error = sys(errno);
    return r;
  }
  const socket_guard guard{fd};  // declared first: closes the socket last
  const auto* address = reinterpret_cast<const sockaddr*>(&addr);

  if (opts.style == cancel_style::shutdown_socket) {
    // (a) Registered before the first call that can block; if the token is already cancelled
    // it runs here, at once, and every call below fails fast. The lambda captures the number
    // only: it may run on any thread, at any moment, until on_cancel is destroyed at the end
    // of this block — which waits for a shutdown() running on another thread — and only then
    // does `guard` close the descriptor. So the number it shuts down is always ours.
    ctoken::CancellationCallback on_cancel(stop, [fd]() noexcept { (void)::shutdown(fd, SHUT_RDWR); });
    transport t(fd, -1, stop);
    exchange(t, token, stop, opts, r).run(address, addr_len, request, head_only);
  } else {
    // (b) An eventfd that turns readable on cancellation, polled next to the socket. The
    // cancelling thread only writes to it; the socket is touched by this thread alone.
    const ctoken::CancellationFd cancelled(stop);
    transport t(fd, cancelled.Get(), stop);
    exchange(t, token, stop, opts, r).run(address, addr_len, request, head_only);
  }
  return r;
}

const char* to_string(outcome o) noexcept {
  switch (o) {
    case outcome::ok:
      return "ok";
    case outcome::cancelled:
      return "cancelled";
    case outcome::timed_out:
      return "timed_out";
    case outcome::failed:
      return "failed";
  }
  return "?";
}

const char* to_string(phase p) noexcept {
  switch (p) {
    case phase::connect:
      return "connect";
    case phase::send:
      return "send";
    case phase::head:
      return "head";
    case phase::body:
      return "body";
    case phase::done:
      return "done";
  }
  return "?";
}

const char* to_string(cancel_style s) noexcept {
  switch (s) {
    case cancel_style::shutdown_socket:
      return "shutdown_socket";
    case cancel_style::poll_fd:
      return "poll_fd";
  }
  return "?";
}

}  // namespace http_client
