"""Activation layers (ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, and from
issue 19 ELU, SELU, GELU, SiLU, Hardswish, Hardsigmoid, ReLU6, Clip,
Softplus, Softsign, LogSoftmax) and the activation functions that Conv2D,
Dense and Residual accept by name.

Each is one elementwise C++ kernel call forward and one backward, on any
shape. ReLU, sigmoid, tanh, softmax and log-softmax differentiate from their
*output* y (ReLU: y > 0 exactly where x > 0), so layers keep y, not x; the
others keep x.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np

from .. import _core
from .._types import Shape
from .base import Layer

if TYPE_CHECKING:
    from ..graph import Graph

__all__ = [
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "ELU",
    "SELU",
    "GELU",
    "SiLU",
    "Hardswish",
    "Hardsigmoid",
    "ReLU6",
    "Clip",
    "Softplus",
    "Softsign",
    "LogSoftmax",
    "get_activation",
    "ACTIVATIONS",
    "HasActivation",
    "SoftmaxInputGrad",
]

ACTIVATIONS = (
    None,
    "linear",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    # issue 19
    "elu",
    "selu",
    "gelu",
    "gelu_tanh",
    "silu",
    "swish",
    "hard_swish",
    "hardswish",
    "hard_sigmoid",
    "hardsigmoid",
    "relu6",
    "softplus",
    "softsign",
    "log_softmax",
)


class SoftmaxInputGrad:
    """A gradient already taken through a model's output softmax.

    The fused softmax-cross-entropy gives dL/dz = (softmax(z) - onehot)/N
    for the softmax's INPUT z, exactly and stably. A trainer running a model
    layer by layer hands the output layer this wrapper instead of dL/dy; the
    layer whose output is that softmax skips the softmax's own backward.
    """

    __slots__ = ("grad",)

    def __init__(self, grad: np.ndarray) -> None:
        self.grad = grad


class _Act:
    """An activation function: ``forward(z) -> y``, ``backward(dy, z, y) -> dz``,
    and ``lower(g, x)`` into the op graph."""

    name = "linear"
    keeps_input = False  # backward needs z (else only y)
    plan_act = _core.Act.none
    alpha = 0.0
    beta = 0.0

    def forward(self, z: np.ndarray) -> np.ndarray:
        return z

    def backward(
        self,
        dy: Union[np.ndarray, SoftmaxInputGrad],
        z: Optional[np.ndarray],
        y: Optional[np.ndarray],
    ) -> np.ndarray:
        if isinstance(dy, SoftmaxInputGrad):
            return dy.grad if self.name == "softmax" else self.backward(dy.grad, z, y)
        return self._backward(dy, z, y)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return dy

    def lower(self, g: Graph, x: Any) -> Any:
        return g.activation(x, self.plan_act, self.alpha, beta=self.beta)


class _ReLU(_Act):
    name = "relu"
    plan_act = _core.Act.relu

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _core.relu(z)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return _core.relu_backward(dy, y)


class _LeakyReLU(_Act):
    name = "leaky_relu"
    keeps_input = True
    plan_act = _core.Act.leaky_relu

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = float(alpha)

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _core.leaky_relu(z, self.alpha)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return _core.leaky_relu_backward(dy, z, self.alpha)


class _Sigmoid(_Act):
    name = "sigmoid"
    plan_act = _core.Act.sigmoid

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _core.sigmoid(z)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return _core.sigmoid_backward(dy, y)


class _Tanh(_Act):
    name = "tanh"
    plan_act = _core.Act.tanh

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _core.tanh(z)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return _core.tanh_backward(dy, y)


class _Softmax(_Act):
    name = "softmax"
    plan_act = _core.Act.softmax

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _core.softmax(z, self.axis % z.ndim)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return _core.softmax_backward(dy, y, self.axis % y.ndim)

    def lower(self, g: Graph, x: Any) -> Any:
        # axis counts the batch axis (-1: the last); the graph's does not
        axis = self.axis - 1 if self.axis > 0 else self.axis
        return g.activation(x, self.plan_act, 0.0, axis)


class _Pointwise(_Act):
    """An elementwise activation of cnnx._core.Pointwise (issue 19), from x."""

    keeps_input = True
    kind: Any = None  # _core.Pointwise

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _core.pointwise(z, self.kind, self.alpha, self.beta)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return _core.pointwise_backward(dy, z, self.kind, self.alpha, self.beta)


def _pointwise(name: str, plan_act: Any, kind: Any, alpha: float = 0.0, beta: float = 0.0) -> _Act:
    f = _Pointwise()
    f.name, f.plan_act, f.kind, f.alpha, f.beta = name, plan_act, kind, float(alpha), float(beta)
    return f


def _elu(alpha: float = 1.0) -> _Act:
    return _pointwise("elu", _core.Act.elu, _core.Pointwise.elu, alpha)


def _selu() -> _Act:
    from ..functional._activation_more import SELU_ALPHA, SELU_SCALE

    return _pointwise("selu", _core.Act.selu, _core.Pointwise.selu, SELU_ALPHA, SELU_SCALE)


def _gelu(approximate: Union[str, bool] = "none") -> _Act:
    from ..functional._activation_more import gelu_form

    if gelu_form(approximate) == _core.Pointwise.gelu_tanh:
        return _pointwise("gelu_tanh", _core.Act.gelu_tanh, _core.Pointwise.gelu_tanh)
    return _pointwise("gelu", _core.Act.gelu, _core.Pointwise.gelu)


def _hardsigmoid(alpha: float = 1.0 / 6.0, beta: float = 0.5) -> _Act:
    return _pointwise(
        "hardsigmoid", _core.Act.hardsigmoid, _core.Pointwise.hardsigmoid, alpha, beta
    )


def _clip(lo: float, hi: float, name: str = "clip") -> _Act:
    return _pointwise(name, _core.Act.clip, _core.Pointwise.clip, lo, hi)


class _LogSoftmax(_Act):
    name = "log_softmax"
    plan_act = _core.Act.log_softmax

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, z: np.ndarray) -> np.ndarray:
        return _core.log_softmax(z, self.axis % z.ndim)

    def _backward(self, dy: np.ndarray, z: Any, y: Any) -> np.ndarray:
        return _core.log_softmax_backward(dy, y, self.axis % y.ndim)

    def lower(self, g: Graph, x: Any) -> Any:
        axis = self.axis - 1 if self.axis > 0 else self.axis
        return g.activation(x, self.plan_act, 0.0, axis)


_NAMED: dict[str, Callable[[], _Act]] = {
    "elu": _elu,
    "selu": _selu,
    "gelu": _gelu,
    "gelu_tanh": lambda: _gelu("tanh"),
    "silu": lambda: _pointwise("silu", _core.Act.silu, _core.Pointwise.silu),
    "swish": lambda: _pointwise("silu", _core.Act.silu, _core.Pointwise.silu),
    "hardswish": lambda: _pointwise("hardswish", _core.Act.hardswish, _core.Pointwise.hardswish),
    "hard_swish": lambda: _pointwise("hardswish", _core.Act.hardswish, _core.Pointwise.hardswish),
    "hardsigmoid": _hardsigmoid,
    "hard_sigmoid": _hardsigmoid,
    "relu6": lambda: _clip(0.0, 6.0, "relu6"),
    "softplus": lambda: _pointwise("softplus", _core.Act.softplus, _core.Pointwise.softplus),
    "softsign": lambda: _pointwise("softsign", _core.Act.softsign, _core.Pointwise.softsign),
    "log_softmax": _LogSoftmax,
}


def get_activation(name: Optional[str], argname: str = "activation") -> _Act:
    """The activation function called ``name`` (None or "linear": identity)."""
    if name is None or name == "linear":
        return _Act()
    if not isinstance(name, str):
        raise TypeError(f"{argname}: expected one of {ACTIVATIONS}, got {type(name).__name__}")
    table: dict[str, Callable[[], _Act]] = {
        "relu": _ReLU,
        "leaky_relu": _LeakyReLU,
        "sigmoid": _Sigmoid,
        "tanh": _Tanh,
        "softmax": _Softmax,
        **_NAMED,
    }
    try:
        return table[name.lower()]()
    except KeyError:
        raise ValueError(f"{argname}: expected one of {ACTIVATIONS}, got {name!r}") from None


class HasActivation:
    """For layers with an ``activation=`` argument (Conv2D, Dense, Residual):
    the public name and the function it selects stay in step, so setting
    ``layer.activation = None`` on a built layer changes what it computes
    (and compiled plans see it: the edit bumps cnnx's edit count)."""

    _activation_name: Optional[str]

    @property
    def activation(self) -> Optional[str]:
        """None or the name of the activation applied to the output."""
        return self._activation_name

    @activation.setter
    def activation(self, value: Optional[str]) -> None:
        act = get_activation(value)
        self._act = act
        self._activation_name = None if act.name == "linear" else act.name
        # ReLU is fused into the kernels' store; the others run after them
        self._fused = self._activation_name == "relu"
        self._post = None if (self._fused or self._activation_name is None) else act


class _ActivationLayer(Layer):
    """A parameterless layer applying one activation function."""

    def _make(self) -> _Act:  # pragma: no cover - abstract
        raise NotImplementedError

    def __init__(self, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name, trainable)
        self._act = self._make()
        self._z: Optional[np.ndarray] = None
        self._y: Optional[np.ndarray] = None

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = self._act.forward(x)
        if training:
            self._z = x if self._act.keeps_input or self._act.name == "softmax" else None
            self._y = y
        return y

    def _backward(
        self, dy: Union[np.ndarray, SoftmaxInputGrad], need_dx: bool, accumulate: bool
    ) -> Optional[np.ndarray]:
        if not need_dx:
            return None
        return self._act.backward(dy, self._z, self._y)

    def lower(self, g: Graph, x: Any) -> Any:
        return self._act.lower(g, x)

    def softmax_logits(self) -> Optional[np.ndarray]:
        return self._z if self._act.name == "softmax" else None

    def summary_formulas(self) -> list[str]:
        return []


class ReLU(_ActivationLayer):
    """``max(x, 0)``. Same shape in and out, no parameters.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.ReLU().forward(np.array([[-1.0, 2.0]], np.float32))
        array([[0., 2.]], dtype=float32)
    """

    def _make(self) -> _Act:
        return _ReLU()


class LeakyReLU(_ActivationLayer):
    """``x`` where ``x > 0``, else ``alpha * x`` (``alpha`` default 0.01, as PyTorch).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.LeakyReLU(alpha=0.1).forward(np.array([[-1.0, 2.0]], np.float32))
        array([[-0.1,  2. ]], dtype=float32)
    """

    _alpha: float

    def __init__(
        self, alpha: float = 0.01, name: Optional[str] = None, trainable: bool = True
    ) -> None:
        super().__init__(name, trainable)
        self.alpha = alpha

    @property
    def alpha(self) -> float:
        """The slope for x < 0."""
        return self._alpha

    @alpha.setter
    def alpha(self, alpha: float) -> None:
        if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"alpha: expected a number, got {type(alpha).__name__}")
        if not np.isfinite(alpha):
            raise ValueError(f"alpha: expected a finite number, got {alpha}")
        self._alpha = float(alpha)
        self._act = _LeakyReLU(self._alpha)

    def _make(self) -> _Act:
        return _LeakyReLU(getattr(self, "_alpha", 0.01))

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), alpha=self.alpha)


