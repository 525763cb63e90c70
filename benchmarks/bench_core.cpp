// ctoken benchmarks: every row is measured twice in this one binary, once with ctoken and once
// with its nearest std::stop_token (C++20) equivalent, under names that pair up:
// "<row>/ctoken" and "<row>/std". Each row is a single template instantiated for both
// libraries (see CtokenLib and StdLib below), so the two variants run the same harness code.
//
// Every row also reports `allocs_per_op`: heap allocations per measured operation, counted by
// the replacement operator new of alloc_counter.hpp.
//
// When the runs finish, a summary table prints the ctoken/std ratio of each pair next to the
// goal set for it (RatioReporter). With --benchmark_repetitions the table uses the medians.
//
// Two modes, one per process:
//   ctoken_bench [benchmark flags]                    every row, in a multi-threaded process (an
//                                                     idle second thread runs throughout: see
//                                                     SecondThread)
//   ctoken_bench --single_threaded [benchmark flags]  only the rows that never start a thread,
//                                                     named "st/<row>/...", in a process that
//                                                     never has a second thread (checked)

#include <ctoken/ctoken.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>  // __libc_single_threaded (glibc 2.32 and later)
#define CTOKEN_BENCH_HAVE_LIBC_SINGLE_THREADED 1
#endif

#include "alloc_counter.hpp"

namespace {

using alloc_counter::allocations;

// `count` allocations over the whole run, reported per iteration. In a multi-threaded row each
// thread reports what it counted itself; Google Benchmark adds the counters of the threads up,
// then kAvgIterations divides by the total number of iterations.
void report_allocations(benchmark::State& state, double count) {
  state.counters["allocs_per_op"] = benchmark::Counter(count, benchmark::Counter::kAvgIterations);
}
void report_allocations(benchmark::State& state, std::uint64_t count) {
  report_allocations(state, static_cast<double>(count));
}

// ---- the two libraries behind one interface --------------------------------------------------

// The callback every row registers: cheap, noexcept, and observable (the count is checked).
struct Bump {
  std::uint64_t* hits;
  void operator()() const noexcept { ++*hits; }
};

// The std equivalent of a source linked to P parents: a stop_source plus one stop_callback per
// parent that forwards the parent's stop request. Built in one heap object per child
// (std::make_unique), which is what a program needs to hand such a child around (stop_callback
// cannot move).
struct StdForward {
  std::stop_source* child;
  void operator()() const noexcept { child->request_stop(); }
};
template <std::size_t P>
class StdLinked {
 public:
  explicit StdLinked(const std::array<std::stop_token, P>& parents)
      : StdLinked(parents, std::make_index_sequence<P>{}) {}

 private:
  // stop_callback can neither move nor be copied: each link is built in its place in the array.
  template <std::size_t... I>
  StdLinked(const std::array<std::stop_token, P>& parents, std::index_sequence<I...>)
      : links_{{std::stop_callback<StdForward>(parents[I], StdForward{&source_})...}} {}

  std::stop_source source_;  // declared first: constructed before, destroyed after, the links
  std::array<std::stop_callback<StdForward>, P> links_;
};

struct CtokenLib {
  using Source = ctoken::CancellationTokenSource;
  using Token = ctoken::CancellationToken;
  template <class F>
  using Callback = ctoken::CancellationCallback<F>;  // in place, like std::stop_callback

  static Token token_of(const Source& s) noexcept { return s.Token(); }
  static bool requested(const Token& t) noexcept { return t.IsCancellationRequested(); }
  static bool cancel(Source& s) { return s.Cancel(); }
  // A movable handle to a registration.
  template <class F>
  static ctoken::CancellationTokenRegistration register_handle(const Token& t, F f) {
    return t.Register(std::move(f));
  }
  // CreateLinkedTokenSource(p0, p1, ...): the variadic overload, as a program with a fixed
  // number of parents would call it.
  template <std::size_t P>
  static Source link(const std::array<Token, P>& parents) {
    return std::apply([](const auto&... p) { return Source::CreateLinkedTokenSource(p...); }, parents);
  }
  // One source for the whole process, shared by the threads of the inplace_shared rows.
  static Source& shared_source() {
    static Source source;
    return source;
  }
};

struct StdLib {
  using Source = std::stop_source;
  using Token = std::stop_token;
  template <class F>
  using Callback = std::stop_callback<F>;

