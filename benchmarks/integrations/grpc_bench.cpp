// <ctoken/grpc.hpp> against bare gRPC, in one binary (Google Benchmark): how long cancellation
// takes to cross each hop of client -> A -> B on 127.0.0.1.
//
//   ctoken_bench_grpc [--samples=N] [benchmark flags]
//
// Two rows, each over N calls (--samples, default 300), one call in flight at a time: the client
// starts a call whose work at B would take a minute, waits until B has it, and cancels.
//   hop_cancel/ctoken  the chain of examples/grpc: the client's source is cancelled; A's call
//                      token fires (GrpcCancellableReactor::OnCancel), which cancels A's
//                      outgoing call (GrpcClientContext), and B's call token fires.
//   hop_cancel/bare    the same chain without ctoken: the client calls ClientContext::TryCancel();
//                      A's reactor calls TryCancel() on its outgoing context from OnCancel(); B's
//                      OnCancel() is the end.
// Counters (microseconds, CLOCK_MONOTONIC): client_to_A (the client's Cancel/TryCancel to A's
// token/OnCancel), A_to_B (A's to B's), client_to_B, and client_status (to the client's
// completion callback), each as _p50 and _p99.
#include <ctoken/ctoken.hpp>
#include <ctoken/grpc.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hop_service.hpp"

namespace {

using Clock = std::chrono::steady_clock;
int g_samples = 300;
bool g_failed = false;  // a row reported an error: the smoke run must fail

// The instants of one sample. One call is in flight at a time, so one set suffices; each field
// is written once per sample by one thread and read by the benchmark thread after Wait().
struct Probe {
  std::mutex mutex;
  std::condition_variable changed;
  bool b_started = false;
  Clock::time_point a_cancelled{}, b_cancelled{}, client_done{};

  void Reset() {
    std::lock_guard<std::mutex> lock(mutex);
    b_started = false;
    a_cancelled = b_cancelled = client_done = Clock::time_point{};
  }
  template <class F>
  void Set(F f) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      f();
    }
    changed.notify_all();
  }
  template <class Pred>
  bool Wait(Pred pred) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(10), pred);
  }
};
Probe g_probe;

// ---- the ctoken chain: examples/grpc's HopService, observed --------------------------------
class ProbeObserver final : public hops::HopObserver {
 public:
  void OnStart(const std::string& hop, const std::string&, std::optional<Clock::time_point>) override {
    if (hop == "B") g_probe.Set([] { g_probe.b_started = true; });
  }
  void OnTokenCancelled(const std::string& hop, const std::string&, std::error_code, Clock::time_point when) override {
    g_probe.Set([&] { (hop == "A" ? g_probe.a_cancelled : g_probe.b_cancelled) = when; });
  }
};

// ---- the bare chain: the same service with gRPC alone -----------------------------------------
class BareHop final : public ctoken_hops::Hop::CallbackService {
 public:
  explicit BareHop(std::shared_ptr<grpc::Channel> next) : next_(next ? ctoken_hops::Hop::NewStub(next) : nullptr) {}

  grpc::ServerUnaryReactor* Work(grpc::CallbackServerContext*, const ctoken_hops::WorkRequest* request,
                                 ctoken_hops::WorkReply*) override {
    if (next_) return new Forward(*next_, *request);
    return new Last();
  }

 private:
  class Forward final : public grpc::ServerUnaryReactor {
   public:
    Forward(ctoken_hops::Hop::Stub& next, const ctoken_hops::WorkRequest& request) : request_(request) {
      next.async()->Work(&context_, &request_, &reply_, [this](grpc::Status status) { Finish(status); });
    }
    void OnCancel() override {
      const auto now = Clock::now();
      g_probe.Set([&] { g_probe.a_cancelled = now; });
      context_.TryCancel();
    }
    void OnDone() override { delete this; }

   private:
    grpc::ClientContext context_;
    ctoken_hops::WorkRequest request_;
    ctoken_hops::WorkReply reply_;
  };
  class Last final : public grpc::ServerUnaryReactor {
   public:
    Last() {
      g_probe.Set([] { g_probe.b_started = true; });
    }
    void OnCancel() override {
      const auto now = Clock::now();
      g_probe.Set([&] { g_probe.b_cancelled = now; });
      Finish(grpc::Status::CANCELLED);
    }
    void OnDone() override { delete this; }
  };

  std::unique_ptr<ctoken_hops::Hop::Stub> next_;
};

struct Chains {
  ProbeObserver observer;
  ctoken::CancellationTokenSource stopping;
  std::unique_ptr<hops::HopService> ctoken_a, ctoken_b;
  std::unique_ptr<BareHop> bare_a, bare_b;
  std::vector<std::unique_ptr<grpc::Server>> servers;
  std::unique_ptr<ctoken_hops::Hop::Stub> ctoken_stub, bare_stub;

