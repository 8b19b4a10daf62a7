"""Residual networks: the skip connection a[l+2] = g(z[l+2] + a[l]).

``cnnx.Residual(block)`` computes ``relu(block(x) + shortcut(x))``: the
input is carried unchanged around the block and added *before* the
activation. The course warns that modifying that copied tensor hurts; here
is why it helps:

1. With the block's weights at zero the block outputs 0 and the residual
   layer is the identity (for x >= 0): a deep stack of such layers is no
   harder to train than a shallow one, because each block only has to learn
   a correction to the identity.
2. In backward, the gradient reaches x through the shortcut unchanged.
3. A small ResNet (stem conv and pooling, two residual stages with batch
   normalisation, a softmax classifier) trained on MNIST (or generated shapes if MNIST is not installed).

    python examples/residual_network.py [--quick] [--out-dir DIR]

The last line printed is the test accuracy.
"""

import argparse
import os
import time

import numpy as np

import cnnx
from cnnx.teaching import small_resnet


def identity_demo():
    cnnx.set_seed(0)
    block = cnnx.Residual(
        [cnnx.Conv2D(4, 3, padding="same", activation="relu"), cnnx.Conv2D(4, 3, padding="same")]
    )
    block.build((8, 8, 4))
    for layer in block.sublayers():
        for p in layer.params.values():
            p[...] = 0.0
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 4)).astype(np.float32)
    y = block.forward(x, training=True)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx = block.backward(dy)
    fwd, bwd = float(np.abs(y - x).max()), float(np.abs(dx - dy).max())
    print(
        f"residual block with zero weights: max |y - x| = {fwd:.1e} (identity), "
        f"max |dx - dy| = {bwd:.1e} (the gradient passes unchanged)"
    )
    return fwd, bwd


def load(quick):
    try:
        from cnnx.datasets import load_mnist

        (xtr, ytr), (xte, yte) = load_mnist()
        name = "MNIST"
    except (FileNotFoundError, OSError):
        from cnnx.datasets import make_shapes

        xtr, ytr, _ = make_shapes(12000, size=28, seed=0)
        xte, yte, _ = make_shapes(2000, size=28, seed=1)
        name = "generated shapes (MNIST not found)"
    if quick:
        xtr, ytr, xte, yte = xtr[:2500], ytr[:2500], xte[:1000], yte[:1000]
    else:
        xtr, ytr = xtr[:20000], ytr[:20000]
    return name, (xtr, ytr), (xte, yte)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,500 images, 2 epochs (< 60 s)")
    ap.add_argument("--epochs", type=int, default=None, help="default 4 (2 with --quick)")
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "residual_network"))
    args = ap.parse_args()
    epochs = args.epochs or (2 if args.quick else 4)

    identity_demo()

    name, (xtr, ytr), (xte, yte) = load(args.quick)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    print(f"data: {name}, {len(xtr)} training / {len(xte)} test images")
    cnnx.set_seed(0)
    model = small_resnet(input_shape=xtr.shape[1:], n_classes=n_classes, width=16, stages=2)
    model.summary()
    model.compile(optimizer=cnnx.optim.Adam(lr=2e-3), loss="cross_entropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    history = model.fit(
        xtr, ytr, epochs=epochs, batch_size=64, validation_data=(xte, yte), verbose=1
    )
    print(f"{epochs} epochs in {time.perf_counter() - t0:.0f} s")
    test = model.evaluate(xte, yte)

    try:
        from cnnx import viz

        os.makedirs(args.out_dir, exist_ok=True)
        viz.plot_history(history, path=os.path.join(args.out_dir, "training.png"))
        stages = [i for i, layer in enumerate(model.layers) if isinstance(layer, cnnx.Residual)]
        for k, i in enumerate(stages, start=1):
            viz.plot_feature_maps(
                model,
                xte[0],
                i,
                max_maps=16,
                path=os.path.join(args.out_dir, f"residual_stage{k}_maps.png"),
            )
        print(f"pictures in {args.out_dir}/")
    except ImportError as e:
        print(f"(no pictures: {e})")
    print(f"test accuracy: {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()
