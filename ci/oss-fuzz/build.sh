#!/usr/bin/env bash
# ci/oss-fuzz/build.sh - OSS-Fuzz / ClusterFuzzLite build entry.
# Run `ci/oss-fuzz/build.sh --help` for usage.
#
# Honours the variables OSS-Fuzz sets: $CC $CXX $CFLAGS $CXXFLAGS
# $LIB_FUZZING_ENGINE $OUT (and $SRC: in an OSS-Fuzz image the repository is
# $SRC/vmap). For each fuzz target it writes to $OUT:
#   <target>                    the fuzzer (engine from $LIB_FUZZING_ENGINE)
#   <target>_seed_corpus.zip    corpus/<target>/ (seeds and merged inputs)
#   <target>.dict               corpus/<target>.dict, when there is one
#   <target>.options            libFuzzer options (timeout, dict)
# The library is header-only, so every fuzzer is one compiler call; no CMake.
# vmap_threads is built with its scheduling points (VMAP_SCHED_HOOKS=1) and
# shares corpus/vmap_threads. model_only (a benchmark floor) is not built.
#
# Locally (what OSS-Fuzz does for libfuzzer + address):
#   CC=clang-14 CXX=clang++-14 \
#   CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only -fsanitize=address -fsanitize-address-use-after-scope -fsanitize=fuzzer-no-link" \
#   CXXFLAGS="$CFLAGS" LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/out ci/oss-fuzz/build.sh
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

# The repository: around this script when it runs from ci/oss-fuzz/; in an
# OSS-Fuzz image build.sh is copied to $SRC/ and the repository is the
# working directory ($SRC/vmap, see the Dockerfile).
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
    fi
    echo "build.sh: $target"
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
