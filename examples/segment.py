"""Semantic segmentation: a small U-Net labels every pixel of generated
scenes with its shape class.

    python examples/segment.py            # full settings (4,000 scenes, 12 epochs)
    python examples/segment.py --quick    # under a minute (about 16 s of CPU time)

Scenes: 32x32 canvases cut into four 16x16 quadrants; each quadrant holds,
with probability 0.75, one shape from ``cnnx.datasets.make_shapes`` (circle,
square, triangle or line), plus Gaussian noise. The mask gives every pixel
its class: 0 for the background, 1 + the shape's index for the pixels the
shape covers. Telling a square from a circle takes the whole shape into
view, not just the pixel: that is what the U-Net's contracting path is for.

The network (the functional API): an encoder of 3x3 convolutions and 2x2
max poolings (32 -> 16 -> 8 pixels, 16 -> 32 -> 64 channels), and a decoder
that upsamples back, once with a learned ``Conv2DTranspose`` (2x2, stride 2)
and once with ``UpSampling2D`` (bilinear) followed by a 3x3 convolution,
each time concatenating (``Concatenate``) the encoder's features of the same
size: the skip connections that give U-Net its sharp boundaries. The last
1x1 convolution with a softmax gives 5 class probabilities per pixel.

The loss is ``cross_entropy`` over the last axis of the (32, 32, 5) output:
one integer label per pixel, each image's loss the mean over its pixels
(fused with the softmax). ``model.fit`` trains it with Adam.

Evaluation on held-out scenes drawn with other seeds: the predicted class of
each pixel is the argmax; per class, IoU = |prediction AND truth| /
|prediction OR truth| over all held-out pixels; the mean IoU averages the 5
classes. A PNG of test scenes, true masks and predicted masks goes to
``--out-dir`` (skipped, saying so, without matplotlib). The last line
printed is the mean IoU.
"""

import argparse
import os
import time

import numpy as np

import cnnx
from cnnx.datasets import SHAPE_NAMES, make_shapes

SIZE = 32
CLASSES = ("background",) + SHAPE_NAMES


