"""Optimisers on one fused C++ step: SGD (momentum, Nesterov, weight decay),
Adam, AdamW, RMSprop and Adagrad with PyTorch's update rules, and for every
one of them Keras's gradient clipping (``clipnorm`` per parameter tensor,
``global_clipnorm``, ``clipvalue``), an exponential moving average of the
weights (``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``) and a
learning-rate schedule as ``lr`` (:mod:`cnnx.optim.schedules`).

A model keeps every parameter in one flat float32 buffer and every gradient
in another (``model.store.params`` / ``model.store.grads``; each layer's
arrays are views into them). An optimiser therefore makes one C++ call per
step over the whole model (``_core.optimizer_step``): one pass over
parameters, gradients and its own state (velocity, Adam's two moments, ...,
the moving average), which it keeps flat too; clipping by a norm adds one
read-only pass over the gradients before it. Frozen layers
(``layer.trainable = False``) are skipped: the step covers only the
trainable ranges of the buffer.

Use with a model::

    model.compile(optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")

or by hand: ``opt.bind(model.store)``, then ``opt.step()`` after each
backward pass.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Optional, Union, cast

import numpy as np

from .. import _core

from . import schedules
from .schedules import LearningRateSchedule

if TYPE_CHECKING:
    from ..layers.base import ParamStore

#: a rate > 0, a schedule (cnnx.optim.schedules) or a function of the step count
LearningRate = Union[float, LearningRateSchedule, Callable[[int], float]]

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "get_optimizer", "schedules"]


def _number(
    v: Any,
    name: str,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    open_min: bool = False,
    open_max: bool = False,
) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    if minimum is not None and (v < minimum or (open_min and v == minimum)):
        op = ">" if open_min else ">="
        raise ValueError(f"{name}: expected a number {op} {minimum}, got {v}")
    if maximum is not None and (v > maximum or (open_max and v == maximum)):
        op = "<" if open_max else "<="
        raise ValueError(f"{name}: expected a number {op} {maximum}, got {v}")
    return v


def _schedule_like(v: object) -> bool:
    """A schedule object or a plain function of the step (not a number)."""
    return isinstance(v, LearningRateSchedule) or (callable(v) and not isinstance(v, numbers.Real))


class Optimizer:
    """Base class: ``lr`` (a number or a schedule), the step count, clipping,
    the moving average of the weights and flat state buffers.

    Keyword arguments every optimiser takes (Keras's names and rules):

    - ``clipnorm``: clip each parameter tensor's gradient to this L2 norm
      (``g * clipnorm / max(||g||, clipnorm)``);
    - ``global_clipnorm``: clip the gradients of all trainable parameters
      together to this norm (``torch.nn.utils.clip_grad_norm_``);
    - ``clipvalue``: clip each gradient value to ``[-clipvalue, clipvalue]``;
      at most one of the three;
    - ``use_ema``: keep ``ema = m * ema + (1 - m) * weights`` after every
      step, ``m = ema_momentum`` (0 on the optimiser's first step);
      ``ema_overwrite_frequency = k`` copies the average into the weights
      every k steps. ``fit`` ends with the averaged weights in the model
      (:meth:`finalize_variable_values`, as Keras); :meth:`ema_weights`
      swaps them in for a while (``with opt.ema_weights(): model.evaluate(...)``).

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.SGD(lr=0.1)
        >>> opt.lr
        0.1
    """

    #: update rule of the fused step, and the state buffer names it calls s0, s1, s2
    _rule = None
    _slot_names: tuple[Optional[str], ...] = (None, None, None)

    #: a step count from a file must stay far from int64 overflow in the kernels
    MAX_ITERATIONS = 2**53

    def __init__(
        self,
        lr: LearningRate,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        learning_rate: Optional[LearningRate] = None,
    ) -> None:
        if learning_rate is not None:  # Keras's name for lr
            lr = learning_rate
        self._schedule: Optional[Callable[[int], Any]] = None
        self._lr: Optional[float] = None
        if _schedule_like(lr):
            self._schedule = cast(Callable[[int], Any], lr)
        else:
            self._lr = _number(lr, "lr", 0.0, open_min=True)
        given = [
            k
            for k, v in (
                ("clipnorm", clipnorm),
                ("clipvalue", clipvalue),
                ("global_clipnorm", global_clipnorm),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"{given[1]}: only one of clipnorm, clipvalue and global_clipnorm "
                f"can be set (got {', '.join(given)})"
            )
        self.clipnorm = (
            None if clipnorm is None else _number(clipnorm, "clipnorm", 0.0, open_min=True)
        )
        self.clipvalue = (
            None if clipvalue is None else _number(clipvalue, "clipvalue", 0.0, open_min=True)
        )
        self.global_clipnorm = (
            None
            if global_clipnorm is None
            else _number(global_clipnorm, "global_clipnorm", 0.0, open_min=True)
        )
        self.use_ema = bool(use_ema)
        self.ema_momentum = _number(ema_momentum, "ema_momentum", 0.0, 1.0)
        if ema_overwrite_frequency is not None:
            if (
                isinstance(ema_overwrite_frequency, (bool, np.bool_))
                or not isinstance(ema_overwrite_frequency, numbers.Integral)
                or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    f"ema_overwrite_frequency: expected None or an int >= 1, got "
                    f"{ema_overwrite_frequency!r}"
                )
            ema_overwrite_frequency = int(ema_overwrite_frequency)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        #: the rate when training first started (set by ``fit``, never overwritten,
        #: saved with the model): what the built-in schedules decay from
        self.initial_lr: Optional[float] = None
        self.iterations = 0
        self.store: Optional[ParamStore] = None
        self.state: dict[str, np.ndarray] = {}
        self._state_loaded = False  # state came from load_state_dict, not yet bound
        self._args = _core.OptimStepArgs()
        self._seg_key: Optional[tuple[int, int, bool]] = None
        self._seg: Optional[np.ndarray] = None

    # ---- the learning rate --------------------------------------------------
    @property
    def lr(self) -> Any:
        """The rate of the next step (a schedule's value at :attr:`iterations`)."""
        if self._schedule is not None:
            value = self._schedule(self.iterations)
            return float(value) if np.ndim(value) == 0 else value
        return self._lr

    @lr.setter
    def lr(self, value: LearningRate) -> None:
        if _schedule_like(value):
            self._schedule = cast(Callable[[int], Any], value)
            self._lr = None
            return
        if self._schedule is not None:
            raise TypeError(
                f"lr: this optimizer follows the schedule {self._schedule!r}, so "
                "its rate cannot be set to a number (assign a new schedule, or "
                "build the optimizer with a number)"
            )
        self._lr = _number(value, "lr", 0.0)

    @property
    def learning_rate(self) -> Any:
        """Keras's name for :attr:`lr`.

        Examples:
            >>> import cnnx
            >>> opt = cnnx.optim.SGD(learning_rate=0.1)
            >>> opt.learning_rate = 0.05
            >>> opt.lr
            0.05
        """
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        self.lr = value

    @property
    def schedule(self) -> Optional[Callable[[int], Any]]:
        """The learning-rate schedule given as ``lr``, or None."""
        return self._schedule

    def _step_lr(self) -> float:
        """This step's rate; a schedule's bad value raises before any change."""
        if self._schedule is None:
            return cast(float, self._lr)  # a number whenever there is no schedule
        value = self._schedule(self.iterations)
        bad = isinstance(value, (bool, np.bool_)) or np.ndim(value) != 0
        if not bad:
            try:
                value = float(value)
            except (TypeError, ValueError):
                bad = True
        if bad or not np.isfinite(value) or value < 0:
            raise ValueError(
                f"lr: the schedule {self._schedule!r} returned {value!r} at step "
                f"{self.iterations}; expected a finite number >= 0 (the weights "
                "were not changed)"
            )
        return value

    # ---- state --------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the flat state buffers this optimiser keeps now."""
        names = tuple(n for n in self._slots() if n is not None)
        return names + ("ema",) if self.use_ema else names

    def _slots(self) -> tuple[Optional[str], ...]:
        """The state buffer names the rule reads as s0, s1, s2 (None: unused)."""
        return self._slot_names

    def _initial_state(self, name: str, store: ParamStore) -> np.ndarray:
        if name == "ema":  # Keras: the average starts as the weights
            return store.params.copy()
        return np.zeros(store.params.shape, np.float32)

    # ---- binding to a model's parameters ------------------------------------
    def bind(self, store: ParamStore) -> None:
        """Attach to a :class:`cnnx.layers.base.ParamStore` (done by ``compile``).

        State of the same size carries over. State restored by
        :meth:`load_state_dict` (e.g. by ``load_model``) must match the
        parameters' size: a mismatch raises ValueError naming the state array
        instead of silently restarting from zeros. State left from an earlier
        binding to a model of another size starts again at zero.
        """
        loaded = self._state_loaded
        for name in self.state_names:
            old = self.state.get(name)
            if loaded and old is not None and old.shape != store.params.shape:
                raise ValueError(
                    f"state: optimizer state {name!r} has {old.size} values, the "
                    f"model has {store.params.size} parameters"
                )
        self.store = store
        self._state_loaded = False
        self._seg_key = None
        for name in self.state_names:
            old = self.state.get(name)
            if old is None or old.shape != store.params.shape:
                self.state[name] = self._initial_state(name, store)

    def _check_bound(self) -> ParamStore:
        if self.store is None:
            raise ValueError(
                "optimizer: not attached to any parameters (call "
                "model.compile(optimizer=...) or optimizer.bind(model.store))"
            )
        return self.store

    def _buffer(self, name: Optional[str]) -> Optional[np.ndarray]:
        if name is None:
            return None
        store = self._check_bound()
        buf = self.state.get(name)
        if buf is None or buf.shape != store.params.shape:  # a setting changed since bind
            buf = self.state[name] = self._initial_state(name, store)
        return buf

    def _segments(self) -> np.ndarray:
        """[begin, end) rows the step covers: the trainable ranges, or with
        clipnorm each trainable parameter tensor (clipped on its own)."""
        store = self._check_bound()
        runs = store.trainable_runs()
        key = (id(store), id(runs), self.clipnorm is not None)
        if key != self._seg_key:
            if self.clipnorm is not None:
                from ..layers.base import walk

                trainable = {id(layer) for layer, t in walk(store.layers) if t}
                seg = [
                    (start, start + size)
                    for layer, _n, start, size, _s in store.slots
                    if id(layer) in trainable
                ]
            else:
                seg = runs
            self._seg = np.asarray(seg, np.int64).reshape(-1, 2)
            self._seg_key = key
        return cast(np.ndarray, self._seg)

    def _configure(self, args: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Apply one update to every trainable parameter from its gradient."""
        store = self._check_bound()
        lr = self._step_lr()
        args = self._args
        self._configure(args)
        args.lr = lr
        args.step = self.iterations + 1
        if self.clipnorm is not None:
            args.clip, args.clip_value = _core.ClipMode.per_segment_norm, self.clipnorm
        elif self.global_clipnorm is not None:
            args.clip, args.clip_value = _core.ClipMode.global_norm, self.global_clipnorm
        elif self.clipvalue is not None:
            args.clip, args.clip_value = _core.ClipMode.value, self.clipvalue
        else:
            args.clip = _core.ClipMode.none
        args.ema = self.use_ema
        if self.use_ema:
            args.ema_momentum = 0.0 if self.iterations == 0 else self.ema_momentum
            freq = self.ema_overwrite_frequency
            args.ema_overwrite = freq is not None and (self.iterations + 1) % freq == 0
        s0, s1, s2 = (self._buffer(n) for n in self._slots())
        ema = self._buffer("ema") if self.use_ema else None
        _core.optimizer_step(args, store.params, store.grads, s0, s1, s2, ema, self._segments())
        self.iterations += 1

    def zero_grad(self) -> None:
        """Zero all gradients of the bound parameters (one fill of the flat buffer)."""
        self._check_bound().grads.fill(0.0)

    # ---- the moving average of the weights ----------------------------------
    def _ema_ranges(self) -> tuple[list[tuple[int, int]], np.ndarray]:
        if not self.use_ema:
            raise ValueError(
                "use_ema: this optimizer keeps no moving average (build it with use_ema=True)"
            )
        store = self._check_bound()
        return store.trainable_runs(), cast(np.ndarray, self._buffer("ema"))

    def swap_ema_weights(self) -> None:
        """Exchange the trainable weights and their moving average (twice: back)."""
        runs, ema = self._ema_ranges()
        p = self._check_bound().params
        for a, b in runs:
            tmp = p[a:b].copy()
            p[a:b] = ema[a:b]
            ema[a:b] = tmp

    def ema_weights(self) -> ContextManager[Optimizer]:
        """A context manager: the averaged weights in the model inside the block
        (evaluate, predict or save them), the trained ones again after it."""
        import contextlib

        @contextlib.contextmanager
        def swapped() -> Iterator[Optimizer]:
            self.swap_ema_weights()
            try:
                yield self
            finally:
                self.swap_ema_weights()

        return swapped()

    def finalize_variable_values(self) -> None:
        """Copy the moving average into the trainable weights (Keras calls this
        at the end of ``fit``); nothing without ``use_ema``."""
        if not self.use_ema or self.store is None or self.iterations == 0:
            return
        runs, ema = self._ema_ranges()
        p = self.store.params
        for a, b in runs:
            p[a:b] = ema[a:b]

    # ---- saving -------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The hyper-parameters as a dict (saved with a compiled model)."""
        cfg: dict[str, Any] = {
            "lr": self._lr if self._schedule is None else schedules.serialize(self._schedule)
        }
        for k in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, k) is not None:
                cfg[k] = getattr(self, k)
        if self.use_ema:
            cfg.update(
                use_ema=True,
                ema_momentum=self.ema_momentum,
                ema_overwrite_frequency=self.ema_overwrite_frequency,
            )
        return cfg

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, step count and copies of the state buffers."""
        return {
            "class": type(self).__name__,
            "config": self.get_config(),
            "iterations": self.iterations,
            "initial_lr": self.initial_lr,
            "state": {k: v.copy() for k, v in self.state.items()},
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (sizes must match when bound)."""
        it = d.get("iterations", 0)
        if (
            isinstance(it, (bool, np.bool_))
            or not isinstance(it, numbers.Integral)
            or not 0 <= int(it) <= self.MAX_ITERATIONS
        ):
            raise ValueError(f"iterations: expected an int in [0, 2**53], got {it!r}")
        initial_lr = d.get("initial_lr")
        if initial_lr is not None:
            initial_lr = _number(initial_lr, "initial_lr", 0.0, open_min=True)
        state: dict[str, np.ndarray] = {}
        for k, v in d.get("state", {}).items():
            if k not in self.state_names:
                raise ValueError(f"state: unknown optimizer state {k!r} for {type(self).__name__}")
            try:
                v = np.ascontiguousarray(v, np.float32).reshape(-1)
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"state: optimizer state {k!r} is not an array of numbers ({e})"
                ) from None
            if self.store is not None and v.shape != self.store.params.shape:
                raise ValueError(
                    f"state: optimizer state {k!r} has {v.size} values, the "
                    f"model has {self.store.params.size} parameters"
                )
            state[k] = v.copy()
        self.iterations = int(it)
        self.initial_lr = initial_lr
        self.state.update(state)
        self._state_loaded = self.store is None and bool(state)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # the C++ argument pack is rebuilt, not pickled
        state["_args"] = None
        state["_seg_key"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._args = _core.OptimStepArgs()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's rule (dampening 0)::

        g = grad + weight_decay * param
        v = momentum * v + g                  (if momentum)
        g = g + momentum * v if nesterov else v
        param -= lr * g

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    def __init__(
        self,
        lr: LearningRate = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr, **kwargs)
        self.momentum = _number(momentum, "momentum", 0.0, 1.0, open_max=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov: Nesterov momentum needs momentum > 0")
        self.weight_decay = _number(weight_decay, "weight_decay", 0.0)

    def _slots(self) -> tuple[Optional[str], ...]:
        return ("velocity" if self.momentum else None, None, None)

    def _configure(self, a: Any) -> None:
        a.rule = _core.OptimRule.sgd
        a.momentum = self.momentum
        a.nesterov = self.nesterov and self.momentum != 0.0
        a.weight_decay = self.weight_decay

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's rule; ``weight_decay`` is an L2 term added
    to the gradient (use :class:`AdamW` for decoupled decay).

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.Adam(lr=1e-3)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    _slot_names = ("m", "v", None)
    decoupled = False

    def __init__(
        self,
        lr: LearningRate = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr, **kwargs)
        self.beta1 = _number(beta1, "beta1", 0.0, 1.0, open_max=True)
        self.beta2 = _number(beta2, "beta2", 0.0, 1.0, open_max=True)
        self.eps = _number(eps, "eps", 0.0, open_min=True)
        self.weight_decay = _number(weight_decay, "weight_decay", 0.0)

    def _configure(self, a: Any) -> None:
        a.rule = _core.OptimRule.adam
        a.beta1, a.beta2, a.eps = self.beta1, self.beta2, self.eps
        a.weight_decay = self.weight_decay
        a.decoupled = self.decoupled

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter):
    ``param *= 1 - lr * weight_decay`` before the Adam step (default 0.01, as PyTorch).

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.AdamW(lr=2e-3, weight_decay=0.01)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    decoupled = True

    def __init__(
        self,
        lr: LearningRate = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop, PyTorch's rule (``torch.optim.RMSprop``)::

        g = grad + weight_decay * param
        square_avg = alpha * square_avg + (1 - alpha) * g**2
        centered:  grad_avg = grad_avg + (1 - alpha) * (g - grad_avg)
                   avg = sqrt(square_avg - grad_avg**2) + eps
        else:      avg = sqrt(square_avg) + eps
        momentum:  buf = momentum * buf + g / avg;  param -= lr * buf
        else:      param -= lr * g / avg

    (Keras's ``rho`` is ``alpha`` here; PyTorch's defaults.)

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.RMSprop(lr=1e-3, momentum=0.9, global_clipnorm=1.0)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    def __init__(
        self,
        lr: LearningRate = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr, **kwargs)
        self.alpha = _number(alpha, "alpha", 0.0, 1.0)
        self.eps = _number(eps, "eps", 0.0, open_min=True)
        self.weight_decay = _number(weight_decay, "weight_decay", 0.0)
        self.momentum = _number(momentum, "momentum", 0.0, 1.0, open_max=True)
        self.centered = bool(centered)

    def _slots(self) -> tuple[Optional[str], ...]:
        return (
            "square_avg",
            "momentum_buffer" if self.momentum else None,
            "grad_avg" if self.centered else None,
        )

    def _configure(self, a: Any) -> None:
        a.rule = _core.OptimRule.rmsprop
        a.alpha, a.eps, a.momentum = self.alpha, self.eps, self.momentum
        a.weight_decay = self.weight_decay
        a.centered = self.centered

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
        }


class Adagrad(Optimizer):
    """Adagrad, PyTorch's rule (``torch.optim.Adagrad``)::

        g = grad + weight_decay * param
        clr = lr / (1 + (step - 1) * lr_decay)       (step counts from 1)
        sum = sum + g**2                             (starts at initial_accumulator_value)
        param -= clr * g / (sqrt(sum) + eps)

    Examples:
        >>> import cnnx
        >>> opt = cnnx.optim.Adagrad(lr=0.05, initial_accumulator_value=0.1, use_ema=True)
        >>> # model.compile(optimizer=opt, loss="cross_entropy")
    """

    _slot_names = ("sum", None, None)

    def __init__(
        self,
        lr: LearningRate = 0.01,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        **kwargs: Any,
    ) -> None:
        super().__init__(lr, **kwargs)
        self.lr_decay = _number(lr_decay, "lr_decay", 0.0)
        self.weight_decay = _number(weight_decay, "weight_decay", 0.0)
        self.initial_accumulator_value = _number(
            initial_accumulator_value, "initial_accumulator_value", 0.0
        )
        self.eps = _number(eps, "eps", 0.0, open_min=True)

    def _initial_state(self, name: str, store: ParamStore) -> np.ndarray:
        if name == "sum":
            return np.full(store.params.shape, self.initial_accumulator_value, np.float32)
        return super()._initial_state(name, store)

    def _configure(self, a: Any) -> None:
        a.rule = _core.OptimRule.adagrad
        a.lr_decay, a.eps = self.lr_decay, self.eps
        a.weight_decay = self.weight_decay

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.eps,
        }


_BY_NAME: dict[str, Callable[..., Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}
_BY_CLASS: dict[Any, type[Optimizer]] = {
    cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)
}


def get_optimizer(spec: Union[str, Optimizer]) -> Optimizer:
    """An Optimizer from an instance or a name ("sgd", "adam", "adamw", "rmsprop", "adagrad").

    Examples:
        >>> import cnnx
        >>> type(cnnx.optim.get_optimizer("adam")).__name__
        'Adam'
    """
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise ValueError(f"optimizer: expected an Optimizer or one of {sorted(_BY_NAME)}, got {spec!r}")


def optimizer_from_state(d: dict[str, Any]) -> Optimizer:
    """Rebuild an optimiser from :meth:`Optimizer.state_dict` output."""
    cls = _BY_CLASS.get(d.get("class"))
    if cls is None:
        raise ValueError(f"optimizer: unknown optimizer class {d.get('class')!r}")
    config = dict(d.get("config", {}))
    if isinstance(config.get("lr"), dict):  # a schedule
        config["lr"] = schedules.deserialize(config["lr"])
    opt = cls(**config)
    opt.load_state_dict(d)
    return opt
