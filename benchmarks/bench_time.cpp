// ctoken time and waiting figures (issue "Timeouts and waiting"): what a deadline costs, how
// many fit, how late they fire, how fast a blocked waiter wakes. Printed as plain figures.
//
//   ctoken_bench_time [--deadlines N] [--samples N] [--quick] [--json FILE]
//
// Rows:
//   arm+disarm            CancelAfter(1h) then CancelAfter(max) on one source, ns per pair
//   N armed deadlines     time per arm and bytes per armed source (state + heap slot), from the
//                         process's resident memory before/after (/proc/self/statm)
//   firing lateness       actual − due time of CancelAfter(1..20 ms), p50/p99/max, idle machine
//   waiter wake-up        Cancel() on one thread → Wait() returning on another, p50/p99/max,
//                         next to the same hand-off through std::condition_variable and
//                         through std::condition_variable_any::wait(lock, stop_token, pred)
// std::stop_token has no timers, so the time rows have no std counterpart; the wake-up row does.
//
// Every row also gives its heap allocations per operation (allocs/op), counted by the
// replacement operator new of alloc_counter.hpp. The counters are per thread: a row counts the
// thread(s) doing its operation (both threads of a wake-up hand-off: the signal and the wait),
// not the timer thread behind CancelAfter.
//
// --json FILE also writes the figures to FILE as one JSON object, a member per row:
//   "config":                    {"deadlines", "samples"}: the sizes this run used
//   "arm_disarm":                {"ns_per_op", "allocs_per_op", "ops"}: one op = an arm+disarm pair
//   "armed_deadlines":           {"ns_per_op", "allocs_per_op", "ops", "seconds"}: one op = one
//                                CancelAfter on a fresh source, with `ops` armed in the end
//   "memory":                    {"bytes_per_source", "bytes_per_deadline", "allocs_per_source"}
//   "destroy_armed":             {"ns_per_op", "allocs_per_op", "ops"}: destroying an armed source
//   "firing_lateness":           {"p50_us", "p99_us", "max_us", "allocs_per_op", "ops"}: one op =
//                                CancelAfter + Wait() until it fires (the waiting thread's allocations)
//   "wakeup_ctoken", "wakeup_condition_variable", "wakeup_cv_any_stop_token" (C++20 only):
//                                {"p50_us", "p99_us", "max_us", "allocs_per_op", "ops"}: one op = one
//                                hand-off (signal + wait)
// Every value is a number (null for a figure that could not be measured).
#include <ctoken/ctoken.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if __has_include(<stop_token>) && __cplusplus >= 202002L
#include <stop_token>
#define CTOKEN_BENCH_HAVE_STOP_TOKEN 1
#endif

#include "alloc_counter.hpp"

namespace {

using alloc_counter::allocations;
using clock_type = std::chrono::steady_clock;
using ns = std::chrono::nanoseconds;

long long to_ns(clock_type::duration d) { return std::chrono::duration_cast<ns>(d).count(); }

// `count` allocations over `ops` operations.
double per_op(std::uint64_t count, std::size_t ops) { return static_cast<double>(count) / static_cast<double>(ops); }

// The figures of every row, in the order they were measured, for --json.
class Figures {
 public:
  using Values = std::vector<std::pair<const char*, double>>;

  void add(const char* row, Values values) { rows_.emplace_back(row, std::move(values)); }

  // Writes {"row": {"name": value, ...}, ...}; false if the file could not be written.
  bool write_json(const char* path) const {
    std::FILE* file = std::fopen(path, "w");
    if (file == nullptr) return false;
    std::fprintf(file, "{");
    for (std::size_t r = 0; r < rows_.size(); ++r) {
      std::fprintf(file, "%s\n  \"%s\": {", r == 0 ? "" : ",", rows_[r].first);
      const Values& values = rows_[r].second;
      for (std::size_t v = 0; v < values.size(); ++v) {
        std::fprintf(file, "%s\"%s\": ", v == 0 ? "" : ", ", values[v].first);
        // JSON has no NaN or infinity: a figure that could not be measured is null.
        if (std::isfinite(values[v].second)) {
          std::fprintf(file, "%.9g", values[v].second);
        } else {
          std::fprintf(file, "null");
        }
      }
      std::fprintf(file, "}");
    }
    std::fprintf(file, "\n}\n");
    return std::fclose(file) == 0;
  }

 private:
  std::vector<std::pair<const char*, Values>> rows_;
};

struct summary {
  long long p50, p99, max;
};

summary summarize(std::vector<long long> v) {
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))]; };
  return {at(0.50), at(0.99), v.back()};
}

