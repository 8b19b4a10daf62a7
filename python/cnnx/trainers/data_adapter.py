"""Where ``fit``, ``evaluate`` and ``predict`` get their batches from.

Four kinds of data, one interface (:class:`Stream`: the batches of one
epoch at a time):

- **arrays** (NumPy, or torch tensors viewed as NumPy without a copy): batches
  are gathered on the main thread with ``np.take`` into reused buffers (no
  hand-over needed: the gather is as cheap as a queue);
- **a cnnx.data.Dataset** (Keras ``PyDataset``: ``__len__``, ``__getitem__``,
  ``on_epoch_end``): batch ``i`` is ``ds[i]``; the batch order is shuffled
  with fit's generator; ``workers`` threads fetch batches in parallel, up to
  ``max_queue_size`` ahead, delivered in order;
- **any other iterable or generator** of ``(x, y[, sample_weight])`` batches
  (a torch ``DataLoader`` too): one background thread pulls and converts
  batches, up to ``max_queue_size`` ahead (``workers=0``: on the main thread).

While the C++ step runs (the GIL released) the background threads convert
the next batches, so a fast enough loader never makes the step wait.

Epochs follow Keras: without ``steps_per_epoch`` an epoch is one pass over
the data; with it, an epoch is the next ``steps_per_epoch`` batches,
continuing where the last epoch stopped (an iterable that can be iterated
again starts a new pass when one ends; a generator that runs out is an
error naming how many batches it gave).

cnnx is NHWC: a 4-D batch whose last axis is not the model's channel count
(e.g. a PyTorch NCHW image tensor) is refused with a message that says so;
nothing is transposed silently.
"""

import collections
import queue
import sys
import threading
import warnings

import numpy as np

from .._validate import as_float32, as_int, same_shape

__all__ = [
    "to_numpy",
    "is_batch_source",
    "Preparer",
    "Stream",
    "array_stream",
    "batch_stream",
    "check_channels_last",
]


# ---- torch tensors -----------------------------------------------------------------
def _torch():
    return sys.modules.get("torch")  # never imported here: only seen if the user has it


def is_tensor(v):
    t = _torch()
    return t is not None and isinstance(v, t.Tensor)


def to_numpy(v, name="x"):
    """A torch tensor as a NumPy array sharing its memory when it is on the CPU
    (``tensor.numpy()``); lists, tuples and dicts element by element; anything
    else unchanged."""
    if is_tensor(v):
        torch = _torch()
        if v.requires_grad:
            v = v.detach()
        if v.device.type != "cpu":
            v = v.cpu()
        if v.dtype == torch.bfloat16:  # NumPy has no bfloat16
            v = v.float()
        try:
            return v.resolve_conj().resolve_neg().numpy()
        except (TypeError, RuntimeError) as e:
            raise TypeError(
                f"{name}: cannot view the torch tensor as a NumPy array ({e})"
            ) from None
    if type(v) in (list, tuple):
        return type(v)(to_numpy(e, name) for e in v)
    if isinstance(v, dict):
        return {k: to_numpy(e, name) for k, e in v.items()}
    return v


def _is_array_like(v):
    return isinstance(v, (np.ndarray, np.generic, int, float)) or is_tensor(v)


def _looks_like_batch(b):
    """A tuple, or a list of arrays ([x, y] as a DataLoader gives), not a list of numbers."""
    if isinstance(b, tuple):
        return True
    return (
        isinstance(b, list)
        and len(b) > 0
        and not any(isinstance(e, (list, int, float, np.generic)) for e in b)
    )


def is_batch_source(x, y=None):
    """True when ``x`` gives batches (a generator, an iterable of batches, a
    Dataset, a DataLoader) rather than arrays of samples."""
    if x is None or _is_array_like(x) or isinstance(x, (str, bytes, dict)):
        return False
    if isinstance(x, (list, tuple)):
        # arrays for several inputs (or nested lists of numbers), or a list of batches
        return y is None and len(x) > 0 and all(_looks_like_batch(b) for b in x)
    return hasattr(x, "__iter__") or hasattr(x, "__getitem__") or hasattr(x, "__next__")


def _is_sequence(x):
    from ..data import Dataset

    return isinstance(x, Dataset) or (
        hasattr(x, "__getitem__")
        and hasattr(x, "__len__")
        and callable(getattr(x, "on_epoch_end", None))
        and not isinstance(x, (list, tuple))
    )


