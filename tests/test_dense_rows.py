"""Dense layers at batch 1..4 (and narrow layers at any batch): the unpacked row kernels (cpp/src/ops/dense_rows*)
against NumPy in float64, on every column tail and ISA; and gradients
written straight into caller-given arrays (dw_out / db_out)."""

import numpy as np
import pytest

from cnnx import _core

OUTS = [1, 10, 16, 17, 63, 64, 65, 130]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 18])
@pytest.mark.parametrize("n_in", [1, 7, 400])
def test_forward_rows(isa, n, n_in):
    rng = np.random.default_rng(n * 1000 + n_in)
    for out in OUTS:
        x = rng.standard_normal((n, n_in)).astype(np.float32)
        w = rng.standard_normal((n_in, out)).astype(np.float32)
        b = rng.standard_normal(out).astype(np.float32)
        ref = x.astype(np.float64) @ w + b
        for relu in (False, True):
            want = np.maximum(ref, 0) if relu else ref
            got = _core.dense(x, w, b, relu)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(n_in))
        np.testing.assert_allclose(
            _core.dense(x, w, None, False),
            x.astype(np.float64) @ w,
            rtol=1e-4,
            atol=1e-4 * np.sqrt(n_in),
        )


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("n_in", [1, 7, 400])
def test_backward_rows(isa, n, n_in):
    rng = np.random.default_rng(n * 7 + n_in)
    for out in OUTS:
        x = rng.standard_normal((n, n_in)).astype(np.float32)
        w = rng.standard_normal((n_in, out)).astype(np.float32)
        dy = rng.standard_normal((n, out)).astype(np.float32)
        dx, dw, db = _core.dense_backward(dy, x, w, True, True, True)
        tol = 1e-4 * np.sqrt(max(n, out))
        np.testing.assert_allclose(dx, dy.astype(np.float64) @ w.T, rtol=1e-4, atol=tol)
        np.testing.assert_allclose(dw, x.T.astype(np.float64) @ dy, rtol=1e-4, atol=tol)
        np.testing.assert_allclose(db, dy.astype(np.float64).sum(0), rtol=1e-4, atol=tol)


def test_backward_into_given_arrays(isa):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 20)).astype(np.float32)
    w = rng.standard_normal((20, 9)).astype(np.float32)
    dy = rng.standard_normal((3, 9)).astype(np.float32)
    flat = np.full(20 * 9 + 9, np.nan, np.float32)
    dw_out, db_out = flat[:180].reshape(20, 9), flat[180:]
    _, dw, db = _core.dense_backward(dy, x, w, False, True, True, dw_out, db_out)
    assert dw is dw_out and db is db_out
    np.testing.assert_allclose(dw_out, x.T @ dy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db_out, dy.sum(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="dw_out"):
        _core.dense_backward(dy, x, w, False, True, True, np.zeros((20, 8), np.float32))
    with pytest.raises(ValueError, match="db_out"):
        _core.dense_backward(dy, x, w, False, True, True, None, np.zeros(9, np.float64))


def test_conv_backward_into_given_arrays():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    _, dw_ref, db_ref = _core.conv2d_backward(dy, x, w, (1, 1), (1, 1), (0, 0, 0, 0), 1, False)
    dw_out = np.full((3, 3, 3, 4), np.nan, np.float32)
    db_out = np.full(4, np.nan, np.float32)
    _, dw, db = _core.conv2d_backward(
        dy, x, w, (1, 1), (1, 1), (0, 0, 0, 0), 1, False, dw_out, db_out
    )
    assert dw is dw_out and db is db_out
    np.testing.assert_array_equal(dw_out, dw_ref)
    np.testing.assert_array_equal(db_out, db_ref)
    with pytest.raises(ValueError, match="dw_out"):
        _core.conv2d_backward(
            dy,
            x,
            w,
            (1, 1),
            (1, 1),
            (0, 0, 0, 0),
            1,
            False,
            np.zeros((3, 3, 3, 4), np.float32)[::-1],
        )
