// ctoken — PostgreSQL integration (libpq): a token that cancels the query running on a
// connection, and token-aware forms of PQexec, PQexecParams and PQconnectdbParams that give the
// caller's thread back as soon as the token is cancelled.
// Opt-in: never included by <ctoken/ctoken.hpp>; needs <libpq-fe.h> and linking with -lpq. POSIX.
#ifndef CTOKEN_POSTGRES_HPP
#define CTOKEN_POSTGRES_HPP

#include <ctoken/fd.hpp>
#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <poll.h>

namespace ctoken {
namespace postgres {

/// While it lives, cancellation of `token` sends a cancel request for the query running on
/// `conn`; that query then fails with SQLSTATE 57014 (query_canceled) and the connection stays
/// usable. For blocking calls you make yourself (PQexec, PQexecParams, PQgetResult):
///
///     ctoken::postgres::CancelScope scope(conn, token);
///     PGresult* r = PQexec(conn, "SELECT ...");   // fails with 57014 once token is cancelled
///
/// The constructor calls PQgetCancel(conn) once; the callback registered on `token` calls
/// PQcancel on the cancelling thread (libpq makes that safe from any thread). PQcancel opens a
/// new connection to the server and waits until the server has closed it (PostgreSQL up to 16
/// forks a process per cancel request), so the cancelling thread spends milliseconds in the
/// callback (see docs/performance.md), and the destructor may wait for that; the blocked PQexec
/// returns after the server's answer. Where the thread that cancels must not wait for a server,
/// use Exec / ExecParams / ConnectParams below.
///
/// A token already cancelled at construction: a cancel request reaches only a query that is
/// running, and the query starts after the constructor. So the constructor starts one helper
/// thread that sends a cancel request at once and again after 20, 40, 80 ... ms (at most every
/// second) until the destructor: the query you start in the scope is cancelled within about 20
/// ms of reaching the server (so are later ones in the same scope: the token is cancelled). A
/// token cancelled while the scope lives but while no query runs (between two queries) sends
/// one request, which the server ignores; check the token before each further query or use
/// Exec.
///
/// Limits: a query that already finished on the server is not undone (its result arrives
/// normally); a cancel request also stops nothing that does not check for interrupts (an
/// extension busy in C code). Errors come back libpq's way: Error() is PQcancel's errbuf when a
/// request failed (e.g. the server is unreachable), or names PQgetCancel's failure.
///
/// The destructor disposes the registration (waiting for a PQcancel running on another thread),
/// stops and joins the helper thread, then calls PQfreeCancel: after it returns no cancel
/// request from this scope is in flight, so none can hit the next query on `conn`. `conn` must
/// outlive the scope. Neither copyable nor movable. Thread-safety: Error() may be called from
/// any thread. Throws std::bad_alloc, or std::system_error if the helper thread cannot start.
class CancelScope {
 public:
  CancelScope(PGconn* conn, const CancellationToken& token) : cancel_(::PQgetCancel(conn)) {
    if (cancel_ == nullptr) {
      error_ = "PQgetCancel failed: the connection is not open";
      return;
    }
    CTOKEN_TRY {
      if (token.IsCancellationRequested()) {
        resender_ = std::thread([this] { resend_until_stopped(); });
      } else {
        registration_ = token.Register(send{this});
      }
    }
    CTOKEN_CATCH_ALL {
      ::PQfreeCancel(cancel_);
#if defined(CTOKEN_HAS_EXCEPTIONS)
      throw;
#endif
    }
  }

  /// Disposes the registration (may block while PQcancel runs on the cancelling thread), stops
  /// the helper thread if there is one, frees the PGcancel. May block for about one PQcancel.
  ~CancelScope() {
    registration_.Dispose();
    if (resender_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
      }
      wake_.notify_one();
      resender_.join();
    }
    if (cancel_ != nullptr) ::PQfreeCancel(cancel_);
  }

  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

  /// Empty while every cancel request sent so far succeeded (or none was sent); otherwise
  /// libpq's message for the latest failure. A copy, taken under a mutex.
  std::string Error() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
  }

 private:
  struct send {
    CancelScope* self;
    void operator()() const noexcept { self->send_cancel(); }
  };

