// The HTTP/1.1 request-head parser of the example servers (examples/http/server/http_parser.hpp).
#include "http_parser.hpp"

#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "ctoken_test.hpp"

using namespace std::string_literals;
using http::parse_status;

namespace {

struct parsed {
  http::request req;
  http::parse_result result{parse_status::incomplete};
};

parsed parse(std::string_view text, const http::limits& lim = http::limits{}) {
  parsed p;
  p.result = http::parse_request_head(text, lim, p.req);
  return p;
}

// The outcome as one number, for compact checks: the error status, 0 if complete, -1 if incomplete.
// Also checks what holds for every outcome: a reason with every error, consumed only on complete.
int outcome(std::string_view text, const http::limits& lim = http::limits{}) {
  const parsed p = parse(text, lim);
  switch (p.result.status) {
    case parse_status::complete:
      CHECK(p.result.consumed > 0);
      CHECK(p.result.consumed <= text.size());
      return 0;
    case parse_status::incomplete:
      CHECK(p.result.consumed == 0);
      return -1;
    case parse_status::error:
      CHECK(p.result.consumed == 0);
      CHECK(std::strlen(p.result.error_reason) > 0);
      return p.result.error_status;
  }
  return -2;
}

// A complete HTTP/1.1 GET with the given header lines (each ending in CRLF).
std::string get_with(std::string_view header_lines) {
  return "GET / HTTP/1.1\r\nHost: example.com\r\n" + std::string(header_lines) + "\r\n";
}

// A request head of exactly `n` bytes (n >= 35), padded in a header value.
std::string head_of_size(std::size_t n) {
  const std::string start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  REQUIRE(n >= start.size() + 1 + end.size());
  return start + std::string(n - start.size() - end.size(), 'a') + end;
}

}  // namespace

// ---- the request line --------------------------------------------------------------------------

TEST_CASE("parser: a simple GET") {
  const std::string text = "GET /slow?id=3&steps=10 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\n\r\n";
  const parsed p = parse(text);
  REQUIRE(p.result.status == parse_status::complete);
  CHECK(p.result.consumed == text.size());
  CHECK(p.req.method == "GET");
  CHECK(p.req.target == "/slow?id=3&steps=10");
  CHECK(p.req.path == "/slow");
  CHECK(p.req.query == "id=3&steps=10");
  CHECK(p.req.version_minor == 1);
  REQUIRE(p.req.headers.size() == 2);
  CHECK(p.req.headers[0].name == "host");
  CHECK(p.req.headers[0].value == "example.com");
  CHECK(p.req.headers[1].name == "user-agent");
  CHECK(p.req.headers[1].value == "test");
  CHECK(p.req.content_length == 0);
  CHECK(p.req.keep_alive);
}

