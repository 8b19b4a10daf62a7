"""Dense (fully connected): ``activation(x @ kernel + bias)``.

Parameters: ``n_in * n_out + n_out`` (the course's "activation size of the
previous layer times this one's, plus one bias each": 400*120 + 120 = 48120
in the seed's table).
"""

from __future__ import annotations

import numpy as np
from typing import TYPE_CHECKING, Any, Optional
from .. import _core
from .._types import Shape
from .._validate import as_int, check_size
from .activations import HasActivation
from .base import ActivatedLinearMixin, Layer, initialize

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["Dense"]


class Dense(HasActivation, ActivatedLinearMixin, Layer):
    """Fully connected layer on the core SGEMM.

    Args:
        units: n_out.
        activation: None, "relu" (fused into the GEMM's store), "leaky_relu",
            "sigmoid", "tanh" or "softmax". ``Dense(k, activation="softmax")``
            as the last layer of a model compiled with
            ``loss="cross_entropy"`` is trained through the fused, stable
            softmax-cross-entropy (the softmax is never differentiated
            separately).
        use_bias: add a bias per unit.
        kernel_initializer: "auto" (He normal before a ReLU, else Glorot
            uniform) or a named initialiser.

    Input ``(m, n_in)`` (put a ``Flatten`` after convolutions), output
    ``(m, units)``. Parameters ``params["kernel"]`` ``(n_in, units)`` and
    ``params["bias"]`` ``(units,)``.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> layer = cnnx.Dense(10, activation="softmax")
        >>> y = layer.forward(np.random.rand(4, 84).astype(np.float32))
        >>> y.shape, layer.params["kernel"].shape                     # 84*10 + 10 = 850 parameters
        ((4, 10), (84, 10))
    """

    has_params = True
    _fixed_after_build = ("units", "use_bias")

    def __init__(
        self,
        units: int,
        activation: Optional[str] = None,
        use_bias: bool = True,
        kernel_initializer: str = "auto",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.units = as_int(units, "units", 1)
        self.activation = activation
        self.use_bias = bool(use_bias)
        if not isinstance(kernel_initializer, str):
            raise TypeError(
                f"kernel_initializer: expected a str, got {type(kernel_initializer).__name__}"
            )
        self.kernel_initializer = kernel_initializer

    def _build(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(
                f"input_shape: Dense expects (n_in,), got {input_shape} "
                "(add a Flatten layer before it)"
            )
        if input_shape[0] is None:
            raise ValueError(
                "input_shape: Dense needs a known number of input features (for "
                "images of any size, put a GlobalAvgPool2D before it)"
            )
        n_in = input_shape[0]
        kind = self.kernel_initializer
        if kind == "auto":
            kind = "he_normal" if self.activation in ("relu", "leaky_relu") else "glorot_uniform"
        check_size((n_in, self.units), "units")
        self.add_param("kernel", initialize(kind, (n_in, self.units), n_in, self.units))
        if self.use_bias:
            self.add_param("bias", initialize("zeros", (self.units,), 1, 1))
        return (self.units,)

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        p = self.params
        z = _core.dense(x, p["kernel"], p.get("bias"), self._fused)
        post = self._post
        y = z if post is None else post.forward(z)
        if training:
            self._x = x
            self._z = z
            self._y = y
        return y

    def _backward_linear(
        self, dz: np.ndarray, need_dx: bool, accumulate: bool
    ) -> Optional[np.ndarray]:
        trainable = self._trainable
        if not trainable and not need_dx:
            return None
        bias = self.use_bias and trainable
        if trainable and not accumulate:
            # straight into the model's gradient slots: no temporary, no copy
            g = self.grads
            dx, _, _ = _core.dense_backward(
                dz,
                self._x,
                self.params["kernel"],
                need_dx,
                True,
                bias,
                g["kernel"],
                g["bias"] if bias else None,
            )
            return dx
        dx, dw, db = _core.dense_backward(
            dz, self._x, self.params["kernel"], need_dx, trainable, bias
        )
        if trainable:
            if bias:
                self._store_grads(accumulate, kernel=dw, bias=db)
            else:
                self._store_grads(accumulate, kernel=dw)
        return dx

    def lower(self, g: Graph, x: Value) -> Value:
        y = g.dense(
            x,
            in_features=self.input_shape[0],
            out_features=self.units,
            kernel=g.param(self, "kernel"),
            bias=g.param(self, "bias") if self.use_bias else None,
        )
        return self._act.lower(g, y)

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            units=self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
        )

    def summary_formulas(self) -> list[str]:
        n_in = self.input_shape[0]
        n = self.count_params()
        if self.use_bias:
            return [f"{n_in}*{self.units}+{self.units} = {n}"]
        return [f"{n_in}*{self.units} = {n}"]
