#include <jobs/runner.hpp>

namespace jobs {

int RunSteps(int steps, const ctoken::CancellationToken& token) {
  int done = 0;
  while (done < steps && !token.IsCancellationRequested()) ++done;
  return done;
}

}  // namespace jobs
