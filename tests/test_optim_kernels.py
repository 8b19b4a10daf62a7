"""Fused optimiser updates: NumPy references (torch.optim's formulas), one
step against PyTorch, bad input."""

import numpy as np
import pytest

import cnnx.functional as F
from conftest import torch_or_skip


def _adam_ref(p, g, m, v, step, lr, b1, b2, eps, wd, decoupled):
    p, g, m, v = (a.astype(np.float64) for a in (p, g, m, v))
    if decoupled:
        p = p * (1 - lr * wd)
    else:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr / (1 - b1**step) * m / (np.sqrt(v) / np.sqrt(1 - b2**step) + eps)
    return p, m, v


@pytest.mark.parametrize("n", [1, 15, 17, 1000, 300_001])
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_matches_numpy(isa, rng, n, decoupled):
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    m = rng.standard_normal(n).astype(np.float32) * 0.1
    v = rng.random(n).astype(np.float32) * 0.01
    rp, rm, rv = _adam_ref(p, g, m, v, 3, 1e-2, 0.9, 0.999, 1e-8, 0.05, decoupled)
    F.adam_update(p, g, m, v, 3, 1e-2, 0.9, 0.999, 1e-8, 0.05, decoupled)
    np.testing.assert_allclose(m, rm, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(v, rv, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(p, rp, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "nesterov,momentum,wd",
    [(False, 0.0, 0.0), (False, 0.9, 0.0), (True, 0.9, 1e-2), (False, 0.5, 1e-3)],
)
def test_sgd_matches_numpy(rng, nesterov, momentum, wd):
    n = 100_003
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    vel = rng.standard_normal(n).astype(np.float32)
    p64, g64, v64 = (a.astype(np.float64) for a in (p, g, vel))
    gg = g64 + wd * p64
    if momentum:
        v64 = momentum * v64 + gg
        gg = gg + momentum * v64 if nesterov else v64
    p64 = p64 - 0.1 * gg
    F.sgd_update(p, g, vel if momentum else None, 0.1, momentum, nesterov, wd)
    np.testing.assert_allclose(p, p64, rtol=1e-5, atol=1e-6)
    if momentum:
        np.testing.assert_allclose(vel, v64, rtol=1e-5, atol=1e-6)


def _torch_steps(torch, opt_cls, p0, grads, **kw):
    tp = torch.nn.Parameter(torch.tensor(p0.copy()))
    opt = opt_cls([tp], **kw)
    for g in grads:
        tp.grad = torch.tensor(g)
        opt.step()
    return tp.detach().numpy()


def test_sgd_torch_parity(rng):
    torch = torch_or_skip()
    p0 = rng.standard_normal((7, 13)).astype(np.float32)
    grads = [rng.standard_normal(p0.shape).astype(np.float32) for _ in range(3)]
    ref = _torch_steps(
        torch, torch.optim.SGD, p0, grads, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2
    )
    p = p0.copy()
    vel = np.zeros_like(p)
    for g in grads:
        F.sgd_update(p, g, vel, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_torch_parity(isa, rng, decoupled):
    torch = torch_or_skip()
    p0 = rng.standard_normal(1001).astype(np.float32)
    grads = [rng.standard_normal(p0.shape).astype(np.float32) for _ in range(3)]
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ref = _torch_steps(
        torch, cls, p0, grads, lr=1e-2, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1
    )
    p = p0.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for step, g in enumerate(grads, 1):
        F.adam_update(
            p,
            g,
            m,
            v,
            step,
            lr=1e-2,
            beta1=0.9,
            beta2=0.99,
            eps=1e-6,
            weight_decay=0.1,
            decoupled=decoupled,
        )
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-6)


def test_optim_bad_input():
    p = np.zeros(4, np.float32)
    g = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="^param:"):
        F.sgd_update(np.zeros(4), g, None, 0.1)
    with pytest.raises(TypeError, match="^param:"):
        F.sgd_update([0.0] * 4, g, None, 0.1)
    with pytest.raises(ValueError, match="^grad:"):
        F.sgd_update(p, np.zeros(5), None, 0.1)
    with pytest.raises(ValueError, match="^velocity:"):
        F.sgd_update(p, g, None, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="^velocity:"):
        F.sgd_update(p, g, np.zeros(3, np.float32), 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="^nesterov:"):
        F.sgd_update(p, g, None, 0.1, nesterov=True)
    with pytest.raises(ValueError, match="^lr:"):
        F.sgd_update(p, g, None, -1.0)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="^param:"):
        F.sgd_update(ro, g, None, 0.1)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="^step:"):
        F.adam_update(p, g, m, v, 0)
    with pytest.raises(TypeError, match="^step:"):
        F.adam_update(p, g, m, v, 1.0)
    with pytest.raises(ValueError, match="^beta1:"):
        F.adam_update(p, g, m, v, 1, beta1=1.0)
    with pytest.raises(ValueError, match="^eps:"):
        F.adam_update(p, g, m, v, 1, eps=0.0)
    with pytest.raises(ValueError, match="^v:"):
        F.adam_update(p, g, m, np.zeros(5, np.float32), 1)
    with pytest.raises(TypeError, match="^m:"):
        F.adam_update(p, g, np.zeros((2, 2)), v, 1)
