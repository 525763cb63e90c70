// Timeouts: a source that cancels itself, and a cancellable sleep.
#include <ctoken/ctoken.hpp>

#include <cstdio>

int main() {
  using namespace std::chrono_literals;

  // Cancels itself with errc::timed_out after 50 ms (on the library's timer thread).
  ctoken::CancellationTokenSource deadline(50ms);

  // SleepFor returns false as soon as the token is cancelled, true if it slept the whole time.
  const auto start = std::chrono::steady_clock::now();
  const bool slept_fully = ctoken::SleepFor(10s, deadline.Token());
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);

  std::printf("slept fully: %s, woke after ~%lld ms, reason: %s\n", slept_fully ? "yes" : "no",
              static_cast<long long>(waited.count()), deadline.Token().Reason().message().c_str());
  return !slept_fully && deadline.Token().Reason() == ctoken::errc::timed_out ? 0 : 1;
}