  void send_cancel() noexcept {
    char errbuf[256] = {};
    if (::PQcancel(cancel_, errbuf, static_cast<int>(sizeof errbuf)) == 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      CTOKEN_TRY { error_ = errbuf; }
      CTOKEN_CATCH_ALL {}  // std::bad_alloc: keep the previous message rather than throw here
    }
  }

  void resend_until_stopped() noexcept {
    auto pause = std::chrono::milliseconds(20);
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      lock.unlock();
      send_cancel();
      lock.lock();
      wake_.wait_for(lock, pause, [this] { return stop_; });
      pause = std::min(pause * 2, std::chrono::milliseconds(1000));
    }
  }

  PGcancel* cancel_;
  mutable std::mutex mutex_;
  std::string error_;             // guarded by mutex_
  bool stop_ = false;             // guarded by mutex_
  std::condition_variable wake_;  // signals stop_
  std::thread resender_;          // only for a token already cancelled at construction
  CancellationTokenRegistration registration_;
};

namespace detail {

// The wait behind Exec and ExecParams, after the query was sent: collects the results as PQexec
// does (the last one is kept; COPY and a broken connection end the collection) while polling
// the connection's socket and `cancelled`. Once `cancelled` is readable it sends a cancel
// request, then again after 20, 40, 80 ... ms (a request that reaches the server before the
// query has started is ignored), until the query's results have all arrived.
inline PGresult* collect(PGconn* conn, const CancellationFd& cancelled) noexcept {
  using clock = std::chrono::steady_clock;
  PGresult* last = nullptr;
  PGcancel* cancel = nullptr;
  clock::time_point next_cancel;
  auto pause = std::chrono::milliseconds(20);
  for (;;) {
    while (::PQisBusy(conn) == 0) {
      PGresult* r = ::PQgetResult(conn);
      if (r == nullptr) goto done;
      ::PQclear(last);
      last = r;
      const ExecStatusType status = ::PQresultStatus(r);
      if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH ||
          ::PQstatus(conn) == CONNECTION_BAD) {
        goto done;
      }
    }
    {
      struct pollfd fds[2] = {{::PQsocket(conn), POLLIN, 0}, {cancelled.Get(), POLLIN, 0}};
      int timeout = -1;
      if (cancel != nullptr) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_cancel - clock::now()).count();
        timeout = static_cast<int>(std::max<long long>(0, left));
      }
      // Once cancelling, the descriptor stays readable: poll the socket alone, with the timeout.
      const int n = ::poll(fds, cancel != nullptr ? 1 : 2, timeout);
      if (n < 0 && errno != EINTR) break;  // cannot wait: let PQgetResult block below
      if (cancel == nullptr && n > 0 && (fds[1].revents & POLLIN) != 0) {
        cancel = ::PQgetCancel(conn);
        if (cancel == nullptr) break;  // no cancel possible: wait for the end below
        char errbuf[256];
        ::PQcancel(cancel, errbuf, static_cast<int>(sizeof errbuf));  // a failure is retried
        next_cancel = clock::now() + pause;
      } else if (cancel != nullptr && clock::now() >= next_cancel) {
        char errbuf[256];
        ::PQcancel(cancel, errbuf, static_cast<int>(sizeof errbuf));
        pause = std::min(pause * 2, std::chrono::milliseconds(1000));
        next_cancel = clock::now() + pause;
      }
      if (n > 0 && fds[0].revents != 0 && ::PQconsumeInput(conn) == 0) break;  // connection lost
    }
  }
  // The socket failed (or poll did): PQgetResult reports it libpq's way, as PQexec would.
  while (PGresult* r = ::PQgetResult(conn)) {
    ::PQclear(last);
    last = r;
    if (::PQstatus(conn) == CONNECTION_BAD) break;
  }
done:
  if (cancel != nullptr) ::PQfreeCancel(cancel);  // every PQcancel above has returned
  return last;
}

}  // namespace detail

