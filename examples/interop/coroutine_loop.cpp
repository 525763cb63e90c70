// Coroutines and cancellation on a minimal single-threaded event loop (C++20).
//
// Two ideas:
//  - `co_await ctoken::WhenCanceled(token)` suspends until the token is cancelled;
//  - racing work against cancellation: an awaitable (`sleep`) that resumes the coroutine on
//    whichever comes first, its timer or the token, and cancels the loser.
// Cancellation callbacks run on the cancelling thread; this loop is single-threaded, so the
// callback does not resume the coroutine itself: it posts the resumption to the loop.
#include <ctoken/coro.hpp>
#include <ctoken/ctoken.hpp>

#include <chrono>
#include <coroutine>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace {

using clock_type = std::chrono::steady_clock;

// The event loop: a queue of ready work and a map of timers, all run on one thread.
class event_loop {
 public:
  void post(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mutex_);
    ready_.push_back(std::move(fn));
  }
  // Returns an id to cancel the timer with.
  std::uint64_t at(clock_type::time_point when, std::function<void()> fn) {
    const std::uint64_t id = next_id_++;
    timers_.emplace(std::make_pair(when, id), std::move(fn));
    return id;
  }
  void cancel_timer(std::uint64_t id) {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return;
      }
    }
  }
  // Runs until there is nothing left to do.
  void run() {
    for (;;) {
      std::optional<std::function<void()>> next;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!ready_.empty()) {
          next = std::move(ready_.front());
          ready_.pop_front();
        }
      }
      if (next) {
        (*next)();
        continue;
      }
      if (timers_.empty()) return;
      auto first = timers_.begin();
      std::this_thread::sleep_until(first->first.first);  // a real loop would wait on epoll
      auto fn = std::move(first->second);
      timers_.erase(first);
      fn();
    }
  }

 private:
  std::mutex mutex_;  // post() may be called from any thread (e.g. a cancelling one)
  std::deque<std::function<void()>> ready_;
  std::map<std::pair<clock_type::time_point, std::uint64_t>, std::function<void()>> timers_;  // loop thread only
  std::uint64_t next_id_ = 0;
};

// `co_await sleep(loop, d, token)`: true if the whole duration passed, false if cancelled.
// The timer and the cancellation race; the first to reach the loop resumes the coroutine and
// the other becomes a no-op. Their shared record outlives the awaiter, because a resumption
// posted by a cancelling thread may reach the loop after the timer already won.
class sleep {
 public:
  sleep(event_loop& loop, std::chrono::milliseconds d, ctoken::CancellationToken token)
      : race_(std::make_shared<race>(loop)), duration_(d), token_(std::move(token)) {}

  bool await_ready() const noexcept { return token_.IsCancellationRequested(); }
  void await_suspend(std::coroutine_handle<> h) {
    race_->handle = h;
    race_->timer = race_->loop.at(clock_type::now() + duration_, [r = race_] { r->finish(true); });
    // Runs on the cancelling thread (any thread): hand the resumption to the loop's thread.
    on_cancel_.emplace(token_, canceller{race_});
  }
  bool await_resume() const noexcept { return race_->timer_won; }

 private:
  struct race {
    explicit race(event_loop& l) : loop(l) {}
    event_loop& loop;
    std::coroutine_handle<> handle;
    std::uint64_t timer = 0;
    bool finished = false;  // loop thread only
    bool timer_won = false;
    // Runs on the loop thread; the first of timer and cancellation wins.
    void finish(bool by_timer) {
      if (finished) return;
      finished = true;
      timer_won = by_timer;
      if (!by_timer) loop.cancel_timer(timer);
      handle.resume();
    }
  };
  struct canceller {
    std::shared_ptr<race> r;
    void operator()() const {
      r->loop.post([r2 = r] { r2->finish(false); });
    }
  };

  std::shared_ptr<race> race_;
  std::chrono::milliseconds duration_;
  ctoken::CancellationToken token_;
  std::optional<ctoken::CancellationCallback<canceller>> on_cancel_;
};

// A fire-and-forget coroutine type for the example.
struct task {
  struct promise_type {
    task get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() { std::terminate(); }
  };
};

task worker(event_loop& loop, ctoken::CancellationToken token) {
  for (int step = 1; step <= 10; ++step) {
    if (!co_await sleep(loop, std::chrono::milliseconds(20), token)) {
      std::printf("worker: cancelled during step %d (%s)\n", step, token.Reason().message().c_str());
      co_return;
    }
    std::printf("worker: step %d done\n", step);
  }
}

task watcher(ctoken::CancellationToken token) {
  const std::error_code why = co_await ctoken::WhenCanceled(token);
  std::printf("watcher: resumed with \"%s\"\n", why.message().c_str());
}

}  // namespace

int main() {
  event_loop loop;
  ctoken::CancellationTokenSource source;
  worker(loop, source.Token());
  watcher(source.Token());
  // Cancel from a timer on the loop after ~70 ms (three steps and a bit).
  loop.at(clock_type::now() + std::chrono::milliseconds(70), [&] { source.Cancel(ctoken::errc::client_disconnected); });
  loop.run();
  return 0;
}
