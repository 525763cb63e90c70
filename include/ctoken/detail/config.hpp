// ctoken — configuration macros shared by every header.
#ifndef CTOKEN_DETAIL_CONFIG_HPP
#define CTOKEN_DETAIL_CONFIG_HPP

#include <cstdio>
#include <cstdlib>

// Whether the compiler has exceptions enabled (not -fno-exceptions). The library's own
// try/catch blocks (around callbacks) follow this, whatever the user asks for below.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define CTOKEN_HAS_EXCEPTIONS 1
#endif

// CTOKEN_NO_EXCEPTIONS: defined by the user, or deduced from -fno-exceptions. Then
// ThrowIfCancellationRequested() prints the reason to stderr and calls std::abort() instead of
// throwing. (Callbacks may still throw if the compiler has exceptions: Cancel() rethrows.)
#if !defined(CTOKEN_NO_EXCEPTIONS) && !defined(CTOKEN_HAS_EXCEPTIONS)
#define CTOKEN_NO_EXCEPTIONS 1
#endif

#if defined(CTOKEN_HAS_EXCEPTIONS)
#define CTOKEN_TRY try
#define CTOKEN_CATCH_ALL catch (...)
#else
#define CTOKEN_TRY if (true)
#define CTOKEN_CATCH_ALL else
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CTOKEN_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CTOKEN_LIKELY(x) __builtin_expect(!!(x), 1)
// The uncontended path of the state's lock and of enlist/delist is a handful of instructions
// and runs twice per in-place registration: it is forced inline, and the rare paths (waiting)
// are kept out of line so that they do not make the callers too big to inline.
#define CTOKEN_ALWAYS_INLINE inline __attribute__((always_inline))
#define CTOKEN_NOINLINE __attribute__((noinline, cold))
#else
#define CTOKEN_UNLIKELY(x) (x)
#define CTOKEN_LIKELY(x) (x)
#define CTOKEN_ALWAYS_INLINE inline
#define CTOKEN_NOINLINE
#endif

namespace ctoken {
namespace detail {

// Contract violations that cannot be reported any other way (counter overflow, misuse that
// would corrupt memory) end the process with a message instead of undefined behaviour.
[[noreturn]] inline void fatal(const char* what) noexcept {
  std::fputs("ctoken: fatal: ", stderr);
  std::fputs(what, stderr);
  std::fputc('\n', stderr);
  std::abort();
}

// Invariant checks, on in Debug builds (no NDEBUG) and wherever CTOKEN_ENABLE_ASSERTS=1 (the
// sanitizer presets set it), compiled out otherwise (CTOKEN_ENABLE_ASSERTS=0 forces them off).
// A failed check is a bug in ctoken or memory corruption: it ends the process with the
// condition and its place, never returns.
[[noreturn]] inline void assertion_failed(const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "ctoken: assertion failed: %s (%s:%d)\n", what, file, line);
  std::abort();
}

// A pause hint for spin-waits (no header needed: a compiler builtin where there is one).
inline void cpu_relax() noexcept {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_ia32_pause();
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
  asm volatile("yield");
#endif
}

}  // namespace detail
}  // namespace ctoken

#if !defined(CTOKEN_ENABLE_ASSERTS)
#if defined(NDEBUG)
#define CTOKEN_ENABLE_ASSERTS 0
#else
#define CTOKEN_ENABLE_ASSERTS 1
#endif
#endif

#if CTOKEN_ENABLE_ASSERTS
#define CTOKEN_ASSERT(cond)                                                                      \
  do {                                                                                           \
    if (CTOKEN_UNLIKELY(!(cond))) ::ctoken::detail::assertion_failed(#cond, __FILE__, __LINE__); \
  } while (false)
#else
// Unevaluated, so a variable used only in checks is still "used".
#define CTOKEN_ASSERT(cond) \
  do {                      \
    (void)sizeof(!(cond));  \
  } while (false)
#endif

#endif
