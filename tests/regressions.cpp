// Regressions of confirmed defects: each case failed before its fix (the commit that fixed it
// says how it was seen failing) and must keep passing. Run under ASan/UBSan and TSan too.
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <type_traits>

#include "ctoken_test.hpp"

using ctoken::CancellationTokenRegistration;
using ctoken::CancellationTokenSource;

namespace {

// Two threads that start each round together: a cheap two-party barrier on one counter.
class start_line {
 public:
  // Waits until both parties of `round` arrived.
  void arrive_and_wait(int round) {
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    const int target = 2 * (round + 1);
    while (arrived_.load(std::memory_order_acquire) < target) {
    }
  }

 private:
  std::atomic<int> arrived_{0};
};

}  // namespace

TEST_CASE("Cancel racing the first CancelAfter never leaves a cancelled source with an armed deadline") {
  // Thread A: Cancel(). Thread B: the source's first CancelAfter(1 h), which attaches the
  // system provider. Both store one fact and then read the other's: a store-buffering shape
  // that acquire/release alone does not order. Before the fix about 1 round in 200-10 000 ended
  // cancelled with the deadline still armed.
  const int rounds = 20000;
  std::atomic<CancellationTokenSource*> current{nullptr};
  start_line line;
  std::thread canceller([&] {
    for (int r = 0; r < rounds; ++r) {
      line.arrive_and_wait(2 * r);
      current.load(std::memory_order_acquire)->Cancel();
      line.arrive_and_wait(2 * r + 1);
    }
  });
  int armed_after_cancel = 0;
  for (int r = 0; r < rounds; ++r) {
    auto source = std::make_unique<CancellationTokenSource>();
    current.store(source.get(), std::memory_order_release);
    line.arrive_and_wait(2 * r);
    source->CancelAfter(std::chrono::hours(1));
    line.arrive_and_wait(2 * r + 1);
    // Both calls returned: the source is cancelled, so nothing may be armed for it.
    REQUIRE(source->IsCancellationRequested());
    if (source->Deadline().has_value()) ++armed_after_cancel;
  }
  canceller.join();
  CHECK(armed_after_cancel == 0);
  // And nothing is left armed on the system provider by these sources (all destroyed).
  CHECK(ctoken::TimeProvider::System().ArmedCount() == 0);
}

namespace {

// The "the callback keeps the operation alive" shape: the operation owns its registration and
// the registered callable owns the operation.
struct operation {
  CancellationTokenRegistration registration;
};

}  // namespace

TEST_CASE("Dispose whose callable's destructor drops the last reference to the state") {
  auto op = std::make_shared<operation>();
  {
    CancellationTokenSource source;
    op->registration = source.Token().Register([keep = op] { (void)keep; });
  }  // the source and its tokens are gone: only the registration keeps the state alive
  operation* raw = op.get();
  op.reset();  // now only the stored callable keeps the operation alive
  // Destroying the callable destroys the operation, hence the registration, whose reference is
  // the state's last: the state must outlive Dispose's own bookkeeping (ASan: use-after-free).
  raw->registration.Dispose();
  SUCCEED("no use-after-free, no leak (checked by ASan and LeakSanitizer)");
}

namespace {

struct owner_of_source {
  CancellationTokenSource source;
  CancellationTokenRegistration registration;
};

}  // namespace

TEST_CASE("TryReset whose dropped callable's destructor destroys the source being reset") {
  auto owner = std::make_shared<owner_of_source>();
  owner->registration = owner->source.Token().Register([keep = owner] { (void)keep; });
  owner_of_source* raw = owner.get();
  owner.reset();  // only the stored callable keeps the owner (source and registration) alive
  // TryReset drops the callable, whose destructor destroys the source handle being reset and
  // the registration: every reference to the state goes while TryReset is still running.
  CHECK(raw->source.TryReset());
  SUCCEED("no use-after-free, no leak (checked by ASan and LeakSanitizer)");
}

namespace {

// A class that tries to derive a time provider of its own.
struct user_provider : ctoken::TimeProvider {
  std::chrono::steady_clock::time_point Now() const noexcept override { return {}; }
};

}  // namespace

TEST_CASE("TimeProvider cannot be derived from outside the library") {
  // The documentation said "not meant to be derived" while nothing stopped it; the constructor
  // is now private to the library's two providers, so such a class cannot be constructed.
  STATIC_REQUIRE_FALSE(std::is_default_constructible<user_provider>::value);
  STATIC_REQUIRE(std::is_default_constructible<ctoken::ManualTimeProvider>::value);
}
