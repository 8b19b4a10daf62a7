"""Fitting from a generator vs fitting the same arrays: images per second.

    python benchmarks/bench_data.py                      # batch 64, 2 threads, 7 rounds
    python benchmarks/bench_data.py --rounds 11 --images 16384 --threads 1

The network is the seed's (``cnnx.teaching.lenet5``, 32x32x3, 62,958
parameters), SGD momentum 0.9 + cross-entropy, batch 64. One process,
one model per variant (same initial weights), and the variants alternate
within every round, so load changes hit them alike; each variant's best
round is kept, and the ratio is against ``arrays`` of the same run.

- ``arrays``: ``fit(x, y, batch_size=64, shuffle=True)`` (batches gathered
  with ``np.take`` into a reused buffer on the training thread);
- ``generator``: ``fit(gen, steps_per_epoch=...)`` where ``gen`` is an
  endless Python generator doing the same shuffled gather (``x[idx]``,
  ``y[idx]``) per batch, run on cnnx's background data thread;
- ``generator, workers=0``: the same generator on the training thread;
- ``Dataset, workers=2``: a ``cnnx.data.Dataset`` gathering batch i of a
  permutation, two threads.

``wait`` is the share of the epoch the training thread spent waiting for a
batch from the data thread (0 %: the C++ step never waited on Python).
``img/CPU-s`` divides by the process's CPU time (all its threads): on a
busy machine the load-independent measure of what the pipeline costs
(wall-clock rates there mostly measure the other jobs).
"""

import argparse
import os
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--images", type=int, default=8192, help="images per epoch")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np

    import cnnx
    from cnnx.teaching import lenet5
    from cnnx.trainers import data_adapter

    cnnx.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n, bs = args.images, args.batch
    x = rng.standard_normal((n, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, n)
    steps = -(-n // bs)

    def model():
        cnnx.set_seed(0)
        m = lenet5()
        m.compile(cnnx.optim.SGD(lr=0.01, momentum=0.9), "cross_entropy", metrics=["accuracy"])
        return m

    def endless(seed):
        r = np.random.default_rng(seed)
        while True:
            order = r.permutation(n)
            for s in range(0, n, bs):
                idx = order[s : s + bs]
                yield x[idx], y[idx]

    class Shuffled(cnnx.data.Dataset):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.order = np.random.default_rng(1).permutation(n)

        def __len__(self):
            return steps

        def __getitem__(self, i):
            idx = self.order[i * bs : (i + 1) * bs]
            return x[idx], y[idx]

    # the time the training thread waits for the data thread
    waited = [0.0]
    plain_next = data_adapter._Prefetch.__next__

    def timed_next(self):
        t = time.perf_counter()
        try:
            return plain_next(self)
        finally:
            waited[0] += time.perf_counter() - t

    data_adapter._Prefetch.__next__ = timed_next

    gens = {"generator": endless(2), "generator, workers=0": endless(3)}
    ds = Shuffled(workers=2)
    runs = {
        "arrays": lambda m: m.fit(x, y, batch_size=bs, epochs=1, verbose=0),
        "generator": lambda m: m.fit(gens["generator"], steps_per_epoch=steps, epochs=1, verbose=0),
        "generator, workers=0": lambda m: m.fit(
            gens["generator, workers=0"], steps_per_epoch=steps, epochs=1, verbose=0, workers=0
        ),
        "Dataset, workers=2": lambda m: m.fit(ds, epochs=1, verbose=0, shuffle=False),
    }
    names = list(runs)
    models = {name: model() for name in names}
    best = {k: 0.0 for k in names}
    best_cpu = {k: 0.0 for k in names}
    wait = {k: 0.0 for k in names}
    for name in names:  # warm-up: compile the plans
        runs[name](models[name])
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            m = models[name]
            waited[0] = 0.0
            t, c = time.perf_counter(), time.process_time()
            runs[name](m)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            images = steps * bs if name != "arrays" else n
            if images / dt > best[name]:
                best[name] = images / dt
                wait[name] = waited[0] / dt
            best_cpu[name] = max(best_cpu[name], images / dc)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"lenet5 32x32x3, batch {bs}, {n} images per epoch, {args.threads} threads, "
        f"best of {args.rounds} alternating rounds; load average {load:.2f}"
    )
    print(
        f"{'variant':<22} {'img/s':>9} {'vs arrays':>9} {'wait':>6} | {'img/CPU-s':>9} "
        f"{'vs arrays':>9}"
    )
    for name in names:
        w = (
            f"{100 * wait[name]:5.1f}%"
            if name.startswith("generator") and "workers=0" not in name
            else "    -"
        )
        print(
            f"{name:<22} {best[name]:>9,.0f} {best[name] / best['arrays']:>9.1%} {w:>6} | "
            f"{best_cpu[name]:>9,.0f} {best_cpu[name] / best_cpu['arrays']:>9.1%}"
        )


if __name__ == "__main__":
    main()
