"""Ops that rearrange values: padding and cropping, upsampling, depth <-> space,
channel shuffle and axis permutation, forward and backward, NHWC float32.

- :func:`pad2d` pads n_H and n_W: ``"constant"`` (``value``, zeros by
  default: ZeroPadding2D), ``"reflect"`` (mirror without repeating the edge,
  PyTorch's ReflectionPad2d; each pad at most n - 1) or ``"edge"`` (repeat
  the border pixel, ReplicationPad2d). :func:`crop2d` removes rows and
  columns. Output: ``n + p_before + p_after`` (``n - c_before - c_after``).
- :func:`upsample2d` repeats (``"nearest"``) or blends (``"bilinear"``,
  PyTorch's ``align_corners=False``) pixels by integer factors: ``n*f``.
- :func:`depth_to_space` moves channels into b x b blocks
  (``(n_H, n_W, n_C) -> (n_H*b, n_W*b, n_C/b^2)``), :func:`space_to_depth` the
  reverse; ``mode="DCR"`` (TensorFlow, ONNX's default) or ``"CRD"`` (PyTorch's
  PixelShuffle) orders the channels as ONNX defines.
- :func:`channel_shuffle` (ShuffleNet) interleaves ``groups`` groups of channels.
- :func:`permute` reorders the axes after the batch axis (Keras's Permute:
  ``dims`` numbered from 1).

Each backward is exact and needs no saved values (every op here is linear).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _core
from .._types import ArrayLike, IntPair, Padding
from .._validate import as_float32, as_int, as_pair, check_size

__all__ = [
    "pad2d",
    "pad2d_backward",
    "crop2d",
    "crop2d_backward",
    "upsample2d",
    "upsample2d_backward",
    "depth_to_space",
    "space_to_depth",
    "channel_shuffle",
    "channel_shuffle_backward",
    "permute",
    "permute_backward",
    "PAD_MODES",
    "resolve_pad_spec",
    "upsample_factors",
    "depth_order",
]

#: ``mode`` names of :func:`pad2d` -> the core's PadMode (PyTorch's names too)
PAD_MODES = {
    "constant": _core.PadMode.constant,
    "zeros": _core.PadMode.constant,
    "reflect": _core.PadMode.reflect,
    "edge": _core.PadMode.edge,
    "replicate": _core.PadMode.edge,
}
_UPSAMPLE = {"nearest": _core.UpsampleMode.nearest, "bilinear": _core.UpsampleMode.bilinear}
_ORDERS = {"DCR": _core.DepthOrder.dcr, "CRD": _core.DepthOrder.crd}


def resolve_pad_spec(spec, name="padding"):
    """An int, ``(sym_h, sym_w)`` or ``((top, bottom), (left, right))`` ->
    ``(top, bottom, left, right)`` (Keras's ZeroPadding2D / Cropping2D forms)."""
    if (
        isinstance(spec, (tuple, list))
        and len(spec) == 2
        and all(isinstance(p, (tuple, list)) for p in spec)
    ):
        (t, b), (l, r) = (as_pair(p, name, 0) for p in spec)
        return (t, b, l, r)
    if isinstance(spec, (tuple, list)) and len(spec) == 4:
        t, b, l, r = (as_int(p, name, 0) for p in spec)
        return (t, b, l, r)
    if spec is None or isinstance(spec, str):
        raise TypeError(
            f"{name}: expected an int, (sym_h, sym_w) or ((top, bottom), "
            f"(left, right)), got {spec!r}"
        )
    h, w = as_pair(spec, name, 0)
    return (h, h, w, w)


def _image(x, name="x"):
    x = as_float32(x, name, ndim=4)
    check_size(x.shape, name)
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{name}: expected a non-empty (m, n_H, n_W, n_C) batch, got {x.shape}")
    return x


def _pad_mode(mode):
    if not isinstance(mode, str) or mode.lower() not in PAD_MODES:
        raise ValueError(
            f"mode: expected 'constant', 'reflect' or 'edge' (or 'replicate'), got {mode!r}"
        )
    return PAD_MODES[mode.lower()]


def _check_pads(mode, pads, hw):
    t, b, l, r = pads
    h, w = hw
    if mode == _core.PadMode.reflect and (max(t, b) >= h or max(l, r) >= w):
        raise ValueError(
            f"padding: reflection padding must be narrower than the input (each "
            f"pad <= n - 1), got (top, bottom, left, right) = {pads} for an input "
            f"of {h}x{w}"
        )
    check_size((1, h + t + b, w + l + r, 1), "padding")


def pad2d(x: ArrayLike, padding: Padding, mode="constant", value=0.0):
    """Pad ``x`` ``(m, n_H, n_W, n_C)`` -> ``(m, n_H + t + b, n_W + l + r, n_C)``.

    ``padding``: an int, ``(sym_h, sym_w)`` or ``((top, bottom), (left, right))``;
    ``mode``: ``"constant"`` (``value``), ``"reflect"`` or ``"edge"``.
    """
    x = _image(x)
    m = _pad_mode(mode)
    pads = resolve_pad_spec(padding)
    _check_pads(m, pads, x.shape[1:3])
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"value: expected a number, got {type(value).__name__}")
    return _core.pad2d(x, m, pads, float(value))


