// <ctoken/postgres.hpp> against the bare libpq calls, in one binary (Google Benchmark), on a
// throwaway server it starts itself (initdb + pg_ctl as the 'postgres' user when root, Unix
// socket in a temporary directory, no TCP; stopped and removed at the end), or on the server
// named by the environment variable CTOKEN_PG_CONNINFO.
//
//   ctoken_bench_postgres [--samples=N] [benchmark flags]
//
// Rows (the token never cancelled), each against "select1/bare" = PQexec("SELECT 1"):
//   select1/scope   a CancelScope made and destroyed around the PQexec
//   select1/exec    ctoken::postgres::Exec (PQsendQuery + poll on the socket and a CancellationFd)
//   select1/interleaved  the three in alternating rounds of 100 queries (40 rounds, fewer with a
//                   small --samples): counters bare_us, scope_us, exec_us per query (medians
//                   over the rounds) and scope_ratio, exec_ratio
// Latency rows: SELECT pg_sleep(30) cancelled from another thread 20 ms after it was sent;
// Cancel() to the call returning (SQLSTATE 57014), over N samples (--samples, default 50), as
// counters p50_us, p99_us, max_us:
//   cancel_latency/bare    PQexec, and another thread calling PQcancel itself: the libpq floor.
//                          PQexec may return before that PQcancel has (libpq's PQcancel waits
//                          until the server has closed the cancel connection, so that the
//                          request cannot hit a later query); settled_p50_us / settled_p99_us
//                          stop the clock when both have returned, which is when ctoken's
//                          calls return (CancelScope's destructor and Exec wait for PQcancel)
//   cancel_latency/scope   PQexec under a CancelScope (the cancelling thread runs PQcancel)
//   cancel_latency/exec    Exec (the caller's thread wakes, sends the cancel, drains)
#include <ctoken/ctoken.hpp>
#include <ctoken/postgres.hpp>

#include <benchmark/benchmark.h>
#include <libpq-fe.h>

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "latency_support.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

using latency_support::fail;
using latency_support::percentile;
int g_samples = 50;
int g_rounds = 40;  // of select1/interleaved
std::string g_conninfo;

int sh(const std::string& command) { return std::system(command.c_str()); }

// The throwaway server; empty conninfo() when it could not start (the reason is printed).
class Server {
 public:
  Server() {
    const std::string bin = CTOKEN_PG_BINDIR;
    if (bin.empty()) {
      std::fprintf(stderr, "no PostgreSQL server binaries (initdb) were found at configure time\n");
      return;
    }
    char tmpl[] = "/tmp/ctoken-pgbench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    std::string as_postgres;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      if (pw == nullptr || ::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) return;
      as_postgres = "runuser -u postgres -- ";
    }
    ctl_ = as_postgres + bin + "/pg_ctl -D " + dir_ + "/data";
    if (sh(as_postgres + bin + "/initdb -D " + dir_ + "/data -A trust -U postgres -E UTF8 --locale=C --no-sync > " +
           dir_ + "/initdb.log 2>&1") != 0 ||
        sh(ctl_ + " -w -t 60 -l " + dir_ + "/server.log -o \"-c listen_addresses='' -k " + dir_ +
           " -c fsync=off\" start > /dev/null") != 0) {
      std::fprintf(stderr, "the server did not start: see %s\n", dir_.c_str());
      return;
    }
    started_ = true;
  }
  ~Server() {
    if (started_) sh(ctl_ + " -w -m immediate stop > /dev/null 2>&1");
    if (!dir_.empty() && started_) sh("rm -rf '" + dir_ + "'");
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  std::string conninfo() const { return started_ ? "host=" + dir_ + " user=postgres dbname=postgres" : std::string(); }

 private:
  std::string dir_;
  std::string ctl_;
  bool started_ = false;
};

