"""Model: layers joined into a graph (the functional API), itself a Layer.

::

    x = cnnx.Input((28, 28, 1))
    a = cnnx.Conv2D(16, 3, padding="same", activation="relu", name="c1")(x)
    b = cnnx.Concatenate()([cnnx.Conv2D(8, 1)(a), cnnx.Conv2D(8, 3, padding="same")(a)])
    y = cnnx.Dense(10, activation="softmax")(cnnx.GlobalAvgPool2D()(b))
    model = cnnx.Model(x, y)                # or Model([x1, x2], [y1, y2])
    features = cnnx.Model(x, a)             # shares c1's weights with model

This file holds the structure: the nodes in order, the flat parameter store,
running the graph layer by layer (``forward`` / ``backward``, also the
fallback when a model cannot compile), lowering into the op graph
(``to_graph``) and the config. Training lives in :mod:`cnnx.trainers`, the
summary table in :mod:`cnnx.models.summary`.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from .._types import ArrayLike, Shape
from ..graph import Graph
from ..layers.base import Layer, ParamStore, check_nesting, edit_count, walk
from ..trainers.trainer import Trainer
from .config import graph_config, graph_from_config
from .node import Node, SymbolicTensor, find_layer, nodes_between, rebuild_nodes
from .run import check_batches, check_output_grads, concrete_input_shapes, run_backward, run_forward
from .summary import summary

__all__ = ["Model"]


#: one symbolic tensor, or a list of them (a model of several inputs or outputs)
Tensors = Union[SymbolicTensor, Sequence[SymbolicTensor]]


def _as_list(x: Any, what: str) -> list[SymbolicTensor]:
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    if not items or not all(isinstance(t, SymbolicTensor) for t in items):
        raise TypeError(f"{what}: expected cnnx.Input tensors or layer outputs, got {x!r}")
    return items


class Model(Trainer, Layer):
    """A graph of layers from ``inputs`` to ``outputs`` (symbolic tensors).

    Examples:
        >>> import numpy as np
        >>> import cnnx
        >>> x = cnnx.Input((8, 8, 3))
        >>> a = cnnx.Conv2D(4, 3, padding="same", activation="relu")(x)
        >>> b = cnnx.Conv2D(4, 1)(x)
        >>> y = cnnx.Dense(2, activation="softmax")(cnnx.GlobalAvgPool2D()(cnnx.Add()([a, b])))
        >>> model = cnnx.Model(x, y)
        >>> model.predict(np.random.rand(5, 8, 8, 3).astype(np.float32)).shape
        (5, 2)
    """

    _untracked = frozenset(
        {
            "name",
            "optimizer",
            "loss",
            "metrics",
            "stop_training",
            "history",
            "loss_weights",
            "store",
        }
    )
    summary = summary
    #: the flat parameter store (None until a Sequential without input_shape is built)
    store: Optional[ParamStore]

    def __init__(
        self,
        inputs: Tensors,
        outputs: Tensors,
        name: Optional[str] = None,
        trainable: bool = True,
    ) -> None:
        super().__init__(name if name is not None else "Model", trainable)
        self._single_in = not isinstance(inputs, (list, tuple))
        self._single_out = not isinstance(outputs, (list, tuple))
        self._init_trainer()
        self._set_graph(_as_list(inputs, "inputs"), _as_list(outputs, "outputs"))
        if not trainable:
            self.trainable = False

    # ---- structure ----------------------------------------------------------------
    def _set_graph(self, inputs: list[SymbolicTensor], outputs: list[SymbolicTensor]) -> None:
        nodes = [n for n in nodes_between(inputs, outputs) if n.layer is not None]
        self._inputs, self._outputs, self._nodes = inputs, outputs, nodes
        self._layers = [n.layer for n in nodes]
        readers: dict[int, int] = {}
        for n in nodes:
            for t in n.inputs:
                readers[id(t)] = readers.get(id(t), 0) + 1
        self._readers = readers
        self._need_dx = [any(t.node.layer is not None for t in n.inputs) for n in nodes]
        self.input_shape = inputs[0].shape if self._single_in else [t.shape for t in inputs]
        self.output_shape = outputs[0].shape if self._single_out else [t.shape for t in outputs]
        self.built = True
        check_nesting(self.layers)  # MAX_NESTING, without recursion
        self._make_store()

    def _make_store(self) -> None:
        # the largest activation of one example: a batch whose activations could
        # never be allocated is refused by name (Trainer._check_batch)
        sizes = [t.shape for t in self._inputs] + [
            s
            for layer, _ in walk(self.layers)
            if layer.output_shape
            for s in (
                layer.output_shape if isinstance(layer.output_shape, list) else [layer.output_shape]
            )
        ]
        self._max_values = max(math.prod(1 if d is None else d for d in s) for s in sizes)
        self._synced_at = -1
        old = getattr(self, "store", None)
        self.store = ParamStore(self.layers)
        self._store_changed(old)

    @property
    def layers(self) -> Sequence[Layer]:
        """The model's layers, each after the layers it reads (read-only for a graph model)."""
        return tuple(self._layers)

    @property
    def nodes(self) -> list[Node]:
        """The layer calls (:class:`~cnnx.models.node.Node`), each after those it reads."""
        return list(self._nodes)

    @property
    def inputs(self) -> list[SymbolicTensor]:
        """The model's input symbolic tensors, in order."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        """The model's output symbolic tensors, in order."""
        return list(self._outputs)

    @property
    def input_shapes(self) -> list[Shape]:
        """The shape of each input, without the batch axis (``None`` for a free size)."""
        return [t.shape for t in self._inputs]

    @property
    def output_shapes(self) -> list[Shape]:
        """The shape of each output, without the batch axis."""
        return [t.shape for t in self._outputs]

    @property
    def output_names(self) -> list[str]:
        """One name per output: its layer's (or ``output_<i>``)."""
        names = [t.name or f"output_{i}" for i, t in enumerate(self._outputs)]
        return [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]

    def sublayers(self) -> list[Layer]:
        return list(self.layers)

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """The layer called ``name`` (or at ``index`` in :attr:`layers`)."""
        return self.layers[index] if index is not None else find_layer(self.layers, name)

    def count_params(self) -> int:
        self.sync()
        return super().count_params()

    def get_weights(self) -> list[np.ndarray]:
        self.sync()
        return super().get_weights()

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        self.sync()
        super().set_weights(weights)

    def zero_grad(self) -> None:
        if self.store is not None:  # an unbuilt Sequential has no gradients yet
            self.store.grads.fill(0.0)

    def build(self, input_shape: Any) -> Any:
        shapes = input_shape if not self._single_in else [input_shape]
        given = [tuple(int(d) for d in s) for s in shapes]
        if given != self.input_shapes:
            raise ValueError(
                f"input_shape: {self.name} takes {self.input_shape}, got {input_shape}"
            )
        return self.output_shape

    # ---- running it layer by layer (the manual loop, and models no plan runs) -------
    def check_inputs(self, x: Any, name: str = "x") -> list[np.ndarray]:
        """The inputs as a list of float32 batches of the model's shapes (one per input)."""
        return check_batches(self._inputs, x, self._single_in, name)

    def _forward(self, x: Any, training: bool) -> Any:
        xs = x if isinstance(x, list) else [x]
        outs = run_forward(self._nodes, self._inputs, self._outputs, xs, training)
        return outs if isinstance(x, list) else outs[0]

    def _backward(self, dy: Any, need_dx: bool, accumulate: bool) -> Any:
        dys = dy if isinstance(dy, list) else [dy]
        dxs = run_backward(
            self._nodes, self._need_dx, self._inputs, self._outputs, dys, need_dx, accumulate
        )
        if dxs is None:
            return None
        return dxs if isinstance(dy, list) else dxs[0]

    def forward(self, x: Any, training: bool = False) -> Any:
        """Run the model on a batch (a list for several inputs); ``training=True``
        keeps what :meth:`backward` needs."""
        self.sync()
        xs = self.check_inputs(x)
        self._check_batch(xs[0].shape[0])
        ys = self._forward(xs, bool(training))
        if training:
            self._has_forward = True
            self._last_out_shape = [tuple(y.shape) for y in ys]
        return ys[0] if self._single_out else ys

    def backward(self, dy: Any) -> Any:
        """Gradient w.r.t. the inputs of the last training forward, from ``dy``
        (w.r.t. the outputs; a list for several). Parameter gradients are
        *added* to ``layer.grads`` (``model.zero_grad()`` clears them)."""
        if not getattr(self, "_has_forward", False):
            raise ValueError("dy: call forward(x, training=True) first")
        checked = check_output_grads(dy, self._single_out, self._last_out_shape)
        dxs = self._backward(checked, True, True)
        return dxs[0] if self._single_in else dxs

    def output_is_read_only_by_loss(self, i: int) -> bool:
        """True when output ``i`` feeds no other layer (its gradient comes from the loss alone)."""
        return self._readers.get(id(self._outputs[i]), 0) == 0

    def softmax_logits(self, output: int = 0) -> Optional[np.ndarray]:
        """The input of the softmax that makes output ``output``, from the last
        training forward (None if that output is no softmax)."""
        node = self._outputs[output].node
        if node.layer is None or len(node.outputs) > 1:
            return None
        return node.layer.softmax_logits()

    def sync(self) -> None:
        """Bring the structure up to date after edits of a nested Sequential's
        layer list: rebuild what changed, keep every other weight."""
        if self._synced_at == edit_count() or not self._stale():
            self._synced_at = edit_count()
            return
        rebuild_nodes(self._nodes)
        self._make_store()
        self._synced_at = edit_count()

    def _stale(self) -> bool:
        """A layer list inside this model was edited since it was last built."""
        return any(getattr(layer, "_dirty", False) for layer, _ in walk(self.layers))

    # ---- lowering ------------------------------------------------------------------
    def lower(self, g: Graph, x: Any) -> Any:
        xs = x if isinstance(x, list) else [x]
        vals = {id(t): v for t, v in zip(self._inputs, xs)}
        for node in self._nodes:
            ins = [vals[id(t)] for t in node.inputs]
            y = g.lower(node.layer, ins if node.multi_input else ins[0])
            for t, v in zip(node.outputs, y if len(node.outputs) > 1 else [y]):
                vals[id(t)] = v
        outs = [vals[id(t)] for t in self._outputs]
        return outs if not self._single_out else outs[0]

    def to_graph(self, input_shapes: Optional[Sequence[Sequence[Optional[int]]]] = None) -> Graph:
        """The model as a typed op graph (:mod:`cnnx.graph`), for plans and export.

        A model taking inputs of any size (None dims) needs the sizes of the
        graph's inputs: ``input_shapes``, one per input.
        """
        self.sync()
        shapes = concrete_input_shapes(self._inputs, input_shapes)
        g = Graph()
        xs = [g.input(s, t.name) for s, t in zip(shapes, self._inputs)]
        out = g.lower(self, xs if not self._single_in else xs[0])
        g.outputs = out if isinstance(out, list) else [out]
        return g

    # ---- config ----------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return dict(
            super().get_config(),
            **graph_config(
                self._inputs, self._nodes, self._outputs, self._single_in, self._single_out
            ),
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """A model rebuilt from the architecture ``get_config`` returned (fresh weights)."""
        return graph_from_config(cls, config)
