"""Convolutions that an inference plan runs with weights packed once
(cnnx.ConvPacked in cpp/src/plan: Winograd, the direct kernel, 1x1 layers,
strided layers) against the layer-by-layer path, after every kind of edit:
the plan keeps a fingerprint of the weights it packed and repacks a layer
whose live weights no longer match it, so one changed value must show up in
the next predict."""

import numpy as np
import pytest

import cnnx


def _net():
    cnnx.set_seed(3)
    return cnnx.Sequential(
        [
            cnnx.Conv2D(48, 3, padding="same"),  # 14x14: Winograd
            cnnx.BatchNormalization(),
            cnnx.ReLU(),
            cnnx.Conv2D(64, 3, strides=2, padding="same", activation="relu"),  # strided: direct
            cnnx.Conv2D(64, 1, activation="tanh"),  # 1x1, an unfused activation
            cnnx.Conv2D(40, 3, activation="relu"),  # 5x5 output: direct
            cnnx.GlobalAvgPool2D(),
            cnnx.Dense(5),
        ],
        input_shape=(14, 14, 8),
    )


def _check(model, x):
    np.testing.assert_allclose(model.predict(x), model._forward(x, False), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", [0, 1])
def test_packed_convs_match_and_see_edits(isa, threads, mode):
    model = _net()
    rng = np.random.default_rng(0)
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    try:
        for n in (1, 3):
            x = rng.standard_normal((n, 14, 14, 8)).astype(np.float32)
            _check(model, x)
            model._inference_plan().plan.set_small_batch_mode(mode)
            _check(model, x)
            for layer in (0, 3, 4, 5):
                k = model.layers[layer].params["kernel"]
                k.flat[rng.integers(k.size)] += 5.0  # one value
                _check(model, x)
            model.layers[0].params["kernel"] *= -0.5  # all of them (signs too)
            _check(model, x)
            bn = model.layers[1]
            bn.buffers["moving_var"][...] = 2.5
            bn.params["gamma"][...] = 0.3
            _check(model, x)
    finally:
        cnnx.set_num_threads(saved)


def test_packed_convs_after_training():
    model = _net()
    x = np.random.default_rng(1).standard_normal((6, 14, 14, 8)).astype(np.float32)
    _check(model, x)
    model.compile(cnnx.optim.SGD(0.05, momentum=0.9), "cross_entropy")
    model.fit(x, np.arange(6) % 5, epochs=2, batch_size=3, verbose=0)
    _check(model, x)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    _check(model, x)


def test_profile_by_parts():
    model = _net()
    x = np.random.default_rng(2).standard_normal((1, 14, 14, 8)).astype(np.float32)
    model.predict(x)
    plan = model._inference_plan()
    whole = plan.profile([x.reshape(1, -1)], reps=1)
    parts = plan.profile([x.reshape(1, -1)], reps=1, parts=2)
    assert [n for n, _ in parts] == [n for n, _ in whole]
    assert all(t >= 0 for _, t in parts)
    with pytest.raises(ValueError, match="parts"):
        plan.profile([x.reshape(1, -1)], reps=1, parts=0)
    _check(model, x)  # the plan still runs whole


@pytest.mark.parametrize("act", ["relu6", "clip", "hardswish", "elu"])
def test_activations_with_a_second_parameter_after_packed_and_transposed_convs(isa, act):
    """Activations that carry a second parameter (ReLU6 / Clip: their max) after a
    packed convolution and a transposed one: the plan applied them with that
    parameter left at 0 (every output clipped to 0, MobileNetV2 wrong by 90%)."""
    cnnx.set_seed(4)
    layer = {
        "relu6": lambda: cnnx.ReLU6(),
        "clip": lambda: cnnx.Clip(-0.5, 1.5),
        "hardswish": lambda: cnnx.Hardswish(),
        "elu": lambda: cnnx.ELU(),
    }[act]
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(48, 3, padding="same"),
            layer(),  # packed (Winograd)
            cnnx.Conv2D(64, 3, strides=2, padding="same"),
            layer(),  # packed (direct)
            cnnx.Conv2DTranspose(16, 2, strides=2),
            layer(),
            cnnx.GlobalAvgPool2D(),
            cnnx.Dense(5),
        ],
        input_shape=(14, 14, 8),
    )
    x = np.random.default_rng(2).standard_normal((2, 14, 14, 8)).astype(np.float32)
    for n in (1, 2):
        _check(model, x[:n])
    # ReLU6 runs in the direct kernel's store: also split between 2 threads
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(2)
    try:
        for mode in (0, 1):
            model.predict(x[:1])
            model._inference_plan().plan.set_small_batch_mode(mode)
            _check(model, 4 * x[:1])
    finally:
        cnnx.set_num_threads(saved)


