"""Flatten: ``(m, n_H, n_W, n_C) -> (m, n_H*n_W*n_C)``, a free reshape (no copy);
Reshape (any shape of the same size, also a view) and Permute (axes reordered).

NHWC flattens channel-fastest, as Keras does; a model imported from an NCHW
framework must permute its first dense layer's rows accordingly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union, cast
import math

import numpy as np

from .. import _core
from .._types import Shape
from .._validate import as_int
from .base import Layer, format_shape

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["Flatten", "Reshape", "Permute"]


class Flatten(Layer):
    """Flatten everything but the batch dimension (a view: no data moves).

    ``Sequential.summary()`` leaves it out of the table by default (it changes
    no value and the previous row already shows the same activation size), as
    the course's table does; ``summary(show_all=True)`` lists it.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.Flatten().forward(np.zeros((2, 5, 5, 16), np.float32)).shape
        (2, 400)
    """

    is_reshape = True

    def _build(self, input_shape: Shape) -> Shape:
        if None in input_shape:
            raise ValueError(
                f"input_shape: Flatten needs a fixed size, got {input_shape} (for "
                "inputs of any size use GlobalAvgPool2D before the Dense layers)"
            )
        return (int(math.prod(cast("tuple[int, ...]", input_shape))),)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return dy.reshape((dy.shape[0],) + self.input_shape)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.reshape(x, self.output_shape)


class Reshape(Layer):
    """The same values seen with another per-example shape (Keras's Reshape; a
    view: no data moves). ``target_shape`` excludes the batch axis and may hold
    one -1, inferred from the size."""

    _fixed_after_build = ("target_shape",)

    def __init__(
        self,
        target_shape: Union[int, Sequence[int]],
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        if isinstance(target_shape, (int, np.integer)):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not target_shape:
            raise TypeError(
                f"target_shape: expected a tuple such as (7, 7, 64), got {target_shape!r}"
            )
        shape = tuple(as_int(s, "target_shape", -1) for s in target_shape)
        if any(s == 0 for s in shape) or shape.count(-1) > 1:
            raise ValueError(f"target_shape: expected sizes >= 1 and at most one -1, got {shape}")
        self.target_shape = shape

    def _build(self, input_shape: Shape) -> Shape:
        if None in input_shape:
            raise ValueError(
                f"input_shape: Reshape needs a fixed size, got {input_shape} (for "
                "inputs of any size use GlobalAvgPool2D first)"
            )
        total = math.prod(cast("tuple[int, ...]", input_shape))
        known = math.prod(s for s in self.target_shape if s != -1)
        if -1 in self.target_shape:
            if total % known:
                raise ValueError(
                    f"target_shape: {self.target_shape} cannot hold the "
                    f"{total} values of an input of shape {tuple(input_shape)}"
                )
            return tuple(total // known if s == -1 else s for s in self.target_shape)
        if known != total:
            raise ValueError(
                f"target_shape: {self.target_shape} holds {known} values, the input "
                f"{tuple(input_shape)} has {total}"
            )
        return self.target_shape

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return x.reshape((x.shape[0],) + self.output_shape)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return dy.reshape((dy.shape[0],) + self.input_shape)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.reshape(x, self.output_shape)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), target_shape=list(self.target_shape))

    def summary_formulas(self) -> list[str]:
        return [
            f"{format_shape(self.input_shape)} -> {format_shape(self.output_shape)}, "
            f"{math.prod(self.input_shape)} values"
        ]


class Permute(Layer):
    """Reorder the axes after the batch axis (Keras's Permute): output axis i is
    input axis ``dims[i-1]``, axes numbered from 1, e.g. ``Permute((2, 1, 3))``
    swaps n_H and n_W. Its backward is the inverse permutation."""

    _fixed_after_build = ("dims",)

    def __init__(
        self, dims: Sequence[int], name: Optional[str] = None, trainable: bool = True
    ) -> None:
        super().__init__(name, trainable)
        if not isinstance(dims, (tuple, list)) or not dims:
            raise TypeError(f"dims: expected a tuple such as (2, 1, 3), got {dims!r}")
        dims = tuple(as_int(d, "dims", 1) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"dims: expected a permutation of 1..{len(dims)}, got {dims}")
        self.dims = dims
        self._perm = [d - 1 for d in dims]
        inv = [0] * len(dims)
        for a, p in enumerate(self._perm):
            inv[p] = a
        self._inverse = inv

    def _build(self, input_shape: Shape) -> Shape:
        if len(input_shape) != len(self.dims):
            raise ValueError(
                f"dims: {self.dims} permutes {len(self.dims)} axes, the input "
                f"{tuple(input_shape)} has {len(input_shape)}"
            )
        return tuple(input_shape[p] for p in self._perm)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.transpose(x, self._perm)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        return _core.transpose(dy, self._inverse) if need_dx else None

    def lower(self, g: Graph, x: Value) -> Value:
        return g.transpose(x, perm=self._perm)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), dims=list(self.dims))

    def summary_formulas(self) -> list[str]:
        return [
            f"dims {self.dims}: {format_shape(self.input_shape)} -> "
            f"{format_shape(self.output_shape)}"
        ]
