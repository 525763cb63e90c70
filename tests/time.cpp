// Rule 10 (time): CancelAfter, the delay constructor, Deadline(), ManualTimeProvider and a
// few checks against the real timer thread with generous bounds.
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationToken;
using ctoken::CancellationTokenSource;
using ctoken::errc;
using ctoken::ManualTimeProvider;
using namespace std::chrono_literals;

TEST_CASE("CancelAfter fires at its deadline with reason timed_out (manual clock)") {
  ManualTimeProvider clock;
  CancellationTokenSource source(clock);
  std::thread::id ran_on;
  auto r = source.Token().Register([&] { ran_on = std::this_thread::get_id(); });
  source.CancelAfter(10s);
  clock.Advance(9999ms);
  CHECK_FALSE(source.IsCancellationRequested());
  clock.Advance(1ms);
  CHECK(source.IsCancellationRequested());
  CHECK(source.Token().Reason() == errc::timed_out);
  CHECK(source.Token().Reason() == std::errc::timed_out);
  CHECK(ran_on == std::this_thread::get_id());  // manual clock: fired by Advance, synchronously
}

TEST_CASE("a later CancelAfter replaces the deadline - sooner or later") {
  ManualTimeProvider clock;
  CancellationTokenSource later(clock);
  later.CancelAfter(1s);
  later.CancelAfter(5s);
  clock.Advance(2s);
  CHECK_FALSE(later.IsCancellationRequested());
  clock.Advance(3s);
  CHECK(later.IsCancellationRequested());

  CancellationTokenSource sooner(clock);
  sooner.CancelAfter(1h);
  sooner.CancelAfter(1s);
  clock.Advance(1s);
  CHECK(sooner.IsCancellationRequested());
}

TEST_CASE("CancelAfter(nanoseconds::max()) disarms") {
  ManualTimeProvider clock;
  CancellationTokenSource source(clock);
  source.CancelAfter(1s);
  source.CancelAfter(std::chrono::nanoseconds::max());
  CHECK(clock.ArmedCount() == 0);
  clock.Advance(24h);
  CHECK_FALSE(source.IsCancellationRequested());
}

TEST_CASE("CancelAfter with a zero or negative delay cancels at once on the calling thread") {
  CancellationTokenSource a;
  std::thread::id ran_on;
  auto r = a.Token().Register([&] { ran_on = std::this_thread::get_id(); });
  a.CancelAfter(0ns);
  CHECK(a.IsCancellationRequested());
  CHECK(a.Token().Reason() == errc::timed_out);
  CHECK(ran_on == std::this_thread::get_id());
  CancellationTokenSource b;
  b.CancelAfter(-5s);
  CHECK(b.Token().Reason() == errc::timed_out);
}

TEST_CASE("the delay constructor") {
  CancellationTokenSource expired(0ns);
  CHECK(expired.IsCancellationRequested());
  CHECK(expired.Token().Reason() == errc::timed_out);
  CancellationTokenSource negative(-1ms);
  CHECK(negative.IsCancellationRequested());

  ManualTimeProvider clock;
  CancellationTokenSource timed(3s, clock);
  CHECK_FALSE(timed.IsCancellationRequested());
  clock.Advance(3s);
  CHECK(timed.IsCancellationRequested());
}

TEST_CASE("CancelAfter does nothing once cancelled") {
  ManualTimeProvider clock;
  CancellationTokenSource source(clock);
  source.Cancel(errc::shutdown);
  source.CancelAfter(1s);
  CHECK(clock.ArmedCount() == 0);
  clock.Advance(2s);
  CHECK(source.Token().Reason() == errc::shutdown);
}

TEST_CASE("an orphaned token never fires: the last source disarms its deadline") {
  ManualTimeProvider clock;
  CancellationToken token;
  {
    CancellationTokenSource source(clock);
    source.CancelAfter(1s);
    token = source.Token();
    CHECK(clock.ArmedCount() == 1);
  }
  CHECK(clock.ArmedCount() == 0);
  clock.Advance(1min);
  CHECK_FALSE(token.IsCancellationRequested());
  CHECK_FALSE(token.CanBeCanceled());
}

TEST_CASE("deadlines fire in order - each with Now() at its due time") {
  ManualTimeProvider clock;
  const auto start = clock.Now();
  std::vector<CancellationTokenSource> sources;
  for (int i = 0; i < 5; ++i) sources.emplace_back(clock);
  std::vector<std::pair<int, std::chrono::steady_clock::duration>> fired;
  std::vector<ctoken::CancellationTokenRegistration> regs;
  const int delays[] = {30, 10, 50, 20, 40};
  for (int i = 0; i < 5; ++i) {
    sources[static_cast<std::size_t>(i)].CancelAfter(std::chrono::seconds(delays[i]));
    regs.push_back(sources[static_cast<std::size_t>(i)].Token().Register(
        [&, i] { fired.emplace_back(delays[i], clock.Now() - start); }));
  }
  clock.Advance(45s);
  REQUIRE(fired.size() == 4);
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(fired[k].first == static_cast<int>(10 * (k + 1)));
    CHECK(fired[k].second == std::chrono::seconds(fired[k].first));
  }
  CHECK(clock.Now() - start == 45s);
  clock.Advance(5s);
  CHECK(fired.size() == 5);
}

