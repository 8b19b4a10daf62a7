"""Training and inference throughput of the course's network: cnnx vs PyTorch.

    python benchmarks/bench_train.py                       # batch 1, 64, 256; 2 threads
    python benchmarks/bench_train.py --batches 1 64 --rounds 5 --seconds 2
    python benchmarks/bench_train.py --mnist               # LeNet-5 on MNIST: accuracy, s/epoch

The network is DESIGN.md's (the course's table, 62,958 parameters):
Conv(8, 5, relu) - MaxPool(2) - Conv(16, 5, relu) - MaxPool(2) - Flatten -
Dense(120, relu) - Dense(84, relu) - Dense(10, softmax), on 32x32x3 inputs,
trained with SGD (momentum 0.9) and cross-entropy.

- cnnx: ``model.train_on_batch(x, y)`` and ``model.predict(x)``.
- PyTorch: the same model in channels_last (its faster format on this
  network), ``zero_grad / forward / cross_entropy / backward / step``, and
  ``softmax(model(x))`` under ``inference_mode``.

Each framework runs in its own process with the same thread count; the
processes alternate for ``--rounds`` rounds and the best round of each is
kept. Inputs are drawn from a pool of random batches (not one repeated
batch). Ratios are cnnx img/s over PyTorch img/s: above 1 means cnnx is
faster.
"""

import argparse
import json
import os
import subprocess
import sys
import time

POOL_IMAGES = 4096


def _pool(batch, rng):
    import numpy as np

    n_batches = max(4, POOL_IMAGES // batch) if batch < POOL_IMAGES else 2
    n_batches = min(n_batches, 64)
    x = rng.standard_normal((n_batches, batch, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, (n_batches, batch)).astype(np.int64)
    return x, y


def _rate(step, batch, n_batches, seconds):
    """Images per second of ``step(i)`` over ``seconds`` (after a warm-up)."""
    for i in range(min(n_batches, 8)):
        step(i)
    done = 0
    i = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        step(i % n_batches)
        i += 1
        done += batch
        if (i & 7) == 0 and time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - t0)


def run_cnnx(batch, threads, seconds):
    import numpy as np

    import cnnx

    cnnx.set_num_threads(threads)
    cnnx.set_seed(0)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(8, 5, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(16, 5, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(120, activation="relu"),
            cnnx.Dense(84, activation="relu"),
            cnnx.Dense(10, activation="softmax"),
        ],
        input_shape=(32, 32, 3),
    )
    model.compile(optimizer=cnnx.optim.SGD(lr=0.01, momentum=0.9), loss="cross_entropy")
    x, y = _pool(batch, np.random.default_rng(1))
    xs = [x[i] for i in range(len(x))]
    ys = [y[i] for i in range(len(y))]
    train = _rate(lambda i: model.train_on_batch(xs[i], ys[i]), batch, len(xs), seconds)
    predict = _rate(lambda i: model.predict(xs[i], batch_size=batch), batch, len(xs), seconds)
    return {"train": train, "predict": predict}


def run_torch(batch, threads, seconds):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 8, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    ).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = _pool(batch, np.random.default_rng(1))
    xs = [
        torch.from_numpy(x[i].transpose(0, 3, 1, 2).copy()).contiguous(
            memory_format=torch.channels_last
        )
        for i in range(len(x))
    ]
    ys = [torch.from_numpy(y[i]) for i in range(len(y))]
    lossf = nn.functional.cross_entropy

    def train_step(i):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xs[i]), ys[i])
        loss.backward()
        opt.step()
        return loss.item()

    def predict_step(i):
        with torch.inference_mode():
            return torch.softmax(model(xs[i]), dim=1).numpy()

    train = _rate(train_step, batch, len(xs), seconds)
    model.eval()
    predict = _rate(predict_step, batch, len(xs), seconds)
    return {"train": train, "predict": predict}


