# gRPC for the hops example, its tests and its benchmark: finds grpc++ (its CMake config, else
# pkg-config) and grpc_cpp_plugin, and builds the generated code of hops.proto plus the hop
# service once, as the static library ctoken_grpc_hops. Included from examples/grpc,
# tests/grpc and benchmarks/integrations/grpc.cmake; the first include does the work.
#
# Sets CTOKEN_GRPC_FOUND (the library exists) or CTOKEN_GRPC_MISSING (why not).
# CTOKEN_WITH_GRPC=OFF leaves it all out: gRPC is heavy to compile, so CI builds it in the
# default and asan presets only.
if(TARGET ctoken_grpc_hops)
  set(CTOKEN_GRPC_FOUND TRUE)
  return()
endif()
option(CTOKEN_WITH_GRPC "Build the gRPC example, tests and benchmark when grpc++ is installed" ON)
set(CTOKEN_GRPC_FOUND FALSE)
if(NOT CTOKEN_WITH_GRPC)
  set(CTOKEN_GRPC_MISSING "CTOKEN_WITH_GRPC is OFF")
  return()
endif()

set(ctoken_grpc_link)
# Debian's gRPC CMake config finds re2 through pkg-config and fails the whole configure (QUIET
# or not) when pkg-config is missing: look for it first and leave gRPC out without it.
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  set(CTOKEN_GRPC_MISSING "pkg-config not found (gRPC's CMake config needs it; Debian: apt-get install pkg-config)")
  return()
endif()
find_package(gRPC CONFIG QUIET)
if(TARGET gRPC::grpc++)
  set(ctoken_grpc_link gRPC::grpc++)
  find_package(Protobuf QUIET)
  if(TARGET protobuf::libprotobuf)
    list(APPEND ctoken_grpc_link protobuf::libprotobuf)
  endif()
else()
  pkg_check_modules(CTOKEN_GRPCXX QUIET IMPORTED_TARGET grpc++ protobuf)
  if(CTOKEN_GRPCXX_FOUND)
    set(ctoken_grpc_link PkgConfig::CTOKEN_GRPCXX)
  endif()
endif()
find_program(CTOKEN_PROTOC protoc)
find_program(CTOKEN_GRPC_CPP_PLUGIN grpc_cpp_plugin)
if(NOT ctoken_grpc_link OR NOT CTOKEN_PROTOC OR NOT CTOKEN_GRPC_CPP_PLUGIN)
  set(CTOKEN_GRPC_MISSING "grpc++, protoc or grpc_cpp_plugin not found (Debian: apt-get install libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev)")
  return()
endif()

set(ctoken_grpc_dir "${CMAKE_CURRENT_LIST_DIR}")
set(ctoken_grpc_gen "${CMAKE_BINARY_DIR}/ctoken_grpc_generated")
file(MAKE_DIRECTORY "${ctoken_grpc_gen}")
add_custom_command(
  OUTPUT "${ctoken_grpc_gen}/hops.pb.cc" "${ctoken_grpc_gen}/hops.pb.h"
         "${ctoken_grpc_gen}/hops.grpc.pb.cc" "${ctoken_grpc_gen}/hops.grpc.pb.h"
  COMMAND "${CTOKEN_PROTOC}" --proto_path=${ctoken_grpc_dir} --cpp_out=${ctoken_grpc_gen}
          --grpc_out=${ctoken_grpc_gen} --plugin=protoc-gen-grpc=${CTOKEN_GRPC_CPP_PLUGIN}
          "${ctoken_grpc_dir}/hops.proto"
  DEPENDS "${ctoken_grpc_dir}/hops.proto"
  COMMENT "protoc: hops.proto"
  VERBATIM)
add_library(ctoken_grpc_hops STATIC
  "${ctoken_grpc_gen}/hops.pb.cc" "${ctoken_grpc_gen}/hops.grpc.pb.cc" "${ctoken_grpc_dir}/hop_service.cpp")
# The generated code is not ours: its headers are included as system headers, and our warnings
# apply only to hop_service.cpp.
target_include_directories(ctoken_grpc_hops SYSTEM PUBLIC "${ctoken_grpc_gen}")
target_include_directories(ctoken_grpc_hops PUBLIC "${ctoken_grpc_dir}")
target_link_libraries(ctoken_grpc_hops PUBLIC ctoken::ctoken ${ctoken_grpc_link})
if(COMMAND ctoken_warnings)
  set_source_files_properties("${ctoken_grpc_dir}/hop_service.cpp" PROPERTIES COMPILE_OPTIONS "${CTOKEN_WARNINGS}")
else()
  set_source_files_properties("${ctoken_grpc_dir}/hop_service.cpp" PROPERTIES COMPILE_OPTIONS "-Wall;-Wextra")
endif()
set(CTOKEN_GRPC_FOUND TRUE)
