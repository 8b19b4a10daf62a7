"""The validation battery: hostile arguments to every public entry point.

Each case is a line of code that must raise ValueError or TypeError (or,
for sizes too large to allocate, MemoryError) whose message starts with the
argument's name -- before any kernel runs, and without killing the
interpreter. The cases run in a child process, so a case that segfaults is
reported as a failed test ("CRASH") instead of taking pytest down with it;
the child restarts after a crash and the remaining cases still run.

Categories: wrong rank / shape / dtype, strings and None, zero and negative
sizes, strides, dilations and pool sizes, groups that do not divide the
channels, sizes whose products overflow 32/64-bit indexing, labels out of
range, model/layer arguments, thread counts.
"""

import json
import os
import subprocess
import sys

import pytest

VE, TE, ME = "ValueError", "TypeError", "MemoryError"

# (id, code, accepted exception types, message prefix or None for "any")
CASES = [
    # ---------------------------------------------------------- conv2d: arrays
    ("conv-x-3d", "F.conv2d(A(5, 5, 2), A(3, 3, 2, 4))", (VE,), "x"),
    ("conv-x-5d", "F.conv2d(A(1, 1, 5, 5, 2), A(3, 3, 2, 4))", (VE,), "x"),
    ("conv-w-3d", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2))", (VE,), "w"),
    ("conv-x-none", "F.conv2d(None, A(3, 3, 2, 4))", (TE,), "x"),
    ("conv-w-none", "F.conv2d(A(1, 5, 5, 2), None)", (TE,), "w"),
    ("conv-x-str", "F.conv2d('abc', A(3, 3, 2, 4))", (TE,), "x"),
    ("conv-x-object", "F.conv2d(np.zeros((1, 5, 5, 2), object), A(3, 3, 2, 4))", (TE,), "x"),
    ("conv-x-complex", "F.conv2d(A(1, 5, 5, 2) + 1j, A(3, 3, 2, 4))", (TE,), "x"),
    ("conv-x-ragged", "F.conv2d([[[[1, 2]], [[1]]]], A(1, 1, 2, 4))", (TE, VE), "x"),
    ("conv-x-strings", "F.conv2d(np.full((1, 5, 5, 2), 'a'), A(3, 3, 2, 4))", (TE,), "x"),
    ("conv-channels", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 3, 4))", (VE,), "w"),
    ("conv-filter-too-big", "F.conv2d(A(1, 5, 5, 2), A(6, 6, 2, 4))", (VE,), "w"),
    ("conv-dilated-too-big", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), dilation=3)", (VE,), "w"),
    ("conv-empty-h", "F.conv2d(A(1, 0, 5, 2), A(3, 3, 2, 4))", (VE,), "x"),
    ("conv-empty-c", "F.conv2d(A(1, 5, 5, 0), A(3, 3, 0, 4))", (VE,), "x"),
    ("conv-empty-cout", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 0))", (VE,), "w"),
    ("conv-empty-kh", "F.conv2d(A(1, 5, 5, 2), A(0, 3, 2, 4))", (VE,), "w"),
    ("conv-bias-shape", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), b=A(3))", (VE,), "b"),
    ("conv-bias-2d", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), b=A(4, 1))", (VE,), "b"),
    ("conv-bias-str", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), b='x')", (TE,), "b"),
    (
        "conv-activation",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), activation='tanh')",
        (VE,),
        "activation",
    ),
    # ----------------------------------------------------- conv2d: geometry
    ("conv-stride-0", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=0)", (VE,), "stride"),
    ("conv-stride-neg", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=-1)", (VE,), "stride"),
    ("conv-stride-pair0", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=(1, 0))", (VE,), "stride"),
    (
        "conv-stride-triple",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=(1, 1, 1))",
        (VE,),
        "stride",
    ),
    ("conv-stride-none", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=None)", (TE,), "stride"),
    ("conv-stride-str", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride='2')", (TE,), "stride"),
    ("conv-stride-float", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=1.5)", (TE,), "stride"),
    ("conv-stride-bool", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=True)", (TE,), "stride"),
    ("conv-dilation-0", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), dilation=0)", (VE,), "dilation"),
    ("conv-dilation-neg", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), dilation=-2)", (VE,), "dilation"),
    ("conv-padding-neg", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=-1)", (VE,), "padding"),
    (
        "conv-padding-neg-side",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=((0, -1), (0, 0)))",
        (VE,),
        "padding",
    ),
    (
        "conv-padding-str",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding='full')",
        (VE,),
        "padding",
    ),
    ("conv-padding-none", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=None)", (TE,), "padding"),
    ("conv-padding-float", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=0.5)", (TE,), "padding"),
    ("conv-groups-0", "F.conv2d(A(1, 5, 5, 4), A(3, 3, 2, 4), groups=0)", (VE,), "groups"),
    ("conv-groups-neg", "F.conv2d(A(1, 5, 5, 4), A(3, 3, 2, 4), groups=-2)", (VE,), "groups"),
    ("conv-groups-nondiv-in", "F.conv2d(A(1, 5, 5, 4), A(3, 3, 2, 4), groups=3)", (VE,), "groups"),
    ("conv-groups-nondiv-out", "F.conv2d(A(1, 5, 5, 4), A(3, 3, 2, 5), groups=2)", (VE,), "groups"),
    ("conv-groups-huge", "F.conv2d(A(1, 5, 5, 4), A(3, 3, 1, 4), groups=2**40)", (VE,), "groups"),
    ("conv-groups-float", "F.conv2d(A(1, 5, 5, 4), A(3, 3, 2, 4), groups=2.0)", (TE,), "groups"),
    # ------------------------------------------- conv2d: overflowing sizes
    ("conv-stride-2^63", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=2**63)", (VE,), "stride"),
    ("conv-stride-2^64", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), stride=2**64)", (VE,), "stride"),
    (
        "conv-dilation-2^40-same",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding='same', dilation=2**40)",
        (VE,),
        "dilation",
    ),
    (
        "conv-dilation-2^62-same",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding='same', dilation=2**62)",
        (VE,),
        "dilation",
    ),
    (
        "conv-dilation-2^62-pad-2^62",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), dilation=2**62, padding=2**62)",
        (VE,),
        "dilation",
    ),
    (
        "conv-1x1-dilation-2^63",
        "F.conv2d(A(1, 5, 5, 2), A(1, 1, 2, 4), dilation=2**63)",
        (VE,),
        "dilation",
    ),
    (
        "conv-padding-2^62",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=2**62)",
        (VE,),
        "padding",
    ),
    (
        "conv-padding-2^63",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=2**63)",
        (VE,),
        "padding",
    ),
    (
        "conv-padding-2^40",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=2**40)",
        (VE,),
        "padding",
    ),
    (
        "conv-padding-sides-2^62",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=((2**62, 2**62), (0, 0)))",
        (VE,),
        "padding",
    ),
    # output of 2^30 x 2^30 pixels: too big for 64-bit byte counts or for memory
    (
        "conv-output-2^60",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=(2**30, 2**30))",
        (VE, ME),
        None,
    ),
    ("conv-output-2^66", "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding=2**32)", (VE,), "padding"),
    (
        "conv-output-256GiB",
        "F.conv2d(A(1, 5, 5, 2), A(1, 1, 2, 4), padding=(2**16, 2**16))",
        (VE, ME),
        None,
    ),
    (
        "conv-stride-2^62-same",
        "F.conv2d(A(1, 5, 5, 2), A(3, 3, 2, 4), padding='same', stride=2**62)",
        (VE,),
        "stride",
    ),
    (
        "conv-broadcast-2^62",
        "F.conv2d(np.broadcast_to(np.float32(1), (2**20, 2**20, 2**20, 4)), A(1, 1, 4, 4))",
        (VE, ME),
        None,
    ),
    (
        "maxpool-f16-view-2^62",
        "F.max_pool2d(np.broadcast_to(np.float16(1), (2**31, 2**28, 2, 2)), 2)",
        (VE, ME),
        "x",
    ),
    # ----------------------------------------------------- conv2d_backward
    (
        "convb-dy-shape",
        "F.conv2d_backward(A(1, 3, 3, 5), A(1, 5, 5, 2), A(3, 3, 2, 4))",
        (VE,),
        "dy",
    ),
    ("convb-dy-3d", "F.conv2d_backward(A(1, 3, 3), A(1, 5, 5, 2), A(3, 3, 2, 4))", (VE,), "dy"),
    (
        "convb-dy-batch",
        "F.conv2d_backward(A(2, 3, 3, 4), A(1, 5, 5, 2), A(3, 3, 2, 4))",
        (VE,),
        "dy",
    ),
    ("convb-dy-none", "F.conv2d_backward(None, A(1, 5, 5, 2), A(3, 3, 2, 4))", (TE,), "dy"),
    (
        "convb-need-dx",
        "F.conv2d_backward(A(1, 3, 3, 4), A(1, 5, 5, 2), A(3, 3, 2, 4), need_dx=1)",
        (TE,),
        "need_dx",
    ),
    (
        "convb-stride-0",
        "F.conv2d_backward(A(1, 3, 3, 4), A(1, 5, 5, 2), A(3, 3, 2, 4), stride=0)",
        (VE,),
        "stride",
    ),
    (
        "convb-groups",
        "F.conv2d_backward(A(1, 3, 3, 4), A(1, 5, 5, 4), A(3, 3, 2, 4), groups=3)",
        (VE,),
        "groups",
    ),
    # --------------------------------------------------------------- pooling
    ("maxpool-x-3d", "F.max_pool2d(A(4, 4, 2), 2)", (VE,), "x"),
    ("maxpool-x-none", "F.max_pool2d(None, 2)", (TE,), "x"),
    ("maxpool-x-empty-h", "F.max_pool2d(A(1, 0, 4, 2), 2)", (VE,), "x"),
    ("maxpool-size-0", "F.max_pool2d(A(1, 4, 4, 2), 0)", (VE,), "pool_size"),
    ("maxpool-size-neg", "F.max_pool2d(A(1, 4, 4, 2), -1)", (VE,), "pool_size"),
    ("maxpool-size-none", "F.max_pool2d(A(1, 4, 4, 2), None)", (TE,), "pool_size"),
    ("maxpool-size-str", "F.max_pool2d(A(1, 4, 4, 2), '2')", (TE,), "pool_size"),
    ("maxpool-size-float", "F.max_pool2d(A(1, 4, 4, 2), 2.0)", (TE,), "pool_size"),
    ("maxpool-size-bool", "F.max_pool2d(A(1, 4, 4, 2), True)", (TE,), "pool_size"),
    ("maxpool-size-triple", "F.max_pool2d(A(1, 4, 4, 2), (2, 2, 2))", (VE,), "pool_size"),
    ("maxpool-too-big", "F.max_pool2d(A(1, 4, 4, 2), 5)", (VE,), "pool_size"),
    ("maxpool-stride-0", "F.max_pool2d(A(1, 4, 4, 2), 2, stride=0)", (VE,), "stride"),
    ("maxpool-stride-neg", "F.max_pool2d(A(1, 4, 4, 2), 2, stride=(1, -1))", (VE,), "stride"),
    ("maxpool-padding-over-half", "F.max_pool2d(A(1, 4, 4, 2), 2, padding=2)", (VE,), "padding"),
    ("maxpool-padding-neg", "F.max_pool2d(A(1, 4, 4, 2), 2, padding=-1)", (VE,), "padding"),
    ("maxpool-padding-str", "F.max_pool2d(A(1, 4, 4, 2), 2, padding='full')", (VE,), "padding"),
    ("maxpool-size-2^62", "F.max_pool2d(A(1, 4, 4, 2), 2**62)", (VE,), "pool_size"),
    ("maxpool-size-2^63", "F.max_pool2d(A(1, 4, 4, 2), 2**63, padding=2**62)", (VE,), "pool_size"),
    (
        "maxpool-window-2^32x2^32",
        "F.max_pool2d(A(1, 4, 4, 2), (2**31, 2**31), padding=2**30)",
        (VE,),
        "pool_size",
    ),
    (
        "maxpool-window-2^32+1",
        "F.max_pool2d(A(1, 4, 4, 2), (2**32 + 1, 1), stride=1, padding=(2**31, 0))",
        (VE,),
        "pool_size",
    ),
    (
        "maxpool-padding-2^31",
        "F.max_pool2d(A(1, 4, 4, 2), 3, stride=1, padding=(2**31, 1))",
        (VE,),
        "padding",
    ),
    ("maxpool-stride-2^63", "F.max_pool2d(A(1, 4, 4, 2), 2, stride=2**63)", (VE,), "stride"),
    ("maxpoolb-dy-shape", "F.max_pool2d_backward(A(1, 3, 2, 2), A(1, 4, 4, 2), 2)", (VE,), "dy"),
    ("maxpoolb-dy-none", "F.max_pool2d_backward(None, A(1, 4, 4, 2), 2)", (TE,), "dy"),
    ("avgpool-size-0", "F.avg_pool2d(A(1, 4, 4, 2), 0)", (VE,), "pool_size"),
    (
        "avgpool-count-int",
        "F.avg_pool2d(A(1, 4, 4, 2), 2, count_include_pad=1)",
        (TE,),
        "count_include_pad",
    ),
    ("avgpool-stride-2^63", "F.avg_pool2d(A(1, 4, 4, 2), 2, stride=2**63)", (VE,), "stride"),
    ("avgpoolb-dy-shape", "F.avg_pool2d_backward(A(1, 2, 2, 3), A(1, 4, 4, 2), 2)", (VE,), "dy"),
    ("adaptive-0", "F.adaptive_avg_pool2d(A(1, 4, 4, 2), 0)", (VE,), "output_size"),
    ("adaptive-neg", "F.adaptive_max_pool2d(A(1, 4, 4, 2), -3)", (VE,), "output_size"),
    (
        "adaptive-triple",
        "F.adaptive_avg_pool2d(A(1, 4, 4, 2), (None, None, 2))",
        (VE,),
        "output_size",
    ),
    ("adaptive-str", "F.adaptive_avg_pool2d(A(1, 4, 4, 2), 'big')", (TE,), "output_size"),
    ("adaptive-2^31", "F.adaptive_avg_pool2d(A(1, 4, 4, 2), 2**31)", (VE,), "output_size"),
    ("adaptive-2^62", "F.adaptive_max_pool2d(A(1, 4, 4, 2), (2**62, 2**62))", (VE,), "output_size"),
    ("adaptive-2^30-sq", "F.adaptive_avg_pool2d(A(1, 4, 4, 2), (2**30, 2**30))", (VE, ME), None),
    ("adaptive-8TiB", "F.adaptive_max_pool2d(A(1, 4, 4, 2), (2**20, 2**20))", (VE, ME), None),
    (
        "adaptiveb-dy-shape",
        "F.adaptive_avg_pool2d_backward(A(1, 3, 2, 2), A(1, 4, 4, 2), 3)",
        (VE,),
        "dy",
    ),
    (
        "adaptivemaxb-dy-shape",
        "F.adaptive_max_pool2d_backward(A(1, 3, 3, 2), A(1, 4, 4, 2), 2)",
        (VE,),
        "dy",
    ),
    ("global-x-3d", "F.global_avg_pool2d(A(4, 4, 2))", (VE,), "x"),
    ("globalb-dy-shape", "F.global_avg_pool2d_backward(A(1, 3), A(1, 4, 4, 2))", (VE,), "dy"),
    ("globalb-dy-1d", "F.global_avg_pool2d_backward(A(2), A(1, 4, 4, 2))", (VE,), "dy"),
    # ------------------------------------------------------- dense / matmul
    ("dense-w-rows", "F.dense(A(3, 4), A(5, 5))", (VE,), "w"),
    ("dense-w-1d", "F.dense(A(3, 4), A(4))", (VE,), "w"),
    ("dense-x-none", "F.dense(None, A(4, 5))", (TE,), "x"),
    ("dense-b-shape", "F.dense(A(3, 4), A(4, 5), b=A(4))", (VE,), "b"),
    ("dense-activation", "F.dense(A(3, 4), A(4, 5), activation='sigmoid')", (VE,), "activation"),
    ("dense-x-str", "F.dense('x', A(4, 5))", (TE,), "x"),
    ("denseb-dy-shape", "F.dense_backward(A(3, 6), A(3, 4), A(4, 5))", (VE,), "dy"),
    ("denseb-w-rows", "F.dense_backward(A(3, 5), A(3, 4), A(3, 5))", (VE,), "w"),
    ("matmul-inner", "F.matmul(A(3, 4), A(3, 5))", (VE,), "b"),
    ("matmul-1d", "F.matmul(A(3), A(3, 4))", (VE,), "a"),
    ("matmul-none", "F.matmul(A(3, 4), None)", (TE,), "b"),
    (
        "matmul-broadcast-2^62",
        "F.matmul(np.broadcast_to(np.float32(1), (2**31, 2**31)), "
        "np.broadcast_to(np.float32(1), (2**31, 1)))",
        (VE, ME),
        None,
    ),
    # ---------------------------------------------------- losses and labels
    ("sce-label-high", "F.softmax_cross_entropy(A(3, 4), [0, 1, 4])", (VE,), "labels"),
    ("sce-label-neg", "F.softmax_cross_entropy(A(3, 4), [0, 1, -1])", (VE,), "labels"),
    (
        "sce-label-2^40",
        "F.softmax_cross_entropy(A(3, 4), np.array([0, 1, 2**40]))",
        (VE,),
        "labels",
    ),
    (
        "sce-label-u64-2^63",
        "F.softmax_cross_entropy(A(3, 4), np.array([0, 1, 2**63], np.uint64))",
        (VE,),
        "labels",
    ),
    ("sce-label-count", "F.softmax_cross_entropy(A(3, 4), [0, 1])", (VE,), "labels"),
    ("sce-label-float", "F.softmax_cross_entropy(A(3, 4), [0.0, 1.0, 2.0])", (TE,), "labels"),
    ("sce-label-bool", "F.softmax_cross_entropy(A(2, 4), [True, False])", (TE,), "labels"),
    ("sce-label-none", "F.softmax_cross_entropy(A(3, 4), None)", (TE,), "labels"),
    ("sce-label-str", "F.softmax_cross_entropy(A(3, 4), 'abc')", (TE,), "labels"),
    ("sce-label-2d", "F.softmax_cross_entropy(A(3, 4), np.zeros((3, 1), int))", (VE,), "labels"),
    ("sce-logits-1d", "F.softmax_cross_entropy(A(4), [0])", (VE,), "logits"),
    ("sce-logits-empty", "F.softmax_cross_entropy(A(0, 4), [])", (VE,), "logits"),
    ("sce-logits-noclass", "F.softmax_cross_entropy(A(2, 0), [0, 0])", (VE,), "logits"),
    ("ce-label-high", "F.cross_entropy(np.abs(A(3, 4)), [0, 1, 4])", (VE,), "labels"),
    ("ce-eps-0", "F.cross_entropy(np.abs(A(3, 4)), [0, 1, 2], eps=0)", (VE,), "eps"),
    ("ce-eps-nan", "F.cross_entropy(np.abs(A(3, 4)), [0, 1, 2], eps=float('nan'))", (VE,), "eps"),
    # --------------------------------------------------------- activations
    ("softmax-axis", "F.softmax(A(3, 4), axis=2)", (VE,), "axis"),
    ("softmax-axis-neg", "F.softmax(A(3, 4), axis=-3)", (VE,), "axis"),
    ("softmax-axis-float", "F.softmax(A(3, 4), axis=1.0)", (TE,), "axis"),
    ("relub-shape", "F.relu_backward(A(3), A(4))", (VE,), "dy"),
    ("leaky-alpha-nan", "F.leaky_relu(A(3), alpha=float('nan'))", (VE,), "alpha"),
    ("leaky-alpha-str", "F.leaky_relu(A(3), alpha='x')", (TE,), "alpha"),
    ("relu-none", "F.relu(None)", (TE,), "x"),
    ("batchnorm-gamma", "F.batch_norm(A(2, 3, 3, 4), A(3), A(4))", (VE,), "gamma"),
    ("dropout-rate-1", "F.dropout(A(3, 4), 1.0)", (VE,), "rate"),
    ("dropout-rate-neg", "F.dropout(A(3, 4), -0.5)", (VE,), "rate"),
    ("dropout-rate-nan", "F.dropout(A(3, 4), float('nan'))", (VE,), "rate"),
    ("outsize-n-neg", "F.conv_output_size(-1, 3)", (VE,), "n"),
    ("outsize-stride-0", "F.conv_output_size(5, 3, stride=0)", (VE,), "stride"),
    # -------------------------------------------------------------- layers
    ("Conv2D-filters-0", "cnnx.Conv2D(0, 3)", (VE,), "filters"),
    ("Conv2D-kernel-0", "cnnx.Conv2D(4, 0)", (VE,), "kernel_size"),
    ("Conv2D-strides-0", "cnnx.Conv2D(4, 3, strides=0)", (VE,), "strides"),
    ("Conv2D-padding", "cnnx.Conv2D(4, 3, padding='full')", (VE,), "padding"),
    ("Conv2D-activation", "cnnx.Conv2D(4, 3, activation='nope')", (VE,), "activation"),
    ("Conv2D-groups", "cnnx.Conv2D(4, 3, groups=3).build((8, 8, 4))", (VE,), "groups"),
    (
        "Conv2D-dilation-2^40",
        "cnnx.Sequential([cnnx.Conv2D(4, 3, dilation_rate=2**40, padding='same')], "
        "input_shape=(8, 8, 3)).predict(A(1, 8, 8, 3))",
        (VE,),
        None,
    ),
    ("Dense-units-0", "cnnx.Dense(0)", (VE,), "units"),
    ("Dense-activation", "cnnx.Dense(3, activation='foo')", (VE,), "activation"),
    ("Dropout-rate", "cnnx.Dropout(1.0)", (VE,), "rate"),
    ("MaxPool2D-0", "cnnx.MaxPool2D(0)", (VE,), "pool_size"),
    ("MaxPool2D-padding", "cnnx.MaxPool2D(3, padding=2).build((8, 8, 3))", (VE,), "padding"),
    ("AdaptiveAvgPool2D-0", "cnnx.AdaptiveAvgPool2D(0)", (VE,), "output_size"),
    (
        "BatchNorm-momentum",
        "cnnx.Sequential([cnnx.BatchNormalization(momentum=2)], input_shape=(8, 8, 3))",
        (VE,),
        "momentum",
    ),
    (
        "Softmax-axis",
        "cnnx.Sequential([cnnx.Softmax(axis=5)], input_shape=(8, 8, 3))",
        (VE,),
        "axis",
    ),
    # -------------------------------------------------------------- models
    (
        "Sequential-input-0",
        "cnnx.Sequential([cnnx.Conv2D(4, 3)], input_shape=(8, 8, 0))",
        (VE,),
        "input_shape",
    ),
    (
        "Sequential-input-2d",
        "cnnx.Sequential([cnnx.Conv2D(4, 3)], input_shape=(8, 8))",
        (VE,),
        "input_shape",
    ),
    ("Sequential-layers", "cnnx.Sequential([1, 2])", (TE,), "layers"),
    (
        "predict-channels",
        "cnnx.Sequential([cnnx.Conv2D(4, 3)], input_shape=(8, 8, 3)).predict(A(2, 8, 8, 2))",
        (VE,),
        "x",
    ),
    (
        "predict-rank",
        "cnnx.Sequential([cnnx.Conv2D(4, 3)], input_shape=(8, 8, 3)).predict(A(8, 8, 3))",
        (VE,),
        "x",
    ),
    (
        "predict-none",
        "cnnx.Sequential([cnnx.Conv2D(4, 3)], input_shape=(8, 8, 3)).predict(None)",
        (TE,),
        "x",
    ),
    (
        "predict-batch-0",
        "cnnx.Sequential([cnnx.Conv2D(4, 3)], input_shape=(8, 8, 3))"
        ".predict(A(2, 8, 8, 3), batch_size=0)",
        (VE,),
        "batch_size",
    ),
    (
        "fit-label-high",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], input_shape=(4, 4, 2));"
        "m.compile('sgd', 'cross_entropy'); m.fit(A(5, 4, 4, 2), np.array([0, 1, 2, 3, 0]), verbose=0)",
        (VE,),
        "y",
    ),
    (
        "train-label-high",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3, activation='softmax')],"
        " input_shape=(4, 4, 2)); m.compile('sgd', 'cross_entropy');"
        "m.train_on_batch(A(5, 4, 4, 2), np.array([0, 1, 2, 3, 0]))",
        (VE,),
        "y",
    ),
    (
        "train-label-neg",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], input_shape=(4, 4, 2));"
        "m.compile('sgd', 'cross_entropy'); m.train_on_batch(A(5, 4, 4, 2), np.array([0, 1, 2, -1, 0]))",
        (VE,),
        "y",
    ),
    (
        "evaluate-label-high",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], "
        "input_shape=(4, 4, 2)); m.compile('sgd', 'cross_entropy');"
        "m.evaluate(A(5, 4, 4, 2), np.array([0, 1, 2, 7, 0]))",
        (VE,),
        "y",
    ),
    (
        "fit-label-count",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], input_shape=(4, 4, 2));"
        "m.compile('sgd', 'cross_entropy'); m.fit(A(5, 4, 4, 2), np.array([0, 1, 2, 1]), verbose=0)",
        (VE,),
        "y",
    ),
    (
        "fit-batch-0",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], input_shape=(4, 4, 2));"
        "m.compile('sgd', 'cross_entropy'); m.fit(A(5, 4, 4, 2), np.zeros(5, int), verbose=0, "
        "batch_size=0)",
        (VE,),
        "batch_size",
    ),
    (
        "fit-epochs-neg",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], input_shape=(4, 4, 2));"
        "m.compile('sgd', 'cross_entropy'); m.fit(A(5, 4, 4, 2), np.zeros(5, int), verbose=0, "
        "epochs=-1)",
        (VE,),
        "epochs",
    ),
    (
        "fit-mse-shape",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], input_shape=(4, 4, 2));"
        "m.compile('sgd', 'mse'); m.fit(A(5, 4, 4, 2), A(5, 4), verbose=0)",
        (VE,),
        "y",
    ),
    (
        "compile-optimizer",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], "
        "input_shape=(4, 4, 2)); m.compile('foo', 'mse')",
        (VE,),
        "optimizer",
    ),
    (
        "compile-loss",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], "
        "input_shape=(4, 4, 2)); m.compile('sgd', 'hinge')",
        (VE,),
        "loss",
    ),
    ("sgd-lr-neg", "cnnx.optim.SGD(lr=-1)", (VE,), "lr"),
    ("sgd-lr-nan", "cnnx.optim.SGD(lr=float('nan'))", (VE,), "lr"),
    ("adam-beta1", "cnnx.optim.Adam(beta1=1.5)", (VE,), "beta1"),
    (
        "save-none",
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(3)], input_shape=(4, 4, 2));m.save(None)",
        (TE,),
        "path",
    ),
    ("load-none", "cnnx.load_model(None)", (TE,), "path"),
    ("load-not-a-model", "cnnx.load_model('/dev/null')", (VE,), "path"),
    # --------------------------------------- in-place updates (optimisers, BN)
    ("sgd-param-f64", "F.sgd_update(np.zeros(4), np.zeros(4, np.float32), lr=0.1)", (TE,), "param"),
    (
        "sgd-param-strided",
        "F.sgd_update(np.zeros(8, np.float32)[::2], np.zeros(4), lr=0.1)",
        (VE,),
        "param",
    ),
    (
        "sgd-param-readonly",
        "p = np.zeros(4, np.float32); p.flags.writeable = False;"
        "F.sgd_update(p, np.zeros(4), lr=0.1)",
        (VE,),
        "param",
    ),
    ("sgd-grad-size", "F.sgd_update(np.zeros(4, np.float32), np.zeros(5), lr=0.1)", (VE,), "grad"),
    (
        "adam-step-0",
        "F.adam_update(*(np.zeros(4, np.float32) for _ in range(4)), step=0)",
        (VE,),
        "step",
    ),
    (
        "adam-m-size",
        "F.adam_update(np.zeros(4, np.float32), np.zeros(4), np.zeros(3, np.float32),"
        " np.zeros(4, np.float32), step=1)",
        (VE,),
        "m",
    ),
    (
        "bn-running-f64",
        "F.batch_norm(A(2, 3, 3, 4), None, None, running_mean=np.zeros(4),"
        " running_var=np.ones(4, np.float32))",
        (TE,),
        "running_mean",
    ),
    (
        "bn-running-fortran-2d",
        "F.batch_norm(A(2, 3, 3, 4), None, None,"
        " running_mean=np.zeros((4, 1), np.float32), running_var=np.ones(4, np.float32))",
        (VE,),
        "running_mean",
    ),
    # ------------------------------------------------- filters and datasets
    (
        "filters-kernel-larger",
        "import cnnx.filters; cnnx.filters.correlate2d(A(5, 5), A(7, 7))",
        (VE,),
        "kernel",
    ),
    (
        "filters-mode",
        "import cnnx.filters; cnnx.filters.correlate2d(A(5, 5), A(3, 3), mode='x')",
        (VE,),
        "mode",
    ),
    (
        "filters-image-1d",
        "import cnnx.filters; cnnx.filters.correlate2d(A(5), A(3, 3))",
        (VE,),
        "image",
    ),
    ("filters-empty", "import cnnx.filters; cnnx.filters.edge_responses(A(0, 0))", (VE,), "image"),
    ("idx-not-idx", "from cnnx import datasets as D; D.read_idx('/etc/hostname')", (VE,), "path"),
    (
        "idx-dims-overflow",
        "import tempfile; from cnnx import datasets as D;"
        "f = tempfile.NamedTemporaryFile(suffix='.idx', delete=False);"
        "f.write(b'\\x00\\x00\\x08\\x03' + (2**31).to_bytes(4, 'big') * 3); f.close();"
        "D.read_idx(f.name)",
        (VE,),
        "path",
    ),
    (
        "idx-bad-gzip",
        "import tempfile; from cnnx import datasets as D;"
        "f = tempfile.NamedTemporaryFile(suffix='.gz', delete=False);"
        "f.write(b'\\x1f\\x8b\\x08garbage'); f.close(); D.read_idx(f.name)",
        (VE,),
        "path",
    ),
    ("shapes-n-0", "from cnnx import datasets as D; D.make_shapes(0)", (VE,), "n"),
    # ------------------------------------------------------------- threads
    ("threads-0", "cnnx.set_num_threads(0)", (VE,), "n"),
    ("threads-neg", "cnnx.set_num_threads(-1)", (VE,), "n"),
    ("threads-10^6", "cnnx.set_num_threads(10**6)", (VE,), "n"),
    ("threads-2^40", "cnnx.set_num_threads(2**40)", (VE,), "n"),
    ("threads-str", "cnnx.set_num_threads('a')", (TE,), "n"),
    ("seed-neg", "cnnx.set_seed(-1)", (VE,), "seed"),
]

