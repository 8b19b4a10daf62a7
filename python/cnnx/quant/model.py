"""QuantizedModel: a cnnx model that runs in int8, with the model API
(``predict``, ``evaluate``, ``summary``, ``save``).

It holds a private copy of the float model (its architecture, and the float
weights of the layers that stay in float32), the quantisation parameters of
the values stored as uint8 and the int8 weights of the convolution and dense
layers (:mod:`cnnx.graph.quantize` explains both). ``predict`` lowers the
model's op graph into its int8 form once and runs it as one compiled C++
call per batch; a model with a layer that has no lowering runs op by op.

A quantized model is a snapshot: it never trains (``fit`` raises), and
changing the float model it came from does not change it (quantize again).
"""

import numpy as np

from .. import _core
from ..graph import loss_heads
from ..graph.quantize import compile_int8, lower, prepare
from ..layers.base import walk
from ..models.summary import SummaryRow, summary as _float_summary
from ..trainers.trainer import Trainer, plans_enabled
from .reference import run_graph

__all__ = ["QuantizedModel", "QSummaryRow"]


class QSummaryRow(SummaryRow):
    """A row of ``QuantizedModel.summary()``: a summary row with ``.precision``."""

    __slots__ = ("precision",)


class QuantizedModel(Trainer):
    """An int8 model (from :func:`cnnx.quantize` or an imported QDQ ONNX model).

    Attributes: ``float_model`` (the private float copy: architecture and the
    float32 layers' weights), ``qparams`` ({value id: (scale, zero_point)}),
    ``qweights`` ({op output id: :class:`~cnnx.graph.quantize.QWeights`}),
    ``config`` (how it was made: method, calibration size...).
    """

    def __init__(self, float_model, qparams, qweights, config=None):
        self.float_model = float_model
        self.qparams = {int(k): (float(s), int(z)) for k, (s, z) in qparams.items()}
        self.qweights = {int(k): w for k, w in qweights.items()}
        self.config = dict(config or {})
        self.exclude = frozenset(self.config.get("exclude", ()))
        self.name = float_model.name
        self._init_trainer()
        self.store = None
        if getattr(float_model, "_loss_specs", None) is not None:
            # the losses and metrics as compile got them (objects included)
            self.compile(
                loss=getattr(float_model, "_loss_given", float_model.loss),
                metrics=float_model._metric_spec,
                loss_weights=float_model.loss_weights,
            )

    # ---- the float model's structure -------------------------------------------------
    built = True

    @property
    def input_shape(self):
        """The float model's input shape (without the batch)."""
        return self.float_model.input_shape

    @property
    def output_shape(self):
        """The float model's output shape (without the batch)."""
        return self.float_model.output_shape

    @property
    def input_shapes(self):
        """The float model's input shapes, one per input."""
        return self.float_model.input_shapes

    @property
    def output_shapes(self):
        """The float model's output shapes, one per output."""
        return self.float_model.output_shapes

    @property
    def output_names(self):
        """The float model's output names."""
        return self.float_model.output_names

    @property
    def layers(self):
        """The float model's layers (the architecture the int8 graph comes from)."""
        return self.float_model.layers

    def count_params(self):
        """The float model's parameter count."""
        return self.float_model.count_params()

    def check_inputs(self, x, name="x"):
        """``x`` checked against the input shapes, as a list of float32 arrays."""
        return self.float_model.check_inputs(x, name)

    def to_graph(self, input_shapes=None):
        """The float model's op graph (the int8 form is :meth:`int8_graph`);
        ``input_shapes`` for a model taking any size, as ``Model.to_graph``."""
        return self.float_model.to_graph(input_shapes)

    def sync(self):
        """Nothing to do: a quantized model's weights never change."""

    # ---- the int8 graph ------------------------------------------------------------------
    def int8_graph(self, outputs=None, input_shapes=None):
        """The executable int8 graph (:class:`~cnnx.graph.quantize.QGraph`);
        ``outputs``: value ids of the prepared graph to return instead of the
        model's outputs."""
        g = prepare(self.to_graph(input_shapes))
        if outputs is not None:
            by_id = {v.id: v for v in g.values}
            g.outputs = [by_id[i] for i in outputs]
        return lower(g, self.qparams, self.qweights, self.exclude)

    def _cached(self, name, make, shapes=None):
        # A plan holds weights packed for one int8 micro-kernel: rebuilt when
        # the kernel (the active ISA) changes, or CNNX_PLAN does; one per
        # input size for a model taking any size (an LRU, as the float plans).
        key = (_core.qgemm_kernel(), _core.active_isa(), plans_enabled())
        hit = self._plans.get((name, shapes))
        if hit is not None and hit[0] == key:
            self._plans[(name, shapes)] = self._plans.pop((name, shapes))
            return hit[1]
        value = make(key[2])
        self._plans.pop((name, shapes), None)
        self._plans[(name, shapes)] = (key, value)
        if shapes is not None:
            same = [k for k in self._plans if k[0] == name and k[1] is not None]
            for k in same[: -self.PLANS_PER_SIZE]:
                del self._plans[k]
        return value

    def _inference_plan(self, shapes=None):
        return self._cached(
            "infer",
            lambda on: (
                compile_int8(self.int8_graph(input_shapes=None if shapes is None else list(shapes)))
                if on
                else None
            ),
            shapes,
        )

    def _eval_plan(self, shapes=None):
        def make(on):
            if not on:
                return None
            sh = None if shapes is None else list(shapes)
            heads = [h.value.id for h in loss_heads(self.to_graph(sh), self._loss_specs)]
            return compile_int8(self.int8_graph(heads, sh))

        return self._cached("eval", make, shapes)

    def forward(self, x, training=False):
        """The int8 model on a batch, op by op from Python (the plan's reference)."""
        if training:
            raise TypeError("training: a quantized model runs inference only")
        xs = self.check_inputs(x)
        sizes = self._sizes(xs)
        outs, _ = run_graph(
            self.int8_graph(input_shapes=None if sizes is None else list(sizes)), xs
        )
        return outs if isinstance(self.output_shape, list) else outs[0]

    # ---- no training -----------------------------------------------------------------------
    def _refuse(self, *args, **kwargs):
        """Raises TypeError: a quantized model runs inference only."""
        raise TypeError(
            f"model: {self.name!r} is quantized and runs inference only; train the "
            "float model and quantize it again"
        )

    fit = train_on_batch = backward = _training_plan = _refuse

    # ---- description -----------------------------------------------------------------------
    def precision(self):
        """How each layer runs, as ``[(layer name, precision)]`` in the order of
        ``layers``: ``"int8"``, ``"fp32"``, ``"int8+fp32"`` (a container with
        both), ``"fused"`` (folded or fused into the layer before it: a batch
        norm, a ReLU), ``"view"`` (a reshape, or dropout)."""
        layers = list(self.float_model.layers)
        top = {}
        for layer in layers:
            for sub, _ in walk([layer]):
                top[id(sub)] = layer
        g = prepare(self._graph(None))
        q = lower(g, self.qparams, self.qweights, self.exclude)
        seen = {}
        for op in g.ops:
            owner = top.get(id(op.layer))
            if owner is not None:
                seen.setdefault(id(owner), set()).add(q.precision[id(op)])
        raw = {}
        for op in self._graph(None).ops:
            owner = top.get(id(op.layer))
            if owner is not None:
                raw.setdefault(id(owner), set()).add(op.kind.name)
        out = []
        for layer in layers:
            got = seen.get(id(layer))
            if got:
                p = "+".join(sorted(got, key=lambda x: x != "int8"))
            elif raw.get(id(layer), set()) <= {"reshape", "dropout"}:
                p = "view"
            else:
                p = "fused"
            out.append((layer.name, p))
        return out

    def summary(self, formulas=False, show_all=False, print_fn=print):
        """The float model's layer table with a Precision column (see :meth:`precision`).
        Returns rows with ``.precision`` as well."""
        from ..models.summary import _is_chain

        fm = self.float_model
        rows = _float_summary(fm, formulas=formulas, show_all=show_all, print_fn=None)
        chain = _is_chain(fm)
        prec = [
            p
            for (_, p), node in zip(self.precision(), fm.nodes)
            if not (getattr(node.layer, "is_reshape", False) and not show_all and chain)
        ]
        prec = ["fp32"] * len(fm.inputs) + prec
        out = []
        for r, p in zip(rows, prec):
            q = QSummaryRow(
                r.name,
                r.layer,
                r.output_shape,
                r.activation_size,
                r.params,
                r.formulas,
                r.connected_to,
            )
            q.precision = p
            out.append(q)
        if print_fn is not None:
            print_fn(_format(self, out))
        return out

    def save(self, path):
        """Write the quantized model to one file, atomically (``cnnx.load_model`` reads it)."""
        from ..io import save_model

        save_model(self, path)

    def __repr__(self):
        return f"QuantizedModel(name={self.name!r}, int8 layers={len(self.qweights)})"


def _format(model, rows):
    n8 = sum(1 for r in rows if r.precision.startswith("int8"))
    head = ["Layer", "Output shape", "Activation size", "Params", "Precision"]
    from ..layers.base import format_shape

    table = [
        [
            r.name,
            format_shape(r.output_shape),
            "None" if r.activation_size is None else f"{r.activation_size:,}",
            f"{r.params:,}",
            r.precision,
        ]
        for r in rows
    ]
    widths = [max(len(head[i]), *(len(t[i]) for t in table)) for i in range(len(head))]

    def line(cells):
        return "  ".join(
            c.rjust(widths[i]) if i in (2, 3) else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    body = [line(t) for t in table]
    rule = "-" * max(len(line(head)), *(len(b) for b in body))
    w8 = sum(int(np.prod(w.w.shape)) for w in model.qweights.values())
    lines = [line(head), rule] + body + [rule]
    lines.append(f"Total params: {model.count_params():,} ({w8:,} as int8 weights)")
    lines.append(
        f"Layers in int8: {n8} of {len(rows) - 1}; quantization: "
        f"{model.config.get('method', 'given')}"
        + (f", {model.config['samples']} calibration samples" if "samples" in model.config else "")
    )
    return "\n".join(lines)
