"""int8 inference kernels: quantize / dequantize, quantized matmul and
convolution with a requantising store, uint8 pooling and add.

Quantisation (ONNX's QuantizeLinear / DequantizeLinear, as ONNX Runtime):

* activations: ``real = scale * (q - zero_point)``, ``q`` uint8, one
  ``(scale, zero_point)`` per tensor (asymmetric; ``zero_point`` in 0..255 is
  the code of real 0, so zero padding pads with ``zero_point``);
* weights: ``real = scale[c] * q``, ``q`` int8 (the full -128..127 range),
  symmetric, one scale per output channel ``c`` (:func:`quantize_weights`).

:func:`qmatmul` and :func:`qconv2d` sum ``(x - x_zero_point) * w`` exactly in
int32 (VNNI ``vpdpbusd`` on AVX-512 / AVX-VNNI CPUs, an exact int16 form on
other AVX2 CPUs, plain loops elsewhere; the result is bit-identical on every
ISA), then, in float32::

    v = fma(float(acc), x_scale * w_scale[c], bias[c])          -> float32 output
    q = nearbyint(fma(float(acc), x_scale * w_scale[c] / out_scale,
                      bias[c] / out_scale)) + out_zero_point     -> uint8 output

rounding half to even and clamping to 0..255 (``"relu"`` clamps at real 0,
``"relu6"`` also at real 6). Weights are packed once into the kernel's layout
(:func:`qpack_conv2d`, :func:`qpack_matmul`); passing int8 arrays instead packs
them on every call.
"""

from typing import Any

import math
import numbers

import numpy as np

from .. import _core
from .._validate import as_float32, as_int, check_size
from ._conv import _geometry as _conv_geometry
from ._pool import _geometry as _pool_geometry

__all__ = [
    "quantize",
    "dequantize",
    "quantization_params",
    "quantize_weights",
    "QPackedWeights",
    "qpack_conv2d",
    "qpack_matmul",
    "qmatmul",
    "qconv2d",
    "qconv2d_algorithm",
    "qmax_pool2d",
    "qavg_pool2d",
    "qadd",
]

_ACTIVATIONS = {
    None: _core.QActivation.none,
    "relu": _core.QActivation.relu,
    "relu6": _core.QActivation.relu6,
}
_OUT_DTYPES = (None, "float32", "uint8", "int32")


# --------------------------------------------------------------- arguments


def _array_of(x, dtype, name, ndim=None):
    """x as a C-contiguous array of exactly `dtype` (no silent casts)."""
    if x is None:
        raise TypeError(f"{name}: expected a {np.dtype(dtype).name} array, got None")
    arr = np.asarray(x) if isinstance(x, np.ndarray) else None
    if arr is None:
        raise TypeError(
            f"{name}: expected a NumPy {np.dtype(dtype).name} array, got {type(x).__name__}"
        )
    if arr.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {np.dtype(dtype).name}, got {arr.dtype} "
            f"(quantize float data with cnnx.functional.quantize)"
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


_F32_MIN, _F32_MAX = 1.4e-45, 3.4028234663852886e38  # float32's smallest and largest


def _scale(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a float, got {type(v).__name__} {v!r}")
    v = float(v)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name}: expected a finite scale > 0, got {v}")
    if not _F32_MIN <= v <= _F32_MAX:
        raise ValueError(f"{name}: {v} is not representable as a float32 scale > 0")
    return v


def _zero_point(v, name):
    v = as_int(v, name)
    if not 0 <= v <= 255:
        raise ValueError(f"{name}: expected an int in 0..255, got {v}")
    return v


def _activation(activation, allowed=("relu", "relu6")):
    if activation is not None and activation not in allowed:
        names = ", ".join(repr(a) for a in (None,) + tuple(allowed))
        raise ValueError(f"activation: expected one of {names}, got {activation!r}")
    return _ACTIVATIONS[activation]