TEST_CASE("Deadline(): own - through linked parents - and none") {
  ManualTimeProvider clock;
  CancellationTokenSource parent(clock);
  CancellationTokenSource other(clock);
  auto child = CancellationTokenSource::CreateLinkedTokenSource(parent.Token(), other.Token());
  CHECK_FALSE(child.Token().Deadline().has_value());
  parent.CancelAfter(30s);
  other.CancelAfter(20s);
  REQUIRE(child.Token().Deadline().has_value());
  CHECK(*child.Token().Deadline() == clock.Now() + 20s);
  CHECK(*parent.Deadline() == clock.Now() + 30s);
  child.CancelAfter(1min);  // the child's own, later: the parents' earlier one still applies
  CHECK(*child.Token().Deadline() == clock.Now() + 20s);
  // A linked source has no provider of its own: its CancelAfter runs on TimeProvider::System(),
  // whose clock is the real steady_clock (the manual clock started at the real now).
  child.CancelAfter(5s);
  const auto own = *child.Token().Deadline();
  CHECK(own > clock.Now() + 4s);
  CHECK(own < clock.Now() + 20s);
  child.CancelAfter(std::chrono::nanoseconds::max());
  CHECK_FALSE(CancellationToken::None().Deadline().has_value());
}

TEST_CASE("many armed deadlines: arm - re-arm - disarm and fire correctly") {
  ManualTimeProvider clock;
  std::vector<CancellationTokenSource> sources;
  sources.reserve(2000);
  for (int i = 0; i < 2000; ++i) {
    sources.emplace_back(clock);
    sources.back().CancelAfter(std::chrono::milliseconds(1 + (i * 7919) % 1000));
  }
  for (int i = 0; i < 2000; i += 3) sources[static_cast<std::size_t>(i)].CancelAfter(std::chrono::nanoseconds::max());
  CHECK(clock.ArmedCount() == 2000 - 667);
  clock.Advance(500ms);
  for (int i = 0; i < 2000; ++i) {
    const auto& s = sources[static_cast<std::size_t>(i)];
    const bool disarmed = i % 3 == 0;
    const bool due = 1 + (i * 7919) % 1000 <= 500;
    CHECK(s.IsCancellationRequested() == (!disarmed && due));
  }
  clock.Advance(1s);
  int cancelled = 0;
  for (const auto& s : sources) cancelled += s.IsCancellationRequested() ? 1 : 0;
  CHECK(cancelled == 2000 - 667);
  CHECK(clock.ArmedCount() == 0);
}

TEST_CASE("the real timer thread fires CancelAfter (generous bounds)") {
  CancellationTokenSource source;
  std::atomic<bool> on_other_thread{false};
  const auto main_id = std::this_thread::get_id();
  auto r = source.Token().Register([&] { on_other_thread = std::this_thread::get_id() != main_id; });
  const auto start = std::chrono::steady_clock::now();
  source.CancelAfter(20ms);
  CHECK(source.Token().WaitFor(10s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= 20ms);
  CHECK(source.Token().Reason() == errc::timed_out);
  CHECK(ctoken_test::eventually([&] { return on_other_thread.load(); }));
}

TEST_CASE("the real timer: re-arming sooner wakes the timer thread early") {
  CancellationTokenSource far;
  far.CancelAfter(1h);  // the timer thread now sleeps until far in the future
  CancellationTokenSource near(10ms);
  CHECK(near.Token().WaitFor(10s));
  CHECK_FALSE(far.IsCancellationRequested());
  far.CancelAfter(std::chrono::nanoseconds::max());
}

TEST_CASE("Cancel disarms a pending deadline") {
  ManualTimeProvider clock;
  CancellationTokenSource source(clock);
  source.CancelAfter(1h);
  CHECK(clock.ArmedCount() == 1);
  source.Cancel(errc::shutdown);
  CHECK(clock.ArmedCount() == 0);
  CHECK_FALSE(source.Deadline().has_value());
}

TEST_CASE("a parent's TryReset removes its deadline from a child's Deadline()") {
  ManualTimeProvider clock;
  CancellationTokenSource parent(clock);
  auto child = CancellationTokenSource::CreateLinkedTokenSource(parent.Token());
  parent.CancelAfter(10s);
  CHECK(child.Deadline().has_value());
  CHECK(parent.TryReset());  // drops the child's link (as .NET)
  parent.CancelAfter(5s);
  CHECK_FALSE(child.Deadline().has_value());
}

TEST_CASE("concurrent Advance calls add up") {
  ManualTimeProvider clock;
  const auto start = clock.Now();
  std::thread a([&] {
    for (int i = 0; i < 1000; ++i) clock.Advance(1ms);
  });
  std::thread b([&] {
    for (int i = 0; i < 1000; ++i) clock.Advance(1ms);
  });
  a.join();
  b.join();
  CHECK(clock.Now() - start == 2s);
}

TEST_CASE("a deadline racing the destruction of the last source never cancels an orphan") {
  ManualTimeProvider clock;
  for (int round = 0; round < 500; ++round) {
    auto source = std::make_unique<CancellationTokenSource>(clock);
    const CancellationToken token = source->Token();
    source->CancelAfter(1ms);
    std::atomic<int> waited{-1};
    std::thread waiter([&] { waited = token.Wait() ? 1 : 0; });
    std::thread firer([&] { clock.Advance(1ms); });
    source.reset();
    firer.join();
    waiter.join();
    // Either it fired first (cancelled, Wait true) or the source went first (never cancelled).
    CHECK(waited.load() == (token.IsCancellationRequested() ? 1 : 0));
  }
}

TEST_CASE("CancelAfter racing Cancel never leaves a deadline armed on a cancelled source") {
  ManualTimeProvider clock;
  for (int round = 0; round < 500; ++round) {
    CancellationTokenSource source(clock);
    std::thread canceller([&] { source.Cancel(); });
    source.CancelAfter(1s);
    canceller.join();
    CHECK(clock.ArmedCount() == 0);
  }
}
