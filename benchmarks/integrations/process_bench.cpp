// <ctoken/process.hpp> against the bare POSIX calls, in one binary (Google Benchmark).
//
//   ctoken_bench_process [--samples=N] [benchmark flags]
//
// Rows:
//   spawn_wait/bare      posix_spawnp("true") + waitpid: what running a child costs anyway
//   spawn_wait/ctoken    Child::Start + Wait under a live token (pidfd, eventfd, registration)
//   spawn_wait/interleaved  both in alternating rounds of 20 (rounds: samples / 5), as
//                        counters bare_us, ctoken_us and ratio (medians over rounds)
//   cancel_reaped/<how>  Cancel() to Wait returning with the child reaped, over N samples
//                        (--samples, default 100), as counters p50_us, p99_us, max_us:
//     sigterm            a cooperative child (sleep: SIGTERM ends it), through the pidfd
//     sigterm_fallback   the same without pidfd (waitid(WNOHANG) polling, 1 to 10 ms apart)
//     sigkill            a child that ignores SIGTERM, grace 0: SIGKILL straight away
#include <ctoken/ctoken.hpp>
#include <ctoken/process.hpp>

#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "latency_support.hpp"

extern "C" char** environ;

namespace {

using clock_type = std::chrono::steady_clock;

using latency_support::fail;
using latency_support::percentile;
namespace proc = ctoken::process;
int g_samples = 100;

// posix_spawnp("true") + waitpid; false if the spawn failed.
bool bare_once() {
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  pid_t pid = -1;
  if (::posix_spawnp(&pid, "true", nullptr, nullptr, argv, environ) != 0) return false;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  benchmark::DoNotOptimize(status);
  return true;
}

bool ctoken_once(const ctoken::CancellationToken& token) {
  static const std::vector<std::string> argv{"true"};
  proc::Exit exit;
  return !proc::Run(argv, token, std::chrono::seconds(1), exit) && exit.Exited;
}

void spawn_wait_bare(benchmark::State& state) {
  for (auto _ : state) {
    if (!bare_once()) {
      fail(state, "posix_spawnp failed");
      break;
    }
  }
}

void spawn_wait_ctoken(benchmark::State& state) {
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = source.Token();
  for (auto _ : state) {
    if (!ctoken_once(token)) {
      fail(state, "Run failed");
      break;
    }
  }
}

// Both in alternating rounds of 20 children, so that load drifting on a shared machine hits
// both alike; counters: the medians of the rounds and of the per-round ratio ctoken / bare.
void spawn_wait_interleaved(benchmark::State& state) {
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = source.Token();
  const int rounds = std::max(2, g_samples / 5);
  constexpr int kPerRound = 20;
  std::vector<double> bare_us, ours_us, ratio;
  for (auto _ : state) {
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = clock_type::now();
      for (int i = 0; i < kPerRound; ++i) {
        if (!bare_once()) return fail(state, "posix_spawnp failed");
      }
      const auto t1 = clock_type::now();
      for (int i = 0; i < kPerRound; ++i) {
        if (!ctoken_once(token)) return fail(state, "Run failed");
      }
      const auto t2 = clock_type::now();
      bare_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / kPerRound);
      ours_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count() / kPerRound);
      ratio.push_back(ours_us.back() / bare_us.back());
    }
  }
  state.counters["bare_us"] = percentile(bare_us, 0.5);
  state.counters["ctoken_us"] = percentile(ours_us, 0.5);
  state.counters["ratio"] = percentile(ratio, 0.5);
}

enum class how { sigterm, sigterm_fallback, sigkill };

void cancel_reaped(benchmark::State& state, how which) {
  proc::detail::pidfd_disabled() = which == how::sigterm_fallback;
  std::vector<double> samples_us;
  const std::vector<std::string> cooperative{"sleep", "30"};
  const std::vector<std::string> stubborn{"sh", "-c", "trap '' TERM; exec sleep 30"};
  for (auto _ : state) {
    samples_us.clear();
    for (int i = 0; i < g_samples; ++i) {
      std::error_code ec;
      proc::Child child = proc::Child::Start(which == how::sigkill ? stubborn : cooperative, ec);
      if (ec) {
        fail(state, "Start failed");
        break;
      }
      ctoken::CancellationTokenSource source;
      std::atomic<long long> cancelled_at{0};  // release/acquire: read after the join
      std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the child runs (and exec'd)
        cancelled_at.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
        source.Cancel();
      });
      proc::Exit exit;
      const auto grace = which == how::sigkill ? std::chrono::milliseconds(0) : std::chrono::milliseconds(5000);
      ec = child.Wait(source.Token(), grace, exit);
      const auto returned = clock_type::now();
      canceller.join();
      if (ec || !exit.Canceled) {
        fail(state, "the child was not stopped by the token");
        break;
      }
      const auto at = clock_type::time_point(clock_type::duration(cancelled_at.load(std::memory_order_acquire)));
      samples_us.push_back(std::chrono::duration<double, std::micro>(returned - at).count());
    }
  }
  proc::detail::pidfd_disabled() = false;
  latency_support::set_latency_counters(state, samples_us);
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag first (Google Benchmark rejects flags it does not know).
  latency_support::take_samples_flag(argc, argv, g_samples);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RegisterBenchmark("spawn_wait/bare", spawn_wait_bare)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("spawn_wait/ctoken", spawn_wait_ctoken)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("spawn_wait/interleaved", spawn_wait_interleaved)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  const struct {
    const char* name;
    how which;
  } rows[] = {{"sigterm", how::sigterm}, {"sigterm_fallback", how::sigterm_fallback}, {"sigkill", how::sigkill}};
  for (const auto& r : rows) {
    const how which = r.which;
    benchmark::RegisterBenchmark((std::string("cancel_reaped/") + r.name).c_str(),
                                 [which](benchmark::State& st) { cancel_reaped(st, which); })
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return latency_support::exit_code();
}
