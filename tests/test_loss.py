"""Softmax cross-entropy and cross-entropy: NumPy reference, finite
differences, stability, PyTorch parity, bad input."""

import numpy as np
import pytest

import cnnx.functional as F
from conftest import torch_or_skip


def _ref(logits, labels):
    z = logits.astype(np.float64)
    m = z.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
    n = len(labels)
    p = np.exp(z - m) / np.exp(z - m).sum(1, keepdims=True)
    g = p.copy()
    g[np.arange(n), labels] -= 1
    return np.mean(lse - z[np.arange(n), labels]), g / n


@pytest.mark.parametrize("n,k", [(1, 1), (1, 10), (8, 10), (257, 1000)])
def test_sce_matches_numpy(rng, n, k):
    logits = (rng.standard_normal((n, k)) * 3).astype(np.float32)
    labels = rng.integers(0, k, n)
    loss, g = F.softmax_cross_entropy(logits, labels)
    rl, rg = _ref(logits, labels)
    assert isinstance(loss, float)
    assert loss == pytest.approx(rl, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(g, rg, rtol=1e-4, atol=1e-7)


def test_sce_stable_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4]], np.float32)
    labels = np.array([0, 0, 2])
    loss, g = F.softmax_cross_entropy(logits, labels)
    rl, rg = _ref(logits, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(g))
    assert loss == pytest.approx(rl, rel=1e-6)
    np.testing.assert_allclose(g, rg, atol=1e-7)


def test_sce_finite_differences(rng):
    logits = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    _, g = F.softmax_cross_entropy(logits, labels)
    h = 1e-4
    num = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        lp, lm = logits.copy(), logits.copy()
        lp[idx] += h
        lm[idx] -= h
        num[idx] = (_ref(lp, labels)[0] - _ref(lm, labels)[0]) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-3, atol=1e-5)


def test_sce_label_dtypes(rng):
    logits = rng.standard_normal((3, 4)).astype(np.float32)
    for dt in (np.int8, np.uint8, np.int32, np.int64, np.uint64):
        loss, _ = F.softmax_cross_entropy(logits, np.array([0, 3, 1], dtype=dt))
        assert loss == pytest.approx(_ref(logits, np.array([0, 3, 1]))[0], rel=1e-5)


def test_sce_torch_parity(rng):
    torch = torch_or_skip()
    logits = (rng.standard_normal((16, 7)) * 5).astype(np.float32)
    labels = rng.integers(0, 7, 16)
    t = torch.tensor(logits, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    tl.backward()
    loss, g = F.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_cross_entropy_probs(rng):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    p = F.softmax(logits)
    loss, g = F.cross_entropy(p, labels)
    assert loss == pytest.approx(_ref(logits, labels)[0], rel=1e-5)
    ref = np.zeros_like(p)
    ref[np.arange(6), labels] = -1 / (6 * p[np.arange(6), labels].astype(np.float64))
    np.testing.assert_allclose(g, ref, rtol=1e-5)
    # a zero probability is clipped, not infinite
    loss0, _ = F.cross_entropy(np.array([[0.0, 1.0]]), [0])
    assert loss0 == pytest.approx(-np.log(1e-12), rel=1e-3)


def test_loss_bad_input():
    logits = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="^labels:"):
        F.softmax_cross_entropy(logits, [0, 1, 4])
    with pytest.raises(ValueError, match="^labels:"):
        F.softmax_cross_entropy(logits, [0, -1, 2])
    with pytest.raises(ValueError, match="^labels:"):
        F.softmax_cross_entropy(logits, [0, 1])
    with pytest.raises(TypeError, match="^labels:"):
        F.softmax_cross_entropy(logits, [0.0, 1.0, 2.0])
    with pytest.raises(TypeError, match="^labels:"):
        F.softmax_cross_entropy(logits, np.array([True, False, True]))
    with pytest.raises(ValueError, match="^logits:"):
        F.softmax_cross_entropy(np.zeros(4), [0])
    with pytest.raises(ValueError, match="^probs:"):
        F.cross_entropy(np.zeros((0, 3)), np.zeros(0, int))
