# <ctoken/process.hpp> against real child processes (/bin/sh, sleep). POSIX (Linux for the
# pidfd path and the /proc checks); reported skipped elsewhere.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  ctoken_test(test_process process.cpp)
  target_include_directories(test_process PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/../support)
else()
  ctoken_skipped(test_process "the process tests read /proc (Linux only)")
endif()