class Sigmoid(_ActivationLayer):
    """``1 / (1 + exp(-x))``.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.Sigmoid().forward(np.zeros((1, 2), np.float32))
        array([[0.5, 0.5]], dtype=float32)
    """

    def _make(self) -> _Act:
        return _Sigmoid()


class Tanh(_ActivationLayer):
    """Hyperbolic tangent.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> cnnx.Tanh().forward(np.zeros((1, 2), np.float32))
        array([[0., 0.]], dtype=float32)
    """

    def _make(self) -> _Act:
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
    axis: int

    def __init__(self, axis: int = -1, name: Optional[str] = None, trainable: bool = True) -> None:
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
        self.axis = int(axis)
        super().__init__(name, trainable)

    def _make(self) -> _Act:
        return _Softmax(self.axis)

    def _build(self, input_shape: Shape) -> Shape:
        nd = len(input_shape) + 1
        if not -nd <= self.axis < nd or self.axis % nd == 0:
            raise ValueError(f"axis: expected a non-batch axis of a {nd}-D batch, got {self.axis}")
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), axis=self.axis)


# ---- issue 19 ------------------------------------------------------------------


def _finite(v: float, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    return float(v)


class _ParamActivation(_ActivationLayer):
    """An activation layer whose function has constructor parameters: each is a
    validated property, and changing one rebuilds the function (compiled
    plans see the edit)."""

    _arg_names: tuple[str, ...] = ()

    def __init__(self, name: Optional[str] = None, trainable: bool = True, **args: Any) -> None:
        for k, v in args.items():  # raw first: a property may read another one
            object.__setattr__(self, "_" + k, v)
        for k, v in args.items():  # then validated, through the properties
            setattr(self, k, v)
        super().__init__(name, trainable)  # builds the function from them

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, "_" + name, value)
        if "_act" in self.__dict__:
            self._act = self._make()

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), **{k: getattr(self, k) for k in self._arg_names})


