// Second translation unit of test_odr (see odr_main.cpp).
#include <ctoken/ctoken.hpp>

ctoken::CancellationToken make_token_elsewhere(ctoken::CancellationTokenSource& source);
const std::error_category* category_elsewhere();
bool cancel_elsewhere(ctoken::CancellationTokenSource& source);

ctoken::CancellationToken make_token_elsewhere(ctoken::CancellationTokenSource& source) { return source.Token(); }
const std::error_category* category_elsewhere() { return &ctoken::cancellation_category(); }
bool cancel_elsewhere(ctoken::CancellationTokenSource& source) { return source.Cancel(ctoken::errc::shutdown); }
