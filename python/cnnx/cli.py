"""The ``cnnx`` command (also ``python -m cnnx``).

::

    cnnx info                      version, SIMD level, threads
    cnnx summary [MODEL.cnnx]      the course's network table, or a saved model's
    cnnx train                     train LeNet-5 on the best data set found (MNIST first)
    cnnx edges [IMAGE]             vertical/horizontal/Sobel/Scharr responses as a PNG
    cnnx bench                     a quick speed comparison with NumPy (and PyTorch)
    cnnx --version

Bad arguments and unreadable files are usage errors: one line on stderr
saying what is wrong, exit code 2, no traceback.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np


class UsageError(Exception):
    """Reported by :func:`main` as ``cnnx COMMAND: error: ...`` with exit code 2."""


# What summary/train may allocate for the networks they build from command-line
# sizes: the course's networks have tens of thousands of parameters.
_MAX_CLI_PARAMS = 2**28


def _load_model_file(path, compile):
    """A saved model, or a UsageError naming the file (missing, unreadable, not a model)."""
    import cnnx

    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a model file")
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    try:
        return cnnx.load_model(path, compile=compile)
    except (ValueError, TypeError, OSError, MemoryError) as e:
        raise UsageError(_one_line(e)) from None


def _one_line(e):
    text = " ".join(str(e).split())
    return text if len(text) <= 400 else text[:400] + "..."


def _build_small(make, what):
    """Build a network from command-line sizes without allocating more than
    ``_MAX_CLI_PARAMS`` values (a usage error names ``what`` instead)."""
    from .layers.base import deferred_init

    try:
        with deferred_init(
            limit=_MAX_CLI_PARAMS,
            what=what,
            limit_text=f"cnnx builds at most {_MAX_CLI_PARAMS:,} from the command line",
        ):
            model = make()
    except ValueError as e:
        msg = _one_line(e)
        raise UsageError(msg if msg.startswith(what) else f"{what}: {msg}") from None
    return model


def _cmd_info(args):
    import cnnx

    info = cnnx.info()
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:>13}: {v}")
    return 0


# ---------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------


def _cmd_summary(args):

    if args.model:
        model = _load_model_file(args.model, compile=False)
        print(f"{args.model}:")
    else:
        from .teaching import lenet5

        h, w, c = args.input_shape
        # shapes only: the weights are never drawn (summary shows no values)
        model = _build_small(
            lambda: lenet5(input_shape=(h, w, c), n_classes=args.classes), "--input-shape/--classes"
        )
        print(
            f"The course's LeNet-style network on a {h}x{w}x{c} input "
            "(CONV-POOL-CONV-POOL-FC-FC-softmax):"
        )
    model.summary(formulas=args.formulas, show_all=args.all)
    return 0


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def _sklearn_available():
    import importlib.util

    return importlib.util.find_spec("sklearn") is not None


def load_dataset(name, limit=None, data_dir=None, seed=0):
    """``(label, (x_train, y_train), (x_test, y_test), n_classes)`` for the CLI.

    ``name``: auto (MNIST if found, then scikit-learn's digits, then the
    generated shapes), mnist, fashion, digits or shapes.
    """
    from . import datasets

    if name == "auto":
        if datasets.find_mnist("digits", data_dir) is not None:
            name = "mnist"
        elif _sklearn_available():
            name = "digits"
        else:
            name = "shapes"
        picked = True
    else:
        picked = False
    if name in ("mnist", "fashion"):
        kind = "digits" if name == "mnist" else "fashion"
        (xtr, ytr), (xte, yte), (src, where) = datasets.load_mnist(
            kind, path=data_dir, return_source=True
        )
        label = f"{'MNIST' if kind == 'digits' else 'Fashion-MNIST'} (from {src}: {where})"
        n_classes = 10
    elif name == "digits":
        (xtr, ytr), (xte, yte) = datasets.load_digits(seed=seed)
        label = "scikit-learn digits (8x8)"
        n_classes = 10
    elif name == "shapes":
        n = 6000 if limit is None else max(int(limit), 8)
        xtr, ytr, _ = datasets.make_shapes(n, size=32, seed=seed)
        xte, yte, _ = datasets.make_shapes(max(n // 5, 8), size=32, seed=seed + 1)
        label = "generated shapes (circle, square, triangle, line; 32x32)"
        n_classes = len(datasets.SHAPE_NAMES)
    else:
        raise ValueError(f"dataset: expected auto, mnist, fashion, digits or shapes, got {name!r}")
    if limit is not None:
        xtr, ytr = xtr[:limit], ytr[:limit]
        xte, yte = xte[: max(limit // 5, 1)], yte[: max(limit // 5, 1)]
    if picked:
        label = f"auto -> {label}"
    return label, (xtr, ytr), (xte, yte), n_classes


def build_model(name, input_shape, n_classes):
    from .teaching import lenet5, small_resnet

    if name == "lenet":
        return lenet5(input_shape=input_shape, n_classes=n_classes)
    if name == "resnet":
        return small_resnet(input_shape=input_shape, n_classes=n_classes)
    raise ValueError(f"model: expected lenet or resnet, got {name!r}")


def _cmd_train(args):
    import cnnx

    dist = None
    if args.distributed:  # under mpirun: data-parallel, only rank 0 prints and saves
        from . import distributed as dist

        dist.init()
        if dist.rank() != 0:
            sys.stdout = open(os.devnull, "w")
    if args.out:  # before training, not after it: a bad --out must not cost the run
        _check_out(args.out)
    cnnx.set_seed(args.seed)
    try:
        label, (xtr, ytr), (xte, yte), n_classes = load_dataset(
            args.dataset, args.limit, args.data_dir, args.seed
        )
    except (FileNotFoundError, ImportError) as e:
        print(f"cnnx train: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:  # unreadable or inconsistent data files
        raise UsageError(_one_line(e)) from None
    n_val = int(round(len(xtr) * args.validation_split))
    if args.validation_split and not 0 < n_val < len(xtr):
        raise UsageError(
            f"--validation-split {args.validation_split} of {len(xtr)} training "
            "images leaves no training or no validation images"
        )
    split = f", {n_val} of them held out for validation" if n_val else ""
    print(
        f"dataset: {label}: {len(xtr)} train{split} / {len(xte)} test images of "
        f"{'x'.join(map(str, xtr.shape[1:]))}, {n_classes} classes"
    )
    model = _build_small(lambda: build_model(args.model, xtr.shape[1:], n_classes), "the model")
    model = build_model(args.model, xtr.shape[1:], n_classes)  # checked above: now with weights
    model.summary()
    if args.optimizer == "adam":
        opt = cnnx.optim.Adam(lr=1e-3 if args.lr is None else args.lr)
    else:
        opt = cnnx.optim.SGD(lr=0.05 if args.lr is None else args.lr, momentum=0.9)
    model.compile(optimizer=opt, loss="cross_entropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(
        xtr,
        ytr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        verbose=0 if args.quiet else 1,
        distributed=args.distributed,
    )
    seconds = time.perf_counter() - t0
    res = model.evaluate(xte, yte) if dist is None else dist.evaluate(model, xte, yte)
    if args.out and (dist is None or dist.rank() == 0):
        try:
            model.save(args.out)
        except OSError as e:  # e.g. the directory vanished during training
            raise UsageError(f"--out {args.out}: cannot save ({_one_line(e)})") from None
        print(f"saved: {args.out}")
    print(f"trained {args.epochs} epoch(s) in {seconds:.1f} s")
    print(f"final test accuracy: {res['accuracy']:.4f}")
    return 0


def _check_out(path):
    """``--out``: its directory exists and is writable, and it is not a directory."""
    if os.path.isdir(path):
        raise UsageError(f"--out {path} is a directory (give a file name such as model.cnnx)")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"--out {path} is a device, FIFO or socket, not a file")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--out {path}: the directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: the directory {directory} is not writable")


# ---------------------------------------------------------------------------
# edges
# ---------------------------------------------------------------------------


def _sample_image():
    """(name, grayscale float image in [0, 1])."""
    try:
        from skimage import data

        return "scikit-image camera()", data.camera().astype(np.float32) / 255.0
    except ImportError:
        pass
    # No bundled photo: draw a few shapes, which have edges in every direction.
    from .datasets import make_shapes

    x, _, _ = make_shapes(16, size=64, seed=1, noise=0.0)
    tiles = x[:, :, :, 0].reshape(4, 4, 64, 64).transpose(0, 2, 1, 3).reshape(256, 256)
    return "generated shapes (install scikit-image for a photo)", tiles


def read_image(path):
    """A grayscale float32 image in [0, 1] from .npy, or PNG/JPEG (matplotlib/Pillow)."""
    if path.lower().endswith(".npy"):
        img = np.load(path, allow_pickle=False, mmap_mode="r")  # the header first: no huge read
        if img.dtype.kind not in "biuf":
            raise ValueError(f"image: expected a numeric array, got dtype {img.dtype}")
        if img.size > 2**28:
            raise ValueError(f"image: {img.shape} holds more than 2**28 values")
        img = np.array(img, dtype=np.float32)
    else:
        img = None
        try:
            from PIL import Image

            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        except ImportError:
            try:
                import matplotlib.image as mpimg
            except ImportError:
                raise ImportError(
                    "reading PNG/JPEG needs Pillow or matplotlib (pip install "
                    "pillow); .npy images need neither"
                ) from None
            img = np.asarray(mpimg.imread(path), dtype=np.float32)
            if img.max() > 1.0:
                img = img / 255.0
    if img.ndim == 3 and img.shape[2] >= 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    elif img.ndim == 3:
        img = img[..., 0]
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"image: expected a 2-D grayscale or RGB image, got shape {img.shape}")
    lo, hi = float(img.min()), float(img.max())
    return ((img - lo) / (hi - lo)) if hi > lo else img * 0


def _cmd_edges(args):
    from .filters import edge_responses

    _check_out(args.out)
    if args.image:
        if not os.path.isfile(args.image):
            print(f"cnnx edges: no such file: {args.image}", file=sys.stderr)
            return 2
        try:
            name, img = args.image, read_image(args.image)
        except (ValueError, OSError, TypeError, MemoryError, EOFError) as e:
            raise UsageError(f"{args.image} is not a readable image ({_one_line(e)})") from None
        except ImportError as e:
            raise UsageError(f"{args.image}: {e}") from None
        if img.size > 2**26:
            raise UsageError(
                f"{args.image}: {img.shape[0]}x{img.shape[1]} pixels is more than "
                "cnnx edges draws (2**26)"
            )
    else:
        name, img = _sample_image()
    r = edge_responses(img, mode="same")
    panels = {
        "input": img,
        "vertical [[1,0,-1]]x3": r["vertical"],
        "horizontal (transpose)": r["horizontal"],
        "Sobel x": r["sobel_x"],
        "Sobel y": r["sobel_y"],
        "Scharr x": r["scharr_x"],
        "Scharr y": r["scharr_y"],
        "Sobel magnitude": r["sobel_magnitude"],
    }
    print(f"image: {name}, {img.shape[0]}x{img.shape[1]}")
    for k in ("vertical", "horizontal", "sobel_x", "sobel_y", "scharr_x", "scharr_y"):
        v = r[k]
        print(
            f"  {k:<10} mean |response| {float(np.abs(v).mean()):.4f}   max {float(np.abs(v).max()):.3f}"
        )
    from .viz import plot_images  # imports matplotlib only when drawing

    try:
        plot_images(
            panels,
            path=args.out,
            ncols=4,
            symmetric=[k not in ("input", "Sobel magnitude") for k in panels],
            suptitle="edge detectors (cross-correlation, same padding)",
        )
    except ImportError as e:
        np.savez(os.path.splitext(args.out)[0] + ".npz", **r)
        print(f"{e}; wrote the responses to {os.path.splitext(args.out)[0]}.npz instead")
        return 0
    print(f"wrote {args.out}")
    return 0


# ---------------------------------------------------------------------------
# bench: each framework in its own process, alternated, ratios reported
# ---------------------------------------------------------------------------

_BENCH_CASES = {
    "matmul": "GEMM 512x512 @ 512x512",
    "conv": "conv2d 3x3 same, 32x28x28x16 -> 32 (NHWC)",
}


def _bench_one(framework, case, repeat):
    """Runs in a child process: the best time of ``repeat`` calls, in ms."""
    rng = np.random.default_rng(0)
    if case == "matmul":
        a = rng.standard_normal((512, 512)).astype(np.float32)
        b = rng.standard_normal((512, 512)).astype(np.float32)
    else:
        x = rng.standard_normal((32, 28, 28, 16)).astype(np.float32)
        w = (rng.standard_normal((3, 3, 16, 32)) * 0.1).astype(np.float32)
    if framework == "cnnx":
        import cnnx.functional as F

        fn = (
            (lambda: F.matmul(a, b))
            if case == "matmul"
            else (lambda: F.conv2d(x, w, padding="same"))
        )
    elif framework == "numpy":
        if case == "matmul":
            fn = lambda: a @ b  # noqa: E731
        else:

            def fn():  # im2col + one GEMM, the usual NumPy way
                xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
                cols = np.stack(
                    [xp[:, i : i + 28, j : j + 28, :] for i in range(3) for j in range(3)], axis=3
                )
                return cols.reshape(-1, 9 * 16) @ w.reshape(9 * 16, 32)
    elif framework == "torch":
        import torch

        if case == "matmul":
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            fn = lambda: torch.mm(ta, tb)  # noqa: E731
        else:
            tx = (
                torch.from_numpy(x)
                .permute(0, 3, 1, 2)
                .contiguous(memory_format=torch.channels_last)
            )
            tw = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous()

            def fn():
                with torch.no_grad():
                    return torch.nn.functional.conv2d(tx, tw, padding=1)
    else:
        raise ValueError(framework)
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _cmd_bench_worker(args):
    print(json.dumps({"ms": _bench_one(args.framework, args.case, args.repeat)}))
    return 0


def _child_env(framework):
    env = dict(os.environ)
    if framework == "numpy":  # DESIGN.md: these force a slow OpenBLAS kernel here
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([here] + sys.path[1:] + [env.get("PYTHONPATH", "")]).strip(
        os.pathsep
    )
    return env


def _cmd_bench(args):
    import importlib.util

    import cnnx

    frameworks = ["cnnx", "numpy"]
    if importlib.util.find_spec("torch") is not None and not args.no_torch:
        frameworks.append("torch")
    info = cnnx.info()
    print(
        f"cnnx {info.get('version')} isa={info.get('isa')} threads={info.get('num_threads')}; "
        f"best of {args.repeat} calls, {args.rounds} alternated rounds, one process per run"
    )
    results = {}
    for case in args.cases:
        times = {f: [] for f in frameworks}
        for _ in range(args.rounds):
            for fw in frameworks:
                cmd = [
                    sys.executable,
                    "-m",
                    "cnnx",
                    "_bench-worker",
                    fw,
                    case,
                    "--repeat",
                    str(args.repeat),
                ]
                out = subprocess.run(
                    cmd, capture_output=True, text=True, env=_child_env(fw), timeout=300
                )
                if out.returncode != 0:
                    print(f"  {fw} failed on {case}: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                times[fw].append(json.loads(out.stdout.strip().splitlines()[-1])["ms"])
        best = {f: min(t) for f, t in times.items() if t}
        results[case] = best
        print(f"{_BENCH_CASES[case]}:")
        for fw, ms in best.items():
            ratio = best[fw] / best["cnnx"] if "cnnx" in best else float("nan")
            print(f"  {fw:<6} {ms:9.3f} ms   ({ratio:.2f}x the time of cnnx)")
    if args.json:
        print(json.dumps(results))
    return 0


# ---------------------------------------------------------------------------


def _shape3(text):
    try:
        parts = tuple(int(p) for p in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 32,32,3, got {text!r}") from None
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 32,32,3, got {text!r}")
    return parts


def _positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _seed(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {text!r}")
    return v


def _learning_rate(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return v


def build_parser():
    from ._version import __version__

    p = argparse.ArgumentParser(prog="cnnx", description="cnnx: convolutional networks on the CPU")
    p.add_argument("--version", action="version", version=f"cnnx {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    pi = sub.add_parser("info", help="version, SIMD level and threads of this build")
    pi.add_argument("--json", action="store_true", help="print one JSON object")
    pi.set_defaults(func=_cmd_info)

    ps = sub.add_parser("summary", help="the course's network table, or a saved model's")
    ps.add_argument(
        "model",
        nargs="?",
        help="a model saved with model.save (default: the course's LeNet-style network)",
    )
    ps.add_argument(
        "--input-shape",
        type=_shape3,
        default=(32, 32, 3),
        metavar="H,W,C",
        help="input of the course's network (default 32,32,3)",
    )
    ps.add_argument("--classes", type=_positive, default=10)
    ps.add_argument("--formulas", action="store_true", help="show how each number arises")
    ps.add_argument("--all", action="store_true", help="also show Flatten rows")
    ps.set_defaults(func=_cmd_summary)

    pt = sub.add_parser(
        "train",
        help="train a CNN on MNIST (or the best data set found)",
        description="Train a CNN. The progress bar's val_loss/val_accuracy are "
        "measured on a validation split held out from the training images "
        "(--validation-split); the test set is used once, for the final test "
        "accuracy.",
    )
    pt.add_argument(
        "--dataset",
        choices=["auto", "mnist", "fashion", "digits", "shapes"],
        default="auto",
        help="auto: MNIST if found, else scikit-learn digits, else generated shapes",
    )
    pt.add_argument("--model", choices=["lenet", "resnet"], default="lenet")
    pt.add_argument("--epochs", type=_positive, default=3)
    pt.add_argument("--batch-size", type=_positive, default=64)
    pt.add_argument(
        "--optimizer",
        choices=["sgd", "adam"],
        default="sgd",
        help="sgd (momentum 0.9, lr 0.05) or adam (lr 0.001)",
    )
    pt.add_argument(
        "--lr",
        type=_learning_rate,
        default=None,
        help="learning rate, > 0 (default 0.05 for sgd, 0.001 for adam)",
    )
    pt.add_argument(
        "--validation-split",
        type=_fraction,
        default=0.1,
        metavar="F",
        help="fraction of the training images held out to compute val_loss and "
        "val_accuracy after each epoch (default 0.1; 0: none)",
    )
    pt.add_argument(
        "--limit",
        type=_positive,
        default=None,
        help="use only the first N training images (and N/5 test images)",
    )
    pt.add_argument("--data-dir", default=None, help="where to look for the IDX files first")
    pt.add_argument("--seed", type=_seed, default=0, help="an integer >= 0 (default 0)")
    pt.add_argument("--out", default=None, metavar="MODEL.cnnx", help="save the trained model")
    pt.add_argument("--quiet", action="store_true", help="no progress bars")
    pt.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over MPI ranks: mpirun -np N cnnx train --distributed "
        "(--batch-size is per rank; needs mpi4py)",
    )
    pt.set_defaults(func=_cmd_train)

    pe = sub.add_parser("edges", help="PNG of vertical/horizontal/Sobel/Scharr edge responses")
    pe.add_argument("image", nargs="?", help="PNG/JPEG/.npy (default: a bundled sample image)")
    pe.add_argument("--out", default="edges.png", help="output picture (default edges.png)")
    pe.set_defaults(func=_cmd_edges)

    pb = sub.add_parser("bench", help="quick speed comparison with NumPy (and PyTorch)")
    pb.add_argument("--cases", nargs="+", choices=sorted(_BENCH_CASES), default=["matmul", "conv"])
    pb.add_argument("--repeat", type=_positive, default=10)
    pb.add_argument("--rounds", type=_positive, default=2)
    pb.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    pb.add_argument("--json", action="store_true", help="also print the results as JSON")
    pb.set_defaults(func=_cmd_bench)

    pw = sub.add_parser("_bench-worker")  # internal: one timed run in a fresh process
    pw.add_argument("framework", choices=["cnnx", "numpy", "torch"])
    pw.add_argument("case", choices=sorted(_BENCH_CASES))
    pw.add_argument("--repeat", type=_positive, default=10)
    pw.set_defaults(func=_cmd_bench_worker)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except UsageError as e:
        print(f"cnnx {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's usual code
        print(f"cnnx {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
