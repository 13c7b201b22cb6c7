# Sanitizer and fuzzing configuration for the whole build tree.
#
# Cache variables
#   VMAP_SANITIZE  ""        no sanitizer
#                  "address" AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer)
#                  "thread"  ThreadSanitizer
#   VMAP_FUZZ      ON: targets made by vmap_add_fuzzer() are libFuzzer binaries
#                  (-fsanitize=fuzzer, clang only); OFF: they are linked with a replay
#                  main (cmake/fuzz_replay_main.cpp) that runs the given inputs once.
#
# Functions
#   vmap_sanitizer_flags()
#       Adds the VMAP_SANITIZE flags as global compile AND link options of the calling
#       directory (call it from the root CMakeLists.txt before any target/subdirectory).
#   vmap_sanitizer_env(<out_var>)
#       Sets <out_var> to the list "ASAN_OPTIONS=...;UBSAN_OPTIONS=...;LSAN_OPTIONS=...;
#       TSAN_OPTIONS=..." read from sanitizers/*.options (same strings as env.sh), ready
#       for the ENVIRONMENT test property.
#   vmap_add_fuzzer(<name> <source>... [CORPUS <dir>] [DICT <file>] [RUNS <n>]
#                   [LABELS <label>...])
#       Executable <name> (in <build>/fuzzers/) from sources defining
#       LLVMFuzzerTestOneInput (and optionally LLVMFuzzerInitialize), linked to vmap::vmap,
#       plus one ctest test labelled "fuzz" (and LABELS):
#         VMAP_FUZZ=OFF  "<name>.replay": replays every file under CORPUS once (or one
#                        empty input when no CORPUS) - runs under the asan/tsan presets.
#         VMAP_FUZZ=ON   "<name>.smoke": libFuzzer, -runs=<n> (default 10000) -seed=1,
#                        seeds from CORPUS (read-only), new inputs go to the build tree.
#       ON_DEMAND: a libFuzzer binary only (VMAP_FUZZ=ON; nothing otherwise), outside
#                  `all` and without a test: built when a script asks for it.
include_guard(GLOBAL)

include(CheckCXXCompilerFlag)
include(CheckCXXSourceCompiles)

set(VMAP_SANITIZE "" CACHE STRING "Sanitizer flavour: \"\" (none), address (ASan+UBSan), thread (TSan)")
set_property(CACHE VMAP_SANITIZE PROPERTY STRINGS ";address;thread")
option(VMAP_FUZZ "Build vmap_add_fuzzer() targets as libFuzzer binaries (clang only)" OFF)

set(VMAP_SANITIZERS_DIR "${CMAKE_CURRENT_LIST_DIR}" CACHE INTERNAL "Directory of sanitizers.cmake")
set(VMAP_FUZZ_REPLAY_MAIN "${CMAKE_CURRENT_LIST_DIR}/../cmake/fuzz_replay_main.cpp" CACHE INTERNAL
    "Replay main linked into fuzz targets when VMAP_FUZZ is OFF")

# Reconfigure when the runtime options change (they are baked into the ctest files).
set_property(DIRECTORY "${CMAKE_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
    "${VMAP_SANITIZERS_DIR}/asan.options" "${VMAP_SANITIZERS_DIR}/ubsan.options"
    "${VMAP_SANITIZERS_DIR}/lsan.options" "${VMAP_SANITIZERS_DIR}/tsan.options")

# Does the compiler compile AND link a trivial program with these flags?
function(_vmap_check_flags result_var)
    set(CMAKE_REQUIRED_FLAGS "${ARGN}")
    list(JOIN CMAKE_REQUIRED_FLAGS " " CMAKE_REQUIRED_FLAGS)
    set(CMAKE_REQUIRED_LINK_OPTIONS ${ARGN})
    set(CMAKE_REQUIRED_QUIET ON)
    check_cxx_source_compiles("int main() { return 0; }" ${result_var})
    set(${result_var} "${${result_var}}" PARENT_SCOPE)
endfunction()

function(vmap_sanitizer_flags)
    get_property(done GLOBAL PROPERTY _VMAP_SANITIZER_FLAGS_DONE)
    if(done)
        return()
    endif()
    set_property(GLOBAL PROPERTY _VMAP_SANITIZER_FLAGS_DONE ON)

    if(VMAP_SANITIZE STREQUAL "")
        message(STATUS "vmap: no sanitizer")
        return()
    elseif(VMAP_SANITIZE STREQUAL "address")
        set(flags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g)
        set(extras float-divide-by-zero integer-divide-by-zero)
    elseif(VMAP_SANITIZE STREQUAL "thread")
        set(flags -fsanitize=thread -g -fno-omit-frame-pointer)
        set(extras)
    else()
        message(FATAL_ERROR "VMAP_SANITIZE='${VMAP_SANITIZE}': expected \"\", \"address\" or \"thread\"")
    endif()

    _vmap_check_flags(VMAP_SANITIZER_FLAGS_WORK_${VMAP_SANITIZE} ${flags})
    if(NOT VMAP_SANITIZER_FLAGS_WORK_${VMAP_SANITIZE})
        message(FATAL_ERROR "vmap: ${CMAKE_CXX_COMPILER} cannot compile+link with '${flags}' "
                            "(for clang-14 install libclang-rt-14-dev)")
    endif()
    foreach(extra IN LISTS extras)
        string(MAKE_C_IDENTIFIER "VMAP_HAS_FSANITIZE_${extra}" var)
        # Compile AND link with the base flags, so the answer is about this exact setup.
        list(JOIN flags " " CMAKE_REQUIRED_FLAGS)
        set(CMAKE_REQUIRED_LINK_OPTIONS ${flags} -fsanitize=${extra})
        check_cxx_compiler_flag("-fsanitize=${extra}" ${var})
        if(${var})
            list(APPEND flags "-fsanitize=${extra}")
        endif()
    endforeach()

    message(STATUS "vmap: sanitizer flags: ${flags}")
    add_compile_options(${flags})
    add_link_options(${flags})