  static Token token_of(const Source& s) noexcept { return s.get_token(); }
  static bool requested(const Token& t) noexcept { return t.stop_requested(); }
  static bool cancel(Source& s) noexcept { return s.request_stop(); }
  // std has no movable registration handle: the nearest equivalent is a heap-allocated
  // stop_callback owned by a unique_ptr.
  template <class F>
  static std::unique_ptr<std::stop_callback<F>> register_handle(const Token& t, F f) {
    return std::make_unique<std::stop_callback<F>>(t, std::move(f));
  }
  template <std::size_t P>
  static std::unique_ptr<StdLinked<P>> link(const std::array<Token, P>& parents) {
    return std::make_unique<StdLinked<P>>(parents);
  }
  static Source& shared_source() {
    static Source source;
    return source;
  }
};

// Fails the run (visible in the output, and the process exit code) if callbacks did not run
// as often as they should have: a guard against measuring something that does nothing.
void expect_hits(benchmark::State& state, std::uint64_t hits, std::uint64_t expected) {
  benchmark::DoNotOptimize(hits);
  if (hits != expected) state.SkipWithError("callbacks ran an unexpected number of times");
}

// ---- rows --------------------------------------------------------------------------------------

// check: IsCancellationRequested() / stop_requested() on a live, un-cancelled token. The hot
// path of every cancellable loop: one acquire load in both libraries.
template <class Lib>
void BM_check(benchmark::State& state) {
  typename Lib::Source source;
  const typename Lib::Token token = Lib::token_of(source);
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    // The result escapes, and DoNotOptimize's memory clobber makes each iteration load again.
    benchmark::DoNotOptimize(Lib::requested(token));
  }
  report_allocations(state, allocations() - before);
}

// copy: copy-construct a token, then destroy the copy (reference count up, then down).
template <class Lib>
void BM_copy(benchmark::State& state) {
  typename Lib::Source source;
  const typename Lib::Token token = Lib::token_of(source);
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    typename Lib::Token copy(token);
    benchmark::DoNotOptimize(&copy);  // the copy escapes: it must really exist
  }
  report_allocations(state, allocations() - before);
}

// create: construct a source and destroy it (no token, no callback ever taken).
template <class Lib>
void BM_create(benchmark::State& state) {
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    typename Lib::Source source;
    benchmark::DoNotOptimize(&source);
  }
  report_allocations(state, allocations() - before);
}

// Where the callbacks of an in-place row register.
enum class Sharing {
  own_source,     // a source of the running thread's own
  shared_source,  // the one process-wide source of the library (Lib::shared_source())
};

// inplace: construct a callback object stored in place (ctoken::CancellationCallback,
// std::stop_callback) on a live token, then destroy it: register + unregister, no allocation.
// Registered as the single-threaded row "inplace" (own source), and with T threads at once as
// "inplace_separate" (each thread its own source: nothing shared but the allocator and the
// machine) and "inplace_shared" (all threads on one source, so they fight over its lock and its
// reference count). For the threaded rows the Time column is wall time per operation over all
// threads together (Google Benchmark divides by the iterations of all threads).
template <class Lib, Sharing sharing>
void BM_inplace(benchmark::State& state) {
  std::optional<typename Lib::Source> own;
  const typename Lib::Token token =
      Lib::token_of(sharing == Sharing::shared_source ? Lib::shared_source() : own.emplace());
  std::uint64_t hits = 0;
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    typename Lib::template Callback<Bump> callback(token, Bump{&hits});
    benchmark::DoNotOptimize(&callback);
  }
  report_allocations(state, allocations() - before);
  expect_hits(state, hits, 0);
}

