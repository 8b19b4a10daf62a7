"""cnnx.onnx.load: ONNX graphs (hand-built, exported by cnnx, exported by
PyTorch with either exporter) run in cnnx on NHWC input and agree with the
reference (ONNX Runtime on the NCHW graph, or PyTorch itself)."""

import warnings

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
import cnnx.onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TOL = 1e-4


def nhwc(x):
    return np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))


def run_ort(proto_or_path, x):
    ort = pytest.importorskip("onnxruntime")
    src = (
        proto_or_path.SerializeToString()
        if isinstance(proto_or_path, onnx.ModelProto)
        else str(proto_or_path)
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


# ---------------------------------------------------------------------------
# hand-built graphs, checked against ONNX Runtime
# ---------------------------------------------------------------------------


class G:
    """A tiny graph builder: NCHW float input 'x', output 'y'."""

    def __init__(self, in_shape, seed=0, opset=17):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.in_shape = in_shape
        self.opset = opset
        self.cur = "x"
        self.k = 0

    def w(self, *shape, scale=0.3, positive=False):
        a = self.rng.standard_normal(shape).astype(np.float32) * scale
        if positive:
            a = np.abs(a) + 0.5
        name = f"w{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def const(self, arr):
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op_type, *extra_inputs, inp=None, name=None, **attrs):
        self.k += 1
        out = f"t{self.k}"
        self.nodes.append(
            helper.make_node(
                op_type,
                [inp or self.cur, *extra_inputs],
                [out],
                name=name or f"{op_type.lower()}{self.k}",
                **attrs,
            )
        )
        self.cur = out
        return out

    def model(self):
        nodes = list(self.nodes)
        nodes.append(helper.make_node("Identity", [self.cur], ["y"], name="out"))
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *self.in_shape])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=self.inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = 8
        return m


