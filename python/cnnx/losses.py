"""Losses: what ``model.compile(loss=...)`` takes.

Classes (Keras's names and arguments) and string names::

    SparseCategoricalCrossentropy(from_logits=False)   "sparse_categorical_crossentropy"
    CategoricalCrossentropy(from_logits=False, label_smoothing=0.0)
                                                        "categorical_crossentropy"
    BinaryCrossentropy(from_logits=False)               "binary_crossentropy"
    MeanSquaredError()    "mse"      MeanAbsoluteError()   "mae"      Huber(delta=1.0)  "huber"

``"cross_entropy"`` (cnnx's own name) is the sparse cross-entropy in its
automatic form: on an output made by a softmax it reads the softmax's
input, on any other output it takes the output as logits.

How a loss runs. The built-in ones run in C++, inside the compiled training
step: the cross-entropies read *logits* (a softmax or sigmoid that made the
output is absorbed into the loss, the stable fused form), the others the
outputs. A loss of your own runs in Python between the step's forward and
backward halves::

    class Hinge(cnnx.losses.Loss):
        def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:            # per sample: shape (m,)
            return np.maximum(0, 1 - y_true * y_pred).mean(axis=1)
        def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:           # d forward_i / d y_pred_i
            return np.where(1 - y_true * y_pred > 0, -y_true, 0) / y_pred.shape[1]

    cnnx.losses.check_gradient(Hinge(), y_true, y_pred)   # against finite differences

Reductions: ``"mean"`` (default: ``sum_i w_i * loss_i / m`` over the batch,
Keras's "sum over batch size", ``w_i`` the sample weights), ``"sum"``, and
``"none"`` (calling the loss returns the per-sample values; not for training).
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence, Union, cast

import numpy as np

from . import _core
from ._types import ArrayLike
from ._validate import as_float32, same_shape

__all__ = [
    "Loss",
    "SparseCategoricalCrossentropy",
    "CategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "get",
    "check_gradient",
    "REDUCTIONS",
]

REDUCTIONS = ("mean", "sum", "none")
_EPS = 1e-7  # Keras's clip of probabilities


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)


class Loss:
    """Base class of every loss (see the module docstring).

    Subclasses write ``forward(y_true, y_pred) -> (m,)`` per-sample losses and
    ``backward(y_true, y_pred) -> d loss_i / d y_pred`` (``y_pred``'s shape).
    ``y_true`` arrives as ``prepare_targets`` returns it (float32 of the
    output's shape by default).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> class Hinge(cnnx.losses.Loss):
        ...     def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        ...         return np.maximum(0, 1 - y_true * y_pred).mean(axis=1)
        ...     def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        ...         return np.where(1 - y_true * y_pred > 0, -y_true, 0) / y_pred.shape[1]
        >>> cnnx.losses.check_gradient(Hinge(), np.array([[1.0, -1.0]]), np.array([[0.3, 0.2]])) < 1e-3
        True
    """

    #: how the compiled training step runs it: a _core.LossKind, or None (Python)
    plan_kind: Any = None
    #: an activation this loss absorbs when it made the output ("softmax", "sigmoid")
    absorbs: Optional[str] = None
    #: the output is read as logits (False: as probabilities / values; "auto": see cross_entropy)
    from_logits: Union[bool, str] = False

    def __init__(self, reduction: str = "mean", name: Optional[str] = None) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.name = name if name is not None else type(self).__name__

    # ---- what a subclass writes --------------------------------------------------
    def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Per-sample losses, shape (m,)."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """d forward(y_true, y_pred)[i] / d y_pred[i], same shape as y_pred."""
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def prepare_targets(
        self, y: ArrayLike, n: int, output_shape: Sequence[Optional[int]], name: str = "y"
    ) -> np.ndarray:
        """Check and convert the targets of n samples (default: floats of the output's shape)."""
        t = as_float32(y, name)
        if t.shape[:1] != (n,) or not same_shape(t.shape[1:], tuple(output_shape)):
            raise ValueError(
                f"{name}: expected targets of shape {(n,) + tuple(output_shape)}, got {t.shape}"
            )
        return t

    @property
    def param(self) -> float:
        """The loss's parameter for the C++ step (Huber's delta)."""
        return 0.0

    # ---- using it --------------------------------------------------------------------
    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: Optional[ArrayLike] = None
    ) -> Union[float, np.ndarray]:
        y_pred = as_float32(y_pred, "y_pred")
        if y_pred.ndim < 1:
            raise ValueError("y_pred: expected a batch")
        y_true = self.prepare_targets(y_true, y_pred.shape[0], y_pred.shape[1:], "y_true")
        per = np.asarray(self.forward(y_true, y_pred), np.float64).reshape(-1)
        if sample_weight is not None:
            per = per * np.asarray(sample_weight, np.float64).reshape(-1)
        if self.reduction == "none":
            return per
        total = float(per.sum())
        return total if self.reduction == "sum" else total / max(per.shape[0], 1)

    def reduced_gradient(
        self, y_true: np.ndarray, y_pred: np.ndarray, sample_weight: Optional[ArrayLike] = None
    ) -> tuple[float, np.ndarray]:
        """(reduced loss, its gradient w.r.t. y_pred) for training (mean or sum)."""
        if self.reduction == "none":
            raise ValueError(
                f"reduction: {self.name} with reduction='none' gives per-sample "
                "values; training needs 'mean' or 'sum'"
            )
        m = y_pred.shape[0]
        per = np.asarray(self.forward(y_true, y_pred), np.float64).reshape(-1)
        g = np.asarray(self.backward(y_true, y_pred), np.float32)
        if per.shape != (m,):
            raise ValueError(
                f"loss: {self.name}.forward returned shape {per.shape}; expected "
                f"({m},) (one value per sample)"
            )
        if g.shape != y_pred.shape:
            raise ValueError(
                f"loss: {self.name}.backward returned shape {g.shape}; expected "
                f"{y_pred.shape} (the outputs' shape)"
            )
        w = np.ones(m) if sample_weight is None else np.asarray(sample_weight, np.float64)
        scale = 1.0 / m if self.reduction == "mean" else 1.0
        g = g * (w * scale).astype(np.float32).reshape((m,) + (1,) * (g.ndim - 1))
        return float((w * per).sum() * scale), g

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as a dict (saved with a compiled model)."""
        return {"reduction": self.reduction, "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        """A loss made from the dict ``get_config`` returned."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


def _from_logits(v: Union[bool, str]) -> Union[bool, str]:
    if not isinstance(v, (bool, np.bool_)) and v != "auto":
        raise TypeError(f"from_logits: expected True or False, got {v!r}")
    return v if v == "auto" else bool(v)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels ``(m,)`` (or ``(m, H, W)`` for per-pixel
    classes), over the last axis of the output.

    ``from_logits=False``: the outputs are probabilities, except that a softmax
    that made them is absorbed (the loss reads its input: exact and stable).
    ``from_logits=True``: the outputs are logits.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> loss = cnnx.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> round(float(loss(np.array([0, 1]), np.zeros((2, 4), np.float32))), 4)   # log(4)
        1.3863
    """

    plan_kind = _core.LossKind.softmax_cross_entropy
    absorbs = "softmax"

    def __init__(
        self,
        from_logits: Union[bool, str] = False,
        reduction: str = "mean",
        name: Optional[str] = None,
    ) -> None:
        super().__init__(reduction, name)
        self.from_logits = _from_logits(from_logits)

    def prepare_targets(
        self, y: ArrayLike, n: int, output_shape: Sequence[Optional[int]], name: str = "y"
    ) -> np.ndarray:
        from .functional._loss import _labels

        k = output_shape[-1] if output_shape else 0
        arr = np.asarray(y)
        spatial = tuple(output_shape[:-1])
        if (
            arr.shape == (n,) + tuple(output_shape)
            and np.issubdtype(arr.dtype, np.number)
            and len(output_shape) == 1
        ):
            # exact one-hot rows are labels; soft rows are CategoricalCrossentropy's
            if not (np.all((arr == 0) | (arr == 1)) and np.all(arr.sum(axis=-1) == 1)):
                raise ValueError(
                    f"{name}: soft or label-smoothed targets (rows that are not "
                    "exactly one-hot) need CategoricalCrossentropy; this loss "
                    "takes integer labels"
                )
            arr = arr.argmax(axis=-1)
        if arr.shape[:1] != (n,) or not same_shape(arr.shape[1:], spatial):
            raise ValueError(
                f"{name}: expected {(n,) + spatial} integer labels, got shape {arr.shape}"
            )
        try:
            return _labels(arr.reshape(-1), arr.size, k).reshape(arr.shape)
        except (TypeError, ValueError) as e:
            msg = str(e)
            raise type(e)(
                name + msg[len("labels") :] if msg.startswith("labels") else msg
            ) from None

    def _logp(self, y_true: np.ndarray, y_pred: np.ndarray, logits: bool) -> np.ndarray:
        z = _rows(y_pred).reshape(-1, y_pred.shape[-1]).astype(np.float64)
        t = y_true.reshape(-1)
        if logits:
            zmax = z.max(axis=1, keepdims=True)
            return z[np.arange(t.size), t] - (np.log(np.exp(z - zmax).sum(axis=1)) + zmax[:, 0])
        return np.log(np.maximum(z[np.arange(t.size), t], _EPS))

    def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        m = y_pred.shape[0]
        logits = self.from_logits in (True, "auto")
        return -self._logp(y_true, y_pred, logits).reshape(m, -1).mean(axis=1)

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        k = y_pred.shape[-1]
        z = y_pred.reshape(-1, k)
        t = y_true.reshape(-1)
        rows = np.arange(t.size)
        per_pixel = z.shape[0] // y_pred.shape[0]
        if self.from_logits in (True, "auto"):
            g = _core.softmax(np.ascontiguousarray(z, np.float32), 1)
            g[rows, t] -= 1.0
        else:
            g = np.zeros_like(z)
            g[rows, t] = -1.0 / np.maximum(z[rows, t], _EPS)
        return (g / per_pixel).reshape(y_pred.shape)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), from_logits=self.from_logits)


class CategoricalCrossentropy(Loss):
    """Cross-entropy with target distributions ``(m, K)``: one-hot rows (or
    integer labels, taken as their one-hot rows), soft labels, or
    (``label_smoothing=e``) one-hot rows smoothed to
    ``t * (1 - e) + e / K``. ``from_logits`` as in
    :class:`SparseCategoricalCrossentropy`.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> loss = cnnx.losses.CategoricalCrossentropy()
        >>> round(float(loss(np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]]))), 4)   # -log(0.5)
        0.6931
    """

    plan_kind = _core.LossKind.softmax_cross_entropy_soft
    absorbs = "softmax"
    label_smoothing: float

    def __init__(
        self,
        from_logits: Union[bool, str] = False,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
        name: Optional[str] = None,
    ) -> None:
        super().__init__(reduction, name)
        self.from_logits = _from_logits(from_logits)
        if (
            isinstance(label_smoothing, (bool, np.bool_))
            or not isinstance(label_smoothing, numbers.Real)
            or not 0 <= label_smoothing < 1
        ):
            raise ValueError(
                f"label_smoothing: expected a number in [0, 1), got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    def prepare_targets(
        self, y: ArrayLike, n: int, output_shape: Sequence[Optional[int]], name: str = "y"
    ) -> np.ndarray:
        arr = np.asarray(y)
        if (
            arr.shape == (n,) + tuple(output_shape[:-1])
            and output_shape
            and np.issubdtype(arr.dtype, np.integer)
        ):
            # integer labels: their one-hot rows
            k = cast(int, output_shape[-1])  # the classes: a model's last axis is known
            if arr.size and (arr.min() < 0 or arr.max() >= k):
                raise ValueError(
                    f"{name}: expected integers in [0, {k}), got "
                    f"{arr[(arr < 0) | (arr >= k)].flat[0]}"
                )
            y = np.eye(k, dtype=np.float32)[arr]
        t = super().prepare_targets(y, n, output_shape, name)
        if not np.all(np.isfinite(t)) or t.min(initial=0) < 0:
            raise ValueError(f"{name}: target distributions must be finite and >= 0")
        if self.label_smoothing:
            k = cast(int, output_shape[-1])
            t = (t * (1 - self.label_smoothing) + self.label_smoothing / k).astype(np.float32)
        return t

    # Rows are distributions over the last axis; an output with several rows
    # per sample (per-pixel classes) gives each sample the mean over its rows,
    # as the compiled step does.
    def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        m, k = y_pred.shape[0], y_pred.shape[-1]
        z = y_pred.reshape(-1, k).astype(np.float64)
        t = y_true.reshape(-1, k).astype(np.float64)
        if self.from_logits is True:
            zmax = z.max(axis=1, keepdims=True)
            logp = z - (np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)) + zmax)
        else:
            logp = np.log(np.maximum(z, _EPS))
        return -(t * logp).sum(axis=1).reshape(m, -1).mean(axis=1)

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        k = y_pred.shape[-1]
        z = y_pred.reshape(-1, k)
        t = y_true.reshape(-1, k)
        per_pixel = z.shape[0] // y_pred.shape[0]
        if self.from_logits is True:
            p = _core.softmax(np.ascontiguousarray(z, np.float32), 1)
            g = t.sum(axis=1, keepdims=True) * p - t
        else:
            g = -t / np.maximum(z, _EPS)
        return (g / per_pixel).reshape(y_pred.shape)

    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(), from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of targets in [0, 1] (the output's shape), the mean
    over each sample's values. ``from_logits=False``: probabilities, except that
    a sigmoid that made them is absorbed (the stable form on its input).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> loss = cnnx.losses.BinaryCrossentropy(from_logits=True)
        >>> round(float(loss(np.array([[1.0]]), np.array([[0.0]]))), 4)            # log(2)
        0.6931
    """

    absorbs = "sigmoid"

    def __init__(
        self,
        from_logits: Union[bool, str] = False,
        reduction: str = "mean",
        name: Optional[str] = None,
    ) -> None:
        super().__init__(reduction, name)
        self.from_logits = _from_logits(from_logits)

    @property
    def plan_kind(self) -> Any:
        """The compiled training step's kernel for this loss (by ``from_logits``)."""
        return (
            _core.LossKind.sigmoid_binary_cross_entropy
            if self.from_logits is True
            else _core.LossKind.binary_cross_entropy
        )

    def prepare_targets(
        self, y: ArrayLike, n: int, output_shape: Sequence[Optional[int]], name: str = "y"
    ) -> np.ndarray:
        t = super().prepare_targets(y, n, output_shape, name)
        if not np.all((t >= 0) & (t <= 1)):
            raise ValueError(f"{name}: binary targets must lie in [0, 1]")
        return t

    def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        z, t = _rows(y_pred).astype(np.float64), _rows(y_true).astype(np.float64)
        if self.from_logits is True:
            return (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(axis=1)
        p = np.clip(z, _EPS, 1 - _EPS)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=1)

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        z, t = _rows(y_pred), _rows(y_true)
        d = z.shape[1]
        if self.from_logits is True:
            g = (1.0 / (1.0 + np.exp(-z)) - t) / d
        else:
            inside = (z >= _EPS) & (z <= 1 - _EPS)
            g = np.where(inside, (z - t) / np.maximum(z * (1 - z), _EPS), 0.0) / d
        return g.astype(np.float32).reshape(y_pred.shape)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), from_logits=self.from_logits)


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)^2)`` over each sample's values.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> float(cnnx.losses.MeanSquaredError()(np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]])))
        2.5
    """

    plan_kind = _core.LossKind.mean_squared_error

    def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        d = _rows(y_pred).astype(np.float64) - _rows(y_true)
        return (d * d).mean(axis=1)

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        d = _rows(y_pred) - _rows(y_true)
        return (2.0 * d / d.shape[1]).reshape(y_pred.shape)


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)`` over each sample's values (gradient 0 at 0).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> float(cnnx.losses.MeanAbsoluteError()(np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]])))
        1.5
    """

    plan_kind = _core.LossKind.mean_absolute_error

    def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return np.abs(_rows(y_pred).astype(np.float64) - _rows(y_true)).mean(axis=1)

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        d = _rows(y_pred) - _rows(y_true)
        return (np.sign(d) / d.shape[1]).reshape(y_pred.shape)