def _refuse_torch_dataset(x, name):
    torch = _torch()
    if torch is None:
        return
    data = getattr(getattr(torch, "utils", None), "data", None)
    if data is not None and isinstance(x, data.Dataset):
        raise TypeError(
            f"{name}: a torch Dataset gives single samples, not batches; wrap it in "
            "torch.utils.data.DataLoader(dataset, batch_size=...)"
        )


# ---- checking one batch -------------------------------------------------------------
def check_channels_last(a, shape, name):
    """Refuse a 4-D batch whose last axis is not the model's channel count,
    naming NCHW when that is what it looks like (cnnx never transposes)."""
    if a.ndim != 4 or len(shape) != 3 or a.shape[-1] == shape[-1]:
        return
    expected = f"(m, {shape[0]}, {shape[1]}, {shape[2]})"
    if a.shape[1] == shape[-1]:
        raise ValueError(
            f"{name}: got shape {tuple(a.shape)}, channels first (NCHW, as PyTorch "
            f"stores images); cnnx models take channels last (NHWC): {expected}. "
            "Convert with x.permute(0, 2, 3, 1) (torch) or x.transpose(0, 2, 3, 1) "
            "(NumPy); cnnx never transposes silently"
        )
    raise ValueError(
        f"{name}: got shape {tuple(a.shape)} whose last axis has {a.shape[-1]} "
        f"channels; the model takes {shape[-1]} channels last (NHWC): {expected}"
    )


def _with_place(e, where):
    """The same error with ``where`` (e.g. "batch 3 of epoch 2") after its argument name."""
    msg = str(e)
    head, sep, rest = msg.partition(": ")
    if sep and head.replace("_", "").isalnum() and " " not in head:
        msg = f"{head} ({where}): {rest}"
    else:
        msg = f"{where}: {msg}"
    return type(e)(msg)


class Preparer:
    """Checks and converts one raw batch into ``(xs, ys, sample_weight)``.

    Built on the main thread from the model's public shapes and heads, then
    called from the data threads: it only reads what it captured.
    """

    def __init__(self, model, need_targets, class_table=None, name="x"):
        self.name = name
        self.input_shapes = [tuple(s) for s in model.input_shapes]
        self.input_names = [t.name for t in model.inputs]
        self.single_in = not isinstance(model.input_shape, list)
        self.need_targets = need_targets
        self.class_table = class_table
        if need_targets:
            self.heads = model.heads()
            self.output_shapes = [tuple(s) for s in model.output_shapes]
            self.outputs_are_list = isinstance(model.output_shape, list)
            self.output_names = list(model.output_names)

    # ---- unpacking (Keras's rule: a list is a tuple; x, (x,), (x, y), (x, y, w)) ------
    def unpack(self, item, where):
        if isinstance(item, list):
            item = tuple(item)
        if not isinstance(item, tuple):
            item = (item,)
        if len(item) not in (1, 2, 3):
            raise ValueError(
                f"{self.name} ({where}): expected a batch (x, y) or (x, y, "
                f"sample_weight), got a tuple of {len(item)} items"
            )
        x = item[0]
        y = item[1] if len(item) > 1 else None
        w = item[2] if len(item) > 2 else None
        if self.need_targets and y is None:
            raise ValueError(
                f"y ({where}): targets missing: the batch holds "
                f"{'only x' if len(item) == 1 else 'y = None'}; fit and evaluate "
                "need batches (x, y) or (x, y, sample_weight)"
            )
        return x, y, w

    def inputs(self, x, where):
        x = to_numpy(x, self.name)
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise ValueError(
                    f"{self.name} ({where}): no arrays for inputs {missing} "
                    f"(inputs: {self.input_names})"
                )
            x = [x[n] for n in self.input_names]
        if self.single_in:
            xs = [x]
        else:
            if not isinstance(x, (list, tuple)) or len(x) != len(self.input_shapes):
                raise ValueError(
                    f"{self.name} ({where}): the model has {len(self.input_shapes)} "
                    "inputs; expected a list or a dict of that many arrays"
                )
            xs = list(x)
        out = []
        for a, shape in zip(xs, self.input_shapes):
            if not (type(a) is np.ndarray and a.dtype == np.float32 and a.flags.c_contiguous):
                a = as_float32(a, f"{self.name} ({where})")
            if not same_shape(a.shape[1:], shape):  # None: any size (a batch may differ)
                check_channels_last(a, shape, f"{self.name} ({where})")
                raise ValueError(
                    f"{self.name} ({where}): got a batch of shape {a.shape}; the "
                    f"model takes (m, {', '.join(map(str, shape))})"
                )
            out.append(a)
        m = {a.shape[0] for a in out}
        if len(m) > 1:
            raise ValueError(
                f"{self.name} ({where}): the inputs hold different numbers of samples {sorted(m)}"
            )
        return out

    def targets(self, y, n, where):
        from .trainer import targets_for

        return targets_for(
            self.heads,
            self.output_shapes,
            self.outputs_are_list,
            to_numpy(y, "y"),
            n,
            f"y ({where})",
        )

    def weights(self, w, n, ys, where):
        from .trainer import Trainer

        if w is not None:
            w = Trainer._check_sample_weight(
                to_numpy(w, "sample_weight"), n, f"sample_weight ({where})"
            )
        if self.class_table is not None:
            cw = Trainer._class_weights_from(self.class_table, ys[0])
            w = cw if w is None else (w * cw).astype(np.float32)
        return w

    def __call__(self, item, where):
        """``(xs, ys, sample_weight)`` of a training/evaluation batch, or ``xs`` for predict."""
        x, y, w = self.unpack(item, where)
        xs = self.inputs(x, where)
        if not self.need_targets:
            return xs
        n = xs[0].shape[0]
        if n == 0:
            raise ValueError(f"{self.name} ({where}): an empty batch (0 samples)")
        ys = self.targets(y, n, where)
        return xs, ys, self.weights(w, n, ys, where)


