"""Activations: NumPy references, finite differences, bad input."""

import numpy as np
import pytest

import cnnx.functional as F


def _fd(f, x, dy, h=1e-3):
    """Numerical gradient of sum(dy * f(x)) (float64 evaluation of f)."""
    g = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        xp = x.astype(np.float64).copy()
        xm = xp.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (np.sum(dy * f(xp)) - np.sum(dy * f(xm))) / (2 * h)
    return g


SIZES = [0, 1, 7, 1000, 300_001]  # the last one crosses the threading threshold


@pytest.mark.parametrize("n", SIZES)
def test_elementwise_forward(isa, rng, n):
    x = (rng.standard_normal(n) * 5).astype(np.float32)
    np.testing.assert_array_equal(F.relu(x), np.maximum(x, 0))
    np.testing.assert_allclose(F.leaky_relu(x, 0.1), np.where(x > 0, x, 0.1 * x), rtol=1e-6)
    np.testing.assert_allclose(
        F.sigmoid(x), 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(F.tanh(x), np.tanh(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", SIZES)
def test_elementwise_backward(rng, n):
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    np.testing.assert_array_equal(F.relu_backward(dy, x), np.where(x > 0, dy, 0))
    np.testing.assert_allclose(
        F.leaky_relu_backward(dy, x, 0.2), np.where(x > 0, dy, 0.2 * dy), rtol=1e-6
    )
    y = F.sigmoid(x)
    np.testing.assert_allclose(F.sigmoid_backward(dy, y), dy * y * (1 - y), rtol=1e-5, atol=1e-7)
    t = F.tanh(x)
    np.testing.assert_allclose(F.tanh_backward(dy, t), dy * (1 - t * t), rtol=1e-5, atol=1e-7)


def test_shapes_preserved(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for f in (F.relu, F.sigmoid, F.tanh, F.leaky_relu, F.softmax):
        assert f(x).shape == x.shape


def test_sigmoid_tanh_saturate():
    x = np.array([-1e4, -100, 100, 1e4, 0], np.float32)
    s = F.sigmoid(x)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, [0, 0, 1, 1, 0.5], atol=1e-30)
    np.testing.assert_allclose(F.tanh(x), [-1, -1, 1, 1, 0])


def test_activation_finite_differences(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    x[np.abs(x) < 0.05] = 0.3  # keep away from the kink of relu
    dy = rng.standard_normal((3, 4))
    cases = [
        (F.relu_backward(dy, x), lambda v: np.maximum(v, 0)),
        (F.leaky_relu_backward(dy, x, 0.1), lambda v: np.where(v > 0, v, 0.1 * v)),
        (F.sigmoid_backward(dy, F.sigmoid(x)), lambda v: 1 / (1 + np.exp(-v))),
        (F.tanh_backward(dy, F.tanh(x)), np.tanh),
    ]
    for got, f in cases:
        np.testing.assert_allclose(got, _fd(f, x, dy), rtol=2e-3, atol=2e-4)


def _softmax_ref(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize(
    "shape,axis",
    [
        ((4, 10), -1),
        ((4, 10), 0),
        ((2, 3, 5, 7), 1),
        ((2, 3, 5, 7), -1),
        ((9,), 0),
        ((300, 1000), 1),
    ],
)
def test_softmax_matches_numpy(rng, shape, axis):
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    y = F.softmax(x, axis=axis)
    np.testing.assert_allclose(y, _softmax_ref(x, axis), rtol=1e-5, atol=1e-7)
    dy = rng.standard_normal(shape).astype(np.float32)
    y64 = _softmax_ref(x, axis)
    ref = y64 * (dy - np.sum(dy * y64, axis=axis, keepdims=True))
    np.testing.assert_allclose(F.softmax_backward(dy, y, axis=axis), ref, rtol=1e-4, atol=1e-6)


def test_softmax_large_logits():
    x = np.array([[1e4, -1e4, 0], [-1e4, -1e4, -1e4]], np.float32)
    y = F.softmax(x)
    np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


def test_softmax_finite_differences(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    dy = rng.standard_normal((3, 5))
    for axis in (0, 1):
        got = F.softmax_backward(dy, F.softmax(x, axis=axis), axis=axis)
        np.testing.assert_allclose(
            got, _fd(lambda v: _softmax_ref(v, axis), x, dy), rtol=2e-3, atol=2e-4
        )


def test_activation_bad_input():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="^dy:"):
        F.relu_backward(np.ones((3, 2)), x)
    with pytest.raises(ValueError, match="^dy:"):
        F.sigmoid_backward(np.ones(6), x)
    with pytest.raises(TypeError, match="^x:"):
        F.relu(None)
    with pytest.raises(TypeError, match="^alpha:"):
        F.leaky_relu(x, "0.1")
    with pytest.raises(ValueError, match="^axis:"):
        F.softmax(x, axis=2)
    with pytest.raises(TypeError, match="^axis:"):
        F.softmax(x, axis=1.0)


def test_exp_based_activations_special_values_and_accuracy(isa):
    x = np.concatenate(
        [
            np.linspace(-100, 100, 20001, dtype=np.float32),
            np.float32([np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e-4]),
        ]
    )
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(F.sigmoid(x), 1 / (1 + np.exp(-x64)), rtol=1e-6, atol=1e-37)
    np.testing.assert_allclose(F.tanh(x), np.tanh(x64), rtol=1e-6, atol=1e-37)
    nan = np.float32([np.nan, 1.0])
    assert np.isnan(F.sigmoid(nan)[0]) and np.isnan(F.tanh(nan)[0])
    y = F.softmax(np.float32([[1e4, -1e4, 0], [-np.inf, 0, 0]]))
    np.testing.assert_allclose(y, [[1, 0, 0], [0, 0.5, 0.5]], rtol=1e-6)
