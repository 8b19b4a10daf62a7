"""Pooling layers: max, average, adaptive (average and max) and global average.

Pooling has no parameters and keeps n_C: each of n_H and n_W becomes
``floor((n + p_before + p_after - f)/s) + 1`` (the course notes misplace a
bracket in this formula; n_C is unchanged). The stride defaults to the pool
size. Adaptive pooling picks its windows from the output size with the exact
rule ``start = floor(i*n/out)``, ``end = ceil((i+1)*n/out)``; when out
divides n this is the course's ``stride = n // out``,
``kernel = n - (out-1)*stride``.
"""
from .. import _core
from .._validate import as_pair
from ..functional._shapes import output_hw, resolve_padding
from .base import Layer
from .conv import spatial_formulas

__all__ = ["MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D", "GlobalAvgPool2D"]


def _need_hwc(layer, input_shape):
    if len(input_shape) != 3:
        raise ValueError(f"input_shape: {type(layer).__name__} expects (n_H, n_W, n_C), "
                         f"got {input_shape}")


class _Pool2D(Layer):
    _fixed_after_build = ("pool_size", "strides", "padding")
    _pool_kind = None  # the _core.PoolKind

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None, trainable=True):
        super().__init__(name, trainable)
        self.pool_size = as_pair(pool_size, "pool_size", 1)
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", 1)
        # the kernels' limits (F.max_pool2d's): refused here, not at the first call
        if self.pool_size[0] * self.pool_size[1] >= 2**31:
            raise ValueError(f"pool_size: window of {self.pool_size[0]}x{self.pool_size[1]} is "
                             "too large (at most 2**31 - 1 pixels)")
        if max(self.strides) >= 2**40:
            raise ValueError(f"strides: expected values below 2**40, got {self.strides}")
        if isinstance(padding, list):
            padding = tuple(tuple(p) if isinstance(p, list) else p for p in padding)
        self.padding = padding
        resolve_padding(padding, (10**6, 10**6), self.pool_size, self.strides)

    def _build(self, input_shape):
        _need_hwc(self, input_shape)
        h, w, c = input_shape
        if h is None or w is None:  # any size: the geometry is worked out per batch
            self._pads = self._g = None
            known = [None if n is None else self._window(n, n)[1][i] for i, n in enumerate((h, w))]
            return (known[0], known[1], c)
        self._g, (oh, ow) = self._window(h, w)
        self._pads = ((self._g[4], self._g[5]), (self._g[6], self._g[7]))
        return (oh, ow, c)

    def _window(self, h, w):
        """(the kernel's geometry arguments, (out_h, out_w)) for an h x w input,
        checked once per size."""
        cache = self.__dict__.setdefault("_windows", {})
        hit = cache.get((h, w))
        if hit is None:
            (pt, pb), (pl, pr) = pads = resolve_padding(self.padding, (h, w), self.pool_size,
                                                        self.strides)
            kh, kw = self.pool_size
            if max(pt, pb) > kh // 2 or max(pl, pr) > kw // 2:
                raise ValueError(f"padding: at most half the pool size on each side (pool "
                                 f"{kh}x{kw}), got {pads}")
            out = output_hw((h, w), self.pool_size, pads, self.strides)
            hit = ((kh, kw, self.strides[0], self.strides[1], pt, pb, pl, pr), out)
            if len(cache) < 64:
                cache[(h, w)] = hit
        return hit

    def _geometry_of(self, x):
        """The kernel's geometry for a batch x (fixed at build, or per size)."""
        return self._g if self._g is not None else self._window(x.shape[1], x.shape[2])[0]

    def lower(self, g, x):
        return g.pool(x, pool_kind=self._pool_kind, window=self._window(*x.shape[:2])[0],
                      count_include_pad=getattr(self, "count_include_pad", False))

    def get_config(self):
        return dict(super().get_config(), pool_size=list(self.pool_size),
                    strides=list(self.strides), padding=self.padding)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        pad = config.get("padding")
        if isinstance(pad, list):
            config["padding"] = tuple(tuple(p) if isinstance(p, list) else p for p in pad)
        return cls(**config)

    def summary_formulas(self):
        if self._pads is None:
            return ["output size: per input (any size)"]
        return spatial_formulas(self.input_shape[:2], self.pool_size, self._pads, self.strides)


