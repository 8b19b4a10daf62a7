"""Data-parallel training on MPI, the Horovod way.

Every rank (one process each, started by ``mpirun -np N``) holds a full copy
of the model and of the data set. Each step, every rank computes the
gradient of its own slice of the global batch, the ranks average their
gradients with one in-place ``MPI_Allreduce`` over the model's single flat
gradient buffer (``model.store.grads``), and then every rank applies the
same optimiser update, so the replicas stay identical::

    # train.py, run with:  mpirun -np 2 python train.py
    import cnnx
    model = ...; model.compile(...)
    model.fit(x, y, epochs=5, batch_size=64, distributed=True)   # 64 per rank

What ``fit(..., distributed=True)`` does (see :class:`FitContext`):

- **start identical**: the parameters, the BatchNorm running statistics and
  the optimiser state (buffers, step count, learning rate) are broadcast from
  rank 0, so ranks seeded differently start from rank 0's model;
- **shard every epoch**: all ranks draw the same shuffle (its seed is
  broadcast from rank 0), cut it to a multiple of the number of ranks and
  take every ``size``-th sample from their rank on (:func:`shard_indices`):
  shards are disjoint and equal, so every rank runs the same number of
  steps. *Remainder rule*: the last ``n % size`` samples of each epoch's
  order sit that epoch out (a different few each epoch when shuffling;
  always fewer than ``size``). Global step ``j`` then uses exactly the
  samples a single process with batch ``size * batch_size`` would use;
- **average gradients**: after each backward pass, one in-place
  ``Allreduce`` (sum, then a scale by ``1/size``) of the flat float32
  gradient buffer: one message per step, no per-layer messages;
- **BatchNormalization** keeps local batch statistics (PyTorch DDP's
  default); its running averages are rank 0's in a saved model;
- **metrics**: the epoch's loss and accuracy are averaged over all ranks'
  samples; validation data is split into contiguous shards, evaluated on
  each rank and reduced, so the numbers are those of the whole set;
- **only rank 0** shows progress bars, prints, and runs ``ModelCheckpoint``
  callbacks (every rank holds the same weights).

For a loop written by hand use :func:`broadcast_parameters`,
:func:`broadcast_optimizer_state`, :func:`allreduce_gradients` (or
:class:`DistributedOptimizer`) and :func:`shard_indices`.

Errors: after :func:`init` in a job of more than one rank, an exception that
nobody catches prints its traceback (prefixed with the rank) and calls
``MPI_Abort``, so the whole job ends with a non-zero exit instead of the
other ranks waiting forever in the next collective.

Without an MPI launcher (plain ``python train.py``) the size is 1 and
everything runs as in one process. ``mpi4py`` is imported only when this
module is first used; without it the rest of cnnx works and the calls here
raise ``ImportError`` saying what to install.

Threads: each rank uses ``OMP_NUM_THREADS`` threads (Open MPI also pins each
rank to a core by default when there are at most 2 ranks, which then means
1 thread per rank). Keep ranks per machine x threads per rank <= cores.
"""

import os
import sys

import numpy as np

__all__ = [
    "init",
    "is_initialized",
    "is_available",
    "rank",
    "size",
    "local_rank",
    "local_size",
    "barrier",
    "broadcast",
    "broadcast_object",
    "broadcast_parameters",
    "broadcast_optimizer_state",
    "allreduce",
    "allreduce_gradients",
    "shard_indices",
    "shard_range",
    "evaluate",
    "DistributedOptimizer",
    "FitContext",
    "INSTALL_HINT",
]

INSTALL_HINT = (
    "cnnx.distributed needs mpi4py and an MPI library: `pip install cnnx[mpi]` (or `pip install "
    "mpi4py`) plus an MPI library, e.g. `apt-get install openmpi-bin libopenmpi-dev` (Debian/"
    "Ubuntu) or `pip install mpich`; then run your script with `mpirun -np N python script.py`"
)

_MPI = None  # the mpi4py.MPI module once imported
_comm = None  # COMM_WORLD (or the communicator given to init)
_local = None  # ranks on this machine (MPI_COMM_TYPE_SHARED)
_hook_installed = False


def _import_mpi():
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI  # initialises MPI (MPI_Init_thread) on first import
        except (ImportError, OSError, RuntimeError) as e:  # no mpi4py, or no libmpi for it
            raise ImportError(f"{INSTALL_HINT} (import failed: {e})") from None
        _MPI = MPI
    return _MPI


