// Register a callback, cancel from another thread, watch the callback run.
//
// The callback runs on the thread that calls Cancel(), before Cancel() returns. The
// registration handle unregisters it when it goes out of scope.
#include <ctoken/ctoken.hpp>

#include <cstdio>
#include <thread>

int main() {
  ctoken::CancellationTokenSource source;
  ctoken::CancellationToken token = source.Token();

  // The callback may take the reason, or nothing at all.
  ctoken::CancellationTokenRegistration registration = token.Register(
      [](std::error_code reason) { std::printf("callback: cancelled because \"%s\"\n", reason.message().c_str()); });

  // A callback that is disposed before Cancel never runs.
  {
    auto short_lived = token.Register([] { std::puts("never printed"); });
  }

  std::thread canceller([&source] { source.Cancel(ctoken::errc::client_disconnected); });
  canceller.join();

  std::printf("token cancelled: %s, reason: %s\n", token.IsCancellationRequested() ? "yes" : "no",
              token.Reason().message().c_str());

  // Registering on a token that is already cancelled runs the callback at once.
  auto late = token.Register([] { std::puts("late callback: ran at once"); });
  return token.IsCancellationRequested() ? 0 : 1;
}
