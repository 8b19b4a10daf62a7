"""Batch norm: NumPy reference, finite differences, PyTorch parity (train and
eval, running statistics), bad input."""

import numpy as np
import pytest

import cnnx.functional as F
from conftest import torch_or_skip


def _ref_train(x, gamma, beta, eps):
    x64 = x.astype(np.float64).reshape(-1, x.shape[-1])
    mean = x64.mean(0)
    var = x64.var(0)
    y = (x64 - mean) / np.sqrt(var + eps) * gamma + beta
    return y.reshape(x.shape), mean, var


def _ref_backward(dy, x, gamma, eps):
    c = x.shape[-1]
    x64 = x.astype(np.float64).reshape(-1, c)
    d = dy.astype(np.float64).reshape(-1, c)
    n = x64.shape[0]
    mean = x64.mean(0)
    inv = 1 / np.sqrt(x64.var(0) + eps)
    xh = (x64 - mean) * inv
    dbeta = d.sum(0)
    dgamma = (d * xh).sum(0)
    dx = gamma * inv / n * (n * d - dbeta - xh * dgamma)
    return dx.reshape(x.shape), dgamma, dbeta


@pytest.mark.parametrize("shape", [(2, 3), (16, 5), (4, 7, 7, 64), (3, 5, 5, 19), (2, 9, 9, 130)])
def test_batch_norm_train_matches_numpy(isa, rng, shape):
    c = shape[-1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gamma = rng.standard_normal(c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    rm = rng.standard_normal(c).astype(np.float32)
    rv = rng.random(c).astype(np.float32) + 0.5
    rm0, rv0 = rm.copy(), rv.copy()
    y, st = F.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=0.2, eps=1e-5)
    ry, mean, var = _ref_train(x, gamma, beta, 1e-5)
    np.testing.assert_allclose(y, ry, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(st.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(st.inv_std, 1 / np.sqrt(var + 1e-5), rtol=1e-4)
    n = x.size // c
    np.testing.assert_allclose(rm, 0.8 * rm0 + 0.2 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, 0.8 * rv0 + 0.2 * var * n / (n - 1), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(shape).astype(np.float32)
    dx, dg, db = F.batch_norm_backward(dy, x, gamma, st)
    rdx, rdg, rdb = _ref_backward(dy, x, gamma, 1e-5)
    np.testing.assert_allclose(dx, rdx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dg, rdg, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(db, rdb, rtol=1e-4, atol=1e-3)


def test_batch_norm_large_mean_is_accurate(rng):
    # |mean| >> std: a naive E[x^2] - E[x]^2 in float32 would lose the variance.
    x = (1000 + rng.standard_normal((4096, 8)) * 0.01).astype(np.float32)
    _, st = F.batch_norm(x, None, None, training=True)
    ref = 1 / np.sqrt(x.astype(np.float64).var(0) + 1e-5)
    np.testing.assert_allclose(st.inv_std, ref, rtol=1e-3)


def test_batch_norm_eval(rng):
    x = rng.standard_normal((3, 4, 4, 6)).astype(np.float32)
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)
    rm = rng.standard_normal(6).astype(np.float32)
    rv = (rng.random(6) + 0.1).astype(np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    y, st = F.batch_norm(x, gamma, beta, rm, rv, training=False, eps=1e-3)
    np.testing.assert_allclose(
        y, (x - rm) / np.sqrt(rv + 1e-3) * gamma + beta, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(rm, rm0)  # evaluation never touches the running stats
    np.testing.assert_array_equal(rv, rv0)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dg, db = F.batch_norm_backward(dy, x, gamma, st)
    np.testing.assert_allclose(dx, dy * gamma / np.sqrt(rv + 1e-3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(db, dy.reshape(-1, 6).sum(0), rtol=1e-4, atol=1e-4)
    xh = ((x - rm) / np.sqrt(rv + 1e-3)).reshape(-1, 6)
    np.testing.assert_allclose(dg, (dy.reshape(-1, 6) * xh).sum(0), rtol=1e-4, atol=1e-4)


def test_batch_norm_finite_differences(rng):
    x = rng.standard_normal((5, 2, 3)).astype(np.float64)
    gamma = rng.standard_normal(3)
    beta = rng.standard_normal(3)
    dy = rng.standard_normal(x.shape)

    def loss(x_, g_, b_):
        return np.sum(dy * _ref_train(x_, g_, b_, 1e-5)[0])

    _, st = F.batch_norm(x, gamma, beta, training=True)
    dx, dg, db = F.batch_norm_backward(dy, x, gamma, st)
    h = 1e-5
    for arr, got in ((x, dx), (gamma, dg), (beta, db)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            lp = loss(x, gamma, beta)
            arr[idx] = old - h
            lm = loss(x, gamma, beta)
            arr[idx] = old
            num[idx] = (lp - lm) / (2 * h)
        np.testing.assert_allclose(got, num, rtol=2e-3, atol=2e-3)


def test_batch_norm_torch_parity(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((4, 6, 6, 8)).astype(np.float32) * 3 + 1
    gamma = rng.standard_normal(8).astype(np.float32)
    beta = rng.standard_normal(8).astype(np.float32)
    bn = torch.nn.BatchNorm2d(8, momentum=0.1, eps=1e-5)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    rm = np.zeros(8, np.float32)
    rv = np.ones(8, np.float32)
    tx = torch.tensor(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    bn.train()
    ty = bn(tx)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ty.backward(torch.tensor(dy).permute(0, 3, 1, 2))
    y, st = F.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=0.1, eps=1e-5)
    np.testing.assert_allclose(y, ty.detach().permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rm, bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
    dx, dg, db = F.batch_norm_backward(dy, x, gamma, st)
    np.testing.assert_allclose(dx, tx.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(dg, bn.weight.grad.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(db, bn.bias.grad.numpy(), rtol=1e-4, atol=1e-3)
    # a second training step, then evaluation with the running statistics
    x2 = rng.standard_normal(x.shape).astype(np.float32)
    bn(torch.tensor(x2).permute(0, 3, 1, 2))
    F.batch_norm(x2, gamma, beta, rm, rv, training=True)
    bn.eval()
    with torch.no_grad():
        te = bn(torch.tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    ye, _ = F.batch_norm(x, gamma, beta, rm, rv, training=False)
    np.testing.assert_allclose(ye, te, rtol=1e-4, atol=1e-4)


def test_batch_norm_bad_input():
    x = np.ones((4, 3), np.float32)
    g = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="^gamma:"):
        F.batch_norm(x, np.ones(4), None)
    with pytest.raises(ValueError, match="^beta:"):
        F.batch_norm(x, g, np.ones(2))
    with pytest.raises(TypeError, match="^running_mean:"):
        F.batch_norm(x, g, None, [0, 0, 0], np.ones(3, np.float32))
    with pytest.raises(TypeError, match="^running_var:"):
        F.batch_norm(x, g, None, np.zeros(3, np.float32), np.ones(3))
    with pytest.raises(ValueError, match="^running_mean:"):
        F.batch_norm(x, g, None, training=False)
    with pytest.raises(ValueError, match="^x:"):
        F.batch_norm(np.ones(3), g, None)
    with pytest.raises(ValueError, match="^x:"):
        F.batch_norm(np.ones((1, 3)), g, None, training=True)
    with pytest.raises(ValueError, match="^momentum:"):
        F.batch_norm(x, g, None, momentum=1.5)
    with pytest.raises(ValueError, match="^eps:"):
        F.batch_norm(x, g, None, eps=0)
    _, st = F.batch_norm(x, g, None)
    with pytest.raises(ValueError, match="^dy:"):
        F.batch_norm_backward(np.ones((4, 2)), x, g, st)
    with pytest.raises(TypeError, match="^saved:"):
        F.batch_norm_backward(x, x, g, (st.mean, st.inv_std))
