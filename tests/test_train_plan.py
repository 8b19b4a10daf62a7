"""The compiled training step (cnnx.graph.compile_training, cpp/src/plan/
train_plan.cpp) against the layer-by-layer step, which the layer tests check
against NumPy, finite differences and PyTorch: same loss, logits, gradients,
updated weights and batch-norm running statistics, for every supported
layer, frozen layers, each head, one and two threads (the batch split across
threads) and every ISA."""

import numpy as np
import pytest

import cnnx
from cnnx.graph import compile_training as _compile_graph
from cnnx.layers.base import walk


def compile_training(model):
    return _compile_graph(model.to_graph(), model.store.grads, model._loss_specs)


def _step(model, x, y):
    """One training step -> (loss, the array the loss read: logits or outputs)."""
    loss, _, outs = model._train_step([x], model.check_targets(y, len(x)))
    return loss, outs[0]


def _every_layer():
    return [
        cnnx.Conv2D(6, 3, padding="same", activation="leaky_relu"),
        cnnx.Conv2D(8, (3, 2), strides=(2, 1), padding=((1, 0), (0, 1)), activation="sigmoid"),
        cnnx.Tanh(),
        cnnx.AvgPool2D(3, strides=1, padding=1, count_include_pad=False),
        cnnx.Residual(
            [cnnx.Conv2D(8, 3, padding="same", activation="relu"), cnnx.Conv2D(8, 1)],
            activation="tanh",
        ),
        cnnx.Residual([cnnx.Conv2D(12, 3, strides=2, padding="same"), cnnx.ReLU()]),
        cnnx.MaxPool2D(2, strides=1),
        cnnx.Conv2D(12, 3, padding="same", groups=12, activation="relu"),
        cnnx.AdaptiveMaxPool2D((3, 2)),
        cnnx.Softmax(),
        cnnx.Dropout(0.0),
        cnnx.Flatten(),
        cnnx.Dense(20, activation="relu"),
        cnnx.LeakyReLU(0.2),
        cnnx.Dense(7, activation="softmax"),
    ]


MODELS = {
    "lenet5": lambda: cnnx.teaching.lenet5(),
    "every_layer": lambda: cnnx.Sequential(_every_layer(), input_shape=(17, 15, 3)),
    "gap_logits": lambda: cnnx.Sequential(
        [
            cnnx.Conv2D(16, 3, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.AdaptiveAvgPool2D(4),
            cnnx.Residual(
                [cnnx.Conv2D(16, 3, padding="same")], shortcut="identity", activation=None
            ),
            cnnx.GlobalAvgPool2D(),
            cnnx.Dense(5),
        ],
        input_shape=(12, 12, 2),
    ),
    "resnet_bn": lambda: cnnx.teaching.small_resnet(input_shape=(12, 12, 1), width=8),
    "bn_variants": lambda: cnnx.Sequential(
        [
            cnnx.Conv2D(6, 3, use_bias=False),
            cnnx.BatchNormalization(center=False),
            cnnx.ReLU(),
            cnnx.Conv2D(6, 3),
            cnnx.BatchNormalization(scale=False, momentum=0.5),
            cnnx.Flatten(),
            cnnx.Dense(9),
            cnnx.BatchNormalization(),
            cnnx.Dense(4),
        ],
        input_shape=(9, 8, 2),
    ),
    "softmax_layer_head": lambda: cnnx.Sequential(
        [cnnx.Conv2D(4, 3, activation="relu"), cnnx.Flatten(), cnnx.Dense(6), cnnx.Softmax()],
        input_shape=(6, 6, 1),
    ),
}


def _pair(name, frozen=False):
    import cnnx.teaching  # noqa: F401  (lenet5)

    models = []
    for _ in range(2):
        cnnx.set_seed(11)
        m = MODELS[name]()
        if frozen:
            m.layers[0].trainable = False
        m.compile(cnnx.optim.SGD(0.05, momentum=0.9), "cross_entropy")
        models.append(m)
    plan_model, ref_model = models
    ref_model._training_plan = lambda *shapes: None  # the layer-by-layer step
    return plan_model, ref_model


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("threads", [1, 2])
def test_step_matches_layer_by_layer(name, threads, isa):
    plan_model, ref_model = _pair(name)
    assert compile_training(plan_model) is not None
    rng = np.random.default_rng(5)
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    try:
        for n in (1, 2, 7, 64):
            x = rng.standard_normal((n,) + plan_model.input_shape).astype(np.float32)
            y = rng.integers(0, plan_model.output_shape[-1], n)
            loss_p, out_p = _step(plan_model, x, y)
            loss_r, out_r = _step(ref_model, x, y)
            assert loss_p == pytest.approx(loss_r, rel=1e-5, abs=1e-6)
            np.testing.assert_allclose(out_p, out_r, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(
                plan_model.store.grads, ref_model.store.grads, rtol=1e-3, atol=2e-5
            )
            np.testing.assert_allclose(
                plan_model.store.params, ref_model.store.params, rtol=1e-4, atol=1e-5
            )
            for (la, _), (lb, _) in zip(walk(plan_model.layers), walk(ref_model.layers)):
                for k in la.buffers:  # batch-norm running statistics
                    np.testing.assert_allclose(la.buffers[k], lb.buffers[k], rtol=1e-4, atol=1e-5)
    finally:
        cnnx.set_num_threads(saved)


def test_frozen_layer_gets_no_update():
    plan_model, ref_model = _pair("lenet5", frozen=True)
    k0 = plan_model.layers[0].params["kernel"].copy()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, 9)
    _step(plan_model, x, y)
    _step(ref_model, x, y)
    np.testing.assert_array_equal(plan_model.layers[0].params["kernel"], k0)
    np.testing.assert_allclose(
        plan_model.store.params, ref_model.store.params, rtol=1e-4, atol=1e-5
    )


def test_unsupported_layers_fall_back():
    for layers in (
        [cnnx.Conv2D(4, 3), cnnx.Dropout(0.2), cnnx.Flatten(), cnnx.Dense(3)],
        [cnnx.Flatten(), cnnx.Dropout(0.5), cnnx.Dense(3)],
    ):
        m = cnnx.Sequential(layers, input_shape=(5, 5, 2))
        m.compile("sgd", "cross_entropy")
        assert compile_training(m) is None
        x = np.ones((4, 5, 5, 2), np.float32)
        assert np.isfinite(m.train_on_batch(x, np.array([0, 1, 2, 0])))
    # MSE heads compile too, and match the layer-by-layer step
    pair = []
    for _ in range(2):
        cnnx.set_seed(4)
        m = cnnx.Sequential(
            [cnnx.Flatten(), cnnx.Dense(3, activation="tanh")], input_shape=(2, 2, 1)
        )
        m.compile("sgd", "mse")
        pair.append(m)
    assert compile_training(pair[0]) is not None
    pair[1]._training_plan = lambda *shapes: None
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 2, 2, 1)
    t = np.linspace(0, 1, 15, dtype=np.float32).reshape(5, 3)
    la, lb = (_step(m, x, t)[0] for m in pair)
    assert la == pytest.approx(lb, rel=1e-6)
    np.testing.assert_allclose(pair[0].store.params, pair[1].store.params, rtol=1e-5, atol=1e-7)


