"""Layers: Conv2D, pooling, Dense, activations, BatchNormalization, Dropout,
Flatten, Residual and the merge layers (see :mod:`cnnx.layers.base` for the
common contract: build, forward, backward, config, and ``lower`` into the
op graph)."""

from .base import MAX_NESTING, Layer, initialize
from .conv import Conv2D
from .conv_transpose import Conv2DTranspose
from .conv_depthwise import DepthwiseConv2D, SeparableConv2D
from .resample import (
    UpSampling2D,
    ZeroPadding2D,
    ConstantPadding2D,
    ReflectionPadding2D,
    ReplicationPadding2D,
    Cropping2D,
)
from .space_depth import DepthToSpace, SpaceToDepth, ChannelShuffle
from .pooling import MaxPool2D, AvgPool2D, AdaptiveAvgPool2D, AdaptiveMaxPool2D, GlobalAvgPool2D
from .dense import Dense
from .activations import ReLU, LeakyReLU, Sigmoid, Tanh, Softmax
from .normalization import BatchNormalization
from .dropout import Dropout
from .reshape import Flatten, Reshape, Permute
from .residual import Residual
from .merge import Add, Subtract, Multiply, Average, Concatenate
from .preprocessing import (
    Rescaling,
    Normalization,
    RandomFlip,
    RandomTranslation,
    RandomRotation,
    RandomZoom,
    RandomCrop,
    RandomContrast,
)

# issue 19 (layers-a): activations and normalisations
from .activations import (
    ELU,
    SELU,
    GELU,
    SiLU,
    Hardswish,
    Hardsigmoid,
    ReLU6,
    Clip,
    Softplus,
    Softsign,
    LogSoftmax,
)
from .prelu import PReLU
from .normalization2 import LocalResponseNormalization, GroupNormalization, LayerNormalization

__all__ = [
    "MAX_NESTING",
    "Layer",
    "initialize",
    "Conv2D",
    "MaxPool2D",
    "AvgPool2D",
    "AdaptiveAvgPool2D",
    "AdaptiveMaxPool2D",
    "GlobalAvgPool2D",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "BatchNormalization",
    "Dropout",
    "Flatten",
    "Residual",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Concatenate",
]
__all__ += [
    "Rescaling",
    "Normalization",
    "RandomFlip",
    "RandomTranslation",
    "RandomRotation",
    "RandomZoom",
    "RandomCrop",
    "RandomContrast",
]
__all__ += [
    "Conv2DTranspose",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "UpSampling2D",
    "ZeroPadding2D",
    "ConstantPadding2D",
    "ReflectionPadding2D",
    "ReplicationPadding2D",
    "Cropping2D",
    "DepthToSpace",
    "SpaceToDepth",
    "ChannelShuffle",
    "Reshape",
    "Permute",
]
__all__ += [
    "ELU",
    "SELU",
    "GELU",
    "SiLU",
    "Hardswish",
    "Hardsigmoid",
    "ReLU6",
    "Clip",
    "Softplus",
    "Softsign",
    "LogSoftmax",
    "PReLU",
    "LocalResponseNormalization",
    "GroupNormalization",
    "LayerNormalization",
]

# Keras's spellings of the pooling layers, so that Keras code runs with only
# the import changed (the same classes: summaries and saved files use the
# names above).
MaxPooling2D = MaxPool2D
AveragePooling2D = AvgPool2D
GlobalAveragePooling2D = GlobalAvgPool2D
