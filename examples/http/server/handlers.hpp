// The request handlers and the router. A handler sees only a handler_context: the parsed
// request, the request's CancellationToken, a response writer and a step counter for the log.
// It never sees the socket, the watcher or the server: it only observes the token (one-way
// flow: the watcher cancels, the handler observes, the connection loop logs).
#ifndef CTOKEN_EXAMPLE_HTTP_HANDLERS_HPP
#define CTOKEN_EXAMPLE_HTTP_HANDLERS_HPP

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include <ctoken/ctoken.hpp>

#include "http_parser.hpp"
#include "request_registry.hpp"
#include "response.hpp"

namespace http {

struct handler_context {
  const request& req;
  ctoken::CancellationToken token;  // cancelled when the client leaves, on shutdown or at the deadline
  response_writer& out;
  bool keep_alive;   // whether the response may keep the connection open
  std::uint64_t id;  // the request id (from ?id= or assigned), used in events

  std::atomic<int> steps{0};        // units of work done so far (the access log reports it)
  std::atomic<int> total_steps{0};  // units of work planned, when the handler knows (/status reads it)
  bool completed = false;           // the handler did all its work (false: it stopped on the token)

  const request_registry* registry = nullptr;  // the server's recent requests, read-only (/status)

  std::string_view upstream_host{};  // /proxy's backend (server_config::upstream_host), a numeric address
  std::uint16_t upstream_port = 0;   // 0: no backend configured
};

// Runs the handler for ctx.req. A handler may return early when the token is cancelled, or
// throw ctoken::OperationCanceledException (ThrowIfCancellationRequested); the caller deals
// with both. Unknown paths get 404, methods other than GET and HEAD get 405.
void dispatch(handler_context& ctx);

}  // namespace http

#endif