class Huber(Loss):
    """``0.5 e^2`` where ``|e| <= delta``, else ``delta (|e| - 0.5 delta)``; mean per sample.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> float(cnnx.losses.Huber(delta=1.0)(np.array([[0.0, 0.0]]), np.array([[0.5, 3.0]])))
        1.3125
    """

    plan_kind = _core.LossKind.huber
    delta: float

    def __init__(
        self, delta: float = 1.0, reduction: str = "mean", name: Optional[str] = None
    ) -> None:
        super().__init__(reduction, name)
        if (
            isinstance(delta, (bool, np.bool_))
            or not isinstance(delta, numbers.Real)
            or not delta > 0
            or not np.isfinite(delta)
        ):
            raise ValueError(f"delta: expected a number > 0, got {delta!r}")
        self.delta = float(delta)

    @property
    def param(self) -> float:
        return self.delta

    def forward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        e = np.abs(_rows(y_pred).astype(np.float64) - _rows(y_true))
        return np.where(e <= self.delta, 0.5 * e * e, self.delta * (e - 0.5 * self.delta)).mean(
            axis=1
        )

    def backward(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        e = _rows(y_pred) - _rows(y_true)
        return (np.clip(e, -self.delta, self.delta) / e.shape[1]).reshape(y_pred.shape)

    def get_config(self) -> dict[str, Any]:
        return dict(super().get_config(), delta=self.delta)


class _AutoCrossEntropy(SparseCategoricalCrossentropy):
    """cnnx's "cross_entropy": absorbs an output softmax, else reads logits."""

    def __init__(self, reduction: str = "mean", name: Optional[str] = "cross_entropy") -> None:
        super().__init__(from_logits="auto", reduction=reduction, name=name)

    def get_config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "name": self.name}


