"""Residual: the skip connection, ``activation(block(x) + shortcut(x))``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union, cast
import numpy as np

from .. import _core
from .._types import Shape
from .activations import HasActivation
from .base import Layer, check_nesting, layer_config as _layer_config, layer_from_config

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["Residual"]


def _as_layer_list(layers: Union[Layer, Sequence[Layer]], argname: str) -> list[Layer]:
    if isinstance(layers, Layer):
        return [layers]
    if isinstance(layers, (list, tuple)) and layers and all(isinstance(l, Layer) for l in layers):
        return list(layers)
    raise TypeError(
        f"{argname}: expected a Layer or a non-empty list of Layers, got {type(layers).__name__}"
    )


def _chain_forward(layers: Sequence[Layer], x: np.ndarray, training: bool) -> np.ndarray:
    for layer in layers:
        x = layer._forward(x, training)
    return x


def _chain_backward(layers: Sequence[Layer], dy: Any, need_dx: bool, accumulate: bool) -> Any:
    last = len(layers) - 1
    for i in range(last, -1, -1):
        dy = layers[i]._backward(dy, need_dx or i > 0, accumulate)
    return dy


def _build_chain(layers: Sequence[Layer], shape: Shape) -> Shape:
    for layer in layers:
        shape = layer.build(shape)
    return shape


class Residual(HasActivation, Layer):
    """A residual block: ``y = activation(block(x) + shortcut(x))``.

    Args:
        layers: the block, a Layer or a list of Layers applied in order.
        shortcut: None (automatic: the identity when the block keeps the
            shape, else a 1x1 ``Conv2D`` whose stride and filter count make
            the shapes agree), ``"identity"``, or a Layer / list of Layers.
        activation: applied after the sum (default ``"relu"``; None for none).

    Why the identity path stays untouched: the skip carries a full copy of
    x to the sum, so the block only has to learn the *residual*
    ``H(x) - x``, and in backward the gradient reaches x through the
    shortcut unchanged (``dx = dz + block'(x)^T dz``). If the skip went
    through the block's layers, or the sum were altered before it (the
    course's warning about "directly modifying the output part"), that
    clean copy would be lost and deep stacks would again suffer from
    vanishing gradients. So the sum comes first and only then the
    activation, and the shortcut is a projection (1x1 conv) only when the
    shapes force it.

    Nests inside ``Sequential`` (and inside other Residuals).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> block = cnnx.Residual([cnnx.Conv2D(8, 3, padding="same", activation="relu"),
        ...                        cnnx.Conv2D(8, 3, padding="same")])
        >>> model = cnnx.Sequential([block], input_shape=(8, 8, 8))   # identity shortcut: same shape
        >>> model.predict(np.random.rand(2, 8, 8, 8).astype(np.float32)).shape
        (2, 8, 8, 8)
    """

    _fixed_after_build = ("block", "shortcut", "shortcut_spec")

    def __init__(
        self,
        layers: Union[Layer, Sequence[Layer]],
        shortcut: Union[None, str, Layer, Sequence[Layer]] = None,
        activation: Optional[str] = "relu",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        self.block = _as_layer_list(layers, "layers")
        self.shortcut: Optional[list[Layer]]
        if shortcut is None or (isinstance(shortcut, str) and shortcut == "identity"):
            self.shortcut_spec = shortcut
            self.shortcut = None
        elif isinstance(shortcut, str):
            raise ValueError(f"shortcut: expected None, 'identity' or layers, got {shortcut!r}")
        else:
            self.shortcut = _as_layer_list(shortcut, "shortcut")
            self.shortcut_spec = "layers"
        check_nesting(self.block + (self.shortcut or []))
        self.activation = activation
        super().__init__(name, trainable)
        if not trainable:
            self.trainable = False

    def sublayers(self) -> list[Layer]:
        return self.block + (self.shortcut or [])

    def _build(self, input_shape: Shape) -> Shape:
        out = _build_chain(self.block, input_shape)
        if self.shortcut_spec == "layers":
            s_out = _build_chain(self.shortcut or [], input_shape)
            if s_out != out:
                raise ValueError(
                    f"shortcut: its output shape {s_out} differs from the block's {out}"
                )
        elif out != input_shape:
            if self.shortcut_spec == "identity":
                raise ValueError(
                    f"shortcut: the identity needs the block to keep the shape "
                    f"{input_shape}, but it gives {out}"
                )
            if self.shortcut is None:  # the first build makes the projection
                self.shortcut = [self._projection(input_shape, out)]
                if not self.trainable:
                    self.shortcut[0].trainable = False
            s_out = _build_chain(self.shortcut, input_shape)
            if s_out != out:
                raise ValueError(
                    f"shortcut: its output shape {s_out} differs from the block's {out}"
                )
        return out

    def softmax_logits(self) -> Optional[np.ndarray]:
        return self._z if self.activation == "softmax" else None

    def lower(self, g: Graph, x: Value) -> Value:
        h = x
        for layer in self.block:
            h = g.lower(layer, h)
        s = x
        for layer in self.shortcut or []:
            s = g.lower(layer, s)
        return self._act.lower(g, g.eltwise([h, s], _core.EltwiseKind.add))

    @staticmethod
    def _projection(in_shape: Shape, out_shape: Shape) -> Layer:
        from .conv import Conv2D

        if len(in_shape) != 3 or len(out_shape) != 3:
            raise ValueError(
                f"shortcut: cannot project {in_shape} to {out_shape} with a 1x1 "
                "convolution; pass shortcut= explicitly"
            )
        strides: list[int] = []
        if None in in_shape[:2] or None in out_shape[:2]:
            raise ValueError(
                f"shortcut: the block changes the shape {in_shape} -> {out_shape} "
                "for inputs of any size; pass shortcut= (e.g. a 1x1 Conv2D with "
                "the block's stride) explicitly"
            )
        in_hw = cast("tuple[int, int]", in_shape[:2])  # known: checked just above
        for n, o in zip(in_hw, out_shape[:2]):
            s = next((s for s in range(1, n + 1) if (n - 1) // s + 1 == o), None)
            if s is None:
                raise ValueError(
                    f"shortcut: no 1x1 convolution stride maps {in_shape} to "
                    f"{out_shape}; use padding='same' in the block or pass "
                    "shortcut= explicitly"
                )
            strides.append(s)
        return Conv2D(cast(int, out_shape[2]), 1, strides=(strides[0], strides[1]), name="shortcut")

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        h = _chain_forward(self.block, x, training)
        s = x if self.shortcut is None else _chain_forward(self.shortcut, x, training)
        z = np.add(h, s)
        y = self._act.forward(z) if self.activation is not None else z
        if training:
            self._z = z if self._act.keeps_input or self.activation == "softmax" else None
            self._y = y
        return y

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        dz = self._act.backward(dy, self._z, self._y) if self.activation is not None else dy
        g = _chain_backward(self.block, dz, need_dx, accumulate)
        if self.shortcut is None:
            ds = dz
        else:
            ds = _chain_backward(self.shortcut, dz, need_dx, accumulate)
        if not need_dx:
            return None
        return np.add(g, ds)

    def get_config(self) -> dict[str, Any]:
        cfg = dict(
            super().get_config(),
            activation=self.activation,
            layers=[_layer_config(l) for l in self.block],
        )
        if self.shortcut_spec == "layers":
            cfg["shortcut"] = [_layer_config(l) for l in self.shortcut or []]
        else:
            cfg["shortcut"] = self.shortcut_spec
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        config = dict(config)
        config["layers"] = [layer_from_config(c) for c in config["layers"]]
        sc = config.get("shortcut")
        if isinstance(sc, list):
            config["shortcut"] = [layer_from_config(c) for c in sc]
        return cls(**config)

    def summary_formulas(self) -> list[str]:
        kind = (
            "identity"
            if self.shortcut is None
            else "1x1 conv"
            if self.shortcut_spec is None
            else "layers"
        )
        return [f"{self.activation or 'linear'}(block(x) + {kind}(x))"]
