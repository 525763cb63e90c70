// The invariant checks (CTOKEN_ASSERT) are on in this build and trip when an invariant breaks.
// Each case breaks one on purpose in a forked child, through the detail layer (the public API
// cannot break them without undefined behaviour), and checks that the child was aborted (SIGABRT,
// or the sanitizer's exit code) with ctoken's message naming the condition. Registered only where the checks are
// compiled in (Debug builds and the sanitizer presets, which set CTOKEN_ENABLE_ASSERTS=1).
#include <ctoken/ctoken.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "ctoken_test.hpp"

#if !CTOKEN_ENABLE_ASSERTS
#error "tests/assertions.cpp is only built where CTOKEN_ASSERT is enabled"
#endif

namespace {

struct child_result {
  bool aborted = false;
  std::string stderr_text;
};

// Runs `body` in a forked child with stderr on a pipe; reports whether it was aborted and
// what it wrote to stderr.
template <class Body>
child_result run_in_child(Body body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    body();
    std::_Exit(0);  // the invariant did not trip
  }
  ::close(fds[1]);
  child_result r;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    r.stderr_text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  // abort() normally ends the child with SIGABRT; under ThreadSanitizer with halt_on_error the
  // runtime turns it into an exit with its own non-zero code. Either way the child did not
  // reach the _Exit(0) that means "the invariant did not trip".
  r.aborted = (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
  return r;
}

}  // namespace

TEST_CASE("delisting a caller-owned node twice trips the owned-node count check") {
  const child_result r = run_in_child([] {
    ctoken::detail::state* s = ctoken::detail::state::create();
    ctoken::detail::callback_node node;
    node.invoke = [](ctoken::detail::callback_node*, const std::error_code&) {};
    if (s->enlist(&node) != ctoken::detail::enlist_result::listed) std::_Exit(3);
    s->delist(&node);
    s->delist(&node);  // broken: the state counted one enlisted node, not two
  });
  CHECK(r.aborted);
  CHECK(r.stderr_text.find("ctoken: assertion failed: owned_nodes_ != 0") != std::string::npos);
}

TEST_CASE("unlocking a flags word that is not locked trips the lock check") {
  const child_result r = run_in_child([] {
    ctoken::detail::flag_word word;
    word.unlock(ctoken::detail::flag_word::kLocked);  // broken: nobody took the lock
  });
  CHECK(r.aborted);
  CHECK(r.stderr_text.find("ctoken: assertion failed") != std::string::npos);
}

TEST_CASE("a node pushed twice onto a callback list trips the list check") {
  const child_result r = run_in_child([] {
    ctoken::detail::callback_list list;
    ctoken::detail::callback_node node;
    list.push_front(&node);
    list.push_front(&node);  // broken: already in the list
  });
  CHECK(r.aborted);
  CHECK(r.stderr_text.find("ctoken: assertion failed") != std::string::npos);
}
