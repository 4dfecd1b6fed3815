# mailtrail_add_gtest(<target> LABEL unit|pg|e2e|sim|bench SOURCES ... LIBS ...)
#
# One GoogleTest executable, its cases discovered into CTest with the given label.
# pg and e2e tests read MAILTRAIL_TEST_DSN (exported by scripts/pg_tmp.sh); they fail, not skip,
# when it is missing, so a run that forgot the database cannot pass quietly.
# Labels missing from MAILTRAIL_TEST_LABELS create no target at all.
find_package(GTest REQUIRED)
include(GoogleTest)

function(mailtrail_add_gtest target)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_LABEL)
    message(FATAL_ERROR "mailtrail_add_gtest(${target}): LABEL is required")
  endif()
  if(NOT ARG_LABEL IN_LIST MAILTRAIL_TEST_LABELS)
    return()  # not built in this tree (MAILTRAIL_TEST_LABELS); callers check if(TARGET ...)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${target} ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${target} PRIVATE
    MAILTRAIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    MAILTRAIL_BINARY_DIR="${PROJECT_BINARY_DIR}")
  gtest_discover_tests(${target}
    DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT})
endfunction()
