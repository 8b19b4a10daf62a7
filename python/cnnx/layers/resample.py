"""Upsampling, padding and cropping layers (no parameters, n_C unchanged).

- ``UpSampling2D(size, interpolation)``: ``n_out = n * f`` ("nearest" repeats
  each pixel, "bilinear" blends with PyTorch's ``align_corners=False`` rule);
  the U-Net decoder's parameter-free alternative to Conv2DTranspose.
- ``ZeroPadding2D``, ``ConstantPadding2D``, ``ReflectionPadding2D``,
  ``ReplicationPadding2D``: ``n_out = n + p_before + p_after`` with zeros (or
  any ``value``), a mirror image without the edge repeated (each pad at most
  n - 1), or the edge pixel repeated.
- ``Cropping2D``: ``n_out = n - c_before - c_after``.

``padding`` / ``cropping``: an int, ``(sym_h, sym_w)`` or
``((top, bottom), (left, right))`` (Keras's forms).
"""

from __future__ import annotations

import numpy as np
from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple, Union
import numbers

from .. import _core
from .._types import IntPair, Shape
from ..functional._layout import resolve_pad_spec, upsample_factors
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = [
    "UpSampling2D",
    "ZeroPadding2D",
    "ConstantPadding2D",
    "ReflectionPadding2D",
    "ReplicationPadding2D",
    "Cropping2D",
]

_INTERPOLATIONS = {"nearest": _core.UpsampleMode.nearest, "bilinear": _core.UpsampleMode.bilinear}


#: an int for every side, (top/bottom, left/right) or ((top, bottom), (left, right))
PadSpec = Union[int, Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]


def _need_hwc(layer: Layer, input_shape: Shape) -> None:
    if len(input_shape) != 3:
        raise ValueError(
            f"input_shape: {type(layer).__name__} expects (n_H, n_W, n_C), got {input_shape}"
        )


def _json_pads(p4: Sequence[int]) -> list[list[int]]:
    t, b, l, r = p4
    return [[t, b], [l, r]]


class UpSampling2D(Layer):
    """Repeat (``"nearest"``) or interpolate (``"bilinear"``) by integer factors ``size``."""

    _fixed_after_build = ("size", "interpolation")

    def __init__(
        self,
        size: IntPair = (2, 2),
        interpolation: str = "nearest",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.size = upsample_factors(size)
        if not isinstance(interpolation, str) or interpolation.lower() not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation: expected 'nearest' or 'bilinear', got {interpolation!r}"
            )
        self.interpolation = interpolation.lower()
        self._mode = _INTERPOLATIONS[self.interpolation]

    def _build(self, input_shape: Shape) -> Shape:
        _need_hwc(self, input_shape)
        h, w, c = input_shape
        return (h * self.size[0], w * self.size[1], c)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.upsample2d(x, factors=self.size, mode=self._mode)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.upsample2d(x, self._mode, *self.size)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.upsample2d_backward(dy, self._mode, *self.size)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), size=list(self.size), interpolation=self.interpolation)

    def summary_formulas(self) -> list[str]:
        (h, w, _), (fh, fw) = self.input_shape, self.size
        if (h, fh) == (w, fw):
            return [f"{h}*{fh} = {h * fh}"]
        return [f"n_H: {h}*{fh} = {h * fh}", f"n_W: {w}*{fw} = {w * fw}"]


class _Padding2D(Layer):
    """Padding with one of the core's modes (constant zeros, reflect, edge)."""

    _fixed_after_build = ("padding",)
    _mode = _core.PadMode.constant
    _value = 0.0

    def __init__(
        self, padding: PadSpec = (1, 1), name: Optional[str] = None, trainable: bool = True
    ) -> None:
        super().__init__(name, trainable)
        self._p4 = resolve_pad_spec(padding, "padding")
        self.padding = ((self._p4[0], self._p4[1]), (self._p4[2], self._p4[3]))

    def _build(self, input_shape: Shape) -> Shape:
        _need_hwc(self, input_shape)
        h, w, c = input_shape
        t, b, l, r = self._p4
        if self._mode == _core.PadMode.reflect and (max(t, b) >= h or max(l, r) >= w):
            raise ValueError(
                f"padding: reflection padding must be narrower than the input "
                f"(each pad <= n - 1), got {self.padding} for a {h}x{w} input"
            )
        return (h + t + b, w + l + r, c)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.pad2d(x, pads=self._p4, mode=self._mode, value=self._value)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.pad2d(x, self._mode, self._p4, self._value)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.pad2d_backward(dy, self._mode, self._p4, *self.input_shape[:2])

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), padding=_json_pads(self._p4))

    def summary_formulas(self) -> list[str]:
        h, w, _ = self.input_shape
        t, b, l, r = self._p4
        fh = f"{h}+{t}+{b} = {h + t + b}"
        fw = f"{w}+{l}+{r} = {w + l + r}"
        return [fh] if (h, t, b) == (w, l, r) else [f"n_H: {fh}", f"n_W: {fw}"]


class ZeroPadding2D(_Padding2D):
    """Zeros around the image (a convolution's padding as a layer of its own)."""


class ConstantPadding2D(_Padding2D):
    """A constant ``value`` around the image (PyTorch's ConstantPad2d, ONNX Pad
    "constant" with a value)."""

    def __init__(
        self,
        padding: PadSpec = (1, 1),
        value: float = 0.0,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(padding, name, trainable)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"value: expected a number, got {type(value).__name__}")
        self._value = float(value)

    @property
    def value(self) -> float:
        """The padding value (fixed: it is part of the layer's definition)."""
        return self._value

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), value=self._value)


class ReflectionPadding2D(_Padding2D):
    """Mirror the image at its border without repeating the edge (PyTorch's
    ReflectionPad2d, ONNX Pad "reflect"): ``c b | a b c d | c b``. Each pad at
    most n - 1."""

    _mode = _core.PadMode.reflect


class ReplicationPadding2D(_Padding2D):
    """Repeat the edge pixel (PyTorch's ReplicationPad2d, ONNX Pad "edge")."""

    _mode = _core.PadMode.edge


class Cropping2D(Layer):
    """Remove rows and columns at the border (U-Net crops skip connections this way)."""

    _fixed_after_build = ("cropping",)

    def __init__(
        self,
        cropping: PadSpec = ((0, 0), (0, 0)),
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self._c4 = resolve_pad_spec(cropping, "cropping")
        self.cropping = ((self._c4[0], self._c4[1]), (self._c4[2], self._c4[3]))

    def _build(self, input_shape: Shape) -> Shape:
        _need_hwc(self, input_shape)
        h, w, c = input_shape
        t, b, l, r = self._c4
        if t + b >= h or l + r >= w:
            raise ValueError(f"cropping: {self.cropping} leaves nothing of a {h}x{w} input")
        self._p4 = (-t, -b, -l, -r)
        return (h - t - b, w - l - r, c)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.pad2d(x, pads=self._p4)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.pad2d(x, _core.PadMode.constant, self._p4, 0.0)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.pad2d_backward(dy, _core.PadMode.constant, self._p4, *self.input_shape[:2])

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), cropping=_json_pads(self._c4))

    def summary_formulas(self) -> list[str]:
        h, w, _ = self.input_shape
        t, b, l, r = self._c4
        fh = f"{h}-{t}-{b} = {h - t - b}"
        fw = f"{w}-{l}-{r} = {w - l - r}"
        return [fh] if (h, t, b) == (w, l, r) else [f"n_H: {fh}", f"n_W: {fw}"]
