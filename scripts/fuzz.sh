#!/usr/bin/env bash
# Builds and runs Flotilla's libFuzzer targets (tests/fuzz/, docs/fuzzing.md).
#
#   scripts/fuzz.sh build                    configure + build build/fuzz (clang-14, ASan, UBSan)
#   scripts/fuzz.sh smoke [TARGET...]        30 s per target from the seed corpus
#   scripts/fuzz.sh long [SECONDS] [TARGET...]  600 s (or SECONDS) per target
#   scripts/fuzz.sh run SECONDS TARGET...    the same with an explicit time
#   scripts/fuzz.sh list                     the target names
# After the command, --no-build (or FUZZ_NO_BUILD=1) runs the binaries already
# in build/fuzz (CTest's smoke tests do: its fuzz_build test built them).
#
# Targets: codec selector quantity scenario distribution trace http (default: all,
# one after the other). Each run fails (exit 1) on any crash, leak, timeout,
# out-of-memory or sanitizer report; the input is kept under
# build/fuzz/artifacts/<target>/ and the log under build/fuzz/logs/.
# New interesting inputs accumulate in build/fuzz/corpus/<target>/ (not checked
# in); the checked-in seeds in tests/fuzz/corpus/<target>/ are only read.
# Environment: FUZZ_BUILD_DIR (build/fuzz), CLANG_CC/CLANG_CXX (clang-14,
# clang++-14), FUZZ_JOBS (build parallelism, 2), FUZZ_RSS_MB (2048).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
CC_BIN="${CLANG_CC:-clang-14}"
CXX_BIN="${CLANG_CXX:-clang++-14}"
JOBS="${FUZZ_JOBS:-2}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
ALL_TARGETS=(codec selector quantity scenario distribution trace http)

die() { echo "fuzz.sh: $*" >&2; exit 1; }

check_toolchain() {
  local missing=0
  command -v "$CXX_BIN" >/dev/null 2>&1 || missing=1
  command -v "$CC_BIN" >/dev/null 2>&1 || missing=1
  if [ $missing -eq 0 ]; then
    local rt
    rt="$("$CXX_BIN" -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-x86_64.a"
    [ -f "$rt" ] || missing=1
  fi
  if [ $missing -ne 0 ]; then
    echo "fuzz.sh: $CXX_BIN or libFuzzer missing; installing (scripts/install-deps.sh)" >&2
    bash "$ROOT/scripts/install-deps.sh" clang-14 libclang-rt-14-dev ||
      die "cannot install clang-14 and libclang-rt-14-dev: the fuzz targets cannot be built"
    command -v "$CXX_BIN" >/dev/null 2>&1 || die "$CXX_BIN not found after installing clang-14"
  fi
}

build() {
  check_toolchain
  mkdir -p "$BUILD"
  # One builder at a time (several smoke runs may start together).
  exec 9>"$BUILD/.build.lock"
  flock 9
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    local san="-fsanitize=address,undefined -fsanitize=fuzzer-no-link -fno-omit-frame-pointer -fno-sanitize-recover=all -Wno-unknown-warning-option"
    CC="$CC_BIN" CXX="$CXX_BIN" cmake -S "$ROOT" -B "$BUILD" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
      -DCMAKE_CXX_FLAGS="$san" \
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
      -DFLOTILLA_FUZZ_BUILD=ON -DFLOTILLA_BUILD_BENCH=OFF -DFLOTILLA_WERROR=OFF \
      >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log" >&2; die "configure failed"; }
  fi
  local targets=()
  for t in "${ALL_TARGETS[@]}"; do targets+=("fuzz_$t"); done
  echo "fuzz.sh: building ${targets[*]} in $BUILD (log $BUILD/build.log)"
  if ! cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >"$BUILD/build.log" 2>&1; then
    grep -E 'error|Error|FAILED' "$BUILD/build.log" | head -30 >&2
    die "building the fuzz targets failed (log $BUILD/build.log)"
  fi
  flock -u 9
}

# Prints "execs/s cov corpus" figures from a libFuzzer log.
summarize() {
  local t="$1" log="$2" secs="$3"
  local execs eps cov ft corp
  execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | awk '{print $2}')"
  eps="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -1 | awk '{print $2}')"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')"
  ft="$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')"
  corp="$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | awk '{print $2}')"
  printf 'fuzz %-13s %5ss  execs %-10s execs/s %-7s cov %-6s ft %-6s corpus %s\n' \
    "$t" "$secs" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
}

run_one() {
  local t="$1" secs="$2"
  local bin="$BUILD/tests/fuzz/fuzz_$t"
  [ -x "$bin" ] || die "no fuzz target $t (known: ${ALL_TARGETS[*]})"
  local seeds="$ROOT/tests/fuzz/corpus/$t"
  local work="$BUILD/corpus/$t"
  local art="$BUILD/artifacts/$t"
  local log="$BUILD/logs/$t.log"
  mkdir -p "$work" "$art" "$BUILD/logs"
  local dict=()
  [ -f "$ROOT/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$ROOT/tests/fuzz/dict/$t.dict")
  echo "fuzz.sh: $t for ${secs}s (log $log)"
  local rc=0
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    "$bin" "$work" "$seeds" "${dict[@]}" -max_total_time="$secs" -timeout=20 ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
      -rss_limit_mb="$RSS_MB" -max_len=8192 \
      -artifact_prefix="$art/" -print_final_stats=1 -close_fd_mask=1 >"$log" 2>&1 || rc=$?
  summarize "$t" "$log" "$secs"
  if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
    echo "fuzz.sh: $t FAILED (exit $rc); last lines of $log:" >&2
    grep -nE 'ERROR:|runtime error:|SUMMARY:|FUZZ_CHECK|Test unit written|artifact' "$log" | head -20 >&2 || true
    tail -40 "$log" >&2
    return 1
  fi
}

run_targets() {
  local secs="$1"; shift
  local targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
  if [ "$NO_BUILD" = 1 ]; then check_toolchain; else build; fi
  local failed=()
  for t in "${targets[@]}"; do run_one "$t" "$secs" || failed+=("$t"); done
  if [ ${#failed[@]} -gt 0 ]; then die "failed: ${failed[*]}"; fi
}

NO_BUILD="${FUZZ_NO_BUILD:-0}"
cmd="${1:-smoke}"
shift || true
if [ "${1:-}" = "--no-build" ]; then NO_BUILD=1; shift; fi
case "$cmd" in
  build) build ;;
  list) echo "${ALL_TARGETS[*]}" ;;
  # A smoke run (CTest's) starts from a fixed seed, so it takes the same path
  # on every run instead of a new random one; longer runs explore anew.
  smoke) FUZZ_SEED="${FUZZ_SEED:-1}" run_targets 30 "$@" ;;
  long)
    secs=600
    if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then secs="$1"; shift; fi
    run_targets "$secs" "$@" ;;
  run)
    [ $# -ge 1 ] && [[ "$1" =~ ^[0-9]+$ ]] || die "usage: fuzz.sh run SECONDS TARGET..."
    secs="$1"; shift
    run_targets "$secs" "$@" ;;
  *) die "unknown command $cmd (build, smoke, long, run, list)" ;;
esac
