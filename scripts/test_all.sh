#!/usr/bin/env bash
# Run ALL tests: the Python suite against the installed cnnx, then the C++
# unit tests (GoogleTest via ctest) from a separate CMake build.
# Usage (after `pip install ".[test]"`): bash scripts/test_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

echo "== Python tests (pytest) =="
# Run from tests/ so that `import cnnx` resolves to the installed package.
(cd tests && python -m pytest -q -p no:cacheprovider .) || status=1

echo "== C++ tests (ctest) =="
build=build/ctest
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCNNX_BUILD_PYTHON=OFF >"$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j 2 >"$build.build.log" 2>&1 || { tail -50 "$build.build.log"; exit 1; }
ctest --test-dir "$build" --output-on-failure -j 2 || status=1

exit $status
