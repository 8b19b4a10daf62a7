"""Conv2DTranspose: the learnable upsampling of U-Net and GAN decoders.

Each input pixel spreads a weighted copy of itself over an f x f patch of
the output, patches s pixels apart (the gradient of a strided convolution
with respect to its input, hence "transposed"). Output size per spatial
dimension::

    n_out = (n - 1)*s - 2p + d*(f - 1) + output_padding + 1

(``2p`` is ``p_before + p_after``). Parameters: ``(f_h*f_w*n_C_prev/groups + 1)*n_C``.
With Keras's ``padding="same"`` the output is ``n*s``; with ``"valid"`` it is
``n*s + max(f - s, 0)``.
"""

from __future__ import annotations

import numpy as np
from typing import TYPE_CHECKING, Any, Optional, Sequence
from .. import _core
from .._types import IntPair, Padding, Shape
from .._validate import as_int, as_pair
from ..functional._conv_transpose import conv_transpose_geometry
from .activations import HasActivation
from .base import ActivatedLinearMixin, Layer, initialize

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["Conv2DTranspose", "transpose_size_formulas"]


def _axis_formula(n: int, f: int, pads: Sequence[int], s: int, d: int, op: int) -> str:
    out = (n - 1) * s - pads[0] - pads[1] + d * (f - 1) + op + 1
    if pads[0] == pads[1]:
        pad = "" if pads[0] == 0 else f"-2*{pads[0]}"
    else:
        pad = f"-({pads[0]}+{pads[1]})"
    fpart = f"{d}*({f}-1)"
    return f"({n}-1)*{s}{pad}+{fpart}+{op}+1 = {out}"


def transpose_size_formulas(
    in_hw: Sequence[int],
    kernel_hw: Sequence[int],
    pads: Sequence[Sequence[int]],
    strides: Sequence[int],
    dilations: Sequence[int],
    output_padding: Sequence[int],
) -> list[str]:
    """``"(n-1)*s - 2p + d*(f-1) + output_padding + 1"`` filled in, per axis when they differ."""
    fh = _axis_formula(in_hw[0], kernel_hw[0], pads[0], strides[0], dilations[0], output_padding[0])
    fw = _axis_formula(in_hw[1], kernel_hw[1], pads[1], strides[1], dilations[1], output_padding[1])
    return [fh] if fh == fw else [f"n_H: {fh}", f"n_W: {fw}"]


