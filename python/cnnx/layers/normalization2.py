"""Normalisation layers beyond batch norm (issue 19), channels last:

- :class:`LocalResponseNormalization`: AlexNet's and GoogLeNet's
  normalisation across neighbouring channels (ONNX ``LRN``, PyTorch
  ``LocalResponseNorm``); no parameters;
- :class:`GroupNormalization`: statistics per example and group of
  channels over every position (Wu & He 2018), independent of the batch;
- :class:`LayerNormalization`: statistics per position over the last axis
  (ConvNeXt's channel LayerNorm on images, the usual LayerNorm on features).

All keep the input shape; the two with statistics have Keras's ``gamma``
(scale) and ``beta`` (shift), ``center``, ``scale`` and ``epsilon``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional
import numbers

import numpy as np

from .. import _core
from .._types import Shape
from .._validate import as_int
from ..functional._norm_more import check_lrn_args
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["LocalResponseNormalization", "GroupNormalization", "LayerNormalization"]


def _epsilon(v: float) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"epsilon: expected a number, got {type(v).__name__}")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"epsilon: expected a number > 0, got {v}")
    return float(v)


def _channels(layer: Layer, input_shape: Shape) -> int:
    c = input_shape[-1] if len(input_shape) >= 1 else None
    if c is None or c < 1:  # None: channels known only when data arrives
        raise ValueError(
            f"input_shape: {type(layer).__name__} needs a channel axis (the last) "
            f"of known size, got {input_shape}"
        )
    return c


class LocalResponseNormalization(Layer):
    """``y[c] = x[c] / (bias + alpha/size * sum_{|j-c| <= size//2} x[j]^2) ** beta``
    over the channels (the last axis) of every position.

    Args (ONNX / PyTorch names): ``size`` (odd), ``alpha`` (divided by size,
    as ONNX and PyTorch do), ``beta``, ``bias`` (PyTorch's ``k``). AlexNet:
    ``size=5, alpha=1e-4, beta=0.75, bias=2``.
    """

    def __init__(
        self,
        size: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        bias: float = 1.0,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.size, self.alpha, self.beta, self.bias = check_lrn_args(size, alpha, beta, bias)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("size", "alpha", "beta", "bias") and "bias" in self.__dict__:
            args = {k: getattr(self, k) for k in ("size", "alpha", "beta", "bias")}
            args[name] = value
            value = check_lrn_args(**args)[("size", "alpha", "beta", "bias").index(name)]
        super().__setattr__(name, value)

    def _build(self, input_shape: Shape) -> Shape:
        _channels(self, input_shape)
        return input_shape

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:
            self._x = x
        return _core.lrn(x, self.size, self.alpha, self.beta, self.bias)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.lrn_backward(dy, self._x, self.size, self.alpha, self.beta, self.bias)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.lrn(x, size=self.size, alpha=self.alpha, beta=self.beta, bias=self.bias)

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(), size=self.size, alpha=self.alpha, beta=self.beta, bias=self.bias
        )

    def summary_formulas(self) -> list[str]:
        return [f"window of {self.size} channels, no parameters"]


class _AffineNorm(Layer):
    """gamma / beta per channel, epsilon; subclasses run the statistics."""

    has_params = True
    _fixed_after_build: tuple[str, ...] = ("center", "scale")

    def __init__(
        self, epsilon: float, center: bool, scale: bool, name: Optional[str], trainable: bool
    ) -> None:
        super().__init__(name, trainable)
        self.epsilon = _epsilon(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "epsilon":
            value = _epsilon(value)
        super().__setattr__(name, value)

    def _add_affine(self, c: int) -> None:
        if self.scale:
            self.add_param("gamma", np.ones(c, np.float32))
        if self.center:
            self.add_param("beta", np.zeros(c, np.float32))

    def _store(self, dg: np.ndarray, db: np.ndarray, accumulate: bool) -> None:
        if not self.trainable:
            return
        if self.scale:
            self._set_grad("gamma", dg, accumulate)
        if self.center:
            self._set_grad("beta", db, accumulate)

    def _refs(self, g: Graph) -> tuple[Any, Any]:
        p = self.params
        return (
            g.param(self, "gamma") if "gamma" in p else None,
            g.param(self, "beta") if "beta" in p else None,
        )

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(), epsilon=self.epsilon, center=self.center, scale=self.scale
        )

    def summary_formulas(self) -> list[str]:
        c = self.input_shape[-1]
        k = int(self.scale) + int(self.center)
        return [f"{k}*{c} = {k * c} (gamma, beta)"]


class GroupNormalization(_AffineNorm):
    """Normalise each example's channel groups by their own mean and variance.

    The last axis (``n_C`` channels) splits into ``groups`` groups of
    ``n_C / groups``; each (example, group) is normalised over all its
    positions and channels, then scaled by ``gamma`` and shifted by ``beta``
    per channel. The batch does not enter the statistics, so training and
    inference compute the same thing (no running statistics). ``groups=1``
    normalises each example as a whole; ``groups=n_C`` is instance norm.

    Keras names and defaults: ``groups=32``, ``epsilon=1e-3`` (PyTorch's
    ``GroupNorm`` uses 1e-5), ``center``, ``scale``.
    """

    _fixed_after_build = ("groups", "center", "scale")

    def __init__(
        self,
        groups: int = 32,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(epsilon, center, scale, name, trainable)
        self.groups = as_int(groups, "groups", 1)

    def _build(self, input_shape: Shape) -> Shape:
        c = _channels(self, input_shape)
        if c % self.groups:
            raise ValueError(f"groups: must divide the channels ({c}), got {self.groups}")
        self._add_affine(c)
        return input_shape

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        p = self.params
        y, mean, inv = _core.group_norm(x, p.get("gamma"), p.get("beta"), self.groups, self.epsilon)
        if training:
            self._x, self._mean, self._inv = x, mean, inv
        return y

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        train = self.trainable and (self.scale or self.center)
        if not need_dx and not train:
            return None
        dx, dg, db = _core.group_norm_backward(
            dy,
            self._x,
            self.params.get("gamma"),
            self._mean,
            self._inv,
            self.groups,
            self.epsilon,
            need_dx,
        )
        self._store(dg, db, accumulate)
        return dx

    def lower(self, g: Graph, x: Value) -> Value:
        gamma, beta = self._refs(g)
        return g.group_norm(x, groups=self.groups, gamma=gamma, beta=beta, epsilon=self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), groups=self.groups)

    def summary_formulas(self) -> list[str]:
        c = self.input_shape[-1]
        return [f"{self.groups} groups of {c // self.groups} channels"] + super().summary_formulas()


class LayerNormalization(_AffineNorm):
    """Normalise every position over its last axis (the channels of a pixel,
    or the features of a row), then ``* gamma + beta`` per channel: ConvNeXt's
    channel LayerNorm on NHWC images, the usual LayerNorm on ``(m, features)``.

    Keras names and defaults: ``axis=-1`` (only the last axis is supported),
    ``epsilon=1e-3`` (PyTorch's ``LayerNorm`` uses 1e-5), ``center``, ``scale``.
    """

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        if axis not in (-1, [-1], (-1,)):
            raise ValueError(f"axis: only the last axis (-1) is supported, got {axis!r}")
        super().__init__(epsilon, center, scale, name, trainable)
        self.axis = -1

    def _build(self, input_shape: Shape) -> Shape:
        self._add_affine(_channels(self, input_shape))
        return input_shape

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        p = self.params
        y, mean, inv = _core.layer_norm(x, p.get("gamma"), p.get("beta"), self.epsilon)
        if training:
            self._x, self._mean, self._inv = x, mean, inv
        return y

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        train = self.trainable and (self.scale or self.center)
        if not need_dx and not train:
            return None
        dx, dg, db = _core.layer_norm_backward(
            dy, self._x, self.params.get("gamma"), self._mean, self._inv, self.epsilon, need_dx
        )
        self._store(dg, db, accumulate)
        return dx

    def lower(self, g: Graph, x: Value) -> Value:
        gamma, beta = self._refs(g)
        return g.layer_norm(x, gamma=gamma, beta=beta, epsilon=self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), axis=self.axis)
