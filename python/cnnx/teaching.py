"""The course's arithmetic as functions: output sizes, parameter counts, and
the "why convolutions" comparison.

Notation as in the notes: an input ``n_H x n_W x n_C_prev``, ``n_C``
filters of ``f x f``, padding ``p``, stride ``s``.

>>> conv_output_size(32, 5)                 # valid: n - f + 1
28
>>> conv_output_size(7, 3, padding=1, stride=2)   # floor((n + 2p - f)/s) + 1
4
>>> count_params("conv", f=3, n_C_prev=3, n_C=10)  # the notes' quiz: 10 filters of 3x3x3
280
>>> count_params("dense", n_in=400, n_out=120)
48120

One slip in the notes: the conv formula is written ``(f*f + 1) * n_C``. It
is ``(f*f*n_C_prev + 1) * n_C``: every filter spans all ``n_C_prev`` input
channels, plus one bias (the notes' own table follows the right formula:
``(5*5*3 + 1)*8 = 608``, ``(5*5*8 + 1)*16 = 3216``).
"""

import math
from collections import namedtuple

from ._validate import as_int, as_pair
from .functional import adaptive_pool_windows, conv_output_size
from .functional._shapes import resolve_padding, output_hw

__all__ = [
    "conv_output_size",
    "conv_params",
    "dense_params",
    "count_params",
    "pool_output_shape",
    "adaptive_pool_course_params",
    "adaptive_pool_windows",
    "compare_conv_dense",
    "ConvDenseComparison",
    "seed_network_table",
    "SEED_TABLE",
    "lenet5",
    "small_resnet",
]


