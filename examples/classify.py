"""Image classification, the first problem of the course: LeNet-5 and a small
ResNet on MNIST and Fashion-MNIST (generated shapes when neither is found).

    python examples/classify.py                      # both models, Fashion-MNIST, full settings
    python examples/classify.py --dataset mnist --model lenet5
    python examples/classify.py --quick              # subsets, 1 epoch each, under a minute

The two networks:

- ``lenet5``: the notes' CONV-POOL-CONV-POOL-FC-FC-softmax table
  (``cnnx.teaching.lenet5``; the first convolution is "same"-padded for
  28x28 digits, as LeNet-5 padded them to 32x32).
- ``resnet``: a small residual network built here: a 3x3 stem convolution
  with batch normalisation, 2x2 max pooling, then three ``Residual`` blocks
  ``[Conv 3x3, BN, ReLU, Conv 3x3, BN] + shortcut`` (14x14x32 with a 1x1
  projection shortcut, 7x7x64 with stride 2, 7x7x64 with the identity
  shortcut), global average pooling and one softmax dense layer.

Training: SGD with Nesterov momentum and weight decay, a cosine learning-rate
schedule, random horizontal flips (and +-2 pixel shifts for the ResNet on
Fashion-MNIST) drawn fresh every epoch, vectorised over the batch. Inputs are
standardised with the training set's mean and standard deviation. The test
set is used once, at the end. With ``--quick`` the ResNet's batch-norm
running statistics are re-estimated with the final weights before testing
(one epoch of 31 steps leaves them lagging behind).

The last line printed is the headline metric, e.g.
``resnet on fashion: test accuracy 0.9263 (612 s)``; a PNG with test images
and their predicted labels goes to ``--out-dir``.
"""

import argparse
import math
import os
import sys
import time

import numpy as np

import cnnx
from cnnx.datasets import SHAPE_NAMES, load_mnist, make_shapes
from cnnx.teaching import lenet5

FASHION_NAMES = (
    "T-shirt",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Boot",
)


def load(dataset, quick, data_dir=None):
    """((x_train, y_train), (x_test, y_test), class names, where from)."""
    if dataset in ("mnist", "fashion"):
        kind = "digits" if dataset == "mnist" else "fashion"
        try:
            (xt, yt), (xs, ys), (label, where) = load_mnist(kind, path=data_dir, return_source=True)
            names = tuple(str(i) for i in range(10)) if kind == "digits" else FASHION_NAMES
            src = f"{label} ({where})"
        except FileNotFoundError as e:
            print(f"{dataset}: not found, using generated shapes instead\n{e}", file=sys.stderr)
            dataset = "shapes"
    if dataset == "shapes":
        xt, yt, _ = make_shapes(12000, size=28, seed=1, noise=0.1)
        xs, ys, _ = make_shapes(2000, size=28, seed=2, noise=0.1)
        names, src = SHAPE_NAMES, "cnnx.datasets.make_shapes"
    if quick:
        xt, yt, xs, ys = xt[:2000], yt[:2000], xs[:500], ys[:500]
    return (xt, yt), (xs, ys), names, src, dataset


