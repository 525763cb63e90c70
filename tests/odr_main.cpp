// The headers included from two translation units of one program (an ODR check): both see
// one error category, and tokens cross between them.
#include <ctoken/ctoken.hpp>

#include "ctoken_test.hpp"

ctoken::CancellationToken make_token_elsewhere(ctoken::CancellationTokenSource& source);
const std::error_category* category_elsewhere();
bool cancel_elsewhere(ctoken::CancellationTokenSource& source);

TEST_CASE("two translation units share one category and one state") {
  CHECK(category_elsewhere() == &ctoken::cancellation_category());
  ctoken::CancellationTokenSource source;
  const ctoken::CancellationToken token = make_token_elsewhere(source);
  int runs = 0;
  auto r = token.Register([&] { ++runs; });
  CHECK(cancel_elsewhere(source));
  CHECK(runs == 1);
  CHECK(token.Reason() == ctoken::errc::shutdown);
}