struct Conn {
  PGconn* c;
  Conn() : c(PQconnectdb(g_conninfo.c_str())) {}
  ~Conn() { PQfinish(c); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  bool ok() const { return PQstatus(c) == CONNECTION_OK; }
};

bool tuples_ok(PGresult* r) {
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  return ok;
}

enum class Form { bare, scope, exec };

void select1(benchmark::State& state, Form form) {
  Conn conn;
  if (!conn.ok()) {
    fail(state, PQerrorMessage(conn.c));
    return;
  }
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = source.Token();
  for (auto _ : state) {
    bool ok = false;
    switch (form) {
      case Form::bare:
        ok = tuples_ok(PQexec(conn.c, "SELECT 1"));
        break;
      case Form::scope: {
        ctoken::postgres::CancelScope scope(conn.c, token);
        ok = tuples_ok(PQexec(conn.c, "SELECT 1"));
        break;
      }
      case Form::exec:
        ok = tuples_ok(ctoken::postgres::Exec(conn.c, "SELECT 1", token));
        break;
    }
    if (!ok) {
      fail(state, "SELECT 1 failed");
      break;
    }
  }
}

// The three forms in alternating rounds of 100 queries on one connection, so that all three
// see the same load; medians over the rounds of the time per query, and their ratios.
void select1_interleaved(benchmark::State& state) {
  Conn conn;
  if (!conn.ok()) {
    fail(state, PQerrorMessage(conn.c));
    return;
  }
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = source.Token();
  constexpr int kPerRound = 100;
  std::vector<double> per_query[3];
  const Form forms[3] = {Form::bare, Form::scope, Form::exec};
  for (auto _ : state) {
    for (int f = 0; f < 3; ++f) {
      const auto start = clock_type::now();
      for (int i = 0; i < kPerRound; ++i) {
        bool ok = false;
        if (forms[f] == Form::bare) {
          ok = tuples_ok(PQexec(conn.c, "SELECT 1"));
        } else if (forms[f] == Form::scope) {
          ctoken::postgres::CancelScope scope(conn.c, token);
          ok = tuples_ok(PQexec(conn.c, "SELECT 1"));
        } else {
          ok = tuples_ok(ctoken::postgres::Exec(conn.c, "SELECT 1", token));
        }
        if (!ok) {
          fail(state, "SELECT 1 failed");
          return;
        }
      }
      per_query[f].push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count() / kPerRound);
    }
  }
  const double bare = percentile(per_query[0], 0.5);
  state.counters["bare_us"] = bare;
  state.counters["scope_us"] = percentile(per_query[1], 0.5);
  state.counters["exec_us"] = percentile(per_query[2], 0.5);
  state.counters["scope_ratio"] = percentile(per_query[1], 0.5) / bare;
  state.counters["exec_ratio"] = percentile(per_query[2], 0.5) / bare;
}

void cancel_latency(benchmark::State& state, Form form) {
  Conn conn;
  if (!conn.ok()) {
    fail(state, PQerrorMessage(conn.c));
    return;
  }
  std::vector<double> samples_us;
  std::vector<double> settled_us;  // bare only: until its PQcancel has returned as well
  for (auto _ : state) {
    samples_us.clear();
    settled_us.clear();
    for (int i = 0; i < g_samples; ++i) {
      ctoken::CancellationTokenSource source;
      clock_type::time_point cancelled_at;
      clock_type::time_point cancel_returned;
      PGcancel* bare_cancel = form == Form::bare ? PQgetCancel(conn.c) : nullptr;
      std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        cancelled_at = clock_type::now();
        if (bare_cancel != nullptr) {
          char errbuf[256];
          PQcancel(bare_cancel, errbuf, static_cast<int>(sizeof errbuf));
          cancel_returned = clock_type::now();
        } else {
          source.Cancel();
        }
      });
      PGresult* r;
      if (form == Form::bare) {
        r = PQexec(conn.c, "SELECT pg_sleep(30)");
      } else if (form == Form::scope) {
        ctoken::postgres::CancelScope scope(conn.c, source.Token());
        r = PQexec(conn.c, "SELECT pg_sleep(30)");
      } else {
        r = ctoken::postgres::Exec(conn.c, "SELECT pg_sleep(30)", source.Token());
      }
      const auto returned = clock_type::now();
      canceller.join();
      if (bare_cancel != nullptr) PQfreeCancel(bare_cancel);
      const char* sqlstate = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      const bool cancelled = sqlstate != nullptr && std::strcmp(sqlstate, "57014") == 0;
      PQclear(r);
      if (!cancelled) {
        fail(state, "the query was not cancelled");
        break;
      }
      samples_us.push_back(std::chrono::duration<double, std::micro>(returned - cancelled_at).count());
      if (form == Form::bare) {
        const auto settled = std::max(returned, cancel_returned);
        settled_us.push_back(std::chrono::duration<double, std::micro>(settled - cancelled_at).count());
      }
    }
  }
  latency_support::set_latency_counters(state, samples_us);
  if (!settled_us.empty()) {
    state.counters["settled_p50_us"] = percentile(settled_us, 0.50);
    state.counters["settled_p99_us"] = percentile(settled_us, 0.99);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag first (Google Benchmark rejects flags it does not know).
  if (latency_support::take_samples_flag(argc, argv, g_samples)) {
    g_rounds = std::max(1, std::min(40, g_samples));
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  Server* server = nullptr;
  if (const char* given = std::getenv("CTOKEN_PG_CONNINFO")) {
    g_conninfo = given;
  } else {
    server = new Server;
    g_conninfo = server->conninfo();
    if (g_conninfo.empty()) {
      delete server;
      std::printf("SKIPPED: no PostgreSQL server to measure against\n");
      return 0;
    }
  }
  benchmark::RegisterBenchmark("select1/bare", [](benchmark::State& s) { select1(s, Form::bare); });
  benchmark::RegisterBenchmark("select1/scope", [](benchmark::State& s) { select1(s, Form::scope); });
  benchmark::RegisterBenchmark("select1/exec", [](benchmark::State& s) { select1(s, Form::exec); });
  benchmark::RegisterBenchmark("select1/interleaved", select1_interleaved)->Iterations(g_rounds);
  benchmark::RegisterBenchmark("cancel_latency/bare", [](benchmark::State& s) { cancel_latency(s, Form::bare); })
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("cancel_latency/scope", [](benchmark::State& s) { cancel_latency(s, Form::scope); })
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("cancel_latency/exec", [](benchmark::State& s) { cancel_latency(s, Form::exec); })
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete server;
  return latency_support::exit_code();
}
