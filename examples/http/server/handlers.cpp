#include "handlers.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "demo_page.hpp"
#include "events.hpp"
#include "http_client.hpp"

namespace http {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Reads an integer query parameter, clamped to [lo, hi]: everything a client sends is bounded.
long long int_param(const request& req, std::string_view name, long long fallback, long long lo, long long hi) {
  const auto text = req.query_param(name);
  if (!text || text->empty()) return fallback;
  char* end = nullptr;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  if (end == nullptr || *end != '\0') return fallback;
  return std::clamp(value, lo, hi);
}

std::string text_param(const request& req, std::string_view name, std::string fallback) {
  auto value = req.query_param(name);
  return value ? *value : fallback;
}

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
void slow(handler_context& ctx) {
  const auto steps = static_cast<int>(int_param(ctx.req, "steps", 10, 0, 1000));
  const auto step = microseconds(int_param(ctx.req, "step_us", 1000000, 0, 10000000));
  const std::string work = text_param(ctx.req, "work", "sleep");
  const bool check = int_param(ctx.req, "check", 1, 0, 1) == 1;
  const ctoken::CancellationToken observed = check ? ctx.token : ctoken::CancellationToken::None();
  ctx.total_steps = steps;
  for (int i = 0; i < steps; ++i) {
    if (observed.IsCancellationRequested()) return;
    bool finished = true;
    if (work == "cpu") {
      finished = spin_until(steady_clock::now() + step, ctx.token, check);
    } else if (work == "idle") {
      // Waits on the token without polling (futex): wakes at once on cancellation.
      finished = !observed.WaitFor(step);
    } else {
      finished = ctoken::SleepFor(step, observed);
    }
    if (!finished) return;
    ctx.steps.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  }
  ctx.completed = true;
  ctx.out.respond(200, "text/plain", "done " + std::to_string(steps) + " steps\n", ctx.keep_alive);
}

// /compute?ms=2000: a CPU-bound loop (counting primes) that checks the token every number.
void compute(handler_context& ctx) {
  const auto budget = milliseconds(int_param(ctx.req, "ms", 2000, 0, 60000));
  const auto until = steady_clock::now() + budget;
  long long primes = 0;
  for (long long n = 2; steady_clock::now() < until; ++n) {
    if (ctx.token.IsCancellationRequested()) return;
    bool prime = true;
    for (long long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    if (prime && ++primes % 1000 == 0) ctx.steps.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  }
  ctx.completed = true;
  ctx.out.respond(200, "text/plain", "found " + std::to_string(primes) + " primes\n", ctx.keep_alive);
}

// /sleep?ms=2000: one cancellable sleep.
void sleep(handler_context& ctx) {
  const auto duration = milliseconds(int_param(ctx.req, "ms", 2000, 0, 60000));
  ctx.total_steps = 1;
  if (!ctoken::SleepFor(duration, ctx.token)) return;
  ctx.steps = 1;
  ctx.completed = true;
  ctx.out.respond(200, "text/plain", "slept\n", ctx.keep_alive);
}

// /report?sections=10&rows=200: nested loops that simply call ThrowIfCancellationRequested();
// the server's one catch turns the exception into a one-line log entry.
void report(handler_context& ctx) {
  const auto sections = static_cast<int>(int_param(ctx.req, "sections", 10, 1, 100));
  const auto rows = static_cast<int>(int_param(ctx.req, "rows", 200, 1, 10000));
  ctx.total_steps = sections;
  std::string body;
  for (int s = 0; s < sections; ++s) {
    double total = 0;
    for (int r = 0; r < rows; ++r) {
      ctx.token.ThrowIfCancellationRequested();
      std::this_thread::sleep_for(microseconds(500));  // stands for a query per row
      total += r * 0.5;
    }
    body += "section " + std::to_string(s) + ": " + std::to_string(total) + "\n";
    ctx.steps.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  }
  ctx.completed = true;
  ctx.out.respond(200, "text/plain", body, ctx.keep_alive);
}

// /stream?chunks=600&interval_ms=100: chunked output until cancelled (or `chunks` were sent).
void stream(handler_context& ctx) {
  const auto chunks = static_cast<int>(int_param(ctx.req, "chunks", 600, 1, 100000));
  const auto interval = milliseconds(int_param(ctx.req, "interval_ms", 100, 0, 10000));
  ctx.total_steps = chunks;
  if (!ctx.out.begin_chunked(200, "text/plain", ctx.keep_alive)) return;
  for (int i = 0; i < chunks; ++i) {
    // A failed write cancels the token (the writer does it), so one check covers both.
    if (!ctx.out.chunk("tick " + std::to_string(i) + "\n")) return;
    ctx.steps.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
    if (!ctoken::SleepFor(interval, ctx.token)) return;
  }
  if (ctx.out.end_chunked()) ctx.completed = true;
}

// /now: the server's CLOCK_MONOTONIC in ns, so a client on the same machine can compare.
void now(handler_context& ctx) {
  ctx.completed = true;
  ctx.out.respond(200, "text/plain", std::to_string(monotonic_ns()) + "\n", ctx.keep_alive);
}

// /: the demo page (Start and Cancel buttons: fetch + AbortController).
void index(handler_context& ctx) {
  ctx.completed = true;
  ctx.out.respond(200, "text/html; charset=utf-8", demo_page(), ctx.keep_alive);
}

// /status?id=N: the server's view of request N as JSON (running with its steps so far, done or
// cancelled with the reason and status), from the registry. The demo page polls it.
void status(handler_context& ctx) {
  const auto text = ctx.req.query_param("id");
  char* end = nullptr;
  const std::uint64_t id = text ? std::strtoull(text->c_str(), &end, 10) : 0;
  if (!text || text->empty() || end == nullptr || *end != '\0') {
    ctx.completed = true;
    ctx.out.respond(400, "text/plain", "status needs ?id=N\n", ctx.keep_alive);
    return;
  }
  const std::string body = ctx.registry != nullptr ? ctx.registry->json(id) : request_registry().json(id);
  ctx.completed = true;
  ctx.out.respond(200, "application/json", body + "\n", ctx.keep_alive);
}

// /proxy?<query>: the same work one hop further: GET /slow?<query> from the backend
// (--upstream HOST:PORT) with this request's own token. If this request's client leaves, the
// token's registration in http_client shuts the upstream socket down: the backend sees its own
// client leave and cancels its work too (one chain of cancellation across two servers). The
// query string is passed on as received (the parser admits only visible ASCII in it).
void proxy(handler_context& ctx) {
  if (ctx.upstream_port == 0) {
    ctx.completed = true;
    ctx.out.respond(502, "text/plain", "no upstream configured (--upstream HOST:PORT)\n", ctx.keep_alive);
    return;
  }
  ctx.total_steps = 1;
  http_client::options opts;
  opts.style = http_client::cancel_style::shutdown_socket;
  opts.timeout = milliseconds::max();  // the request's token already carries the server's deadline
  const std::string target = ctx.req.query.empty() ? "/slow" : "/slow?" + ctx.req.query;
  const http_client::result r =
      http_client::Get(std::string(ctx.upstream_host), ctx.upstream_port, target, ctx.token, opts);
  // Cancelled: return; the server reports the token's reason (499, 503 or 504) as for any handler.
  if (r.cancelled()) return;
  ctx.completed = true;
  if (!r.ok()) {
    ctx.out.respond(
        502, "text/plain",
        std::string("upstream failed during ") + http_client::to_string(r.where) + ": " + r.error.message() + "\n",
        ctx.keep_alive);
    return;
  }
  ctx.steps = 1;
  // The backend's Content-Type, if it is one line of visible text.
  const std::string* type = r.find("content-type");
  const bool clean =
      type != nullptr && std::all_of(type->begin(), type->end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  ctx.out.respond(r.status, clean ? *type : "application/octet-stream", r.body, ctx.keep_alive);
}

}  // namespace

void dispatch(handler_context& ctx) {
  struct route {
    std::string_view path;
    void (*run)(handler_context&);
  };
  static constexpr route routes[] = {
      {"/", index},        {"/slow", slow}, {"/compute", compute}, {"/sleep", sleep}, {"/report", report},
      {"/stream", stream}, {"/now", now},   {"/status", status},   {"/proxy", proxy},
  };
  for (const route& r : routes) {
    if (ctx.req.path != r.path) continue;
    if (ctx.req.method != "GET" && ctx.req.method != "HEAD") {
      ctx.completed = true;
      ctx.out.respond(405, "text/plain", "method not allowed\n", ctx.keep_alive);
      return;
    }
    r.run(ctx);
    return;
  }
  ctx.completed = true;
  ctx.out.respond(404, "text/plain", "not found\n", ctx.keep_alive);
}

}  // namespace http