def test_bad_labels_name_y():
    m = cnnx.teaching.lenet5()
    m.compile("sgd", "cross_entropy")
    x = np.zeros((3, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="^y"):
        m.train_on_batch(x, np.array([0, 10, 1]))
    with pytest.raises(ValueError, match="^y"):
        m.train_on_batch(x, np.array([0, -1, 1]))


def test_fit_with_the_plan_learns():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((256, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    cnnx.set_seed(1)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(8, 3, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(2, activation="softmax"),
        ],
        input_shape=(8, 8, 1),
    )
    m.compile(cnnx.optim.Adam(0.01), "cross_entropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert m._training_plan() is not None
    assert h.history["loss"][-1] < 0.6 * h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.8


def test_random_train_plan_ops_raise_or_run_never_crash():
    """TrainPlans built from arbitrary op descriptions refuse them with
    ValueError / TypeError or run; gradient slots outside the buffer are refused."""
    from cnnx import _core

    rng = np.random.default_rng(10)
    kinds = list(_core.OpKind.__members__.values())
    for _ in range(300):
        sizes = [int(v) for v in rng.integers(-1, 40, rng.integers(1, 5))]
        grads = np.zeros(int(rng.integers(0, 200)), np.float32)
        try:
            plan = _core.TrainPlan(sizes, int(rng.integers(0, 3)), grads)
        except (ValueError, TypeError):
            continue
        nv = len(sizes)
        for _ in range(3):
            ids = [int(v) for v in rng.integers(-1, nv + 1, rng.integers(0, 3))]
            other = np.zeros(int(rng.integers(1, 50)), np.float32)  # not a view into grads
            slot = grads[: int(rng.integers(0, grads.size + 1))] if rng.random() < 0.7 else other
            try:
                spec = _core.OpSpec(
                    kinds[int(rng.integers(0, len(kinds)))], ids, int(rng.integers(-1, nv + 1))
                )
                spec.dense = (int(rng.integers(-1, 9)), int(rng.integers(-1, 9)))
                spec.count = int(rng.integers(-1, 30))
                spec.act = [_core.Act.none, _core.Act.relu, _core.Act.tanh][int(rng.integers(0, 3))]
                spec.set_weights(np.ones(int(rng.integers(0, 40)), np.float32), None, slot)
                spec.conv = tuple(int(v) for v in rng.integers(1, 5, 15))
            except (ValueError, TypeError):
                pass
            try:
                plan.add(spec)
            except (ValueError, TypeError):
                pass
            try:
                plan.add_loss(
                    _core.LossKind.softmax_cross_entropy,
                    int(rng.integers(-1, nv + 1)),
                    int(rng.integers(-1, 2)),
                )
            except (ValueError, TypeError):
                pass
        if sizes[0] >= 1:
            try:
                plan.step([np.ones((3, sizes[0]), np.float32)], [np.zeros(3, np.int64)])
            except (ValueError, TypeError):
                pass


def test_assigned_batch_norm_statistics_are_seen():
    """Statistics assigned as new arrays (as a load gives) are copied into the
    model's own arrays, which the compiled step reads: the next step sees them."""
    plan_model, ref_model = _pair("resnet_bn")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    _step(plan_model, x, y)
    _step(ref_model, x, y)
    first = plan_model._training_plan()
    for m in (plan_model, ref_model):
        bn = m.layers[2].block[1]
        bn.buffers["moving_mean"] = np.full(bn.buffers["moving_mean"].shape, 0.3, np.float32)
        bn.buffers["moving_var"] = np.full(bn.buffers["moving_var"].shape, 2.0, np.float32)
    _step(plan_model, x, y)
    _step(ref_model, x, y)
    assert plan_model._training_plan() is first  # same arrays: no recompile needed
    a, b = plan_model.layers[2].block[1], ref_model.layers[2].block[1]
    np.testing.assert_allclose(
        a.buffers["moving_mean"], b.buffers["moving_mean"], rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(a.buffers["moving_mean"], 0.3)  # updated from the assigned values
    np.testing.assert_allclose(
        plan_model.store.params, ref_model.store.params, rtol=1e-4, atol=1e-5
    )
