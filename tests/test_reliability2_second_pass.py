"""Reliability II (issue 17), second adversarial pass over the same areas:
what a second round of hostile model files, ONNX files, saves, threads,
callback arguments and command lines found after the first fixes.

- model files naming private base classes (``_Pool2D``) loaded a layer that
  could not run; negative or NaN running variances loaded and gave NaN;
- ``save`` onto a FIFO or device replaced it with a regular file (as root, a
  save to ``/dev/null`` would have replaced the device); through a symlink it
  replaced the link instead of writing where it points (as ``open`` does);
- ``save``, ``compile`` and ``add`` from another thread during ``fit`` copied
  half-updated weights or swapped the optimiser mid-run;
- callback arguments (NaN ``min_delta``/``min_lr``/``gamma``, a malformed
  checkpoint pattern) failed late, silently, or with a bare KeyError;
- ONNX nodes whose settings a cnnx layer refuses gave a ValueError that did
  not name the node;
- ``cnnx train --out`` a FIFO, ``cnnx edges`` on a ``.npy`` whose header
  promises a huge array, and Ctrl-C printed tracebacks.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest

import cnnx
from cnnx import io as cio
from cnnx.callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint


def _assemble(header, data):
    hb = json.dumps(header).encode()
    return (
        cio._PREFIX.pack(
            cio.MAGIC, cio.FORMAT_VERSION, len(hb), len(data), zlib.crc32(hb), zlib.crc32(data)
        )
        + hb
        + data
    )


def _split(raw):
    _, _, hlen, _, _, _ = cio._PREFIX.unpack_from(raw)
    h0 = cio._PREFIX.size
    return json.loads(raw[h0 : h0 + hlen]), raw[h0 + hlen :]


def _model():
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, activation="relu"),
            cnnx.BatchNormalization(),
            cnnx.Flatten(),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(8, 8, 2),
    )
    m.compile(optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), metrics=["accuracy"])
    return m


def _data(n=32):
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((n, 8, 8, 2)).astype(np.float32),
        rng.integers(0, 3, n).astype(np.int64),
    )


# ---------------------------------------------------------------------------
# model files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["_Pool2D", "_AdaptivePool2D", "Layer", "ActivatedLinearMixin"])
def test_private_and_abstract_layer_classes_are_refused(tmp_path, cls):
    header = {
        "format": "cnnx-model",
        "version": 1,
        "model": {
            "class": "Sequential",
            "config": {"layers": [{"class": cls, "config": {}}], "input_shape": [4, 4, 1]},
        },
        "params": {"offset": 0, "shape": [1]},
        "buffers": [],
    }
    p = tmp_path / "m.cnnx"
    p.write_bytes(_assemble(header, bytes(4)))
    with pytest.raises(ValueError, match=f"^path: .*unknown layer class '{cls}'"):
        cnnx.load_model(p)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_negative_or_nan_running_variance_is_refused(tmp_path, bad):
    m = _model()
    m.layers[1].buffers["moving_var"][2] = bad
    m.save(tmp_path / "m.cnnx")
    with pytest.raises(ValueError, match="^path: .*moving_var.*negative or NaN"):
        cnnx.load_model(tmp_path / "m.cnnx")


def test_optimizer_state_that_is_not_numbers_is_named():
    with pytest.raises(ValueError, match="^state: optimizer state 'm' is not an array"):
        cnnx.optim.Adam().load_state_dict({"state": {"m": ["a", "b"]}})


# ---------------------------------------------------------------------------
# where a save writes
# ---------------------------------------------------------------------------


def test_save_onto_a_fifo_is_refused_and_leaves_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="^path: .*FIFO"):
        _model().save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_save_through_a_symlink_writes_its_target(tmp_path):
    target = tmp_path / "ckpt-1.cnnx"
    link = tmp_path / "latest.cnnx"
    m = _model()
    m.save(target)
    os.chmod(target, 0o640)
    os.symlink(target.name, link)
    m.layers[0].params["kernel"][...] += 1.0
    m.save(link)
    assert os.path.islink(link) and os.readlink(link) == target.name
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    np.testing.assert_array_equal(cnnx.load_model(target).store.params, m.store.params)
    dangling = tmp_path / "new-link.cnnx"
    os.symlink("made-by-save.cnnx", dangling)
    m.save(dangling)
    assert os.path.islink(dangling) and (tmp_path / "made-by-save.cnnx").is_file()


# ---------------------------------------------------------------------------
# other threads during training
# ---------------------------------------------------------------------------


class _Pause(cnnx.callbacks.Callback):
    def __init__(self):
        self.inside, self.release = threading.Event(), threading.Event()

    def on_epoch_begin(self, epoch):
        self.inside.set()
        assert self.release.wait(60)


def test_save_compile_and_add_wait_for_no_one_while_another_thread_trains(tmp_path):
    model = _model()
    x, y = _data()
    pause = _Pause()
    t = threading.Thread(
        target=model.fit, args=(x, y), kwargs=dict(epochs=1, verbose=0, callbacks=[pause])
    )
    t.start()
    try:
        assert pause.inside.wait(60)
        for call in (
            lambda: model.save(tmp_path / "m.cnnx"),
            lambda: model.compile(optimizer="adam"),
            lambda: model.add(cnnx.Dense(2)),
        ):
            with pytest.raises(RuntimeError, match="being trained in another thread"):
                call()
        assert not (tmp_path / "m.cnnx").exists() and len(model.layers) == 4
        assert isinstance(model.optimizer, cnnx.optim.SGD)
    finally:
        pause.release.set()
        t.join(60)
    # from the training thread itself (a checkpoint callback) saving works
    ck = ModelCheckpoint(str(tmp_path / "ep{epoch}.cnnx"), save_best_only=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ck])
    assert len(ck.saved) == 2
    model.save(tmp_path / "after.cnnx")
    model.compile(optimizer="adam")


# ---------------------------------------------------------------------------
# callback arguments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: EarlyStopping(min_delta=float("nan")), "^min_delta: "),
        (lambda: EarlyStopping(min_delta=float("inf")), "^min_delta: "),
        (lambda: LearningRateScheduler("cosine", epochs=3, min_lr=float("nan")), "^min_lr: "),
        (lambda: LearningRateScheduler("cosine", epochs=3, min_lr=-0.1), "^min_lr: "),
        (lambda: LearningRateScheduler("step", step_size=2, gamma=float("inf")), "^gamma: "),
        (lambda: ModelCheckpoint("ck-{epoch"), "^filepath: "),
        (lambda: ModelCheckpoint("ck-{}.cnnx"), "^filepath: "),
        (lambda: ModelCheckpoint("ck-{0}.cnnx"), "^filepath: "),
    ],
)
def test_bad_callback_arguments_fail_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_checkpoint_pattern_with_an_unknown_field_is_named(tmp_path):
    model = _model()
    x, y = _data(8)
    ck = ModelCheckpoint(str(tmp_path / "ck-{vall_loss:.2f}.cnnx"), save_best_only=False)
    with pytest.raises(ValueError, match="^filepath: cannot fill .*vall_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ck])


# ---------------------------------------------------------------------------
# ONNX nodes that cnnx layers refuse
# ---------------------------------------------------------------------------


def test_onnx_node_refused_by_a_layer_is_named():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    pool = helper.make_node("MaxPool", ["x"], ["y"], name="huge_pool", kernel_shape=[2**20, 2**20])
    m = helper.make_model(
        helper.make_graph([pool], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="huge_pool.*(pool_size|window)"):
        cnnx.onnx.from_onnx(m)
    del onnx


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------


def _run(*args, **kw):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run(
        [sys.executable, "-m", "cnnx", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        **kw,
    )


def test_train_out_fifo_is_a_usage_error(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    r = _run("train", "--dataset", "shapes", "--quiet", "--out", tmp_path / "pipe")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not a file" in r.stderr.strip().splitlines()[-1]
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_edges_npy_whose_header_promises_a_huge_array(tmp_path):
    p = tmp_path / "huge.npy"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (200000, 200000), }"
    header += " " * (118 - len(header)) + "\n"
    p.write_bytes(b"\x93NUMPY\x01\x00" + bytes([len(header), 0]) + header.encode() + bytes(64))
    t = time.time()
    r = _run("edges", p, "--out", tmp_path / "e.png")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("cnnx edges: error: ")
    assert time.time() - t < 60


def test_ctrl_c_during_training_is_one_line():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    # (Python ignores SIGINT when it starts with SIGINT ignored, as under a
    # background job: install the usual handler, as an interactive shell's child has)
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from cnnx.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "train", "--dataset", "shapes", "--epochs", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.time() + 120
        line = ""
        while time.time() < deadline and "Total params" not in line:
            line = proc.stdout.readline()
        time.sleep(1.0)  # inside fit
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "cnnx train: interrupted"


# ---------------------------------------------------------------------------
# a batch whose activations could never be allocated
# ---------------------------------------------------------------------------


def test_batch_too_big_to_allocate_is_named():
    """NumPy said only "array is too big" (batch x per-example activation >= 2**63 bytes)."""
    model = cnnx.Sequential(
        [cnnx.Conv2D(1, 1, padding=2**29), cnnx.GlobalAvgPool2D(), cnnx.Dense(2)],
        input_shape=(1, 1, 1),
    )
    model.compile(optimizer="sgd")
    x = np.ones((8, 1, 1, 1), np.float32)
    y = np.zeros(8, np.int64)
    for call in (
        lambda: model.predict(x),
        lambda: model.forward(x),
        lambda: model.fit(x, y, verbose=0, batch_size=8),
        lambda: model.train_on_batch(x, y),
        lambda: model.evaluate(x, y),
    ):
        with pytest.raises(ValueError, match="^x: a batch of 8 examples needs activations"):
            call()
    wide = cnnx.Sequential([cnnx.Conv2D(1, 1, padding=2**29)], input_shape=(1, 1, 1))
    with pytest.raises(ValueError, match="^x: the outputs for 64 examples would hold"):
        wide.predict(np.ones((64, 1, 1, 1), np.float32), batch_size=4)
    with pytest.raises(ValueError, match="^x: a batch of 16 gives outputs"):
        cnnx.functional.conv2d(
            np.ones((16, 1, 1, 1), np.float32), np.ones((1, 1, 1, 1), np.float32), padding=2**29
        )
