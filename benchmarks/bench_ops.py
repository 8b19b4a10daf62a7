"""Pooling, dense, batch norm and Adam: cnnx against PyTorch (channels_last).

    python benchmarks/bench_ops.py                  # every case, 2 threads
    python benchmarks/bench_ops.py --rounds 7 --only adam

Cases (issue 5; issue 19's transposed convolution and layout kernels are
listed in LAYOUT_CASES below):
  maxpool     max pool 2x2 (stride 2) on 32x56x56x64, forward
  adaptive    adaptive average pool 56 -> 7 on 32x56x56x64, forward
  dense       64x4096 -> 1000, forward + backward (dx, dw, db)
  batchnorm   BatchNormalization training forward + backward on 32x56x56x64
  adam        one Adam step over 10M float32 parameters (torch.optim.Adam,
              default implementation; "adam (torch fused)" compares with
              fused=True, PyTorch's single-pass kernel)
Issue 19 (layers-a), on the same 32x56x56x64 tensor unless said:
  <act> / <act>_fb   an activation forward / forward + backward: elu, selu,
                     gelu, gelu_tanh, silu, hardswish, hardsigmoid, relu6,
                     softplus, softsign, prelu (one slope per channel);
                     log_softmax over rows of 1000 (4096 rows)
  lrn, group_norm, layer_norm (+ _fb)   size 5 / 32 groups / over the channels
  maxpool_dil, maxpool_ceil, avgpool_ceil (+ _fb)   3x3 stride 1 dilation 2
                     padding 1; 3x3 stride 2 ceil mode (GoogLeNet); the same
                     average with padding 1
plus "copy": a plain copy of the 32x56x56x64 pooling input in the cnnx
process (the best of a 1-thread np.copyto and a 2-thread split copy), the
memory-bandwidth reference for pooling: pooling's bandwidth is
(bytes read + bytes written) / time, reported as a share of the copy's.

Each framework runs in its own process with the same thread count (two
OpenMP runtimes in one process steal each other's cores); the processes
alternate for --rounds rounds, each reporting the median of its repeats,
and the median over rounds is kept. Ratio = PyTorch time / cnnx time:
above 1 means cnnx is faster. PyTorch tensors are channels_last (NHWC in
memory, like cnnx), its fastest CPU layout for these ops.

--keep-freed-memory sets MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ in
BOTH workers so that glibc keeps freed memory: each call here returns fresh
25.7 MB arrays, and when a forward + backward frees two of them glibc trims
its heap and the next call page-faults 13 MB of zeros back in (measured:
hardswish forward + backward 10.3 ms without, 4.8 ms with; the kernels
alone 1.9 + 2.8 ms). The compiled plans reuse their own buffers and do
not see this.

On a shared, oversubscribed machine wall-clock times at 2 threads are
dominated by descheduled threads; ``--threads 1 --clock cpu`` (process CPU
time, one thread) is the robust comparison of the kernels themselves.
"""

import argparse
import json
import os
import subprocess
import sys
import time

N, H, W, C = 32, 56, 56, 64
CASES = ["maxpool", "adaptive", "dense", "batchnorm", "adam", "adam_fused"]
LABELS = {
    "maxpool": "max pool 2x2, 32x56x56x64",
    "adaptive": "adaptive avg 56->7, 32x56x56x64",
    "dense": "dense 64x4096->1000 fwd+bwd",
    "batchnorm": "batch norm fwd+bwd, 32x56x56x64",
    "adam": "Adam step, 10M params",
    "adam_fused": "Adam step, 10M (torch fused)",
}


