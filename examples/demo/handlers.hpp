// The demo's application: its routes (/, /slow, /compute, /sleep, /report, /stream, /now,
// /status, /proxy), listed in one table in handlers.cpp. A route sees the parsed request, the
// request's CancellationToken, its progress counters and the demo's services; it returns a
// response and never sees the socket, the watcher or the server (one-way flow: the watcher
// cancels, the handler observes, the server writes and reports).
#ifndef CTOKEN_EXAMPLE_DEMO_HANDLERS_HPP
#define CTOKEN_EXAMPLE_DEMO_HANDLERS_HPP

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <ctoken/ctoken.hpp>

#include "http_parser.hpp"
#include "request_registry.hpp"
#include "response.hpp"

namespace demo {

// What the routes may use besides the request.
struct services {
  const request_registry* registry = nullptr;  // the recent requests, read-only (/status)
  std::string upstream_host = "127.0.0.1";     // /proxy's backend, a numeric address
  std::uint16_t upstream_port = 0;             // 0: no backend configured (/proxy answers 502)
};

// A query parameter that is present but not a valid value: answered 400, naming it.
class bad_parameter : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// What a route gets. Routes are listed in one table, in handlers.cpp; a route may live in
// another file of this folder: declare it below, define it there, add it to the table.
struct route_args {
  const http::request& req;
  const ctoken::CancellationToken& token;  // cancelled when the client leaves, on shutdown, at the deadline
  progress& done;                          // this request's counters (the app keeps them alive)
  const services& with;
};

// Reads a route's query parameters. Everything a client sends is bounded: a parameter that is
// present but malformed or out of range is an error, collected so that one 400 names every
// bad parameter, one line each: "bad query parameter NAME: expected ..." (check() throws
// bad_parameter with them). Not thread-safe: one per request.
class query_reader {
 public:
  explicit query_reader(const http::request& req) : req_(req) {}
  // An integer in [lo, hi]; absent: `fallback`.
  long long integer(std::string_view name, long long fallback, long long lo, long long hi);
  // One of `choices` ("a|b|c"); absent: the first.
  std::string choice(std::string_view name, std::string_view choices);
  // Throws bad_parameter naming every bad parameter read so far.
  void check() const;

 private:
  const http::request& req_;
  std::string errors_;
};

// Stops a route whose token is cancelled: throws OperationCanceledException (the server
// reports the reason as 499, 503 or 504).
[[noreturn]] void stop(const ctoken::CancellationToken& token);

// One unit of work done (done.steps + 1). Thread-safe, one atomic add.
void step(progress& done) noexcept;

// Runs the route for `req`. A route stops on its token by throwing
// ctoken::OperationCanceledException (the server turns it into 499, 503 or 504). Unknown
// paths get 404, methods other than GET and HEAD 405, a bad query parameter 400. Thread-safe.
http::response handle_request(const http::request& req, const ctoken::CancellationToken& token, progress& done,
                              const services& with);

}  // namespace demo

#endif
