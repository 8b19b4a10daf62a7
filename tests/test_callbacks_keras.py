"""Callbacks with Keras's semantics: batch / test / predict hooks, ReduceLROnPlateau,
CSVLogger, TerminateOnNaN, LambdaCallback and BackupAndRestore (in process; the
kill -9 test is in test_backup_kill.py)."""

import csv
import os

import numpy as np
import pytest

import cnnx
from cnnx.callbacks import (
    BackupAndRestore,
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


def data(n=192, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, n)
    return x, y


def make(lr=0.05, dropout=False, opt=None):
    cnnx.set_seed(0)
    layers = [cnnx.Conv2D(4, 3, activation="relu"), cnnx.Flatten()]
    if dropout:
        layers.append(cnnx.Dropout(0.3))
    layers.append(cnnx.Dense(4, activation="softmax"))
    m = cnnx.Sequential(layers, input_shape=(8, 8, 3))
    m.compile(opt or cnnx.optim.SGD(lr=lr, momentum=0.9), "cross_entropy", metrics=["accuracy"])
    return m


class Recorder(Callback):
    """A custom callback as a Keras tutorial writes it."""

    def __init__(self):
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, dict(logs)))

    def on_test_begin(self, logs=None):
        self.events.append(("test_begin",))

    def on_test_batch_end(self, batch, logs=None):
        self.events.append(("test_batch_end", batch, dict(logs)))

    def on_test_end(self, logs=None):
        self.events.append(("test_end", dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end", dict(logs)))

    def on_predict_batch_end(self, batch, logs=None):
        self.events.append(("predict_batch_end", batch, logs["outputs"].shape))


def test_a_custom_callback_sees_every_hook_in_keras_order():
    x, y = data()
    xv, yv = data(80, seed=1)
    rec = Recorder()
    m = make()
    h = m.fit(
        x,
        y,
        epochs=2,
        batch_size=64,
        validation_data=(xv, yv),
        callbacks=[rec],
        shuffle=False,
        verbose=0,
    )
    kinds = [e[0] for e in rec.events]
    one_epoch = (
        ["epoch_begin"]
        + ["batch_begin", "batch_end"] * 3
        + ["test_begin", "test_batch_end", "test_end", "epoch_end"]
    )
    assert kinds == ["train_begin"] + one_epoch * 2 + ["train_end"]
    assert [e[1] for e in rec.events if e[0] == "batch_begin"] == [0, 1, 2] * 2
    assert rec.params == {"epochs": 2, "batch_size": 64, "samples": 192, "steps": 3, "verbose": 0}
    # a batch's logs: the running means so far (Keras 3); the last one is the epoch's
    ends = [e for e in rec.events if e[0] == "batch_end"]
    for epoch in range(2):
        last = ends[3 * epoch + 2][2]
        assert last["loss"] == h.history["loss"][epoch]
        assert last["accuracy"] == h.history["accuracy"][epoch]
    first = ends[0][2]["loss"]
    ref = make()
    assert first == pytest.approx(ref.train_on_batch(x[:64], y[:64]), rel=1e-12)
    # validation: on_test_* hooks, with val logs equal to evaluate's
    test_end = [e for e in rec.events if e[0] == "test_end"][-1][1]
    assert test_end == pytest.approx(m.evaluate(xv, yv), rel=1e-12)
    assert rec.events[-1][1]["val_loss"] == h.history["val_loss"][-1]


def test_evaluate_and_predict_callbacks():
    x, y = data()
    rec = Recorder()
    m = make()
    ev = m.evaluate(x, y, batch_size=50, callbacks=[rec])
    assert [e[0] for e in rec.events] == ["test_begin"] + ["test_batch_end"] * 4 + ["test_end"]
    assert rec.events[-1][1] == ev
    assert ev == pytest.approx(m.evaluate(x, y), rel=1e-6)
    rec.events.clear()
    p = m.predict(x, batch_size=100, callbacks=[rec])
    assert rec.events == [("predict_batch_end", 0, (100, 4)), ("predict_batch_end", 1, (92, 4))]
    np.testing.assert_allclose(p, m.predict(x), rtol=1e-5, atol=1e-6)


def test_on_batch_aliases_lambda_and_hooks_without_logs():
    x, y = data()
    seen = {"alias": [], "lambda": [], "old": []}

    class Alias(Callback):
        def on_batch_end(self, batch, logs=None):
            seen["alias"].append((batch, "loss" in logs))

    class OldStyle(Callback):  # cnnx's earlier signatures, without logs
        def on_train_begin(self):
            seen["old"].append("begin")

        def on_epoch_begin(self, epoch):
            seen["old"].append(epoch)

    lam = LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen["lambda"].append(batch),
        on_train_end=lambda logs: seen["lambda"].append("end"),
    )
    make().fit(x, y, epochs=2, batch_size=96, callbacks=[Alias(), OldStyle(), lam], verbose=0)
    assert seen["alias"] == [(0, True), (1, True)] * 2
    assert seen["lambda"] == [0, 1, 0, 1, "end"]
    assert seen["old"] == ["begin", 0, 1]
    with pytest.raises(TypeError, match="^on_banana: not a callback hook"):
        LambdaCallback(on_banana=print)


def test_stop_training_in_a_batch_hook_ends_after_that_batch():
    x, y = data()

    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    rec = Recorder()
    m = make()
    h = m.fit(x, y, epochs=5, batch_size=32, callbacks=[StopAt(), rec], verbose=0)
    assert h.epoch == [0]
    assert m.optimizer.iterations == 2
    assert [e[1] for e in rec.events if e[0] == "batch_end"] == [0, 1]


# ---- ReduceLROnPlateau -------------------------------------------------------------------
class Script(Callback):
    """Puts a scripted value into the epoch's logs (before the callbacks after it)."""

    def __init__(self, key, values):
        self.key, self.values = key, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_reduce_lr_on_plateau_follows_keras_rule():
    """Worked by hand from Keras's documented rule (patience 2, cooldown 1,
    factor 0.5, min_lr 0.02, min_delta 1e-4): the rate of each epoch."""
    x, y = data(64)
    val = [1.0, 0.9, 0.95, 0.92, 0.91, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89]
    rlr = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    m = make(lr=0.1)
    h = m.fit(
        x, y, epochs=len(val), batch_size=64, callbacks=[Script("val_loss", val), rlr], verbose=0
    )
    assert h.history["lr"] == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 2 + [0.02])
    assert m.optimizer.lr == pytest.approx(0.02)
    assert h.history["val_loss"] == val


