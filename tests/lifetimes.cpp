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

// Cancel() takes no reference of its own while it runs the callbacks: this callback drops the
// only other reference (its handle) and then the source whose Cancel() is running, which must
// not free the state under the canceller (ASan would report it).
TEST_CASE("a callback that destroys its own handle and the last source while Cancel runs it") {
  auto source = std::make_unique<CancellationTokenSource>();
  std::unique_ptr<CancellationTokenRegistration> reg;
  int second = 0;
  // Registered first, so it runs after the one below (newest first), on a state whose last
  // source and handle are gone.
  CancellationTokenRegistration later = source->Token().Register([&] { ++second; });
  int runs = 0;
  reg = std::make_unique<CancellationTokenRegistration>(source->Token().Register([&] {
    ++runs;
    reg.reset();
    source.reset();
  }));
  CHECK(source->Cancel());
  CHECK(runs == 1);
  CHECK(second == 1);
  CHECK(source == nullptr);
}

TEST_CASE("a callback that destroys the only source and its only handle: no other reference at all") {
  auto source = std::make_unique<CancellationTokenSource>();
  std::unique_ptr<CancellationTokenRegistration> reg;
  int runs = 0;
  reg = std::make_unique<CancellationTokenRegistration>(source->Token().Register([&] {
    ++runs;
    reg.reset();     // the last reference besides the source
    source.reset();  // the last source: the state must outlive the running Cancel
  }));
  CHECK(source->Cancel());
  CHECK(runs == 1);
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