def _output(out_scale, out_zero_point, out_dtype):
    """-> (_core.QOutput, y_scale, y_zero_point) from the output arguments."""
    if out_dtype not in _OUT_DTYPES:
        raise ValueError(f"out_dtype: expected one of {_OUT_DTYPES}, got {out_dtype!r}")
    if out_dtype is None:
        out_dtype = "float32" if out_scale is None else "uint8"
    if out_dtype == "uint8":
        if out_scale is None:
            raise ValueError("out_scale: required for a uint8 output")
        zp = 0 if out_zero_point is None else _zero_point(out_zero_point, "out_zero_point")
        return _core.QOutput.u8, _scale(out_scale, "out_scale"), zp
    if out_scale is not None or out_zero_point is not None:
        raise ValueError(
            f"out_scale: only a uint8 output takes an output scale and zero "
            f"point (out_dtype={out_dtype!r})"
        )
    return (_core.QOutput.f32 if out_dtype == "float32" else _core.QOutput.s32), 1.0, 0


def _bias(b, n):
    if b is None:
        return None
    b = as_float32(b, "b", ndim=1)
    if b.shape[0] != n:
        raise ValueError(f"b: expected shape ({n},), got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("b: contains NaN or infinity")
    return b


def _bias_acc(b, n):
    if b is None:
        return None
    if not isinstance(b, np.ndarray) or b.dtype.kind not in "iu":
        raise TypeError("b_acc: expected an integer NumPy array (int32 bias in accumulator units)")
    if b.shape != (n,):
        raise ValueError(f"b_acc: expected shape ({n},), got {b.shape}")
    if b.size and (int(b.min()) < -(2**30) or int(b.max()) > 2**30):
        raise ValueError("b_acc: expected values within +-2**30")
    return np.ascontiguousarray(b, dtype=np.int32)


def _weight_scales(w_scale, n):
    scalar = np.ndim(w_scale) == 0 if not isinstance(w_scale, (str, bytes)) else False
    s = as_float32(w_scale, "w_scale")
    if scalar:
        s = np.full(n, s.reshape(-1)[0], np.float32)
    if s.shape != (n,):
        raise ValueError(f"w_scale: expected a scalar or shape ({n},), got {s.shape}")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("w_scale: expected finite scales > 0")
    return np.ascontiguousarray(s)


# ---------------------------------------------------- quantize / dequantize


def quantize(x, scale, zero_point):
    """float -> uint8: ``clip(round_half_even(x / scale) + zero_point, 0, 255)``.

    ONNX QuantizeLinear (a true division, ties to even). NaN or infinity in
    ``x`` raises ValueError.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.quantize(np.array([-1.0, 0.0, 1.0, 2.5], np.float32), scale=0.5, zero_point=10)
        array([ 8, 10, 12, 15], dtype=uint8)
    """
    x = as_float32(x, "x")
    check_size(x.shape, "x")
    return _core.quantize(x, _scale(scale, "scale"), _zero_point(zero_point, "zero_point"))


def dequantize(q, scale, zero_point):
    """uint8 -> float32: ``(q - zero_point) * scale``.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> F.dequantize(np.array([0, 128, 255], np.uint8), scale=0.5, zero_point=128)
        array([-64. ,   0. ,  63.5], dtype=float32)
    """
    q = _array_of(q, np.uint8, "q")
    return _core.dequantize(q, _scale(scale, "scale"), _zero_point(zero_point, "zero_point"))


def quantization_params(x_min, x_max):
    """``(scale, zero_point)`` mapping ``[x_min, x_max]`` onto uint8 0..255.

    The range is first widened to include 0 (so real 0, the padding value,
    is exactly representable); a range of width 0 gets scale 1.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> scale, zero_point = F.quantization_params(0.0, 2.55)
        >>> round(scale, 6), zero_point                               # real 0 is code 0
        (0.01, 0)
    """
    lo, hi = float(x_min), float(x_max)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"x_min, x_max: expected finite values, got {lo}, {hi}")
    if lo > hi:
        raise ValueError(f"x_min: expected x_min <= x_max, got {lo} > {hi}")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, 0
    scale = float(np.float32((hi - lo) / 255.0))
    zero_point = int(np.clip(np.rint(-lo / scale), 0, 255))
    return scale, zero_point


