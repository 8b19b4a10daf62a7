"""Issue 21's first target: a Keras tutorial's idioms, written the Keras way
with only the import changed (``import cnnx as keras``), each checked against
what Keras documents, recomputed here independently (NumPy formulas, the
documented rules, a hand-written loop over the same batches):

- a custom loss subclass trains step for step like the built-in it restates;
- ``class_weight`` on an imbalanced set gives the hand-weighted loss and step;
- a generator input trains exactly like the same arrays in the same order;
- ``LearningRateScheduler(lambda epoch, lr: lr * 0.5)`` halves the rate every epoch;
- ``ReduceLROnPlateau`` reduces after ``patience`` epochs without improvement,
  and ``CSVLogger`` writes one row per epoch with the history's values;
- ``RandomFlip`` in the model flips in ``fit`` and is the identity in ``predict``;
- ``input_shape=(None, None, 1)`` with global average pooling predicts any size;
- top-5 accuracy equals a NumPy top-5 count.

And the issue's bad input: a custom loss whose backward has the wrong shape,
a generator with inconsistent shapes, class_weight keys outside the labels,
a schedule returning a negative or NaN rate: each a clear error naming the
object, with the weights unchanged.
"""

import csv
import math

import numpy as np
import pytest

import cnnx as keras

# ---- helpers: tiny models and the NumPy references ------------------------------------------


