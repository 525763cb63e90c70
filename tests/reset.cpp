// Rule 6: TryReset, for pooling a source between unrelated operations.
#include <ctoken/ctoken.hpp>

#include <memory>

#include "ctoken_test.hpp"

using ctoken::CancellationCallback;
using ctoken::CancellationToken;
using ctoken::CancellationTokenSource;
using ctoken::ManualTimeProvider;
using namespace std::chrono_literals;

TEST_CASE("TryReset on an untouched source succeeds and drops every registration") {
  CancellationTokenSource source;
  const CancellationToken before = source.Token();
  int runs = 0;
  auto r1 = source.Token().Register([&] { ++runs; });
  auto tracker = std::make_shared<int>(0);
  std::weak_ptr<int> weak = tracker;
  auto r2 = source.Token().Register([&, keep = std::move(tracker)] { ++runs; });
  CancellationCallback in_place(source.Token(), [&] { ++runs; });
  CHECK(source.TryReset());
  CHECK(weak.expired());         // dropped callables are destroyed by TryReset
  CHECK_FALSE(r1.Unregister());  // dropped: Unregister reports false
  CHECK(r1.Token() == CancellationToken::None());
  CHECK(source.Token() == before);  // tokens handed out earlier refer to the same source
  // New registrations work as usual after a reset.
  auto r3 = source.Token().Register([&] { runs += 10; });
  CHECK(source.Cancel());
  CHECK(runs == 10);
  CHECK(before.IsCancellationRequested());
}

TEST_CASE("TryReset on a cancelled source fails and changes nothing") {
  CancellationTokenSource source;
  source.Cancel(ctoken::errc::shutdown);
  CHECK_FALSE(source.TryReset());
  CHECK(source.IsCancellationRequested());
  CHECK(source.Token().Reason() == ctoken::errc::shutdown);
}

TEST_CASE("TryReset disarms a pending CancelAfter") {
  ManualTimeProvider clock;
  CancellationTokenSource source(clock);
  source.CancelAfter(10s);
  CHECK(clock.ArmedCount() == 1);
  CHECK(source.TryReset());
  CHECK(clock.ArmedCount() == 0);
  clock.Advance(1min);
  CHECK_FALSE(source.IsCancellationRequested());
}

TEST_CASE("TryReset fails once the deadline has fired") {
  ManualTimeProvider clock;
  CancellationTokenSource source(clock);
  source.CancelAfter(10s);
  clock.Advance(10s);
  CHECK(source.IsCancellationRequested());
  CHECK_FALSE(source.TryReset());
}

// That the source does not grow (no allocation once its node pool is warm) is counted in
// tests/allocations.cpp, which replaces operator new; here, what a reused source does.
TEST_CASE("a source reset many times runs only what was registered after the last reset") {
  CancellationTokenSource source;
  int dropped_runs = 0;
  int failures = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = source.Token().Register([&] { ++dropped_runs; });
    auto r2 = source.Token().Register([&, tok = source.Token()] { ++dropped_runs; });
    if (!source.TryReset()) ++failures;
    if (r.Unregister() || r2.Unregister()) ++failures;  // dropped by the reset: nothing to prevent
  }
  CHECK(failures == 0);
  int runs = 0;
  auto last = source.Token().Register([&] { ++runs; });
  source.Cancel();
  CHECK(runs == 1);
  CHECK(dropped_runs == 0);
}
