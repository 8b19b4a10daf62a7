"""cnnx.onnx.export: the graph passes onnx.checker and ONNX Runtime reproduces
model.predict (within 1e-4) on the same NHWC input."""

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import cnnx.onnx  # noqa: E402
from cnnx.layers.base import walk  # noqa: E402

TOL = 1e-4


def randomise(model, seed=0):
    """Non-trivial weights, biases and BatchNorm statistics (fresh models have zero biases)."""
    rng = np.random.default_rng(seed)
    for layer, _ in walk([model]):
        for name, p in layer.params.items():
            scale = 0.3 if name in ("kernel",) else 0.2
            p[...] = rng.standard_normal(p.shape).astype(np.float32) * scale
            if name == "gamma":
                p[...] = 1.0 + p
        if "moving_mean" in layer.buffers:
            c = layer.buffers["moving_mean"].shape
            layer.buffers["moving_mean"][...] = rng.standard_normal(c) * 0.2
            layer.buffers["moving_var"][...] = rng.uniform(0.5, 1.5, c)
    return model


def run_ort(path, x, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    return sess.run(None, {inp.name: x})[0]


def check(model, tmp_path, batch=3, seed=1, opset=None, tol=TOL):
    x = np.random.default_rng(seed).standard_normal((batch,) + model.input_shape).astype(np.float32)
    path = tmp_path / "m.onnx"
    assert cnnx.onnx.export(model, path, opset=opset) == str(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    want = model.predict(x)
    got = run_ort(path, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=tol, rtol=0)
    return proto


def op_types(proto):
    return [n.op_type for n in proto.graph.node]


# ---------------------------------------------------------------------------
# the seed's network and the ResNet
# ---------------------------------------------------------------------------


def test_seed_network(tmp_path):
    from cnnx.teaching import lenet5

    cnnx.set_seed(0)
    model = randomise(lenet5())
    assert model.count_params() == 62958
    proto = check(model, tmp_path, batch=4)
    ops = op_types(proto)
    assert ops[0] == "Transpose" and ops.count("Conv") == 2 and ops.count("Gemm") == 3
    assert ops[-1] == "Softmax"
    # the input is NHWC with a free batch dimension
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    # any batch size runs
    x = np.random.default_rng(5).standard_normal((1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), model.predict(x), atol=TOL)


def test_small_resnet(tmp_path):
    from cnnx.teaching import small_resnet

    cnnx.set_seed(1)
    model = randomise(small_resnet())
    proto = check(model, tmp_path)
    ops = op_types(proto)
    n_res = sum(isinstance(l, cnnx.Residual) for l in model.layers)
    assert n_res >= 2 and ops.count("Add") == n_res
    # the second block's 1x1 stride-2 shortcut convolution is in the graph
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    ks = [
        list(onnx.helper.get_attribute_value(a))
        for n in convs
        for a in n.attribute
        if a.name == "kernel_shape"
    ]
    assert [1, 1] in ks


def test_resnet_with_batchnorm_and_explicit_shortcut(tmp_path):
    cnnx.set_seed(2)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(8, 3, padding="same", use_bias=False),
            cnnx.BatchNormalization(),
            cnnx.ReLU(),
            cnnx.Residual(
                [
                    cnnx.Conv2D(8, 3, padding="same"),
                    cnnx.BatchNormalization(),
                    cnnx.ReLU(),
                    cnnx.Conv2D(8, 3, padding="same"),
                ]
            ),
            cnnx.Residual(
                [
                    cnnx.Conv2D(12, 3, strides=2, padding="same", activation="relu"),
                    cnnx.Conv2D(12, 3, padding=1),
                    cnnx.BatchNormalization(),
                ],
                shortcut=[cnnx.Conv2D(12, 1, strides=2, use_bias=False), cnnx.BatchNormalization()],
                activation="leaky_relu",
            ),
            cnnx.GlobalAvgPool2D(),
            cnnx.Dropout(0.3),
            cnnx.Dense(5),
        ],
        input_shape=(11, 11, 3),
    )
    proto = check(randomise(model, 3), tmp_path)
    ops = op_types(proto)
    assert "Dropout" not in ops and ops.count("BatchNormalization") == 4


