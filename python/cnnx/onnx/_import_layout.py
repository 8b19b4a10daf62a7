"""ONNX import of the transposed convolution and the layout operators (issue
19, part b), as converters in the style of :mod:`._import_ops`: each takes
``(ctx, node, ins)`` and returns an :class:`~._import_ops.OVal`.

- ``ConvTranspose`` -> Conv2DTranspose (weights (C_in, C_out/g, KH, KW) become
  (KH, KW, C_out/g, C_in)); explicit pads, ``auto_pad`` and ``output_shape``;
- ``Pad`` (constant / reflect / edge; pads on H and W; negative pads crop) ->
  ZeroPadding2D / ConstantPadding2D / ReflectionPadding2D /
  ReplicationPadding2D, and Cropping2D; ``Slice`` of H and W (steps 1) ->
  Cropping2D;
- ``Resize`` and ``Upsample`` by integer factors -> UpSampling2D: nearest
  where the coordinate rule picks ``floor(dst / f)`` (asymmetric + floor, or
  (pytorch_)half_pixel + round), bilinear for linear + (pytorch_)half_pixel
  (PyTorch's align_corners=False);
- ``DepthToSpace`` (DCR, CRD) / ``SpaceToDepth`` -> DepthToSpace / SpaceToDepth;
- the Reshape-Transpose-Reshape patterns exporters write for ShuffleNet's
  channel shuffle (``(N, g, C/g, H, W)``, perm ``(0, 2, 1, 3, 4)``) and for
  PyTorch's PixelShuffle / PixelUnshuffle (6-D, CRD and DCR orders) ->
  ChannelShuffle / DepthToSpace / SpaceToDepth: the 5-D or 6-D tensors in
  between are never materialised.

- ``Transpose`` of an NCHW image's C, H and W axes (other than to NHWC) ->
  Permute.

:func:`register` adds them to the converter table of :mod:`._import_ops`
(wrapping its Reshape and Transpose converters so that the patterns and
permutations are found first).
"""

import math

import numpy as np

__all__ = ["LAYOUT_CONVERTERS", "LAYOUT_IMPORT_OPS", "register"]

#: the operators these converters add (Reshape and Transpose gain the patterns)
LAYOUT_IMPORT_OPS = (
    "ConvTranspose",
    "Pad",
    "Slice",
    "Resize",
    "Upsample",
    "DepthToSpace",
    "SpaceToDepth",
)


def _ops():
    from . import _import_ops

    return _import_ops


def _arg(node, i):
    return node.input[i] if i < len(node.input) else ""


def _scalar(ctx, node, name, what):
    a = np.asarray(ctx.const(node, name, what))
    if a.size != 1 or a.dtype.kind not in "fiub":
        raise ctx.fail(node, f"{what} must be one number, got shape {a.shape} of {a.dtype}")
    return float(a.reshape(()))


def _axis(ctx, node, a, nd, what):
    a = int(a)
    if not -nd <= a < nd:
        raise ctx.fail(node, f"{what} {a} is out of range for a tensor of rank {nd}")
    return a % nd


def _image(ctx, node, ins):
    ops = _ops()
    return ops._image(ctx, node, ops._data(ctx, node, ins))


def _add(ctx, node, cls, x, shape, **kw):
    return _ops().OVal(ctx.graph.add(cls, [x], shape, node, **kw), "nchw")


# ---------------------------------------------------------------------------
# ConvTranspose
# ---------------------------------------------------------------------------