def make_scenes(n, seed, p_object=0.75, noise=0.05):
    """``n`` scenes: images (n, 32, 32, 1) float32 and masks (n, 32, 32) int64."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((n, SIZE, SIZE, 1), np.float32)
    masks = np.zeros((n, SIZE, SIZE), np.int64)
    present = rng.random((n, 4)) < p_object
    half = SIZE // 2
    for q in range(4):  # one vectorised make_shapes call per quadrant
        y0, x0 = half * (q // 2), half * (q % 2)
        img, lab, _ = make_shapes(n, size=half, seed=seed * 7 + q + 1, noise=0.0)
        keep = present[:, q]
        canvas[:, y0 : y0 + half, x0 : x0 + half] = img * keep[:, None, None, None]
        drawn = (img[..., 0] > 0) & keep[:, None, None]  # noise-free: drawn pixels only
        masks[:, y0 : y0 + half, x0 : x0 + half] = np.where(drawn, 1 + lab[:, None, None], 0)
    canvas += rng.normal(0.0, noise, canvas.shape).astype(np.float32)
    np.clip(canvas, 0.0, 1.0, out=canvas)
    return canvas, masks


def build_unet(width=16):
    """A two-level U-Net: 32x32x1 -> 32x32x5 class probabilities."""

    def block(t, c):
        t = cnnx.Conv2D(c, 3, padding="same", activation="relu")(t)
        return cnnx.Conv2D(c, 3, padding="same", activation="relu")(t)

    x = cnnx.Input((SIZE, SIZE, 1), name="image")
    e1 = block(x, width)  # 32x32
    e2 = block(cnnx.MaxPool2D(2)(e1), 2 * width)  # 16x16
    b = block(cnnx.MaxPool2D(2)(e2), 4 * width)  # 8x8: the bottleneck
    u2 = cnnx.Conv2DTranspose(2 * width, 2, strides=2, activation="relu")(b)  # learned, 16x16
    d2 = block(cnnx.Concatenate()([u2, e2]), 2 * width)
    u1 = cnnx.UpSampling2D(2, interpolation="bilinear")(d2)  # fixed, 32x32
    u1 = cnnx.Conv2D(width, 3, padding="same", activation="relu")(u1)
    d1 = block(cnnx.Concatenate()([u1, e1]), width)
    y = cnnx.Conv2D(len(CLASSES), 1, activation="softmax", name="classes")(d1)
    return cnnx.Model(x, y, name="unet")


def iou_per_class(pred, truth, n_classes):
    """IoU of each class over all pixels: |pred & truth| / |pred | truth|."""
    out = np.zeros(n_classes)
    for c in range(n_classes):
        p, t = pred == c, truth == c
        union = np.count_nonzero(p | t)
        out[c] = np.count_nonzero(p & t) / union if union else 1.0
    return out


def draw(x, truth, pred, path, n=6):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
    except ImportError:
        print("(no picture: matplotlib is not installed)")
        return False
    cmap = ListedColormap(["black", "tab:blue", "tab:orange", "tab:green", "tab:red"])
    fig, axes = plt.subplots(3, n, figsize=(1.8 * n, 5.8))
    for j in range(n):
        for row, (img, kw) in enumerate(
            (
                (x[j, ..., 0], dict(cmap="gray", vmin=0, vmax=1)),
                (truth[j], dict(cmap=cmap, vmin=0, vmax=4)),
                (pred[j], dict(cmap=cmap, vmin=0, vmax=4)),
            )
        ):
            ax = axes[row, j]
            ax.imshow(img, interpolation="nearest", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
    for row, name in enumerate(("image", "true mask", "predicted")):
        axes[row, 0].set_ylabel(name)
    fig.suptitle(
        "U-Net masks: "
        + ", ".join(
            f"{c} ({col})" for c, col in zip(CLASSES, ("black", "blue", "orange", "green", "red"))
        ),
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1,000 scenes, 10 epochs, a narrower net, batches of 16",
    )
    ap.add_argument("--train", type=int, default=None, help="training scenes (default 4,000)")
    ap.add_argument("--test", type=int, default=None, help="held-out scenes (default 500)")
    ap.add_argument("--epochs", type=int, default=None, help="default 12 (10 with --quick)")
    ap.add_argument("--width", type=int, default=None, help="first level's channels (16; 8 quick)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 32 (16 with --quick)")
    ap.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam's rate, cosine-decayed (default 3e-3; 5e-3 with --quick)",
    )
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "segment"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_train = args.train or (1000 if args.quick else 4000)
    n_test = args.test or (200 if args.quick else 500)
    epochs = args.epochs or (10 if args.quick else 12)
    batch_size = args.batch_size or (16 if args.quick else 32)
    lr = args.lr or (5e-3 if args.quick else 3e-3)
    width = args.width or (8 if args.quick else 16)
    cnnx.set_seed(args.seed)

    x, masks = make_scenes(n_train, seed=1000 + args.seed)
    xt, mt = make_scenes(n_test, seed=2000 + args.seed)
    share = np.bincount(masks.ravel(), minlength=len(CLASSES)) / masks.size
    print(
        f"scenes: {n_train} training, {n_test} held out, {SIZE}x{SIZE}; pixels per class: "
        + ", ".join(f"{c} {s:.1%}" for c, s in zip(CLASSES, share))
    )
    model = build_unet(width)
    model.summary(formulas=True)
    model.compile(optimizer=cnnx.optim.Adam(lr=lr), loss="cross_entropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    lr_decay = cnnx.callbacks.LearningRateScheduler("cosine", epochs=epochs)
    model.fit(
        x,
        masks,
        epochs=epochs,
        batch_size=batch_size,
        seed=args.seed,
        validation_data=(xt, mt),
        callbacks=[lr_decay],
        verbose=2,
    )
    seconds = time.perf_counter() - t0
    pred = model.predict(xt).argmax(axis=-1)
    ious = iou_per_class(pred, mt, len(CLASSES))
    print("IoU per class: " + ", ".join(f"{c} {v:.3f}" for c, v in zip(CLASSES, ious)))
    os.makedirs(args.out_dir, exist_ok=True)
    png = os.path.join(args.out_dir, "masks.png")
    if draw(xt, mt, pred, png):
        print(f"picture: {png}")
    print(
        f"mean IoU on {n_test} held-out scenes: {ious.mean():.4f} ({epochs} epochs, "
        f"{seconds:.0f} s training)"
    )


if __name__ == "__main__":
    main()