# ---- sources -------------------------------------------------------------------------
class _ArraySource:
    """Samples in arrays; each batch is a list of sample indices (or a slice)."""

    threaded = False

    def __init__(self, xs, ys, sw, batch_size, shuffle, rng, dist=None):
        self.xs, self.ys, self.sw = xs, ys, sw
        self.batch_size = batch_size
        self.shuffle, self.rng, self.dist = shuffle, rng, dist
        self.n_total = xs[0].shape[0]
        self.n = self.n_total if dist is None else len(dist.shard(np.arange(self.n_total)))
        self.gather = shuffle or dist is not None
        k0 = min(batch_size, self.n)
        if self.gather:
            self.xbuf = [np.empty((k0,) + a.shape[1:], np.float32) for a in xs]
            self.ybuf = [np.empty((k0,) + t.shape[1:], t.dtype) for t in ys]
            self.wbuf = None if sw is None else np.empty(k0, np.float32)

    def __len__(self):
        return -(-self.n // self.batch_size)

    def new_pass(self):
        """This pass's batches (draws the shuffle once per pass, as fit always did)."""
        bs = self.batch_size
        if not self.gather:
            return [slice(s, s + bs) for s in range(0, self.n, bs)]
        if self.dist is not None:
            order = self.rng.permutation(self.n_total) if self.shuffle else np.arange(self.n_total)
            order = self.dist.shard(order)
        else:
            order = self.rng.permutation(self.n)
        return [order[s : s + bs] for s in range(0, self.n, bs)]

    def batches(self, specs, epoch_name):
        """The batches, gathered into the reused buffers (each valid until the next)."""
        xs, ys, sw = self.xs, self.ys, self.sw
        for spec in specs:
            if isinstance(spec, slice):
                yield (
                    [a[spec] for a in xs],
                    [t[spec] for t in ys],
                    None if sw is None else sw[spec],
                )
                continue
            k = spec.shape[0]
            xb = [b[:k] for b in self.xbuf]
            yb = [b[:k] for b in self.ybuf]
            for a, b in zip(xs, xb):
                np.take(a, spec, axis=0, out=b)
            for a, b in zip(ys, yb):
                np.take(a, spec, axis=0, out=b)
            wb = None
            if sw is not None:
                wb = self.wbuf[:k]
                np.take(sw, spec, axis=0, out=wb)
            yield xb, yb, wb

    def on_epoch_end(self):
        pass


class _SequenceSource:
    """A Dataset: batch i is ``ds[i]``; fetched by ``workers`` threads in parallel."""

    threaded = True

    def __init__(self, ds, shuffle, rng, workers, max_queue_size, preparer):
        self.ds, self.shuffle, self.rng = ds, shuffle, rng
        self.workers, self.queue = workers, max_queue_size
        self.prepare = preparer

    def __len__(self):
        n = len(self.ds)
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"x: len(dataset) must be an int >= 0, got {n!r}")
        return int(n)

    def new_pass(self):
        n = len(self)
        return list(self.rng.permutation(n)) if self.shuffle else list(range(n))

    def _load(self, i, where):
        return self.prepare(self.ds[int(i)], where)

    def batches(self, specs, epoch_name):
        wheres = [f"batch {b}{epoch_name}" for b in range(len(specs))]
        if self.workers == 0:
            for i, where in zip(specs, wheres):
                yield self._load(i, where)
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cnnx-data")
        pending = collections.deque()
        try:
            todo = iter(zip(specs, wheres))
            for i, where in todo:
                pending.append(pool.submit(self._load, i, where))
                if len(pending) >= self.queue:
                    break
            while pending:
                batch = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(self._load, *nxt))
                yield batch
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def on_epoch_end(self):
        self.ds.on_epoch_end()


