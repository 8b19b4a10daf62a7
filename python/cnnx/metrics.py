"""Metrics: what ``model.compile(metrics=[...])`` takes, and ``fit`` /
``evaluate`` report.

Each is a small accumulator with Keras's three methods::

    m = cnnx.metrics.Precision()
    m.update_state(y_true, y_pred, sample_weight=None)   # batch after batch
    m.result()                                           # the value so far
    m.reset_state()

Classes: ``Accuracy`` (argmax of the outputs vs integer labels or one-hot
rows; a threshold of 0.5 for a single output), ``SparseCategoricalAccuracy``,
``CategoricalAccuracy``, ``TopKCategoricalAccuracy(k=5)`` (one-hot targets),
``SparseTopKCategoricalAccuracy(k=5)`` (integer labels), ``Precision`` and
``Recall`` (binary: outputs above ``threshold``; or one class of several with
``class_id``), ``AUC`` (ROC AUC, exact: every score is kept), ``MeanIoU``
and ``ConfusionMatrix`` (``num_classes``; per pixel for segmentation). A
string ``"accuracy"`` (or ``"acc"``) is ``Accuracy()``. Write your own by
subclassing :class:`Metric`.

``y_pred`` is what the model outputs (probabilities for a softmax model);
sample weights weigh each sample's contribution.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._types import ArrayLike

__all__ = [
    "Metric",
    "Accuracy",
    "SparseCategoricalAccuracy",
    "CategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "Precision",
    "Recall",
    "AUC",
    "MeanIoU",
    "ConfusionMatrix",
    "get",
]


def _weights(sample_weight: Optional[ArrayLike], n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n, np.float64)
    w = np.asarray(sample_weight, np.float64).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"sample_weight: expected {n} weights, got {w.shape}")
    return w


def _labels_of(y_true: ArrayLike, y_pred: np.ndarray) -> np.ndarray:
    """Integer labels from labels or one-hot rows (for the last axis of y_pred)."""
    t = np.asarray(y_true)
    if t.shape == y_pred.shape and y_pred.shape[-1] > 1:
        return t.argmax(axis=-1)
    return t.reshape(y_pred.shape[:-1]).astype(np.int64)


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    return int(v)


class Metric:
    """Base class: ``update_state``, ``result``, ``reset_state``; ``name``.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.Accuracy()
        >>> m.update_state(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]))
        >>> m.result()
        0.5
        >>> m.reset_state(); m.result()
        0.0
    """

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name if name is not None else _snake(type(self).__name__)
        self.reset_state()

    def update_state(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: Optional[ArrayLike] = None
    ) -> None:  # pragma: no cover - abstract
        """Accumulate one batch: targets, predictions, optional per-sample weights."""
        raise NotImplementedError

    def result(self) -> Any:  # pragma: no cover - abstract
        """The metric's value over everything accumulated since the last reset."""
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forget everything accumulated (``fit`` calls it at each epoch)."""
        pass

    def state_arrays(self) -> list[np.ndarray]:
        """The accumulated state as float64 arrays that add up across shards
        (data-parallel training sums them over ranks); see set_state_arrays."""
        raise NotImplementedError(f"metrics: {type(self).__name__} cannot be combined across ranks")

    def set_state_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        """Replace the accumulated state by arrays shaped as ``state_arrays`` returns them."""
        raise NotImplementedError(f"metrics: {type(self).__name__} cannot be combined across ranks")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (to save the compile settings with a model)."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Metric:
        """A metric made from the dict ``get_config`` returned."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out.replace("a_u_c", "auc").replace("i_o_u", "iou")


class _Mean(Metric):
    """The weighted mean of a per-sample score."""

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def score(
        self, y_true: ArrayLike, y_pred: np.ndarray
    ) -> np.ndarray:  # pragma: no cover - abstract
        """Per-sample scores whose weighted mean is the metric."""
        raise NotImplementedError

    def update_state(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: Optional[ArrayLike] = None
    ) -> None:
        y_pred = np.asarray(y_pred)
        s = np.asarray(self.score(y_true, y_pred), np.float64)
        s = s.reshape(s.shape[0], -1).mean(axis=1)  # per sample (pixels averaged)
        w = _weights(sample_weight, s.shape[0])
        self.total += float(np.dot(w, s))
        self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0

    def state_arrays(self) -> list[np.ndarray]:
        return [np.array([self.total, self.count])]

    def set_state_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        self.total, self.count = (float(v) for v in arrays[0])