def _classifier(n_in=6, classes=3, lr=0.1, metrics=None):
    """A logistic-regression classifier (one Dense layer, logits out)."""
    keras.set_seed(0)
    model = keras.Sequential([keras.Dense(classes)], input_shape=(n_in,))
    model.compile(
        optimizer=keras.optim.SGD(lr=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=metrics,
    )
    return model


def _softmax_ce_step(kernel, bias, x, y, weights, lr):
    """One SGD step of weighted sparse cross-entropy on logits, in float64:
    Keras's reduction ``sum_i w_i * loss_i / batch_size``. Returns (loss, kernel, bias)."""
    x = x.astype(np.float64)
    z = x @ kernel + bias
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    m = x.shape[0]
    per = -np.log(p[np.arange(m), y])
    loss = float((weights * per).sum() / m)
    g = p.copy()
    g[np.arange(m), y] -= 1.0
    g *= (weights / m)[:, None]
    return loss, kernel - lr * x.T @ g, bias - lr * g.sum(axis=0)


def _weights_of(model):
    return [w.copy() for w in model.get_weights()]


def _assert_same_weights(got, expected, rtol=0.0, atol=0.0):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        if rtol == 0.0 and atol == 0.0:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


class _RateProbe(keras.callbacks.Callback):
    """Reads ``model.optimizer.lr`` where Keras users read it: at the start of
    every epoch (after the callbacks before it) and at every training step."""

    def __init__(self):
        self.epoch_rates, self.step_rates = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_rates.append(float(self.model.optimizer.lr))

    def on_train_batch_begin(self, batch, logs=None):
        self.step_rates.append(float(self.model.optimizer.lr))


# ---- a custom loss subclass ----------------------------------------------------------------


class MyMeanSquaredError(keras.losses.Loss):
    """The Keras guide's custom loss (mean squared error), with its gradient."""

    def forward(self, y_true, y_pred):
        return np.mean(np.square(y_pred - y_true), axis=-1)

    def backward(self, y_true, y_pred):
        return 2.0 * (y_pred - y_true) / y_pred.shape[-1]


def _regressor(loss, lr=0.05):
    keras.set_seed(3)
    model = keras.Sequential([keras.Dense(2)], input_shape=(5,))
    model.compile(optimizer=keras.optim.SGD(lr=lr), loss=loss)
    return model


def test_custom_loss_subclass_trains_like_the_builtin_step_for_step():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = rng.standard_normal((32, 2)).astype(np.float32)
    # its gradient is right, by the helper users call
    assert keras.losses.check_gradient(MyMeanSquaredError(), y[:4], x[:4, :2]) < 1e-3
    custom, builtin = _regressor(MyMeanSquaredError()), _regressor("mse")
    _assert_same_weights(_weights_of(custom), _weights_of(builtin))
    kernel, bias = [w.astype(np.float64) for w in custom.get_weights()]
    for step in range(4):
        xb, yb = x[8 * step : 8 * step + 8], y[8 * step : 8 * step + 8]
        # the NumPy reference of this step: Keras's MSE, mean over outputs then over the batch
        err = xb @ kernel + bias - yb
        ref_loss = float(np.mean(np.square(err)))
        g = 2.0 * err / err.size
        kernel, bias = kernel - 0.05 * xb.T @ g, bias - 0.05 * g.sum(axis=0)
        loss_custom = custom.train_on_batch(xb, yb)
        loss_builtin = builtin.train_on_batch(xb, yb)
        loss_custom = loss_custom["loss"] if isinstance(loss_custom, dict) else loss_custom
        loss_builtin = loss_builtin["loss"] if isinstance(loss_builtin, dict) else loss_builtin
        assert loss_custom == pytest.approx(ref_loss, rel=1e-5)
        assert loss_custom == pytest.approx(loss_builtin, rel=1e-5)
        _assert_same_weights(custom.get_weights(), builtin.get_weights(), rtol=1e-5, atol=1e-6)
        _assert_same_weights(custom.get_weights(), [kernel, bias], rtol=1e-4, atol=1e-6)
    # and through fit, the same history as the built-in
    custom, builtin = _regressor(MyMeanSquaredError()), _regressor("mse")
    h_custom = custom.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    h_builtin = builtin.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert h_custom.history["loss"] == pytest.approx(h_builtin.history["loss"], rel=1e-5)
    _assert_same_weights(custom.get_weights(), builtin.get_weights(), rtol=1e-5, atol=1e-6)


class WrongShapeBackward(MyMeanSquaredError):
    """A custom loss whose backward drops the output axis."""

    def backward(self, y_true, y_pred):
        return super().backward(y_true, y_pred)[:, :1]


def test_bad_custom_loss_backward_shape_is_a_clear_error_and_changes_nothing():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    model = _regressor(WrongShapeBackward())
    before = _weights_of(model)
    with pytest.raises(ValueError, match=r"WrongShapeBackward\.backward.*\(8, 1\)"):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    _assert_same_weights(model.get_weights(), before)
    with pytest.raises(ValueError, match=r"WrongShapeBackward\.backward"):
        model.train_on_batch(x[:8], y[:8])
    _assert_same_weights(model.get_weights(), before)
    assert model.optimizer.iterations == 0


# ---- class_weight on an imbalanced set --------------------------------------------------------


def _imbalanced(n=40, seed=2):
    rng = np.random.default_rng(seed)
    y = np.array([0] * 32 + [1] * 6 + [2] * 2)
    rng.shuffle(y)
    x = (rng.standard_normal((n, 6)) + y[:, None] * 0.5).astype(np.float32)
    return x, y


def test_class_weight_on_an_imbalanced_set_is_the_hand_weighted_loss():
    x, y = _imbalanced()
    # the Keras tutorial's weights: total / (classes * count)
    counts = np.bincount(y, minlength=3)
    class_weight = {c: len(y) / (3 * counts[c]) for c in range(3)}
    model = _classifier()
    kernel, bias = [w.astype(np.float64) for w in model.get_weights()]
    start = _weights_of(model)
    h = model.fit(
        x, y, epochs=1, batch_size=16, shuffle=False, class_weight=class_weight, verbose=0
    )
    # reference: the same three batches (16, 16, 8) by hand; the epoch's loss is the
    # mean of the batch losses weighted by batch size (each at its step's weights)
    weights = np.array([class_weight[c] for c in y])
    total = 0.0
    for i in range(0, len(y), 16):
        loss, kernel, bias = _softmax_ce_step(
            kernel, bias, x[i : i + 16], y[i : i + 16], weights[i : i + 16], 0.1
        )
        total += loss * len(y[i : i + 16])
    assert h.history["loss"][0] == pytest.approx(total / len(y), rel=1e-5)
    _assert_same_weights(model.get_weights(), [kernel, bias], rtol=1e-4, atol=1e-6)
    # and it matters: without class_weight the weights end elsewhere
    plain = _classifier()
    _assert_same_weights(_weights_of(plain), start)
    plain.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert not np.allclose(plain.get_weights()[0], model.get_weights()[0], rtol=1e-3, atol=1e-4)


def test_class_weight_times_sample_weight_and_classes_left_out_weigh_one():
    x, y = _imbalanced()
    sw = np.linspace(0.5, 1.5, len(y)).astype(np.float32)
    model = _classifier()
    kernel, bias = [w.astype(np.float64) for w in model.get_weights()]
    model.fit(
        x,
        y,
        epochs=1,
        batch_size=len(y),
        shuffle=False,
        class_weight={2: 4.0},
        sample_weight=sw,
        verbose=0,
    )
    weights = np.where(y == 2, 4.0, 1.0) * sw
    _, kernel, bias = _softmax_ce_step(kernel, bias, x, y, weights, 0.1)
    _assert_same_weights(model.get_weights(), [kernel, bias], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("class_weight", [{0: 1.0, 3: 2.0}, {-1: 2.0}, {0: 1.0, 7: 0.5}])
def test_class_weight_keys_outside_the_labels_are_refused_before_any_step(class_weight):
    x, y = _imbalanced()
    model = _classifier()
    before = _weights_of(model)
    with pytest.raises(ValueError, match=r"^class_weight: class -?\d+ is outside the labels"):
        model.fit(x, y, epochs=1, batch_size=16, class_weight=class_weight, verbose=0)
    _assert_same_weights(model.get_weights(), before)
    # the same from a generator
    with pytest.raises(ValueError, match=r"^class_weight:"):
        model.fit(
            ((x[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8)),
            class_weight=class_weight,
            verbose=0,
        )
    _assert_same_weights(model.get_weights(), before)


def test_class_weight_that_is_no_number_names_class_weight():
    x, y = _imbalanced()
    model = _classifier()
    before = _weights_of(model)
    with pytest.raises(TypeError, match=r"^class_weight:"):
        model.fit(x, y, epochs=1, batch_size=16, class_weight={0: 1.0, 1: "heavy"}, verbose=0)
    _assert_same_weights(model.get_weights(), before)


# ---- a generator input ------------------------------------------------------------------------


def _images(n=48, seed=4):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, n)


def _small_cnn():
    keras.set_seed(1)
    model = keras.Sequential(
        [keras.Conv2D(3, 3, activation="relu"), keras.Flatten(), keras.Dense(3)],
        input_shape=(6, 6, 1),
    )
    model.compile(
        optimizer=keras.optim.SGD(lr=0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_a_generator_trains_like_the_same_arrays_in_the_same_order():
    x, y = _images()

    def batch_generator(batch_size=16):  # the tutorial's endless generator
        while True:
            for i in range(0, len(x), batch_size):
                yield x[i : i + batch_size], y[i : i + batch_size]

    from_arrays = _small_cnn()
    h_arrays = from_arrays.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    from_generator = _small_cnn()
    h_gen = from_generator.fit(
        batch_generator(), steps_per_epoch=math.ceil(len(x) / 16), epochs=3, verbose=0
    )
    _assert_same_weights(from_generator.get_weights(), from_arrays.get_weights())
    assert h_gen.history["loss"] == h_arrays.history["loss"]
    assert h_gen.history["accuracy"] == h_arrays.history["accuracy"]
    # and a hand-written loop over the same batches is the same training too
    by_hand = _small_cnn()
    for _ in range(3):
        for i in range(0, len(x), 16):
            by_hand.train_on_batch(x[i : i + 16], y[i : i + 16])
    _assert_same_weights(by_hand.get_weights(), from_arrays.get_weights())
    # predict and evaluate from a finite generator
    pred = from_generator.predict((x[i : i + 10] for i in range(0, len(x), 10)))
    np.testing.assert_array_equal(pred, from_generator.predict(x, batch_size=10))
    ev = from_generator.evaluate(((x[i : i + 10], y[i : i + 10]) for i in range(0, len(x), 10)))
    assert ev["loss"] == pytest.approx(from_generator.evaluate(x, y)["loss"], rel=1e-6)


def test_a_generator_with_inconsistent_shapes_names_the_batch_and_keeps_the_good_steps():
    x, y = _images()

    def bad_generator():
        for i in range(4):
            xb, yb = x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8]
            yield (xb[:, :5], yb) if i == 2 else (xb, yb)  # batch 2 is 5 x 6

    model = _small_cnn()
    with pytest.raises(ValueError, match=r"^x \(batch 2 of epoch 1\).*\(8, 5, 6, 1\)"):
        model.fit(bad_generator(), epochs=1, verbose=0)
    reference = _small_cnn()
    for i in range(2):  # the two good steps happened, the bad one did not
        reference.train_on_batch(x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8])
    _assert_same_weights(model.get_weights(), reference.get_weights())


# ---- LearningRateScheduler(lambda epoch, lr: lr * 0.5) ----------------------------------------


def test_learning_rate_scheduler_halves_the_current_rate_every_epoch():
    x, y = _imbalanced()
    probe = _RateProbe()
    model = _classifier(lr=0.1)
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    h = model.fit(
        x, y, epochs=4, batch_size=20, shuffle=False, callbacks=[scheduler, probe], verbose=0
    )
    # Keras calls the schedule before every epoch, the first included
    expected = [0.1 * 0.5 ** (e + 1) for e in range(4)]
    assert probe.epoch_rates == pytest.approx(expected, rel=1e-12)
    assert probe.step_rates == pytest.approx([r for r in expected for _ in range(2)], rel=1e-12)
    assert h.history["lr"] == pytest.approx(expected, rel=1e-12)
    assert model.optimizer.lr == pytest.approx(expected[-1], rel=1e-12)
    # the rates were really used: the NumPy steps at those rates
    kernel, bias = [w.astype(np.float64) for w in _classifier().get_weights()]
    for rate in expected:
        for i in (0, 20):
            _, kernel, bias = _softmax_ce_step(
                kernel, bias, x[i : i + 20], y[i : i + 20], np.ones(20), rate
            )
    _assert_same_weights(model.get_weights(), [kernel, bias], rtol=1e-4, atol=1e-6)
    # a second fit continues from the current (halved) rate, as Keras's does
    probe2 = _RateProbe()
    model.fit(x, y, epochs=1, batch_size=40, callbacks=[scheduler, probe2], verbose=0)
    assert probe2.epoch_rates == pytest.approx([expected[-1] * 0.5], rel=1e-12)


@pytest.mark.parametrize("bad", [-0.01, float("nan")])
def test_a_schedule_returning_a_negative_or_nan_rate_stops_before_that_epoch(bad):
    x, y = _imbalanced()
    model = _classifier(lr=0.1)
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: bad if epoch == 2 else lr)
    with pytest.raises(ValueError, match=r"^schedule: returned .* for epoch 2"):
        model.fit(x, y, epochs=4, batch_size=40, shuffle=False, callbacks=[scheduler], verbose=0)
    reference = _classifier(lr=0.1)  # the two good epochs, nothing of the third
    reference.fit(x, y, epochs=2, batch_size=40, shuffle=False, verbose=0)
    _assert_same_weights(model.get_weights(), reference.get_weights())
    assert model.optimizer.lr == 0.1


@pytest.mark.parametrize("bad", [-0.5, float("nan")])
def test_a_per_step_schedule_returning_a_negative_or_nan_rate_names_it(bad):
    class WarmupThenBroken(keras.optim.schedules.LearningRateSchedule):
        """A per-step schedule (Keras's LearningRateSchedule form) that goes bad at step 3."""

        def __call__(self, step):
            return 0.1 * (step + 1) / 3 if step < 3 else bad

    x, y = _imbalanced()
    keras.set_seed(0)
    model = keras.Sequential([keras.Dense(3)], input_shape=(6,))
    model.compile(
        optimizer=keras.optim.SGD(lr=WarmupThenBroken()),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    kernel, bias = [w.astype(np.float64) for w in model.get_weights()]
    with pytest.raises(ValueError, match=r"WarmupThenBroken.*step 3"):
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for step in range(3):  # the three good steps at the warm-up rates, not the fourth
        i = 8 * step
        _, kernel, bias = _softmax_ce_step(
            kernel, bias, x[i : i + 8], y[i : i + 8], np.ones(8), 0.1 * (step + 1) / 3
        )
    _assert_same_weights(model.get_weights(), [kernel, bias], rtol=1e-4, atol=1e-6)


# ---- ReduceLROnPlateau and CSVLogger ----------------------------------------------------------


def keras_reduce_lr_on_plateau(
    values, lr, factor, patience, min_delta=1e-4, cooldown=0, min_lr=0.0
):
    """Keras's documented rule (mode "min"), written out: the rate each epoch trains at."""
    best, wait, cooldown_counter, rates = math.inf, 0, 0, []
    for value in values:
        rates.append(lr)
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if value < best - min_delta:
            best, wait = value, 0
        elif cooldown_counter == 0:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr = max(lr * factor, min_lr)
                cooldown_counter, wait = cooldown, 0
    return rates


def test_reduce_lr_on_plateau_reduces_after_patience_epochs_on_a_plateau(tmp_path):
    """A learning rate so small that val_loss cannot improve by min_delta: a
    plateau from the first epoch, so the rate halves every `patience` epochs."""
    x, y = _imbalanced()
    xv, yv = _imbalanced(seed=5)
    model = _classifier(lr=1e-7)
    probe = _RateProbe()
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
    path = tmp_path / "training.log"
    h = model.fit(
        x,
        y,
        epochs=7,
        batch_size=40,
        validation_data=(xv, yv),
        verbose=0,
        callbacks=[reduce_lr, keras.callbacks.CSVLogger(str(path)), probe],
    )
    lr = 1e-7
    expected = [lr, lr, lr, lr / 2, lr / 2, lr / 4, lr / 4]
    assert probe.step_rates == pytest.approx(expected, rel=1e-12)
    assert keras_reduce_lr_on_plateau(h.history["val_loss"], lr, 0.5, 2) == pytest.approx(
        expected, rel=1e-12
    )
    assert h.history["lr"] == pytest.approx(expected, rel=1e-12)
    # CSVLogger: a header (epoch, then the log keys sorted), one row per epoch,
    # each cell the history's value
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "epoch"
    assert rows[0][1:] == sorted(h.history)
    assert [r[0] for r in rows[1:]] == [str(e) for e in range(7)]
    for epoch, row in enumerate(rows[1:]):
        for key, cell in zip(rows[0][1:], row[1:]):
            assert float(cell) == pytest.approx(h.history[key][epoch], rel=1e-12), key


class _Scripted(keras.callbacks.Callback):
    """Puts a scripted value in the logs (the monitored quantity we control)."""

    def __init__(self, key, values):
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_reduce_lr_on_plateau_follows_the_keras_rule_on_a_scripted_monitor():
    x, y = _imbalanced()
    values = [1.0, 0.8, 0.85, 0.84, 0.7, 0.75, 0.76, 0.77, 0.69, 0.70, 0.71, 0.72]
    model = _classifier(lr=0.1)
    probe = _RateProbe()
    reduce_lr = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.2, patience=2, cooldown=1, min_lr=0.005
    )
    model.fit(
        x,
        y,
        epochs=len(values),
        batch_size=40,
        verbose=0,
        callbacks=[_Scripted("val_loss", values), reduce_lr, probe],
    )
    expected = keras_reduce_lr_on_plateau(values, 0.1, 0.2, 2, cooldown=1, min_lr=0.005)
    assert len(set(expected)) >= 3  # the script does reduce, twice
    assert probe.step_rates == pytest.approx(expected, rel=1e-12)


# ---- RandomFlip in the model ------------------------------------------------------------------


def test_random_flip_flips_in_fit_and_is_the_identity_in_predict():
    keras.set_seed(0)
    model = keras.Sequential(
        [keras.RandomFlip("horizontal"), keras.Flatten(), keras.Dense(1)], input_shape=(2, 3, 1)
    )
    model.compile(optimizer=keras.optim.SGD(lr=0.1), loss="mse")
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3, 1) / 6
    target = np.array([[1.0]], np.float32)
    kernel0, bias0 = [w.copy() for w in model.get_weights()]

    def step_on(image):  # one SGD step of MSE on `image`, in NumPy
        v = image.reshape(-1).astype(np.float64)
        g = 2.0 * (v @ kernel0[:, 0] + bias0[0] - target[0, 0])
        return kernel0[:, 0] - 0.1 * g * v

    plain, flipped = step_on(x[0]), step_on(x[0, :, ::-1])
    assert not np.allclose(plain, flipped)
    seen = []
    for _ in range(24):
        model.set_weights([kernel0, bias0])
        model.fit(x, target, epochs=1, batch_size=1, verbose=0)
        k = model.get_weights()[0][:, 0]
        is_plain = np.allclose(k, plain, rtol=1e-5, atol=1e-6)
        is_flipped = np.allclose(k, flipped, rtol=1e-5, atol=1e-6)
        assert is_plain != is_flipped, "the step trained on neither the image nor its mirror"
        seen.append("flipped" if is_flipped else "plain")
    assert set(seen) == {"plain", "flipped"}  # each with probability 1/2
    # predict: the identity, every time
    model.set_weights([kernel0, bias0])
    batch = np.random.default_rng(6).random((16, 2, 3, 1)).astype(np.float32)
    reference = batch.reshape(16, -1) @ kernel0 + bias0
    for _ in range(3):
        np.testing.assert_allclose(model.predict(batch), reference, rtol=1e-5, atol=1e-6)
    # the layer alone: identity unless training=True; then each image or its mirror
    flip = keras.RandomFlip("horizontal")
    np.testing.assert_array_equal(flip(batch), batch)
    out = flip(batch, training=True)
    mirrored = [
        np.array_equal(o, b[:, ::-1]) and not np.array_equal(o, b) for o, b in zip(out, batch)
    ]
    for o, b, m in zip(out, batch, mirrored):
        assert m or np.array_equal(o, b)
    assert 0 < sum(mirrored) < len(batch)


