# Test registration helper: every ctest test gets the same sanitizer runtime options.
#
#   vmap_add_test(<name> COMMAND <cmd> [<arg>...]
#                 [LABELS <label>...]
#                 [ENVIRONMENT <VAR=value>...]
#                 [WORKING_DIRECTORY <dir>] [TIMEOUT <seconds>])
#
# Calls add_test(NAME <name> COMMAND ...) and sets
#   ENVIRONMENT  ASAN_OPTIONS/UBSAN_OPTIONS/LSAN_OPTIONS/TSAN_OPTIONS from
#                sanitizers/*.options (see vmap_sanitizer_env), then the extra ENVIRONMENT
#   LABELS       as given. Conventional labels: "asan-only" (skipped by tsan/release
#                presets), "tsan-only" (skipped by asan/gcc/release presets), "fuzz",
#                "slow".
# <cmd> may be a target name (add_test resolves it to the executable).
include_guard(GLOBAL)

if(NOT COMMAND vmap_sanitizer_env)
    include("${CMAKE_CURRENT_LIST_DIR}/../sanitizers/sanitizers.cmake")
endif()

function(vmap_add_test name)
    cmake_parse_arguments(PARSE_ARGV 1 ARG "" "WORKING_DIRECTORY;TIMEOUT" "COMMAND;LABELS;ENVIRONMENT")
    if(ARG_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "vmap_add_test(${name}): unexpected arguments: ${ARG_UNPARSED_ARGUMENTS}")
    endif()
    if(NOT ARG_COMMAND)
        message(FATAL_ERROR "vmap_add_test(${name}): COMMAND is required")
    endif()

    set(wd)
    if(ARG_WORKING_DIRECTORY)
        set(wd WORKING_DIRECTORY "${ARG_WORKING_DIRECTORY}")
    endif()
    add_test(NAME ${name} COMMAND ${ARG_COMMAND} ${wd})

    vmap_sanitizer_env(env)
    list(APPEND env ${ARG_ENVIRONMENT})
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${env}")
    if(ARG_LABELS)
        set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
    endif()
    if(ARG_TIMEOUT)
        set_tests_properties(${name} PROPERTIES TIMEOUT "${ARG_TIMEOUT}")
    endif()
endfunction()
