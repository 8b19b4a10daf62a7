"""A graph model's config: its inputs, its layers (each with its own
config), which tensors each layer call reads, and its outputs. Saved in the
model file and read back by ``Model.from_config``."""

from __future__ import annotations

from typing import Any, Sequence

from ..layers.base import layer_config, layer_from_config
from .node import Input, Node, SymbolicTensor

__all__ = ["graph_config", "graph_from_config"]


def graph_config(
    inputs: Sequence[SymbolicTensor],
    nodes: Sequence[Node],
    outputs: Sequence[SymbolicTensor],
    single_in: bool,
    single_out: bool,
) -> dict[str, Any]:
    index = {id(n): i for i, n in enumerate(nodes)}

    def ref(t: SymbolicTensor) -> list[Any]:
        if t.node.layer is None:
            return ["input", inputs.index(t)]
        return ["node", index[id(t.node)], t.index]

    return {
        "inputs": [{"shape": list(t.shape), "name": t.name} for t in inputs],
        "layers": [layer_config(n.layer) for n in nodes],
        "nodes": [{"inputs": [ref(t) for t in n.inputs], "multi": n.multi_input} for n in nodes],
        "outputs": [ref(t) for t in outputs],
        "single_input": single_in,
        "single_output": single_out,
    }


def _resolve(
    ref: Any, inputs: Sequence[SymbolicTensor], tensors: Sequence[Sequence[SymbolicTensor]]
) -> SymbolicTensor:
    if ref[0] == "input":
        return inputs[ref[1]]
    if ref[0] != "node" or not 0 <= ref[1] < len(tensors):
        raise ValueError(
            f"model: a node reads {ref!r}, which is not an earlier node "
            "(a cycle, or a corrupt file)"
        )
    return tensors[ref[1]][ref[2]]


def graph_from_config(cls: Any, config: dict[str, Any]) -> Any:
    """Call each layer on the tensors its node reads, in order, then build ``cls``."""
    c = dict(config)
    try:
        ins = [Input(i["shape"], i.get("name")) for i in c.pop("inputs")]
        layers = [layer_from_config(e) for e in c.pop("layers")]
        tensors: list[Any] = []
        for layer, node in zip(layers, c.pop("nodes")):
            args = [_resolve(r, ins, tensors) for r in node["inputs"]]
            out = layer(args if node["multi"] else args[0])
            tensors.append(out if isinstance(out, list) else [out])
        outs = [_resolve(r, ins, tensors) for r in c.pop("outputs")]
    except (KeyError, IndexError, TypeError) as e:
        raise ValueError(f"model: malformed graph config ({e})") from None
    single_in, single_out = c.pop("single_input", False), c.pop("single_output", False)
    return cls(ins[0] if single_in else ins, outs[0] if single_out else outs, **c)