def _conv_transpose(ctx, node, ins):
    ops = _ops()
    attrs = ctx.attrs(node)
    ctx.check_attrs(
        node,
        attrs,
        (
            "kernel_shape",
            "strides",
            "pads",
            "dilations",
            "group",
            "auto_pad",
            "output_padding",
            "output_shape",
        ),
    )
    x = _image(ctx, node, ins)
    w = ctx.const_f32(node, _arg(node, 1), "the weight W")
    if w.ndim != 4:
        raise ctx.fail(
            node, f"weight of shape {w.shape}: only 2-D transposed convolution is supported"
        )
    cin, og, kh, kw = w.shape
    h, wd, c = x.shape
    group = int(attrs.get("group", 1))
    if group < 1 or cin != c or c % group:
        raise ctx.fail(node, f"weight {w.shape} with group={group} does not fit {c} input channels")
    if "kernel_shape" in attrs and [int(k) for k in attrs["kernel_shape"]] != [kh, kw]:
        raise ctx.fail(
            node, f"kernel_shape {attrs['kernel_shape']} disagrees with the weight shape {w.shape}"
        )
    strides = ops._pair(ctx, node, attrs, "strides", (1, 1))
    dil = ops._pair(ctx, node, attrs, "dilations", (1, 1))
    op = [int(v) for v in attrs.get("output_padding", (0, 0))]
    if len(op) != 2 or min(op) < 0:
        raise ctx.fail(node, f"attribute output_padding={op}: expected two values >= 0")
    full = [
        (n - 1) * s + (k - 1) * d + 1 + o
        for n, s, k, d, o in zip((h, wd), strides, (kh, kw), dil, op)
    ]  # output size before any padding
    auto = attrs.get("auto_pad", "NOTSET")
    if "output_shape" in attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        if "output_shape" in attrs:
            want = [int(v) for v in attrs["output_shape"]][-2:]
        else:
            want = [n * s for n, s in zip((h, wd), strides)]
        pads = []
        for f, o in zip(full, want):
            total = f - o
            if total < 0:
                raise ctx.fail(
                    node,
                    f"output_shape {want} is larger than the transposed "
                    f"convolution gives ({full}); use output_padding",
                )
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
    elif auto == "VALID":
        pads = [(0, 0), (0, 0)]
    elif auto in ("NOTSET", ""):
        p = [int(v) for v in attrs.get("pads", (0, 0, 0, 0))]
        if len(p) != 4 or min(p) < 0:
            raise ctx.fail(node, f"attribute pads={p}: expected 4 values >= 0")
        pads = [(p[0], p[2]), (p[1], p[3])]
    else:
        raise ctx.fail(node, f"auto_pad={auto!r} not supported")
    out = [f - p0 - p1 for f, (p0, p1) in zip(full, pads)]
    if min(out) < 1:
        raise ctx.fail(node, f"pads {pads} remove the whole output")
    for o, s, d in zip(op, strides, dil):
        if o >= s and o >= d:
            raise ctx.fail(
                node, f"output_padding {op} must be smaller than the stride or the dilation"
            )
    params = {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0))}  # -> (KH, KW, C_out/g, C_in)
    n_out = og * group
    if _arg(node, 2):
        b = ctx.const_f32(node, node.input[2], "the bias B").reshape(-1)
        if b.shape != (n_out,):
            raise ctx.fail(node, f"bias of shape {b.shape}, expected ({n_out},)")
        params["bias"] = b
    config = dict(
        filters=n_out,
        kernel_size=(kh, kw),
        strides=tuple(strides),
        padding=tuple(pads),
        output_padding=tuple(op),
        dilation_rate=tuple(dil),
        groups=group,
        use_bias="bias" in params,
        kernel_initializer="zeros",
    )
    return _add(
        ctx, node, "Conv2DTranspose", x, (out[0], out[1], n_out), config=config, params=params
    )


# ---------------------------------------------------------------------------
# Pad
# ---------------------------------------------------------------------------

_PAD_LAYERS = {"reflect": "ReflectionPadding2D", "edge": "ReplicationPadding2D"}