@pytest.mark.parametrize("act", ["relu", "relu6", "clip", "none"])
@pytest.mark.parametrize("mode", [0, 1])
def test_depthwise_clamps_in_its_store(isa, act, mode):
    """The plan's depthwise layers clamp in the kernel's store (ReLU, ReLU6,
    Clip(lo, hi)): MobileNetV2's blocks, stride 1 and 2, widths that leave
    every partial pixel block, a batch norm folded in; serial and
    cooperative on 2 threads, against the layer-by-layer path."""
    make = {
        "relu": lambda: cnnx.ReLU(),
        "relu6": lambda: cnnx.ReLU6(),
        "clip": lambda: cnnx.Clip(-0.25, 0.75),
        "none": lambda: cnnx.Dropout(0.0),  # inference: the identity
    }[act]
    rng = np.random.default_rng(6)
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(2)
    try:
        for w in (9, 13, 16, 23):
            cnnx.set_seed(5)
            layers = []
            for strides in (1, 2, 1):
                layers += [
                    cnnx.DepthwiseConv2D(3, strides=strides, padding="same"),
                    cnnx.BatchNormalization(),
                    make(),
                ]
            model = cnnx.Sequential(
                [cnnx.Conv2D(32, 1)] + layers + [cnnx.GlobalAvgPool2D(), cnnx.Dense(4)],
                input_shape=(11, w, 3),
            )
            for layer in model.layers:
                if isinstance(layer, cnnx.BatchNormalization):
                    layer.buffers["moving_var"][...] = rng.uniform(0.5, 2.0, 32)
                    layer.params["gamma"][...] = rng.uniform(0.5, 3.0, 32)
            x = (3 * rng.standard_normal((1, 11, w, 3))).astype(np.float32)
            model.predict(x)
            model._inference_plan().plan.set_small_batch_mode(mode)
            _check(model, x)
    finally:
        cnnx.set_num_threads(saved)


@pytest.mark.parametrize("threads", [1, 2])
def test_classifier_runs_once_per_batch(threads):
    """Images big enough that a plan runs them one at a time: the ops after
    the global pooling (the batch-wide tail: dense, batch norm, softmax) run
    once over the whole batch; every image's result must match the
    layer-by-layer path, for batch sizes around the thread count."""
    cnnx.set_seed(7)
    inp = cnnx.Input((48, 48, 8))
    h = cnnx.Conv2D(128, 3, padding="same", activation="relu")(inp)  # 1.2 MB per image
    pooled = cnnx.GlobalAvgPool2D()(h)
    z = cnnx.Dense(300, activation="relu")(pooled)
    z = cnnx.BatchNormalization()(z)
    probs = cnnx.Dense(10, activation="softmax")(z)
    model = cnnx.Model(inp, [probs, pooled])
    for layer in model.layers:
        if isinstance(layer, cnnx.BatchNormalization):
            bn = layer
    bn.buffers["moving_var"][...] = 2.0
    rng = np.random.default_rng(8)
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    try:
        for n in (1, 2, 3, 5, 8):
            x = rng.standard_normal((n, 48, 48, 8)).astype(np.float32)
            got = model.predict(x)
            want = model.forward(x, training=False)  # layer by layer, every output
            assert len(got) == len(want) == 2
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    finally:
        cnnx.set_num_threads(saved)
