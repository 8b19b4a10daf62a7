"""int8 accuracy against float32 (issue 22's accuracy targets).

    python benchmarks/quant_accuracy.py                 # train, quantize, evaluate
    python benchmarks/quant_accuracy.py --models-dir d  # reuse/keep the trained models
    python benchmarks/quant_accuracy.py --resnet18      # only the ResNet-18 logits check

- LeNet-5 (``cnnx.teaching.lenet5``, 28x28x1) trained with cnnx on MNIST,
  and the small ResNet (``cnnx.teaching.small_resnet``) on Fashion-MNIST;
  each quantized with ``cnnx.quantize`` on ``--calibration`` training images
  (every method), then the test-set accuracy of the int8 model against the
  float model's. Target: within 0.3 percentage points.
- ResNet-18 (224x224x3, random weights and batch-norm statistics): the int8
  logits against the float32 ones, relative L2 over a batch. Target: < 2 %.
"""

import argparse
import os
import sys
import time

import numpy as np

import cnnx
from cnnx.teaching import lenet5, small_resnet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_quant import randomize_batch_norm, resnet18  # noqa: E402


def train(name, make, data, epochs, models_dir):
    path = os.path.join(models_dir, f"{name}.cnnx") if models_dir else None
    if path and os.path.exists(path):
        return cnnx.load_model(path)
    (x, y), _ = data
    cnnx.set_seed(0)
    m = make()
    m.compile(optimizer=cnnx.optim.Adam(lr=1e-3), loss="cross_entropy", metrics=["accuracy"])
    m.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    if path:
        m.save(path)
    return m


def accuracy_table(args):
    sets = {
        "digits": cnnx.datasets.load_mnist("digits"),
        "fashion": cnnx.datasets.load_mnist("fashion"),
    }
    cases = [
        ("lenet5_mnist", lambda: lenet5(input_shape=(28, 28, 1)), "digits"),
        ("small_resnet_fashion", lambda: small_resnet(input_shape=(28, 28, 1)), "fashion"),
    ]
    print(f"| {'model':<22} | {'float32':>8} | {'method':<10} | {'int8':>8} | {'diff (pp)':>9} |")
    print(f"|{'-' * 24}|{'-' * 9}:|{'-' * 12}|{'-' * 9}:|{'-' * 10}:|")
    for name, make, kind in cases:
        m = train(name, make, sets[kind], args.epochs, args.models_dir)
        (xtr, _), (xte, yte) = sets[kind]
        m.compile(loss="cross_entropy", metrics=["accuracy"])
        acc_f = m.evaluate(xte, yte)["accuracy"]
        calib = xtr[np.random.default_rng(1).permutation(len(xtr))[: args.calibration]]
        for method in ("minmax", "percentile", "entropy"):
            t0 = time.perf_counter()
            q = cnnx.quantize(m, calib, method=method)
            tq = time.perf_counter() - t0
            acc_q = q.evaluate(xte, yte)["accuracy"]
            print(
                f"| {name:<22} | {100 * acc_f:>7.2f}% | {method:<10} | {100 * acc_q:>7.2f}% | "
                f"{100 * (acc_q - acc_f):>+9.2f} |  (quantize: {tq:.1f} s)",
                flush=True,
            )


def resnet18_logits(args):
    cnnx.set_seed(0)
    m = resnet18()
    randomize_batch_norm(m)
    rng = np.random.default_rng(2)
    calib = rng.standard_normal((args.r18_calibration, 224, 224, 3)).astype(np.float32)
    x = rng.standard_normal((16, 224, 224, 3)).astype(np.float32)
    yf = m.predict(x)
    for method in ("minmax", "percentile", "entropy"):
        q = cnnx.quantize(m, calib, method=method)
        yq = q.predict(x)
        rel = np.linalg.norm(yq - yf) / np.linalg.norm(yf)
        top1 = np.mean(yq.argmax(1) == yf.argmax(1))
        print(
            f"ResNet-18 random weights, {method:<10}: logits rel. L2 {100 * rel:.2f} % "
            f"(top-1 agreement {100 * top1:.0f} % of {len(x)})",
            flush=True,
        )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--calibration", type=int, default=1000)
    p.add_argument("--r18-calibration", type=int, default=32)
    p.add_argument("--models-dir", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resnet18", action="store_true", help="only the ResNet-18 logits check")
    args = p.parse_args()
    cnnx.set_num_threads(args.threads)
    print(
        f"load: {os.getloadavg()[0]:.2f}  threads: {args.threads}  epochs: {args.epochs}  "
        f"calibration images: {args.calibration}"
    )
    if not args.resnet18:
        accuracy_table(args)
    resnet18_logits(args)


if __name__ == "__main__":
    main()
