// Built with -fno-exceptions: the library works, and ThrowIfCancellationRequested() aborts
// the process (checked in a forked child) instead of throwing.
#include <ctoken/ctoken.hpp>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

int main() {
  ctoken::CancellationTokenSource source;
  int runs = 0;
  auto r = source.Token().Register([&] { ++runs; });
  ctoken::CancellationCallback cb(source.Token(), [&](std::error_code) { ++runs; });
  source.Token().ThrowIfCancellationRequested();  // not cancelled: returns
  source.Cancel(ctoken::errc::timed_out);
  if (runs != 2 || !source.Token().IsCancellationRequested()) {
    std::puts("FAILED: callbacks did not run");
    return 1;
  }
  std::fflush(stdout);
  const pid_t child = fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) {
    source.Token().ThrowIfCancellationRequested();  // must abort
    _exit(0);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child) {
    std::perror("waitpid");
    return 1;
  }
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
    std::puts("FAILED: ThrowIfCancellationRequested did not abort without exceptions");
    return 1;
  }
  std::puts("ok: callbacks ran, ThrowIfCancellationRequested aborted");
  return 0;
}
