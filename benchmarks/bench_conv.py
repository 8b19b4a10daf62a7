"""conv2d: cnnx against PyTorch (channels_last, its fastest CPU path).

    python benchmarks/bench_conv.py                 # all 11 shapes, 2 threads each
    python benchmarks/bench_conv.py --rounds 5 --only res-64@56

Both frameworks get the same number of threads (torch.set_num_threads and
cnnx.set_num_threads). Each framework runs in its own process (two OpenMP
runtimes in one process steal each other's cores); the processes alternate
for --rounds rounds and the median over all repeats of all rounds is kept.

"fwd" is the forward pass (PyTorch under no_grad). "fwd+bwd" is a forward
pass followed by the weight and bias gradients and, except for the layers
that see the network's input (3 input channels: neither framework needs dx
there), the input gradient. Ratios are PyTorch time / cnnx time: above 1
means cnnx is faster.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

# name, N, H, W, C_in, C_out, k, stride, pad, need_dx
SHAPES = [
    ("seed-conv1 N64 32x32x3->8 f5", 64, 32, 32, 3, 8, 5, 1, 0, False),
    ("seed-conv2 N64 14x14x8->16 f5", 64, 14, 14, 8, 16, 5, 1, 0, True),
    ("N32 32x32x3->64 3x3 p1", 32, 32, 32, 3, 64, 3, 1, 1, False),
    ("N32 32x32x64->64 3x3 p1", 32, 32, 32, 64, 64, 3, 1, 1, True),
    ("N8 56x56x64->64 3x3 p1", 8, 56, 56, 64, 64, 3, 1, 1, True),
    ("N8 28x28x128->128 3x3 p1", 8, 28, 28, 128, 128, 3, 1, 1, True),
    ("N8 14x14x256->256 3x3 p1", 8, 14, 14, 256, 256, 3, 1, 1, True),
    ("N8 7x7x512->512 3x3 p1", 8, 7, 7, 512, 512, 3, 1, 1, True),
    ("N8 56x56x64->128 3x3 s2 p1", 8, 56, 56, 64, 128, 3, 2, 1, True),
    ("N8 56x56x256->64 1x1", 8, 56, 56, 256, 64, 1, 1, 0, True),
    ("N8 224x224x3->64 7x7 s2 p3", 8, 224, 224, 3, 64, 7, 2, 3, False),
]


def _median_time(fn, min_time, min_reps=5):
    fn()
    fn()  # warm up: page-in, scratch buffers, thread pool
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def worker(framework, threads, only, min_time):
    import numpy as np

    rng = np.random.default_rng(0)
    res = {}
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        tf = torch.nn.functional
    else:
        import cnnx
        import cnnx.functional as F

        cnnx.set_num_threads(threads)
    for name, n, h, w_, ci, co, k, s, p, need_dx in SHAPES:
        if only and only not in name:
            continue
        x = rng.standard_normal((n, h, w_, ci), dtype=np.float32)
        w = (rng.standard_normal((k, k, ci, co), dtype=np.float32) / math.sqrt(k * k * ci))
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
                    tf.conv2d(xt, wt, bt, stride=s, padding=p)

            def fwdbwd():
                wg.grad = None
                bg.grad = None
                xg.grad = None
                y = tf.conv2d(xg, wg, bg, stride=s, padding=p)
                y.backward(dyt)
        else:
            def fwd():
                F.conv2d(x, w, b, stride=s, padding=p)

            def fwdbwd():
                F.conv2d(x, w, b, stride=s, padding=p)
                F.conv2d_backward(dy, x, w, stride=s, padding=p, need_dx=need_dx)
        res[name] = {"fwd": _median_time(fwd, min_time), "fwdbwd": _median_time(fwdbwd, min_time)}
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.25, help="seconds per measurement")
    ap.add_argument("--only", default="", help="substring of a shape name")
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--worker", choices=["cnnx", "torch"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.threads, a.only, a.min_time)
        return

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(a.threads)
    env.setdefault("PYTHONPATH", os.path.join(here, "..", "python"))
    times = {"cnnx": {}, "torch": {}}
    for r in range(a.rounds):
        for fw in (["cnnx", "torch"] if r % 2 == 0 else ["torch", "cnnx"]):
            cmd = [sys.executable, __file__, "--worker", fw, "--threads", str(a.threads),
                   "--min-time", str(a.min_time), "--only", a.only]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                sys.exit(f"{fw} worker failed:\n{out.stderr}")
            for name, d in json.loads(out.stdout.strip().splitlines()[-1]).items():
                slot = times[fw].setdefault(name, {"fwd": [], "fwdbwd": []})
                slot["fwd"] += d["fwd"]
                slot["fwdbwd"] += d["fwdbwd"]

    def med(v):
        v = sorted(v)
        return v[len(v) // 2] * 1e3

    try:
        import torch
        tv = torch.__version__
    except ImportError:
        tv = "?"
    import platform
    print(f"cnnx vs PyTorch {tv} channels_last, {a.threads} threads each, "
          f"{a.rounds} alternated rounds, median ms; ratio = torch / cnnx (>1: cnnx faster)")
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus")
    hdr = (f"| {'shape':32s} | cnnx fwd | torch fwd | ratio | cnnx f+b | torch f+b | ratio |")
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    rf, rb, rows = [], [], []
    for name, *_ in SHAPES:
        if name not in times["cnnx"]:
            continue
        c, t = times["cnnx"][name], times["torch"][name]
        cf, tf_, cb, tb = med(c["fwd"]), med(t["fwd"]), med(c["fwdbwd"]), med(t["fwdbwd"])
        rf.append(tf_ / cf)
        rb.append(tb / cb)
        rows.append({"shape": name, "cnnx_fwd": cf, "torch_fwd": tf_, "cnnx_fwdbwd": cb,
                     "torch_fwdbwd": tb})
        print(f"| {name:32s} | {cf:8.3f} | {tf_:9.3f} | {tf_ / cf:5.2f} | {cb:8.3f} | "
              f"{tb:9.3f} | {tb / cb:5.2f} |")
    gm = lambda v: math.exp(sum(map(math.log, v)) / len(v))  # noqa: E731
    print(f"| {'geomean':32s} | {'':8s} | {'':9s} | {gm(rf):5.2f} | {'':8s} | {'':9s} | "
          f"{gm(rb):5.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