class Conv2DTranspose(HasActivation, ActivatedLinearMixin, Layer):
    """Transposed 2-D convolution in NHWC: ``activation(conv_transpose(x, kernel) + bias)``.

    Args (Keras names):
        filters: output channels n_C.
        kernel_size: f, int or (f_h, f_w).
        strides: s, int or (s_h, s_w): the upsampling factor.
        padding: ``"valid"``, ``"same"`` (output ``n*s``), an int, ``(p_h, p_w)``
            or ``((top, bottom), (left, right))``: rows and columns removed from
            the full output (PyTorch's ``padding``).
        output_padding: None, an int or a pair: extra rows at the bottom /
            columns at the right; smaller than the stride or the dilation.
            None gives Keras's sizes.
        dilation_rate: d, int or pair.
        groups: independent channel groups (both n_C_prev and n_C divisible).
        activation: None, "relu" (fused), "leaky_relu", "sigmoid", "tanh", "softmax".
        use_bias: add a bias per filter.
        kernel_initializer: "auto" (He normal before a ReLU, else Glorot
            uniform) or a name from :data:`cnnx.layers.base.INITIALIZERS`.

    Parameters: ``params["kernel"]`` ``(f_h, f_w, n_C // groups, n_C_prev)`` (Keras's
    layout; PyTorch's ConvTranspose2d weight is its ``transpose(3, 2, 0, 1)``),
    ``params["bias"]`` ``(n_C,)``.
    """

    has_params = True
    _fixed_after_build = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "output_padding",
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
        output_padding: Optional[IntPair] = None,
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
        if isinstance(padding, list):
            padding = tuple(tuple(p) if isinstance(p, list) else p for p in padding)
        self.padding = padding
        self.output_padding = (
            None if output_padding is None else as_pair(output_padding, "output_padding", 0)
        )
        if self.filters % self.groups:
            raise ValueError(
                f"groups: filters ({self.filters}) must be divisible by groups ({self.groups})"
            )
        # check padding and output_padding now (not only at build): bad ones fail early
        conv_transpose_geometry(
            (8, 8, self.groups),
            self.kernel_size,
            self.filters,
            self.strides,
            padding,
            self.output_padding,
            self.dilation_rate,
            self.groups,
        )
        self.activation = activation
        self.use_bias = bool(use_bias)
        if not isinstance(kernel_initializer, str):
            raise TypeError(
                f"kernel_initializer: expected a str, got {type(kernel_initializer).__name__}"
            )
        self.kernel_initializer = kernel_initializer

    def _build(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape: Conv2DTranspose expects (n_H, n_W, n_C), got {input_shape}"
            )
        h, w, c = input_shape
        if c is None:
            raise ValueError("input_shape: Conv2DTranspose needs a known number of channels")
        if c % self.groups:
            raise ValueError(
                f"groups: input channels ({c}) must be divisible by groups ({self.groups})"
            )
        geo = conv_transpose_geometry(
            input_shape,
            self.kernel_size,
            self.filters,
            self.strides,
            self.padding,
            self.output_padding,
            self.dilation_rate,
            self.groups,
        )
        self._pads = geo["pads"]
        self._ops = geo["output_padding"]
        (pt, pb), (pl, pr) = self._pads
        self._p4 = (pt, pb, pl, pr)
        fh, fw = self.kernel_size
        cog = self.filters // self.groups
        kind = self.kernel_initializer
        if kind == "auto":
            kind = "he_normal" if self.activation in ("relu", "leaky_relu") else "glorot_uniform"
        # each output pixel sums about f_h*f_w/(s_h*s_w) taps of n_C_prev/groups channels
        taps = max(1, (fh * fw) // (self.strides[0] * self.strides[1]))
        self.add_param(
            "kernel", initialize(kind, (fh, fw, cog, c), taps * (c // self.groups), fh * fw * cog)
        )
        if self.use_bias:
            self.add_param("bias", initialize("zeros", (self.filters,), 1, 1))
        return geo["output_shape"]

    @property
    def explicit_padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The padding of the built layer: ((top, bottom), (left, right))."""
        return self._pads

    def lower(self, g: Graph, x: Value) -> Value:
        h, w, c = self.input_shape
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
            *self._p4,
            *self._ops,
            self.groups,
        )
        y = g.conv_transpose2d(
            x,
            geometry=geometry,
            kernel=g.param(self, "kernel"),
            bias=g.param(self, "bias") if self.use_bias else None,
        )
        return self._act.lower(g, y)

    # ---- computation --------------------------------------------------------
    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        p = self.params
        z = _core.conv_transpose2d_forward(
            x,
            p["kernel"],
            p.get("bias"),
            self.strides,
            self.dilation_rate,
            self._p4,
            self._ops,
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
        trainable = self._trainable
        if not trainable and not need_dx:
            return None
        args = (
            dy,
            self._x,
            self.params["kernel"],
            self.strides,
            self.dilation_rate,
            self._p4,
            self._ops,
            self.groups,
            need_dx,
            trainable,
        )
        if trainable and not accumulate:  # straight into the model's gradient slots
            g = self.grads
            dx, _, _ = _core.conv_transpose2d_backward(*args, g["kernel"], g.get("bias"))
            return dx
        dx, dw, db = _core.conv_transpose2d_backward(*args)
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
            output_padding=(None if self.output_padding is None else list(self.output_padding)),
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
        n = self.count_params()
        cin = c // self.groups
        params = (
            f"({fh}*{fw}*{cin}+1)*{self.filters} = {n}"
            if self.use_bias
            else f"{fh}*{fw}*{cin}*{self.filters} = {n}"
        )
        return transpose_size_formulas(
            (h, w), self.kernel_size, self._pads, self.strides, self.dilation_rate, self._ops
        ) + [params]
