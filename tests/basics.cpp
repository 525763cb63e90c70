// Tokens, sources and reasons: the observable state of a source without callbacks.
#include <ctoken/ctoken.hpp>

#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationToken;
using ctoken::CancellationTokenSource;
using ctoken::errc;

TEST_CASE("a token is one pointer and cheap to copy and move") {
  STATIC_REQUIRE(sizeof(CancellationToken) == sizeof(void*));
  STATIC_REQUIRE(std::is_nothrow_copy_constructible<CancellationToken>::value);
  STATIC_REQUIRE(std::is_nothrow_move_constructible<CancellationToken>::value);
  STATIC_REQUIRE(std::is_nothrow_copy_assignable<CancellationToken>::value);
  STATIC_REQUIRE(std::is_nothrow_move_assignable<CancellationToken>::value);
  STATIC_REQUIRE(std::is_nothrow_default_constructible<CancellationToken>::value);
}

TEST_CASE("None() can never be cancelled") {
  const CancellationToken none = CancellationToken::None();
  CHECK_FALSE(none.IsCancellationRequested());
  CHECK_FALSE(none.CanBeCanceled());
  CHECK_FALSE(none.Reason());
  CHECK_NOTHROW(none.ThrowIfCancellationRequested());
  CHECK(none == CancellationToken());
  CHECK_FALSE(none != CancellationToken());
}

TEST_CASE("a fresh source is not cancelled and its token can be") {
  CancellationTokenSource source;
  const CancellationToken token = source.Token();
  CHECK_FALSE(source.IsCancellationRequested());
  CHECK_FALSE(token.IsCancellationRequested());
  CHECK(token.CanBeCanceled());
  CHECK_FALSE(token.Reason());
  CHECK(token == source.Token());
  CHECK(token != CancellationToken::None());
  CHECK(token != CancellationTokenSource().Token());
}

TEST_CASE("Cancel sets the state and the reason exactly once") {
  CancellationTokenSource source;
  const CancellationToken token = source.Token();
  CHECK(source.Cancel(errc::client_disconnected));
  CHECK(source.IsCancellationRequested());
  CHECK(token.IsCancellationRequested());
  CHECK(token.CanBeCanceled());
  CHECK(token.Reason() == errc::client_disconnected);
  // Later calls report that they did not make the transition and do not change the reason.
  CHECK_FALSE(source.Cancel(errc::shutdown));
  CHECK_FALSE(source.Cancel());
  CHECK(token.Reason() == errc::client_disconnected);
}

TEST_CASE("Cancel without a reason - or with an empty one - means errc::canceled") {
  CancellationTokenSource a;
  a.Cancel();
  CHECK(a.Token().Reason() == errc::canceled);
  CancellationTokenSource b;
  b.Cancel(std::error_code());
  CHECK(b.Token().Reason() == errc::canceled);
}

TEST_CASE("any error_code is a reason") {
  CancellationTokenSource source;
  source.Cancel(std::make_error_code(std::errc::broken_pipe));
  CHECK(source.Token().Reason() == std::errc::broken_pipe);
}

TEST_CASE("ThrowIfCancellationRequested throws an exception carrying token and reason") {
  CancellationTokenSource source;
  const CancellationToken token = source.Token();
  CHECK_NOTHROW(token.ThrowIfCancellationRequested());
  source.Cancel(errc::timed_out);
  try {
    token.ThrowIfCancellationRequested();
    FAIL("did not throw");
  } catch (const ctoken::OperationCanceledException& e) {
    CHECK(e.Token() == token);
    CHECK(e.Reason() == errc::timed_out);
    CHECK(e.Reason() == e.Token().Reason());
    const std::string what = e.what();
    CHECK(what.find("timed out") != std::string::npos);
    // Copying never throws (the message is shared).
    STATIC_REQUIRE(std::is_nothrow_copy_constructible<ctoken::OperationCanceledException>::value);
    const ctoken::OperationCanceledException copy = e;
    CHECK(std::string(copy.what()) == what);
  }
  // It is a std::exception, so generic handlers catch it too.
  CHECK_THROWS_AS(token.ThrowIfCancellationRequested(), std::exception);
}

TEST_CASE("the error category") {
  const std::error_category& cat = ctoken::cancellation_category();
  CHECK(std::string(cat.name()) == "ctoken");
  CHECK(&cat == &ctoken::make_error_code(errc::shutdown).category());
  STATIC_REQUIRE(std::is_error_code_enum<errc>::value);
  const std::vector<errc> all = {errc::canceled, errc::timed_out, errc::client_disconnected, errc::connection_reset,
                                 errc::shutdown};
  for (errc e : all) {
    const std::error_code code = e;
    CHECK(code);
    CHECK_FALSE(code.message().empty());
    CHECK(code.message() != cat.message(0));
  }
  // Reasons compare equal to the portable conditions they correspond to.
  CHECK(std::error_code(errc::timed_out) == std::errc::timed_out);
  CHECK(std::error_code(errc::canceled) == std::errc::operation_canceled);
  CHECK(std::error_code(errc::connection_reset) == std::errc::connection_reset);
  CHECK(std::error_code(errc::client_disconnected) == std::errc::connection_aborted);
  CHECK_FALSE(std::error_code(errc::shutdown) == std::errc::timed_out);
}

TEST_CASE("copies of a source share one state") {
  CancellationTokenSource a;
  CancellationTokenSource b = a;
  CHECK(a.Token() == b.Token());
  CHECK(b.Cancel());
  CHECK(a.IsCancellationRequested());
  CHECK_FALSE(a.Cancel());
}

TEST_CASE("a moved-from source behaves like one without state") {
  CancellationTokenSource a;
  const CancellationToken token = a.Token();
  CancellationTokenSource b = std::move(a);
  CHECK(b.Token() == token);
  CHECK(a.Token() == CancellationToken::None());  // NOLINT(bugprone-use-after-move): documented state
  CHECK_FALSE(a.Cancel());                        // NOLINT(bugprone-use-after-move)
  CHECK_FALSE(a.IsCancellationRequested());       // NOLINT(bugprone-use-after-move)
  CHECK(b.Cancel());
  CHECK(token.IsCancellationRequested());
}

TEST_CASE("token assignment and self-assignment") {
  CancellationTokenSource s1;
  CancellationTokenSource s2;
  CancellationToken t = s1.Token();
  t = s2.Token();
  CHECK(t == s2.Token());
  CancellationToken& alias = t;
  t = alias;
  CHECK(t == s2.Token());
  t = std::move(alias);
  CHECK(t == s2.Token());
  CancellationTokenSource& salias = s1;
  s1 = salias;
  CHECK(s1.Token() != s2.Token());
  CHECK(s1.Cancel());
}

TEST_CASE("Cancel accepts the portable std::errc reasons") {
  CancellationTokenSource source;
  CHECK(source.Cancel(std::errc::timed_out));
  CHECK(source.Token().Reason() == std::errc::timed_out);
  CHECK(source.Token().Reason().category() == std::generic_category());
}
