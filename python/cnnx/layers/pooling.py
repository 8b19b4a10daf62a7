"""Pooling layers: max, average, adaptive (average and max) and global average.

Pooling has no parameters and keeps n_C: each of n_H and n_W becomes
``floor((n + p_before + p_after - f)/s) + 1`` (the course notes misplace a
bracket in this formula; n_C is unchanged). The stride defaults to the pool
size. Adaptive pooling picks its windows from the output size with the exact
rule ``start = floor(i*n/out)``, ``end = ceil((i+1)*n/out)``; when out
divides n this is the course's ``stride = n // out``,
``kernel = n - (out-1)*stride``.

``ceil_mode=True`` (max and average, as PyTorch and ONNX) rounds the output
size up instead of down, ``ceil((n + p_before + p_after - f)/s) + 1``, less
one when that last window would start at or past ``n + p_before`` (every
window must start inside the input or its left/top padding); GoogLeNet's
Caffe-born pools use it. ``dilation_rate`` (max pooling) spaces a window's
taps d pixels apart, so it spans ``(f - 1)*d + 1`` pixels.
"""

from __future__ import annotations

import numpy as np
from typing import TYPE_CHECKING, Any, Optional, Sequence
from .. import _core
from .._types import IntPair, Padding, Shape
from .._validate import as_pair
from ..functional._pool import pool_output_size
from ..functional._shapes import resolve_padding
from .base import Layer
from .conv import spatial_formulas

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D", "GlobalAvgPool2D"]


def _need_hwc(layer: Layer, input_shape: Shape) -> None:
    if len(input_shape) != 3:
        raise ValueError(
            f"input_shape: {type(layer).__name__} expects (n_H, n_W, n_C), got {input_shape}"
        )


