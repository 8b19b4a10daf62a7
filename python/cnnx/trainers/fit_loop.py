"""The epoch loop behind ``model.fit``: batches, shuffling, validation,
callbacks, History and a tqdm progress bar per epoch.

The loop itself is small: each batch is gathered into reused buffers
(``np.take`` with ``out=``), then one training step runs (one C++ call for a
compiled model, and one fused optimiser update). tqdm is imported only when
a bar is shown, so ``import cnnx`` stays light.
"""

import threading
import time
import weakref

import numpy as np

from .. import random as _random
from ..callbacks import CallbackList
from .heads import make_metrics
from .data_adapter import array_stream, batch_stream, check_channels_last, is_batch_source, to_numpy
from .._validate import as_int

__all__ = ["History", "FitState", "fit"]


class History:
    """What ``fit`` returns: ``history`` maps each metric (``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``) to one value per
    epoch; ``epoch`` lists the epoch indices; ``params`` the fit settings."""

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {}
        self.model = None

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


class _Bar:
    """A tqdm bar over the samples of one epoch, with loss and accuracy; tqdm
    itself shows the rate in img/s (``unit="img"``), so the postfix does not."""

    _open: "weakref.WeakSet[_Bar]" = weakref.WeakSet()  # bars to close if fit is interrupted

    def __init__(self, epoch, epochs, n, enabled):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm  # lazy: keeps `import cnnx` light

            self.bar = tqdm(
                total=n,
                desc=f"Epoch {epoch + 1}/{epochs}",
                unit="img",
                leave=True,
                dynamic_ncols=True,
            )
            self.thread = threading.get_ident()
            _Bar._open.add(self)
        self.last = time.perf_counter()

    def set_total(self, n):
        if self.bar is not None:
            self.bar.total = n
            self.bar.refresh()

    def update(self, k, logs, force=False):
        """``logs``: a dict, or a function giving it (called only when the bar redraws)."""
        if self.bar is None:
            return
        self.bar.update(k)
        now = time.perf_counter()
        if force or now - self.last > 0.2:
            self.last = now
            logs = logs() if callable(logs) else logs
            self.bar.set_postfix(
                {key: f"{v:.4f}" for key, v in logs.items() if np.ndim(v) == 0}, refresh=False
            )

    def close(self, logs):
        if self.bar is not None:
            self.bar.set_postfix(
                {key: f"{v:.4f}" for key, v in logs.items() if np.ndim(v) == 0}, refresh=False
            )
            self.bar.close()
            _Bar._open.discard(self)

    @classmethod
    def close_all(cls):
        """End this thread's interrupted bars now (not at exit, after the caller's message)."""
        me = threading.get_ident()
        for b in list(cls._open):
            if b.thread == me:
                b.bar.close()
                cls._open.discard(b)


class FitState:
    """What one ``fit`` shows callbacks that save and resume training
    (:class:`cnnx.callbacks.BackupAndRestore`), as ``model._fit_state``: the
    shuffling generator, the callbacks, the first epoch (a callback may move
    it in ``on_train_begin``), and functions to run once every callback's
    ``on_train_begin`` has run (``after_train_begin``) and after every
    callback's ``on_epoch_end`` (``after_epoch_end(epoch, logs)``)."""

    def __init__(self, rng, callbacks, initial_epoch):
        self.rng = rng
        self.callbacks = callbacks
        self.initial_epoch = initial_epoch
        self.after_train_begin = []
        self.after_epoch_end = []


def _is_array_tuple(v):
    """validation_data as ``(x, y[, w])`` arrays (a tuple, or a list that is not
    a list of batch tuples), not a source of batches."""
    if isinstance(v, tuple):
        return True
    return isinstance(v, list) and not (v and all(isinstance(b, tuple) for b in v))


def _arrays(model, x, y, sample_weight, name="x", yname="y"):
    """Checked arrays (torch tensors viewed as NumPy) of fit/evaluate."""
    x, y = to_numpy(x, name), to_numpy(y, yname)
    if isinstance(x, dict) and model.built:  # inputs by name, as Keras
        names = [t.name for t in model.inputs]
        missing = [k for k in names if k not in x]
        if missing:
            raise ValueError(f"{name}: no arrays for inputs {missing} (inputs: {names})")
        x = [x[k] for k in names] if len(names) > 1 else x[names[0]]
    if y is None:
        raise ValueError(
            f"{yname}: targets missing (arrays need y; or pass batches (x, y) from "
            "a generator, an iterable or a cnnx.data.Dataset as x)"
        )
    check_layout(model, x, name)
    xs = model.check_inputs(x, name)
    ys = model.check_targets(y, xs[0].shape[0], yname)
    sw = model._check_sample_weight(
        to_numpy(sample_weight, "sample_weight"),
        xs[0].shape[0],
        "sample_weight" if name == "x" else name,
    )
    return xs, ys, sw