def run_mnist(args):
    """LeNet-5 on the original MNIST: test accuracy after each epoch and time per epoch."""
    import time as _time

    import cnnx
    from cnnx.datasets import load_mnist

    cnnx.set_num_threads(args.threads)
    (x, y), (xt, yt), src = load_mnist(return_source=True)
    print(
        f"MNIST from {src[0]}: {len(x)} train / {len(xt)} test, {args.threads} threads, "
        f"{args.optimizer}, batch {args.batch_size}"
    )
    # the usual MNIST standardisation (training-set mean and standard deviation)
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std
    xt = (xt - mean) / std
    cnnx.set_seed(0)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(6, 5, padding="same", activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(16, 5, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(120, activation="relu"),
            cnnx.Dense(84, activation="relu"),
            cnnx.Dense(10, activation="softmax"),
        ],
        input_shape=(28, 28, 1),
    )
    if args.optimizer == "sgd":
        opt = cnnx.optim.SGD(lr=0.02, momentum=0.9)  # not tuned: AdamW is the measured recipe
    else:
        opt = cnnx.optim.AdamW(lr=2e-3, weight_decay=1e-4)
    model.compile(optimizer=opt, loss="cross_entropy", metrics=["accuracy"])
    sched = cnnx.callbacks.LearningRateScheduler("cosine", epochs=args.epochs, min_lr=opt.lr / 100)
    t0 = _time.perf_counter()
    hist = model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(xt, yt),
        callbacks=[sched],
        verbose=2,
    )
    total = _time.perf_counter() - t0
    print(
        f"test accuracy after {args.epochs} epochs: {hist.history['val_accuracy'][-1]:.4f}; "
        f"train time per epoch {sum(hist.history['time']) / len(hist.epoch):.1f} s "
        f"(total with evaluation {total:.0f} s)"
    )


def worker(args):
    fn = run_cnnx if args.worker == "cnnx" else run_torch
    res = {b: fn(b, args.threads, args.seconds) for b in args.batches}
    print(json.dumps(res))


def launch(framework, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        framework,
        "--threads",
        str(args.threads),
        "--seconds",
        str(args.seconds),
        "--batches",
        *[str(b) for b in args.batches],
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{framework} worker failed:\n{out.stderr}")
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5, help="timed seconds per cell")
    ap.add_argument("--worker", choices=["cnnx", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--mnist", action="store_true", help="train LeNet-5 on MNIST instead")
    ap.add_argument("--epochs", type=int, default=5, help="epochs for --mnist")
    ap.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw", help="for --mnist")
    ap.add_argument("--batch-size", type=int, default=64, help="for --mnist")
    args = ap.parse_args()
    if args.mnist:
        return run_mnist(args)
    if args.worker:
        return worker(args)
    best = {"cnnx": {}, "torch": {}}
    for r in range(args.rounds):
        for fw in ("cnnx", "torch") if r % 2 == 0 else ("torch", "cnnx"):
            res = launch(fw, args)
            for b, d in res.items():
                cell = best[fw].setdefault(b, {"train": 0.0, "predict": 0.0})
                for k in cell:
                    cell[k] = max(cell[k], d[k])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    if args.json:
        print(json.dumps(best))
        return
    print(
        f"Seed network (32x32x3, 62,958 params), SGD momentum + cross-entropy, "
        f"{args.threads} threads, best of {args.rounds} alternating rounds; img/s"
    )
    print(
        f"{'batch':>5} | {'cnnx train':>10} {'torch train':>11} {'ratio':>6} | "
        f"{'cnnx predict':>12} {'torch predict':>13} {'ratio':>6}"
    )
    for b in args.batches:
        c, t = best["cnnx"][b], best["torch"][b]
        print(
            f"{b:>5} | {c['train']:>10,.0f} {t['train']:>11,.0f} {c['train'] / t['train']:>5.2f}x | "
            f"{c['predict']:>12,.0f} {t['predict']:>13,.0f} {c['predict'] / t['predict']:>5.2f}x"
        )


if __name__ == "__main__":
    main()