def _number_property(name: str, doc: str, check: Callable[[Any, str], Any] = _finite) -> property:
    def get(self: _ParamActivation) -> Any:
        return getattr(self, "_" + name)

    def put(self: _ParamActivation, value: Any) -> None:
        self._set(name, check(value, name))

    get.__doc__ = doc  # what help() and the docs show for the property
    return property(get, put, doc=doc)


class ELU(_ParamActivation):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (``alpha`` default 1)."""

    _arg_names = ("alpha",)
    _alpha: float
    alpha = _number_property("alpha", "The value approached for very negative x is -alpha.")

    def __init__(
        self, alpha: float = 1.0, name: Optional[str] = None, trainable: bool = True
    ) -> None:
        super().__init__(name, trainable, alpha=alpha)

    def _make(self) -> _Act:
        return _elu(self._alpha)


class SELU(_ActivationLayer):
    """``scale * elu(x, alpha)`` with the self-normalising constants
    ``alpha = 1.6732632...``, ``scale = 1.0507009...`` (Klambauer et al. 2017)."""

    def _make(self) -> _Act:
        return _selu()


def _gelu_approximate(v: Union[str, bool], name: str) -> str:
    from ..functional._activation_more import gelu_form

    gelu_form(v)  # validates
    return "tanh" if v is True or v == "tanh" else "none"


class GELU(_ParamActivation):
    """``x * Phi(x)``, Phi the standard normal CDF (``approximate="none"``, the
    exact erf form of PyTorch, ONNX and TensorFlow), or its tanh approximation
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (``approximate="tanh"``;
    True and False are accepted too)."""

    _arg_names = ("approximate",)
    _approximate: str
    approximate = _number_property("approximate", "'none' (erf) or 'tanh'.", _gelu_approximate)

    def __init__(
        self,
        approximate: Union[str, bool] = "none",
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable, approximate=approximate)

    def _make(self) -> _Act:
        return _gelu(self._approximate)


class SiLU(_ActivationLayer):
    """``x * sigmoid(x)``, also called Swish."""

    def _make(self) -> _Act:
        return _NAMED["silu"]()


class Hardswish(_ActivationLayer):
    """``x * relu6(x + 3) / 6`` (MobileNetV3)."""

    def _make(self) -> _Act:
        return _NAMED["hardswish"]()


class Hardsigmoid(_ParamActivation):
    """``max(0, min(1, alpha * x + beta))``; the defaults give PyTorch's and
    Keras's ``relu6(x + 3) / 6`` (ONNX's HardSigmoid defaults to alpha = 0.2)."""

    _arg_names = ("alpha", "beta")
    _alpha: float
    _beta: float
    alpha = _number_property("alpha", "The slope.")
    beta = _number_property("beta", "The offset.")

    def __init__(
        self,
        alpha: float = 1.0 / 6.0,
        beta: float = 0.5,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name, trainable, alpha=alpha, beta=beta)

    def _make(self) -> _Act:
        return _hardsigmoid(self._alpha, self._beta)


class Clip(_ParamActivation):
    """``min(max(x, min_value), max_value)`` (ONNX Clip; PyTorch clamp / hardtanh).
    The gradient passes strictly between the bounds. ``min_value <= max_value``."""

    _arg_names = ("min_value", "max_value")
    _min_value: float
    _max_value: float

    def __init__(
        self,
        min_value: float,
        max_value: float,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        from ..functional._activation_more import _bounds

        lo, hi = _bounds(min_value, max_value)
        super().__init__(name, trainable, min_value=lo, max_value=hi)

    def _bound(self, which: str, value: float) -> None:
        from ..functional._activation_more import _bounds

        lo = value if which == "min_value" else self._min_value
        hi = value if which == "max_value" else self._max_value
        lo, hi = _bounds(lo, hi)
        self._set(which, lo if which == "min_value" else hi)

    def _get_min(self) -> float:
        """The lower bound."""
        return self._min_value

    def _get_max(self) -> float:
        """The upper bound."""
        return self._max_value

    min_value = property(
        _get_min, lambda self, v: self._bound("min_value", v), doc="The lower bound."
    )
    max_value = property(
        _get_max, lambda self, v: self._bound("max_value", v), doc="The upper bound."
    )

    def _make(self) -> _Act:
        return _clip(self._min_value, self._max_value)


class ReLU6(_ActivationLayer):
    """``min(max(x, 0), 6)`` (MobileNet)."""

    def _make(self) -> _Act:
        return _clip(0.0, 6.0, "relu6")


class Softplus(_ActivationLayer):
    """``log(1 + exp(x))``, computed without overflow for any x."""

    def _make(self) -> _Act:
        return _NAMED["softplus"]()


class Softsign(_ActivationLayer):
    """``x / (1 + |x|)``."""

    def _make(self) -> _Act:
        return _NAMED["softsign"]()


class LogSoftmax(_ActivationLayer):
    """``log(softmax(x))`` along ``axis`` (default the last), computed stably as
    ``x - max - log(sum(exp(x - max)))``. Pair it with a negative-log-likelihood
    style loss, or use it for log-probabilities at inference."""

    _fixed_after_build = ("axis",)
    axis: int

    def __init__(self, axis: int = -1, name: Optional[str] = None, trainable: bool = True) -> None:
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis: expected an int, got {type(axis).__name__}")
        self.axis = int(axis)
        super().__init__(name, trainable)

    def _make(self) -> _Act:
        return _LogSoftmax(self.axis)

    def _build(self, input_shape: Shape) -> Shape:
        nd = len(input_shape) + 1
        if not -nd <= self.axis < nd or self.axis % nd == 0:
            raise ValueError(f"axis: expected a non-batch axis of a {nd}-D batch, got {self.axis}")
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), axis=self.axis)
