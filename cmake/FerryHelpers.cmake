# ferry_cc_library(NAME n SRCS ... [DEPS ...]) -> static library ferry_<n>,
# position independent (it ends up inside the Python extension too).
function(ferry_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(ferry_${ARG_NAME} STATIC ${ARG_SRCS})
  set_target_properties(ferry_${ARG_NAME} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  # Installed (cmake/FerryInstall.cmake), a library exposes only the public
  # headers; src/ stays private to this tree.
  target_include_directories(ferry_${ARG_NAME} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/src>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/src>
    $<INSTALL_INTERFACE:include>)
  target_link_libraries(ferry_${ARG_NAME} PUBLIC ${ARG_DEPS})
endfunction()

# ferry_cc_test(NAME n SRCS ... [DEPS ...]) -> gtest binary registered with ctest.
function(ferry_cc_test)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${ARG_NAME} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS "unit;${ARG_LABELS}")
endfunction()
