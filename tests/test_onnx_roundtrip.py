"""cnnx -> ONNX -> cnnx is exact: the model loaded back from ``cnnx.onnx.export``
has the same inputs, outputs and parameter count, and predicts the same
values up to float rounding, for every layer (in a Sequential) and for
graphs: branches, Concatenate, Add/Subtract/Multiply/Average, several
inputs and outputs, nested Sequentials and Residuals, and random DAGs
drawn by hypothesis. The reference is the original cnnx model itself."""

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
import cnnx.onnx  # noqa: E402
from test_onnx_export import randomise  # noqa: E402

#: max |back - model| / max |model| (plans fold batch norm differently than ONNX's order)
REL_TOL = 2e-5


def _inputs(model, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [model.input_shape] if not isinstance(model.input_shape, list) else model.input_shape
    xs = [rng.standard_normal((batch,) + tuple(s)).astype(np.float32) for s in shapes]
    return xs[0] if not isinstance(model.input_shape, list) else xs


def roundtrip(model, tmp_path, seed=0):
    """Export, load back, and check that nothing changed; returns the loaded model."""
    path = tmp_path / "rt.onnx"
    cnnx.onnx.export(model, path)
    back = cnnx.onnx.load(path)
    assert back.input_shape == model.input_shape
    assert back.output_shape == model.output_shape
    assert back.count_params() == model.count_params()
    x = _inputs(model, seed=seed)
    want, got = model.predict(x), back.predict(x)
    wants = want if isinstance(want, list) else [want]
    gots = got if isinstance(got, list) else [got]
    assert len(gots) == len(wants)
    for g, w in zip(gots, wants):
        assert g.shape == w.shape
        scale = max(float(np.abs(w).max()), 1e-30)
        assert float(np.abs(g - w).max()) <= REL_TOL * scale, (
            f"max |back - model| = {np.abs(g - w).max():.3g}, scale {scale:.3g}"
        )
    return back


# ---------------------------------------------------------------------------
# every layer, in a Sequential
# ---------------------------------------------------------------------------

IMAGE_LAYERS = {
    "conv_valid": lambda: cnnx.Conv2D(4, 3),
    "conv_same_stride": lambda: cnnx.Conv2D(
        5, (3, 2), strides=(2, 1), padding="same", activation="relu"
    ),
    "conv_dilated_grouped": lambda: cnnx.Conv2D(
        6, 3, padding=((2, 1), (0, 2)), dilation_rate=(2, 1), groups=3, use_bias=False
    ),
    "conv_depthwise_tanh": lambda: cnnx.Conv2D(3, 3, padding=1, groups=3, activation="tanh"),
    "conv_leaky": lambda: cnnx.Conv2D(4, 1, activation="leaky_relu"),
    "conv_sigmoid": lambda: cnnx.Conv2D(4, 3, activation="sigmoid"),
    "conv_softmax": lambda: cnnx.Conv2D(4, 3, activation="softmax"),
    "maxpool": lambda: cnnx.MaxPool2D(2),
    "maxpool_padded": lambda: cnnx.MaxPool2D(3, strides=2, padding=1),
    "avgpool_same": lambda: cnnx.AvgPool2D(2, padding="same", count_include_pad=False),
    "avgpool_incl": lambda: cnnx.AvgPool2D(3, strides=1, padding=1, count_include_pad=True),
    "adaptive_avg": lambda: cnnx.AdaptiveAvgPool2D(3),
    "adaptive_max": lambda: cnnx.AdaptiveMaxPool2D((1, 3)),
    "global_avg": lambda: cnnx.GlobalAvgPool2D(),
    "relu": lambda: cnnx.ReLU(),
    "leaky": lambda: cnnx.LeakyReLU(0.2),
    "sigmoid": lambda: cnnx.Sigmoid(),
    "tanh": lambda: cnnx.Tanh(),
    "softmax_channels": lambda: cnnx.Softmax(),
    "softmax_height": lambda: cnnx.Softmax(axis=1),
    "batchnorm": lambda: cnnx.BatchNormalization(),
    "dropout": lambda: cnnx.Dropout(0.3),
    "flatten": lambda: cnnx.Flatten(),
    "residual_identity": lambda: cnnx.Residual([cnnx.Conv2D(3, 3, padding="same")]),
    "residual_projection": lambda: cnnx.Residual(
        [cnnx.Conv2D(4, 3, strides=2, padding="same", activation="relu")], activation="leaky_relu"
    ),
}

FLAT_LAYERS = {  # each a function of the number of input features
    "dense": lambda n: cnnx.Dense(7),
    "dense_relu_nobias": lambda n: cnnx.Dense(5, activation="relu", use_bias=False),
    "dense_softmax": lambda n: cnnx.Dense(4, activation="softmax"),
    "batchnorm_flat": lambda n: cnnx.BatchNormalization(epsilon=1e-2),
    "softmax_flat": lambda n: cnnx.Softmax(),
    "tanh_flat": lambda n: cnnx.Tanh(),
    "residual_dense": lambda n: cnnx.Residual([cnnx.Dense(n, activation="relu"), cnnx.Dense(n)]),
}


@pytest.mark.parametrize("which", list(IMAGE_LAYERS))
def test_image_layer(tmp_path, which):
    cnnx.set_seed(1)
    model = cnnx.Sequential([cnnx.Conv2D(3, 1), IMAGE_LAYERS[which]()], input_shape=(9, 6, 3))
    roundtrip(randomise(model, 2), tmp_path)


@pytest.mark.parametrize("which", list(FLAT_LAYERS))
@pytest.mark.parametrize("source", ["flat_input", "nchw_flatten", "conv_flatten"])
def test_flat_layer(tmp_path, which, source):
    """Flat features, straight from a flat input or from a Flatten of an image (whose
    (c, h, w) order ONNX sees and import undoes)."""
    if source == "conv_flatten" and which != "batchnorm_flat":
        pytest.skip("the same as nchw_flatten")
    cnnx.set_seed(2)
    if source == "flat_input":
        layers, shape = [cnnx.Dense(6)], (10,)
    elif source == "nchw_flatten":
        layers, shape = [cnnx.Conv2D(2, 3), cnnx.ReLU(), cnnx.Flatten()], (5, 4, 3)
    else:
        layers, shape = [cnnx.Conv2D(2, 3), cnnx.Flatten()], (5, 4, 3)
    n = 6 if source == "flat_input" else 12
    model = cnnx.Sequential(layers + [FLAT_LAYERS[which](n), cnnx.Dense(3)], input_shape=shape)
    roundtrip(randomise(model, 3), tmp_path)


def test_seed_network_and_small_resnet(tmp_path):
    from cnnx.teaching import lenet5, small_resnet

    cnnx.set_seed(3)
    for model in (lenet5(), small_resnet()):
        back = roundtrip(randomise(model, 4), tmp_path)
        assert back.count_params() == model.count_params()


# ---------------------------------------------------------------------------
# graphs
# ---------------------------------------------------------------------------


def test_branches_concat_and_merges(tmp_path):
    cnnx.set_seed(4)
    x = cnnx.Input((8, 8, 3))
    a = cnnx.Conv2D(6, 3, padding="same", activation="relu")(x)
    b1 = cnnx.Conv2D(4, 1)(a)
    b2 = cnnx.Conv2D(4, 3, padding="same", activation="relu")(a)
    b3 = cnnx.MaxPool2D(3, strides=1, padding=1)(a)
    cat = cnnx.Concatenate()([b1, b2, b3])  # channels: 4 + 4 + 6
    s = cnnx.Add(activation="relu")([cnnx.Conv2D(14, 1)(cat), cat])
    d = cnnx.Subtract()([s, cat])
    m = cnnx.Multiply()([d, cnnx.Conv2D(14, 1, activation="sigmoid")(s)])
    v = cnnx.Average()([m, s, d])
    h = cnnx.Concatenate(axis=1)(
        [v, cnnx.AvgPool2D(2, strides=1, padding=((1, 0), (1, 0)), count_include_pad=False)(v)]
    )
    y = cnnx.Dense(5, activation="softmax")(cnnx.GlobalAvgPool2D()(h))
    model = cnnx.Model(x, y)
    back = roundtrip(randomise(model, 5), tmp_path)
    kinds = [type(l).__name__ for l in back.layers]
    for k in ("Concatenate", "Add", "Subtract", "Multiply", "Average", "GlobalAvgPool2D"):
        assert k in kinds
    assert back.get_layer(index=kinds.index("Add")).activation == "relu"


def test_several_inputs_and_outputs(tmp_path):
    """An image and a flat input, joined after a Flatten; two outputs, one an image."""
    cnnx.set_seed(5)
    img = cnnx.Input((6, 5, 2), name="image")
    meta = cnnx.Input((4,), name="meta")
    c = cnnx.Conv2D(3, 3, padding="same", activation="relu")(img)
    feats = cnnx.Flatten()(cnnx.MaxPool2D(2)(c))
    joined = cnnx.Concatenate()([feats, cnnx.Dense(5, activation="tanh")(meta)])
    probs = cnnx.Dense(3, activation="softmax")(cnnx.BatchNormalization()(joined))
    model = cnnx.Model([img, meta], [probs, c])
    back = roundtrip(randomise(model, 6), tmp_path)
    assert back.input_shape == [(6, 5, 2), (4,)]
    assert back.output_shape == [(3,), (6, 5, 3)]


def test_flattened_image_as_output_and_in_a_join(tmp_path):
    """A flattened image that is an output, and one added to flat features: the export
    reorders it to (h, w, c) in the graph, and import finds cnnx's tensor again."""
    cnnx.set_seed(6)
    x = cnnx.Input((3, 4, 2))
    f = cnnx.Flatten()(cnnx.Conv2D(2, 1)(x))
    g = cnnx.ReLU()(f)
    y = cnnx.Add()([g, cnnx.Dense(24)(f)])
    model = cnnx.Model(x, [y, g])
    roundtrip(randomise(model, 7), tmp_path)


def test_nested_sequentials_and_residuals(tmp_path):
    cnnx.set_seed(7)
    inner = cnnx.Sequential(
        [cnnx.Conv2D(4, 3, padding="same"), cnnx.BatchNormalization(), cnnx.ReLU()]
    )
    block = cnnx.Residual(
        [cnnx.Residual([cnnx.Conv2D(4, 3, padding="same", activation="relu")]), cnnx.Conv2D(4, 1)],
        activation="relu",
    )
    x = cnnx.Input((7, 7, 4))
    y = cnnx.Sequential([inner, block, cnnx.Sequential([cnnx.GlobalAvgPool2D(), cnnx.Dense(3)])])(x)
    model = cnnx.Model(x, y)
    back = roundtrip(randomise(model, 8), tmp_path)
    assert sum(isinstance(l, cnnx.Add) for l in back.layers) == 2


def test_loaded_graph_saves_loads_and_reexports(tmp_path):
    cnnx.set_seed(8)
    x = cnnx.Input((6, 6, 3))
    a = cnnx.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = cnnx.Concatenate()([a, cnnx.Conv2D(2, 1)(x)])
    model = randomise(cnnx.Model(x, cnnx.Dense(3)(cnnx.Flatten()(y))), 9)
    back = roundtrip(model, tmp_path)
    back.save(tmp_path / "m.cnnx")
    again = cnnx.load_model(tmp_path / "m.cnnx")
    xb = _inputs(model)
    np.testing.assert_array_equal(again.predict(xb), back.predict(xb))
    roundtrip(again, tmp_path)  # and a second trip


# ---------------------------------------------------------------------------
# random graphs (hypothesis)
# ---------------------------------------------------------------------------


def _random_graph(draw):
    """A random DAG of cnnx layers on one or two image inputs: convolutions, pools,
    activations, batch norms, elementwise joins and concatenations of images, and
    flattened branches (Dense, joins and concatenations of flat features, whose
    order ONNX sees as (c, h, w)); one to three outputs, images or flat."""
    from hypothesis import strategies as st

    h, w = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    inputs = [cnnx.Input((h, w, draw(st.integers(1, 4))))]
    if draw(st.booleans()):
        inputs.append(cnnx.Input((h, w, draw(st.integers(1, 4)))))
    images, flats = list(inputs), []
    if len(inputs) == 2:  # join them early, so that most graphs use both
        images.append(cnnx.Concatenate()(inputs))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(
            st.sampled_from(
                [
                    "conv",
                    "pool",
                    "act",
                    "bn",
                    "join",
                    "concat",
                    "concat_hw",
                    "flatten",
                    "dense",
                    "flat_join",
                    "flat_concat",
                ]
            )
        )
        src = draw(st.sampled_from(images))
        if kind in ("dense", "flat_join", "flat_concat") and not flats:
            kind = "flatten"
        if kind == "conv":
            act = draw(st.sampled_from([None, "relu", "tanh", "sigmoid", "leaky_relu"]))
            out = cnnx.Conv2D(
                draw(st.integers(1, 5)),
                draw(st.sampled_from([1, 3])),
                padding="same",
                activation=act,
                use_bias=draw(st.booleans()),
            )(src)
        elif kind == "pool":
            cls = draw(st.sampled_from([cnnx.MaxPool2D, cnnx.AvgPool2D]))
            out = cls(3, strides=1, padding=1)(src)
        elif kind == "act":
            out = draw(st.sampled_from([cnnx.ReLU, cnnx.Sigmoid, cnnx.Tanh, cnnx.Softmax]))()(src)
        elif kind == "bn":
            out = cnnx.BatchNormalization()(src)
        elif kind == "join":
            same = [t for t in images if t.shape == src.shape]
            others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=2))
            cls = draw(st.sampled_from([cnnx.Add, cnnx.Subtract, cnnx.Multiply, cnnx.Average]))
            if cls is cnnx.Subtract:
                others = others[:1]
            out = cls(activation=draw(st.sampled_from([None, "relu"])))([src] + others)
        elif kind in ("concat", "concat_hw"):
            axis = -1 if kind == "concat" else draw(st.sampled_from([1, 2]))
            a = axis % 4 - 1
            same = [
                t
                for t in images
                if t.shape[:a] + t.shape[a + 1 :] == src.shape[:a] + src.shape[a + 1 :]
            ]
            others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=2))
            out = cnnx.Concatenate(axis=axis)([src] + others)
        elif kind == "flatten":
            flats.append(cnnx.Flatten()(src))
            continue
        else:
            f = draw(st.sampled_from(flats))
            if kind == "dense":
                act = draw(st.sampled_from([None, "relu", "tanh"]))
                flats.append(cnnx.Dense(draw(st.integers(1, 6)), activation=act)(f))
            elif kind == "flat_join":
                same = [t for t in flats if t.shape == f.shape]
                cls = draw(st.sampled_from([cnnx.Add, cnnx.Multiply, cnnx.Average]))
                flats.append(cls()([f, draw(st.sampled_from(same))]))
            else:
                flats.append(cnnx.Concatenate()([f, draw(st.sampled_from(flats))]))
            continue
        images.append(out)
    outs = [images[-1]]
    if flats and draw(st.booleans()):
        outs.append(draw(st.sampled_from(flats)))
    if draw(st.booleans()):
        outs.append(cnnx.Dense(3)(cnnx.Flatten()(draw(st.sampled_from(images)))))
    if draw(st.booleans()):
        outs.append(cnnx.GlobalAvgPool2D()(draw(st.sampled_from(images))))
    return inputs, outs


def test_random_graphs_roundtrip(tmp_path_factory):
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, assume, given, settings, strategies as st

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data(), st.integers(0, 2**16))
    def check(data, seed):
        cnnx.set_seed(seed)
        inputs, outs = _random_graph(data.draw)
        try:
            model = cnnx.Model(
                inputs if len(inputs) > 1 else inputs[0], outs if len(outs) > 1 else outs[0]
            )
        except ValueError:  # e.g. the second input is not used by any output
            assume(False)
        randomise(model, seed)
        roundtrip(model, tmp_path_factory.mktemp("rg"), seed)

    check()