# ---------------------------------------------------------------------------
# every layer option
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["valid", "same", 1, (2, 0), ((0, 2), (1, 0))])
@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), ((1, 3), 1), (1, 2)])
def test_conv_padding_strides_dilation(tmp_path, padding, strides, dilation):
    cnnx.set_seed(3)
    model = cnnx.Sequential(
        [cnnx.Conv2D(4, (3, 2), strides=strides, padding=padding, dilation_rate=dilation)],
        input_shape=(9, 8, 3),
    )
    proto = check(randomise(model), tmp_path)
    # the graph ends NHWC, like the model
    assert op_types(proto)[-1] == "Transpose"


def test_conv_same_padding_is_asymmetric(tmp_path):
    # n=8, f=4, s=2: total pad 2 -> (1, 1); n=7, f=2, s=2: total 1 -> (0, 1), odd pixel after
    model = cnnx.Sequential(
        [cnnx.Conv2D(3, (4, 2), strides=2, padding="same")], input_shape=(8, 7, 2)
    )
    proto = check(randomise(model), tmp_path)
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    pads = next(
        list(onnx.helper.get_attribute_value(a)) for a in conv.attribute if a.name == "pads"
    )
    assert pads == [1, 0, 1, 1]  # top, left, bottom, right


@pytest.mark.parametrize("groups", [2, 6])
def test_grouped_and_depthwise_conv(tmp_path, groups):
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(6, 3, padding="same", groups=groups, activation="relu"),
            cnnx.Conv2D(4, 1, use_bias=False),
        ],
        input_shape=(7, 7, 6),
    )
    check(randomise(model), tmp_path)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh", "softmax"])
def test_fused_activations(tmp_path, activation):
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(5, 3, activation=activation),
            cnnx.Flatten(),
            cnnx.Dense(7, activation=activation),
        ],
        input_shape=(6, 5, 2),
    )
    check(randomise(model), tmp_path)


def test_activation_layers_and_softmax_axes(tmp_path):
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, padding="same"),
            cnnx.LeakyReLU(0.2),
            cnnx.Softmax(axis=1),
            cnnx.Sigmoid(),
            cnnx.Softmax(axis=2),
            cnnx.Tanh(),
            cnnx.Softmax(axis=-1),
            cnnx.ReLU(),
        ],
        input_shape=(5, 6, 3),
    )
    check(randomise(model), tmp_path)


@pytest.mark.parametrize("padding", ["valid", "same", 1, ((1, 0), (0, 1))])
@pytest.mark.parametrize("cip", [True, False])
def test_pools(tmp_path, padding, cip):
    model = cnnx.Sequential(
        [
            cnnx.MaxPool2D(3, strides=2, padding=padding),
            cnnx.AvgPool2D(
                2,
                strides=1,
                padding=padding if padding != "same" else "same",
                count_include_pad=cip,
            ),
        ],
        input_shape=(9, 10, 3),
    )
    check(model, tmp_path)


def test_adaptive_pools_when_divisible(tmp_path):
    model = cnnx.Sequential(
        [
            cnnx.AdaptiveAvgPool2D((4, 3)),
            cnnx.Conv2D(2, 1),
            cnnx.AdaptiveMaxPool2D((2, 1)),
            cnnx.Flatten(),
            cnnx.Dense(3),
        ],
        input_shape=(8, 9, 2),
    )
    proto = check(randomise(model), tmp_path)
    assert {"AveragePool", "MaxPool"} <= set(op_types(proto))


