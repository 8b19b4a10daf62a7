"""Callbacks for ``fit`` (and ``evaluate`` / ``predict``), with Keras's hooks
and semantics.

A callback may define any of::

    on_train_begin(logs)              on_train_end(logs)
    on_epoch_begin(epoch, logs)       on_epoch_end(epoch, logs)
    on_train_batch_begin(batch, logs) on_train_batch_end(batch, logs)   (aliases on_batch_*)
    on_test_begin(logs)               on_test_end(logs)
    on_test_batch_begin(batch, logs)  on_test_batch_end(batch, logs)
    on_predict_begin(logs)            on_predict_end(logs)
    on_predict_batch_begin(batch, logs) on_predict_batch_end(batch, logs)

``epoch`` and ``batch`` count from 0 (``batch`` restarts every epoch). An
epoch's ``logs`` hold ``loss``, the metrics, ``val_*`` and ``lr``; a batch's
end ``logs`` hold the running means over the epoch so far (as Keras 3),
computed only when some callback defines a batch hook. The ``on_test_*``
hooks also run for fit's validation. ``self.model`` and ``self.params``
(``epochs``, ``steps``, ``verbose``) are set by ``fit``. Hooks written
without the ``logs`` argument (cnnx's earlier form) keep working. Setting
``model.stop_training = True`` in a batch hook ends the epoch after that
batch (and training after that epoch).

Callbacks here: EarlyStopping, ModelCheckpoint, LearningRateScheduler,
ReduceLROnPlateau, CSVLogger, TerminateOnNaN, BackupAndRestore, LambdaCallback.
"""

import csv
import inspect
import json
import math
import numbers
import os
import string

import numpy as np

from ._validate import as_int

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
    "TerminateOnNaN",
    "BackupAndRestore",
    "LambdaCallback",
    "step_decay",
    "cosine_decay",
]


class Callback:
    """Base class: override the hooks you need; ``self.model`` is set by ``fit``.

    ``state_dict()`` / ``load_state_dict(d)``: what :class:`BackupAndRestore`
    saves and restores of this callback (None: nothing), so that a resumed
    run continues exactly (patience counters, best values).

    Examples:
        >>> import cnnx
        >>> class PrintLoss(cnnx.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         print(f"epoch {epoch}: loss {logs['loss']:.3f}")
    """

    model = None
    params: dict = {}

    def set_model(self, model):
        """Called by ``fit`` before training: the model this callback watches."""
        self.model = model

    def set_params(self, params):
        """Called by ``fit`` before training: its settings (``epochs``, ``steps``, ...)."""
        self.params = params

    def on_train_begin(self, logs=None):
        """Called once when ``fit`` starts."""
        pass

    def on_train_end(self, logs=None):
        """Called once when ``fit`` ends (also after an early stop)."""
        pass

    def on_epoch_begin(self, epoch, logs=None):
        """Called before each epoch (``epoch`` counts from 0)."""
        pass

    def on_epoch_end(self, epoch, logs=None):
        """Called after each epoch with its ``logs`` (``loss``, metrics, ``val_*``).

        Setting ``self.model.stop_training = True`` ends training after this epoch.
        """
        pass

    def on_batch_begin(self, batch, logs=None):
        """Alias of :meth:`on_train_batch_begin` (as in Keras)."""

    def on_batch_end(self, batch, logs=None):
        """Alias of :meth:`on_train_batch_end` (as in Keras)."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before each training batch (``batch`` counts from 0 in each epoch)."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training batch with the epoch's running ``logs``.

        Setting ``self.model.stop_training = True`` ends training after this batch.
        """
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        """Called when ``evaluate`` (or fit's validation) starts."""
        pass

    def on_test_end(self, logs=None):
        """Called when ``evaluate`` (or fit's validation) ends, with its ``logs``."""
        pass

    def on_test_batch_begin(self, batch, logs=None):
        """Called before each evaluation batch."""
        pass

    def on_test_batch_end(self, batch, logs=None):
        """Called after each evaluation batch with the running ``logs``."""
        pass

    def on_predict_begin(self, logs=None):
        """Called when ``predict`` starts."""
        pass

    def on_predict_end(self, logs=None):
        """Called when ``predict`` ends."""
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before each ``predict`` batch."""
        pass

    def on_predict_batch_end(self, batch, logs=None):
        """Called after each ``predict`` batch (``logs["outputs"]``: its outputs)."""
        pass

    def state_dict(self):
        """What :class:`BackupAndRestore` saves of this callback (None: nothing)."""
        return None

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` gave (when a run resumes)."""
        pass


