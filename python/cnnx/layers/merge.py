"""Merge layers: join several tensors into one (the functional API's joins).

``Add``, ``Subtract``, ``Multiply`` and ``Average`` combine tensors of the
same shape elementwise; ``Concatenate`` stacks them along an axis (the
channels by default: Inception's branches, DenseNet's growing feature maps,
U-Net's skip connections)::

    y = cnnx.Add()([a, b])                  # a residual join
    z = cnnx.Concatenate()([u, v])          # (h, w, c1) and (h, w, c2) -> (h, w, c1 + c2)

The elementwise joins take ``activation=`` as Conv2D and Dense do
(``Add(activation="relu")`` is a residual join with its ReLU; the plans fuse
it into the join's store). Each takes a list of inputs and, in backward,
returns a list of gradients:
a copy of dy for each input of Add (a fan-in sum was the forward), dy and
-dy for Subtract, dy times the other inputs for Multiply, dy/n for Average,
and the matching slices of dy for Concatenate (a split).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from .. import _core
from .._types import ArrayLike, Shape
from .activations import HasActivation
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["Add", "Subtract", "Multiply", "Average", "Concatenate"]


class _Merge(Layer):
    """Base of the merge layers: a list of inputs in, one tensor out."""

    _min_inputs = 2
    _max_inputs: Optional[int] = None

    def build(self, input_shape: Sequence[Sequence[Optional[int]]]) -> Shape:
        if (
            not isinstance(input_shape, (list, tuple))
            or not input_shape
            or not all(isinstance(s, (list, tuple)) for s in input_shape)
        ):
            raise ValueError(
                f"input_shape: {type(self).__name__} takes a list of input shapes, "
                f"got {input_shape!r}"
            )
        shapes = [tuple(None if d is None else int(d) for d in s) for s in input_shape]
        n = len(shapes)
        if n < self._min_inputs or (self._max_inputs is not None and n > self._max_inputs):
            want = (
                f"{self._min_inputs}"
                if self._max_inputs == self._min_inputs
                else f"at least {self._min_inputs}"
            )
            raise ValueError(f"inputs: {type(self).__name__} takes {want} inputs, got {n}")
        if self.built and shapes == self.input_shape:
            return self.output_shape
        self.output_shape = tuple(self._merged_shape(shapes))
        self.input_shape = shapes
        self.built = True
        return self.output_shape

    def _merged_shape(self, shapes: list[Shape]) -> Sequence[Optional[int]]:
        for s in shapes[1:]:
            if s != shapes[0]:
                raise ValueError(
                    f"inputs: {type(self).__name__} {self.name!r} needs equal shapes, "
                    f"got {' and '.join(map(str, shapes))}"
                )
        return shapes[0]

    def _check_input(self, x: Sequence[ArrayLike]) -> list[np.ndarray]:  # type: ignore[override]
        from .._validate import as_float32

        if not isinstance(x, (list, tuple)):
            raise TypeError(f"x: {type(self).__name__} takes a list of arrays")
        xs = [as_float32(a, "x") for a in x]
        shapes = [a.shape[1:] for a in xs]
        from .._validate import same_shape

        if not self.built:
            self.build(shapes)
        elif len(shapes) != len(self.input_shape) or not all(
            same_shape(tuple(s), p) for s, p in zip(shapes, self.input_shape)
        ):
            raise ValueError(
                f"x: {self.name} was built for inputs {self.input_shape}, got {shapes}"
            )
        if len({a.shape[0] for a in xs}) > 1:
            raise ValueError("x: the inputs hold different numbers of samples")
        return xs

    # a list of arrays, where Layer.forward takes one
    def forward(  # type: ignore[override]
        self, x: Sequence[ArrayLike], training: bool = False
    ) -> np.ndarray:
        xs = self._check_input(x)
        y = self._forward(xs, bool(training))
        if training:
            self._has_forward = True
            self._last_out_shape = tuple(y.shape)
        return y

    # a list (one gradient per input), where Layer.backward gives one array
    def backward(self, dy: ArrayLike) -> list[np.ndarray]:  # type: ignore[override]
        dxs = super().backward(dy)
        return list(dxs)


class _Eltwise(HasActivation, _Merge):
    """An elementwise join, then ``activation`` (None, "relu", "leaky_relu",
    "sigmoid", "tanh" or "softmax" over the last axis)."""

    _kind: Any = None  # a _core.EltwiseKind

    def __init__(
        self, activation: Optional[str] = None, name: Optional[str] = None, trainable: bool = True
    ) -> None:
        super().__init__(name, trainable)
        self.activation = activation

    def _forward(self, xs: list[np.ndarray], training: bool) -> np.ndarray:
        z = _core.eltwise(self._kind, xs)
        y = z if self._activation_name is None else self._act.forward(z)
        if training:
            self._xs, self._z, self._y = xs, z, y
        return y

    def _backward(self, dy: Any, need_dx: bool, accumulate: bool) -> Optional[list[np.ndarray]]:
        if not need_dx:
            return None
        if self._activation_name is not None:
            dy = self._act.backward(dy, self._z, self._y)
        return _core.eltwise_backward(self._kind, self._xs, dy)

    def softmax_logits(self) -> Optional[np.ndarray]:
        return self._z if self._activation_name == "softmax" else None

    def lower(self, g: Graph, xs: Sequence[Value]) -> Value:
        return self._act.lower(g, g.eltwise(list(xs), self._kind))

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), activation=self.activation)


class Add(_Eltwise):
    """``x[0] + x[1] + ...`` (equal shapes): the join of a residual block.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> x = cnnx.Input((4,))
        >>> model = cnnx.Model(x, cnnx.Add()([cnnx.Dense(3)(x), cnnx.Dense(3)(x)]))
        >>> model.output_shapes
        [(3,)]
    """

    _kind = _core.EltwiseKind.add


class Subtract(_Eltwise):
    """``x[0] - x[1]`` (two inputs of equal shape).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> a, b = cnnx.Input((3,)), cnnx.Input((3,))
        >>> model = cnnx.Model([a, b], cnnx.Subtract()([a, b]))
        >>> model.predict([np.ones((1, 3), np.float32), np.full((1, 3), 0.25, np.float32)])
        array([[0.75, 0.75, 0.75]], dtype=float32)
    """

    _kind = _core.EltwiseKind.sub
    _max_inputs = 2


class Multiply(_Eltwise):
    """``x[0] * x[1] * ...`` elementwise (gating, attention masks).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> a, b = cnnx.Input((2,)), cnnx.Input((2,))
        >>> model = cnnx.Model([a, b], cnnx.Multiply()([a, b]))
        >>> model.predict([np.full((1, 2), 3, np.float32), np.full((1, 2), 2, np.float32)])
        array([[6., 6.]], dtype=float32)
    """

    _kind = _core.EltwiseKind.mul


class Average(_Eltwise):
    """``(x[0] + ... + x[n-1]) / n`` (ensembles of branches).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> a, b = cnnx.Input((2,)), cnnx.Input((2,))
        >>> model = cnnx.Model([a, b], cnnx.Average()([a, b]))
        >>> model.predict([np.zeros((1, 2), np.float32), np.full((1, 2), 2, np.float32)])
        array([[1., 1.]], dtype=float32)
    """

    _kind = _core.EltwiseKind.avg


class Concatenate(_Merge):
    """Stack inputs along ``axis`` (default -1: the channels in NHWC).

    ``axis`` counts the batch axis as Keras does (``axis=3`` is the channel
    axis of an image batch); the inputs must agree on every other axis.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> x = cnnx.Input((8, 8, 3))
        >>> y = cnnx.Concatenate()([cnnx.Conv2D(4, 1)(x), cnnx.Conv2D(6, 3, padding="same")(x)])
        >>> y.shape                                                   # channels add up: 4 + 6
        (8, 8, 10)
    """

    _min_inputs = 1
    _fixed_after_build = ("axis",)
    axis: int

    def __init__(self, axis: int = -1, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name, trainable)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
        self.axis = int(axis)

    def _example_axis(self, rank: int) -> int:
        """The per-example axis index (no batch axis)."""
        nd = rank + 1
        if not -nd <= self.axis < nd or self.axis % nd == 0:
            raise ValueError(f"axis: expected a non-batch axis of a {nd}-D batch, got {self.axis}")
        return self.axis % nd - 1

    def _merged_shape(self, shapes: list[Shape]) -> Sequence[Optional[int]]:
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ValueError(
                f"inputs: Concatenate {self.name!r} needs inputs of one rank, got "
                f"{' and '.join(map(str, shapes))}"
            )
        a = self._example_axis(len(shapes[0]))
        for s in shapes[1:]:
            if s[:a] + s[a + 1 :] != shapes[0][:a] + shapes[0][a + 1 :]:
                raise ValueError(
                    f"inputs: Concatenate {self.name!r} needs equal shapes except "
                    f"on axis {self.axis}, got {' and '.join(map(str, shapes))}"
                )
        out = list(shapes[0])
        sizes = [s[a] for s in shapes]
        out[a] = None if None in sizes else sum(n for n in sizes if n is not None)
        return out

    def _forward(self, xs: list[np.ndarray], training: bool) -> np.ndarray:
        a = self._example_axis(len(self.output_shape))
        if training:
            self._sizes = [x.shape[a + 1] for x in xs]
        return _core.concat(xs, a + 1)

    def _backward(
        self, dy: np.ndarray, need_dx: bool, accumulate: bool
    ) -> Optional[list[np.ndarray]]:
        if not need_dx:
            return None
        a = self._example_axis(len(self.output_shape))
        return _core.concat_backward(dy, self._sizes, a + 1)

    def lower(self, g: Graph, xs: Sequence[Value]) -> Value:
        return g.concat(list(xs), self._example_axis(len(self.output_shape)))

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), axis=self.axis)

    def summary_formulas(self) -> list[str]:
        a = self._example_axis(len(self.output_shape))
        if self.output_shape[a] is None:
            return []
        parts = "+".join(str(s[a]) for s in self.input_shape)
        return [f"axis {self.axis}: {parts} = {self.output_shape[a]}"]
