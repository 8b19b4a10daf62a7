"""Issue 19's pooling options: dilation for max pooling, ceil_mode for max
and average pooling. PyTorch parity (channels_last) forward and backward on
every ISA, the output-size rule, summary formulas, bad input, the layers in
both compiled plans against the layer-by-layer path, and ONNX export run by
ONNX Runtime."""

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


# (h, w, c, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    (9, 9, 8, 3, 1, 0, 2, False),
    (10, 11, 16, 3, 2, 1, 2, False),
    (12, 12, 5, 2, 1, 1, 3, False),
    (15, 15, 32, 3, 2, 0, 1, True),
    (14, 13, 7, 3, 2, 1, 1, True),
    (8, 8, 16, 2, 2, 0, 1, True),
    (7, 7, 16, 2, 2, 0, 1, True),
    (11, 9, 20, 3, 3, 1, 2, True),
    (6, 17, 4, (2, 3), (2, 1), (1, 1), (2, 3), True),
    (5, 5, 3, 3, 2, 1, 2, True),
    (57, 57, 64, 3, 2, 0, 1, True),
    (33, 31, 17, 3, 1, 1, 2, False),
]


def _torch_max(x, k, s, p, d, ceil, dy):
    torch = torch_or_skip()
    t = torch.tensor(_nchw(x)).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y = torch.nn.functional.max_pool2d(t, k, s, p, d, ceil_mode=ceil)
    y.backward(
        torch.tensor(_nchw(dy.reshape(y.shape[0], y.shape[2], y.shape[3], -1)))
        if dy is not None
        else torch.ones_like(y)
    )
    return _nhwc(y.detach().numpy()), _nhwc(t.grad.numpy())


@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_matches_torch(case, isa, rng):
    h, w, c, k, s, p, d, ceil = case
    x = rng.standard_normal((2, h, w, c)).astype(np.float32)
    y = F.max_pool2d(x, k, s, p, dilation=d, ceil_mode=ceil)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y_ref, dx_ref = _torch_max(x, k, s, p, d, ceil, dy)
    assert y.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(
        F.max_pool2d_backward(dy, x, k, s, p, d, ceil), dx_ref, rtol=1e-6, atol=1e-6
    )


def test_max_pool_ties_go_to_the_first_tap(isa):
    x = np.zeros((1, 7, 7, 16), np.float32)  # every window is a tie
    dy = np.ones((1, 2, 2, 16), np.float32)
    dx = F.max_pool2d_backward(dy, x, 3, 2, 0, dilation=2)
    _, dx_ref = _torch_max(x, 3, 2, 0, 2, False, dy)
    np.testing.assert_array_equal(dx, dx_ref)


AVG_CASES = [
    (15, 15, 32, 3, 2, 0, True),
    (14, 13, 7, 3, 2, 1, True),
    (14, 13, 7, 3, 2, 1, False),
    (7, 7, 16, 2, 2, 0, True),
    (11, 9, 20, 3, 3, 1, True),
    (11, 9, 20, 3, 3, 1, False),
    (6, 17, 4, (2, 3), (2, 1), (1, 1), True),
    (5, 5, 3, 3, 2, 1, True),
    (28, 28, 64, 3, 2, 1, True),
]


