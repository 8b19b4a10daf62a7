"""Sequential models: a stack of layers with Keras's workflow.

::

    model = cnnx.Sequential([
        cnnx.Conv2D(8, 5, activation="relu"), cnnx.MaxPool2D(2),
        cnnx.Conv2D(16, 5, activation="relu"), cnnx.MaxPool2D(2),
        cnnx.Flatten(),
        cnnx.Dense(120, activation="relu"), cnnx.Dense(84, activation="relu"),
        cnnx.Dense(10, activation="softmax"),
    ], input_shape=(32, 32, 3))
    model.summary()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.05, momentum=0.9), loss="cross_entropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=64, validation_split=0.1)

Inside, every layer's parameters are views into one flat buffer
(``model.store``), a training step makes one kernel call per layer per pass
plus one fused optimiser call, and the softmax of the output layer is fused
with the cross-entropy loss (``dlogits = softmax - onehot``: stable, and the
softmax is never differentiated on its own).
"""
import numpy as np

from . import _core
from ._validate import as_float32, as_int, check_size
from .layers.activations import Softmax
from .layers.base import (Layer, ParamStore, check_nesting, format_shape, layer_config,
                          layer_from_config, walk)
from .layers.conv import Conv2D
from .layers.dense import Dense
from .layers.pooling import MaxPool2D

__all__ = ["Sequential", "SummaryRow"]

_CE_NAMES = ("cross_entropy", "crossentropy", "categorical_crossentropy",
             "sparse_categorical_crossentropy", "softmax_cross_entropy")
_MSE_NAMES = ("mse", "mean_squared_error")


class SummaryRow:
    """One row of ``Sequential.summary()``."""

    __slots__ = ("name", "layer", "output_shape", "activation_size", "params", "formulas")

    def __init__(self, name, layer, output_shape, activation_size, params, formulas):
        self.name = name
        self.layer = layer
        self.output_shape = tuple(output_shape)
        self.activation_size = int(activation_size)
        self.params = int(params)
        self.formulas = list(formulas)

    def __repr__(self):
        return (f"SummaryRow({self.name!r}, output_shape={self.output_shape}, "
                f"activation_size={self.activation_size}, params={self.params})")