// handle: register through a movable handle and dispose of it. ctoken: token.Register(f),
// returning a CancellationTokenRegistration (nodes are pooled per source: only the first
// Register on a source allocates, so allocs_per_op rounds to 0). std: a
// std::make_unique<std::stop_callback<F>> (one allocation each).
// The summary also compares the ctoken handle with the in-place std::stop_callback ("inplace/std").
template <class Lib>
void BM_handle(benchmark::State& state) {
  typename Lib::Source source;
  const typename Lib::Token token = Lib::token_of(source);
  std::uint64_t hits = 0;
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    auto handle = Lib::register_handle(token, Bump{&hits});
    benchmark::DoNotOptimize(&handle);
  }  // the handle's destructor unregisters (Dispose / ~stop_callback)
  report_allocations(state, allocations() - before);
  expect_hits(state, hits, 0);
}

// cancel/N: Cancel() / request_stop() on a source with N in-place callbacks. Only the
// cancellation is timed: creating the sources, registering the callbacks and destroying
// everything afterwards happen in each iteration outside the measured interval, which is timed
// by hand (UseManualTime + SetIterationTime; PauseTiming/ResumeTiming would cost more than a
// small Cancel). One iteration cancels a batch of max(1, kBatchCallbacks / N) sources, so that
// a batch holds at least kBatchCallbacks callbacks (exactly max(N, kBatchCallbacks) for the N
// registered, powers of two) and the two clock reads are negligible even for N = 1: the Time
// column is per batch, the counter ns_per_callback (used by the summary) per callback, and
// items_per_second counts callbacks. (Reporting a per-source iteration time instead would make
// Google Benchmark run the untimed set-up hundreds of times longer than the timed part before
// it reached its minimum time.) allocs_per_op is per Cancel().
constexpr std::size_t kBatchCallbacks = 256;
// The rows are cancel/1, cancel/2, cancel/4, ... cancel/(2^kMaxCallbacksLog2).
constexpr std::size_t kMaxCallbacksLog2 = 12;

template <class Lib, std::size_t N>
void BM_cancel(benchmark::State& state) {
  static_assert(N > 0, "at least one callback");
  using Source = typename Lib::Source;
  using Callback = typename Lib::template Callback<Bump>;
  using clock = std::chrono::steady_clock;
  constexpr std::size_t kSources = std::max<std::size_t>(1, kBatchCallbacks / N);

  // Storage reused by every iteration (callbacks can neither move nor be copied).
  auto sources = std::make_unique<std::optional<Source>[]>(kSources);
  auto callbacks = std::make_unique<std::optional<Callback>[]>(kSources * N);
  std::uint64_t hits = 0;
  std::uint64_t measured_allocations = 0;
  double measured_ns = 0;

  for (auto _ : state) {
    for (std::size_t s = 0; s < kSources; ++s) {  // set-up, not timed
      const typename Lib::Token token = Lib::token_of(sources[s].emplace());
      for (std::size_t i = 0; i < N; ++i) callbacks[s * N + i].emplace(token, Bump{&hits});
    }

    const std::uint64_t allocations_before = allocations();
    const clock::time_point start = clock::now();
    benchmark::ClobberMemory();
    for (std::size_t s = 0; s < kSources; ++s) Lib::cancel(*sources[s]);
    benchmark::ClobberMemory();
    const clock::time_point stop = clock::now();
    measured_allocations += allocations() - allocations_before;

    for (std::size_t i = 0; i < kSources * N; ++i) callbacks[i].reset();  // tear-down, not timed
    for (std::size_t s = 0; s < kSources; ++s) sources[s].reset();

    const std::chrono::duration<double> elapsed = stop - start;
    measured_ns += elapsed.count() * 1e9;
    state.SetIterationTime(elapsed.count());
  }

  const auto iterations = static_cast<std::uint64_t>(state.iterations());
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kSources * N));
  state.counters["ns_per_callback"] =
      benchmark::Counter(measured_ns / static_cast<double>(kSources * N), benchmark::Counter::kAvgIterations);
  report_allocations(state, static_cast<double>(measured_allocations) / static_cast<double>(kSources));
  expect_hits(state, hits, iterations * kSources * N);
}

