# <ctoken/curl.hpp> against the real libcurl (Debian: libcurl4-openssl-dev) and scripted
# servers on 127.0.0.1. Reported skipped, never passed, where libcurl is missing.
find_package(CURL 7.68 QUIET)
if(CURL_FOUND)
  ctoken_test(test_curl curl.cpp)
  target_link_libraries(test_curl PRIVATE CURL::libcurl)
  target_include_directories(test_curl PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/../support)
else()
  ctoken_skipped(test_curl "libcurl 7.68 or newer not found (Debian: apt-get install libcurl4-openssl-dev)")
endif()
