# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the sourcing scripts
# ci/lib.sh - helpers shared by the ci/ scripts. Source it, do not run it:
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Sets CI_ROOT (the repository root, absolute). Callers set CI_PROG (their
# name, for messages) before calling anything here.
#
#   packages   ci_ensure_packages PKG...      apt-get what is missing (as root)
#              vmap_install_deps              the fuzzing toolchain (for ci/bug-hunt)
#   parsing    ci_duration DUR                "90s" "10m" "8h" "1h30m" "45" -> seconds
#              ci_hms SECONDS                 -> "1h02m03s"
#   builds     ci_build_dir PRESET [VARIANT]  -> build/PRESET[-VARIANT]
#              ci_build PRESET VARIANT TARGET...   configure if needed, build TARGETs
#   fuzzing    ci_fuzz_target NAME            sets FT_BIN FT_PRESET FT_CORPUS FT_DESC
#              ci_sanitizer_env               sanitizers/env.sh + llvm-symbolizer on PATH
#   triage     ci_repro BIN FILE LOG          run one input, log its report
#              ci_parse_report LOG            -> key=value: type reason note frame... sig
#              ci_minimize_crash BIN IN OUT SECONDS
#              ci_trace TARGET FILE TRACE_BIN  vmap-trace --run (vmap_ops) or a hex dump

CI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CI_PROG=${CI_PROG:-ci}

# Every fuzz target ci/fuzz runs by default. model_only is not one: it is the
# benchmark floor vmap_ops' exec/s is measured against.
CI_FUZZ_TARGETS=(vmap_ops xarray_ops cpu_hash vmap_threads)
# libFuzzer limits used everywhere (fuzzing, merging, reproducing, minimizing).
CI_FUZZ_TIMEOUT=25
CI_FUZZ_RSS_MB=2560

ci_warn() { echo "$CI_PROG: $*" >&2; }
ci_die() {
    echo "$CI_PROG: $*" >&2
    exit 2
}

ci_nproc() { nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2; }

# ---------------------------------------------------------------------------
# Debian packages: installs the missing ones when run as root (apt-get update
# first), warns otherwise. No-op where dpkg-query does not exist.
# ---------------------------------------------------------------------------
ci_ensure_packages() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    local missing=() p
    for p in "$@"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) -eq 0 ]]; then
        echo "=== installing: ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    else
        echo "$CI_PROG: warning: missing packages (not root, not installing): ${missing[*]}" >&2
    fi
}

# Packages every fuzzing script needs: clang-14 with its sanitizer and libFuzzer
# runtimes, CMake + Ninja, llvm-14 (llvm-symbolizer for readable stacks).
CI_FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev llvm-14 ninja-build cmake)

# ci/bug-hunt calls this when ci/lib.sh exists: the fuzzing toolchain.
vmap_install_deps() { ci_ensure_packages "${CI_FUZZ_PACKAGES[@]}"; }

# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------
ci_duration() {
    local s=$1 total=0 n
    if [[ $s =~ ^[0-9]+$ ]]; then
        echo $((10#$s))
        return 0
    fi
    [[ $s =~ ^([0-9]+[smhd])+$ ]] || return 1
    while [[ $s =~ ^([0-9]+)([smhd])(.*)$ ]]; do
        n=$((10#${BASH_REMATCH[1]}))
        case ${BASH_REMATCH[2]} in
        m) n=$((n * 60)) ;;
        h) n=$((n * 3600)) ;;
        d) n=$((n * 86400)) ;;
        esac
        total=$((total + n))
        s=${BASH_REMATCH[3]}
    done
    echo "$total"
}

ci_hms() {
    local t=$1
    if ((t >= 3600)); then
        printf '%dh%02dm%02ds' $((t / 3600)) $((t % 3600 / 60)) $((t % 60))
    elif ((t >= 60)); then
        printf '%dm%02ds' $((t / 60)) $((t % 60))
    else
        printf '%ds' "$t"
    fi
}

# ---------------------------------------------------------------------------
# Builds. A variant build (VMAP_BUG_VARIANT=NAME) of preset P lives in
# build/P-NAME, next to build/P; both come from CMakePresets.json.
# ---------------------------------------------------------------------------
# The median of the numbers on stdin, one a line (the lower middle one of an
# even count): the benchmarks' summary of interleaved rounds.
ci_median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# One libFuzzer run for a speed measure (ci/fuzz-floor, ci/fuzz-ab): BIN
# fuzzes a fresh copy of CORPUS (with CORPUS.dict if there is one) for SECS
# seconds with SEED, under the sanitizer options of ENV (a tree's
# sanitizers/env.sh), in WORK; sets EPS and FT from its DONE line (exec/s,
# features). Not run in a subshell, so a finding or a failed run stops the
# script.
ci_fuzz_speed() { # ENV BIN CORPUS SECS SEED WORK
    local env=$1 bin=$2 in=$3 secs=$4 seed=$5 work=$6 dict=()
    local dir=$work/speed-in log=$work/speed.log
    rm -rf "$dir"
    cp -r "$in" "$dir"
    [[ -f $in.dict ]] && dict=(-dict="$in.dict")
    (
        # shellcheck source=../sanitizers/env.sh
        source "$env"
        "$bin" -seed="$seed" -max_total_time="$secs" "${dict[@]}" \
            -timeout="$CI_FUZZ_TIMEOUT" -rss_limit_mb="$CI_FUZZ_RSS_MB" "$dir"
    ) >"$log" 2>&1 || { cat "$log" >&2; ci_die "$bin (seed $seed) had a finding or failed"; }
    rm -rf "$dir"
    read -r EPS FT < <(sed -n 's/.*DONE .* ft: \([0-9]*\) .*exec\/s: \([0-9]*\).*/\2 \1/p' "$log")
    [[ -n ${EPS:-} && -n ${FT:-} ]] || ci_die "no DONE line in $bin's output"
}

ci_build_dir() {
    if [[ -n ${2:-} && ${2:-} != none ]]; then
        echo "$CI_ROOT/build/$1-$2"
    else
        echo "$CI_ROOT/build/$1"
    fi
}

ci_build() { # PRESET VARIANT TARGET...
    local preset=$1 variant=${2:-none} dir cached=""
    shift 2
    [[ -n $variant ]] || variant=none
    dir=$(ci_build_dir "$preset" "$variant")
    if [[ -f $dir/CMakeCache.txt ]]; then
        cached=$(sed -n 's/^VMAP_BUG_VARIANT:[A-Z]*=//p' "$dir/CMakeCache.txt")
    fi
    if [[ ! -f $dir/build.ninja || ${cached:-none} != "$variant" ]]; then
        echo "=== [$(basename "$dir")] configure"
        if [[ $variant == none ]]; then
            (cd "$CI_ROOT" && cmake --preset "$preset" -DVMAP_BUG_VARIANT=none) || return 1
        else
            (cd "$CI_ROOT" && cmake --preset "$preset" -B "$dir" -DVMAP_BUG_VARIANT="$variant") ||
                return 1
        fi
    fi
    echo "=== [$(basename "$dir")] build: $*"
    cmake --build "$dir" -j "$(ci_nproc)" --target "$@"
}

# ---------------------------------------------------------------------------
# Fuzz targets: NAME -> binary, preset, corpus directory name.
#   vmap_threads       runs under fuzz-tsan (the races are what it is for)
#   vmap_threads-asan  the same harness under fuzz (ASan+UBSan); shares
#                      corpus/vmap_threads
# ---------------------------------------------------------------------------
ci_fuzz_target() {
    case $1 in
    vmap_ops | xarray_ops | cpu_hash)
        FT_BIN=$1 FT_PRESET=fuzz FT_CORPUS=$1 FT_DESC="ASan+UBSan" ;;
    vmap_threads)
        FT_BIN=vmap_threads FT_PRESET=fuzz-tsan FT_CORPUS=vmap_threads FT_DESC="TSan" ;;
    vmap_threads-asan)
        FT_BIN=vmap_threads FT_PRESET=fuzz FT_CORPUS=vmap_threads FT_DESC="ASan+UBSan" ;;
    model_only)
        ci_warn "model_only is the benchmark floor for vmap_ops' exec/s, not a fuzz target"
        return 1 ;;
    *)
        ci_warn "unknown fuzz target '$1' (known: ${CI_FUZZ_TARGETS[*]} vmap_threads-asan)"
        return 1 ;;
    esac
}

