"""ONNX interoperability: run cnnx models in ONNX Runtime, and run ONNX
models (for example from ``torch.onnx.export``) in cnnx.

::

    cnnx.onnx.export(model, "model.onnx")      # same NHWC float32 input as model.predict
    model = cnnx.onnx.load("torch_model.onnx")  # a functional cnnx.Model taking NHWC input

A quantized model exports as a QDQ graph (``cnnx.onnx.export(cnnx.quantize(...),
path)``), and ``cnnx.onnx.load_quantized(path)`` reads QDQ and QLinearConv
graphs (for instance from ``onnxruntime.quantization.quantize_static``) into
cnnx's int8 path, as a :class:`cnnx.QuantizedModel`.

Both need the optional ``onnx`` package (``pip install cnnx[onnx]``, which
also brings ``onnxruntime``). Neither ``onnx`` nor ``onnxruntime`` is
imported until one of these functions runs, so ``import cnnx`` stays light.

Layouts: cnnx computes in NHWC, ONNX convolutions in NCHW. The exported
graph starts with one Transpose (NHWC -> NCHW), keeps every convolution and
pooling in NCHW, and reorders the rows of the first Dense kernel after a
Flatten so that its (c, h, w)-ordered features meet the right weights.
Import does the reverse for any graph of the supported operators (branches,
Concat, several inputs and outputs): OIHW kernels become HWIO, and the Gemm
after an NCHW Flatten gets its rows permuted into cnnx's (h, w, c) order.
"""

from ._common import (
    ONNXConversionError,
    SUPPORTED_EXPORT_LAYERS,
    SUPPORTED_IMPORT_OPS,
    FOLDED_IMPORT_OPS,
)
from ._export import export, to_onnx, DEFAULT_OPSET, MIN_OPSET
from ._load import load, from_onnx, MAX_NODES
from ._import_int8 import load_quantized, from_onnx_quantized

__all__ = [
    "export",
    "to_onnx",
    "load",
    "from_onnx",
    "load_quantized",
    "from_onnx_quantized",
    "ONNXConversionError",
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "MAX_NODES",
    "SUPPORTED_EXPORT_LAYERS",
    "SUPPORTED_IMPORT_OPS",
    "FOLDED_IMPORT_OPS",
]
