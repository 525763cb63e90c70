// Built in the producer's own tree: jobs::runner works before it is installed.
#include <jobs/runner.hpp>

int main() {
  ctoken::CancellationTokenSource source;
  return jobs::RunSteps(3, source.Token()) == 3 ? 0 : 1;
}
