# <ctoken/curl.hpp> against curl_easy_perform (ctoken_bench_curl); left out with a message when
# libcurl is not found.
find_package(CURL 7.68 QUIET)
if(CURL_FOUND)
  add_executable(ctoken_bench_curl ${CMAKE_CURRENT_LIST_DIR}/curl_bench.cpp)
  target_include_directories(ctoken_bench_curl PRIVATE ${PROJECT_SOURCE_DIR}/tests/integrations)  # curl_loopback.hpp
  target_link_libraries(ctoken_bench_curl PRIVATE ctoken::ctoken benchmark::benchmark CURL::libcurl)
  target_compile_options(ctoken_bench_curl PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-O2>)
  ctoken_warnings(ctoken_bench_curl)
  if(CTOKEN_BUILD_TESTS)
    add_test(NAME bench_curl_smoke
      COMMAND ctoken_bench_curl --samples=3 --benchmark_min_time=0.001 --benchmark_color=false)
    set_tests_properties(bench_curl_smoke PROPERTIES TIMEOUT 120 LABELS benchmark)
  endif()
else()
  message(STATUS "ctoken benchmarks: ctoken_bench_curl left out: libcurl 7.68 or newer not found")
endif()
