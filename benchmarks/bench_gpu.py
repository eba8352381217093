"""GPU throughput: epoch time of ``fit`` on a dense 20000 x 20000 float32 matrix, k=32,
against the roofline measured in the same run.

Roofline of one epoch: every entry of V must be read at least once
(``t_read = bytes(V) / bandwidth``, bandwidth measured by a read-only reduction
over V and by a device-to-device copy, the better taken) and the two products
``V_B H^T`` and ``V_B^T W_B`` cost ``4 m n k`` FLOPs (``t_flop = 4mnk / rate``,
rate measured on a square float32 GEMM). Goal: epoch <= 2 x max(t_read, t_flop).

    python benchmarks/bench_gpu.py [--m 20000 --n 20000 --rank 32 --epochs 4]

Results: benchmarks/results/gpu.json and .md. Needs CuPy and a CUDA device.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def timed(fn, cupy, repeat=5):
    fn()
    cupy.cuda.Device().synchronize()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    best = np.inf
    for _ in range(repeat):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=20000)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=None, help="default: fit's 'auto'")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu"))
    args = ap.parse_args(argv)
    import cupy

    import nmf_sched

    m, n, k = args.m, args.n, args.rank
    rs = cupy.random.RandomState(0)
    Wt = rs.random_sample((m, k), dtype=cupy.float32)
    Ht = rs.random_sample((k, n), dtype=cupy.float32)
    V = Wt @ Ht
    V += 0.1 * rs.random_sample((m, n), dtype=cupy.float32)
    del Wt, Ht
    nbytes = V.nbytes
    t_sum = timed(lambda: V.sum(), cupy)
    buf = cupy.empty_like(V)
    t_copy = timed(lambda: cupy.copyto(buf, V), cupy)
    del buf
    bw = max(nbytes / t_sum, 2 * nbytes / t_copy)
    s = 8192
    A = rs.random_sample((s, s), dtype=cupy.float32)
    B = rs.random_sample((s, s), dtype=cupy.float32)
    t_gemm = timed(lambda: A @ B, cupy, repeat=3)
    rate = 2.0 * s**3 / t_gemm
    del A, B
    X = rs.random_sample((n, k), dtype=cupy.float32)
    t_skinny = timed(lambda: V @ X, cupy)  # one of the epoch's two products, for reference
    t_read = nbytes / bw
    t_flop = 4.0 * m * n * k / rate
    roof = max(t_read, t_flop)
    W0 = (rs.random_sample((m, k), dtype=cupy.float32) * 0.1)
    H0 = (rs.random_sample((k, n), dtype=cupy.float32) * 0.1)
    runs = {}
    for shuffle in ("blocks", "rows"):
        kw = dict(epochs=args.epochs, seed=0, tol=0, shuffle=shuffle, W0=W0, H0=H0)
        if args.batch_size:
            kw["batch_size"] = args.batch_size
        nmf_sched.fit(V[:4096], k, epochs=1, seed=0, W0=W0[:4096], H0=H0, tol=0)  # compile, warm up
        cupy.cuda.Device().synchronize()
        res = nmf_sched.fit(V, k, **kw)
        sec = np.diff(res.trace.column("seconds"))
        ep = float(np.median(sec[1:])) if len(sec) > 1 else float(sec[0])
        runs[shuffle] = dict(epoch_seconds=ep, all_epoch_seconds=sec.tolist(), rel_error=res.rel_error,
                             batch_size=res.settings["batch_size"], ratio_to_roofline=ep / roof)
    dev = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    out = dict(device=dev["name"].decode() if isinstance(dev["name"], bytes) else str(dev["name"]),
               m=m, n=n, rank=k, bytes_V=nbytes, bandwidth_Bps=bw, t_sum=t_sum, t_copy=t_copy,
               gemm_flops=rate, t_read=t_read, t_flop=t_flop, roofline_seconds=roof,
               t_skinny_gemm=t_skinny, runs=runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2))
    md = [f"# GPU epoch vs roofline ({out['device']}), {m} x {n} float32, k={k}", "",
          f"Measured in this run: bandwidth {bw / 1e9:.0f} GB/s, float32 GEMM {rate / 1e12:.1f} TFLOP/s.",
          f"Roofline per epoch: read V once {t_read * 1e3:.2f} ms, 4mnk FLOPs {t_flop * 1e3:.2f} ms "
          f"-> {roof * 1e3:.2f} ms. One V @ X (n x k) product alone: {t_skinny * 1e3:.2f} ms.", "",
          "| shuffle | batch | epoch (median) | x roofline | rel. error |", "|---|---|---|---|---|"]
    for sh, r in runs.items():
        md.append(f"| {sh} | {r['batch_size']} | {r['epoch_seconds'] * 1e3:.1f} ms | "
                  f"{r['ratio_to_roofline']:.2f} | {r['rel_error']:.4f} |")
    md.append("")
    Path(args.out + ".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
