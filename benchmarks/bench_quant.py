"""Whole-network int8 inference: cnnx int8 vs cnnx float32 vs ONNX Runtime int8.

    python benchmarks/bench_quant.py                       # every case, 2 threads
    python benchmarks/bench_quant.py --threads 1 --cpu-time   # a busy machine
    python benchmarks/bench_quant.py --only seed resnet18 --rounds 5

Cases (issue 22): the seed network (``cnnx.teaching.lenet5``, 32x32x3) at
batch 64 (and 1), ResNet-18 and ResNet-50 at 224x224x3, batch 1 and 16.

- ResNet-18 is written in PyTorch below (torchvision's layout, random
  weights and batch-norm statistics), exported with ``torch.onnx.export``
  and imported with ``cnnx.onnx.load``; ResNet-50 is built in cnnx (random
  weights and batch-norm statistics) and exported with ``cnnx.onnx.export``
  (the zoo's ``light_resnet50.onnx`` has batch 1 fixed and constant-fill
  weights);
  the seed network is built in cnnx and exported with ``cnnx.onnx.export``.
- cnnx int8: ``cnnx.quantize(model, calibration)`` (min/max), then
  ``predict``: one compiled C++ plan per batch.
- ONNX Runtime int8: ``onnxruntime.quantization.quantize_static`` on the
  float ONNX graph with the same calibration images (QDQ, per-channel int8
  weights, uint8 activations, MinMax), all graph optimisations,
  ``intra_op_num_threads`` = threads, ``inter_op_num_threads`` = 1.
- cnnx float32: the same model's ``predict``.

The parent prepares every model once (quantizing with both tools) in a
temporary directory; each framework then runs in its own process, the
processes alternate for ``--rounds`` rounds (rotating order) and the best
time of each is kept. Inputs are random images; every worker first writes
its outputs on a fixed batch, and the parent prints how far they are apart
(relative L2 of the logits: cnnx int8 vs cnnx float32, ONNX Runtime int8 vs
cnnx int8). Ratios are the other framework's time over cnnx int8's.

Timing: wall time (perf_counter), or with ``--cpu-time`` the process's CPU
time (ignores time descheduled on a busy machine; use with --threads 1).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

CASES = [
    ("seed", 64),
    ("seed", 1),
    ("resnet18", 1),
    ("resnet18", 16),
    ("resnet50", 1),
    ("resnet50", 16),
]
FRAMEWORKS = ("cnnx_int8", "cnnx_fp32", "ort_int8")
CALIBRATION = {"seed": 256, "resnet18": 16, "resnet50": 16}


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------


def randomize_batch_norm(model, seed=1):
    """Random batch-norm statistics, so that a random network's activations
    are not all alike (and the int8 ranges are tested)."""
    import numpy as np
    from cnnx.layers.base import walk

    rng = np.random.default_rng(seed)
    for layer, _ in walk(model.layers):
        if type(layer).__name__ == "BatchNormalization":
            c = layer.buffers["moving_mean"].shape
            layer.buffers["moving_mean"][...] = rng.normal(0, 0.1, c)
            layer.buffers["moving_var"][...] = rng.uniform(0.5, 1.5, c)
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
            layer.params["beta"][...] = rng.normal(0, 0.1, c)


def resnet18(n_classes=1000, input_shape=(224, 224, 3)):
    """ResNet-18 built in cnnx (the same layout as the PyTorch one below)."""
    import cnnx

    def cbr(c, k, s, relu=True):
        layers = [
            cnnx.Conv2D(c, k, strides=s, padding=k // 2, use_bias=False),
            cnnx.BatchNormalization(epsilon=1e-5),
        ]
        return layers + ([cnnx.ReLU()] if relu else [])

    layers = cbr(64, 7, 2) + [cnnx.MaxPool2D(3, 2, padding=1)]
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512)):
        for b in range(2):
            s = 2 if (b == 0 and stage > 0) else 1
            short = None
            if s != 1 or cin != c:
                short = [
                    cnnx.Conv2D(c, 1, strides=s, use_bias=False),
                    cnnx.BatchNormalization(epsilon=1e-5),
                ]
            layers.append(cnnx.Residual(cbr(c, 3, s) + cbr(c, 3, 1, relu=False), shortcut=short))
            cin = c
    layers += [cnnx.GlobalAvgPool2D(), cnnx.Dense(n_classes)]
    return cnnx.Sequential(layers, input_shape=input_shape)


def resnet50(n_classes=1000, input_shape=(224, 224, 3)):
    """ResNet-50 (v1, stride in the 3x3 convolution) built in cnnx."""
    import cnnx

    def cbr(c, k, s, relu=True):
        layers = [
            cnnx.Conv2D(c, k, strides=s, padding=k // 2, use_bias=False),
            cnnx.BatchNormalization(epsilon=1e-5),
        ]
        return layers + ([cnnx.ReLU()] if relu else [])

    layers = cbr(64, 7, 2) + [cnnx.MaxPool2D(3, 2, padding=1)]
    cin = 64
    for stage, (c, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for b in range(blocks):
            s = 2 if (b == 0 and stage > 0) else 1
            short = None
            if s != 1 or cin != 4 * c:
                short = [
                    cnnx.Conv2D(4 * c, 1, strides=s, use_bias=False),
                    cnnx.BatchNormalization(epsilon=1e-5),
                ]
            layers.append(
                cnnx.Residual(cbr(c, 1, 1) + cbr(c, 3, s) + cbr(4 * c, 1, 1, False), shortcut=short)
            )
            cin = 4 * c
    layers += [cnnx.GlobalAvgPool2D(), cnnx.Dense(n_classes)]
    return cnnx.Sequential(layers, input_shape=input_shape)


def torch_resnet18(seed=0):
    """ResNet-18 in PyTorch (torchvision's BasicBlock layout), random weights and statistics."""
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, cin, c, s):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, c, 3, s, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.relu = nn.ReLU()
            self.down = None
            if s != 1 or cin != c:
                self.down = nn.Sequential(nn.Conv2d(cin, c, 1, s, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.down is None else self.down(x)))

    torch.manual_seed(seed)
    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for stage, c in enumerate((64, 128, 256, 512)):
        for b in range(2):
            layers.append(Block(cin, c, 2 if (b == 0 and stage > 0) else 1))
            cin = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    net = nn.Sequential(*layers).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return net


