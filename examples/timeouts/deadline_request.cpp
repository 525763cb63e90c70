// A request with its own deadline, linked to the caller's token.
//
// The caller (say, a server shutting down) may cancel at any time; the operation also gives up
// after its own budget. Link the two and pass one token down; Reason() tells which one fired,
// and Deadline() tells downstream code how much time is left (e.g. for a socket timeout).
#include <ctoken/ctoken.hpp>

#include <cstdio>

namespace {

// Some downstream work that honours the token and passes the deadline on.
bool fetch_rows(const ctoken::CancellationToken& token, int rows) {
  if (auto deadline = token.Deadline()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
    std::printf("  fetch_rows: %lld ms left, would use that as the socket timeout\n",
                static_cast<long long>(left.count()));
  }
  for (int row = 0; row < rows; ++row) {
    // One row takes 20 ms; SleepFor returns false as soon as the token is cancelled.
    if (!ctoken::SleepFor(std::chrono::milliseconds(20), token)) return false;
  }
  return true;
}

// Runs one operation with a budget, under the caller's token.
void run_with_budget(const ctoken::CancellationToken& caller, std::chrono::milliseconds budget, int rows) {
  auto op = ctoken::CancellationTokenSource::CreateLinkedTokenSource(caller);
  op.CancelAfter(budget);
  const bool done = fetch_rows(op.Token(), rows);
  if (done) {
    std::printf("  done: %d rows\n", rows);
  } else if (op.Token().Reason() == ctoken::errc::timed_out) {
    std::printf("  gave up: budget of %lld ms exceeded\n", static_cast<long long>(budget.count()));
  } else {
    std::printf("  stopped by the caller: %s\n", op.Token().Reason().message().c_str());
  }
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  ctoken::CancellationTokenSource server;  // the caller's token: cancelled on shutdown

  std::puts("request 1 (5 rows, 500 ms budget):");
  run_with_budget(server.Token(), 500ms, 5);

  std::puts("request 2 (50 rows, 100 ms budget):");
  run_with_budget(server.Token(), 100ms, 50);

  std::puts("request 3 (server shutting down):");
  server.Cancel(ctoken::errc::shutdown);
  run_with_budget(server.Token(), 500ms, 5);
  return 0;
}
