"""Shared pieces of ONNX export and import: the lazy imports and the error type."""

__all__ = ["ONNXConversionError", "require_onnx", "SUPPORTED_EXPORT_LAYERS",
           "SUPPORTED_IMPORT_OPS", "FOLDED_IMPORT_OPS"]

SUPPORTED_EXPORT_LAYERS: tuple[str, ...] = (
    "Model", "Sequential", "Conv2D", "MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D",
    "AdaptiveMaxPool2D", "GlobalAvgPool2D", "Flatten", "Dense", "ReLU", "LeakyReLU", "Sigmoid",
    "Tanh", "Softmax", "BatchNormalization", "Dropout", "Residual", "Add", "Subtract",
    "Multiply", "Average", "Concatenate", "Rescaling", "Normalization", "RandomFlip",
    "RandomTranslation", "RandomRotation", "RandomZoom", "RandomCrop", "RandomContrast",
    "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "UpSampling2D", "ZeroPadding2D",
    "ConstantPadding2D", "ReflectionPadding2D", "ReplicationPadding2D", "Cropping2D",
    "DepthToSpace", "SpaceToDepth", "ChannelShuffle", "Reshape", "Permute")
SUPPORTED_EXPORT_LAYERS += (  # issue 19 (layers-a)
    "ELU", "SELU", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "ReLU6", "Clip", "Softplus",
    "Softsign", "LogSoftmax", "PReLU", "LocalResponseNormalization", "GroupNormalization",
    "LayerNormalization")

#: operators that become cnnx layers (on tensors computed from the graph's inputs)
SUPPORTED_IMPORT_OPS: tuple[str, ...] = (
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean",
    "ReduceMax", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Sum", "Mean", "Concat", "Relu",
    "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "BatchNormalization", "Dropout", "Flatten",
    "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "ConvTranspose", "Pad", "Slice",
    "Resize", "Upsample", "DepthToSpace", "SpaceToDepth")
SUPPORTED_IMPORT_OPS += (  # issue 19 (layers-a)
    "Elu", "Selu", "Gelu", "HardSigmoid", "HardSwish", "Clip", "Softplus", "Softsign",
    "LogSoftmax", "PRelu", "LRN", "LayerNormalization")

#: operators evaluated at import when all their inputs are constants (weights
#: computed in the graph, shape arithmetic); ``Shape`` and ``Size`` of any tensor
FOLDED_IMPORT_OPS = (
    "Constant", "ConstantOfShape", "Identity", "Cast", "CastLike", "Shape", "Size", "Gather",
    "Unsqueeze", "Squeeze", "Concat", "Slice", "Reshape", "Transpose", "Flatten", "Expand",
    "Range", "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Reciprocal", "Floor", "Ceil",
    "Min", "Max", "Equal", "Less", "Greater", "Not", "Where", "MatMul", "Gemm", "Dropout")


class ONNXConversionError(ValueError):
    """A model or graph that cannot be converted exactly (never converted approximately)."""


def require_onnx():
    """Import and return the ``onnx`` package, or explain how to get it."""
    try:
        import onnx
    except ImportError:
        raise ImportError("cnnx.onnx needs the 'onnx' package: pip install 'cnnx[onnx]' "
                          "(or pip install onnx onnxruntime)") from None
    return onnx