_BY_NAME: dict[str, type[Loss]] = {
    "cross_entropy": _AutoCrossEntropy,
    "crossentropy": _AutoCrossEntropy,
    "softmax_cross_entropy": _AutoCrossEntropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
}
_CLASSES: dict[Any, type[Loss]] = {
    c.__name__: c
    for c in (
        SparseCategoricalCrossentropy,
        CategoricalCrossentropy,
        BinaryCrossentropy,
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        _AutoCrossEntropy,
    )
}


def get(spec: Union[str, Loss, dict[str, Any]], argname: str = "loss") -> Loss:
    """A Loss from an instance, a name, or a saved config ``{"class": ..., "config": ...}``.

    Examples:
        >>> import cnnx
        >>> cnnx.losses.get("mse")
        MeanSquaredError(reduction='mean', name='MeanSquaredError')
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key not in _BY_NAME:
            raise ValueError(
                f"{argname}: unknown loss {spec!r} (names: {sorted(_BY_NAME)}, or a "
                "cnnx.losses.Loss)"
            )
        return _BY_NAME[key]()
    if isinstance(spec, dict) and set(spec) == {"class", "config"}:
        cls = _CLASSES.get(spec["class"])
        if cls is None or not isinstance(spec["config"], dict):
            raise ValueError(
                f"{argname}: cannot rebuild the loss {spec['class']!r} (a loss of "
                "your own is not saved: pass it to compile again)"
            )
        return cls.from_config(spec["config"])
    raise TypeError(
        f"{argname}: expected a loss name or a cnnx.losses.Loss, got {type(spec).__name__}"
    )


def to_config(loss: Loss) -> Optional[dict[str, Any]]:
    """What a saved model stores for ``loss`` (None for a loss of your own)."""
    if type(loss) in _CLASSES.values():
        return {"class": type(loss).__name__, "config": loss.get_config()}
    return None


def check_gradient(
    loss: Loss,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    eps: float = 1e-3,
    rtol: float = 1e-2,
    atol: float = 1e-4,
) -> float:
    """Compare ``loss.backward`` with central differences of ``loss.forward``.

    Returns the largest absolute difference; raises ValueError (naming the
    loss and the worst element) when it exceeds ``atol + rtol * |numeric|``.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> y_true, y_pred = np.array([[1.0, 2.0]]), np.array([[0.5, 3.0]])
        >>> cnnx.losses.check_gradient(cnnx.losses.MeanSquaredError(), y_true, y_pred) < 1e-3
        True
    """
    y_pred = as_float32(y_pred, "y_pred")
    y_true = loss.prepare_targets(y_true, y_pred.shape[0], y_pred.shape[1:], "y_true")
    analytic = np.asarray(loss.backward(y_true, y_pred), np.float64)
    if analytic.shape != y_pred.shape:
        raise ValueError(
            f"loss: {type(loss).__name__}.backward returned shape {analytic.shape}; "
            f"expected {y_pred.shape}"
        )
    numeric = np.zeros(y_pred.shape, np.float64)
    base = y_pred.astype(np.float64)
    for idx in np.ndindex(y_pred.shape):
        up, down = base.copy(), base.copy()
        up[idx] += eps
        down[idx] -= eps
        i = idx[0]
        f_up = np.asarray(loss.forward(y_true, up.astype(np.float32)), np.float64)[i]
        f_down = np.asarray(loss.forward(y_true, down.astype(np.float32)), np.float64)[i]
        numeric[idx] = (f_up - f_down) / (2 * eps)
    err = np.abs(analytic - numeric)
    worst = np.unravel_index(int(np.argmax(err - rtol * np.abs(numeric))), err.shape)
    if err[worst] > atol + rtol * abs(numeric[worst]):
        raise ValueError(
            f"loss: {type(loss).__name__}.backward disagrees with finite differences "
            f"at {tuple(int(i) for i in worst)}: {analytic[worst]:.6g} vs "
            f"{numeric[worst]:.6g}"
        )
    return float(err.max()) if err.size else 0.0
