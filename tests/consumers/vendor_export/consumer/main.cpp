// Uses jobs::runner and, through its header, ctoken, without naming ctoken in its CMake project.
#include <jobs/runner.hpp>

#include <cstdio>

int main() {
  ctoken::CancellationTokenSource source;
  const int before = jobs::RunSteps(5, source.Token());
  source.Cancel(ctoken::errc::shutdown);
  const int after = jobs::RunSteps(5, source.Token());
  if (before != 5 || after != 0) {
    std::printf("consumer: FAILED (%d steps before Cancel, %d after)\n", before, after);
    return 1;
  }
  std::puts("consumer: ok (jobs found ctoken)");
  return 0;
}
