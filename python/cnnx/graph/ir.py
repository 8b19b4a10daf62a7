"""The typed op graph every model lowers into.

A :class:`Graph` holds :class:`Value` s (tensors with a per-example shape)
and :class:`Op` s (typed operations between them), in an order where every
op comes after the ops that write its inputs. Layers build it through the
builder methods below (``g.conv2d(...)``, ``g.activation(...)``...), each in
its own ``Layer.lower(g, x)``; nothing outside a layer knows how that layer
lowers.

Each op kind has a fixed set of attributes (its schema, documented on the
builder that creates it). Kinds are :class:`cnnx._core.OpKind`, activations
:class:`cnnx._core.Act`, pools :class:`cnnx._core.PoolKind` and joins
:class:`cnnx._core.EltwiseKind`: the C++ plans use the same enums.

Parameters are referred to, never copied: a :class:`ParamRef` names a
layer's parameter, and the plans read the live array (and, in training,
write the layer's gradient slot) through it.
"""

import math

from .. import _core

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
    "ACT_BY_NAME",
    "GROUPED_ACTS",
]

OpKind = _core.OpKind
Act = _core.Act
PoolKind = _core.PoolKind
EltwiseKind = _core.EltwiseKind

#: activation names of the layers' ``activation=`` argument -> Act
ACT_BY_NAME = {
    None: Act.none,
    "linear": Act.none,
    "relu": Act.relu,
    "leaky_relu": Act.leaky_relu,
    "sigmoid": Act.sigmoid,
    "tanh": Act.tanh,
    "softmax": Act.softmax,
    # issue 19 (their alpha / beta come from the layer: see Graph.activation)
    "elu": Act.elu,
    "selu": Act.selu,
    "gelu": Act.gelu,
    "gelu_tanh": Act.gelu_tanh,
    "silu": Act.silu,
    "swish": Act.silu,
    "hard_swish": Act.hardswish,
    "hardswish": Act.hardswish,
    "hard_sigmoid": Act.hardsigmoid,
    "hardsigmoid": Act.hardsigmoid,
    "softplus": Act.softplus,
    "softsign": Act.softsign,
    "log_softmax": Act.log_softmax,
}

#: activations over the last axis as a whole (not elementwise)
GROUPED_ACTS = (Act.softmax, Act.log_softmax)


class ParamRef:
    """A layer's parameter: ``array`` is the live value, ``grad`` its gradient slot."""

    __slots__ = ("layer", "name", "trainable")

    def __init__(self, layer, name, trainable):
        self.layer = layer
        self.name = name
        self.trainable = bool(trainable)

    @property
    def array(self):
        return self.layer.params[self.name]

    @property
    def grad(self):
        return self.layer.grads[self.name] if self.trainable else None

    def __repr__(self):
        return f"ParamRef({self.layer.name}.{self.name})"


class BufferRef:
    """A layer's non-trained state (batch norm's running statistics)."""

    __slots__ = ("layer", "name")

    def __init__(self, layer, name):
        self.layer = layer
        self.name = name

    @property
    def array(self):
        return self.layer.buffers[self.name]


class Value:
    """A tensor of the graph: ``shape`` is per example (no batch axis)."""

    __slots__ = ("id", "shape", "producer", "name")

    def __init__(self, id_, shape, producer, name):
        self.id = id_
        self.shape = tuple(int(s) for s in shape)
        self.producer = producer
        self.name = name

    @property
    def size(self):
        return math.prod(self.shape)

    def __repr__(self):
        return f"Value({self.id}, {self.shape}, {self.name!r})"


class Op:
    """One typed operation: ``kind``, ``inputs`` (Values), ``output`` (a Value), ``attrs``."""

    __slots__ = ("kind", "inputs", "output", "attrs", "layer", "name")

    def __init__(self, kind, inputs, attrs, layer, name):
        self.kind = kind
        self.inputs = list(inputs)
        self.output = None
        self.attrs = attrs
        self.layer = layer
        self.name = name

    def __repr__(self):
        ins = ", ".join(str(v.id) for v in self.inputs)
        return (
            f"Op({self.kind.name}, [{ins}] -> {self.output.id if self.output else None}, "
            f"{self.name!r})"
        )


