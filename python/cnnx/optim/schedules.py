"""Learning-rate schedules: pass one as an optimiser's ``lr`` (Keras's
``keras.optimizers.schedules``).

The optimiser evaluates the schedule at every step, with the number of
steps taken so far (0 for the first), as Keras does::

    lr = cnnx.optim.schedules.CosineDecay(0.0, decay_steps=1000, warmup_target=0.1,
                                          warmup_steps=100)
    model.compile(optimizer=cnnx.optim.SGD(lr=lr, momentum=0.9), loss="cross_entropy")

A schedule is saved with the model (its class and config). Your own
subclass of :class:`LearningRateSchedule` needs ``__call__(step)`` and
``get_config()``; define it before ``load_model`` reads a file that uses it.
A schedule that returns a negative or NaN rate stops training with a
ValueError at that step, before any weight changes.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np

__all__ = [
    "LearningRateSchedule",
    "CosineDecay",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "serialize",
    "deserialize",
]

_REGISTRY: dict[Any, type[LearningRateSchedule]] = {}


def _real(
    v: Any,
    name: str,
    minimum: Optional[float] = None,
    open_min: bool = False,
    maximum: Optional[float] = None,
    integer: bool = False,
) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__} {v!r}")
    if integer and (not isinstance(v, numbers.Integral) and not float(v).is_integer()):
        raise ValueError(f"{name}: expected a whole number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    if minimum is not None and (v < minimum or (open_min and v == minimum)):
        raise ValueError(
            f"{name}: expected a number {'>' if open_min else '>='} {minimum}, got {v}"
        )
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: expected a number <= {maximum}, got {v}")
    return int(v) if integer else v


class LearningRateSchedule:
    """Base class: ``schedule(step) -> lr``, with ``step`` the optimiser steps
    taken so far; ``get_config()`` / ``from_config`` for saving."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.get_config: needed to save the schedule")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with
    ``staircase`` the exponent is ``floor(step / decay_steps)``."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        decay_rate: float,
        staircase: bool = False,
        name: Optional[str] = None,
    ) -> None:
        self.initial_learning_rate = _real(initial_learning_rate, "initial_learning_rate", 0.0)
        self.decay_steps = _real(decay_steps, "decay_steps", 0.0, open_min=True)
        self.decay_rate = _real(decay_rate, "decay_rate", 0.0, open_min=True)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step: int) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last
    boundary (Keras's rule). ``len(values) == len(boundaries) + 1``."""

    def __init__(
        self, boundaries: Sequence[float], values: Sequence[float], name: Optional[str] = None
    ) -> None:
        if not isinstance(boundaries, (list, tuple, np.ndarray)) or len(boundaries) < 1:
            raise TypeError(
                f"boundaries: expected a non-empty list of step numbers, got {boundaries!r}"
            )
        if not isinstance(values, (list, tuple, np.ndarray)):
            raise TypeError(f"values: expected a list of learning rates, got {values!r}")
        b = [_real(x, "boundaries") for x in boundaries]
        if any(b1 <= b0 for b0, b1 in zip(b, b[1:])):
            raise ValueError(f"boundaries: expected strictly increasing steps, got {b}")
        if len(values) != len(b) + 1:
            raise ValueError(
                f"values: expected {len(b) + 1} values (one more than boundaries), "
                f"got {len(values)}"
            )
        self.boundaries = b
        self.values = [_real(x, "values", 0.0) for x in values]
        self.name = name

    def __call__(self, step: int) -> float:
        step = float(step)
        for bound, value in zip(self.boundaries, self.values):
            if step <= bound:
                return value
        return self.values[-1]

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras's ``CosineDecay``).

    Without ``warmup_target``: from ``initial_learning_rate`` down to
    ``alpha * initial_learning_rate`` over ``decay_steps``, then constant::

        lr = initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)

    With ``warmup_target``: a straight line from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps``, then the same decay from
    ``warmup_target`` over the next ``decay_steps``.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: float,
        alpha: float = 0.0,
        name: Optional[str] = None,
        warmup_target: Optional[float] = None,
        warmup_steps: float = 0,
    ) -> None:
        self.initial_learning_rate = _real(initial_learning_rate, "initial_learning_rate", 0.0)
        self.decay_steps = _real(decay_steps, "decay_steps", 0.0, open_min=True)
        self.alpha = _real(alpha, "alpha", 0.0, maximum=1.0)
        self.warmup_target = (
            None if warmup_target is None else _real(warmup_target, "warmup_target", 0.0)
        )
        self.warmup_steps = _real(warmup_steps, "warmup_steps", 0.0)
        if self.warmup_steps > 0 and self.warmup_target is None:
            raise ValueError(
                "warmup_target: needed when warmup_steps > 0 (the rate the warmup ends at)"
            )
        self.name = name

    def _decay(self, step: float, decay_from: float) -> float:
        fraction = step / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        step = float(step)
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            fraction = step / self.warmup_steps
            return (
                self.warmup_target - self.initial_learning_rate
            ) * fraction + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


def serialize(schedule: object) -> dict[str, Any]:
    """``{"class": name, "config": {...}}`` (JSON values) for a schedule."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(
            f"lr: {schedule!r} is a plain function; only a "
            "cnnx.optim.schedules.LearningRateSchedule can be saved"
        )
    return {"class": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(d: dict[str, Any]) -> LearningRateSchedule:
    """The schedule :func:`serialize` described."""
    if not isinstance(d, dict) or not isinstance(d.get("config"), dict):
        raise ValueError(f"lr: malformed schedule entry {d!r}")
    cls = _REGISTRY.get(d.get("class"))
    if cls is None:
        raise ValueError(
            f"lr: unknown schedule class {d.get('class')!r} (define it before loading)"
        )
    try:
        return cls.from_config(d["config"])
    except TypeError as e:
        raise ValueError(f"lr: cannot rebuild {d['class']} from its config ({e})") from None
