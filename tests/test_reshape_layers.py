"""Depth <-> space, channel shuffle, Permute, Reshape, DepthwiseConv2D and
SeparableConv2D: against PyTorch or NumPy written from the definitions
(forward and backward, every ISA), finite differences, both compiled plans,
ONNX export, summary formulas and bad input."""

import numpy as np
import pytest

import cnnx
import cnnx.functional as F

from conftest import torch_or_skip


def _onnx_d2s(x, b, mode):
    """ONNX DepthToSpace on NHWC, written from the operator's definition (NCHW)."""
    n, h, w, c = x.shape
    t = x.transpose(0, 3, 1, 2)
    if mode == "DCR":
        t = t.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = t.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return t.reshape(n, c // (b * b), h * b, w * b).transpose(0, 2, 3, 1)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("b,cout", [(2, 1), (2, 3), (3, 2), (2, 16)])
def test_depth_to_space_and_back(mode, b, cout, isa, rng):
    x = rng.standard_normal((2, 3, 4, cout * b * b)).astype(np.float32)
    y = F.depth_to_space(x, b, mode)
    np.testing.assert_array_equal(y, _onnx_d2s(x, b, mode))
    np.testing.assert_array_equal(F.space_to_depth(y, b, mode), x)


def test_pixel_shuffle_is_crd_and_matches_pytorch(rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 5, 18)).astype(np.float32)
    xt = torch.tensor(x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(
        F.depth_to_space(x, 3, "CRD"),
        torch.nn.functional.pixel_shuffle(xt, 3).numpy().transpose(0, 2, 3, 1),
    )
    y = rng.standard_normal((2, 6, 9, 2)).astype(np.float32)
    yt = torch.tensor(y.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(
        F.space_to_depth(y, 3, "CRD"),
        torch.nn.functional.pixel_unshuffle(yt, 3).numpy().transpose(0, 2, 3, 1),
    )


@pytest.mark.parametrize("groups,cpg", [(2, 3), (2, 24), (3, 5), (4, 16), (8, 2)])
def test_channel_shuffle_matches_pytorch(groups, cpg, isa, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 4, groups * cpg)).astype(np.float32)
    want = torch.nn.functional.channel_shuffle(torch.tensor(x.transpose(0, 3, 1, 2)), groups)
    y = F.channel_shuffle(x, groups)
    np.testing.assert_array_equal(y, want.numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(F.channel_shuffle_backward(y, groups), x)
    flat = rng.standard_normal((3, groups * cpg)).astype(np.float32)
    np.testing.assert_array_equal(
        F.channel_shuffle(flat, groups),
        flat.reshape(3, groups, cpg).transpose(0, 2, 1).reshape(3, -1),
    )


@pytest.mark.parametrize("dims", [(1, 2, 3), (2, 1, 3), (3, 1, 2), (2, 3, 1), (3, 2, 1)])
def test_permute_matches_numpy(dims, isa, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    y = F.permute(x, dims)
    np.testing.assert_array_equal(y, x.transpose(0, *dims))
    np.testing.assert_array_equal(F.permute_backward(y, dims), x)
    x4 = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(F.permute(x4, (4, 2, 1, 3)), x4.transpose(0, 4, 2, 1, 3))


@pytest.mark.parametrize("dm", [1, 2])
@pytest.mark.parametrize("stride,padding,dilation", [(1, "same", 1), (2, "valid", 1), (1, 2, 2)])
def test_depthwise_and_separable_match_pytorch(dm, stride, padding, dilation, isa, rng):
    torch = torch_or_skip()
    c = 6
    x = rng.standard_normal((2, 9, 8, c)).astype(np.float32)
    dwl = cnnx.DepthwiseConv2D(
        3, strides=stride, padding=padding, depth_multiplier=dm, dilation_rate=dilation
    )
    sep = cnnx.SeparableConv2D(
        5,
        3,
        strides=stride,
        padding=padding,
        depth_multiplier=dm,
        dilation_rate=dilation,
        activation="relu",
    )
    for layer in (dwl, sep):
        layer.build(x.shape[1:])
        for name in layer.params:
            layer.params[name] = rng.standard_normal(layer.params[name].shape)
        pads = layer.explicit_padding if hasattr(layer, "explicit_padding") else layer._pads
        (t, b), (left, r) = pads
        xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
        kt = torch.tensor(
            layer.params["depthwise_kernel"].reshape(3, 3, 1, c * dm).transpose(3, 2, 0, 1),
            dtype=torch.float64,
            requires_grad=True,
        )
        z = torch.nn.functional.pad(xt, (left, r, t, b))
        z = torch.nn.functional.conv2d(z, kt, None, stride, 0, dilation, groups=c)
        params = [kt]
        if isinstance(layer, cnnx.SeparableConv2D):
            pt = torch.tensor(
                layer.params["pointwise_kernel"].transpose(3, 2, 0, 1),
                dtype=torch.float64,
                requires_grad=True,
            )
            bt = torch.tensor(layer.params["bias"], dtype=torch.float64, requires_grad=True)
            z = torch.relu(torch.nn.functional.conv2d(z, pt, bt))
            params += [pt, bt]
        else:
            bt = torch.tensor(layer.params["bias"], dtype=torch.float64, requires_grad=True)
            z = z + bt[None, :, None, None]
            params.append(bt)
        y = layer.forward(x, training=True)
        np.testing.assert_allclose(
            y, z.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4
        )
        dy = rng.standard_normal(y.shape).astype(np.float32)
        z.backward(torch.tensor(dy.transpose(0, 3, 1, 2), dtype=torch.float64))
        layer.zero_grad()
        dx = layer.backward(dy)
        np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            layer.grads["depthwise_kernel"],
            kt.grad.numpy().transpose(2, 3, 0, 1).reshape(3, 3, c, dm),
            rtol=1e-4,
            atol=1e-3,
        )
        if isinstance(layer, cnnx.SeparableConv2D):
            np.testing.assert_allclose(
                layer.grads["pointwise_kernel"],
                pt.grad.numpy().transpose(2, 3, 1, 0),
                rtol=1e-4,
                atol=1e-3,
            )
        np.testing.assert_allclose(layer.grads["bias"], bt.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_layer_gradients_against_finite_differences(rng):
    """DepthToSpace (CRD) -> ChannelShuffle -> Permute -> SpaceToDepth chain."""
    x = cnnx.Input((2, 3, 8))
    y = cnnx.DepthToSpace(2, "CRD")(x)
    y = cnnx.Permute((2, 1, 3))(cnnx.ChannelShuffle(2)(cnnx.Conv2D(4, 1)(y)))
    y = cnnx.SpaceToDepth(2)(y)
    m = cnnx.Model(x, cnnx.Reshape((-1,))(y))
    xs = rng.standard_normal((2, 2, 3, 8))
    out = m.forward(xs.astype(np.float32), training=True)
    dy = rng.standard_normal(out.shape)
    dx = m.backward(dy.astype(np.float32))
    num = np.zeros(xs.shape)
    for idx in np.ndindex(xs.shape):
        up, dn = xs.copy(), xs.copy()
        up[idx] += 1e-2
        dn[idx] -= 1e-2
        num[idx] = (
            (m.forward(up.astype(np.float32)) * dy).sum()
            - (m.forward(dn.astype(np.float32)) * dy).sum()
        ) / 2e-2
    np.testing.assert_allclose(dx, num, rtol=1e-2, atol=1e-2)


def _model(seed):
    cnnx.set_seed(seed)
    x = cnnx.Input((8, 6, 4))
    a = cnnx.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, activation="relu")(x)
    a = cnnx.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(a)  # 16 channels
    a = cnnx.ChannelShuffle(4)(a)
    s = cnnx.SpaceToDepth(2)(a)  # (4, 3, 64)
    s = cnnx.Conv2D(16, 1, activation="relu")(s)
    d = cnnx.DepthToSpace(2, mode="CRD")(s)  # (8, 6, 4)
    d = cnnx.Permute((2, 1, 3))(d)  # (6, 8, 4)
    r = cnnx.Reshape((6, 32))(d)
    r = cnnx.Permute((2, 1))(r)  # (32, 6)
    y = cnnx.Dense(3, activation="softmax")(cnnx.Flatten()(r))
    return cnnx.Model(x, y)


@pytest.mark.parametrize("threads", [1, 2])
def test_layers_in_both_plans_match_layer_by_layer(threads, isa):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 8, 6, 4)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    a, b = _model(5), _model(5)
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


def test_save_load_and_onnx_export(tmp_path):
    rng = np.random.default_rng(8)
    m = _model(6)
    xs = rng.standard_normal((3, 8, 6, 4)).astype(np.float32)
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
    rng = np.random.default_rng(9)
    xs = rng.standard_normal((2, 4, 6, 8)).astype(np.float32)
    layers = [
        cnnx.DepthToSpace(2),
        cnnx.DepthToSpace(2, "CRD"),
        cnnx.SpaceToDepth(2),
        cnnx.SpaceToDepth(2, "CRD"),
        cnnx.ChannelShuffle(4),
        cnnx.Permute((3, 1, 2)),
        cnnx.Permute((2, 1, 3)),
        cnnx.Reshape((8, 3, 8)),
        cnnx.Reshape((24, 8)),
        cnnx.DepthwiseConv2D(3, depth_multiplier=3, padding="same"),
        cnnx.SeparableConv2D(5, 3, strides=2, depth_multiplier=2),
    ]
    for layer in layers:
        x = cnnx.Input((4, 6, 8))
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
    x = cnnx.Input((12,))
    m = cnnx.Model(x, cnnx.ChannelShuffle(3)(x))  # flat features
    path = cnnx.onnx.export(m, str(tmp_path / "f.onnx"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    flat = rng.standard_normal((2, 12)).astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"input": flat})[0], m.predict(flat))


