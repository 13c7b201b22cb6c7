#!/usr/bin/env bash
# sanitizers/tsan-sancov-launcher.sh: the compiler launcher of vmap_threads
# under TSan with libFuzzer (fuzz-tsan preset; fuzz/CMakeLists.txt). It
# compiles as asked, but to LLVM IR, deletes TSan's check on
# SanitizerCoverage's own edge counters, and compiles the IR to the object.
#
# Why: clang-14 runs TSan after SanitizerCoverage and instruments the
# counter increments the coverage pass inserted (LLVM 15 leaves accesses
# marked !nosanitize alone, as these are). Every edge then costs a
# __tsan_write1, and in vmap_threads, whose fibers are TSan threads with no
# order between them, every edge two fibers share is a data race that TSan
# detects, reports and only then suppresses: together a quarter of the
# target's time, and the one suppression tsan.supp would need.
#
# What is deleted: exactly the calls `__tsan_write1(<constant address in a
# __sancov_gen_ array>)`, which only the counters have. Every access of the
# program itself keeps its check. The launcher fails if a TSan check on a
# counter is written in a form it does not recognise (another clang).
#
# Usage (CMake CXX_COMPILER_LAUNCHER): tsan-sancov-launcher.sh COMPILER ARG...
set -euo pipefail

compiler=$1
shift
out="" compile=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
    -c) compile=1 ;;
    -o) out=${args[i + 1]} ir_at=$((i + 1)) ;;
    esac
done
# Links, and anything that is not one compile to one object, run as given.
if ((!compile)) || [[ -z $out ]]; then
    exec "$compiler" "$@"
fi

ir=$out.ll
args[ir_at]=$ir
"$compiler" "${args[@]}" -S -emit-llvm
counters='call void @__tsan_write1\(i8\* getelementptr inbounds \(\[[0-9]+ x i8\], \[[0-9]+ x i8\]\* @__sancov_gen_[.0-9]*, i64 0, i64 [0-9]+\)\)'
known=$(grep -cE "$counters" "$ir" || true)
all=$(grep -c '@__tsan_write1(.*@__sancov_gen_' "$ir" || true)
if ((known != all)); then
    echo "tsan-sancov-launcher: $((all - known)) TSan check(s) on coverage counters in a form not known here ($ir, $compiler)" >&2
    exit 1
fi
sed -E -i "/$counters/d" "$ir"
# The IR is instrumented and optimized already: code generation only
# (-disable-llvm-passes), with the options that shape it.
cg=()
for a in "$@"; do
    case $a in
    -O* | -g* | -fno-omit-frame-pointer | -fomit-frame-pointer) cg+=("$a") ;;
    esac
done
"$compiler" "${cg[@]}" -Xclang -disable-llvm-passes -c "$ir" -o "$out"
rm -f "$ir"