def conv_params(f, n_C_prev, n_C, use_bias=True, groups=1):
    """Parameters of a conv layer: ``(f*f*n_C_prev/groups + 1) * n_C``.

    ``f`` is an int or ``(f_h, f_w)``. Each of the ``n_C`` filters has
    ``f_h*f_w*n_C_prev/groups`` weights and (with ``use_bias``) one bias.
    The image size does not appear: that is parameter sharing.
    """
    fh, fw = as_pair(f, "f", 1)
    n_C_prev = as_int(n_C_prev, "n_C_prev", 1)
    n_C = as_int(n_C, "n_C", 1)
    groups = as_int(groups, "groups", 1)
    if n_C_prev % groups or n_C % groups:
        raise ValueError(f"groups: {groups} must divide n_C_prev={n_C_prev} and n_C={n_C}")
    return (fh * fw * (n_C_prev // groups) + (1 if use_bias else 0)) * n_C


def dense_params(n_in, n_out, use_bias=True):
    """Parameters of a fully connected layer: ``n_in*n_out + n_out``."""
    n_in = as_int(n_in, "n_in", 1)
    n_out = as_int(n_out, "n_out", 1)
    return n_in * n_out + (n_out if use_bias else 0)


def count_params(what, **kwargs):
    """Count parameters of a layer kind, a layer object or a model.

    - ``count_params("conv", f=3, n_C_prev=3, n_C=10)`` -> 280
      (keywords of :func:`conv_params`);
    - ``count_params("dense", n_in=400, n_out=120)`` -> 48120
      (keywords of :func:`dense_params`);
    - ``count_params(layer_or_model)`` -> its number of scalar parameters
      (anything with a ``count_params()`` method, e.g. ``cnnx.Conv2D`` once
      built, or a ``Sequential``).
    """
    if isinstance(what, str):
        kind = what.lower()
        if kind in ("conv", "conv2d"):
            return conv_params(**kwargs)
        if kind in ("dense", "fc", "fully_connected"):
            return dense_params(**kwargs)
        if kind in ("pool", "maxpool", "avgpool", "max_pool", "avg_pool", "flatten"):
            return 0
        raise ValueError(f"what: expected 'conv', 'dense', 'pool' or a layer/model, got {what!r}")
    if kwargs:
        raise TypeError("count_params: keyword arguments are only used with a layer kind string")
    fn = getattr(what, "count_params", None)
    if callable(fn):
        return int(fn())
    raise TypeError(
        f"what: expected 'conv', 'dense' or an object with count_params(), "
        f"got {type(what).__name__}"
    )


def pool_output_shape(input_shape, f=2, s=None, padding=0):
    """``(n_H, n_W, n_C)`` after pooling: each of n_H, n_W becomes
    ``floor((n + 2p - f)/s) + 1``; ``n_C`` is unchanged (pooling works on
    each channel separately, and has no parameters). ``s`` defaults to ``f``.

    (The notes put a bracket in the wrong place here; this is the formula
    they mean.)
    """
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"input_shape: expected (n_H, n_W, n_C), got {input_shape!r}")
    n_H, n_W, n_C = (as_int(v, "input_shape", 1) for v in input_shape)
    fh, fw = as_pair(f, "f", 1)
    sh, sw = as_pair(f if s is None else s, "s", 1)
    ph, pw = as_pair(padding, "padding", 0)
    return (conv_output_size(n_H, fh, ph, sh), conv_output_size(n_W, fw, pw, sw), n_C)


def adaptive_pool_course_params(n, out):
    """The notes' recipe for adaptive pooling: ``stride = n // out``,
    ``kernel = n - (out - 1)*stride``, ``padding = 0`` -> ``(stride, kernel)``.

    Exact only when ``out`` divides ``n`` (then it equals
    :func:`adaptive_pool_windows`, re-exported from ``cnnx.functional``:
    window ``i`` is ``[floor(i*n/out), ceil((i+1)*n/out))``); otherwise its
    windows differ from what adaptive pooling computes.
    """
    n = as_int(n, "n", 1)
    out = as_int(out, "out", 1)
    if out > n:
        raise ValueError(f"out: expected at most n={n}, got {out}")
    stride = n // out
    return stride, n - (out - 1) * stride


ConvDenseComparison = namedtuple(
    "ConvDenseComparison",
    "input_shape output_shape conv_params dense_params ratio conv_inputs_per_output "
    "dense_inputs_per_output",
)


def _explain(self):
    n_in = math.prod(self.input_shape)
    n_out = math.prod(self.output_shape)
    return (
        f"input {self.input_shape} ({n_in} values) -> output {self.output_shape} ({n_out} values)\n"
        f"  conv layer : {self.conv_params:>14,} parameters "
        f"(each output sees {self.conv_inputs_per_output} inputs: sparse connections)\n"
        f"  dense layer: {self.dense_params:>14,} parameters "
        f"(each output sees all {self.dense_inputs_per_output} inputs)\n"
        f"  the dense layer needs {self.ratio:,.0f}x more parameters; the conv layer shares "
        f"one small filter bank across every position (parameter sharing)"
    )


ConvDenseComparison.__str__ = _explain


def compare_conv_dense(
    input_shape=(32, 32, 3), filters=6, kernel_size=5, strides=1, padding="valid"
):
    """The "why convolutions" point: a conv layer vs the dense layer that maps
    the same input volume to the same output volume.

    With the course's example (32x32x3 in, six 5x5 filters, 28x28x6 out) the
    conv layer has 456 parameters and the dense layer 14,455,392.
    ``print(compare_conv_dense())`` explains the numbers.
    """
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"input_shape: expected (n_H, n_W, n_C), got {input_shape!r}")
    n_H, n_W, n_C_prev = (as_int(v, "input_shape", 1) for v in input_shape)
    n_C = as_int(filters, "filters", 1)
    k = as_pair(kernel_size, "kernel_size", 1)
    s = as_pair(strides, "strides", 1)
    pads = resolve_padding(padding, (n_H, n_W), k, s)
    out_h, out_w = output_hw((n_H, n_W), k, pads, s)
    out_shape = (out_h, out_w, n_C)
    conv = conv_params(k, n_C_prev, n_C)
    n_in = n_H * n_W * n_C_prev
    dense = dense_params(n_in, out_h * out_w * n_C)
    return ConvDenseComparison(
        (n_H, n_W, n_C_prev), out_shape, conv, dense, dense / conv, k[0] * k[1] * n_C_prev, n_in
    )


#: The notes' table, verbatim: (layer, activation shape, activation size, parameters).
SEED_TABLE = (
    ("Input", (32, 32, 3), 3072, 0),
    ("CONV1 (f=5, s=1)", (28, 28, 8), 6272, 608),
    ("POOL1", (14, 14, 8), 1568, 0),
    ("CONV2 (f=5, s=1)", (10, 10, 16), 1600, 3216),
    ("POOL2", (5, 5, 16), 400, 0),
    ("FC3", (120, 1), 120, 48120),
    ("FC4", (84, 1), 84, 10164),
    ("Softmax", (10, 1), 10, 850),
)


def seed_network_table(input_shape=(32, 32, 3)):
    """The notes' LeNet-style table recomputed from the formulas alone.

    Rows ``(name, shape, size, params)``: CONV f=5 s=1 (8 filters), POOL 2x2,
    CONV f=5 s=1 (16 filters), POOL 2x2, FC 120, FC 84, FC 10 + softmax
    (the notes' "Softmax 850" row is that last dense layer: 84*10 + 10).
    The total is 62,958 for a 32x32x3 input.
    """
    h, w, c = (as_int(v, "input_shape", 1) for v in input_shape)
    rows = [("Input", (h, w, c), h * w * c, 0)]
    for i, (n_C, pool) in enumerate(((8, "POOL1"), (16, "POOL2")), start=1):
        p = conv_params(5, c, n_C)
        h, w, c = conv_output_size(h, 5), conv_output_size(w, 5), n_C
        rows.append((f"CONV{i} (f=5, s=1)", (h, w, c), h * w * c, p))
        h, w, c = pool_output_shape((h, w, c), 2, 2)
        rows.append((pool, (h, w, c), h * w * c, 0))
    n = h * w * c
    for name, units in (("FC3", 120), ("FC4", 84), ("Softmax", 10)):
        rows.append((name, (units, 1), units, dense_params(n, units)))
        n = units
    return rows


