"""The functional API's symbolic tensors: ``cnnx.Input`` and layer calls on them.

::

    x = cnnx.Input((32, 32, 3))                  # a SymbolicTensor
    a = cnnx.Conv2D(16, 3, padding="same")(x)    # a layer call adds a Node
    y = cnnx.Add()([a, x])                       # merge layers take a list
    model = cnnx.Model(x, y)

A :class:`SymbolicTensor` has a per-example ``shape`` and the :class:`Node`
that made it (a layer applied to input tensors). Nothing is computed: the
layer is built for the input shapes and its output shape recorded. A model
then walks the nodes from its outputs back to its inputs
(:func:`nodes_between`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence, Union

import numpy as np

from ..layers.base import walk

if TYPE_CHECKING:
    from ..layers.base import Layer

__all__ = ["Input", "SymbolicTensor", "Node", "is_symbolic", "call_symbolic", "nodes_between"]


class Node:
    """One layer applied to input tensors (``layer`` is None for an Input)."""

    __slots__ = ("layer", "inputs", "outputs", "multi_input")

    def __init__(
        self, layer: Optional[Layer], inputs: Iterable[SymbolicTensor], multi_input: bool
    ) -> None:
        # typed Any: None only for an Input's node, which no model runs or lists
        self.layer: Any = layer
        self.inputs = list(inputs)
        self.outputs: list[SymbolicTensor] = []
        self.multi_input = multi_input

    def __repr__(self) -> str:
        who = "Input" if self.layer is None else self.layer.name
        return f"Node({who}, {len(self.inputs)} -> {len(self.outputs)})"


class SymbolicTensor:
    """A tensor of a model being described: ``shape`` per example, no values.

    Examples:
        >>> import cnnx
        >>> t = cnnx.Conv2D(4, 3)(cnnx.Input((8, 8, 1)))
        >>> t.shape                                                   # no batch axis
        (6, 6, 4)
    """

    __slots__ = ("shape", "node", "index", "name")
    dtype = np.dtype(np.float32)

    def __init__(
        self, shape: Sequence[Optional[int]], node: Node, index: int = 0, name: Optional[str] = None
    ) -> None:
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.node = node
        self.index = index
        self.name = name

    @property
    def source(self) -> str:
        """``"Input 'x'"`` or ``"layer 'conv1'"``: where the tensor comes from (for messages)."""
        if self.node.layer is None:
            return f"Input {self.name!r}"
        return f"layer {self.node.layer.name!r}"

    def __repr__(self) -> str:
        return (
            f"<SymbolicTensor shape=(None, {', '.join(map(str, self.shape))}) from {self.source}>"
        )

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self!r} has no values: it describes a model (build one with "
            "cnnx.Model(inputs, outputs) and call predict)"
        )


def Input(  # noqa: N802 - Keras's name for it
    shape: Union[int, Sequence[Optional[int]]], name: Optional[str] = None
) -> SymbolicTensor:
    """A model input of per-example ``shape`` (no batch axis), e.g. ``(32, 32, 3)``;
    ``(None, None, 3)`` takes images of any size (a fully convolutional model,
    or one that ends in global pooling).

    Examples:
        >>> import cnnx
        >>> x = cnnx.Input((28, 28, 1))
        >>> y = cnnx.Dense(10)(cnnx.Flatten()(x))
        >>> cnnx.Model(x, y).output_shapes
        [(10,)]
    """
    from .._validate import as_dim

    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise TypeError(f"shape: expected a tuple such as (32, 32, 3), got {shape!r}")
    shape = tuple(as_dim(s, "shape") for s in shape)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    node = Node(None, [], False)
    t = SymbolicTensor(shape, node, 0, name or "input")
    node.outputs.append(t)
    return t


def is_symbolic(x: object) -> bool:
    """True for a SymbolicTensor or a list/tuple holding one."""
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(t, SymbolicTensor) for t in x)


def call_symbolic(layer: Layer, x: Any) -> Union[SymbolicTensor, list[SymbolicTensor]]:
    """``layer(x)`` on symbolic tensors: build the layer for their shapes, record a Node."""
    multi = isinstance(x, (list, tuple))
    xs = list(x) if multi else [x]
    for t in xs:
        if not isinstance(t, SymbolicTensor):
            raise TypeError(
                f"inputs: {layer.name} got a mix of symbolic tensors and "
                f"{type(t).__name__}; pass cnnx.Input tensors or layer outputs only"
            )
    shapes = [t.shape for t in xs] if multi else xs[0].shape
    try:
        out_shape = layer.build(shapes)
    except ValueError as e:
        if not multi:
            raise
        where = ", ".join(f"{t.shape} from {t.source}" for t in xs)
        raise ValueError(
            f"{e} (inputs of {type(layer).__name__} {layer.name!r}: {where})"
        ) from None
    node = Node(layer, xs, multi)
    several = isinstance(out_shape, list)
    for i, s in enumerate(out_shape if several else [out_shape]):
        node.outputs.append(SymbolicTensor(s, node, i, layer.name))
    return list(node.outputs) if several else node.outputs[0]


def nodes_between(
    inputs: Sequence[SymbolicTensor], outputs: Sequence[SymbolicTensor]
) -> list[Node]:
    """The layer nodes computing ``outputs`` from ``inputs``, each after the
    nodes it reads (a topological order). Raises ValueError for an output
    that needs an Input not listed, an input no output uses, a graph with a
    cycle, or a layer called twice."""
    input_nodes = {id(t.node): i for i, t in enumerate(inputs)}
    order: list[Node] = []
    state: dict[int, int] = {}
    used_inputs = set()

    def visit(t: SymbolicTensor) -> None:
        stack = [(t.node, False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            if done:
                state[key] = 2
                order.append(node)
                continue
            if state.get(key) == 2:
                continue
            if state.get(key) == 1:
                raise ValueError("outputs: the graph has a cycle (a tensor depends on itself)")
            if node.layer is None:
                if key not in input_nodes:
                    src = node.outputs[0]
                    raise ValueError(
                        f"outputs: they depend on {src.source}, which is not among "
                        "the model's inputs (a tensor from another graph?)"
                    )
                used_inputs.add(key)
                state[key] = 2
                continue
            state[key] = 1
            stack.append((node, True))
            for s in reversed(node.inputs):
                if state.get(id(s.node)) == 1:
                    raise ValueError("outputs: the graph has a cycle (a tensor depends on itself)")
                if state.get(id(s.node)) != 2:
                    stack.append((s.node, False))

    for t in outputs:
        visit(t)
    for t in inputs:
        if id(t.node) not in used_inputs:
            raise ValueError(f"inputs: {t.source} is not used by any output")
    seen: dict[int, Node] = {}
    for node in order:
        other = seen.setdefault(id(node.layer), node)
        if other is not node:
            raise ValueError(
                f"layers: {node.layer.name!r} is called twice in one model; "
                "use two layers (shared weights within a model are not supported)"
            )
    return order


def find_layer(layers: Sequence[Layer], name: Optional[str]) -> Layer:
    """The one layer called ``name`` among ``layers`` and the layers nested in them."""
    found = [l for l, _ in walk(layers) if l.name == name]
    if not found:
        raise ValueError(f"name: no layer called {name!r} (layers: {[l.name for l in layers]})")
    if len(found) > 1:
        raise ValueError(
            f"name: {len(found)} layers are called {name!r}; give them unique "
            "names or use get_layer(index=...)"
        )
    return found[0]


def rebuild_nodes(nodes: Iterable[Node]) -> None:
    """Build each node's layer again for its input shapes (after an edit of a
    nested layer list); its output shapes must not change."""
    for node in nodes:
        shapes = [t.shape for t in node.inputs]
        out = node.layer.build(shapes if node.multi_input else shapes[0])
        outs = out if isinstance(out, list) else [out]
        if [tuple(o) for o in outs] != [t.shape for t in node.outputs]:
            raise ValueError(
                f"layers: {node.layer.name!r} now outputs {out} where the graph "
                f"expects {[t.shape for t in node.outputs]}; build a new Model"
            )
