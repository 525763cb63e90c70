// The program every consumer project builds: it only needs <ctoken/ctoken.hpp> and the
// ctoken::ctoken target, however the project got them.
#include <ctoken/ctoken.hpp>

#include <cstdio>

int main() {
  ctoken::CancellationTokenSource source;
  int runs = 0;
  auto registration = source.Token().Register([&] { ++runs; });
  source.Cancel(ctoken::errc::shutdown);
  if (runs != 1 || source.Token().Reason() != ctoken::errc::shutdown) {
    std::puts("consumer: FAILED");
    return 1;
  }
  std::puts("consumer: ok");
  return 0;
}
