# shellcheck shell=bash
# Source this file (do not execute it):   source sanitizers/env.sh
# Exports ASAN_OPTIONS, UBSAN_OPTIONS, LSAN_OPTIONS and TSAN_OPTIONS built from
# sanitizers/*.options (comments and blank lines skipped, options joined by ':').
# CMake computes the same strings (vmap_sanitizer_env in sanitizers.cmake) and
# attaches them to every ctest test, so manual runs and ctest runs match.

__vmap_read_options() {
    local file=$1 line out=""
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%%#*}                       # strip comments
        line=${line//[[:space:]]/}             # strip whitespace
        [[ -z $line ]] && continue
        out+=${out:+:}$line
    done <"$file"
    printf '%s' "$out"
}

__vmap_sanitizer_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ASAN_OPTIONS=$(__vmap_read_options "$__vmap_sanitizer_dir/asan.options")
UBSAN_OPTIONS=$(__vmap_read_options "$__vmap_sanitizer_dir/ubsan.options")
LSAN_OPTIONS=$(__vmap_read_options "$__vmap_sanitizer_dir/lsan.options")
TSAN_OPTIONS=$(__vmap_read_options "$__vmap_sanitizer_dir/tsan.options")
# Third-party false positives only; see the file.
TSAN_OPTIONS+=":suppressions=$__vmap_sanitizer_dir/tsan.supp"
export ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TSAN_OPTIONS
unset -f __vmap_read_options
unset __vmap_sanitizer_dir
