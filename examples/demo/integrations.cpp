// The demo's routes that spend their time in a library, as real services do: a database query
// (SQLite in memory by default, PostgreSQL with --postgres) and an outgoing HTTP call (libcurl).
// Each passes the request's token to ctoken's opt-in header for that library, so a client that
// leaves stops the query or the call itself, not only the handler around it. Each route is
// compiled only where its library was found (see CTOKEN_DEMO_HAVE_* in handlers.hpp).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "handlers.hpp"
#include "server.hpp"

#if CTOKEN_DEMO_HAVE_SQLITE
#include <sqlite3.h>

#include <ctoken/sqlite.hpp>
#endif
#if CTOKEN_DEMO_HAVE_POSTGRES
#include <libpq-fe.h>

#include <ctoken/postgres.hpp>
#endif
#if CTOKEN_DEMO_HAVE_CURL
#include <curl/curl.h>

#include <ctoken/curl.hpp>
#endif

namespace demo {

const char* integrations_built() noexcept {
  return ""
#if CTOKEN_DEMO_HAVE_SQLITE
         "sqlite "
#endif
#if CTOKEN_DEMO_HAVE_POSTGRES
         "postgres "
#endif
#if CTOKEN_DEMO_HAVE_CURL
         "curl "
#endif
      ;
}

void call_ended(const route_args& a, const char* via, const std::string& result) {
  if (a.with.out == nullptr) return;
  a.with.out->event("CALL_ENDED " + a.req.id + " " + std::to_string(http::monotonic_ns()) + " via=" + via +
                    " result=" + result);
}

#if CTOKEN_DEMO_HAVE_SQLITE

namespace {
struct sqlite_close {
  void operator()(sqlite3* db) const noexcept { sqlite3_close(db); }
};
struct sqlite_finalize {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
}  // namespace

// /sqlite?rows=100000000: counts and sums 1..rows with a recursive CTE on a fresh in-memory
// database: all of it SQLite's own work (seconds for the default; a real service would query
// its tables). An InterruptScope ties the statement to the request's token: a client that
// leaves interrupts the statement (SQLITE_INTERRUPT) within microseconds; the route then stops
// like any other (499). rows is bounded to [1, 10^9] (the sum fits a 64-bit integer).
http::response sqlite_query(const route_args& a) {
  query_reader q(a.req);
  const long long rows = q.integer("rows", 100000000, 1, 1000000000);
  q.check();
  a.done.total.store(1, std::memory_order_relaxed);  // relaxed: see progress

  sqlite3* opened = nullptr;
  // FULLMUTEX (serialized): sqlite3_interrupt comes from the cancelling thread.
  const int open_rc =
      sqlite3_open_v2(":memory:", &opened, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  const std::unique_ptr<sqlite3, sqlite_close> db(opened);  // closed even when the open failed
  if (open_rc != SQLITE_OK) {
    return http::response::text(500, std::string("sqlite3_open_v2: ") + sqlite3_errstr(open_rc) + "\n");
  }
  sqlite3_stmt* prepared = nullptr;
  const int prepare_rc = sqlite3_prepare_v2(
      db.get(),
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) SELECT count(*), sum(x) FROM c", -1,
      &prepared, nullptr);
  const std::unique_ptr<sqlite3_stmt, sqlite_finalize> stmt(prepared);
  if (prepare_rc != SQLITE_OK || sqlite3_bind_int64(stmt.get(), 1, rows) != SQLITE_OK) {
    return http::response::text(500, std::string("sqlite: ") + sqlite3_errmsg(db.get()) + "\n");
  }

  int rc = SQLITE_OK;
  long long count = 0;
  long long sum = 0;
  {
    // While it lives, cancelling the request's token interrupts the statement; after it is
    // gone, no interrupt of this request can reach the connection.
    const ctoken::sqlite::InterruptScope scope(db.get(), a.token);
    while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
      count = sqlite3_column_int64(stmt.get(), 0);
      sum = sqlite3_column_int64(stmt.get(), 1);
    }
    (void)sqlite3_reset(stmt.get());  // the statement is no longer active when the scope ends
  }
  if (rc == SQLITE_INTERRUPT) {
    call_ended(a, "sqlite", "interrupted");
    stop(a.token);  // an interrupt comes only from the scope, i.e. from the token
  }
  call_ended(a, "sqlite", rc == SQLITE_DONE ? "ok" : sqlite3_errstr(rc));
  if (rc != SQLITE_DONE) return http::response::text(500, std::string("sqlite: ") + sqlite3_errstr(rc) + "\n");
  step(a.done);
  return http::response::text(200, "sqlite: " + std::to_string(count) + " rows, sum " + std::to_string(sum) + "\n");
}

#endif  // CTOKEN_DEMO_HAVE_SQLITE

#if CTOKEN_DEMO_HAVE_POSTGRES

namespace {
struct pg_finish {
  void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
struct pg_clear {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};

// libpq's message without its trailing newline.
std::string pg_message(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}
}  // namespace

// /postgres?ms=10000: SELECT pg_sleep(ms / 1000) on the server given with --postgres (a libpq
// connection string), on a connection of its own (a real service would take one from a pool).
// Connecting and the query both use ctoken::postgres's token-aware calls: a client that
// leaves gives this thread back at once, the query is cancelled on the server (SQLSTATE 57014)
// and the route stops (499). Without --postgres: 503. ms is bounded to [0, 600000].
http::response postgres_query(const route_args& a) {
  query_reader q(a.req);
  const long long ms = q.integer("ms", 10000, 0, 600000);
  q.check();
  if (a.with.postgres.empty()) {
    return http::response::text(503, "no PostgreSQL configured (start the server with --postgres CONNINFO)\n");
  }
  a.done.total.store(1, std::memory_order_relaxed);  // relaxed: see progress

  const char* const keywords[] = {"dbname", "application_name", nullptr};
  const char* const values[] = {a.with.postgres.c_str(), "ctoken-demo", nullptr};
  // expand_dbname = 1: the dbname value is the whole connection string.
  const std::unique_ptr<PGconn, pg_finish> conn(ctoken::postgres::ConnectParams(keywords, values, 1, a.token));
  if (conn == nullptr) return http::response::text(500, "postgres: out of memory\n");
  if (a.token.IsCancellationRequested() && PQstatus(conn.get()) != CONNECTION_OK) {
    call_ended(a, "postgres", "connect_cancelled");
    stop(a.token);
  }
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return http::response::text(503, "postgres: cannot connect: " + pg_message(PQerrorMessage(conn.get())) + "\n");
  }