def test_reshape_infers_one_axis_and_is_a_view(rng):
    layer = cnnx.Reshape((-1, 4))
    assert layer.build((3, 4, 2)) == (6, 4)
    x = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x), x.reshape(2, 6, 4))


def test_summary_formulas():
    x = cnnx.Input((8, 6, 16))
    ys = [
        cnnx.DepthToSpace(2)(x),
        cnnx.SpaceToDepth(2)(x),
        cnnx.ChannelShuffle(4)(x),
        cnnx.Permute((2, 1, 3))(x),
        cnnx.Reshape((48, 16))(x),
        cnnx.DepthwiseConv2D(3, depth_multiplier=2)(x),
        cnnx.SeparableConv2D(8, 3)(x),
    ]
    rows = cnnx.Model(x, ys).summary(formulas=True, print_fn=None)
    f = {r.layer: r.formulas for r in rows}
    assert f["DepthToSpace"] == ["n_H, n_W: 8*2, 6*2 = 16, 12", "n_C: 16/2^2 = 4"]
    assert f["SpaceToDepth"] == ["n_H, n_W: 8/2, 6/2 = 4, 3", "n_C: 16*2^2 = 64"]
    assert f["ChannelShuffle"] == ["n_C: 4 groups of 4 interleaved: channel i*4+j -> j*4+i"]
    assert f["Permute"] == ["dims (2, 1, 3): (8,6,16) -> (6,8,16)"]
    assert f["Reshape"] == ["(8,6,16) -> (48,16), 768 values"]
    assert f["DepthwiseConv2D"][-1] == f"(3*3+1)*16*2 = {(9 + 1) * 32}"
    assert f["DepthwiseConv2D"][0].startswith("n_H: floor((8-3)/1)+1 = 6")
    assert f["SeparableConv2D"][-1] == f"3*3*16*1 + 16*8+8 = {9 * 16 + 16 * 8 + 8}"


