# <ctoken/curl.hpp> against the real libcurl (Debian: libcurl4-openssl-dev) and scripted
# servers on 127.0.0.1. Reported skipped, never passed, where libcurl is missing.
find_package(CURL 7.68 QUIET)
if(CURL_FOUND)
  ctoken_test(test_curl curl.cpp)
  target_link_libraries(test_curl PRIVATE CURL::libcurl)
  target_include_directories(test_curl PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/../support)

  # The header compiles on its own (it is left out of the dependency-free check in
  # tests/CMakeLists.txt because it needs libcurl's headers).
  set(tu "${CMAKE_CURRENT_BINARY_DIR}/headers/ctoken_curl_hpp.cpp")
  file(CONFIGURE OUTPUT "${tu}" CONTENT "#include <ctoken/curl.hpp>\n#include <ctoken/curl.hpp>  // and include guards work\nint ctoken_curl_hpp_anchor = 0;\n")
  add_library(test_headers_curl OBJECT "${tu}")
  target_link_libraries(test_headers_curl PRIVATE ctoken::ctoken CURL::libcurl)
  ctoken_warnings(test_headers_curl)

  # Against the example HTTP server template, in-process: the cancellation crosses the wire and
  # the server logs 499. Only where the examples are built (Linux).
  if(TARGET ctoken_http_server)
    ctoken_test(test_curl_server curl_server.cpp)
    target_link_libraries(test_curl_server PRIVATE CURL::libcurl ctoken_http_server)
    target_include_directories(test_curl_server PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/../support)
  endif()
else()
  ctoken_skipped(test_curl "libcurl 7.68 or newer not found (Debian: apt-get install libcurl4-openssl-dev)")
endif()
