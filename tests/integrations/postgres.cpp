// <ctoken/postgres.hpp> against a real PostgreSQL server: each test case starts a throwaway
// server (initdb + pg_ctl, a Unix socket in a temporary directory, no TCP) and removes it at the
// end, also when a check fails. Real threads, real clocks with generous bounds.
#include <ctoken/ctoken.hpp>
#include <ctoken/postgres.hpp>

#include <libpq-fe.h>

#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "ctoken_test.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

// Why the server cannot run here, or empty when it can.
std::string missing_server() {
  const std::string bindir = CTOKEN_PG_BINDIR;
  if (bindir.empty()) return "PostgreSQL's initdb was not found at configure time (Debian: apt-get install postgresql)";
  if (::access((bindir + "/initdb").c_str(), X_OK) != 0 || ::access((bindir + "/pg_ctl").c_str(), X_OK) != 0) {
    return "initdb / pg_ctl not executable in " + bindir;
  }
  if (::geteuid() == 0 && ::getpwnam("postgres") == nullptr) {
    return "running as root and there is no 'postgres' user for initdb (it refuses root)";
  }
  return {};
}

// Prints SKIPPED (ctest's SKIP_REGULAR_EXPRESSION) and returns true when there is no server.
bool skip_without_server() {
  const std::string why = missing_server();
  if (why.empty()) return false;
  std::printf("SKIPPED: %s\n", why.c_str());
  return true;
}

int sh(const std::string& command) { return std::system(command.c_str()); }

// A temporary directory, owned by the 'postgres' user when we are root; removed with its
// contents by the destructor.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ctoken-pg-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
    if (::geteuid() == 0) {
      const passwd* pw = ::getpwnam("postgres");
      REQUIRE(pw != nullptr);
      REQUIRE(::chown(path.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    }
  }
  ~TempDir() { sh("rm -rf '" + path + "'"); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// A throwaway server: initdb, pg_ctl start (socket in the temporary directory, no TCP, no
// fsync), and pg_ctl stop -m immediate + removal in the destructor.
class Server {
 public:
  Server() {
    const std::string as_postgres = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
    const std::string bin = CTOKEN_PG_BINDIR;
    const std::string data = dir_.path + "/data";
    ctl_ = as_postgres + bin + "/pg_ctl -D " + data;
    const int init = sh(as_postgres + bin + "/initdb -D " + data +
                        " -A trust -U postgres -E UTF8 --locale=C --no-sync > " + dir_.path + "/initdb.log 2>&1");
    if (init != 0) sh("cat " + dir_.path + "/initdb.log");
    REQUIRE(init == 0);
    const int start = sh(ctl_ + " -w -t 60 -l " + dir_.path + "/server.log -o \"-c listen_addresses='' -k " +
                         dir_.path + " -c fsync=off -c max_connections=20\" start > /dev/null");
    if (start != 0) sh("cat " + dir_.path + "/server.log");
    started_ = start == 0;
    REQUIRE(started_);
  }
  ~Server() {
    if (started_) sh(ctl_ + " -w -m immediate stop > /dev/null 2>&1");
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::string conninfo() const { return "host=" + dir_.path + " user=postgres dbname=postgres"; }
  const std::string& dir() const { return dir_.path; }

 private:
  TempDir dir_;  // destroyed after the server is stopped
  std::string ctl_;
  bool started_ = false;
};

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

Conn connect(const Server& server) {
  Conn c(PQconnectdb(server.conninfo().c_str()));
  REQUIRE(c != nullptr);
  INFO(PQerrorMessage(c.get()));
  REQUIRE(PQstatus(c.get()) == CONNECTION_OK);
  return c;
}

std::string sqlstate(const PGresult* r) {
  const char* s = r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return s == nullptr ? std::string() : std::string(s);
}

// The queries still running on the server, other than the asking one's.
long active_queries(PGconn* conn) {
  Result r(PQexec(conn,
                  "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
                  "AND backend_type = 'client backend'"));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  return std::atol(PQgetvalue(r.get(), 0, 0));
}

// The connection is idle and answers the next query.
void check_usable(PGconn* conn) {
  CHECK(PQtransactionStatus(conn) == PQTRANS_IDLE);
  Result r(PQexec(conn, "SELECT 41 + 1"));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "42");
}

// Cancels `source` after `delay` on its own thread; records when.
class DelayedCancel {
 public:
  DelayedCancel(ctoken::CancellationTokenSource& source, ms delay)
      : thread_([this, &source, delay] {
          std::this_thread::sleep_for(delay);
          at_ = clock_type::now();
          source.Cancel();
        }) {}
  ~DelayedCancel() {
    if (thread_.joinable()) thread_.join();
  }
  DelayedCancel(const DelayedCancel&) = delete;
  DelayedCancel& operator=(const DelayedCancel&) = delete;
  // Joins the thread, then the time since Cancel() was called.
  double ms_since_cancel() {
    thread_.join();
    return ms_since(at_);
  }

 private:
  clock_type::time_point at_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("CancelScope: SELECT pg_sleep(30) is cancelled within tens of ms, and the connection goes on") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  Conn observer = connect(server);
  ctoken::CancellationTokenSource source;
  Result r;
  double lag = 0;
  {
    ctoken::postgres::CancelScope scope(conn.get(), source.Token());
    DelayedCancel cancel(source, ms(200));
    r.reset(PQexec(conn.get(), "SELECT pg_sleep(30)"));
    lag = cancel.ms_since_cancel();
    CHECK(scope.Error().empty());
  }
  INFO("Cancel() to PQexec returning: " << lag << " ms");
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstate(r.get()) == "57014");
  CHECK(lag < 1000.0);  // tens of ms expected; generous for loaded machines and sanitizers
  CHECK(active_queries(observer.get()) == 0);
  check_usable(conn.get());
}

TEST_CASE("CancelScope: an already cancelled token does not let the query run to its end") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  ctoken::CancellationTokenSource source;
  source.Cancel();
  const auto start = clock_type::now();
  Result r;
  {
    ctoken::postgres::CancelScope scope(conn.get(), source.Token());
    r.reset(PQexec(conn.get(), "SELECT pg_sleep(30)"));
  }
  const double took = ms_since(start);
  INFO("PQexec took " << took << " ms");
  CHECK(sqlstate(r.get()) == "57014");
  CHECK(took < 5000.0);  // about 20 ms expected
  // The scope's helper thread is gone: nothing cancels the next query.
  Result next(PQexec(conn.get(), "SELECT pg_sleep(0.3)"));
  CHECK(PQresultStatus(next.get()) == PGRES_TUPLES_OK);
  check_usable(conn.get());
}

