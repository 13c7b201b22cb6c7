# An expected failure with its reason checked: runs CMD (a ;-list) and
# succeeds only if it fails with output that matches REPORT (an extended
# regex). A pass, or a failure with another report, fails the test, so a
# kernel-faithful finding can neither vanish nor turn into something else
# unnoticed (fuzz/CMakeLists.txt, corpus/kernel-faithful/README.md).
#   cmake -DCMD=<cmd;args> -DREPORT=<regex> -P expect_finding.cmake
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
    message(FATAL_ERROR "expected failure did not fail: ${CMD}\n${out}")
endif()
if(NOT out MATCHES "${REPORT}")
    message(FATAL_ERROR "failed (${rc}) without the expected report /${REPORT}/:\n${out}")
endif()
message(STATUS "fails as expected (${rc}): ${CMAKE_MATCH_0}")
