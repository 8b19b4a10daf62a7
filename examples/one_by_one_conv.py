"""1x1 convolutions: shrink (or grow) the number of channels n_C while
keeping n_H and n_W.

A 1x1 convolution with n_C filters looks at one pixel at a time, across all
n_C_prev channels: it is the same small dense layer (n_C_prev -> n_C)
applied at every pixel. So it

- changes n_C but never n_H, n_W (the course's quiz: a 1x1 conv can reduce
  n_C, not n_H or n_W; a pooling layer the opposite);
- costs (1*1*n_C_prev + 1) * n_C parameters;
- makes a cheap "bottleneck" before an expensive 5x5 convolution.

    python examples/one_by_one_conv.py [--quick] [--out-dir DIR]

The last line printed is the headline.
"""

import argparse
import os
import time

import numpy as np

import cnnx
from cnnx import functional as F
from cnnx.teaching import conv_params


def mults(out_shape, f, n_C_prev):
    """Multiplications of a conv layer: one f*f*n_C_prev dot product per output value."""
    h, w, c = out_shape
    return h * w * c * f * f * n_C_prev


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller batch")
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "one_by_one_conv"))
    args = ap.parse_args()
    cnnx.set_seed(0)
    rng = np.random.default_rng(0)

    # 1. Shrinking n_C: 28x28x192 -> 28x28x32 --------------------------------
    m = 2 if args.quick else 8
    x = rng.standard_normal((m, 28, 28, 192)).astype(np.float32)
    layer = cnnx.Conv2D(32, 1, activation=None)
    y = layer.forward(x)
    w, b = layer.params["kernel"], layer.params["bias"]
    print(f"input {x.shape[1:]} -> Conv2D(32, 1) -> {y.shape[1:]}: n_H, n_W kept, n_C 192 -> 32")
    print(
        f"parameters: (1*1*192 + 1)*32 = {conv_params(1, 192, 32):,} "
        f"(the layer has {layer.count_params():,})"
    )

    # 2. ... because it is a dense layer applied at every pixel ----------------
    per_pixel = x.reshape(-1, 192) @ w.reshape(192, 32) + b
    gap = float(np.abs(y.reshape(-1, 32) - per_pixel).max())
    print(f"same as one (192 -> 32) matrix product per pixel: max |difference| = {gap:.2e}")

    # 3. The bottleneck: 28x28x192 -> 28x28x32 with a 5x5 "same" convolution --
    direct = mults((28, 28, 32), 5, 192)
    bottleneck = mults((28, 28, 16), 1, 192) + mults((28, 28, 32), 5, 16)
    print(
        f"5x5 conv 192 -> 32 directly: {direct / 1e6:.1f} M multiplications, "
        f"{conv_params(5, 192, 32):,} parameters"
    )
    print(
        f"1x1 conv 192 -> 16, then 5x5 16 -> 32: {bottleneck / 1e6:.1f} M multiplications, "
        f"{conv_params(1, 192, 16) + conv_params(5, 16, 32):,} parameters "
        f"({direct / bottleneck:.1f}x fewer multiplications)"
    )
    # Both run here; the times (best of 3, noisy on a busy machine) follow the counts.
    wd = (rng.standard_normal((5, 5, 192, 32)) * 0.02).astype(np.float32)
    w1 = (rng.standard_normal((1, 1, 192, 16)) * 0.07).astype(np.float32)
    w5 = (rng.standard_normal((5, 5, 16, 32)) * 0.05).astype(np.float32)

    def best(fn):
        t = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = fn()
            t.append(time.perf_counter() - t0)
        return out, min(t)

    out_direct, t_direct = best(lambda: F.conv2d(x, wd, padding="same"))
    out_bottle, t_bottle = best(lambda: F.conv2d(F.conv2d(x, w1), w5, padding="same"))
    assert out_direct.shape == out_bottle.shape == (m, 28, 28, 32)
    print(
        f"measured on {m} images: direct {t_direct * 1e3:.1f} ms, bottleneck "
        f"{t_bottle * 1e3:.1f} ms"
    )

    # 4. A picture: RGB -> gray is a 1x1 convolution with 3 weights -------------
    try:
        from skimage import data

        rgb = data.astronaut().astype(np.float32) / 255.0
    except ImportError:
        rgb = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)
    if args.quick:
        rgb = rgb[::4, ::4]
    gray_w = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 1, 3, 1)
    gray = F.conv2d(rgb[None], gray_w)[0, :, :, 0]
    mix = F.conv2d(rgb[None], rng.standard_normal((1, 1, 3, 4)).astype(np.float32))[0]
    try:
        from cnnx import viz

        os.makedirs(args.out_dir, exist_ok=True)
        viz.plot_images(
            {"RGB input (n_C=3)": rgb, "1x1 conv to gray (n_C=1)": gray},
            path=os.path.join(args.out_dir, "rgb_to_gray.png"),
        )
        viz.plot_images(
            [mix[:, :, c] for c in range(4)],
            titles=[f"random 1x1 mix #{c}" for c in range(4)],
            symmetric=True,
            path=os.path.join(args.out_dir, "random_mixes.png"),
        )
        print(f"pictures in {args.out_dir}/")
    except ImportError as e:
        print(f"(no pictures: {e})")

    print(
        f"1x1 conv: {x.shape[1:]} -> {y.shape[1:]} with {layer.count_params():,} parameters; "
        f"equals a per-pixel matrix product (max |diff| {gap:.1e}); bottleneck saves "
        f"{direct / bottleneck:.1f}x multiplications"
    )


if __name__ == "__main__":
    main()
