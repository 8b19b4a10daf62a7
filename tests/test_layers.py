"""Layers: backward against finite differences, forward against NumPy,
initialisation, validation, frozen parameters."""

import numpy as np
import pytest

import cnnx
from cnnx.layers.base import initialize


def _loss(layer, x, r):
    """L = sum(forward(x) * r) in float64 (r fixed): dL/dy = r."""
    y = layer._forward(np.ascontiguousarray(x, np.float32), True)
    return float(np.sum(y.astype(np.float64) * r))


def grad_check(layer, x, rng, n_checks=24, eps=1e-2, tol=2e-2, check_params=True):
    """Compare backward's dx and parameter gradients with central differences."""
    x = np.ascontiguousarray(x, np.float32)
    y = layer.forward(x, training=True)
    r = rng.standard_normal(y.shape)
    layer.zero_grad()
    y = layer.forward(x, training=True)
    dx = layer.backward(r.astype(np.float32))
    assert dx.shape == x.shape

    def check(arr, analytic, what):
        flat = arr.reshape(-1)
        idx = rng.choice(flat.size, size=min(n_checks, flat.size), replace=False)
        num = np.empty(len(idx))
        for k, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + eps
            lp = _loss(layer, x, r)
            flat[i] = old - eps
            lm = _loss(layer, x, r)
            flat[i] = old
            num[k] = (lp - lm) / (2 * eps)
        ana = analytic.reshape(-1)[idx].astype(np.float64)
        scale = max(np.abs(num).max(), np.abs(ana).max(), 1e-3)
        err = np.abs(num - ana).max() / scale
        assert err < tol, f"{what}: max rel err {err:.3g}\nnum {num}\nana {ana}"

    check(x, dx, "dx")
    if check_params:
        for name, p in layer.params.items():
            check(p, layer.grads[name].copy(), name)
    return dx


def away_from_zero(rng, shape, lo=0.05):
    """Values whose magnitude stays >= lo (no ReLU kink inside +-eps)."""
    v = rng.uniform(lo, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
    return v.astype(np.float32)


# ---- Conv2D -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(filters=4, kernel_size=3),
        dict(filters=4, kernel_size=3, strides=2, padding="same"),
        dict(filters=6, kernel_size=(3, 2), padding=((1, 0), (0, 1)), dilation_rate=(1, 2)),
        dict(filters=4, kernel_size=3, groups=2, padding=1),
        dict(filters=3, kernel_size=1, use_bias=False),
        dict(filters=4, kernel_size=3, activation="tanh", padding="same"),
    ],
)
def test_conv2d_gradients(kw, rng):
    cnnx.set_seed(1)
    layer = cnnx.Conv2D(**kw)
    layer.build((7, 6, 4))
    x = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    grad_check(layer, x, rng)


def test_conv2d_relu_fused_gradients(rng):
    cnnx.set_seed(2)
    layer = cnnx.Conv2D(5, 3, activation="relu", padding="same")
    layer.build((6, 6, 3))
    layer.params["bias"][...] = 0.1
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    # keep pre-activations away from the kink so that +-eps never crosses it
    z = cnnx.functional.conv2d(x, layer.params["kernel"], layer.params["bias"], 1, "same")
    assert np.abs(z).min() > 3e-3 * 5 or np.mean(np.abs(z) < 0.02) < 0.05
    grad_check(layer, x, rng, eps=3e-3, tol=5e-2)


