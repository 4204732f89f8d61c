# SPDX-License-Identifier: Apache-2.0
# libFuzzer targets (docs/fuzzing.md), built when CC_FUZZ is ON with clang:
#   cmake -S . -B build-fuzz -DCC_FUZZ=ON -DCMAKE_C_COMPILER=clang
#   cmake --build build-fuzz --target fuzz -j2
# Every src/<sub>/fuzz/<name>.c is one target, fuzz_<sub>_<name>, with its
# seed corpus in src/<sub>/fuzz/corpus/<name>/ (bench/fuzz runs them all).
# The libraries the targets exercise are compiled with coverage
# instrumentation and the sanitizers, so a bug inside the parser is found,
# not only one in the harness.
option(CC_FUZZ "Build the libFuzzer targets (clang only)" OFF)
if(NOT CC_FUZZ)
    return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CC_FUZZ needs clang (libFuzzer): configure with -DCMAKE_C_COMPILER=clang")
endif()

set(CC_FUZZ_SANITIZERS address,undefined)
foreach(lib core wire filter auth push)
    target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link,${CC_FUZZ_SANITIZERS}
                           -fno-sanitize-recover=all -fno-omit-frame-pointer)
    # Anything else linking these libraries (the daemon, unit tests,
    # benchmarks in this build tree) needs the sanitizer runtimes too.
    target_link_options(${lib} INTERFACE -fsanitize=${CC_FUZZ_SANITIZERS})
endforeach()

add_custom_target(fuzz)
file(GLOB cc_fuzz_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*/fuzz/*.c)
foreach(source ${cc_fuzz_sources})
    get_filename_component(name ${source} NAME_WE)
    get_filename_component(fuzz_dir ${source} DIRECTORY)
    get_filename_component(sub_dir ${fuzz_dir} DIRECTORY)
    get_filename_component(sub ${sub_dir} NAME)
    set(target fuzz_${sub}_${name})
    add_executable(${target} ${source})
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer,${CC_FUZZ_SANITIZERS}
                           -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=fuzzer,${CC_FUZZ_SANITIZERS})
    target_link_libraries(${target} PRIVATE push auth wire filter core cc_internals)
    set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzz)
    add_dependencies(fuzz ${target})
endforeach()
