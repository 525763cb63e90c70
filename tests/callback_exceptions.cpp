// Rule 4 and 9: exceptions thrown by callbacks.
#include <ctoken/ctoken.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationCallback;
using ctoken::CancellationTokenSource;

TEST_CASE("a throwing callback does not stop the others, and Cancel rethrows the first exception") {
  CancellationTokenSource source;
  std::vector<int> order;
  auto r1 = source.Token().Register([&] { order.push_back(1); });
  auto r2 = source.Token().Register([&] {
    order.push_back(2);
    throw std::runtime_error("second");
  });
  auto r3 = source.Token().Register([&] { order.push_back(3); });
  auto r4 = source.Token().Register([&] {
    order.push_back(4);
    throw std::logic_error("first");
  });
  try {
    source.Cancel();
    FAIL("Cancel did not rethrow");
  } catch (const std::logic_error& e) {
    CHECK(std::string(e.what()) == "first");  // newest runs first, so its exception is the first
  }
  CHECK(order == std::vector<int>{4, 3, 2, 1});
  CHECK(source.IsCancellationRequested());
  CHECK_FALSE(source.Cancel());  // the state stayed cancelled, nothing runs again
  CHECK(order.size() == 4);
}

TEST_CASE("an exception from a callback run inline by Register escapes from Register") {
  CancellationTokenSource source;
  source.Cancel();
  CHECK_THROWS_AS(source.Token().Register([] { throw std::runtime_error("inline"); }), std::runtime_error);
  // ... and from the CancellationCallback constructor.
  auto make = [&] { CancellationCallback cb(source.Token(), [] { throw std::runtime_error("ctor"); }); };
  CHECK_THROWS_AS(make(), std::runtime_error);
}

TEST_CASE("an exception from a callable's copy constructor leaves nothing registered") {
  struct throws_on_copy {
    int* runs;
    throws_on_copy(int* r) : runs(r) {}
    throws_on_copy(const throws_on_copy&) { throw std::runtime_error("copy"); }
    void operator()() const { ++*runs; }
  };
  CancellationTokenSource source;
  int runs = 0;
  const throws_on_copy f(&runs);
  CHECK_THROWS_AS(source.Token().Register(f), std::runtime_error);
  source.Cancel();
  CHECK(runs == 0);
}

TEST_CASE("exceptions of a linked child's callbacks reach whoever cancelled the ancestor") {
  CancellationTokenSource root;
  auto child = CancellationTokenSource::CreateLinkedTokenSource(root.Token());
  auto grandchild = CancellationTokenSource::CreateLinkedTokenSource(child.Token());
  int others = 0;
  auto r1 = grandchild.Token().Register([&] { ++others; });
  auto r2 = grandchild.Token().Register([] { throw std::runtime_error("deep"); });
  auto r3 = root.Token().Register([&] { ++others; });
  CHECK_THROWS_WITH(root.Cancel(), "deep");
  CHECK(others == 2);
  CHECK(grandchild.IsCancellationRequested());
}

TEST_CASE("CancelAfter(0) behaves like Cancel: exceptions escape on the calling thread") {
  CancellationTokenSource source;
  auto r = source.Token().Register([] { throw std::runtime_error("now"); });
  CHECK_THROWS_AS(source.CancelAfter(std::chrono::nanoseconds(0)), std::runtime_error);
  CHECK(source.Token().Reason() == ctoken::errc::timed_out);
}

TEST_CASE("ManualTimeProvider::Advance rethrows the first exception after firing every due deadline") {
  ctoken::ManualTimeProvider clock;
  CancellationTokenSource a(clock);
  CancellationTokenSource b(clock);
  a.CancelAfter(std::chrono::seconds(1));
  b.CancelAfter(std::chrono::seconds(2));
  auto ra = a.Token().Register([] { throw std::runtime_error("a"); });
  int b_runs = 0;
  auto rb = b.Token().Register([&] { ++b_runs; });
  CHECK_THROWS_WITH(clock.Advance(std::chrono::seconds(5)), "a");
  CHECK(a.IsCancellationRequested());
  CHECK(b.IsCancellationRequested());
  CHECK(b_runs == 1);
}
