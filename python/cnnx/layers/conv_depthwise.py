"""DepthwiseConv2D and SeparableConv2D: MobileNet's factorised convolution.

A depthwise convolution filters each input channel on its own with
``depth_multiplier`` filters (a Conv2D with ``groups == n_C_prev``: the
core's direct depthwise kernels). A separable convolution follows it with a
1x1 convolution that mixes the channels. For a 3x3 layer from 64 to 128
channels that is 3*3*64 + 64*128 = 8,768 weights instead of 3*3*64*128 =
73,728.

Output size: as Conv2D, ``floor((n + p_before + p_after - f_eff)/s) + 1``.
Parameters (Keras's names and layouts):
``depthwise_kernel`` ``(f_h, f_w, n_C_prev, depth_multiplier)``,
``pointwise_kernel`` ``(1, 1, n_C_prev*depth_multiplier, filters)`` and
``bias`` (of the last convolution's output).
"""

from __future__ import annotations

import numpy as np
from typing import TYPE_CHECKING, Any, Optional
from .. import _core
from .._types import IntPair, Padding, Shape
from .._validate import as_int, as_pair
from ..functional._shapes import output_hw, resolve_padding
from .activations import HasActivation
from .base import Layer, initialize
from .conv import spatial_formulas

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["DepthwiseConv2D", "SeparableConv2D"]


def _padding_arg(padding: Padding) -> Padding:
    if isinstance(padding, list):
        padding = tuple(tuple(p) if isinstance(p, list) else p for p in padding)
    return padding