def _prod(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


class Sequential(Layer):
    """A linear stack of layers (itself a Layer, so models nest).

    Args:
        layers: list of Layers.
        input_shape: shape of one example without the batch dimension, e.g.
            ``(32, 32, 3)``; when omitted the model builds on its first batch.
    """

    #: called as ``hook(model)`` between the backward pass and the optimiser
    #: step of each training step (``fit(distributed=True)`` puts the
    #: gradient all-reduce of :mod:`cnnx.distributed` here)
    _after_backward = None

    def __init__(self, layers=None, input_shape=None, name=None, trainable=True):
        super().__init__(name if name is not None else "Sequential", trainable)
        layers = [] if layers is None else layers
        if not isinstance(layers, (list, tuple)) or not all(isinstance(l, Layer) for l in layers):
            raise TypeError("layers: expected a list of Layers")
        check_nesting(layers)
        self.layers = list(layers)
        self.store = None
        self.optimizer = None
        self.loss = None
        self.metrics = []
        self.stop_training = False
        self._head = None
        self._plan_key = None
        self._compiled = None  # the C++ inference pass (cnnx._plan), built on first predict
        self._compiled_key = None
        self._train_compiled = None  # the C++ training step, built on first train step
        self._train_key = None
        if input_shape is not None:
            self.build(input_shape)

    # ---- structure ----------------------------------------------------------
    def sublayers(self):
        return list(self.layers)

    def add(self, layer):
        """Append a layer (built at once if the model is)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"layer: expected a Layer, got {type(layer).__name__}")
        check_nesting([layer], "layer")
        from ._guard import exclusive_training

        with exclusive_training(self):
            return self._add(layer)

    def _add(self, layer):
        self.layers.append(layer)
        if self.built:
            self.output_shape = layer.build(self.output_shape)
            self._make_store()
        return self

    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape``; returns the output shape."""
        if isinstance(input_shape, int):
            input_shape = (input_shape,)
        if not isinstance(input_shape, (tuple, list)) or not input_shape:
            raise TypeError(f"input_shape: expected a tuple such as (32, 32, 3), got {input_shape!r}")
        shape = tuple(as_int(s, "input_shape", 1) for s in input_shape)
        if not self.layers:
            raise ValueError("layers: the model has no layers")
        check_size(shape, "input_shape")
        check_nesting(self.layers)
        self.input_shape = shape
        for layer in self.layers:
            shape = layer.build(shape)
        self.output_shape = shape
        self.built = True
        self._make_store()
        return shape

    def _make_store(self):
        # the largest activation of one example: a batch whose activations could
        # never be allocated is refused by name (_check_batch), not by NumPy
        self._max_values = max([_prod(self.input_shape)] + [
            _prod(layer.output_shape) for layer, _ in walk(self.layers) if layer.output_shape])
        self.store = ParamStore(self.layers)
        if self.optimizer is not None:
            self.optimizer.bind(self.store)
        self._update_head()

    def _params_rebound(self):  # nested inside another model's store
        pass

    def count_params(self):
        return sum(l.count_params() for l in self.layers)

    def get_weights(self):
        """Copies of every parameter, in storage order (layers, then children)."""
        return [layer.params[name].copy() for layer, _ in walk(self.layers)
                for name in layer.params]

    def set_weights(self, weights):
        """Set parameters from a list like :meth:`get_weights` returns."""
        targets = [(layer, name) for layer, _ in walk(self.layers) for name in layer.params]
        weights = list(weights)
        if len(weights) != len(targets):
            raise ValueError(f"weights: expected {len(targets)} arrays, got {len(weights)}")
        for (layer, name), w in zip(targets, weights):
            dst = layer.params[name]
            w = np.asarray(w, np.float32)
            if w.shape != dst.shape:
                raise ValueError(f"weights: {layer.name}.{name} expects shape {dst.shape}, "
                                 f"got {w.shape}")
            dst[...] = w

    def zero_grad(self):
        if self.store is not None:
            self.store.grads.fill(0.0)
        else:
            super().zero_grad()

    # ---- forward / backward (the manual loop) -----------------------------
    def _ensure_built(self, x, name="x"):
        if not self.built:
            if x.ndim < 2:
                raise ValueError(f"{name}: expected a batch (m, ...), got shape {x.shape}")
            self.build(x.shape[1:])

    def _check_x(self, x, name="x"):
        if (type(x) is np.ndarray and x.dtype == np.float32 and self.built
                and x.shape[1:] == self.input_shape and x.flags.c_contiguous and x.ndim > 1):
            return x  # the common case, checked in a few attribute reads
        x = as_float32(x, name)
        self._ensure_built(x, name)
        if x.shape[1:] != self.input_shape or x.ndim != len(self.input_shape) + 1:
            raise ValueError(f"{name}: expected a batch of shape (m, "
                             f"{', '.join(map(str, self.input_shape))}), got {x.shape}")
        return x

    def _forward(self, x, training):
        for layer in self.layers:
            x = layer._forward(x, training)
        return x

    def _backward(self, dy, need_dx, accumulate):
        layers = self.layers
        for i in range(len(layers) - 1, -1, -1):
            dy = layers[i]._backward(dy, need_dx or i > 0, accumulate)
        return dy

    def _check_batch(self, m):
        if m * self._max_values >= 2**61:  # NumPy's "array is too big" (2**63 bytes)
            raise ValueError(f"x: a batch of {m} examples needs activations of "
                             f"{m * self._max_values:,} values, too many to allocate (use a "
                             "smaller batch_size)")

    def forward(self, x, training=False):
        """Run the model on a batch; ``training=True`` keeps what backward needs."""
        x = self._check_x(x)
        self._check_batch(x.shape[0])
        y = self._forward(x, bool(training))
        if training:
            self._has_forward = True
            self._last_out_shape = tuple(y.shape)
        return y

    def backward(self, dy):
        """Gradient of the loss w.r.t. the model's input for the last training forward.

        ``dy`` is the gradient w.r.t. the model's output. Parameter gradients
        are *added* to ``layer.grads`` (``model.zero_grad()`` clears them);
        frozen layers get none but pass the gradient through, so with every
        layer frozen this is the input gradient that style transfer needs.
        """
        return super().backward(dy)

    # ---- compile ------------------------------------------------------------
    def compile(self, optimizer="sgd", loss="cross_entropy", metrics=None):
        """Choose the optimiser, the loss and the metrics.

        ``optimizer``: a :mod:`cnnx.optim` instance or "sgd" / "adam" / "adamw".
        ``loss``: ``"cross_entropy"`` (integer labels; with a softmax output
        layer it is fused with the softmax, otherwise the outputs are taken
        as logits) or ``"mse"``. ``metrics``: None or ``["accuracy"]``.
        """
        from ._guard import exclusive_training
        from .optim import get_optimizer

        with exclusive_training(self):  # not while another thread trains this model
            return self._compile(get_optimizer(optimizer), loss, metrics)

    def _compile(self, optimizer, loss, metrics):
        self.optimizer = optimizer
        if not isinstance(loss, str):
            raise TypeError(f"loss: expected 'cross_entropy' or 'mse', got {type(loss).__name__}")
        key = loss.lower()
        if key in _CE_NAMES:
            self.loss = "cross_entropy"
        elif key in _MSE_NAMES:
            self.loss = "mse"
        else:
            raise ValueError(f"loss: expected 'cross_entropy' or 'mse', got {loss!r}")
        metrics = [] if metrics is None else metrics
        if isinstance(metrics, str):
            metrics = [metrics]
        if not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics: expected None, 'accuracy' or a list such as "
                            f"['accuracy'], got {type(metrics).__name__} {metrics!r}")
        out = []
        for m in metrics:
            if not isinstance(m, str) or m.lower() not in ("accuracy", "acc"):
                raise ValueError(f"metrics: only 'accuracy' is supported, got {m!r}")
            out.append("accuracy")
        self.metrics = out
        if self.store is not None:
            self.optimizer.bind(self.store)
        self._update_head()
        return self

    def _update_head(self):
        """How the output layer meets the loss: 'dense_softmax', 'softmax', 'logits' or None."""
        self._head = None
        if self.loss != "cross_entropy" or not self.layers:
            return
        last = self.layers[-1]
        if isinstance(last, Dense) and last.activation == "softmax":
            self._head = "dense_softmax"
        elif isinstance(last, Softmax) and (last.axis == -1 or (
                last.input_shape is not None and last.axis == len(last.input_shape))):
            self._head = "softmax"
        else:
            self._head = "logits"

    def _require_compiled(self):
        if self.optimizer is None or self.loss is None:
            raise ValueError("model: call compile(optimizer, loss) first")

    # ---- the training step --------------------------------------------------
    def _plan(self):
        """Bound methods of the training step, computed once per compile/build."""
        layers = self.layers
        head = self._head
        fwd = [l._forward for l in layers]
        bwd = [l._backward for l in layers]
        if head == "dense_softmax":
            fwd[-1] = layers[-1]._forward_logits
            bwd[-1] = layers[-1]._backward_linear
        elif head == "softmax":
            fwd.pop()
            bwd.pop()
        # Conv2D(activation="relu") followed by MaxPool2D: apply the ReLU
        # mask to the pooled gradient (exact, and pool_size times less memory
        # traffic than masking the full-size one; see MaxPool2D._backward_through_relu)
        for i in range(len(bwd) - 1):
            a, b = layers[i], layers[i + 1]
            if (type(a) is Conv2D and a.activation == "relu"
                    and type(b) is MaxPool2D and bwd[i + 1] == b._backward):
                bwd[i] = a._backward_linear
                bwd[i + 1] = b._backward_through_relu
        # backward runs last-to-first; the first layer needs no dx
        bwd_plan = [(f, i > 0) for i, f in enumerate(bwd)][::-1]
        self._fwd_plan = fwd
        self._bwd_plan = bwd_plan
        self._plan_key = (self._head, len(layers))
        return fwd, bwd_plan

    def _logits_forward(self, x, training):
        """Forward to the loss's input: logits for cross-entropy, outputs for MSE."""
        self._check_batch(x.shape[0])
        if self._plan_key != (self._head, len(self.layers)):
            self._plan()
        for f in self._fwd_plan:
            x = f(x, training)
        return x

    def _logits_backward(self, g):
        for f, need_dx in self._bwd_plan:
            g = f(g, need_dx, False)

    def _loss(self, out, y, need_grad=True):
        if self.loss == "cross_entropy":
            loss, g = _core.softmax_cross_entropy(out, y, need_grad)
            if loss != loss:  # NaN: a label was out of range (the kernel checks)
                from .functional._loss import _labels
                _labels(y, *out.shape)
            return loss, g
        d = out - y
        loss = float(np.mean(d * d))
        return loss, (d * (2.0 / d.size)).astype(np.float32) if need_grad else None

    def _training_plan(self):
        """The compiled C++ step (cnnx._plan.compile_training) or None, cached."""
        from .layers import base as _base

        key = (self.store, len(self.layers), self._head, self.loss, _base._TRAINABLE_VERSION)
        c = self._train_compiled
        if self._train_key != key or (c is not None and not c.valid()):
            from ._plan import compile_training, plans_enabled

            self._train_compiled = compile_training(self) if plans_enabled() else None
            self._train_key = key
        return self._train_compiled

    def _train_step(self, x, y):
        self._check_batch(x.shape[0])
        tp = self._training_plan()
        if tp is not None and y.dtype == np.int64:
            loss, out = tp.step(x, y)
            if self._after_backward is not None:
                self._after_backward(self)
            self.optimizer.step()
            return loss, out
        if self._plan_key != (self._head, len(self.layers)):
            self._plan()
        out = x
        for f in self._fwd_plan:
            out = f(out, True)
        loss, g = self._loss(out, y)
        for f, need_dx in self._bwd_plan:
            g = f(g, need_dx, False)
        if self._after_backward is not None:
            self._after_backward(self)
        self.optimizer.step()
        return loss, out

    def _check_y(self, y, n, name="y", fast=False):
        """Labels for cross-entropy (int64, range-checked) or targets for MSE.

        ``fast``: an int64 vector of the right length is passed through; the
        loss kernel itself refuses out-of-range labels (then the full check runs).
        """
        if (fast and type(y) is np.ndarray and y.dtype == np.int64 and y.shape == (n,)
                and self.loss == "cross_entropy" and y.flags.c_contiguous):
            return y
        if self.loss == "cross_entropy":
            from .functional._loss import _labels

            k = self.output_shape[-1] if self.output_shape else 0
            if len(self.output_shape) != 1:
                raise ValueError(f"{name}: cross_entropy needs outputs (m, classes), the model "
                                 f"gives {self.output_shape}")
            arr = np.asarray(y)
            if arr.ndim == 2 and arr.shape == (n, k) and np.issubdtype(arr.dtype, np.number):
                # exact one-hot rows only: argmax of a smoothed or soft row would
                # silently train on different targets
                hot = arr == 1
                if not (np.all(hot | (arr == 0)) and np.all(np.count_nonzero(hot, axis=1) == 1)):
                    raise ValueError(f"{name}: rows of shape (m, {k}) must be exact one-hot "
                                     "(one 1, the rest 0); soft or label-smoothed targets are "
                                     "not supported yet (pass integer class labels)")
                arr = arr.argmax(axis=1)
            try:
                return _labels(arr, n, k)
            except (TypeError, ValueError) as e:
                msg = str(e)
                raise type(e)(name + msg[len("labels"):] if msg.startswith("labels") else msg) \
                    from None
        t = as_float32(y, name)
        if t.shape != (n,) + tuple(self.output_shape):
            raise ValueError(f"{name}: expected targets of shape {(n,) + self.output_shape}, "
                             f"got {t.shape}")
        return t

    def train_on_batch(self, x, y):
        """One optimiser step on one batch; returns the batch's loss (before the step)."""
        from ._guard import exclusive_training

        self._require_compiled()
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0], fast=True)
        try:
            with exclusive_training(self):
                loss, _ = self._train_step(x, y)
        except ValueError as e:
            if str(e).startswith("labels"):
                self._check_y(y, x.shape[0])  # the full check names the bad label
                raise ValueError("y" + str(e)[len("labels"):]) from None
            raise
        return loss

    # ---- inference ----------------------------------------------------------
    def _probabilities(self, out):
        if self._head == "logits":
            return _core.softmax(out, out.ndim - 1)
        return out

    def __getstate__(self):
        # The compiled C++ plans point into this model's arrays: copies and
        # pickles leave them behind and compile their own on first use.
        state = self.__dict__.copy()
        for k in ("_compiled", "_compiled_key", "_train_compiled", "_train_key", "_train_lock"):
            state[k] = None
        return state

    def _inference(self, x):
        """Outputs for a batch in inference mode: one C++ call when the model compiles to a plan."""
        self._check_batch(x.shape[0])
        key = (self.store, len(self.layers))
        c = self._compiled
        if self._compiled_key != key or (c is not None and not c.valid()):
            from ._plan import compile_inference, plans_enabled

            c = compile_inference(self) if plans_enabled() else None
            self._compiled, self._compiled_key = c, key
        if c is None:
            return self._forward(x, False)
        return c(x)

    def predict(self, x, batch_size=256):
        """Model outputs for ``x`` in batches (probabilities for a classifier).

        A model compiled with ``loss="cross_entropy"`` that emits logits gets
        a softmax applied here, so the rows always sum to 1.
        """
        x = self._check_x(x)
        batch_size = as_int(batch_size, "batch_size", 1)
        n = x.shape[0]
        if n <= batch_size:
            return self._probabilities(self._inference(x))
        if n * _prod(self.output_shape) >= 2**61:
            raise ValueError(f"x: the outputs for {n} examples would hold "
                             f"{n * _prod(self.output_shape):,} values, too many to allocate")
        res = np.empty((n,) + tuple(self.output_shape), np.float32)
        for i in range(0, n, batch_size):
            res[i:i + batch_size] = self._probabilities(self._inference(x[i:i + batch_size]))
        return res

    def evaluate(self, x, y, batch_size=256, verbose=0):
        """Mean loss (and accuracy for classifiers) over ``(x, y)``: ``{"loss", "accuracy"}``."""
        self._require_compiled()
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        batch_size = as_int(batch_size, "batch_size", 1)
        return self._evaluate(x, y, batch_size)

    def _evaluate(self, x, y, batch_size):
        n = x.shape[0]
        total = 0.0
        correct = 0
        for i in range(0, n, batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            out = self._logits_forward(xb, False)
            loss, _ = self._loss(out, yb, need_grad=False)
            total += loss * xb.shape[0]
            if self.loss == "cross_entropy":
                correct += int(np.count_nonzero(out.argmax(axis=1) == yb))
        res = {"loss": total / max(n, 1)}
        if self.loss == "cross_entropy":
            res["accuracy"] = correct / max(n, 1)
        return res

    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0,
            shuffle=True, seed=None, callbacks=None, verbose=1, initial_epoch=0,
            distributed=False):
        """Train; returns a :class:`cnnx.training.History` (see :func:`cnnx.training.fit`)."""
        from .training import fit

        return fit(self, x, y, epochs=epochs, batch_size=batch_size,
                   validation_data=validation_data, validation_split=validation_split,
                   shuffle=shuffle, seed=seed, callbacks=callbacks, verbose=verbose,
                   initial_epoch=initial_epoch, distributed=distributed)

    # ---- description --------------------------------------------------------
    def summary(self, formulas=False, show_all=False, print_fn=print):
        """Print the layer table and return its rows.

        Columns: Layer, Output shape, Activation size (values per example),
        Params. The first row is the Input; ``Flatten`` rows are left out
        unless ``show_all=True`` (a reshape changes no value, and the row
        before already shows the same size), which reproduces the course's
        table. ``formulas=True`` adds how each number arises, e.g.
        ``floor((32-5)/1)+1 = 28`` and ``(5*5*3+1)*8 = 608``; the conv
        count uses ``(f*f*n_C_prev + 1)*n_C`` (the notes' ``(f*f+1)*n_C``
        drops n_C_prev). ``print_fn=None`` prints nothing.
        Returns a list of :class:`SummaryRow` (``.name``, ``.output_shape``,
        ``.activation_size``, ``.params``, ``.formulas``).
        """
        if not self.built:
            raise ValueError("model: not built yet (give input_shape= or call build/fit first)")
        rows = [SummaryRow("Input", "Input", self.input_shape, _prod(self.input_shape), 0, [])]
        for layer in self.layers:
            if getattr(layer, "is_reshape", False) and not show_all:
                continue
            rows.append(SummaryRow(layer.name, type(layer).__name__, layer.output_shape,
                                   _prod(layer.output_shape), layer.count_params(),
                                   layer.summary_formulas() if formulas else []))
        if print_fn is not None:
            print_fn(self._format_summary(rows, formulas))
        return rows

    def _format_summary(self, rows, formulas):
        total, trainable = self.store.count() if self.store is not None else (0, 0)
        head = ["Layer", "Output shape", "Activation size", "Params"]
        table = [[r.name, format_shape(r.output_shape), f"{r.activation_size:,}",
                  f"{r.params:,}"] for r in rows]
        if formulas:
            head.append("How")
            for t, r in zip(table, rows):
                t.append("; ".join(r.formulas))
        widths = [max(len(head[i]), *(len(t[i]) for t in table)) for i in range(len(head))]

        def line(cells):
            out = []
            for i, c in enumerate(cells):
                out.append(c.rjust(widths[i]) if i in (2, 3) else c.ljust(widths[i]))
            return "  ".join(out).rstrip()

        body = [line(t) for t in table]
        rule = "-" * max(len(line(head)), *(len(b) for b in body))
        lines = [line(head), rule] + body + [rule]
        lines.append(f"Total params: {total:,}")
        lines.append(f"Trainable params: {trainable:,}")
        lines.append(f"Non-trainable params: {total - trainable:,}")
        return "\n".join(lines)

    def get_config(self):
        return dict(super().get_config(), layers=[layer_config(l) for l in self.layers],
                    input_shape=list(self.input_shape) if self.input_shape else None)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layers = [layer_from_config(c) for c in config.pop("layers", [])]
        input_shape = config.pop("input_shape", None)
        return cls(layers, input_shape=input_shape, **config)

    def save(self, path):
        """Write the model (architecture, weights, optimiser state) to one file, atomically."""
        from .io import save_model

        save_model(self, path)
