"""int8 kernels: the GEMM against the VNNI peak, and int8 vs fp32 convolution.

    python benchmarks/bench_int8.py                      # everything, 2 threads
    python benchmarks/bench_int8.py --threads 1 --cpu-time   # busy machine
    python benchmarks/bench_int8.py --gemm               # GEMM table only
    python benchmarks/bench_int8.py --conv --batches 1   # conv table only
    python benchmarks/bench_int8.py --tiles              # every SIMD int8 micro-kernel
    python benchmarks/bench_int8.py --kernel u8s16_gemm_6x16__avx2   # force one

GEMM: ``C[M,N] = requant(A[M,K] uint8 x B[K,N] int8)`` with a uint8 output
(bias and ReLU fused), weights packed once. Efficiency is against the peak of
the kernel's dot-product instruction (independent vpdpbusd chains on zmm for
AVX512-VNNI), measured in the same process on the same thread count; int8
"ops" count 2 per multiply-add, as GFLOP/s do.

Convolution: ResNet-18's distinct layer shapes at batch 1 and 16, NHWC:
cnnx int8 (``F.qconv2d``, uint8 in, uint8 out, bias + ReLU in the store,
pre-packed weights) against cnnx fp32 (``F.conv2d``, bias + ReLU fused) and,
when onnxruntime is installed, ONNX Runtime's QLinearConv (NCHW, uint8 x,
int8 per-channel w, uint8 y). Each framework runs in its own process; the
processes alternate for --rounds rounds and the best time is kept. The
"ResNet-18" row weights each layer by how often the network runs it.

Timing: wall time (perf_counter), or with --cpu-time the process CPU time,
which ignores time spent descheduled on a busy machine (1 thread only).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

GEMM_SHAPES = [
    (256, 256, 256),
    (1024, 1024, 1024),
    (3136, 576, 64),
    (784, 1152, 128),
    (196, 2304, 256),
    (49, 4608, 512),
    (12544, 147, 64),
    (1, 512, 1000),
]

# name, H=W, C_in, C_out, k, stride, pad, uses in ResNet-18
RESNET18 = [
    ("conv1 224 3->64 7x7/2", 224, 3, 64, 7, 2, 3, 1),
    ("l1 56 64->64 3x3", 56, 64, 64, 3, 1, 1, 4),
    ("l2 56 64->128 3x3/2", 56, 64, 128, 3, 2, 1, 1),
    ("l2 ds 56 64->128 1x1/2", 56, 64, 128, 1, 2, 0, 1),
    ("l2 28 128->128 3x3", 28, 128, 128, 3, 1, 1, 3),
    ("l3 28 128->256 3x3/2", 28, 128, 256, 3, 2, 1, 1),
    ("l3 ds 28 128->256 1x1/2", 28, 128, 256, 1, 2, 0, 1),
    ("l3 14 256->256 3x3", 14, 256, 256, 3, 1, 1, 3),
    ("l4 14 256->512 3x3/2", 14, 256, 512, 3, 2, 1, 1),
    ("l4 ds 14 256->512 1x1/2", 14, 256, 512, 1, 2, 0, 1),
    ("l4 7 512->512 3x3", 7, 512, 512, 3, 1, 1, 3),
]

CLOCK = time.perf_counter


def _best(fn, min_time, min_reps=3):
    fn()
    fn()  # warm up: page-in, scratch buffers, thread pool
    best, reps, start = float("inf"), 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_time:
        t0 = CLOCK()
        fn()
        best = min(best, CLOCK() - t0)
        reps += 1
    return best


def _layer_data(rng, n, h, ci, co, k):
    import numpy as np

    x = rng.integers(0, 256, (n, h, h, ci), dtype=np.uint8)
    w = rng.integers(-127, 128, (k, k, ci, co), dtype=np.int8)
    ws = rng.uniform(0.001, 0.01, co).astype(np.float32)
    b = rng.uniform(-1, 1, co).astype(np.float32)
    return x, w, ws, b


def worker(args):
    import numpy as np

    rng = np.random.default_rng(0)
    out = {"times": {}}
    if args.worker == "ort":
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        for name, h, ci, co, k, s, p, _ in RESNET18:
            for n in args.batches:
                x, w, ws, _ = _layer_data(rng, n, h, ci, co, k)
                inits = [
                    numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
                    numpy_helper.from_array(np.array(128, np.uint8), "xz"),
                    numpy_helper.from_array(np.ascontiguousarray(w.transpose(3, 2, 0, 1)), "w"),
                    numpy_helper.from_array(ws, "ws"),
                    numpy_helper.from_array(np.zeros(co, np.int8), "wz"),
                    numpy_helper.from_array(np.array(0.1, np.float32), "ys"),
                    numpy_helper.from_array(np.array(0, np.uint8), "yz"),
                ]
                node = helper.make_node(
                    "QLinearConv",
                    ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                    ["y"],
                    pads=[p] * 4,
                    strides=[s, s],
                )
                graph = helper.make_graph(
                    [node],
                    "g",
                    [helper.make_tensor_value_info("x", TensorProto.UINT8, None)],
                    [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
                    inits,
                )
                model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
                so = ort.SessionOptions()
                so.intra_op_num_threads = args.threads
                so.inter_op_num_threads = 1
                sess = ort.InferenceSession(
                    model.SerializeToString(), so, providers=["CPUExecutionProvider"]
                )
                xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
                out["times"][f"{name}|{n}"] = _best(
                    lambda: sess.run(None, {"x": xc}), args.min_time
                )
        print(json.dumps(out))
        return

    import cnnx
    import cnnx.functional as F
    from cnnx import _core

    cnnx.set_num_threads(args.threads)
    if args.kernel:
        _core._set_qgemm_kernel(args.kernel)
    out["kernel"] = _core.qgemm_kernel()
    out["isa"] = _core.active_isa()
    if args.worker == "gemm":
        out["peak_1t"] = _core.measure_qgemm_peak(1)
        out["peak"] = _core.measure_qgemm_peak(args.threads)
        out["fma_peak"] = _core.measure_fma_peak(args.threads)
        for m, k, n in GEMM_SHAPES:
            a = rng.integers(0, 256, (m, k), dtype=np.uint8)
            w = rng.integers(-128, 128, (k, n), dtype=np.int8)
            p = F.qpack_matmul(w, rng.uniform(0.001, 0.01, n).astype(np.float32))
            b = rng.uniform(-1, 1, n).astype(np.float32)
            out["times"][f"{m}x{k}x{n}"] = _best(
                lambda: F.qmatmul(
                    a, 0.02, 128, p, b=b, activation="relu", out_scale=0.1, out_zero_point=0
                ),
                args.min_time,
            )
        print(json.dumps(out))
        return
    for name, h, ci, co, k, s, p, _ in RESNET18:
        for n in args.batches:
            x, w, ws, b = _layer_data(rng, n, h, ci, co, k)
            if args.worker == "int8":
                packed = F.qpack_conv2d(w, ws)

                def fn(x=x, packed=packed, b=b, s=s, p=p):
                    return F.qconv2d(
                        x,
                        0.02,
                        128,
                        packed,
                        b=b,
                        stride=s,
                        padding=p,
                        activation="relu",
                        out_scale=0.1,
                        out_zero_point=0,
                    )
            else:
                xf = (x.astype(np.float32) - 128) * 0.02
                wf = w.astype(np.float32) * ws

                def fn(xf=xf, wf=wf, b=b, s=s, p=p):
                    return F.conv2d(xf, wf, b, stride=s, padding=p, activation="relu")

            out["times"][f"{name}|{n}"] = _best(fn, args.min_time)
    print(json.dumps(out))


def run_worker(kind, args):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--threads",
        str(args.threads),
        "--min-time",
        str(args.min_time),
        "--batches",
        *map(str, args.batches),
    ]
    if args.kernel:
        cmd += ["--kernel", args.kernel]
    if args.cpu_time:
        cmd += ["--cpu-time"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def merge(best, res):
    if best is None:
        return res
    for k, t in res["times"].items():
        best["times"][k] = min(best["times"][k], t)
    for key in ("peak", "peak_1t", "fma_peak"):
        if key in res:
            best[key] = max(best[key], res[key])
    return best


def gemm_table(args, kernel=""):
    saved = args.kernel
    args.kernel = kernel or args.kernel
    r = None
    for _ in range(args.rounds):
        r = merge(r, run_worker("gemm", args))
    args.kernel = saved
    return r


def print_gemm(r, threads):
    print(f"int8 kernel: {r['kernel']} (isa {r['isa']}), threads: {threads}")
    print(
        f"dot-product peak: {r['peak_1t']:.0f} Gops/s on 1 thread, {r['peak']:.0f} on "
        f"{threads}  (FMA peak on {threads}: {r['fma_peak']:.0f} GFLOP/s)"
    )
    print(f"| {'M x K x N':<16} | {'Gops/s':>7} | {'% of peak':>9} |")
    print(f"|{'-' * 18}|{'-' * 8}:|{'-' * 10}:|")
    for s, t in r["times"].items():
        g = 2 * math.prod(map(int, s.split("x"))) / t * 1e-9
        eff = f"{100 * g / r['peak']:>8.0f}%" if r["peak"] > 0 else f"{'-':>9}"
        print(f"| {s:<16} | {g:>7.0f} | {eff} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--worker", choices=["gemm", "int8", "fp32", "ort"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--min-time", type=float, default=0.3)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--kernel", default="", help="force an int8 micro-kernel by name")
    p.add_argument("--gemm", action="store_true", help="only the GEMM table")
    p.add_argument("--conv", action="store_true", help="only the convolution table")
    p.add_argument("--tiles", action="store_true", help="GEMM table for every int8 kernel")
    p.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by process CPU time (a busy machine, --threads 1)",
    )
    args = p.parse_args()
    if args.worker:
        global CLOCK
        if args.cpu_time:
            CLOCK = time.process_time
        return worker(args)

    print(
        f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}  threads: {args.threads}  "
        f"timer: {'process CPU time' if args.cpu_time else 'wall'}  rounds: {args.rounds}"
    )
    if args.tiles:
        from cnnx import _core

        for name in _core._qgemm_kernels():
            # (the portable kernel would take minutes on these shapes)
            if _core._qgemm_kernel_runs(name) and "generic" not in name:
                print_gemm(gemm_table(args, name), args.threads)
                print()
        return
    if not args.conv:
        print_gemm(gemm_table(args), args.threads)
        print()
    if args.gemm:
        return

    have_ort = False
    if not args.no_ort:
        try:
            import onnxruntime  # noqa: F401

            have_ort = True
        except ImportError:
            pass
    q = f = o = None
    for _ in range(args.rounds):
        q = merge(q, run_worker("int8", args))
        f = merge(f, run_worker("fp32", args))
        if have_ort:
            o = merge(o, run_worker("ort", args))
    print(f"int8 kernel: {q['kernel']} (isa {q['isa']})")
    head = (
        f"| {'layer (ResNet-18, NHWC)':<26} | {'N':>2} | {'fp32 ms':>8} | {'int8 ms':>8} | "
        f"{'int8/fp32':>9} |"
    )
    if have_ort:
        head += f" {'ORT int8 ms':>11} | {'ORT/cnnx':>8} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for n in args.batches:
        tot = {"q": 0.0, "f": 0.0, "o": 0.0}
        for name, *_, uses in RESNET18:
            key = f"{name}|{n}"
            tq, tf = q["times"][key], f["times"][key]
            tot["q"] += uses * tq
            tot["f"] += uses * tf
            row = (
                f"| {name:<26} | {n:>2} | {tf * 1e3:>8.3f} | {tq * 1e3:>8.3f} | {tf / tq:>8.2f}x |"
            )
            if have_ort:
                to = o["times"][key]
                tot["o"] += uses * to
                row += f" {to * 1e3:>11.3f} | {to / tq:>7.2f}x |"
            print(row)
        row = (
            f"| {'ResNet-18 convs (weighted)':<26} | {n:>2} | {tot['f'] * 1e3:>8.3f} | "
            f"{tot['q'] * 1e3:>8.3f} | {tot['f'] / tot['q']:>8.2f}x |"
        )
        if have_ort:
            row += f" {tot['o'] * 1e3:>11.3f} | {tot['o'] / tot['q']:>7.2f}x |"
        print(row)


if __name__ == "__main__":
    main()
