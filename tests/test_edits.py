"""Edits are seen: after any change a user can make through public
attributes, predict / evaluate / fit give what a freshly built model with
the same configuration and weights gives, or the edit is refused at once.
(Compiled plans are cached; these are the regressions of serving an old
model: issue "Reliability II".)"""

import numpy as np
import pytest

import cnnx
from cnnx.layers.base import layer_config, layer_from_config


def seed_net():
    cnnx.set_seed(0)
    return cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(6, 3, activation="relu"),
            cnnx.Flatten(),
            cnnx.Dense(8, activation="relu"),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(12, 12, 2),
    )


def fresh_copy(model):
    """A newly built model with the same configuration and weights."""
    other = layer_from_config(layer_config(model))
    other.set_weights(model.get_weights())
    return other


X = np.random.default_rng(0).standard_normal((5, 12, 12, 2)).astype(np.float32)
Y = np.array([0, 1, 2, 1, 0])


def same_predictions(model):
    ref = fresh_copy(model)
    np.testing.assert_allclose(model.predict(X), ref.predict(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(X), model.forward(X), rtol=1e-5, atol=1e-6)


def test_rebinding_a_parameter_is_seen():
    m = seed_net()
    before = m.predict(X)
    new = np.random.default_rng(1).standard_normal(m.layers[0].params["kernel"].shape)
    m.layers[0].params["kernel"] = new
    np.testing.assert_array_equal(m.layers[0].params["kernel"], new.astype(np.float32))
    assert np.shares_memory(m.layers[0].params["kernel"], m.store.params)  # still the model's
    assert not np.allclose(m.predict(X), before)
    same_predictions(m)
    with pytest.raises(ValueError, match="shape"):
        m.layers[0].params["kernel"] = np.zeros((2, 2))
    with pytest.raises(KeyError, match="no entry 'nope'"):
        m.layers[0].params["nope"] = np.zeros(3)
    with pytest.raises(AttributeError, match="params"):
        m.layers[0].params = {}


def test_replacing_inserting_and_deleting_layers_is_seen():
    m = seed_net()
    m.compile(cnnx.optim.SGD(0.1, momentum=0.9), "cross_entropy")
    m.predict(X)
    kept = m.layers[2].params["kernel"].copy()
    m.layers[1] = cnnx.AvgPool2D(2)  # was MaxPool2D
    same_predictions(m)
    np.testing.assert_array_equal(m.layers[2].params["kernel"], kept)  # weights kept
    m.layers.insert(5, cnnx.Dense(8, activation="tanh"))
    assert m.predict(X).shape == (5, 3)
    same_predictions(m)
    del m.layers[5]
    same_predictions(m)
    # an edit that would change a kept layer's weight shape is refused, naming it
    m.layers.insert(4, cnnx.Dense(7))
    with pytest.raises(ValueError, match="Dense.*kernel"):
        m.predict(X)
    del m.layers[4]
    same_predictions(m)
    # training after the edit trains the edited model (and a fresh copy agrees)
    ref = fresh_copy(m)
    ref.compile(cnnx.optim.SGD(0.1, momentum=0.9), "cross_entropy")
    for _ in range(2):
        assert m.train_on_batch(X, Y) == pytest.approx(ref.train_on_batch(X, Y), rel=1e-5)


def test_optimizer_state_follows_the_parameters_that_stay():
    m = seed_net()
    m.compile(cnnx.optim.Adam(0.01), "cross_entropy")
    m.train_on_batch(X, Y)
    conv2 = m.layers[2]

    def moment(model, layer):
        for lay, name, start, size, _ in model.store.slots:
            if lay is layer and name == "kernel":
                return model.optimizer.state["m"][start : start + size].copy()

    before = moment(m, conv2)
    assert np.abs(before).max() > 0
    m.layers.insert(1, cnnx.ReLU())
    m.layers[5] = cnnx.Dense(8, activation="tanh")  # a new layer: fresh (zero) state
    m.predict(X)
    np.testing.assert_array_equal(moment(m, conv2), before)
    assert np.abs(moment(m, m.layers[5])).max() == 0


def test_changing_the_activation_is_seen_on_both_paths(monkeypatch):
    for plans in ("1", "0"):
        monkeypatch.setenv("CNNX_PLAN", plans)
        m = seed_net()
        m.predict(X)
        m.layers[0].activation = None
        assert m.layers[0].activation is None
        same_predictions(m)
        m.layers[5].activation = "sigmoid"
        out = m.predict(X)
        assert np.all((out > 0) & (out < 1)) and not np.allclose(out.sum(1), 1.0)
        same_predictions(m)


def test_training_sees_edits():
    m = seed_net()
    m.compile("sgd", "cross_entropy")
    m.train_on_batch(X, Y)
    m.layers[0].activation = "tanh"
    m.layers[4].trainable = False
    frozen = m.layers[4].params["kernel"].copy()
    ref = fresh_copy(m)
    ref.layers[4].trainable = False
    ref.compile("sgd", "cross_entropy")
    assert m.train_on_batch(X, Y) == pytest.approx(ref.train_on_batch(X, Y), rel=1e-5)
    np.testing.assert_array_equal(m.layers[4].params["kernel"], frozen)
    np.testing.assert_allclose(m.store.params, ref.store.params, rtol=1e-5, atol=1e-6)


def test_other_layer_settings_are_seen():
    cnnx.set_seed(2)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(3, 3),
            cnnx.LeakyReLU(0.1),
            cnnx.BatchNormalization(),
            cnnx.Flatten(),
            cnnx.Dense(2),
        ],
        input_shape=(6, 6, 1),
    )
    x = X[:, :6, :6, :1].copy()
    m.predict(x)
    m.layers[1].alpha = 0.5
    m.layers[2].epsilon = 0.5
    m.layers[2].buffers["moving_var"] = np.full(3, 4.0)
    np.testing.assert_allclose(
        m.predict(x), fresh_copy_with_buffers(m).predict(x), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(m.predict(x), m.forward(x), rtol=1e-5, atol=1e-6)


def fresh_copy_with_buffers(model):
    other = fresh_copy(model)
    for a, b in zip(model.layers, other.layers):
        for k in a.buffers:
            b.buffers[k] = a.buffers[k]
    return other


def test_shape_fixing_settings_are_refused_once_built():
    m = seed_net()
    for layer, attr, value in [
        (m.layers[0], "strides", (2, 2)),
        (m.layers[0], "filters", 9),
        (m.layers[0], "padding", "same"),
        (m.layers[4], "units", 3),
        (m.layers[1], "pool_size", (3, 3)),
    ]:
        with pytest.raises(AttributeError, match=attr):
            setattr(layer, attr, value)
    # before build they may change
    conv = cnnx.Conv2D(4, 3)
    conv.strides = (2, 2)


def test_nested_sequential_edits_rebuild_the_outer_model():
    cnnx.set_seed(5)
    inner = cnnx.Sequential([cnnx.Conv2D(4, 3, padding="same", activation="relu")])
    m = cnnx.Sequential([inner, cnnx.GlobalAvgPool2D(), cnnx.Dense(3)], input_shape=(12, 12, 2))
    m.predict(X)
    inner.layers.append(cnnx.Conv2D(4, 1))
    assert m.count_params() == (9 * 2 + 1) * 4 + (4 + 1) * 4 + (4 + 1) * 3
    same_predictions(m)
    assert np.shares_memory(inner.layers[1].params["kernel"], m.store.params)