def pad2d_backward(dy: ArrayLike, x: ArrayLike, padding: Padding, mode="constant"):
    """dL/dx of :func:`pad2d` (the interior of ``dy``, plus, for reflect and
    edge, each border value added to the pixel it copied)."""
    x = _image(x)
    m = _pad_mode(mode)
    pads = resolve_pad_spec(padding)
    _check_pads(m, pads, x.shape[1:3])
    dy = as_float32(dy, "dy", ndim=4)
    t, b, l, r = pads
    want = (x.shape[0], x.shape[1] + t + b, x.shape[2] + l + r, x.shape[3])
    if dy.shape != want:
        raise ValueError(f"dy: expected shape {want} (the output of pad2d), got {dy.shape}")
    return _core.pad2d_backward(dy, m, pads, x.shape[1], x.shape[2])


def _crop_pads(cropping, hw):
    t, b, l, r = resolve_pad_spec(cropping, "cropping")
    if t + b >= hw[0] or l + r >= hw[1]:
        raise ValueError(
            f"cropping: (top, bottom, left, right) = {(t, b, l, r)} leaves nothing "
            f"of a {hw[0]}x{hw[1]} input"
        )
    return (-t, -b, -l, -r)


def crop2d(x: ArrayLike, cropping):
    """Remove rows and columns: ``cropping`` as :func:`pad2d`'s ``padding`` (Cropping2D)."""
    x = _image(x)
    return _core.pad2d(x, _core.PadMode.constant, _crop_pads(cropping, x.shape[1:3]), 0.0)


def crop2d_backward(dy: ArrayLike, x: ArrayLike, cropping):
    """dL/dx of :func:`crop2d`: ``dy`` in place, zeros where rows were cut."""
    x = _image(x)
    pads = _crop_pads(cropping, x.shape[1:3])
    dy = as_float32(dy, "dy", ndim=4)
    t, b, l, r = pads
    want = (x.shape[0], x.shape[1] + t + b, x.shape[2] + l + r, x.shape[3])
    if dy.shape != want:
        raise ValueError(f"dy: expected shape {want} (the output of crop2d), got {dy.shape}")
    return _core.pad2d_backward(dy, _core.PadMode.constant, pads, x.shape[1], x.shape[2])


def upsample_factors(size: IntPair, name="size"):
    """An int or ``(f_h, f_w)`` of whole numbers >= 1 (2.0 is accepted; 1.5 is not)."""
    vals = list(size) if isinstance(size, (tuple, list)) else [size, size]
    if len(vals) != 2:
        raise ValueError(f"{name}: expected an int or a pair (f_h, f_w), got {size!r}")
    out: list = []
    for v in vals:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}: expected integer factors, got {type(v).__name__} {v!r}")
        if not float(v).is_integer():
            raise ValueError(f"{name}: only integer upsampling factors are supported, got {v!r}")
        v = int(v)
        if v < 1:
            raise ValueError(f"{name}: expected factors >= 1, got {v}")
        out.append(v)
    return tuple(out)


def _interp(interpolation):
    if not isinstance(interpolation, str) or interpolation.lower() not in _UPSAMPLE:
        raise ValueError(f"interpolation: expected 'nearest' or 'bilinear', got {interpolation!r}")
    return _UPSAMPLE[interpolation.lower()]


def upsample2d(x: ArrayLike, size: IntPair = 2, interpolation="nearest"):
    """``(m, n_H, n_W, n_C) -> (m, n_H*f_h, n_W*f_w, n_C)``: nearest (each pixel
    repeated) or bilinear (PyTorch's ``align_corners=False``)."""
    x = _image(x)
    fh, fw = upsample_factors(size)
    check_size((x.shape[0], x.shape[1] * fh, x.shape[2] * fw, x.shape[3]), "size")
    return _core.upsample2d(x, _interp(interpolation), fh, fw)


