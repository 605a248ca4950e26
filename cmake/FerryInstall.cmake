# `cmake --install <build> --prefix P` for C++ users: the public headers
# (include/ferry/), the static libraries behind ferry::ferry (and ferry::torch
# where libtorch was found), and lib/cmake/ferry/ with ferryConfig.cmake, its
# version file and the exported targets, so an outside project writes
#
#   find_package(ferry REQUIRED)
#   target_link_libraries(my_app PRIVATE ferry::ferry)
#
# The installed program needs nothing else from this tree at run time: its
# actor workers are the program itself, re-executed (ferry::Init).
#
# Included at the end of the top-level CMakeLists.txt, once every target exists.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FERRY_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/ferry)

# The libraries to install: the public targets and every target of this
# project they link, transitively (the layers are static libraries, so a
# consumer links all of them). Imported targets (protobuf, gloo, UCX) are
# found again by ferryConfig.cmake.
function(_ferry_collect_install_targets out)
  set(pending ${ARGN})
  set(seen)
  while(pending)
    list(POP_FRONT pending target)
    if(NOT TARGET ${target} OR target IN_LIST seen)
      continue()
    endif()
    get_target_property(imported ${target} IMPORTED)
    get_target_property(aliased ${target} ALIASED_TARGET)
    if(imported OR aliased)
      continue()
    endif()
    list(APPEND seen ${target})
    get_target_property(type ${target} TYPE)
    set(links)
    if(NOT type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(links ${target} LINK_LIBRARIES)
    endif()
    get_target_property(interface_links ${target} INTERFACE_LINK_LIBRARIES)
    foreach(dep IN LISTS links interface_links)
      if(dep AND NOT dep MATCHES "-NOTFOUND$" AND TARGET ${dep})
        list(APPEND pending ${dep})
      endif()
    endforeach()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

set(_ferry_public_targets ferry_api)
if(TARGET ferry_torch)
  list(APPEND _ferry_public_targets ferry_torch)
endif()
_ferry_collect_install_targets(_ferry_install_targets ${_ferry_public_targets})

set_target_properties(ferry_api PROPERTIES EXPORT_NAME ferry)
# The public headers are C++20.
target_compile_features(ferry_api INTERFACE cxx_std_20)
if(TARGET ferry_torch)
  set_target_properties(ferry_torch PROPERTIES EXPORT_NAME torch)
endif()

# A sanitized build installs sanitized libraries: whatever links them must be
# compiled and linked with the same runtime, so the installed targets carry
# the flags (in this build tree add_compile_options already applies them).
if(FERRY_SANITIZE STREQUAL "address")
  set(_ferry_sanitize_flags -fsanitize=address -fsanitize=undefined)
elseif(FERRY_SANITIZE STREQUAL "thread")
  set(_ferry_sanitize_flags -fsanitize=thread)
endif()
foreach(flag IN LISTS _ferry_sanitize_flags)
  target_compile_options(ferry_api INTERFACE $<INSTALL_INTERFACE:${flag}>)
  target_link_options(ferry_api INTERFACE $<INSTALL_INTERFACE:${flag}>)
endforeach()

install(TARGETS ${_ferry_install_targets}
  EXPORT ferryTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT ferryTargets NAMESPACE ferry:: DESTINATION ${FERRY_INSTALL_CMAKEDIR})

# The public headers include only each other, the standard library, cereal
# and dlpack; a header generated into the build tree (ferry/config.h) goes
# beside them.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ferry DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(EXISTS ${PROJECT_BINARY_DIR}/include/ferry)
  install(DIRECTORY ${PROJECT_BINARY_DIR}/include/ferry DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()

# What ferryConfig.cmake must find again before it loads the targets.
set(FERRY_CONFIG_HAVE_GLOO OFF)
set(FERRY_CONFIG_HAVE_UCX_PKGCONFIG OFF)
if("ferry_transport_gloo" IN_LIST _ferry_install_targets)
  set(FERRY_CONFIG_HAVE_GLOO ON)
endif()
if(TARGET PkgConfig::FERRY_UCX AND "ferry_transport_ucx" IN_LIST _ferry_install_targets)
  set(FERRY_CONFIG_HAVE_UCX_PKGCONFIG ON)
endif()
set(FERRY_CONFIG_HAVE_TORCH OFF)
if(TARGET ferry_torch)
  set(FERRY_CONFIG_HAVE_TORCH ON)
endif()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ferryConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/ferryConfig.cmake
  INSTALL_DESTINATION ${FERRY_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/ferryConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/ferryConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/ferryConfigVersion.cmake
  DESTINATION ${FERRY_INSTALL_CMAKEDIR})
