"""Dropout: inverted dropout, active only in training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional
import numbers

import numpy as np

from .. import _core
from .. import random as _random
from .._validate import as_int
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["Dropout"]


class Dropout(Layer):
    """Zero each value with probability ``rate`` in training and scale the
    rest by ``1/(1 - rate)`` (inverted dropout); the identity at inference.

    The mask comes from a counter-based generator in C++ seeded per call from
    ``cnnx.set_seed`` (or from ``seed`` here), so runs repeat exactly and the
    backward pass regenerates the mask instead of storing it.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> drop = cnnx.Dropout(0.5)
        >>> x = np.ones((1, 1000), np.float32)
        >>> bool((drop.forward(x) == x).all())                        # evaluation: the identity
        True
        >>> sorted(set(drop.forward(x, training=True).ravel().tolist()))
        [0.0, 2.0]
    """

    rate: float
    seed: Optional[int]
    _rng: Optional[np.random.Generator]

    def __init__(
        self,
        rate: float,
        seed: Optional[int] = None,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
            raise TypeError(f"rate: expected a number in [0, 1), got {type(rate).__name__}")
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate: expected a number in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = None if seed is None else as_int(seed, "seed", 0)
        self._rng = None if seed is None else np.random.default_rng(self.seed)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._seed = None
            return x
        rng = self._rng if self._rng is not None else _random.get_rng()
        self._seed = int(rng.integers(0, 2**63 - 1))
        y, _ = _core.dropout(x, self.rate, self._seed, False)
        return y

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        if self._seed is None:
            return dy
        return _core.dropout_backward_seeded(dy, self.rate, self._seed)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.dropout(x, rate=self.rate, layer=self)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), rate=self.rate, seed=self.seed)