class _Depthwise(HasActivation, Layer):
    """What both layers share: the depthwise step's geometry and its calls."""

    has_params = True
    use_bias: bool

    def _backward_linear(
        self, dy: np.ndarray, need_dx: bool
    ) -> Optional[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _init_depthwise(
        self,
        kernel_size: IntPair,
        strides: IntPair,
        padding: Padding,
        depth_multiplier: int,
        dilation_rate: IntPair,
    ) -> None:
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.strides = as_pair(strides, "strides", 1)
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate", 1)
        self.depth_multiplier = as_int(depth_multiplier, "depth_multiplier", 1)
        self.padding = _padding_arg(padding)
        resolve_padding(
            self.padding, (10**6, 10**6), self.kernel_size, self.strides, self.dilation_rate
        )

    def _build_depthwise(self, input_shape: Shape, initializer: str) -> tuple[int, int, int]:
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape: {type(self).__name__} expects (n_H, n_W, n_C), got {input_shape}"
            )
        h, w, c = input_shape
        if c is None:
            raise ValueError(f"input_shape: {type(self).__name__} needs a known number of channels")
        self._pads = resolve_padding(
            self.padding, (h, w), self.kernel_size, self.strides, self.dilation_rate
        )
        oh, ow = output_hw((h, w), self.kernel_size, self._pads, self.strides, self.dilation_rate)
        self._p4 = (self._pads[0][0], self._pads[0][1], self._pads[1][0], self._pads[1][1])
        fh, fw = self.kernel_size
        dm = self.depth_multiplier
        self.add_param(
            "depthwise_kernel", initialize(initializer, (fh, fw, c, dm), fh * fw, fh * fw * dm)
        )
        return oh, ow, c * dm

    def _dw_view(self, arr: np.ndarray) -> np.ndarray:
        """A (f_h, f_w, n_C_prev, dm) array as the grouped conv's HWIO (same memory)."""
        fh, fw, c, dm = arr.shape
        return arr.reshape(fh, fw, 1, c * dm)

    def _dw_geometry(self) -> tuple[int, ...]:
        h, w, c = self.input_shape
        fh, fw = self.kernel_size
        return (
            h,
            w,
            c,
            fh,
            fw,
            c * self.depth_multiplier,
            *self.strides,
            *self.dilation_rate,
            *self._p4,
            c,
        )

    def _dw_forward(self, x: np.ndarray, bias: Optional[np.ndarray], relu: bool) -> np.ndarray:
        return _core.conv2d_forward(
            x,
            self._dw_view(self.params["depthwise_kernel"]),
            bias,
            self.strides,
            self.dilation_rate,
            self._p4,
            self.input_shape[2],
            relu,
        )

    def _dw_backward(
        self, dy: np.ndarray, x: np.ndarray, need_dx: bool, bias_name: Optional[str]
    ) -> Optional[np.ndarray]:
        """dx, writing the depthwise kernel's (and bias's) gradients when trainable."""
        c = self.input_shape[2]
        dx, dw, db = _core.conv2d_backward(
            dy,
            x,
            self._dw_view(self.params["depthwise_kernel"]),
            self.strides,
            self.dilation_rate,
            self._p4,
            c,
            need_dx,
        )
        if self._trainable:
            self._set_grad("depthwise_kernel", dw, self._accumulate)
            if bias_name:
                self._set_grad(bias_name, db, self._accumulate)
        return dx

    def _backward(self, dy: Any, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if self._fused:
            dy = _core.relu_backward(dy, self._y)
        elif self._post is not None:
            dy = self._post.backward(dy, self._z, self._y)
        elif not hasattr(dy, "shape"):
            raise TypeError(f"dy: {self.name} has no softmax to take it through")
        if not self._trainable and not need_dx:
            return None
        self._accumulate = accumulate
        return self._backward_linear(dy, need_dx)

    def softmax_logits(self) -> Optional[np.ndarray]:
        return self._z if self.activation == "softmax" else None

    def _finish(self, z: np.ndarray, training: bool, x: np.ndarray) -> np.ndarray:
        post = self._post
        y = z if post is None else post.forward(z)
        if training:
            self._x = x
            self._z = z
            self._y = y
        return y

    def _config(self) -> dict[str, Any]:
        return dict(
            kernel_size=list(self.kernel_size),
            strides=list(self.strides),
            padding=self.padding,
            depth_multiplier=self.depth_multiplier,
            dilation_rate=list(self.dilation_rate),
            activation=self.activation,
            use_bias=self.use_bias,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        config["padding"] = _padding_arg(config.get("padding", "valid"))
        return cls(**config)


class DepthwiseConv2D(_Depthwise):
    """Each input channel convolved with its own ``depth_multiplier`` filters.

    Args (Keras names): kernel_size, strides, padding, depth_multiplier,
    dilation_rate, activation, use_bias, depthwise_initializer ("auto": He
    normal before a ReLU, else Glorot uniform). Output channels:
    ``n_C_prev * depth_multiplier`` (channel ``c*dm + k`` is filter k of
    input channel c).
    """

    _fixed_after_build = (
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "dilation_rate",
        "use_bias",
    )

    def __init__(
        self,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        depth_multiplier: int = 1,
        dilation_rate: IntPair = 1,
        activation: Optional[str] = None,
        use_bias: bool = True,
        depthwise_initializer: str = "auto",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self._init_depthwise(kernel_size, strides, padding, depth_multiplier, dilation_rate)
        self.activation = activation
        self.use_bias = bool(use_bias)
        if not isinstance(depthwise_initializer, str):
            raise TypeError(
                f"depthwise_initializer: expected a str, got {type(depthwise_initializer).__name__}"
            )
        self.depthwise_initializer = depthwise_initializer

    def _build(self, input_shape: Shape) -> Shape:
        kind = self.depthwise_initializer
        if kind == "auto":
            kind = "he_normal" if self.activation in ("relu", "leaky_relu") else "glorot_uniform"
        oh, ow, cout = self._build_depthwise(input_shape, kind)
        if self.use_bias:
            self.add_param("bias", initialize("zeros", (cout,), 1, 1))
        return (oh, ow, cout)

    def lower(self, g: Graph, x: Value) -> Value:
        y = g.conv2d(
            x,
            geometry=self._dw_geometry(),
            kernel=g.param(self, "depthwise_kernel"),
            bias=g.param(self, "bias") if self.use_bias else None,
        )
        return self._act.lower(g, y)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return self._finish(self._dw_forward(x, self.params.get("bias"), self._fused), training, x)

    def _backward_linear(self, dy: np.ndarray, need_dx: bool) -> Optional[np.ndarray]:
        return self._dw_backward(dy, self._x, need_dx, "bias" if self.use_bias else None)

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(), **self._config(), depthwise_initializer=self.depthwise_initializer
        )

    def summary_formulas(self) -> list[str]:
        h, w, c = self.input_shape
        fh, fw = self.kernel_size
        dm = self.depth_multiplier
        n = self.count_params()
        params = f"({fh}*{fw}+1)*{c}*{dm} = {n}" if self.use_bias else f"{fh}*{fw}*{c}*{dm} = {n}"
        return spatial_formulas(
            (h, w), self.kernel_size, self._pads, self.strides, self.dilation_rate
        ) + [params]


class SeparableConv2D(_Depthwise):
    """A depthwise convolution, then a 1x1 convolution to ``filters`` channels,
    then the bias and the activation (Keras's SeparableConv2D).

    Args (Keras names): filters, kernel_size, strides, padding,
    depth_multiplier, dilation_rate (strides and dilation act in the depthwise
    step), activation, use_bias, depthwise_initializer, pointwise_initializer.
    """

    _fixed_after_build = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "dilation_rate",
        "use_bias",
    )

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        strides: IntPair = 1,
        padding: Padding = "valid",
        depth_multiplier: int = 1,
        dilation_rate: IntPair = 1,
        activation: Optional[str] = None,
        use_bias: bool = True,
        depthwise_initializer: str = "glorot_uniform",
        pointwise_initializer: str = "auto",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.filters = as_int(filters, "filters", 1)
        self._init_depthwise(kernel_size, strides, padding, depth_multiplier, dilation_rate)
        self.activation = activation
        self.use_bias = bool(use_bias)
        for arg, v in (
            ("depthwise_initializer", depthwise_initializer),
            ("pointwise_initializer", pointwise_initializer),
        ):
            if not isinstance(v, str):
                raise TypeError(f"{arg}: expected a str, got {type(v).__name__}")
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer

    def _build(self, input_shape: Shape) -> Shape:
        kind = self.depthwise_initializer
        if kind == "auto":
            kind = "glorot_uniform"
        oh, ow, mid = self._build_depthwise(input_shape, kind)
        kind = self.pointwise_initializer
        if kind == "auto":
            kind = "he_normal" if self.activation in ("relu", "leaky_relu") else "glorot_uniform"
        self.add_param(
            "pointwise_kernel", initialize(kind, (1, 1, mid, self.filters), mid, self.filters)
        )
        if self.use_bias:
            self.add_param("bias", initialize("zeros", (self.filters,), 1, 1))
        return (oh, ow, self.filters)

    def _pw_geometry(self) -> tuple[int, ...]:
        oh, ow, _ = self.output_shape
        mid = self.input_shape[2] * self.depth_multiplier
        return (oh, ow, mid, 1, 1, self.filters, 1, 1, 1, 1, 0, 0, 0, 0, 1)

    def lower(self, g: Graph, x: Value) -> Value:
        mid = g.conv2d(
            x, geometry=self._dw_geometry(), kernel=g.param(self, "depthwise_kernel"), bias=None
        )
        y = g.conv2d(
            mid,
            geometry=self._pw_geometry(),
            kernel=g.param(self, "pointwise_kernel"),
            bias=g.param(self, "bias") if self.use_bias else None,
        )
        return self._act.lower(g, y)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        mid = self._dw_forward(x, None, False)
        z = _core.conv2d_forward(
            mid,
            self.params["pointwise_kernel"],
            self.params.get("bias"),
            (1, 1),
            (1, 1),
            (0, 0, 0, 0),
            1,
            self._fused,
        )
        if training:
            self._mid = mid
        return self._finish(z, training, x)

    def _backward_linear(self, dy: np.ndarray, need_dx: bool) -> Optional[np.ndarray]:
        trainable = self._trainable
        dmid, dpw, db = _core.conv2d_backward(
            dy, self._mid, self.params["pointwise_kernel"], (1, 1), (1, 1), (0, 0, 0, 0), 1, True
        )
        if trainable:
            self._set_grad("pointwise_kernel", dpw, self._accumulate)
            if self.use_bias:
                self._set_grad("bias", db, self._accumulate)
        return self._dw_backward(dmid, self._x, need_dx, None)

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            filters=self.filters,
            **self._config(),
            depthwise_initializer=self.depthwise_initializer,
            pointwise_initializer=self.pointwise_initializer,
        )

    def summary_formulas(self) -> list[str]:
        h, w, c = self.input_shape
        fh, fw = self.kernel_size
        dm = self.depth_multiplier
        n = self.count_params()
        bias = f"+{self.filters}" if self.use_bias else ""
        params = f"{fh}*{fw}*{c}*{dm} + {c * dm}*{self.filters}{bias} = {n}"
        return spatial_formulas(
            (h, w), self.kernel_size, self._pads, self.strides, self.dilation_rate
        ) + [params]
