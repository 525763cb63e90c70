# <ctoken/sqlite.hpp> against the real SQLite (in-memory databases): found with pkg-config,
# else the test is registered as skipped.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(CTOKEN_SQLITE3 IMPORTED_TARGET sqlite3)
endif()
if(CTOKEN_SQLITE3_FOUND)
  ctoken_test(test_sqlite ${CMAKE_CURRENT_LIST_DIR}/sqlite.cpp)
  target_link_libraries(test_sqlite PRIVATE PkgConfig::CTOKEN_SQLITE3)
  # ctoken_test() adds <current dir>/support, which is tests/integrations/support here.
  target_include_directories(test_sqlite PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  # The header compiles on its own (it is left out of the dependency-free standalone check).
  set(tu "${CMAKE_CURRENT_BINARY_DIR}/headers/ctoken_sqlite_hpp.cpp")
  file(CONFIGURE OUTPUT "${tu}" CONTENT "#include <ctoken/sqlite.hpp>\n#include <ctoken/sqlite.hpp>\nint ctoken_sqlite_hpp_anchor = 0;\n")
  add_library(test_headers_sqlite OBJECT "${tu}")
  target_link_libraries(test_headers_sqlite PRIVATE ctoken::ctoken PkgConfig::CTOKEN_SQLITE3)
  ctoken_warnings(test_headers_sqlite)
else()
  ctoken_skipped(test_sqlite "sqlite3 not found with pkg-config (Debian: apt-get install libsqlite3-dev pkg-config)")
endif()
