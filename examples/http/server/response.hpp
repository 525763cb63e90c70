// What a handler returns (http::response: a value, no I/O) and how the server writes it to
// the socket (response_writer, used by the server only). A write that fails because the client
// went away (EPIPE, ECONNRESET) cancels the request's "client gone" source: a failed write is
// as good a disconnect signal as a FIN.
#ifndef CTOKEN_EXAMPLE_HTTP_RESPONSE_HPP
#define CTOKEN_EXAMPLE_HTTP_RESPONSE_HPP

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <ctoken/ctoken.hpp>

namespace http {

// A handler's answer. The server adds the framing headers (Content-Length or chunked,
// Connection, Cache-Control: no-store) and leaves the body out for HEAD.
struct response {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
  // A streamed body instead of `body`: when set, the response is sent chunked and the server
  // calls it on the request's thread for each next piece until it returns std::nullopt. It may
  // wait (cancellably, on the request's token, which it captures itself) between pieces, and
  // throw ctoken::OperationCanceledException to stop; an empty piece is skipped. It is not
  // called for HEAD. Whatever it captures must own its data: it runs after the handler returned.
  std::function<std::optional<std::string>()> next_chunk;

  // A complete response with that status, body and content type.
  static response text(int status, std::string body, std::string content_type = "text/plain") {
    response r;
    r.status = status;
    r.body = std::move(body);
    r.content_type = std::move(content_type);
    return r;
  }
};

// "OK", "Not Found", ... for the statuses this server sends.
std::string_view status_text(int status) noexcept;

// Sends `data` whole on a blocking socket (MSG_NOSIGNAL: no SIGPIPE). Returns false on any
// failure, including the socket's send timeout (SO_SNDTIMEO) against a client that stops
// reading. Used for canned responses outside a request, too.
bool send_all(int fd, std::string_view data, int* error = nullptr) noexcept;

// Writes one response to a blocking socket (the server's side of a request). Not thread-safe:
// the request's thread only. Each call may block up to the socket's send timeout.
class response_writer {
 public:
  response_writer(int fd, ctoken::CancellationTokenSource client_gone, bool head_only) noexcept
      : fd_(fd), client_gone_(std::move(client_gone)), head_only_(head_only) {}

  // A complete response with Content-Length. `keep_alive` false adds "Connection: close".
  bool respond(int status, std::string_view content_type, std::string_view body, bool keep_alive);

  // A chunked response: begin, any number of chunks, end.
  bool begin_chunked(int status, std::string_view content_type, bool keep_alive);
  bool chunk(std::string_view data);
  bool end_chunked();

  bool started() const noexcept { return status_ != 0; }              // headers were (attempted to be) sent
  bool complete() const noexcept { return complete_; }                // the whole response was sent
  std::int64_t complete_ns() const noexcept { return complete_ns_; }  // when (CLOCK_MONOTONIC)
  bool failed() const noexcept { return failed_; }
  bool head_only() const noexcept { return head_only_; }
  int status() const noexcept { return status_; }
  std::size_t body_bytes() const noexcept { return body_bytes_; }

 private:
  bool write(std::string_view data);
  std::string head(int status, std::string_view content_type, bool keep_alive, const char* length_header) const;

  int fd_;
  ctoken::CancellationTokenSource client_gone_;
  bool head_only_;  // HEAD request: headers only
  int status_ = 0;
  bool complete_ = false;
  std::int64_t complete_ns_ = 0;
  bool failed_ = false;
  std::size_t body_bytes_ = 0;
};

}  // namespace http

#endif
