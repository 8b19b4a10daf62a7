"""Shared fixtures: every ISA level the CPU supports, optional PyTorch."""

import numpy as np
import pytest

from cnnx import _core

_LEVELS = ["generic", "avx2", "avx512"]


def supported_isas():
    best = _core.detected_isa()
    return _LEVELS[: _LEVELS.index(best) + 1]


@pytest.fixture(params=supported_isas())
def isa(request):
    """Run a test once per SIMD level this CPU supports, then restore."""
    saved = _core.active_isa()
    _core.set_active_isa(request.param)
    try:
        yield request.param
    finally:
        _core.set_active_isa(saved)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def torch_or_skip():
    """PyTorch for parity tests; skip cleanly when it is not installed."""
    return pytest.importorskip("torch")


def pytest_configure(config):
    # Also registered in pyproject.toml; repeated here for runs from a copy
    # of tests/ outside the source tree (the installed-wheel run).
    config.addinivalue_line("markers", "examples: runs examples/*.py --quick in a subprocess")
