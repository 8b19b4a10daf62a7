"""cnnx.onnx.load of graphs, not chains: branches and joins (Concat, Sum, Sub,
Mul, Mean), several inputs and outputs, constants multiplied or added per
channel (the batch-norm pattern of old Caffe2 exports), weights computed
from constants, layout changes, PyTorch Inception- and DenseNet-style
networks from both exporters, and the limits (hostile constants, very long
graphs). Each loaded model is compared with ONNX Runtime (or PyTorch) on the
same input."""

import time
import warnings

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
import cnnx.onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from test_onnx_import import (  # noqa: E402
    G,
    TOL,
    _export_torch,
    _load_graph,  # noqa: E402
    compare_with_ort,
    nhwc,
)

Err = cnnx.onnx.ONNXConversionError


def kinds(model):
    return [type(l).__name__ for l in model.layers]


def _graph(nodes, inits, inputs, outputs, opset=17):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _ort(m, feeds):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


# ---------------------------------------------------------------------------
# joins
# ---------------------------------------------------------------------------


def _inception_block():
    g = G((4, 7, 6))
    g.op("Relu")
    x = g.cur
    a = g.op("Conv", g.w(3, 4, 1, 1), g.w(3), inp=x)
    b = g.op("Conv", g.w(5, 4, 3, 3), g.w(5), pads=[1, 1, 1, 1], inp=x)
    c = g.op("MaxPool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], inp=x)
    cat = g.op("Concat", a, b, inp=c, axis=1, name="cat4")  # 4 + 3 + 5 channels
    p = g.op("Conv", g.w(12, 12, 1, 1), inp=cat)
    q = g.op("Conv", g.w(12, 12, 3, 3), pads=[1, 1, 1, 1], inp=cat)
    s = g.op("Sum", q, cat, inp=p)  # three inputs
    r = g.op("Relu", inp=s)
    d = g.op("Sub", cat, inp=r)
    m = g.op("Mul", d, inp=g.op("Sigmoid", inp=p))
    g.op("Mean", r, m, inp=d)
    g.op(
        "Concat",
        g.op("AveragePool", kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1], inp=g.cur),
        inp=g.cur,
        axis=2,
    )  # along H
    g.op("Flatten")
    g.op("Gemm", g.w(12 * 14 * 6, 5), g.w(5))
    return g.model()


def test_inception_block_concat_sum_mean_sub_mul(tmp_path):
    model = compare_with_ort(_inception_block(), tmp_path)
    k = kinds(model)
    assert k.count("Concatenate") == 2 and k.count("Subtract") == 1 and "Average" in k
    adds = [l for l in model.layers if isinstance(l, cnnx.Add)]
    assert len(adds) == 1 and adds[0].activation == "relu" and len(adds[0].input_shape) == 3
    assert model.get_layer("cat4").output_shape == (7, 6, 12)