# Issue 19, part b: the transposed convolution on a U-Net decoder layer
# (8x32x32x128 -> 8x64x64x64) and the layout kernels, forward ("fwd") and
# forward + backward ("f+b"; PyTorch through autograd). Padding and
# upsampling also report their bandwidth against the copy.
CT_N, CT_HW, CT_CIN, CT_COUT = 8, 32, 128, 64
LAYOUT_CASES = {
    # name: label
    "convt_k2": "convT 2x2 s2, 8x32x32x128->64 fwd",
    "convt_k2_fb": "convT 2x2 s2 f+b",
    "convt_k3": "convT 3x3 s2 p1 op1 fwd",
    "convt_k3_fb": "convT 3x3 s2 p1 op1 f+b",
    "up_nearest": "upsample nearest x2, 32x28x28x64",
    "up_nearest_fb": "upsample nearest x2 f+b",
    "up_bilinear": "upsample bilinear x2 fwd",
    "up_bilinear_fb": "upsample bilinear x2 f+b",
    "pad_zero": "zero pad 2, 32x56x56x64 fwd",
    "pad_zero_fb": "zero pad 2 f+b",
    "pad_reflect": "reflect pad 2 fwd",
    "pad_reflect_fb": "reflect pad 2 f+b",
    "pad_edge": "replicate pad 2 fwd",
    "pad_edge_fb": "replicate pad 2 f+b",
    "pixel_shuffle": "pixel shuffle (CRD) b2, 32x28x28x256",
    "pixel_shuffle_fb": "pixel shuffle (CRD) f+b",
    "channel_shuffle": "channel shuffle g2, 32x28x28x232",
    "channel_shuffle_fb": "channel shuffle g2 f+b",
    "permute": "permute (h,w) swap, 32x56x56x64",
    "permute_fb": "permute (h,w) swap f+b",
}
CASES += list(LAYOUT_CASES)
LABELS.update(LAYOUT_CASES)
UP_SHAPE, PAD, PS_SHAPE, CS_SHAPE = (N, 28, 28, C), 2, (N, 28, 28, 256), (N, 28, 28, 232)


# ---- issue 19 (layers-a) cases -------------------------------------------------
ACTS_A = [
    "elu",
    "selu",
    "gelu",
    "gelu_tanh",
    "silu",
    "hardswish",
    "hardsigmoid",
    "relu6",
    "softplus",
    "softsign",
    "prelu",
    "log_softmax",
]
OTHERS_A = ["lrn", "group_norm", "layer_norm", "maxpool_dil", "maxpool_ceil", "avgpool_ceil"]
CASES_A = [n + s for n in ACTS_A + OTHERS_A for s in ("", "_fb")]
CASES += CASES_A
for _n in ACTS_A + OTHERS_A:
    _what = {
        "lrn": "LRN size 5",
        "group_norm": "group norm 32 groups",
        "layer_norm": "layer norm over C",
        "maxpool_dil": "max pool 3x3 s1 d2 p1",
        "maxpool_ceil": "max pool 3x3 s2 ceil",
        "avgpool_ceil": "avg pool 3x3 s2 p1 ceil",
        "log_softmax": "log_softmax 4096x1000",
    }.get(_n, _n)
    LABELS[_n] = f"{_what} fwd"
    LABELS[_n + "_fb"] = f"{_what} fwd+bwd"