  const std::string seconds = std::to_string(static_cast<double>(ms) / 1000.0);
  const char* const params[] = {seconds.c_str()};
  const std::unique_ptr<PGresult, pg_clear> result(ctoken::postgres::ExecParams(
      conn.get(), "SELECT pg_sleep($1::float8)", 1, nullptr, params, nullptr, nullptr, 0, a.token));
  if (result == nullptr) {
    return http::response::text(500, "postgres: " + pg_message(PQerrorMessage(conn.get())) + "\n");
  }
  if (PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
    const char* state = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
    const std::string sqlstate = state != nullptr ? state : "none";
    if (sqlstate == "57014" && a.token.IsCancellationRequested()) {
      call_ended(a, "postgres", "canceled_57014");
      stop(a.token);
    }
    call_ended(a, "postgres", "sqlstate_" + sqlstate);
    return http::response::text(500, "postgres: " + pg_message(PQresultErrorMessage(result.get())) + "\n");
  }
  call_ended(a, "postgres", "ok");
  step(a.done);
  return http::response::text(200, "postgres: slept " + seconds + " s\n");
}

#endif  // CTOKEN_DEMO_HAVE_POSTGRES

#if CTOKEN_DEMO_HAVE_CURL

namespace {
struct curl_cleanup {
  void operator()(CURL* easy) const noexcept { curl_easy_cleanup(easy); }
};
struct slist_free {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};

constexpr std::size_t kMaxUpstreamBody = 1 << 20;  // what /fetch keeps of the upstream's answer

// CURLOPT_WRITEFUNCTION: appends to a std::string, up to kMaxUpstreamBody (then returns 0:
// curl fails the transfer with CURLE_WRITE_ERROR).
std::size_t append_body(char* data, std::size_t size, std::size_t count, void* to) {
  auto& body = *static_cast<std::string*>(to);
  const std::size_t n = size * count;
  if (body.size() + n > kMaxUpstreamBody) return 0;
  body.append(data, n);
  return n;
}

// curl_global_init once, before the first handle (function-local static: initialised once,
// thread-safely). Debian 12's libcurl is thread-safe here anyway (feature "threadsafe").
bool curl_ready() {
  static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return ready;
}
}  // namespace

// /fetch?<query>: an outgoing HTTP call with libcurl: GET /slow?<query> from the upstream
// (--upstream HOST:PORT, else this very server on 127.0.0.1), with X-Request-Id "<id>.up" so the
// upstream's log and /status name it. ctoken::curl::Perform runs the transfer with the
// request's token: a client that leaves makes Perform return at once and close the upstream
// connection, so the upstream sees its client leave and logs 499 too. The query string is
// passed on as received (the parser admits only visible ASCII in it); the upstream's answer is
// kept up to 1 MiB.
http::response fetch(const route_args& a) {
  const std::uint16_t own = a.with.own_port != nullptr ? a.with.own_port->load(std::memory_order_acquire) : 0;
  const std::uint16_t port = a.with.upstream_port != 0 ? a.with.upstream_port : own;
  const std::string host = a.with.upstream_port != 0 ? a.with.upstream_host : "127.0.0.1";
  if (port == 0) return http::response::text(502, "no upstream: the server's port is not known yet\n");
  if (!curl_ready()) return http::response::text(500, "curl_global_init failed\n");
  a.done.total.store(1, std::memory_order_relaxed);  // relaxed: see progress

  const std::unique_ptr<CURL, curl_cleanup> easy(curl_easy_init());
  if (easy == nullptr) return http::response::text(500, "curl_easy_init failed\n");
  const std::string url = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                          std::to_string(port) + (a.req.query.empty() ? "/slow" : "/slow?" + a.req.query);
  std::unique_ptr<curl_slist, slist_free> headers;
  if (!a.req.id.empty()) {
    curl_slist* list = curl_slist_append(nullptr, ("X-Request-Id: " + a.req.id + ".up").c_str());
    if (list == nullptr) return http::response::text(500, "curl_slist_append failed\n");
    headers.reset(list);
  }
  std::string body;
  char error[CURL_ERROR_SIZE] = {};
  CURL* h = easy.get();
  CURLcode set = curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  if (set == CURLE_OK) set = curl_easy_setopt(h, CURLOPT_PROXY, "");  // loopback: no proxy from the environment
  if (set == CURLE_OK) set = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (set == CURLE_OK) set = curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  if (set == CURLE_OK) set = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
  if (set == CURLE_OK) set = curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  if (set == CURLE_OK) set = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  if (set != CURLE_OK)
    return http::response::text(500, std::string("curl_easy_setopt: ") + curl_easy_strerror(set) + "\n");

  const CURLcode rc = ctoken::curl::Perform(h, a.token);
  if (rc == CURLE_ABORTED_BY_CALLBACK && a.token.IsCancellationRequested()) {
    call_ended(a, "curl", "aborted");
    stop(a.token);
  }
  if (rc != CURLE_OK) {
    call_ended(a, "curl", "curle_" + std::to_string(static_cast<int>(rc)));
    return http::response::text(
        502, std::string("upstream call failed: ") + (error[0] != '\0' ? error : curl_easy_strerror(rc)) + "\n");
  }
  long status = 0;
  (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  call_ended(a, "curl", "ok");
  step(a.done);
  return http::response::text(static_cast<int>(status), body);
}

#endif  // CTOKEN_DEMO_HAVE_CURL

}  // namespace demo
