// libFuzzer target for the request-head parser of the example servers
// (examples/http/server/http_parser.hpp). Small limits, so that the fuzzer reaches 414 / 431 / 413
// with small inputs. Besides the sanitizers' checks, it verifies on every input:
//   - the result is well-formed: consumed <= size and <= max_head_bytes, a known error status;
//   - a complete request satisfies what the parser promises (origin-form path, lower-case token
//     header names, trimmed values, Host in HTTP/1.1, no Transfer-Encoding, limits respected);
//   - re-parsing exactly the head, buffer[0:consumed], gives the same request;
//   - every prefix of the input gives incomplete or the same answer as the whole input, which is
//     what a server feeding the bytes in two (or more) reads relies on;
//   - pipelined requests after the first one (and its body) parse with the same invariants.
//
// Build and run by hand (new inputs go to the first directory, keep it out of the repository):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iexamples/http/server
//           tests/fuzz/http_parser_fuzz.cpp examples/http/server/http_parser.cpp -o /tmp/fuzz
//   mkdir -p /tmp/corpus && /tmp/fuzz -max_total_time=60 /tmp/corpus tests/fuzz/corpus/http_parser
//
// Built with -DHTTP_PARSER_FUZZ_REPLAY (and without -fsanitize=fuzzer) it gets a main() that runs
// the files named on the command line once each, so any compiler can replay the corpus.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http_parser.hpp"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

constexpr http::limits fuzz_limits() {
  http::limits lim;
  lim.max_head_bytes = 256;
  lim.max_headers = 8;
  lim.max_body_bytes = 100;
  return lim;
}

bool is_tchar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool same_request(const http::request& a, const http::request& b) {
  if (a.method != b.method || a.target != b.target || a.path != b.path || a.query != b.query ||
      a.version_minor != b.version_minor || a.content_length != b.content_length || a.keep_alive != b.keep_alive ||
      a.headers.size() != b.headers.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) return false;
  }
  return true;
}

// What must hold for any result, and for a complete request in particular.
void check_result(std::string_view input, const http::limits& lim, const http::parse_result& r,
                  const http::request& req) {
  check(r.consumed <= input.size(), "consumed <= size");
  check(r.consumed <= lim.max_head_bytes, "consumed <= max_head_bytes");
  if (r.status == http::parse_status::error) {
    const int s = r.error_status;
    check(s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505, "known error status");
    check(r.error_reason != nullptr && r.error_reason[0] != '\0', "error has a reason");
    check(r.consumed == 0, "no consumed on error");
    return;
  }
  if (r.status == http::parse_status::incomplete) {
    check(r.consumed == 0, "no consumed on incomplete");
    check(input.size() < lim.max_head_bytes, "incomplete only below max_head_bytes");
    return;
  }
  check(r.consumed > 0 && input[r.consumed - 1] == '\n', "a head ends with LF");
  check(!req.method.empty(), "method not empty");
  for (const char c : req.method) check(is_tchar(c), "method is a token");
  check(!req.target.empty() && req.target[0] == '/', "target in origin-form");
  check(!req.path.empty() && req.path[0] == '/', "path starts with /");
  check(req.path.find('\0') == std::string::npos, "no NUL in path");
  check(req.target.find(req.query) != std::string::npos, "query is part of the target");
  check(req.version_minor == 0 || req.version_minor == 1, "HTTP/1.0 or 1.1");
  check(req.headers.size() <= lim.max_headers, "max_headers");
  check(req.content_length <= lim.max_body_bytes, "max_body_bytes");
  check(req.version_minor == 0 || req.find("host") != nullptr, "Host in HTTP/1.1");
  check(req.find("transfer-encoding") == nullptr, "no Transfer-Encoding");
  for (const http::header& h : req.headers) {
    check(!h.name.empty(), "header name not empty");
    for (const char c : h.name) check(is_tchar(c) && !(c >= 'A' && c <= 'Z'), "header name lower-case token");
    check(h.value.empty() || (h.value.front() != ' ' && h.value.front() != '\t'), "value trimmed at the front");
    check(h.value.empty() || (h.value.back() != ' ' && h.value.back() != '\t'), "value trimmed at the back");
    for (const char c : h.value) check(c != '\r' && c != '\n' && c != '\0', "no CR, LF or NUL in values");
  }
  // query_param must not crash, and never returns a NUL.
  for (const std::string_view name : {"id", "steps", "", "a b"}) {
    if (const auto v = req.query_param(name)) check(v->find('\0') == std::string::npos, "no NUL in a parameter");
  }
}

void fuzz_one(std::string_view input) {
  const http::limits lim = fuzz_limits();
  http::request req;
  const http::parse_result r = http::parse_request_head(input, lim, req);
  check_result(input, lim, r, req);

  if (r.status == http::parse_status::complete) {
    // The head alone parses to the same request.
    http::request again;
    const http::parse_result r2 = http::parse_request_head(input.substr(0, r.consumed), lim, again);
    check(r2.status == http::parse_status::complete && r2.consumed == r.consumed, "head alone is complete");
    check(same_request(req, again), "head alone gives the same request");
  }

  // Every prefix gives incomplete or the same answer. Prefixes of max_head_bytes or more see the
  // same window as the whole input, so only the shorter ones are worth trying. One request object
  // is reused throughout, as a connection handler would, to catch state leaking between calls.
  http::request reused;
  const std::size_t interesting = input.size() < lim.max_head_bytes ? input.size() : lim.max_head_bytes;
  for (std::size_t n = 0; n < interesting; ++n) {
    const http::parse_result p = http::parse_request_head(input.substr(0, n), lim, reused);
    if (p.status == http::parse_status::incomplete) continue;
    check(p.status == r.status && p.consumed == r.consumed && p.error_status == r.error_status,
          "a prefix gives incomplete or the same answer");
    if (p.status == http::parse_status::complete) check(same_request(req, reused), "a prefix gives the same request");
  }

  // Pipelined requests: skip the head and the body, and parse what follows.
  http::request current = req;
  http::parse_result cur = r;
  std::string_view rest = input;
  for (int i = 0; i < 8 && cur.status == http::parse_status::complete; ++i) {
    const std::size_t skip = cur.consumed + current.content_length;
    if (skip > rest.size()) break;  // the body is not all there
    rest.remove_prefix(skip);
    cur = http::parse_request_head(rest, lim, current);
    check_result(rest, lim, cur, current);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz_one(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

#ifdef HTTP_PARSER_FUZZ_REPLAY
// Runs each file named on the command line through the target once.
int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::FILE* f = std::fopen(argv[i], "rb");
    if (f == nullptr) {
      std::perror(argv[i]);
      return 1;
    }
    std::string data;
    char chunk[4096];
    std::size_t n = 0;
    while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) data.append(chunk, n);
    std::fclose(f);
    fuzz_one(data);
  }
  std::printf("replayed %d inputs\n", argc - 1);
  return 0;
}
#endif
