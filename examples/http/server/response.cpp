#include "response.hpp"

#include "observer.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>

namespace http {

std::string_view status_text(int status) noexcept {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";  // nginx's convention; never sent, only logged
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

bool send_all(int fd, std::string_view data, int* error) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (error != nullptr) *error = errno;  // EAGAIN here means SO_SNDTIMEO expired
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool response_writer::write(std::string_view data) {
  if (failed_) return false;
  int err = 0;
  if (send_all(fd_, data, &err)) return true;
  failed_ = true;
  // The response cannot be delivered: the request is over for its client either way.
  if (err == EPIPE || err == ECONNRESET) {
    client_gone_.Cancel(ctoken::errc::connection_reset);
  } else if (err == EAGAIN || err == EWOULDBLOCK) {
    client_gone_.Cancel(std::make_error_code(std::errc::timed_out));  // SO_SNDTIMEO: it stopped reading
  } else {
    client_gone_.Cancel(std::error_code(err, std::generic_category()));
  }
  return false;
}

std::string response_writer::head(int status, std::string_view content_type, bool keep_alive,
                                  const char* length_header) const {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " ";
  h += status_text(status);
  h += "\r\nContent-Type: ";
  h += content_type;
  h += "\r\n";
  h += length_header;
  h += "Cache-Control: no-store\r\n";
  if (!keep_alive) h += "Connection: close\r\n";
  h += "\r\n";
  return h;
}

bool response_writer::respond(int status, std::string_view content_type, std::string_view body, bool keep_alive) {
  status_ = status;
  const std::string length = "Content-Length: " + std::to_string(body.size()) + "\r\n";
  std::string message = head(status, content_type, keep_alive, length.c_str());
  if (!head_only_) message += body;
  // Stamped before the last write: a client cannot have read the whole response (and closed)
  // before we started sending it, so a cancellation after this instant is not about it.
  const std::int64_t sending = monotonic_ns();
  if (!write(message)) return false;
  body_bytes_ = head_only_ ? 0 : body.size();
  complete_ = true;
  complete_ns_ = sending;
  return true;
}

bool response_writer::begin_chunked(int status, std::string_view content_type, bool keep_alive) {
  status_ = status;
  return write(head(status, content_type, keep_alive, "Transfer-Encoding: chunked\r\n"));
}

bool response_writer::chunk(std::string_view data) {
  if (head_only_ || data.empty()) return !failed_;
  char size[32];
  const int len = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string message(size, static_cast<std::size_t>(len));
  message += data;
  message += "\r\n";
  if (!write(message)) return false;
  body_bytes_ += data.size();
  return true;
}

bool response_writer::end_chunked() {
  const std::int64_t sending = monotonic_ns();  // see respond()
  if (!head_only_ && !write("0\r\n\r\n")) return false;
  complete_ = true;
  complete_ns_ = sending;
  return true;
}

}  // namespace http