def test_several_inputs_and_outputs():
    """An NCHW image and flat features in; logits and an image out."""
    rng = np.random.default_rng(0)
    w = lambda *s: numpy_helper.from_array(  # noqa: E731
        rng.standard_normal(s).astype(np.float32) * 0.3, f"w{len(inits)}"
    )
    inits = []
    for shape in ((3, 2, 3, 3), (3,), (5, 48), (9, 4), (4, 4)):
        inits.append(w(*shape))
    nodes = [
        helper.make_node("Conv", ["img", "w0", "w1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "w2"], ["g"], transB=1),
        helper.make_node("Concat", ["g", "meta"], ["cat"], axis=1),
        helper.make_node("MatMul", ["cat", "w3"], ["logits"]),
        helper.make_node("MatMul", ["meta", "w4"], ["unused_branch"]),
    ]
    m = _graph(nodes, inits, [("img", ["N", 2, 4, 4]), ("meta", ["N", 4])], ["logits", "r"])
    model = cnnx.onnx.from_onnx(m)
    assert model.input_shape == [(4, 4, 2), (4,)] and model.output_shape == [(4,), (4, 4, 3)]
    img = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    meta = rng.standard_normal((3, 4)).astype(np.float32)
    want = _ort(m, {"img": img, "meta": meta})
    got = model.predict([nhwc(img), meta])
    np.testing.assert_allclose(got[0], want[0], atol=TOL, rtol=0)
    np.testing.assert_allclose(got[1], nhwc(want[1]), atol=TOL, rtol=0)
    # an input no output reads is refused (cnnx models use all their inputs)
    m2 = _graph(nodes, inits, [("img", ["N", 2, 4, 4]), ("meta", ["N", 4])], ["r"])
    with pytest.raises(Err, match="input 'meta' is not used"):
        cnnx.onnx.from_onnx(m2)


def test_flat_joins_keep_their_feature_order(tmp_path):
    """Features of two NCHW flattens concatenated, then a Gemm: its rows are reordered
    per block; adding flattened images keeps their order; an unflatten finds the image."""
    g = G((3, 2, 3))
    x = g.cur
    a = g.op("Flatten", inp=g.op("Conv", g.w(2, 3, 1, 1), inp=x))
    b = g.op("Flatten", inp=g.op("Relu", inp=x))
    s = g.op("Add", g.op("Flatten", inp=g.op("Conv", g.w(2, 3, 1, 1), inp=x)), inp=a)
    cat = g.op("Concat", b, inp=s, axis=1)  # 12 + 18 features
    g.op("Gemm", g.w(30, 4), inp=cat)
    compare_with_ort(g.model(), tmp_path)
    # Flatten, Relu, Reshape back to NCHW, Conv: no data moves in cnnx
    g = G((3, 2, 3))
    g.op("Flatten")
    g.op("Relu")
    g.op("Reshape", g.const(np.array([-1, 3, 2, 3], np.int64)))
    g.op("Conv", g.w(2, 3, 1, 1))
    model = compare_with_ort(g.model(), tmp_path)
    assert kinds(model) == ["ReLU", "Conv2D"]


def test_nhwc_views_join_and_flatten(tmp_path):
    """Transposes to NHWC and back cost nothing; joins of NHWC views work on their axes."""
    g = G((3, 4, 5))
    a = g.op("Transpose", perm=[0, 2, 3, 1])
    b = g.op("Transpose", inp=g.op("Conv", g.w(2, 3, 1, 1), inp="x"), perm=[0, 2, 3, 1])
    cat = g.op("Concat", b, inp=a, axis=3)  # NHWC channels
    t = g.op("Sigmoid", inp=cat)
    g.op("Flatten", inp=t)  # (h, w, c) order: cnnx's own
    g.op("Gemm", g.w(4 * 5 * 5, 3))
    compare_with_ort(g.model(), tmp_path)
    g = G((3, 4, 5))
    g.op("Transpose", perm=[0, 2, 3, 1])
    g.op("Conv", g.w(2, 3, 1, 1), name="conv_on_nhwc")
    with pytest.raises(Err, match="conv_on_nhwc.*NHWC"):
        _load_graph(g, tmp_path)


# ---------------------------------------------------------------------------
# constants: Caffe2's scale-and-shift, standalone per-channel ops, computed weights
# ---------------------------------------------------------------------------


def test_caffe2_batchnorm_scale_and_shift_fold(tmp_path):
    """BatchNormalization, then Mul and Add by Unsqueeze(per-channel constants), then
    Relu (DenseNet and Inception v2 as Caffe2 exported them): the scale and shift
    fold into the BatchNormalization, exactly as a function."""
    g = G((4, 5, 5), opset=9)
    g.op("Conv", g.w(6, 4, 3, 3), pads=[1, 1, 1, 1])
    bn = g.op(
        "BatchNormalization",
        g.w(6, positive=True),
        g.w(6),
        g.w(6),
        g.w(6, positive=True),
        epsilon=1e-5,
    )
    scaled = g.op("Mul", g.op("Unsqueeze", inp=g.w(6, positive=True), axes=[1, 2]), inp=bn)
    g.op("Add", g.op("Unsqueeze", inp=g.w(6), axes=[1, 2]), inp=scaled)
    g.op("Relu")
    model = compare_with_ort(g.model(), tmp_path)
    assert kinds(model) == ["Conv2D", "BatchNormalization", "ReLU"]
    # the same after a Conv folds into its weights and bias (bias created), then the Relu
    g = G((4, 5, 5))
    g.op("Conv", g.w(6, 4, 3, 3))
    g.op("Mul", g.w(1, 6, 1, 1))
    g.op("Sub", g.w(6, 1, 1))
    g.op("Relu")
    model = compare_with_ort(g.model(), tmp_path)
    assert kinds(model) == ["Conv2D"] and model.layers[0].use_bias
    assert model.layers[0].activation == "relu"


def test_per_channel_constants_elsewhere_become_depthwise_convs(tmp_path):
    g = G((3, 4, 5))
    g.op("Relu")
    r = g.cur
    g.op("Mul", g.const(np.float32(0.5)))  # a scalar
    g.op("Sub", g.cur, inp=g.w(1, 3, 1, 1))  # c - x
    g.op("Div", g.w(3, 1, 1, positive=True))  # x / c
    g.op("Add", r)  # r is read twice: no folding
    model = compare_with_ort(g.model(), tmp_path)
    dw = [l for l in model.layers if isinstance(l, cnnx.Conv2D)]
    assert len(dw) == 1 and dw[0].groups == 3 and dw[0].kernel_size == (1, 1)
    # an NHWC view: constants of shape (C,) are per channel there
    g = G((3, 4, 5))
    g.op("Transpose", perm=[0, 2, 3, 1])
    g.op("Sigmoid")
    g.op("Mul", g.w(3))
    g.op("Add", g.w(1, 1, 1, 3))
    g.op("Transpose", perm=[0, 3, 1, 2])  # back to NCHW, as compare_with_ort expects
    compare_with_ort(g.model(), tmp_path)


def test_per_feature_constants_on_flat_features(tmp_path):
    g = G((2, 3, 3))
    g.op("Flatten")
    g.op("Gemm", g.w(18, 8))
    g.op("Relu")
    g.op("Mul", g.w(8, positive=True))  # folds forward into the Gemm
    g.op("Add", g.w(1, 8))
    g.op("Gemm", g.w(8, 4), g.w(4))
    g.op("Mul", g.const(np.float32(3.0)))  # folds back into that Gemm
    model = compare_with_ort(g.model(), tmp_path)
    assert kinds(model) == ["Flatten", "Dense", "Dense"] and model.layers[1].activation == "relu"
    g = G((2, 3, 3))
    g.op("Flatten")
    g.op("Add", g.w(18), name="lonely")
    g.op("Relu")
    g.op("Gemm", g.w(18, 2))
    with pytest.raises(Err, match="Add.*lonely.*flat features"):
        _load_graph(g, tmp_path)


def test_weights_computed_from_constants(tmp_path):
    """Conv/Gemm/MatMul weights and a bias computed in the graph: Transpose, Reshape,
    Slice, Concat, ConstantOfShape, Cast and Add of constants."""
    g = G((2, 4, 4))
    w = g.op("Transpose", inp=g.w(2, 2, 3, 3), perm=[1, 0, 2, 3])
    conv = g.op("Conv", w, pads=[1, 1, 1, 1], inp="x")
    flat = g.op("Flatten", inp=conv)  # 32 features
    big = g.op("Reshape", g.const(np.array([4, 32], np.int64)), inp=g.w(8, 16))
    h = g.op("Gemm", big, inp=flat, transB=1)  # (N, 4)
    half = g.op(
        "Slice",
        g.const(np.array([0], np.int64)),
        g.const(np.array([4], np.int64)),
        g.const(np.array([1], np.int64)),
        inp=g.w(4, 8),
    )  # (4, 4)
    both = g.op("Concat", half, inp=half, axis=1)  # (4, 8)
    mm = g.op("MatMul", both, inp=h)  # (N, 8)
    halves = g.op(
        "ConstantOfShape",
        inp=g.const(np.array([8], np.int64)),
        value=numpy_helper.from_array(np.array([0.5], np.float32)),
    )
    shift = g.op(
        "Add",
        halves,
        inp=g.op("Cast", inp=g.const(np.arange(8, dtype=np.int64)), to=TensorProto.FLOAT),
    )
    g.op("Add", shift, inp=mm)
    model = compare_with_ort(g.model(), tmp_path)
    assert kinds(model) == ["Conv2D", "Flatten", "Dense", "Dense"]
    assert model.layers[-1].use_bias


def test_shape_arithmetic_is_folded(tmp_path):
    """Reshape targets from Shape/Slice/Concat/Squeeze/Unsqueeze/Gather/Cast arithmetic."""
    g = G((3, 2, 2))
    g.op("Relu")
    data = g.cur
    shp = g.op("Shape", inp=data)
    n = g.op("Slice", g.const(np.array([0], np.int64)), g.const(np.array([1], np.int64)), inp=shp)
    chw = g.op("Slice", g.const(np.array([1], np.int64)), g.const(np.array([4], np.int64)), inp=shp)
    prod = g.op(
        "Cast",
        inp=g.op("Gather", g.const(np.array([0, 1, 2], np.int64)), inp=chw),
        to=TensorProto.INT64,
    )
    feats = g.op(
        "Unsqueeze",
        g.const(np.array([0], np.int64)),
        inp=g.op(
            "Squeeze",
            inp=g.op(
                "Slice",
                g.const(np.array([0], np.int64)),
                g.const(np.array([1], np.int64)),
                inp=prod,
            ),
        ),
    )
    g.op("Mul", g.const(np.array([4], np.int64)), inp=feats)  # 3 * 4 features
    target = g.op("Concat", g.cur, inp=n, axis=0)
    g.op("Reshape", target, inp=data)
    g.op("Gemm", g.w(12, 3))
    compare_with_ort(g.model(), tmp_path)


def test_dropout_mask(tmp_path):
    g = G((2, 3, 3), opset=9)
    g.op("Dropout", ratio=0.3)
    g.nodes[-1].output.append("mask")  # an unused mask output: fine
    g.op("Relu")
    model = compare_with_ort(g.model(), tmp_path)
    assert kinds(model) == ["Dropout", "ReLU"]
    m = g.model()
    m.graph.output.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, None))
    path = tmp_path / "mask.onnx"
    onnx.save(m, str(path))
    with pytest.raises(Err, match="Dropout.*mask output"):
        cnnx.onnx.load(path)


