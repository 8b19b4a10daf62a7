"""BatchNormalization over the channel axis (the last, in NHWC)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional
import numbers

import numpy as np

from .. import _core
from .._types import Shape
from .._validate import check_size
from ..graph.ir import BufferRef
from .base import Layer, initialize

if TYPE_CHECKING:
    from ..graph import Graph, Value

__all__ = ["BatchNormalization"]


def _real(v: float, name: str, lo: float, hi: float) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
    v = float(v)
    if not lo < v < hi:
        raise ValueError(f"{name}: expected a number in ({lo}, {hi}), got {v}")
    return v


class BatchNormalization(Layer):
    """Normalise each channel with the batch's mean and variance (training) or
    the running averages (inference), then scale by ``gamma`` and shift by ``beta``.

    Statistics are over every axis but the last (``m * n_H * n_W`` values per
    channel for images). Keras's conventions: ``momentum=0.99`` means
    ``moving = 0.99*moving + 0.01*batch`` (PyTorch's momentum 0.01);
    ``epsilon=1e-3``. The running variance uses the unbiased batch variance,
    the normalisation the biased one (as PyTorch).

    Parameters ``gamma`` (scale) and ``beta`` (shift); buffers
    ``moving_mean`` and ``moving_var`` are saved with the model but not trained.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> bn = cnnx.BatchNormalization()
        >>> y = bn.forward(np.random.rand(16, 4, 4, 3).astype(np.float32) * 5, training=True)
        >>> bool(np.allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-4)), bn.params["gamma"].shape
        (True, (3,))
    """

    has_params = True
    _fixed_after_build = ("center", "scale")

    def __init__(
        self,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0)
        self.epsilon = _real(epsilon, "epsilon", 0.0, float("inf"))
        self.center = bool(center)
        self.scale = bool(scale)

    def _build(self, input_shape: Shape) -> Shape:
        c = input_shape[-1] if input_shape else 0
        c = 0 if c is None else c
        if c < 1:
            raise ValueError(
                f"input_shape: BatchNormalization needs a channel axis, got {input_shape}"
            )
        check_size((c,), "input_shape")
        if self.scale:
            self.add_param("gamma", initialize("ones", (c,), 1, 1))
        if self.center:
            self.add_param("beta", initialize("zeros", (c,), 1, 1))
        # (placeholders while load_model checks the size: see base.deferred_init)
        self.add_buffer("moving_mean", initialize("zeros", (c,), 1, 1))
        self.add_buffer("moving_var", initialize("ones", (c,), 1, 1))
        return input_shape

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        p = self.params
        gamma, beta = p.get("gamma"), p.get("beta")
        if training:
            y, mean, inv_std = _core.batch_norm_train(
                x,
                gamma,
                beta,
                self.buffers["moving_mean"],
                self.buffers["moving_var"],
                1.0 - self.momentum,
                self.epsilon,
            )
            self._x, self._mean, self._inv_std, self._training = x, mean, inv_std, True
            return y
        inv_std = (1.0 / np.sqrt(self.buffers["moving_var"] + self.epsilon)).astype(np.float32)
        return _core.batch_norm_eval(x, gamma, beta, self.buffers["moving_mean"], inv_std)

    def _backward(self, dy: np.ndarray, need_dx: bool, accumulate: bool) -> Optional[np.ndarray]:
        p = self.params
        train = self.trainable and (self.scale or self.center)
        if not need_dx and not train:
            return None
        dx, dg, db = _core.batch_norm_backward(
            dy, self._x, p.get("gamma"), self._mean, self._inv_std, self._training, need_dx
        )
        if train:
            if self.scale:
                self._set_grad("gamma", dg, accumulate)
            if self.center:
                self._set_grad("beta", db, accumulate)
        return dx

    def lower(self, g: Graph, x: Value) -> Value:
        p = self.params
        return g.batch_norm(
            x,
            gamma=g.param(self, "gamma") if "gamma" in p else None,
            beta=g.param(self, "beta") if "beta" in p else None,
            moving_mean=BufferRef(self, "moving_mean"),
            moving_var=BufferRef(self, "moving_var"),
            epsilon=self.epsilon,
            momentum=1.0 - self.momentum,
        )

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
        )

    def summary_formulas(self) -> list[str]:
        c = self.input_shape[-1]
        k = int(self.scale) + int(self.center)
        return [f"{k}*{c} = {k * c} (gamma, beta; + 2*{c} running statistics, not trained)"]
