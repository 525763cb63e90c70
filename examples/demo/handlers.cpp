#include "handlers.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "demo_page.hpp"
#include "http_client.hpp"
#include "observer.hpp"
#include "server.hpp"

namespace demo {

long long query_reader::integer(std::string_view name, long long fallback, long long lo, long long hi) {
  const std::optional<std::string> text = req_.query_param(name);
  if (!text) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  if (text->empty() || errno != 0 || *end != '\0' || value < lo || value > hi) {
    errors_ += "bad query parameter " + std::string(name) + ": expected an integer in [" + std::to_string(lo) + ", " +
               std::to_string(hi) + "]\n";
    return fallback;
  }
  return value;
}

std::string query_reader::choice(std::string_view name, std::string_view choices) {
  const std::optional<std::string> text = req_.query_param(name);
  const std::string_view first = choices.substr(0, choices.find('|'));
  if (!text) return std::string(first);
  std::string_view rest = choices;
  while (!rest.empty()) {
    const std::size_t bar = rest.find('|');
    if (rest.substr(0, bar) == *text) return *text;
    rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
  }
  errors_ += "bad query parameter " + std::string(name) + ": expected one of " + std::string(choices) + "\n";
  return std::string(first);
}

void query_reader::check() const {
  if (!errors_.empty()) throw bad_parameter(errors_);
}

void stop(const ctoken::CancellationToken& token) {
  token.ThrowIfCancellationRequested();
  throw ctoken::OperationCanceledException(token);  // not reached for a cancelled token
}

void step(progress& done) noexcept { done.steps.fetch_add(1, std::memory_order_relaxed); }  // relaxed: see progress

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Burns CPU until `until`, checking the token between small slices when `check` is set.
// Returns false if it stopped because of the token.
bool spin_until(steady_clock::time_point until, const ctoken::CancellationToken& token, bool check) {
  volatile std::uint64_t sink = 0;
  while (steady_clock::now() < until) {
    if (check && token.IsCancellationRequested()) return false;  // one atomic load
    for (int i = 0; i < 1000; ++i) sink = sink + static_cast<std::uint64_t>(i);
  }
  return true;
}

// /slow?steps=10&step_us=1000000&work=sleep|cpu|idle&check=1
// Ten one-second steps by default: the classic demonstration. `work` chooses how a step is
// spent (sleeping cancellably, burning CPU, or waiting on the token itself); check=0 ignores
// the token (the "before" picture: the work goes on after the client left).
http::response slow(const route_args& a) {
  query_reader q(a.req);
  const auto steps = static_cast<int>(q.integer("steps", 10, 0, 1000));
  const auto step_length = microseconds(q.integer("step_us", 1000000, 0, 10000000));
  const std::string work = q.choice("work", "sleep|cpu|idle");
  const bool check = q.integer("check", 1, 0, 1) == 1;
  q.check();
  const ctoken::CancellationToken observed = check ? a.token : ctoken::CancellationToken::None();
  a.done.total.store(steps, std::memory_order_relaxed);
  for (int i = 0; i < steps; ++i) {
    if (observed.IsCancellationRequested()) stop(observed);
    bool finished = true;
    if (work == "cpu") {
      finished = spin_until(steady_clock::now() + step_length, a.token, check);
    } else if (work == "idle") {
      // Waits on the token without polling (futex): wakes at once on cancellation.
      finished = !observed.WaitFor(step_length);
    } else {
      finished = ctoken::SleepFor(step_length, observed);
    }
    if (!finished) stop(a.token);
    step(a.done);
  }
  return http::response::text(200, "done " + std::to_string(steps) + " steps\n");
}

// /compute?ms=2000: a CPU-bound loop (counting primes) that checks the token every number.
http::response compute(const route_args& a) {
  query_reader q(a.req);
  const auto budget = milliseconds(q.integer("ms", 2000, 0, 60000));
  q.check();
  const auto until = steady_clock::now() + budget;
  long long primes = 0;
  for (long long n = 2; steady_clock::now() < until; ++n) {
    a.token.ThrowIfCancellationRequested();
    bool prime = true;
    for (long long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    if (prime && ++primes % 1000 == 0) step(a.done);
  }
  return http::response::text(200, "found " + std::to_string(primes) + " primes\n");
}

// /sleep?ms=2000: one cancellable sleep.
http::response sleep(const route_args& a) {
  query_reader q(a.req);
  const auto duration = milliseconds(q.integer("ms", 2000, 0, 60000));
  q.check();
  a.done.total.store(1, std::memory_order_relaxed);
  if (!ctoken::SleepFor(duration, a.token)) stop(a.token);
  step(a.done);
  return http::response::text(200, "slept\n");
}

// /report?sections=10&rows=200: nested loops that simply call ThrowIfCancellationRequested();
// the server's one catch turns the exception into a one-line log entry.
http::response report(const route_args& a) {
  query_reader q(a.req);
  const auto sections = static_cast<int>(q.integer("sections", 10, 1, 100));
  const auto rows = static_cast<int>(q.integer("rows", 200, 1, 10000));
  q.check();
  a.done.total.store(sections, std::memory_order_relaxed);
  std::string body;
  for (int s = 0; s < sections; ++s) {
    double total = 0;
    for (int r = 0; r < rows; ++r) {
      a.token.ThrowIfCancellationRequested();
      std::this_thread::sleep_for(microseconds(500));  // stands for a query per row
      total += r * 0.5;
    }
    body += "section " + std::to_string(s) + ": " + std::to_string(total) + "\n";
    step(a.done);
  }
  return http::response::text(200, body);
}

// /stream?chunks=600&interval_ms=100: chunked output until cancelled (or `chunks` were sent).
// The server pulls the pieces; each wait between two of them stops on the token (a failed
// write cancels the token too: the response writer does it).
http::response stream(const route_args& a) {
  query_reader q(a.req);
  const auto chunks = static_cast<int>(q.integer("chunks", 600, 1, 100000));
  const auto interval = milliseconds(q.integer("interval_ms", 100, 0, 10000));
  q.check();
  a.done.total.store(chunks, std::memory_order_relaxed);
  http::response r;
  // The generator runs after this function returned: it owns what it uses (a token is a
  // handle; `done` is kept alive by the app until the request finished).
  r.next_chunk = [token = a.token, done = &a.done, chunks, interval, sent = 0]() mutable -> std::optional<std::string> {
    if (sent > 0) {
      step(*done);  // the previous piece was written
      if (!ctoken::SleepFor(interval, token)) stop(token);
    }
    if (sent == chunks) return std::nullopt;
    return "tick " + std::to_string(sent++) + "\n";
  };
  return r;
}

// /now: the server's CLOCK_MONOTONIC in ns, so a client on the same machine can compare.
http::response now(const route_args&) { return http::response::text(200, std::to_string(http::monotonic_ns()) + "\n"); }

// /: the demo page (a route to run, Start and Cancel buttons: fetch + AbortController). Its
// route list offers what this server can run: /slow, and the library routes that were built
// (/postgres only when a server was given with --postgres).
http::response index(const route_args& a) {
  std::string options = "<option value=\"slow\">/slow</option>";
  const std::string built = integrations_built();
  if (built.find("sqlite") != std::string::npos) options += "<option value=\"sqlite\">/sqlite</option>";
  if (built.find("postgres") != std::string::npos && !a.with.postgres.empty()) {
    options += "<option value=\"postgres\">/postgres</option>";
  }
  if (built.find("curl") != std::string::npos) options += "<option value=\"fetch\">/fetch</option>";
  std::string page(demo_page());
  const std::string_view marker = "<!--ROUTE_OPTIONS-->";
  if (const std::size_t at = page.find(marker); at != std::string::npos) page.replace(at, marker.size(), options);
  return http::response::text(200, page, "text/html; charset=utf-8");
}

// /status?id=N: the server's view of request N as JSON (running with its steps so far, done or
// cancelled with the reason and status), from the registry. The demo page polls it.
http::response status(const route_args& a) {
  const std::optional<std::string> given = a.req.query_param("id");
  const std::string id = given ? http::sanitize_request_id(*given) : std::string();
  if (id.empty() || id != *given) {
    throw bad_parameter("bad query parameter id: expected a request id (1 to " +
                        std::to_string(http::max_request_id_bytes) + " of A-Z a-z 0-9 . _ : -)\n");
  }
  const std::string body = a.with.registry != nullptr ? a.with.registry->json(id) : request_registry().json(id);
  return http::response::text(200, body + "\n", "application/json");
}

// /proxy?<query>: the same work one hop further: GET /slow?<query> from the backend
// (--upstream HOST:PORT) with this request's own token. If this request's client leaves, the
// token's registration in http_client shuts the upstream socket down: the backend sees its own
// client leave and cancels its work too (one chain of cancellation across two servers). The
// query string is passed on as received (the parser admits only visible ASCII in it).
http::response proxy(const route_args& a) {
  if (a.with.upstream_port == 0) return http::response::text(502, "no upstream configured (--upstream HOST:PORT)\n");
  a.done.total.store(1, std::memory_order_relaxed);
  http_client::options opts;
  opts.style = http_client::cancel_style::shutdown_socket;
  opts.timeout = milliseconds::max();  // the request's token already carries the server's deadline
  const std::string target = a.req.query.empty() ? "/slow" : "/slow?" + a.req.query;
  const http_client::result r = http_client::Get(a.with.upstream_host, a.with.upstream_port, target, a.token, opts);
  // Cancelled: the server reports the token's reason (499, 503 or 504) as for any handler.
  if (r.cancelled()) stop(a.token);
  if (!r.ok()) {
    return http::response::text(502, std::string("upstream failed during ") + http_client::to_string(r.where) + ": " +
                                         r.error.message() + "\n");
  }
  step(a.done);
  // The backend's Content-Type, if it is one line of visible text.
  const std::string* type = r.find("content-type");
  const bool clean =
      type != nullptr && std::all_of(type->begin(), type->end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  return http::response::text(r.status, r.body, clean ? *type : "application/octet-stream");
}

}  // namespace

http::response handle_request(const http::request& req, const ctoken::CancellationToken& token, progress& done,
                              const services& with) {
  struct route {
    std::string_view path;
    http::response (*run)(const route_args&);
  };
  // Every route of the demo, in one place: add yours here.
  static constexpr route routes[] = {
    {"/", index},
    {"/slow", slow},
    {"/compute", compute},
    {"/sleep", sleep},
    {"/report", report},
    {"/stream", stream},
    {"/now", now},
    {"/status", status},
    {"/proxy", proxy},
  // The routes that work through a library (integrations.cpp), where it was found.
#if CTOKEN_DEMO_HAVE_SQLITE
    {"/sqlite", sqlite_query},
#endif
#if CTOKEN_DEMO_HAVE_POSTGRES
    {"/postgres", postgres_query},
#endif
#if CTOKEN_DEMO_HAVE_CURL
    {"/fetch", fetch},
#endif
  };
  for (const route& r : routes) {
    if (req.path != r.path) continue;
    if (req.method != "GET" && req.method != "HEAD") return http::response::text(405, "method not allowed\n");
    try {
      return r.run(route_args{req, token, done, with});
    } catch (const bad_parameter& e) {
      return http::response::text(400, e.what());
    }
  }
  return http::response::text(404, "not found\n");
}

}  // namespace demo
