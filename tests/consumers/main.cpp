// The program every consumer project builds: it only needs <ctoken/ctoken.hpp> and the
// ctoken::ctoken target, however the project got them.
#include <ctoken/ctoken.hpp>

#include <cstdio>
#include <cstring>

int main() {
#ifdef CTOKEN_EXPECTED_VERSION
  // The version CMake's package reported (ctoken_VERSION) is the header's.
  if (std::strcmp(CTOKEN_VERSION_STRING, CTOKEN_EXPECTED_VERSION) != 0) {
    std::printf("consumer: FAILED (header version %s, package version %s)\n", CTOKEN_VERSION_STRING,
                CTOKEN_EXPECTED_VERSION);
    return 1;
  }
#endif
  ctoken::CancellationTokenSource source;
  int runs = 0;
  auto registration = source.Token().Register([&] { ++runs; });
  source.Cancel(ctoken::errc::shutdown);
  if (runs != 1 || source.Token().Reason() != ctoken::errc::shutdown) {
    std::puts("consumer: FAILED");
    return 1;
  }
  std::printf("consumer: ok (ctoken %s)\n", CTOKEN_VERSION_STRING);
  return 0;
}
