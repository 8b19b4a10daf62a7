"""The trainer: compile, fit, evaluate, predict and train_on_batch.

A mixin of :class:`cnnx.Model` (as Keras keeps ``Trainer`` apart from
``Model``). It speaks to the model only through the model's public methods:
``to_graph()`` (the op graph, from which it compiles the C++ inference plan
and training step), ``forward`` / ``backward`` (the layer-by-layer fallback),
``check_inputs``, ``sync``, ``store``, and the input/output shapes.

Compiled plans are cached against :func:`cnnx.layers.base.edit_count` and
the parameter store, so any edit of the model through its public
attributes is seen by the next call: a plan never serves an old model.
"""

from __future__ import annotations

import os
import threading
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ContextManager,
    Iterable,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
    cast,
)

import numpy as np

from .. import _core
from .. import losses as L
from .._types import ArrayLike
from .._validate import as_float32, as_int
from ..graph import compile_inference, compile_training, loss_heads
from ..layers.activations import SoftmaxInputGrad
from ..layers.base import edit_count
from .heads import Head, head_value_loss, make_metrics

if TYPE_CHECKING:
    from ..callbacks import Callback, CallbackList
    from ..layers.base import ParamStore
    from ..graph import Graph
    from ..losses import Loss
    from ..metrics import Metric
    from ..optim import Optimizer
    from .fit_loop import History

_Self = TypeVar("_Self", bound="Trainer")
#: a loss object or name; for several outputs a list (None: no loss) or a dict by output name
LossSpec = Union[str, "Loss", Sequence[Union[str, "Loss", None]], Mapping[str, Union[str, "Loss"]]]
#: metric names or objects (for every output), or a dict of them by output name
MetricSpec = Union[str, "Metric", Sequence[Union[str, "Metric"]], Mapping[str, Any]]

__all__ = ["Trainer", "plans_enabled"]


def plan_loss_in_python(plan: Any, t: int) -> bool:
    """Whether head t's loss runs in Python between the compiled forward and backward."""
    from ..graph import plan_loss

    return plan_loss(plan.heads[t]) is None


def plans_enabled() -> bool:
    """``CNNX_PLAN=0`` in the environment runs every model layer by layer."""
    return _environ.get("CNNX_PLAN") != "0"


_environ = os.environ