TEST_CASE("parser: methods are case-sensitive tokens passed through as sent") {
  CHECK(parse("PURGE / HTTP/1.1\r\nHost: h\r\n\r\n").req.method == "PURGE");
  CHECK(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n").req.method == "get");
  CHECK(parse("M-1.x!#$%&'*+^_`|~ / HTTP/1.1\r\nHost: h\r\n\r\n").req.method == "M-1.x!#$%&'*+^_`|~");
  CHECK(outcome("G@T / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("parser: the request line needs exactly one space between its three parts") {
  CHECK(outcome("GET  / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /  HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.1 \r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome(" GET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / \r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /\r\n\r\n") == 400);  // HTTP/0.9 style
  CHECK(outcome("GET\r\n\r\n") == 400);
  CHECK(outcome("GET\t/\tHTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("parser: HTTP/1.0 and HTTP/1.1 are accepted") {
  const parsed p10 = parse("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(p10.result.status == parse_status::complete);
  CHECK(p10.req.version_minor == 0);
  const parsed p11 = parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(p11.result.status == parse_status::complete);
  CHECK(p11.req.version_minor == 1);
}

TEST_CASE("parser: well-formed versions other than 1.0 and 1.1 get 505") {
  CHECK(outcome("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
  CHECK(outcome("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == 505);
  CHECK(outcome("GET / HTTP/0.9\r\nHost: h\r\n\r\n") == 505);
  CHECK(outcome("GET / HTTP/3.1\r\nHost: h\r\n\r\n") == 505);
}

TEST_CASE("parser: malformed versions get 400") {
  CHECK(outcome("GET / http/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.10\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/11\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.x\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTPS/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET / FOO\r\nHost: h\r\n\r\n") == 400);
}

// ---- the request-target ------------------------------------------------------------------------

TEST_CASE("parser: only origin-form targets are accepted") {
  CHECK(outcome("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n") == 400);
  CHECK(outcome("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n") == 400);
  CHECK(outcome("GET a/b HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET ?a=1 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
}

TEST_CASE("parser: the target must be visible ASCII without a fragment") {
  CHECK(outcome("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n"s) == 400);
  CHECK(outcome("GET /a\"{|}^`\\<> HTTP/1.1\r\nHost: h\r\n\r\n") == 0);  // unsafe but visible: accepted
}

TEST_CASE("parser: path and query are split at the first question mark") {
  parsed p = parse("GET /p?a?b=c HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(p.req.path == "/p");
  CHECK(p.req.query == "a?b=c");
  p = parse("GET /? HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(p.req.path == "/");
  CHECK(p.req.query == "");
  p = parse("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(p.req.path == "/x");
  CHECK(p.req.query == "");
}

TEST_CASE("parser: the path is percent-decoded and the query is left raw") {
  const parsed p = parse("GET /a%20b/%7e%2Fc+d?q=a%20b+c HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(p.result.status == parse_status::complete);
  CHECK(p.req.path == "/a b/~/c+d");  // '+' is a space only in form-encoded queries
  CHECK(p.req.query == "q=a%20b+c");
  CHECK(p.req.target == "/a%20b/%7e%2Fc+d?q=a%20b+c");
  CHECK(parse("GET /%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n").req.path == "/\xc3\xa9");
}

TEST_CASE("parser: invalid percent escapes and decoded NUL in the path get 400") {
  CHECK(outcome("GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /%4 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /% HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /%4?x HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /%g0 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  // The query is not decoded by the parser, so its escapes are not checked there.
  CHECK(outcome("GET /a?%zz HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
}

// ---- line endings and control characters -------------------------------------------------------

TEST_CASE("parser: bare LF line endings are accepted too") {
  const std::string text = "GET / HTTP/1.1\nHost: h\nX-A: 1\n\n";
  const parsed p = parse(text);
  REQUIRE(p.result.status == parse_status::complete);
  CHECK(p.result.consumed == text.size());
  REQUIRE(p.req.headers.size() == 2);
  CHECK(p.req.headers[1].value == "1");

  const std::string mixed = "GET / HTTP/1.1\r\nHost: h\nX-A: 1\r\n\n";
  CHECK(parse(mixed).result.consumed == mixed.size());
  const std::string mixed_end = "GET / HTTP/1.1\nHost: h\n\r\n";
  CHECK(parse(mixed_end).result.consumed == mixed_end.size());
}

TEST_CASE("parser: control characters in header lines get 400") {
  CHECK(outcome(get_with("X-A: a\x01z\r\n")) == 400);
  CHECK(outcome(get_with("X-A: a\x7fz\r\n")) == 400);
  CHECK(outcome(get_with("X-A: a\0z\r\n"s)) == 400);
  CHECK(outcome(get_with("X-A: a\rz\r\n")) == 400);      // a stray CR
  CHECK(outcome(get_with("X-A: a\r\r\n")) == 400);       // CR CR LF
  CHECK(outcome(get_with("X-A: a\x1b[1m\r\n")) == 400);  // an escape sequence
  CHECK(outcome(get_with("X-\x01: a\r\n")) == 400);
}

TEST_CASE("parser: tabs and non-ASCII bytes are allowed inside header values") {
  const parsed p = parse(get_with("X-A: a\tb c\r\nX-B: caf\xc3\xa9\r\n"));
  REQUIRE(p.result.status == parse_status::complete);
  CHECK(*p.req.find("x-a") == "a\tb c");
  CHECK(*p.req.find("x-b") == "caf\xc3\xa9");
}

TEST_CASE("parser: obs-fold continuation lines get 400") {
  CHECK(outcome(get_with("X-A: a\r\n b\r\n")) == 400);
  CHECK(outcome(get_with("X-A: a\r\n\tb\r\n")) == 400);
  CHECK(outcome("GET / HTTP/1.1\r\n Host: h\r\n\r\n") == 400);  // whitespace right after the request line
  CHECK(outcome("GET / HTTP/1.1\n\tHost: h\n\n") == 400);
}

// ---- header fields -----------------------------------------------------------------------------

TEST_CASE("parser: header names are lower-cased and values trimmed of OWS") {
  const parsed p = parse(get_with("Content-TYPE:text/plain\r\nX-Spaces: \t a  b \t \r\nX-Empty:\r\nX-Blank: \t \r\n"));
  REQUIRE(p.result.status == parse_status::complete);
  REQUIRE(p.req.headers.size() == 5);
  CHECK(p.req.headers[1].name == "content-type");
  CHECK(p.req.headers[1].value == "text/plain");
  CHECK(p.req.headers[2].name == "x-spaces");
  CHECK(p.req.headers[2].value == "a  b");
  CHECK(p.req.headers[3].value == "");
  CHECK(p.req.headers[4].value == "");
  const parsed colons = parse(get_with("X-Colon: a:b: c\r\n"));
  REQUIRE(colons.req.find("x-colon") != nullptr);
  CHECK(*colons.req.find("x-colon") == "a:b: c");
}

TEST_CASE("parser: find returns the first header of that name or nullptr") {
  const parsed p = parse(get_with("X-Dup: one\r\nX-DUP: two\r\n"));
  REQUIRE(p.result.status == parse_status::complete);
  REQUIRE(p.req.find("x-dup") != nullptr);
  CHECK(*p.req.find("x-dup") == "one");
  CHECK(*p.req.find("host") == "example.com");
  CHECK(p.req.find("x-missing") == nullptr);
  CHECK(p.req.find("X-Dup") == nullptr);  // names are looked up lower-case
  CHECK(p.req.headers.size() == 3);
}

TEST_CASE("parser: whitespace before the colon gets 400") {
  CHECK(outcome(get_with("X-A : a\r\n")) == 400);
  CHECK(outcome(get_with("X-A\t: a\r\n")) == 400);
  CHECK(outcome("GET / HTTP/1.1\r\nHost : h\r\n\r\n") == 400);
}

TEST_CASE("parser: header names must be tokens") {
  CHECK(outcome(get_with(": a\r\n")) == 400);
  CHECK(outcome(get_with("X A: a\r\n")) == 400);
  CHECK(outcome(get_with("X(A): a\r\n")) == 400);
  CHECK(outcome(get_with("X-\xc3\xa9: a\r\n")) == 400);
  CHECK(outcome(get_with("no colon here\r\n")) == 400);
  CHECK(outcome(get_with("NoColon\r\n")) == 400);
}

TEST_CASE("parser: Host is required in HTTP/1.1 and must be unique") {
  CHECK(outcome("GET / HTTP/1.1\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.1\r\nX-A: 1\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.0\r\n\r\n") == 0);
  CHECK(outcome("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.1\r\nHOST: a\r\n\r\n") == 0);
}

TEST_CASE("parser: the Host value must look like a host and port") {
  CHECK(outcome("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n") == 0);
  CHECK(outcome("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") == 0);
  CHECK(outcome("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") == 0);
  CHECK(outcome("GET / HTTP/1.1\r\nHost:\r\n\r\n") == 0);  // empty is allowed (RFC 9110 §7.2)
  CHECK(outcome("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n") == 400);
  CHECK(outcome("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n") == 400);
}

// ---- framing: Content-Length and Transfer-Encoding ---------------------------------------------

TEST_CASE("parser: Content-Length gives the body length") {
  CHECK(parse(get_with("Content-Length: 10\r\n")).req.content_length == 10);
  CHECK(parse(get_with("Content-Length: 0\r\n")).req.content_length == 0);
  CHECK(parse(get_with("Content-Length: 007\r\n")).req.content_length == 7);
  CHECK(parse(get_with("Content-Length:  42 \t\r\n")).req.content_length == 42);
  CHECK(parse(get_with("content-length: 1\r\n")).req.content_length == 1);
  CHECK(parse(get_with("")).req.content_length == 0);
}

TEST_CASE("parser: Content-Length must be digits only") {
  for (const char* bad : {"", " ", "-1", "+5", "1 2", "0x10", "5,5", "5, 5", "1e3", "1.0", "five", "\xd9\xa1"}) {
    INFO("Content-Length: " << bad);
    CHECK(outcome(get_with("Content-Length: "s + bad + "\r\n")) == 400);
  }
}

TEST_CASE("parser: duplicate Content-Length is allowed only with the same value") {
  const parsed same = parse(get_with("Content-Length: 5\r\nContent-Length: 5\r\n"));
  REQUIRE(same.result.status == parse_status::complete);
  CHECK(same.req.content_length == 5);
  CHECK(parse(get_with("Content-Length: 5\r\nContent-Length: 005\r\n")).req.content_length == 5);
  CHECK(parse(get_with("Content-Length: 0\r\nContent-Length: 00\r\n")).req.content_length == 0);
  CHECK(outcome(get_with("Content-Length: 5\r\nContent-Length: 6\r\n")) == 400);
  CHECK(outcome(get_with("Content-Length: 5\r\nContent-Length: 50\r\n")) == 400);
  CHECK(outcome(get_with("Content-Length: 5\r\nX-A: 1\r\ncontent-length: 0\r\n")) == 400);
  CHECK(outcome(get_with("Content-Length: 5\r\nContent-Length: x\r\n")) == 400);
}

TEST_CASE("parser: Content-Length over the limit gets 413 without overflowing") {
  http::limits lim;
  lim.max_body_bytes = 1000;
  CHECK(parse(get_with("Content-Length: 1000\r\n"), lim).req.content_length == 1000);
  CHECK(outcome(get_with("Content-Length: 1001\r\n"), lim) == 413);
  CHECK(outcome(get_with("Content-Length: 10000\r\n"), lim) == 413);
  CHECK(outcome(get_with("Content-Length: 18446744073709551615\r\n"), lim) == 413);
  CHECK(outcome(get_with("Content-Length: 18446744073709551616\r\n"), lim) == 413);
  CHECK(outcome(get_with("Content-Length: 99999999999999999999999999999999999999\r\n"), lim) == 413);
  CHECK(outcome(get_with("Content-Length: 18446744073709551616\r\n")) == 413);  // default limits
  CHECK(parse(get_with("Content-Length: 00000000000000000000000000000000001000\r\n"), lim).req.content_length == 1000);

  lim.max_body_bytes = 0;
  CHECK(outcome(get_with("Content-Length: 0\r\n"), lim) == 0);
  CHECK(outcome(get_with("Content-Length: 1\r\n"), lim) == 413);
  CHECK(outcome(get_with("Content-Length: 9\r\n"), lim) == 413);

  // The largest size_t is accepted when it is the limit; one more (in decimal) is not.
  lim.max_body_bytes = std::numeric_limits<std::size_t>::max();
  std::string max_digits = std::to_string(lim.max_body_bytes);
  CHECK(parse(get_with("Content-Length: " + max_digits + "\r\n"), lim).req.content_length == lim.max_body_bytes);
  max_digits.back() = static_cast<char>(max_digits.back() + 1);  // ends in 5: no carry
  CHECK(outcome(get_with("Content-Length: " + max_digits + "\r\n"), lim) == 413);
  CHECK(outcome(get_with("Content-Length: " + max_digits + "0\r\n"), lim) == 413);
}

TEST_CASE("parser: any Transfer-Encoding gets 501") {
  CHECK(outcome(get_with("Transfer-Encoding: chunked\r\n")) == 501);
  CHECK(outcome(get_with("transfer-encoding: identity\r\n")) == 501);
  CHECK(outcome(get_with("Transfer-Encoding: gzip, chunked\r\n")) == 501);
  CHECK(outcome(get_with("Transfer-Encoding:\r\n")) == 501);
  CHECK(outcome(get_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")) == 501);
  CHECK(outcome("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == 501);
}

// ---- Connection --------------------------------------------------------------------------------

TEST_CASE("parser: keep-alive defaults to the version") {
  CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n").req.keep_alive);
  CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").req.keep_alive);
}

TEST_CASE("parser: Connection close and keep-alive override the default") {
  CHECK_FALSE(parse(get_with("Connection: close\r\n")).req.keep_alive);
  CHECK_FALSE(parse(get_with("Connection: CLOSE\r\n")).req.keep_alive);
  CHECK_FALSE(parse(get_with("Connection: Upgrade, close\r\n")).req.keep_alive);
  CHECK_FALSE(parse(get_with("Connection: upgrade,close,\r\n")).req.keep_alive);
  CHECK_FALSE(parse(get_with("Connection: keep-alive\r\nConnection: close\r\n")).req.keep_alive);
  CHECK_FALSE(parse(get_with("Connection: close, keep-alive\r\n")).req.keep_alive);  // close wins
  CHECK(parse(get_with("Connection: closed\r\n")).req.keep_alive);
  CHECK(parse(get_with("Connection: Upgrade\r\n")).req.keep_alive);
  CHECK(parse(get_with("X-Connection: close\r\n")).req.keep_alive);

  CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").req.keep_alive);
  CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").req.keep_alive);
  CHECK(parse("GET / HTTP/1.0\r\nConnection: TE ,\t Keep-Alive \r\n\r\n").req.keep_alive);
  CHECK_FALSE(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").req.keep_alive);
  CHECK_FALSE(parse("GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n").req.keep_alive);
}

// ---- empty lines before the request line -------------------------------------------------------

TEST_CASE("parser: a few empty lines before the request line are skipped") {
  for (const std::string prefix : {"\r\n", "\n", "\r\n\r\n", "\n\r\n\n\r\n"}) {
    const std::string text = prefix + "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    const parsed p = parse(text);
    REQUIRE(p.result.status == parse_status::complete);
    CHECK(p.result.consumed == text.size());
    CHECK(p.req.method == "GET");
  }
  CHECK(outcome("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(outcome("\n\n\n\n\n") == 400);
  CHECK(outcome("\r\n\r\n\r\n\r\n") == -1);
  CHECK(outcome("\r\n\r") == -1);
  CHECK(outcome("\r") == -1);
  CHECK(outcome("") == -1);
  CHECK(outcome("\rGET") == 400);
}

// ---- incremental feeding and pipelining --------------------------------------------------------

TEST_CASE("parser: every prefix of a valid request is incomplete") {
  const std::string requests[] = {
      "GET /slow?id=3&steps=10 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
      "POST /submit HTTP/1.0\nContent-Length: 3\n\n",
      "\r\nGET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\n\n",
  };
  for (const std::string& text : requests) {
    INFO(text);
    for (std::size_t n = 0; n < text.size(); ++n) {
      INFO("prefix of " << n << " bytes");
      http::request req;
      req.method = "untouched";
      const http::parse_result r = http::parse_request_head(std::string_view(text).substr(0, n), {}, req);
      REQUIRE(r.status == parse_status::incomplete);
      CHECK(req.method == "untouched");  // out is not written before the head is complete
    }
    const parsed p = parse(text);
    REQUIRE(p.result.status == parse_status::complete);
    CHECK(p.result.consumed == text.size());
  }
}

TEST_CASE("parser: two pipelined heads are parsed one after the other") {
  const std::string first = "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  const std::string stream = first + second;

  http::request req;
  http::parse_result r = http::parse_request_head(stream, {}, req);
  REQUIRE(r.status == parse_status::complete);
  CHECK(r.consumed == first.size());
  CHECK(req.path == "/a");
  CHECK(req.query == "x=1");
  CHECK(req.keep_alive);

  // The same request object is reused: nothing of the first request leaks into the second.
  r = http::parse_request_head(std::string_view(stream).substr(first.size()), {}, req);
  REQUIRE(r.status == parse_status::complete);
  CHECK(r.consumed == second.size());
  CHECK(req.path == "/b");
  CHECK(req.query == "");
  CHECK(req.headers.size() == 2);
  CHECK_FALSE(req.keep_alive);
}

TEST_CASE("parser: the body follows the head and is not part of consumed") {
  const std::string first = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n";
  const std::string body = "a\r\n\r\nb\r\n\r\nGE";  // has blank lines, but is the body
  const std::string second = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  REQUIRE(body.size() == 12);
  const std::string stream = first + body + second;

  http::request req;
  http::parse_result r = http::parse_request_head(stream, {}, req);
  REQUIRE(r.status == parse_status::complete);
  CHECK(r.consumed == first.size());
  CHECK(req.method == "POST");
  REQUIRE(req.content_length == 12);

  r = http::parse_request_head(std::string_view(stream).substr(r.consumed + req.content_length), {}, req);
  REQUIRE(r.status == parse_status::complete);
  CHECK(r.consumed == second.size());
  CHECK(req.path == "/next");
  CHECK(req.content_length == 0);
}

TEST_CASE("parser: a reused request is fully overwritten") {
  http::request req;
  REQUIRE(http::parse_request_head("POST /x?q HTTP/1.0\r\nContent-Length: 3\r\nX-A: 1\r\n\r\n", {}, req).status ==
          parse_status::complete);
  REQUIRE(http::parse_request_head("GET / HTTP/1.1\r\nHost: h\r\n\r\n", {}, req).status == parse_status::complete);
  CHECK(req.method == "GET");
  CHECK(req.target == "/");
  CHECK(req.path == "/");
  CHECK(req.query == "");
  CHECK(req.version_minor == 1);
  CHECK(req.headers.size() == 1);
  CHECK(req.content_length == 0);
  CHECK(req.keep_alive);
}

// ---- limits ------------------------------------------------------------------------------------

TEST_CASE("parser: a head of exactly max_head_bytes is accepted and one byte more gets 431") {
  http::limits lim;
  lim.max_head_bytes = 64;
  const std::string at = head_of_size(64);
  const parsed p = parse(at, lim);
  REQUIRE(p.result.status == parse_status::complete);
  CHECK(p.result.consumed == 64);
  CHECK(outcome(at + "body bytes and the next request", lim) == 0);  // only the head counts
  CHECK(outcome(head_of_size(65), lim) == 431);
  CHECK(outcome(head_of_size(200), lim) == 431);
  // With bare LF line endings the same 64 bytes hold more header, and the limit is the same.
  const std::string lf_start = "GET / HTTP/1.1\nHost: h\nX-Pad: ";
  const std::string lf_at = lf_start + std::string(64 - lf_start.size() - 2, 'a') + "\n\n";
  REQUIRE(lf_at.size() == 64);
  CHECK(outcome(lf_at, lim) == 0);
  CHECK(outcome(lf_start + "a" + lf_at.substr(lf_start.size()), lim) == 431);
}

TEST_CASE("parser: an unfinished head is incomplete below max_head_bytes and 431 at it") {
  http::limits lim;
  lim.max_head_bytes = 64;
  const std::string big = head_of_size(200);
  CHECK(outcome(big.substr(0, 63), lim) == -1);
  CHECK(outcome(big.substr(0, 64), lim) == 431);
  CHECK(outcome(big.substr(0, 100), lim) == 431);
  // The last byte of the window is the CR of the blank line: its LF would be byte 65.
  const std::string cr_at_end = head_of_size(65);
  CHECK(outcome(cr_at_end.substr(0, 63), lim) == -1);
  CHECK(outcome(cr_at_end.substr(0, 64), lim) == 431);
}

TEST_CASE("parser: a request line longer than max_head_bytes gets 414") {
  http::limits lim;
  lim.max_head_bytes = 64;
  const std::string line = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK(outcome(line.substr(0, 63), lim) == -1);
  CHECK(outcome(line.substr(0, 64), lim) == 414);
  CHECK(outcome(line, lim) == 414);
  // A request line that ends within the window, but headers that do not: 431.
  const std::string line_fits = "GET /" + std::string(64 - 15, 'a') + " HTTP/1.1\n" + "Host: h\r\n\r\n";
  REQUIRE(line_fits.find('\n') == 63);
  CHECK(outcome(line_fits, lim) == 431);
  // Leading empty lines count towards the limit too.
  CHECK(outcome(std::string("\r\n\r\n") + "GET /" + std::string(60, 'a'), lim) == 414);
  CHECK(outcome("\n\n\n\nGET /" + std::string(54, 'a') + "\r", lim) == 414);
  lim.max_head_bytes = 5;
  CHECK(outcome("\r\n\r\n\r", lim) == 414);  // the window ends in the CR of what may be an empty line
  CHECK(outcome("\r\n\r\n", lim) == -1);
}

TEST_CASE("parser: max_headers is the most header lines accepted") {
  http::limits lim;
  lim.max_headers = 3;
  CHECK(outcome(get_with("X-A: 1\r\nX-B: 2\r\n"), lim) == 0);  // Host and two more
  CHECK(outcome(get_with("X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n"), lim) == 431);
  lim.max_headers = 0;
  CHECK(outcome("GET / HTTP/1.0\r\n\r\n", lim) == 0);
  CHECK(outcome("GET / HTTP/1.0\r\nX-A: 1\r\n\r\n", lim) == 431);
}

// ---- early rejection ---------------------------------------------------------------------------

TEST_CASE("parser: a client speaking another protocol is rejected before a line end") {
  CHECK(outcome("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s) == 400);  // a TLS ClientHello
  CHECK(outcome("PRI") == -1);                                             // could still be a method
  CHECK(outcome("G") == -1);
  CHECK(outcome("GET") == -1);
  CHECK(outcome("GET ") == -1);
  CHECK(outcome("GET /\x01") == -1);  // the rest of the request line is checked once it is complete
  CHECK(outcome(" ") == 400);
  CHECK(outcome("GE\tT") == 400);
  CHECK(outcome("\x80") == 400);
}

// ---- query parameters --------------------------------------------------------------------------

TEST_CASE("parser: query_param finds and decodes parameters") {
  const parsed p = parse(
      "GET /s?id=3&steps=10&q=a+b%20c%2B&empty=&bare&dup=1&dup=2&caf%C3%A9=yes&x%3Dy=z HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(p.result.status == parse_status::complete);
  const http::request& req = p.req;
  CHECK(req.query_param("id") == "3");
  CHECK(req.query_param("steps") == "10");
  CHECK(req.query_param("q") == "a b c+");
  CHECK(req.query_param("empty") == "");
  CHECK(req.query_param("bare") == "");
  CHECK(req.query_param("dup") == "1");
  CHECK(req.query_param("caf\xc3\xa9") == "yes");  // names are decoded before comparing
  CHECK(req.query_param("x=y") == "z");
  CHECK_FALSE(req.query_param("missing").has_value());
  CHECK_FALSE(req.query_param("i").has_value());   // a prefix of a name is not that name
  CHECK_FALSE(req.query_param("ID").has_value());  // case-sensitive
  CHECK_FALSE(req.query_param("").has_value());
}

TEST_CASE("parser: query_param edge cases") {
  http::request req;
  CHECK_FALSE(req.query_param("a").has_value());  // no query at all
  req.query = "&&a=1&";
  CHECK(req.query_param("a") == "1");
  req.query = "a=1=2";
  CHECK(req.query_param("a") == "1=2");
  req.query = "a=%zz&a=2";
  CHECK_FALSE(req.query_param("a").has_value());  // the first one is malformed
  req.query = "a=%4";
  CHECK_FALSE(req.query_param("a").has_value());
  req.query = "a=x%00y";
  CHECK_FALSE(req.query_param("a").has_value());
  req.query = "%zz=1&b=2";
  CHECK(req.query_param("b") == "2");  // a malformed name does not spoil the rest
  req.query = "a+b=c";
  CHECK(req.query_param("a b") == "c");
  req.query = "=v";
  CHECK(req.query_param("") == "v");
}
