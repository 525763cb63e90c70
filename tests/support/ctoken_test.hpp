// Test support: the right Catch2 header for v2 or v3, and small helpers shared by the tests.
#ifndef CTOKEN_TEST_SUPPORT_HPP
#define CTOKEN_TEST_SUPPORT_HPP

#if CTOKEN_CATCH2_MAJOR >= 3
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace ctoken_test {

// Spins (yielding) until pred() holds or `limit` passes; returns pred(). For waiting on another
// thread to reach a point, with a generous bound, instead of sleeping a fixed time.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return pred();
    std::this_thread::yield();
  }
  return true;
}

// How long stress loops run: short by default, longer with CTOKEN_STRESS_MS set (milliseconds).
inline std::chrono::milliseconds stress_duration() {
  if (const char* s = std::getenv("CTOKEN_STRESS_MS")) return std::chrono::milliseconds(std::atol(s));
  return std::chrono::milliseconds(1500);
}

}  // namespace ctoken_test

#endif
