// ctoken — SQLite integration: a token that interrupts the statements running on a connection.
// Opt-in: never included by <ctoken/ctoken.hpp>; needs <sqlite3.h> and linking with -lsqlite3.
#ifndef CTOKEN_SQLITE_HPP
#define CTOKEN_SQLITE_HPP

#include <ctoken/registration.hpp>
#include <ctoken/token.hpp>

#include <sqlite3.h>

namespace ctoken {
namespace sqlite {

/// While it lives, cancellation of `token` makes the statements run on `db` fail with
/// SQLITE_INTERRUPT: one that is running stops at once, and one stepped after the token was
/// cancelled (before the scope was made, or between two statements of the scope) stops at its
/// first instruction check, without finishing its work.
///
///     ctoken::sqlite::InterruptScope scope(db, token);
///     while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) { ... }
///     // rc == SQLITE_INTERRUPT: the token was cancelled (token.IsCancellationRequested())
///
/// How. Two mechanisms, because each alone misses a case:
/// - a registration on `token` whose callback calls sqlite3_interrupt(db) on the cancelling
///   thread (sqlite3_interrupt is thread-safe). This stops a running statement within
///   microseconds, also inside work where SQLite checks its interrupt flag outside the virtual
///   machine. But SQLite discards the flag when no statement is active, so on its own a token
///   cancelled before or between statements would let the next statement run.
/// - a progress handler (sqlite3_progress_handler with N = `check_interval`, 1 by default)
///   that returns non-zero once the token is cancelled. With N = 1 SQLite calls it at every
///   jump of its virtual machine and once more when a step ends, so every sqlite3_step() made
///   while the token is cancelled fails with SQLITE_INTERRUPT, even `SELECT 1`; a write it made
///   is rolled back as for any interrupt. sqlite3_prepare may fail with SQLITE_INTERRUPT too
///   when it has to read the schema. Cost: one indirect call and one atomic load per check,
///   which only shows on statements that spend their time in the virtual machine (a recursive
///   CTE: about 1.15x; see docs/performance.md). A larger N makes the checks N times rarer, at
///   a price: a statement that ends in fewer than N instructions then runs to its end even
///   though the token was cancelled before it started (a running one still stops at once).
///
/// The scope owns the connection's progress handler while it lives: it replaces the one that
/// was installed, and SQLite offers no way to read that one back. The destructor reinstalls
/// the handler of the enclosing InterruptScope on the same connection (scopes nest: a
/// statement inside an inner scope also stops when an outer scope's token is cancelled) and
/// otherwise removes the handler. An application with a progress handler of its own
/// reinstalls it after the scope.
///
/// After the destructor returns no interrupt from this scope reaches `db`: it disposes the
/// registration first, which waits for a callback running on another thread (so
/// sqlite3_interrupt cannot run after it), then removes the progress handler. One SQLite rule
/// remains: an interrupt that hit the connection stays pending until no statement on it is
/// active, so reset or finalize the statements you stepped in the scope before it ends (after
/// an error you must anyway); otherwise the next step of a statement that is still active
/// fails with SQLITE_INTERRUPT too.
///
/// Contract: `db` stays open until the destructor has returned (sqlite3_interrupt on a closed
/// connection is undefined). Scopes on one connection nest on one thread and are destroyed in
/// the reverse order of their construction, as local variables are; construct and destroy a
/// scope on the same thread. The statements themselves may run on any thread. Two threads
/// holding scopes on one connection at once is not supported: the later scope takes the
/// progress handler over. The constructor and destructor each call sqlite3_progress_handler,
/// which takes the connection's mutex in SQLite's serialized mode, so they may block while
/// another thread runs a statement on `db`.
///
/// Cost: constructing registers one callback (no allocation in the steady state) and installs
/// the handler; nothing runs on another thread unless the token is cancelled. Neither copyable
/// nor movable (SQLite holds a pointer to it). Throws only what Register throws
/// (std::bad_alloc).
class InterruptScope {
 public:
  /// Installs the progress handler (checking every `check_interval` virtual-machine
  /// instructions, at least 1), then registers the interrupt on `token`. If `token` is already
  /// cancelled nothing is registered: the handler alone stops the next statement.
  InterruptScope(sqlite3* db, const CancellationToken& token, int check_interval = 1)
      : db_(db),
        token_(token),
        outer_(find_outer(db)),
        below_(top()),
        check_interval_(check_interval < 1 ? 1 : check_interval) {
    ::sqlite3_progress_handler(db_, check_interval_, &InterruptScope::on_progress, this);
    top() = this;
    if (!token_.IsCancellationRequested()) {
      CTOKEN_TRY { registration_ = token_.Register(interrupt{db_}); }
      CTOKEN_CATCH_ALL {
        restore();
#if defined(CTOKEN_HAS_EXCEPTIONS)
        throw;
#endif
      }
    }
  }

  /// Disposes the registration (may block while its callback runs on another thread), then
  /// reinstalls the enclosing scope's progress handler or removes it. After it returns nothing
  /// from this scope touches `db`.
  ~InterruptScope() {
    registration_.Dispose();
    restore();
  }

  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  /// True iff this scope's token or an enclosing scope's token (same connection) is cancelled,
  /// i.e. an SQLITE_INTERRUPT seen inside the scope came from cancellation. One atomic load per
  /// scope; thread-safe.
  bool IsCancellationRequested() const noexcept {
    for (const InterruptScope* s = this; s != nullptr; s = s->outer_) {
      if (s->token_.IsCancellationRequested()) return true;
    }
    return false;
  }

 private:
  struct interrupt {
    sqlite3* db;
    void operator()() const noexcept { ::sqlite3_interrupt(db); }
  };

  // Called by SQLite on the thread that steps the statement, with the connection's mutex held.
  static int on_progress(void* self) noexcept {
    return static_cast<const InterruptScope*>(self)->IsCancellationRequested() ? 1 : 0;
  }

  // The scopes alive on this thread, innermost first (a stack: they nest like local variables).
  static InterruptScope*& top() noexcept {
    static thread_local InterruptScope* innermost = nullptr;
    return innermost;
  }

  static InterruptScope* find_outer(sqlite3* db) noexcept {
    for (InterruptScope* s = top(); s != nullptr; s = s->below_) {
      if (s->db_ == db) return s;
    }
    return nullptr;
  }

  void restore() noexcept {
    if (outer_ != nullptr) {
      ::sqlite3_progress_handler(db_, outer_->check_interval_, &InterruptScope::on_progress, outer_);
    } else {
      ::sqlite3_progress_handler(db_, 0, nullptr, nullptr);
    }
    top() = below_;
  }

  sqlite3* db_;
  CancellationToken token_;
  InterruptScope* outer_;  // the enclosing scope on the same connection, or null
  InterruptScope* below_;  // the next scope down this thread's stack, any connection
  int check_interval_;     // N of sqlite3_progress_handler
  CancellationTokenRegistration registration_;
};

}  // namespace sqlite
}  // namespace ctoken

#endif
