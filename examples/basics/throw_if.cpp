// Cooperative cancellation in a CPU loop: check the token between steps, throw to unwind.
//
// ThrowIfCancellationRequested() costs one atomic load while not cancelled, so it is cheap
// enough to call in every iteration of real work.
#include <ctoken/ctoken.hpp>

#include <cstdio>
#include <thread>

namespace {
// Pretend work: ten steps, checking the token before each one.
int run_report(const ctoken::CancellationToken& token) {
  int steps_done = 0;
  for (int step = 0; step < 10; ++step) {
    token.ThrowIfCancellationRequested();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ++steps_done;
  }
  return steps_done;
}
}  // namespace

int main() {
  ctoken::CancellationTokenSource source;
  std::thread canceller([&source] {
    std::this_thread::sleep_for(std::chrono::milliseconds(35));
    source.Cancel(ctoken::errc::client_disconnected);
  });
  int status = 1;
  try {
    run_report(source.Token());
    std::puts("finished (the canceller was too slow)");
  } catch (const ctoken::OperationCanceledException& e) {
    // One place catches cancellation and reports it as what it is, not as an error.
    std::printf("stopped early: %s\n", e.what());
    status = e.Reason() == ctoken::errc::client_disconnected ? 0 : 1;
  }
  canceller.join();
  return status;
}
