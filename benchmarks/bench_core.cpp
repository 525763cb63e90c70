// ctoken benchmarks: every row is measured twice in this one binary, once with ctoken and once
// with its nearest std::stop_token (C++20) equivalent, under names that pair up:
// "<row>/ctoken" and "<row>/std". Each row is a single template instantiated for both
// libraries (see CtokenLib and StdLib below), so the two variants run the same harness code.
//
// Every row also reports `allocs_per_op`: heap allocations per measured operation, counted by
// the replacement operator new at the bottom of this file.
//
// When the runs finish, a summary table prints the ctoken/std ratio of each pair next to the
// goal set for it (RatioReporter). With --benchmark_repetitions the table uses the medians.

#include <ctoken/ctoken.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <ostream>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

// ---- allocation counting ---------------------------------------------------------------------

// Allocations made by the current thread so far (bumped by every operator new below).
//
// One counter per thread rather than one for the process: a shared counter costs a locked
// read-modify-write and a contended cache line on every allocation, which would be charged
// only to the variants that allocate and would couple the two threads of the contention row.
// Only the owning thread writes its counter, so a relaxed load + store is an exact increment
// without a locked instruction; it stays an atomic so that reading it elsewhere is race-free.
// The per-thread counts of a multi-threaded row are summed by Google Benchmark (counters are
// added across threads, then kAvgIterations divides by the total number of iterations).
thread_local std::atomic<std::uint64_t> t_allocations{0};

