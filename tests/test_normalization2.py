"""Issue 19's normalisations: local response (LRN), group and layer norm.
PyTorch parity forward and backward (PyTorch runs NCHW; cnnx NHWC) on every
ISA, finite differences, numerics with a large mean, bad input, the layers
in both compiled plans against the layer-by-layer path, and ONNX export run
by ONNX Runtime."""

import numpy as np
import pytest

import cnnx
import cnnx.functional as F
from conftest import torch_or_skip
import layer_harness as harness


def _nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


# ---- LRN ----------------------------------------------------------------------


@pytest.mark.parametrize("size,c", [(1, 4), (3, 8), (5, 3), (5, 96), (7, 21), (11, 5)])
def test_lrn_matches_torch(size, c, isa, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 6, 7, c)).astype(np.float32) * 2
    dy = rng.standard_normal(x.shape).astype(np.float32)
    alpha, beta, bias = 0.3, 0.75, 2.0
    t = torch.tensor(_nchw(x), dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.local_response_norm(t, size, alpha, beta, bias)
    y.backward(torch.tensor(_nchw(dy), dtype=torch.float64))
    np.testing.assert_allclose(
        F.lrn(x, size, alpha, beta, bias), _nhwc(y.detach().numpy()), rtol=2e-5, atol=2e-6
    )
    np.testing.assert_allclose(
        F.lrn_backward(dy, x, size, alpha, beta, bias), _nhwc(t.grad.numpy()), rtol=1e-4, atol=2e-5
    )


def test_lrn_big_batch_threads_and_beta(isa, rng):
    x = rng.standard_normal((8, 28, 28, 64)).astype(np.float32)
    for beta in (0.5, 0.75, 1.3):
        xd = x.astype(np.float64)
        sq = np.pad(xd**2, ((0, 0), (0, 0), (0, 0), (2, 2)))
        s = 1.0 + 1e-2 / 5 * sum(sq[..., j : j + 64] for j in range(5))
        np.testing.assert_allclose(
            F.lrn(x, 5, 1e-2, beta, 1.0), xd * s**-beta, rtol=2e-6, atol=1e-7
        )


def test_lrn_finite_differences(rng):
    x = rng.standard_normal((2, 2, 3, 6)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    args = (3, 0.5, 0.75, 1.0)
    got = F.lrn_backward(dy, x, *args)
    h = 1e-2
    num = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        num[idx] = (np.sum(dy * F.lrn(xp, *args)) - np.sum(dy * F.lrn(xm, *args))) / (2 * h)
    np.testing.assert_allclose(got, num, rtol=1e-2, atol=2e-3)


# ---- group norm ---------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,groups",
    [
        ((2, 5, 6, 8), 4),
        ((3, 4, 4, 12), 1),
        ((2, 3, 5, 6), 6),
        ((1, 30, 31, 32), 8),
        ((4, 10), 5),
        ((2, 7, 9), 3),
    ],
)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_matches_torch(shape, groups, affine, isa, rng):
    torch = torch_or_skip()
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[-1]
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32) if affine else None
    beta = rng.standard_normal(c).astype(np.float32) if affine else None
    perm = (0, len(shape) - 1) + tuple(range(1, len(shape) - 1))  # channels to axis 1
    back = np.argsort(perm)
    t = torch.tensor(x.transpose(perm), dtype=torch.float64, requires_grad=True)
    tg = torch.tensor(gamma, dtype=torch.float64, requires_grad=True) if affine else None
    tb = torch.tensor(beta, dtype=torch.float64, requires_grad=True) if affine else None
    y = torch.nn.functional.group_norm(t, groups, tg, tb, 1e-5)
    y.backward(torch.tensor(dy.transpose(perm), dtype=torch.float64))
    np.testing.assert_allclose(
        F.group_norm(x, groups, gamma, beta, 1e-5),
        y.detach().numpy().transpose(back),
        rtol=1e-4,
        atol=1e-5,
    )
    dx, dg, db = F.group_norm_backward(dy, x, groups, gamma, 1e-5)
    np.testing.assert_allclose(dx, t.grad.numpy().transpose(back), rtol=1e-4, atol=1e-4)
    if affine:
        np.testing.assert_allclose(dg, tg.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_group_norm_large_mean_is_accurate(rng):
    x = (rng.standard_normal((2, 8, 8, 16)) * 0.01 + 1000).astype(np.float32)
    xd = x.astype(np.float64).reshape(2, 64, 4, 4)
    m = xd.mean(axis=(1, 3), keepdims=True)
    v = xd.var(axis=(1, 3), keepdims=True)
    ref = ((xd - m) / np.sqrt(v + 1e-5)).reshape(x.shape)
    # float32 holds the mean 1000 to 3e-5, 0.3 % of the std: sums of
    # squares about the mean in float would have lost the variance entirely
    np.testing.assert_allclose(F.group_norm(x, 4, eps=1e-5), ref, atol=5e-3)


# ---- layer norm ---------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 6, 8), (2, 9, 11, 96), (64, 3), (2, 3, 130)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(shape, affine, isa, rng):
    torch = torch_or_skip()
    x = (rng.standard_normal(shape) * 2 - 3).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[-1]
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32) if affine else None
    beta = rng.standard_normal(c).astype(np.float32) if affine else None
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tg = torch.tensor(gamma, dtype=torch.float64, requires_grad=True) if affine else None
    tb = torch.tensor(beta, dtype=torch.float64, requires_grad=True) if affine else None
    y = torch.nn.functional.layer_norm(t, (c,), tg, tb, 1e-5)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    np.testing.assert_allclose(
        F.layer_norm(x, gamma, beta, 1e-5), y.detach().numpy(), rtol=1e-4, atol=1e-5
    )
    dx, dg, db = F.layer_norm_backward(dy, x, gamma, 1e-5)
    np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-4, atol=1e-4)
    if affine:
        np.testing.assert_allclose(dg, tg.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_norms_finite_differences(rng):
    x = rng.standard_normal((2, 3, 2, 6)).astype(np.float64).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, 6).astype(np.float32)
    beta = rng.standard_normal(6).astype(np.float32)
    h = 1e-2
    for fwd, bwd in (
        (
            lambda x_, g_, b_: F.group_norm(x_, 3, g_, b_),
            lambda: F.group_norm_backward(dy, x, 3, gamma),
        ),
        (lambda x_, g_, b_: F.layer_norm(x_, g_, b_), lambda: F.layer_norm_backward(dy, x, gamma)),
    ):
        dx, dg, db = bwd()
        for arr, got in ((x, dx), (gamma, dg), (beta, db)):
            num = np.zeros(arr.shape)
            for idx in np.ndindex(arr.shape):
                ap, am = arr.copy(), arr.copy()
                ap[idx] += h
                am[idx] -= h
                args_p = [ap if a is arr else a for a in (x, gamma, beta)]
                args_m = [am if a is arr else a for a in (x, gamma, beta)]
                num[idx] = (np.sum(dy * fwd(*args_p)) - np.sum(dy * fwd(*args_m))) / (2 * h)
            np.testing.assert_allclose(got, num, rtol=2e-2, atol=3e-3)


