# Configures ctoken (library only) in BUILD_DIR and installs it into PREFIX.
file(REMOVE_RECURSE "${BUILD_DIR}" "${PREFIX}")
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${BUILD_DIR}" -G "${GENERATOR}"
    -DCTOKEN_BUILD_TESTS=OFF -DCTOKEN_BUILD_EXAMPLES=OFF -DCTOKEN_INSTALL=ON
    "-DCMAKE_INSTALL_PREFIX=${PREFIX}"
  RESULT_VARIABLE configured)
if(NOT configured EQUAL 0)
  message(FATAL_ERROR "configuring ctoken failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" RESULT_VARIABLE installed)
if(NOT installed EQUAL 0)
  message(FATAL_ERROR "installing ctoken failed")
endif()
foreach(f include/ctoken/ctoken.hpp include/ctoken/detail/state.hpp share/cmake/ctoken/ctokenConfig.cmake
          share/cmake/ctoken/ctokenConfigVersion.cmake share/pkgconfig/ctoken.pc)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "the install is missing ${f}")
  endif()
endforeach()