def resnet(input_shape, n_classes, width=32):
    """Stem conv + BN + pool, three residual blocks, global average pooling, softmax."""

    def conv_bn(c, s, relu):
        out = [
            cnnx.Conv2D(c, 3, strides=s, padding="same", use_bias=False),
            cnnx.BatchNormalization(momentum=0.9),
        ]
        return out + [cnnx.ReLU()] if relu else out

    w = width
    return cnnx.Sequential(
        [
            cnnx.Conv2D(w // 2 + w // 4, 3, padding="same", use_bias=False),
            cnnx.BatchNormalization(momentum=0.9),
            cnnx.ReLU(),
            cnnx.MaxPool2D(2),
            cnnx.Residual(conv_bn(w, 1, True) + conv_bn(w, 1, False)),  # 1x1 projection
            cnnx.Residual(conv_bn(2 * w, 2, True) + conv_bn(2 * w, 1, False)),  # stride 2
            cnnx.Residual(conv_bn(2 * w, 1, True) + conv_bn(2 * w, 1, False)),  # identity
            cnnx.GlobalAvgPool2D(),
            cnnx.Dense(n_classes, activation="softmax"),
        ],
        input_shape=tuple(input_shape),
    )


def augment(x, rng, shift):
    """Random horizontal flips (half the images) and +-shift pixel translations."""
    n, h, w, c = x.shape
    flip = rng.random(n) < 0.5
    out = np.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    if shift:
        pad = np.pad(out, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
        dy = rng.integers(0, 2 * shift + 1, n)
        dx = rng.integers(0, 2 * shift + 1, n)
        rows = dy[:, None] + np.arange(h)[None, :]  # (n, h)
        cols = dx[:, None] + np.arange(w)[None, :]  # (n, w)
        out = pad[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return np.ascontiguousarray(out, dtype=np.float32)


def recalibrate_batchnorm(model, x, batch_size=100, passes=2):
    """Re-estimate BatchNormalization's running statistics with the final weights.

    Training-mode forward passes update the moving averages (momentum 0.9)
    and change no weight. A run of a few dozen steps needs this: its
    averages still mix in statistics of much earlier weights.
    """
    for _ in range(passes):
        for i in range(0, len(x), batch_size):
            model.forward(x[i : i + batch_size], training=True)


def train(name, dataset, data, epochs, batch_size, lr, seed, verbose, quick=False):
    (xt, yt), (xs, ys) = data
    cnnx.set_seed(seed)
    n_classes = int(max(yt.max(), ys.max())) + 1
    if name == "lenet5":
        model = lenet5(input_shape=xt.shape[1:], n_classes=n_classes)
        shift = 0
    else:
        model = resnet(xt.shape[1:], n_classes)
        shift = 2 if dataset == "fashion" else 0
    flips = dataset != "mnist"  # a mirrored digit is another symbol (or none)
    print(
        f"\n== {name} on {dataset}: {model.count_params():,} parameters, {epochs} epochs, "
        f"batch {batch_size}, lr {lr}"
    )
    if verbose:
        model.summary()
    opt = cnnx.optim.SGD(lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.compile(optimizer=opt, loss="cross_entropy", metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        opt.lr = lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        xa = augment(xt, rng, shift) if flips else xt
        h = model.fit(xa, yt, epochs=1, batch_size=batch_size, verbose=0, seed=seed + epoch)
        msg = (
            f"epoch {epoch + 1}/{epochs}: lr {opt.lr:.4f}, loss {h['loss'][-1]:.4f}, "
            f"train accuracy {h['accuracy'][-1]:.4f}, {time.perf_counter() - t0:.0f} s"
        )
        if verbose:
            msg += f", test accuracy {model.evaluate(xs, ys)['accuracy']:.4f}"
        print(msg, flush=True)
    if quick and name == "resnet":
        recalibrate_batchnorm(model, xt[:1000])
    seconds = time.perf_counter() - t0
    acc = model.evaluate(xs, ys)["accuracy"]
    return model, acc, seconds


def save_picture(model, xs, ys, names, mean, std, path, title):
    from cnnx import viz

    k = 16
    pred = model.predict(xs[:k]).argmax(axis=1)
    titles = [f"{names[p]}" + ("" if p == t else f" ({names[t]})") for p, t in zip(pred, ys[:k])]
    try:
        viz.plot_images(
            xs[:k] * std + mean,
            titles=titles,
            path=path,
            ncols=8,
            suptitle=title + " (prediction, true label when wrong)",
        )
    except ImportError as e:  # matplotlib missing: cnnx.viz says how to get it
        print(f"(no picture: {e})")
        return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="2,000 training / 500 test images, 3 epochs of lenet5, 1 of resnet "
        "(then its batch-norm statistics re-estimated), < 60 s",
    )
    ap.add_argument("--dataset", default="fashion", choices=("fashion", "mnist", "shapes"))
    ap.add_argument("--model", default="both", choices=("lenet5", "resnet", "both"))
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="default 12 (with --quick: 3 for lenet5, 1 for resnet)",
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="default 0.02 (lenet5), 0.1 (resnet)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "classify"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--verbose", action="store_true", help="summary tables, test accuracy after every epoch"
    )
    args = ap.parse_args(argv)

    (xt, yt), (xs, ys), names, src, dataset = load(args.dataset, args.quick, args.data_dir)
    mean, std = float(xt.mean()), float(xt.std())
    xt = ((xt - mean) / std).astype(np.float32)
    xs = ((xs - mean) / std).astype(np.float32)
    print(
        f"data: {dataset}, {len(xt)} training and {len(xs)} test images of "
        f"{'x'.join(map(str, xt.shape[1:]))}, from {src}; cnnx {cnnx.info()}"
    )
    os.makedirs(args.out_dir, exist_ok=True)
    models = ("lenet5", "resnet") if args.model == "both" else (args.model,)
    results = []
    for name in models:
        lr = args.lr or (0.02 if name == "lenet5" else 0.1)
        epochs = args.epochs or ((3 if name == "lenet5" else 1) if args.quick else 12)
        model, acc, seconds = train(
            name,
            dataset,
            ((xt, yt), (xs, ys)),
            epochs,
            args.batch_size,
            lr,
            args.seed,
            args.verbose,
            args.quick,
        )
        results.append((name, acc, seconds))
        print(
            f"{name} on {dataset}: test accuracy {acc:.4f} after {epochs} epochs "
            f"({seconds:.0f} s training)",
            flush=True,
        )
        png = os.path.join(args.out_dir, f"{name}_{dataset}.png")
        if save_picture(model, xs, ys, names, mean, std, png, f"{name} on {dataset}"):
            print(f"picture: {png}")
    print(" | ".join(f"{n} on {dataset}: test accuracy {a:.4f} ({s:.0f} s)" for n, a, s in results))


if __name__ == "__main__":
    main()
