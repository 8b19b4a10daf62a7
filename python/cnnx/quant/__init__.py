"""int8 post-training quantization: :func:`quantize` and :class:`QuantizedModel`.

::

    q = cnnx.quantize(model, calibration_images)      # int8, same API
    q.summary()                                         # each layer's precision
    q.predict(x); q.evaluate(x, y); q.save("m.cnnx")    # cnnx.load_model reads it back
    cnnx.onnx.export(q, "m.onnx")                       # a QDQ graph ONNX Runtime runs

The pass over the op graph is :mod:`cnnx.graph.quantize`, calibration
:mod:`cnnx.quant.calibration`, the kernels :mod:`cnnx.functional` (``q*``).
"""

from .api import INT8_LAYERS, QuantizationWarning, quantize
from .calibration import METHODS
from .model import QSummaryRow, QuantizedModel

__all__ = [
    "quantize",
    "QuantizedModel",
    "QuantizationWarning",
    "QSummaryRow",
    "METHODS",
    "INT8_LAYERS",
]