@pytest.mark.parametrize("cls", [cnnx.AdaptiveAvgPool2D, cnnx.AdaptiveMaxPool2D])
def test_adaptive_pool_not_divisible_is_refused(tmp_path, cls):
    model = cnnx.Sequential([cnnx.Conv2D(2, 1), cls(3, name="odd_pool")], input_shape=(7, 7, 1))
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="odd_pool.*7.*3"):
        cnnx.onnx.export(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_flatten_orders(tmp_path):
    # Flatten -> elementwise -> BatchNorm -> Dense: the (c,h,w) order is absorbed
    # by the BatchNorm statistics and the Dense rows
    m1 = cnnx.Sequential(
        [
            cnnx.Conv2D(3, 2),
            cnnx.Flatten(),
            cnnx.ReLU(),
            cnnx.BatchNormalization(),
            cnnx.Dropout(0.5),
            cnnx.Dense(4),
        ],
        input_shape=(4, 5, 2),
    )
    proto = check(randomise(m1), tmp_path)
    assert "Reshape" not in op_types(proto)
    # a flattened image as the output: the graph restores cnnx's (h, w, c) order
    m2 = cnnx.Sequential([cnnx.Conv2D(3, 2), cnnx.Flatten(), cnnx.Sigmoid()], input_shape=(4, 5, 2))
    check(randomise(m2), tmp_path)
    # before a residual over flat features
    m3 = cnnx.Sequential(
        [
            cnnx.Conv2D(3, 2),
            cnnx.Flatten(),
            cnnx.Residual([cnnx.Dense(36, activation="tanh"), cnnx.Dense(36)]),
        ],
        input_shape=(4, 5, 2),
    )
    check(randomise(m3), tmp_path)


def test_mlp_without_images(tmp_path):
    model = cnnx.Sequential(
        [
            cnnx.Dense(8, activation="relu"),
            cnnx.BatchNormalization(),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(5,),
    )
    proto = check(randomise(model), tmp_path)
    assert "Transpose" not in op_types(proto)


def test_logits_model_exports_logits_whatever_the_loss(tmp_path):
    """The graph computes what predict returns: a logits model gives logits,
    also after compile("cross_entropy") (no softmax is appended)."""
    model = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(4)], input_shape=(3, 3, 1))
    model.compile("sgd", "cross_entropy")
    proto = check(randomise(model), tmp_path)
    assert "Softmax" not in op_types(proto)


@pytest.mark.parametrize("opset", [13, 15, None])
def test_opsets(tmp_path, opset):
    from cnnx.teaching import lenet5

    model = randomise(lenet5(input_shape=(16, 16, 1)))
    proto = check(model, tmp_path, opset=opset)
    want = cnnx.onnx.DEFAULT_OPSET if opset is None else opset
    assert [o.version for o in proto.opset_import if o.domain == ""] == [want]


def test_bad_arguments(tmp_path):
    from cnnx.teaching import lenet5

    with pytest.raises(ValueError, match="^model: not built"):
        cnnx.onnx.export(cnnx.Sequential([cnnx.Dense(2)]), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="^model"):
        cnnx.onnx.export("not a model", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="^opset"):
        cnnx.onnx.export(lenet5(), tmp_path / "m.onnx", opset=7)
    with pytest.raises(TypeError, match="^opset"):
        cnnx.onnx.export(lenet5(), tmp_path / "m.onnx", opset="17")
    with pytest.raises(TypeError, match="^path"):
        cnnx.onnx.export(lenet5(), 17)
    with pytest.raises(ValueError, match="^path"):
        cnnx.onnx.export(lenet5(), tmp_path / "missing_dir" / "m.onnx")


def test_export_is_atomic(tmp_path):
    """A failed export leaves an existing file untouched."""
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model = cnnx.Sequential([cnnx.AdaptiveAvgPool2D(4)], input_shape=(5, 5, 1))
    with pytest.raises(cnnx.onnx.ONNXConversionError):
        cnnx.onnx.export(model, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


class _Halve(cnnx.Layer):
    """A layer without a lowering (it runs as a Python op)."""

    def _forward(self, x, training):
        return x * np.float32(0.5)

    def _backward(self, dy, need_dx, accumulate):
        return dy * np.float32(0.5)


def test_supported_export_layers_follow_the_lowerings():
    """SUPPORTED_EXPORT_LAYERS is read off the layers (those with their own
    lower, and the models), which holds because every op kind a float
    lowering emits has an exporter; a layer without a lowering is refused."""
    from cnnx.graph.ir import OpKind
    from cnnx.onnx._export import _EXPORTERS, _python

    names = cnnx.onnx.SUPPORTED_EXPORT_LAYERS
    assert len(set(names)) == len(names)
    assert {"Model", "Sequential", "Conv2D", "Dense", "RandomFlip", "LayerNormalization"} <= set(
        names
    )
    assert "Layer" not in names and "Input" not in names
    int8 = {"quantize", "dequantize", "qconv2d", "qdense", "qpool", "qadd", "qconcat"}
    for kind_name, kind in OpKind.__members__.items():
        if kind_name not in int8 and kind is not OpKind.python:
            assert _EXPORTERS.get(kind) not in (None, _python), kind_name
    model = cnnx.Sequential([cnnx.Flatten(), _Halve(name="halve")], input_shape=(2, 2, 1))
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="'halve' .*_Halve.*no lowering"):
        cnnx.onnx.to_onnx(model)


