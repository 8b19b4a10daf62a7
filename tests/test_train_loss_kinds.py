"""The training step's loss terms (cpp/src/ops/loss.cpp through
_core.TrainPlan) against NumPy: each kind's value and its gradient (seen
through the dense layer's weight gradient), sample weights and loss
weights, and the two-call form (forward, then backward with a gradient
computed by the caller) against the one-call step."""

import numpy as np
import pytest

from cnnx import _core

LK = _core.LossKind
RNG = np.random.default_rng(0)


def dense_plan(n_in, n_out, kind, weight=1.0, param=0.0):
    """x (n_in) -> dense -> value 1 (n_out) with one loss on it."""
    w = (RNG.standard_normal((n_in, n_out)) * 0.5).astype(np.float32)
    grads = np.zeros(n_in * n_out, np.float32)
    plan = _core.TrainPlan([n_in, n_out], 1, grads)
    spec = _core.OpSpec(_core.OpKind.dense, [0], 1)
    spec.dense = (n_in, n_out)
    spec.set_weights(w, None, grads.reshape(n_in, n_out))
    plan.add(spec)
    plan.add_loss(kind, 1, 0, weight, param)
    plan.set_outputs([1])
    return plan, w, grads


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def reference(kind, y, t, delta):
    """per-sample loss and d(per-sample loss)/dy."""
    D = y.shape[1]
    if kind == LK.mean_squared_error:
        return ((y - t) ** 2).mean(1), 2 * (y - t) / D
    if kind == LK.mean_absolute_error:
        return np.abs(y - t).mean(1), np.sign(y - t) / D
    if kind == LK.huber:
        e = y - t
        a = np.abs(e)
        return np.where(a <= delta, 0.5 * e * e, delta * (a - 0.5 * delta)).mean(1), np.clip(
            e, -delta, delta
        ) / D
    if kind == LK.softmax_cross_entropy_soft:
        z = y - y.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1, keepdims=True))
        p = np.exp(z - lse)
        return -(t * (z - lse)).sum(1), t.sum(1, keepdims=True) * p - t
    if kind == LK.sigmoid_binary_cross_entropy:
        return (np.maximum(y, 0) - y * t + np.log1p(np.exp(-np.abs(y)))).mean(1), (
            sigmoid(y) - t
        ) / D
    if kind == LK.binary_cross_entropy:
        p = np.clip(y, 1e-7, 1 - 1e-7)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(1), (y - t) / (y * (1 - y)) / D
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        LK.mean_squared_error,
        LK.mean_absolute_error,
        LK.huber,
        LK.softmax_cross_entropy_soft,
        LK.sigmoid_binary_cross_entropy,
        LK.binary_cross_entropy,
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_kinds_match_numpy(kind, weighted):
    n, n_in, n_out, lw, delta = 9, 5, 4, 0.7, 0.3
    plan, w, grads = dense_plan(n_in, n_out, kind, lw, delta if kind == LK.huber else 0.0)
    x = RNG.standard_normal((n, n_in)).astype(np.float32)
    if kind == LK.binary_cross_entropy:  # probabilities in (0, 1): keep the dense output there
        w[...] = np.abs(w) * 0.1
        x = np.abs(x) * 0.5
    t = RNG.uniform(0, 1, (n, n_out)).astype(np.float32)
    if kind == LK.softmax_cross_entropy_soft:
        t /= t.sum(1, keepdims=True)
    sw = RNG.uniform(0, 2, n).astype(np.float32) if weighted else None
    total, parts, (y,) = plan.step([x], [t], sw)
    y64 = x.astype(np.float64) @ w
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-6)
    per, dper = reference(kind, y64, t.astype(np.float64), delta)
    wv = np.ones(n) if sw is None else sw.astype(np.float64)
    assert parts[0] == pytest.approx((wv * per).sum() / n, rel=1e-5, abs=1e-7)
    assert total == pytest.approx(lw * (wv * per).sum() / n, rel=1e-5, abs=1e-7)
    dy = lw * wv[:, None] * dper / n
    np.testing.assert_allclose(
        grads.reshape(n_in, n_out), x.T.astype(np.float64) @ dy, rtol=2e-4, atol=1e-6
    )


def test_two_call_form_equals_one_call_step():
    n, n_in, n_out = 7, 6, 3
    one, w, g1 = dense_plan(n_in, n_out, LK.mean_squared_error, 0.5)
    two_grads = np.zeros_like(g1)
    two = _core.TrainPlan([n_in, n_out], 1, two_grads)
    spec = _core.OpSpec(_core.OpKind.dense, [0], 1)
    spec.dense = (n_in, n_out)
    spec.set_weights(w, None, two_grads.reshape(n_in, n_out))
    two.add(spec)
    two.add_loss(LK.external, 1, 0, 0.5)
    two.set_outputs([1])
    x = RNG.standard_normal((n, n_in)).astype(np.float32)
    t = RNG.standard_normal((n, n_out)).astype(np.float32)
    total, _, (y1,) = one.step([x], [t])
    (y2,) = two.forward([x])
    np.testing.assert_array_equal(y1, y2)
    d = (2 * (y2 - t) / (n * n_out)).astype(np.float32)  # the caller's mean-MSE gradient
    rest, parts = two.backward([], [d])
    assert rest == 0.0 and parts == [0.0]
    np.testing.assert_allclose(two_grads, g1, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="forward"):
        two.step([x], [t])
    with pytest.raises(ValueError, match="forward"):
        two.backward([], [d])  # no pending forward


def test_bad_losses_are_refused():
    plan, _, _ = dense_plan(3, 2, LK.mean_squared_error)
    with pytest.raises(ValueError, match="delta"):
        plan.add_loss(LK.huber, 1, 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="value"):
        plan.add_loss(LK.mean_squared_error, 0, 0)  # the input has no producer