def compare_with_ort(m, tmp_path, batch=3, seed=0):
    path = tmp_path / "g.onnx"
    onnx.save(m, str(path))
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)
    want = run_ort(m, x)
    model = cnnx.onnx.load(path)
    got = model.predict(nhwc(x) if x.ndim == 4 else x)
    if want.ndim == 4:
        want = nhwc(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    return model


def test_conv_bn_pool_gemm_graph(tmp_path):
    g = G((3, 10, 9))
    g.op("Conv", g.w(6, 3, 3, 3), g.w(6), pads=[1, 0, 2, 1], strides=[2, 1])
    g.op(
        "BatchNormalization",
        g.w(6, positive=True),
        g.w(6),
        g.w(6),
        g.w(6, positive=True),
        epsilon=1e-3,
    )
    g.op("LeakyRelu", alpha=0.2)
    g.op("MaxPool", kernel_shape=[2, 3], strides=[1, 2], pads=[1, 1, 0, 1])
    g.op("AveragePool", kernel_shape=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
    g.op("Flatten", axis=1)
    n = 6 * 7 * 5
    g.op("Gemm", g.w(5, n), g.w(5), transB=1, alpha=0.5, beta=2.0)
    g.op("Softmax", axis=1)
    model = compare_with_ort(g.model(), tmp_path)
    kinds = [type(l).__name__ for l in model.layers]
    assert kinds == [
        "Conv2D",
        "BatchNormalization",
        "LeakyReLU",
        "MaxPool2D",
        "AvgPool2D",
        "Flatten",
        "Dense",
    ]
    assert model.layers[-1].activation == "softmax"


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad_group_dilation(tmp_path, auto_pad):
    g = G((4, 9, 8))
    g.op("Conv", g.w(6, 2, 3, 2), auto_pad=auto_pad, strides=[2, 2], group=2)
    g.op("Relu")
    g.op("Conv", g.w(6, 1, 3, 3), g.w(6), dilations=[2, 1], pads=[2, 1, 2, 1], group=6)
    g.op("Sigmoid")
    model = compare_with_ort(g.model(), tmp_path)
    assert model.layers[0].activation == "relu" and model.layers[1].activation == "sigmoid"


def test_matmul_add_reducemean_dropout_tanh(tmp_path):
    g = G((3, 6, 6), opset=13)
    g.op("Conv", g.w(4, 3, 1, 1))
    g.op("Add", g.w(1, 4, 1, 1))  # a bias added after a bias-less conv
    g.op("Tanh")
    g.op("ReduceMean", axes=[2, 3], keepdims=1)
    g.op("Reshape", g.const(np.array([0, -1], np.int64)))
    g.op("Dropout", g.const(np.array(0.3, np.float32)))
    g.op("MatMul", g.w(4, 3))
    g.op("Add", g.w(3))
    g.op("BatchNormalization", g.w(3, positive=True), g.w(3), g.w(3), g.w(3, positive=True))
    model = compare_with_ort(g.model(), tmp_path)
    kinds = [type(l).__name__ for l in model.layers]
    assert kinds == ["Conv2D", "GlobalAvgPool2D", "Dropout", "Dense", "BatchNormalization"]
    assert model.layers[0].use_bias and model.layers[3].use_bias


def test_flatten_then_batchnorm_then_gemm(tmp_path):
    # per-feature statistics of an NCHW flatten must be reordered as well
    g = G((2, 3, 4))
    g.op("Flatten", axis=1)
    g.op("BatchNormalization", g.w(24, positive=True), g.w(24), g.w(24), g.w(24, positive=True))
    g.op("Relu")
    g.op("Gemm", g.w(24, 5))
    compare_with_ort(g.model(), tmp_path)


def test_softmax_over_channels_and_image_output(tmp_path):
    g = G((3, 5, 4))
    g.op("Conv", g.w(4, 3, 1, 1), g.w(4))
    g.op("Softmax", axis=1)
    g.op("GlobalMaxPool")
    g.op("Softmax", axis=2)  # over a size-1 axis: all ones, still exact
    model = compare_with_ort(g.model(), tmp_path)
    assert model.output_shape == (1, 1, 4)


def test_residual_add_graph(tmp_path):
    g = G((4, 6, 6))
    g.op("Relu")
    fork = g.cur
    g.op("Conv", g.w(4, 4, 3, 3), g.w(4), pads=[1, 1, 1, 1])
    g.op("Relu")
    g.op("Conv", g.w(4, 4, 3, 3), pads=[1, 1, 1, 1])
    a = g.cur
    g.op("Conv", g.w(4, 4, 1, 1), inp=fork)
    b = g.cur
    g.op("Add", b, inp=a)
    g.op("Relu")
    fork2 = g.cur
    g.op("Conv", g.w(4, 4, 3, 3), pads=[1, 1, 1, 1])
    g.op("Add", fork2)  # identity shortcut, operands in the other order
    model = compare_with_ort(g.model(), tmp_path)
    adds = [l for l in model.layers if isinstance(l, cnnx.Add)]
    # the Relu after the first Add is its activation; the 1x1 shortcut is a Conv2D
    assert len(adds) == 2 and adds[0].activation == "relu" and adds[1].activation is None
    assert sum(isinstance(l, cnnx.Conv2D) for l in model.layers) == 4
    assert not any(isinstance(l, cnnx.ReLU) for l in model.layers[1:])


def test_reshape_from_shape_arithmetic(tmp_path):
    """x.view(x.size(0), -1) with a dynamic batch: Shape -> Gather -> Unsqueeze -> Concat."""
    g = G((2, 3, 3))
    g.op("Relu")
    data = g.cur
    g.op("Shape", inp=data)
    g.op("Gather", g.const(np.array(0, np.int64)), axis=0)
    g.op("Unsqueeze", g.const(np.array([0], np.int64)))
    g.op("Concat", g.const(np.array([-1], np.int64)), axis=0)
    shape = g.cur
    g.op("Reshape", shape, inp=data)
    g.op("Gemm", g.w(18, 2))
    compare_with_ort(g.model(), tmp_path)


def test_keras_style_nhwc_graph(tmp_path):
    """NHWC input, Transpose to NCHW, ..., Transpose back to NHWC before the Flatten
    (the layout tf2onnx writes for Keras models): no weight reordering needed."""
    g = G((6, 5, 3))  # NHWC input
    g.op("Transpose", perm=[0, 3, 1, 2])
    g.op("Conv", g.w(4, 3, 3, 3), g.w(4), auto_pad="SAME_UPPER")
    g.op("Relu")
    g.op("Transpose", perm=[0, 2, 3, 1])
    g.op("Reshape", g.const(np.array([-1, 6 * 5 * 4], np.int64)))
    g.op("MatMul", g.w(120, 3))
    g.op("Add", g.w(3))
    g.op("Softmax", axis=-1)
    path = tmp_path / "k.onnx"
    onnx.save(g.model(), str(path))
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 3)).astype(np.float32)
    model = cnnx.onnx.load(path)
    assert model.input_shape == (6, 5, 3)
    np.testing.assert_allclose(model.predict(x), run_ort(path, x), atol=TOL, rtol=0)
    # a Transpose of C, H and W is a Permute; one that moves the batch axis is refused
    g = G((2, 4, 4))
    g.op("Transpose", perm=[0, 1, 3, 2], name="swap_hw")
    g.op("Relu")
    compare_with_ort(g.model(), tmp_path)
    g = G((2, 4, 4))
    g.op("Transpose", perm=[1, 0, 2, 3], name="swap_nc")
    g.op("Relu")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="Transpose.*swap_nc.*perm"):
        _load_graph(g, tmp_path)