def test_reduce_lr_on_plateau_mode_max_and_the_rate_really_used():
    x, y = data(64)
    acc = [0.5, 0.5, 0.6, 0.6, 0.6]
    m = make(lr=0.1)
    rlr = ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1, min_delta=0)
    lrs = []
    lam = LambdaCallback(on_train_batch_begin=lambda b, logs: lrs.append(m.optimizer.lr))
    h = m.fit(
        x, y, epochs=5, batch_size=64, callbacks=[Script("val_accuracy", acc), rlr, lam], verbose=0
    )
    assert h.history["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert lrs == h.history["lr"]  # the rate each step actually used
    with pytest.raises(ValueError, match="^factor"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="^monitor: 'val_loss' is not among"):
        make().fit(x, y, callbacks=[ReduceLROnPlateau()], verbose=0)


# ---- CSVLogger -----------------------------------------------------------------------------
def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = data()
    xv, yv = data(64, seed=1)
    path = tmp_path / "log.csv"
    m = make()
    h = m.fit(
        x,
        y,
        epochs=3,
        batch_size=64,
        validation_data=(xv, yv),
        callbacks=[CSVLogger(str(path))],
        verbose=0,
    )
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "lr", "time", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for r, epoch in zip(rows[1:], range(3)):
        for key, cell in zip(rows[0][1:], r[1:]):
            assert float(cell) == h.history[key][epoch]  # exact: repr round-trips
    # append: a resumed run adds rows, no second header; another separator
    m.fit(
        x,
        y,
        epochs=5,
        initial_epoch=3,
        batch_size=64,
        validation_data=(xv, yv),
        callbacks=[CSVLogger(path, append=True)],
        verbose=0,
    )
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows] == ["epoch", "0", "1", "2", "3", "4"]
    m.fit(x, y, epochs=1, batch_size=64, callbacks=[CSVLogger(path, separator=";")], verbose=0)
    assert path.read_text().splitlines()[0] == "epoch;accuracy;loss;lr;time"
    assert len(path.read_text().splitlines()) == 2  # append=False overwrites