# ---------------------------------------------------------------------------
# random stacks of layers
# ---------------------------------------------------------------------------

hyp = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings, HealthCheck, strategies as st  # noqa: E402

_ACT = st.sampled_from([None, "relu", "leaky_relu", "sigmoid", "tanh"])
_PAD = st.sampled_from(["valid", "same", 1, ((0, 1), (1, 0))])


@st.composite
def _layer(draw, c):
    kind = draw(
        st.sampled_from(["conv", "conv", "maxpool", "avgpool", "bn", "act", "dropout", "residual"])
    )
    if kind == "conv":
        filters = draw(st.integers(1, 6))
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0 and filters % g == 0]))
        return cnnx.Conv2D(
            filters,
            draw(st.integers(1, 3)),
            strides=draw(st.integers(1, 2)),
            padding=draw(_PAD),
            dilation_rate=draw(st.integers(1, 2)),
            groups=groups,
            activation=draw(_ACT),
            use_bias=draw(st.booleans()),
        ), filters
    if kind in ("maxpool", "avgpool"):
        pool = draw(st.integers(2, 3))
        pad = draw(st.sampled_from(["valid", "same", 1]))
        if kind == "maxpool":
            return cnnx.MaxPool2D(pool, strides=draw(st.integers(1, 2)), padding=pad), c
        return cnnx.AvgPool2D(
            pool,
            strides=draw(st.integers(1, 2)),
            padding=pad,
            count_include_pad=draw(st.booleans()),
        ), c
    if kind == "bn":
        return cnnx.BatchNormalization(epsilon=draw(st.sampled_from([1e-3, 1e-5]))), c
    if kind == "act":
        return draw(
            st.sampled_from(
                [cnnx.ReLU(), cnnx.LeakyReLU(0.1), cnnx.Sigmoid(), cnnx.Tanh(), cnnx.Softmax()]
            )
        ), c
    if kind == "dropout":
        return cnnx.Dropout(0.25), c
    filters = draw(st.integers(1, 5))
    block = [
        cnnx.Conv2D(filters, 3, strides=draw(st.integers(1, 2)), padding="same", activation="relu"),
        cnnx.Conv2D(filters, 3, padding="same"),
    ]
    return cnnx.Residual(block, activation=draw(_ACT)), filters


@st.composite
def _stack(draw):
    h, w, c = draw(st.integers(5, 11)), draw(st.integers(5, 11)), draw(st.integers(1, 4))
    layers = []
    cc = c
    for _ in range(draw(st.integers(1, 4))):
        layer, cc = draw(_layer(cc))
        layers.append(layer)
    head = draw(st.sampled_from(["none", "gap", "flatten"]))
    if head == "gap":
        layers += [
            cnnx.GlobalAvgPool2D(),
            cnnx.Dense(draw(st.integers(1, 5)), activation=draw(_ACT)),
        ]
    elif head == "flatten":
        layers += [
            cnnx.Flatten(),
            cnnx.Dense(
                draw(st.integers(1, 5)), activation=draw(st.sampled_from([None, "softmax"]))
            ),
        ]
    return layers, (h, w, c), draw(st.integers(0, 2**31 - 1))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(_stack())
def test_random_stacks_match_onnxruntime(tmp_path_factory, spec):
    layers, shape, seed = spec
    try:
        model = cnnx.Sequential(layers, input_shape=shape)
    except ValueError:
        assume(False)  # a geometry the layers refuse (filter larger than input, ...)
    randomise(model, seed)
    check(model, tmp_path_factory.mktemp("stack"), batch=2, seed=seed)