def test_roundtrip_of_cnnx_export(tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnx.teaching import lenet5
    from test_onnx_export import randomise

    cnnx.set_seed(4)
    for model in (
        lenet5(),
        cnnx.Sequential(
            [
                cnnx.Conv2D(6, 3, padding="same", use_bias=False),
                cnnx.BatchNormalization(),
                cnnx.Residual(
                    [
                        cnnx.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
                        cnnx.Conv2D(6, 3, padding="same"),
                    ]
                ),
                cnnx.AvgPool2D(2, padding="same", count_include_pad=False),
                cnnx.Tanh(),
            ],
            input_shape=(9, 9, 2),
        ),
    ):
        randomise(model, 5)
        path = tmp_path / "m.onnx"
        cnnx.onnx.export(model, path)
        back = cnnx.onnx.load(path)
        assert back.input_shape == model.input_shape
        assert back.count_params() == model.count_params()
        x = np.random.default_rng(0).standard_normal((2,) + model.input_shape).astype(np.float32)
        np.testing.assert_allclose(back.predict(x), model.predict(x), atol=TOL, rtol=0)


def test_external_data(tmp_path):
    g = G((1, 4, 4))
    g.op("Conv", g.w(3, 1, 3, 3), g.w(3))
    g.op("Flatten")
    g.op("Gemm", g.w(12, 2))
    m = g.model()
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        m,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    assert (tmp_path / "ext.onnx.data").stat().st_size > 0
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(cnnx.onnx.load(path).predict(nhwc(x)), run_ort(path, x), atol=TOL)


# ---------------------------------------------------------------------------
# what cannot be run exactly is refused, naming operator and node
# ---------------------------------------------------------------------------


def _load_graph(g, tmp_path):
    path = tmp_path / "bad.onnx"
    onnx.save(g.model(), str(path))
    return cnnx.onnx.load(path)


def test_unsupported_operator(tmp_path):
    g = G((2, 4, 4))
    g.op("Conv", g.w(2, 2, 1, 1))
    g.op("Hardmax", name="my_hm")
    with pytest.raises(
        cnnx.onnx.ONNXConversionError,
        match=r"^path: Hardmax \(node 'my_hm'\): operator not supported.*Conv",
    ):
        _load_graph(g, tmp_path)


def test_unsupported_attributes(tmp_path):
    g = G((2, 5, 5))
    g.op("MaxPool", kernel_shape=[3, 3], pads=[2, 2, 2, 2], name="pool_pads")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="MaxPool.*pool_pads.*half"):
        _load_graph(g, tmp_path)
    # ceil mode (issue 19), also where it gives the floor size
    g = G((2, 5, 5))
    g.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, name="pool_ceil")
    compare_with_ort(g.model(), tmp_path)
    g = G((2, 6, 6))
    g.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    compare_with_ort(g.model(), tmp_path)
    g = G((2, 5, 5))
    g.op("Gemm", g.w(2, 2), inp="x", name="g1", transA=1)
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="Gemm.*g1"):
        _load_graph(g, tmp_path)
    g = G((2, 5, 5))
    g.op("Softmax", axis=1, name="sm_old")
    g.opset = 11
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="Softmax.*sm_old.*axis"):
        _load_graph(g, tmp_path)


