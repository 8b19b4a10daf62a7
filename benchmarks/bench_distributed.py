"""Data-parallel training on one machine: 1 rank x 2 threads vs 2 ranks x 1 thread.

    python benchmarks/bench_distributed.py                     # the seed network, 32x32x3
    python benchmarks/bench_distributed.py --input 28 28 1     # MNIST-sized
    python benchmarks/bench_distributed.py --model resnet --rounds 3 --steps 40
    python benchmarks/bench_distributed.py --predict            # the README's scaling table

Each configuration trains the network with ``model.fit`` on random data
(batch 64 per rank, SGD with momentum, cross-entropy) in its own
processes:

- ``1x2``: one plain process (no MPI) with 2 OpenMP threads, batch 64;
- ``2x1``: ``mpirun -np 2``, 1 thread per rank (pinned to its core),
  ``fit(distributed=True)``: 64 per rank, 128 per global step.

The configurations alternate for ``--rounds`` rounds; the median img/s of
each is kept and the ratio 2x1 / 1x2 printed (target: >= 0.9). For the
2-rank runs the worker also reports the share of the step time spent
inside ``Allreduce`` (the gradient average, including waiting for the
other rank) and the time of a bare Allreduce of the gradient buffer after
a barrier (the transfer alone), which the README's scaling model uses,
together with the compute time per step measured here.

``--predict`` measures the step compute time (1 thread, batch 64, CPU
time: robust on a loaded machine) of the seed network and the small ResNet
and prints the ring all-reduce model for 8, 64 and 512 ranks on 10 and
100 Gbit/s networks: each step a rank sends and receives
``2(N-1)/N x S`` bytes (``S`` = gradient bytes) in ``2(N-1)`` messages,
so ``T_comm = 2(N-1)/N x S / bandwidth + 2(N-1) x latency``, and the
scaling efficiency is ``T_compute / (T_compute + T_comm)`` (no overlap).
"eff rhd" is the same with recursive halving-doubling (Rabenseifner):
the same bytes in ``2 log2(N)`` messages.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _build(model, input_shape):
    from cnnx.teaching import lenet5, small_resnet

    if model == "lenet":
        return lenet5(input_shape=input_shape, n_classes=10)
    return small_resnet(input_shape=input_shape, n_classes=10)


def worker(args):
    import numpy as np

    import cnnx

    cnnx.set_num_threads(args.threads)
    dist = None
    rank, size = 0, 1
    if args.distributed:
        import cnnx.distributed as dist

        rank, size = dist.init()
        # time every gradient all-reduce that fit makes
        spent = [0.0, 0]
        plain = dist.allreduce_gradients

        def timed(model, average=True):
            t = time.perf_counter()
            plain(model, average)
            spent[0] += time.perf_counter() - t
            spent[1] += 1

        dist.allreduce_gradients = timed
    shape = tuple(args.input)
    cnnx.set_seed(0)
    model = _build(args.model, shape)
    model.compile(
        optimizer=cnnx.optim.SGD(lr=0.01, momentum=0.9), loss="cross_entropy", metrics=["accuracy"]
    )
    rng = np.random.default_rng(1)
    n = args.batch * size * args.steps
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    y = rng.integers(0, 10, n)
    warm = args.batch * size * 5
    model.fit(
        x[:warm], y[:warm], epochs=1, batch_size=args.batch, verbose=0, distributed=args.distributed
    )
    if dist is not None:
        spent[0], spent[1] = 0.0, 0
        dist.barrier()
    t0 = time.perf_counter()
    model.fit(
        x, y, epochs=1, batch_size=args.batch, verbose=0, seed=2, distributed=args.distributed
    )
    if dist is not None:
        dist.barrier()
    seconds = time.perf_counter() - t0
    res = {
        "config": f"{size}x{args.threads}",
        "model": args.model,
        "params": int(model.count_params()),
        "img_s": n / seconds,
        "step_ms": 1e3 * seconds / args.steps,
        "steps": args.steps,
        "batch_per_rank": args.batch,
    }
    if dist is not None:
        assert spent[1] == args.steps, spent
        share = spent[0] / seconds
        bare = []
        g = model.store.grads
        for _ in range(30):
            dist.barrier()
            t = time.perf_counter()
            dist.allreduce(g, average=True)
            bare.append(time.perf_counter() - t)
        shares = dist._world().gather(share, root=0)
        bare_ms = 1e3 * statistics.median(bare)
        res.update(
            allreduce_share=max(shares) if rank == 0 else share,
            allreduce_share_ranks=shares,
            allreduce_bare_ms=bare_ms,
            grad_bytes=int(g.nbytes),
        )
    if rank == 0:
        print("RESULT " + json.dumps(res), flush=True)


LINKS = {  # name: (bytes/s, per-message latency in s); latencies are assumptions, see README
    "10 Gbit/s": (10e9 / 8, 20e-6),  # Ethernet, TCP
    "100 Gbit/s": (100e9 / 8, 2e-6),  # InfiniBand / RoCE (RDMA)
}
RANKS = (8, 64, 512)


def measure_compute(model, shape, batch, steps=40):
    """Median CPU seconds of one training step on 1 thread (in this process)."""
    import numpy as np

    import cnnx

    cnnx.set_num_threads(1)
    cnnx.set_seed(0)
    m = _build(model, shape)
    m.compile(optimizer=cnnx.optim.SGD(lr=0.01, momentum=0.9), loss="cross_entropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(shape)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    for _ in range(5):
        m.train_on_batch(x, y)
    cpu, wall = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        m.train_on_batch(x, y)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return {
        "model": model,
        "input": list(shape),
        "batch": batch,
        "params": m.count_params(),
        "grad_bytes": int(m.store.grads.nbytes),
        "cpu_s": statistics.median(cpu),
        "wall_min_s": min(wall),
    }


def ring_time(n, nbytes, bandwidth, latency):
    """(bandwidth term, latency term) of one ring all-reduce in seconds."""
    return 2 * (n - 1) / n * nbytes / bandwidth, 2 * (n - 1) * latency


def predict(batch):
    cases = [("lenet", (32, 32, 3)), ("resnet", (28, 28, 1))]
    rows = []
    for model, shape in cases:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--measure",
            model,
            "--input",
            *map(str, shape),
            "--batch",
            str(batch),
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            raise RuntimeError(p.stdout + p.stderr)
        rows.append(json.loads(line[0][7:]))
    print(
        "Ring all-reduce model: T_comm = 2(N-1)/N x S / bandwidth + 2(N-1) x latency; "
        "efficiency = T_c / (T_c + T_comm)"
    )
    print("latencies assumed: " + ", ".join(f"{k}: {1e6 * v[1]:.0f} us" for k, v in LINKS.items()))
    for r in rows:
        tc = r["cpu_s"]
        t_img = tc / r["batch"]
        print(
            f"\n{r['model']} {'x'.join(map(str, r['input']))}: {r['params']:,} parameters, "
            f"S = {r['grad_bytes']:,} bytes, T_c = {1e3 * tc:.1f} ms/step "
            f"(1 thread, batch {r['batch']} per rank)"
        )
        print(
            f"  {'link':<11}{'ranks':>6}{'bytes/rank':>12}{'T_bw ms':>9}{'T_lat ms':>9}"
            f"{'eff bw only':>12}{'eff ring':>9}{'batch for 90%':>15}{'eff rhd':>9}"
        )
        for link, (bw, lat) in LINKS.items():
            for n in RANKS:
                t_bw, t_lat = ring_time(n, r["grad_bytes"], bw, lat)
                need = 9 * (t_bw + t_lat) / t_img  # T_c(b) = b * t_img >= 9 T_comm
                print(
                    f"  {link:<11}{n:>6}{2 * (n - 1) / n * r['grad_bytes']:>12,.0f}"
                    f"{1e3 * t_bw:>9.3f}{1e3 * t_lat:>9.3f}{tc / (tc + t_bw):>12.3f}"
                    f"{tc / (tc + t_bw + t_lat):>9.3f}{need:>15.0f}"
                    f"{tc / (tc + t_bw + 2 * math.log2(n) * lat):>9.3f}"
                )
        for link, (bw, _lat) in LINKS.items():
            # bandwidth alone stays under 10% of the compute while 2 S / bw <= T_c / 9
            s_max = tc * bw / 18
            print(
                f"  {link}: the bandwidth term passes 10% of T_c = {1e3 * tc:.1f} ms at "
                f"S = {s_max / 1e6:.2f} MB ({s_max / 4 / 1e6:.2f} M float32 parameters)"
            )


def _mpi_command(ranks):
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        sys.exit(
            "bench_distributed: mpirun not found (apt-get install openmpi-bin "
            "libopenmpi-dev, or pip install mpich) and pip install mpi4py"
        )
    ver = subprocess.run([mpirun, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in ver or "OpenRTE" in ver:
        flags = ["--bind-to", "core"]
        if ranks > (os.cpu_count() or 1):
            flags = ["--oversubscribe", "--bind-to", "none"]
        return [mpirun, "-np", str(ranks)] + flags, ver.splitlines()[0]
    return [mpirun, "-np", str(ranks), "-bind-to", "core"], ver.splitlines()[0] if ver else "MPI"


def _run(cmd, threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    roots = [os.path.dirname(p) for p in __import__("cnnx").__path__]  # this cnnx
    env["PYTHONPATH"] = os.pathsep.join(
        roots + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--model", choices=["lenet", "resnet"], default="lenet")
    ap.add_argument("--input", type=int, nargs=3, default=[32, 32, 3], metavar=("H", "W", "C"))
    ap.add_argument("--batch", type=int, default=64, help="per rank (default 64)")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--predict", action="store_true", help="the scaling model (README table)")
    ap.add_argument("--measure", choices=["lenet", "resnet"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print("RESULT " + json.dumps(measure_compute(args.measure, args.input, args.batch)))
        return
    if args.predict:
        return predict(args.batch)
    common = [
        "--model",
        args.model,
        "--input",
        *map(str, args.input),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
    ]
    if args.worker:
        return worker(args)

    import cnnx

    r = args.ranks
    mpi, mpi_name = _mpi_command(r)
    single = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(r)] + common
    multi = (
        mpi
        + [sys.executable, os.path.abspath(__file__), "--worker", "--distributed", "--threads", "1"]
        + common
    )
    print(
        f"cnnx {cnnx.__version__} ({cnnx.info()['isa']}), {os.cpu_count()} cores, {mpi_name}; "
        f"{args.model} on {'x'.join(map(str, args.input))}, batch {args.batch} per rank, "
        f"{args.steps} steps per run, load average {os.getloadavg()[0]:.1f}"
    )
    one, many = [], []
    for i in range(args.rounds):
        a = _run(single, r)
        b = _run(multi, 1)
        one.append(a)
        many.append(b)
        print(
            f"round {i + 1}: 1x{r} {a['img_s']:8.0f} img/s   {r}x1 {b['img_s']:8.0f} img/s   "
            f"ratio {b['img_s'] / a['img_s']:.2f}   Allreduce {100 * b['allreduce_share']:.1f}% "
            f"of the step (bare {b['allreduce_bare_ms']:.3f} ms for "
            f"{b['grad_bytes'] / 1e3:.0f} kB)",
            flush=True,
        )
    a_med = statistics.median(x["img_s"] for x in one)
    b_med = statistics.median(x["img_s"] for x in many)
    share = statistics.median(x["allreduce_share"] for x in many)
    bare = statistics.median(x["allreduce_bare_ms"] for x in many)
    step1 = statistics.median(x["step_ms"] for x in one)
    step_r = statistics.median(x["step_ms"] for x in many)
    print()
    print(f"{'config':<22}{'img/s':>10}{'ms/step':>10}")
    print(f"{f'1 rank x {r} threads':<22}{a_med:>10.0f}{step1:>10.2f}")
    print(f"{f'{r} ranks x 1 thread':<22}{b_med:>10.0f}{step_r:>10.2f}")
    print(f"ratio {r}x1 / 1x{r}: {b_med / a_med:.2f} (target >= 0.9)")
    print(
        f"Allreduce share of the {r}-rank step: {100 * share:.1f}% (median); bare Allreduce "
        f"of {many[0]['grad_bytes']:,} bytes: {bare:.3f} ms; compute per step "
        f"{step_r * (1 - share):.2f} ms; {many[0]['params']:,} parameters"
    )
    if args.json:
        print(json.dumps({"one": one, "many": many, "ratio": b_med / a_med}))


if __name__ == "__main__":
    main()