class Graph:
    """Ops over values; see the module docstring. Built by ``Model.to_graph()``."""

    def __init__(self):
        self.values = []
        self.ops = []
        self.inputs = []
        self.outputs = []
        self._trainable = [True]  # trainability of the layers being lowered (nesting)
        self._layers = []  # the layer being lowered, innermost last

    # ---- structure -------------------------------------------------------------
    def _value(self, shape, producer, name):
        v = Value(len(self.values), shape, producer, name)
        self.values.append(v)
        return v

    def input(self, shape, name="input"):
        """A graph input of per-example ``shape``."""
        v = self._value(shape, None, name)
        self.inputs.append(v)
        return v

    def emit(self, kind, inputs, shape, **attrs):
        """Append an op of ``kind`` reading ``inputs``; returns its output Value."""
        for v in inputs:
            if not isinstance(v, Value) or v.id >= len(self.values) or self.values[v.id] is not v:
                raise TypeError(f"inputs: expected Values of this graph, got {v!r}")
        layer = self._layers[-1] if self._layers else None
        name = layer.name if layer is not None else kind.name
        op = Op(kind, inputs, attrs, layer, name)
        op.output = self._value(shape, op, name)
        self.ops.append(op)
        return op.output

    def lower(self, layer, inputs):
        """Lower ``layer`` (a child of the layer being lowered) on ``inputs``.

        Containers call this for their children, so that a frozen container
        freezes everything inside it.
        """
        self._trainable.append(self._trainable[-1] and layer.trainable)
        self._layers.append(layer)
        try:
            out = layer.lower(self, inputs)
        finally:
            self._trainable.pop()
            self._layers.pop()
        if not isinstance(out, (Value, list, tuple)):
            raise TypeError(
                f"{type(layer).__name__}.lower must return a Value or a list of "
                f"Values, got {type(out).__name__}"
            )
        return out

    def param(self, layer, name):
        """A reference to ``layer.params[name]`` (trainable as the layer is, here)."""
        return ParamRef(layer, name, self._trainable[-1] and name in layer.grads)

    def consumers(self):
        """value id -> list of ops reading it."""
        users = {v.id: [] for v in self.values}
        for op in self.ops:
            for v in op.inputs:
                users[v.id].append(op)
        return users

    # ---- builders: one per op kind, each documenting its attributes --------------
    def conv2d(self, x, *, geometry, kernel, bias, act=Act.none, alpha=0.0, beta=0.0):
        """Convolution. ``geometry``: (H, W, C_in, KH, KW, C_out, stride_h, stride_w,
        dilation_h, dilation_w, pad_top, pad_bottom, pad_left, pad_right, groups);
        ``kernel``/``bias``: ParamRefs (bias may be None). Passes may add ``bn``
        (a folded batch norm) and a second input (a residual added in the store)."""
        h, w, c, kh, kw, cout, sh, sw, dh, dw, pt, pb, pl, pr, groups = geometry
        oh = (h + pt + pb - (kh - 1) * dh - 1) // sh + 1
        ow = (w + pl + pr - (kw - 1) * dw - 1) // sw + 1
        return self.emit(
            OpKind.conv2d,
            [x],
            (oh, ow, cout),
            geometry=tuple(geometry),
            kernel=kernel,
            bias=bias,
            act=act,
            alpha=float(alpha),
            beta=float(beta),
            bn=None,
        )

    def dense(
        self, x, *, in_features, out_features, kernel, bias, act=Act.none, alpha=0.0, beta=0.0
    ):
        """``x @ kernel + bias`` on rows of ``in_features``."""
        return self.emit(
            OpKind.dense,
            [x],
            (out_features,),
            in_features=int(in_features),
            out_features=int(out_features),
            kernel=kernel,
            bias=bias,
            act=act,
            alpha=float(alpha),
            beta=float(beta),
            bn=None,
        )

    def pool(
        self,
        x,
        *,
        pool_kind,
        window=(1,) * 8,
        count_include_pad=False,
        output_hw=(0, 0),
        dilation=(1, 1),
        ceil_mode=False,
    ):
        """Pooling of an (h, w, c) image. ``window``: (kh, kw, sh, sw, pt, pb, pl, pr)
        for max / avg, with ``dilation`` (max) and ``ceil_mode`` (both) as
        cnnx.functional.max_pool2d; ``output_hw`` for the adaptive pools;
        global average gives (c,)."""
        from ..functional._pool import pool_output_size

        h, w, c = x.shape
        if pool_kind == PoolKind.global_avg:
            shape = (c,)
        elif pool_kind in (PoolKind.adaptive_avg, PoolKind.adaptive_max):
            shape = (output_hw[0], output_hw[1], c)
        else:
            kh, kw, sh, sw, pt, pb, pl, pr = window
            shape = (
                pool_output_size(h, kh, (pt, pb), sh, dilation[0], ceil_mode),
                pool_output_size(w, kw, (pl, pr), sw, dilation[1], ceil_mode),
                c,
            )
        return self.emit(
            OpKind.pool,
            [x],
            shape,
            pool_kind=pool_kind,
            window=tuple(window),
            count_include_pad=bool(count_include_pad),
            output_hw=tuple(output_hw),
            dilation=tuple(int(d) for d in dilation),
            ceil_mode=bool(ceil_mode),
        )

    def batch_norm(self, x, *, gamma, beta, moving_mean, moving_var, epsilon, momentum):
        """Batch normalisation over the last axis. ``gamma``/``beta``: ParamRefs or
        None; ``moving_*``: BufferRefs; ``momentum`` as PyTorch (new = (1-m) old + m batch)."""
        return self.emit(
            OpKind.batch_norm,
            [x],
            x.shape,
            gamma=gamma,
            beta=beta,
            moving_mean=moving_mean,
            moving_var=moving_var,
            epsilon=float(epsilon),
            momentum=float(momentum),
        )

    def activation(self, x, act, alpha=0.0, axis=-1, beta=0.0):
        """An elementwise activation (softmax and log-softmax over ``axis``, a
        per-example axis index or -1). ``Act.none`` returns x itself.
        ``alpha``/``beta``: leaky_relu's slope (alpha), elu's alpha, selu's
        alpha and scale, hardsigmoid's slope and offset, clip's min and max."""
        if act == Act.none:
            return x
        nd = len(x.shape)
        axis = axis % nd if nd else 0
        return self.emit(
            OpKind.activation,
            [x],
            x.shape,
            act=act,
            alpha=float(alpha),
            axis=axis,
            beta=float(beta),
        )

    def eltwise(self, xs, kind, act=Act.none):
        """``xs[0] op xs[1] op ...`` of equally shaped values."""
        return self.emit(
            OpKind.eltwise, list(xs), xs[0].shape, eltwise=kind, act=act, alpha=0.0, beta=0.0
        )

    def concat(self, xs, axis):
        """Concatenation along per-example ``axis``."""
        shape = list(xs[0].shape)
        shape[axis] = sum(v.shape[axis] for v in xs)
        return self.emit(OpKind.concat, list(xs), tuple(shape), axis=int(axis))

    def reshape(self, x, shape):
        """The same values seen with another per-example shape."""
        if x.shape == tuple(shape):
            return x
        return self.emit(OpKind.reshape, [x], shape)

    def dropout(self, x, *, rate, layer):
        """Inverted dropout (identity at inference); ``layer`` draws the masks."""
        return self.emit(OpKind.dropout, [x], x.shape, rate=float(rate), dropout_layer=layer)

    def rescale(self, x, *, scale, offset, channels, inner=1):
        """``x * scale[c] + offset[c]``, c = (i // inner) % channels for value i of
        an example; ``scale`` / ``offset``: float32 arrays of ``channels`` values."""
        return self.emit(
            OpKind.rescale,
            [x],
            x.shape,
            scale=scale,
            offset=offset,
            channels=int(channels),
            inner=int(inner),
        )

    def normalize(self, x, *, mean, variance, channels, inner, epsilon):
        """``(x - mean[c]) / max(sqrt(variance[c]), epsilon)`` (c as for rescale);
        ``mean`` / ``variance``: BufferRefs, read live by the plans."""
        return self.emit(
            OpKind.normalize,
            [x],
            x.shape,
            mean=mean,
            variance=variance,
            channels=int(channels),
            inner=int(inner),
            epsilon=float(epsilon),
        )

    def augment(self, x, *, spec, shape, seed_cell, reseed, identity_at_inference):
        """A random per-image transform in training (``spec``: a
        ``_core.AugmentSpec``). ``seed_cell``: the uint64[1] array the training
        step reads its seed from; ``reseed()`` writes a fresh one before each
        step. At inference a view of x when ``identity_at_inference``, else
        the spec's inference form (a crop's centred resize)."""
        return self.emit(
            OpKind.augment,
            [x],
            shape,
            spec=spec,
            seed_cell=seed_cell,
            reseed=reseed,
            identity_at_inference=bool(identity_at_inference),
        )

    # issue 19 (layers-a): ops with their own parameters
    def prelu(self, x, *, slope, slopes):
        """``x > 0 ? x : slope * x``; ``slope`` (a ParamRef) holds ``slopes``
        values that repeat along x's flattened values (1: shared; n_C: one per
        channel; a trailing block of axes)."""
        return self.emit(OpKind.prelu, [x], x.shape, slope=slope, slopes=int(slopes))

    def lrn(self, x, *, size, alpha, beta, bias):
        """Local response normalisation across the last axis (ONNX LRN)."""
        return self.emit(
            OpKind.lrn,
            [x],
            x.shape,
            size=int(size),
            alpha=float(alpha),
            beta=float(beta),
            bias=float(bias),
        )

    def group_norm(self, x, *, groups, gamma, beta, epsilon):
        """Group normalisation of each example (channels last); ``gamma``/``beta``:
        ParamRefs or None."""
        return self.emit(
            OpKind.group_norm,
            [x],
            x.shape,
            groups=int(groups),
            gamma=gamma,
            beta=beta,
            epsilon=float(epsilon),
        )

    def layer_norm(self, x, *, gamma, beta, epsilon):
        """Layer normalisation over the last axis; ``gamma``/``beta``: ParamRefs or None."""
        return self.emit(
            OpKind.layer_norm, [x], x.shape, gamma=gamma, beta=beta, epsilon=float(epsilon)
        )

    def python(self, layer, xs, shape):
        """A layer without a lowering: it runs its own Python forward/backward."""
        return self.emit(OpKind.python, list(xs), shape, python_layer=layer)

    # ---- the transposed convolution and the layout ops ----------------------------
    # Each keeps its input's shape in ``image``: once reshapes become views,
    # the value an op reads may carry another shape of the same size.
    def conv_transpose2d(self, x, *, geometry, kernel, bias, act=Act.none, alpha=0.0):
        """Transposed convolution. ``geometry``: (H, W, C_in, KH, KW, C_out,
        stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_bottom, pad_left,
        pad_right, output_padding_h, output_padding_w, groups); ``kernel``
        (KH, KW, C_out/groups, C_in) / ``bias``: ParamRefs (bias may be None)."""
        h, w, _c, kh, kw, cout, sh, sw, dh, dw, pt, pb, pl, pr, oph, opw, _g = geometry
        oh = (h - 1) * sh - pt - pb + dh * (kh - 1) + oph + 1
        ow = (w - 1) * sw - pl - pr + dw * (kw - 1) + opw + 1
        return self.emit(
            OpKind.conv_transpose2d,
            [x],
            (oh, ow, cout),
            geometry=tuple(int(v) for v in geometry),
            kernel=kernel,
            bias=bias,
            act=act,
            alpha=float(alpha),
        )

    def pad2d(self, x, *, pads, mode=None, value=0.0):
        """Padding of an (h, w, c) image: ``pads`` (top, bottom, left, right);
        ``mode`` a :class:`cnnx._core.PadMode` (constant by default; constant
        pads may be negative: cropping)."""
        h, w, c = x.shape
        t, b, l, r = (int(p) for p in pads)
        mode = _core.PadMode.constant if mode is None else mode
        return self.emit(
            OpKind.pad2d,
            [x],
            (h + t + b, w + l + r, c),
            pads=(t, b, l, r),
            mode=mode,
            value=float(value),
            image=x.shape,
        )

    def upsample2d(self, x, *, factors, mode=None):
        """Upsampling of an (h, w, c) image by integer ``factors`` (f_h, f_w);
        ``mode`` a :class:`cnnx._core.UpsampleMode` (nearest by default)."""
        h, w, c = x.shape
        fh, fw = (int(f) for f in factors)
        mode = _core.UpsampleMode.nearest if mode is None else mode
        return self.emit(
            OpKind.upsample2d, [x], (h * fh, w * fw, c), factors=(fh, fw), mode=mode, image=x.shape
        )

    def depth_to_space(self, x, *, block_size, order=None):
        """(h, w, c) -> (h*b, w*b, c/b^2); ``order`` a :class:`cnnx._core.DepthOrder`."""
        h, w, c = x.shape
        b = int(block_size)
        order = _core.DepthOrder.dcr if order is None else order
        return self.emit(
            OpKind.depth_to_space,
            [x],
            (h * b, w * b, c // (b * b)),
            block_size=b,
            order=order,
            image=x.shape,
        )

    def space_to_depth(self, x, *, block_size, order=None):
        """(h, w, c) -> (h/b, w/b, c*b^2), the inverse of :meth:`depth_to_space`."""
        h, w, c = x.shape
        b = int(block_size)
        order = _core.DepthOrder.dcr if order is None else order
        return self.emit(
            OpKind.space_to_depth,
            [x],
            (h // b, w // b, c * b * b),
            block_size=b,
            order=order,
            image=x.shape,
        )

    def channel_shuffle(self, x, *, groups):
        """ShuffleNet's channel shuffle over the last axis (``groups`` divides it)."""
        return self.emit(OpKind.channel_shuffle, [x], x.shape, groups=int(groups), image=x.shape)

    def transpose(self, x, *, perm):
        """Per-example axes permuted: output axis a is input axis ``perm[a]``."""
        perm = tuple(int(p) for p in perm)
        if perm == tuple(range(len(perm))):
            return x
        return self.emit(
            OpKind.transpose, [x], tuple(x.shape[p] for p in perm), perm=perm, image=x.shape
        )