#: hook -> how many arguments it takes (the last is logs)
_HOOKS = {
    "on_train_begin": 1,
    "on_train_end": 1,
    "on_epoch_begin": 2,
    "on_epoch_end": 2,
    "on_train_batch_begin": 2,
    "on_train_batch_end": 2,
    "on_test_begin": 1,
    "on_test_end": 1,
    "on_test_batch_begin": 2,
    "on_test_batch_end": 2,
    "on_predict_begin": 1,
    "on_predict_end": 1,
    "on_predict_batch_begin": 2,
    "on_predict_batch_end": 2,
}
_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


def _overrides(cb, name):
    if not isinstance(cb, Callback):
        return callable(getattr(cb, name, None))
    alias = _ALIASES.get(name)
    if name in vars(cb) or (alias is not None and alias in vars(cb)):  # LambdaCallback
        return True
    if getattr(type(cb), name) is not getattr(Callback, name):
        return True
    alias = _ALIASES.get(name)
    return alias is not None and getattr(type(cb), alias) is not getattr(Callback, alias)


def _takes(fn, n):
    try:
        inspect.signature(fn).bind(*([None] * n))
        return True
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): assume it does
        return True


class CallbackList:
    """The callbacks of one ``fit`` / ``evaluate`` / ``predict`` call: calls each
    hook on the callbacks that define it, in order. ``wants(hook)`` tells the
    loop whether to compute the logs a batch hook would get."""

    def __init__(self, callbacks, model, params=None):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, CallbackList):
            callbacks = callbacks.callbacks
        elif not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"callbacks: expected a list of cnnx.callbacks objects, got "
                f"{type(callbacks).__name__}"
            )
        for cb in callbacks:
            if not hasattr(cb, "set_model"):
                raise TypeError(
                    f"callbacks: expected cnnx.callbacks objects, got {type(cb).__name__}"
                )
        self.callbacks = list(callbacks)
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)
            if params is not None and hasattr(cb, "set_params"):
                cb.set_params(params)
        self._hooks = {}
        for name, n in _HOOKS.items():
            fns = []
            for cb in self.callbacks:
                if not _overrides(cb, name):
                    continue
                fn = getattr(cb, name)
                if not _takes(fn, n):  # written without logs (the earlier cnnx form)
                    fn = (lambda f: lambda *a: f(*a[:-1]))(fn)
                fns.append(fn)
            self._hooks[name] = fns

    def wants(self, name):
        """Whether any callback defines hook ``name`` (the loop skips building its logs if not)."""
        return bool(self._hooks[name])

    def call(self, name, *args):
        """Call hook ``name`` with ``args`` on every callback that defines it, in order."""
        for fn in self._hooks[name]:
            fn(*args)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)


def _finite(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v!r}")
    return float(v)