// A latency row: the percentiles in µs and the allocations per operation, printed and filed.
void report_latency(Figures& figures, const char* row, const char* label, const summary& s, double allocs_per_op,
                    std::size_t ops) {
  const double p50 = static_cast<double>(s.p50) / 1e3;
  const double p99 = static_cast<double>(s.p99) / 1e3;
  const double max = static_cast<double>(s.max) / 1e3;
  std::printf("%-28s p50 %7.1f us   p99 %7.1f us   max %7.1f us   %5.2f allocs/op  (%zu samples)\n", label, p50, p99,
              max, allocs_per_op, ops);
  figures.add(row, {{"p50_us", p50},
                    {"p99_us", p99},
                    {"max_us", max},
                    {"allocs_per_op", allocs_per_op},
                    {"ops", static_cast<double>(ops)}});
}

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

void arm_disarm(Figures& figures, std::size_t rounds) {
  ctoken::CancellationTokenSource source;
  source.CancelAfter(std::chrono::hours(1));  // starts the timer thread, sizes the heap
  source.CancelAfter(ns::max());
  const std::uint64_t allocs_before = allocations();
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < rounds; ++i) {
    source.CancelAfter(std::chrono::hours(1));
    source.CancelAfter(ns::max());
  }
  const double per = static_cast<double>(to_ns(clock_type::now() - start)) / static_cast<double>(rounds);
  const double allocs = per_op(allocations() - allocs_before, rounds);
  std::printf("%-28s %10.1f ns per arm+disarm pair, %.2f allocs/op (%zu pairs)\n", "arm+disarm", per, allocs, rounds);
  figures.add("arm_disarm", {{"ns_per_op", per}, {"allocs_per_op", allocs}, {"ops", static_cast<double>(rounds)}});
}

void many_deadlines(Figures& figures, std::size_t n) {
  std::vector<ctoken::CancellationTokenSource> sources;
  sources.reserve(n);
  const long after_vector = resident_bytes();
  const std::uint64_t allocs_before_sources = allocations();
  for (std::size_t i = 0; i < n; ++i) sources.emplace_back();
  const double allocs_per_source = per_op(allocations() - allocs_before_sources, n);
  const long after_sources = resident_bytes();

  const std::uint64_t allocs_before_arm = allocations();
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) {
    // Spread over an hour so the heap is exercised, never firing during the run.
    sources[i].CancelAfter(std::chrono::minutes(30) + std::chrono::milliseconds((i * 7919) % 1800000));
  }
  const auto armed = clock_type::now();
  const double allocs_per_arm = per_op(allocations() - allocs_before_arm, n);
  const long after_arm = resident_bytes();
  const double arm_ns = static_cast<double>(to_ns(armed - start)) / static_cast<double>(n);
  const double seconds = static_cast<double>(to_ns(armed - start)) / 1e9;
  std::printf("%-28s %10.1f ns per arm with %zu armed (%.2f s in all), %.2f allocs/op\n", "armed deadlines", arm_ns, n,
              seconds, allocs_per_arm);
  figures.add("armed_deadlines", {{"ns_per_op", arm_ns},
                                  {"allocs_per_op", allocs_per_arm},
                                  {"ops", static_cast<double>(n)},
                                  {"seconds", seconds}});

  const double bytes_per_source = static_cast<double>(after_sources - after_vector) / static_cast<double>(n);
  const double bytes_per_deadline = static_cast<double>(after_arm - after_sources) / static_cast<double>(n);
  std::printf("%-28s %10.1f bytes per source state (%.2f allocs), %.1f bytes per armed deadline (heap slot)\n",
              "memory", bytes_per_source, allocs_per_source, bytes_per_deadline);
  figures.add("memory", {{"bytes_per_source", bytes_per_source},
                         {"bytes_per_deadline", bytes_per_deadline},
                         {"allocs_per_source", allocs_per_source}});

  const std::uint64_t allocs_before_destroy = allocations();
  const auto t0 = clock_type::now();
  sources.clear();  // the last handle of each disarms its deadline
  const double destroy_ns = static_cast<double>(to_ns(clock_type::now() - t0)) / static_cast<double>(n);
  const double allocs_per_destroy = per_op(allocations() - allocs_before_destroy, n);
  std::printf("%-28s %10.1f ns per destroy of an armed source, %.2f allocs/op\n", "destroy armed", destroy_ns,
              allocs_per_destroy);
  figures.add("destroy_armed",
              {{"ns_per_op", destroy_ns}, {"allocs_per_op", allocs_per_destroy}, {"ops", static_cast<double>(n)}});
}

