# <ctoken/grpc.hpp> against bare gRPC (ctoken_bench_grpc): cancellation latency per hop of
# client -> A -> B. Uses the generated code and hop service of examples/grpc; left out with a
# message without grpc++ or with CTOKEN_WITH_GRPC=OFF (the bench preset sets it OFF: gRPC is
# heavy to compile; configure with -DCTOKEN_WITH_GRPC=ON to build it there).
# tests/grpc includes this file too (when Google Benchmark is installed), so that the smoke run
# keeps it compiling in the presets that build gRPC; the first include defines the target.
if(TARGET ctoken_bench_grpc)
  return()
endif()
include("${PROJECT_SOURCE_DIR}/examples/grpc/grpc_hops.cmake")
if(CTOKEN_GRPC_FOUND)
  add_executable(ctoken_bench_grpc ${CMAKE_CURRENT_LIST_DIR}/grpc_bench.cpp)
  target_link_libraries(ctoken_bench_grpc PRIVATE ctoken_grpc_hops benchmark::benchmark)
  target_compile_options(ctoken_bench_grpc PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-O2>)
  ctoken_warnings(ctoken_bench_grpc)
  if(CTOKEN_BUILD_TESTS)
    add_test(NAME bench_grpc_smoke COMMAND ctoken_bench_grpc --samples=5 --benchmark_color=false)
    set_tests_properties(bench_grpc_smoke PROPERTIES TIMEOUT 120 LABELS benchmark)
  endif()
else()
  message(STATUS "ctoken benchmarks: ctoken_bench_grpc left out: ${CTOKEN_GRPC_MISSING}")
endif()
