"""The epoch loop behind ``model.fit``: batches, shuffling, validation,
callbacks, History and a tqdm progress bar per epoch.

The loop itself is small: each batch is gathered into reused buffers
(``np.take`` with ``out=``), then one training step runs (one C++ call for a
compiled model, and one fused optimiser update). tqdm is imported only when
a bar is shown, so ``import cnnx`` stays light.
"""
import math
import threading
import time
import weakref

import numpy as np

from .. import random as _random
from .heads import make_metrics
from .._validate import as_int

__all__ = ["History", "fit"]


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

    _open = weakref.WeakSet()  # bars to close if fit is interrupted

    def __init__(self, epoch, epochs, n, enabled):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm  # lazy: keeps `import cnnx` light

            self.bar = tqdm(total=n, desc=f"Epoch {epoch + 1}/{epochs}", unit="img",
                            leave=True, dynamic_ncols=True)
            self.thread = threading.get_ident()
            _Bar._open.add(self)
        self.last = time.perf_counter()

    def update(self, k, logs, force=False):
        """``logs``: a dict, or a function giving it (called only when the bar redraws)."""
        if self.bar is None:
            return
        self.bar.update(k)
        now = time.perf_counter()
        if force or now - self.last > 0.2:
            self.last = now
            logs = logs() if callable(logs) else logs
            self.bar.set_postfix({key: f"{v:.4f}" for key, v in logs.items()
                                  if np.ndim(v) == 0}, refresh=False)

    def close(self, logs):
        if self.bar is not None:
            self.bar.set_postfix({key: f"{v:.4f}" for key, v in logs.items()
                                  if np.ndim(v) == 0}, refresh=False)
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


def _split(model, xs, ys, sw, validation_data, validation_split):
    """(train inputs, train targets, train weights, validation tuple or None)."""
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data: expected (x_val, y_val) or (x_val, y_val, weights)")
        xv = model.check_inputs(validation_data[0], "validation_data")
        yv = model.check_targets(validation_data[1], xv[0].shape[0], "validation_data")
        wv = None
        if len(validation_data) == 3:
            wv = model._check_sample_weight(validation_data[2], xv[0].shape[0], "validation_data")
        return xs, ys, sw, (xv, yv, wv)
    split = float(validation_split)
    if not 0.0 <= split < 1.0:
        raise ValueError(f"validation_split: expected a number in [0, 1), got {validation_split}")
    if split == 0.0:
        return xs, ys, sw, None
    n = xs[0].shape[0]
    n_val = int(round(n * split))
    if n_val == 0 or n_val >= n:
        raise ValueError(f"validation_split: {split} of {n} samples leaves no "
                         "training or no validation data")
    # as Keras: the last samples, taken before any shuffling
    cut = lambda arrs: ([a[:-n_val] for a in arrs], [a[-n_val:] for a in arrs])  # noqa: E731
    (xt, xv), (yt, yv) = cut(xs), cut(ys)
    wt, wv = (None, None) if sw is None else (sw[:-n_val], sw[-n_val:])
    return xt, yt, wt, (xv, yv, wv)


def fit(model, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
        shuffle=True, seed=None, callbacks=None, verbose=1, initial_epoch=0, distributed=False,
        sample_weight=None, class_weight=None):
    """Train ``model`` on ``(x, y)``.

    Args:
        x: ``(N, ...)`` inputs matching the model's input shape (a list for
            several inputs).
        y: ``(N,)`` integer labels (cross-entropy; exact one-hot rows are
            accepted) or targets (MSE); a list or a dict by output name for
            several outputs.
        epochs, batch_size: as usual; the last batch may be smaller.
        validation_data: ``(x_val, y_val)``; or ``validation_split``: the
            fraction of the data (taken from the end, before shuffling)
            held out.
        shuffle: reshuffle the training order every epoch.
        seed: seeds this run's shuffling (default: the ``cnnx.set_seed``
            generator).
        callbacks: list of :mod:`cnnx.callbacks` objects.
        verbose: 0 silent, 1 a tqdm bar per epoch (loss, accuracy, img/s,
            ETA), 2 one line per epoch.
        initial_epoch: first epoch index (to resume).
        distributed: data-parallel training under ``mpirun -np N`` (every
            rank passes the same data; ``batch_size`` is per rank): see
            :mod:`cnnx.distributed` for what is broadcast, sharded, averaged.
        sample_weight: ``(N,)`` weights of the samples in the loss.
        class_weight: ``{class: weight}`` for a classifier's labels: each
            sample's loss is weighted by its class's weight (times its
            ``sample_weight``); classes left out weigh 1.

    Returns a :class:`History`. ``model.stop_training = True`` (e.g. from
    EarlyStopping) ends training after the current epoch. A second thread
    calling ``fit`` or ``train_on_batch`` on the same model meanwhile gets a
    RuntimeError ("model ... is being trained in another thread");
    ``predict`` from other threads keeps working.
    """
    from .._guard import exclusive_training

    with exclusive_training(model):
        try:
            return _fit(model, x, y, epochs, batch_size, validation_data, validation_split,
                        shuffle, seed, callbacks, verbose, initial_epoch, distributed,
                        sample_weight, class_weight)
        except BaseException:  # Ctrl-C or an error: end the bar before the message
            _Bar.close_all()
            raise