TEST_CASE("CancelScope: a scope whose token is not cancelled changes nothing") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  ctoken::CancellationTokenSource source;
  ctoken::postgres::CancelScope scope(conn.get(), source.Token());
  Result r(PQexec(conn.get(), "SELECT pg_sleep(0.1), 7"));
  CHECK(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 1)) == "7");
  CHECK(scope.Error().empty());
}

TEST_CASE("CancelScope: a connection that is not open gives PQgetCancel's failure") {
  ctoken::CancellationTokenSource source;
  ctoken::postgres::CancelScope scope(nullptr, source.Token());
  source.Cancel();  // nothing to send: no crash
  CHECK_FALSE(scope.Error().empty());
}

TEST_CASE("Exec: the caller's thread comes back within tens of ms of Cancel, the connection idle") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  Conn observer = connect(server);
  ctoken::CancellationTokenSource source;
  DelayedCancel cancel(source, ms(200));
  Result r(ctoken::postgres::Exec(conn.get(), "SELECT pg_sleep(30)", source.Token()));
  const double lag = cancel.ms_since_cancel();
  INFO("Cancel() to Exec returning: " << lag << " ms");
  REQUIRE(r != nullptr);
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstate(r.get()) == "57014");
  CHECK(lag < 1000.0);
  CHECK(active_queries(observer.get()) == 0);
  check_usable(conn.get());
}

TEST_CASE("Exec: an already cancelled token cancels the query right after sending it") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  ctoken::CancellationTokenSource source;
  source.Cancel();
  const auto start = clock_type::now();
  Result r(ctoken::postgres::Exec(conn.get(), "SELECT pg_sleep(30)", source.Token()));
  const double took = ms_since(start);
  INFO("Exec took " << took << " ms");
  CHECK(sqlstate(r.get()) == "57014");
  CHECK(took < 5000.0);
  check_usable(conn.get());
}

TEST_CASE("Exec and ExecParams: without cancellation, the results PQexec would give") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  ctoken::CancellationTokenSource source;
  Result r(ctoken::postgres::Exec(conn.get(), "SELECT 1; SELECT 'last'", source.Token()));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "last");

  const char* values[] = {"20", "22"};
  Result p(ctoken::postgres::ExecParams(conn.get(), "SELECT $1::int + $2::int", 2, nullptr, values, nullptr, nullptr, 0,
                                        source.Token()));
  REQUIRE(PQresultStatus(p.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(p.get(), 0, 0)) == "42");

  Result bad(ctoken::postgres::Exec(conn.get(), "SELECT no_such_column", source.Token()));
  CHECK(PQresultStatus(bad.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstate(bad.get()) == "42703");
  check_usable(conn.get());
}