# ---- bad input ----------------------------------------------------------------


def test_bad_arguments_name_the_argument():
    x = np.zeros((2, 4, 4, 6), np.float32)
    for size in (0, 4, -3):
        with pytest.raises(ValueError, match="^size"):
            F.lrn(x, size)
        with pytest.raises(ValueError, match="^size"):
            cnnx.LocalResponseNormalization(size)
    with pytest.raises(TypeError, match="^size"):
        cnnx.LocalResponseNormalization(5.0)
    with pytest.raises(ValueError, match="^bias"):
        F.lrn(x, 5, bias=0.0)
    with pytest.raises(ValueError, match="^alpha"):
        cnnx.LocalResponseNormalization(5, alpha=float("nan"))
    layer = cnnx.LocalResponseNormalization(5)
    with pytest.raises(ValueError, match="^size"):
        layer.size = 2
    with pytest.raises(ValueError, match="^groups"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="^groups"):
        cnnx.Sequential([cnnx.GroupNormalization(4)], input_shape=(4, 4, 6))
    with pytest.raises(ValueError, match="^groups"):
        cnnx.GroupNormalization(0)
    with pytest.raises(ValueError, match="^epsilon"):
        cnnx.GroupNormalization(2, epsilon=0.0)
    with pytest.raises(ValueError, match="^eps"):
        F.layer_norm(x, eps=-1.0)
    with pytest.raises(ValueError, match="^axis"):
        cnnx.LayerNormalization(axis=1)
    with pytest.raises(ValueError, match="^gamma"):
        F.layer_norm(x, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="^dy"):
        F.group_norm_backward(np.zeros((2, 4, 4, 5), np.float32), x, 2)
    with pytest.raises(ValueError, match="^x"):
        F.group_norm(np.zeros(6, np.float32), 2)


# ---- layers in models ---------------------------------------------------------


