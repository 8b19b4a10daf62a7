"""Issue 19's activations (ELU, SELU, GELU erf/tanh, SiLU, Hardswish,
Hardsigmoid, ReLU6/Clip, Softplus, Softsign, LogSoftmax, PReLU): PyTorch
parity forward and backward on every ISA and several ranks, finite
differences, edge values, bad input, the layers in both compiled plans
against the layer-by-layer path, and ONNX export run by ONNX Runtime."""

import numpy as np
import pytest

import cnnx
import cnnx.functional as F
from conftest import torch_or_skip
import layer_harness as harness

SELU = (F.SELU_ALPHA, F.SELU_SCALE) if hasattr(F, "SELU_ALPHA") else None

# name -> (cnnx forward, cnnx backward(dy, x), torch function name/args)
CASES = {
    "elu": (
        lambda x: F.elu(x, 0.7),
        lambda dy, x: F.elu_backward(dy, x, 0.7),
        lambda tf, t: tf.elu(t, 0.7),
    ),
    "selu": (F.selu, F.selu_backward, lambda tf, t: tf.selu(t)),
    "gelu": (F.gelu, F.gelu_backward, lambda tf, t: tf.gelu(t)),
    "gelu_tanh": (
        lambda x: F.gelu(x, "tanh"),
        lambda dy, x: F.gelu_backward(dy, x, "tanh"),
        lambda tf, t: tf.gelu(t, approximate="tanh"),
    ),
    "silu": (F.silu, F.silu_backward, lambda tf, t: tf.silu(t)),
    "hardswish": (F.hardswish, F.hardswish_backward, lambda tf, t: tf.hardswish(t)),
    "hardsigmoid": (F.hardsigmoid, F.hardsigmoid_backward, lambda tf, t: tf.hardsigmoid(t)),
    "hardsigmoid_onnx": (
        lambda x: F.hardsigmoid(x, 0.2, 0.5),
        lambda dy, x: F.hardsigmoid_backward(dy, x, 0.2, 0.5),
        lambda tf, t: (0.2 * t + 0.5).clamp(0, 1),
    ),
    "relu6": (F.relu6, F.relu6_backward, lambda tf, t: tf.relu6(t)),
    "clip": (
        lambda x: F.clip(x, -1.5, 0.25),
        lambda dy, x: F.clip_backward(dy, x, -1.5, 0.25),
        lambda tf, t: tf.hardtanh(t, -1.5, 0.25),
    ),
    "softplus": (F.softplus, F.softplus_backward, lambda tf, t: tf.softplus(t)),
    "softsign": (F.softsign, F.softsign_backward, lambda tf, t: tf.softsign(t)),
}

SHAPES = [(7,), (5, 33), (3, 17, 9), (2, 6, 5, 8), (2, 40, 41, 64)]  # the last one threads