def quantize_weights(w, axis=-1):
    """Symmetric per-channel int8 weights -> ``(w_q, scales)``.

    ``scales[c] = max|w[..., c]| / 127`` along ``axis`` (the output channels:
    the last axis of HWIO conv and ``(n_in, n_out)`` dense weights) and
    ``w_q = round_half_even(w / scales)`` in -127..127. An all-zero channel
    gets scale 1.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> w = np.array([[1.0, -0.5], [0.5, 0.25]], np.float32)     # (n_in, n_out)
        >>> w_q, scales = F.quantize_weights(w)
        >>> w_q.tolist(), scales.tolist()                             # max|w| per column -> 127
        ([[127, -127], [64, 64]], [0.007874015718698502, 0.003937007859349251])
    """
    w = as_float32(w, "w")
    if w.ndim < 1:
        raise ValueError("w: expected at least a 1-D array")
    if not np.isfinite(w).all():
        raise ValueError("w: contains NaN or infinity")
    axis = as_int(axis, "axis")
    if not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis: expected -{w.ndim}..{w.ndim - 1}, got {axis}")
    moved = np.moveaxis(w, axis, -1)
    amax = (
        np.abs(moved).reshape(-1, moved.shape[-1]).max(axis=0)
        if moved.size
        else np.zeros(moved.shape[-1], np.float32)
    )
    scales = np.where(amax > 0, amax / np.float32(127.0), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(moved / scales), -127, 127).astype(np.int8)
    return np.ascontiguousarray(np.moveaxis(q, -1, axis)), scales


# ------------------------------------------------------------ packed weights


class QPackedWeights:
    """int8 weights packed once for the int8 kernels, with their scales.

    Holds the int8 weights too: if the active ISA changes (``cnnx`` tests do
    that), the layout is rebuilt for the new kernel on the next call.
    Attributes: ``kind`` (``"conv2d"`` or ``"matmul"``), ``weights`` (int8),
    ``scales`` (float32, one per output channel), ``groups``, ``shape``,
    ``kernel`` (the micro-kernel layout), ``nbytes`` (packed size).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> w_q, scales = F.quantize_weights(np.ones((3, 3, 4, 8), np.float32))
        >>> packed = F.qpack_conv2d(w_q, scales)
        >>> packed.kind, packed.shape
        ('conv2d', (3, 3, 4, 8))
    """

    __slots__ = ("kind", "weights", "scales", "groups", "_packed")

    def __init__(self, kind, weights, scales, groups=1):
        self.kind = kind
        self.weights = weights
        self.scales = scales
        self.groups = groups
        self._packed = None
        self.packed()  # pack now: errors surface here, and the first call is fast

    @property
    def shape(self):
        """Shape of the int8 weights (HWIO for a convolution, ``(n_in, n_out)`` for a matmul)."""
        return self.weights.shape

    def packed(self):
        """The ``_core.QPackedWeights`` for the active kernel."""
        p = self._packed
        if p is None or (not p.depthwise and p.kernel != _core.qgemm_kernel()):
            if self.kind == "conv2d":
                p = _core.qpack_conv2d(self.weights, self.scales, self.groups)
            else:
                p = _core.qpack_gemm(self.weights, self.scales)
            self._packed = p
        return p

    @property
    def kernel(self):
        """Name of the int8 micro-kernel layout the weights are packed for."""
        return self.packed().kernel

    @property
    def nbytes(self):
        """Size of the packed weights in bytes."""
        return self.packed().nbytes

    def __repr__(self):
        return (
            f"QPackedWeights(kind={self.kind!r}, shape={self.shape}, groups={self.groups}, "
            f"kernel={self.kernel!r})"
        )


