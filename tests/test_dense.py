"""Dense layer: NumPy reference, finite differences, bad input."""

import numpy as np
import pytest

import cnnx.functional as F


def _ref(x, w, b, act):
    y = x.astype(np.float64) @ w.astype(np.float64)
    if b is not None:
        y = y + b
    return np.maximum(y, 0) if act == "relu" else y


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (64, 300, 130), (33, 17, 65)])
@pytest.mark.parametrize("act", [None, "relu"])
def test_dense_forward_matches_numpy(isa, rng, shape, act):
    n, i, o = shape
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = rng.standard_normal((i, o)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    np.testing.assert_allclose(F.dense(x, w, b, act), _ref(x, w, b, act), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(F.dense(x, w), _ref(x, w, None, None), rtol=1e-4, atol=1e-4)


def test_dense_leading_axes(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    y = F.dense(x, w)
    assert y.shape == (2, 3, 5)
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 7, 3), (70, 130, 90)])
def test_dense_backward_matches_numpy(isa, rng, shape):
    n, i, o = shape
    x = rng.standard_normal((n, i)).astype(np.float32)
    w = rng.standard_normal((i, o)).astype(np.float32)
    dy = rng.standard_normal((n, o)).astype(np.float32)
    dx, dw, db = F.dense_backward(dy, x, w)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    np.testing.assert_allclose(dx, dy64 @ w64.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, x64.T @ dy64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dy64.sum(0), rtol=1e-4, atol=1e-4)
    dx2, dw2, db2 = F.dense_backward(dy, x, w, need_dx=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)


def test_dense_finite_differences(rng):
    x = rng.standard_normal((4, 6))
    w = rng.standard_normal((6, 3))
    b = rng.standard_normal(3)
    dy = rng.standard_normal((4, 3))

    # loss = sum(dy * dense(x, w, b)); central differences in float64 math
    def loss(x_, w_, b_):
        return float(np.sum(dy * (x_ @ w_ + b_)))

    dx, dw, db = F.dense_backward(dy, x, w)
    h = 1e-5
    for arr, g in ((x, dx), (w, dw), (b, db)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            lp = loss(x, w, b)
            arr[idx] = old - h
            lm = loss(x, w, b)
            arr[idx] = old
            num[idx] = (lp - lm) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-3, atol=1e-3)


def test_dense_bad_input(rng):
    x = np.ones((2, 3), np.float32)
    w = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="^w:"):
        F.dense(x, np.ones((4, 4)))
    with pytest.raises(ValueError, match="^b:"):
        F.dense(x, w, np.ones(3))
    with pytest.raises(ValueError, match="^activation:"):
        F.dense(x, w, activation="gelu")
    with pytest.raises(TypeError, match="^x:"):
        F.dense("abc", w)
    with pytest.raises(ValueError, match="^w:"):
        F.dense(x, np.ones(3))
    with pytest.raises(ValueError, match="^dy:"):
        F.dense_backward(np.ones((2, 5)), x, w)
