#!/usr/bin/env bash
# ci/oss-fuzz/build.sh - the one fuzz build script for OSS-Fuzz and
# ClusterFuzzLite. Run `ci/oss-fuzz/build.sh --help` for usage.
#
# .clusterfuzzlite/build.sh (copied to $SRC/build.sh by the image) only finds
# the repository and runs this file; an OSS-Fuzz projects/<name>/build.sh can
# be that same two-line call.
#
# Honours the engine's variables: $CC $CXX $CFLAGS $CXXFLAGS
# $LIB_FUZZING_ENGINE $OUT, $SANITIZER and $SRC (in the image the repository
# is $SRC/vmap, the working directory). It adds no sanitizer flags of its
# own: $CFLAGS/$CXXFLAGS decide (address, undefined, coverage). Under
# undefined the engine makes every check fatal (-fno-sanitize-recover=...)
# except unsigned-integer-overflow, which it compiles in but silences at run
# time (UBSAN_OPTIONS=silence_unsigned_overflow=1); adding
# -fno-sanitize-recover=all here would turn that one into crashes.
# $WORK is not needed: each fuzzer is one compiler call, nothing intermediate.
#
# For each fuzz target it writes to $OUT:
#   <target>                    the fuzzer (engine from $LIB_FUZZING_ENGINE)
#   <target>_seed_corpus.zip    corpus/<target>/ (seeds and merged inputs)
#   <target>.dict               corpus/<target>.dict, when there is one
#   <target>.options            libFuzzer options (timeout, rss limit, dict)
# The library is header-only, so every fuzzer is one compiler call; no CMake.
# vmap_threads is built with its scheduling points (VMAP_SCHED_HOOKS=1) and
# shares corpus/vmap_threads; the engines have no TSan, so here it runs under
# ASan/UBSan only (ci/fuzz and the nightly workflow keep its TSan build).
# model_only (a benchmark floor) is not built.
#
# Locally (what the engine does for libfuzzer + address; `undefined`: see
# ci/README.md):
#   export SANITIZER=address CC=clang-14 CXX=clang++-14 OUT=/tmp/out LIB_FUZZING_ENGINE=-fsanitize=fuzzer
#   export CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address -fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link"
#   export CXXFLAGS="$CFLAGS"; ci/oss-fuzz/build.sh
# With Debian's afl++ instead: CC=afl-clang-fast CXX=afl-clang-fast++ CFLAGS= CXXFLAGS=
# LIB_FUZZING_ENGINE=-fsanitize=fuzzer (see ci/README.md).
set -euo pipefail

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
fi

: "${CXX:?set CXX (OSS-Fuzz sets it)}"
: "${OUT:?set OUT (OSS-Fuzz sets it)}"
: "${LIB_FUZZING_ENGINE:?set LIB_FUZZING_ENGINE (OSS-Fuzz sets it)}"
CXXFLAGS=${CXXFLAGS:-}
SANITIZER=${SANITIZER:-}
case $SANITIZER in
"" | address | undefined | coverage) ;;
*) echo "build.sh: warning: SANITIZER=$SANITIZER is not one this project is set up for (address, undefined; coverage for reports); building with the given flags" >&2 ;;
esac

# The repository: around this script when it runs from ci/oss-fuzz/ (as
# .clusterfuzzlite/build.sh runs it); if this file itself was copied to $SRC/,
# the working directory ($SRC/vmap, see the Dockerfiles) or $SRC/vmap.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ ! -f $ROOT/lib/vmap/allocator.hpp ]]; then
    if [[ -f $PWD/lib/vmap/allocator.hpp ]]; then ROOT=$PWD; else ROOT=${SRC:-/src}/vmap; fi
fi
[[ -f $ROOT/lib/vmap/allocator.hpp ]] || { echo "build.sh: cannot find the repository (tried $ROOT)" >&2; exit 1; }
mkdir -p "$OUT"

TARGETS="vmap_ops xarray_ops cpu_hash vmap_threads"
for target in $TARGETS; do
    extra=""
    if [[ $target == vmap_threads ]]; then extra="-DVMAP_SCHED_HOOKS=1"; fi
    # SanitizerCoverage builds (libFuzzer, sancov): the audits uninstrumented,
    # as in the CMake fuzz presets (sanitizers/coverage-ignorelist.txt says why).
    if [[ $CXXFLAGS == *-fsanitize=fuzzer* || $CXXFLAGS == *-fsanitize-coverage=* ]]; then
        extra="$extra -fsanitize-coverage-ignorelist=$ROOT/sanitizers/coverage-ignorelist.txt"
        # vmap_threads runs fibers: no stack-depth probe (fuzz/CMakeLists.txt says why).
        if [[ $target == vmap_threads ]]; then extra="$extra -fno-sanitize-coverage=stack-depth"; fi
    fi
    echo "build.sh: $target${SANITIZER:+ ($SANITIZER)}"
    # shellcheck disable=SC2086 # CXXFLAGS, LIB_FUZZING_ENGINE: word lists by convention
    $CXX $CXXFLAGS -std=c++20 -pthread -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION $extra \
        -I"$ROOT/lib" -I"$ROOT/fuzz" "$ROOT/fuzz/$target.cpp" \
        -o "$OUT/$target" $LIB_FUZZING_ENGINE

    rm -f "$OUT/${target}_seed_corpus.zip"
    if [[ -d $ROOT/corpus/$target && -n $(find "$ROOT/corpus/$target" -maxdepth 1 -type f) ]]; then
        (cd "$ROOT/corpus/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
    fi

    {
        echo "[libfuzzer]"
        echo "timeout = 25"
        echo "rss_limit_mb = 2560"
    } >"$OUT/$target.options"
    if [[ -f $ROOT/corpus/$target.dict ]]; then
        cp "$ROOT/corpus/$target.dict" "$OUT/$target.dict"
        echo "dict = $target.dict" >>"$OUT/$target.options"
    fi
done
echo "build.sh: done:" "$OUT"/*
