"""The compiled inference pass (cnnx.graph / cpp/src/plan) against the
layer-by-layer path, which the layer tests check against NumPy and PyTorch.

The plan folds batch norm, fuses activations, reuses buffers and runs chunks
of images on separate threads, so every test compares whole-model outputs
for several batch sizes (1: layer threading; 3, 17, 64: chunked), thread
counts and ISA levels."""

import threading

import numpy as np
import pytest

import cnnx
from cnnx import _core
from cnnx.graph import compile_inference as _compile_graph


def compile_inference(model):
    return _compile_graph(model.to_graph())


def _infer(model, x):
    """The compiled plan's output (asserting that the model compiles)."""
    plan = model._inference_plan()
    assert plan is not None
    return plan([x])[0]


def _randomize_bn(model, rng):
    from cnnx.layers.base import walk

    for layer, _ in walk(model.layers):
        if isinstance(layer, cnnx.BatchNormalization):
            c = layer.buffers["moving_mean"].size
            layer.buffers["moving_mean"][...] = rng.standard_normal(c).astype(np.float32)
            layer.buffers["moving_var"][...] = rng.uniform(0.5, 2.0, c).astype(np.float32)
            if "gamma" in layer.params:
                layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            if "beta" in layer.params:
                layer.params["beta"][...] = rng.standard_normal(c).astype(np.float32)


def _models():
    from cnnx.teaching import lenet5, small_resnet

    yield "lenet5", lambda: lenet5()
    yield "small_resnet", lambda: small_resnet()
    yield (
        "every_layer",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(6, 3, padding="same", activation="leaky_relu"),
                cnnx.BatchNormalization(),
                cnnx.Conv2D(8, (3, 2), strides=(2, 1), padding=((1, 0), (0, 1)), use_bias=False),
                cnnx.BatchNormalization(center=False),
                cnnx.Tanh(),
                cnnx.AvgPool2D(3, strides=1, padding=1, count_include_pad=False),
                cnnx.Residual(
                    [cnnx.Conv2D(8, 3, padding="same", activation="sigmoid"), cnnx.Conv2D(8, 1)],
                    activation="tanh",
                ),
                cnnx.Residual([cnnx.Conv2D(12, 3, strides=2, padding="same"), cnnx.ReLU()]),
                cnnx.MaxPool2D(2, strides=1),
                cnnx.BatchNormalization(scale=False),
                cnnx.Conv2D(12, 3, padding="same", groups=12, activation="relu"),
                cnnx.AdaptiveMaxPool2D((3, 2)),
                cnnx.Softmax(),
                cnnx.Dropout(0.3),
                cnnx.Flatten(),
                cnnx.Dense(20),
                cnnx.BatchNormalization(),
                cnnx.LeakyReLU(0.2),
                cnnx.Dense(7, activation="softmax"),
            ],
            input_shape=(41, 37, 3),
        ),
    )
    yield (
        "gap_head",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(16, 3, activation="relu"),
                cnnx.AdaptiveAvgPool2D(4),
                cnnx.Residual(
                    [cnnx.Conv2D(16, 3, padding="same"), cnnx.BatchNormalization()],
                    shortcut="identity",
                    activation=None,
                ),
                # a fused residual sum with an activation that has a parameter (alpha)
                cnnx.Residual([cnnx.Conv2D(16, 3, padding="same")], activation="leaky_relu"),
                cnnx.GlobalAvgPool2D(),
                cnnx.Dense(5, activation="sigmoid"),
            ],
            input_shape=(30, 29, 2),
        ),
    )
    yield (
        "nested_residuals",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(16, 3, padding="same", activation="relu"),
                cnnx.Residual(
                    [
                        cnnx.Residual(
                            [
                                cnnx.Conv2D(16, 3, padding="same", use_bias=False),
                                cnnx.BatchNormalization(),
                            ]
                        ),
                        cnnx.Conv2D(16, 3, padding="same"),
                    ],
                    shortcut=[cnnx.Conv2D(16, 1), cnnx.BatchNormalization()],
                    activation="sigmoid",
                ),
                cnnx.Residual(
                    [
                        cnnx.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
                        cnnx.Conv2D(32, 3, padding="same"),
                    ],
                    activation=None,
                ),
                cnnx.GlobalAvgPool2D(),
                cnnx.Dense(4, activation="softmax"),
            ],
            input_shape=(15, 15, 1),
        ),
    )
    yield (
        "wide_softmax_head",
        lambda: cnnx.Sequential(
            [
                cnnx.Conv2D(16, 3, activation="relu"),
                cnnx.Flatten(),
                cnnx.Dense(130, activation="softmax"),
            ],
            input_shape=(24, 24, 3),
        ),
    )