def is_available():
    """True when mpi4py can be imported (without initialising anything else here)."""
    if _MPI is not None:
        return True
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def init(comm=None, abort_on_exception=True):
    """Initialise MPI (once; later calls do nothing) and return ``(rank, size)``.

    ``comm``: an mpi4py communicator to use instead of ``COMM_WORLD``.
    ``abort_on_exception``: in a job of more than one rank, make an uncaught
    exception on any rank abort the whole job (``MPI_Abort``) after printing
    its traceback, rather than leave the other ranks blocked.

    Raises ``ImportError`` (how to install) when mpi4py is missing.
    """
    global _comm, _local
    if _comm is None:
        MPI = _import_mpi()
        if not MPI.Is_initialized():  # mpi4py.rc.initialize = False was set by the user
            MPI.Init_thread()
        _comm = MPI.COMM_WORLD if comm is None else comm
        try:
            _local = _comm.Split_type(MPI.COMM_TYPE_SHARED, _comm.Get_rank())
        except Exception:  # pragma: no cover - very old MPI
            _local = None
        _thread_budget()
    if abort_on_exception and _comm.Get_size() > 1:
        _install_excepthook()
    return _comm.Get_rank(), _comm.Get_size()


def _thread_budget():
    """Without OMP_NUM_THREADS, keep ranks on this machine x threads <= cores
    (as torchrun does): N ranks that each default to every core would fight
    over them. Open MPI already pins each rank to one core when it starts
    at most 2, which makes the default 1 thread there."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    ranks_here = _local.Get_size() if _local is not None else 1
    cores = os.cpu_count() or 1
    from ._system import get_num_threads, set_num_threads

    if ranks_here > 1 and ranks_here * get_num_threads() > cores:
        set_num_threads(max(1, cores // ranks_here))


def is_initialized():
    """True once :func:`init` ran (any function here calls it when needed)."""
    return _comm is not None


def _world():
    if _comm is None:
        init()
    return _comm


def rank():
    """This process's rank, 0 .. size()-1 (0 without an MPI launcher)."""
    return _world().Get_rank()


def size():
    """Number of ranks in the job (1 without an MPI launcher)."""
    return _world().Get_size()


def local_rank():
    """Rank among the processes on this machine."""
    _world()
    return _local.Get_rank() if _local is not None else 0


def local_size():
    """Number of ranks on this machine (for the thread budget: local_size x threads <= cores)."""
    _world()
    return _local.Get_size() if _local is not None else 1


def barrier():
    """Wait until every rank got here."""
    _world().Barrier()


def _install_excepthook():
    global _hook_installed
    if _hook_installed:
        return
    previous = sys.excepthook
    comm = _comm

    def hook(etype, value, tb):
        try:
            sys.stdout.flush()
            sys.stderr.write(
                f"cnnx.distributed: rank {comm.Get_rank()} of {comm.Get_size()} "
                f"raised {etype.__name__}; aborting the whole job\n"
            )
            previous(etype, value, tb)
            sys.stderr.flush()
        finally:
            comm.Abort(1)

    sys.excepthook = hook
    _hook_installed = True


# ---------------------------------------------------------------------------
# collectives on NumPy buffers
# ---------------------------------------------------------------------------


def _check_buffer(buf, name):
    if not isinstance(buf, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(buf).__name__}")
    if not buf.flags.c_contiguous or not buf.flags.writeable:
        raise ValueError(
            f"{name}: expected a writeable C-contiguous array (it is updated in place)"
        )
    return buf


def broadcast(buf, root=0):
    """Overwrite ``buf`` (in place, a contiguous NumPy array) with rank ``root``'s values."""
    comm = _world()
    _check_buffer(buf, "buf")
    if comm.Get_size() > 1 and buf.size:
        comm.Bcast(buf, root=root)
    return buf


def broadcast_object(obj, root=0):
    """Rank ``root``'s ``obj`` (any picklable value) on every rank."""
    comm = _world()
    if comm.Get_size() == 1:
        return obj
    return comm.bcast(obj, root=root)


def allreduce(buf, average=True):
    """Sum (or average) ``buf`` over all ranks, in place; returns ``buf``."""
    comm = _world()
    _check_buffer(buf, "buf")
    n = comm.Get_size()
    if n > 1 and buf.size:
        comm.Allreduce(_MPI.IN_PLACE, buf, op=_MPI.SUM)
        if average:
            np.multiply(buf, np.asarray(1.0 / n, buf.dtype), out=buf)
    return buf


