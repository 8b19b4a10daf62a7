"""F.matmul (the core SGEMM) against NumPy, on every ISA level."""

import numpy as np
import pytest

import cnnx.functional as F
from cnnx import _core


@pytest.mark.parametrize(
    "m,k,n",
    [
        (1, 1, 1),
        (7, 3, 5),
        (33, 65, 17),
        (128, 256, 96),
        (300, 530, 70),
        (2, 1000, 3),
        (0, 4, 5),
        (4, 0, 5),
    ],
)
def test_matmul_matches_numpy(isa, rng, m, k, n):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    got = F.matmul(a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert got.shape == (m, n) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(max(k, 1)))


def test_matmul_transposed_kernel_paths(isa, rng):
    a = rng.standard_normal((45, 70)).astype(np.float32)
    b = rng.standard_normal((33, 70)).astype(np.float32)
    np.testing.assert_allclose(_core.sgemm(a, b, False, True), a @ b.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        _core.sgemm(a.T.copy(), b, True, True), a @ b.T, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        _core.sgemm(a, b.T.copy(), False, False, 0.5), 0.5 * (a @ b.T), rtol=1e-4, atol=1e-4
    )


def test_matmul_accepts_noncontiguous_and_other_dtypes(rng):
    a = rng.standard_normal((40, 30))
    b = rng.standard_normal((20, 30))
    got = F.matmul(a[::2], np.asfortranarray(b.T))
    np.testing.assert_allclose(got, a[::2] @ b.T, rtol=1e-4, atol=1e-4)
    assert F.matmul([[1, 2]], [[3], [4]])[0, 0] == 11.0


@pytest.mark.parametrize(
    "a, b, exc, name",
    [
        (np.ones((2, 3)), np.ones((4, 5)), ValueError, "b"),
        (np.ones(3), np.ones((3, 2)), ValueError, "a"),
        (np.ones((3, 2)), np.ones((2, 2, 2)), ValueError, "b"),
        (None, np.ones((2, 2)), TypeError, "a"),
        ("abc", np.ones((2, 2)), TypeError, "a"),
        (np.ones((2, 2)), np.array([["x", "y"], ["z", "w"]]), TypeError, "b"),
    ],
)
def test_matmul_rejects_bad_input(a, b, exc, name):
    with pytest.raises(exc, match=name):
        F.matmul(a, b)


def test_matmul_propagates_nan(rng):
    a = rng.standard_normal((8, 8)).astype(np.float32)
    a[3, 2] = np.nan
    got = F.matmul(a, np.ones((8, 4), np.float32))
    assert np.isnan(got[3]).all() and np.isfinite(np.delete(got, 3, axis=0)).all()