# cases whose message must say both what was expected and what was given
NEEDS_VALUE = {
    "train-label-high",
    "train-label-neg",
    "fit-label-high",
    "evaluate-label-high",
    "sce-label-high",
    "conv-stride-0",
    "maxpool-size-0",
    "threads-10^6",
}

CHILD = r"""
import json, sys
import numpy as np
import cnnx
import cnnx.functional as F
_rng = np.random.default_rng(0)
def A(*shape):
    return _rng.standard_normal(shape).astype(np.float32)
for code in json.loads(sys.stdin.read()):
    try:
        exec(code, {"np": np, "cnnx": cnnx, "F": F, "A": A})
        res = {"type": "ok", "msg": ""}
    except BaseException as e:
        res = {"type": type(e).__name__, "msg": str(e)}
    print(json.dumps(res), flush=True)
"""


def run_in_children(codes, timeout=300):
    """Results of each snippet, run in child processes; a snippet that kills
    its child is reported as {"type": "CRASH"} and the rest go on."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="2"
    )
    results = []
    while len(results) < len(codes):
        rest = codes[len(results) :]
        p = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=json.dumps(rest),
            text=True,
            capture_output=True,
            env=env,
            timeout=timeout,
        )
        got = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        results += got
        if len(got) < len(rest):
            results.append({"type": "CRASH", "msg": f"exit code {p.returncode}: {p.stderr[-500:]}"})
    return results


@pytest.fixture(scope="module")
def battery():
    return dict(zip([c[0] for c in CASES], run_in_children([c[1] for c in CASES])))


def test_case_ids_are_unique():
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("cid, code, allowed, prefix", CASES, ids=[c[0] for c in CASES])
def test_hostile_argument_is_refused(battery, cid, code, allowed, prefix):
    res = battery[cid]
    assert res["type"] != "CRASH", f"{code!r} crashed the interpreter: {res['msg']}"
    assert res["type"] in allowed, f"{code!r} gave {res['type']}: {res['msg']}"
    if prefix is not None:
        assert res["msg"].startswith(prefix), (
            f"{code!r}: message should start with {prefix!r}, got {res['msg']!r}"
        )
    # the message says what was wrong, not just the name
    assert len(res["msg"]) > len(prefix or "") + 8
    if cid in NEEDS_VALUE:
        assert "expected" in res["msg"] and "got" in res["msg"], res["msg"]


def test_the_harness_sees_crashes():
    """The battery's child harness must report a dying interpreter as CRASH."""
    res = run_in_children(
        ["import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "F.relu(A(3))"]
    )
    assert res[0]["type"] == "CRASH" and res[1]["type"] == "ok"


def test_private_core_thread_count_is_capped():
    """Even the private binding cannot ask OpenMP for a million threads
    (libgomp would abort the process on the next large kernel)."""
    import cnnx
    from cnnx import _core

    saved = cnnx.get_num_threads()
    try:
        _core.set_num_threads(2**31 - 1)
        assert 1 <= _core.get_num_threads() <= 1024
    finally:
        cnnx.set_num_threads(saved)