# ---- input_shape=(None, None, 1) with global average pooling ----------------------------------


def _conv_valid(x, kernel, bias):
    fh, fw = kernel.shape[:2]
    oh, ow = x.shape[1] - fh + 1, x.shape[2] - fw + 1
    out = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
    for i in range(fh):
        for j in range(fw):
            out += np.einsum("nhwc,cf->nhwf", x[:, i : i + oh, j : j + ow, :], kernel[i, j])
    return out + bias


def test_any_input_size_with_global_average_pooling_matches_layer_by_layer():
    keras.set_seed(2)
    model = keras.Sequential(
        [keras.Conv2D(4, 3, activation="relu"), keras.GlobalAvgPool2D(), keras.Dense(3)],
        input_shape=(None, None, 1),
    )
    model.compile(
        optimizer=keras.optim.SGD(lr=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(7)

    def reference(x):
        k, bk, w, bd = [a.astype(np.float64) for a in model.get_weights()]
        features = np.maximum(_conv_valid(x.astype(np.float64), k, bk), 0).mean(axis=(1, 2))
        return features @ w + bd

    small = rng.random((5, 8, 8, 1)).astype(np.float32)
    large = rng.random((3, 11, 13, 1)).astype(np.float32)
    for x in (small, large, small):
        got = model.predict(x)
        assert got.shape == (x.shape[0], 3)
        np.testing.assert_allclose(got, reference(x), rtol=1e-4, atol=1e-5)
    # train at one size, predict at another: the weights are the trained ones, kept
    model.fit(small, np.array([0, 1, 2, 0, 1]), epochs=2, batch_size=5, verbose=0)
    trained = _weights_of(model)
    np.testing.assert_allclose(model.predict(large), reference(large), rtol=1e-4, atol=1e-5)
    _assert_same_weights(model.get_weights(), trained)
    # and training at the second size uses the same weights (no re-initialisation)
    model.fit(large, np.array([2, 1, 0]), epochs=1, batch_size=3, verbose=0)
    np.testing.assert_allclose(model.predict(small), reference(small), rtol=1e-4, atol=1e-5)


# ---- top-5 accuracy ---------------------------------------------------------------------------


def _numpy_top5(scores, labels, weights=None):
    rank = (scores > scores[np.arange(len(labels)), labels][:, None]).sum(axis=1)
    hit = (rank < 5).astype(np.float64)
    return float(hit.mean()) if weights is None else float((hit * weights).sum() / weights.sum())


def test_top5_accuracy_is_the_numpy_top5_count():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((60, 6)).astype(np.float32)
    y = rng.integers(0, 10, 60)
    model = _classifier(
        classes=10, metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")]
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    scores = model.predict(x)
    expected = _numpy_top5(scores, y)
    assert 0.0 < expected < 1.0
    assert model.evaluate(x, y, batch_size=7)["top5"] == pytest.approx(expected, abs=1e-6)
    # the metric objects by themselves (one-hot and integer labels, sample weights)
    onehot = np.eye(10, dtype=np.float32)[y]
    m = keras.metrics.TopKCategoricalAccuracy(k=5)
    m.update_state(onehot[:25], scores[:25])
    m.update_state(onehot[25:], scores[25:])
    assert m.result() == pytest.approx(expected, abs=1e-6)
    m.reset_state()
    m.update_state(onehot[:10], scores[:10])
    assert m.result() == pytest.approx(_numpy_top5(scores[:10], y[:10]), abs=1e-6)
    sw = rng.random(60)
    s = keras.metrics.SparseTopKCategoricalAccuracy(k=5)
    s.update_state(y, scores, sample_weight=sw)
    assert s.result() == pytest.approx(_numpy_top5(scores, y, sw), abs=1e-6)


def test_top_k_metric_names_are_keras_names():
    """Keras names the metric after its string (or the class's default name),
    which is the key of the history and of evaluate's dict."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    y = rng.integers(0, 10, 20)
    model = _classifier(classes=10, metrics=["sparse_top_k_categorical_accuracy"])
    h = model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    assert "sparse_top_k_categorical_accuracy" in h.history
    assert keras.metrics.SparseTopKCategoricalAccuracy().name == "sparse_top_k_categorical_accuracy"
    assert keras.metrics.TopKCategoricalAccuracy().name == "top_k_categorical_accuracy"


# ---- "only the import changed": Keras's spellings --------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["GlobalAveragePooling2D", "optimizers.SGD(learning_rate=...)", "optimizer.learning_rate"],
)
def test_keras_spellings_used_by_the_tutorials(spelling):
    if spelling == "GlobalAveragePooling2D":
        assert hasattr(keras, "GlobalAveragePooling2D") or hasattr(
            keras.layers, "GlobalAveragePooling2D"
        )
    elif spelling == "optimizers.SGD(learning_rate=...)":
        assert hasattr(keras, "optimizers"), "no cnnx.optimizers module"
        assert keras.optimizers.SGD(learning_rate=0.25).lr == 0.25
    else:
        model = _classifier(lr=0.1)
        assert hasattr(model.optimizer, "learning_rate"), "no optimizer.learning_rate"
        model.optimizer.learning_rate = 0.05
        assert model.optimizer.lr == 0.05