  static std::shared_ptr<grpc::Channel> channel(int port) {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  }
  int serve(grpc::Service& service) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    servers.push_back(builder.BuildAndStart());
    if (!servers.back() || port == 0) {
      std::fprintf(stderr, "ctoken_bench_grpc: cannot listen on 127.0.0.1\n");
      std::exit(1);
    }
    return port;
  }
  Chains() {
    ctoken_b = std::make_unique<hops::HopService>("B", nullptr, stopping.Token(), std::chrono::minutes(1), &observer);
    ctoken_a = std::make_unique<hops::HopService>("A", channel(serve(*ctoken_b)), stopping.Token(),
                                                  std::chrono::minutes(1), &observer);
    ctoken_stub = ctoken_hops::Hop::NewStub(channel(serve(*ctoken_a)));
    bare_b = std::make_unique<BareHop>(nullptr);
    bare_a = std::make_unique<BareHop>(channel(serve(*bare_b)));
    bare_stub = ctoken_hops::Hop::NewStub(channel(serve(*bare_a)));
  }
  ~Chains() {
    stopping.Cancel(ctoken::errc::shutdown);
    for (auto& s : servers) s->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
};

Chains& chains() {
  static Chains c;
  return c;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// One sample: a call through `stub` cancelled once B has it; `use_ctoken` picks the chain and
// how the client cancels. Returns false (and reports the error) if a step did not happen.
bool sample(benchmark::State& state, bool use_ctoken, std::vector<double> (&out)[4]) {
  Chains& c = chains();
  g_probe.Reset();
  ctoken_hops::WorkRequest request;
  request.set_id("bench");
  request.set_work_ms(60000);
  ctoken_hops::WorkReply reply;
  ctoken::CancellationTokenSource source;
  std::unique_ptr<ctoken::GrpcClientContext> bound;
  std::unique_ptr<grpc::ClientContext> plain;
  grpc::ClientContext* context;
  if (use_ctoken) {
    bound = std::make_unique<ctoken::GrpcClientContext>(source.Token());
    context = &bound->Context();
  } else {
    plain = std::make_unique<grpc::ClientContext>();
    context = plain.get();
  }
  (use_ctoken ? c.ctoken_stub : c.bare_stub)->async()->Work(context, &request, &reply, [](grpc::Status) {
    const auto now = Clock::now();
    g_probe.Set([&] { g_probe.client_done = now; });
  });
  if (!g_probe.Wait([] { return g_probe.b_started; })) {
    g_failed = true;
    state.SkipWithError("B never saw the call");
    return false;
  }
  const auto cancelled = Clock::now();
  if (use_ctoken) {
    source.Cancel();
  } else {
    context->TryCancel();
  }
  if (!g_probe.Wait([] {
        return g_probe.a_cancelled != Clock::time_point{} && g_probe.b_cancelled != Clock::time_point{} &&
               g_probe.client_done != Clock::time_point{};
      })) {
    g_failed = true;
    state.SkipWithError("the cancellation did not reach every hop");
    return false;
  }
  // Both hops' reactors end after the client's callback; the next sample waits for nothing of
  // theirs (each call has its own reactors).
  out[0].push_back(us(g_probe.a_cancelled - cancelled));
  out[1].push_back(us(g_probe.b_cancelled - g_probe.a_cancelled));
  out[2].push_back(us(g_probe.b_cancelled - cancelled));
  out[3].push_back(us(g_probe.client_done - cancelled));
  return true;
}

void hop_cancel(benchmark::State& state, bool use_ctoken) {
  (void)chains();
  std::vector<double> out[4];
  // Unmeasured calls first: gRPC's pools and both chains' connections warm, whichever row runs first.
  for (int i = 0; i < 50; ++i) {
    if (!sample(state, use_ctoken, out)) return;
  }
  for (auto _ : state) {
    for (auto& v : out) v.clear();
    for (int i = 0; i < g_samples; ++i) {
      if (!sample(state, use_ctoken, out)) return;
    }
  }
  static const char* const names[4] = {"client_to_A", "A_to_B", "client_to_B", "client_status"};
  for (int k = 0; k < 4; ++k) {
    state.counters[std::string(names[k]) + "_p50"] = percentile(out[k], 0.50);
    state.counters[std::string(names[k]) + "_p99"] = percentile(out[k], 0.99);
  }
  state.counters["samples"] = static_cast<double>(out[0].size());
}

void BM_hop_cancel_ctoken(benchmark::State& state) { hop_cancel(state, true); }
void BM_hop_cancel_bare(benchmark::State& state) { hop_cancel(state, false); }

BENCHMARK(BM_hop_cancel_bare)->Name("hop_cancel/bare")->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_hop_cancel_ctoken)->Name("hop_cancel/ctoken")->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--samples=", 10) == 0) {
      g_samples = std::max(1, std::atoi(argv[i] + 10));
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return g_failed ? 1 : 0;
}
