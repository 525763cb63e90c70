// Three hops over real gRPC on 127.0.0.1: this client -> hop A -> hop B. A forwards each call
// to B under its own call's token; B waits `work_ms` on its token. Each scenario shows how far
// cancellation and the deadline travel, and how long each hop took to notice. Exits non-zero
// if a scenario does not behave as labelled (ctest runs it).
//
//   grpc_hops            run the scenarios and print a table
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <ctoken/ctoken.hpp>
#include <ctoken/grpc.hpp>

#include "hop_service.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Hops {
  ctoken::CancellationTokenSource stopping_a, stopping_b;  // cancelled with errc::shutdown first
  hops::RecordingObserver events;
  std::unique_ptr<hops::HopService> service_a, service_b;
  std::unique_ptr<grpc::Server> server_a, server_b;
  std::unique_ptr<ctoken_hops::Hop::Stub> stub;

  bool Start(std::string& error) {
    int port_b = 0, port_a = 0;
    service_b = std::make_unique<hops::HopService>("B", nullptr, stopping_b.Token(), std::chrono::seconds(10), &events);
    server_b = hops::StartServer(*service_b, 0, port_b, error);
    if (!server_b) return false;
    auto to_b = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_b), grpc::InsecureChannelCredentials());
    service_a = std::make_unique<hops::HopService>("A", to_b, stopping_a.Token(), std::chrono::seconds(10), &events);
    server_a = hops::StartServer(*service_a, 0, port_a, error);
    if (!server_a) return false;
    stub = ctoken_hops::Hop::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_a), grpc::InsecureChannelCredentials()));
    std::printf("hop B on 127.0.0.1:%d, hop A on 127.0.0.1:%d (forwards to B)\n\n", port_b, port_a);
    return true;
  }

  void Stop() {
    // Shutdown reason first, so that calls in flight stop at once; then gRPC's own shutdown.
    stopping_a.Cancel(ctoken::errc::shutdown);
    stopping_b.Cancel(ctoken::errc::shutdown);
    const auto limit = std::chrono::system_clock::now() + std::chrono::seconds(5);
    if (server_a) server_a->Shutdown(limit);
    if (server_b) server_b->Shutdown(limit);
  }
};

struct Outcome {
  grpc::Status status;
  Clock::time_point cancelled_at{};  // when the client cancelled (or its deadline passed)
  std::optional<Clock::time_point> client_deadline;
};

// One call from this client under `token`; `cancel_after` > 0 cancels `source` from another
// thread after that long.
Outcome Call(Hops& hops, const std::string& id, std::int64_t work_ms, ctoken::CancellationTokenSource& source,
             std::chrono::milliseconds cancel_after) {
  Outcome out;
  out.client_deadline = source.Token().Deadline();
  std::thread canceller;
  if (cancel_after.count() > 0) {
    canceller = std::thread([&] {
      std::this_thread::sleep_for(cancel_after);
      out.cancelled_at = Clock::now();
      source.Cancel();
    });
  }
  ctoken_hops::WorkRequest request;
  request.set_id(id);
  request.set_work_ms(work_ms);
  ctoken_hops::WorkReply reply;
  ctoken::GrpcClientContext call(source.Token());
  out.status = hops.stub->Work(&call.Context(), request, &reply);
  if (canceller.joinable()) canceller.join();
  return out;
}

const char* code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    default:
      return "other";
  }
}

std::string reason_name(std::error_code reason) {
  if (!reason) return "-";
  if (reason == ctoken::errc::timed_out) return "timed_out";
  if (reason == ctoken::errc::canceled) return "canceled";
  if (reason == ctoken::errc::shutdown) return "shutdown";
  return reason.message();
}

