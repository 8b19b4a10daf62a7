"""Inference throughput: cnnx ``predict`` vs ONNX Runtime vs PyTorch.

    python benchmarks/bench_infer.py                     # all cases, 2 threads, 3 rounds
    python benchmarks/bench_infer.py --rounds 5 --seconds 1.5 --json out.json
    python benchmarks/bench_infer.py --only seed          # just the seed network

Cases (issue 13): the course's seed network (``cnnx.teaching.lenet5``,
32x32x3, 62,958 parameters) at batch 1, 64 and 256, and the small ResNet
(``cnnx.teaching.small_resnet``, 28x28x1) at batch 1 and 64. Every process
builds the same model from ``cnnx.set_seed(0)``.

- cnnx: ``model.predict(x, batch_size=batch)``.
- ONNX Runtime: the model exported with ``cnnx.onnx.export`` (same NHWC
  input, same output), CPU execution provider, ``intra_op_num_threads`` =
  threads, ``inter_op_num_threads`` = 1, all graph optimisations
  (``ORT_ENABLE_ALL``), sequential execution.
- PyTorch: the same layers and weights as ``torch.nn`` modules, in
  channels_last (its faster memory format here), under ``torch.inference_mode``,
  ``torch.set_num_threads(threads)``; the Flatten is a free view of the
  channels_last tensor in cnnx's (h, w, c) order, so outputs agree.

Each framework runs in its own process (two OpenMP runtimes in one process
steal each other's cores) and the processes alternate, in a rotating order,
for ``--rounds`` rounds; the best round of each framework is kept (the
machine is shared, so the best round is the least disturbed one). Inputs
come from a pool of random batches, not one repeated batch. Before timing,
every process writes its outputs on a fixed batch and the parent checks that
the three frameworks agree (max |difference| is printed).

Ratios are cnnx img/s over the other framework's img/s: above 1 means cnnx
is faster. Target of issue 13: >= 1.0x ONNX Runtime on every case and
>= 1.3x on the geometric mean.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

CASES = [("seed", 1), ("seed", 64), ("seed", 256), ("resnet", 1), ("resnet", 64)]
FRAMEWORKS = ("cnnx", "onnxruntime", "torch")
POOL_IMAGES = 2048


def _model(name):
    import cnnx
    from cnnx.teaching import lenet5, small_resnet

    cnnx.set_seed(0)
    return lenet5() if name == "seed" else small_resnet()


def _inputs(shape, batch):
    import numpy as np

    rng = np.random.default_rng(1)
    n = min(max(4, POOL_IMAGES // batch), 32)
    return [rng.standard_normal((batch,) + tuple(shape)).astype(np.float32) for _ in range(n)]


def _rate(step, batch, n, seconds):
    """Images per second of ``step(i)`` for ``seconds`` after a short warm-up."""
    t_warm = time.perf_counter() + min(0.2, seconds / 4)
    i = 0
    while i < 3 or time.perf_counter() < t_warm:
        step(i % n)
        i += 1
    done = i = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        step(i % n)
        i += 1
        done += batch
        if time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------
# the same network in PyTorch
# ---------------------------------------------------------------------------


def _to_torch(model):
    """torch.nn equivalent of a cnnx Sequential (layers used by the two cases)."""
    import numpy as np
    import torch
    import torch.nn as nn

    import cnnx
    from cnnx.functional._shapes import resolve_padding

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    class HWCFlatten(nn.Module):  # cnnx flattens NHWC: a view of a channels_last tensor
        def forward(self, x):
            return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    class Res(nn.Module):
        def __init__(self, block, short, act):
            super().__init__()
            self.block, self.short, self.act = block, short, act

        def forward(self, x):
            return self.act(self.block(x) + self.short(x))

    def act(name):
        return {
            None: nn.Identity(),
            "relu": nn.ReLU(),
            "sigmoid": nn.Sigmoid(),
            "tanh": nn.Tanh(),
            "leaky_relu": nn.LeakyReLU(0.01),
            "softmax": nn.Softmax(dim=1),
        }[name]

    def conv(layer):
        h, w, c = layer.input_shape
        (pt, pb), (pl, pr) = resolve_padding(
            layer.padding, (h, w), layer.kernel_size, layer.strides, layer.dilation_rate
        )
        sym = pt == pb and pl == pr
        m = nn.Conv2d(
            c,
            layer.filters,
            layer.kernel_size,
            layer.strides,
            (pt, pl) if sym else 0,
            layer.dilation_rate,
            layer.groups,
            bias=layer.use_bias,
        )
        with torch.no_grad():
            m.weight.copy_(t(layer.params["kernel"].transpose(3, 2, 0, 1)))
            if layer.use_bias:
                m.bias.copy_(t(layer.params["bias"]))
        mods = [] if sym else [nn.ZeroPad2d((pl, pr, pt, pb))]
        return nn.Sequential(*mods, m, act(layer.activation))

    def seq(layers):
        out = []
        for layer in layers:
            if isinstance(layer, cnnx.Conv2D):
                out.append(conv(layer))
            elif isinstance(layer, (cnnx.MaxPool2D, cnnx.AvgPool2D)):
                (pt, pb), (pl, pr) = resolve_padding(
                    layer.padding, layer.input_shape[:2], layer.pool_size, layer.strides
                )
                if pt != pb or pl != pr:
                    raise ValueError("asymmetric pool padding is not translated")
                if isinstance(layer, cnnx.MaxPool2D):
                    out.append(nn.MaxPool2d(layer.pool_size, layer.strides, (pt, pl)))
                else:
                    out.append(
                        nn.AvgPool2d(
                            layer.pool_size,
                            layer.strides,
                            (pt, pl),
                            count_include_pad=layer.count_include_pad,
                        )
                    )
            elif isinstance(layer, cnnx.GlobalAvgPool2D):
                out += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            elif isinstance(layer, cnnx.Flatten):
                out.append(HWCFlatten())
            elif isinstance(layer, cnnx.Dense):
                m = nn.Linear(*layer.params["kernel"].shape, bias=layer.use_bias)
                with torch.no_grad():
                    m.weight.copy_(t(layer.params["kernel"].T))
                    if layer.use_bias:
                        m.bias.copy_(t(layer.params["bias"]))
                out += [m, act(layer.activation)]
            elif isinstance(layer, cnnx.BatchNormalization):
                c = layer.output_shape[-1]
                m = (nn.BatchNorm2d if len(layer.output_shape) == 3 else nn.BatchNorm1d)(
                    c, eps=layer.epsilon
                )
                with torch.no_grad():
                    if layer.scale:
                        m.weight.copy_(t(layer.params["gamma"]))
                    if layer.center:
                        m.bias.copy_(t(layer.params["beta"]))
                    m.running_mean.copy_(t(layer.buffers["moving_mean"]))
                    m.running_var.copy_(t(layer.buffers["moving_var"]))
                out.append(m)
            elif isinstance(layer, cnnx.ReLU):
                out.append(nn.ReLU())
            elif isinstance(layer, cnnx.Dropout):
                pass
            elif isinstance(layer, cnnx.Residual):
                short = nn.Identity() if layer.shortcut is None else seq(layer.shortcut)
                out.append(Res(seq(layer.block), short, act(layer.activation)))
            else:
                raise ValueError(f"no PyTorch translation for {type(layer).__name__}")
        return nn.Sequential(*out)

    return seq(model.layers).eval()


# ---------------------------------------------------------------------------
# one framework, one case, in this process
# ---------------------------------------------------------------------------


def worker(framework, case, batch, threads, seconds, check_path):
    import numpy as np

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    model = _model(case)
    xs = _inputs(model.input_shape, batch)
    check_x = _inputs(model.input_shape, 8)[0]
    if framework == "cnnx":
        import cnnx

        cnnx.set_num_threads(threads)
        out = model.predict(check_x)

        def step(i):
            model.predict(xs[i], batch_size=batch)

        version = cnnx.__version__
    elif framework == "onnxruntime":
        import onnxruntime as ort

        import cnnx.onnx

        path = os.path.join(tempfile.mkdtemp(prefix="bench-infer-"), f"{case}.onnx")
        cnnx.onnx.export(model, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        out = sess.run(None, {name: check_x})[0]

        def step(i):
            sess.run(None, {name: xs[i]})

        version = ort.__version__
    else:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        net = _to_torch(model).to(memory_format=torch.channels_last)
        # NHWC arrays viewed as channels_last NCHW tensors: no copy
        txs = [torch.from_numpy(x).permute(0, 3, 1, 2) for x in xs]
        assert txs[0].is_contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = net(torch.from_numpy(check_x).permute(0, 3, 1, 2)).numpy()

        def step(i):
            with torch.inference_mode():
                net(txs[i])

        version = torch.__version__
    np.save(check_path, np.asarray(out, np.float32))
    rate = _rate(step, batch, len(xs), seconds)
    return {"rate": rate, "version": version}


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _run(framework, case, batch, args, check_path):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        framework,
        "--case",
        case,
        "--batch",
        str(batch),
        "--threads",
        str(args.threads),
        "--seconds",
        str(args.seconds),
        "--check",
        check_path,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{framework} {case}@{batch} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement")
    ap.add_argument("--only", default="", help="'seed' or 'resnet'")
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--check", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = worker(args.worker, args.case, args.batch, args.threads, args.seconds, args.check)
        print(json.dumps(res))
        return

    import numpy as np

    cases = [c for c in CASES if args.only in c[0]]
    fws = [f for f in FRAMEWORKS if f in args.frameworks]
    tmp = tempfile.mkdtemp(prefix="bench-infer-")
    best = {}
    versions = {}
    diffs = {}
    for case, batch in cases:
        for r in range(args.rounds):
            order = fws[r % len(fws) :] + fws[: r % len(fws)]  # rotate who goes first
            outs = {}
            for fw in order:
                check = os.path.join(tmp, f"{fw}.npy")
                res = _run(fw, case, batch, args, check)
                key = (case, batch, fw)
                best[key] = max(best.get(key, 0.0), res["rate"])
                versions[fw] = res["version"]
                outs[fw] = np.load(check)
            if r == 0 and "cnnx" in outs:
                for fw in outs:
                    if fw != "cnnx":
                        d = float(np.abs(outs[fw] - outs["cnnx"]).max())
                        diffs[(case, fw)] = max(diffs.get((case, fw), 0.0), d)
        line = "  ".join(f"{fw} {best[(case, batch, fw)]:>9,.0f}" for fw in fws)
        print(f"# {case:6s} batch {batch:>3d}: {line} img/s", flush=True)

    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print()
    print(
        f"Inference, {args.threads} threads, {date}, {_cpu_name()} ({os.cpu_count()} CPUs), "
        f"best of {args.rounds} alternated rounds of {args.seconds:g} s; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    print()
    head = "| case | batch | " + " | ".join(f"{fw} img/s" for fw in fws)
    ratio_cols = [fw for fw in fws if fw != "cnnx"] if "cnnx" in fws else []
    head += "".join(f" | cnnx / {fw}" for fw in ratio_cols) + " |"
    print(head)
    print("|" + "---|" * (2 + len(fws) + len(ratio_cols)))
    ratios = {fw: [] for fw in ratio_cols}
    rows = []
    for case, batch in cases:
        cells = [f"{best[(case, batch, fw)]:,.0f}" for fw in fws]
        row = {"case": case, "batch": batch}
        row.update({fw: best[(case, batch, fw)] for fw in fws})
        for fw in ratio_cols:
            q = best[(case, batch, "cnnx")] / best[(case, batch, fw)]
            ratios[fw].append(q)
            cells.append(f"{q:.2f}x")
            row[f"cnnx/{fw}"] = q
        rows.append(row)
        print(f"| {case} | {batch} | " + " | ".join(cells) + " |")
    if ratio_cols:
        geo = {fw: math.exp(sum(map(math.log, v)) / len(v)) for fw, v in ratios.items()}
        print(
            "| geomean | | "
            + " | ".join("" for _ in fws)
            + " | "
            + " | ".join(f"{geo[fw]:.2f}x" for fw in ratio_cols)
            + " |"
        )
    else:
        geo = {}
    print()
    for (case, fw), d in sorted(diffs.items()):
        print(f"output check: {case}: max |cnnx - {fw}| = {d:.2e}")
    if "onnxruntime" in geo:
        q = ratios["onnxruntime"]
        ok = min(q) >= 1.0 and geo["onnxruntime"] >= 1.3
        print(
            f"target (>= 1.0x ONNX Runtime on every case, >= 1.3x geomean): "
            f"{'met' if ok else 'NOT met'} (min {min(q):.2f}x, geomean "
            f"{geo['onnxruntime']:.2f}x)"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "date": date,
                    "threads": args.threads,
                    "cpu": _cpu_name(),
                    "versions": versions,
                    "rounds": args.rounds,
                    "rows": rows,
                    "geomean": geo,
                    "max_abs_diff": {f"{c}/{fw}": d for (c, fw), d in diffs.items()},
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