def _cnnx_cases_a(x, dy, rng):
    import numpy as np
    import cnnx.functional as F

    fns = {}
    acts = {
        "elu": (F.elu, F.elu_backward),
        "selu": (F.selu, F.selu_backward),
        "gelu": (F.gelu, F.gelu_backward),
        "gelu_tanh": (lambda a: F.gelu(a, "tanh"), lambda g, a: F.gelu_backward(g, a, "tanh")),
        "silu": (F.silu, F.silu_backward),
        "hardswish": (F.hardswish, F.hardswish_backward),
        "hardsigmoid": (F.hardsigmoid, F.hardsigmoid_backward),
        "relu6": (F.relu6, F.relu6_backward),
        "softplus": (F.softplus, F.softplus_backward),
        "softsign": (F.softsign, F.softsign_backward),
    }
    slope = np.full(C, 0.25, np.float32)
    acts["prelu"] = (lambda a: F.prelu(a, slope), lambda g, a: F.prelu_backward(g, a, slope))
    xl = rng.standard_normal((4096, 1000), dtype=np.float32)
    dyl = rng.standard_normal((4096, 1000), dtype=np.float32)
    gamma = np.ones(C, np.float32)
    beta = np.zeros(C, np.float32)
    for name, (f, b) in acts.items():
        fns[name] = (lambda f: lambda: f(x))(f)
        fns[name + "_fb"] = (lambda f, b: lambda: (f(x), b(dy, x)))(f, b)
    fns["log_softmax"] = lambda: F.log_softmax(xl)
    fns["log_softmax_fb"] = lambda: F.log_softmax_backward(dyl, F.log_softmax(xl))
    fns["lrn"] = lambda: F.lrn(x, 5, 1e-4, 0.75, 2.0)
    fns["lrn_fb"] = lambda: (
        F.lrn(x, 5, 1e-4, 0.75, 2.0),
        F.lrn_backward(dy, x, 5, 1e-4, 0.75, 2.0),
    )
    fns["group_norm"] = lambda: F.group_norm(x, 32, gamma, beta)
    fns["group_norm_fb"] = lambda: (
        F.group_norm(x, 32, gamma, beta),
        F.group_norm_backward(dy, x, 32, gamma),
    )
    fns["layer_norm"] = lambda: F.layer_norm(x, gamma, beta)
    fns["layer_norm_fb"] = lambda: (
        F.layer_norm(x, gamma, beta),
        F.layer_norm_backward(dy, x, gamma),
    )
    pools = {
        "maxpool_dil": (
            lambda a: F.max_pool2d(a, 3, 1, 1, dilation=2),
            lambda g, a: F.max_pool2d_backward(g, a, 3, 1, 1, dilation=2),
        ),
        "maxpool_ceil": (
            lambda a: F.max_pool2d(a, 3, 2, 0, ceil_mode=True),
            lambda g, a: F.max_pool2d_backward(g, a, 3, 2, 0, ceil_mode=True),
        ),
        "avgpool_ceil": (
            lambda a: F.avg_pool2d(a, 3, 2, 1, ceil_mode=True),
            lambda g, a: F.avg_pool2d_backward(g, a, 3, 2, 1, ceil_mode=True),
        ),
    }
    for name, (f, b) in pools.items():
        gy = rng.standard_normal(f(x).shape, dtype=np.float32)
        fns[name] = (lambda f: lambda: f(x))(f)
        fns[name + "_fb"] = (lambda f, b, gy: lambda: (f(x), b(gy, x)))(f, b, gy)
    return fns


def _torch_cases_a(x, rng):
    import numpy as np
    import torch

    tf = torch.nn.functional

    fns = {}
    dy = torch.from_numpy(rng.standard_normal((N, H, W, C), dtype=np.float32)).permute(0, 3, 1, 2)
    dy = dy.contiguous(memory_format=torch.channels_last)
    slope = torch.full((C,), 0.25, requires_grad=True)
    acts = {
        "elu": tf.elu,
        "selu": tf.selu,
        "gelu": tf.gelu,
        "gelu_tanh": lambda a: tf.gelu(a, approximate="tanh"),
        "silu": tf.silu,
        "hardswish": tf.hardswish,
        "hardsigmoid": tf.hardsigmoid,
        "relu6": tf.relu6,
        "softplus": tf.softplus,
        "softsign": tf.softsign,
        "prelu": lambda a: tf.prelu(a, slope),
    }
    xr = x.clone().requires_grad_(True)

    def fwd(f, a):
        def run():
            with torch.no_grad():
                f(a)

        return run

    def fb(f, a, g):
        def run():
            f(a).backward(g)

        return run

    for name, f in acts.items():
        fns[name] = fwd(f, x)
        fns[name + "_fb"] = fb(f, xr, dy)
    xl = torch.from_numpy(rng.standard_normal((4096, 1000), dtype=np.float32))
    dyl = torch.from_numpy(rng.standard_normal((4096, 1000), dtype=np.float32))
    fns["log_softmax"] = fwd(lambda a: tf.log_softmax(a, -1), xl)
    fns["log_softmax_fb"] = fb(
        lambda a: tf.log_softmax(a, -1), xl.clone().requires_grad_(True), dyl
    )
    lrn = lambda a: tf.local_response_norm(a, 5, 1e-4, 0.75, 2.0)  # noqa: E731
    fns["lrn"], fns["lrn_fb"] = fwd(lrn, x), fb(lrn, xr, dy)
    gn = torch.nn.GroupNorm(32, C)
    fns["group_norm"], fns["group_norm_fb"] = fwd(gn, x), fb(gn, xr, dy)
    ln = torch.nn.LayerNorm(C)  # ConvNeXt: over the channels of an NHWC view
    xh = x.permute(0, 2, 3, 1)  # (N, H, W, C), contiguous in channels_last memory
    fns["layer_norm"] = fwd(ln, xh)
    fns["layer_norm_fb"] = fb(
        ln, xr.detach().permute(0, 2, 3, 1).requires_grad_(True), dy.permute(0, 2, 3, 1)
    )
    pools = {
        "maxpool_dil": lambda a: tf.max_pool2d(a, 3, 1, 1, 2),
        "maxpool_ceil": lambda a: tf.max_pool2d(a, 3, 2, 0, ceil_mode=True),
        "avgpool_ceil": lambda a: tf.avg_pool2d(a, 3, 2, 1, ceil_mode=True),
    }
    for name, f in pools.items():
        with torch.no_grad():
            gy = torch.randn_like(f(x))
        fns[name] = fwd(f, x)
        fns[name + "_fb"] = fb(f, xr, gy)
    return fns


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _time(fn, min_time, min_reps=5):
    fn()
    fn()  # warm up: page-in, scratch buffers, thread pool
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = _clock()
        fn()
        times.append(_clock() - t0)
    return _median(times) * 1e3


