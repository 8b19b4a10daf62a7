"""Shared pieces of ONNX export and import: the lazy imports, the error type and
the lists of what converts."""

__all__ = [
    "ONNXConversionError",
    "require_onnx",
    "SUPPORTED_EXPORT_LAYERS",
    "SUPPORTED_IMPORT_OPS",
    "FOLDED_IMPORT_OPS",
]

from .. import layers, models


def _exported_layers() -> tuple[str, ...]:
    """The public layers with their own ``lower``. Export translates the ops
    of the lowered graph, so a layer that lowers exports; one without a
    lowering becomes a Python op, which has no ONNX form."""
    names = []
    for module in (models, layers):
        for name in module.__all__:
            obj = getattr(module, name)
            if (
                isinstance(obj, type)
                and issubclass(obj, layers.Layer)
                and obj.lower is not layers.Layer.lower
            ):
                names.append(name)
    return tuple(names)


#: the layers (and models) that export to ONNX
SUPPORTED_EXPORT_LAYERS: tuple[str, ...] = _exported_layers()

#: operators that become cnnx layers (on tensors computed from the graph's inputs)
SUPPORTED_IMPORT_OPS: tuple[str, ...] = (
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceMax",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sum",
    "Mean",
    "Concat",
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "BatchNormalization",
    "Dropout",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Identity",
    "ConvTranspose",
    "Pad",
    "Slice",
    "Resize",
    "Upsample",
    "DepthToSpace",
    "SpaceToDepth",
)
SUPPORTED_IMPORT_OPS += (  # issue 19 (layers-a)
    "Elu",
    "Selu",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Clip",
    "Softplus",
    "Softsign",
    "LogSoftmax",
    "PRelu",
    "LRN",
    "LayerNormalization",
)

#: operators evaluated at import when all their inputs are constants (weights
#: computed in the graph, shape arithmetic); ``Shape`` and ``Size`` of any tensor
FOLDED_IMPORT_OPS = (
    "Constant",
    "ConstantOfShape",
    "Identity",
    "Cast",
    "CastLike",
    "Shape",
    "Size",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Slice",
    "Reshape",
    "Transpose",
    "Flatten",
    "Expand",
    "Range",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Abs",
    "Sqrt",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Min",
    "Max",
    "Equal",
    "Less",
    "Greater",
    "Not",
    "Where",
    "MatMul",
    "Gemm",
    "Dropout",
)


class ONNXConversionError(ValueError):
    """A model or graph that cannot be converted exactly (never converted approximately)."""


def require_onnx():
    """Import and return the ``onnx`` package, or explain how to get it."""
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "cnnx.onnx needs the 'onnx' package: pip install 'cnnx[onnx]' "
            "(or pip install onnx onnxruntime)"
        ) from None
    return onnx