def _store(model):
    store = getattr(model, "store", None)
    if store is None:
        raise ValueError("model: not built yet (give input_shape= or call build first)")
    return store


def broadcast_parameters(model, root=0):
    """Give every rank rank ``root``'s parameters and layer buffers (BatchNorm statistics).

    One ``Bcast`` of the flat parameter buffer, plus one per layer buffer.
    """
    from .layers.base import walk

    broadcast(_store(model).params, root)
    for layer, _ in walk(model.layers):
        for buf in layer.buffers.values():
            broadcast(buf, root)
    return model


def broadcast_optimizer_state(optimizer, root=0):
    """Give every rank rank ``root``'s optimiser state: step count, learning
    rate and the flat state buffers (momentum, Adam's moments)."""
    if optimizer is None:
        return None
    comm = _world()
    if comm.Get_size() == 1:
        return optimizer
    meta = broadcast_object(
        {
            "iterations": optimizer.iterations,
            "lr": optimizer.lr,
            "initial_lr": getattr(optimizer, "initial_lr", None),
            "names": sorted(optimizer.state),
        },
        root,
    )
    if meta["names"] != sorted(optimizer.state):
        raise ValueError(
            f"optimizer: rank {comm.Get_rank()} has state {sorted(optimizer.state)}, "
            f"rank {root} has {meta['names']} (compile the same optimiser everywhere)"
        )
    optimizer.iterations = meta["iterations"]
    if getattr(optimizer, "schedule", None) is None:  # a schedule follows the step count
        optimizer.lr = meta["lr"]
    optimizer.initial_lr = meta["initial_lr"]
    for name in meta["names"]:
        broadcast(optimizer.state[name], root)
    return optimizer


def allreduce_gradients(model, average=True):
    """Average (or sum) the model's gradients over all ranks: one in-place
    ``Allreduce`` over the flat gradient buffer ``model.store.grads``.

    Call it after the backward pass and before ``optimizer.step()``.
    """
    return allreduce(_store(model).grads, average)


class DistributedOptimizer:
    """Wrap an optimiser so that ``step()`` first averages the gradients over
    all ranks (Horovod's ``DistributedOptimizer``), for hand-written loops::

        opt = cnnx.distributed.DistributedOptimizer(cnnx.optim.SGD(lr=0.1))
        opt.bind(model.store)
        ...; model.backward(dy); opt.step(); model.zero_grad()

    Every other attribute is the wrapped optimiser's.
    """

    def __init__(self, optimizer):
        self.__dict__["optimizer"] = optimizer

    def step(self):
        store = self.optimizer.store
        if store is None:
            self.optimizer._check_bound()
        allreduce(store.grads, True)
        self.optimizer.step()

    def __getattr__(self, name):
        return getattr(self.__dict__["optimizer"], name)

    def __setattr__(self, name, value):
        setattr(self.__dict__["optimizer"], name, value)


# ---------------------------------------------------------------------------
# sharding
# ---------------------------------------------------------------------------


def shard_indices(order, rank_=None, size_=None):
    """This rank's training shard of one epoch's sample ``order``.

    ``order`` (a permutation, or ``arange(n)``) is cut to a multiple of
    ``size`` (its last ``n % size`` entries sit this epoch out) and rank
    ``r`` takes ``order[r::size]``. The shards are disjoint, of equal
    length ``n // size``, and together cover all but those few samples.
    Because they interleave, the ``j``-th batch of ``b`` on every rank
    together hold exactly the ``j``-th batch of ``size * b`` of ``order``:
    the same global batches a single process would train on.
    """
    r = rank() if rank_ is None else int(rank_)
    n_ranks = size() if size_ is None else int(size_)
    if n_ranks < 1 or not 0 <= r < n_ranks:
        raise ValueError(f"rank: expected 0 <= rank < size, got rank {r}, size {n_ranks}")
    order = np.asarray(order)
    n = order.shape[0]
    if n < n_ranks:
        raise ValueError(
            f"x: {n} training samples cannot be shared among {n_ranks} ranks "
            "(each rank needs at least one)"
        )
    used = n - n % n_ranks
    return order[r:used:n_ranks]


