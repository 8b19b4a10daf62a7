"""ONNX import of issue 19's operators (python/cnnx/onnx/_import_ops_a.py):
the activations, PRelu, LRN, LayerNormalization and the pool options, on
small graphs against ONNX Runtime, the PyTorch-converted single-layer tests
that the ``onnx`` package ships, and a round trip through cnnx's own export.

Also MobileNetV2 (ReLU6, exported by PyTorch as Clip) through both of
PyTorch's exporters.
"""

import os
import warnings

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import cnnx.onnx  # noqa: E402
from cnnx.onnx._import_ops import CONVERTERS  # noqa: E402
from cnnx.onnx._import_ops_a import CONVERTERS_A  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def test_converters_are_wired_in():
    for op, f in CONVERTERS_A.items():
        assert CONVERTERS.get(op) is f, f"{op}: CONVERTERS.update(CONVERTERS_A) is missing"


def _model(nodes, in_shape, out_shape, inits=(), opset=17):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [
            helper.make_tensor_value_info(
                "y", TensorProto.FLOAT, None if out_shape is None else ["N", *out_shape]
            )
        ],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = helper.find_min_ir_version_for(m.opset_import)
    return m


def _check(m, x, tol=1e-5):
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    model = cnnx.onnx.from_onnx(m)
    xin = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x
    got = model.predict(np.ascontiguousarray(xin))
    if got.ndim == 4:
        got = got.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    return model


ACTS = [
    ("Elu", {"alpha": 0.7}, 13),
    ("Selu", {}, 13),
    ("HardSigmoid", {}, 13),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, 13),
    ("HardSwish", {}, 14),
    ("Softplus", {}, 13),
    ("Softsign", {}, 13),
    ("Gelu", {}, 20),
    ("Gelu", {"approximate": "tanh"}, 20),
    ("LogSoftmax", {"axis": 1}, 13),
    ("LogSoftmax", {"axis": -1}, 13),
]


@pytest.mark.parametrize("op,attrs,opset", ACTS, ids=[f"{a[0]}{a[1]}" for a in ACTS])
@pytest.mark.parametrize("shape", [(3, 5, 6), (7,)], ids=["image", "flat"])
def test_activations(op, attrs, opset, shape, rng):
    if opset > onnx.defs.onnx_opset_version():
        pytest.skip("onnx too old")
    m = _model([helper.make_node(op, ["x"], ["y"], **attrs)], shape, shape, opset=opset)
    _check(m, (rng.standard_normal((2, *shape)) * 3).astype(np.float32))


@pytest.mark.parametrize("bounds", [(0.0, 6.0), (-1.0, 0.5), (None, 2.0), (-0.5, None)])
@pytest.mark.parametrize("opset", [6, 13])
def test_clip(bounds, opset, rng):
    lo, hi = bounds
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        node, inits = helper.make_node("Clip", ["x"], ["y"], **attrs), []
    else:
        ins, inits = ["x"], []
        for k, v in (("lo", lo), ("hi", hi)):
            ins.append(k if v is not None else "")
            if v is not None:
                inits.append((k, np.float32(v)))
        node = helper.make_node("Clip", ins, ["y"])
    m = _model([node], (3, 4, 4), (3, 4, 4), inits, opset)
    model = _check(m, (rng.standard_normal((2, 3, 4, 4)) * 4).astype(np.float32))
    if bounds == (0.0, 6.0):
        assert any(type(layer).__name__ == "ReLU6" for layer in model.layers)


@pytest.mark.parametrize("slope_shape", [(1,), (4, 1, 1), (4, 5, 6), (1, 1, 6)])
def test_prelu(slope_shape, rng):
    slope = rng.uniform(-0.3, 0.6, slope_shape).astype(np.float32)
    m = _model(
        [helper.make_node("PRelu", ["x", "s"], ["y"])], (4, 5, 6), (4, 5, 6), [("s", slope)], 13
    )
    _check(m, rng.standard_normal((2, 4, 5, 6)).astype(np.float32))


def test_lrn_and_pool_options(rng):
    nodes = [
        helper.make_node("LRN", ["x"], ["a"], size=5, alpha=1e-2, beta=0.75, bias=2.0),
        helper.make_node("MaxPool", ["a"], ["b"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node(
            "MaxPool", ["b"], ["c"], kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node(
            "AveragePool",
            ["c"],
            ["y"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            ceil_mode=1,
            count_include_pad=1,
        ),
    ]
    m = _model(nodes, (6, 20, 19), None)
    assert _check(m, rng.standard_normal((2, 6, 20, 19)).astype(np.float32)).output_shape == (
        6,
        5,
        6,
    )


def test_layer_norm_over_channels(rng):
    """ConvNeXt's export: Transpose to NHWC, LayerNormalization(axis=-1), back."""
    c = 8
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], axis=-1, epsilon=1e-6),
        helper.make_node("Transpose", ["n"], ["y"], perm=[0, 3, 1, 2]),
    ]
    inits = [("g", rng.uniform(0.5, 1.5, c)), ("b", rng.standard_normal(c))]
    m = _model(nodes, (c, 5, 7), (c, 5, 7), inits, 17)
    _check(m, (rng.standard_normal((2, c, 5, 7)) * 2 + 1).astype(np.float32), 1e-4)


def test_refusals_name_the_node():
    m = _model([helper.make_node("LRN", ["x"], ["y"], size=4)], (6, 5, 5), (6, 5, 5))
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="size=4"):
        cnnx.onnx.from_onnx(m)
    m = _model([helper.make_node("Selu", ["x"], ["y"], alpha=2.0)], (3,), (3,))
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="alpha"):
        cnnx.onnx.from_onnx(m)
    nodes = [helper.make_node("LayerNormalization", ["x", "g"], ["y"], axis=1)]
    m = _model(nodes, (3, 4, 4), (3, 4, 4), [("g", np.ones((3, 4, 4)))], 17)
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="axis"):
        cnnx.onnx.from_onnx(m)