// linked/P: create a source linked to P live parents, then destroy it (which must unregister it
// from every parent). ctoken: CreateLinkedTokenSource(p0, ..., pP-1). std: StdLinked<P> above.
constexpr std::size_t kLinkedParents[] = {1, 2, 8};

template <class Lib, std::size_t P>
void BM_linked(benchmark::State& state) {
  std::array<typename Lib::Source, P> parents;
  std::array<typename Lib::Token, P> tokens;
  for (std::size_t i = 0; i < P; ++i) tokens[i] = Lib::token_of(parents[i]);
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    auto child = Lib::link(tokens);
    benchmark::DoNotOptimize(&child);
  }
  report_allocations(state, allocations() - before);
}

// ---- the two modes -------------------------------------------------------------------------------

enum class Mode {
  multi_threaded,   // the default: every row, with an idle second thread from the start
  single_threaded,  // --single_threaded: the rows that start no thread, in a one-thread process
};

// Prepended to every row name (and so to every run name) of the mode.
std::string row_prefix(Mode mode) { return mode == Mode::single_threaded ? "st/" : ""; }

// True while the process has had only one thread, as libstdc++ sees it: glibc's
// __libc_single_threaded, which turns false for good once a second thread is created. Empty
// where the C library does not say (then the single-threaded mode refuses to run).
std::optional<bool> process_is_single_threaded() {
#if defined(CTOKEN_BENCH_HAVE_LIBC_SINGLE_THREADED)
  return __libc_single_threaded != 0;
#else
  return std::nullopt;
#endif
}

using BenchmarkFunction = void (*)(benchmark::State&);

// The single-threaded mode runs every row through this: the row fails (an error in the output,
// and exit status 1) unless the process is single-threaded both before and after it ran.
void run_single_threaded(benchmark::State& state, BenchmarkFunction row) {
  static constexpr const char* kNotSingleThreaded = "--single_threaded, but the process has more than one thread";
  if (!process_is_single_threaded().value_or(false)) {
    state.SkipWithError(kNotSingleThreaded);
    return;
  }
  row(state);
  if (!process_is_single_threaded().value_or(false)) state.SkipWithError(kNotSingleThreaded);
}

// Keeps the process multi-threaded for as long as it exists: a thread that only waits.
//
// libstdc++ and glibc take cheaper paths while a process has a single thread: libstdc++ asks
// __gnu_cxx::__is_single_threaded() (glibc's __libc_single_threaded, which turns false for good
// once a second thread is created) and then, for example, skips the per-callback semaphore
// release in std::stop_source::request_stop and uses non-atomic shared_ptr counts. A program
// that needs cancellation has more than one thread, so by default every row is measured in that
// mode, including the rows that run before the first multi-threaded benchmark would start a
// thread. (--single_threaded measures the other case, for comparison.)
class SecondThread {
 public:
  SecondThread() : thread_([done = done_.get_future()] { done.wait(); }) {}
  ~SecondThread() {
    done_.set_value();
    thread_.join();
  }
  SecondThread(const SecondThread&) = delete;
  SecondThread& operator=(const SecondThread&) = delete;

 private:
  std::promise<void> done_;
  std::thread thread_;
};

// ---- the summary table -------------------------------------------------------------------------

// The name under which the summary files a run: the name it was registered under (without
// "/manual_time" or "/real_time"), plus "/threads:T" for the rows run by several threads, which
// are registered under one name per library for every T.
std::string run_key(const std::string& registered, int threads = 0) {
  return threads > 0 ? registered + "/threads:" + std::to_string(threads) : registered;
}

