"""conv2d: cnnx against PyTorch (channels_last, its fastest CPU path).

    python benchmarks/bench_conv.py                 # the 11 layers, 2 threads each
    python benchmarks/bench_conv.py --rounds 5 --only s2
    python benchmarks/bench_conv.py --threads 1 --cpu-time    # busy machine: CPU time, 1 thread
    python benchmarks/bench_conv.py --suite resnet50          # batch 1: 1 vs 2 threads, % of peak
    python benchmarks/bench_conv.py --suite resnet18          # 3x3 layers at batch 1 and 16
    python benchmarks/bench_conv.py --suite mobilenet         # depthwise 3x3 layers

Both frameworks get the same number of threads (torch.set_num_threads and
cnnx.set_num_threads). Each framework runs in its own process (two OpenMP
runtimes in one process steal each other's cores); the processes alternate
for --rounds rounds and the median over all repeats of all rounds is kept.

"fwd" is the forward pass (PyTorch under no_grad). "fwd+bwd" is a forward
pass followed by the weight and bias gradients and, except for the 3-channel
layers that see an RGB network input (neither framework needs dx there), the
input gradient. LeNet conv1 includes dx (style transfer needs the gradient
with respect to the image). Ratios are PyTorch time / cnnx time: above 1
means cnnx is faster.

--suite resnet50 times ResNet-50's convolution shapes (torchvision layout:
stride on the 3x3; each shape once, weighted by how often the network uses
it) at batch 1, forward, on 1 and on --threads threads, and prints the
speed-up, GFLOP/s and the share of the FMA peak measured in the same run.
--suite resnet18 does the same for ResNet-18's 3x3 layers at batch 1 and 16
(names the algorithm cnnx picks); --suite mobilenet for MobileNetV2's
depthwise layers, with the memory traffic per second.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

# name, N, H, W, C_in, C_out, k, stride, pad, need_dx, groups
SHAPES = [
    ("seed-conv1 N64 32x32x3->8 f5", 64, 32, 32, 3, 8, 5, 1, 0, True, 1),
    ("seed-conv2 N64 14x14x8->16 f5", 64, 14, 14, 8, 16, 5, 1, 0, True, 1),
    ("N32 32x32x3->64 3x3 p1", 32, 32, 32, 3, 64, 3, 1, 1, False, 1),
    ("N32 32x32x64->64 3x3 p1", 32, 32, 32, 64, 64, 3, 1, 1, True, 1),
    ("N8 56x56x64->64 3x3 p1", 8, 56, 56, 64, 64, 3, 1, 1, True, 1),
    ("N8 28x28x128->128 3x3 p1", 8, 28, 28, 128, 128, 3, 1, 1, True, 1),
    ("N8 14x14x256->256 3x3 p1", 8, 14, 14, 256, 256, 3, 1, 1, True, 1),
    ("N8 7x7x512->512 3x3 p1", 8, 7, 7, 512, 512, 3, 1, 1, True, 1),
    ("N8 56x56x64->128 3x3 s2 p1", 8, 56, 56, 64, 128, 3, 2, 1, True, 1),
    ("N8 56x56x256->64 1x1", 8, 56, 56, 256, 64, 1, 1, 0, True, 1),
    ("N8 224x224x3->64 7x7 s2 p3", 8, 224, 224, 3, 64, 7, 2, 3, False, 1),
]


def _resnet50():
    """(name, count) of ResNet-50's convolutions at batch 1 (torchvision v1.5)."""
    rows = [("stem 224x224x3->64 7x7 s2", 224, 3, 64, 7, 2, 3, 1)]
    h, cin = 56, 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        out = 4 * width
        for b in range(blocks):
            s = stride if b == 0 else 1
            rows.append((f"{h}x{h}x{cin}->{width} 1x1", h, cin, width, 1, 1, 0, 1))
            rows.append(
                (
                    f"{h}x{h}x{width}->{width} 3x3" + (" s2" if s == 2 else ""),
                    h,
                    width,
                    width,
                    3,
                    s,
                    1,
                    1,
                )
            )
            ho = h // s
            rows.append((f"{ho}x{ho}x{width}->{out} 1x1", ho, width, out, 1, 1, 0, 1))
            if b == 0:
                rows.append(
                    (
                        f"{h}x{h}x{cin}->{out} 1x1" + (" s2" if s == 2 else ""),
                        h,
                        cin,
                        out,
                        1,
                        s,
                        0,
                        1,
                    )
                )
            h, cin = ho, out
    merged = {}
    for name, hh, ci, co, k, s, p, g in rows:
        key = (name, hh, ci, co, k, s, p, g)
        merged[key] = merged.get(key, 0) + 1
    return [
        (name, 1, hh, hh, ci, co, k, s, p, False, g, n)
        for (name, hh, ci, co, k, s, p, g), n in merged.items()
    ]