def prepare(case, workdir, log):
    """Float ONNX graph (NCHW or NHWC input), cnnx float and int8 model files, ORT int8 graph."""
    import numpy as np

    import cnnx

    rng = np.random.default_rng(7)
    fp_onnx = os.path.join(workdir, f"{case}_fp32.onnx")
    if case == "seed":
        from cnnx.teaching import lenet5

        cnnx.set_seed(0)
        model = lenet5()
        cnnx.onnx.export(model, fp_onnx)
        nchw, source = False, "cnnx.teaching.lenet5, exported with cnnx.onnx.export"
    elif case == "resnet18":
        import torch

        net = torch_resnet18()
        torch.onnx.export(
            net,
            torch.zeros(1, 3, 224, 224),
            fp_onnx,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )
        model = cnnx.onnx.load(fp_onnx)
        nchw, source = True, "PyTorch -> torch.onnx.export -> cnnx.onnx.load"
    else:
        # Built in cnnx rather than read from the zoo's light_resnet50.onnx
        # (which cnnx.onnx.load now reads): that graph fixes the batch at 1
        # and makes every weight with ConstantOfShape (all-equal values, no
        # initializers for quantize_static to quantize).
        cnnx.set_seed(0)
        model = resnet50()
        randomize_batch_norm(model)
        cnnx.onnx.export(model, fp_onnx)
        nchw = False
        source = "built in cnnx (random weights), exported with cnnx.onnx.export"
    shape = tuple(model.input_shape)
    calib = rng.standard_normal((CALIBRATION[case],) + shape).astype(np.float32)
    if case == "seed":
        calib = np.abs(calib)  # as images: the float ONNX graph and cnnx see the same data
    t0 = time.perf_counter()
    q = cnnx.quantize(model, calib)
    t_cnnx = time.perf_counter() - t0
    model.save(os.path.join(workdir, f"{case}_fp32.cnnx"))
    q.save(os.path.join(workdir, f"{case}_int8.cnnx"))
    t_ort = _ort_quantize(fp_onnx, os.path.join(workdir, f"{case}_int8.onnx"), calib, nchw)
    log(
        f"{case}: {source}; calibration {len(calib)} images; quantize: cnnx {t_cnnx:.1f} s, "
        f"ONNX Runtime {t_ort:.1f} s"
    )
    return {"shape": list(shape), "nchw": nchw}