def _pad(ctx, node, ins):
    ops = _ops()
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("mode", "pads", "value", "paddings"))
    ov = ops._data(ctx, node, ins)
    mode = attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.fail(node, f"mode={mode!r} not supported (constant, reflect, edge)")
    if "pads" in attrs or "paddings" in attrs:  # opset < 11
        pads = [int(v) for v in attrs.get("pads", attrs.get("paddings"))]
        value = float(attrs.get("value", 0.0))
    else:
        pads = [int(v) for v in np.asarray(ctx.const(node, _arg(node, 1), "pads")).reshape(-1)]
        value = _scalar(ctx, node, _arg(node, 2), "constant_value") if _arg(node, 2) else 0.0
    nd = len(ov.onnx_shape) + 1
    if _arg(node, 3):  # opset 18: the axes the pads apply to
        axes = [
            _axis(ctx, node, a, nd, "axes")
            for a in np.asarray(ctx.const(node, _arg(node, 3), "axes")).reshape(-1)
        ]
        if len(pads) != 2 * len(axes):
            raise ctx.fail(node, f"pads {pads} do not fit axes {axes}")
        full = [0] * (2 * nd)
        for i, a in enumerate(axes):
            full[a], full[nd + a] = pads[i], pads[len(axes) + i]
        pads = full
    if len(pads) != 2 * nd:
        raise ctx.fail(node, f"pads {pads}: expected {2 * nd} values for a rank-{nd} tensor")
    begin, end = pads[:nd], pads[nd:]
    spatial = {"nchw": (2, 3), "nhwc": (1, 2)}.get(ov.layout)
    if spatial is None or any(begin[a] or end[a] for a in range(nd) if a not in spatial):
        raise ctx.fail(
            node,
            f"pads {pads} on a tensor of shape {ops._shape_str(ov)}: only the "
            "height and width of an image can be padded",
        )
    t, b, l, r = begin[spatial[0]], end[spatial[0]], begin[spatial[1]], end[spatial[1]]
    x = ov.t
    h, w, c = x.shape
    if mode != "constant" and min(t, b, l, r) < 0:
        raise ctx.fail(node, f"negative pads {pads} (cropping) need mode='constant'")
    if mode == "reflect" and (max(t, b) >= h or max(l, r) >= w):
        raise ctx.fail(
            node, f"reflection pads {pads} must be narrower than the input {ops._shape_str(ov)}"
        )
    crop = [max(-p, 0) for p in (t, b, l, r)]
    if any(crop):
        if crop[0] + crop[1] >= h or crop[2] + crop[3] >= w:
            raise ctx.fail(node, f"pads {pads} crop away the whole input")
        h, w = h - crop[0] - crop[1], w - crop[2] - crop[3]
        x = ctx.graph.add(
            "Cropping2D",
            [x],
            (h, w, c),
            node,
            config=dict(cropping=((crop[0], crop[1]), (crop[2], crop[3]))),
        )
    grow = [max(p, 0) for p in (t, b, l, r)]
    if any(grow) or not any(crop):
        padding = ((grow[0], grow[1]), (grow[2], grow[3]))
        shape = (h + grow[0] + grow[1], w + grow[2] + grow[3], c)
        if mode == "constant":
            cls = "ZeroPadding2D" if value == 0.0 else "ConstantPadding2D"
            config = dict(padding=padding) if value == 0.0 else dict(padding=padding, value=value)
        else:
            cls, config = _PAD_LAYERS[mode], dict(padding=padding)
        x = ctx.graph.add(cls, [x], shape, node, config=config)
    return ov.like(x)


