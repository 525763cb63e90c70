#include "events.hpp"

#include <cstdio>

namespace demo {

// No lock here: a sink is code this class does not know (a test's recorder, a file), and no
// lock may be held while such code runs. Each sink keeps its lines whole itself.
void output::event(const std::string& line) {
  if (events_) events_(line);
}

void output::log(const std::string& line) {
  if (log_) log_(line);
}

namespace {
// One fwrite per line: stdio locks the stream for the call, so lines from several threads are
// never interleaved within a line.
void write_line(std::FILE* to, const std::string& line, bool flush) {
  std::string whole;
  whole.reserve(line.size() + 1);
  whole.append(line).push_back('\n');
  std::fwrite(whole.data(), 1, whole.size(), to);
  if (flush) std::fflush(to);
}
}  // namespace

output::sink output::stdout_sink() {
  return [](const std::string& line) { write_line(stdout, line, true); };
}

output::sink output::stderr_sink() {
  return [](const std::string& line) { write_line(stderr, line, false); };
}

}  // namespace demo
