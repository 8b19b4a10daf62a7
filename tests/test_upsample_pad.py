"""Upsampling, padding and cropping: the functional ops against PyTorch
(forward and backward, every ISA), finite differences, the layers in both
compiled plans, ONNX export, summary formulas and bad input."""

import numpy as np
import pytest

import cnnx
import cnnx.functional as F

from conftest import torch_or_skip


def _nchw(a, torch, grad=True):
    return torch.tensor(a.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=grad)


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [2, 3, (2, 3), (1, 4)])
@pytest.mark.parametrize("channels", [1, 3, 20])
def test_upsample_matches_pytorch(interpolation, size, channels, isa, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 5, 4, channels)).astype(np.float32)
    y = F.upsample2d(x, size, interpolation)
    fh, fw = (size, size) if np.isscalar(size) else size
    xt = _nchw(x, torch)
    kw = {} if interpolation == "nearest" else {"align_corners": False}
    yt = torch.nn.functional.interpolate(xt, scale_factor=(fh, fw), mode=interpolation, **kw)
    np.testing.assert_allclose(y, _nhwc(yt), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(_nchw(dy, torch, False))
    np.testing.assert_allclose(
        F.upsample2d_backward(dy, size, interpolation), _nhwc(xt.grad), rtol=1e-5, atol=1e-5
    )


_TORCH_PAD = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("pads", [((1, 2), (3, 0)), ((0, 0), (2, 2)), ((3, 3), (1, 3)), 1])
@pytest.mark.parametrize("channels", [1, 5, 32])
def test_pad_matches_pytorch(mode, pads, channels, isa, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 4, 5, channels)).astype(np.float32)
    y = F.pad2d(x, pads, mode, value=0.5)
    (t, b), (l, r) = pads if not np.isscalar(pads) else ((pads, pads), (pads, pads))
    xt = _nchw(x, torch)
    extra = {"value": 0.5} if mode == "constant" else {}
    yt = torch.nn.functional.pad(xt, (l, r, t, b), mode=_TORCH_PAD[mode], **extra)
    np.testing.assert_allclose(y, _nhwc(yt), rtol=0, atol=0)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(_nchw(dy, torch, False))
    np.testing.assert_allclose(
        F.pad2d_backward(dy, x, pads, mode), _nhwc(xt.grad), rtol=1e-5, atol=1e-6
    )


def test_crop_forward_and_backward(isa, rng):
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    y = F.crop2d(x, ((1, 2), (3, 0)))
    np.testing.assert_array_equal(y, x[:, 1:4, 3:7])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = F.crop2d_backward(dy, x, ((1, 2), (3, 0)))
    want = np.zeros_like(x)
    want[:, 1:4, 3:7] = dy
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("op", ["bilinear", "reflect", "edge"])
def test_gradients_against_finite_differences(op, rng):
    x = rng.standard_normal((1, 3, 4, 2))
    if op == "bilinear":
        f = lambda v: F.upsample2d(v, (2, 3), "bilinear")  # noqa: E731
        b = lambda g: F.upsample2d_backward(g, (2, 3), "bilinear")  # noqa: E731
    else:
        f = lambda v: F.pad2d(v, ((2, 1), (3, 2)), op)  # noqa: E731
        b = lambda g: F.pad2d_backward(g, x, ((2, 1), (3, 2)), op)  # noqa: E731
    dy = rng.standard_normal(f(x).shape)
    dx = b(dy)
    num = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        up, dn = x.copy(), x.copy()
        up[idx] += 1e-2
        dn[idx] -= 1e-2
        num[idx] = (
            (f(up).astype(np.float64) * dy).sum() - (f(dn).astype(np.float64) * dy).sum()
        ) / 2e-2
    np.testing.assert_allclose(dx, num, rtol=1e-3, atol=1e-3)


def _model(seed):
    cnnx.set_seed(seed)
    x = cnnx.Input((6, 5, 3))
    a = cnnx.Conv2D(6, 3, padding="same", activation="relu")(x)
    u = cnnx.UpSampling2D(2)(a)
    v = cnnx.UpSampling2D((2, 1), interpolation="bilinear")(a)
    v = cnnx.Cropping2D(((1, 1), (0, 0)))(cnnx.ZeroPadding2D(((1, 1), (0, 5)))(v))
    c = cnnx.Concatenate()([u, v])
    c = cnnx.ReflectionPadding2D(((2, 1), (1, 3)))(c)
    c = cnnx.Conv2D(8, 3, activation="relu")(c)
    c = cnnx.ReplicationPadding2D(1)(c)
    c = cnnx.Cropping2D(((0, 2), (1, 1)))(c)
    y = cnnx.Dense(4, activation="softmax")(cnnx.GlobalAvgPool2D()(c))
    return cnnx.Model(x, y)


