"""Callbacks for ``fit``: EarlyStopping, ModelCheckpoint and
LearningRateScheduler (step and cosine schedules, or any function).

A callback sees ``on_train_begin()``, ``on_epoch_begin(epoch)``,
``on_epoch_end(epoch, logs)`` and ``on_train_end()``; ``logs`` holds the
epoch's ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and ``lr``.
"""
import math
import numbers
import string

import numpy as np

from ._validate import as_int

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "step_decay", "cosine_decay"]


class Callback:
    """Base class: override the hooks you need; ``self.model`` is set by ``fit``.

    Examples:
        >>> import cnnx
        >>> class PrintLoss(cnnx.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         print(f"epoch {epoch}: loss {logs['loss']:.3f}")
    """

    model = None

    def set_model(self, model):
        """Called by ``fit`` before training: the model this callback watches."""
        self.model = model

    def on_train_begin(self):
        """Called once when ``fit`` starts."""
        pass

    def on_epoch_begin(self, epoch):
        """Called before each epoch (``epoch`` counts from 0)."""
        pass

    def on_epoch_end(self, epoch, logs):
        """Called after each epoch with its ``logs`` (``loss``, metrics, ``val_*``).

        Setting ``self.model.stop_training = True`` ends training after this epoch.
        """
        pass

    def on_train_end(self):
        """Called once when ``fit`` ends (also after an early stop)."""
        pass


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
            raise ValueError(f"monitor: {self.monitor!r} is not among the logged metrics "
                             f"{sorted(logs)} (val_* needs validation data)")
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

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        super().__init__(monitor, mode, min_delta)
        self.patience = as_int(patience, "patience", 0)
        self.restore_best_weights = bool(restore_best_weights)

    def on_train_begin(self):
        self.best = None
        self.wait = 0
        self.best_epoch = None
        self.stopped_epoch = None
        self._best_weights = None

    def on_epoch_end(self, epoch, logs):
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

    def on_train_end(self):
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
            raise ValueError(f"filepath: {filepath!r}: use named fields such as {{epoch}} or "
                             "{val_loss}, not positional {}")
        self.filepath = filepath
        self.save_best_only = bool(save_best_only)
        self.saved = []

    def on_train_begin(self):
        self.best = None

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError, AttributeError) as e:
            raise ValueError(f"filepath: cannot fill {self.filepath!r} from epoch and "
                             f"{sorted(logs)} ({type(e).__name__}: {e})") from None
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

    def on_train_begin(self):
        opt = self.model.optimizer
        if getattr(opt, "initial_lr", None) is None:  # a loop other than fit's
            opt.initial_lr = opt.lr
        self.lrs = []

    def on_epoch_begin(self, epoch):
        opt = self.model.optimizer
        lr = self.schedule(epoch, opt.initial_lr if self.builtin else opt.lr)
        if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real) or \
                not np.isfinite(lr) or lr < 0:
            raise ValueError(f"schedule: returned {lr!r} for epoch {epoch}; expected a "
                             "number >= 0")
        opt.lr = float(lr)
        self.lrs.append(float(lr))
