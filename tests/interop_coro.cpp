// co_await WhenCanceled(token) (C++20 coroutines).
#include <ctoken/coro.hpp>
#include <ctoken/ctoken.hpp>

#include <atomic>
#include <coroutine>
#include <exception>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "ctoken_test.hpp"

using ctoken::CancellationTokenSource;

namespace {

// The smallest eager, fire-and-forget coroutine type that exposes its handle, so a test can
// check whether it finished and destroy it while it is suspended.
struct task {
  struct promise_type {
    bool* finished = nullptr;
    task get_return_object() { return task{std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }  // the test destroys the frame
    void return_void() noexcept {}
    void unhandled_exception() { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
  task(task&& other) noexcept : handle(std::exchange(other.handle, {})) {}
  explicit task(std::coroutine_handle<promise_type> h) : handle(h) {}
  ~task() {
    if (handle) handle.destroy();
  }
  bool done() const { return handle.done(); }
};

task wait_for_cancel(ctoken::CancellationToken token, std::error_code* out, std::thread::id* resumed_on) {
  *out = co_await ctoken::WhenCanceled(token);
  *resumed_on = std::this_thread::get_id();
}

// The old spellings stay one release as [[deprecated]] aliases: they must still compile and
// behave the same. The warning is expected here and silenced for this function only.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
task wait_with_old_spelling(ctoken::CancellationToken token, std::error_code* out) {
  ctoken::CancelledAwaiter awaiter = ctoken::WhenCancelled(token);
  *out = co_await awaiter;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

}  // namespace

TEST_CASE("co_await WhenCanceled suspends until Cancel and resumes on the cancelling thread") {
  CancellationTokenSource source;
  std::error_code why;
  std::thread::id resumed_on;
  task t = wait_for_cancel(source.Token(), &why, &resumed_on);
  CHECK_FALSE(t.done());
  std::thread::id canceller;
  std::thread other([&] {
    canceller = std::this_thread::get_id();
    source.Cancel(ctoken::errc::client_disconnected);
  });
  other.join();
  CHECK(t.done());
  CHECK(why == ctoken::errc::client_disconnected);
  CHECK(resumed_on == canceller);
}

TEST_CASE("co_await on an already cancelled token does not suspend") {
  CancellationTokenSource source;
  source.Cancel(ctoken::errc::shutdown);
  std::error_code why;
  std::thread::id resumed_on;
  task t = wait_for_cancel(source.Token(), &why, &resumed_on);
  CHECK(t.done());
  CHECK(why == ctoken::errc::shutdown);
  CHECK(resumed_on == std::this_thread::get_id());
}

TEST_CASE("co_await on a token that can never be cancelled completes at once with no reason") {
  std::error_code why = ctoken::errc::canceled;
  std::thread::id resumed_on;
  task t = wait_for_cancel(ctoken::CancellationToken::None(), &why, &resumed_on);
  CHECK(t.done());
  CHECK_FALSE(why);
}

TEST_CASE("destroying a suspended coroutine unregisters it: Cancel later resumes nothing") {
  CancellationTokenSource source;
  std::error_code why;
  std::thread::id resumed_on;
  {
    task t = wait_for_cancel(source.Token(), &why, &resumed_on);
    CHECK_FALSE(t.done());
  }  // destroyed while suspended
  source.Cancel();
  CHECK_FALSE(why);
}

TEST_CASE("many coroutines waiting on one token all resume once") {
  CancellationTokenSource source;
  std::vector<std::error_code> reasons(100);
  std::vector<std::thread::id> ids(100);
  std::vector<task> tasks;
  for (std::size_t i = 0; i < 100; ++i) tasks.push_back(wait_for_cancel(source.Token(), &reasons[i], &ids[i]));
  source.Cancel(ctoken::errc::timed_out);
  for (std::size_t i = 0; i < 100; ++i) {
    CHECK(tasks[i].done());
    CHECK(reasons[i] == ctoken::errc::timed_out);
  }
}

TEST_CASE("Cancel racing the suspension: every coroutine resumes exactly once") {
  for (int round = 0; round < 200; ++round) {
    CancellationTokenSource source;
    std::error_code why;
    std::thread::id resumed_on;
    std::thread canceller([&] { source.Cancel(); });
    task t = wait_for_cancel(source.Token(), &why, &resumed_on);
    canceller.join();
    CHECK(t.done());
    CHECK(why == ctoken::errc::canceled);
  }
}

TEST_CASE("the last source going between await_ready and await_suspend does not strand the coroutine") {
  // Drives the awaiter by hand, in the order a coroutine would, with the source destroyed in
  // the window between the two calls: await_suspend must refuse to suspend, since nothing
  // would ever resume it (regression: it returned true and the coroutine hung forever).
  std::optional<CancellationTokenSource> source(std::in_place);
  ctoken::CanceledAwaiter awaiter(source->Token());
  REQUIRE_FALSE(awaiter.await_ready());
  source.reset();
  CHECK_FALSE(awaiter.await_suspend(std::noop_coroutine()));
  CHECK_FALSE(awaiter.await_resume());
}

TEST_CASE("the deprecated WhenCancelled and CancelledAwaiter still compile and behave the same") {
  CancellationTokenSource source;
  std::error_code why;
  task t = wait_with_old_spelling(source.Token(), &why);
  CHECK_FALSE(t.done());
  source.Cancel(ctoken::errc::shutdown);
  CHECK(t.done());
  CHECK(why == ctoken::errc::shutdown);
}
