"""Conv2D: a bank of n_C filters of f_h x f_w x n_C_prev, slid over the input.

Output size per spatial dimension (the course's formula)::

    n_out = floor((n + p_before + p_after - f_eff) / s) + 1,   f_eff = (f - 1)*d + 1

Parameters: ``(f_h*f_w*n_C_prev/groups + 1) * n_C`` (kernel plus one bias
per filter). The course notes write ``(f*f + 1)*n_C``, dropping n_C_prev;
their own table (608 = (5*5*3+1)*8) follows the right formula.

Convolution here is cross-correlation, as in every deep-learning library.
"""

from __future__ import annotations

import numpy as np
from typing import TYPE_CHECKING, Any, Optional, Sequence
from .. import _core
from .._types import IntPair, Padding, Shape
from .._validate import as_int, as_pair, check_size
from ..functional._conv import _MAX_EXTENT
from ..functional._shapes import output_hw, resolve_padding
from .activations import HasActivation
from .base import ActivatedLinearMixin, Layer, initialize

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["Conv2D"]


def _size_formula(n: int, f: int, pads: Sequence[int], s: int, d: int) -> str:
    f_eff = (f - 1) * d + 1
    fs = str(f) if d == 1 else f"(({f}-1)*{d}+1)"
    if pads[0] == pads[1]:
        pad = "" if pads[0] == 0 else f"+2*{pads[0]}"
    else:
        pad = f"+{pads[0]}+{pads[1]}"
    out = (n + pads[0] + pads[1] - f_eff) // s + 1
    return f"floor(({n}{pad}-{fs})/{s})+1 = {out}"


def spatial_formulas(
    in_hw: Sequence[int],
    kernel_hw: Sequence[int],
    pads: Sequence[Sequence[int]],
    strides: Sequence[int],
    dilations: Sequence[int] = (1, 1),
) -> list[str]:
    """``"floor((32-5)/1)+1 = 28"``, or one per axis when they differ."""
    fh = _size_formula(in_hw[0], kernel_hw[0], pads[0], strides[0], dilations[0])
    fw = _size_formula(in_hw[1], kernel_hw[1], pads[1], strides[1], dilations[1])
    return [fh] if fh == fw else [f"n_H: {fh}", f"n_W: {fw}"]