def qpack_conv2d(w, w_scale, groups=1):
    """Pack HWIO int8 conv weights ``(f_h, f_w, n_C_prev // groups, n_C)``
    with their per-channel scales (or one scale) for :func:`qconv2d`.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> w_q, scales = F.quantize_weights(np.ones((3, 3, 4, 8), np.float32))
        >>> F.qpack_conv2d(w_q, scales).shape
        (3, 3, 4, 8)
    """
    w = _array_of(w, np.int8, "w", ndim=4)
    groups = as_int(groups, "groups", 1)
    if min(w.shape) < 1:
        raise ValueError(f"w: expected a non-empty filter, got shape {w.shape}")
    if w.shape[3] % groups:
        raise ValueError(f"groups: {groups} must divide the output channels ({w.shape[3]})")
    if w.shape[0] * w.shape[1] * w.shape[2] > 65536:
        raise ValueError(
            f"w: f_h * f_w * n_C_prev/groups = "
            f"{w.shape[0] * w.shape[1] * w.shape[2]} exceeds 65536 (the int32 "
            f"accumulator could overflow)"
        )
    return QPackedWeights("conv2d", w, _weight_scales(w_scale, w.shape[3]), groups)


def qpack_matmul(w, w_scale):
    """Pack a ``(K, N)`` int8 matrix with its per-column scales for :func:`qmatmul`.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> w_q, scales = F.quantize_weights(np.ones((16, 4), np.float32))
        >>> F.qpack_matmul(w_q, scales).shape
        (16, 4)
    """
    w = _array_of(w, np.int8, "w", ndim=2)
    if min(w.shape) < 1:
        raise ValueError(f"w: expected a non-empty matrix, got shape {w.shape}")
    if w.shape[0] > 65536:
        raise ValueError(
            f"w: K = {w.shape[0]} exceeds 65536 (the int32 accumulator could overflow)"
        )
    return QPackedWeights("matmul", w, _weight_scales(w_scale, w.shape[1]))


def _packed(w, w_scale, kind, groups=1):
    if isinstance(w, QPackedWeights):
        if w.kind != kind:
            raise ValueError(f"w: packed for {w.kind}, not {kind}")
        if w_scale is not None:
            raise ValueError("w_scale: the packed weights carry their scales; pass None")
        if kind == "conv2d" and w.groups != groups:
            raise ValueError(
                f"groups: the weights were packed with groups={w.groups}, got {groups}"
            )
        return w
    if w_scale is None:
        raise ValueError("w_scale: required with int8 weights (or pass packed weights)")
    if kind == "conv2d":
        return qpack_conv2d(w, w_scale, groups)
    return qpack_matmul(w, w_scale)


# ------------------------------------------------------ matmul, convolution


def qmatmul(
    a,
    a_scale,
    a_zero_point,
    w,
    w_scale=None,
    b=None,
    activation=None,
    out_scale=None,
    out_zero_point=None,
    out_dtype=None,
    b_acc=None,
):
    """Quantized ``a @ w + b``: uint8 ``a`` ``(M, K)`` times int8 ``w`` ``(K, N)``.

    ``w`` is a :class:`QPackedWeights` (from :func:`qpack_matmul`) or an int8
    array with ``w_scale``. The output is float32, or uint8 when
    ``out_scale`` (and ``out_zero_point``) are given; ``out_dtype="int32"``
    returns the raw ``sum (a - a_zero_point) * w``. ``b_acc``: an int32 bias
    in accumulator units (``round(bias / (a_scale * w_scale))``), added to the
    sum exactly before scaling, as ONNX's QLinearConv and QDQ models do.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> a = np.full((2, 16), 130, np.uint8)                       # real 2 * (130 - 128) = 4
        >>> w_q, scales = F.quantize_weights(np.ones((16, 4), np.float32))
        >>> F.qmatmul(a, 2.0, 128, F.qpack_matmul(w_q, scales))        # 16 * 4 * 1
        array([[64., 64., 64., 64.],
               [64., 64., 64., 64.]], dtype=float32)
    """
    a = _array_of(a, np.uint8, "a", ndim=2)
    w = _packed(w, w_scale, "matmul")
    if a.shape[1] != w.shape[0]:
        raise ValueError(
            f"a: expected {w.shape[0]} columns to match w's {w.shape[0]} rows, got shape {a.shape}"
        )
    out, ys, yz = _output(out_scale, out_zero_point, out_dtype)
    return _core.qgemm(
        a,
        w.packed(),
        _scale(a_scale, "a_scale"),
        _zero_point(a_zero_point, "a_zero_point"),
        _bias(b, w.shape[1]),
        _activation(activation),
        out,
        ys,
        yz,
        _bias_acc(b_acc, w.shape[1]),
    )