void lateness(Figures& figures, std::size_t samples) {
  std::vector<long long> late;
  late.reserve(samples);
  std::uint64_t allocs = 0;
  for (std::size_t i = 0; i < samples; ++i) {
    const auto delay = std::chrono::milliseconds(1 + i % 20);
    ctoken::CancellationTokenSource source;
    std::atomic<long long> fired{0};
    auto r = source.Token().Register([&] { fired.store(to_ns(clock_type::now().time_since_epoch())); });
    const std::uint64_t allocs_before = allocations();
    const auto due = clock_type::now() + delay;
    source.CancelAfter(delay);
    source.Token().Wait();
    allocs += allocations() - allocs_before;
    while (fired.load() == 0) std::this_thread::yield();  // the callback stores just after the flag
    late.push_back(fired.load() - to_ns(due.time_since_epoch()));
  }
  report_latency(figures, "firing_lateness", "firing lateness (1-20 ms)", summarize(late), per_op(allocs, samples),
                 samples);
}
// One hand-off: the waiter blocks, the main thread records t0 and signals, the waiter records
// t1 when it runs again. `signal` and `wait` define the mechanism. The allocations counted are
// those of the two calls, each on its own thread; setup() and the thread itself are not counted.
template <class Setup>
void handoff(Figures& figures, const char* row, const char* label, std::size_t samples, Setup setup) {
  std::vector<long long> wake;
  wake.reserve(samples);
  std::uint64_t allocs = 0;
  for (std::size_t i = 0; i < samples; ++i) {
    auto pair = setup();
    std::atomic<bool> waiting{false};
    std::atomic<long long> woke{0};
    std::uint64_t waiter_allocs = 0;  // read after join()
    std::thread waiter([&] {
      const std::uint64_t before = allocations();
      waiting = true;
      pair.wait();
      woke = to_ns(clock_type::now().time_since_epoch());
      waiter_allocs = allocations() - before;
    });
    while (!waiting.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(500));  // let it block for real
    const std::uint64_t before = allocations();
    const long long t0 = to_ns(clock_type::now().time_since_epoch());
    pair.signal();
    allocs += allocations() - before;
    waiter.join();
    allocs += waiter_allocs;
    wake.push_back(woke.load() - t0);
  }
  report_latency(figures, row, label, summarize(wake), per_op(allocs, samples), samples);
}

struct ctoken_pair {
  std::shared_ptr<ctoken::CancellationTokenSource> source = std::make_shared<ctoken::CancellationTokenSource>();
  void wait() const { source->Token().Wait(); }
  void signal() const { source->Cancel(); }
};

struct cv_pair {
  struct shared {
    std::mutex m;
    std::condition_variable cv;
    bool flag = false;
  };
  std::shared_ptr<shared> s = std::make_shared<shared>();
  void wait() const {
    std::unique_lock<std::mutex> lock(s->m);
    s->cv.wait(lock, [this] { return s->flag; });
  }
  void signal() const {
    {
      std::lock_guard<std::mutex> lock(s->m);
      s->flag = true;
    }
    s->cv.notify_one();
  }
};

#if defined(CTOKEN_BENCH_HAVE_STOP_TOKEN)
struct std_stop_pair {
  struct shared {
    std::stop_source stop;
    std::mutex m;
    std::condition_variable_any cv;
  };
  std::shared_ptr<shared> s = std::make_shared<shared>();
  void wait() const {
    std::unique_lock<std::mutex> lock(s->m);
    s->cv.wait(lock, s->stop.get_token(), [] { return false; });
  }
  void signal() const { s->stop.request_stop(); }
};
#endif

// A positive count given on the command line; 0 if `text` is not one.
std::size_t parse_count(const char* text) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  return end != text && *end == '\0' && value > 0 ? static_cast<std::size_t>(value) : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t deadlines = 1000000;
  std::size_t samples = 200;
  const char* json = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--deadlines") == 0 && i + 1 < argc) {
      deadlines = parse_count(argv[++i]);
    } else if (std::strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
      samples = parse_count(argv[++i]);
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      deadlines = 10000;
      samples = 20;
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json = argv[++i];
    } else {
      std::fprintf(stderr, "usage: ctoken_bench_time [--deadlines N] [--samples N] [--quick] [--json FILE]\n");
      return 2;
    }
  }
  if (deadlines == 0 || samples == 0) {
    std::fprintf(stderr, "ctoken_bench_time: --deadlines and --samples must be positive\n");
    return 2;
  }
  Figures figures;
  figures.add("config", {{"deadlines", static_cast<double>(deadlines)}, {"samples", static_cast<double>(samples)}});
  arm_disarm(figures, samples * 1000);
  many_deadlines(figures, deadlines);
  lateness(figures, samples);
  handoff(figures, "wakeup_ctoken", "wake-up: ctoken Wait()", samples, [] { return ctoken_pair{}; });
  handoff(figures, "wakeup_condition_variable", "wake-up: condition_variable", samples, [] { return cv_pair{}; });
#if defined(CTOKEN_BENCH_HAVE_STOP_TOKEN)
  handoff(figures, "wakeup_cv_any_stop_token", "wake-up: cv_any + stop_token", samples, [] { return std_stop_pair{}; });
#endif
  if (json != nullptr && !figures.write_json(json)) {
    std::fprintf(stderr, "ctoken_bench_time: cannot write %s\n", json);
    return 1;
  }
  return 0;
}
