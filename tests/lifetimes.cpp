// Rule 7 and 9: who keeps what alive; tokens outliving sources; CanBeCanceled.
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationCallback;
using ctoken::CancellationToken;
using ctoken::CancellationTokenRegistration;
using ctoken::CancellationTokenSource;

TEST_CASE("a token outlives every source: it stays readable and turns un-cancellable") {
  CancellationToken token;
  {
    CancellationTokenSource source;
    token = source.Token();
    CancellationTokenSource copy = source;
    (void)copy;
  }
  CHECK_FALSE(token.IsCancellationRequested());
  CHECK_FALSE(token.CanBeCanceled());
  CHECK_FALSE(token.Reason());
  CHECK_FALSE(token.Wait());
  CHECK_FALSE(token.WaitFor(std::chrono::hours(1)));
}

TEST_CASE("a cancelled token outliving its source stays cancelled and CanBeCanceled") {
  CancellationToken token;
  {
    CancellationTokenSource source;
    token = source.Token();
    source.Cancel(ctoken::errc::connection_reset);
  }
  CHECK(token.IsCancellationRequested());
  CHECK(token.CanBeCanceled());
  CHECK(token.Reason() == ctoken::errc::connection_reset);
  CHECK(token.Wait());
}

TEST_CASE("the source stays cancellable while any copy lives") {
  CancellationToken token;
  auto second = std::make_unique<CancellationTokenSource>();
  {
    CancellationTokenSource first = *second;
    token = first.Token();
  }
  CHECK(token.CanBeCanceled());
  second->Cancel();
  CHECK(token.IsCancellationRequested());
}

TEST_CASE("a CancellationCallback outliving every source and token") {
  int runs = 0;
  std::unique_ptr<CancellationCallback<std::function<void()>>> cb;
  {
    CancellationTokenSource source;
    cb = std::make_unique<CancellationCallback<std::function<void()>>>(source.Token(), [&] { ++runs; });
  }
  cb.reset();
  CHECK(runs == 0);
}

TEST_CASE("sources - tokens and registrations handed across threads") {
  std::vector<CancellationToken> tokens;
  std::vector<CancellationTokenRegistration> regs;
  std::atomic<int> runs{0};
  {
    CancellationTokenSource source;
    for (int i = 0; i < 16; ++i) tokens.push_back(source.Token());
    std::thread t([&, moved = std::move(source)]() mutable {
      for (auto& tok : tokens) regs.push_back(tok.Register([&] { runs.fetch_add(1); }));
      moved.Cancel();
    });
    t.join();
  }
  CHECK(runs.load() == 16);
  for (auto& t : tokens) CHECK(t.IsCancellationRequested());
}