// One line of the summary: a ctoken run against a std run (by run_key).
struct Comparison {
  std::string label;
  std::string ctoken_run;
  std::string std_run;
  const char* counter;  // compare this counter instead of the real time per iteration, if set
  double goal;          // the ratio must be <= goal; 0: shown for information only
  bool zero_allocs;     // the ctoken run must also make no allocation
};

// The thread counts of the inplace_shared and inplace_separate rows.
constexpr int kThreadCounts[] = {1, 2, 4};

// "1 callback", "2 callbacks".
std::string count_of(std::size_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

// The summary's lines for the rows of `mode`, in the order they are printed. The goals are those
// of issue 8 (in-place, linked/2 and cancel per callback restated by issue 12 as parity with
// stdexec's inplace_stop_token), set for the multi-threaded process; in the single-threaded one only the per-callback
// cancel cost has a goal of its own, the other lines are for information.
std::vector<Comparison> comparisons(Mode mode) {
  const bool single = mode == Mode::single_threaded;
  const std::string p = row_prefix(mode);
  const auto goal = [single](double multi_threaded_goal) { return single ? 0.0 : multi_threaded_goal; };
  // "<row>/ctoken" against "<row>/std" (run by `threads` threads, if set), by real time.
  const auto versus = [&p](const std::string& label, const std::string& row, double row_goal, int threads = 0) {
    return Comparison{
        p + label, run_key(p + row + "/ctoken", threads), run_key(p + row + "/std", threads), nullptr, row_goal, false};
  };
  const auto without_allocs = [](Comparison c) {
    c.zero_allocs = true;
    return c;
  };
  const auto per_callback = [](Comparison c) {
    c.counter = "ns_per_callback";
    return c;
  };

  std::vector<Comparison> list = {
      versus("check (IsCancellationRequested)", "check", goal(1.0)),
      versus("token copy+destroy", "copy", goal(1.0)),
      versus("source create+destroy", "create", goal(1.0)),
      versus("in-place register+unregister", "inplace", goal(0.36)),
      without_allocs(versus("handle Register+Dispose vs make_unique", "handle", goal(0.8))),
      without_allocs(Comparison{p + "handle Register+Dispose vs in-place std", p + "handle/ctoken", p + "inplace/std",
                                nullptr, 0, false}),
  };
  for (std::size_t log2n = 0; log2n <= kMaxCallbacksLog2; ++log2n) {
    const std::size_t n = std::size_t{1} << log2n;
    list.push_back(per_callback(versus("cancel, " + count_of(n, "callback") + " (per callback)",
                                       "cancel/" + std::to_string(n), single ? 0.6 : 0.1)));
  }
  for (const std::size_t parents : kLinkedParents) {
    list.push_back(versus("linked source, " + count_of(parents, "parent"), "linked/" + std::to_string(parents),
                          parents == 2 ? goal(0.38) : 0));
  }
  if (!single) {
    for (const bool shared : {true, false}) {
      for (const int threads : kThreadCounts) {
        const std::string label = "register+unregister, " + count_of(static_cast<std::size_t>(threads), "thread") +
                                  (shared ? ", one source" : ", own sources");
        // The 2-thread contention goal is on the shared source.
        list.push_back(
            versus(label, shared ? "inplace_shared" : "inplace_separate", shared && threads == 2 ? 1.0 : 0, threads));
      }
    }
  }
  return list;
}

double nanoseconds_per(benchmark::TimeUnit unit) {
  switch (unit) {
    case benchmark::kNanosecond:
      return 1;
    case benchmark::kMicrosecond:
      return 1e3;
    case benchmark::kMillisecond:
      return 1e6;
    case benchmark::kSecond:
      return 1e9;
  }
  return 1;
}

double median(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 != 0 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// Forwards everything to the reporter Google Benchmark would have used (console, json or csv,
// per --benchmark_format), remembers each run's real time and counters, and prints the
// ctoken/std table once all runs are done. Per run (by run_key) it uses the "median" aggregate
// when there is one (--benchmark_repetitions=N), else the median of the plain runs it saw.
class RatioReporter : public benchmark::BenchmarkReporter {
 public:
  RatioReporter(std::unique_ptr<benchmark::BenchmarkReporter> display, Mode mode)
      : display_(std::move(display)), mode_(mode), comparisons_(comparisons(mode)) {}

  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }

  void ReportRuns(const std::vector<Run>& runs) override {
    display_->ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) {
        failed_ = true;
        continue;
      }
      const bool is_median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !is_median) continue;  // mean, stddev, cv
      const int threads = run.run_name.threads.empty() ? 0 : static_cast<int>(run.threads);
      Samples& samples = samples_[run_key(run.run_name.function_name, threads)];
      auto record = [&](const std::string& metric, double value) {
        if (is_median) {
          samples.medians[metric] = value;
        } else {
          samples.runs[metric].push_back(value);
        }
      };
      const double unit = nanoseconds_per(run.time_unit);
      record(kRealTime, run.GetAdjustedRealTime() * unit);
      // CPU time summed over the threads; not comparable with manual timing (whose CPU time
      // includes the untimed set-up), so not kept for those runs.
      if (run.run_name.time_type != "manual_time") {
        record(kCpuTime, run.GetAdjustedCPUTime() * unit);
        record(kThreads, static_cast<double>(run.threads));
      }
      for (const auto& counter : run.counters) record(counter.first, counter.second.value);
    }
  }

  void Finalize() override {
    display_->Finalize();
    // Keep machine-readable output (json/csv on stdout) clean: the table then goes to stderr.
    const bool console = dynamic_cast<benchmark::ConsoleReporter*>(display_.get()) != nullptr;
    print_table(console ? display_->GetOutputStream() : display_->GetErrorStream());
  }

  bool failed() const noexcept { return failed_; }

 private:
  static constexpr const char* kRealTime = "real_time";
  static constexpr const char* kCpuTime = "cpu_time";
  static constexpr const char* kThreads = "threads";

  struct Samples {
    std::map<std::string, double> medians;            // from the "median" aggregate
    std::map<std::string, std::vector<double>> runs;  // from each plain run
  };

  // The median of `metric` for the run filed as `key`; NaN if unknown.
  double value(const std::string& key, const std::string& metric) const {
    const auto run = samples_.find(key);
    if (run == samples_.end()) return std::nan("");
    const Samples& s = run->second;
    if (const auto m = s.medians.find(metric); m != s.medians.end()) return m->second;
    if (const auto r = s.runs.find(metric); r != s.runs.end()) return median(r->second);
    return std::nan("");
  }

  // A run whose threads were not all on a CPU all the time: real time x busy CPUs (the wall time
  // the threads could have had, with at most one CPU each) exceeds the CPU time they got by more
  // than 10%. Something else ran on the machine, and the real time is inflated (or, for a
  // multi-threaded row, the threads did not really run at the same time, which hides the
  // contention).
  bool disturbed(const std::string& key) const {
    const double cpu = value(key, kCpuTime);
    if (std::isnan(cpu)) return false;
    const double cores = std::max(1U, std::thread::hardware_concurrency());
    return value(key, kRealTime) * std::min(value(key, kThreads), cores) > 1.1 * cpu;
  }

  void print_table(std::ostream& out) const {
    bool header = false;
    bool any_disturbed = false;
    for (const Comparison& c : comparisons_) {
      const std::string metric = c.counter != nullptr ? c.counter : kRealTime;
      const double ct_ns = value(c.ctoken_run, metric);
      const double st_ns = value(c.std_run, metric);
      if (std::isnan(ct_ns) || std::isnan(st_ns)) continue;  // filtered out, or failed
      const double ct_allocs = value(c.ctoken_run, "allocs_per_op");
      const double st_allocs = value(c.std_run, "allocs_per_op");
      if (!header) {
        out << "\nctoken / std in a " << (mode_ == Mode::single_threaded ? "single" : "multi") << "-threaded process ("
            << (any_median() ? "medians" : "single runs")
            << " of the real time per operation; per callback for the cancel rows)\n";
        char title[160];
        std::snprintf(title, sizeof title, "%-48s %10s %10s %7s %7s  %-6s %14s\n", "row", "ctoken ns", "std ns",
                      "ratio", "goal", "", "allocs/op c/s");
        out << title;
        header = true;
      }
      const double ratio = ct_ns / st_ns;
      const bool no_allocs = ct_allocs < 0.005;  // 0.00 as printed: first-use allocations amortised
      char goal[16] = "info";
      const char* verdict = "";
      if (c.goal > 0) {
        std::snprintf(goal, sizeof goal, "<=%.2g", c.goal);
        verdict = ratio <= c.goal && (!c.zero_allocs || no_allocs) ? "ok" : "MISS";
      } else if (c.zero_allocs && !no_allocs) {
        verdict = "ALLOCS";
      }
      char allocs[32];
      std::snprintf(allocs, sizeof allocs, "%.2f/%.2f", ct_allocs, st_allocs);
      const bool noisy = c.counter == nullptr && (disturbed(c.ctoken_run) || disturbed(c.std_run));
      any_disturbed = any_disturbed || noisy;
      char row[200];
      std::snprintf(row, sizeof row, "%-48s %10.2f %10.2f %7.3f %7s  %-6s %14s%s\n", c.label.c_str(), ct_ns, st_ns,
                    ratio, goal, verdict, allocs, noisy ? "  *" : "");
      out << row;
    }
    if (any_disturbed) {
      out << "* real time x threads (at most one per CPU) > 1.1 x CPU time: the threads were not on a CPU all the\n"
             "  time (the machine was busy with something else); rerun these rows on a quiet machine\n";
    }
    out.flush();
  }

  bool any_median() const {
    return std::any_of(samples_.begin(), samples_.end(),
                       [](const auto& entry) { return !entry.second.medians.empty(); });
  }

  std::unique_ptr<benchmark::BenchmarkReporter> display_;
  Mode mode_;
  std::vector<Comparison> comparisons_;
  std::map<std::string, Samples> samples_;
  bool failed_ = false;
};