@pytest.mark.parametrize("name,make", list(_models()), ids=[n for n, _ in _models()])
@pytest.mark.parametrize("threads,mode", [(1, -1), (2, 0), (2, 1), (2, -1)])
def test_plan_matches_layer_by_layer(name, make, threads, mode, isa):
    rng = np.random.default_rng(1)
    cnnx.set_seed(3)
    model = make()
    _randomize_bn(model, rng)
    assert compile_inference(model) is not None
    x = np.zeros((1,) + model.input_shape, np.float32)
    model.predict(x)
    model._inference_plan().plan.set_small_batch_mode(mode)  # 1: threads split every op
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    try:
        for n in (1, 3, 17, 64):
            x = rng.standard_normal((n,) + model.input_shape).astype(np.float32)
            ref = model._forward(x, False)
            got = _infer(model, x)
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)
    finally:
        cnnx.set_num_threads(saved)


def test_plan_empty_batch():
    from cnnx.teaching import lenet5

    model = lenet5()
    y = model.predict(np.zeros((0, 32, 32, 3), np.float32))
    assert y.shape == (0, 10)


def test_plan_sees_weight_and_statistics_changes():
    """No stale weights: in-place edits and training show up in the next predict."""
    from cnnx.teaching import small_resnet

    rng = np.random.default_rng(2)
    model = small_resnet()
    x = rng.standard_normal((5, 28, 28, 1)).astype(np.float32)
    model.predict(x)  # compiles the plan
    conv = model.layers[0]
    conv.params["kernel"] *= 1.5
    bn = model.layers[2].block[1]
    bn.buffers["moving_var"][...] = 3.0
    bn.params["gamma"][...] = 0.25
    np.testing.assert_allclose(_infer(model, x), model._forward(x, False), rtol=2e-5, atol=2e-5)
    model.compile(cnnx.optim.SGD(0.05, momentum=0.9), "cross_entropy")
    model.fit(x, np.arange(5) % 10, epochs=2, batch_size=5, verbose=0)
    np.testing.assert_allclose(model.predict(x), model._forward(x, False), rtol=2e-5, atol=2e-5)
    # statistics assigned as new arrays are copied into the model's own
    bn.buffers["moving_mean"] = np.full(32 // 2, 0.5, np.float32)
    bn.buffers["moving_var"] = np.full(32 // 2, 2.0, np.float32)
    np.testing.assert_allclose(_infer(model, x), model._forward(x, False), rtol=2e-5, atol=2e-5)
    with pytest.raises(AttributeError, match="buffers"):
        bn.buffers = {}


def test_unknown_layer_falls_back():
    class Double(cnnx.layers.base.Layer):
        def _build(self, input_shape):
            return input_shape

        def _forward(self, x, training):
            return x * 2.0

    model = cnnx.Sequential([cnnx.Flatten(), Double(), cnnx.Dense(3)], input_shape=(2, 2, 1))
    assert compile_inference(model) is None
    x = np.ones((4, 2, 2, 1), np.float32)
    expected = (2.0 * x.reshape(4, 4)) @ model.layers[2].params["kernel"]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6)


def test_identity_model_copies():
    model = cnnx.Sequential([cnnx.Flatten(), cnnx.Dropout(0.5)], input_shape=(2, 3, 1))
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3, 1)
    y = model.predict(x)
    np.testing.assert_array_equal(y, x.reshape(2, 6))
    y[...] = -1  # the result is a fresh array, not the input
    assert x[0, 0, 0, 0] == 0


def test_plans_can_be_disabled(monkeypatch):
    from cnnx.teaching import lenet5

    monkeypatch.setenv("CNNX_PLAN", "0")
    model = lenet5()
    x = np.zeros((2, 32, 32, 3), np.float32)
    model.predict(x)
    assert model._inference_plan() is None


def test_concurrent_predicts_agree():
    from cnnx.teaching import small_resnet

    model = small_resnet()
    x = np.random.default_rng(4).standard_normal((40, 28, 28, 1)).astype(np.float32)
    ref = model._forward(x, False)
    out = [None] * 4

    def work(i):
        for _ in range(5):
            out[i] = model.predict(x, batch_size=13)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for o in out:
        np.testing.assert_allclose(o, ref, rtol=2e-5, atol=2e-5)