endfunction()

# Reads one *.options file: drops comments/blank lines/whitespace, joins with ':'.
function(_vmap_read_options file out_var)
    file(STRINGS "${file}" lines)
    set(opts)
    foreach(line IN LISTS lines)
        string(REGEX REPLACE "#.*$" "" line "${line}")
        string(REGEX REPLACE "[ \t\r]" "" line "${line}")
        if(NOT line STREQUAL "")
            list(APPEND opts "${line}")
        endif()
    endforeach()
    list(JOIN opts ":" joined)
    set(${out_var} "${joined}" PARENT_SCOPE)
endfunction()

function(vmap_sanitizer_env out_var)
    set(env)
    foreach(kind IN ITEMS asan ubsan lsan tsan)
        _vmap_read_options("${VMAP_SANITIZERS_DIR}/${kind}.options" opts)
        string(TOUPPER "${kind}" upper)
        if(kind STREQUAL "tsan")
            # Third-party false positives only; see the file.
            string(APPEND opts ":suppressions=${VMAP_SANITIZERS_DIR}/tsan.supp")
        endif()
        list(APPEND env "${upper}_OPTIONS=${opts}")
    endforeach()
    set(${out_var} "${env}" PARENT_SCOPE)
endfunction()

function(vmap_add_fuzzer name)
    cmake_parse_arguments(PARSE_ARGV 1 ARG "ON_DEMAND" "CORPUS;DICT;RUNS" "LABELS")
    set(sources ${ARG_UNPARSED_ARGUMENTS})
    if(NOT sources)
        message(FATAL_ERROR "vmap_add_fuzzer(${name}): no source files given")
    endif()
    if(ARG_ON_DEMAND AND NOT VMAP_FUZZ)
        return()
    endif()
    if(NOT ARG_RUNS)
        set(ARG_RUNS 10000)
    endif()
    foreach(kw IN ITEMS CORPUS DICT)
        if(ARG_${kw})
            cmake_path(ABSOLUTE_PATH ARG_${kw} BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}")
        endif()
    endforeach()

    if(ARG_ON_DEMAND)
        add_executable(${name} EXCLUDE_FROM_ALL ${sources})
    else()
        add_executable(${name} ${sources})
    endif()
    target_link_libraries(${name} PRIVATE vmap::vmap)
    set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/fuzzers")

    if(NOT COMMAND vmap_add_test)
        message(FATAL_ERROR "vmap_add_fuzzer: include cmake/VmapTesting.cmake first")
    endif()

    if(VMAP_FUZZ)
        if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
            message(FATAL_ERROR "VMAP_FUZZ=ON needs clang (libFuzzer); compiler is ${CMAKE_CXX_COMPILER_ID}")
        endif()
        # The audits run uninstrumented for coverage (why: the list's header).
        set(ignorelist "${VMAP_SANITIZERS_DIR}/coverage-ignorelist.txt")
        target_compile_options(${name} PRIVATE -fsanitize=fuzzer
                               "-fsanitize-coverage-ignorelist=${ignorelist}")
        set_property(SOURCE ${sources} APPEND PROPERTY OBJECT_DEPENDS "${ignorelist}")
        target_link_options(${name} PRIVATE -fsanitize=fuzzer)
        target_compile_definitions(${name} PRIVATE FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION=1)

        if(ARG_ON_DEMAND)
            return()
        endif()
        set(workdir "${CMAKE_CURRENT_BINARY_DIR}/${name}.corpus")
        file(MAKE_DIRECTORY "${workdir}")
        set(args -runs=${ARG_RUNS} -seed=1 -print_final_stats=1)
        if(ARG_DICT)
            list(APPEND args "-dict=${ARG_DICT}")
        endif()
        list(APPEND args "${workdir}")   # first dir: new inputs are written here
        if(ARG_CORPUS)
            list(APPEND args "${ARG_CORPUS}")   # seeds, read only
        endif()
        vmap_add_test(${name}.smoke COMMAND $<TARGET_FILE:${name}> ${args}
                      LABELS fuzz ${ARG_LABELS})
    else()
        target_sources(${name} PRIVATE "${VMAP_FUZZ_REPLAY_MAIN}")
        vmap_add_test(${name}.replay COMMAND $<TARGET_FILE:${name}> ${ARG_CORPUS}
                      LABELS fuzz ${ARG_LABELS})
    endif()
endfunction()