def _cnnx_cases(threads):
    import numpy as np
    import cnnx
    import cnnx.functional as F

    cnnx.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, C), dtype=np.float32)
    fns, notes = {}, {}
    if hasattr(F, "max_pool2d"):
        fns["maxpool"] = lambda: F.max_pool2d(x, 2)
    else:
        notes["maxpool"] = "F.max_pool2d not available yet"
    if hasattr(F, "adaptive_avg_pool2d"):
        fns["adaptive"] = lambda: F.adaptive_avg_pool2d(x, 7)
    else:
        notes["adaptive"] = "F.adaptive_avg_pool2d not available yet"

    xd = rng.standard_normal((64, 4096), dtype=np.float32)
    wd = rng.standard_normal((4096, 1000), dtype=np.float32) * 0.01
    bd = rng.standard_normal(1000, dtype=np.float32)
    dyd = rng.standard_normal((64, 1000), dtype=np.float32)

    def dense():
        F.dense(xd, wd, bd)
        F.dense_backward(dyd, xd, wd)

    fns["dense"] = dense

    gamma = rng.standard_normal(C, dtype=np.float32)
    beta = rng.standard_normal(C, dtype=np.float32)
    rm = np.zeros(C, np.float32)
    rv = np.ones(C, np.float32)
    dyb = rng.standard_normal((N, H, W, C), dtype=np.float32)

    def bn():
        _, st = F.batch_norm(x, gamma, beta, rm, rv, training=True)
        F.batch_norm_backward(dyb, x, gamma, st)

    fns["batchnorm"] = bn

    n = 10_000_000
    p = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32) * 0.01
    m = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    step = [0]

    def adam():
        step[0] += 1
        F.adam_update(p, g, m, v, step[0], 1e-3)

    fns["adam"] = adam
    fns["adam_fused"] = adam

    # Bandwidth reference: copy the pooling input (1 thread and 2 threads).
    from concurrent.futures import ThreadPoolExecutor

    dst = np.empty_like(x)
    xf, df = x.reshape(-1), dst.reshape(-1)
    half = xf.size // 2
    pool = ThreadPoolExecutor(2)

    def copy1():
        np.copyto(dst, x)

    def copy2():
        a = pool.submit(np.copyto, df[:half], xf[:half])
        np.copyto(df[half:], xf[half:])
        a.result()

    fns.update(_cnnx_layout_cases(rng, x))
    fns.update(_cnnx_cases_a(x, dyb, rng))
    return fns, notes, {"copy1": copy1, "copy2": copy2}


def _fb(fwd, bwd):
    """forward + backward as one timed call (the backward on a fixed dy)."""

    def run():
        fwd()
        bwd()

    return run