def _conv_spec(src, dst, geom, kernel):
    spec = _core.OpSpec(_core.OpKind.conv2d, [src], dst)
    spec.conv = geom
    spec.set_weights(kernel)
    return spec


def test_plan_rejects_bad_construction():
    with pytest.raises(ValueError, match="buffers"):
        _core.InferencePlan([4])
    plan = _core.InferencePlan([12, 16, 16])
    geom = (2, 2, 3, 1, 1, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1)
    with pytest.raises(ValueError, match="kernel"):
        plan.add(_conv_spec(0, 1, geom, np.zeros(12, np.float64)))
    with pytest.raises(ValueError, match="kernel"):
        plan.add(_conv_spec(0, 1, geom, np.zeros(5, np.float32)))
    with pytest.raises(ValueError, match="buffer"):
        plan.add(_conv_spec(0, 7, geom, np.zeros(12, np.float32)))
    act = _core.OpSpec(_core.OpKind.activation, [1], 0)
    act.act, act.count, act.k = _core.Act.relu, 12, 12
    with pytest.raises(ValueError, match="input"):
        plan.add(act)
    act = _core.OpSpec(_core.OpKind.activation, [0], 1)
    act.count, act.k = 12, 12
    with pytest.raises(ValueError, match="activation"):
        plan.add(act)  # no activation given
    with pytest.raises(ValueError, match="stride"):
        _conv_spec(0, 1, (2, 2, 3, 1, 1, 4, 0, 1, 1, 1, 0, 0, 0, 0, 1), np.ones(12, np.float32))
    plan.add(_conv_spec(0, 1, geom, np.ones(12, np.float32)))
    with pytest.raises(ValueError, match="x"):
        plan.run(np.zeros((2, 5), np.float32))
    y = plan.run(np.ones((2, 12), np.float32))[0]
    np.testing.assert_array_equal(y, np.full((2, 16), 3.0, np.float32))