# ---------------------------------------------------------------------------
# Model builders used by the examples and the command line
# ---------------------------------------------------------------------------


def _lenet_geometry(input_shape, kernel_size, padding):
    h = min(int(input_shape[0]), int(input_shape[1]))
    if kernel_size is None:
        kernel_size = 5 if h >= 20 else 3
    if padding is None:
        # 32x32: the notes' valid network; 28x28 (MNIST): LeNet-5's padded
        # first layer; smaller images: same padding throughout.
        padding = (
            ("valid", "valid") if h >= 32 else ("same", "valid") if h >= 20 else ("same", "same")
        )
    elif isinstance(padding, str):
        padding = (padding, padding)
    return kernel_size, tuple(padding)


def lenet5(
    input_shape=(32, 32, 3),
    n_classes=10,
    filters=(8, 16),
    units=(120, 84),
    kernel_size=None,
    padding=None,
):
    """The notes' LeNet-style network as a ``cnnx.Sequential``.

    CONV(f=5) -> POOL(2) -> CONV(f=5) -> POOL(2) -> FC 120 -> FC 84 -> FC
    ``n_classes`` with softmax. For a 32x32x3 input the defaults give
    exactly the notes' table (62,958 parameters). For 28x28 MNIST the first
    conv uses ``"same"`` padding (as LeNet-5 did with its padded digits);
    for small images (8x8 digits) 3x3 filters with same padding.
    ``kernel_size`` / ``padding`` (one value or a pair) override this.
    """
    import cnnx

    f1, f2 = filters
    u1, u2 = units
    k, (p1, p2) = _lenet_geometry(input_shape, kernel_size, padding)
    return cnnx.Sequential(
        [
            cnnx.Conv2D(f1, k, padding=p1, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(f2, k, padding=p2, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(u1, activation="relu"),
            cnnx.Dense(u2, activation="relu"),
            cnnx.Dense(n_classes, activation="softmax"),
        ],
        input_shape=tuple(input_shape),
    )


def small_resnet(
    input_shape=(28, 28, 1), n_classes=10, width=16, stages=2, batch_norm=True, head="flatten"
):
    """A small residual network.

    A 3x3 stem conv (+ 2x2 max pooling when the input is at least 16
    pixels), then ``stages`` residual blocks
    ``Residual([Conv 3x3, BN, ReLU, Conv 3x3, BN])``: the first keeps the
    shape, so its shortcut is the identity; each later one halves n_H, n_W
    with stride 2 and doubles n_C, so its shortcut is a 1x1 convolution.
    Then the classifier: ``head="flatten"`` flattens the last maps into a
    softmax dense layer (learns fastest on small images and few epochs);
    ``head="gap"`` uses global average pooling first, as large ResNets do
    (far fewer parameters, slower to train from scratch). The batch-norm
    momentum is 0.9 (not Keras's 0.99), so the running statistics used at
    test time settle within a few hundred steps.
    ``batch_norm=False`` leaves out the BatchNormalization layers.
    """
    import cnnx

    def conv_bn(c, s, relu):
        layers = [
            cnnx.Conv2D(
                c,
                3,
                strides=s,
                padding="same",
                use_bias=not batch_norm,
                activation=None if batch_norm else ("relu" if relu else None),
            )
        ]
        if batch_norm:
            layers.append(cnnx.BatchNormalization(momentum=0.9))
            if relu:
                layers.append(cnnx.ReLU())
        return layers

    layers = [cnnx.Conv2D(width, 3, padding="same", activation="relu")]
    if min(input_shape[0], input_shape[1]) >= 16:
        layers.append(cnnx.MaxPool2D(2))
    c = width
    for b in range(int(stages)):
        s = 1 if b == 0 else 2
        c = c if b == 0 else 2 * c
        layers.append(cnnx.Residual(conv_bn(c, s, True) + conv_bn(c, 1, False)))
    if head not in ("flatten", "gap"):
        raise ValueError(f"head: expected 'flatten' or 'gap', got {head!r}")
    layers += [
        cnnx.GlobalAvgPool2D() if head == "gap" else cnnx.Flatten(),
        cnnx.Dense(n_classes, activation="softmax"),
    ]
    return cnnx.Sequential(layers, input_shape=tuple(input_shape))