def _cnnx_layout_cases(rng, x):
    import numpy as np
    import cnnx.functional as F

    fns = {}
    xc = rng.standard_normal((CT_N, CT_HW, CT_HW, CT_CIN), dtype=np.float32)
    for name, k, p, op in (("convt_k2", 2, 0, 0), ("convt_k3", 3, 1, 1)):
        w = rng.standard_normal((k, k, CT_COUT, CT_CIN), dtype=np.float32) * 0.05
        b = rng.standard_normal(CT_COUT, dtype=np.float32)
        kw = dict(stride=2, padding=p, output_padding=op)
        dy = rng.standard_normal(F.conv_transpose2d(xc, w, b, **kw).shape, dtype=np.float32)
        fwd = (lambda w, b, kw: lambda: F.conv_transpose2d(xc, w, b, **kw))(w, b, kw)
        fns[name] = fwd
        fns[name + "_fb"] = _fb(
            fwd, (lambda w, kw, dy: lambda: F.conv_transpose2d_backward(dy, xc, w, **kw))(w, kw, dy)
        )
    xu = rng.standard_normal(UP_SHAPE, dtype=np.float32)
    for mode in ("nearest", "bilinear"):
        dy = rng.standard_normal((N, 56, 56, C), dtype=np.float32)
        fwd = (lambda m: lambda: F.upsample2d(xu, 2, m))(mode)
        fns["up_" + mode] = fwd
        fns["up_" + mode + "_fb"] = _fb(
            fwd, (lambda m, dy: lambda: F.upsample2d_backward(dy, 2, m))(mode, dy)
        )
    dyp = rng.standard_normal((N, H + 2 * PAD, W + 2 * PAD, C), dtype=np.float32)
    for mode, key in (("constant", "zero"), ("reflect", "reflect"), ("edge", "edge")):
        fwd = (lambda m: lambda: F.pad2d(x, PAD, m))(mode)
        fns["pad_" + key] = fwd
        fns["pad_" + key + "_fb"] = _fb(
            fwd, (lambda m: lambda: F.pad2d_backward(dyp, x, PAD, m))(mode)
        )
    xs = rng.standard_normal(PS_SHAPE, dtype=np.float32)
    dys = rng.standard_normal((N, 56, 56, 64), dtype=np.float32)
    fns["pixel_shuffle"] = lambda: F.depth_to_space(xs, 2, "CRD")
    fns["pixel_shuffle_fb"] = _fb(fns["pixel_shuffle"], lambda: F.space_to_depth(dys, 2, "CRD"))
    xg = rng.standard_normal(CS_SHAPE, dtype=np.float32)
    fns["channel_shuffle"] = lambda: F.channel_shuffle(xg, 2)
    fns["channel_shuffle_fb"] = _fb(
        fns["channel_shuffle"], lambda: F.channel_shuffle_backward(xg, 2)
    )
    fns["permute"] = lambda: F.permute(x, (2, 1, 3))
    fns["permute_fb"] = _fb(fns["permute"], lambda: F.permute_backward(x, (2, 1, 3)))
    return fns


def _torch_layout_cases(rng, x):
    import numpy as np
    import torch

    tf = torch.nn.functional
    cl = torch.channels_last

    def t(shape):  # an NHWC array as a channels_last NCHW tensor
        a = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)).permute(0, 3, 1, 2)
        return a.contiguous(memory_format=cl)

    def pair(f, xin, dy_shape):
        xg = xin.clone().requires_grad_(True)
        dy = t(dy_shape)

        def fwd():
            with torch.no_grad():
                f(xin)

        def fb():
            f(xg).backward(dy)

        return fwd, fb

    fns = {}
    xc = t((CT_N, CT_HW, CT_HW, CT_CIN))
    for name, k, p, op in (("convt_k2", 2, 0, 0), ("convt_k3", 3, 1, 1)):
        w = (torch.randn(CT_CIN, CT_COUT, k, k) * 0.05).contiguous(memory_format=cl)
        w.requires_grad_(True)
        b = torch.randn(CT_COUT, requires_grad=True)
        f = (lambda w, b, p, op: lambda v: tf.conv_transpose2d(v, w, b, 2, p, op))(w, b, p, op)
        fns[name], fns[name + "_fb"] = pair(f, xc, (CT_N, 2 * CT_HW, 2 * CT_HW, CT_COUT))
    xu = t(UP_SHAPE)
    fns["up_nearest"], fns["up_nearest_fb"] = pair(
        lambda v: tf.interpolate(v, scale_factor=2, mode="nearest"), xu, (N, 56, 56, C)
    )
    fns["up_bilinear"], fns["up_bilinear_fb"] = pair(
        lambda v: tf.interpolate(v, scale_factor=2, mode="bilinear", align_corners=False),
        xu,
        (N, 56, 56, C),
    )
    for mode, key in (("constant", "zero"), ("reflect", "reflect"), ("replicate", "edge")):
        fns["pad_" + key], fns["pad_" + key + "_fb"] = pair(
            (lambda m: lambda v: tf.pad(v, (PAD,) * 4, mode=m))(mode),
            x,
            (N, H + 2 * PAD, W + 2 * PAD, C),
        )
    fns["pixel_shuffle"], fns["pixel_shuffle_fb"] = pair(
        lambda v: tf.pixel_shuffle(v, 2), t(PS_SHAPE), (N, 56, 56, 64)
    )
    fns["channel_shuffle"], fns["channel_shuffle_fb"] = pair(
        lambda v: tf.channel_shuffle(v, 2), t(CS_SHAPE), CS_SHAPE
    )
    fns["permute"], fns["permute_fb"] = pair(
        lambda v: v.transpose(2, 3).contiguous(memory_format=cl), x, (N, W, H, C)
    )
    return fns


