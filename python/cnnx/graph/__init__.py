"""The typed op graph (IR) every model lowers into, its fusion passes, and
the compiled plans built from it.

- :mod:`cnnx.graph.ir`: :class:`Graph`, :class:`Value`, :class:`Op` and the
  builder methods each layer's ``lower(g, x)`` calls;
- :mod:`cnnx.graph.passes`: batch-norm folding, activation and residual
  fusion, the ReLU mask before a max pool, pruning, ordering;
- :mod:`cnnx.graph.plans`: the inference plan and the training step in C++.

``model.to_graph()`` gives a model's graph; ONNX export
(:mod:`cnnx.onnx`) reads the same graph.
"""

from .ir import Act, BufferRef, EltwiseKind, Graph, Op, OpKind, ParamRef, PoolKind, Value
from .plans import (
    CompiledInference,
    CompiledTraining,
    Head,
    Unsupported,
    compile_inference,
    compile_training,
    loss_heads,
    plan_loss,
)

__all__ = [
    "Graph",
    "Value",
    "Op",
    "ParamRef",
    "BufferRef",
    "OpKind",
    "Act",
    "PoolKind",
    "EltwiseKind",
    "compile_inference",
    "compile_training",
    "loss_heads",
    "plan_loss",
    "Head",
    "CompiledInference",
    "CompiledTraining",
    "Unsupported",
]
