"""cnnx.functional: NumPy in, NumPy out. Each function validates its
arguments and makes one call into the C++ core.

Layout: activations NHWC ``(m, n_H, n_W, n_C)``, conv weights HWIO
``(f_h, f_w, n_C_prev // groups, n_C)``, dense weights ``(n_in, n_out)``,
all float32.
"""

from ._gemm import matmul
from ._shapes import conv_output_size, same_padding

from ._dense import dense, dense_backward
from ._activation import (
    relu,
    relu_backward,
    leaky_relu,
    leaky_relu_backward,
    sigmoid,
    sigmoid_backward,
    tanh,
    tanh_backward,
    softmax,
    softmax_backward,
)
from ._loss import softmax_cross_entropy, cross_entropy
from ._norm import batch_norm, batch_norm_backward, BatchNormState
from ._dropout import dropout, dropout_backward
from ._optim import sgd_update, adam_update

__all__ = ["matmul", "conv_output_size", "same_padding"]
__all__ += [
    "dense",
    "dense_backward",
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy",
    "cross_entropy",
    "batch_norm",
    "batch_norm_backward",
    "BatchNormState",
    "dropout",
    "dropout_backward",
    "sgd_update",
    "adam_update",
]
from ._conv import conv2d, conv2d_backward, conv2d_algorithm

__all__ += ["conv2d", "conv2d_backward", "conv2d_algorithm"]
from ._pool import (
    max_pool2d,
    max_pool2d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    adaptive_pool_windows,
)

__all__ += [
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "adaptive_pool_windows",
]
# transposed convolution and the layout ops (issue 19, part b)
from ._conv_transpose import conv_transpose2d, conv_transpose2d_backward, conv_transpose_output_size
from ._layout import (
    pad2d,
    pad2d_backward,
    crop2d,
    crop2d_backward,
    upsample2d,
    upsample2d_backward,
    depth_to_space,
    space_to_depth,
    channel_shuffle,
    channel_shuffle_backward,
    permute,
    permute_backward,
)

__all__ += [
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose_output_size",
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
]
# issue 19: more activations, normalisations (pool options live in max_pool2d / avg_pool2d)
from ._activation_more import (
    elu,
    elu_backward,
    selu,
    selu_backward,
    gelu,
    gelu_backward,
    silu,
    silu_backward,
    hardswish,
    hardswish_backward,
    hardsigmoid,
    hardsigmoid_backward,
    relu6,
    relu6_backward,
    clip,
    clip_backward,
    softplus,
    softplus_backward,
    softsign,
    softsign_backward,
    log_softmax,
    log_softmax_backward,
    prelu,
    prelu_backward,
)
from ._norm_more import (
    lrn,
    lrn_backward,
    group_norm,
    group_norm_backward,
    layer_norm,
    layer_norm_backward,
)

__all__ += [
    "elu",
    "elu_backward",
    "selu",
    "selu_backward",
    "gelu",
    "gelu_backward",
    "silu",
    "silu_backward",
    "hardswish",
    "hardswish_backward",
    "hardsigmoid",
    "hardsigmoid_backward",
    "relu6",
    "relu6_backward",
    "clip",
    "clip_backward",
    "softplus",
    "softplus_backward",
    "softsign",
    "softsign_backward",
    "log_softmax",
    "log_softmax_backward",
    "prelu",
    "prelu_backward",
    "lrn",
    "lrn_backward",
    "group_norm",
    "group_norm_backward",
    "layer_norm",
    "layer_norm_backward",
]
from ._int8 import (
    quantize,
    dequantize,
    quantization_params,
    quantize_weights,
    QPackedWeights,
    qpack_conv2d,
    qpack_matmul,
    qmatmul,
    qconv2d,
    qconv2d_algorithm,
    qmax_pool2d,
    qavg_pool2d,
    qadd,
)

__all__ += [
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