bool row(const char* label, const Outcome& out, const hops::HopEvents& a, const hops::HopEvents& b,
         grpc::StatusCode want_status, std::error_code want_a, std::error_code want_b) {
  std::string hop_a = "-", hop_b = "-";
  const Clock::time_point from = out.cancelled_at;
  if (a.reason && from != Clock::time_point{}) hop_a = std::to_string(static_cast<long>(micros(a.cancelled_at - from)));
  if (b.reason && a.reason) hop_b = std::to_string(static_cast<long>(micros(b.cancelled_at - a.cancelled_at)));
  std::string deadline_gap = "-";
  if (out.client_deadline && b.deadline) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.2f",
                  std::chrono::duration<double, std::milli>(*b.deadline - *out.client_deadline).count());
    deadline_gap = buf;
  }
  const bool ok = out.status.error_code() == want_status && a.reason == want_a && b.reason == want_b;
  std::printf("%-30s %-17s %-10s %-10s %10s %10s %12s  %s\n", label, code_name(out.status.error_code()),
              reason_name(a.reason).c_str(), reason_name(b.reason).c_str(), hop_a.c_str(), hop_b.c_str(),
              deadline_gap.c_str(), ok ? "yes" : "NO");
  return ok;
}

}  // namespace

int main() {
  Hops hops;
  std::string error;
  if (!hops.Start(error)) {
    std::fprintf(stderr, "grpc_hops: %s\n", error.c_str());
    hops.Stop();
    return 1;
  }
  std::printf("%-30s %-17s %-10s %-10s %10s %10s %12s  %s\n", "scenario", "client status", "A reason", "B reason",
              "->A (us)", "A->B (us)", "B-client dl", "as labelled");
  int failures = 0;
  const auto settle = [&](const std::string& id) {
    const auto done = [](const hops::HopEvents& e) { return e.done; };
    return std::make_pair(hops.events.WaitFor("A", id, done, std::chrono::seconds(5)),
                          hops.events.WaitFor("B", id, done, std::chrono::seconds(5)));
  };
  {
    ctoken::CancellationTokenSource source;
    const Outcome out = Call(hops, "complete", 100, source, std::chrono::milliseconds(0));
    const auto [a, b] = settle("complete");
    failures += !row("B works 100 ms, completes", out, a, b, grpc::StatusCode::OK, {}, {});
  }
  {
    ctoken::CancellationTokenSource source;
    const Outcome out = Call(hops, "cancel", 5000, source, std::chrono::milliseconds(300));
    const auto [a, b] = settle("cancel");
    failures += !row("client cancels after 300 ms", out, a, b, grpc::StatusCode::CANCELLED, ctoken::errc::canceled,
                     ctoken::errc::canceled);
  }
  {
    ctoken::CancellationTokenSource source(std::chrono::milliseconds(300));
    Outcome out = Call(hops, "deadline", 5000, source, std::chrono::milliseconds(0));
    if (out.client_deadline) out.cancelled_at = *out.client_deadline;
    const auto [a, b] = settle("deadline");
    failures += !row("client deadline 300 ms", out, a, b, grpc::StatusCode::DEADLINE_EXCEEDED, ctoken::errc::timed_out,
                     ctoken::errc::timed_out);
  }
  {
    ctoken::CancellationTokenSource source;
    std::thread stopper([&] {
      (void)hops.events.WaitFor(
          "B", "shutdown", [](const hops::HopEvents& e) { return e.started; }, std::chrono::seconds(5));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      hops.stopping_b.Cancel(ctoken::errc::shutdown);  // B's calls stop at once, answering UNAVAILABLE
      hops.server_b->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    });
    Outcome out = Call(hops, "shutdown", 5000, source, std::chrono::milliseconds(0));
    stopper.join();
    const auto [a, b] = settle("shutdown");
    failures +=
        !row("B shuts down after ~100 ms", out, a, b, grpc::StatusCode::UNAVAILABLE, {}, ctoken::errc::shutdown);
  }
  std::printf(
      "\n->A: from the client's Cancel() (or its deadline) to A's token firing; A->B: from A's token to B's.\n"
      "B-client dl: B's token.Deadline() minus the client's, in ms (the deadline travelled as grpc-timeout).\n");
  hops.Stop();
  if (failures != 0) {
    std::printf("%d scenario(s) did not behave as labelled\n", failures);
    return 1;
  }
  std::printf("all 4 scenarios behaved as labelled\n");
  return 0;
}