def targets_for(
    heads: Sequence[Head],
    output_shapes: Sequence[Any],
    outputs_are_list: bool,
    y: Any,
    n: int,
    name: str = "y",
) -> list[np.ndarray]:
    """One checked target array per head, from an array, a list (one per output,
    or one per head) or a dict by output name."""
    if y is None:
        raise ValueError(f"{name}: targets missing")
    if isinstance(y, dict):
        missing = [h.name for h in heads if h.name not in y]
        if missing:
            raise ValueError(f"{name}: no targets for outputs {missing}")
        ys = [y[h.name] for h in heads]
    elif outputs_are_list:
        if not isinstance(y, (list, tuple)) or len(y) not in (len(heads), len(output_shapes)):
            raise ValueError(
                f"{name}: expected a list of {len(heads)} target arrays "
                "(one per output with a loss) or a dict by output name"
            )
        ys = [y[h.output] for h in heads] if len(y) == len(output_shapes) else list(y)
    else:
        ys = [y]
    return [h.loss.prepare_targets(t, n, output_shapes[h.output], name) for h, t in zip(heads, ys)]


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch for :class:`cnnx.Model`."""

    if TYPE_CHECKING:  # what cnnx.Model provides (this class is its mixin)
        store: Any
        built: bool
        input_shape: Any
        output_shape: Any

        @property
        def input_shapes(self) -> list[Any]: ...
        @property
        def output_shapes(self) -> list[Any]: ...
        @property
        def output_names(self) -> list[str]: ...
        def to_graph(self, input_shapes: Any = None) -> Graph: ...
        def forward(self, x: Any, training: bool = False) -> Any: ...
        def backward(self, dy: Any) -> Any: ...
        def check_inputs(self, x: Any, name: str = "x") -> list[np.ndarray]: ...
        def zero_grad(self) -> None: ...
        def softmax_logits(self, output: int = 0) -> Optional[np.ndarray]: ...
        def output_is_read_only_by_loss(self, i: int) -> bool: ...

    def _init_trainer(self) -> None:
        self.optimizer: Optional[Optimizer] = None
        self.loss: Any = None  # what model.loss shows: a name, a Loss, or a list of them
        self.metrics: Any = []  # what compile got: a list, or a dict by output
        self.loss_weights = None
        self.stop_training = False
        # per output: (cnnx.losses.Loss, weight) or None
        self._loss_specs: Optional[list[Optional[tuple[Loss, float]]]] = None
        self._metric_spec: Any = None  # what compile(metrics=...) got
        self._plans: dict[Any, Any] = {}  # name -> (key, plan)
        # hook(model) before each optimiser step (distributed)
        self._after_backward: Optional[Callable[[Any], None]] = None
        # re-entrant: a callback may call train_on_batch or save inside fit (cnnx._guard)
        self._train_lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        # Compiled plans point into this model's arrays, and a lock cannot be
        # copied: copies and pickles compile their own on first use.
        state = self.__dict__.copy()
        state["_plans"] = {}
        state["_train_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._train_lock = threading.RLock()

    def _store_changed(self, old: Optional[ParamStore] = None) -> None:
        """The model's parameters moved to a new flat store (it was rebuilt):
        the optimiser's state follows each parameter that stayed."""
        opt = self.optimizer
        if opt is not None:
            if old is not None and opt.store is old and opt.state:
                opt.state = self.store.carry(old, opt.state)
            opt.bind(self.store)
        self._plans = {}

    def _outputs_are_list(self) -> bool:
        return isinstance(self.output_shape, list)

    # ---- compile ----------------------------------------------------------------------
    def compile(
        self: _Self,
        optimizer: Union[str, Optimizer] = "sgd",
        loss: LossSpec = "cross_entropy",
        metrics: Optional[MetricSpec] = None,
        loss_weights: Union[None, Sequence[float], Mapping[str, float]] = None,
    ) -> _Self:
        """Choose the optimiser, the loss of each output, their weights and the metrics.

        ``optimizer``: a :mod:`cnnx.optim` instance or "sgd" / "adam" / "adamw".
        ``loss``: a :mod:`cnnx.losses` object or name (``"cross_entropy"``:
        integer labels, fused with an output softmax, else reading logits;
        ``"mse"``, ``"mae"``, ``"huber"``, ``"binary_crossentropy"``,
        ``"categorical_crossentropy"``...) or a Loss of your own; for several
        outputs one for all, a list (None: no loss on that output) or a dict
        by output name. ``loss_weights``: a list or dict of each loss's weight
        in the total. ``metrics``: names or :mod:`cnnx.metrics` objects, for
        every output (``"accuracy"`` for classifiers only), or a dict by output.
        """
        from ..optim import get_optimizer

        with self._training():  # not while another thread trains this model
            return self._compile(get_optimizer(optimizer), loss, metrics, loss_weights)

    def _compile(
        self: _Self, optimizer: Optimizer, loss: Any, metrics: Any, loss_weights: Any
    ) -> _Self:
        self.optimizer = optimizer
        n_out = len(self.output_shape) if self._outputs_are_list() else 1
        names = self.output_names if self.built else ["output"]
        given = self._per_output(loss, n_out, names, "loss")
        weights = self._per_output(
            1.0 if loss_weights is None else loss_weights, n_out, names, "loss_weights"
        )
        specs: list[Optional[tuple[Loss, float]]] = []
        for i, (spec, w) in enumerate(zip(given, weights)):
            if spec is None:
                specs.append(None)
                continue
            try:  # an output a loss_weights dict leaves out weighs 1, as in Keras
                w = 1.0 if w is None else float(w)
            except (TypeError, ValueError):
                raise TypeError(
                    f"loss_weights: expected numbers, got {w!r} for {names[i]!r}"
                ) from None
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"loss_weights: expected numbers >= 0, got {w} for {names[i]!r}")
            obj = L.get(spec)
            if obj.reduction == "none":
                raise ValueError(
                    f"loss: {obj.name} has reduction='none' (per-sample values); "
                    "training needs 'mean' or 'sum'"
                )
            specs.append((obj, w))
        if all(s is None for s in specs):
            raise ValueError("loss: at least one output needs a loss")
        if (
            metrics is not None
            and not isinstance(metrics, (str, list, tuple, dict))
            and not hasattr(metrics, "update_state")
        ):
            raise TypeError(
                f"metrics: expected a list of metric names or cnnx.metrics.Metric "
                f"objects, got {type(metrics).__name__}"
            )
        self._loss_specs = specs
        self._loss_given = given
        self.loss = self._loss_name(given[0]) if n_out == 1 else [self._loss_name(g) for g in given]
        self.loss_weights = loss_weights
        self._metric_spec = metrics
        self.metrics = (
            [
                m if isinstance(m, str) else m
                for m in ([metrics] if isinstance(metrics, str) else list(metrics or []))
            ]
            if not isinstance(metrics, dict)
            else dict(metrics)
        )
        if self.store is not None:
            self.optimizer.bind(self.store)
        self._plans = {}
        if self.built:
            self.heads()  # check the metrics against the outputs now
        return self

    def get_compile_config(self) -> Optional[dict[str, Any]]:
        """The compile settings as JSON values (saved with the model), or None
        when a loss or metric of your own cannot be saved (recompile after
        loading)."""
        from .. import metrics as M

        if self._loss_specs is None:
            return None
        losses = [
            None if s is None else g if isinstance(g, str) else L.to_config(s[0])
            for s, g in zip(self._loss_specs, self._loss_given)
        ]
        if any(s is not None and c is None for s, c in zip(self._loss_specs, losses)):
            return None
        spec = self._metric_spec
        if isinstance(spec, dict):
            metrics = {
                k: [M.to_config(m) for m in (v if isinstance(v, (list, tuple)) else [v])]
                for k, v in spec.items()
            }
            flat = [m for v in metrics.values() for m in v]
        else:
            items = [] if spec is None else [spec] if isinstance(spec, (str, M.Metric)) else spec
            metrics = flat = [M.to_config(m) for m in items]
        if any(m is None for m in flat):
            return None
        weights = self.loss_weights
        return {
            "loss": losses if len(losses) > 1 else losses[0],
            "metrics": metrics,
            "loss_weights": list(weights) if isinstance(weights, tuple) else weights,
        }

    @staticmethod
    def _loss_name(spec: Any) -> Any:
        """What ``model.loss`` shows: a normalised name, or the Loss object."""
        if isinstance(spec, str):
            obj = L.get(spec)
            return (
                obj.name
                if isinstance(obj, L._AutoCrossEntropy)
                else "mse"
                if isinstance(obj, L.MeanSquaredError)
                else spec.lower()
            )
        return spec

    @staticmethod
    def _per_output(value: Any, n: int, names: Sequence[str], argname: str) -> list[Any]:
        if isinstance(value, dict):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(
                    f"{argname}: unknown output names {sorted(unknown)} (outputs: {names})"
                )
            return [value.get(name) for name in names]
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(
                    f"{argname}: expected {n} entries (one per output), got {len(value)}"
                )
            return list(value)
        return [value] * n

    def _require_compiled(self) -> None:
        if self.optimizer is None or self._loss_specs is None:
            raise ValueError("model: call compile(optimizer, loss) first")

    # ---- heads and plans ----------------------------------------------------------------
    #: compiled plans kept per input size for a model taking any size (an LRU)
    PLANS_PER_SIZE = 8

    def _cached(self, name: str, make: Callable[[bool], Any], shapes: Any = None) -> Any:
        """``make(enabled)``, remembered until the model is edited (edit_count),
        its store replaced, or CNNX_PLAN changes; per input size (``shapes``)
        for a model that takes any size."""
        edits, store, enabled = edit_count(), self.store, plans_enabled()
        key = (name, shapes)
        hit = self._plans.get(key)
        if hit is not None and hit[0] == edits and hit[1] is store and hit[2] == enabled:
            self._plans[key] = self._plans.pop(key)  # most recently used last
            return hit[3]
        value = make(enabled)
        self._plans.pop(key, None)
        self._plans[key] = (edits, store, enabled, value)
        if shapes is not None:
            same = [k for k in self._plans if k[0] == name and k[1] is not None]
            for k in same[: -self.PLANS_PER_SIZE]:
                del self._plans[k]
        return value

    def _sizes(self, xs: Sequence[np.ndarray]) -> Optional[tuple[tuple[int, ...], ...]]:
        """The batch's input sizes when the model takes any size, else None."""
        if not any(None in s for s in self.input_shapes):
            return None
        return tuple(tuple(a.shape[1:]) for a in xs)

    def _graph(self, shapes: Any) -> Graph:
        if shapes is None and any(None in s for s in self.input_shapes):
            # only the structure is needed (which op makes each output): any size that fits
            for n in (224, 1024, 64):
                try:
                    return self.to_graph(
                        [tuple(n if d is None else d for d in s) for s in self.input_shapes]
                    )
                except ValueError:
                    continue
        return self.to_graph(None if shapes is None else list(shapes))

    def heads(self) -> list[Head]:
        """The outputs that have a loss, as :class:`~cnnx.trainers.heads.Head` s."""
        self._require_compiled()

        def make(enabled: bool) -> list[Head]:
            names = self.output_names
            heads = [
                Head(h, names[h.output]) for h in loss_heads(self._graph(None), self._loss_specs)
            ]
            for h, ms in zip(heads, make_metrics(self._metric_spec, heads)):
                h.metrics = ms
            return heads

        return self._cached("heads", make)

    def _inference_plan(self, shapes: Any = None) -> Any:
        return self._cached(
            "infer",
            lambda enabled: compile_inference(self._graph(shapes)) if enabled else None,
            shapes,
        )

    def _eval_plan(self, shapes: Any = None) -> Any:
        """An inference plan whose outputs are what each head's loss reads."""

        def make(enabled: bool) -> Any:
            if not enabled:
                return None
            g = self._graph(shapes)
            g.outputs = [h.value for h in loss_heads(g, self._loss_specs)]
            return compile_inference(g)

        return self._cached("eval", make, shapes)

    def _training_plan(self, shapes: Any = None) -> Any:
        return self._cached(
            "train",
            lambda enabled: (
                compile_training(self._graph(shapes), self.store.grads, self._loss_specs)
                if enabled
                else None
            ),
            shapes,
        )

    # ---- inference ----------------------------------------------------------------------
    def _infer(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        self._check_batch(xs[0].shape[0])
        plan = self._inference_plan(self._sizes(xs))
        if plan is not None:
            return plan(xs)
        out = self.forward(xs if self._inputs_are_list() else xs[0], training=False)
        return out if isinstance(out, list) else [out]

    def _inputs_are_list(self) -> bool:
        return isinstance(self.input_shape, list)

    def predict(
        self,
        x: Any,
        batch_size: Optional[int] = None,
        verbose: int = 0,
        steps: Optional[int] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        workers: Optional[int] = None,
        max_queue_size: Optional[int] = None,
    ) -> Any:
        """The model's outputs for ``x``, in batches (a list for several outputs).

        What the model computes, whatever the loss: a model ending in a
        softmax gives probabilities, one ending in logits gives logits.
        ``x``: arrays (NumPy or torch tensors, NHWC; ``batch_size`` 256 by
        default), or batches from a generator, an iterable, a DataLoader or a
        :class:`cnnx.data.Dataset` (``x`` or ``(x, ...)`` each; ``steps``:
        how many, default all); the outputs are concatenated. ``callbacks``
        see ``on_predict_*`` hooks.
        """
        from .data_adapter import is_batch_source

        cbs = None
        if callbacks is not None:
            from ..callbacks import CallbackList

            cbs = CallbackList(callbacks, self)
        if is_batch_source(x):
            if batch_size is not None:
                raise ValueError(
                    "batch_size: not used when x gives batches (a generator, an "
                    "iterable or a Dataset): the batches have their own size"
                )
            return self._predict_stream(x, steps, cbs, workers, max_queue_size)
        from .data_adapter import to_numpy
        from .fit_loop import check_layout

        x = to_numpy(x)
        check_layout(self, x, "x")
        xs = self.check_inputs(x)
        batch_size = 256 if batch_size is None else as_int(batch_size, "batch_size", 1)
        if steps is not None or cbs is not None:  # batch by batch, for the hooks
            chunks = [
                [a[i : i + batch_size] for a in xs] for i in range(0, xs[0].shape[0], batch_size)
            ]
            batches = [(c if self._inputs_are_list() else c[0],) for c in chunks]
            return self._predict_stream(batches, steps, cbs, 0, 1)
        n = xs[0].shape[0]
        if n <= batch_size:
            outs = self._infer(xs)
        elif any(None in s for s in self.output_shapes):  # any size: chunk by chunk
            parts = [
                self._infer([a[i : i + batch_size] for a in xs]) for i in range(0, n, batch_size)
            ]
            outs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        else:
            shapes = self.output_shapes
            total = sum(n * int(np.prod(s, dtype=object)) for s in shapes)
            if total >= 2**61:
                raise ValueError(
                    f"x: the outputs for {n} examples would hold {total:,} values, "
                    "too many to allocate"
                )
            outs = [np.empty((n,) + tuple(s), np.float32) for s in shapes]
            for i in range(0, n, batch_size):
                for o, y in zip(outs, self._infer([a[i : i + batch_size] for a in xs])):
                    o[i : i + batch_size] = y
        return outs if self._outputs_are_list() else outs[0]

    def _predict_stream(
        self,
        x: Any,
        steps: Optional[int],
        cbs: Optional[CallbackList],
        workers: Optional[int],
        max_queue_size: Optional[int],
    ) -> Any:
        from .data_adapter import batch_stream

        steps = None if steps is None else as_int(steps, "steps", 1)
        stream = batch_stream(
            self, x, False, steps, False, None, workers, max_queue_size, steps_name="steps"
        )
        outs: list[list[np.ndarray]] = []  # per output, its batches (a stream gives at least one)
        if cbs is not None:
            cbs.call("on_predict_begin", {})
        with stream.epoch() as batches:
            for i, xs in enumerate(batches):
                if cbs is not None:
                    cbs.call("on_predict_batch_begin", i, {})
                got = self._infer(xs)
                outs = outs or [[] for _ in got]
                for o, g in zip(outs, got):
                    o.append(g)
                if cbs is not None:
                    cbs.call(
                        "on_predict_batch_end",
                        i,
                        {"outputs": got if self._outputs_are_list() else got[0]},
                    )
        if cbs is not None:
            cbs.call("on_predict_end", {})
        result = [np.concatenate(o) for o in outs]
        return result if self._outputs_are_list() else result[0]

    # ---- targets ----------------------------------------------------------------------
    def check_targets(self, y: Any, n: int, name: str = "y") -> list[np.ndarray]:
        """One checked target array per head (labels or float targets)."""
        return targets_for(self.heads(), self.output_shapes, self._outputs_are_list(), y, n, name)

    @staticmethod
    def _check_sample_weight(
        sw: Optional[ArrayLike], n: int, name: str = "sample_weight"
    ) -> Optional[np.ndarray]:
        if sw is None:
            return None
        w = as_float32(sw, name)
        if w.shape != (n,):
            raise ValueError(f"{name}: expected {n} weights (one per sample), got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"{name}: weights must be finite and >= 0")
        return np.ascontiguousarray(w)

    # ---- one training step ------------------------------------------------------------
    def _training(self) -> ContextManager[Any]:
        """Held for a fit / train_on_batch (and compile, add, save): a second
        thread gets a RuntimeError at once (see :mod:`cnnx._guard`)."""
        from .._guard import exclusive_training

        return exclusive_training(self)

    def _check_batch(self, m: int) -> None:
        """A batch whose activations could never be allocated is refused by name
        (NumPy would say only "array is too big")."""
        most = getattr(self, "_max_values", 0)
        if m * most >= 2**61:
            raise ValueError(
                f"x: a batch of {m} examples needs activations of {m * most:,} "
                "values, too many to allocate (use a smaller batch_size)"
            )

    def _train_step(
        self,
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        sw: Optional[np.ndarray] = None,
        name: str = "y",
    ) -> tuple[float, list[float], list[np.ndarray]]:
        """One optimiser step: (the batch's loss before it, [each head's loss before its
        weight], [each head's output]). A label out of range raises ValueError
        naming ``name`` before any weight changes."""
        self._check_batch(xs[0].shape[0])
        try:
            return self._step(xs, ys, sw)
        except ValueError as e:
            msg = str(e)
            if msg.startswith("labels"):
                raise ValueError(name + msg[len("labels") :]) from None
            raise

    def _step(
        self, xs: list[np.ndarray], ys: list[np.ndarray], sw: Optional[np.ndarray]
    ) -> tuple[float, list[float], list[np.ndarray]]:
        heads = self.heads()
        plan = self._training_plan(self._sizes(xs))
        if plan is None:
            loss, parts, outs = self._layer_step(xs, ys, sw)
        else:
            loss, parts, vals = self._plan_step(plan, heads, xs, ys, sw)
            outs = [self._as_output(h, v) for h, v in zip(heads, vals)]
        if self._after_backward is not None:
            self._after_backward(self)
        cast("Optimizer", self.optimizer).step()  # compiled: _require_compiled passed
        return loss, parts, outs

    @staticmethod
    def _as_output(head: Head, value: np.ndarray) -> np.ndarray:
        """A head's value as the model outputs it (logits through the absorbed activation)."""
        if head.absorbed == "softmax":
            return _core.softmax(value, value.ndim - 1)
        if head.absorbed == "sigmoid":
            return _core.sigmoid(value)
        return value

    def _plan_step(
        self,
        plan: Any,
        heads: Sequence[Head],
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        sw: Optional[np.ndarray],
    ) -> tuple[float, list[float], list[np.ndarray]]:
        """The compiled step: one C++ call, or two around the losses written in Python."""
        if not plan.external:
            loss, parts, vals = plan.step(xs, ys, sw)
            return loss, parts, [vals[k] for k in plan.order]
        vals = [
            v.reshape((v.shape[0],) + tuple(g.value.shape))
            for v, g in zip(
                plan.forward(xs),
                [plan.heads[plan.order.index(k)] for k in range(len(set(plan.order)))],
            )
        ]
        vals = [vals[k] for k in plan.order]
        n = xs[0].shape[0]
        targets: list[Optional[np.ndarray]] = []
        grads: list[Optional[np.ndarray]] = []
        ext: dict[int, float] = {}
        for t, (h, v, y) in enumerate(zip(heads, vals, ys)):
            if plan_loss_in_python(plan, t):
                value, g = head_value_loss(h, v, y, sw, n, True, h.reads_logits)
                ext[t] = value
                targets.append(None)
                grads.append((g / h.weight if h.weight else g * 0).reshape(n, -1))
            else:
                targets.append(y)
                grads.append(None)
        total, parts = plan.backward(targets, grads, sw)
        for t, value in ext.items():
            parts[t] = value
            total += heads[t].weight * value
        return total, parts, vals

    def _layer_step(
        self, xs: list[np.ndarray], ys: list[np.ndarray], sw: Optional[np.ndarray]
    ) -> tuple[float, list[float], list[np.ndarray]]:
        heads = self.heads()
        self.zero_grad()
        outs = self.forward(xs if self._inputs_are_list() else xs[0], training=True)
        outs = outs if isinstance(outs, list) else [outs]
        dys: list[Any] = [None] * len(outs)
        total = 0.0
        parts = []
        n = xs[0].shape[0]
        for h, t in zip(heads, ys):
            value, logits = outs[h.output], h.reads_logits and not h.absorbed
            through = h.absorbed is not None and self.output_is_read_only_by_loss(h.output)
            z = self.softmax_logits(h.output) if through else None
            if z is not None:  # the exact fused form, from the absorbed activation's input
                value, logits = z, True
            else:
                through = False
            loss, g = head_value_loss(h, value, t, sw, n, True, logits)
            parts.append(loss)
            total += h.weight * loss
            g = SoftmaxInputGrad(g) if through else g
            dys[h.output] = g if dys[h.output] is None else dys[h.output] + g
        self.backward(dys if self._outputs_are_list() else dys[0])
        return total, parts, [outs[h.output] for h in heads]

    def train_on_batch(self, x: Any, y: Any, sample_weight: Optional[ArrayLike] = None) -> float:
        """One optimiser step on one batch; returns the batch's loss (before the step)."""
        with self._training():
            self._require_compiled()
            from .fit_loop import _arrays

            xs, ys, sw = _arrays(self, x, y, sample_weight)
            loss, _, _ = self._train_step(xs, ys, sw)
            return loss

    # ---- evaluation ----------------------------------------------------------------------
    def _evaluate_sums(
        self,
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        sw: Optional[np.ndarray],
        batch_size: int,
    ) -> tuple[dict[str, float], int, list[list[Metric]]]:
        """({"loss": sum, "<head>": sum of its loss} over the samples, n, fresh
        metrics updated on every batch)."""
        n = xs[0].shape[0]
        chunks = (
            (
                [a[i : i + batch_size] for a in xs],
                [t[i : i + batch_size] for t in ys],
                None if sw is None else sw[i : i + batch_size],
            )
            for i in range(0, n, batch_size)
        )
        sums, _, metrics = self._evaluate_batches(chunks)
        return sums, n, metrics

    def _evaluate_batches(
        self, batches: Iterable[Any], cbs: Optional[CallbackList] = None
    ) -> tuple[dict[str, float], int, list[list[Metric]]]:
        """The sums, sample count and metrics of ``_evaluate_sums`` over batches
        ``(xs, ys, sample_weight)``; ``cbs``: a CallbackList seeing on_test_batch_*."""
        heads = self.heads()
        metrics = make_metrics(self._metric_spec, heads)
        sums = {"loss": 0.0}
        for h in heads:
            sums[h.name] = 0.0
        n = 0
        begin = cbs is not None and cbs.wants("on_test_batch_begin")
        end = cbs is not None and cbs.wants("on_test_batch_end")
        for b, (xb, yb, w) in enumerate(batches):
            if begin and cbs is not None:
                cbs.call("on_test_batch_begin", b, {})
            self._check_batch(xb[0].shape[0])
            plan = self._eval_plan(self._sizes(xb))  # per size for a model taking any size
            if plan is not None:  # what each loss reads (logits where absorbed)
                vals = plan(xb)
                outs = [self._as_output(h, v) for h, v in zip(heads, vals)]
                logits = [h.reads_logits for h in heads]
            else:
                got = self._infer(xb)
                vals = outs = [got[h.output] for h in heads]
                logits = [h.reads_logits and not h.absorbed for h in heads]
            for h, v, o, t, lg, ms in zip(heads, vals, outs, yb, logits, metrics):
                loss, _ = head_value_loss(h, v, t, w, 1.0, False, lg)
                sums["loss"] += h.weight * loss
                sums[h.name] += loss
                for m in ms:
                    m.update_state(t, o, w)
            n += xb[0].shape[0]
            if end and cbs is not None:
                cbs.call("on_test_batch_end", b, self._logs(sums, n, metrics))
        return sums, n, metrics

    def _evaluate_stream(
        self, stream: Any, cbs: Optional[CallbackList] = None, name: str = "y"
    ) -> dict[str, Any]:
        """Logs over one pass (or ``steps``) of a stream, with the on_test_* hooks."""
        if cbs is not None:
            cbs.call("on_test_begin", {})
        try:
            with stream.epoch() as batches:
                sums, n, metrics = self._evaluate_batches(batches, cbs)
        except ValueError as e:  # a label out of range, found where the loss runs
            msg = str(e)
            if msg.startswith("labels"):
                raise ValueError(name + msg[len("labels") :]) from None
            raise
        logs = self._logs(sums, n, metrics)
        if cbs is not None:
            cbs.call("on_test_end", logs)
        return logs

    def _logs(
        self,
        sums: dict[str, float],
        n: int,
        metrics: Sequence[Sequence[Metric]],
        prefix: str = "",
    ) -> dict[str, Any]:
        """The logs Keras shows: loss, each output's loss (several outputs), metrics."""
        heads = self.heads()
        n = max(n, 1)
        single = len(heads) == 1
        logs = {prefix + "loss": sums["loss"] / n}
        for h, ms in zip(heads, metrics):
            if not single:
                logs[f"{prefix}{h.name}_loss"] = sums[h.name] / n
            for m in ms:
                value = m.result()
                key = m.name if single else f"{h.name}_{m.name}"
                logs[prefix + key] = float(value) if np.ndim(value) == 0 else value
        return logs

    def _evaluate(
        self,
        xs: list[np.ndarray],
        ys: list[np.ndarray],
        sw: Optional[np.ndarray],
        batch_size: int,
        name: str = "y",
    ) -> dict[str, Any]:
        try:
            sums, n, metrics = self._evaluate_sums(xs, ys, sw, batch_size)
        except ValueError as e:  # a label out of range, found where the loss runs
            msg = str(e)
            if msg.startswith("labels"):
                raise ValueError(name + msg[len("labels") :]) from None
            raise
        return self._logs(sums, n, metrics)

    def evaluate(
        self,
        x: Any,
        y: Any = None,
        batch_size: Optional[int] = None,
        verbose: int = 0,
        sample_weight: Optional[ArrayLike] = None,
        steps: Optional[int] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        workers: Optional[int] = None,
        max_queue_size: Optional[int] = None,
    ) -> dict[str, Any]:
        """Mean loss and the metrics over ``(x, y)``: e.g. ``{"loss", "accuracy"}`` (for
        several outputs also ``"<output>_loss"`` / ``"<output>_<metric>"``).

        ``x`` may also give batches ``(x, y[, sample_weight])`` (a generator,
        an iterable, a DataLoader, a :class:`cnnx.data.Dataset`; ``steps``:
        how many, default all). ``callbacks`` see the ``on_test_*`` hooks.
        """
        from ..callbacks import CallbackList
        from .data_adapter import array_stream, batch_stream, is_batch_source
        from .fit_loop import _arrays, _optional_steps, _refuse_with_batches

        self._require_compiled()
        steps = _optional_steps(steps, "steps")
        cbs = None if callbacks is None else CallbackList(callbacks, self)
        if is_batch_source(x, y):
            _refuse_with_batches(y, sample_weight, batch_size, 0, False)
            stream = batch_stream(
                self, x, True, steps, False, None, workers, max_queue_size, steps_name="steps"
            )
            return self._evaluate_stream(stream, cbs)
        xs, ys, sw = _arrays(self, x, y, sample_weight)
        batch_size = 256 if batch_size is None else as_int(batch_size, "batch_size", 1)
        if steps is None and cbs is None:
            return self._evaluate(xs, ys, sw, batch_size)
        return self._evaluate_stream(array_stream(xs, ys, sw, batch_size, False, None, steps), cbs)

    def fit(
        self,
        x: Any,
        y: Any = None,
        epochs: int = 1,
        batch_size: Optional[int] = None,
        validation_data: Any = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        seed: Optional[int] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        verbose: int = 1,
        initial_epoch: int = 0,
        distributed: bool = False,
        sample_weight: Optional[ArrayLike] = None,
        class_weight: Optional[Mapping[int, float]] = None,
        steps_per_epoch: Optional[int] = None,
        validation_steps: Optional[int] = None,
        workers: Optional[int] = None,
        max_queue_size: Optional[int] = None,
    ) -> History:
        """Train; returns a :class:`cnnx.training.History` (see :func:`cnnx.training.fit`:
        arrays or torch tensors, or batches from a generator, an iterable, a
        DataLoader or a :class:`cnnx.data.Dataset`)."""
        from .fit_loop import fit

        with self._training():
            return fit(
                self,
                x,
                y,
                epochs=epochs,
                batch_size=batch_size,
                validation_data=validation_data,
                validation_split=validation_split,
                shuffle=shuffle,
                seed=seed,
                callbacks=callbacks,
                verbose=verbose,
                initial_epoch=initial_epoch,
                distributed=distributed,
                sample_weight=sample_weight,
                class_weight=class_weight,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                workers=workers,
                max_queue_size=max_queue_size,
            )

    def _class_weights(self, class_weight: Any, ys: Sequence[np.ndarray]) -> np.ndarray:
        """Per-sample weights from ``{class: weight}`` and the (one) classifier's labels."""
        return self._class_weights_from(self._class_weight_table(class_weight), ys[0])

    def _class_weight_table(self, class_weight: Any) -> np.ndarray:
        """Each class's weight (1 where not given), checked against the classifier's labels."""
        heads = self.heads()
        if len(heads) != 1 or not isinstance(
            heads[0].loss,
            (L.SparseCategoricalCrossentropy, L.CategoricalCrossentropy, L.BinaryCrossentropy),
        ):
            raise ValueError(
                "class_weight: needs a model with one classifier output (use "
                "sample_weight otherwise)"
            )
        if not isinstance(class_weight, dict):
            raise TypeError(
                f"class_weight: expected a dict {{class: weight}}, got "
                f"{type(class_weight).__name__}"
            )
        k = max(self.output_shapes[heads[0].output][-1], 2)
        table = np.ones(k, np.float32)
        for c, w in class_weight.items():
            if (
                isinstance(c, (bool, np.bool_))
                or not isinstance(c, (int, np.integer))
                or not 0 <= c < k
            ):
                raise ValueError(f"class_weight: class {c!r} is outside the labels [0, {k})")
            try:
                w = float(w)
            except (TypeError, ValueError):
                raise TypeError(
                    f"class_weight: expected a number for class {c}, got {w!r}"
                ) from None
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"class_weight: the weight of class {c} must be >= 0, got {w}")
            table[int(c)] = w
        return table

    @staticmethod
    def _class_weights_from(table: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per-sample weights from a class table and a classifier's targets ``t``."""
        labels = (
            t
            if t.dtype.kind in "iu"
            else (t.argmax(axis=-1) if t.shape[-1] > 1 else (t > 0.5).astype(np.int64))
        )
        labels = labels.reshape(t.shape[0], -1)
        return table[labels].mean(axis=1).astype(np.float32)  # per pixel: the image's mean

    def save(self, path: Union[str, os.PathLike[str]]) -> None:
        """Write the model (architecture, weights, optimiser state) to one file, atomically."""
        from ..io import save_model

        save_model(self, path)