def test_mutated_graphs_load_exactly_or_are_refused():
    """Random mutations (attributes, wiring, operator types, weight shapes) of a graph:
    cnnx either refuses with a ValueError/TypeError or loads a model that matches
    ONNX Runtime wherever ONNX Runtime runs the mutant."""
    ort = pytest.importorskip("onnxruntime")
    import random

    base = _inception_block()
    rng = random.Random(0)
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 6)).astype(np.float32)
    outcomes = {"loaded": 0, "refused": 0, "compared": 0}
    for _ in range(300):
        m = onnx.ModelProto()
        m.CopyFrom(base)
        nodes = list(m.graph.node)
        for _ in range(rng.randint(1, 2)):
            n = rng.choice(nodes)
            r = rng.random()
            ints = [a for a in n.attribute if a.type == onnx.AttributeProto.INTS and a.ints]
            if r < 0.35 and ints:
                a = rng.choice(ints)
                a.ints[rng.randrange(len(a.ints))] = rng.choice([-2, 0, 1, 2, 3, 2**40])
            elif r < 0.55 and n.input:
                n.input[rng.randrange(len(n.input))] = rng.choice(
                    [o for k in nodes for o in k.output] + ["x", ""]
                )
            elif r < 0.75:
                n.op_type = rng.choice(
                    [
                        "Relu",
                        "Add",
                        "Concat",
                        "Flatten",
                        "Mul",
                        "Sum",
                        "Gemm",
                        "Conv",
                        "MaxPool",
                        "Transpose",
                        "Sub",
                        "Mean",
                    ]
                )
            elif r < 0.9:
                t = rng.choice(list(m.graph.initializer))
                if t.dims:
                    t.dims[rng.randrange(len(t.dims))] = rng.choice([1, 2, 3])
            else:
                n.attribute.append(helper.make_attribute("axis", rng.choice([-5, 1, 2, 3, 9])))
        try:
            model = cnnx.onnx.from_onnx(m)
        except (ValueError, TypeError):
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        try:
            sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            wants = sess.run(None, {"x": x})
        except Exception:  # noqa: BLE001 - ONNX Runtime refuses some mutants cnnx prunes
            continue
        got = model.predict(nhwc(x))
        want = nhwc(wants[0]) if wants[0].ndim == 4 else wants[0]
        np.testing.assert_allclose(
            got, want, atol=TOL * max(1.0, float(np.abs(want).max())), rtol=0
        )
        outcomes["compared"] += 1
    assert outcomes["refused"] > 100 and outcomes["compared"] > 10, outcomes


