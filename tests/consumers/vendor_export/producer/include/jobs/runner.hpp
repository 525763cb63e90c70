// The vendoring project's public header: its API takes a ctoken token, so whoever uses
// jobs::runner needs ctoken's headers too (they come with jobs' package).
#ifndef JOBS_RUNNER_HPP
#define JOBS_RUNNER_HPP

#include <ctoken/ctoken.hpp>

namespace jobs {

// Runs up to `steps` steps of work, checking `token` before each; returns how many ran.
int RunSteps(int steps, const ctoken::CancellationToken& token);

}  // namespace jobs

#endif