def naive_conv(x, w, b, stride, pad):
    x = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    m, h, wd, _ = x.shape
    f = w.shape[0]
    oh, ow = (h - f) // stride + 1, (wd - f) // stride + 1
    out = np.zeros((m, oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + f, j * stride : j * stride + f, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out + b


def test_conv2d_forward_matches_numpy(rng):
    layer = cnnx.Conv2D(5, 3, strides=2, padding=1)
    x = rng.standard_normal((3, 9, 9, 2)).astype(np.float32)
    y = layer.forward(x)
    ref = naive_conv(x, layer.params["kernel"], layer.params["bias"], 2, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    assert layer.output_shape == (5, 5, 5)


def test_conv2d_parameter_count_and_formulas():
    layer = cnnx.Conv2D(10, 3)
    layer.build((32, 32, 3))
    assert layer.count_params() == 280  # the notes' 10 filters of 3x3x3
    assert layer.summary_formulas() == ["floor((32-3)/1)+1 = 30", "(3*3*3+1)*10 = 280"]
    layer = cnnx.Conv2D(4, 3, strides=2, padding=1)
    layer.build((7, 8, 2))
    assert layer.summary_formulas()[:2] == [
        "n_H: floor((7+2*1-3)/2)+1 = 4",
        "n_W: floor((8+2*1-3)/2)+1 = 4",
    ]


# ---- pooling ----------------------------------------------------------------------


def distinct_values(rng, shape):
    """A permutation of well-separated values: no ties inside any window."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.1).astype(np.float32)


@pytest.mark.parametrize(
    "make",
    [
        lambda: cnnx.MaxPool2D(2),
        lambda: cnnx.MaxPool2D(3, strides=2, padding=1),
        lambda: cnnx.AvgPool2D(2),
        lambda: cnnx.AvgPool2D(3, strides=2, padding="same", count_include_pad=False),
        lambda: cnnx.AdaptiveAvgPool2D((3, 2)),
        lambda: cnnx.AdaptiveMaxPool2D(3),
        lambda: cnnx.GlobalAvgPool2D(),
    ],
)
def test_pooling_gradients(make, rng):
    layer = make()
    x = distinct_values(rng, (2, 7, 6, 3))
    layer.build(x.shape[1:])
    grad_check(layer, x, rng, eps=1e-2)


def test_maxpool_forward_matches_numpy(rng):
    x = rng.standard_normal((2, 8, 6, 3)).astype(np.float32)
    y = cnnx.MaxPool2D(2).forward(x)
    ref = x.reshape(2, 4, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(y, ref)
    y = cnnx.AvgPool2D(2).forward(x)
    np.testing.assert_allclose(y, x.reshape(2, 4, 2, 3, 2, 3).mean(axis=(2, 4)), rtol=1e-6)
    y = cnnx.GlobalAvgPool2D().forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_pool_shapes_and_formulas():
    layer = cnnx.MaxPool2D(2)
    assert layer.build((28, 28, 8)) == (14, 14, 8)
    assert layer.summary_formulas() == ["floor((28-2)/2)+1 = 14"]
    a = cnnx.AdaptiveAvgPool2D(4)
    assert a.build((8, 8, 5)) == (4, 4, 5)
    assert a.summary_formulas()[0] == "n_H: stride = 8//4 = 2, kernel = 8-(4-1)*2 = 2"
    assert cnnx.GlobalAvgPool2D().build((5, 5, 7)) == (7,)


# ---- Dense and activations --------------------------------------------------------


@pytest.mark.parametrize("act", [None, "relu", "leaky_relu", "sigmoid", "tanh", "softmax"])
def test_dense_gradients(act, rng):
    cnnx.set_seed(3)
    layer = cnnx.Dense(7, activation=act)
    layer.build((5,))
    layer.params["bias"][...] = rng.uniform(-0.5, 0.5, 7)
    x = away_from_zero(rng, (4, 5))
    if act in ("relu", "leaky_relu"):
        z = x @ layer.params["kernel"] + layer.params["bias"]
        assert np.abs(z).min() > 1e-3
        grad_check(layer, x, rng, eps=min(1e-2, float(np.abs(z).min()) / 20), tol=5e-2)
    else:
        grad_check(layer, x, rng)


def test_dense_forward_matches_numpy(rng):
    layer = cnnx.Dense(6, activation="relu")
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = layer.forward(x)
    ref = np.maximum(x @ layer.params["kernel"] + layer.params["bias"], 0)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 4 * 6 + 6
    assert layer.summary_formulas() == ["4*6+6 = 30"]


@pytest.mark.parametrize(
    "make", [cnnx.ReLU, lambda: cnnx.LeakyReLU(0.2), cnnx.Sigmoid, cnnx.Tanh, cnnx.Softmax]
)
def test_activation_layer_gradients(make, rng):
    layer = make()
    x = away_from_zero(rng, (3, 4, 5))
    grad_check(layer, x, rng, eps=1e-2)


def test_activation_layers_forward(rng):
    x = rng.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(cnnx.ReLU()(x), np.maximum(x, 0))
    np.testing.assert_allclose(cnnx.LeakyReLU(0.1)(x), np.where(x > 0, x, 0.1 * x), rtol=1e-6)
    np.testing.assert_allclose(cnnx.Sigmoid()(x), 1 / (1 + np.exp(-x)), rtol=1e-5)
    np.testing.assert_allclose(cnnx.Tanh()(x), np.tanh(x), rtol=1e-5, atol=1e-6)
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(cnnx.Softmax()(x), e / e.sum(1, keepdims=True), rtol=1e-5)


# ---- BatchNormalization, Dropout, Flatten ----------------------------------------


def test_batchnorm_gradients_training(rng):
    layer = cnnx.BatchNormalization()
    layer.build((3, 3, 4))
    layer.params["gamma"][...] = rng.uniform(0.5, 1.5, 4)
    layer.params["beta"][...] = rng.uniform(-0.5, 0.5, 4)
    x = rng.standard_normal((4, 3, 3, 4)).astype(np.float32) * 2 + 1
    saved = {k: v.copy() for k, v in layer.buffers.items()}
    grad_check(layer, x, rng, eps=1e-2, tol=3e-2)
    assert not np.allclose(layer.buffers["moving_mean"], saved["moving_mean"])


def test_batchnorm_forward_and_running_stats(rng):
    layer = cnnx.BatchNormalization(momentum=0.9, epsilon=1e-5)
    x = (rng.standard_normal((8, 2, 2, 3)) * 3 + 2).astype(np.float32)
    y = layer.forward(x, training=True)
    mu = x.reshape(-1, 3).mean(0)
    var = x.reshape(-1, 3).var(0)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.buffers["moving_mean"], 0.1 * mu, rtol=1e-4)
    unbiased = x.reshape(-1, 3).var(0, ddof=1)
    np.testing.assert_allclose(layer.buffers["moving_var"], 0.9 + 0.1 * unbiased, rtol=1e-4)
    y_eval = layer.forward(x, training=False)
    ref = (x - layer.buffers["moving_mean"]) / np.sqrt(layer.buffers["moving_var"] + 1e-5)
    np.testing.assert_allclose(y_eval, ref, rtol=1e-4, atol=1e-4)


def test_dropout_train_and_inference(rng):
    cnnx.set_seed(0)
    layer = cnnx.Dropout(0.4)
    x = rng.uniform(1, 2, (50, 40)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert 0.5 < kept.mean() < 0.7
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-6)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, np.where(kept, dy / 0.6, 0), rtol=1e-6)
    # set_seed makes the mask repeatable
    cnnx.set_seed(0)
    y2 = cnnx.Dropout(0.4).forward(x, training=True)
    np.testing.assert_array_equal(y, y2)


def test_flatten_round_trip(rng):
    layer = cnnx.Flatten()
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y, x.reshape(2, -1))
    np.testing.assert_array_equal(layer.backward(y), x)


# ---- Residual -----------------------------------------------------------------------


def test_residual_identity_gradients_and_forward(rng):
    cnnx.set_seed(4)
    block = [
        cnnx.Conv2D(3, 3, padding="same", activation="tanh"),
        cnnx.Conv2D(3, 3, padding="same"),
    ]
    res = cnnx.Residual(block, activation="tanh")
    assert res.build((5, 5, 3)) == (5, 5, 3)
    assert res.shortcut is None
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    y = res.forward(x)
    h = block[1].forward(block[0].forward(x))
    np.testing.assert_allclose(y, np.tanh(h + x), rtol=1e-5, atol=1e-5)
    grad_check(res, x, rng, check_params=False)
    # parameter gradients of the inner layers, through the skip connection
    for layer in block:
        for name, p in layer.params.items():
            flat = p.reshape(-1)
            r = rng.standard_normal(y.shape)
            res.zero_grad()
            res.forward(x, training=True)
            res.backward(r.astype(np.float32))
            g = layer.grads[name].reshape(-1).copy()
            for i in rng.choice(flat.size, min(5, flat.size), replace=False):
                old = flat[i]
                flat[i] = old + 1e-2
                lp = _loss(res, x, r)
                flat[i] = old - 1e-2
                lm = _loss(res, x, r)
                flat[i] = old
                assert abs((lp - lm) / 2e-2 - g[i]) < 2e-2 * max(1.0, abs(g[i]))


def test_residual_projection_shortcut(rng):
    cnnx.set_seed(5)
    res = cnnx.Residual(
        [cnnx.Conv2D(6, 3, strides=2, padding="same", activation="tanh")], activation=None
    )
    assert res.build((8, 8, 3)) == (4, 4, 6)
    sc = res.shortcut[0]
    assert isinstance(sc, cnnx.Conv2D) and sc.kernel_size == (1, 1) and sc.strides == (2, 2)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    y = res.forward(x)
    ref = res.block[0].forward(x) + naive_conv(x, sc.params["kernel"], sc.params["bias"], 2, 0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    grad_check(res, x, rng, check_params=False)
    assert res.count_params() == (3 * 3 * 3 + 1) * 6 + (3 + 1) * 6


def test_residual_errors():
    with pytest.raises(TypeError, match="^layers"):
        cnnx.Residual("conv")
    res = cnnx.Residual([cnnx.Conv2D(4, 3)], shortcut="identity")
    with pytest.raises(ValueError, match="^shortcut"):
        res.build((8, 8, 4))
    res = cnnx.Residual([cnnx.Conv2D(4, 3, strides=2)])  # 28 -> 13: no 1x1 stride fits
    with pytest.raises(ValueError, match="^shortcut"):
        res.build((28, 28, 4))


def test_residual_docstring_explains_identity():
    doc = cnnx.Residual.__doc__
    assert "identity path stays untouched" in doc.lower() or "untouched" in doc


# ---- initialisation, seeds, validation, freezing -----------------------------------


def test_initializers_statistics_and_seed():
    cnnx.set_seed(7)
    a = initialize("he_normal", (400, 300), 400, 300)
    assert abs(a.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400) * 5
    g = initialize("glorot_uniform", (400, 300), 400, 300)
    lim = np.sqrt(6 / 700)
    assert g.max() <= lim and g.min() >= -lim and abs(g.std() - lim / np.sqrt(3)) < 0.05 * lim
    cnnx.set_seed(7)
    np.testing.assert_array_equal(a, initialize("he_normal", (400, 300), 400, 300))
    with pytest.raises(ValueError, match="^kernel_initializer"):
        initialize("bogus", (2, 2), 2, 2)


def test_layer_init_reproducible_with_set_seed():
    def make():
        layer = cnnx.Conv2D(4, 3, activation="relu")
        layer.build((6, 6, 2))
        return layer.params["kernel"].copy()

    cnnx.set_seed(11)
    a = make()
    cnnx.set_seed(11)
    b = make()
    cnnx.set_seed(12)
    c = make()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # "auto" picks He normal before a ReLU: std sqrt(2/fan_in), fan_in = 3*3*2
    cnnx.set_seed(0)
    big = cnnx.Conv2D(512, 3, activation="relu")
    big.build((4, 4, 2))
    assert abs(big.params["kernel"].std() - np.sqrt(2 / 18)) < 0.02


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="^filters"):
        cnnx.Conv2D(0, 3)
    with pytest.raises(TypeError, match="^kernel_size"):
        cnnx.Conv2D(4, 2.5)
    with pytest.raises(ValueError, match="^padding"):
        cnnx.Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="^activation"):
        cnnx.Dense(4, activation="mish")
    with pytest.raises(ValueError, match="^groups"):
        cnnx.Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match="^rate"):
        cnnx.Dropout(1.0)
    with pytest.raises(ValueError, match="^input_shape"):
        cnnx.Dense(3).build((4, 4, 2))
    layer = cnnx.Conv2D(4, 3)
    layer.build((8, 8, 3))
    with pytest.raises(ValueError, match="^x"):
        layer.forward(np.zeros((1, 8, 8, 2), np.float32))
    with pytest.raises(ValueError, match="^dy"):
        cnnx.Dense(3).backward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="^f"):
        cnnx.Conv2D(4, 5).build((3, 3, 1))


def test_frozen_layer_gets_no_gradient_but_passes_dx(rng):
    layer = cnnx.Conv2D(3, 3, padding="same")
    x = rng.standard_normal((2, 5, 5, 2)).astype(np.float32)
    layer.forward(x, training=True)
    dy = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    dx_trainable = layer.backward(dy)
    layer.zero_grad()
    layer.trainable = False
    layer.forward(x, training=True)
    dx_frozen = layer.backward(dy)
    np.testing.assert_allclose(dx_frozen, dx_trainable, rtol=1e-6)
    assert not layer.grads["kernel"].any() and not layer.grads["bias"].any()


def test_backward_accumulates(rng):
    layer = cnnx.Dense(3)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    dy = rng.standard_normal((4, 3)).astype(np.float32)
    layer.forward(x, training=True)
    layer.backward(dy)
    g1 = layer.grads["kernel"].copy()
    layer.backward(dy)
    np.testing.assert_allclose(layer.grads["kernel"], 2 * g1, rtol=1e-6)
    np.testing.assert_allclose(g1, x.T @ dy, rtol=1e-5, atol=1e-6)
