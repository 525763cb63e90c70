// Rule 3: callbacks that dispose themselves or others, register new ones, or destroy the source.
#include <ctoken/ctoken.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationCallback;
using ctoken::CancellationToken;
using ctoken::CancellationTokenRegistration;
using ctoken::CancellationTokenSource;

TEST_CASE("a callback that disposes its own registration returns at once") {
  CancellationTokenSource source;
  CancellationTokenRegistration self;
  int runs = 0;
  auto tracker = std::make_shared<int>(0);
  std::weak_ptr<int> weak = tracker;
  self = source.Token().Register([&, keep = std::move(tracker)] {
    ++runs;
    self.Dispose();               // must not deadlock
    CHECK_FALSE(weak.expired());  // the callable is still running, so still alive
    self.Dispose();               // twice is fine too
  });
  source.Cancel();
  CHECK(runs == 1);
  CHECK(weak.expired());  // destroyed by the cancelling thread once the callback returned
  CHECK(self.Token() == CancellationToken::None());
}

TEST_CASE("a callback that destroys its own registration handle") {
  CancellationTokenSource source;
  auto holder = std::make_unique<CancellationTokenRegistration>();
  int runs = 0;
  *holder = source.Token().Register([&] {
    ++runs;
    holder.reset();
  });
  source.Cancel();
  CHECK(runs == 1);
  CHECK(holder == nullptr);
}

TEST_CASE("a CancellationCallback destroyed from inside its own callback") {
  CancellationTokenSource source;
  std::optional<CancellationCallback<std::function<void()>>> cb;
  int runs = 0;
  cb.emplace(source.Token(), [&] {
    ++runs;
    cb.reset();
  });
  source.Cancel();
  CHECK(runs == 1);
  CHECK_FALSE(cb.has_value());
}

TEST_CASE("a callback that disposes registrations that have not run yet: they never run") {
  CancellationTokenSource source;
  std::vector<int> order;
  CancellationTokenRegistration older = source.Token().Register([&] { order.push_back(1); });
  std::optional<CancellationCallback<std::function<void()>>> older_in_place;
  older_in_place.emplace(source.Token(), [&] { order.push_back(2); });
  auto newest = source.Token().Register([&] {
    order.push_back(3);
    older.Dispose();
    older_in_place.reset();
  });
  source.Cancel();
  CHECK(order == std::vector<int>{3});
}

TEST_CASE("a callback that unregisters another one gets true - the other never runs") {
  CancellationTokenSource source;
  int other_runs = 0;
  bool unregistered = false;
  auto other = source.Token().Register([&] { ++other_runs; });
  auto first = source.Token().Register([&] { unregistered = other.Unregister(); });
  source.Cancel();
  CHECK(unregistered);
  CHECK(other_runs == 0);
}

TEST_CASE("a callback that disposes a registration that already ran") {
  CancellationTokenSource source;
  CancellationTokenRegistration newer;
  int runs = 0;
  auto older = source.Token().Register([&] {
    ++runs;
    newer.Dispose();  // already ran: no-op
  });
  newer = source.Token().Register([&] { ++runs; });
  source.Cancel();
  CHECK(runs == 2);
}

TEST_CASE("a callback that registers new callbacks: they run at once - on this thread") {
  CancellationTokenSource source;
  std::vector<int> order;
  CancellationTokenRegistration late;
  auto r = source.Token().Register([&] {
    order.push_back(1);
    late = source.Token().Register([&] { order.push_back(2); });
    order.push_back(3);
    CancellationCallback in_place(source.Token(), [&] { order.push_back(4); });
  });
  source.Cancel();
  CHECK(order == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("a callback that destroys the last source and the last token") {
  auto source = std::make_unique<CancellationTokenSource>();
  auto token = std::make_unique<CancellationToken>(source->Token());
  std::vector<int> order;
  auto r1 = token->Register([&] { order.push_back(1); });
  auto r2 = token->Register([&] {
    order.push_back(2);
    source.reset();  // the object Cancel() was called on
    token.reset();
  });
  auto r3 = token->Register([&] { order.push_back(3); });
  CancellationTokenSource* raw = source.get();
  CHECK(raw->Cancel());
  CHECK(order == std::vector<int>{3, 2, 1});
  CHECK(source == nullptr);
}

TEST_CASE("a callback that destroys every handle - registrations included") {
  auto source = std::make_unique<CancellationTokenSource>();
  auto regs = std::make_unique<std::vector<CancellationTokenRegistration>>();
  int runs = 0;
  for (int i = 0; i < 4; ++i) regs->push_back(source->Token().Register([&] { ++runs; }));
  regs->push_back(source->Token().Register([&] {
    ++runs;
    regs.reset();  // disposes itself (from inside) and the three that have not run
    source.reset();
  }));
  CancellationTokenSource* raw = source.get();
  raw->Cancel();
  CHECK(runs == 1);
}