@pytest.mark.parametrize("threads", [1, 2])
def test_layers_in_both_plans_match_layer_by_layer(threads, isa):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 6, 5, 3)).astype(np.float32)
    y = rng.integers(0, 4, 5)
    a, b = _model(2), _model(2)
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
    finally:
        cnnx.set_num_threads(saved)


def test_layers_save_load_and_onnx_export(tmp_path):
    rng = np.random.default_rng(5)
    m = _model(4)
    xs = rng.standard_normal((3, 6, 5, 3)).astype(np.float32)
    m.save(tmp_path / "m.cnnx")
    np.testing.assert_allclose(
        cnnx.load_model(tmp_path / "m.cnnx").predict(xs), m.predict(xs), rtol=1e-6
    )
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = cnnx.onnx.export(m, str(tmp_path / "m.onnx"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        sess.run(None, {"input": xs})[0], m.predict(xs), rtol=1e-4, atol=1e-6
    )


def test_onnx_export_of_each_layer_alone(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    for layer in (
        cnnx.UpSampling2D((2, 3)),
        cnnx.UpSampling2D(3, interpolation="bilinear"),
        cnnx.ZeroPadding2D(((1, 0), (2, 3))),
        cnnx.ReflectionPadding2D(((4, 1), (2, 5))),
        cnnx.ReplicationPadding2D(((0, 3), (7, 1))),
        cnnx.Cropping2D(((1, 2), (0, 3))),
    ):
        x = cnnx.Input((5, 6, 3))
        m = cnnx.Model(x, layer(x))
        path = cnnx.onnx.export(m, str(tmp_path / "l.onnx"))
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(
            sess.run(None, {"input": xs})[0],
            m.predict(xs),
            rtol=1e-5,
            atol=1e-5,
            err_msg=type(layer).__name__,
        )


def test_summary_formulas():
    x = cnnx.Input((14, 10, 3))
    ys = [
        cnnx.UpSampling2D(2)(x),
        cnnx.UpSampling2D((2, 3))(x),
        cnnx.ZeroPadding2D(1)(x),
        cnnx.ReflectionPadding2D(((1, 2), (0, 3)))(x),
        cnnx.Cropping2D(((2, 2), (1, 1)))(x),
    ]
    rows = cnnx.Model(x, ys).summary(formulas=True, print_fn=None)
    f = {r.layer: r.formulas for r in rows}
    assert rows[1].formulas == ["n_H: 14*2 = 28", "n_W: 10*2 = 20"]
    assert rows[2].formulas == ["n_H: 14*2 = 28", "n_W: 10*3 = 30"]
    assert f["ZeroPadding2D"] == ["n_H: 14+1+1 = 16", "n_W: 10+1+1 = 12"]
    assert f["ReflectionPadding2D"] == ["n_H: 14+1+2 = 17", "n_W: 10+0+3 = 13"]
    assert f["Cropping2D"] == ["n_H: 14-2-2 = 10", "n_W: 10-1-1 = 8"]
    y = cnnx.UpSampling2D(2)(cnnx.Input((7, 7, 1)))
    assert y.node.layer.summary_formulas() == ["7*2 = 14"]


def test_bad_input_names_the_argument(rng):
    x = rng.standard_normal((1, 3, 4, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="^padding: reflection"):
        F.pad2d(x, ((3, 0), (0, 0)), "reflect")  # as wide as the input
    with pytest.raises(ValueError, match="^padding: reflection"):
        cnnx.ReflectionPadding2D(4).build((5, 4, 2))
    F.pad2d(x, ((3, 0), (0, 0)), "edge")  # edge padding may be wider
    with pytest.raises(ValueError, match="^mode"):
        F.pad2d(x, 1, "wrap")
    with pytest.raises(ValueError, match="^padding"):
        F.pad2d(x, -1)
    with pytest.raises(TypeError, match="^padding"):
        cnnx.ZeroPadding2D("same")
    with pytest.raises(ValueError, match="^size: only integer"):
        F.upsample2d(x, 1.5)
    with pytest.raises(ValueError, match="^size: only integer"):
        cnnx.UpSampling2D((2, 2.5))
    assert cnnx.UpSampling2D(2.0).size == (2, 2)
    with pytest.raises(ValueError, match="^size"):
        cnnx.UpSampling2D(0)
    with pytest.raises(ValueError, match="^interpolation"):
        cnnx.UpSampling2D(2, interpolation="bicubic")
    with pytest.raises(ValueError, match="^cropping"):
        F.crop2d(x, ((2, 1), (0, 0)))
    with pytest.raises(ValueError, match="^cropping"):
        cnnx.Cropping2D(((0, 0), (2, 2))).build((5, 4, 1))
    with pytest.raises(ValueError, match="^dy"):
        F.pad2d_backward(np.zeros((1, 3, 4, 2)), x, 1)
    with pytest.raises(ValueError, match="^input_shape"):
        cnnx.UpSampling2D(2).build((4, 4))