// ---- registration ------------------------------------------------------------------------------

using BenchmarkPair = std::array<benchmark::internal::Benchmark*, 2>;

// Registers "<prefix><row>/ctoken" and "<prefix><row>/std" next to each other, so that they run
// one after the other, and returns them for further settings. In the single-threaded mode both
// go through run_single_threaded.
BenchmarkPair add_pair(Mode mode, const std::string& row, BenchmarkFunction with_ctoken, BenchmarkFunction with_std) {
  const auto add = [mode](const std::string& name, BenchmarkFunction function) {
    return mode == Mode::single_threaded ? benchmark::RegisterBenchmark(name.c_str(), &run_single_threaded, function)
                                         : benchmark::RegisterBenchmark(name.c_str(), function);
  };
  const std::string name = row_prefix(mode) + row;
  return {add(name + "/ctoken", with_ctoken), add(name + "/std", with_std)};
}

// cancel/N for N = 2^Log2N..., in manual time (see BM_cancel). The untimed set-up and tear-down
// of a batch cost about twice the timed Cancel, so the default minimum time (0.5 s of measured
// time) would make 26 rows x 5 repetitions take minutes; 0.1 s is still thousands of batches.
// An explicit --benchmark_min_time (the smoke runs) applies to these rows too.
template <std::size_t N>
void add_cancel_row(Mode mode, double min_time) {
  for (benchmark::internal::Benchmark* b :
       add_pair(mode, "cancel/" + std::to_string(N), BM_cancel<CtokenLib, N>, BM_cancel<StdLib, N>)) {
    b->UseManualTime();
    if (min_time > 0) b->MinTime(min_time);
  }
}
template <std::size_t... Log2N>
void add_cancel_rows(Mode mode, double min_time, std::index_sequence<Log2N...>) {
  (add_cancel_row<(std::size_t{1} << Log2N)>(mode, min_time), ...);
}

