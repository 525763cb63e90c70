# <ctoken/process.hpp> against posix_spawnp + waitpid (ctoken_bench_process); Linux only.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_executable(ctoken_bench_process ${CMAKE_CURRENT_LIST_DIR}/process_bench.cpp)
  target_link_libraries(ctoken_bench_process PRIVATE ctoken::ctoken benchmark::benchmark)
  target_compile_options(ctoken_bench_process PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-O2>)
  ctoken_warnings(ctoken_bench_process)
  if(CTOKEN_BUILD_TESTS)
    add_test(NAME bench_process_smoke
      COMMAND ctoken_bench_process --samples=3 --benchmark_min_time=0.001 --benchmark_color=false)
    set_tests_properties(bench_process_smoke PROPERTIES TIMEOUT 120 LABELS benchmark)
  endif()
else()
  message(STATUS "ctoken benchmarks: ctoken_bench_process left out: Linux only")
endif()
