"""save -> load: identical predictions, optimiser state restored so that
training continues identically; bad files raise ValueError; atomic writes."""

import os
import struct

import numpy as np
import pytest

import cnnx
from cnnx import io as cio


def make_model():
    return cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, padding="same", activation="relu"),
            cnnx.BatchNormalization(),
            cnnx.Residual(
                [
                    cnnx.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
                    cnnx.Conv2D(6, 3, padding="same"),
                ]
            ),
            cnnx.MaxPool2D(2),
            cnnx.Dropout(0.25),
            cnnx.Flatten(),
            cnnx.Dense(12, activation="leaky_relu"),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(8, 8, 2),
    )


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, n)


@pytest.mark.parametrize(
    "opt",
    [
        lambda: cnnx.optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
        lambda: cnnx.optim.AdamW(lr=0.01),
    ],
)
def test_round_trip_predictions_and_continued_training(tmp_path, opt):
    x, y = data()
    cnnx.set_seed(0)
    model = make_model()
    model.compile(optimizer=opt(), loss="cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "m.cnnx"
    model.save(str(path))
    loaded = cnnx.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.loss == "cross_entropy" and loaded.metrics == ["accuracy"]
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for k, v in model.optimizer.state.items():
        np.testing.assert_array_equal(loaded.optimizer.state[k], v)
    bn, bn2 = model.layers[1], loaded.layers[1]
    np.testing.assert_array_equal(bn2.buffers["moving_var"], bn.buffers["moving_var"])
    # training continues identically (same seed for dropout and shuffling)
    cnnx.set_seed(9)
    h1 = model.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"]
    cnnx.set_seed(9)
    h2 = loaded.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"]
    assert h1 == h2
    np.testing.assert_array_equal(loaded.store.params, model.store.params)
    assert [r.params for r in loaded.summary(print_fn=None)] == [
        r.params for r in model.summary(print_fn=None)
    ]


def test_uncompiled_model_round_trip(tmp_path):
    x, _ = data(4)
    model = make_model()
    model.save(tmp_path / "u.cnnx")
    loaded = cnnx.load_model(tmp_path / "u.cnnx")
    assert loaded.optimizer is None and loaded.loss is None
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def saved_bytes(tmp_path):
    model = make_model()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.1, momentum=0.9), loss="cross_entropy")
    p = tmp_path / "good.cnnx"
    model.save(p)
    return p.read_bytes()


def write(tmp_path, name, raw):
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def test_truncated_files_raise(tmp_path):
    raw = saved_bytes(tmp_path)
    for cut in (0, 5, 20, len(raw) // 2, len(raw) - 1):
        p = write(tmp_path, f"t{cut}.cnnx", raw[:cut])
        with pytest.raises(ValueError, match="^path"):
            cnnx.load_model(p)
    with pytest.raises(ValueError, match="truncated"):
        cnnx.load_model(write(tmp_path, "half.cnnx", raw[: len(raw) // 2]))


def test_corrupt_files_raise(tmp_path):
    raw = bytearray(saved_bytes(tmp_path))
    for pos in (cio._PREFIX.size + 10, len(raw) - 7, len(raw) // 2):
        bad = bytearray(raw)
        bad[pos] ^= 0x40
        with pytest.raises(ValueError, match="corrupt"):
            cnnx.load_model(write(tmp_path, f"c{pos}.cnnx", bytes(bad)))
    with pytest.raises(ValueError, match="not a cnnx model"):
        cnnx.load_model(write(tmp_path, "junk.cnnx", b"hello world, definitely not a model" * 3))
    with pytest.raises(ValueError, match="corrupt"):
        cnnx.load_model(write(tmp_path, "extra.cnnx", bytes(raw) + b"\0"))


def test_unknown_version_raises(tmp_path):
    raw = bytearray(saved_bytes(tmp_path))
    struct.pack_into("<I", raw, 8, cio.FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="version"):
        cnnx.load_model(write(tmp_path, "v.cnnx", bytes(raw)))


def test_save_is_atomic(tmp_path, monkeypatch):
    model = make_model()
    p = tmp_path / "m.cnnx"
    model.save(p)
    good = p.read_bytes()
    model.store.params[...] += 1.0

    def boom(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(cio.os, "fsync", boom)
    with pytest.raises(OSError):
        model.save(p)
    assert p.read_bytes() == good  # the last good file survives
    assert os.listdir(tmp_path) == ["m.cnnx"]  # and no temporary file is left behind


def test_set_seed_reproducibility():
    cnnx.set_seed(123)
    a = make_model().store.params.copy()
    cnnx.set_seed(123)
    b = make_model().store.params.copy()
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="^seed"):
        cnnx.set_seed(-1)
    with pytest.raises(TypeError, match="^seed"):
        cnnx.set_seed(1.5)