def _torch_ref(case, x, dy):
    torch = torch_or_skip()
    tf = torch.nn.functional
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = CASES[case][2](tf, t)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_parity_with_torch(case, shape, isa, rng):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    # points just off the kinks (the gradient's choice there is tested separately)
    x[np.abs(np.abs(x) - 3) < 1e-3] += 0.01
    dy = rng.standard_normal(shape).astype(np.float32)
    y_ref, dx_ref = _torch_ref(case, x, dy)
    fwd, bwd, _ = CASES[case]
    np.testing.assert_allclose(fwd(x), y_ref, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(bwd(dy, x), dx_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_edge_values(case, isa):
    torch = torch_or_skip()
    x = np.array(
        [
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            1e-7,
            -1e-7,
            3.0,
            -3.0,
            6.0,
            20.0,
            -20.0,
            88.0,
            -88.0,
            100.0,
            -100.0,
            1e4,
            -1e4,
            0.25,
            -1.5,
        ],
        np.float32,
    )
    dy = np.ones_like(x)
    fwd, bwd, ref = CASES[case]
    t = torch.tensor(x, requires_grad=True)  # float32, as cnnx
    y_ref = ref(torch.nn.functional, t)
    y_ref.backward(torch.ones_like(t))
    np.testing.assert_allclose(fwd(x), y_ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bwd(dy, x), t.grad.numpy(), rtol=1e-5, atol=1e-6)
    # NaN in, NaN out
    y = fwd(np.array([np.nan, 1.0], np.float32))
    assert np.isnan(y[0]) and np.isfinite(y[1])


def _fd(f, x, dy, h=1e-2):
    """Central differences of sum(dy * f(x)) evaluated by cnnx itself (float32)."""
    g = np.zeros(x.shape, np.float64)
    flat = x.reshape(-1)
    for i in range(flat.size):
        xp, xm = flat.copy(), flat.copy()
        xp[i] += h
        xm[i] -= h
        g.reshape(-1)[i] = (
            np.sum(dy * f(xp.reshape(x.shape)).astype(np.float64))
            - np.sum(dy * f(xm.reshape(x.shape)).astype(np.float64))
        ) / (2 * h)
    return g


@pytest.mark.parametrize("case", list(CASES))
def test_finite_differences(case, rng):
    x = (rng.standard_normal((3, 11)) * 2).astype(np.float32)
    for _ in range(3):  # away from every kink
        for k in (0.0, 3.0, -3.0, 2.5, -2.5, 0.25, -1.5, 6.0):
            x[np.abs(x - k) < 0.05] += 0.11
    dy = rng.standard_normal(x.shape).astype(np.float32)
    fwd, bwd, _ = CASES[case]
    np.testing.assert_allclose(bwd(dy, x), _fd(fwd, x, dy), rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_log_softmax(axis, isa, rng):
    torch = torch_or_skip()
    x = (rng.standard_normal((4, 5, 37)) * 10).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y_ref = torch.log_softmax(t, axis)
    y_ref.backward(torch.tensor(dy, dtype=torch.float64))
    y = F.log_softmax(x, axis)
    np.testing.assert_allclose(y, y_ref.detach().numpy(), rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(
        F.log_softmax_backward(dy, y, axis), t.grad.numpy(), rtol=1e-4, atol=1e-5
    )
    big = np.array([[1e30, 0.0, -1e30]], np.float32)  # no overflow
    np.testing.assert_allclose(F.log_softmax(big), [[0.0, -1e30, -2e30]], rtol=1e-6)


@pytest.mark.parametrize("slope_shape", [(), (1,), (8,), (5, 8), (4, 5, 8)])
def test_prelu_parity(slope_shape, isa, rng):
    x = rng.standard_normal((3, 4, 5, 8)).astype(np.float32)
    slope = rng.uniform(-0.5, 0.8, slope_shape).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    xd = x.astype(np.float64)
    y_ref = np.where(xd > 0, xd, slope * xd)
    np.testing.assert_allclose(F.prelu(x, slope), y_ref, rtol=1e-6, atol=1e-7)
    dx, ds = F.prelu_backward(dy, x, slope)
    np.testing.assert_allclose(dx, np.where(xd > 0, dy, slope * dy), rtol=1e-6, atol=1e-7)
    full = np.where(xd > 0, 0.0, dy * xd)
    ds_ref = full.reshape((-1,) + tuple(slope_shape) if slope_shape else -1).sum(0)
    if slope_shape == (1,):
        ds_ref = full.sum().reshape(1)
    np.testing.assert_allclose(ds, ds_ref, rtol=1e-4, atol=1e-4)
    assert ds.shape == slope.shape


def test_prelu_per_channel_matches_torch(isa, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 6, 7, 5)).astype(np.float32)
    slope = rng.uniform(0.0, 0.5, 5).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    w = torch.tensor(slope, requires_grad=True)
    y = torch.nn.functional.prelu(t, w)
    y.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(
        F.prelu(x, slope), y.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-6
    )
    dx, ds = F.prelu_backward(dy, x, slope)
    np.testing.assert_allclose(dx, t.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-6)
    np.testing.assert_allclose(ds, w.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_bad_arguments_name_the_argument():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="^min_value"):
        F.clip(x, 2.0, 1.0)
    with pytest.raises(ValueError, match="^min_value"):
        cnnx.Clip(1.0, -1.0)
    with pytest.raises(TypeError, match="^max_value"):
        cnnx.Clip(0.0, "6")
    with pytest.raises(ValueError, match="^alpha"):
        F.elu(x, float("inf"))
    with pytest.raises(TypeError, match="^alpha"):
        cnnx.ELU(alpha=None)
    with pytest.raises(ValueError, match="^approximate"):
        F.gelu(x, "sigmoid")
    with pytest.raises(ValueError, match="^approximate"):
        cnnx.GELU(approximate="fast")
    with pytest.raises(ValueError, match="^slope"):
        F.prelu(x, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="^dy"):
        F.silu_backward(np.zeros((2, 4), np.float32), x)
    with pytest.raises(ValueError, match="^axis"):
        F.log_softmax(x, 2)
    with pytest.raises(ValueError, match="^shared_axes"):
        cnnx.Sequential([cnnx.PReLU(shared_axes=[2])], input_shape=(4, 4, 3))
    with pytest.raises(ValueError, match="^shared_axes"):
        cnnx.Sequential([cnnx.PReLU(shared_axes=[4])], input_shape=(4, 4, 3))
    with pytest.raises(TypeError, match="^shared_axes"):
        cnnx.PReLU(shared_axes="channels")
    with pytest.raises(ValueError, match="^axis"):
        cnnx.Sequential([cnnx.LogSoftmax(axis=0)], input_shape=(4,))
    layer = cnnx.Clip(0.0, 1.0)
    with pytest.raises(ValueError, match="^min_value"):
        layer.min_value = 2.0


def _models():
    yield (
        "conv_activations",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(8, 3, padding="same", activation="gelu"),
                cnnx.Conv2D(8, 3, activation="silu"),
                cnnx.ELU(0.5),
                cnnx.Conv2D(8, 1, activation="hard_swish"),
                cnnx.SELU(),
                cnnx.Conv2D(6, 3, strides=2, activation="relu6"),
                cnnx.Hardsigmoid(),
                cnnx.PReLU(shared_axes=[1, 2]),
                cnnx.Conv2D(6, 3, padding="same"),
                cnnx.Softsign(),
                cnnx.PReLU(),
                cnnx.Clip(-0.5, 0.4),
                cnnx.Conv2D(5, 1, activation="softplus"),
                cnnx.GELU("tanh"),
                cnnx.Flatten(),
                cnnx.Dense(12, activation="elu"),
                cnnx.Hardswish(),
                cnnx.PReLU(alpha_initializer=0.1, shared_axes=1),
                cnnx.Dense(16, activation="gelu_tanh"),
                cnnx.SiLU(),
                cnnx.Softplus(),
                cnnx.ReLU6(),
                cnnx.Dense(5, activation="softmax"),
            ],
            input_shape=(11, 10, 3),
        ),
    )
    yield (
        "dense_3d",
        lambda: cnnx.Sequential(
            [
                cnnx.Flatten(),
                cnnx.Dense(24, activation="selu"),
                cnnx.PReLU(),
                cnnx.Dense(24, activation="hard_sigmoid"),
                cnnx.Dense(7, activation="log_softmax"),
            ],
            input_shape=(3, 4, 2),
        ),
    )


@pytest.mark.parametrize("name,make", list(_models()), ids=harness.model_ids(_models()))
@pytest.mark.parametrize("threads", [1, 2])
def test_inference_plan_matches_layer_by_layer(name, make, threads, isa, rng):
    harness.check_inference_plan(make, threads, rng)


@pytest.mark.parametrize("name,make", list(_models()), ids=harness.model_ids(_models()))
@pytest.mark.parametrize("threads", [1, 2])
def test_training_plan_matches_layer_by_layer(name, make, threads, isa, rng):
    harness.check_training_plan(make, threads, rng)


def test_layers_match_torch_modules(rng):
    """A small network's layers against torch.nn modules of the same names."""
    torch = torch_or_skip()
    nn = torch.nn
    layers = [
        (cnnx.ELU(0.3), nn.ELU(0.3)),
        (cnnx.SELU(), nn.SELU()),
        (cnnx.GELU(), nn.GELU()),
        (cnnx.GELU("tanh"), nn.GELU("tanh")),
        (cnnx.SiLU(), nn.SiLU()),
        (cnnx.Hardswish(), nn.Hardswish()),
        (cnnx.Hardsigmoid(), nn.Hardsigmoid()),
        (cnnx.ReLU6(), nn.ReLU6()),
        (cnnx.Clip(-0.2, 0.7), nn.Hardtanh(-0.2, 0.7)),
        (cnnx.Softplus(), nn.Softplus()),
        (cnnx.Softsign(), nn.Softsign()),
        (cnnx.LogSoftmax(), nn.LogSoftmax(-1)),
    ]
    x = rng.standard_normal((4, 9)).astype(np.float32) * 2
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for ours, theirs in layers:
        t = torch.tensor(x, requires_grad=True)
        y = theirs(t)
        y.backward(torch.tensor(dy))
        np.testing.assert_allclose(
            ours.forward(x, training=True),
            y.detach().numpy(),
            rtol=1e-5,
            atol=1e-6,
            err_msg=type(ours).__name__,
        )
        np.testing.assert_allclose(
            ours.backward(dy), t.grad.numpy(), rtol=1e-5, atol=1e-5, err_msg=type(ours).__name__
        )


def test_prelu_layer_trains_like_torch(rng):
    torch = torch_or_skip()
    layer = cnnx.PReLU(shared_axes=[1, 2])
    x = rng.standard_normal((3, 5, 6, 4)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    tm = torch.nn.PReLU(4, init=0.25)
    t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    y = tm(t)
    y.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(
        layer.forward(x, training=True), y.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-6
    )
    np.testing.assert_allclose(layer.backward(dy), t.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-6)
    np.testing.assert_allclose(layer.grads["alpha"], tm.weight.grad.numpy(), rtol=1e-4)
    assert layer.count_params() == 4


def test_edits_are_seen(rng):
    model = cnnx.Sequential([cnnx.Dense(6), cnnx.ELU(1.0), cnnx.Clip(-1.0, 1.0)], input_shape=(4,))
    x = rng.standard_normal((5, 4)).astype(np.float32) * 3
    model.predict(x)
    model.layers[1].alpha = 0.1
    model.layers[2].max_value = 0.5
    np.testing.assert_allclose(model.predict(x), model._forward(x, False), rtol=1e-6)
    assert model.predict(x).max() <= 0.5


def test_save_load_round_trip(tmp_path, rng):
    harness.check_save_load(dict(_models())["conv_activations"], tmp_path, rng)


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_onnx_export_matches_onnxruntime(tmp_path, opset, rng):
    harness.check_onnx_export(_models(), tmp_path, rng, opset)
