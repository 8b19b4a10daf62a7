"""Transposed convolution: conv_transpose2d against PyTorch (forward and
backward, every ISA), finite differences, Keras's output sizes, the
Conv2DTranspose layer in both compiled plans, ONNX export, summary formulas
and bad input."""

import copy

import numpy as np
import pytest

import cnnx
import cnnx.functional as F

from conftest import torch_or_skip

# (x shape, kernel (KH, KW), C_out, stride, padding, output_padding, dilation, groups)
CASES = [
    ((2, 6, 5, 8), (2, 2), 4, 2, 0, 0, 1, 1),  # U-Net 2x2 stride 2
    ((2, 5, 5, 6), (3, 3), 5, 2, 1, 1, 1, 1),  # 3x3 stride 2, padding 1, output_padding 1
    ((1, 7, 4, 3), (3, 3), 4, 1, 1, 0, 1, 1),  # stride 1 ("same")
    ((2, 4, 5, 8), (4, 4), 6, 2, 1, 0, 1, 2),  # groups
    ((1, 4, 4, 4), (3, 2), 6, (2, 3), (1, 0), (1, 2), (2, 1), 1),  # per-axis everything
    ((2, 3, 3, 6), (3, 3), 6, 1, 0, 1, 2, 3),  # output padding from the dilation
    ((1, 5, 5, 32), (3, 3), 64, 2, 1, 1, 1, 1),  # wide enough for the SIMD bodies
]


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def _torch_run(torch, x, w, b, dy, stride, padding, op, dilation, groups):
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv_transpose2d(
        xt, wt, bt, _pair(stride), _pair(padding), _pair(op), groups, _pair(dilation)
    )
    y.backward(torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64))
    return (
        y.detach().numpy().transpose(0, 2, 3, 1),
        xt.grad.numpy().transpose(0, 2, 3, 1),
        wt.grad.numpy().transpose(2, 3, 1, 0),
        bt.grad.numpy(),
    )


