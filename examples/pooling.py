"""Pooling: max, average and adaptive average pooling, and what they do to
the shape of a volume.

Pooling slides an f x f window with stride s over n_H and n_W of *each
channel separately*, and has no parameters to learn. So each of n_H and
n_W becomes floor((n + 2p - f)/s) + 1, and n_C does not change. (The
course's quiz: a 2D pooling layer can reduce n_H and n_W but not n_C.)

Adaptive pooling takes the output size instead. The course computes its
window from stride = n // out, kernel = n - (out - 1)*stride; that is exact
when out divides n. cnnx uses the exact windows [floor(i*n/out),
ceil((i+1)*n/out)), which this script shows agree with the formula in that
case, and differ when out does not divide n.

    python examples/pooling.py [--quick] [--out-dir DIR]

The last line printed is the headline.
"""

import argparse
import os

import numpy as np

import cnnx
from cnnx import filters
from cnnx import functional as F
from cnnx.teaching import adaptive_pool_course_params, pool_output_shape


def feature_volume(quick):
    """A 28x28x8 volume: one image filtered by 8 edge detectors (a conv layer's output)."""
    try:
        from cnnx.datasets import load_mnist

        (x, _), _ = load_mnist()
        img, name = x[7, :, :, 0], "an MNIST digit"
    except (FileNotFoundError, OSError):
        from cnnx.datasets import make_shapes

        img, name = make_shapes(1, size=28, seed=3, noise=0.0)[0][0, :, :, 0], "a generated shape"
    bank = [
        filters.vertical_edge(),
        filters.horizontal_edge(),
        filters.sobel(1),
        filters.sobel(0),
        filters.scharr(1),
        filters.scharr(0),
        -filters.sobel(1),
        -filters.sobel(0),
    ]
    w = np.stack(bank, axis=-1)[:, :, None, :].astype(np.float32)  # (3, 3, 1, 8) HWIO
    vol = F.relu(F.conv2d(img[None, :, :, None], w, padding="same"))
    return name, img, vol


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "pooling"))
    args = ap.parse_args()
    cnnx.set_seed(0)

    name, img, x = feature_volume(args.quick)
    print(f"input: {name} through 8 edge filters + ReLU -> volume {x.shape[1:]}")

    results = {}
    for label, y, f, s in [
        ("max pool f=2, s=2", F.max_pool2d(x, 2), 2, 2),
        ("avg pool f=2, s=2", F.avg_pool2d(x, 2), 2, 2),
        ("max pool f=3, s=2", F.max_pool2d(x, 3, stride=2), 3, 2),
    ]:
        expected = pool_output_shape(x.shape[1:], f, s)
        print(
            f"  {label}: {x.shape[1:]} -> {y.shape[1:]}   "
            f"floor(({x.shape[1]} - {f})/{s}) + 1 = {expected[0]}, n_C stays {expected[2]}"
        )
        assert y.shape[1:] == expected
        results[label] = y

    # max vs average on one window, by hand (the window where they differ most)
    mp, ap_ = results["max pool f=2, s=2"][0, :, :, 2], results["avg pool f=2, s=2"][0, :, :, 2]
    i, j = np.unravel_index(np.argmax(mp - ap_), mp.shape)
    win = x[0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2].astype(np.float64)
    print(
        f"  the 2x2 window at ({2 * i}, {2 * j}) of channel 2: {np.round(win.ravel(), 2).tolist()}"
        f" -> max {mp[i, j]:.2f}, average {ap_[i, j]:.2f} (= {win.mean():.2f})"
    )

    # adaptive average pooling: exact windows vs the course's formula
    ada = F.adaptive_avg_pool2d(x, 7)
    stride, kernel = adaptive_pool_course_params(28, 7)
    course = F.avg_pool2d(x, kernel, stride=stride)
    agree = float(np.abs(ada - course).max())
    print(
        f"  adaptive avg -> 7x7: {ada.shape[1:]}; course formula stride={stride}, "
        f"kernel={kernel} gives the same (max |diff| {agree:.1e})"
    )
    ada5 = F.adaptive_avg_pool2d(x, 5)
    s5, k5 = adaptive_pool_course_params(28, 5)
    course5 = F.avg_pool2d(x, k5, stride=s5)
    print(
        f"  adaptive avg -> 5x5: {ada5.shape[1:]}; 28 is not a multiple of 5: exact windows "
        f"{F.adaptive_pool_windows(28, 5)}"
    )
    print(
        f"    the formula's stride={s5}, kernel={k5} windows "
        f"{[(i * s5, i * s5 + k5) for i in range(5)]} give values off by up to "
        f"{float(np.abs(ada5 - course5).max()):.3f}"
    )
    gap = F.global_avg_pool2d(x) if hasattr(F, "global_avg_pool2d") else x.mean(axis=(1, 2))
    print(f"  global average pooling: {x.shape[1:]} -> {tuple(np.shape(gap)[1:])}")

    try:
        from cnnx import viz

        os.makedirs(args.out_dir, exist_ok=True)
        c = 2
        viz.plot_images(
            {
                "input": img,
                f"feature map {c} (28x28)": x[0, :, :, c],
                "max pool 2 (14x14)": results["max pool f=2, s=2"][0, :, :, c],
                "avg pool 2 (14x14)": results["avg pool f=2, s=2"][0, :, :, c],
                "adaptive avg (7x7)": ada[0, :, :, c],
                "adaptive avg (5x5)": ada5[0, :, :, c],
            },
            ncols=3,
            path=os.path.join(args.out_dir, "pooling.png"),
        )
        print(f"pictures in {args.out_dir}/")
    except ImportError as e:
        print(f"(no pictures: {e})")

    print(
        f"pooling {x.shape[1:]}: max -> {results['max pool f=2, s=2'].shape[1:]}, "
        f"avg -> {results['avg pool f=2, s=2'].shape[1:]}, adaptive -> {ada.shape[1:]}; "
        f"n_C unchanged; adaptive equals the course formula when out divides n "
        f"(max |diff| {agree:.1e})"
    )


if __name__ == "__main__":
    main()