def test_plan_concat_and_eltwise_ops():
    """Concat, n-ary add/mul/sub/avg and a multi-input, multi-output plan against NumPy."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 2, 5)).astype(np.float32)
    b = rng.standard_normal((3, 2, 3)).astype(np.float32)
    plan = _core.InferencePlan([10, 6, 16, 10, 6], 2, 3)
    cat = _core.OpSpec(_core.OpKind.concat, [0, 1], 2)
    cat.outer, cat.inner = 2, [5, 3]
    plan.add(cat)
    mul = _core.OpSpec(_core.OpKind.eltwise, [0, 0, 0], 3)
    mul.eltwise, mul.count = _core.EltwiseKind.mul, 10
    plan.add(mul)
    sub = _core.OpSpec(_core.OpKind.eltwise, [1, 1], 4)
    sub.eltwise, sub.count, sub.act = _core.EltwiseKind.avg, 6, _core.Act.relu
    plan.add(sub)
    y_cat, y_cube, y_avg = plan.run([a.reshape(3, -1), b.reshape(3, -1)])
    np.testing.assert_array_equal(y_cat.reshape(3, 2, 8), np.concatenate([a, b], axis=2))
    np.testing.assert_allclose(y_cube.reshape(a.shape), a**3, rtol=1e-6)
    np.testing.assert_allclose(y_avg.reshape(b.shape), np.maximum(b, 0), rtol=1e-6)
    bad = _core.OpSpec(_core.OpKind.eltwise, [0, 1, 0], 4)
    bad.eltwise, bad.count = _core.EltwiseKind.sub, 6
    with pytest.raises(ValueError, match="2"):
        plan.add(bad)


@pytest.mark.parametrize(
    "cin,cout,k,stride,padding,hw",
    [
        (16, 16, 3, 1, "same", (14, 14)),
        (16, 32, 3, 2, "same", (14, 14)),
        (32, 32, 3, 1, "same", (7, 7)),
        (16, 48, 3, 1, 1, (30, 29)),
        (32, 16, 3, 2, ((2, 0), (1, 2)), (9, 17)),
        (16, 16, 3, 1, "valid", (5, 31)),
        (32, 64, 3, 2, 2, (3, 3)),
        (1, 16, 3, 1, "same", (28, 28)),
        (1, 32, 3, 1, ((0, 2), (2, 1)), (9, 30)),
        (8, 16, 5, 1, "valid", (14, 14)),
        (8, 32, 5, 1, "same", (13, 23)),
        (8, 16, 5, 1, ((2, 0), (1, 2)), (6, 5)),
        (16, 32, 1, 2, "valid", (14, 14)),
        (32, 16, 1, 2, 0, (9, 13)),
    ],
)
@pytest.mark.parametrize("act", ["relu", None, "tanh"])
def test_padded_direct_kernel(cin, cout, k, stride, padding, hw, act, isa):
    """The plan's own direct kernel on a padded copy (3x3 with 1/16/32 input
    channels, 5x5 with 8, 1x1 stride 2 with 16/32; AVX-512), with batch norm
    folded in, against the layer-by-layer path."""
    cnnx.set_seed(2)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(
                cout, k, strides=stride, padding=padding, activation=act, use_bias=act != "tanh"
            ),
            cnnx.BatchNormalization(),
        ],
        input_shape=hw + (cin,),
    )
    _randomize_bn(model, np.random.default_rng(3))
    rng = np.random.default_rng(4)
    for n in (1, 5):
        x = rng.standard_normal((n,) + model.input_shape).astype(np.float32)
        np.testing.assert_allclose(_infer(model, x), model._forward(x, False), rtol=3e-5, atol=3e-5)


def test_random_plan_ops_raise_or_run_never_crash():
    """Plans built from arbitrary (often nonsensical) op descriptions either
    refuse them with ValueError/TypeError or run; nothing crashes the interpreter."""
    rng = np.random.default_rng(9)
    kinds = list(_core.OpKind.__members__.values())
    for _trial in range(400):
        sizes = [int(v) for v in rng.integers(-2, 64, rng.integers(1, 6))]
        try:
            plan = _core.InferencePlan(sizes, int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        except (ValueError, TypeError):
            continue
        nb = len(sizes)
        for _ in range(3):
            ids = [int(v) for v in rng.integers(-1, nb + 1, rng.integers(0, 4))]
            try:
                spec = _core.OpSpec(
                    kinds[int(rng.integers(0, len(kinds)))], ids, int(rng.integers(-1, nb + 1))
                )
                spec.conv = tuple(int(v) for v in rng.integers(1, 5, 15))
            except (ValueError, TypeError):
                spec = _core.OpSpec(kinds[0], ids, 0)
            try:
                spec.dense = (int(rng.integers(-1, 9)), int(rng.integers(-1, 9)))
                spec.pool_input = tuple(int(v) for v in rng.integers(-1, 6, 3))
                spec.pool_window = tuple(int(v) for v in rng.integers(-1, 4, 8))
                spec.pool_output = (int(rng.integers(-1, 4)), int(rng.integers(-1, 4)))
                spec.count = int(rng.integers(-1, 30))
                spec.k = int(rng.integers(-1, 8))
                spec.outer = int(rng.integers(-1, 4))
                spec.inner = [int(v) for v in rng.integers(-1, 6, rng.integers(0, 4))]
                spec.channels = int(rng.integers(-1, 6))
                spec.set_weights(np.ones(int(rng.integers(0, 40)), np.float32))
                plan.add(spec)
            except (ValueError, TypeError):
                pass
        try:
            plan.run([np.ones((2, max(s, 1)), np.float32) for s in sizes[:2]])
        except (ValueError, TypeError):
            pass


def test_models_with_plans_copy_and_pickle():
    import copy
    import pickle

    from cnnx.teaching import lenet5

    model = lenet5()
    model.compile("sgd", "cross_entropy")
    x = np.random.default_rng(8).standard_normal((3, 32, 32, 3)).astype(np.float32)
    model.train_on_batch(x, np.array([1, 2, 3]))
    ref = model.predict(x)
    assert model._inference_plan() is not None and model._training_plan() is not None
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_allclose(other.predict(x), ref, rtol=1e-6, atol=1e-7)
        assert other._inference_plan() is not model._inference_plan()
        assert np.isfinite(other.train_on_batch(x, np.array([0, 1, 2])))  # its own plan
        # the copy's layers are views into its own flat buffers again: training
        # changes its predictions, not the original's
        assert np.abs(other.predict(x) - ref).max() > 0
        np.testing.assert_array_equal(model.predict(x), ref)