def _ort_quantize(src, dst, calib, nchw):
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = onnx.load(src, load_external_data=False).graph.input[0].name
    data = calib.transpose(0, 3, 1, 2).copy() if nchw else calib

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{name: data[i : i + 8]} for i in range(0, len(data), 8)])

        def get_next(self):
            return next(self.it, None)

    t0 = time.perf_counter()
    quantize_static(
        src,
        dst,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------
# one framework in this process
# ---------------------------------------------------------------------------


def _inputs(shape, batch, n):
    import numpy as np

    rng = np.random.default_rng(11)
    return [
        np.abs(rng.standard_normal((batch,) + tuple(shape))).astype(np.float32) for _ in range(n)
    ]


def _best(fn, n, seconds, clock):
    for i in range(2):
        fn(i % n)
    best, done, i = float("inf"), 0, 0
    t_end = time.perf_counter() + seconds
    while done < 3 or time.perf_counter() < t_end:
        t0 = clock()
        fn(i % n)
        best = min(best, clock() - t0)
        done += 1
        i += 1
    return best


def worker(args):
    import numpy as np

    info = json.loads(args.info)
    clock = time.process_time if args.cpu_time else time.perf_counter
    out = {"times": {}}
    check = {}
    for case, batch in args.cases:
        meta = info[case]
        shape = meta["shape"]
        xs = _inputs(shape, batch, 4)
        check_x = _inputs(shape, 8, 1)[0]
        if args.worker.startswith("cnnx"):
            import cnnx

            cnnx.set_num_threads(args.threads)
            kind = "int8" if args.worker == "cnnx_int8" else "fp32"
            m = cnnx.load_model(os.path.join(args.workdir, f"{case}_{kind}.cnnx"))
            run = lambda i: m.predict(xs[i], batch_size=batch)  # noqa: E731
            y = m.predict(check_x)
        else:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            s = ort.InferenceSession(
                os.path.join(args.workdir, f"{case}_int8.onnx"),
                so,
                providers=["CPUExecutionProvider"],
            )
            name = s.get_inputs()[0].name
            tr = (
                (lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
                if meta["nchw"]
                else (lambda a: a)
            )
            feeds = [{name: tr(x)} for x in xs]
            run = lambda i: s.run(None, feeds[i])  # noqa: E731
            y = s.run(None, {name: tr(check_x)})[0]
        check[case] = np.asarray(y, np.float32).reshape(8, -1).tolist()
        out["times"][f"{case}|{batch}"] = _best(run, len(xs), args.seconds, clock)
    out["check"] = check
    print(json.dumps(out))


def run_worker(framework, args, info, cases):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        framework,
        "--threads",
        str(args.threads),
        "--seconds",
        str(args.seconds),
        "--workdir",
        args.workdir,
        "--info",
        json.dumps(info),
        "--cases",
        *[f"{c}:{b}" for c, b in cases],
    ]
    if args.cpu_time:
        cmd.append("--cpu-time")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{framework} worker failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _case(s):
    c, b = s.split(":")
    return c, int(b)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--worker", choices=FRAMEWORKS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.5, help="timing per case and round")
    p.add_argument("--only", nargs="+", choices=["seed", "resnet18", "resnet50"])
    p.add_argument("--batches", nargs="+", type=int, help="only these batch sizes")
    p.add_argument("--cpu-time", action="store_true")
    p.add_argument("--workdir", default=None)
    p.add_argument("--info", default="{}")
    p.add_argument("--cases", nargs="+", type=_case)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    if args.worker:
        return worker(args)

    cases = [
        (c, b)
        for c, b in CASES
        if (not args.only or c in args.only) and (not args.batches or b in args.batches)
    ]
    load = os.getloadavg()
    print(
        f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  threads: {args.threads}  "
        f"timer: {'process CPU time' if args.cpu_time else 'wall'}  rounds: {args.rounds}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        args.workdir = args.workdir or tmp
        info = {}
        for case in dict.fromkeys(c for c, _ in cases):
            info[case] = prepare(case, args.workdir, lambda s: print(s, flush=True))
        best = {}
        checks = {}
        for r in range(args.rounds):
            order = FRAMEWORKS[r % 3 :] + FRAMEWORKS[: r % 3]
            for fw in order:
                res = run_worker(fw, args, info, cases)
                checks[fw] = res["check"]
                for k, t in res["times"].items():
                    best[(fw, k)] = min(best.get((fw, k), float("inf")), t)
        _report(cases, best, checks, args)


def _rel(a, b):
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _report(cases, best, checks, args):
    print()
    print("outputs on a fixed batch of 8 (relative L2):")
    for case in dict.fromkeys(c for c, _ in cases):
        q, f, o = (checks[fw][case] for fw in FRAMEWORKS)
        print(
            f"  {case:<9} cnnx int8 vs cnnx fp32 {100 * _rel(q, f):6.2f} %   "
            f"ONNX Runtime int8 vs cnnx int8 {100 * _rel(o, q):6.2f} %"
        )
    print()
    head = (
        f"| {'case':<10} | {'batch':>5} | {'cnnx fp32 ms':>12} | {'cnnx int8 ms':>12} | "
        f"{'ORT int8 ms':>11} | {'int8 vs fp32':>12} | {'vs ORT int8':>11} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    ratios = []
    rows = []
    for case, batch in cases:
        k = f"{case}|{batch}"
        tq, tf, to = (best[(fw, k)] for fw in FRAMEWORKS)
        ratios.append(to / tq)
        rows.append({"case": case, "batch": batch, "fp32": tf, "int8": tq, "ort_int8": to})
        print(
            f"| {case:<10} | {batch:>5} | {tf * 1e3:>12.2f} | {tq * 1e3:>12.2f} | "
            f"{to * 1e3:>11.2f} | {tf / tq:>11.2f}x | {to / tq:>10.2f}x |"
        )
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"\ngeometric mean, cnnx int8 vs ONNX Runtime int8: {geo:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "rows": rows,
                    "geomean_vs_ort": geo,
                    "threads": args.threads,
                    "cpu_time": args.cpu_time,
                    "load": os.getloadavg(),
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