# ---------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op,inputs,attrs",
    [
        ("ConstantOfShape", [np.array([2**40], np.int64)], {}),
        ("ConstantOfShape", [np.array([2**20, 2**20], np.int64)], {}),
        ("Expand", [np.ones(1, np.float32), np.array([2**16, 2**16], np.int64)], {}),
        ("Range", [np.array(0, np.int64), np.array(2**40, np.int64), np.array(1, np.int64)], {}),
    ],
)
def test_hostile_constants_are_refused_quickly(tmp_path, op, inputs, attrs):
    g = G((2, 3, 3))
    names = [g.const(a) for a in inputs]
    big = g.op(op, *names[1:], inp=names[0], name="huge", **attrs)
    g.op("Add", big, inp="x")
    t = time.process_time()
    with pytest.raises(Err, match=f"{op} \\(node 'huge'\\): cannot evaluate .*values"):
        _load_graph(g, tmp_path)
    assert time.process_time() - t < 5


def _nested_adds(depth):
    """y_{i+1} = Relu(y_i) + x: a residual Add inside the block of the next."""
    nodes, cur = [], "x"
    for i in range(depth):
        nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
        nodes.append(helper.make_node("Add", [f"r{i}", "x"], [f"a{i}"]))
        cur = f"a{i}"
    return _graph(nodes, [], [("x", [None, 2, 4, 4])], [cur])