class Accuracy(_Mean):
    """Fraction of samples whose predicted class is the true one (argmax over
    the last axis; with a single output, ``y_pred > 0.5``).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.Accuracy()
        >>> m.update_state(np.array([1, 0, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]))
        >>> round(m.result(), 4)
        0.6667
    """

    def score(self, y_true: ArrayLike, y_pred: np.ndarray) -> np.ndarray:
        if y_pred.shape[-1] == 1 or y_pred.ndim == 1:
            return (y_pred.reshape(y_pred.shape[0], -1) > 0.5) == (
                np.asarray(y_true).reshape(y_pred.shape[0], -1) > 0.5
            )
        return y_pred.argmax(axis=-1) == _labels_of(y_true, y_pred)


class SparseCategoricalAccuracy(Accuracy):
    """Accuracy with integer labels.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.SparseCategoricalAccuracy()
        >>> m.update_state(np.array([1]), np.array([[0.2, 0.8]])); m.result()
        1.0
    """


class CategoricalAccuracy(Accuracy):
    """Accuracy with one-hot targets.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.CategoricalAccuracy()
        >>> m.update_state(np.array([[0, 1]]), np.array([[0.9, 0.1]])); m.result()
        0.0
    """


class SparseTopKCategoricalAccuracy(_Mean):
    """The true class is among the ``k`` largest outputs (integer labels).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.SparseTopKCategoricalAccuracy(k=2)
        >>> m.update_state(np.array([2, 0]), np.array([[0.1, 0.5, 0.4], [0.2, 0.3, 0.5]]))
        >>> m.result()
        0.5
    """

    def __init__(self, k: int = 5, name: Optional[str] = None) -> None:
        self.k = _positive_int(k, "k")
        super().__init__(name)  # Keras's default: the class's name in snake case

    def get_config(self) -> dict[str, Any]:
        return {"k": self.k, "name": self.name}

    def score(self, y_true: ArrayLike, y_pred: np.ndarray) -> np.ndarray:
        labels = _labels_of(y_true, y_pred)
        k = min(self.k, y_pred.shape[-1])
        true_score = np.take_along_axis(y_pred, labels[..., None], axis=-1)
        # ties count against: the label's score must beat all but k-1 others
        return (y_pred > true_score).sum(axis=-1) < k


class TopKCategoricalAccuracy(SparseTopKCategoricalAccuracy):
    """Top-k accuracy with one-hot targets.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.TopKCategoricalAccuracy(k=2)
        >>> m.update_state(np.array([[0, 0, 1]]), np.array([[0.1, 0.5, 0.4]])); m.result()
        1.0
    """


