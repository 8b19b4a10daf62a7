"""Inputs of any size: input_shape=(None, None, C) for fully convolutional
models and models ending in global pooling. The compiled plans are cached per
input size (a small LRU), building at a new size keeps the weights, and the
results equal a model built at that fixed size with the same weights."""

import numpy as np
import pytest

import cnnx

RNG = np.random.default_rng(0)


def gap_net(shape, seed=0):
    cnnx.set_seed(seed)
    return cnnx.Sequential(
        [
            cnnx.Conv2D(8, 3, padding="same", activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(12, 3, strides=2, padding="same", activation="relu"),
            cnnx.BatchNormalization(),
            cnnx.GlobalAvgPool2D(),
            cnnx.Dense(4, activation="softmax"),
        ],
        input_shape=shape,
    )


@pytest.mark.parametrize("hw", [(28, 28), (17, 33), (9, 9)])
def test_any_size_equals_a_fixed_size_model(hw):
    any_size = gap_net((None, None, 1))
    fixed = gap_net(hw + (1,))
    fixed.set_weights(any_size.get_weights())
    x = RNG.standard_normal((5,) + hw + (1,)).astype(np.float32)
    np.testing.assert_allclose(any_size.predict(x), fixed.predict(x), rtol=1e-5, atol=1e-6)
    y = RNG.integers(0, 4, 5)
    for m in (any_size, fixed):
        m.compile(cnnx.optim.SGD(0.1, momentum=0.9), "cross_entropy")
    for _ in range(2):
        assert any_size.train_on_batch(x, y) == pytest.approx(fixed.train_on_batch(x, y), rel=1e-5)
    np.testing.assert_allclose(any_size.store.params, fixed.store.params, rtol=1e-5, atol=1e-7)


def test_keras_idiom_none_none_with_global_pooling():
    """Keras: input_shape=(None, None, 1) with GlobalAveragePooling2D trains on
    images of different sizes, one size per batch."""
    m = gap_net((None, None, 1))
    m.compile("adam", "cross_entropy", metrics=["accuracy"])
    for hw in [(28, 28), (20, 24), (28, 28), (32, 16)]:
        x = RNG.standard_normal((8,) + hw + (1,)).astype(np.float32)
        m.fit(x, RNG.integers(0, 4, 8), epochs=1, batch_size=4, verbose=0)
        assert m.predict(x).shape == (8, 4)
    assert m.summary(print_fn=None)[1].output_shape == (None, None, 8)


def test_plans_are_cached_per_size_in_a_small_lru():
    m = gap_net((None, None, 1))
    for n in range(6, 6 + m.PLANS_PER_SIZE + 4):
        m.predict(RNG.standard_normal((2, n, n, 1)).astype(np.float32))
    assert sum(1 for k in m._plans if k[0] == "infer") == m.PLANS_PER_SIZE
    first = m._inference_plan(((40, 40, 1),))
    assert m._inference_plan(((40, 40, 1),)) is first  # a hit, not a recompile


def test_building_at_a_new_size_keeps_the_weights():
    m = gap_net((28, 28, 1))
    before = m.get_weights()
    m.build((36, 20, 1))
    assert m.input_shape == (36, 20, 1)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="kernel"):
        m.build((36, 20, 2))  # another channel count would change a weight: refused


def test_fully_convolutional_outputs_follow_the_input_size():
    cnnx.set_seed(1)
    x_in = cnnx.Input((None, None, 2))
    a = cnnx.Conv2D(4, 3, padding="same", activation="relu")(x_in)
    b = cnnx.Conv2D(4, 1)(x_in)
    y = cnnx.Conv2D(3, 1)(cnnx.Concatenate()([a, b]))
    m = cnnx.Model(x_in, y)
    for hw in [(7, 9), (12, 12)]:
        x = RNG.standard_normal((2,) + hw + (2,)).astype(np.float32)
        out = m.predict(x)
        assert out.shape == (2,) + hw + (3,)
        np.testing.assert_allclose(out, m.forward(x), rtol=1e-5, atol=1e-6)
    m.compile("sgd", "mse")
    t = RNG.standard_normal((2, 12, 12, 3)).astype(np.float32)
    assert np.isfinite(m.train_on_batch(x, t))


def test_clear_errors_for_layers_that_need_a_size():
    with pytest.raises(ValueError, match="Flatten needs a fixed size"):
        cnnx.Sequential(
            [cnnx.Conv2D(2, 3), cnnx.Flatten(), cnnx.Dense(2)], input_shape=(None, None, 1)
        )
    m = gap_net((None, None, 1))
    # the channels are fixed (named by the NHWC layout check of the data branch)
    with pytest.raises(ValueError, match=r"x: got shape \(1, 8, 8, 3\).* takes 1 channels"):
        m.predict(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        cnnx.Sequential([cnnx.Conv2D(2, 5)], input_shape=(None, None, 1)).predict(
            np.zeros((1, 3, 3, 1), np.float32)
        )