class MaxPool2D(_Pool2D):
    """Max over each f_h x f_w window (padding counts as -inf). No parameters.

    The gradient goes to the first maximum of each window (PyTorch's rule).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.MaxPool2D(2).forward(np.random.rand(1, 28, 28, 8).astype(np.float32)).shape
        (1, 14, 14, 8)
    """

    _pool_kind = _core.PoolKind.max

    def _forward(self, x, training):
        y = _core.max_pool2d(x, *self._geometry_of(x))
        if training:
            self._x = x
            self._y = y
        return y

    def _backward(self, dy, need_dx, accumulate):
        if not need_dx:
            return None
        return _core.max_pool2d_backward(dy, self._x, *self._geometry_of(self._x))


class AvgPool2D(_Pool2D):
    """Mean over each window. ``count_include_pad``: padded zeros count in the divisor.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.AvgPool2D(3, strides=2, padding="same").forward(np.ones((1, 9, 9, 2), np.float32)).shape
        (1, 5, 5, 2)
    """

    _pool_kind = _core.PoolKind.avg

    def __init__(self, pool_size=2, strides=None, padding="valid", count_include_pad=True,
                 name=None, trainable=True):
        super().__init__(pool_size, strides, padding, name, trainable)
        self.count_include_pad = bool(count_include_pad)

    def _forward(self, x, training):
        if training:
            self._x = x
        return _core.avg_pool2d(x, *self._geometry_of(x), self.count_include_pad)

    def _backward(self, dy, need_dx, accumulate):
        if not need_dx:
            return None
        x = self._x
        return _core.avg_pool2d_backward(dy, x.shape[1], x.shape[2], *self._geometry_of(x),
                                         self.count_include_pad)

    def get_config(self):
        return dict(super().get_config(), count_include_pad=self.count_include_pad)


class _AdaptivePool2D(Layer):
    _fixed_after_build = ("output_size",)
    _pool_kind = None

    def __init__(self, output_size, name=None, trainable=True):
        super().__init__(name, trainable)
        self.output_size = as_pair(output_size, "output_size", 1)
        if max(self.output_size) >= 2**31:  # F.adaptive_*_pool2d's limit
            raise ValueError(f"output_size: too large, got {self.output_size}")

    def lower(self, g, x):
        return g.pool(x, pool_kind=self._pool_kind, output_hw=self.output_size)

    def _build(self, input_shape):
        _need_hwc(self, input_shape)
        return (self.output_size[0], self.output_size[1], input_shape[2])

    def get_config(self):
        return dict(super().get_config(), output_size=list(self.output_size))

    def summary_formulas(self):
        out = []
        for n, o, axis in zip(self.input_shape[:2], self.output_size, ("n_H", "n_W")):
            if n % o == 0:
                s = n // o
                out.append(f"{axis}: stride = {n}//{o} = {s}, kernel = {n}-({o}-1)*{s} = "
                           f"{n - (o - 1) * s}")
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

    def _forward(self, x, training):
        if training:
            self._x = x
        return _core.adaptive_avg_pool2d(x, *self.output_size)

    def _backward(self, dy, need_dx, accumulate):
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

    def _forward(self, x, training):
        if training:
            self._x = x
        return _core.adaptive_max_pool2d(x, *self.output_size)

    def _backward(self, dy, need_dx, accumulate):
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

    def _build(self, input_shape):
        _need_hwc(self, input_shape)
        return (input_shape[2],)

    def lower(self, g, x):
        return g.pool(x, pool_kind=_core.PoolKind.global_avg)

    def _forward(self, x, training):
        if training:
            self._x = x
        return _core.global_avg_pool2d(x)

    def _backward(self, dy, need_dx, accumulate):
        if not need_dx:
            return None
        x = self._x
        return _core.global_avg_pool2d_backward(dy, x.shape[1], x.shape[2])