def test_deep_and_long_graphs_load_in_linear_time():
    """1,500 nested residual Adds (a graph, not nested layers: no depth limit applies)
    and 1,500 consecutive ones load quickly and compute the reference."""
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 2)).astype(np.float32)
    t = time.process_time()
    model = cnnx.onnx.from_onnx(_nested_adds(1500))
    ref = x.copy()
    for _ in range(1500):
        ref = np.maximum(ref, 0) + x
    np.testing.assert_allclose(model.predict(x), ref, rtol=1e-5)
    nodes, cur = [], "x"
    for i in range(1500):
        nodes += [
            helper.make_node("Tanh", [cur], [f"r{i}"]),
            helper.make_node("Add", [f"r{i}", cur], [f"a{i}"]),
        ]
        cur = f"a{i}"
    model = cnnx.onnx.from_onnx(_graph(nodes, [], [("x", [None, 2, 4, 4])], [cur]))
    assert len(model.layers) == 3000
    ref = x.copy()
    for _ in range(1500):
        ref = np.tanh(ref) + ref
    np.testing.assert_allclose(model.predict(x), ref, rtol=1e-4)
    assert time.process_time() - t < 30


def test_cycles_and_undefined_values_are_refused():
    nodes = [
        helper.make_node("Relu", ["b"], ["a"], name="r1"),
        helper.make_node("Relu", ["a"], ["b"], name="r2"),
        helper.make_node("Add", ["x", "b"], ["y"]),
    ]
    with pytest.raises(Err, match="cycle"):
        cnnx.onnx.from_onnx(_graph(nodes, [], [("x", [None, 2, 4, 4])], ["y"]))
    nodes = [helper.make_node("Relu", ["nowhere"], ["y"], name="lost")]
    with pytest.raises(Err, match="lost.*'nowhere' is neither"):
        cnnx.onnx.from_onnx(_graph(nodes, [], [("x", [None, 2, 4, 4])], ["y"]))


# ---------------------------------------------------------------------------
# PyTorch Inception- and DenseNet-style networks (torch.cat), both exporters
# ---------------------------------------------------------------------------


