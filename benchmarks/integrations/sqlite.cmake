# <ctoken/sqlite.hpp> against the bare SQLite calls (ctoken_bench_sqlite); left out with a
# message when sqlite3 is not found with pkg-config.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(CTOKEN_BENCH_SQLITE3 IMPORTED_TARGET sqlite3)
endif()
if(CTOKEN_BENCH_SQLITE3_FOUND)
  add_executable(ctoken_bench_sqlite ${CMAKE_CURRENT_LIST_DIR}/sqlite_bench.cpp)
  target_link_libraries(ctoken_bench_sqlite PRIVATE ctoken::ctoken benchmark::benchmark PkgConfig::CTOKEN_BENCH_SQLITE3)
  target_compile_options(ctoken_bench_sqlite PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-O2>)
  ctoken_warnings(ctoken_bench_sqlite)
  if(CTOKEN_BUILD_TESTS)
    add_test(NAME bench_sqlite_smoke
      COMMAND ctoken_bench_sqlite --samples=5 --benchmark_min_time=0.001 --benchmark_color=false)
    set_tests_properties(bench_sqlite_smoke PROPERTIES TIMEOUT 120 LABELS benchmark)
  endif()
else()
  message(STATUS "ctoken benchmarks: ctoken_bench_sqlite left out: sqlite3 not found with pkg-config")
endif()