# ---- TerminateOnNaN --------------------------------------------------------------------------
def test_terminate_on_nan_stops_at_the_bad_batch(capsys):
    x, y = data()
    x = x.copy()
    x[64:96] = np.nan  # batch 2 of the first epoch
    rec = Recorder()
    m = make()
    h = m.fit(
        x, y, epochs=4, batch_size=32, shuffle=False, callbacks=[TerminateOnNaN(), rec], verbose=0
    )
    assert h.epoch == [0]
    assert [e[1] for e in rec.events if e[0] == "batch_end"] == [0, 1, 2]
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    # without it, training runs on
    h = make().fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    assert h.epoch == [0, 1] and np.isnan(h.history["loss"][-1])


# ---- BackupAndRestore (in process) -------------------------------------------------------------
class Crash(Callback):
    """Keras's tutorial: interrupt training in the middle of an epoch."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupting")


def _run(backup, x, y, xv, yv, extra=(), epochs=6, opt=None):
    m = make(dropout=True, opt=opt or cnnx.optim.Adam(lr=0.01))
    cbs = [
        ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=1.0),
        EarlyStopping(monitor="val_loss", patience=10),
        LearningRateScheduler(lambda epoch, lr: lr * 0.9),
    ]
    if backup is not None:
        cbs.append(backup)
    h = m.fit(
        x,
        y,
        epochs=epochs,
        batch_size=32,
        validation_data=(xv, yv),
        callbacks=cbs + list(extra),
        verbose=0,
    )
    return m, h, cbs


def test_backup_and_restore_resumes_exactly(tmp_path):
    """Shuffling (the package generator), dropout masks, Adam's moments, the
    rate changed by two callbacks, their counters: all continue exactly."""
    x, y = data()
    xv, yv = data(64, seed=1)
    ref, h_ref, _ = _run(None, x, y, xv, yv)
    backup = BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="interrupting"):
        _run(backup, x, y, xv, yv, extra=[Crash(3, 2)])
    assert (tmp_path / "backup" / "cnnx-backup.npz").exists()
    cnnx.set_seed(123)  # a fresh process would not share the generator's state either
    backup = BackupAndRestore(tmp_path / "backup")
    m, h, cbs = _run(backup, x, y, xv, yv)
    assert backup.restored_epoch == 2
    assert h.epoch == [3, 4, 5]
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    assert h.history["loss"] == h_ref.history["loss"][3:]
    assert h.history["lr"] == h_ref.history["lr"][3:]
    assert m.optimizer.iterations == ref.optimizer.iterations
    assert not (tmp_path / "backup" / "cnnx-backup.npz").exists()  # deleted at the end
    assert [f for f in os.listdir(tmp_path / "backup")] == []


def test_backup_and_restore_with_a_seeded_fit_and_a_dataset(tmp_path):
    x, y = data()

    class Batches(cnnx.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return x[32 * i : 32 * (i + 1)], y[32 * i : 32 * (i + 1)]

    def run(cbs):
        m = make(dropout=True)
        m.fit(Batches(), epochs=4, seed=7, callbacks=cbs, verbose=0)
        return m

    ref = run([])
    with pytest.raises(RuntimeError):
        run([BackupAndRestore(tmp_path), Crash(2, 4)])
    m = run([BackupAndRestore(tmp_path)])
    np.testing.assert_array_equal(m.store.params, ref.store.params)


def test_backup_and_restore_refuses_another_model(tmp_path):
    x, y = data()
    with pytest.raises(RuntimeError):
        make().fit(
            x,
            y,
            epochs=3,
            callbacks=[BackupAndRestore(tmp_path, delete_checkpoint=True), Crash(1, 0)],
            verbose=0,
        )
    cnnx.set_seed(0)
    other = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(4)], input_shape=(8, 8, 3))
    other.compile("sgd", "cross_entropy")
    before = other.store.params.copy()
    n_saved, n_other = make().store.params.size, other.store.params.size
    with pytest.raises(
        ValueError,
        match=rf"^backup_dir: the backup .* holds {n_saved:,} "
        rf"parameters, the model has {n_other:,}: it belongs",
    ):
        other.fit(x, y, epochs=3, callbacks=[BackupAndRestore(tmp_path)], verbose=0)
    np.testing.assert_array_equal(other.store.params, before)
    m = make(opt=cnnx.optim.Adam())
    with pytest.raises(ValueError, match="optimizer SGD, the model is compiled with Adam"):
        m.fit(x, y, epochs=3, callbacks=[BackupAndRestore(tmp_path)], verbose=0)
    (tmp_path / "cnnx-backup.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable cnnx backup"):
        make().fit(x, y, callbacks=[BackupAndRestore(tmp_path)], verbose=0)
    with pytest.raises(ValueError, match="^save_freq"):
        BackupAndRestore(tmp_path, save_freq=10)