def _torch_graph_nets():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Inception(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.b1 = nn.Conv2d(cin, 8, 1)
            self.b2 = nn.Sequential(nn.Conv2d(cin, 6, 1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1))
            self.b3 = nn.Sequential(nn.Conv2d(cin, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=2))
            self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, 4, 1))

        def forward(self, x):
            return torch.relu(torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1))

    class InceptionNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
            )
            self.i1, self.i2 = Inception(16), Inception(24)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(24, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.i2(self.i1(self.stem(x)))), 1))

    class DenseLayer(nn.Module):
        def __init__(self, cin, growth):
            super().__init__()
            self.bn = nn.BatchNorm2d(cin)
            self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

        def forward(self, x):
            return torch.cat([x, self.conv(torch.relu(self.bn(x)))], 1)

    class DenseNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
            self.block1 = nn.Sequential(DenseLayer(8, 4), DenseLayer(12, 4), DenseLayer(16, 4))
            self.trans = nn.Sequential(
                nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 10, 1, bias=False), nn.AvgPool2d(2)
            )
            self.block2 = nn.Sequential(DenseLayer(10, 4), DenseLayer(14, 4))
            self.bn, self.fc = nn.BatchNorm2d(18), nn.Linear(18 * 7 * 7, 10)

        def forward(self, x):
            x = torch.relu(self.bn(self.block2(self.trans(self.block1(self.stem(x))))))
            return torch.softmax(self.fc(x.reshape(x.shape[0], -1)), 1)

    class TwoInTwoOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 6 * 6 + 5, 3)

        def forward(self, img, meta):
            f = torch.relu(self.conv(img))
            return self.fc(torch.cat([f.flatten(1), meta], 1)), f

    torch.manual_seed(0)
    nets = {
        "inception": (InceptionNet(), [(3, 16, 16)]),
        "densenet": (DenseNet(), [(1, 14, 14)]),
        "two_in_two_out": (TwoInTwoOut(), [(3, 6, 6), (5,)]),
    }
    with torch.no_grad():
        for net, _ in nets.values():
            net.eval()
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.3, 0.3)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
    return torch, nets


def _export(torch, module, shapes, path, dynamo):
    if len(shapes) == 1:
        return _export_torch(torch, module, shapes[0], path, dynamo)
    if dynamo:
        pytest.importorskip("onnxscript")
    xs = tuple(torch.randn(2, *s) for s in shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"dynamo": dynamo}
        if not dynamo:
            names = [f"in{i}" for i in range(len(shapes))]
            kwargs.update(input_names=names, dynamic_axes={n: {0: "b"} for n in names})
        else:
            kwargs["verbose"] = False
        torch.onnx.export(module, xs, str(path), **kwargs)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("which", ["inception", "densenet", "two_in_two_out"])
def test_pytorch_graph_networks(tmp_path, which, dynamo):
    torch, nets = _torch_graph_nets()
    module, shapes = nets[which]
    path = tmp_path / f"{which}.onnx"
    _export(torch, module, shapes, path, dynamo)
    model = cnnx.onnx.load(path)
    xs = [torch.randn(5, *s) for s in shapes]
    with torch.no_grad():
        want = module(*xs)
    want = [w.numpy() for w in want] if isinstance(want, tuple) else [want.numpy()]
    got = model.predict(
        [nhwc(x.numpy()) if x.ndim == 4 else x.numpy() for x in xs]
        if len(xs) > 1
        else nhwc(xs[0].numpy())
    )
    got = got if isinstance(got, list) else [got]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, nhwc(w) if w.ndim == 4 else w, atol=TOL, rtol=0)
    n_torch = sum(p.numel() for p in module.parameters())
    if which == "inception":  # the exporter folds the stem's BatchNorm into its Conv
        assert model.count_params() == n_torch - 2 * 16
    else:
        assert model.count_params() == n_torch
    k = kinds(model)
    if which == "inception":
        assert k.count("Concatenate") == 2
    if which == "densenet":
        assert k.count("Concatenate") == 5 and k.count("BatchNormalization") == 7