def test_bad_input_names_the_argument(rng):
    x = rng.standard_normal((1, 4, 6, 12)).astype(np.float32)
    with pytest.raises(ValueError, match="^block_size"):
        F.depth_to_space(x, 3)  # 9 does not divide 12
    with pytest.raises(ValueError, match="^block_size"):
        F.space_to_depth(x, 4)  # 4 does not divide 6
    with pytest.raises(ValueError, match="^block_size"):
        cnnx.DepthToSpace(2).build((3, 3, 6))
    with pytest.raises(ValueError, match="^mode"):
        cnnx.DepthToSpace(2, mode="RCD")
    with pytest.raises(ValueError, match="^groups"):
        F.channel_shuffle(x, 5)
    with pytest.raises(ValueError, match="^groups"):
        cnnx.ChannelShuffle(5).build((4, 6, 12))
    with pytest.raises(ValueError, match="^dims"):
        cnnx.Permute((1, 1, 3))
    with pytest.raises(ValueError, match="^dims"):
        cnnx.Permute((2, 1)).build((4, 6, 12))
    with pytest.raises(ValueError, match="^dims"):
        F.permute(x, (0, 1, 2))
    with pytest.raises(ValueError, match="^target_shape"):
        cnnx.Reshape((5, -1)).build((4, 6, 12))
    with pytest.raises(ValueError, match="^target_shape"):
        cnnx.Reshape((5, 5)).build((4, 6, 12))
    with pytest.raises(ValueError, match="^target_shape"):
        cnnx.Reshape((-1, -1))
    with pytest.raises(ValueError, match="^depth_multiplier"):
        cnnx.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match="^input_shape"):
        cnnx.SeparableConv2D(4, 3).build((4, 4))
