// <ctoken/sqlite.hpp> against the bare SQLite calls, in one binary (Google Benchmark).
//
//   ctoken_bench_sqlite [--samples=N] [benchmark flags]
//
// Rows, each "<statement>/bare" next to "<statement>/scope" (the same statement with an
// InterruptScope made and destroyed around it, the token never cancelled):
//   select1      SELECT 1: prepared once, stepped and reset; the scope's fixed cost shows here
//   cte/1000     a recursive CTE of 1 000 rows (some 50 000 virtual-machine instructions)
//   cte/100000   the same with 100 000 rows: the progress handler's cost per check shows here
// plus "<statement>/scope_n100": the scope with check_interval 100 (checks 100 times rarer).
// and one latency row:
//   cancel_latency/scope  a 100 M-row CTE under a scope, cancelled from another thread once it
//                         runs: Cancel() to sqlite3_step returning SQLITE_INTERRUPT, over N
//                         samples (--samples, default 200), as counters p50_us, p99_us, max_us
//   cancel_latency/bare   the same without ctoken: the other thread calls sqlite3_interrupt
#include <ctoken/ctoken.hpp>
#include <ctoken/sqlite.hpp>

#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "latency_support.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

using latency_support::fail;
using latency_support::percentile;
int g_samples = 200;

struct Db {
  sqlite3* db = nullptr;
  Db() {
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
      std::fprintf(stderr, "sqlite3_open failed\n");
      std::exit(1);
    }
  }
  ~Db() { sqlite3_close(db); }
};

sqlite3_stmt* prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "prepare failed: %s\n", sqlite3_errmsg(db));
    std::exit(1);
  }
  return stmt;
}

// Steps to the end and resets; false if the statement did not end with SQLITE_DONE.
bool run(sqlite3_stmt* stmt) {
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) benchmark::DoNotOptimize(sqlite3_column_int64(stmt, 0));
  sqlite3_reset(stmt);
  return rc == SQLITE_DONE;
}

std::string cte(long rows) {
  return "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < " + std::to_string(rows) +
         ") SELECT sum(x) FROM c";
}

// check_interval 0: the bare statement; otherwise under a scope with that interval.
void statement_row(benchmark::State& state, const std::string& sql, int check_interval) {
  Db db;
  sqlite3_stmt* stmt = prepare(db.db, sql.c_str());
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = source.Token();
  for (auto _ : state) {
    bool ok;
    if (check_interval > 0) {
      ctoken::sqlite::InterruptScope scope(db.db, token, check_interval);
      ok = run(stmt);
    } else {
      ok = run(stmt);
    }
    if (!ok) {
      fail(state, "the statement failed");
      break;
    }
  }
  sqlite3_finalize(stmt);
}

// with_scope false: the bare floor, another thread calling sqlite3_interrupt itself.
void cancel_latency(benchmark::State& state, bool with_scope) {
  Db db;
  sqlite3_stmt* stmt = prepare(db.db, cte(100000000).c_str());
  std::vector<double> samples_us;
  for (auto _ : state) {
    samples_us.clear();
    for (int i = 0; i < g_samples; ++i) {
      ctoken::CancellationTokenSource source;
      // release/acquire: `running` only orders the canceller after the scope's construction;
      // `cancelled_at` is read after join(), which orders it anyway.
      std::atomic<bool> running{false};
      std::atomic<long long> cancelled_at{0};
      std::thread canceller([&] {
        while (!running.load(std::memory_order_acquire)) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // well inside the statement
        cancelled_at.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
        if (with_scope) {
          source.Cancel();
        } else {
          sqlite3_interrupt(db.db);
        }
      });
      int rc;
      if (with_scope) {
        ctoken::sqlite::InterruptScope scope(db.db, source.Token());
        running.store(true, std::memory_order_release);
        rc = sqlite3_step(stmt);
      } else {
        running.store(true, std::memory_order_release);
        rc = sqlite3_step(stmt);
      }
      const auto returned = clock_type::now();
      canceller.join();
      sqlite3_reset(stmt);
      if (rc != SQLITE_INTERRUPT) {
        fail(state, "the statement was not interrupted");
        break;
      }
      const auto lag = returned - clock_type::time_point(clock_type::duration(cancelled_at.load()));
      samples_us.push_back(std::chrono::duration<double, std::micro>(lag).count());
    }
  }
  sqlite3_finalize(stmt);
  latency_support::set_latency_counters(state, samples_us);
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag first (Google Benchmark rejects flags it does not know).
  latency_support::take_samples_flag(argc, argv, g_samples);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const struct {
    const char* name;
    std::string sql;
  } statements[] = {{"select1", "SELECT 1"}, {"cte/1000", cte(1000)}, {"cte/100000", cte(100000)}};
  for (const auto& s : statements) {
    const std::string sql = s.sql;
    benchmark::RegisterBenchmark((std::string(s.name) + "/bare").c_str(),
                                 [sql](benchmark::State& st) { statement_row(st, sql, 0); });
    benchmark::RegisterBenchmark((std::string(s.name) + "/scope").c_str(),
                                 [sql](benchmark::State& st) { statement_row(st, sql, 1); });
    benchmark::RegisterBenchmark((std::string(s.name) + "/scope_n100").c_str(),
                                 [sql](benchmark::State& st) { statement_row(st, sql, 100); });
  }
  benchmark::RegisterBenchmark("cancel_latency/bare", [](benchmark::State& st) { cancel_latency(st, false); })
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("cancel_latency/scope", [](benchmark::State& st) { cancel_latency(st, true); })
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return latency_support::exit_code();
}
