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

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "get_activation", "ACTIVATIONS",
           "HasActivation", "SoftmaxInputGrad"]

ACTIVATIONS = (None, "linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")


class SoftmaxInputGrad:
    """A gradient already taken through a model's output softmax.

    The fused softmax-cross-entropy gives dL/dz = (softmax(z) - onehot)/N
    for the softmax's INPUT z, exactly and stably. A trainer running a model
    layer by layer hands the output layer this wrapper instead of dL/dy; the
    layer whose output is that softmax skips the softmax's own backward.
    """

    __slots__ = ("grad",)

    def __init__(self, grad):
        self.grad = grad


class _Act:
    """An activation function: ``forward(z) -> y``, ``backward(dy, z, y) -> dz``,
    and ``lower(g, x)`` into the op graph."""

    name = "linear"
    keeps_input = False  # backward needs z (else only y)
    plan_act = _core.Act.none
    alpha = 0.0

    def forward(self, z):
        return z

    def backward(self, dy, z, y):
        if isinstance(dy, SoftmaxInputGrad):
            return dy.grad if self.name == "softmax" else self.backward(dy.grad, z, y)
        return self._backward(dy, z, y)

    def _backward(self, dy, z, y):
        return dy

    def lower(self, g, x):
        return g.activation(x, self.plan_act, self.alpha)


class _ReLU(_Act):
    name = "relu"
    plan_act = _core.Act.relu

    def forward(self, z):
        return _core.relu(z)

    def _backward(self, dy, z, y):
        return _core.relu_backward(dy, y)


class _LeakyReLU(_Act):
    name = "leaky_relu"
    keeps_input = True
    plan_act = _core.Act.leaky_relu

    def __init__(self, alpha=0.01):
        self.alpha = float(alpha)

    def forward(self, z):
        return _core.leaky_relu(z, self.alpha)

    def _backward(self, dy, z, y):
        return _core.leaky_relu_backward(dy, z, self.alpha)


class _Sigmoid(_Act):
    name = "sigmoid"
    plan_act = _core.Act.sigmoid

    def forward(self, z):
        return _core.sigmoid(z)

    def _backward(self, dy, z, y):
        return _core.sigmoid_backward(dy, y)


class _Tanh(_Act):
    name = "tanh"
    plan_act = _core.Act.tanh

    def forward(self, z):
        return _core.tanh(z)

    def _backward(self, dy, z, y):
        return _core.tanh_backward(dy, y)


class _Softmax(_Act):
    name = "softmax"
    plan_act = _core.Act.softmax

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, z):
        return _core.softmax(z, self.axis % z.ndim)

    def _backward(self, dy, z, y):
        return _core.softmax_backward(dy, y, self.axis % y.ndim)

    def lower(self, g, x):
        # axis counts the batch axis (-1: the last); the graph's does not
        axis = self.axis - 1 if self.axis > 0 else self.axis
        return g.activation(x, self.plan_act, 0.0, axis)


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


class HasActivation:
    """For layers with an ``activation=`` argument (Conv2D, Dense, Residual):
    the public name and the function it selects stay in step, so setting
    ``layer.activation = None`` on a built layer changes what it computes
    (and compiled plans see it: the edit bumps cnnx's edit count)."""

    @property
    def activation(self):
        """None or the name of the activation applied to the output."""
        return self._activation_name

    @activation.setter
    def activation(self, value):
        act = get_activation(value)
        self._act = act
        self._activation_name = None if act.name == "linear" else act.name
        # ReLU is fused into the kernels' store; the others run after them
        self._fused = self._activation_name == "relu"
        self._post = None if (self._fused or self._activation_name is None) else act


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
            self._z = x if self._act.keeps_input or self._act.name == "softmax" else None
            self._y = y
        return y

    def _backward(self, dy, need_dx, accumulate):
        if not need_dx:
            return None
        return self._act.backward(dy, self._z, self._y)

    def lower(self, g, x):
        return self._act.lower(g, x)

    def softmax_logits(self):
        return self._z if self._act.name == "softmax" else None

    def summary_formulas(self):
        return []


class ReLU(_ActivationLayer):
    """``max(x, 0)``. Same shape in and out, no parameters.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.ReLU().forward(np.array([[-1.0, 2.0]], np.float32))
        array([[0., 2.]], dtype=float32)
    """

    def _make(self):
        return _ReLU()


class LeakyReLU(_ActivationLayer):
    """``x`` where ``x > 0``, else ``alpha * x`` (``alpha`` default 0.01, as PyTorch).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.LeakyReLU(alpha=0.1).forward(np.array([[-1.0, 2.0]], np.float32))
        array([[-0.1,  2. ]], dtype=float32)
    """

    def __init__(self, alpha=0.01, name=None, trainable=True):
        super().__init__(name, trainable)
        self.alpha = alpha

    @property
    def alpha(self):
        """The slope for x < 0."""
        return self._alpha

    @alpha.setter
    def alpha(self, alpha):
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"alpha: expected a number, got {type(alpha).__name__}")
        if not np.isfinite(alpha):
            raise ValueError(f"alpha: expected a finite number, got {alpha}")
        self._alpha = float(alpha)
        self._act = _LeakyReLU(self._alpha)

    def _make(self):
        return _LeakyReLU(getattr(self, "_alpha", 0.01))

    def get_config(self):
        return dict(super().get_config(), alpha=self.alpha)


class Sigmoid(_ActivationLayer):
    """``1 / (1 + exp(-x))``.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.Sigmoid().forward(np.zeros((1, 2), np.float32))
        array([[0.5, 0.5]], dtype=float32)
    """

    def _make(self):
        return _Sigmoid()


class Tanh(_ActivationLayer):
    """Hyperbolic tangent.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.Tanh().forward(np.zeros((1, 2), np.float32))
        array([[0., 0.]], dtype=float32)
    """

    def _make(self):
        return _Tanh()


class Softmax(_ActivationLayer):
    """``exp(x) / sum(exp(x))`` along ``axis`` (default the last: the classes).

    As the last layer of a model compiled with ``loss="cross_entropy"`` it is
    fused with the loss into the stable softmax-cross-entropy.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.Softmax().forward(np.zeros((1, 4), np.float32))
        array([[0.25, 0.25, 0.25, 0.25]], dtype=float32)
    """

    _fixed_after_build = ("axis",)

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