@pytest.mark.parametrize("case", AVG_CASES, ids=str)
@pytest.mark.parametrize("ceil", [True, False])
def test_avg_pool_ceil_mode_matches_torch(case, ceil, isa, rng):
    torch = torch_or_skip()
    h, w, c, k, s, p, cip = case
    x = rng.standard_normal((2, h, w, c)).astype(np.float32)
    y = F.avg_pool2d(x, k, s, p, count_include_pad=cip, ceil_mode=ceil)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    t = torch.tensor(_nchw(x)).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    yt = torch.nn.functional.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=cip)
    yt.backward(torch.tensor(_nchw(dy)))
    assert y.shape == _nhwc(yt.detach().numpy()).shape
    np.testing.assert_allclose(y, _nhwc(yt.detach().numpy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        F.avg_pool2d_backward(dy, x, k, s, p, cip, ceil),
        _nhwc(t.grad.numpy()),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "n,k,s,p,d",
    [
        (n, k, s, p, d)
        for n in range(1, 12)
        for k in (1, 2, 3)
        for s in (1, 2, 3)
        for p in range(0, k // 2 + 1)
        for d in (1, 2)
    ],
)
def test_output_size_rule_matches_torch(n, k, s, p, d):
    torch = torch_or_skip()
    if n + 2 * p < (k - 1) * d + 1:
        with pytest.raises(ValueError, match="^pool_size"):
            F.max_pool2d(np.zeros((1, n, n, 1), np.float32), k, s, p, d, ceil_mode=True)
        return
    for ceil in (False, True):
        ref = torch.nn.functional.max_pool2d(
            torch.zeros(1, 1, n, n), k, s, p, d, ceil_mode=ceil
        ).shape[-1]
        got = F.max_pool2d(np.zeros((1, n, n, 1), np.float32), k, s, p, d, ceil_mode=ceil)
        assert got.shape[1] == ref, (n, k, s, p, d, ceil)


def test_summary_formulas_explain_ceil_mode_and_dilation():
    model = cnnx.Sequential(
        [
            cnnx.MaxPool2D(3, 2, ceil_mode=True),
            cnnx.MaxPool2D(3, 1, dilation_rate=2),
            cnnx.AvgPool2D(2, 2, padding=1, ceil_mode=True),
        ],
        input_shape=(14, 14, 3),
    )
    rows = model.summary(formulas=True, print_fn=None)
    assert rows[1].formulas == ["ceil((14-3)/2)+1 = 7"]
    assert rows[2].formulas == ["floor((7-((3-1)*2+1))/1)+1 = 3"]
    # (3+2-2)/2 = 1.5 -> ceil 2, +1 = 3 windows; the third would start at 4 >= 3+1: dropped
    assert rows[3].formulas == [
        "ceil((3+2*1-2)/2)+1 = 3, -1 = 2 (the last window would start at 4 >= 3+1, past the input)"
    ]
    assert [r.output_shape for r in rows[1:]] == [(7, 7, 3), (3, 3, 3), (2, 2, 3)]


def test_bad_arguments_name_the_argument():
    x = np.zeros((1, 8, 8, 2), np.float32)
    with pytest.raises(ValueError, match="^padding"):
        F.max_pool2d(x, 3, 2, 2, ceil_mode=True)  # more than half the window
    with pytest.raises(ValueError, match="^padding"):
        cnnx.Sequential([cnnx.AvgPool2D(2, 2, padding=2, ceil_mode=True)], input_shape=(8, 8, 2))
    with pytest.raises(ValueError, match="^dilation"):
        F.max_pool2d(x, 2, dilation=0)
    with pytest.raises(ValueError, match="^dilation_rate"):
        cnnx.MaxPool2D(2, dilation_rate=0)
    with pytest.raises(TypeError, match="^ceil_mode"):
        F.avg_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(TypeError, match="^ceil_mode"):
        cnnx.MaxPool2D(2, ceil_mode="yes")
    with pytest.raises(ValueError, match="^pool_size"):
        F.max_pool2d(x, 3, dilation=4)  # a 9-pixel window on 8 pixels
    with pytest.raises(TypeError):
        cnnx.AvgPool2D(2, dilation_rate=2)  # average pools have no dilation
    layer = cnnx.MaxPool2D(2, ceil_mode=True)
    layer.build((5, 5, 1))
    with pytest.raises(AttributeError, match="ceil_mode"):
        layer.ceil_mode = False


def _models():
    yield (
        "googlenet_like",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(8, 3, strides=2, activation="relu"),
                cnnx.MaxPool2D(3, 2, ceil_mode=True),
                cnnx.Conv2D(16, 3, padding="same", activation="relu"),
                cnnx.MaxPool2D(3, 2, padding=1, ceil_mode=True),
                cnnx.AvgPool2D(3, 2, padding=1, ceil_mode=True),
                cnnx.MaxPool2D(2, 1, dilation_rate=2),
                cnnx.Flatten(),
                cnnx.Dense(5, activation="softmax"),
            ],
            input_shape=(31, 29, 3),
        ),
    )
    yield (
        "dilated",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(16, 3, padding="same"),
                cnnx.MaxPool2D(3, 1, padding=1, dilation_rate=2),
                cnnx.Conv2D(16, 1, activation="relu"),
                cnnx.MaxPool2D((2, 3), (2, 1), dilation_rate=(2, 1), ceil_mode=True),
                cnnx.AvgPool2D(2, 2, count_include_pad=False, padding=1, ceil_mode=True),
                cnnx.GlobalAvgPool2D(),
                cnnx.Dense(4),
            ],
            input_shape=(13, 15, 2),
        ),
    )


@pytest.mark.parametrize("name,make", list(_models()), ids=harness.model_ids(_models()))
@pytest.mark.parametrize("threads,mode", [(1, -1), (2, 0), (2, 1)])
def test_inference_plan_matches_layer_by_layer(name, make, threads, mode, isa, rng):
    harness.check_inference_plan(make, threads, rng, small_batch_mode=mode)


@pytest.mark.parametrize("name,make", list(_models()), ids=harness.model_ids(_models()))
@pytest.mark.parametrize("threads", [1, 2])
def test_training_plan_matches_layer_by_layer(name, make, threads, isa, rng):
    harness.check_training_plan(make, threads, rng, compare_params=False)


def test_save_load_round_trip(tmp_path, rng):
    _, loaded = harness.check_save_load(dict(_models())["googlenet_like"], tmp_path, rng)
    assert loaded.layers[1].ceil_mode and loaded.layers[5].dilation_rate == (2, 2)


def test_onnx_export_matches_onnxruntime(tmp_path, rng):
    harness.check_onnx_export(_models(), tmp_path, rng)


def test_onnx_export_of_ceil_mode_windows_onnx_keeps(tmp_path, rng):
    """Where PyTorch's rule drops ceil mode's last window, ONNX's shape inference
    keeps it: max pools and averages without the padding in the divisor are
    written as floor-mode pools with the end padding that gives the same
    windows (exact); averages counting the padding are refused, named."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import cnnx.onnx

    for pool in (
        cnnx.MaxPool2D(2, 2, padding=1, ceil_mode=True),
        cnnx.AvgPool2D(2, 2, padding=1, ceil_mode=True, count_include_pad=False),
    ):
        model = cnnx.Sequential([pool, cnnx.Flatten(), cnnx.Dense(3)], input_shape=(3, 5, 2))
        assert model.layers[0].output_shape == (2, 3, 2)
        path = tmp_path / "m.onnx"
        cnnx.onnx.export(model, path)
        x = rng.standard_normal((2, 3, 5, 2)).astype(np.float32)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(
            sess.run(None, {sess.get_inputs()[0].name: x})[0],
            model.predict(x),
            rtol=1e-5,
            atol=1e-6,
        )
    model = cnnx.Sequential(
        [cnnx.AvgPool2D(2, 2, padding=1, ceil_mode=True)], input_shape=(3, 3, 1)
    )
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="AvgPool2D.*ceil mode"):
        cnnx.onnx.export(model, tmp_path / "bad.onnx")