def _resnet18():
    out = []
    for n in (1, 16):
        for h, c in ((56, 64), (28, 128), (14, 256), (7, 512)):
            out.append((f"N{n} {h}x{h}x{c}->{c} 3x3", n, h, h, c, c, 3, 1, 1, False, 1, 1))
        for h, c in ((56, 64), (28, 128), (14, 256)):
            out.append(
                (f"N{n} {h}x{h}x{c}->{2 * c} 3x3 s2", n, h, h, c, 2 * c, 3, 2, 1, False, 1, 1)
            )
    return out


def _mobilenet():
    """MobileNetV2's depthwise 3x3 layers at 224x224 (batch 1 and 16), and at 32x32 (training)."""
    layers = [
        (112, 32, 1),
        (112, 96, 2),
        (56, 144, 1),
        (56, 144, 2),
        (28, 192, 1),
        (28, 192, 2),
        (14, 384, 1),
        (14, 576, 1),
        (14, 576, 2),
        (7, 960, 1),
    ]
    out = []
    for n in (1, 16):
        for h, c, s in layers:
            out.append(
                (
                    f"N{n} dw {h}x{h}x{c}" + (" s2" if s == 2 else ""),
                    n,
                    h,
                    h,
                    c,
                    c,
                    3,
                    s,
                    1,
                    False,
                    c,
                    1,
                )
            )
    for h, c, s in ((32, 32, 1), (32, 96, 2), (16, 144, 1), (8, 192, 2), (4, 576, 1)):
        out.append(
            (
                f"N128 dw {h}x{h}x{c}" + (" s2" if s == 2 else "") + " train",
                128,
                h,
                h,
                c,
                c,
                3,
                s,
                1,
                True,
                c,
                1,
            )
        )
    return out


def suite_shapes(suite):
    if suite == "conv":
        return [row + (1,) for row in SHAPES]
    return {"resnet50": _resnet50, "resnet18": _resnet18, "mobilenet": _mobilenet}[suite]()


def _times(fn, min_time, clock, min_reps=5):
    fn()
    fn()  # warm up: page-in, scratch buffers, thread pool
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times


def worker(framework, threads_list, suite, only, min_time, cpu_time, backward):
    import numpy as np

    clock = time.process_time if cpu_time else time.perf_counter
    rng = np.random.default_rng(0)
    res = {"times": {}, "algo": {}}
    if framework == "torch":
        import torch

        tf = torch.nn.functional
    else:
        import cnnx
        import cnnx.functional as F
        from cnnx import _core

        if cpu_time:
            # Process CPU time of measure_fma_peak's two runs (warm-up and
            # timed) of `iters` iterations of 24 (AVX-512) or 12 (AVX2)
            # independent FMAs: the peak on a core we did not always have.
            iters = 5_000_000
            fpi = {"avx512": 24 * 16 * 2, "avx2": 12 * 8 * 2}.get(_core.active_isa(), 0)
            t0 = time.process_time()
            _core.measure_fma_peak(1, iters)
            res["peak"] = {1: 2 * iters * fpi / (time.process_time() - t0) * 1e-9}
        else:
            res["peak"] = {t: _core.measure_fma_peak(t) for t in threads_list}
    for name, n, h, w_, ci, co, k, s, p, need_dx, groups, _count in suite_shapes(suite):
        if only and only not in name:
            continue
        x = rng.standard_normal((n, h, w_, ci), dtype=np.float32)
        w = rng.standard_normal((k, k, ci // groups, co), dtype=np.float32) / math.sqrt(
            k * k * ci / groups
        )
        b = rng.standard_normal(co, dtype=np.float32)
        oh = (h + 2 * p - k) // s + 1
        ow = (w_ + 2 * p - k) // s + 1
        dy = rng.standard_normal((n, oh, ow, co), dtype=np.float32)
        if framework == "torch":
            cl = torch.channels_last
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=cl)
            wt = torch.from_numpy(w).permute(3, 2, 0, 1).contiguous(memory_format=cl)
            bt = torch.from_numpy(b)
            dyt = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=cl)
            xg = xt.clone().requires_grad_(need_dx)
            wg = wt.clone().requires_grad_(True)
            bg = bt.clone().requires_grad_(True)

            def fwd():
                with torch.no_grad():
                    tf.conv2d(xt, wt, bt, stride=s, padding=p, groups=groups)

            def fwdbwd():
                wg.grad = None
                bg.grad = None
                xg.grad = None
                y = tf.conv2d(xg, wg, bg, stride=s, padding=p, groups=groups)
                y.backward(dyt)
        else:
            res["algo"][name] = F.conv2d_algorithm(
                x.shape, w.shape, stride=s, padding=p, groups=groups
            )

            def fwd():
                F.conv2d(x, w, b, stride=s, padding=p, groups=groups)

            def fwdbwd():
                F.conv2d(x, w, b, stride=s, padding=p, groups=groups)
                F.conv2d_backward(dy, x, w, stride=s, padding=p, groups=groups, need_dx=need_dx)

        for t in threads_list:
            if framework == "torch":
                torch.set_num_threads(t)
            else:
                cnnx.set_num_threads(t)
            d = {"fwd": _times(fwd, min_time, clock)}
            if backward:
                d["fwdbwd"] = _times(fwdbwd, min_time, clock)
            res["times"][f"{name}|{t}"] = d
    print(json.dumps(res))


