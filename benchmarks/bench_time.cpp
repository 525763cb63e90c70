// ctoken time and waiting figures (issue "Timeouts and waiting"): what a deadline costs, how
// many fit, how late they fire, how fast a blocked waiter wakes. Printed as plain figures.
//
//   ctoken_bench_time [--deadlines N] [--samples N] [--quick]
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
#include <ctoken/ctoken.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if __has_include(<stop_token>) && __cplusplus >= 202002L
#include <stop_token>
#define CTOKEN_BENCH_HAVE_STOP_TOKEN 1
#endif

namespace {

using clock_type = std::chrono::steady_clock;
using ns = std::chrono::nanoseconds;

long long to_ns(clock_type::duration d) { return std::chrono::duration_cast<ns>(d).count(); }

struct summary {
  long long p50, p99, max;
};

summary summarize(std::vector<long long> v) {
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))]; };
  return {at(0.50), at(0.99), v.back()};
}

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

void arm_disarm(int rounds) {
  ctoken::CancellationTokenSource source;
  source.CancelAfter(std::chrono::hours(1));  // starts the timer thread, sizes the heap
  source.CancelAfter(ns::max());
  const auto start = clock_type::now();
  for (int i = 0; i < rounds; ++i) {
    source.CancelAfter(std::chrono::hours(1));
    source.CancelAfter(ns::max());
  }
  const double per = static_cast<double>(to_ns(clock_type::now() - start)) / rounds;
  std::printf("%-28s %10.1f ns per arm+disarm pair (%d pairs)\n", "arm+disarm", per, rounds);
}

void many_deadlines(std::size_t n) {
  const long before = resident_bytes();
  std::vector<ctoken::CancellationTokenSource> sources;
  sources.reserve(n);
  const long after_vector = resident_bytes();
  for (std::size_t i = 0; i < n; ++i) sources.emplace_back();
  const long after_sources = resident_bytes();
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) {
    // Spread over an hour so the heap is exercised, never firing during the run.
    sources[i].CancelAfter(std::chrono::minutes(30) + std::chrono::milliseconds((i * 7919) % 1800000));
  }
  const auto armed = clock_type::now();
  const long after_arm = resident_bytes();
  const double arm_ns = static_cast<double>(to_ns(armed - start)) / static_cast<double>(n);
  std::printf("%-28s %10.1f ns per arm with %zu armed (%.2f s in all)\n", "armed deadlines", arm_ns, n,
              static_cast<double>(to_ns(armed - start)) / 1e9);
  std::printf("%-28s %10.1f bytes per source state, %.1f bytes per armed deadline (heap slot)\n", "memory",
              static_cast<double>(after_sources - after_vector) / static_cast<double>(n),
              static_cast<double>(after_arm - after_sources) / static_cast<double>(n));
  const auto t0 = clock_type::now();
  sources.clear();  // the last handle of each disarms its deadline
  std::printf("%-28s %10.1f ns per destroy of an armed source\n", "destroy armed",
              static_cast<double>(to_ns(clock_type::now() - t0)) / static_cast<double>(n));
  (void)before;
}

void lateness(int samples) {
  std::vector<long long> late;
  late.reserve(static_cast<std::size_t>(samples));
  for (int i = 0; i < samples; ++i) {
    const auto delay = std::chrono::milliseconds(1 + i % 20);
    ctoken::CancellationTokenSource source;
    std::atomic<long long> fired{0};
    auto r = source.Token().Register([&] { fired.store(to_ns(clock_type::now().time_since_epoch())); });
    const auto due = clock_type::now() + delay;
    source.CancelAfter(delay);
    source.Token().Wait();
    while (fired.load() == 0) std::this_thread::yield();  // the callback stores just after the flag
    late.push_back(fired.load() - to_ns(due.time_since_epoch()));
  }
  const summary s = summarize(late);
  std::printf("%-28s p50 %7.1f us   p99 %7.1f us   max %7.1f us  (%d deadlines of 1-20 ms)\n", "firing lateness",
              static_cast<double>(s.p50) / 1e3, static_cast<double>(s.p99) / 1e3, static_cast<double>(s.max) / 1e3,
              samples);
}

// One hand-off: the waiter blocks, the main thread records t0 and signals, the waiter records
// t1 when it runs again. `signal` and `wait` define the mechanism.
template <class Setup>
summary handoff(int samples, Setup setup) {
  std::vector<long long> wake;
  wake.reserve(static_cast<std::size_t>(samples));
  for (int i = 0; i < samples; ++i) {
    auto pair = setup();
    std::atomic<bool> waiting{false};
    std::atomic<long long> woke{0};
    std::thread waiter([&] {
      waiting = true;
      pair.wait();
      woke = to_ns(clock_type::now().time_since_epoch());
    });
    while (!waiting.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(500));  // let it block for real
    const long long t0 = to_ns(clock_type::now().time_since_epoch());
    pair.signal();
    waiter.join();
    wake.push_back(woke.load() - t0);
  }
  return summarize(wake);
}

void print_handoff(const char* name, const summary& s) {
  std::printf("%-28s p50 %7.1f us   p99 %7.1f us   max %7.1f us\n", name, static_cast<double>(s.p50) / 1e3,
              static_cast<double>(s.p99) / 1e3, static_cast<double>(s.max) / 1e3);
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

}  // namespace

int main(int argc, char** argv) {
  std::size_t deadlines = 1000000;
  int samples = 200;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--deadlines") == 0 && i + 1 < argc) {
      deadlines = static_cast<std::size_t>(std::strtoul(argv[++i], nullptr, 10));
    } else if (std::strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
      samples = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      deadlines = 10000;
      samples = 20;
    } else {
      std::fprintf(stderr, "usage: ctoken_bench_time [--deadlines N] [--samples N] [--quick]\n");
      return 2;
    }
  }
  if (deadlines == 0 || samples <= 0) {
    std::fprintf(stderr, "ctoken_bench_time: --deadlines and --samples must be positive\n");
    return 2;
  }
  arm_disarm(samples * 1000);
  many_deadlines(deadlines);
  lateness(samples);
  print_handoff("wake-up: ctoken Wait()", handoff(samples, [] { return ctoken_pair{}; }));
  print_handoff("wake-up: condition_variable", handoff(samples, [] { return cv_pair{}; }));
#if defined(CTOKEN_BENCH_HAVE_STOP_TOKEN)
  print_handoff("wake-up: cv_any + stop_token", handoff(samples, [] { return std_stop_pair{}; }));
#endif
  return 0;
}