/// PQexec that gives the caller's thread back as soon as `token` is cancelled, then cancels
/// the query and waits for the server's answer, so the connection is idle and ready for the
/// next command when it returns.
///
/// Sends `command` with PQsendQuery, then waits with poll() on PQsocket(conn) and a
/// CancellationFd of `token`. On cancellation the wait wakes at once; Exec sends a cancel
/// request (PQgetCancel + PQcancel, from this thread), resends it after 20, 40, 80 ... ms (at
/// most every second) while the query still runs, and collects the results. The query then
/// fails with SQLSTATE 57014 (query_canceled) — or returns its normal result if it finished on
/// the server before the request arrived. Exec returns once its PQcancel has returned too (so no
/// request of its own is in flight): milliseconds after Cancel(), the time PQcancel takes (see
/// docs/performance.md), while Cancel() itself costs one eventfd write. A token already cancelled on entry: the query
/// is sent and cancelled right after it, so it does not run to its end, and the result is a real server result as
/// always (check the token first to not send anything). Inside a transaction block a cancelled query aborts the
/// transaction (PQtransactionStatus is PQTRANS_INERROR): ROLLBACK follows as after any error.
///
/// Returns what PQexec returns: the last result (PQclear it), or nullptr if the command could
/// not be sent (PQerrorMessage(conn) says why). `conn` must be idle (no result pending) and in
/// blocking mode. Limits: the wait for the server's answer to the cancel is unbounded (on TCP
/// bound it with the keepalives / tcp_user_timeout connection parameters); a COPY returns its
/// PGRES_COPY_* result as PQexec does, and cancellation no longer applies to the copy.
/// Throws std::system_error if the descriptor cannot be created (nothing was sent then).
/// Thread-safety: as libpq, one thread per connection at a time.
inline PGresult* Exec(PGconn* conn, const char* command, const CancellationToken& token) {
  CancellationFd cancelled(token);
  if (::PQsendQuery(conn, command) == 0) return nullptr;
  return detail::collect(conn, cancelled);
}

/// PQexecParams with the behaviour of Exec: the caller's thread comes back as soon as `token` is
/// cancelled, the query is cancelled (SQLSTATE 57014) and its results drained, the connection
/// is idle on return. The parameters are PQexecParams's; same returns, limits and exceptions as
/// Exec.
inline PGresult* ExecParams(PGconn* conn, const char* command, int n_params, const Oid* param_types,
                            const char* const* param_values, const int* param_lengths, const int* param_formats,
                            int result_format, const CancellationToken& token) {
  CancellationFd cancelled(token);
  if (::PQsendQueryParams(conn, command, n_params, param_types, param_values, param_lengths, param_formats,
                          result_format) == 0) {
    return nullptr;
  }
  return detail::collect(conn, cancelled);
}

/// PQconnectdbParams that gives up as soon as `token` is cancelled: PQconnectStartParams, then
/// PQconnectPoll driven by poll() on PQsocket(conn) and a CancellationFd of `token`.
///
/// Returns what PQconnectdbParams returns (nullptr only when libpq cannot allocate): check
/// PQstatus(conn) == CONNECTION_OK, and PQfinish the connection in every case. On cancellation
/// it returns at once with the connection half made (PQstatus is neither CONNECTION_OK nor
/// CONNECTION_BAD, PQerrorMessage says nothing about it: token.Reason() says why); PQfinish
/// closes it. A token already cancelled on entry returns right after PQconnectStartParams
/// (which has only begun a non-blocking connect). A connection that completes as the token is
/// cancelled is returned ready (CONNECTION_OK).
/// Limits: libpq resolves host names with a blocking getaddrinfo inside PQconnectStartParams
/// and PQconnectPoll, which cancellation cannot cut short (give hostaddr, or a socket
/// directory, to avoid it); connect_timeout still applies as usual.
/// Throws std::system_error if the descriptor cannot be created (nothing was started then).
inline PGconn* ConnectParams(const char* const* keywords, const char* const* values, int expand_dbname,
                             const CancellationToken& token) {
  CancellationFd cancelled(token);
  PGconn* conn = ::PQconnectStartParams(keywords, values, expand_dbname);
  if (conn == nullptr || ::PQstatus(conn) == CONNECTION_BAD) return conn;
  PostgresPollingStatusType status = PGRES_POLLING_WRITING;  // what libpq says to wait for first
  for (;;) {
    if (status == PGRES_POLLING_OK || status == PGRES_POLLING_FAILED) return conn;
    if (token.IsCancellationRequested()) return conn;
    struct pollfd fds[2] = {
        {::PQsocket(conn), static_cast<short>(status == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0},
        {cancelled.Get(), POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno != EINTR) return conn;  // cannot wait (ENOMEM): not connected
    if (n <= 0 || (fds[1].revents & POLLIN) != 0) continue;
    status = ::PQconnectPoll(conn);
  }
}

}  // namespace postgres
}  // namespace ctoken

#endif
