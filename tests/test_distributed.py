"""cnnx.distributed: data-parallel training on MPI.

Multi-rank tests launch ``mpirun -np 2`` in a subprocess (with a timeout)
on small worker scripts written to a temporary directory; they are skipped
when ``mpirun`` or ``mpi4py`` is missing. The references are independent of
the code under test: a single process training on the same global batches,
NumPy set algebra for the shards, a checkpoint loaded in this process.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnnx
from cnnx.distributed import shard_indices, shard_range

HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
MPIRUN = shutil.which("mpirun") or shutil.which("mpiexec")
# CI sets CNNX_REQUIRE_MPI=1: there a missing MPI is a failure, not a skip
REQUIRE = os.environ.get("CNNX_REQUIRE_MPI", "") not in ("", "0")
if REQUIRE and not (HAVE_MPI4PY and MPIRUN):
    raise RuntimeError(
        "CNNX_REQUIRE_MPI is set but mpi4py or mpirun is missing (apt-get install "
        "openmpi-bin libopenmpi-dev; pip install mpi4py)"
    )
needs_mpi4py = pytest.mark.skipif(not HAVE_MPI4PY, reason="mpi4py is not installed")
needs_mpirun = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIRUN), reason="mpirun and mpi4py are needed for multi-rank tests"
)

TIMEOUT = 90  # seconds per mpirun job: a hang fails the test instead of CI


def _env(threads="1"):
    """The environment of a child process: finds this cnnx, 1 thread per rank
    (threads=None: OMP_NUM_THREADS unset), Open MPI allowed to run as root."""
    env = dict(os.environ)
    roots = [os.path.dirname(p) for p in cnnx.__path__]
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(roots + ([old] if old else []))
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def _mpirun_flags():
    out = (
        subprocess.run([MPIRUN, "--version"], capture_output=True, text=True, timeout=30).stdout
        + ""
    )
    if "Open MPI" in out or "OpenRTE" in out:
        return ["--oversubscribe"]  # fewer cores than ranks (CI) is fine
    return []


def _run(cmd, timeout=TIMEOUT, cwd=None, threads="1"):
    """Run cmd in its own process group; on timeout kill that group and fail."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(threads),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s (a hang):\n{cmd}\n{out[-3000:]}\n{err[-3000:]}")
    return proc.returncode, out, err


def _mpirun(script, tmp_path, np_=2, args=(), timeout=TIMEOUT, threads="1"):
    path = tmp_path / "worker.py"
    path.write_text(textwrap.dedent(script))
    cmd = (
        [MPIRUN, "-np", str(np_)]
        + _mpirun_flags()
        + [sys.executable, str(path)]
        + [str(a) for a in args]
    )
    return _run(cmd, timeout, cwd=str(tmp_path), threads=threads)