class _IterableSource:
    """A generator or an iterable of batches (a list, a DataLoader)."""

    threaded = True

    def __init__(self, obj, name):
        self.obj = obj
        self.name = name
        try:
            first = iter(obj)
        except TypeError:
            raise TypeError(
                f"{name}: expected arrays, a generator or an iterable of batches, "
                f"got {type(obj).__name__}"
            ) from None
        self.one_shot = first is obj  # a generator or iterator: iterated once
        self.it = first if self.one_shot else None
        self.pushed = []  # batches read ahead (to build a model from the first one)
        self.total = 0  # batches taken so far
        self.pass_count = 0

    def __len__(self):
        try:
            n = len(self.obj)
        except TypeError:
            return None
        return int(n) if isinstance(n, (int, np.integer)) and n >= 0 else None

    def peek(self):
        if not self.pushed:
            if self.it is None:
                self.it = iter(self.obj)
                self.pass_count = 0
            try:
                self.pushed.append(next(self.it))
            except StopIteration:
                raise ValueError(f"{self.name}: the data gave no batches") from None
        return self.pushed[0]

    def _next(self):
        if self.pushed:
            return self.pushed.pop(0)
        if self.it is None:
            self.it = iter(self.obj)
            self.pass_count = 0
        return next(self.it)

    def items(self, steps, epoch_name, where_all):
        """The raw batches of one epoch (run on the data thread)."""
        if steps is None and not self.one_shot and not self.pushed:
            self.it = None  # one whole pass per epoch
        got = 0
        while steps is None or got < steps:
            try:
                item = self._next()
            except StopIteration:
                self.it = None
                if steps is None and got > 0:
                    return
                if self.one_shot or self.pass_count == 0:
                    raise self._ran_out(steps, got, epoch_name, where_all) from None
                continue  # a re-iterable: a new pass
            got += 1
            self.total += 1
            self.pass_count += 1
            yield item

    def on_epoch_end(self):
        pass

    def _ran_out(self, steps, got, epoch_name, where_all):
        what = "generator" if self.one_shot else "iterable"
        if self.total == 0:
            return ValueError(f"{self.name}: the {what} gave no batches")
        if steps is None:
            when = epoch_name[4:] if epoch_name else "this call"
            return ValueError(
                f"{self.name}: the {what} was used up after {self.total} batches and gave none "
                f"for {when}; a generator is read once: give "
                "steps_per_epoch with a generator that yields steps_per_epoch * epochs batches "
                "(e.g. an endless `while True:` loop), or pass something that can be iterated "
                "again (a list of batches, a cnnx.data.Dataset, a torch DataLoader)"
            )
        return ValueError(
            f"{self.name}: the {what} ran out after {self.total} batches, at batch {got}"
            f"{epoch_name}; {where_all} asks for {steps} batches per epoch "
            "(make the generator yield at least that many in all, e.g. loop forever)"
        )


