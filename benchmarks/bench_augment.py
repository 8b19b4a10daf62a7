"""What augmentation costs inside a training step (issue 21's target: less
than 15 % of a LeNet step at batch 64).

    python benchmarks/bench_augment.py                 # batch 64, one thread
    python benchmarks/bench_augment.py --batch 256 --threads 2 --reps 400

The model is ``cnnx.teaching.lenet5(input_shape=(28, 28, 1))`` trained with
SGD (momentum 0.9), with and without ``RandomFlip("horizontal"),
RandomTranslation(0.1, 0.1), RandomRotation(0.1)`` in front (bilinear,
reflect: Keras's defaults). Both run as one compiled C++ step
(``train_on_batch``). Times are process CPU time per step (the machine is
shared: wall time is noise), the median of ``--reps`` steps after a
warm-up, alternating the two models in rounds. Also shown: the three
layers alone (their C++ kernels on one batch), and as a reference what the
same per-image work costs in SciPy (``scipy.ndimage.affine_transform``,
order 1, one call per image), when SciPy is installed.
"""

import argparse
import json
import statistics
import time

import numpy as np


def _augmented(lenet):
    import cnnx

    return cnnx.Sequential(
        [cnnx.RandomFlip("horizontal"), cnnx.RandomTranslation(0.1, 0.1), cnnx.RandomRotation(0.1)]
        + list(lenet.layers),
        input_shape=(28, 28, 1),
    )


def _cpu_per_call(f, reps):
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=300, help="steps measured per model and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    import cnnx
    from cnnx.teaching import lenet5

    cnnx.set_num_threads(args.threads)
    cnnx.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    plain = lenet5(input_shape=(28, 28, 1))
    aug = _augmented(lenet5(input_shape=(28, 28, 1)))
    for m in (plain, aug):
        m.compile(cnnx.optim.SGD(0.01, momentum=0.9), "cross_entropy")
        assert m._training_plan() is not None, "the step must compile to one C++ call"
        for _ in range(20):
            m.train_on_batch(x, y)
    layers = aug.layers[:3]

    def layers_alone():
        z = x
        for layer in layers:
            z = layer.forward(z, training=True)

    t_plain, t_aug, t_layers = [], [], []
    for _ in range(args.rounds):
        t_plain += _cpu_per_call(lambda: plain.train_on_batch(x, y), args.reps)
        t_aug += _cpu_per_call(lambda: aug.train_on_batch(x, y), args.reps)
        t_layers += _cpu_per_call(layers_alone, args.reps)
    med = {
        k: statistics.median(v)
        for k, v in (
            ("step", t_plain),
            ("step_with_augmentation", t_aug),
            ("layers_alone", t_layers),
        )
    }
    out = {
        "batch": args.batch,
        "threads": args.threads,
        "lenet_step_ms": med["step"] * 1e3,
        "augmented_step_ms": med["step_with_augmentation"] * 1e3,
        "augmentation_in_step_pct": 100 * (med["step_with_augmentation"] / med["step"] - 1),
        "layers_alone_ms": med["layers_alone"] * 1e3,
        "layers_alone_pct_of_step": 100 * med["layers_alone"] / med["step"],
    }
    try:
        from scipy import ndimage

        def scipy_ref():
            for img in x[:, :, :, 0]:
                img = img[:, ::-1]
                img = ndimage.shift(img, (1.3, -0.7), order=1, mode="mirror")
                ndimage.rotate(img, 12.0, reshape=False, order=1, mode="mirror")

        t_ref = _cpu_per_call(scipy_ref, max(10, args.reps // 10))
        out["scipy_same_work_ms"] = statistics.median(t_ref) * 1e3
    except ImportError:
        pass
    if args.json:
        print(json.dumps(out))
        return
    print(f"batch {args.batch}, {args.threads} thread(s), process CPU time per step (median)")
    print(f"  LeNet-5 step (28x28x1)                    {out['lenet_step_ms']:8.3f} ms")
    print(f"  the same step with flip+translate+rotate  {out['augmented_step_ms']:8.3f} ms")
    print(f"  the three layers alone (C++ kernels)      {out['layers_alone_ms']:8.3f} ms")
    if "scipy_same_work_ms" in out:
        print(f"  SciPy, the same per-image work (ref.)     {out['scipy_same_work_ms']:8.3f} ms")
    print(
        f"augmentation costs {out['augmentation_in_step_pct']:.1f} % of a LeNet step "
        f"(target < 15 %); the layers alone {out['layers_alone_pct_of_step']:.1f} %"
    )


if __name__ == "__main__":
    main()
