#!/usr/bin/env bash
# Sanitizer run: build the C++ unit tests (and the random-shape fuzz loop in
# cpp/tests/test_fuzz.cpp) with AddressSanitizer + UndefinedBehaviorSanitizer
# and run them through ctest. Any leak, out-of-bounds access, use after free
# or undefined behaviour fails the run. Takes a few minutes on 2 cores.
# Usage: bash scripts/sanitize.sh   (build dir: build/asan, or $CNNX_ASAN_BUILD)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CNNX_ASAN_BUILD:-build/asan}
start=$(date +%s)
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)

echo "== sanitize: configure $build (ASan + UBSan, C++ tests only) =="
# -O2 keeps the sanitized tests fast; -g1 (line tables only) keeps the build
# fast and still gives file:line in every report.
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCNNX_SANITIZE=ON \
  -DCNNX_BUILD_PYTHON=OFF -DCNNX_BUILD_TESTS=ON >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
if ! grep -q "CNNX_SANITIZE:BOOL=ON" "$build/CMakeCache.txt"; then
  echo "sanitize: CNNX_SANITIZE is not ON in $build" >&2; exit 1
fi
echo "== sanitize: build =="
cmake --build "$build" -j 2 >"$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }
echo "sanitize: built in $(( $(date +%s) - start )) s"
[ -x "$build/cnnx_tests" ] || { echo "sanitize: no cnnx_tests was built" >&2; exit 1; }

# Fail hard on the first report. OpenMP's runtime keeps its thread pool
# alive at exit, which LeakSanitizer does not report; everything else is on.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_init_order=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export CNNX_FUZZ_SECONDS=${CNNX_FUZZ_SECONDS:-20}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

echo "== sanitize: ctest (fuzz budget ${CNNX_FUZZ_SECONDS} s) =="
ctest --test-dir "$build" --output-on-failure --no-tests=error -j 2 --timeout 600
echo "sanitize: passed in $(( $(date +%s) - start )) s"