// linked/P for every P of kLinkedParents (I indexes it).
template <std::size_t... I>
void add_linked_rows(Mode mode, std::index_sequence<I...>) {
  (add_pair(mode, "linked/" + std::to_string(kLinkedParents[I]), BM_linked<CtokenLib, kLinkedParents[I]>,
            BM_linked<StdLib, kLinkedParents[I]>),
   ...);
}

// cancel_min_time: the cancel rows' minimum time in seconds, 0 for Google Benchmark's.
void register_benchmarks(Mode mode, double cancel_min_time) {
  add_pair(mode, "check", BM_check<CtokenLib>, BM_check<StdLib>);
  add_pair(mode, "copy", BM_copy<CtokenLib>, BM_copy<StdLib>);
  add_pair(mode, "create", BM_create<CtokenLib>, BM_create<StdLib>);
  add_pair(mode, "inplace", BM_inplace<CtokenLib, Sharing::own_source>, BM_inplace<StdLib, Sharing::own_source>);
  add_pair(mode, "handle", BM_handle<CtokenLib>, BM_handle<StdLib>);
  add_cancel_rows(mode, cancel_min_time, std::make_index_sequence<kMaxCallbacksLog2 + 1>{});
  add_linked_rows(mode, std::make_index_sequence<std::size(kLinkedParents)>{});
  if (mode == Mode::single_threaded) return;  // the rows below start threads
  // inplace_shared/threads:T and inplace_separate/threads:T, in wall time; the ctoken and std runs
  // of each T side by side.
  for (const int threads : kThreadCounts) {
    for (const BenchmarkPair& pair : {add_pair(mode, "inplace_shared", BM_inplace<CtokenLib, Sharing::shared_source>,
                                               BM_inplace<StdLib, Sharing::shared_source>),
                                      add_pair(mode, "inplace_separate", BM_inplace<CtokenLib, Sharing::own_source>,
                                               BM_inplace<StdLib, Sharing::own_source>)}) {
      for (benchmark::internal::Benchmark* b : pair) b->Threads(threads)->UseRealTime();
    }
  }
}