# Layers call qconv2d with the same geometry every step: validating it once
# saves tens of microseconds per call (as F.conv2d does). repr() keeps 1,
# True and 1.0 apart (only 1 is valid).
_GEOMETRY_CACHE: dict[tuple, Any] = {}


def _conv_args(x_shape, w_shape, stride, padding, dilation, groups):
    key = (
        tuple(x_shape[1:]),
        tuple(w_shape),
        repr(stride),
        repr(padding),
        repr(dilation),
        repr(groups),
    )
    geo = _GEOMETRY_CACHE.get(key)
    if geo is None:
        geo = _conv_geometry(tuple(x_shape), tuple(w_shape), stride, padding, dilation, groups)
        if len(_GEOMETRY_CACHE) > 512:
            _GEOMETRY_CACHE.clear()
        _GEOMETRY_CACHE[key] = geo
    return geo


def qconv2d(
    x,
    x_scale,
    x_zero_point,
    w,
    w_scale=None,
    b=None,
    stride=1,
    padding="valid",
    dilation=1,
    groups=1,
    activation=None,
    out_scale=None,
    out_zero_point=None,
    out_dtype=None,
    b_acc=None,
):
    """Quantized convolution (cross-correlation) of uint8 NHWC ``x`` with int8
    HWIO ``w``, bias and activation fused into the requantising store.

    Geometry arguments as :func:`cnnx.functional.conv2d`; padding pads with
    ``x_zero_point`` (real 0). ``w`` is a :class:`QPackedWeights` (from
    :func:`qpack_conv2d`) or an int8 array with ``w_scale``. The output is
    float32, or uint8 when ``out_scale`` (and ``out_zero_point``) are given;
    ``out_dtype="int32"`` returns the raw accumulators. ``b_acc``: an int32
    bias in accumulator units, as for :func:`qmatmul`.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.full((1, 5, 5, 4), 129, np.uint8)                  # real 1 everywhere
        >>> w_q, scales = F.quantize_weights(np.ones((3, 3, 4, 2), np.float32))
        >>> y = F.qconv2d(x, 1.0, 128, F.qpack_conv2d(w_q, scales))
        >>> y.shape, float(y[0, 0, 0, 0])                             # 3 * 3 * 4 ones
        ((1, 3, 3, 2), 36.0)
    """
    x = _array_of(x, np.uint8, "x", ndim=4)
    groups = as_int(groups, "groups", 1)
    w = _packed(w, w_scale, "conv2d", groups)
    if x.shape[0] >= 2**40:
        check_size(x.shape, "x")
    s, d, g, pads, _ = _conv_args(x.shape, w.shape, stride, padding, dilation, groups)
    out, ys, yz = _output(out_scale, out_zero_point, out_dtype)
    return _core.qconv2d_forward(
        x,
        w.packed(),
        s,
        d,
        pads,
        g,
        _scale(x_scale, "x_scale"),
        _zero_point(x_zero_point, "x_zero_point"),
        _bias(b, w.shape[3]),
        _activation(activation),
        out,
        ys,
        yz,
        _bias_acc(b_acc, w.shape[3]),
    )


def qconv2d_algorithm(x_shape, w_shape, stride=1, padding="valid", dilation=1, groups=1):
    """The int8 algorithm for these shapes: ``"qgemm_1x1"`` (the image is the
    GEMM's A matrix), ``"qgemm_patches"`` or ``"qdepthwise"``.

    Examples:
        >>> import cnnx.functional as F
        >>> F.qconv2d_algorithm((1, 14, 14, 64), (1, 1, 64, 128))
        'qgemm_1x1'
    """
    s, d, g, pads, _ = _conv_args(x_shape, w_shape, stride, padding, dilation, groups)
    return _core.qconv2d_algorithm(tuple(x_shape), tuple(w_shape), s, d, pads, g)


