// The client template's command line: one GET that stops on Ctrl-C (SIGINT/SIGTERM) or at a
// deadline, and says which. Copy this folder alone; replace main() with your calls.
//
//   http_get [--timeout-ms N] [--style shutdown_socket|poll_fd] HOST PORT TARGET
//   http_get 127.0.0.1 8080 '/work?ms=3000'        then Ctrl-C: "cancelled during head: ..."
//
// HOST is a numeric address (no name lookup: getaddrinfo cannot be interrupted). Prints the
// status line and the body on stdout. Exit status: 0 for a whole response (any status), 1 if
// the request failed or timed out, 2 for bad arguments, 130 if cancelled by a signal.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include <ctoken/ctoken.hpp>

#include "http_client.hpp"

namespace {

// A whole decimal number in [lo, hi], or std::nullopt.
std::optional<long long> number(const char* text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi) return std::nullopt;
  return value;
}

int usage() {
  std::fputs("usage: http_get [--timeout-ms N] [--style shutdown_socket|poll_fd] HOST PORT TARGET\n", stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  http_client::options opts;
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--timeout-ms") {
      const auto ms = number(argv[i + 1], 1, 86400000);
      if (!ms) return usage();
      opts.timeout = std::chrono::milliseconds(*ms);
    } else if (flag == "--style" && std::strcmp(argv[i + 1], "poll_fd") == 0) {
      opts.style = http_client::cancel_style::poll_fd;
    } else if (flag == "--style" && std::strcmp(argv[i + 1], "shutdown_socket") == 0) {
      opts.style = http_client::cancel_style::shutdown_socket;
    } else {
      return usage();
    }
  }
  if (argc - i != 3) return usage();
  const std::string host = argv[i];
  const auto port = number(argv[i + 1], 1, 65535);
  const std::string target = argv[i + 2];
  if (!port || target.empty() || target[0] != '/') return usage();

  // SIGINT/SIGTERM: blocked here (before any thread starts) and taken by a thread with
  // sigwait(), which cancels the request's source. At the end the main thread sends that
  // thread SIGUSR1, which ends its wait when no signal came.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) {
    std::fprintf(stderr, "http_get: pthread_sigmask: %s\n", std::strerror(rc));
    return 1;
  }
  ctoken::CancellationTokenSource user;
  try {
    std::thread signal_thread([&signals, &user] {
      int number = 0;
      if (sigwait(&signals, &number) == 0 && number != SIGUSR1) user.Cancel(std::errc::interrupted);
    });
    const http_client::result r = http_client::Get(host, static_cast<std::uint16_t>(*port), target, user.Token(), opts);
    (void)::pthread_kill(signal_thread.native_handle(), SIGUSR1);  // harmless if it already returned
    signal_thread.join();
    if (r.ok()) {
      std::printf("HTTP %d\n%s", r.status, r.body.c_str());
      return 0;
    }
    std::fprintf(stderr, "http_get: %s during %s: %s\n", http_client::to_string(r.kind),
                 http_client::to_string(r.where), r.error.message().c_str());
    return r.cancelled() ? 130 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_get: %s\n", e.what());
    return 1;
  }
}