# Sanitizer runtime options exactly as ctest gets them, plus llvm-14's tools
# first on PATH so reports are symbolized (file:line) whatever llvm is default.
ci_sanitizer_env() {
    # shellcheck source=../sanitizers/env.sh
    source "$CI_ROOT/sanitizers/env.sh"
    if [[ -d /usr/lib/llvm-14/bin ]]; then
        PATH=/usr/lib/llvm-14/bin:$PATH
        export PATH
    fi
}

# ---------------------------------------------------------------------------
# Triage
# ---------------------------------------------------------------------------

# Runs one input through a libFuzzer binary; the whole report goes to LOG.
# Exit status: the binary's (0 = no finding).
ci_repro() { # BIN FILE LOG
    local rc=0
    timeout -k 10 $((CI_FUZZ_TIMEOUT * 4)) "$1" -timeout="$CI_FUZZ_TIMEOUT" \
        -rss_limit_mb="$CI_FUZZ_RSS_MB" "$2" >"$3" 2>&1 || rc=$?
    return "$rc"
}

# Reads a sanitizer/libFuzzer report and prints, one per line:
#   type=<kind of finding>        heap-use-after-free, data race, deadly signal, ...
#   reason=<the line that says what went wrong>
#   note=<a second such line, if any>
#   frame=<function><TAB><file:line>   at most 3: the top frames inside the
#                                      project (lib/, fuzz/...), not counting
#                                      the harness's failure reporters
#   sig=<type>|<f1>|<f2>|<f3>          what duplicates are recognised by
# The stack is the first one after the finding's headline (ASan's access,
# TSan's first access, UBSan's site, LSan's allocation, libFuzzer's crash).
ci_parse_report() { # LOG
    awk -v root="$CI_ROOT" '
function shortname(fn,   prev) {
    gsub(/\(anonymous namespace\)/, "{anon}", fn)
    gsub(/\[abi:[a-z0-9_]*\]/, "", fn)
    gsub(/ \[clone [.a-z0-9_]*\]/, "", fn)
    prev = ""
    while (prev != fn) { prev = fn; gsub(/\([^()]*\)/, "", fn) }
    sub(/ const$/, "", fn)
    return fn
}
function reporter(fn) { return fn ~ /(^|::)(fail|fail_impl|die|fatal|deadlock|report_positions)$/ }
function internal(fn) {
    return fn ~ /^(__sanitizer|__asan|__tsan|__ubsan|__lsan|__interceptor|fuzzer::|__libc|_start|abort$|raise$|__pthread|<null>|operator new|operator delete|malloc$|free$|calloc$|realloc$)/
}
function frame(line,   fn, loc, rel) {
    sub(/^[ \t]*#[0-9]+[ \t]+/, "", line)
    sub(/ \(BuildId: [0-9a-f]+\)$/, "", line)
    sub(/^0x[0-9a-f]+ in /, "", line)
    if (line ~ /^0x[0-9a-f]+ /) return
    sub(/ \([^ ()]*\+0x[0-9a-f]+\)$/, "", line)
    loc = ""; fn = line
    if (match(line, / [^ ]+$/)) {
        loc = substr(line, RSTART + 1)
        if (loc ~ /^\/.*:[0-9]+/) fn = substr(line, 1, RSTART - 1)
        else loc = ""
    }
    fn = shortname(fn)
    if (fn == "") return
    if (loc != "" && index(loc, root "/") == 1 && index(loc, root "/build/") != 1) {
        if (reporter(fn) || nfr >= 3) return
        rel = substr(loc, length(root) + 2)
        sub(/:[0-9]+$/, "", rel)            # drop the column
        nfr++; FR[nfr] = fn; FL[nfr] = rel
    } else if (!internal(fn) && nany < 3) {
        nany++; AR[nany] = fn; AL[nany] = loc
    }
}
function primary(t, l) {
    have = 1; type = t; reason = l
    sub(/^==[0-9]+== ?/, "", reason)
    sub(/ \(pid=[0-9]+\)$/, "", reason)
}
BEGIN { have = 0; in_stack = 0; stack_done = 0; nfr = 0; nany = 0; detail = "" }
{
    sub(/\r$/, "")
    line = $0
    if (!have) {
        if (line ~ /^(vmap harness: |vmap: BUG at |vmap: WARNING at |vmap_threads: |xarray_ops: |cpu_hash: |det_scheduler: )/) {
            detail = line; next
        }
        t = line
        if (line ~ /ERROR: AddressSanitizer: /) {
            sub(/.*AddressSanitizer: /, "", t); sub(/ .*/, "", t); primary(t, line)
        } else if (line ~ /ERROR: LeakSanitizer: /) {
            primary("memory leak", line)
        } else if (line ~ /WARNING: ThreadSanitizer: /) {
            sub(/.*ThreadSanitizer: /, "", t); sub(/ \(pid=[0-9]+\)$/, "", t); primary(t, line)
        } else if (line ~ /runtime error: /) {
            sub(/.*runtime error: /, "", t); sub(/:.*/, "", t); gsub(/[0-9]+/, "N", t)
            primary("undefined behavior: " t, line)
        } else if (line ~ /ERROR: libFuzzer: /) {
            sub(/.*libFuzzer: /, "", t); sub(/ after .*/, "", t); sub(/ \(.*/, "", t)
            primary(t, line)
        }
        next
    }
    if (!stack_done) {
        if (line ~ /^[ \t]*#[0-9]+ /) { in_stack = 1; frame(line) }
        else if (in_stack) stack_done = 1
    }
}
END {
    if (!have) { type = "unreproducible"; reason = "the input ran without a finding" }
    note = ""
    if (detail != "") {
        if (type == "deadly signal" || type == "timeout" || type == "unreproducible") {
            note = reason; reason = detail
        } else note = detail
    }
    print "type=" type
    print "reason=" reason
    if (note != "") print "note=" note
    sig = type
    if (nfr > 0) {
        for (i = 1; i <= nfr; i++) { print "frame=" FR[i] "\t" FL[i]; sig = sig "|" FR[i] }
    } else {
        for (i = 1; i <= nany; i++) { print "frame=" AR[i] "\t" AL[i]; sig = sig "|" AR[i] }
    }
    print "sig=" sig
}' "$1"
}

# libFuzzer -minimize_crash=1 within a time budget; OUT always ends up holding
# the smallest crashing input found (IN itself if nothing smaller crashed).
ci_minimize_crash() { # BIN IN OUT SECONDS
    local bin=$1 in=$2 out=$3 secs=$4 tmp
    tmp=$(mktemp -d)
    cp "$in" "$tmp/input"
    cp "$in" "$out"
    # libFuzzer keeps minimizing while the crash stays the same one (it
    # compares DEDUP_TOKENs); each step runs up to -max_total_time, so the
    # whole is bounded from outside too.
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:dedup_token_length=3" \
        TSAN_OPTIONS="${TSAN_OPTIONS:-}:dedup_token_length=3" \
        timeout -k 10 $((secs + 30)) "$bin" -minimize_crash=1 -max_total_time="$secs" \
        -timeout="$CI_FUZZ_TIMEOUT" -rss_limit_mb="$CI_FUZZ_RSS_MB" \
        -exact_artifact_path="$tmp/min" "$tmp/input" >"$out.minimize.log" 2>&1 || true
    if [[ -s $tmp/min ]] && (($(wc -c <"$tmp/min") < $(wc -c <"$out"))); then
        cp "$tmp/min" "$out"
    fi
    rm -rf "$tmp"
}

# The input made readable: vmap_ops inputs through vmap-trace --run (the
# configuration, each operation as it runs, the failure and the allocator's
# state); any other target's as a hex dump.
ci_trace() { # TARGET FILE TRACE_BIN
    local target=$1 file=$2 trace_bin=$3 tmp
    tmp=$(mktemp)
    if [[ $target == vmap_ops && -x $trace_bin ]]; then
        timeout -k 5 60 "$trace_bin" --run "$file" >"$tmp" 2>&1 || true
    elif command -v xxd >/dev/null 2>&1; then
        xxd -g 1 "$file" >"$tmp" || true
    else
        od -A x -t x1z -v "$file" >"$tmp" || true
    fi
    sed -n '1,200p' "$tmp"
    if (($(wc -l <"$tmp") > 200)); then
        echo "... ($(wc -l <"$tmp") lines, first 200 shown)"
    fi
    rm -f "$tmp"
}