# ---------------------------------------------------------------------------
# sharding (pure functions: no MPI needed)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,size", [(12, 2), (12, 3), (64, 4), (7, 7)])
def test_shards_are_disjoint_and_cover(n, size):
    order = np.random.default_rng(n).permutation(n)
    shards = [shard_indices(order, r, size) for r in range(size)]
    assert all(len(s) == n // size for s in shards)  # equal step counts
    allidx = np.concatenate(shards)
    assert len(np.unique(allidx)) == len(allidx)  # disjoint
    assert set(allidx.tolist()) == set(range(n))  # cover


@pytest.mark.parametrize("n,size", [(10, 4), (13, 2), (101, 8)])
def test_shard_remainder_rule(n, size):
    """n % size samples sit out: the last ones of the epoch's order."""
    order = np.random.default_rng(1).permutation(n)
    shards = [shard_indices(order, r, size) for r in range(size)]
    allidx = np.concatenate(shards)
    assert all(len(s) == n // size for s in shards)
    assert len(np.unique(allidx)) == len(allidx) == n - n % size
    left_out = set(range(n)) - set(allidx.tolist())
    assert left_out == set(order[n - n % size :].tolist())


def test_shards_interleave_into_the_global_batches():
    """Batch j of b on every rank together = batch j of size*b of the order."""
    n, size, b = 48, 3, 4
    order = np.random.default_rng(5).permutation(n)
    shards = [shard_indices(order, r, size) for r in range(size)]
    for j in range(n // (size * b)):
        local = np.concatenate([s[j * b : (j + 1) * b] for s in shards])
        assert sorted(local) == sorted(order[j * size * b : (j + 1) * size * b])


def test_shard_range_covers_contiguously():
    for n, size in [(10, 3), (2, 4), (256, 2), (0, 2)]:
        ranges = [shard_range(n, r, size) for r in range(size)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        sizes = [b - a for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1


def test_shard_argument_errors():
    with pytest.raises(ValueError, match="^x: 3 training samples"):
        shard_indices(np.arange(3), 0, 4)
    with pytest.raises(ValueError, match="^rank"):
        shard_indices(np.arange(8), 2, 2)
    with pytest.raises(ValueError, match="^rank"):
        shard_range(8, -1, 2)


# ---------------------------------------------------------------------------
# one process: without mpi4py, and without a launcher
# ---------------------------------------------------------------------------


def test_without_mpi4py_cnnx_works_and_distributed_says_how_to_install(tmp_path):
    script = tmp_path / "nompi.py"
    script.write_text(
        textwrap.dedent("""
        import sys
        sys.modules["mpi4py"] = None          # as if mpi4py were not installed
        import numpy as np, cnnx
        import cnnx.distributed as dist       # importing is fine
        m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3, activation="softmax")],
                            input_shape=(4, 4, 1))
        m.compile("sgd")
        x = np.ones((8, 4, 4, 1), np.float32); y = np.zeros(8, np.int64)
        m.fit(x, y, verbose=0)                 # training works
        assert dist.is_available() is False and dist.is_initialized() is False
        for call in (dist.init, dist.rank, lambda: m.fit(x, y, verbose=0, distributed=True)):
            try:
                call()
            except ImportError as e:
                msg = str(e)
                assert "pip install cnnx[mpi]" in msg and "MPI library" in msg, msg
            else:
                raise SystemExit("no ImportError")
        print("OK")
    """)
    )
    code, out, err = _run([sys.executable, str(script)], timeout=120)
    assert code == 0, out + err
    assert "OK" in out


@needs_mpi4py
def test_single_process_without_launcher_is_size_one(tmp_path):
    """Plain python: size 1, and fit(distributed=True) trains exactly like fit()."""
    script = tmp_path / "single.py"
    script.write_text(
        textwrap.dedent("""
        import numpy as np, cnnx, cnnx.distributed as dist
        assert dist.init() == (0, 1) and dist.rank() == 0 and dist.size() == 1
        dist.barrier()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((40, 6, 6, 2)).astype(np.float32); y = rng.integers(0, 3, 40)
        res = []
        for distributed in (False, True):
            cnnx.set_seed(1)
            m = cnnx.Sequential([cnnx.Conv2D(3, 3, activation="relu"), cnnx.Flatten(),
                                 cnnx.Dense(3, activation="softmax")], input_shape=(6, 6, 2))
            m.compile(cnnx.optim.SGD(lr=0.1, momentum=0.9))
            m.fit(x, y, epochs=2, batch_size=8, seed=4, verbose=0, distributed=distributed)
            res.append(m.store.params.copy())
        assert np.array_equal(res[0], res[1])
        print("OK")
    """)
    )
    code, out, err = _run([sys.executable, str(script)], timeout=120)
    assert code == 0, out + err
    assert "OK" in out


# ---------------------------------------------------------------------------
# two ranks
# ---------------------------------------------------------------------------

WORKER = """
import os, sys
import numpy as np
import cnnx
import cnnx.distributed as dist
from mpi4py import MPI

out_dir = sys.argv[1]
rank, size = dist.init()
assert size == 2, size
comm = MPI.COMM_WORLD


def net(seed):
    cnnx.set_seed(seed)
    return cnnx.Sequential([
        cnnx.Conv2D(4, 3, activation="relu"), cnnx.MaxPool2D(2),
        cnnx.Conv2D(6, 3, padding="same", activation="relu"), cnnx.Flatten(),
        cnnx.Dense(16, activation="relu"), cnnx.Dense(5, activation="softmax"),
    ], input_shape=(10, 10, 2))


def gathered(a):
    return comm.allgather(np.array(a, copy=True))


rng = np.random.default_rng(123)          # same data on every rank
B, STEPS = 16, 20
x = rng.standard_normal((B * STEPS, 10, 10, 2)).astype(np.float32)
y = rng.integers(0, 5, B * STEPS)

# --- broadcast: seeded differently, identical after the first step ----------
m = net(seed=100 + rank)
p0 = gathered(m.store.params)
assert not np.array_equal(p0[0], p0[1]), "ranks should start different here"
m.compile(cnnx.optim.Adam(lr=1e-3))
if rank == 1:
    m.optimizer.iterations = 7           # rank 0's state must win
m.fit(x[:B], y[:B], epochs=1, batch_size=B // 2, verbose=0, distributed=True)  # 1 step
ps = gathered(m.store.params)
assert np.array_equal(ps[0], ps[1]), "parameters differ after step 1"
for k in ("m", "v"):
    st = gathered(m.optimizer.state[k])
    assert np.array_equal(st[0], st[1]), k
assert comm.allgather(m.optimizer.iterations) == [1, 1]
print(f"rank {rank}: broadcast ok", flush=True)

# --- equivalence: 2 ranks x B/2 == 1 process x B after 20 SGD steps ---------
m = net(seed=7 + rank)                     # rank 0's init is broadcast
m.compile(cnnx.optim.SGD(lr=0.05, momentum=0.9), metrics=["accuracy"])
h = m.fit(x, y, epochs=1, batch_size=B // 2, seed=11, verbose=2, distributed=True)
assert h.params["steps"] == STEPS, h.params
dist_params = m.store.params.copy()
if rank == 0:
    ref = net(seed=7)
    ref.compile(cnnx.optim.SGD(lr=0.05, momentum=0.9), metrics=["accuracy"])
    href = ref.fit(x, y, epochs=1, batch_size=B, seed=11, verbose=0)
    assert ref.optimizer.iterations == STEPS
    rel = np.linalg.norm(dist_params - ref.store.params) / np.linalg.norm(ref.store.params)
    moved = np.linalg.norm(dist_params - net(seed=7).store.params)
    print(f"equivalence: relative difference {rel:.2e} (moved {moved:.3f})", flush=True)
    assert rel < 1e-5, rel
    assert moved > 1e-2
    # the logged loss is the mean over both ranks' samples = the 1-process mean
    assert abs(h.history["loss"][0] - href.history["loss"][0]) < 1e-4 * abs(href.history["loss"][0])
    assert h.history["accuracy"][0] == href.history["accuracy"][0]
ps = gathered(dist_params)
assert np.array_equal(ps[0], ps[1])

# --- sharding as fit does it: same seeded shuffle, disjoint, covering -------
order = np.random.default_rng(11).permutation(len(x))
mine = dist.shard_indices(order)
allidx = np.concatenate(comm.allgather(mine))
assert len(np.unique(allidx)) == len(x) and len(mine) == len(x) // 2

# --- BatchNormalization keeps local batch statistics (DDP's default) ---------
cnnx.set_seed(50 + rank)
bn = cnnx.Sequential([cnnx.Conv2D(3, 3), cnnx.BatchNormalization(momentum=0.99), cnnx.ReLU(),
                      cnnx.Flatten(), cnnx.Dense(5, activation="softmax")], input_shape=(10, 10, 2))
bn.compile(cnnx.optim.SGD(lr=0.05))
dist.broadcast_parameters(bn)
mine = dist.shard_indices(np.arange(B))               # fit's shard with shuffle=False
local_mean = bn.layers[0].forward(x[mine]).mean(axis=(0, 1, 2))
bn.fit(x[:B], y[:B], epochs=1, batch_size=B // 2, shuffle=False, verbose=0, distributed=True)
mm = bn.layers[1].buffers["moving_mean"]
np.testing.assert_allclose(mm, 0.01 * local_mean, rtol=1e-4, atol=1e-7)  # this rank's shard
assert not np.allclose(*gathered(mm))
ps = gathered(bn.store.params)
assert np.array_equal(ps[0], ps[1])

# --- a hand-written loop: DistributedOptimizer = 1 process on the global batch
def plain(seed):
    cnnx.set_seed(seed)
    return cnnx.Sequential([cnnx.Conv2D(3, 3, activation="relu"), cnnx.Flatten(),
                            cnnx.Dense(5)], input_shape=(10, 10, 2))


def train(model, opt, xs, ts):      # MSE by hand: forward, backward, step
    model.zero_grad()
    out = model.forward(xs, training=True)
    model.backward(2 * (out - ts) / out.size)
    opt.step()


t = rng.standard_normal((len(x), 5)).astype(np.float32)
hand = plain(3 + rank)
dist.broadcast_parameters(hand)
opt = dist.DistributedOptimizer(cnnx.optim.SGD(lr=0.1))
opt.bind(hand.store)
for j in range(5):
    mine = dist.shard_indices(np.arange(j * B, (j + 1) * B))
    train(hand, opt, x[mine], t[mine])
if rank == 0:
    ref = plain(3)
    ropt = cnnx.optim.SGD(lr=0.1)
    ropt.bind(ref.store)
    for j in range(5):
        train(ref, ropt, x[j * B:(j + 1) * B], t[j * B:(j + 1) * B])
    rel = np.linalg.norm(hand.store.params - ref.store.params) / np.linalg.norm(ref.store.params)
    assert rel < 1e-5, rel
    assert not np.allclose(ref.store.params, plain(3).store.params)

# --- metrics and sharded evaluation; checkpoint on rank 0 only --------------
xv = rng.standard_normal((37, 10, 10, 2)).astype(np.float32)   # odd: unequal eval shards
yv = rng.integers(0, 5, 37)
ckpt = os.path.join(out_dir, "ckpt-{epoch}.cnnx")
cb = cnnx.callbacks.ModelCheckpoint(ckpt)
h = m.fit(x, y, epochs=2, batch_size=B // 2, validation_data=(xv, yv), callbacks=[cb],
          verbose=2, distributed=True)
logs = {k: v for k, v in h.history.items() if k != "time"}   # time is per rank
assert comm.allgather(logs) == [logs] * 2
full = m.evaluate(xv, yv)                  # this rank alone, the whole set
assert abs(h.history["val_loss"][-1] - full["loss"]) < 1e-5 * max(1.0, abs(full["loss"]))
assert abs(h.history["val_accuracy"][-1] - full["accuracy"]) < 1e-9
ev = dist.evaluate(m, xv, yv)
assert abs(ev["loss"] - full["loss"]) < 1e-5 * max(1.0, abs(full["loss"]))
assert cb.saved == ([ckpt.format(epoch=1), ckpt.format(epoch=2)] if rank == 0 else []), cb.saved
dist.barrier()
np.save(os.path.join(out_dir, f"pred-{rank}.npy"), m.predict(xv))
np.save(os.path.join(out_dir, "xv.npy"), xv) if rank == 0 else None

# --- ranks with different data sizes: a clear error on every rank, no hang ---
try:
    m.fit(x[:B * (2 + rank)], y[:B * (2 + rank)], epochs=1, batch_size=B // 2, verbose=0,
          distributed=True)
except ValueError as e:
    assert str(e).startswith("x: ranks hold different numbers"), e
else:
    raise AssertionError("no ValueError")
print(f"rank {rank}: done", flush=True)
"""


@needs_mpirun
def test_two_ranks_broadcast_equivalence_metrics_and_checkpoint(tmp_path):
    code, out, err = _mpirun(WORKER, tmp_path, args=[tmp_path])
    assert code == 0, out + err
    assert "rank 0: broadcast ok" in out and "rank 1: broadcast ok" in out
    assert "rank 0: done" in out and "rank 1: done" in out
    # only rank 0 prints the epoch lines (verbose=2): 1 + 2 epochs
    assert out.count("Epoch 1/1 ") == 1 and out.count("Epoch 2/2 ") == 1, out
    # the checkpoint of the last epoch loads in this (single) process and predicts the same
    files = sorted(p.name for p in tmp_path.glob("*.cnnx"))
    assert files == ["ckpt-1.cnnx", "ckpt-2.cnnx"], files
    model = cnnx.load_model(str(tmp_path / "ckpt-2.cnnx"))
    xv = np.load(tmp_path / "xv.npy")
    pred = model.predict(xv)
    for r in (0, 1):
        np.testing.assert_allclose(pred, np.load(tmp_path / f"pred-{r}.npy"), rtol=0, atol=1e-6)


RAISER = """
import os, sys, time
import numpy as np
import cnnx, cnnx.distributed as dist

rank, size = dist.init()
# OMP_NUM_THREADS is unset here: ranks on this machine x threads stay within the cores
assert dist.local_size() == 2
assert 2 * cnnx.get_num_threads() <= max(os.cpu_count(), 2), cnnx.get_num_threads()
m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3, activation="softmax")], input_shape=(4, 4, 1))
m.compile("sgd")
x = np.ones((64, 4, 4, 1), np.float32); y = np.zeros(64, np.int64)
m.fit(x, y, epochs=1, batch_size=8, verbose=0, distributed=True)
if rank == 1:
    raise RuntimeError("deliberate failure on rank 1")
# rank 0 goes on into the next collective, which rank 1 never joins
m.fit(x, y, epochs=50, batch_size=8, verbose=0, distributed=True)
dist.barrier()
print("rank 0 should not get here", flush=True)
"""


@needs_mpirun
def test_a_rank_that_raises_ends_the_job(tmp_path):
    code, out, err = _mpirun(RAISER, tmp_path, timeout=60, threads=None)
    assert code != 0, out + err
    assert "deliberate failure on rank 1" in err, out + err
    assert "RuntimeError" in err
    assert "should not get here" not in out


@needs_mpirun
def test_cli_train_distributed(tmp_path):
    path = tmp_path / "m.cnnx"
    cmd = (
        [MPIRUN, "-np", "2"]
        + _mpirun_flags()
        + [
            sys.executable,
            "-m",
            "cnnx",
            "train",
            "--distributed",
            "--dataset",
            "shapes",
            "--limit",
            "96",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--quiet",
            "--out",
            str(path),
        ]
    )
    code, out, err = _run(cmd, cwd=str(tmp_path))
    assert code == 0, out + err
    assert out.count("final test accuracy") == 1, out  # rank 0 only
    assert out.count("saved: ") == 1
    model = cnnx.load_model(str(path))
    assert model.predict(np.zeros((2, 32, 32, 1), np.float32)).shape == (2, 4)