def _split(model, xs, ys, sw, validation_data, validation_split):
    """(train inputs, train targets, train weights, validation tuple or None)."""
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data: expected (x_val, y_val) or (x_val, y_val, weights)")
        xv, yv, wv = _arrays(
            model,
            validation_data[0],
            validation_data[1],
            validation_data[2] if len(validation_data) == 3 else None,
            "validation_data",
            "validation_data",
        )
        return xs, ys, sw, (xv, yv, wv)
    split = float(validation_split)
    if not 0.0 <= split < 1.0:
        raise ValueError(f"validation_split: expected a number in [0, 1), got {validation_split}")
    if split == 0.0:
        return xs, ys, sw, None
    n = xs[0].shape[0]
    n_val = int(round(n * split))
    if n_val == 0 or n_val >= n:
        raise ValueError(
            f"validation_split: {split} of {n} samples leaves no training or no validation data"
        )
    # as Keras: the last samples, taken before any shuffling
    cut = lambda arrs: ([a[:-n_val] for a in arrs], [a[-n_val:] for a in arrs])  # noqa: E731
    (xt, xv), (yt, yv) = cut(xs), cut(ys)
    wt, wv = (None, None) if sw is None else (sw[:-n_val], sw[-n_val:])
    return xt, yt, wt, (xv, yv, wv)


def check_layout(model, x, name):
    """A 4-D batch must be NHWC: refuse channels-first data by name (never transpose)."""
    if not model.built:
        return
    shapes = model.input_shapes
    xs = x if isinstance(x, (list, tuple)) and len(shapes) > 1 else [x]
    for a, shape in zip(xs, shapes):
        if isinstance(a, np.ndarray):
            check_channels_last(a, tuple(shape), name)


def _optional_steps(v, name):
    return None if v is None else as_int(v, name, 1)


def fit(
    model,
    x,
    y=None,
    epochs=1,
    batch_size=None,
    validation_data=None,
    validation_split=0.0,
    shuffle=True,
    seed=None,
    callbacks=None,
    verbose=1,
    initial_epoch=0,
    distributed=False,
    sample_weight=None,
    class_weight=None,
    steps_per_epoch=None,
    validation_steps=None,
    workers=None,
    max_queue_size=None,
):
    """Train ``model`` on ``(x, y)`` arrays or on batches from ``x``.

    Args:
        x: ``(N, ...)`` inputs matching the model's input shape (a list for
            several inputs; NumPy arrays or torch tensors, NHWC); or a source
            of batches ``(x, y)`` / ``(x, y, sample_weight)``: a generator,
            any iterable (a list of batches, a torch DataLoader) or a
            :class:`cnnx.data.Dataset` (see :mod:`cnnx.data`).
        y: ``(N,)`` integer labels (cross-entropy; exact one-hot rows are
            accepted) or targets (MSE); a list or a dict by output name for
            several outputs. Not given when ``x`` yields batches.
        epochs, batch_size: as usual (``batch_size`` 32 by default, for
            arrays only); the last batch may be smaller.
        validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, weights)``,
            or a source of batches; or ``validation_split`` (arrays only):
            the fraction of the data (taken from the end, before shuffling)
            held out.
        shuffle: reshuffle the training order every epoch (arrays: the
            samples; a Dataset: the order of its batches; ignored for
            generators and iterables).
        seed: seeds this run's shuffling (default: the ``cnnx.set_seed``
            generator).
        callbacks: list of :mod:`cnnx.callbacks` objects.
        verbose: 0 silent, 1 a tqdm bar per epoch (loss, accuracy, img/s,
            ETA), 2 one line per epoch.
        initial_epoch: first epoch index (to resume).
        distributed: data-parallel training under ``mpirun -np N`` (every
            rank passes the same arrays; ``batch_size`` is per rank): see
            :mod:`cnnx.distributed` for what is broadcast, sharded, averaged.
        sample_weight: ``(N,)`` weights of the samples in the loss.
        class_weight: ``{class: weight}`` for a classifier's labels: each
            sample's loss is weighted by its class's weight (times its
            ``sample_weight``); classes left out weigh 1.
        steps_per_epoch, validation_steps: batches per epoch / per
            validation (Keras's meaning: each epoch continues where the last
            stopped; needed for an endless generator). Default: one pass.
        workers, max_queue_size: threads preparing batches from ``x`` and
            how many may wait ready (default: the Dataset's own, else 1 and
            10; ``workers=0`` prepares them on this thread).

    Returns a :class:`History`. ``model.stop_training = True`` (e.g. from
    EarlyStopping) ends training after the current epoch (set in a batch
    hook: after the current batch). A second thread calling ``fit`` or
    ``train_on_batch`` on the same model meanwhile gets a RuntimeError
    ("model ... is being trained in another thread"); ``predict`` from
    other threads keeps working.
    """
    from .._guard import exclusive_training

    with exclusive_training(model):
        try:
            return _fit(
                model,
                x,
                y,
                epochs,
                batch_size,
                validation_data,
                validation_split,
                shuffle,
                seed,
                callbacks,
                verbose,
                initial_epoch,
                distributed,
                sample_weight,
                class_weight,
                steps_per_epoch,
                validation_steps,
                workers,
                max_queue_size,
            )
        except BaseException:  # Ctrl-C or an error: end the bar before the message
            _Bar.close_all()
            raise
        finally:
            model.__dict__.pop("_fit_state", None)