class _Counts(Metric):
    """True/false positives for one class or a threshold."""

    def __init__(
        self, threshold: float = 0.5, class_id: Optional[int] = None, name: Optional[str] = None
    ) -> None:
        self.threshold = float(threshold)
        self.class_id = None if class_id is None else int(class_id)
        super().__init__(name)

    def reset_state(self) -> None:
        self.tp = self.fp = self.fn = 0.0

    def get_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "class_id": self.class_id, "name": self.name}

    def _binary(self, y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        y_pred = np.asarray(y_pred, np.float64)
        m = y_pred.shape[0]
        if self.class_id is not None:
            labels = _labels_of(y_true, y_pred).reshape(m, -1)
            pred = y_pred.argmax(axis=-1).reshape(m, -1) == self.class_id
            true = labels == self.class_id
        else:
            pred = y_pred.reshape(m, -1) > self.threshold
            true = np.asarray(y_true, np.float64).reshape(m, -1) > 0.5
        return true, pred

    def update_state(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: Optional[ArrayLike] = None
    ) -> None:
        true, pred = self._binary(y_true, y_pred)
        w = _weights(sample_weight, true.shape[0])[:, None]
        self.tp += float((w * (true & pred)).sum())
        self.fp += float((w * (~true & pred)).sum())
        self.fn += float((w * (true & ~pred)).sum())

    def state_arrays(self) -> list[np.ndarray]:
        return [np.array([self.tp, self.fp, self.fn])]

    def set_state_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        self.tp, self.fp, self.fn = (float(v) for v in arrays[0])


class Precision(_Counts):
    """tp / (tp + fp): of the positives predicted, the fraction that are.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.Precision()
        >>> m.update_state(np.array([1, 0, 1, 1]), np.array([[0.9], [0.8], [0.4], [0.7]]))
        >>> round(m.result(), 4)                                      # 2 of 3 predicted positives
        0.6667
    """

    def result(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0


class Recall(_Counts):
    """tp / (tp + fn): of the true positives, the fraction found.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.Recall()
        >>> m.update_state(np.array([1, 0, 1, 1]), np.array([[0.9], [0.8], [0.4], [0.7]]))
        >>> round(m.result(), 4)                                      # 2 of 3 positives found
        0.6667
    """

    def result(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


class AUC(Metric):
    """Area under the ROC curve, exact (every score kept; ties averaged as
    scikit-learn's ``roc_auc_score``). Binary targets; for several outputs,
    ``class_id`` picks the column (one-vs-rest).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.AUC()
        >>> m.update_state(np.array([0, 0, 1, 1]), np.array([[0.1], [0.4], [0.35], [0.8]]))
        >>> m.result()
        0.75
    """

    def __init__(self, class_id: Optional[int] = None, name: Optional[str] = None) -> None:
        self.class_id = None if class_id is None else int(class_id)
        super().__init__(name if name is not None else "auc")

    def reset_state(self) -> None:
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []

    def get_config(self) -> dict[str, Any]:
        return {"class_id": self.class_id, "name": self.name}

    def update_state(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: Optional[ArrayLike] = None
    ) -> None:
        y_pred = np.asarray(y_pred, np.float64)
        m = y_pred.shape[0]
        if self.class_id is not None:
            score = y_pred.reshape(m, -1)[:, self.class_id]
            label = _labels_of(y_true, y_pred).reshape(m) == self.class_id
        else:
            score = y_pred.reshape(m)
            label = np.asarray(y_true, np.float64).reshape(m) > 0.5
        self._scores.append(score)
        self._labels.append(label)
        self._weights.append(_weights(sample_weight, m))

    def result(self) -> float:
        if not self._scores:
            return 0.0
        s = np.concatenate(self._scores)
        y = np.concatenate(self._labels)
        w = np.concatenate(self._weights)
        order = np.argsort(-s, kind="mergesort")
        s, y, w = s[order], y[order], w[order]
        distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each score
        tps = np.cumsum(w * y)[distinct]
        fps = np.cumsum(w * ~y)[distinct]
        if tps[-1] == 0 or fps[-1] == 0:
            return 0.0
        tpr = np.r_[0.0, tps / tps[-1]]
        fpr = np.r_[0.0, fps / fps[-1]]
        if hasattr(np, "trapezoid"):
            return float(np.trapezoid(tpr, fpr))
        return float(np.trapz(tpr, fpr))  # type: ignore[attr-defined, unused-ignore]  # NumPy < 2


class ConfusionMatrix(Metric):
    """``num_classes`` x ``num_classes`` counts, rows the true class, columns the
    predicted one (argmax); per pixel for segmentation outputs.

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.ConfusionMatrix(num_classes=2)
        >>> m.update_state(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
        >>> m.result().tolist()                                       # rows: true class
        [[1.0, 0.0], [1.0, 1.0]]
    """

    def __init__(self, num_classes: int, name: Optional[str] = None) -> None:
        self.num_classes = _positive_int(num_classes, "num_classes")
        super().__init__(name if name is not None else "confusion_matrix")

    def reset_state(self) -> None:
        if hasattr(self, "num_classes"):
            self.matrix = np.zeros((self.num_classes, self.num_classes), np.float64)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "name": self.name}

    def update_state(
        self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: Optional[ArrayLike] = None
    ) -> None:
        y_pred = np.asarray(y_pred)
        m = y_pred.shape[0]
        pred = y_pred.argmax(axis=-1).reshape(m, -1)
        true = _labels_of(y_true, y_pred).reshape(m, -1)
        k = self.num_classes
        if true.size and (true.min() < 0 or true.max() >= k or pred.max() >= k):
            raise ValueError(f"y_true: labels must lie in [0, {k}) (num_classes={k})")
        w = np.broadcast_to(_weights(sample_weight, m)[:, None], true.shape)
        self.matrix += np.bincount(
            (true * k + pred).reshape(-1), weights=w.reshape(-1), minlength=k * k
        ).reshape(k, k)

    def result(self) -> np.ndarray:
        return self.matrix.copy()

    def state_arrays(self) -> list[np.ndarray]:
        return [self.matrix.copy()]

    def set_state_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        self.matrix = np.array(arrays[0], np.float64)


class MeanIoU(ConfusionMatrix):
    """Mean over classes of intersection / union of the predicted and true
    regions (classes absent from both are left out).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> m = cnnx.metrics.MeanIoU(num_classes=2)
        >>> m.update_state(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
        >>> m.result()                                                # (1/2 + 1/2) / 2
        0.5
    """

    def __init__(self, num_classes: int, name: Optional[str] = None) -> None:
        super().__init__(num_classes, name if name is not None else "mean_iou")

    def result(self) -> float:  # type: ignore[override]  # one number, not the matrix
        cm = self.matrix
        inter = np.diag(cm)
        union = cm.sum(axis=0) + cm.sum(axis=1) - inter
        present = union > 0
        return float((inter[present] / union[present]).mean()) if present.any() else 0.0


_BY_NAME: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
}


_CLASSES: dict[Any, type[Metric]] = {
    c.__name__: c
    for c in (
        Accuracy,
        SparseCategoricalAccuracy,
        CategoricalAccuracy,
        TopKCategoricalAccuracy,
        SparseTopKCategoricalAccuracy,
        Precision,
        Recall,
        AUC,
        MeanIoU,
        ConfusionMatrix,
    )
}


def to_config(spec: Union[str, Metric]) -> Union[None, str, dict[str, Any]]:
    """What a saved model stores for a metric: its name, a built-in's config, or
    None (a metric of your own is not saved)."""
    if isinstance(spec, str):
        return spec
    if type(spec) in _CLASSES.values():
        return {"class": type(spec).__name__, "config": spec.get_config()}
    return None


def get(spec: Union[str, Metric, dict[str, Any]], argname: str = "metrics") -> Metric:
    """A Metric from an instance, a name (``"accuracy"``, ``"auc"``, ...) or a saved config.

    Examples:
        >>> import cnnx
        >>> cnnx.metrics.get("accuracy")
        Accuracy(name='accuracy')
    """
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, dict) and set(spec) == {"class", "config"}:
        cls = _CLASSES.get(spec["class"])
        if cls is None or not isinstance(spec["config"], dict):
            raise ValueError(f"{argname}: cannot rebuild the metric {spec['class']!r}")
        return cls.from_config(spec["config"])
    if isinstance(spec, str):
        cls = _BY_NAME.get(spec.lower())
        if cls is None:
            raise ValueError(
                f"{argname}: unknown metric {spec!r} (names: {sorted(_BY_NAME)}, or "
                "a cnnx.metrics.Metric)"
            )
        m = cls()
        # named after the string, as in Keras (the history's key)
        m.name = "accuracy" if spec.lower() in ("accuracy", "acc") else spec.lower()
        return m
    raise TypeError(
        f"{argname}: expected metric names or cnnx.metrics.Metric objects, got "
        f"{type(spec).__name__}"
    )
