// The demo server (http_server): the server template running the demo's routes, with events.
//
//   http_server [--bind ADDR] [--port N] [--events] [--max-connections N] [--half-close cancel|respond]
//               [--request-timeout-ms N] [--header-timeout-ms N] [--idle-timeout-ms N]
//               [--write-timeout-ms N] [--drain-timeout-ms N] [--max-header-bytes N]
//               [--max-body-bytes N] [--keepalive-idle-s N] [--keepalive-interval-s N]
//               [--keepalive-count N] [--no-keepalive] [--upstream HOST:PORT]
//               [--postgres CONNINFO]
//
// --upstream: the backend of /proxy and /fetch, which call GET /slow?<their query> there with the
// request's own token (a numeric address; run a second http_server on that port). Without it
// /fetch calls this server's own /slow.
// --postgres: the libpq connection string /postgres connects with, e.g.
// "host=/var/run/postgresql dbname=postgres" (without it /postgres answers 503).
//
// SIGINT/SIGTERM: stop accepting, cancel in-flight requests (errc::shutdown → 503), drain, exit 0.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

#include "app.hpp"

namespace {

void usage() {
  std::fputs(
      "usage: http_server [--bind ADDR] [--port N] [--events] [--max-connections N|--threads N]\n"
      "                   [--half-close cancel|respond] [--request-timeout-ms N] [--header-timeout-ms N]\n"
      "                   [--idle-timeout-ms N] [--write-timeout-ms N] [--drain-timeout-ms N]\n"
      "                   [--max-header-bytes N] [--max-body-bytes N] [--keepalive-idle-s N]\n"
      "                   [--keepalive-interval-s N] [--keepalive-count N] [--no-keepalive]\n"
      "                   [--upstream HOST:PORT] [--postgres CONNINFO]\n",
      stderr);
}

// Parses a whole decimal number in [lo, hi]; exits with a message otherwise.
long long number(const char* flag, const char* text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi) {
    std::fprintf(stderr, "http_server: %s needs a number in [%lld, %lld], got '%s'\n", flag, lo, hi, text);
    std::exit(2);
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  http::server_config config;
  demo::services with;
  bool events = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "http_server: %s needs a value\n", flag.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    using ms = std::chrono::milliseconds;
    if (flag == "--bind") {
      config.bind = value();
    } else if (flag == "--port") {
      config.port = static_cast<std::uint16_t>(number("--port", value(), 0, 65535));
    } else if (flag == "--events") {
      events = true;
    } else if (flag == "--max-connections" || flag == "--threads") {
      config.max_connections = static_cast<std::size_t>(number(flag.c_str(), value(), 1, 100000));
    } else if (flag == "--half-close") {
      const std::string policy = value();
      if (policy == "cancel") {
        config.half_close = http::half_close_policy::cancel;
      } else if (policy == "respond") {
        config.half_close = http::half_close_policy::respond;
      } else {
        std::fputs("http_server: --half-close is cancel or respond\n", stderr);
        return 2;
      }
    } else if (flag == "--request-timeout-ms") {
      config.request_timeout = ms(number(flag.c_str(), value(), 1, 86400000));
    } else if (flag == "--header-timeout-ms") {
      config.header_timeout = ms(number(flag.c_str(), value(), 1, 3600000));
    } else if (flag == "--idle-timeout-ms") {
      config.idle_timeout = ms(number(flag.c_str(), value(), 1, 86400000));
    } else if (flag == "--write-timeout-ms") {
      config.write_timeout = ms(number(flag.c_str(), value(), 1, 3600000));
    } else if (flag == "--drain-timeout-ms") {
      config.drain_timeout = ms(number(flag.c_str(), value(), 0, 3600000));
    } else if (flag == "--max-header-bytes") {
      config.parse_limits.max_head_bytes = static_cast<std::size_t>(number(flag.c_str(), value(), 256, 1 << 20));
    } else if (flag == "--max-body-bytes") {
      config.parse_limits.max_body_bytes = static_cast<std::size_t>(number(flag.c_str(), value(), 0, 1LL << 30));
    } else if (flag == "--keepalive-idle-s") {
      config.keepalive_idle_s = static_cast<int>(number(flag.c_str(), value(), 1, 32767));
    } else if (flag == "--keepalive-interval-s") {
      config.keepalive_interval_s = static_cast<int>(number(flag.c_str(), value(), 1, 32767));
    } else if (flag == "--keepalive-count") {
      config.keepalive_count = static_cast<int>(number(flag.c_str(), value(), 1, 127));
    } else if (flag == "--no-keepalive") {
      config.tcp_keepalive = false;
    } else if (flag == "--upstream") {
      const std::string address = value();
      const std::size_t colon = address.rfind(':');
      if (colon == std::string::npos || colon == 0) {
        std::fputs("http_server: --upstream is HOST:PORT, e.g. 127.0.0.1:8081\n", stderr);
        return 2;
      }
      with.upstream_host = address.substr(0, colon);
      with.upstream_port = static_cast<std::uint16_t>(number("--upstream", address.c_str() + colon + 1, 1, 65535));
    } else if (flag == "--postgres") {
      with.postgres = value();
      if (with.postgres.empty()) {
        std::fputs("http_server: --postgres needs a libpq connection string\n", stderr);
        return 2;
      }
    } else if (flag == "--help" || flag == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "http_server: unknown option %s\n", flag.c_str());
      usage();
      return 2;
    }
  }

  // Signals are taken by sigwait() on this thread only: block them before any thread starts so
  // every thread inherits the mask. SIGPIPE is ignored (writes use MSG_NOSIGNAL anyway).
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr); rc != 0) {
    std::fprintf(stderr, "http_server: pthread_sigmask: %s\n", std::strerror(rc));
    return 1;
  }

  demo::output out(events ? demo::output::stdout_sink() : demo::output::sink(), demo::output::stderr_sink());
  try {
    demo::server server(config, out, with);
    server.start();
    int signal_number = 0;
    if (const int rc = sigwait(&stop_signals, &signal_number); rc != 0) {
      std::fprintf(stderr, "http_server: sigwait: %s\n", std::strerror(rc));
      return 1;
    }
    out.log(std::string("signal ") + strsignal(signal_number) + ": shutting down");
    server.request_shutdown();
    const bool drained = server.wait();
    out.log(drained ? "drained, bye" : "drain timeout: connections were shut down");
    return 0;
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}