def _slice(ctx, node, ins):
    """Slice of H and W of an image (steps 1): a crop."""
    ops = _ops()
    attrs = ctx.attrs(node)
    ctx.check_attrs(node, attrs, ("starts", "ends", "axes"))
    ov = ops._data(ctx, node, ins)
    nd = len(ov.onnx_shape) + 1

    def ints(i, key, what):
        if key in attrs:  # opset < 10
            return [int(v) for v in attrs[key]]
        if not _arg(node, i):
            return None
        return [int(v) for v in np.asarray(ctx.const(node, _arg(node, i), what)).reshape(-1)]

    starts, ends = ints(1, "starts", "starts"), ints(2, "ends", "ends")
    axes = ints(3, "axes", "axes")
    steps = ints(4, "", "steps") if "starts" not in attrs else None
    if starts is None or ends is None:
        raise ctx.fail(node, "starts and ends are required")
    axes = (
        list(range(len(starts)))
        if axes is None
        else [_axis(ctx, node, a, nd, "axes") for a in axes]
    )
    if steps is not None and any(v != 1 for v in steps):
        raise ctx.fail(node, f"steps {steps}: only 1 is supported")
    spatial = {"nchw": (2, 3), "nhwc": (1, 2)}.get(ov.layout)
    if (
        spatial is None
        or not set(axes) <= set(spatial)
        or len(starts) != len(axes)
        or len(ends) != len(axes)
    ):
        raise ctx.fail(
            node,
            f"Slice of axes {axes} of a tensor of shape {ops._shape_str(ov)}: "
            "only the height and width of an image can be sliced",
        )
    h, w, c = ov.t.shape
    crop = [0, 0, 0, 0]  # top, bottom, left, right
    for a, b, e in zip(axes, starts, ends):
        n = h if a == spatial[0] else w
        b = min(max(b + n if b < 0 else b, 0), n)
        e = min(max(e + n if e < 0 else e, 0), n)
        if e <= b:
            raise ctx.fail(node, f"Slice [{b}, {e}) of an axis of {n} leaves nothing")
        k = 0 if a == spatial[0] else 2
        crop[k], crop[k + 1] = b, n - e
    if not any(crop):
        return ov
    shape = (h - crop[0] - crop[1], w - crop[2] - crop[3], c)
    t = ctx.graph.add(
        "Cropping2D",
        [ov.t],
        shape,
        node,
        config=dict(cropping=((crop[0], crop[1]), (crop[2], crop[3]))),
    )
    return ov.like(t)


# ---------------------------------------------------------------------------
# Resize / Upsample
# ---------------------------------------------------------------------------


def _factors(ctx, node, ov, scales, sizes):
    """Integer (f_h, f_w) for an NCHW image from 4 scales or 4 sizes, or an error."""
    ops = _ops()
    h, w, c = ov.t.shape
    if sizes is not None:
        sizes = [int(v) for v in sizes]
        if len(sizes) != 4 or sizes[1] != c or sizes[2] % h or sizes[3] % w:
            raise ctx.fail(
                node,
                f"sizes {sizes} for an input {ops._shape_str(ov)}: only "
                "integer upsampling of H and W is supported",
            )
        return sizes[2] // h, sizes[3] // w
    scales = [float(v) for v in scales]
    if len(scales) != 4 or scales[0] != 1.0 or scales[1] != 1.0:
        raise ctx.fail(node, f"scales {scales}: only the height and width can be scaled")
    out = []
    for s in scales[2:]:
        if not (s >= 1.0 and float(s).is_integer()):
            raise ctx.fail(
                node, f"scales {scales}: only integer upsampling factors (>= 1) are supported"
            )
        out.append(int(s))
    return tuple(out)


