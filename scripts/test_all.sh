#!/usr/bin/env bash
# Run ALL tests: the Python suite against the installed cnnx, then the C++
# unit tests via ctest from a separate CMake build (GoogleTest if installed,
# else cnnx's own harness in cpp/tests/mini_gtest; CNNX_OWN_TEST_HARNESS=1
# forces the latter). Fails if ctest finds no test.
# Usage (after `pip install ".[test]"`): bash scripts/test_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

echo "== Python tests (pytest) =="
# Run from tests/ so that `import cnnx` resolves to the installed package.
(cd tests && python -m pytest -q -p no:cacheprovider .) || status=1

echo "== C++ tests (ctest) =="
build=build/ctest
own=OFF
case "${CNNX_OWN_TEST_HARNESS:-}" in 1|ON|on|true|yes) own=ON ;; esac
mkdir -p build
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCNNX_BUILD_PYTHON=OFF \
  -DCNNX_OWN_TEST_HARNESS=$own >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
grep "cnnx: C++ tests use" "$build.configure.log" || true
cmake --build "$build" -j 2 >"$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }
ctest --test-dir "$build" --output-on-failure --no-tests=error -j 2 || status=1

exit $status
