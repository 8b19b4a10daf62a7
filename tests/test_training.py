"""fit: learning an easy problem, History, validation, shuffling seeds,
callbacks (EarlyStopping, ModelCheckpoint, learning-rate schedules)."""

import math
import os

import numpy as np
import pytest

import cnnx
from cnnx.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint


def quadrant_data(n, seed=0):
    """8x8x1 images, class = the quadrant holding a bright 2x2 blob (plus noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    r = rng.integers(0, 3, n) + 4 * (y // 2)
    c = rng.integers(0, 3, n) + 4 * (y % 2)
    for dr in (0, 1):
        for dc in (0, 1):
            x[np.arange(n), r + dr, c + dc, 0] += 1.5
    return x, y


def small_cnn():
    return cnnx.Sequential(
        [
            cnnx.Conv2D(8, 3, padding="same", activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(8, 3, padding="same", activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(4, activation="softmax"),
        ],
        input_shape=(8, 8, 1),
    )


def test_fit_learns_an_easy_problem():
    cnnx.set_seed(0)
    x, y = quadrant_data(1200)
    xv, yv = quadrant_data(300, seed=1)
    model = small_cnn()
    model.compile(
        optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy", metrics=["accuracy"]
    )
    hist = model.fit(x, y, epochs=6, batch_size=32, validation_data=(xv, yv), verbose=0)
    assert isinstance(hist, cnnx.training.History)
    assert hist.epoch == list(range(6))
    assert set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] >= 0.95
    ev = model.evaluate(xv, yv)
    assert abs(ev["accuracy"] - hist.history["val_accuracy"][-1]) < 1e-12
    assert (model.predict(xv).argmax(1) == yv).mean() == ev["accuracy"]


def test_fit_with_adam_and_validation_split():
    cnnx.set_seed(1)
    x, y = quadrant_data(600)
    model = small_cnn()
    model.compile(optimizer=cnnx.optim.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=4, batch_size=50, validation_split=0.2, verbose=0)
    assert hist.params["samples"] == 480
    assert hist.history["val_accuracy"][-1] >= 0.9
    # the held-out part is the last 20%, as in Keras
    ev = model.evaluate(x[480:], y[480:])
    assert abs(ev["loss"] - hist.history["val_loss"][-1]) < 1e-9


def test_fit_is_repeatable_with_set_seed():
    x, y = quadrant_data(200)

    def run():
        cnnx.set_seed(42)
        m = small_cnn()
        m.compile(optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
        h = m.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return h.history["loss"], m.store.params.copy()

    l1, p1 = run()
    l2, p2 = run()
    assert l1 == l2
    np.testing.assert_array_equal(p1, p2)
    # fit's own seed changes only the shuffling
    cnnx.set_seed(42)
    m = small_cnn()
    m.compile(optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
    l3 = m.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=7).history["loss"]
    assert l3 != l1


def test_fit_without_shuffle_equals_manual_loop():
    x, y = quadrant_data(50)
    cnnx.set_seed(3)
    a = small_cnn()
    a.compile(optimizer=cnnx.optim.SGD(lr=0.1), loss="cross_entropy")
    cnnx.set_seed(3)
    b = small_cnn()
    b.compile(optimizer=cnnx.optim.SGD(lr=0.1), loss="cross_entropy")
    a.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for i in range(0, 50, 16):
        b.train_on_batch(x[i : i + 16], y[i : i + 16])
    np.testing.assert_allclose(a.store.params, b.store.params, rtol=1e-6, atol=1e-7)


def test_progress_bar_and_verbose_lines(capsys):
    x, y = quadrant_data(64)
    model = small_cnn()
    model.compile(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=16, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "img/s" in err and "loss" in err and "accuracy" in err
    model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and "img/s" in out


def test_import_cnnx_does_not_import_tqdm():
    import subprocess
    import sys

    code = "import sys, cnnx; print('tqdm' in sys.modules)"
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.stdout.strip() == "False", res.stderr


def test_early_stopping_restores_best():
    x, y = quadrant_data(100)
    model = small_cnn()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.05), loss="cross_entropy")
    # a metric that gets worse after epoch 1: monitor the training loss in "max" mode
    es = EarlyStopping(monitor="loss", patience=2, mode="max", restore_best_weights=True)
    snapshots = []

    class Snap(cnnx.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots.append(model.store.params.copy())

    hist = model.fit(x, y, epochs=20, batch_size=20, callbacks=[Snap(), es], verbose=0)
    losses = hist.history["loss"]
    best = int(np.argmax(losses))
    assert len(losses) == best + 3  # patience 2: stop on the second non-improving epoch
    assert es.stopped_epoch == len(losses) - 1
    np.testing.assert_array_equal(model.store.params, snapshots[best])


def test_early_stopping_patience_counts_and_min_delta():
    es = EarlyStopping(monitor="val_loss", patience=2, min_delta=0.1)

    class M:
        stop_training = False

    es.set_model(M())
    es.on_train_begin()
    for epoch, v in enumerate([1.0, 0.95, 0.5, 0.45, 0.44]):
        es.on_epoch_end(epoch, {"val_loss": v})
        if M.stop_training or es.model.stop_training:
            break
    assert es.stopped_epoch == 4 and es.best == 0.5
    with pytest.raises(ValueError, match="^monitor"):
        es.on_epoch_end(5, {"loss": 1.0})


def test_model_checkpoint(tmp_path):
    x, y = quadrant_data(80)
    xv, yv = quadrant_data(40, seed=2)
    model = small_cnn()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
    every = ModelCheckpoint(str(tmp_path / "ep{epoch:02d}.cnnx"), save_best_only=False)
    best = ModelCheckpoint(str(tmp_path / "best.cnnx"), monitor="val_loss", save_best_only=True)
    hist = model.fit(
        x, y, epochs=3, batch_size=16, validation_data=(xv, yv), callbacks=[every, best], verbose=0
    )
    assert sorted(os.listdir(tmp_path)) == ["best.cnnx", "ep01.cnnx", "ep02.cnnx", "ep03.cnnx"]
    vl = hist.history["val_loss"]
    n_improved = sum(1 for i, v in enumerate(vl) if v < min(vl[:i], default=np.inf))
    assert len(best.saved) == n_improved
    m3 = cnnx.load_model(str(tmp_path / "ep03.cnnx"))
    np.testing.assert_array_equal(m3.predict(xv), model.predict(xv))
    mb = cnnx.load_model(str(tmp_path / "best.cnnx"))
    assert abs(mb.evaluate(xv, yv)["loss"] - min(vl)) < 1e-6


def test_learning_rate_schedules():
    x, y = quadrant_data(32)
    model = small_cnn()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.1), loss="cross_entropy")
    step = LearningRateScheduler("step", step_size=2, gamma=0.5)
    hist = model.fit(x, y, epochs=5, batch_size=16, callbacks=[step], verbose=0)
    np.testing.assert_allclose(step.lrs, [0.1, 0.1, 0.05, 0.05, 0.025])
    np.testing.assert_allclose(hist.history["lr"], step.lrs)

    model.compile(optimizer=cnnx.optim.SGD(lr=0.2), loss="cross_entropy")
    cos = LearningRateScheduler("cosine", epochs=4, min_lr=0.02)
    model.fit(x, y, epochs=4, batch_size=16, callbacks=[cos], verbose=0)
    ref = [0.02 + 0.18 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(cos.lrs, ref)

    model.compile(optimizer=cnnx.optim.SGD(lr=0.3), loss="cross_entropy")
    # a function gets the current rate (Keras): lr / (epoch + 1) compounds
    fn = LearningRateScheduler(lambda epoch, lr: lr / (epoch + 1))
    model.fit(x, y, epochs=3, batch_size=16, callbacks=[fn], verbose=0)
    np.testing.assert_allclose(fn.lrs, [0.3, 0.15, 0.05])
    with pytest.raises(ValueError, match="^step_size"):
        LearningRateScheduler("step")
    with pytest.raises(ValueError, match="^schedule"):
        LearningRateScheduler("linear")


def test_learning_rate_actually_used():
    """A schedule of 0 after the first epoch freezes the weights (the rate reaches the kernel)."""
    x, y = quadrant_data(32)
    model = small_cnn()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.1), loss="cross_entropy")
    snaps = []

    class Snap(cnnx.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            snaps.append(model.store.params.copy())

    sched = LearningRateScheduler(lambda e, lr0: lr0 if e == 0 else 0.0)
    model.fit(x, y, epochs=3, batch_size=16, callbacks=[sched, Snap()], verbose=0)
    np.testing.assert_array_equal(snaps[1], snaps[0])
    np.testing.assert_array_equal(snaps[2], snaps[0])


def test_fit_argument_errors():
    x, y = quadrant_data(20)
    model = small_cnn()
    with pytest.raises(ValueError, match="^model"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="sgd", loss="cross_entropy")
    with pytest.raises(ValueError, match="^batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="^validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(TypeError, match="^validation_data"):
        model.fit(x, y, validation_data=x, verbose=0)
    with pytest.raises(ValueError, match="^y"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(TypeError, match="^callbacks"):
        model.fit(x, y, callbacks=[object()], verbose=0)


def test_mse_regression():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 3)).astype(np.float32)
    w = np.array([[1.0], [-2.0], [0.5]], np.float32)
    t = x @ w + 0.3
    cnnx.set_seed(0)
    model = cnnx.Sequential([cnnx.Dense(1)], input_shape=(3,))
    model.compile(optimizer=cnnx.optim.SGD(lr=0.1), loss="mse")
    hist = model.fit(x, t, epochs=30, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 1e-4
    np.testing.assert_allclose(model.layers[0].params["kernel"], w, atol=1e-2)