PT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "pytorch-converted")
PT_OK = [
    "test_LogSoftmax",
    "test_log_softmax_dim3",
    "test_log_softmax_lastdim",
    "test_MaxPool2d_stride_padding_dilation",
    "test_PReLU_2d",
    "test_PReLU_2d_multiparam",
    "test_Softplus",
]
# (N, C, L) inputs: cnnx's layers take them, the loader does not yet
PT_3D = ["test_ELU", "test_SELU", "test_Softsign", "test_LeakyReLU", "test_LeakyReLU_with_negval"]


def _pb(path):
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


@pytest.mark.parametrize(
    "name",
    PT_OK
    + [
        pytest.param(
            n,
            marks=pytest.mark.xfail(
                reason="the loader takes (N, C, H, W) or (N, F) inputs only", strict=False
            ),
        )
        for n in PT_3D
    ],
)
def test_pytorch_converted(name):
    d = os.path.join(PT, name)
    if not os.path.isdir(d):
        pytest.skip(f"this onnx has no {name}")
    model = cnnx.onnx.load(os.path.join(d, "model.onnx"))
    x = _pb(os.path.join(d, "test_data_set_0", "input_0.pb"))
    y = _pb(os.path.join(d, "test_data_set_0", "output_0.pb"))
    got = model.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x))
    if got.ndim == 4:
        got = got.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got.reshape(y.shape), y, rtol=1e-4, atol=1e-5)


def test_round_trip_through_export(tmp_path, rng):
    cnnx.set_seed(1)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(8, 3, activation="gelu"),
            cnnx.LocalResponseNormalization(3, 0.1, 0.75, 1.0),
            cnnx.MaxPool2D(3, 2, ceil_mode=True),
            cnnx.ELU(0.5),
            cnnx.PReLU(shared_axes=[1, 2]),
            cnnx.MaxPool2D(2, 1, dilation_rate=2),
            cnnx.Hardswish(),
            cnnx.Clip(-0.7, 0.9),
            cnnx.AvgPool2D(2, 2, padding=1, ceil_mode=True, count_include_pad=False),
            cnnx.Flatten(),
            cnnx.Dense(6, activation="selu"),
            cnnx.Softsign(),
            cnnx.Dense(4),
            cnnx.LogSoftmax(),
        ],
        input_shape=(13, 12, 3),
    )
    path = tmp_path / "m.onnx"
    # opset 20 has Gelu; before, the export writes its Erf formula, which the
    # loader does not recognise
    cnnx.onnx.export(model, path, opset=min(20, onnx.defs.onnx_opset_version()))
    loaded = cnnx.onnx.load(path)
    x = rng.standard_normal((3, 13, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# MobileNetV2 from PyTorch: ReLU6 exported as Clip(0, 6), depthwise convs,
# residual Adds, global pooling
# ---------------------------------------------------------------------------


def _mobilenet_v2(torch, width=1.0, classes=1000):
    """MobileNetV2 as in Sandler et al. (2018), table 2 (written here: no torchvision)."""
    nn = torch.nn

    def conv_bn(cin, cout, k=3, stride=1, groups=1, act=True):
        layers = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        return layers + [nn.ReLU6(inplace=True)] if act else layers

    class Inverted(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            mid = cin * expand
            layers = conv_bn(cin, mid, 1) if expand != 1 else []
            layers += conv_bn(mid, mid, 3, stride, groups=mid) + conv_bn(mid, cout, 1, act=False)
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    def ch(c):
        return max(8, int(c * width + 4) // 8 * 8)

    layers = conv_bn(3, ch(32), 3, 2)
    cin = ch(32)
    for t, c, n, s in (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ):
        for i in range(n):
            layers.append(Inverted(cin, ch(c), s if i == 0 else 1, t))
            cin = ch(c)
    last = max(1280, ch(1280))
    layers += conv_bn(cin, last, 1)
    net = nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(last, classes)
    )
    with torch.no_grad():  # running statistics of a trained net's order, not 0 / 1
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_mobilenet_v2_from_pytorch(tmp_path, dynamo, rng):
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    net = _mobilenet_v2(torch, width=0.5, classes=100)
    size = 96
    path = tmp_path / "mobilenet_v2.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"dynamo": dynamo}
        if not dynamo:
            kwargs.update(input_names=["x"], dynamic_axes={"x": {0: "n"}})
        else:
            kwargs["verbose"] = False
        torch.onnx.export(net, (torch.randn(1, 3, size, size),), str(path), **kwargs)
    proto = onnx.load(str(path))
    assert any(n.op_type == "Clip" for n in proto.graph.node)  # how PyTorch writes ReLU6
    model = cnnx.onnx.load(path)
    x = rng.standard_normal((3, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    got = model.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    scale = float(np.abs(want).max())
    assert float(np.abs(got - want).max()) / scale < 1e-4
    n_torch = sum(p.numel() for p in net.parameters())
    n_bn = sum(m.num_features for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # kept as BatchNormalization, or folded into the convolution by the exporter (a bias)
    assert model.count_params() in (n_torch, n_torch - n_bn)
    layers = [type(layer).__name__ for layer in model.layers]
    # 35 ReLU6: each stands alone or became its convolution's fused activation
    n_relu6 = layers.count("ReLU6") + sum(
        getattr(layer, "activation", None) == "relu6" for layer in model.layers
    )
    assert n_relu6 == 35
    assert layers.count("Add") == 10