TEST_CASE("ExecParams: cancelled inside a transaction, which then needs its ROLLBACK") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  Result begin(PQexec(conn.get(), "BEGIN"));
  REQUIRE(PQresultStatus(begin.get()) == PGRES_COMMAND_OK);
  ctoken::CancellationTokenSource source;
  DelayedCancel cancel(source, ms(100));
  const char* values[] = {"30"};
  Result r(ctoken::postgres::ExecParams(conn.get(), "SELECT pg_sleep($1::float8)", 1, nullptr, values, nullptr, nullptr,
                                        0, source.Token()));
  const double lag = cancel.ms_since_cancel();
  INFO("Cancel() to ExecParams returning: " << lag << " ms");
  CHECK(sqlstate(r.get()) == "57014");
  CHECK(lag < 1000.0);
  CHECK(PQtransactionStatus(conn.get()) == PQTRANS_INERROR);
  Result rollback(PQexec(conn.get(), "ROLLBACK"));
  CHECK(PQresultStatus(rollback.get()) == PGRES_COMMAND_OK);
  check_usable(conn.get());
}

TEST_CASE("Exec: a connection that is not open returns nullptr with libpq's message") {
  Conn conn(PQconnectdb("host=/nonexistent-ctoken-dir user=nobody connect_timeout=2"));
  REQUIRE(conn != nullptr);
  REQUIRE(PQstatus(conn.get()) == CONNECTION_BAD);
  ctoken::CancellationTokenSource source;
  PGresult* r = ctoken::postgres::Exec(conn.get(), "SELECT 1", source.Token());
  CHECK(r == nullptr);
  PQclear(r);
  CHECK(std::strlen(PQerrorMessage(conn.get())) > 0);
}

TEST_CASE("ConnectParams: connects, and an already cancelled token returns at once unconnected") {
  if (skip_without_server()) return;
  Server server;
  const char* keywords[] = {"host", "user", "dbname", nullptr};
  const char* values[] = {server.dir().c_str(), "postgres", "postgres", nullptr};
  ctoken::CancellationTokenSource source;
  {
    Conn conn(ctoken::postgres::ConnectParams(keywords, values, 0, source.Token()));
    REQUIRE(conn != nullptr);
    INFO(PQerrorMessage(conn.get()));
    REQUIRE(PQstatus(conn.get()) == CONNECTION_OK);
    check_usable(conn.get());
  }
  source.Cancel();
  const auto start = clock_type::now();
  Conn conn(ctoken::postgres::ConnectParams(keywords, values, 0, source.Token()));
  CHECK(ms_since(start) < 1000.0);
  REQUIRE(conn != nullptr);
  CHECK(PQstatus(conn.get()) != CONNECTION_OK);
}

// A "server" that never answers: a Unix socket that listens and never accepts, so libpq's
// connect succeeds (into the backlog) and its startup packet waits forever for a reply.
TEST_CASE("ConnectParams: a connection attempt to a server that never answers stops on Cancel") {
  TempDir dir;
  const std::string path = dir.path + "/.s.PGSQL.5432";
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 4) == 0);

  const char* keywords[] = {"host", "user", "dbname", nullptr};
  const char* values[] = {dir.path.c_str(), "postgres", "postgres", nullptr};
  ctoken::CancellationTokenSource source;
  DelayedCancel cancel(source, ms(200));
  Conn conn(ctoken::postgres::ConnectParams(keywords, values, 0, source.Token()));
  const double lag = cancel.ms_since_cancel();
  ::close(listener);
  INFO("Cancel() to ConnectParams returning: " << lag << " ms");
  CHECK(lag < 1000.0);
  REQUIRE(conn != nullptr);
  CHECK(PQstatus(conn.get()) != CONNECTION_OK);
  CHECK(PQstatus(conn.get()) != CONNECTION_BAD);  // half made: PQfinish closes it
}

// Cancellation races the end of a CancelScope, over and over: once the destructor has
// returned, no cancel request from that scope may be in flight, so the query run right after
// it must always succeed.
TEST_CASE("CancelScope: no stale cancel request after the scope ends") {
  if (skip_without_server()) return;
  Server server;
  Conn conn = connect(server);
  std::minstd_rand rng(7);
  const auto until = clock_type::now() + ctoken_test::stress_duration();
  long rounds = 0;
  long cancelled_inside = 0;
  long failures = 0;
  while (clock_type::now() < until || rounds < 20) {
    ctoken::CancellationTokenSource source;
    const auto delay = std::chrono::microseconds(rng() % 4000);
    std::thread canceller([&source, delay] {
      std::this_thread::sleep_for(delay);
      source.Cancel();
    });
    {
      ctoken::postgres::CancelScope scope(conn.get(), source.Token());
      Result r(PQexec(conn.get(), "SELECT pg_sleep(0.002)"));
      if (sqlstate(r.get()) == "57014") ++cancelled_inside;
    }
    canceller.join();  // the callback has run (or found the scope gone)
    Result after(PQexec(conn.get(), "SELECT pg_sleep(0.005)"));
    if (PQresultStatus(after.get()) != PGRES_TUPLES_OK) ++failures;
    ++rounds;
  }
  INFO(rounds << " rounds, " << cancelled_inside << " cancelled inside the scope");
  CHECK(cancelled_inside > 0);
  CHECK(failures == 0);
  check_usable(conn.get());
}