# ----------------------------------------------------------- pooling, add


def qmax_pool2d(x, pool_size, stride=None, padding=0):
    """Max pooling on uint8 NHWC ``x`` (the output keeps x's quantisation;
    padding never wins). Arguments as :func:`cnnx.functional.max_pool2d`.

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
        >>> F.qmax_pool2d(x, 2)[0, :, :, 0]
        array([[ 5,  7],
               [13, 15]], dtype=uint8)
    """
    x = _array_of(x, np.uint8, "x", ndim=4)
    kh, kw, sh, sw, pt, pb, pl, pr, _, _ = _pool_geometry(x, pool_size, stride, padding)
    return _core.qmax_pool2d(x, (kh, kw), (sh, sw), (pt, pb, pl, pr))


def qavg_pool2d(
    x,
    x_scale,
    x_zero_point,
    pool_size,
    stride=None,
    padding=0,
    count_include_pad=True,
    out_scale=None,
    out_zero_point=None,
):
    """Average pooling on uint8 NHWC ``x``, requantised to ``(out_scale,
    out_zero_point)`` (default: x's own). For a window with sum ``S`` over its
    ``n`` real pixels and divisor ``d`` (``f_h*f_w`` with
    ``count_include_pad``, else ``n``)::

        y = clip(round_half_even(float32(S - n*x_zero_point)
                 * ((x_scale / out_scale) / d)) + out_zero_point, 0, 255)

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
        >>> F.qavg_pool2d(x, 1.0, 0, 2)[0, :, :, 0]                   # 2.5 and 10.5 round to even
        array([[ 2,  4],
               [10, 12]], dtype=uint8)
    """
    x = _array_of(x, np.uint8, "x", ndim=4)
    kh, kw, sh, sw, pt, pb, pl, pr, _, _ = _pool_geometry(x, pool_size, stride, padding)
    if kh * kw > 2**23:
        raise ValueError(
            f"pool_size: int8 average pooling takes at most 2**23 pixels per window, got {kh}x{kw}"
        )
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(
            f"count_include_pad: expected a bool, got {type(count_include_pad).__name__}"
        )
    xs, xz = _scale(x_scale, "x_scale"), _zero_point(x_zero_point, "x_zero_point")
    ys = xs if out_scale is None else _scale(out_scale, "out_scale")
    yz = xz if out_zero_point is None else _zero_point(out_zero_point, "out_zero_point")
    return _core.qavg_pool2d(
        x, (kh, kw), (sh, sw), (pt, pb, pl, pr), bool(count_include_pad), xs, xz, ys, yz
    )


def qadd(
    a, a_scale, a_zero_point, b, b_scale, b_zero_point, out_scale, out_zero_point, activation=None
):
    """Requantised sum of two uint8 tensors of one shape::

        v = fma(float(a - za), a_scale/out_scale, float(b - zb) * (b_scale/out_scale))
        y = clip(round_half_even(v) + out_zero_point, 0, 255)

    ``activation="relu"`` also clamps at real 0 (``out_zero_point``).

    Examples:
        >>> import numpy as np
        >>> import cnnx.functional as F
        >>> a = np.full((1, 2, 2, 1), 10, np.uint8); b = np.full((1, 2, 2, 1), 20, np.uint8)
        >>> int(F.qadd(a, 1.0, 0, b, 1.0, 0, 1.0, 0)[0, 0, 0, 0])
        30
    """
    a = _array_of(a, np.uint8, "a")
    b = _array_of(b, np.uint8, "b")
    if a.shape != b.shape:
        raise ValueError(f"b: expected the shape of a {a.shape}, got {b.shape}")
    act = _activation(activation, allowed=("relu",))
    return _core.qadd(
        a,
        b,
        _scale(a_scale, "a_scale"),
        _zero_point(a_zero_point, "a_zero_point"),
        _scale(b_scale, "b_scale"),
        _zero_point(b_zero_point, "b_zero_point"),
        _scale(out_scale, "out_scale"),
        _zero_point(out_zero_point, "out_zero_point"),
        act == _core.QActivation.relu,
    )
