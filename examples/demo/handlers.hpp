// The demo's application: its routes (/, /slow, /compute, /sleep, /report, /stream, /now,
// /status, /proxy, and where built /sqlite, /postgres, /fetch), listed in one table in
// handlers.cpp. A route sees the parsed request, the
// request's CancellationToken, its progress counters and the demo's services; it returns a
// response and never sees the socket, the watcher or the server (one-way flow: the watcher
// cancels, the handler observes, the server writes and reports).
#ifndef CTOKEN_EXAMPLE_DEMO_HANDLERS_HPP
#define CTOKEN_EXAMPLE_DEMO_HANDLERS_HPP

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <ctoken/ctoken.hpp>

#include "events.hpp"
#include "http_parser.hpp"
#include "request_registry.hpp"
#include "response.hpp"

namespace demo {

// What the routes may use besides the request.
struct services {
  const request_registry* registry = nullptr;  // the recent requests, read-only (/status)
  std::string upstream_host = "127.0.0.1";     // /proxy's backend, a numeric address
  std::uint16_t upstream_port = 0;             // 0: no backend configured (/proxy answers 502)
  std::string postgres;                        // /postgres's libpq connection string; empty: none (503)
  // Set by demo::app: the port this server listens on (0 until it does; /fetch calls its own
  // /slow there when no upstream is configured) and where CALL_ENDED events go.
  const std::atomic<std::uint16_t>* own_port = nullptr;
  output* out = nullptr;
};

// The routes that do their work in a library, each present only where the library was found
// when the demo was configured (CMake defines these macros to 1):
//   CTOKEN_DEMO_HAVE_SQLITE   /sqlite    a recursive query on an in-memory SQLite database
//   CTOKEN_DEMO_HAVE_POSTGRES /postgres  SELECT pg_sleep() on the --postgres server
//   CTOKEN_DEMO_HAVE_CURL     /fetch     an outgoing HTTP call (libcurl) to /slow upstream
// "sqlite postgres curl" minus what was not built, space-separated; "" for none.
const char* integrations_built() noexcept;

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

// The routes in integrations.cpp (declared whether or not built; only built ones are listed).
http::response sqlite_query(const route_args& a);
http::response postgres_query(const route_args& a);
http::response fetch(const route_args& a);

// Writes "CALL_ENDED <id> <now ns> via=<via> result=<result>" to the events (see events.hpp).
void call_ended(const route_args& a, const char* via, const std::string& result);

// Runs the route for `req`. A route stops on its token by throwing
// ctoken::OperationCanceledException (the server turns it into 499, 503 or 504). Unknown
// paths get 404, methods other than GET and HEAD 405, a bad query parameter 400. Thread-safe.
http::response handle_request(const http::request& req, const ctoken::CancellationToken& token, progress& done,
                              const services& with);

}  // namespace demo

#endif
