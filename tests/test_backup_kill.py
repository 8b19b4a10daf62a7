"""BackupAndRestore after a real ``kill -9``: a child process trains with the
callback and is SIGKILLed (in the middle of an epoch, while a backup is being
written, or at fixed times); the same script started again must end with
exactly the weights of an uninterrupted run.

The run shuffles with the package generator, uses dropout (masks drawn from
it), Adam, and two callbacks that change the rate or keep counters, so
every piece of saved state matters. One thread everywhere: the reference and
the resumed runs compute identically.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

CHILD = r"""
import sys, time
import numpy as np
import cnnx
from cnnx.callbacks import BackupAndRestore, Callback, EarlyStopping, ReduceLROnPlateau

backup_dir, out, signal_at = sys.argv[1], sys.argv[2], sys.argv[3]
cnnx.set_num_threads(1)
cnnx.set_seed(0)
rng = np.random.default_rng(0)
x = rng.standard_normal((192, 8, 8, 3)).astype(np.float32)
y = rng.integers(0, 4, 192)
model = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(2048, activation="relu"), cnnx.Dropout(0.3),
                         cnnx.Dense(4, activation="softmax")], input_shape=(8, 8, 3))
model.compile(cnnx.optim.Adam(lr=0.003), "cross_entropy", metrics=["accuracy"])
cnnx.set_seed(1)   # the state a fresh process starts from; a resume restores its own


class Pace(Callback):
    # slows the steps so that timed kills land anywhere; tells the parent where it is
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.02)
        if f"{self.epoch}:{batch}" == signal_at:
            print("READY", flush=True)
            time.sleep(60)


backup = BackupAndRestore(backup_dir)
print("started", flush=True)
model.fit(x, y, epochs=5, batch_size=32,
          callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=0.05),
                     EarlyStopping(monitor="loss", patience=10), backup, Pace()], verbose=0)
np.save(out, model.store.params)
print("restored", backup.restored_epoch, flush=True)
"""


def _env():
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1"
    )


def _start(backup_dir, out, signal_at="-"):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(backup_dir), str(out), signal_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _finish(backup_dir, out):
    p = _start(backup_dir, out)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr[-2000:]
    return np.load(out), stdout


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    params, stdout = _finish(d / "backup", d / "ref.npy")
    assert "restored None" in stdout
    return params


def _kill(p):
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    p.stderr.close()
    assert p.returncode == -signal.SIGKILL


def test_kill_in_the_middle_of_an_epoch_resumes_exactly(tmp_path, reference):
    backup = tmp_path / "backup"
    p = _start(backup, tmp_path / "out.npy", signal_at="2:3")
    try:
        assert p.stdout.readline().strip() == "started"
        assert p.stdout.readline().strip() == "READY"  # epochs 0, 1 done; epoch 2 half
    finally:
        _kill(p)
    params, stdout = _finish(backup, tmp_path / "out.npy")
    assert "restored 1" in stdout
    np.testing.assert_array_equal(params, reference)
    assert os.listdir(backup) == []  # deleted once training completed


def test_kill_while_a_backup_is_being_written(tmp_path, reference):
    """SIGKILL as soon as the temporary file of the second backup appears
    (mid-write): the first backup stays valid and the resumed run is exact."""
    for attempt in range(3):
        backup = tmp_path / f"backup{attempt}"
        os.makedirs(backup)
        p = _start(backup, tmp_path / "out.npy")
        try:
            assert p.stdout.readline().strip() == "started"
            t0 = time.monotonic()
            seen = set()
            while time.monotonic() - t0 < 60 and p.poll() is None and len(seen) < 2:
                seen.update(glob.glob(str(backup / ".cnnx-backup-*.tmp")))
        finally:
            if p.poll() is None:
                _kill(p)
        if len(seen) == 2:
            break
    else:
        pytest.skip("never caught the second backup in the middle of its write")
    params, stdout = _finish(backup, tmp_path / "out.npy")
    assert "restored 0" in stdout
    np.testing.assert_array_equal(params, reference)


@pytest.mark.parametrize("delay", [0.25, 0.5, 0.8])
def test_kill_at_a_fixed_time_resumes_exactly(tmp_path, reference, delay):
    backup = tmp_path / "backup"
    p = _start(backup, tmp_path / "out.npy")
    try:
        assert p.stdout.readline().strip() == "started"
        time.sleep(delay)
    finally:
        if p.poll() is None:
            _kill(p)
    params, _ = _finish(backup, tmp_path / "out.npy")
    np.testing.assert_array_equal(params, reference)