def test_unsupported_structure(tmp_path):
    # a (C,) constant broadcasts along W in ONNX, not along the channels: refused
    g = G((3, 4, 3))
    g.op("Conv", g.w(3, 3, 1, 1))
    g.op("Add", g.w(3), name="w_bias")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="Add.*w_bias.*varies along H or W"):
        _load_graph(g, tmp_path)
    # broadcasting between two computed tensors: refused
    g = G((2, 4, 4))
    g.op("Relu")
    a = g.cur
    g.op("GlobalAveragePool")
    g.op("Mul", a, name="gate")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="Mul.*gate.*broadcasting"):
        _load_graph(g, tmp_path)
    # a Flatten of an NCHW image as the output: (c,h,w) order cannot be produced
    g = G((2, 3, 3))
    g.op("Flatten")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="flattened 2x3x3"):
        _load_graph(g, tmp_path)
    # an NCHW image reshaped into another image: no Reshape layer in cnnx
    g = G((2, 3, 4))
    g.op("Reshape", g.const(np.array([0, 4, 3, 2], np.int64)), name="rs")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="Reshape.*rs.*not supported"):
        _load_graph(g, tmp_path)


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="^path: no such file"):
        cnnx.onnx.load(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    with pytest.raises(ValueError, match="^path"):
        cnnx.onnx.load(junk)
    with pytest.raises(TypeError, match="^path"):
        cnnx.onnx.load(3)


# ---------------------------------------------------------------------------
# PyTorch models exported with torch.onnx.export (both exporters)
# ---------------------------------------------------------------------------


def _torch_models():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Seed(nn.Module):
        """The course's network: CONV5-POOL-CONV5-POOL-FC120-FC84-FC10."""

        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 5), nn.Conv2d(8, 16, 5)
            self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
            x = torch.flatten(x, 1)
            return self.f3(torch.relu(self.f2(torch.relu(self.f1(x)))))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.ba = nn.BatchNorm2d(cout)
            self.b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bb = nn.BatchNorm2d(cout)
            self.sc = (
                None
                if cin == cout and stride == 1
                else nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )
            )

        def forward(self, x):
            h = self.bb(self.b(torch.relu(self.ba(self.a(x)))))
            return torch.relu(h + (x if self.sc is None else self.sc(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
            )
            self.b1, self.b2 = Block(16, 16, 1), Block(16, 32, 2)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(32, 10)

        def forward(self, x):
            x = self.pool(self.b2(self.b1(self.stem(x))))
            return self.fc(x.view(x.size(0), -1))

    torch.manual_seed(0)
    seed, res = Seed().eval(), ResNet().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in res.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return torch, {"seed": (seed, (3, 32, 32)), "resnet": (res, (1, 28, 28))}


def _export_torch(torch, module, shape, path, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    x = torch.randn(2, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"dynamo": dynamo}
        if dynamo:
            kwargs["verbose"] = False
        else:
            kwargs.update(
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            )
        try:
            torch.onnx.export(module, (x,), str(path), **kwargs)
        except TypeError:  # an older torch without the dynamo switch
            if dynamo:
                pytest.skip("this torch has no dynamo ONNX exporter")
            raise


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("which", ["seed", "resnet"])
def test_pytorch_models(tmp_path, which, dynamo):
    torch, models = _torch_models()
    module, shape = models[which]
    path = tmp_path / f"{which}.onnx"
    _export_torch(torch, module, shape, path, dynamo)
    model = cnnx.onnx.load(path)
    assert model.input_shape == (shape[1], shape[2], shape[0])
    x = torch.randn(5, *shape)
    with torch.no_grad():
        want = module(x).numpy()
    got = model.predict(nhwc(x.numpy()))
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    if which == "resnet":
        assert sum(isinstance(l, cnnx.Add) for l in model.layers) == 2
    n_torch = sum(p.numel() for p in module.parameters())
    if which == "seed":
        assert model.count_params() == n_torch == 62958  # the course's table


def test_pytorch_layer_zoo(tmp_path):
    """Padding, pools (count_include_pad False), dilation, groups, activations,
    BatchNorm1d on flattened features, Dropout and Softmax through the
    TorchScript exporter without constant folding (BatchNorm stays a node)."""
    torch, _ = _torch_models()
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=(1, 2), dilation=(1, 2)),
        nn.BatchNorm2d(6),
        nn.LeakyReLU(0.1),
        nn.Conv2d(6, 6, 3, padding=1, groups=3),
        nn.Tanh(),
        nn.MaxPool2d(3, stride=1, padding=1),
        nn.AvgPool2d(2, stride=2, padding=1, count_include_pad=False),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.BatchNorm1d(6 * 3 * 4),
        nn.Dropout(0.2),
        nn.Linear(6 * 3 * 4, 7),
        nn.Softmax(dim=1),
    ).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "zoo.onnx"
    x = torch.randn(4, 3, 9, 11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, do_constant_folding=False)
    model = cnnx.onnx.load(path)
    assert sum(isinstance(l, cnnx.BatchNormalization) for l in model.layers) == 2
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(model.predict(nhwc(x.numpy())), want, atol=TOL, rtol=0)


def test_imported_model_trains_with_fit(tmp_path):
    torch, models = _torch_models()
    module, _ = models["resnet"]
    path = tmp_path / "resnet.onnx"
    _export_torch(torch, module, (1, 12, 12), path, dynamo=False)  # small images: fast
    model = cnnx.onnx.load(path)
    assert model.input_shape == (12, 12, 1)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 64)
    x = rng.standard_normal((64, 12, 12, 1)).astype(np.float32) * 0.5
    # a task a global-average-pooling network can learn: the brightness encodes the class
    x += (y[:, None, None, None] - 4.5).astype(np.float32) * 0.4
    model.compile(cnnx.optim.Adam(lr=3e-3), "cross_entropy", metrics=["accuracy"])
    threads = cnnx.get_num_threads()
    cnnx.set_num_threads(1)  # tiny layers: one thread is fastest (and robust on a busy CI box)
    try:
        before = model.evaluate(x, y)["loss"]
        model.fit(x, y, epochs=8, batch_size=16, verbose=0, seed=0)
        after = model.evaluate(x, y)["loss"]
    finally:
        cnnx.set_num_threads(threads)
    assert np.isfinite(after) and after < 0.5 * before


def test_random_stacks_roundtrip(tmp_path_factory):
    """Random stacks of cnnx layers, exported and loaded back, predict the same."""
    pytest.importorskip("hypothesis")
    from hypothesis import assume, given, settings, HealthCheck
    from test_onnx_export import _stack, randomise

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_stack())
    def roundtrip(spec):
        layers, shape, seed = spec
        assume(not all(isinstance(l, cnnx.Dropout) for l in layers))  # an empty graph
        try:
            model = cnnx.Sequential(layers, input_shape=shape)
        except ValueError:
            assume(False)
        randomise(model, seed)
        path = tmp_path_factory.mktemp("rt") / "m.onnx"
        try:
            cnnx.onnx.export(model, path)
        except cnnx.onnx.ONNXConversionError:
            assume(False)
        back = cnnx.onnx.load(path)
        x = np.random.default_rng(seed).standard_normal((2,) + shape).astype(np.float32)
        np.testing.assert_allclose(back.predict(x), model.predict(x), atol=TOL, rtol=0)

    roundtrip()