@pytest.mark.parametrize("case", CASES)
def test_forward_and_backward_match_pytorch(case, isa, rng):
    torch = torch_or_skip()
    shape, k, cout, s, p, op, d, g = case
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((*k, cout // g, shape[3])).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op, dilation=d, groups=g)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty, tdx, tdw, tdb = _torch_run(torch, x, w, b, dy, s, p, op, d, g)
    assert y.shape == ty.shape
    np.testing.assert_allclose(y, ty, rtol=1e-4, atol=1e-4)
    dx, dw, db = F.conv_transpose2d_backward(
        dy, x, w, stride=s, padding=p, output_padding=op, dilation=d, groups=g
    )
    np.testing.assert_allclose(dx, tdx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tdw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(db, tdb, rtol=1e-4, atol=1e-4)
    yr = F.conv_transpose2d(
        x, w, b, stride=s, padding=p, output_padding=op, dilation=d, groups=g, activation="relu"
    )
    np.testing.assert_allclose(yr, np.maximum(ty, 0), rtol=1e-4, atol=1e-4)


def test_unet_decoder_shapes_match_pytorch(rng):
    """The benchmark's decoder layers: 32x32x128 -> 64x64x64."""
    torch = torch_or_skip()
    x = rng.standard_normal((2, 32, 32, 128)).astype(np.float32)
    for k, p, op in ((2, 0, 0), (3, 1, 1)):
        w = (rng.standard_normal((k, k, 64, 128)) * 0.05).astype(np.float32)
        b = rng.standard_normal(64).astype(np.float32)
        y = F.conv_transpose2d(x, w, b, stride=2, padding=p, output_padding=op)
        assert y.shape == (2, 64, 64, 64)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        ty, tdx, tdw, tdb = _torch_run(torch, x, w, b, dy, 2, p, op, 1, 1)
        np.testing.assert_allclose(y, ty, rtol=1e-4, atol=1e-4)
        dx, dw, db = F.conv_transpose2d_backward(dy, x, w, stride=2, padding=p, output_padding=op)
        np.testing.assert_allclose(dx, tdx, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(dw, tdw, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(db, tdb, rtol=1e-4, atol=1e-3)


def test_gradients_against_finite_differences(rng):
    x = rng.standard_normal((2, 3, 4, 3))
    w = rng.standard_normal((3, 2, 2, 3))
    b = rng.standard_normal(2)
    kw = dict(stride=(2, 1), padding=((1, 0), (0, 1)), output_padding=(1, 0))
    y = F.conv_transpose2d(x, w, b, **kw)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = F.conv_transpose2d_backward(dy, x, w, **kw)

    def loss(xv, wv, bv):
        return float((F.conv_transpose2d(xv, wv, bv, **kw).astype(np.float64) * dy).sum())

    eps = 1e-2
    for arr, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
        num = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            args = [x.copy(), w.copy(), b.copy()]
            args[which][idx] += eps
            up = loss(*args)
            args[which][idx] -= 2 * eps
            num[idx] = (up - loss(*args)) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (4, 2), (1, 2), (3, 1), (5, 3)])
def test_keras_output_sizes(k, s):
    for padding, want in (("same", 7 * s), ("valid", 7 * s + max(k - s, 0))):
        layer = cnnx.Conv2DTranspose(3, k, strides=s, padding=padding)
        assert layer.build((7, 5, 2))[0] == want, (padding, k, s)
    # with output_padding given, Keras's symmetric k//2 for "same"
    layer = cnnx.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1)
    assert layer.build((7, 7, 2))[:2] == (14, 14)
    assert F.conv_transpose_output_size(32, 3, 1, 2, 1, 1) == 64


@pytest.mark.parametrize("threads", [1, 2])
def test_layer_in_both_plans_matches_layer_by_layer(threads, isa):
    def model(seed):
        cnnx.set_seed(seed)
        x = cnnx.Input((6, 6, 3))
        a = cnnx.Conv2D(8, 3, padding="same", activation="relu")(x)
        p = cnnx.MaxPool2D(2)(a)
        u = cnnx.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(p)
        u2 = cnnx.Conv2DTranspose(4, 2, strides=2, activation="sigmoid", use_bias=False)(p)
        c = cnnx.Concatenate()([a, u, u2])
        v = cnnx.Conv2DTranspose(4, 3, padding=1, dilation_rate=2, output_padding=1, groups=2)(c)
        y = cnnx.Dense(3, activation="softmax")(cnnx.GlobalAvgPool2D()(v))
        return cnnx.Model(x, y)

    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 6, 3)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    a, b = model(3), model(3)
    for m in (a, b):
        m.compile(cnnx.optim.SGD(0.05, momentum=0.9), "cross_entropy")
    b._training_plan = lambda *shapes: None
    b._inference_plan = lambda *shapes: None
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    try:
        np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=2e-5, atol=2e-6)
        assert a._inference_plan() is not None and a._training_plan() is not None
        for _ in range(3):
            la, lb = a.train_on_batch(x, y), b.train_on_batch(x, y)
            assert la == pytest.approx(lb, rel=1e-5)
            np.testing.assert_allclose(a.store.grads, b.store.grads, rtol=1e-3, atol=2e-5)
            np.testing.assert_allclose(a.store.params, b.store.params, rtol=1e-4, atol=1e-5)
    finally:
        cnnx.set_num_threads(saved)


