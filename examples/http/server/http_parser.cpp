// The request-head parser: see http_parser.hpp for the contract.
//
// The parse runs in three steps, each over the first lim.max_head_bytes of the buffer only (the
// "window": a head must end within it):
//   1. skip a few empty lines before the request line, and check that the request line starts
//      like one (a method), so that a client speaking something else gets its 400 at once;
//   2. find the end of the head, the first empty line after the request line: until it is in
//      the window the answer is incomplete, or 414 / 431 once the window is full;
//   3. parse the complete head line by line into `out`, then check what needs all the headers
//      (Host, Transfer-Encoding, Content-Length against the limit).
// A prefix of a buffer therefore gives either incomplete or the same answer as the whole buffer.
#include "http_parser.hpp"

namespace http {
namespace {

// An error found while parsing: the status to answer with, and a reason for the log.
// status 0 means no error.
struct error {
  int status = 0;
  const char* reason = "";
};
constexpr error ok{};

// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line (some
// clients send a CRLF after a POST body). A few are tolerated; an endless stream of them is not.
constexpr int max_leading_empty_lines = 4;

// ---- character classes (RFC 9110 §5.6.2, RFC 5234 B.1); ASCII only, independent of the locale --

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }   // optional whitespace
constexpr bool is_vchar(char c) noexcept { return c >= '!' && c <= '~'; }  // visible, not SP or DEL

// tchar: the characters of a token (a method, a header field name, a Connection option).
constexpr bool is_tchar(char c) noexcept {
  return is_digit(c) || is_alpha(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// field-vchar / SP / HTAB. obs-text (bytes 0x80-0xFF) is allowed in values for compatibility
// (RFC 9110 §5.5); every other control character, and in particular a stray CR, is not.
constexpr bool is_field_value_char(char c) noexcept {
  return is_vchar(c) || is_ows(c) || static_cast<unsigned char>(c) >= 0x80;
}

// The request-target is restricted to visible ASCII: no spaces, controls or raw non-ASCII bytes
// (clients percent-encode those). '#' starts a fragment, which is never sent (RFC 9112 §3.2).
constexpr bool is_target_char(char c) noexcept { return is_vchar(c) && c != '#'; }

// What a Host value may contain: reg-name or IP-literal, and a port (RFC 3986 §3.2.2).
constexpr bool is_host_char(char c) noexcept {
  return is_digit(c) || is_alpha(c) || std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
}

template <class Pred>
bool all_of(std::string_view s, Pred pred) noexcept {
  for (const char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

constexpr char to_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) noexcept { return s.substr(0, prefix.size()) == prefix; }

int hex_value(char c) noexcept {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes (and '+' as a space, for query strings) into `out`. False on a malformed
// escape ("%", "%4", "%zz") or on an escaped NUL, which would truncate the string for any C API
// it reaches and has no business in a path or a parameter.
bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      if (c == '\0') return false;
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    out.push_back(c);
  }
  return true;
}

// The line of `head` that starts at `pos`, without its terminator (CRLF, or a bare LF which is
// accepted too: RFC 9112 §2.2); moves `pos` past it. The caller has made sure a '\n' follows.
std::string_view next_line(std::string_view head, std::size_t& pos) noexcept {
  const std::size_t lf = head.find('\n', pos);
  std::string_view line = head.substr(pos, lf - pos);
  pos = lf + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// request-line = method SP request-target SP HTTP-version (RFC 9112 §3), with exactly one space
// between the parts: the RFC allows a recipient to split on any whitespace, but a server that
// disagrees with a proxy in front of it about where the target ends is open to smuggling.
// (The early scan in parse_request_head has checked the method already; this stands on its own.)
error parse_request_line(std::string_view line, request& out) {
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return {400, "bad request line"};
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return {400, "bad request line"};
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);

  if (method.empty() || !all_of(method, is_tchar)) return {400, "bad method"};
  if (target.empty() || !all_of(target, is_target_char)) return {400, "bad request-target"};
  // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). A well-formed version
  // other than 1.0 or 1.1 is refused with 505; anything else is not HTTP/1.x at all.
  if (version.size() != 8 || !starts_with(version, "HTTP/") || !is_digit(version[5]) || version[6] != '.' ||
      !is_digit(version[7])) {
    return {400, "bad HTTP version"};
  }
  if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) return {505, "unsupported HTTP version"};

  // Only origin-form, "/path?query" (RFC 9112 §3.2.1), is accepted: absolute-form is for proxies,
  // authority-form for CONNECT and asterisk-form for a server-wide OPTIONS, none of which an
  // origin server that routes on the path needs to serve.
  if (target.front() != '/') return {400, "request-target not in origin-form"};

  const std::size_t question = target.find('?');
  // Note: the path is decoded but not normalised. "%2F" becomes '/' and "/../" stays as it is, so
  // code that maps paths to files must check for ".." segments itself.
  if (!percent_decode(target.substr(0, question), false, out.path)) return {400, "bad percent-encoding in path"};
  out.query.assign(question == std::string_view::npos ? std::string_view() : target.substr(question + 1));
  out.method.assign(method);
  out.target.assign(target);
  out.version_minor = version[7] - '0';
  return ok;
}

// Content-Length = 1*DIGIT (RFC 9110 §8.6). Leading zeros are dropped so that duplicates can be
// compared as values ("05" and "5" agree) without converting numbers that may not fit.
std::string_view content_length_digits(std::string_view value) noexcept {
  if (value.empty() || !all_of(value, is_digit)) return {};
  while (value.size() > 1 && value.front() == '0') value.remove_prefix(1);
  return value;
}

// The digits as a number, if it is at most `max`. Overflow-safe: the value never exceeds `max`.
bool digits_at_most(std::string_view digits, std::size_t max, std::size_t& value) noexcept {
  std::size_t n = 0;
  for (const char d : digits) {
    const auto digit = static_cast<std::size_t>(d - '0');
    if (n > max / 10) return false;
    n *= 10;  // n <= max now
    if (digit > max - n) return false;
    n += digit;
  }
  value = n;
  return true;
}

// Applies one Connection header value, a comma-separated list of case-insensitive options
// (RFC 9110 §7.6.1), to the close / keep-alive flags. Other options (e.g. "upgrade") are ignored.
void scan_connection_options(std::string_view value, bool& close, bool& keep_alive) noexcept {
  while (true) {
    const std::size_t comma = value.find(',');
    const std::string_view option = trim_ows(value.substr(0, comma));
    if (iequals(option, "close")) close = true;
    if (iequals(option, "keep-alive")) keep_alive = true;
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

parse_result incomplete() noexcept { return {parse_status::incomplete}; }
parse_result failed(int status, const char* reason) noexcept { return {parse_status::error, 0, status, reason}; }
parse_result failed(error e) noexcept { return failed(e.status, e.reason); }

}  // namespace

const std::string* request::find(std::string_view lower_name) const noexcept {
  for (const header& h : headers) {
    if (h.name == lower_name) return &h.value;
  }
  return nullptr;
}

std::optional<std::string> request::query_param(std::string_view name) const {
  std::string key;
  std::string_view rest = query;
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);

    const std::size_t equals = pair.find('=');
    const std::string_view raw_value = equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
    if (pair.empty() || !percent_decode(pair.substr(0, equals), true, key) || key != name) continue;
    std::string value;
    if (!percent_decode(raw_value, true, value)) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

parse_result parse_request_head(std::string_view buffer, const limits& lim, request& out) {
  // A head must end within the first max_head_bytes; once that many bytes are in and it has not,
  // it is too large, whatever follows.
  const std::string_view window = buffer.substr(0, lim.max_head_bytes);
  const bool window_full = buffer.size() >= lim.max_head_bytes;

  // ---- 1. empty lines before the request line, and the start of the method ------------------
  std::size_t start = 0;
  for (int skipped = 0;; ++skipped) {
    const std::string_view rest = window.substr(start);
    std::size_t eol = 0;
    if (starts_with(rest, "\r\n")) {
      eol = 2;
    } else if (starts_with(rest, "\n")) {
      eol = 1;
    } else if (rest == "\r") {  // an empty line, or a stray CR: the next byte will tell
      return window_full ? failed(414, "request line too long") : incomplete();
    } else {
      break;
    }
    if (skipped == max_leading_empty_lines) return failed(400, "too many empty lines before the request line");
    start += eol;
  }
  // Everything up to the first space must be a method, and a method is not empty. Checking it on
  // the partial line rejects a client that speaks another protocol (say, a TLS handshake on the
  // plain-text port) at once, instead of waiting for a line end that may never come.
  for (std::size_t i = start; i < window.size() && window[i] != ' '; ++i) {
    if (!is_tchar(window[i])) return failed(400, "bad method");
  }
  if (start < window.size() && window[start] == ' ') return failed(400, "bad method");

  // ---- 2. the end of the head: the first empty line after the request line ------------------
  const std::size_t request_line_end = window.find('\n', start);
  if (request_line_end == std::string_view::npos) {
    return window_full ? failed(414, "request line too long") : incomplete();
  }
  std::size_t head_end = 0;  // just past the empty line's LF
  for (std::size_t pos = request_line_end + 1; head_end == 0;) {
    const std::size_t lf = window.find('\n', pos);
    if (lf == std::string_view::npos) {
      return window_full ? failed(431, "request head too large") : incomplete();
    }
    if (lf == pos || (lf == pos + 1 && window[pos] == '\r')) head_end = lf + 1;
    pos = lf + 1;
  }
  const std::string_view head = window.substr(0, head_end);

  // ---- 3. the complete head, line by line -----------------------------------------------------
  out.headers.clear();
  out.content_length = 0;
  std::size_t pos = start;
  if (const error e = parse_request_line(next_line(head, pos), out); e.status != 0) return failed(e);

  bool has_host = false;
  bool has_transfer_encoding = false;
  std::string_view content_length;  // its digits, if there is a Content-Length
  bool connection_close = false;
  bool connection_keep_alive = false;
  while (true) {
    const std::string_view line = next_line(head, pos);
    if (line.empty()) break;  // the blank line that ends the head

    if (out.headers.size() == lim.max_headers) return failed(431, "too many header fields");
    // A line starting with whitespace is obs-fold, the obsolete continuation of the previous
    // field line (RFC 9112 §5.2), or, right after the request line, a header that parsers may
    // disagree about (§2.2). Both may be rejected, which is simpler and safer than unfolding.
    if (is_ows(line.front())) return failed(400, "obsolete line folding");
    // field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). Whitespace between the name
    // and the colon MUST be rejected (§5.1): it has been used to smuggle headers past proxies.
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return failed(400, "header line without a colon");
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (name.empty()) return failed(400, "empty header field name");
    if (is_ows(name.back())) return failed(400, "whitespace before the colon of a header");
    if (!all_of(name, is_tchar)) return failed(400, "bad header field name");
    if (!all_of(value, is_field_value_char)) return failed(400, "bad character in a header value");

    header& h = out.headers.emplace_back();
    h.name.resize(name.size());
    for (std::size_t i = 0; i < name.size(); ++i) h.name[i] = to_lower(name[i]);
    h.value.assign(value);

    if (h.name == "host") {
      // RFC 9112 §3.2: exactly one Host, with a valid value, or 400.
      if (has_host) return failed(400, "more than one Host header");
      if (!all_of(value, is_host_char)) return failed(400, "bad Host header");
      has_host = true;
    } else if (h.name == "content-length") {
      // The body's length must be unambiguous: a request with two different lengths is an
      // attempt at smuggling or a broken client (RFC 9112 §6.3). Repeating the same one is fine.
      const std::string_view digits = content_length_digits(value);
      if (digits.empty()) return failed(400, "bad Content-Length");
      if (!content_length.empty() && digits != content_length) return failed(400, "conflicting Content-Length");
      content_length = digits;
    } else if (h.name == "transfer-encoding") {
      has_transfer_encoding = true;
    } else if (h.name == "connection") {
      scan_connection_options(value, connection_close, connection_keep_alive);
    }
  }

  // ---- checks that need the whole head --------------------------------------------------------
  if (out.version_minor == 1 && !has_host) return failed(400, "missing Host header");
  // Transfer-Encoding (chunked, in practice) would frame the body instead of Content-Length. The
  // example server does not read chunked request bodies, so any Transfer-Encoding is refused with
  // 501 Not Implemented (RFC 9112 §6.1). That also closes the classic smuggling hole of a request
  // carrying both headers, which front-end and back-end might frame differently.
  if (has_transfer_encoding) return failed(501, "Transfer-Encoding not supported");
  if (!content_length.empty() && !digits_at_most(content_length, lim.max_body_bytes, out.content_length)) {
    return failed(413, "Content-Length over the limit");
  }
  // HTTP/1.1 connections persist unless told otherwise, HTTP/1.0 ones close unless told
  // otherwise (RFC 9112 §9.3). A "close" wins over a "keep-alive" in the same request.
  out.keep_alive = connection_close ? false : (connection_keep_alive || out.version_minor == 1);

  return {parse_status::complete, head_end};
}

}  // namespace http
