#!/usr/bin/env bash
# The code-style checks CI runs (and .pre-commit-config.yaml): ruff lint and
# format, clang-format, mypy on the public API, the duplicate-code report.
#   bash scripts/check_style.sh          # all of them
#   bash scripts/check_style.sh mypy     # one: ruff | clang-format | mypy | duplicates
# Needs the dev extra: pip install -e ".[dev]" (or pip install ruff clang-format mypy).
set -uo pipefail
cd "$(dirname "$0")/.."
only=${1:-all}
status=0
run() {  # name, command...
  local name=$1; shift
  [ "$only" = all ] || [ "$only" = "$name" ] || return 0
  echo "== $name"
  "$@" || { echo "check_style: $name failed"; status=1; }
}
py_dirs=(python tests benchmarks examples scripts)
run ruff ruff check "${py_dirs[@]}"
run ruff ruff format --check "${py_dirs[@]}"
mapfile -t cpp_files < <(git ls-files 'cpp/*.cpp' 'cpp/*.h')
run clang-format clang-format --dry-run --Werror "${cpp_files[@]}"
# The public API's modules (type annotations checked; the rest of the package
# is followed silently for the types it exports).
run mypy mypy python/cnnx/__init__.py python/cnnx/functional python/cnnx/layers \
  python/cnnx/models python/cnnx/trainers python/cnnx/optim python/cnnx/losses.py \
  python/cnnx/metrics.py python/cnnx/io.py python/cnnx/callbacks.py python/cnnx/onnx
run duplicates python3 scripts/duplicates.py cpp/src --min-lines 30 --shape
exit $status