def _pool_formula(n: int, f: int, pads: Sequence[int], s: int, d: int, ceil_mode: bool) -> str:
    """``floor((32-2)/2)+1 = 16``; with ceil mode ``ceil(...)+1``, and the
    dropped last window said when PyTorch's rule removes it."""
    fs = str(f) if d == 1 else f"(({f}-1)*{d}+1)"
    if pads[0] == pads[1]:
        pad = "" if pads[0] == 0 else f"+2*{pads[0]}"
    else:
        pad = f"+{pads[0]}+{pads[1]}"
    out = pool_output_size(n, f, pads, s, d, ceil_mode)
    if not ceil_mode:
        return f"floor(({n}{pad}-{fs})/{s})+1 = {out}"
    up = -(-(n + pads[0] + pads[1] - ((f - 1) * d + 1)) // s) + 1
    text = f"ceil(({n}{pad}-{fs})/{s})+1 = {up}"
    if up != out:
        text += (
            f", -1 = {out} (the last window would start at {(up - 1) * s} >= "
            f"{n}+{pads[0]}, past the input)"
        )
    return text


class _Pool2D(Layer):
    _fixed_after_build = ("pool_size", "strides", "padding", "dilation_rate", "ceil_mode")
    _pool_kind: Any = None  # the _core.PoolKind

    def __init__(
        self,
        pool_size: IntPair = 2,
        strides: Optional[IntPair] = None,
        padding: Padding = "valid",
        name: Optional[str] = None,
        trainable: bool = True,
        dilation_rate: IntPair = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(name, trainable)
        self.pool_size = as_pair(pool_size, "pool_size", 1)
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", 1)
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate", 1)
        if not isinstance(ceil_mode, bool):
            raise TypeError(f"ceil_mode: expected True or False, got {type(ceil_mode).__name__}")
        self.ceil_mode = ceil_mode
        # the kernels' limits (F.max_pool2d's): refused here, not at the first call
        if self.pool_size[0] * self.pool_size[1] >= 2**31:
            raise ValueError(
                f"pool_size: window of {self.pool_size[0]}x{self.pool_size[1]} is "
                "too large (at most 2**31 - 1 pixels)"
            )
        if max(self.strides) >= 2**40:
            raise ValueError(f"strides: expected values below 2**40, got {self.strides}")
        if isinstance(padding, list):
            padding = tuple(tuple(p) if isinstance(p, list) else p for p in padding)
        self.padding = padding
        resolve_padding(padding, (10**6, 10**6), self.pool_size, self.strides, self.dilation_rate)

    def _build(self, input_shape: Shape) -> Shape:
        _need_hwc(self, input_shape)
        h, w, c = input_shape
        if h is None or w is None:  # any size: the geometry is worked out per batch
            self._pads = self._g = None
            known = [None if n is None else self._window(n, n)[1][i] for i, n in enumerate((h, w))]
            return (known[0], known[1], c)
        self._g, (oh, ow) = self._window(h, w)
        self._pads = ((self._g[4], self._g[5]), (self._g[6], self._g[7]))
        return (oh, ow, c)

    def _window(
        self, h: int, w: int
    ) -> tuple[tuple[int, int, int, int, int, int, int, int], tuple[int, int]]:
        """(the kernel's geometry arguments, (out_h, out_w)) for an h x w input,
        checked once per size."""
        cache = self.__dict__.setdefault("_windows", {})
        hit = cache.get((h, w))
        if hit is None:
            (pt, pb), (pl, pr) = pads = resolve_padding(
                self.padding, (h, w), self.pool_size, self.strides, self.dilation_rate
            )
            kh, kw = self.pool_size
            dh, dw = self.dilation_rate
            if max(pt, pb) > kh // 2 or max(pl, pr) > kw // 2:
                raise ValueError(
                    f"padding: at most half the pool size on each side (pool {kh}x{kw}), got {pads}"
                )
            eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
            if h + pt + pb < eh or w + pl + pr < ew:
                raise ValueError(
                    f"pool_size: the {eh}x{ew} window is larger than the padded "
                    f"input ({h + pt + pb}x{w + pl + pr})"
                )
            out = (
                pool_output_size(h, kh, (pt, pb), self.strides[0], dh, self.ceil_mode),
                pool_output_size(w, kw, (pl, pr), self.strides[1], dw, self.ceil_mode),
            )
            hit = ((kh, kw, self.strides[0], self.strides[1], pt, pb, pl, pr), out)
            if len(cache) < 64:
                cache[(h, w)] = hit
        return hit

    def _geometry_of(self, x: np.ndarray) -> tuple[int, ...]:
        """The kernel's geometry for a batch x (fixed at build, or per size)."""
        return self._g if self._g is not None else self._window(x.shape[1], x.shape[2])[0]

    def lower(self, g: Graph, x: Value) -> Value:
        return g.pool(
            x,
            pool_kind=self._pool_kind,
            window=self._window(*x.shape[:2])[0],
            count_include_pad=getattr(self, "count_include_pad", False),
            dilation=self.dilation_rate,
            ceil_mode=self.ceil_mode,
        )

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            pool_size=list(self.pool_size),
            strides=list(self.strides),
            padding=self.padding,
            dilation_rate=list(self.dilation_rate),
            ceil_mode=self.ceil_mode,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        pad = config.get("padding")
        if isinstance(pad, list):
            config["padding"] = tuple(tuple(p) if isinstance(p, list) else p for p in pad)
        return cls(**config)

    def summary_formulas(self) -> list[str]:
        if self._pads is None:
            return ["output size: per input (any size)"]
        if self.dilation_rate == (1, 1) and not self.ceil_mode:
            return spatial_formulas(self.input_shape[:2], self.pool_size, self._pads, self.strides)
        fs = [
            _pool_formula(n, f, p, s, d, self.ceil_mode)
            for n, f, p, s, d in zip(
                self.input_shape[:2], self.pool_size, self._pads, self.strides, self.dilation_rate
            )
        ]
        return [fs[0]] if fs[0] == fs[1] else [f"n_H: {fs[0]}", f"n_W: {fs[1]}"]


class MaxPool2D(_Pool2D):
    """Max over each f_h x f_w window (padding counts as -inf). No parameters.

    The gradient goes to the first maximum of each window (PyTorch's rule).
    ``dilation_rate`` spaces the window's taps (PyTorch's ``dilation``);
    ``ceil_mode`` rounds the output size up (see the module docstring).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.MaxPool2D(2).forward(np.random.rand(1, 28, 28, 8).astype(np.float32)).shape
        (1, 14, 14, 8)
    """

    _pool_kind = _core.PoolKind.max

    def __init__(
        self,
        pool_size: IntPair = 2,
        strides: Optional[IntPair] = None,
        padding: Padding = "valid",
        dilation_rate: IntPair = 1,
        ceil_mode: bool = False,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(pool_size, strides, padding, name, trainable, dilation_rate, ceil_mode)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = _core.max_pool2d(x, *self._geometry_of(x), *self.dilation_rate, self.ceil_mode)
        if training:
            self._x = x
            self._y = y
        return y

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.max_pool2d_backward(
            dy, self._x, *self._geometry_of(self._x), *self.dilation_rate, self.ceil_mode
        )


class AvgPool2D(_Pool2D):
    """Mean over each window. ``count_include_pad``: padded zeros count in the divisor.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.AvgPool2D(3, strides=2, padding="same").forward(np.ones((1, 9, 9, 2), np.float32)).shape
        (1, 5, 5, 2)
    """

    _pool_kind = _core.PoolKind.avg

    def __init__(
        self,
        pool_size: IntPair = 2,
        strides: Optional[IntPair] = None,
        padding: Padding = "valid",
        count_include_pad: bool = True,
        ceil_mode: bool = False,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(pool_size, strides, padding, name, trainable, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:
            self._x = x
        return _core.avg_pool2d(x, *self._geometry_of(x), self.count_include_pad, self.ceil_mode)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        x = self._x
        return _core.avg_pool2d_backward(
            dy,
            x.shape[1],
            x.shape[2],
            *self._geometry_of(x),
            self.count_include_pad,
            self.ceil_mode,
        )

    def get_config(self) -> dict[str, Any]:
        config = dict(super().get_config(), count_include_pad=self.count_include_pad)
        del config["dilation_rate"]  # average pools have none
        return config


class _AdaptivePool2D(Layer):
    _fixed_after_build = ("output_size",)
    _pool_kind: Any = None

    def __init__(
        self, output_size: IntPair, name: Optional[str] = None, trainable: bool = True
    ) -> None:
        super().__init__(name, trainable)
        self.output_size = as_pair(output_size, "output_size", 1)
        if max(self.output_size) >= 2**31:  # F.adaptive_*_pool2d's limit
            raise ValueError(f"output_size: too large, got {self.output_size}")

    def lower(self, g: Graph, x: Value) -> Value:
        return g.pool(x, pool_kind=self._pool_kind, output_hw=self.output_size)

    def _build(self, input_shape: Shape) -> Shape:
        _need_hwc(self, input_shape)
        return (self.output_size[0], self.output_size[1], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), output_size=list(self.output_size))

    def summary_formulas(self) -> list[str]:
        out = []
        for n, o, axis in zip(self.input_shape[:2], self.output_size, ("n_H", "n_W")):
            if n % o == 0:
                s = n // o
                out.append(
                    f"{axis}: stride = {n}//{o} = {s}, kernel = {n}-({o}-1)*{s} = {n - (o - 1) * s}"
                )
            else:
                out.append(f"{axis}: windows [floor(i*{n}/{o}), ceil((i+1)*{n}/{o}))")
        return out


class AdaptiveAvgPool2D(_AdaptivePool2D):
    """Average pooling to a fixed ``output_size`` (int or (h, w)), any input size.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.AdaptiveAvgPool2D(7).forward(np.random.rand(1, 28, 28, 4).astype(np.float32)).shape
        (1, 7, 7, 4)
    """

    _pool_kind = _core.PoolKind.adaptive_avg

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:
            self._x = x
        return _core.adaptive_avg_pool2d(x, *self.output_size)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        x = self._x
        return _core.adaptive_avg_pool2d_backward(dy, x.shape[1], x.shape[2])


class AdaptiveMaxPool2D(_AdaptivePool2D):
    """Max pooling to a fixed ``output_size`` (int or (h, w)), any input size.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.AdaptiveMaxPool2D((2, 3)).forward(np.random.rand(1, 10, 9, 4).astype(np.float32)).shape
        (1, 2, 3, 4)
    """

    _pool_kind = _core.PoolKind.adaptive_max

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:
            self._x = x
        return _core.adaptive_max_pool2d(x, *self.output_size)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.adaptive_max_pool2d_backward(dy, self._x)


class GlobalAvgPool2D(Layer):
    """Mean over n_H and n_W: ``(m, n_H, n_W, n_C) -> (m, n_C)``.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.GlobalAvgPool2D().forward(np.ones((2, 7, 7, 16), np.float32)).shape
        (2, 16)
    """

    def _build(self, input_shape: Shape) -> Shape:
        _need_hwc(self, input_shape)
        return (input_shape[2],)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.pool(x, pool_kind=_core.PoolKind.global_avg)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:
            self._x = x
        return _core.global_avg_pool2d(x)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        x = self._x
        return _core.global_avg_pool2d_backward(dy, x.shape[1], x.shape[2])
