# Configures ctoken (library only) in BUILD_DIR and installs it into PREFIX. It is configured for
# another prefix and installed with `cmake --install --prefix PREFIX`, as the README shows, so
# every installed file must follow the prefix given at install time (the CMake package and
# ctoken.pc alike). The configured BUILD_DIR doubles as the build tree "consumer: build tree" uses.
file(REMOVE_RECURSE "${BUILD_DIR}" "${PREFIX}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${BUILD_DIR}" -G "${GENERATOR}"
    -DCTOKEN_BUILD_TESTS=OFF -DCTOKEN_BUILD_EXAMPLES=OFF -DCTOKEN_INSTALL=ON
    "-DCMAKE_INSTALL_PREFIX=${BUILD_DIR}/configured-prefix-not-used"
  RESULT_VARIABLE configured)
if(NOT configured EQUAL 0)
  message(FATAL_ERROR "configuring ctoken failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${PREFIX}" RESULT_VARIABLE installed)
if(NOT installed EQUAL 0)
  message(FATAL_ERROR "installing ctoken failed")
endif()
foreach(f include/ctoken/ctoken.hpp include/ctoken/version.hpp include/ctoken/detail/state.hpp
          share/cmake/ctoken/ctokenConfig.cmake share/cmake/ctoken/ctokenConfigVersion.cmake
          share/cmake/ctoken/ctokenTargets.cmake share/pkgconfig/ctoken.pc)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "the install is missing ${f}")
  endif()
endforeach()
if(EXISTS "${BUILD_DIR}/configured-prefix-not-used")
  message(FATAL_ERROR "something was installed into the configured prefix instead of ${PREFIX}")
endif()
file(STRINGS "${PREFIX}/share/pkgconfig/ctoken.pc" pc_prefix REGEX "^prefix=")
if(NOT pc_prefix STREQUAL "prefix=${PREFIX}")
  message(FATAL_ERROR "ctoken.pc says '${pc_prefix}', expected 'prefix=${PREFIX}'")
endif()