// Removes every `flag` from argv (Google Benchmark rejects flags it does not know) and says
// whether there was one.
bool take_flag(int& argc, char** argv, const char* flag) {
  char** const end =
      std::remove_if(argv + 1, argv + argc, [flag](const char* arg) { return std::strcmp(arg, flag) == 0; });
  const bool found = end != argv + argc;
  argc = static_cast<int>(end - argv);
  argv[argc] = nullptr;
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  const Mode mode = take_flag(argc, argv, "--single_threaded") ? Mode::single_threaded : Mode::multi_threaded;
  std::optional<SecondThread> keep_multi_threaded;
  if (mode == Mode::multi_threaded) {
    keep_multi_threaded.emplace();  // before anything is measured: see SecondThread
  } else if (!process_is_single_threaded().value_or(false)) {
    std::fprintf(stderr, "ctoken_bench: --single_threaded needs %s\n",
                 process_is_single_threaded().has_value() ? "a process with one thread, and this one has more"
                                                          : "glibc 2.32 or later (__libc_single_threaded)");
    return 1;
  }
  // A minimum time given on the command line wins over the cancel rows' own (see add_cancel_row).
  const bool min_time_given = std::any_of(
      argv + 1, argv + argc, [](const char* arg) { return std::strncmp(arg, "--benchmark_min_time", 20) == 0; });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_benchmarks(mode, min_time_given ? 0.0 : 0.1);
  RatioReporter reporter{std::unique_ptr<benchmark::BenchmarkReporter>(benchmark::CreateDefaultDisplayReporter()),
                         mode};
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return reporter.failed() ? 1 : 0;
}
