# <ctoken/postgres.hpp> against a real PostgreSQL server that each test case starts itself
# (initdb + pg_ctl, Unix socket in a temporary directory, no TCP) and removes at its end.
# libpq is found with pkg-config; the server's binaries (initdb, pg_ctl) in Debian's versioned
# directory or on the PATH. Without libpq the test is registered as skipped; without the server
# binaries every case prints "SKIPPED: ..." and ctest reports it skipped, never passed.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(CTOKEN_LIBPQ IMPORTED_TARGET libpq)
endif()
if(CTOKEN_LIBPQ_FOUND)
  file(GLOB ctoken_pg_bindirs "/usr/lib/postgresql/*/bin")
  list(SORT ctoken_pg_bindirs COMPARE NATURAL ORDER DESCENDING)  # the newest version first
  find_program(CTOKEN_PG_INITDB initdb HINTS ${ctoken_pg_bindirs})
  set(ctoken_pg_bindir "")
  if(CTOKEN_PG_INITDB)
    get_filename_component(ctoken_pg_bindir "${CTOKEN_PG_INITDB}" DIRECTORY)
  endif()
  message(STATUS "ctoken tests: PostgreSQL server binaries: ${ctoken_pg_bindir}")

  # ctoken_test()'s body, plus the skip expression for a machine without the server.
  add_executable(test_postgres ${CMAKE_CURRENT_LIST_DIR}/postgres.cpp)
  target_link_libraries(test_postgres PRIVATE ctoken::ctoken Catch2::Catch2WithMain PkgConfig::CTOKEN_LIBPQ)
  target_include_directories(test_postgres PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  target_compile_definitions(test_postgres PRIVATE CTOKEN_CATCH2_MAJOR=${CTOKEN_CATCH2_MAJOR}
                                                   CTOKEN_PG_BINDIR="${ctoken_pg_bindir}")
  ctoken_warnings(test_postgres)
  catch_discover_tests(test_postgres TEST_PREFIX "test_postgres: " EXTRA_ARGS --warn NoTests
                       PROPERTIES TIMEOUT 120 SKIP_REGULAR_EXPRESSION "SKIPPED")

  # The header compiles on its own (it is left out of the dependency-free standalone check).
  set(tu "${CMAKE_CURRENT_BINARY_DIR}/headers/ctoken_postgres_hpp.cpp")
  file(CONFIGURE OUTPUT "${tu}" CONTENT "#include <ctoken/postgres.hpp>\n#include <ctoken/postgres.hpp>\nint ctoken_postgres_hpp_anchor = 0;\n")
  add_library(test_headers_postgres OBJECT "${tu}")
  target_link_libraries(test_headers_postgres PRIVATE ctoken::ctoken PkgConfig::CTOKEN_LIBPQ)
  ctoken_warnings(test_headers_postgres)
else()
  ctoken_skipped(test_postgres "libpq not found with pkg-config (Debian: apt-get install libpq-dev postgresql pkg-config)")
endif()