class Conv2D(HasActivation, ActivatedLinearMixin, Layer):
    """2-D convolution in NHWC with HWIO weights: ``activation(conv(x, kernel) + bias)``.

    Args (Keras names):
        filters: number of filters n_C (output channels).
        kernel_size: f, int or (f_h, f_w).
        strides: s, int or (s_h, s_w).
        padding: ``"valid"``, ``"same"``, an int, ``(p_h, p_w)`` or
            ``((top, bottom), (left, right))``.
        dilation_rate: d, int or pair.
        groups: split the channels into independent groups (n_C_prev and
            n_C must both divide by it; ``groups == n_C_prev`` is depthwise).
        activation: None, "relu" (fused into the convolution's store),
            "leaky_relu", "sigmoid", "tanh" or "softmax".
        use_bias: add a bias per filter.
        kernel_initializer: "auto" (He normal before a ReLU, else Glorot
            uniform), or "he_normal", "he_uniform", "glorot_normal",
            "glorot_uniform", "zeros". Draws come from ``cnnx.set_seed``.

    Parameters: ``params["kernel"]`` ``(f_h, f_w, n_C_prev // groups, n_C)``,
    ``params["bias"]`` ``(n_C,)``.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> conv = cnnx.Conv2D(8, 5, activation="relu")
        >>> conv.forward(np.random.rand(2, 32, 32, 3).astype(np.float32)).shape
        (2, 28, 28, 8)
        >>> conv.params["kernel"].shape, conv.params["bias"].shape     # HWIO: (5*5*3 + 1)*8 = 608
        ((5, 5, 3, 8), (8,))
    """

    has_params = True
    _fixed_after_build = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "dilation_rate",
        "groups",
        "use_bias",
    )

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        dilation_rate: IntPair = 1,
        groups: int = 1,
        activation: Optional[str] = None,
        use_bias: bool = True,
        kernel_initializer: str = "auto",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.filters = as_int(filters, "filters", 1)
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.strides = as_pair(strides, "strides", 1)
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate", 1)
        self.groups = as_int(groups, "groups", 1)
        # the kernels' per-axis limits (F.conv2d's): refused here, not at the first call
        if max(self.strides) >= _MAX_EXTENT:
            raise ValueError(f"strides: expected values below 2**40, got {self.strides}")
        for f, d in zip(self.kernel_size, self.dilation_rate):
            if f >= _MAX_EXTENT:
                raise ValueError(
                    f"kernel_size: expected values below 2**40, got {self.kernel_size}"
                )
            if (f - 1) * d + 1 >= _MAX_EXTENT:
                raise ValueError(
                    f"dilation_rate: the dilated filter ((f - 1)*d + 1 = ({f} - 1)*"
                    f"{d} + 1 pixels) must span fewer than 2**40 pixels"
                )
        if isinstance(padding, list):
            padding = tuple(tuple(p) if isinstance(p, list) else p for p in padding)
        self.padding = padding
        # check the spec now (not only at build): a bad string fails early
        resolve_padding(padding, (10**6, 10**6), self.kernel_size, self.strides, self.dilation_rate)
        self.activation = activation
        self.use_bias = bool(use_bias)
        if not isinstance(kernel_initializer, str):
            raise TypeError(
                f"kernel_initializer: expected a str, got {type(kernel_initializer).__name__}"
            )
        self.kernel_initializer = kernel_initializer
        if self.filters % self.groups:
            raise ValueError(
                f"groups: filters ({self.filters}) must be divisible by groups ({self.groups})"
            )

    def _build(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"input_shape: Conv2D expects (n_H, n_W, n_C), got {input_shape}")
        h, w, c = input_shape
        if c is None:
            raise ValueError("input_shape: Conv2D needs a known number of channels")
        if c % self.groups:
            raise ValueError(
                f"groups: input channels ({c}) must be divisible by groups ({self.groups})"
            )
        if h is None or w is None:  # any size: the geometry is worked out per batch
            self._pads = self._p4 = None
            oh, ow = (None if n is None else self._axis_size(i, n) for i, n in enumerate((h, w)))
        else:
            self._p4, (oh, ow) = self._geometry(h, w)
            self._pads = ((self._p4[0], self._p4[1]), (self._p4[2], self._p4[3]))
        fh, fw = self.kernel_size
        cin = c // self.groups
        kind = self.kernel_initializer
        if kind == "auto":
            kind = "he_normal" if self.activation in ("relu", "leaky_relu") else "glorot_uniform"
        shape = (fh, fw, cin, self.filters)
        check_size(shape, "filters")
        self.add_param(
            "kernel", initialize(kind, shape, fh * fw * cin, fh * fw * self.filters // self.groups)
        )
        if self.use_bias:
            self.add_param("bias", initialize("zeros", (self.filters,), 1, 1))
        return (oh, ow, self.filters)

    def _axis_size(self, axis: int, n: int) -> int:
        """The output size along one axis for n pixels (the other axis unknown)."""
        pads = resolve_padding(
            self.padding,
            (n, n),
            (self.kernel_size[axis],) * 2,
            (self.strides[axis],) * 2,
            (self.dilation_rate[axis],) * 2,
        )
        return output_hw(
            (n, n),
            (self.kernel_size[axis],) * 2,
            pads,
            (self.strides[axis],) * 2,
            (self.dilation_rate[axis],) * 2,
        )[axis]

    def _geometry(self, h: int, w: int) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """((top, bottom, left, right) padding, (out_h, out_w)) for an h x w input,
        checked once per size (the hot path hands them straight to the kernel)."""
        cache = self.__dict__.setdefault("_geometries", {})
        hit = cache.get((h, w))
        if hit is None:
            pads = resolve_padding(
                self.padding, (h, w), self.kernel_size, self.strides, self.dilation_rate
            )
            for n, (p0, p1) in zip((h, w), pads):
                if n + p0 + p1 >= _MAX_EXTENT:
                    raise ValueError(
                        f"padding: the padded input ({n} + {p0} + {p1} pixels) "
                        "must span fewer than 2**40 pixels per axis"
                    )
            out = output_hw((h, w), self.kernel_size, pads, self.strides, self.dilation_rate)
            hit = ((pads[0][0], pads[0][1], pads[1][0], pads[1][1]), out)
            if len(cache) < 64:
                cache[(h, w)] = hit
        return hit

    @property
    def explicit_padding(self) -> Optional[tuple[tuple[int, int], tuple[int, int]]]:
        """The padding of the built layer: ((top, bottom), (left, right))."""
        return self._pads

    def lower(self, g: Graph, x: Value) -> Value:
        h, w, c = x.shape
        fh, fw = self.kernel_size
        geometry = (
            h,
            w,
            c,
            fh,
            fw,
            self.filters,
            *self.strides,
            *self.dilation_rate,
            *self._geometry(h, w)[0],
            self.groups,
        )
        y = g.conv2d(
            x,
            geometry=geometry,
            kernel=g.param(self, "kernel"),
            bias=g.param(self, "bias") if self.use_bias else None,
        )
        return self._act.lower(g, y)

    # ---- computation --------------------------------------------------------
    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        p = self.params
        p4 = self._p4 if self._p4 is not None else self._geometry(x.shape[1], x.shape[2])[0]
        if training:
            self._p4_last = p4
        z = _core.conv2d_forward(
            x,
            p["kernel"],
            p.get("bias"),
            self.strides,
            self.dilation_rate,
            p4,
            self.groups,
            self._fused,
        )
        post = self._post
        y = z if post is None else post.forward(z)
        if training:
            self._x = x
            self._z = z
            self._y = y
        return y

    def _backward_linear(
        self, dy: np.ndarray, need_dx: bool, accumulate: bool
    ) -> Optional[np.ndarray]:
        """Backward of the convolution alone (``dy`` already through the activation)."""
        trainable = self._trainable
        if not trainable and not need_dx:
            return None
        if trainable and not accumulate:
            # straight into the model's gradient slots: no temporary, no copy
            g = self.grads
            dx, _, _ = _core.conv2d_backward(
                dy,
                self._x,
                self.params["kernel"],
                self.strides,
                self.dilation_rate,
                self._p4_last,
                self.groups,
                need_dx,
                g["kernel"],
                g.get("bias"),
            )
            return dx
        dx, dw, db = _core.conv2d_backward(
            dy,
            self._x,
            self.params["kernel"],
            self.strides,
            self.dilation_rate,
            self._p4_last,
            self.groups,
            need_dx,
        )
        if trainable:
            if self.use_bias:
                self._store_grads(accumulate, kernel=dw, bias=db)
            else:
                self._store_grads(accumulate, kernel=dw)
        return dx

    # ---- description --------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            filters=self.filters,
            kernel_size=list(self.kernel_size),
            strides=list(self.strides),
            padding=self.padding,
            dilation_rate=list(self.dilation_rate),
            groups=self.groups,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        pad = config.get("padding")
        if isinstance(pad, list):
            config["padding"] = tuple(tuple(p) if isinstance(p, list) else p for p in pad)
        return cls(**config)

    def summary_formulas(self) -> list[str]:
        h, w, c = self.input_shape
        fh, fw = self.kernel_size
        cin = c // self.groups
        fpart = f"{fh}*{fw}*{cin}"
        n = self.count_params()
        params = (
            f"({fpart}+1)*{self.filters} = {n}"
            if self.use_bias
            else f"{fpart}*{self.filters} = {n}"
        )
        if self._pads is None:
            return ["output size: per input (any size)", params]
        return spatial_formulas(
            (h, w), self.kernel_size, self._pads, self.strides, self.dilation_rate
        ) + [params]
