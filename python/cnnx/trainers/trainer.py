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
import contextlib
import os
import threading

import numpy as np

from .. import _core
from .._validate import as_float32, as_int
from ..graph import compile_inference, compile_training, loss_heads
from ..layers.activations import SoftmaxInputGrad
from ..layers.base import edit_count
from .heads import Head, check_target, count_correct, head_loss, loss_kind

__all__ = ["Trainer", "plans_enabled"]


def plans_enabled():
    """``CNNX_PLAN=0`` in the environment runs every model layer by layer."""
    return _environ.get("CNNX_PLAN") != "0"


_environ = os.environ


class Trainer:
    """compile / fit / evaluate / predict / train_on_batch for :class:`cnnx.Model`."""

    def _init_trainer(self):
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.loss_weights = None
        self.stop_training = False
        self._loss_specs = None    # per output: (kind, weight) or None
        self._plans = {}           # name -> (key, plan)
        self._after_backward = None  # hook(model) before each optimiser step (distributed)
        self._train_lock = threading.Lock()

    def __getstate__(self):
        # Compiled plans point into this model's arrays, and a lock cannot be
        # copied: copies and pickles compile their own on first use.
        state = self.__dict__.copy()
        state["_plans"] = {}
        state["_train_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._train_lock = threading.Lock()

    def _store_changed(self, old=None):
        """The model's parameters moved to a new flat store (it was rebuilt):
        the optimiser's state follows each parameter that stayed."""
        opt = self.optimizer
        if opt is not None:
            if old is not None and opt.store is old and opt.state:
                opt.state = self.store.carry(old, opt.state)
            opt.bind(self.store)
        self._plans = {}

    def _outputs_are_list(self):
        return isinstance(self.output_shape, list)

    # ---- compile ----------------------------------------------------------------------
    def compile(self, optimizer="sgd", loss="cross_entropy", metrics=None, loss_weights=None):
        """Choose the optimiser, the loss of each output, their weights and the metrics.

        ``optimizer``: a :mod:`cnnx.optim` instance or "sgd" / "adam" / "adamw".
        ``loss``: ``"cross_entropy"`` (integer labels; on an output made by a
        softmax it is fused with that softmax, otherwise the output is taken
        as logits) or ``"mse"``; for several outputs one name for all, a
        list (None: no loss on that output) or a dict by output name.
        ``loss_weights``: a list or dict of each loss's weight in the total.
        ``metrics``: None, ``"accuracy"`` or ``["accuracy"]`` (for every
        cross-entropy output).
        """
        from ..optim import get_optimizer

        self.optimizer = get_optimizer(optimizer)
        n_out = len(self.output_shape) if self._outputs_are_list() else 1
        names = self.output_names if self.built else ["output"]
        kinds = self._per_output(loss, n_out, names, "loss")
        weights = self._per_output(1.0 if loss_weights is None else loss_weights, n_out, names,
                                   "loss_weights")
        specs = []
        for i, (k, w) in enumerate(zip(kinds, weights)):
            if k is None:
                specs.append(None)
                continue
            w = float(w)
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"loss_weights: expected numbers >= 0, got {w} for {names[i]!r}")
            specs.append((loss_kind(k), w))
        if all(s is None for s in specs):
            raise ValueError("loss: at least one output needs a loss")
        self._loss_specs = specs
        self.loss = specs[0][0] if n_out == 1 else [s and s[0] for s in specs]
        self.loss_weights = loss_weights
        self.metrics = self._check_metrics(metrics)
        if self.store is not None:
            self.optimizer.bind(self.store)
        self._plans = {}
        return self

    @staticmethod
    def _per_output(value, n, names, argname):
        if isinstance(value, dict):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(f"{argname}: unknown output names {sorted(unknown)} "
                                 f"(outputs: {names})")
            return [value.get(name) for name in names]
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise ValueError(f"{argname}: expected {n} entries (one per output), got "
                                 f"{len(value)}")
            return list(value)
        return [value] * n

    @staticmethod
    def _check_metrics(metrics):
        if metrics is None:
            return []
        if isinstance(metrics, str):
            metrics = [metrics]
        if not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics: expected a list of metric names such as ['accuracy'], "
                            f"got {type(metrics).__name__}")
        out = []
        for m in metrics:
            if not isinstance(m, str) or m.lower() not in ("accuracy", "acc"):
                raise ValueError(f"metrics: only 'accuracy' is supported, got {m!r}")
            out.append("accuracy")
        return out

    def _require_compiled(self):
        if self.optimizer is None or self._loss_specs is None:
            raise ValueError("model: call compile(optimizer, loss) first")

    # ---- heads and plans ----------------------------------------------------------------
    def _cached(self, name, make):
        """``make()``, remembered until the model is edited (edit_count), its
        store replaced, or CNNX_PLAN changes."""
        edits, store, enabled = edit_count(), self.store, plans_enabled()
        hit = self._plans.get(name)
        if hit is not None and hit[0] == edits and hit[1] is store and hit[2] == enabled:
            return hit[3]
        value = make(enabled)
        self._plans[name] = (edits, store, enabled, value)
        return value

    def heads(self):
        """The outputs that have a loss, as :class:`~cnnx.trainers.heads.Head` s."""
        self._require_compiled()

        def make(enabled):
            names = self.output_names
            found = loss_heads(self.to_graph(), self._loss_specs)
            return [Head(i, names[i], kind, weight, what == "softmax_logits")
                    for i, _, kind, weight, what in found]
        return self._cached("heads", make)

    def _inference_plan(self):
        return self._cached("infer", lambda enabled: compile_inference(self.to_graph())
                            if enabled else None)

    def _eval_plan(self):
        """An inference plan whose outputs are what each head's loss reads."""
        def make(enabled):
            if not enabled:
                return None
            g = self.to_graph()
            g.outputs = [v for _, v, _, _, _ in loss_heads(g, self._loss_specs)]
            return compile_inference(g)
        return self._cached("eval", make)

    def _training_plan(self):
        return self._cached("train", lambda enabled: compile_training(
            self.to_graph(), self.store.grads, self._loss_specs) if enabled else None)

    # ---- inference ----------------------------------------------------------------------
    def _infer(self, xs):
        plan = self._inference_plan()
        if plan is not None:
            return plan(xs)
        out = self.forward(xs if self._inputs_are_list() else xs[0], training=False)
        return out if isinstance(out, list) else [out]

    def _inputs_are_list(self):
        return isinstance(self.input_shape, list)

    def predict(self, x, batch_size=256):
        """The model's outputs for ``x``, in batches (a list for several outputs).

        What the model computes, whatever the loss: a model ending in a
        softmax gives probabilities, one ending in logits gives logits.
        """
        xs = self.check_inputs(x)
        batch_size = as_int(batch_size, "batch_size", 1)
        n = xs[0].shape[0]
        if n <= batch_size:
            outs = self._infer(xs)
        else:
            shapes = self.output_shapes
            outs = [np.empty((n,) + tuple(s), np.float32) for s in shapes]
            for i in range(0, n, batch_size):
                for o, y in zip(outs, self._infer([a[i:i + batch_size] for a in xs])):
                    o[i:i + batch_size] = y
        return outs if self._outputs_are_list() else outs[0]

    # ---- targets ----------------------------------------------------------------------
    def check_targets(self, y, n, name="y"):
        """One checked target array per head (labels or float targets)."""
        heads = self.heads()
        if isinstance(y, dict):
            missing = [h.name for h in heads if h.name not in y]
            if missing:
                raise ValueError(f"{name}: no targets for outputs {missing}")
            ys = [y[h.name] for h in heads]
        elif self._outputs_are_list():
            if not isinstance(y, (list, tuple)) or len(y) not in (len(heads),
                                                                   len(self.output_shape)):
                raise ValueError(f"{name}: expected a list of {len(heads)} target arrays "
                                 "(one per output with a loss) or a dict by output name")
            ys = [y[h.output] for h in heads] if len(y) == len(self.output_shape) else list(y)
        else:
            ys = [y]
        shapes = self.output_shapes
        return [check_target(h, t, n, shapes[h.output], name) for h, t in zip(heads, ys)]

    @staticmethod
    def _check_sample_weight(sw, n, name="sample_weight"):
        if sw is None:
            return None
        w = as_float32(sw, name)
        if w.shape != (n,):
            raise ValueError(f"{name}: expected {n} weights (one per sample), got shape {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"{name}: weights must be finite and >= 0")
        return np.ascontiguousarray(w)

    # ---- one training step ------------------------------------------------------------
    @contextlib.contextmanager
    def _training(self):
        if not self._train_lock.acquire(blocking=False):
            raise RuntimeError(f"model: {self.name!r} is being trained in another thread "
                               "(one fit or train_on_batch at a time per model)")
        try:
            yield
        finally:
            self._train_lock.release()

    def _train_step(self, xs, ys, sw=None, name="y"):
        """One optimiser step: (the batch's loss before it, [each head's loss before its
        weight], [each head's output]). A label out of range raises ValueError
        naming ``name`` before any weight changes."""
        try:
            return self._step(xs, ys, sw)
        except ValueError as e:
            msg = str(e)
            if msg.startswith("labels"):
                raise ValueError(name + msg[len("labels"):]) from None
            raise

    def _step(self, xs, ys, sw):
        plan = self._training_plan()
        if plan is not None:
            loss, parts, outs = plan.step(xs, ys, sw)
            # the step returns what each loss read (rows of values): logits where a
            # softmax was absorbed
            shapes = self.output_shapes
            outs = [o.reshape((o.shape[0],) + tuple(shapes[h.output])) for h, o in
                    zip(self.heads(), outs)]
            outs = [_core.softmax(o, o.ndim - 1) if h.absorbs_softmax else o
                    for h, o in zip(self.heads(), outs)]
        else:
            loss, parts, outs = self._layer_step(xs, ys, sw)
        if self._after_backward is not None:
            self._after_backward(self)
        self.optimizer.step()
        return loss, parts, outs

    def _layer_step(self, xs, ys, sw):
        heads = self.heads()
        self.zero_grad()
        outs = self.forward(xs if self._inputs_are_list() else xs[0], training=True)
        outs = outs if isinstance(outs, list) else [outs]
        dys = [None] * len(outs)
        total = 0.0
        parts = []
        n = xs[0].shape[0]
        for h, t in zip(heads, ys):
            value, mode = outs[h.output], "logits"
            through = h.absorbs_softmax and self.output_is_read_only_by_loss(h.output)
            if through:  # the exact fused form, from the softmax's input
                z = self.softmax_logits(h.output)
                value, mode = (value, "softmax_input") if z is None else (z, "logits")
            elif h.absorbs_softmax:
                mode = "probabilities"
            loss, g = head_loss(h, value, t, sw, n, True, mode)
            parts.append(loss)
            total += h.weight * loss
            g = SoftmaxInputGrad(g) if through else g
            dys[h.output] = g if dys[h.output] is None else dys[h.output] + g
        self.backward(dys if self._outputs_are_list() else dys[0])
        return total, parts, [outs[h.output] for h in heads]

    def train_on_batch(self, x, y, sample_weight=None):
        """One optimiser step on one batch; returns the batch's loss (before the step)."""
        with self._training():
            self._require_compiled()
            xs = self.check_inputs(x)
            ys = self.check_targets(y, xs[0].shape[0])
            sw = self._check_sample_weight(sample_weight, xs[0].shape[0])
            loss, _, _ = self._train_step(xs, ys, sw)
            return loss

    # ---- evaluation ----------------------------------------------------------------------
    def _evaluate_sums(self, xs, ys, sw, batch_size):
        """Sums over the samples: {"loss": ..., "<head>_loss": ..., "<head>_correct": ...}, n."""
        heads = self.heads()
        n = xs[0].shape[0]
        plan = self._eval_plan()
        sums = {"loss": 0.0}
        for h in heads:
            sums[h.name + "_loss"] = 0.0
            sums[h.name + "_correct"] = 0.0
        for i in range(0, n, batch_size):
            xb = [a[i:i + batch_size] for a in xs]
            m = xb[0].shape[0]
            if plan is not None:
                vals, modes = plan(xb), ["logits"] * len(heads)
            else:
                outs = self._infer(xb)
                vals = [outs[h.output] for h in heads]
                modes = ["softmax_input" if h.absorbs_softmax else "logits" for h in heads]
            w = None if sw is None else sw[i:i + batch_size]
            for h, v, t, mode in zip(heads, vals, ys, modes):
                loss, _ = head_loss(h, v, t[i:i + batch_size], w, 1.0, False, mode)
                sums["loss"] += h.weight * loss
                sums[h.name + "_loss"] += loss
                if h.kind == "cross_entropy":
                    sums[h.name + "_correct"] += count_correct(v, t[i:i + batch_size])
        return sums, n

    def _logs_from_sums(self, sums, n, prefix=""):
        heads = self.heads()
        n = max(n, 1)
        logs = {prefix + "loss": sums["loss"] / n}
        single = len(heads) == 1
        for h in heads:
            if not single:
                logs[f"{prefix}{h.name}_loss"] = sums[h.name + "_loss"] / n
            if "accuracy" in self.metrics and h.kind == "cross_entropy":
                key = "accuracy" if single else f"{h.name}_accuracy"
                logs[prefix + key] = sums[h.name + "_correct"] / n
        return logs

    def _evaluate(self, xs, ys, sw, batch_size):
        sums, n = self._evaluate_sums(xs, ys, sw, batch_size)
        return self._logs_from_sums(sums, n)

    def evaluate(self, x, y, batch_size=256, verbose=0, sample_weight=None):
        """Mean loss (and accuracy for classifiers) over ``(x, y)``: ``{"loss", "accuracy"}``
        (for several outputs also ``"<output>_loss"`` / ``"<output>_accuracy"``)."""
        self._require_compiled()
        xs = self.check_inputs(x)
        ys = self.check_targets(y, xs[0].shape[0])
        sw = self._check_sample_weight(sample_weight, xs[0].shape[0])
        return self._evaluate(xs, ys, sw, as_int(batch_size, "batch_size", 1))

    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, seed=None, callbacks=None, verbose=1, initial_epoch=0,
            distributed=False, sample_weight=None):
        """Train; returns a :class:`cnnx.training.History` (see :func:`cnnx.training.fit`)."""
        from .fit_loop import fit

        with self._training():
            return fit(self, x, y, epochs=epochs, batch_size=batch_size,
                       validation_data=validation_data, validation_split=validation_split,
                       shuffle=shuffle, seed=seed, callbacks=callbacks, verbose=verbose,
                       initial_epoch=initial_epoch, distributed=distributed,
                       sample_weight=sample_weight)

    def save(self, path):
        """Write the model (architecture, weights, optimiser state) to one file, atomically."""
        from ..io import save_model

        save_model(self, path)