def _refuse_with_batches(y, sample_weight, batch_size, validation_split, distributed):
    src = "x gives batches (a generator, an iterable or a Dataset)"
    if y is not None:
        raise ValueError(
            f"y: not used when {src}: the batches hold the targets, (x, y) or (x, y, sample_weight)"
        )
    if sample_weight is not None:
        raise ValueError(
            f"sample_weight: not used when {src}: give the weights as the third "
            "item of each batch, (x, y, sample_weight)"
        )
    if batch_size is not None:
        raise ValueError(f"batch_size: not used when {src}: the batches have their own size")
    if validation_split:
        raise ValueError(f"validation_split: not available when {src}; pass validation_data")
    if distributed:
        raise ValueError(
            f"distributed: takes arrays (each rank trains on its shard of them), "
            f"not a source of batches; {src}"
        )


def _fit(
    model,
    x,
    y,
    epochs,
    batch_size,
    validation_data,
    validation_split,
    shuffle,
    seed,
    callbacks,
    verbose,
    initial_epoch,
    distributed,
    sample_weight,
    class_weight,
    steps_per_epoch,
    validation_steps,
    workers,
    max_queue_size,
):
    model._require_compiled()
    epochs = as_int(epochs, "epochs", 0)
    initial_epoch = as_int(initial_epoch, "initial_epoch", 0)
    verbose = as_int(verbose, "verbose", 0)
    steps_per_epoch = _optional_steps(steps_per_epoch, "steps_per_epoch")
    validation_steps = _optional_steps(validation_steps, "validation_steps")
    if isinstance(callbacks, CallbackList):
        callbacks = callbacks.callbacks
    elif callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            f"callbacks: expected a list of cnnx.callbacks objects, got {type(callbacks).__name__}"
        )
    callbacks = list(callbacks or [])
    for cb in callbacks:
        if not hasattr(cb, "set_model"):
            raise TypeError(f"callbacks: expected cnnx.callbacks objects, got {type(cb).__name__}")
    streaming = is_batch_source(x, y)
    dist = None
    if streaming:
        _refuse_with_batches(y, sample_weight, batch_size, validation_split, distributed)
        rng = _random.get_rng() if seed is None else np.random.default_rng(as_int(seed, "seed", 0))
        table = None if class_weight is None else model._class_weight_table(class_weight)
        stream = batch_stream(
            model, x, True, steps_per_epoch, bool(shuffle), rng, workers, max_queue_size, table
        )
        val_bs = 256
        n_total = None
        val_arrays = None
    else:
        batch_size = 32 if batch_size is None else as_int(batch_size, "batch_size", 1)
        xs, ys, sw = _arrays(model, x, y, sample_weight)
        if class_weight is not None:
            cw = model._class_weights(class_weight, ys)
            sw = cw if sw is None else (sw * cw).astype(np.float32)
        given = validation_data is None or _is_array_tuple(validation_data)
        xs, ys, sw, val_arrays = _split(
            model,
            xs,
            ys,
            sw,
            validation_data if given else None,
            validation_split if given else 0.0,
        )
        n = xs[0].shape[0]
        if n == 0:
            raise ValueError("x: no training samples")
        if distributed:  # broadcast from rank 0, hook the gradient all-reduce (cnnx.distributed)
            from ..distributed import FitContext

            dist = FitContext(model, seed)
            seed = dist.seed
            callbacks = dist.callbacks(callbacks)
            verbose = verbose if dist.rank == 0 else 0
        rng = _random.get_rng() if seed is None else np.random.default_rng(as_int(seed, "seed", 0))
        stream = array_stream(xs, ys, sw, batch_size, bool(shuffle), rng, steps_per_epoch, dist)
        val_bs = max(batch_size, 256)
        n_total = n
    val = None
    if val_arrays is not None:
        val = (
            val_arrays
            if dist is not None
            else array_stream(*val_arrays, val_bs, False, rng, validation_steps)
        )
    elif validation_data is not None:
        if not is_batch_source(validation_data):
            raise TypeError(
                "validation_data: expected (x_val, y_val), (x_val, y_val, weights) "
                f"or a source of batches, got {type(validation_data).__name__}"
            )
        val = batch_stream(
            model,
            validation_data,
            True,
            validation_steps,
            False,
            rng,
            workers,
            max_queue_size,
            name="validation_data",
            steps_name="validation_steps",
        )
    heads = model.heads()

    history = History()
    history.model = model
    scale = 1 if dist is None else dist.size
    n_epoch = None if streaming else stream.source.n  # this rank's samples per pass
    steps = stream.known_steps
    history.params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "samples": n_total,
        "steps": steps,
        "verbose": verbose,
    }
    model.history = history
    model.stop_training = False
    if getattr(model.optimizer, "initial_lr", None) is None:  # what built-in schedules decay from
        model.optimizer.initial_lr = model.optimizer.lr
    cbs = CallbackList(callbacks, model, history.params)
    state = FitState(rng, cbs.callbacks, initial_epoch)
    model._fit_state = state
    cbs.call("on_train_begin", {})
    for fn in state.after_train_begin:
        fn()

    logs = {}
    for epoch in range(state.initial_epoch, epochs):
        cbs.call("on_epoch_begin", epoch, {})
        total = None
        if n_epoch is not None:
            total = n_epoch * scale if steps_per_epoch is None else None
        bar = _Bar(epoch, epochs, total, verbose == 1)
        t0 = time.perf_counter()
        sums = {"loss": 0.0, **{h.name: 0.0 for h in heads}}
        metrics = make_metrics(model._metric_spec, heads)
        seen = 0
        batch_begin = cbs.wants("on_train_batch_begin")
        batch_end = cbs.wants("on_train_batch_end")
        with stream.epoch(epoch) as batches:
            for i, (xb, yb, wb) in enumerate(batches):
                if batch_begin:
                    cbs.call("on_train_batch_begin", i, {})
                k = xb[0].shape[0]
                if i == 0 and total is None and steps is not None:
                    bar.set_total(steps * k * scale)
                loss, parts, outs = model._train_step(
                    xb, yb, wb, "y" if not streaming else f"y (batch {i} of epoch {epoch + 1})"
                )
                sums["loss"] += loss * k
                for h, part in zip(heads, parts):
                    sums[h.name] += part * k
                seen += k
                for ms, o, t in zip(metrics, outs, yb):
                    for m in ms:
                        m.update_state(t, o, wb)
                if verbose == 1:
                    bar.update(k * scale, lambda: model._logs(sums, seen, metrics))
                if batch_end:
                    cbs.call("on_train_batch_end", i, model._logs(sums, seen, metrics))
                if model.stop_training:
                    break
        stream.on_epoch_end()
        if dist is not None:  # over every rank's samples
            sums, seen = dist.reduce_logs(sums, seen, metrics)
        logs = model._logs(sums, seen, metrics)
        train_time = time.perf_counter() - t0
        if val is not None:
            if dist is not None:
                v = dist.evaluate(val[0], val[1], val[2], val_bs)
            else:
                v = model._evaluate_stream(val, cbs, "validation_data")
            logs.update({"val_" + key: value for key, value in v.items()})
        logs["lr"] = model.optimizer.lr
        shown = {key: value for key, value in logs.items() if key != "lr"}
        bar.update(0, shown, force=True)
        bar.close(shown)
        if verbose == 2:
            parts = " - ".join(
                f"{key}: {value:.4f}" for key, value in shown.items() if np.ndim(value) == 0
            )
            print(
                f"Epoch {epoch + 1}/{epochs} - {train_time:.1f}s - "
                f"{seen / max(train_time, 1e-9):,.0f} img/s - {parts}"
            )
        logs["time"] = train_time
        cbs.call("on_epoch_end", epoch, logs)
        for fn in state.after_epoch_end:
            fn(epoch, logs)
        history._append(epoch, logs)
        if model.stop_training:
            break
    finalize = getattr(model.optimizer, "finalize_variable_values", None)
    if finalize is not None and epochs > initial_epoch:  # Keras: the moving average, if kept
        finalize()
    cbs.call("on_train_end", logs)
    if dist is not None:
        dist.close()
    return history
