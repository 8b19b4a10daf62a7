"""Quantized ONNX graphs (QDQ and QLinearConv forms, from cnnx's export and
from ONNX Runtime's quantize_static) load into cnnx's int8 path and compute
what ONNX Runtime computes."""

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def data(shape, n, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


def cnnx_model():
    cnnx.set_seed(2)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(8, 3, padding="same", activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Residual(
                [
                    cnnx.Conv2D(8, 3, padding="same", activation="relu"),
                    cnnx.Conv2D(8, 3, padding="same"),
                ]
            ),
            cnnx.Conv2D(12, 3, strides=2),
            cnnx.Flatten(),
            cnnx.Dense(5),
        ],
        input_shape=(12, 12, 3),
    )
    return m


def ort_run(path, x):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def test_cnnx_qdq_export_round_trip(tmp_path):
    m = cnnx_model()
    x = data(m.input_shape, 48)
    q = cnnx.quantize(m, x)
    p = tmp_path / "q.onnx"
    cnnx.onnx.export(q, p)
    r = cnnx.onnx.load_quantized(p)
    assert isinstance(r, cnnx.QuantizedModel)
    assert all(prec in ("int8", "view") for _, prec in r.precision())
    # the biases became int32 in the file: a fraction of a step apart from cnnx's float biases
    assert rel_l2(r.predict(x), q.predict(x)) < 5e-3
    # ... and exactly what ONNX Runtime computes from the same file, up to its float adds
    assert rel_l2(r.predict(x), ort_run(p, x)) < 5e-3


def _torch_net():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.stem = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
            )
            self.c1 = nn.Conv2d(16, 16, 3, padding=1)
            self.c2 = nn.Conv2d(16, 16, 3, padding=1)
            self.head = nn.Linear(16, 6)

        def forward(self, x):
            x = self.stem(x)
            y = self.c2(torch.relu(self.c1(x)))
            x = torch.relu(y + x)
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    return torch, Net().eval()


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_onnxruntime_quantize_static_imports_exactly(tmp_path, fmt):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    torch, net = _torch_net()
    fp = tmp_path / "f.onnx"
    torch.onnx.export(
        net,
        torch.zeros(1, 3, 16, 16),
        str(fp),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    calib = data((3, 16, 16), 32, seed=1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i : i + 8]} for i in range(0, 32, 8)])

        def get_next(self):
            return next(self.it, None)

    qp = tmp_path / "q.onnx"
    quantize_static(
        str(fp),
        str(qp),
        Reader(),
        quant_format=getattr(QuantFormat, fmt),
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    r = cnnx.onnx.load_quantized(qp)
    prec = dict(r.precision())
    assert sum(p == "int8" for p in prec.values()) >= 4
    x = data((3, 16, 16), 16, seed=2)
    y = r.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    yo = ort_run(qp, x)
    # the convolutions are bit-exact (int32 biases added as QLinearConv adds them);
    # ONNX Runtime's QLinearAdd may round one value a step apart
    assert rel_l2(y, yo) < 2e-3
    with torch.no_grad():
        yt = net(torch.from_numpy(x)).numpy()
    assert rel_l2(y, yt) < 0.05
    # saved and loaded back as a cnnx file: the same bytes
    p = tmp_path / "r.cnnx"
    r.save(p)
    np.testing.assert_array_equal(
        cnnx.load_model(p).predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))), y
    )


def test_conv_only_qlinearconv_graph_is_bit_exact(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (6, 4, 3, 3), dtype=np.int8)
    ws = rng.uniform(0.005, 0.02, 6).astype(np.float32)
    b = rng.integers(-500, 500, 6).astype(np.int32)
    inits = [
        numpy_helper.from_array(np.array(0.03, np.float32), "xs"),
        numpy_helper.from_array(np.array(120, np.uint8), "xz"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(ws, "ws"),
        numpy_helper.from_array(np.zeros(6, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
        numpy_helper.from_array(np.array(7, np.uint8), "yz"),
        numpy_helper.from_array(b, "b"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node(
            "QLinearConv",
            ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
            ["yq"],
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        ),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    p = tmp_path / "c.onnx"
    onnx.save(m, p)
    r = cnnx.onnx.load_quantized(p)
    assert dict(r.precision()) and all(v == "int8" for _, v in r.precision())
    x = data((4, 9, 9), 5)
    np.testing.assert_array_equal(
        r.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))),
        ort_run(p, x).transpose(0, 2, 3, 1),
    )


def test_unsupported_quantized_graphs_are_named(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(3, np.uint8), "z"),
    ]
    # a uint8 graph output (cnnx gives float32)
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="quant_out")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        inits,
    )
    p = tmp_path / "u.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p)
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="quant_out"):
        cnnx.onnx.load_quantized(p)
    with pytest.raises(ValueError, match="path"):
        cnnx.onnx.load_quantized(tmp_path / "missing.onnx")
