// What the integration benchmarks (curl, postgres, process, sqlite) share: a row error that
// makes the smoke test fail, the percentile of a set of samples, the latency counters of a
// cancellation row, and the --samples=N flag that Google Benchmark does not know. Each
// benchmark is one translation unit with its own main(); this header is its only user.
#ifndef CTOKEN_BENCHMARKS_LATENCY_SUPPORT_HPP
#define CTOKEN_BENCHMARKS_LATENCY_SUPPORT_HPP

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace latency_support {

// Set by fail(); exit_code() turns it into the process's exit status.
inline bool g_failed = false;

// Reports `why` as the row's error and remembers that a row failed, so that the smoke test
// fails instead of passing quietly (Google Benchmark exits 0 after SkipWithError).
inline void fail(benchmark::State& state, const char* why) {
  g_failed = true;
  state.SkipWithError(why);
}

// The p-th percentile (p from 0 to 1) of v by the nearest rank: 0.5 the median, 1.0 the
// largest. v must not be empty; it is taken by value because it is sorted.
inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Sets the row's counters p50_us, p99_us, max_us and samples from latency samples in
// microseconds; sets none when there are no samples (the row failed before its first one).
inline void set_latency_counters(benchmark::State& state, const std::vector<double>& samples_us) {
  if (samples_us.empty()) return;
  state.counters["p50_us"] = percentile(samples_us, 0.50);
  state.counters["p99_us"] = percentile(samples_us, 0.99);
  state.counters["max_us"] = percentile(samples_us, 1.0);
  state.counters["samples"] = static_cast<double>(samples_us.size());
}

// Takes every --samples=N out of argv (to be called before benchmark::Initialize, which
// rejects flags it does not know) and sets samples to the last N, at least 1. Returns whether
// the flag was given; argc and argv are left with the other arguments, in order.
inline bool take_samples_flag(int& argc, char** argv, int& samples) {
  bool given = false;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--samples=", 10) == 0) {
      samples = std::max(1, std::atoi(argv[i] + 10));
      given = true;
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return given;
}

// main()'s exit status: 1 when a row failed (see fail()), otherwise 0.
inline int exit_code() { return g_failed ? 1 : 0; }

}  // namespace latency_support

#endif  // CTOKEN_BENCHMARKS_LATENCY_SUPPORT_HPP