# ---- the stream: one epoch at a time -------------------------------------------------
class _Prefetch:
    """Iterates ``items`` on a background thread, up to ``size`` batches ahead."""

    def __init__(self, items, size):
        self._q = queue.Queue(maxsize=max(size, 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(items,), name="cnnx-data", daemon=True
        )
        self._thread.start()

    def _put(self, value):
        while not self._stop.is_set():
            try:
                self._q.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items):
        try:
            for item in items:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except BaseException as e:  # handed to the training thread, raised there
            self._put((False, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        return self

    def __next__(self):
        ok, value = self._q.get()
        if ok:
            return value
        self._stop.set()
        if value is None:
            raise StopIteration
        raise value

    def close(self, timeout=30.0):
        self._stop.set()
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout)
        if self._thread.is_alive():  # still inside the user's generator
            warnings.warn(
                "the data thread is still inside the generator's next() after "
                f"{timeout:.0f} s; it is left to finish on its own (a daemon thread)",
                RuntimeWarning,
                stacklevel=3,
            )


class _Epoch:
    """The batches of one epoch; a context manager that stops its threads."""

    def __init__(self, it, closer):
        self._it = it
        self._closer = closer

    def __enter__(self):
        return self._it

    def __exit__(self, *exc):
        self._closer()
        return False


class Stream:
    """Batches of ``(xs, ys, sample_weight)`` (or ``xs`` for predict), one epoch at a time."""

    def __init__(
        self,
        source,
        steps,
        preparer=None,
        workers=1,
        max_queue_size=10,
        steps_name="steps_per_epoch",
    ):
        self.source = source
        self.steps = steps
        self.prepare = preparer
        self.workers = workers
        self.max_queue_size = max_queue_size
        self.steps_name = steps_name
        self._pending = collections.deque()  # batches left of a pass (with steps)
        n = len(source) if not isinstance(source, _IterableSource) else source.__len__()
        self.known_steps = steps if steps is not None else n

    def _specs(self):
        """The index-based sources' batches for this epoch."""
        if self.steps is None:
            return self.source.new_pass()
        out = []
        while len(out) < self.steps:
            if not self._pending:
                fresh = self.source.new_pass()
                if not fresh:
                    raise ValueError("x: the data holds no batches")
                self._pending.extend(fresh)
            out.append(self._pending.popleft())
        return out

    def epoch(self, epoch=None):
        """A context manager giving this epoch's batches (``epoch`` None: evaluate/predict)."""
        epoch_name = "" if epoch is None else f" of epoch {epoch + 1}"
        src = self.source
        if isinstance(src, _IterableSource):
            prepare = self.prepare

            def items():
                for b, item in enumerate(src.items(self.steps, epoch_name, self.steps_name)):
                    yield prepare(item, f"batch {b}{epoch_name}")

            if self.workers == 0:
                gen = items()
                return _Epoch(gen, gen.close)
            feed = _Prefetch(items(), self.max_queue_size)
            return _Epoch(feed, feed.close)
        gen = src.batches(self._specs(), epoch_name)
        return _Epoch(gen, gen.close)

    def on_epoch_end(self):
        self.source.on_epoch_end()


# ---- building streams ----------------------------------------------------------------
def _workers(value, default, name):
    value = default if value is None else value
    return as_int(value, name, 0)


def array_stream(xs, ys, sw, batch_size, shuffle, rng, steps=None, dist=None):
    return Stream(_ArraySource(xs, ys, sw, batch_size, shuffle, rng, dist), steps)


def batch_stream(
    model,
    x,
    need_targets,
    steps,
    shuffle,
    rng,
    workers,
    max_queue_size,
    class_table=None,
    name="x",
    steps_name="steps_per_epoch",
):
    """A stream over a generator, an iterable of batches or a Dataset (model built
    from the first batch if it is not yet)."""
    _refuse_torch_dataset(x, name)
    if _is_sequence(x):
        w = _workers(workers, getattr(x, "workers", 1), "workers")
        q = as_int(
            max_queue_size if max_queue_size is not None else getattr(x, "max_queue_size", 10),
            "max_queue_size",
            1,
        )
        if not model.built:
            model.check_inputs(_first_x(x[0]), name)
        prep = Preparer(model, need_targets, class_table, name)
        return Stream(_SequenceSource(x, shuffle, rng, w, q, prep), steps, prep, w, q, steps_name)
    source = _IterableSource(x, name)
    if not model.built:
        model.check_inputs(_first_x(source.peek()), name)
    prep = Preparer(model, need_targets, class_table, name)
    w = _workers(workers, 1, "workers")
    q = as_int(10 if max_queue_size is None else max_queue_size, "max_queue_size", 1)
    return Stream(source, steps, prep, w, q, steps_name)


def _first_x(item):
    """The inputs of a raw batch, to build a model that has no input shape yet."""
    if isinstance(item, list):
        item = tuple(item)
    x = item[0] if isinstance(item, tuple) and item else item
    return to_numpy(x)
