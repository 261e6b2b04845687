# INTERFACE targets carrying the project's language level, warnings and sanitizers.
add_library(flotilla_options INTERFACE)
target_compile_features(flotilla_options INTERFACE cxx_std_20)
target_include_directories(flotilla_options INTERFACE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
# The same scenario and seed give the same trace whatever the target CPU:
# without this, GCC fuses a*b+c into one FMA instruction (one rounding
# instead of two) where the target has it (-march=native on x86-64, any
# aarch64), and the simulator's samples, then its trace, change.
target_compile_options(flotilla_options INTERFACE -ffp-contract=off)

add_library(flotilla_warnings INTERFACE)
target_compile_options(flotilla_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor -Wcast-align
  -Woverloaded-virtual -Wimplicit-fallthrough -Wno-missing-field-initializers
  $<$<BOOL:${FLOTILLA_WERROR}>:-Werror>)

if(FLOTILLA_SANITIZE)
  target_compile_options(flotilla_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(flotilla_options INTERFACE -fsanitize=address,undefined)
endif()

# flotilla_library(NAME SOURCES... [DEPS...]) : a static library of the project.
function(flotilla_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_link_libraries(${name} PUBLIC flotilla_options ${ARG_DEPS} PRIVATE flotilla_warnings)
endfunction()

# flotilla_test(NAME SOURCES... DEPS... [LABELS...]) : a GoogleTest executable
# registered with CTest test by test. Label slow and live tests ("slow", "live").
function(flotilla_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE flotilla_options flotilla_warnings ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set(labels unit ${ARG_LABELS})
  if(ARG_LABELS)
    set(labels ${ARG_LABELS})
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    PROPERTIES LABELS "${labels}" TIMEOUT ${ARG_TIMEOUT}
               ENVIRONMENT "FLOTILLA_SOURCE_DIR=${PROJECT_SOURCE_DIR};FLOTILLA_BINARY_DIR=${PROJECT_BINARY_DIR}")
endfunction()

# flotilla_bench(NAME SOURCES... DEPS...) : a Google Benchmark executable.
function(flotilla_bench name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  if(NOT FLOTILLA_BUILD_BENCH)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE flotilla_options flotilla_warnings ${ARG_DEPS} benchmark::benchmark)
endfunction()

# Adds every immediate subdirectory of the current one that has a CMakeLists.txt,
# so modules can be added without editing their parent.
function(flotilla_add_subdirectories)
  file(GLOB children RELATIVE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/*/CMakeLists.txt)
  list(SORT children)
  foreach(child ${children})
    get_filename_component(dir ${child} DIRECTORY)
    add_subdirectory(${dir})
  endforeach()
endfunction()