def _models():
    yield (
        "alexnet_like",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(16, 3, strides=2, activation="relu"),
                cnnx.LocalResponseNormalization(5, 1e-4, 0.75, 2.0),
                cnnx.MaxPool2D(3, 2, ceil_mode=True),
                cnnx.Conv2D(24, 3, padding="same", activation="relu"),
                cnnx.LocalResponseNormalization(3, 0.1, 0.5, 1.0),
                cnnx.GlobalAvgPool2D(),
                cnnx.Dense(5, activation="softmax"),
            ],
            input_shape=(23, 21, 3),
        ),
    )
    yield (
        "convnext_like",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(16, 3, padding="same"),
                cnnx.LayerNormalization(epsilon=1e-6),
                cnnx.Conv2D(32, 1, activation="gelu"),
                cnnx.GroupNormalization(8, center=False),
                cnnx.Conv2D(16, 3, strides=2),
                cnnx.GroupNormalization(1, scale=False),
                cnnx.LayerNormalization(center=False),
                cnnx.Flatten(),
                cnnx.Dense(20),
                cnnx.LayerNormalization(),
                cnnx.GroupNormalization(4),
                cnnx.Dense(6),
            ],
            input_shape=(12, 13, 2),
        ),
    )


def _randomise(model, rng):
    from cnnx.layers.base import walk

    for layer, _ in walk(model.layers):
        for name, p in layer.params.items():
            if name in ("gamma", "beta"):
                p[...] = (
                    rng.uniform(0.5, 1.5, p.shape)
                    if name == "gamma"
                    else rng.standard_normal(p.shape) * 0.3
                )
    return model


def _randomised(make, rng):
    """``make`` with random gammas and betas drawn from ``rng``."""
    return lambda: _randomise(make(), rng)


@pytest.mark.parametrize("name,make", list(_models()), ids=harness.model_ids(_models()))
@pytest.mark.parametrize("threads", [1, 2])
def test_inference_plan_matches_layer_by_layer(name, make, threads, isa, rng):
    harness.check_inference_plan(_randomised(make, rng), threads, rng)


@pytest.mark.parametrize("name,make", list(_models()), ids=harness.model_ids(_models()))
@pytest.mark.parametrize("threads", [1, 2])
def test_training_plan_matches_layer_by_layer(name, make, threads, isa, rng):
    # both models get the same gammas and betas (a fresh generator each)
    harness.check_training_plan(lambda: _randomise(make(), np.random.default_rng(9)), threads, rng)


def test_group_norm_trains_like_torch(rng):
    """Twenty SGD steps of a conv + group norm + dense network against PyTorch."""
    torch = torch_or_skip()
    cnnx.set_seed(1)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(8, 3),
            cnnx.GroupNormalization(4, epsilon=1e-5),
            cnnx.ReLU(),
            cnnx.LayerNormalization(epsilon=1e-5),
            cnnx.Flatten(),
            cnnx.Dense(3),
        ],
        input_shape=(6, 6, 2),
    )
    _randomise(model, rng)
    conv, gn, _, ln, _, dense = model.layers
    tconv = torch.nn.Conv2d(2, 8, 3)
    tgn = torch.nn.GroupNorm(4, 8, eps=1e-5)
    tln = torch.nn.LayerNorm(8, eps=1e-5)
    tdense = torch.nn.Linear(4 * 4 * 8, 3)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(conv.params["kernel"].transpose(3, 2, 0, 1)))
        tconv.bias.copy_(torch.tensor(conv.params["bias"]))
        tgn.weight.copy_(torch.tensor(gn.params["gamma"]))
        tgn.bias.copy_(torch.tensor(gn.params["beta"]))
        tln.weight.copy_(torch.tensor(ln.params["gamma"]))
        tln.bias.copy_(torch.tensor(ln.params["beta"]))
        tdense.weight.copy_(torch.tensor(dense.params["kernel"].T))
        tdense.bias.copy_(torch.tensor(dense.params["bias"]))
    params = (
        list(tconv.parameters())
        + list(tgn.parameters())
        + list(tln.parameters())
        + list(tdense.parameters())
    )
    opt = torch.optim.SGD(params, lr=0.1)
    model.compile(cnnx.optim.SGD(0.1), "cross_entropy")
    x = rng.standard_normal((10, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    for _ in range(20):
        loss = model.train_on_batch(x, y)
        opt.zero_grad()
        h = torch.relu(tgn(tconv(torch.tensor(_nchw(x)))))
        h = tln(h.permute(0, 2, 3, 1))
        out = tdense(h.reshape(10, -1))
        tloss = torch.nn.functional.cross_entropy(out, torch.tensor(y))
        tloss.backward()
        opt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-4, abs=1e-5)


def test_summary_and_save_load(tmp_path, rng):
    model, _ = harness.check_save_load(
        _randomised(dict(_models())["convnext_like"], rng), tmp_path, rng
    )
    rows = model.summary(formulas=True, print_fn=None)
    gn = next(r for r in rows if r.layer == "GroupNormalization")
    assert gn.formulas[0] == "8 groups of 4 channels" and gn.params == 32


@pytest.mark.parametrize("opset", [13, 17])
def test_onnx_export_matches_onnxruntime(tmp_path, opset, rng):
    models = [(name, _randomised(make, rng)) for name, make in _models()]
    harness.check_onnx_export(models, tmp_path, rng, opset)