def _resize(ctx, node, ins):
    ops = _ops()
    attrs = ctx.attrs(node)
    op = node.op_type
    allowed = (
        ["mode", "scales"]
        if op == "Upsample"
        else [
            "mode",
            "coordinate_transformation_mode",
            "nearest_mode",
            "cubic_coeff_a",
            "exclude_outside",
            "extrapolation_value",
            "antialias",
            "axes",
            "keep_aspect_ratio_policy",
        ]
    )
    ctx.check_attrs(node, attrs, allowed)
    ov = ops._data(ctx, node, ins)
    x = ops._image(ctx, node, ov)
    mode = attrs.get("mode", "nearest")
    if "axes" in attrs and sorted(int(a) % 4 for a in attrs["axes"]) != [2, 3]:
        raise ctx.fail(node, f"axes {attrs['axes']}: only (2, 3) is supported")
    scales = sizes = None
    if op == "Upsample":
        if "scales" in attrs:
            scales = attrs["scales"]
        else:
            scales = np.asarray(ctx.const(node, _arg(node, 1), "scales")).reshape(-1)
        ctm, nearest = "asymmetric", "floor"  # Upsample's rule
        mode = {"bilinear": "linear"}.get(mode, mode)
    else:
        ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        s_name = _arg(node, 1) if ctx.opset < 11 else _arg(node, 2)
        z_name = _arg(node, 3) if ctx.opset >= 11 else ""
        if s_name and np.asarray(ctx.const(node, s_name, "scales")).size:
            scales = np.asarray(ctx.const(node, s_name, "scales")).reshape(-1)
        elif z_name:
            sizes = np.asarray(ctx.const(node, z_name, "sizes")).reshape(-1)
        else:
            raise ctx.fail(node, "needs scales or sizes")
        if "axes" in attrs:  # scales / sizes given for H and W only
            if scales is not None:
                scales = [1.0, 1.0] + [float(v) for v in scales]
            else:
                sizes = [1, x.shape[2]] + [int(v) for v in sizes]
    fh, fw = _factors(ctx, node, ov, scales, sizes)
    half = ctm in ("half_pixel", "pytorch_half_pixel")
    if mode == "nearest":
        # the source pixel must be floor(dst / f) for integer f
        ok = (
            (ctm == "asymmetric" and nearest == "floor")
            or (half and nearest in ("round_prefer_floor", "round_prefer_ceil"))
            or (ctm == "tf_half_pixel_for_nn" and nearest == "floor")
            or (fh == fw == 1)
        )
        interpolation = "nearest"
    elif mode == "linear":
        ok = half or (fh == fw == 1)  # PyTorch's align_corners=False
        interpolation = "bilinear"
    else:
        ok = False
    if not ok:
        raise ctx.fail(
            node,
            f"mode={mode!r} with coordinate_transformation_mode={ctm!r}"
            + (f", nearest_mode={nearest!r}" if mode == "nearest" else "")
            + " is not supported (nearest with asymmetric + floor or "
            "half_pixel + round; linear with half_pixel)",
        )
    h, w, c = x.shape
    return _add(
        ctx,
        node,
        "UpSampling2D",
        x,
        (h * fh, w * fw, c),
        config=dict(size=(fh, fw), interpolation=interpolation),
    )


# ---------------------------------------------------------------------------
# DepthToSpace / SpaceToDepth
# ---------------------------------------------------------------------------