def med(v):
    v = sorted(v)
    return v[len(v) // 2] * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.25, help="seconds per measurement")
    ap.add_argument("--only", default="", help="substring of a shape name")
    ap.add_argument(
        "--suite", default="conv", choices=["conv", "resnet50", "resnet18", "mobilenet"]
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by process CPU time (a busy machine; meaningful on 1 thread)",
    )
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--worker", choices=["cnnx", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--threads-list", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    backward = a.suite in ("conv", "mobilenet")
    if a.worker:
        tl = [int(t) for t in a.threads_list.split(",")]
        worker(a.worker, tl, a.suite, a.only, a.min_time, a.cpu_time, backward)
        return

    # resnet50/resnet18 compare 1 thread with --threads inside each process.
    threads_list = [a.threads] if a.suite in ("conv", "mobilenet") else sorted({1, a.threads})
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(a.threads)
    env.setdefault("PYTHONPATH", os.path.join(here, "..", "python"))
    times = {"cnnx": {}, "torch": {}}
    algo, peak = {}, {}
    for r in range(a.rounds):
        for fw in ["cnnx", "torch"] if r % 2 == 0 else ["torch", "cnnx"]:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                fw,
                "--threads",
                str(a.threads),
                "--threads-list",
                ",".join(map(str, threads_list)),
                "--suite",
                a.suite,
                "--min-time",
                str(a.min_time),
                "--only",
                a.only,
            ]
            if a.cpu_time:
                cmd.append("--cpu-time")
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                sys.exit(f"{fw} worker failed:\n{out.stderr}")
            d = json.loads(out.stdout.strip().splitlines()[-1])
            algo.update(d.get("algo", {}))
            for t, g in d.get("peak", {}).items():
                peak[int(t)] = max(peak.get(int(t), 0.0), g)
            for key, v in d["times"].items():
                slot = times[fw].setdefault(key, {})
                for kind, ts in v.items():
                    slot.setdefault(kind, []).extend(ts)

    try:
        import torch

        tv = torch.__version__
    except ImportError:
        tv = "?"
    import platform

    clock = "process CPU time" if a.cpu_time else "wall clock"
    print(
        f"cnnx vs PyTorch {tv} channels_last, {a.rounds} alternated rounds, median ms "
        f"({clock}); ratio = torch / cnnx (>1: cnnx faster)"
    )
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus; FMA peak (cnnx's ISA): "
        + ", ".join(
            f"{g:.0f} GFLOP/s on {t} thread{'s' if t > 1 else ''}" for t, g in sorted(peak.items())
        )
    )
    gm = lambda v: math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")  # noqa: E731
    shapes = [row for row in suite_shapes(a.suite) if not a.only or a.only in row[0]]
    rows_out = []
    if a.suite in ("conv", "mobilenet"):
        t = a.threads
        print(f"{t} thread(s) each")
        hdr = (
            f"| {'shape':32s} | cnnx fwd | torch fwd | ratio | cnnx f+b | torch f+b | ratio "
            f"| fwd % peak | algorithm     |"
        )
        print(hdr)
        print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
        rf, rb = [], []
        for name, n, h, w_, ci, co, k, s, p, _dx, g, _c in shapes:
            key = f"{name}|{t}"
            c, tt = times["cnnx"][key], times["torch"][key]
            cf, tf_, cb, tb = med(c["fwd"]), med(tt["fwd"]), med(c["fwdbwd"]), med(tt["fwdbwd"])
            rf.append(tf_ / cf)
            rb.append(tb / cb)
            oh = (h + 2 * p - k) // s + 1
            flops = 2.0 * n * oh * ((w_ + 2 * p - k) // s + 1) * co * k * k * ci / g
            pk = 100 * flops / (cf * 1e-3) * 1e-9 / peak.get(t, float("nan"))
            rows_out.append(
                {
                    "shape": name,
                    "algo": algo.get(name),
                    "cnnx_fwd": cf,
                    "torch_fwd": tf_,
                    "cnnx_fwdbwd": cb,
                    "torch_fwdbwd": tb,
                    "fwd_pct_peak": pk,
                }
            )
            print(
                f"| {name:32s} | {cf:8.3f} | {tf_:9.3f} | {tf_ / cf:5.2f} | {cb:8.3f} | "
                f"{tb:9.3f} | {tb / cb:5.2f} | {pk:9.0f}% | {algo.get(name, ''):13s} |"
            )
        print(
            f"| {'geomean':32s} | {'':8s} | {'':9s} | {gm(rf):5.2f} | {'':8s} | {'':9s} | "
            f"{gm(rb):5.2f} | {'':10s} | {'':13s} |"
        )
        print(
            "% peak: forward GFLOP/s (direct-method FLOPs; Winograd does fewer) over the "
            "FMA peak on as many threads, measured in the same run"
        )
    else:
        t1, t2 = 1, a.threads
        print(
            f"forward; cnnx on 1 and {t2} threads (speed-up), PyTorch the same; % of peak: "
            f"cnnx's GFLOP/s over the FMA peak on as many threads"
        )
        hdr = (
            f"| {'layer':30s} | x | algorithm      | cnnx 1T | cnnx {t2}T | speed-up | "
            f"torch 1T | torch {t2}T | ratio {t2}T | 1T % peak |"
        )
        print(hdr)
        print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
        tot = {"c1": 0.0, "c2": 0.0, "t1": 0.0, "t2": 0.0, "flops": 0.0}
        for name, n, h, _w, ci, co, k, s, p, _dx, g, count in shapes:
            oh = (h + 2 * p - k) // s + 1
            flops = 2.0 * n * oh * oh * co * k * k * ci / g
            c1 = med(times["cnnx"][f"{name}|{t1}"]["fwd"])
            c2 = med(times["cnnx"][f"{name}|{t2}"]["fwd"])
            q1 = med(times["torch"][f"{name}|{t1}"]["fwd"])
            q2 = med(times["torch"][f"{name}|{t2}"]["fwd"])
            for kk, v in (("c1", c1), ("c2", c2), ("t1", q1), ("t2", q2)):
                tot[kk] += count * v
            tot["flops"] += count * flops
            pk = 100 * flops / (c1 * 1e-3) * 1e-9 / peak.get(1, float("nan"))
            rows_out.append(
                {
                    "shape": name,
                    "count": count,
                    "algo": algo.get(name),
                    "cnnx_1t": c1,
                    "cnnx_nt": c2,
                    "torch_1t": q1,
                    "torch_nt": q2,
                }
            )
            print(
                f"| {name:30s} | {count} | {algo.get(name, ''):14s} | {c1:7.3f} | {c2:7.3f} | "
                f"{c1 / c2:7.2f}x | {q1:8.3f} | {q2:8.3f} | {q2 / c2:8.2f} | {pk:8.0f}% |"
            )
        pk1 = 100 * tot["flops"] / (tot["c1"] * 1e-3) * 1e-9 / peak.get(1, float("nan"))
        pk2 = 100 * tot["flops"] / (tot["c2"] * 1e-3) * 1e-9 / peak.get(t2, float("nan"))
        print(
            f"| {'sum (x count)':30s} |   | {'':14s} | {tot['c1']:7.2f} | {tot['c2']:7.2f} | "
            f"{tot['c1'] / tot['c2']:7.2f}x | {tot['t1']:8.2f} | {tot['t2']:8.2f} | "
            f"{tot['t2'] / tot['c2']:8.2f} | {pk1:8.0f}% |"
        )
        print(
            f"{tot['flops'] * 1e-9:.2f} GFLOP in all; cnnx on {t2} threads at {pk2:.0f}% of "
            f"the {t2}-thread peak"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows_out, f, indent=1)


if __name__ == "__main__":
    main()
