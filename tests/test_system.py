"""Build facts, ISA dispatch and the thread budget."""

import os
import subprocess
import sys

import pytest

import cnnx
from cnnx import _core


def test_info_fields():
    info = cnnx.info()
    assert info["version"] == cnnx.__version__
    assert info["isa"] in ("generic", "avx2", "avx512")
    assert info["num_threads"] >= 1
    assert isinstance(info["openmp"], bool)


def _info_in_subprocess(env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    code = "import cnnx, json; print(json.dumps(cnnx.info()))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    import json

    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.mark.parametrize("level", ["generic", "avx2", "avx512"])
def test_cnnx_isa_env_forces_lower_level(level):
    order = ["generic", "avx2", "avx512"]
    best = _core.detected_isa()
    info, _ = _info_in_subprocess({"CNNX_ISA": level})
    expect = level if order.index(level) <= order.index(best) else best
    assert info["isa"] == expect
    assert info["detected_isa"] == best


def test_cnnx_isa_env_rejects_unknown_value():
    info, err = _info_in_subprocess({"CNNX_ISA": "sse9"})
    assert info["isa"] == _core.detected_isa()
    assert "CNNX_ISA" in err


def test_omp_num_threads_is_respected():
    info, _ = _info_in_subprocess({"OMP_NUM_THREADS": "1"})
    assert info["num_threads"] == 1


def test_set_num_threads_roundtrip():
    saved = cnnx.get_num_threads()
    try:
        cnnx.set_num_threads(1)
        assert cnnx.get_num_threads() == 1
        cnnx.set_num_threads(3)
        assert cnnx.get_num_threads() == 3
    finally:
        cnnx.set_num_threads(saved)


@pytest.mark.parametrize(
    "bad, exc",
    [
        (0, ValueError),
        (-2, ValueError),
        (1.5, TypeError),
        ("2", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_set_num_threads_rejects(bad, exc):
    with pytest.raises(exc, match="n"):
        cnnx.set_num_threads(bad)


def test_cli_info_runs():
    out = subprocess.run(
        [sys.executable, "-m", "cnnx", "info", "--json"], capture_output=True, text=True, check=True
    )
    assert '"isa"' in out.stdout