def _torch_cases(threads):
    import numpy as np
    import torch

    tf = torch.nn.functional

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    cl = torch.channels_last
    x = torch.from_numpy(rng.standard_normal((N, H, W, C), dtype=np.float32)).permute(0, 3, 1, 2)
    x = x.contiguous(memory_format=cl)
    fns = {}

    def maxpool():
        with torch.no_grad():
            tf.max_pool2d(x, 2)

    fns["maxpool"] = maxpool

    def adaptive():
        with torch.no_grad():
            tf.adaptive_avg_pool2d(x, 7)

    fns["adaptive"] = adaptive

    xd = torch.from_numpy(rng.standard_normal((64, 4096), dtype=np.float32))
    wd = torch.from_numpy(rng.standard_normal((4096, 1000), dtype=np.float32) * 0.01)
    bd = torch.from_numpy(rng.standard_normal(1000, dtype=np.float32))
    dyd = torch.from_numpy(rng.standard_normal((64, 1000), dtype=np.float32))

    def dense():  # the same four products cnnx does, without autograd overhead
        with torch.no_grad():
            torch.addmm(bd, xd, wd)
            dyd @ wd.t()
            xd.t() @ dyd
            dyd.sum(0)

    fns["dense"] = dense

    bn = torch.nn.BatchNorm2d(C).train()
    xb = x.clone().requires_grad_(True)
    dyb = torch.from_numpy(rng.standard_normal((N, H, W, C), dtype=np.float32)).permute(0, 3, 1, 2)
    dyb = dyb.contiguous(memory_format=cl)

    def batchnorm():
        y = bn(xb)
        y.backward(dyb)

    fns["batchnorm"] = batchnorm

    n = 10_000_000
    for name, kw in (("adam", {}), ("adam_fused", {"fused": True})):
        p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(n, dtype=np.float32)))
        p.grad = torch.from_numpy(rng.standard_normal(n, dtype=np.float32) * 0.01)
        try:
            opt = torch.optim.Adam([p], lr=1e-3, **kw)
        except (RuntimeError, TypeError, ValueError):
            continue
        fns[name] = (lambda o: lambda: o.step())(opt)
    fns.update(_torch_layout_cases(rng, x))
    fns.update(_torch_cases_a(x, rng))
    return fns