def _mode(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


class _Monitor(Callback):
    def __init__(self, monitor, mode, min_delta=0.0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a metric name, got {type(monitor).__name__}")
        self.monitor = monitor
        self.mode = _mode(mode, monitor)
        self.min_delta = abs(_finite(min_delta, "min_delta"))
        self.best = None

    def _value(self, logs):
        if self.monitor not in logs:
            raise ValueError(
                f"monitor: {self.monitor!r} is not among the logged metrics "
                f"{sorted(logs)} (val_* needs validation data)"
            )
        return float(logs[self.monitor])

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs in a row (0: at the first epoch without improvement).

    ``mode``: "min", "max" or "auto" (max for accuracies, else min).
    ``restore_best_weights``: put back the weights of the best epoch at the end.
    ``stopped_epoch`` records where training stopped (or None).

    Examples:
        >>> import cnnx
        >>> stop = cnnx.callbacks.EarlyStopping(monitor="val_loss", patience=2)
        >>> # model.fit(x, y, validation_split=0.1, callbacks=[stop])
    """

    def __init__(
        self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto", restore_best_weights=False
    ):
        super().__init__(monitor, mode, min_delta)
        self.patience = as_int(patience, "patience", 0)
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = 0
        self.best_epoch = None
        self.stopped_epoch = None
        self._best_weights = None

    def state_dict(self):
        return {
            "best": self.best,
            "wait": self.wait,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self._best_weights,
        }

    def load_state_dict(self, state):
        self.best, self.wait = state["best"], state["wait"]
        self.best_epoch, self.stopped_epoch = state["best_epoch"], state["stopped_epoch"]
        self._best_weights = state["best_weights"]

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if self._improved(value):
            self.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self._best_weights = self.model.store.params.copy()
            return
        self.wait += 1
        if self.wait >= self.patience:  # Keras's rule: patience non-improving epochs
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self._best_weights is not None:
            self.model.store.params[...] = self._best_weights


class ModelCheckpoint(_Monitor):
    """Save the model after each epoch (``model.save``, atomic).

    ``filepath`` may contain ``{epoch}`` (1-based) and metric fields, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.cnnx"``. With ``save_best_only`` a file
    is written only when ``monitor`` improves. ``saved`` lists the paths written.

    Examples:
        >>> import cnnx
        >>> ckpt = cnnx.callbacks.ModelCheckpoint("ckpt-{epoch}.cnnx", save_best_only=True)
        >>> # model.fit(x, y, validation_split=0.1, callbacks=[ckpt])
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__(monitor, mode)
        if not isinstance(filepath, str) or not filepath:
            raise TypeError("filepath: expected a non-empty str")
        try:  # a malformed pattern fails now, not after the first epoch's training
            fields = [f for _, f, _, _ in string.Formatter().parse(filepath) if f is not None]
        except ValueError as e:
            raise ValueError(f"filepath: {filepath!r} is not a valid pattern ({e})") from None
        if any(f == "" or f.isdigit() for f in fields):
            raise ValueError(
                f"filepath: {filepath!r}: use named fields such as {{epoch}} or "
                "{val_loss}, not positional {}"
            )
        self.filepath = filepath
        self.save_best_only = bool(save_best_only)
        self.saved = []

    def on_train_begin(self, logs=None):
        self.best = None

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise ValueError(
                f"filepath: cannot fill {self.filepath!r} from epoch and "
                f"{sorted(logs)} ({type(e).__name__}: {e})"
            ) from None
        self.model.save(path)
        self.saved.append(path)


def step_decay(step_size, gamma=0.1):
    """``lr = lr0 * gamma ** floor(epoch / step_size)`` (a function of the epoch and
    the initial rate ``lr0``).

    Examples:
        >>> import cnnx
        >>> f = cnnx.callbacks.step_decay(step_size=2, gamma=0.1)
        >>> [round(f(epoch, 1.0), 4) for epoch in range(5)]
        [1.0, 1.0, 0.1, 0.1, 0.01]
    """
    step_size = as_int(step_size, "step_size", 1)
    gamma = _finite(gamma, "gamma")
    if not gamma > 0:
        raise ValueError(f"gamma: expected a positive number, got {gamma}")

    def schedule(epoch, lr0):
        return lr0 * gamma ** (epoch // step_size)

    return schedule


def cosine_decay(epochs, min_lr=0.0):
    """``lr = min_lr + (lr0 - min_lr) * (1 + cos(pi * epoch / epochs)) / 2``
    (lr0 at epoch 0, min_lr from ``epochs`` on).

    Examples:
        >>> import cnnx
        >>> f = cnnx.callbacks.cosine_decay(epochs=4)
        >>> [round(f(epoch, 1.0), 4) for epoch in range(4)]
        [1.0, 0.8536, 0.5, 0.1464]
    """
    epochs = as_int(epochs, "epochs", 1)
    min_lr = _finite(min_lr, "min_lr")
    if min_lr < 0:
        raise ValueError(f"min_lr: expected a number >= 0, got {min_lr}")

    def schedule(epoch, lr0):
        t = min(epoch, epochs) / epochs
        return min_lr + (lr0 - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))

    return schedule


class LearningRateScheduler(Callback):
    """Set the optimiser's learning rate at the start of every epoch.

    ``schedule``:

    - ``"step"`` (needs ``step_size``, optional ``gamma``) or ``"cosine"``
      (needs ``epochs``, optional ``min_lr``): functions of the epoch and the
      *initial* rate ``optimizer.initial_lr``, which ``fit`` records the first
      time it trains with this optimiser and never overwrites (it is saved
      with the model). So ``fit(epochs=k + 1, initial_epoch=k)`` in a loop,
      or ``load_model`` then ``fit(initial_epoch=k)``, gives exactly the rates
      of one long ``fit``.
    - a function ``f(epoch, lr) -> new_lr`` called with the *current* rate, as
      in Keras: ``lambda epoch, lr: lr * 0.5`` halves the rate every epoch, and
      a resumed run continues from the saved current rate.

    ``lrs`` records the rate of each epoch of the last ``fit``.

    Examples:
        >>> import cnnx
        >>> sched = cnnx.callbacks.LearningRateScheduler("cosine", epochs=10)
        >>> halve = cnnx.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    """

    def __init__(self, schedule, step_size=None, gamma=0.1, epochs=None, min_lr=0.0):
        self.builtin = isinstance(schedule, str)
        if schedule == "step":
            if step_size is None:
                raise ValueError("step_size: the step schedule needs step_size")
            self.schedule = step_decay(step_size, gamma)
        elif schedule == "cosine":
            if epochs is None:
                raise ValueError("epochs: the cosine schedule needs the number of epochs")
            self.schedule = cosine_decay(epochs, min_lr)
        elif callable(schedule):
            self.schedule = schedule
        else:
            raise ValueError(f"schedule: expected 'step', 'cosine' or a function, got {schedule!r}")
        self.lrs = []

    def on_train_begin(self, logs=None):
        opt = self.model.optimizer
        if getattr(opt, "initial_lr", None) is None:  # a loop other than fit's
            opt.initial_lr = opt.lr
        self.lrs = []

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = self.schedule(epoch, opt.initial_lr if self.builtin else opt.lr)
        if (
            isinstance(lr, (bool, np.bool_))
            or not isinstance(lr, numbers.Real)
            or not np.isfinite(lr)
            or lr < 0
        ):
            raise ValueError(f"schedule: returned {lr!r} for epoch {epoch}; expected a number >= 0")
        opt.lr = float(lr)
        self.lrs.append(float(lr))


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved
    by more than ``min_delta`` for ``patience`` epochs (Keras's rule).

    After a reduction, ``cooldown`` epochs pass before the count starts again;
    the rate never goes below ``min_lr``. ``mode``: "min", "max" or "auto"
    (max for accuracies). Each epoch's rate is in ``history["lr"]``.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        super().__init__(monitor, mode, min_delta)
        self.factor = _finite(factor, "factor")
        if not 0.0 <= self.factor < 1.0:
            raise ValueError(
                f"factor: expected a number in [0, 1) (the rate is multiplied by "
                f"it), got {self.factor}"
            )
        self.patience = as_int(patience, "patience", 0)
        self.cooldown = as_int(cooldown, "cooldown", 0)
        self.min_lr = _finite(min_lr, "min_lr")
        if self.min_lr < 0:
            raise ValueError(f"min_lr: expected a number >= 0, got {self.min_lr}")
        self.verbose = as_int(verbose, "verbose", 0)
        self._reset()

    def _reset(self):
        self.best = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        lr = getattr(self.model.optimizer, "lr", None)
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
            raise TypeError(
                f"ReduceLROnPlateau: the optimizer's lr is a {type(lr).__name__}, "
                "not a number it could reduce (a schedule sets the rate itself)"
            )
        self._reset()

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state):
        self.best, self.wait = state["best"], state["wait"]
        self.cooldown_counter = state["cooldown_counter"]

    def in_cooldown(self):
        """True while the rate is held after a reduction (``cooldown`` epochs)."""
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best = value
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                opt = self.model.optimizer
                old = float(opt.lr)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    if new <= 0:
                        raise ValueError(
                            f"ReduceLROnPlateau: the rate would become {new} (factor "
                            f"{self.factor}, min_lr {self.min_lr}); an optimiser "
                            "needs lr > 0: give min_lr > 0"
                        )
                    opt.lr = new
                    if self.verbose:
                        print(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                            f"to {new}."
                        )
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file (``epoch`` from 0, then
    the log keys in sorted order), flushed every epoch.

    ``append=True`` adds to an existing file (no second header), e.g. when a
    run resumes; otherwise the file is overwritten.
    """

    def __init__(self, filename, separator=",", append=False):
        if not isinstance(filename, (str, os.PathLike)) or not os.fspath(filename):
            raise TypeError("filename: expected a non-empty str or os.PathLike")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator: expected one character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self.writer = None
        self.csv_file = None

    def on_train_begin(self, logs=None):
        header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = not f.readline()
        self._header = header
        self.keys = None
        self.writer = None
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")

    @staticmethod
    def _cell(v):
        if isinstance(v, str):
            return v
        if np.ndim(v) > 0:
            return json.dumps(np.asarray(v).tolist())
        return v.item() if isinstance(v, np.generic) else v

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            sep = self.sep

            class Dialect(csv.excel):
                delimiter = sep

            self.writer = csv.DictWriter(
                self.csv_file, fieldnames=["epoch"] + self.keys, dialect=Dialect
            )
            if self._header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, self._cell(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.csv_file = None
        self.writer = None


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite (the
    epoch ends after that batch, and training with it)."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``;
    any hook name of :class:`Callback` may be given."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if name not in _HOOKS and name not in _ALIASES.values():
                raise TypeError(f"{name}: not a callback hook (hooks: {sorted(_HOOKS)})")
            if not callable(fn):
                raise TypeError(f"{name}: expected a function, got {type(fn).__name__}")
            setattr(self, name, fn)


class BackupAndRestore(Callback):
    """Resume an interrupted ``fit`` exactly where its last completed epoch ended.

    After every epoch (after all other callbacks' ``on_epoch_end``) one file,
    ``<backup_dir>/cnnx-backup.npz``, is written atomically (a temporary file,
    fsync, rename): the weights, BatchNormalization statistics, the optimiser
    state (step count, rate, moments), the epoch, the state of the random
    generators (fit's shuffling and cnnx's package generator: dropout,
    augmentation) and the state of the other callbacks that have one
    (EarlyStopping, ReduceLROnPlateau, ModelCheckpoint). When ``fit`` starts
    with this callback and the file exists, all of it is restored and training
    continues from the next epoch, so a run killed at any moment (even by
    ``kill -9``) and started again with the same code ends with exactly the
    weights of an uninterrupted run. Exact for array data and
    ``cnnx.data.Dataset`` (their batch order comes from the restored
    generator); a generator or DataLoader continues from wherever it is.

    ``delete_checkpoint``: remove the file when ``fit`` ends normally (as
    Keras). ``restored_epoch``: the epoch the last ``fit`` resumed after, or None.
    """

    FILENAME = "cnnx-backup.npz"
    FORMAT = 1

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise TypeError("backup_dir: expected a non-empty str or os.PathLike")
        if save_freq != "epoch":
            raise ValueError(
                f"save_freq: only 'epoch' is supported (an interrupted epoch is "
                f"trained again from its start), got {save_freq!r}"
            )
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = bool(delete_checkpoint)
        self.restored_epoch = None

    @property
    def path(self):
        """The backup file inside ``backup_dir``."""
        return os.path.join(self.backup_dir, self.FILENAME)

    def _state(self):
        state = getattr(self.model, "_fit_state", None)
        if state is None:
            raise RuntimeError("BackupAndRestore: works inside model.fit only")
        return state

    def on_train_begin(self, logs=None):
        from . import _backup

        state = self._state()
        if os.path.exists(self.backup_dir) and not os.path.isdir(self.backup_dir):
            raise NotADirectoryError(f"backup_dir: {self.backup_dir!r} is not a directory")
        os.makedirs(self.backup_dir, exist_ok=True)
        _backup.remove_temporaries(self.backup_dir)
        self.restored_epoch = None
        saved = _backup.read(self.path) if os.path.exists(self.path) else None
        if saved is not None:
            epoch, callback_states = _backup.restore(self.model, state, saved, self.path)
            self.restored_epoch = epoch
            state.initial_epoch = epoch + 1
            # after every callback's on_train_begin (which resets their counters)
            state.after_train_begin.append(
                lambda: _backup.restore_callbacks(state.callbacks, callback_states)
            )
        state.after_epoch_end.append(self._backup)

    def _backup(self, epoch, logs):
        from . import _backup

        _backup.write(self.path, self.model, self._state(), epoch)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