def upsample2d_backward(dy: ArrayLike, size: IntPair = 2, interpolation="nearest"):
    """dL/dx of :func:`upsample2d` (sums over each pixel's copies / taps)."""
    dy = _image(dy, "dy")
    fh, fw = upsample_factors(size)
    if dy.shape[1] % fh or dy.shape[2] % fw:
        raise ValueError(
            f"dy: its height and width must be multiples of size {(fh, fw)}, got shape {dy.shape}"
        )
    return _core.upsample2d_backward(dy, _interp(interpolation), fh, fw)


def depth_order(mode):
    """``"DCR"`` / ``"CRD"`` -> the core's DepthOrder."""
    if not isinstance(mode, str) or mode.upper() not in _ORDERS:
        raise ValueError(f"mode: expected 'DCR' or 'CRD', got {mode!r}")
    return _ORDERS[mode.upper()]


def depth_to_space(x: ArrayLike, block_size, mode="DCR"):
    """``(m, n_H, n_W, n_C) -> (m, n_H*b, n_W*b, n_C/b^2)`` (b^2 must divide n_C).

    Its backward is :func:`space_to_depth` with the same mode.
    """
    x = _image(x)
    b = as_int(block_size, "block_size", 1)
    order = depth_order(mode)
    if x.shape[3] % (b * b):
        raise ValueError(
            f"block_size: its square ({b * b}) must divide the channels ({x.shape[3]})"
        )
    return _core.depth_to_space(x, b, order)


def space_to_depth(x: ArrayLike, block_size, mode="DCR"):
    """``(m, n_H, n_W, n_C) -> (m, n_H/b, n_W/b, n_C*b^2)`` (b must divide n_H and n_W).

    Its backward is :func:`depth_to_space` with the same mode.
    """
    x = _image(x)
    b = as_int(block_size, "block_size", 1)
    order = depth_order(mode)
    if x.shape[1] % b or x.shape[2] % b:
        raise ValueError(
            f"block_size: {b} must divide the height ({x.shape[1]}) and the width ({x.shape[2]})"
        )
    return _core.space_to_depth(x, b, order)


def _groups(groups, channels):
    g = as_int(groups, "groups", 1)
    if channels % g:
        raise ValueError(f"groups: {g} must divide the channels ({channels})")
    return g


def channel_shuffle(x: ArrayLike, groups):
    """ShuffleNet's channel shuffle over the last axis: channel ``i*(C/g) + j``
    moves to ``j*g + i``."""
    x = as_float32(x, "x")
    if x.ndim < 2 or x.shape[-1] < 1:
        raise ValueError(f"x: expected a batch with a channel axis, got shape {x.shape}")
    return _core.channel_shuffle(x, _groups(groups, x.shape[-1]))


def channel_shuffle_backward(dy: ArrayLike, groups):
    """dL/dx of :func:`channel_shuffle`: the shuffle with ``C/groups`` groups."""
    dy = as_float32(dy, "dy")
    if dy.ndim < 2 or dy.shape[-1] < 1:
        raise ValueError(f"dy: expected a batch with a channel axis, got shape {dy.shape}")
    g = _groups(groups, dy.shape[-1])
    return _core.channel_shuffle(dy, dy.shape[-1] // g)


def _dims(dims, rank):
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"dims: expected a tuple such as (2, 1, 3), got {type(dims).__name__}")
    d = [as_int(v, "dims", 1) for v in dims]
    if sorted(d) != list(range(1, rank + 1)):
        raise ValueError(
            f"dims: expected a permutation of 1..{rank} (the axes after the batch "
            f"axis), got {tuple(dims)}"
        )
    return [v - 1 for v in d]


def permute(x: ArrayLike, dims):
    """Reorder the axes after the batch axis: output axis i is input axis ``dims[i-1]``
    (Keras's Permute, axes numbered from 1)."""
    x = as_float32(x, "x")
    if x.ndim < 2 or x.ndim > 9:
        raise ValueError(f"x: expected a batch of 1 to 8 axes per example, got shape {x.shape}")
    return _core.transpose(x, _dims(dims, x.ndim - 1))


def permute_backward(dy: ArrayLike, dims):
    """dL/dx of :func:`permute`: the inverse permutation."""
    dy = as_float32(dy, "dy")
    if dy.ndim < 2 or dy.ndim > 9:
        raise ValueError(f"dy: expected a batch of 1 to 8 axes per example, got shape {dy.shape}")
    perm = _dims(dims, dy.ndim - 1)
    inv = [0] * len(perm)
    for a, p in enumerate(perm):
        inv[p] = a
    return _core.transpose(dy, inv)
