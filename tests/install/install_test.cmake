# cmake -P driver of the install_find_package test: installs the ferry build
# FERRY_BUILD_DIR into a fresh prefix under WORK_DIR, configures and builds
# outside_project/ against that prefix (find_package(ferry)), then runs the
# program. Fails on the first step that fails, with that step's output.
#
# Inputs (-D): FERRY_SOURCE_DIR, FERRY_BUILD_DIR, WORK_DIR, BUILD_TYPE,
# GENERATOR, CXX_COMPILER, and optionally COMPILER_LAUNCHER (ccache).
cmake_minimum_required(VERSION 3.22)

foreach(var FERRY_SOURCE_DIR FERRY_BUILD_DIR WORK_DIR BUILD_TYPE GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_test.cmake: -D${var}=... is required")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(outside_build ${WORK_DIR}/outside_build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run_step name)
  execute_process(COMMAND ${ARGN}
    WORKING_DIRECTORY ${WORK_DIR}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
    TIMEOUT 240)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test: ${name} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "install test: ${name}: ok")
  set(step_output "${out}${err}" PARENT_SCOPE)
endfunction()

run_step("cmake --install" ${CMAKE_COMMAND} --install ${FERRY_BUILD_DIR} --prefix ${prefix} --config ${BUILD_TYPE})

set(launcher)
if(COMPILER_LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${COMPILER_LAUNCHER})
endif()
# Only the prefix may provide ferry: no package registry, no environment.
run_step("configure the outside project"
  ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/outside_project -B ${outside_build}
    -G ${GENERATOR} -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} ${launcher}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
if(NOT step_output MATCHES "ferry [0-9.]+ from ${prefix}/")
  message(FATAL_ERROR "install test: ferry was not found in ${prefix}:\n${step_output}")
endif()

run_step("build the outside project" ${CMAKE_COMMAND} --build ${outside_build})

# What it compiled and linked must come from the prefix, not from ferry's
# source or build tree.
file(READ ${outside_build}/compile_commands.json commands)
file(GLOB_RECURSE ninja_files ${outside_build}/*.ninja ${outside_build}/*.make ${outside_build}/*.txt)
set(used "${commands}")
foreach(f IN LISTS ninja_files)
  file(READ ${f} text)
  string(APPEND used "${text}")
endforeach()
foreach(tree ${FERRY_SOURCE_DIR}/include ${FERRY_SOURCE_DIR}/src ${FERRY_BUILD_DIR}/src)
  string(FIND "${used}" "${tree}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "install test: the outside project uses ${tree}, which is not installed")
  endif()
endforeach()

run_step("run the outside program" ${outside_build}/ferry_outside)
if(NOT step_output MATCHES "ferry_outside: installed 42")
  message(FATAL_ERROR "install test: unexpected output of ferry_outside:\n${step_output}")
endif()
message(STATUS "install test: passed")
