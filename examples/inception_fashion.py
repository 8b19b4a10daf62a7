"""An Inception-style network on Fashion-MNIST, built with the functional API.

A network is a graph, not only a chain: an Inception block looks at the
same feature map through several branches at once (a 1x1 convolution, a
1x1 "bottleneck" then a 3x3, a bottleneck then two 3x3 for a 5x5 field of
view, and a max pool followed by a 1x1) and stacks their outputs along the
channels::

    x = cnnx.Input((28, 28, 1))
    b1 = cnnx.Conv2D(16, 1, activation="relu")(x)
    b2 = cnnx.Conv2D(24, 3, padding="same", activation="relu")(cnnx.Conv2D(16, 1)(x))
    y = cnnx.Concatenate()([b1, b2])      # (28, 28, 16 + 24)

The 1x1 bottlenecks are the course's "1x1 convolutions shrink n_C": they
keep the 3x3 branches cheap. The whole graph (branches, concatenations,
global average pooling) trains and predicts as one compiled C++ call.

    python examples/inception_fashion.py [--quick] [--epochs N] [--out-dir DIR]

Data: Fashion-MNIST (Debian's dataset-fashion-mnist, or the files in
$CNNX_DATA_DIR); without it, generated shapes. The last line printed is the
test accuracy.
"""

import argparse
import os
import time


import cnnx


def inception(x, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, name):
    """One Inception block: four branches concatenated along the channels."""

    def conv(f, k, n, t):
        return cnnx.Conv2D(f, k, padding="same", activation="relu", name=f"{name}/{n}")(t)

    b1 = conv(c1, 1, "1x1", x)
    b2 = conv(c3, 3, "3x3", conv(c3_reduce, 1, "3x3_reduce", x))
    b3 = conv(c5, 3, "5x5b", conv(c5, 3, "5x5a", conv(c5_reduce, 1, "5x5_reduce", x)))
    b4 = conv(
        pool_proj, 1, "pool_proj", cnnx.MaxPool2D(3, strides=1, padding=1, name=f"{name}/pool")(x)
    )
    return cnnx.Concatenate(name=f"{name}/concat")([b1, b2, b3, b4])


def build(input_shape, n_classes):
    x = cnnx.Input(input_shape, name="image")
    s = cnnx.Conv2D(32, 3, padding="same", activation="relu", name="stem")(x)
    s = cnnx.MaxPool2D(2, name="stem/pool")(s)  # 14 x 14 x 32
    a = inception(s, 32, 32, 48, 8, 16, 16, "inception_a")  # 14 x 14 x 112
    a = cnnx.MaxPool2D(2, name="pool_a")(a)  # 7 x 7 x 112
    b = inception(a, 64, 48, 96, 16, 32, 32, "inception_b")  # 7 x 7 x 224
    g = cnnx.GlobalAvgPool2D(name="gap")(b)
    y = cnnx.Dense(n_classes, activation="softmax", name="classifier")(g)
    return cnnx.Model(x, y, name="inception_fashion")


def load(quick):
    from cnnx import datasets

    try:
        (xtr, ytr), (xte, yte) = datasets.load_mnist("fashion")
        name = "Fashion-MNIST"
    except (FileNotFoundError, OSError):
        xtr, ytr, _ = datasets.make_shapes(12000, size=28, seed=0)
        xte, yte, _ = datasets.make_shapes(2000, size=28, seed=1)
        name = "generated shapes (Fashion-MNIST not found)"
    if quick:
        xtr, ytr, xte, yte = xtr[:6000], ytr[:6000], xte[:2000], yte[:2000]
    return name, (xtr, ytr), (xte, yte)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small subset, 2 epochs (< 1 minute)")
    p.add_argument("--epochs", type=int, default=None, help="default 12 (2 with --quick)")
    p.add_argument("--out-dir", default=".", help="where the trained model is saved")
    args = p.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 12)

    cnnx.set_seed(0)
    name, (xtr, ytr), (xte, yte) = load(args.quick)
    print(f"data: {name}, {len(xtr)} training / {len(xte)} test images")
    model = build(xtr.shape[1:], int(ytr.max()) + 1)
    model.summary()
    model.compile(cnnx.optim.Adam(lr=2e-3), "cross_entropy", metrics=["accuracy"])
    schedule = cnnx.callbacks.LearningRateScheduler("cosine", epochs=epochs, min_lr=1e-4)
    t0 = time.perf_counter()
    model.fit(
        xtr, ytr, epochs=epochs, batch_size=64, callbacks=[schedule], verbose=0 if args.quick else 1
    )
    seconds = time.perf_counter() - t0
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "inception_fashion.cnnx")
    model.save(path)
    acc = model.evaluate(xte, yte)["accuracy"]
    print(
        f"trained {epochs} epochs in {seconds:.1f} s ({len(xtr) * epochs / seconds:,.0f} img/s); "
        f"saved {path}"
    )
    print(f"test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