inline void count_allocation() noexcept {
  t_allocations.store(t_allocations.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

inline std::uint64_t allocations() noexcept { return t_allocations.load(std::memory_order_relaxed); }

// `count` allocations over the whole run, reported per iteration.
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

// The std equivalent of a linked source: a stop_source plus one stop_callback per parent that
// forwards the parent's stop request. Built in one heap object per child (std::make_unique),
// which is what a program needs to hand such a child around (stop_callback cannot move).
struct StdForward {
  std::stop_source* child;
  void operator()() const noexcept { child->request_stop(); }
};
struct StdLinked1 {
  explicit StdLinked1(const std::stop_token& p0) : link0(p0, StdForward{&source}) {}
  std::stop_source source;  // declared first: constructed before, destroyed after, the links
  std::stop_callback<StdForward> link0;
};
struct StdLinked2 {
  StdLinked2(const std::stop_token& p0, const std::stop_token& p1)
      : link0(p0, StdForward{&source}), link1(p1, StdForward{&source}) {}
  std::stop_source source;
  std::stop_callback<StdForward> link0;
  std::stop_callback<StdForward> link1;
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
  static Source link(const Token& p0) { return Source::CreateLinkedTokenSource(p0); }
  static Source link(const Token& p0, const Token& p1) { return Source::CreateLinkedTokenSource(p0, p1); }
  // One source for the whole process, shared by the threads of the contention row.
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
  static std::unique_ptr<StdLinked1> link(const Token& p0) { return std::make_unique<StdLinked1>(p0); }
  static std::unique_ptr<StdLinked2> link(const Token& p0, const Token& p1) {
    return std::make_unique<StdLinked2>(p0, p1);
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

// inplace: construct a callback object stored in place (ctoken::CancellationCallback,
// std::stop_callback) on a live token, then destroy it: register + unregister, no allocation.
template <class Lib>
void BM_inplace(benchmark::State& state) {
  typename Lib::Source source;
  const typename Lib::Token token = Lib::token_of(source);
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
// the two clock reads are negligible even for N = 1: the Time column is per batch, the counter
// ns_per_callback (used by the summary) per callback, and items_per_second counts callbacks.
// (Reporting a per-source iteration time instead would make Google Benchmark run the untimed
// set-up hundreds of times longer than the timed part before it reached its minimum time.)
constexpr std::size_t kBatchCallbacks = 256;

template <class Lib, std::size_t N>
void BM_cancel(benchmark::State& state) {
  static_assert(N > 0, "at least one callback");
  using Source = typename Lib::Source;
  using Callback = typename Lib::template Callback<Bump>;
  using clock = std::chrono::steady_clock;
  constexpr std::size_t kSources = N >= kBatchCallbacks ? 1 : kBatchCallbacks / N;

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
// from every parent). ctoken: CreateLinkedTokenSource(parents...). std: StdLinked1/2 above.
template <class Lib, std::size_t Parents>
void BM_linked(benchmark::State& state) {
  static_assert(Parents == 1 || Parents == 2, "one or two parents");
  typename Lib::Source parent0;
  typename Lib::Source parent1;
  const typename Lib::Token token0 = Lib::token_of(parent0);
  const typename Lib::Token token1 = Lib::token_of(parent1);
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    if constexpr (Parents == 1) {
      auto child = Lib::link(token0);
      benchmark::DoNotOptimize(&child);
    } else {
      auto child = Lib::link(token0, token1);
      benchmark::DoNotOptimize(&child);
    }
  }
  report_allocations(state, allocations() - before);
}

// contended: the in-place register + unregister of "inplace", by two threads at once on the
// same source (one process-wide source per library), so both fight over its lock and its
// reference count. The Time column is wall time per operation over both threads together.
template <class Lib>
void BM_contended(benchmark::State& state) {
  const typename Lib::Token token = Lib::token_of(Lib::shared_source());
  std::uint64_t hits = 0;
  const std::uint64_t before = allocations();
  for (auto _ : state) {
    typename Lib::template Callback<Bump> callback(token, Bump{&hits});
    benchmark::DoNotOptimize(&callback);
  }
  report_allocations(state, allocations() - before);
  expect_hits(state, hits, 0);
}

// ---- the summary table -------------------------------------------------------------------------

// One line of the summary: a ctoken run against a std run (by the name they were registered
// under, i.e. without "/manual_time" or "/threads:2").
struct Comparison {
  const char* label;
  const char* ctoken_run;
  const char* std_run;
  const char* counter;  // compare this counter instead of the real time per iteration, if set
  double goal;          // the ratio must be <= goal; 0: shown for information only
  bool zero_allocs;     // the ctoken run must also make no allocation
};

const Comparison kComparisons[] = {
    {"check (IsCancellationRequested)", "check/ctoken", "check/std", nullptr, 1.0, false},
    {"token copy+destroy", "copy/ctoken", "copy/std", nullptr, 1.0, false},
    {"source create+destroy", "create/ctoken", "create/std", nullptr, 1.0, false},
    {"in-place register+unregister", "inplace/ctoken", "inplace/std", nullptr, 0.6, false},
    {"handle Register+Dispose vs make_unique", "handle/ctoken", "handle/std", nullptr, 0.8, true},
    {"handle Register+Dispose vs in-place std", "handle/ctoken", "inplace/std", nullptr, 0, true},
    {"cancel, 1 callback (per callback)", "cancel/1/ctoken", "cancel/1/std", "ns_per_callback", 0.6, false},
    {"cancel, 16 callbacks (per callback)", "cancel/16/ctoken", "cancel/16/std", "ns_per_callback", 0.6, false},
    {"cancel, 1024 callbacks (per callback)", "cancel/1024/ctoken", "cancel/1024/std", "ns_per_callback", 0.6, false},
    {"linked source, 1 parent", "linked/1/ctoken", "linked/1/std", nullptr, 0, false},
    {"linked source, 2 parents", "linked/2/ctoken", "linked/2/std", nullptr, 0.6, false},
    {"2-thread register+unregister", "contended/ctoken", "contended/std", nullptr, 1.0, false},
};

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
// ctoken/std table once all runs are done. Per run name it uses the "median" aggregate when
// there is one (--benchmark_repetitions=N), else the median of the plain runs it saw.
class RatioReporter : public benchmark::BenchmarkReporter {
 public:
  explicit RatioReporter(std::unique_ptr<benchmark::BenchmarkReporter> display) : display_(std::move(display)) {}

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
      Samples& samples = samples_[run.run_name.function_name];
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

  // The median of `metric` for the run registered as `name`; NaN if unknown.
  double value(const char* name, const std::string& metric) const {
    const auto run = samples_.find(name);
    if (run == samples_.end()) return std::nan("");
    const Samples& s = run->second;
    if (const auto m = s.medians.find(metric); m != s.medians.end()) return m->second;
    if (const auto r = s.runs.find(metric); r != s.runs.end()) return median(r->second);
    return std::nan("");
  }

  // A run whose threads were not all on a CPU all the time: real time x threads (the wall time
  // each thread had) exceeds the CPU time they got by more than 10%. Something else ran on the
  // machine, and the real time is inflated (or, for the 2-thread row, the threads did not
  // really run at the same time, which hides the contention).
  bool disturbed(const char* name) const {
    const double cpu = value(name, kCpuTime);
    return !std::isnan(cpu) && value(name, kRealTime) * value(name, kThreads) > 1.1 * cpu;
  }

  void print_table(std::ostream& out) const {
    bool header = false;
    bool any_disturbed = false;
    for (const Comparison& c : kComparisons) {
      const std::string metric = c.counter != nullptr ? c.counter : kRealTime;
      const double ct_ns = value(c.ctoken_run, metric);
      const double st_ns = value(c.std_run, metric);
      if (std::isnan(ct_ns) || std::isnan(st_ns)) continue;  // filtered out, or failed
      const double ct_allocs = value(c.ctoken_run, "allocs_per_op");
      const double st_allocs = value(c.std_run, "allocs_per_op");
      if (!header) {
        out << "\nctoken / std (" << (any_median() ? "medians" : "single runs")
            << " of the real time per operation; per callback for the cancel rows)\n";
        char title[160];
        std::snprintf(title, sizeof title, "%-42s %10s %10s %7s %7s  %-6s %14s\n", "row", "ctoken ns", "std ns",
                      "ratio", "goal", "", "allocs/op c/s");
        out << title;
        header = true;
      }
      const double ratio = ct_ns / st_ns;
      const bool no_allocs = ct_allocs < 0.005;  // 0.00 as printed: first-use allocations amortised
      char goal[16] = "info";
      const char* verdict = "";
      if (c.goal > 0) {
        std::snprintf(goal, sizeof goal, "<=%.1f", c.goal);
        verdict = ratio <= c.goal && (!c.zero_allocs || no_allocs) ? "ok" : "MISS";
      } else if (c.zero_allocs && !no_allocs) {
        verdict = "ALLOCS";
      }
      char allocs[32];
      std::snprintf(allocs, sizeof allocs, "%.2f/%.2f", ct_allocs, st_allocs);
      const bool noisy = c.counter == nullptr && (disturbed(c.ctoken_run) || disturbed(c.std_run));
      any_disturbed = any_disturbed || noisy;
      char row[160];
      std::snprintf(row, sizeof row, "%-42s %10.2f %10.2f %7.3f %7s  %-6s %14s%s\n", c.label, ct_ns, st_ns, ratio, goal,
                    verdict, allocs, noisy ? "  *" : "");
      out << row;
    }
    if (any_disturbed) {
      out << "* real time x threads > 1.1 x CPU time: the threads were not on a CPU all the time (the machine was\n"
             "  busy with something else); rerun these rows on a quiet machine\n";
    }
    out.flush();
  }

  bool any_median() const {
    return std::any_of(samples_.begin(), samples_.end(),
                       [](const auto& entry) { return !entry.second.medians.empty(); });
  }

  std::unique_ptr<benchmark::BenchmarkReporter> display_;
  std::map<std::string, Samples> samples_;
  bool failed_ = false;
};

// ---- registration ------------------------------------------------------------------------------

using BenchmarkFunction = void (*)(benchmark::State&);

// Registers "<row>/ctoken" and "<row>/std" next to each other, so that they run one after the
// other, and returns them for further settings.
std::pair<benchmark::internal::Benchmark*, benchmark::internal::Benchmark*> add_pair(const std::string& row,
                                                                                     BenchmarkFunction with_ctoken,
                                                                                     BenchmarkFunction with_std) {
  return {benchmark::RegisterBenchmark((row + "/ctoken").c_str(), with_ctoken),
          benchmark::RegisterBenchmark((row + "/std").c_str(), with_std)};
}

void register_benchmarks() {
  add_pair("check", BM_check<CtokenLib>, BM_check<StdLib>);
  add_pair("copy", BM_copy<CtokenLib>, BM_copy<StdLib>);
  add_pair("create", BM_create<CtokenLib>, BM_create<StdLib>);
  add_pair("inplace", BM_inplace<CtokenLib>, BM_inplace<StdLib>);
  add_pair("handle", BM_handle<CtokenLib>, BM_handle<StdLib>);
  for (const auto& b : {add_pair("cancel/1", BM_cancel<CtokenLib, 1>, BM_cancel<StdLib, 1>),
                        add_pair("cancel/16", BM_cancel<CtokenLib, 16>, BM_cancel<StdLib, 16>),
                        add_pair("cancel/1024", BM_cancel<CtokenLib, 1024>, BM_cancel<StdLib, 1024>)}) {
    b.first->UseManualTime();
    b.second->UseManualTime();
  }
  add_pair("linked/1", BM_linked<CtokenLib, 1>, BM_linked<StdLib, 1>);
  add_pair("linked/2", BM_linked<CtokenLib, 2>, BM_linked<StdLib, 2>);
  const auto contended = add_pair("contended", BM_contended<CtokenLib>, BM_contended<StdLib>);
  contended.first->Threads(2)->UseRealTime();
  contended.second->Threads(2)->UseRealTime();
}

// Keeps the process multi-threaded for as long as it exists: a thread that only waits.
//
// libstdc++ and glibc take cheaper paths while a process has a single thread: libstdc++ asks
// __gnu_cxx::__is_single_threaded() (glibc's __libc_single_threaded, which turns false for good
// once a second thread is created) and then, for example, skips the per-callback semaphore
// release in std::stop_source::request_stop and uses non-atomic shared_ptr counts. A program
// that needs cancellation has more than one thread, so every row must be measured in that mode,
// including the rows that run before the first multi-threaded benchmark would start a thread.
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

}  // namespace

int main(int argc, char** argv) {
  const SecondThread keep_multi_threaded;  // before anything is measured: see SecondThread
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_benchmarks();
  RatioReporter reporter{std::unique_ptr<benchmark::BenchmarkReporter>(benchmark::CreateDefaultDisplayReporter())};
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return reporter.failed() ? 1 : 0;
}

// ---- counting replacements of the global allocation functions ----------------------------------
//
// Every form of operator new counts one allocation and takes its memory from malloc (or
// posix_memalign for over-aligned requests); every form of operator delete gives it back with
// free. Replacing them in the executable also covers allocations made inside the shared
// libraries (libstdc++, libbenchmark), since they bind to these definitions.

namespace {

void* allocate(std::size_t size) {
  count_allocation();
  if (size == 0) size = 1;
  for (;;) {
    if (void* p = std::malloc(size)) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* allocate_aligned(std::size_t size, std::align_val_t alignment) {
  count_allocation();
  if (size == 0) size = 1;
  const std::size_t align = std::max(static_cast<std::size_t>(alignment), sizeof(void*));
  for (;;) {
    void* p = nullptr;
    if (posix_memalign(&p, align, size) == 0) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

template <class Allocate>
void* allocate_nothrow(Allocate&& allocate_or_throw) noexcept {
  try {
    return allocate_or_throw();
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void* operator new(std::size_t size, std::align_val_t alignment) { return allocate_aligned(size, alignment); }
void* operator new[](std::size_t size, std::align_val_t alignment) { return allocate_aligned(size, alignment); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_nothrow([size] { return allocate(size); });
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_nothrow([size] { return allocate(size); });
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate_nothrow([size, alignment] { return allocate_aligned(size, alignment); });
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate_nothrow([size, alignment] { return allocate_aligned(size, alignment); });
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
