// An HTTP/1.1 request-head parser for the ctoken example servers (RFC 9110, RFC 9112).
//
// One call parses the request line and the header fields at the start of a buffer, and says how
// many bytes they took; the caller reads the body (content_length bytes) after them. It is a pure
// function of its input: call it again with the longer buffer when more bytes arrive. There is no
// parser state to keep between calls, so a connection handler is simply
//
//   while (true) {
//     auto r = http::parse_request_head(buffer, limits, req);
//     if (r.status == http::parse_status::complete) break;                   // handle req
//     if (r.status == http::parse_status::error) { answer r.error_status; close; }
//     read more into buffer (with a timeout: a client may stop sending)
//   }
//
// It is strict where leniency has security consequences (request smuggling through conflicting
// framing headers, header injection through line folding or stray CRs) and practical elsewhere
// (bare LF line endings, a stray empty line before the request line).
//
// Not supported, by design, because the example servers do not need them: request bodies in
// chunked (or any) Transfer-Encoding, answered with 501; request-targets other than origin-form
// ("/path?query"), answered with 400; HTTP/0.9 and HTTP/2 or later.
#ifndef CTOKEN_EXAMPLES_HTTP_PARSER_HPP
#define CTOKEN_EXAMPLES_HTTP_PARSER_HPP

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace http {

// What a request may cost before it is refused.
struct limits {
  std::size_t max_head_bytes = 16 * 1024;  // request line + headers + CRLFCRLF; over → 431 (request line → 414)
  std::size_t max_headers = 100;           // over → 431
  std::size_t max_body_bytes = 1 << 20;    // Content-Length over → 413
};

// One header field line. Names are case-insensitive, so they are stored lower-cased; the value
// has its optional whitespace (spaces and tabs) around it removed, and is otherwise as received.
struct header {
  std::string name;
  std::string value;
};

// A parsed request head. The path is decoded but not normalised: "/a/../b" stays as it is and
// "/a%2Fb" becomes "/a/b", so code that maps paths to files must refuse ".." segments itself.
struct request {
  std::string method;              // token chars only, e.g. "GET"; case-sensitive, so "get" is not "GET"
  std::string target;              // raw request-target, e.g. "/slow?id=3&steps=10"
  std::string path;                // target before '?', percent-decoded; always starts with '/' (origin-form)
  std::string query;               // raw, after '?', not decoded ("" if there is no '?')
  int version_minor = 1;           // 0 or 1: HTTP/1.0 or HTTP/1.1
  std::vector<header> headers;     // in the order received
  std::size_t content_length = 0;  // the body that follows the head; 0 without Content-Length
  bool keep_alive = true;          // whether the connection may carry another request after this one
                                   // (an HTTP/1.0 client expects "Connection: keep-alive" in reply)

  // Set by the server before the handler runs, never by the parser (which leaves them as they
  // are): the request id for logs and observers (the client's X-Request-Id, sanitised, or the
  // serial in decimal; see server_config::request_id), and a number unique in this process.
  std::string id;
  std::uint64_t serial = 0;

  // The value of the first header with that name (which must be given lower-case), or nullptr.
  const std::string* find(std::string_view lower_name) const noexcept;

  // The value of the first "name=value" pair in the query whose (decoded) name is `name`, decoded
  // as a form field ("%41" → 'A', '+' → ' '); "" for a bare "name" without '='. nullopt if there
  // is no such pair, or if its value is not valid percent-encoding or decodes to a NUL byte.
  std::optional<std::string> query_param(std::string_view name) const;
};

enum class parse_status { complete, incomplete, error };

struct parse_result {
  parse_status status;
  std::size_t consumed = 0;       // on complete: bytes of the head (through the blank line); the body follows
  int error_status = 0;           // on error: 400, 413, 414, 431, 501 or 505
  const char* error_reason = "";  // on error: a short static string for the log, e.g. "bad request line"
};

// Parses one request head at the start of `buffer`, which may hold less than one head, or more:
// pipelined requests and body bytes after it.
//
// complete:   `out` holds the request, and `consumed` is the length of its head, blank line included.
// incomplete: no blank line yet, and the buffer is below lim.max_head_bytes: read more, call again.
// error:      answer error_status and close the connection (the rest of the stream cannot be framed).
//
// Pure function: no I/O, no allocation beyond `out`. `out` is overwritten only once a complete
// head is in the buffer; on incomplete it is untouched, on error its contents are unspecified.
// The cost is linear in min(buffer.size(), lim.max_head_bytes).
parse_result parse_request_head(std::string_view buffer, const limits& lim, request& out);

}  // namespace http

#endif
