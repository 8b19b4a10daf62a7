"""Activation layers (ReLU, LeakyReLU, Sigmoid, Tanh, Softmax) and the
activation functions that Conv2D, Dense and Residual accept by name.

Each is one elementwise C++ kernel call forward and one backward. ReLU,
sigmoid, tanh and softmax differentiate from their *output* y (ReLU: y > 0
exactly where x > 0), so layers keep y, not x; LeakyReLU keeps x.
"""
import numbers

import numpy as np

from .. import _core
from .base import Layer

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "get_activation", "ACTIVATIONS"]

ACTIVATIONS = (None, "linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")


class _Act:
    """An activation function: ``forward(z) -> y``, ``backward(dy, z, y) -> dz``."""

    name = "linear"
    keeps_input = False  # backward needs z (else only y)

    def forward(self, z):
        return z

    def backward(self, dy, z, y):
        return dy


class _ReLU(_Act):
    name = "relu"

    def forward(self, z):
        return _core.relu(z)

    def backward(self, dy, z, y):
        return _core.relu_backward(dy, y)


class _LeakyReLU(_Act):
    name = "leaky_relu"
    keeps_input = True

    def __init__(self, alpha=0.01):
        self.alpha = float(alpha)

    def forward(self, z):
        return _core.leaky_relu(z, self.alpha)

    def backward(self, dy, z, y):
        return _core.leaky_relu_backward(dy, z, self.alpha)


class _Sigmoid(_Act):
    name = "sigmoid"

    def forward(self, z):
        return _core.sigmoid(z)

    def backward(self, dy, z, y):
        return _core.sigmoid_backward(dy, y)


class _Tanh(_Act):
    name = "tanh"

    def forward(self, z):
        return _core.tanh(z)

    def backward(self, dy, z, y):
        return _core.tanh_backward(dy, y)


class _Softmax(_Act):
    name = "softmax"

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, z):
        return _core.softmax(z, self.axis % z.ndim)

    def backward(self, dy, z, y):
        return _core.softmax_backward(dy, y, self.axis % y.ndim)


def get_activation(name, argname="activation"):
    """The activation function called ``name`` (None or "linear": identity)."""
    if name is None or name == "linear":
        return _Act()
    if not isinstance(name, str):
        raise TypeError(f"{argname}: expected one of {ACTIVATIONS}, got {type(name).__name__}")
    table = {"relu": _ReLU, "leaky_relu": _LeakyReLU, "sigmoid": _Sigmoid, "tanh": _Tanh,
             "softmax": _Softmax}
    try:
        return table[name.lower()]()
    except KeyError:
        raise ValueError(f"{argname}: expected one of {ACTIVATIONS}, got {name!r}") from None


class _ActivationLayer(Layer):
    """A parameterless layer applying one activation function."""

    def _make(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __init__(self, name=None, trainable=True):
        super().__init__(name, trainable)
        self._act = self._make()
        self._z = self._y = None

    def _forward(self, x, training):
        y = self._act.forward(x)
        if training:
            self._z = x if self._act.keeps_input else None
            self._y = y
        return y

    def _backward(self, dy, need_dx, accumulate):
        if not need_dx:
            return None
        return self._act.backward(dy, self._z, self._y)

    def summary_formulas(self):
        return []


class ReLU(_ActivationLayer):
    """``max(x, 0)``. Same shape in and out, no parameters."""

    def _make(self):
        return _ReLU()


class LeakyReLU(_ActivationLayer):
    """``x`` where ``x > 0``, else ``alpha * x`` (``alpha`` default 0.01, as PyTorch)."""

    def __init__(self, alpha=0.01, name=None, trainable=True):
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"alpha: expected a number, got {type(alpha).__name__}")
        if not np.isfinite(alpha):
            raise ValueError(f"alpha: expected a finite number, got {alpha}")
        self.alpha = float(alpha)
        super().__init__(name, trainable)

    def _make(self):
        return _LeakyReLU(self.alpha)

    def get_config(self):
        return dict(super().get_config(), alpha=self.alpha)


class Sigmoid(_ActivationLayer):
    """``1 / (1 + exp(-x))``."""

    def _make(self):
        return _Sigmoid()


class Tanh(_ActivationLayer):
    """Hyperbolic tangent."""

    def _make(self):
        return _Tanh()


class Softmax(_ActivationLayer):
    """``exp(x) / sum(exp(x))`` along ``axis`` (default the last: the classes).

    As the last layer of a model compiled with ``loss="cross_entropy"`` it is
    fused with the loss into the stable softmax-cross-entropy.
    """

    def __init__(self, axis=-1, name=None, trainable=True):
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
        self.axis = int(axis)
        super().__init__(name, trainable)

    def _make(self):
        return _Softmax(self.axis)

    def _build(self, input_shape):
        nd = len(input_shape) + 1
        if not -nd <= self.axis < nd or self.axis % nd == 0:
            raise ValueError(f"axis: expected a non-batch axis of a {nd}-D batch, got {self.axis}")
        return input_shape

    def get_config(self):
        return dict(super().get_config(), axis=self.axis)
