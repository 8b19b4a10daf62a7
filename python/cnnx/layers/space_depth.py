"""Layers that move values between channels and space, or between channels.

- ``DepthToSpace(block_size, mode)``: ``(n_H, n_W, n_C) -> (n_H*b, n_W*b, n_C/b^2)``,
  the sub-pixel upsampling of ESPCN super-resolution (PyTorch's PixelShuffle
  is ``mode="CRD"``; TensorFlow's depth_to_space and ONNX's default ``"DCR"``).
- ``SpaceToDepth(block_size, mode)``: the inverse, ``(n_H/b, n_W/b, n_C*b^2)``.
- ``ChannelShuffle(groups)``: ShuffleNet's interleaving of channel groups, so
  that the next grouped convolution sees channels from every group.

None has parameters; each backward is the inverse rearrangement.
"""

from __future__ import annotations

import numpy as np
from typing import TYPE_CHECKING, Any, Optional
from .. import _core
from .._types import Shape
from .._validate import as_int
from ..functional._layout import depth_order
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["DepthToSpace", "SpaceToDepth", "ChannelShuffle"]


class _SpaceDepth(Layer):
    _fixed_after_build = ("block_size", "mode")

    def __init__(
        self,
        block_size: int,
        mode: str = "DCR",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.block_size = as_int(block_size, "block_size", 1)
        self._order = depth_order(mode)
        self.mode = mode.upper()

    def _need_hwc(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape: {type(self).__name__} expects (n_H, n_W, n_C), got {input_shape}"
            )
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), block_size=self.block_size, mode=self.mode)


class DepthToSpace(_SpaceDepth):
    """Channels into b x b blocks of pixels (b^2 must divide n_C)."""

    def _build(self, input_shape: Shape) -> Shape:
        h, w, c = self._need_hwc(input_shape)
        b = self.block_size
        if c % (b * b):
            raise ValueError(f"block_size: its square ({b * b}) must divide the channels ({c})")
        return (h * b, w * b, c // (b * b))

    def lower(self, g: Graph, x: Value) -> Value:
        return g.depth_to_space(x, block_size=self.block_size, order=self._order)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.depth_to_space(x, self.block_size, self._order)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        return _core.space_to_depth(dy, self.block_size, self._order) if need_dx else None

    def summary_formulas(self) -> list[str]:
        h, w, c = self.input_shape
        b = self.block_size
        return [
            f"n_H, n_W: {h}*{b}, {w}*{b} = {h * b}, {w * b}",
            f"n_C: {c}/{b}^2 = {c // (b * b)}",
        ]


class SpaceToDepth(_SpaceDepth):
    """b x b blocks of pixels into channels (b must divide n_H and n_W)."""

    def _build(self, input_shape: Shape) -> Shape:
        h, w, c = self._need_hwc(input_shape)
        b = self.block_size
        if h % b or w % b:
            raise ValueError(f"block_size: {b} must divide the height ({h}) and the width ({w})")
        return (h // b, w // b, c * b * b)

    def lower(self, g: Graph, x: Value) -> Value:
        return g.space_to_depth(x, block_size=self.block_size, order=self._order)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.space_to_depth(x, self.block_size, self._order)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        return _core.depth_to_space(dy, self.block_size, self._order) if need_dx else None

    def summary_formulas(self) -> list[str]:
        h, w, c = self.input_shape
        b = self.block_size
        return [f"n_H, n_W: {h}/{b}, {w}/{b} = {h // b}, {w // b}", f"n_C: {c}*{b}^2 = {c * b * b}"]


class ChannelShuffle(Layer):
    """Channel ``i*(n_C/groups) + j`` moves to ``j*groups + i`` (groups must divide n_C)."""

    _fixed_after_build = ("groups",)

    def __init__(self, groups: int, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name, trainable)
        self.groups = as_int(groups, "groups", 1)

    def _build(self, input_shape: Shape) -> Shape:
        if not input_shape or input_shape[-1] % self.groups:
            raise ValueError(
                f"groups: {self.groups} must divide the channels (last axis of {input_shape})"
            )
        return input_shape

    def lower(self, g: Graph, x: Value) -> Value:
        return g.channel_shuffle(x, groups=self.groups)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        return _core.channel_shuffle(x, self.groups)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return _core.channel_shuffle(dy, self.input_shape[-1] // self.groups)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), groups=self.groups)

    def summary_formulas(self) -> list[str]:
        c = self.input_shape[-1]
        g = self.groups
        return [f"n_C: {g} groups of {c // g} interleaved: channel i*{c // g}+j -> j*{g}+i"]
