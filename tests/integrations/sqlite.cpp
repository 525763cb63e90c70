// <ctoken/sqlite.hpp> against the real SQLite: in-memory databases, real threads, real clocks.
#include <ctoken/ctoken.hpp>
#include <ctoken/sqlite.hpp>

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// Ten million rows of a recursive CTE: seconds of work, all of it in SQLite's virtual machine.
constexpr const char* kLongQuery =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT sum(x) FROM c";

struct Db {
  sqlite3* db = nullptr;
  Db() {
    REQUIRE(sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                            nullptr) == SQLITE_OK);
  }
  ~Db() { sqlite3_close(db); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
};

// Prepares and steps `sql` to its end; returns the final code (SQLITE_DONE on success) or the
// code of a failed prepare. The statement is always finalized.
int run(sqlite3* db, const char* sql, long long* first_column = nullptr) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (first_column != nullptr) *first_column = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return rc;
}

long long count_rows(sqlite3* db) {
  long long n = -1;
  REQUIRE(run(db, "SELECT count(*) FROM t", &n) == SQLITE_DONE);
  return n;
}

}  // namespace

TEST_CASE("a long recursive query is interrupted within a few ms of Cancel") {
  Db db;
  ctoken::CancellationTokenSource source;
  std::atomic<long long> cancelled_at{0};
  std::thread canceller([&] {
    std::this_thread::sleep_for(ms(100));
    cancelled_at.store(clock_type::now().time_since_epoch().count());
    source.Cancel();
  });
  int rc;
  {
    ctoken::sqlite::InterruptScope scope(db.db, source.Token());
    rc = run(db.db, kLongQuery);
    CHECK(scope.IsCancellationRequested());
  }
  const auto returned = clock_type::now();
  canceller.join();
  CHECK(rc == SQLITE_INTERRUPT);
  const auto lag = returned - clock_type::time_point(clock_type::duration(cancelled_at.load()));
  const double lag_ms = std::chrono::duration<double, std::milli>(lag).count();
  INFO("Cancel() to the statement's return: " << lag_ms << " ms");
  CHECK(lag < ms(250));  // generous for loaded machines and sanitizers; the benchmark has the figure
}

TEST_CASE("the next statement after the scope runs normally") {
  Db db;
  ctoken::CancellationTokenSource source;
  {
    ctoken::sqlite::InterruptScope scope(db.db, source.Token());
    std::thread canceller([&] {
      std::this_thread::sleep_for(ms(50));
      source.Cancel();
    });
    CHECK(run(db.db, kLongQuery) == SQLITE_INTERRUPT);
    canceller.join();
  }
  long long one = 0;
  CHECK(run(db.db, "SELECT 1", &one) == SQLITE_DONE);
  CHECK(one == 1);
  long long sum = 0;
  CHECK(run(db.db,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT sum(x) FROM c",
            &sum) == SQLITE_DONE);
  CHECK(sum == 500500);
}

TEST_CASE("an already cancelled token stops every statement at once") {
  Db db;
  REQUIRE(run(db.db, "CREATE TABLE t(a)") == SQLITE_DONE);
  ctoken::CancellationTokenSource source;
  source.Cancel();
  {
    ctoken::sqlite::InterruptScope scope(db.db, source.Token());
    const auto start = clock_type::now();
    CHECK(run(db.db, kLongQuery) == SQLITE_INTERRUPT);
    CHECK(clock_type::now() - start < ms(100));
    CHECK(run(db.db, "SELECT 1") == SQLITE_INTERRUPT);                  // even a one-row statement
    CHECK(run(db.db, "INSERT INTO t VALUES (1)") == SQLITE_INTERRUPT);  // and its write is undone
  }
  CHECK(count_rows(db.db) == 0);
  CHECK(run(db.db, "INSERT INTO t VALUES (1)") == SQLITE_DONE);
  CHECK(count_rows(db.db) == 1);
}

TEST_CASE("a token cancelled between two statements stops the next one") {
  Db db;
  REQUIRE(run(db.db, "CREATE TABLE t(a)") == SQLITE_DONE);
  ctoken::CancellationTokenSource source;
  ctoken::sqlite::InterruptScope scope(db.db, source.Token());
  CHECK(run(db.db, "INSERT INTO t VALUES (1)") == SQLITE_DONE);
  source.Cancel();  // nothing runs: sqlite3_interrupt alone would be discarded
  CHECK(run(db.db, "INSERT INTO t VALUES (2)") == SQLITE_INTERRUPT);
  CHECK(run(db.db, "SELECT 1") == SQLITE_INTERRUPT);
}

