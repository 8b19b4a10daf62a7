"""PReLU: a ReLU whose negative slope is learned (He et al. 2015).

``y = x`` where ``x > 0``, else ``alpha * x``. Keras's ``shared_axes`` says
along which (non-batch, 1-based) axes one slope is shared: ``None`` learns
one per value, ``[1, 2]`` on images one per channel (PyTorch's
``nn.PReLU(n_C)``), every axis a single slope (``nn.PReLU()``). The shared
axes must be leading ones (the slopes then repeat along the flattened
values, which is what the kernel needs): ``[1]`` or ``[1, 2]`` on images,
not ``[2]`` alone.

Parameter ``alpha`` of the unshared axes' shape; parameter count: its size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union
import numbers

import numpy as np

from .. import _core
from .._types import Shape
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["PReLU"]


def _shared_axes(v: Union[None, int, Sequence[int]]) -> Optional[list[int]]:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"shared_axes: expected None, an int or a list of ints, got {v!r}")
    if isinstance(v, numbers.Integral):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(
        isinstance(a, numbers.Integral) and not isinstance(a, (bool, np.bool_)) for a in v
    ):
        raise TypeError(f"shared_axes: expected None, an int or a list of ints, got {v!r}")
    return sorted({int(a) for a in v})


class PReLU(Layer):
    """A ReLU with a learned slope for x < 0.

    Args:
        alpha_initializer: the slopes' initial value (a number; default 0.25
            as PyTorch; Keras starts at 0).
        shared_axes: None (one slope per value), or the 1-based non-batch axes
            that share a slope: ``[1, 2]`` on ``(n_H, n_W, n_C)`` images is one
            slope per channel; all axes, a single slope.
    """

    has_params = True
    _fixed_after_build = ("shared_axes",)
    alpha_initializer: float
    shared_axes: Optional[list[int]]

    def __init__(
        self,
        alpha_initializer: float = 0.25,
        shared_axes: Union[None, int, Sequence[int]] = None,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        if (
            isinstance(alpha_initializer, (bool, np.bool_))
            or not isinstance(alpha_initializer, numbers.Real)
            or not np.isfinite(alpha_initializer)
        ):
            raise TypeError(
                f"alpha_initializer: expected a finite number, got {alpha_initializer!r}"
            )
        self.alpha_initializer = float(alpha_initializer)
        self.shared_axes = _shared_axes(shared_axes)

    def _build(self, input_shape: Shape) -> Shape:
        nd = len(input_shape)
        if nd < 1:
            raise ValueError(f"input_shape: PReLU needs at least one axis, got {input_shape}")
        shared = self.shared_axes or []
        for a in shared:
            if not 1 <= a <= nd:
                raise ValueError(
                    f"shared_axes: expected axes in 1..{nd} for inputs of shape "
                    f"{input_shape}, got {self.shared_axes}"
                )
        if shared != list(range(1, len(shared) + 1)):
            raise ValueError(
                f"shared_axes: only leading axes can be shared (e.g. [1, 2] on "
                f"images: one slope per channel), got {self.shared_axes}"
            )
        shape = tuple(input_shape[len(shared) :]) or (1,)
        self.add_param("alpha", np.full(shape, self.alpha_initializer, np.float32))
        return input_shape

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:
            self._x = x
        return _core.prelu(x, self.params["alpha"].reshape(-1))

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        train = self.trainable
        if not need_dx and not train:
            return None
        a = self.params["alpha"]
        dx, da = _core.prelu_backward(dy, self._x, a.reshape(-1), need_dx, train)
        if train:
            self._set_grad("alpha", da, accumulate)
        return dx

    def lower(self, g: Graph, x: Value) -> Value:
        return g.prelu(x, slope=g.param(self, "alpha"), slopes=self.params["alpha"].size)

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            alpha_initializer=self.alpha_initializer,
            shared_axes=self.shared_axes,
        )

    def summary_formulas(self) -> list[str]:
        shape = self.params["alpha"].shape
        return [f"{'*'.join(map(str, shape))} = {self.count_params()} slopes"]