def test_layer_matches_pytorch_module_and_frozen_layer(rng):
    torch = torch_or_skip()
    tm = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1).double()
    layer = cnnx.Conv2DTranspose(6, 3, strides=2, padding=1, output_padding=1)
    layer.build((5, 5, 4))
    layer.params["kernel"] = tm.weight.detach().numpy().transpose(2, 3, 1, 0)
    layer.params["bias"] = tm.bias.detach().numpy()
    x = rng.standard_normal((2, 5, 5, 4)).astype(np.float32)
    y = layer.forward(x, training=True)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    yt = tm(xt)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64))
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        layer.grads["kernel"], tm.weight.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(layer.grads["bias"], tm.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
    frozen = copy.deepcopy(layer)
    frozen.trainable = False
    frozen.zero_grad()
    frozen.forward(x, training=True)
    np.testing.assert_allclose(frozen.backward(dy), dx, rtol=1e-6)
    assert not frozen.grads["kernel"].any()


def test_summary_explains_the_output_size(capsys):
    x = cnnx.Input((32, 32, 128))
    y = cnnx.Conv2DTranspose(64, 3, strides=2, padding=1, output_padding=1, name="up")(x)
    rows = cnnx.Model(x, y).summary(formulas=True)
    capsys.readouterr()
    row = rows[-1]
    assert row.output_shape == (64, 64, 64)
    assert row.formulas[0] == "(32-1)*2-2*1+1*(3-1)+1+1 = 64"
    assert row.formulas[1] == f"(3*3*128+1)*64 = {3 * 3 * 128 * 64 + 64}"


def test_config_round_trip_and_save_load(tmp_path, rng):
    x = cnnx.Input((4, 4, 2))
    y = cnnx.Conv2DTranspose(
        3,
        (3, 2),
        strides=(2, 1),
        padding=((1, 0), (0, 1)),
        output_padding=(1, 0),
        activation="tanh",
    )(x)
    m = cnnx.Model(x, y)
    xs = rng.standard_normal((2, 4, 4, 2)).astype(np.float32)
    m.save(tmp_path / "m.cnnx")
    m2 = cnnx.load_model(tmp_path / "m.cnnx")
    np.testing.assert_allclose(m2.predict(xs), m.predict(xs), rtol=1e-6)


def test_onnx_export_runs_in_onnxruntime(tmp_path, rng):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    x = cnnx.Input((5, 5, 4))
    a = cnnx.Conv2DTranspose(6, 3, strides=2, padding=1, output_padding=1, activation="relu")(x)
    y = cnnx.Conv2DTranspose(4, 2, strides=(2, 1), dilation_rate=(1, 2), groups=2)(a)
    m = cnnx.Model(x, y)
    xs = rng.standard_normal((3, 5, 5, 4)).astype(np.float32)
    path = cnnx.onnx.export(m, str(tmp_path / "ct.onnx"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        sess.run(None, {"input": xs})[0], m.predict(xs), rtol=1e-4, atol=1e-5
    )


def test_bad_input_names_the_argument(rng):
    x = rng.standard_normal((1, 4, 4, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="^output_padding"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)  # not below stride nor dilation
    with pytest.raises(ValueError, match="^output_padding"):
        cnnx.Conv2DTranspose(4, 3, strides=1, output_padding=1)
    F.conv_transpose2d(x, w, stride=1, dilation=2, output_padding=1)  # below the dilation
    with pytest.raises(ValueError, match="^groups"):
        cnnx.Conv2DTranspose(5, 3, groups=2)
    with pytest.raises(ValueError, match="^groups"):
        cnnx.Conv2DTranspose(4, 3, groups=4).build((4, 4, 6))
    with pytest.raises(ValueError, match="^groups"):
        F.conv_transpose2d(x, rng.standard_normal((3, 3, 2, 4)), groups=3)
    with pytest.raises(ValueError, match="^w"):
        F.conv_transpose2d(x, rng.standard_normal((3, 3, 2, 5)))
    with pytest.raises(ValueError, match="^padding"):
        F.conv_transpose2d(x, w, padding="full")
    with pytest.raises(ValueError, match="^padding"):
        F.conv_transpose2d(x, w, padding=4)  # removes the whole output
    with pytest.raises(TypeError, match="^stride"):
        F.conv_transpose2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match="^dy"):
        F.conv_transpose2d_backward(np.zeros((1, 5, 5, 2)), x, w)
    with pytest.raises(ValueError, match="^input_shape"):
        cnnx.Conv2DTranspose(4, 3).build((4, 4))