def _fit(model, x, y, epochs, batch_size, validation_data, validation_split, shuffle, seed,
         callbacks, verbose, initial_epoch, distributed, sample_weight, class_weight):
    model._require_compiled()
    xs = model.check_inputs(x)
    ys = model.check_targets(y, xs[0].shape[0])
    sw = model._check_sample_weight(sample_weight, xs[0].shape[0])
    if class_weight is not None:
        cw = model._class_weights(class_weight, ys)
        sw = cw if sw is None else (sw * cw).astype(np.float32)
    epochs = as_int(epochs, "epochs", 0)
    batch_size = as_int(batch_size, "batch_size", 1)
    initial_epoch = as_int(initial_epoch, "initial_epoch", 0)
    verbose = as_int(verbose, "verbose", 0)
    callbacks = list(callbacks or [])
    for cb in callbacks:
        if not hasattr(cb, "set_model"):
            raise TypeError(f"callbacks: expected cnnx.callbacks objects, got {type(cb).__name__}")
    xs, ys, sw, val = _split(model, xs, ys, sw, validation_data, validation_split)
    n = xs[0].shape[0]
    if n == 0:
        raise ValueError("x: no training samples")
    dist = None
    if distributed:  # broadcast from rank 0, hook the gradient all-reduce (cnnx.distributed)
        from ..distributed import FitContext

        dist = FitContext(model, seed)
        seed = dist.seed
        callbacks = dist.callbacks(callbacks)
        verbose = verbose if dist.rank == 0 else 0
    rng = _random.get_rng() if seed is None else np.random.default_rng(as_int(seed, "seed", 0))
    heads = model.heads()

    history = History()
    history.model = model
    n_total, scale = n, 1
    if dist is not None:  # this rank's shard: n // size samples
        n, scale = len(dist.shard(np.arange(n_total))), dist.size
    history.params = {"epochs": epochs, "batch_size": batch_size, "samples": n_total,
                      "steps": math.ceil(n / batch_size)}
    model.history = history
    model.stop_training = False
    if getattr(model.optimizer, "initial_lr", None) is None:  # what built-in schedules decay from
        model.optimizer.initial_lr = model.optimizer.lr
    for cb in callbacks:
        cb.set_model(model)
    for cb in callbacks:
        cb.on_train_begin()

    k0 = min(batch_size, n)
    xbuf = [np.empty((k0,) + a.shape[1:], np.float32) for a in xs]
    ybuf = [np.empty((k0,) + t.shape[1:], t.dtype) for t in ys]
    wbuf = None if sw is None else np.empty(k0, np.float32)
    order = np.arange(n)
    for epoch in range(initial_epoch, epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        if shuffle:
            order = rng.permutation(n_total if dist is not None else n)
        if dist is not None:
            order = dist.shard(order if shuffle else np.arange(n_total))
        bar = _Bar(epoch, epochs, n * scale, verbose == 1)
        t0 = time.perf_counter()
        sums = {"loss": 0.0, **{h.name: 0.0 for h in heads}}
        metrics = make_metrics(model._metric_spec, heads)
        seen = 0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            k = idx.shape[0]
            if shuffle or dist is not None:
                xb = [b[:k] for b in xbuf]
                yb = [b[:k] for b in ybuf]
                for a, b in zip(xs, xb):
                    np.take(a, idx, axis=0, out=b)
                for a, b in zip(ys, yb):
                    np.take(a, idx, axis=0, out=b)
                wb = None
                if sw is not None:
                    wb = wbuf[:k]
                    np.take(sw, idx, axis=0, out=wb)
            else:
                xb = [a[start:start + k] for a in xs]
                yb = [a[start:start + k] for a in ys]
                wb = None if sw is None else sw[start:start + k]
            loss, parts, outs = model._train_step(xb, yb, wb)
            sums["loss"] += loss * k
            for h, part in zip(heads, parts):
                sums[h.name] += part * k
            seen += k
            for ms, o, t in zip(metrics, outs, yb):
                for m in ms:
                    m.update_state(t, o, wb)
            if verbose == 1:
                bar.update(k * scale, lambda: model._logs(sums, seen, metrics))
        if dist is not None:  # over every rank's samples
            sums, seen = dist.reduce_logs(sums, seen, metrics)
        logs = model._logs(sums, seen, metrics)
        train_time = time.perf_counter() - t0
        if val is not None:
            v = model._evaluate(val[0], val[1], val[2], max(batch_size, 256),
                                "validation_data") if dist is None \
                else dist.evaluate(val[0], val[1], val[2], max(batch_size, 256))
            logs.update({"val_" + key: value for key, value in v.items()})
        logs["lr"] = model.optimizer.lr
        shown = {key: value for key, value in logs.items() if key != "lr"}
        bar.update(0, shown, force=True)
        bar.close(shown)
        if verbose == 2:
            parts = " - ".join(f"{key}: {value:.4f}" for key, value in shown.items()
                               if np.ndim(value) == 0)
            print(f"Epoch {epoch + 1}/{epochs} - {train_time:.1f}s - "
                  f"{seen / max(train_time, 1e-9):,.0f} img/s - {parts}")
        logs["time"] = train_time
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        history._append(epoch, logs)
        if model.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end()
    if dist is not None:
        dist.close()
    return history

