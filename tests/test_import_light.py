"""``import cnnx`` stays light: optional, heavy modules load only when used."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = (
    "tqdm",
    "matplotlib",
    "onnx",
    "onnxruntime",
    "mpi4py",
    "sklearn",
    "torch",
    "skimage",
    "scipy",
    "hypothesis",
    "pytest",
)


def _modules_after(code):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _heavy(mods):
    return sorted(m for m in mods if m.split(".")[0] in HEAVY)


def test_import_cnnx_is_light():
    mods = _modules_after("import cnnx")
    assert "cnnx" in mods and "numpy" in mods
    assert _heavy(mods) == []


@pytest.mark.parametrize(
    "sub",
    [
        "cnnx.onnx",
        "cnnx.functional",
        "cnnx.teaching",
        "cnnx.datasets",
        "cnnx.callbacks",
        "cnnx.training",
    ],
)
def test_submodules_defer_optional_packages(sub):
    mods = _modules_after(f"import cnnx, {sub}")
    assert _heavy(mods) == []


def test_cnnx_onnx_loads_onnx_on_first_use(tmp_path):
    pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    mods = _modules_after(
        "import cnnx, cnnx.onnx\n"
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(2)], input_shape=(4,))\n"
        f"cnnx.onnx.export(m, {str(path)!r})"
    )
    assert "onnx" in mods and path.exists()