def worker(framework, threads, only, min_time):
    out = {"times": {}, "notes": {}}
    if framework == "torch":
        fns = _torch_cases(threads)
        extra = {}
    else:
        fns, notes, extra = _cnnx_cases(threads)
        out["notes"] = notes
    for name in CASES:
        if only and only not in name:
            continue
        if name in fns:
            try:
                out["times"][name] = _time(fns[name], min_time)
            except Exception as e:  # a half-landed function: skip, say why
                out["notes"][name] = f"failed: {type(e).__name__}: {e}"
    if extra and (
        not only
        or only in "maxpool adaptive copy"
        or "pad" in only
        or "up_" in only
        or any(only in n for n in CASES_A)
    ):
        out["times"]["copy"] = min(_time(extra["copy1"], min_time), _time(extra["copy2"], min_time))
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per case per round")
    ap.add_argument("--only", default="")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCK),
        default="wall",
        help="wall: elapsed time; cpu: process CPU time (robust on a loaded machine)",
    )
    ap.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="both workers: glibc keeps freed memory (no page faults on fresh "
        "outputs; see the module docstring)",
    )
    ap.add_argument("--worker", choices=["cnnx", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    global _clock
    _clock = CLOCK[args.clock]
    if args.worker:
        worker(args.worker, args.threads, args.only, args.min_time)
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if args.keep_freed_memory:
        env.update(MALLOC_TRIM_THRESHOLD_="4000000000", MALLOC_MMAP_THRESHOLD_="4000000000")
    here = os.path.dirname(os.path.abspath(__file__))
    times = {"cnnx": {}, "torch": {}}
    notes = {}
    for r in range(args.rounds):
        order = ["cnnx", "torch"] if r % 2 == 0 else ["torch", "cnnx"]
        for fw in order:
            cmd = [
                sys.executable,
                os.path.join(here, "bench_ops.py"),
                "--worker",
                fw,
                "--threads",
                str(args.threads),
                "--only",
                args.only,
                "--min-time",
                str(args.min_time),
                "--clock",
                args.clock,
            ]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{fw} worker failed:\n{res.stderr}", file=sys.stderr)
                sys.exit(1)
            data = json.loads(res.stdout.strip().splitlines()[-1])
            for k, t in data["times"].items():
                times[fw].setdefault(k, []).append(t)
            notes.update(data["notes"])

    import cnnx

    info = cnnx.info()
    print(
        f"cnnx {info.get('version')} isa={info.get('isa')}  threads={args.threads}  "
        f"rounds={args.rounds}  clock={args.clock}  (ratio = torch / cnnx; > 1: cnnx faster)"
        + ("  keep-freed-memory" if args.keep_freed_memory else "")
    )
    print(f"{'case':34s} {'cnnx ms':>9s} {'torch ms':>9s} {'ratio':>7s}")
    med = {fw: {k: _median(v) for k, v in d.items()} for fw, d in times.items()}
    for name in CASES:
        if args.only and args.only not in name:
            continue
        c, t = med["cnnx"].get(name), med["torch"].get(name)
        if c is None:
            print(f"{LABELS[name]:34s} skipped: {notes.get(name, 'not run')}")
            continue
        if t is None:
            print(f"{LABELS[name]:34s} {c:9.3f} {'n/a':>9s}")
            continue
        print(f"{LABELS[name]:34s} {c:9.3f} {t:9.3f} {t / c:7.2f}x")
    cp = med["cnnx"].get("copy")
    if cp is not None:
        nbytes = N * H * W * C * 4
        copy_bw = 2 * nbytes / (cp * 1e-3) / 1e9
        print(
            f"{'copy of the pool input (25.7 MB)':34s} {cp:9.3f}  -> {copy_bw:.1f} GB/s (read+write)"
        )
        padded = N * (H + 2 * PAD) * (W + 2 * PAD) * C * 4
        up_in = N * 28 * 28 * C * 4
        for name, moved in (
            ("maxpool", nbytes + N * 28 * 28 * C * 4),
            ("adaptive", nbytes + N * 7 * 7 * C * 4),
            ("pad_zero", nbytes + padded),
            ("pad_reflect", nbytes + padded),
            ("pad_edge", nbytes + padded),
            ("up_nearest", 5 * up_in),
            ("up_bilinear", 5 * up_in),
            ("permute", 2 * nbytes),
        ):
            t = med["cnnx"].get(name)
            if t is None:
                continue
            bw = moved / (t * 1e-3) / 1e9
            print(f"  {name:12s} {bw:6.1f} GB/s = {100 * bw / copy_bw:5.1f}% of copy bandwidth")
        # elementwise (issue 19): forward reads x and writes y; backward reads
        # dy and x and writes dx (so forward + backward moves 5 tensors)
        for name in ACTS_A[:-1]:
            for suffix, tensors in (("", 2), ("_fb", 5)):
                t = med["cnnx"].get(name + suffix)
                if t is None:
                    continue
                bw = tensors * nbytes / (t * 1e-3) / 1e9
                print(
                    f"  {name + suffix:14s} {bw:6.1f} GB/s = {100 * bw / copy_bw:5.1f}% of copy "
                    f"bandwidth"
                )


if __name__ == "__main__":
    main()
