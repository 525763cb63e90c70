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

// Runs the route for `req`. A route stops on its token by throwing
// ctoken::OperationCanceledException (the server turns it into 499, 503 or 504). Unknown
// paths get 404, methods other than GET and HEAD 405, a bad query parameter 400. Thread-safe.
http::response handle_request(const http::request& req, const ctoken::CancellationToken& token, progress& done,
                              const services& with);

}  // namespace demo

#endif