def shard_range(n, rank_=None, size_=None):
    """``(start, stop)`` of this rank's contiguous block of ``n`` items
    (sizes differ by at most 1; used to shard evaluation, which needs no
    equal step counts)."""
    r = rank() if rank_ is None else int(rank_)
    n_ranks = size() if size_ is None else int(size_)
    if n_ranks < 1 or not 0 <= r < n_ranks:
        raise ValueError(f"rank: expected 0 <= rank < size, got rank {r}, size {n_ranks}")
    base, extra = divmod(int(n), n_ranks)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def evaluate(model, x, y, batch_size=256, sample_weight=None):
    """``model.evaluate`` over the whole ``(x, y)``, each rank doing its
    contiguous share; returns the same dict on every rank."""
    model._require_compiled()
    xs = model.check_inputs(x)
    ys = model.check_targets(y, xs[0].shape[0])
    sw = model._check_sample_weight(sample_weight, xs[0].shape[0])
    return _evaluate(model, xs, ys, sw, batch_size)


def _evaluate(model, xs, ys, sw, batch_size):
    a, b = shard_range(xs[0].shape[0])
    part = lambda arrs: [t[a:b] for t in arrs]  # noqa: E731
    sums, n, metrics = model._evaluate_sums(
        part(xs), part(ys), None if sw is None else sw[a:b], batch_size
    )
    sums, n = reduce_logs(sums, n, metrics)
    return model._logs(sums, n, metrics)


def reduce_logs(sums, n, metrics):
    """The loss sums, the sample count and each metric's state, summed over all ranks."""
    keys = sorted(sums)
    states = [m.state_arrays() for ms in metrics for m in ms]
    flat = np.concatenate(
        [np.array([sums[k] for k in keys] + [n], np.float64)]
        + [np.ravel(a) for st in states for a in st]
    )
    allreduce(flat, average=False)
    out = dict(zip(keys, (float(v) for v in flat[: len(keys)])))
    pos = len(keys) + 1
    for m, st in zip([m for ms in metrics for m in ms], states):
        arrays = []
        for a in st:
            arrays.append(flat[pos : pos + a.size].reshape(a.shape))
            pos += a.size
        m.set_state_arrays(arrays)
    return out, float(flat[len(keys)])


# ---------------------------------------------------------------------------
# what fit(..., distributed=True) uses
# ---------------------------------------------------------------------------


class FitContext:
    """The distributed parts of one ``fit`` call (see the module docstring).

    Created at the start of ``fit``: initialises MPI, broadcasts the model
    and the optimiser state from rank 0 and hooks the gradient all-reduce
    into the model's training step; :meth:`close` unhooks it.
    """

    def __init__(self, model, seed=None):
        init()
        self.rank = rank()
        self.size = size()
        self.model = model
        broadcast_parameters(model)
        broadcast_optimizer_state(model.optimizer)
        if seed is None:  # the shuffle must be the same on every rank
            from . import random as _random

            seed = _random.next_seed() if self.rank == 0 else None
        self.seed = broadcast_object(seed)
        self._previous_hook = getattr(model, "_after_backward", None)
        model._after_backward = allreduce_gradients if self.size > 1 else None
        self._checked = False

    def shard(self, order):
        """This rank's part of one epoch's order (:func:`shard_indices`).

        The first call checks that every rank has the same number of
        samples (otherwise their step counts would differ and the job hang).
        """
        if not self._checked:
            n = len(order)
            both = np.array([n, -n], np.int64)
            if self.size > 1:
                _comm.Allreduce(_MPI.IN_PLACE, both, op=_MPI.MAX)
            if both[0] != -both[1]:
                self.close()
                raise ValueError(
                    f"x: ranks hold different numbers of training samples "
                    f"(from {-both[1]} to {both[0]}; this rank {n}); with "
                    "distributed=True every rank passes the same data set"
                )
            self._checked = True
        return shard_indices(order, self.rank, self.size)

    def reduce_sums(self, *values):
        """Sum of each value over all ranks (one small Allreduce)."""
        buf = np.array(values, np.float64)
        allreduce(buf, average=False)
        return [float(v) for v in buf]

    def reduce_logs(self, sums, n, metrics):
        return reduce_logs(sums, n, metrics)

    def evaluate(self, xs, ys, sw, batch_size):
        return _evaluate(self.model, xs, ys, sw, batch_size)

    def callbacks(self, callbacks):
        """The callbacks this rank runs: checkpoints only on rank 0."""
        if self.rank == 0:
            return callbacks
        from .callbacks import ModelCheckpoint

        return [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]

    def close(self):
        self.model._after_backward = self._previous_hook
