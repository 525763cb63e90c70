// The server template's application: copy this folder, replace handle_request() with yours.
//
//   http_server_template [--bind ADDR] [--port N] [--request-timeout-ms N] [--max-connections N]
//   curl 'http://127.0.0.1:8080/work?ms=3000'     then Ctrl-C in curl: the log says 499
//
// handle_request() maps a request and its token to a response and does no I/O: the server
// reads the request, watches the client, writes the response and logs it (http::stderr_log,
// the observer). The token is cancelled when the client disconnects, on SIGINT/SIGTERM (503)
// and at the request deadline (504); the handler only has to stop.
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>

#include <ctoken/ctoken.hpp>

#include "server.hpp"

namespace {

// Reads an integer query parameter in [lo, hi]. An absent parameter gives `fallback`; a
// malformed or out-of-range one gives std::nullopt (the handler answers 400 naming it).
std::optional<long long> int_param(const http::request& req, const char* name, long long fallback, long long lo,
                                   long long hi) {
  const std::optional<std::string> text = req.query_param(name);
  if (!text) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  if (text->empty() || errno != 0 || *end != '\0' || value < lo || value > hi) return std::nullopt;
  return value;
}

// The application. Thread-safe (it keeps no state); stops when its token is cancelled.
http::response handle_request(const http::request& req, const ctoken::CancellationToken& token) {
  if (req.method != "GET" && req.method != "HEAD") return http::response::text(405, "method not allowed\n");
  if (req.path == "/hello") return http::response::text(200, "hello\n");
  if (req.path == "/work") {
    // /work?ms=N: N ms of work in 100 ms steps, stopping when the token is cancelled.
    const std::optional<long long> ms = int_param(req, "ms", 1000, 0, 60000);
    if (!ms) return http::response::text(400, "ms: expected an integer in [0, 60000]\n");
    for (long long done = 0; done < *ms; done += 100) {
      // SleepFor stands for a step of real work; it returns false at once on cancellation.
      if (!ctoken::SleepFor(std::chrono::milliseconds(std::min<long long>(100, *ms - done)), token)) {
        token.ThrowIfCancellationRequested();  // the server logs it and answers (or not) by the reason
      }
    }
    return http::response::text(200, "worked " + std::to_string(*ms) + " ms\n");
  }
  return http::response::text(404, "not found: try /hello or /work?ms=2000\n");
}

// The access log on stderr, and the address on stdout once listening (scripts wait for it).
class log_and_announce : public http::stderr_log {
 public:
  void listening(const std::string& bind, std::uint16_t port) override {
    http::stderr_log::listening(bind, port);
    std::printf("listening on http://%s:%u/\n", bind.c_str(), static_cast<unsigned>(port));
    std::fflush(stdout);
  }
};

// A whole decimal number in [lo, hi], or std::nullopt.
std::optional<long long> number(const char* text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi) return std::nullopt;
  return value;
}

int usage() {
  std::fputs("usage: http_server_template [--bind ADDR] [--port N] [--request-timeout-ms N] [--max-connections N]\n",
             stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  http::server_config config;  // binds 127.0.0.1 unless told otherwise
  config.port = 8080;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      usage();
      return 0;
    }
    if (i + 1 >= argc) return usage();
    const char* value = argv[++i];
    if (flag == "--bind") {
      config.bind = value;
    } else if (flag == "--port") {
      const auto port = number(value, 0, 65535);
      if (!port) return std::fprintf(stderr, "http_server_template: --port needs 0..65535, got '%s'\n", value), 2;
      config.port = static_cast<std::uint16_t>(*port);
    } else if (flag == "--request-timeout-ms") {
      const auto ms = number(value, 1, 86400000);
      if (!ms) return std::fprintf(stderr, "http_server_template: --request-timeout-ms needs 1..86400000\n"), 2;
      config.request_timeout = std::chrono::milliseconds(*ms);
    } else if (flag == "--max-connections") {
      const auto n = number(value, 1, 100000);
      if (!n) return std::fprintf(stderr, "http_server_template: --max-connections needs 1..100000\n"), 2;
      config.max_connections = static_cast<std::size_t>(*n);
    } else {
      return usage();
    }
  }

  // SIGINT/SIGTERM are taken by sigwait() on this thread only: blocked before any thread
  // starts, so every thread inherits the mask. SIGPIPE is ignored (writes use MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); rc != 0) {
    std::fprintf(stderr, "http_server_template: pthread_sigmask: %s\n", std::strerror(rc));
    return 1;
  }

  log_and_announce log;
  try {
    http::server server(config, handle_request, log);
    server.start();
    int signal_number = 0;
    if (const int rc = sigwait(&stop_signals, &signal_number); rc != 0) {
      std::fprintf(stderr, "http_server_template: sigwait: %s\n", std::strerror(rc));
      return 1;
    }
    log.message(std::string("signal ") + strsignal(signal_number) + ": shutting down");
    server.request_shutdown();  // in-flight requests: 503; then drain
    const bool drained = server.wait();
    log.message(drained ? "drained, bye" : "drain timeout: connections were shut down");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server_template: %s\n", e.what());
    return 1;
  }
}