TEST_CASE("a token that is never cancelled changes nothing") {
  Db db;
  ctoken::CancellationTokenSource source;
  ctoken::sqlite::InterruptScope scope(db.db, source.Token());
  ctoken::sqlite::InterruptScope none(db.db, ctoken::CancellationToken::None());
  long long sum = 0;
  CHECK(run(db.db,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT sum(x) FROM c",
            &sum) == SQLITE_DONE);
  CHECK(sum == 5000050000LL);
  CHECK_FALSE(none.IsCancellationRequested());
}

TEST_CASE("nested scopes: the outer token stops the inner statement, and the outer handler comes back") {
  Db db;
  ctoken::CancellationTokenSource outer_source;
  ctoken::CancellationTokenSource inner_source;
  ctoken::sqlite::InterruptScope outer(db.db, outer_source.Token());
  {
    ctoken::sqlite::InterruptScope inner(db.db, inner_source.Token());
    outer_source.Cancel();
    CHECK(inner.IsCancellationRequested());
    CHECK(run(db.db, "SELECT 1") == SQLITE_INTERRUPT);
  }
  // The inner scope is gone: the outer one's handler is installed again.
  CHECK(run(db.db, "SELECT 1") == SQLITE_INTERRUPT);
}

TEST_CASE("the handler is removed with the last scope, also after an inner scope was cancelled") {
  Db db;
  ctoken::CancellationTokenSource outer_source;
  {
    ctoken::sqlite::InterruptScope outer(db.db, outer_source.Token());
    {
      ctoken::CancellationTokenSource inner_source;
      ctoken::sqlite::InterruptScope inner(db.db, inner_source.Token());
      inner_source.Cancel();
      CHECK(run(db.db, "SELECT 1") == SQLITE_INTERRUPT);
    }
    CHECK(run(db.db, "SELECT 1") == SQLITE_DONE);  // the outer token is not cancelled
  }
  outer_source.Cancel();
  CHECK(run(db.db, "SELECT 1") == SQLITE_DONE);  // no scope any more
}

TEST_CASE("scopes on two connections of one thread are independent") {
  Db a;
  Db b;
  ctoken::CancellationTokenSource sa;
  ctoken::CancellationTokenSource sb;
  ctoken::sqlite::InterruptScope scope_a(a.db, sa.Token());
  ctoken::sqlite::InterruptScope scope_b(b.db, sb.Token());
  sa.Cancel();
  CHECK(run(a.db, "SELECT 1") == SQLITE_INTERRUPT);
  CHECK(run(b.db, "SELECT 1") == SQLITE_DONE);
}

// Cancellation races the scope's end from another thread, over and over, on several threads
// with a connection each: once the destructor has returned, no interrupt from that scope may
// reach the connection, so the statement run right after it must always succeed.
TEST_CASE("no stale interrupt after the scope ends: stress from threads") {
  const auto until = clock_type::now() + ctoken_test::stress_duration();
  std::atomic<long> failures{0};
  std::atomic<long> rounds{0};
  std::atomic<long> interrupted{0};
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < 2; ++w) {
    workers.emplace_back([&, w] {
      Db db;
      std::minstd_rand rng(w + 1);
      while (clock_type::now() < until) {
        ctoken::CancellationTokenSource source;
        const auto delay = std::chrono::microseconds(rng() % 300);
        std::thread canceller([&source, delay] {
          std::this_thread::sleep_for(delay);
          source.Cancel();
        });
        {
          ctoken::sqlite::InterruptScope scope(db.db, source.Token());
          const int rc = run(db.db,
                             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) "
                             "SELECT sum(x) FROM c");
          if (rc == SQLITE_INTERRUPT) interrupted.fetch_add(1, std::memory_order_relaxed);
        }
        long long sum = 0;
        if (run(db.db,
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) SELECT sum(x) FROM c",
                &sum) != SQLITE_DONE ||
            sum != 2001000) {
          failures.fetch_add(1, std::memory_order_relaxed);
        }
        canceller.join();
        rounds.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : workers) t.join();
  INFO(rounds.load() << " rounds, " << interrupted.load() << " interrupted inside the scope");
  CHECK(rounds.load() > 0);
  CHECK(failures.load() == 0);
}

TEST_CASE("a larger check interval still stops running statements and long ones after cancellation") {
  Db db;
  ctoken::CancellationTokenSource source;
  {
    ctoken::sqlite::InterruptScope scope(db.db, source.Token(), 1000);
    std::thread canceller([&] {
      std::this_thread::sleep_for(ms(50));
      source.Cancel();
    });
    const auto start = clock_type::now();
    CHECK(run(db.db, kLongQuery) == SQLITE_INTERRUPT);  // through sqlite3_interrupt
    canceller.join();
    // Cancelled before it starts: stopped at the first check, a thousand instructions in.
    CHECK(run(db.db, kLongQuery) == SQLITE_INTERRUPT);
    CHECK(clock_type::now() - start < std::chrono::seconds(10));
  }
  CHECK(run(db.db, "SELECT 1") == SQLITE_DONE);
}