def _space_depth(ctx, node, ins):
    attrs = ctx.attrs(node)
    d2s = node.op_type == "DepthToSpace"
    ctx.check_attrs(node, attrs, ("blocksize", "mode") if d2s else ("blocksize",))
    x = _image(ctx, node, ins)
    if "blocksize" not in attrs:
        raise ctx.fail(node, "attribute blocksize is required")
    b = int(attrs["blocksize"])
    h, w, c = x.shape
    mode = attrs.get("mode", "DCR") if d2s else "DCR"
    if mode not in ("DCR", "CRD"):
        raise ctx.fail(node, f"mode={mode!r} not supported (DCR, CRD)")
    if b < 1 or (d2s and c % (b * b)) or (not d2s and (h % b or w % b)):
        raise ctx.fail(node, f"blocksize={b} does not fit an input of {(c, h, w)}")
    if d2s:
        return _add(
            ctx,
            node,
            "DepthToSpace",
            x,
            (h * b, w * b, c // (b * b)),
            config=dict(block_size=b, mode=mode),
        )
    return _add(
        ctx,
        node,
        "SpaceToDepth",
        x,
        (h // b, w // b, c * b * b),
        config=dict(block_size=b, mode=mode),
    )


# ---------------------------------------------------------------------------
# Reshape-Transpose-Reshape: channel shuffle, pixel (un)shuffle
# ---------------------------------------------------------------------------

_SPLIT: list[type] = []  # the class, made on first use (it subclasses _import_ops.OVal)


def _split_class():
    """An NCHW image seen as a 5-D or 6-D ONNX tensor, waiting for the Transpose
    and the Reshape that make a known rearrangement of it (an OVal, so that any
    other operator reading it fails with its shape in the message)."""
    if not _SPLIT:

        class Split(_ops().OVal):
            __slots__ = ("kinds", "tperm", "shape")

            @property
            def onnx_shape(self):
                return self.shape

        _SPLIT.append(Split)
    return _SPLIT[0]


#: (kind, the transpose perm) -> (layer, block order) of the final Reshape
_PATTERNS = {
    ("shuffle", (0, 2, 1, 3, 4)): ("ChannelShuffle", None),
    ("d2s_crd", (0, 1, 4, 2, 5, 3)): ("DepthToSpace", "CRD"),
    ("d2s_dcr", (0, 3, 4, 1, 5, 2)): ("DepthToSpace", "DCR"),
    ("s2d", (0, 1, 3, 5, 2, 4)): ("SpaceToDepth", "CRD"),
    ("s2d", (0, 3, 5, 1, 2, 4)): ("SpaceToDepth", "DCR"),
}


def _split_of(ov, shape):
    """The rearrangements a 5-D / 6-D Reshape of NCHW image ``ov`` may start
    (kind -> groups or block size), or None."""
    h, w, c = ov.t.shape
    s = tuple(shape)
    kinds = {}
    if len(s) == 4 and s[2:] == (h, w) and s[0] * s[1] == c:
        kinds["shuffle"] = s[0]  # (g, C/g, H, W)
    if len(s) == 5 and s[0] * s[1] * s[2] == c and s[3:] == (h, w):
        if s[1] == s[2]:
            kinds["d2s_crd"] = s[1]  # (C', b, b, H, W)
        if s[0] == s[1]:
            kinds["d2s_dcr"] = s[0]  # (b, b, C', H, W)
    if len(s) == 5 and s[0] == c and s[2] == s[4] and s[1] * s[2] == h and s[3] * s[4] == w:
        kinds["s2d"] = s[2]  # (C, H/b, b, W/b, b)
    if not kinds:
        return None
    v = _split_class()(ov.t, "split")
    v.kinds, v.tperm, v.shape = kinds, None, s
    return v


def _wrap_reshape(reshape):
    def convert(ctx, node, ins):
        v = ins[0] if ins else None
        if isinstance(v, _split_class()):
            return _finish_split(ctx, node, v)
        if isinstance(v, _ops().OVal) and v.layout == "nchw":
            attrs = ctx.attrs(node)
            if "shape" not in attrs and _arg(node, 1) and ctx.is_const(_arg(node, 1)):
                target = [
                    int(t)
                    for t in np.asarray(ctx.const(node, _arg(node, 1), "the shape")).reshape(-1)
                ]
                if len(target) in (5, 6):
                    if not int(attrs.get("allowzero", 0)):
                        full = [ctx.batch] + list(v.onnx_shape)
                        target = [
                            full[i] if t == 0 and i < len(full) else t for i, t in enumerate(target)
                        ]
                    rest = list(target[1:])
                    if rest.count(-1) == 1:
                        known = math.prod(d for d in rest if d != -1)
                        if known > 0 and math.prod(v.onnx_shape) % known == 0:
                            rest[rest.index(-1)] = math.prod(v.onnx_shape) // known
                    if (target[0] in (-1, None) or target[0] == ctx.batch) and all(
                        isinstance(d, int) and d >= 1 for d in rest
                    ):
                        split = _split_of(v, rest)
                        if split is not None:
                            split.chw = None
                            split.perm = None
                            return split
        return reshape(ctx, node, ins)

    return convert


def _permute(ctx, node, v, perm):
    """Transpose of an NCHW image's C, H, W axes -> Permute (None: not such a transpose)."""
    if (
        v.layout != "nchw"
        or len(perm) != 4
        or perm[0] != 0
        or sorted(perm) != [0, 1, 2, 3]
        or perm in ([0, 1, 2, 3], [0, 2, 3, 1], [0, 3, 1, 2])
    ):
        return None
    cnnx_axis = {2: 1, 3: 2, 1: 3}  # ONNX axis -> Permute's (1-based) cnnx axis
    dims = (cnnx_axis[perm[2]], cnnx_axis[perm[3]], cnnx_axis[perm[1]])
    shape = tuple(v.t.shape[d - 1] for d in dims)
    t = ctx.graph.add("Permute", [v.t], shape, node, config=dict(dims=dims))
    return _ops().OVal(t, "nchw")


def _wrap_transpose(transpose):
    def convert(ctx, node, ins):
        v = ins[0] if ins else None
        if not isinstance(v, _split_class()):
            if isinstance(v, _ops().OVal):
                attrs = ctx.attrs(node)
                if set(attrs) <= {"perm"} and "perm" in attrs:
                    out = _permute(ctx, node, v, [int(p) for p in attrs["perm"]])
                    if out is not None:
                        return out
            return transpose(ctx, node, ins)
        attrs = ctx.attrs(node)
        ctx.check_attrs(node, attrs, ("perm",))
        perm = tuple(int(p) for p in attrs.get("perm", ()))
        match = [k for k in v.kinds if (k, perm) in _PATTERNS]
        if v.tperm is not None or not match:
            raise ctx.fail(
                node,
                f"Transpose with perm={list(perm)} of an image reshaped to "
                f"{('N',) + v.shape} is not a channel shuffle or pixel "
                "(un)shuffle; such 5-D/6-D tensors are not supported",
            )
        out = _split_class()(v.t, "split")
        out.kinds, out.tperm, out.shape = (
            {match[0]: v.kinds[match[0]]},
            perm,
            tuple(v.shape[p - 1] for p in perm[1:]),
        )
        out.perm, out.chw = None, None
        return out

    return convert


def _finish_split(ctx, node, v):
    attrs = ctx.attrs(node)
    if v.tperm is None:
        raise ctx.fail(
            node, "a Reshape of a reshaped image without a Transpose between them is not supported"
        )
    ((kind, b),) = v.kinds.items()
    layer, order = _PATTERNS[(kind, v.tperm)]
    h, w, c = v.t.shape
    if layer == "ChannelShuffle":
        out, config = (h, w, c), dict(groups=b)
    elif layer == "DepthToSpace":
        out, config = (h * b, w * b, c // (b * b)), dict(block_size=b, mode=order)
    else:
        out, config = (h // b, w // b, c * b * b), dict(block_size=b, mode=order)
    if "shape" in attrs or not _arg(node, 1):
        raise ctx.fail(node, "needs its shape as an input")
    target = [int(t) for t in np.asarray(ctx.const(node, _arg(node, 1), "the shape")).reshape(-1)]
    want = (out[2], out[0], out[1])  # ONNX (C, H, W)
    rest = list(target[1:])
    if rest.count(-1) == 1:
        known = math.prod(d for d in rest if d != -1)
        if known > 0:
            rest[rest.index(-1)] = math.prod(want) // known
    if len(target) != 4 or tuple(rest) != want:
        raise ctx.fail(
            node,
            f"Reshape to {target} after a {layer} pattern: expected "
            f"(N, {', '.join(map(str, want))})",
        )
    t = ctx.graph.add(layer, [v.t], out, node, config=config)
    return _ops().OVal(t, "nchw")


LAYOUT_CONVERTERS = {
    "ConvTranspose": _conv_transpose,
    "Pad": _pad,
    "Slice": _slice,
    "Resize": _resize,
    "Upsample": _resize,
    "DepthToSpace": _space_depth,
    "SpaceToDepth": _space_depth,
}


def register(converters):
    """Add these converters to a loader's table (op type -> converter), in place."""
    converters.update(LAYOUT_CONVERTERS)
    for op, wrap in (("Reshape", _wrap_reshape), ("Transpose", _wrap_transpose)):
        if op in converters and not getattr(converters[op], "_layout_b", False):
            converters[op] = wrap(converters[op])
            converters[op]._layout_b = True
    return converters
