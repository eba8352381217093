"""Time of one epoch against the BLAS floor, measured in the same process.

Floor (dense): ``V @ Ht`` plus ``V.T @ W`` on the same arrays, the two products
every epoch must do. Floor (sparse): the same two products with scipy.sparse.
An epoch's time is read from the trace (difference of the cumulative seconds of
consecutive epochs; it includes the exact loss, which the solver gets free).
Each configuration alternates floor and epoch measurements and reports medians.

    python benchmarks/bench_epoch.py            # full sizes
    python benchmarks/bench_epoch.py --quick    # small sizes, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import nmf_sched
from nmf_sched import datasets

HERE = os.path.dirname(os.path.abspath(__file__))


def floor_time(V, W, Ht):
    t = time.perf_counter()
    V @ Ht
    V.T @ W
    return time.perf_counter() - t


def epoch_times(V, k, batch_size, precondition, epochs):
    res = nmf_sched.fit(V, k, seed=0, epochs=epochs, batch_size=batch_size, tol=0,
                        precondition=precondition, schedule=0.5 if precondition != "none" else 1e-9,
                        init="random")
    return list(np.diff(res.trace.column("seconds"))[1:])  # drop the first (warm-up) epoch


def bench(V, k, batch_sizes, precondition, repeats, epochs):
    rng = np.random.default_rng(0)
    W = rng.random((V.shape[0], k)).astype(V.dtype)
    Ht = rng.random((V.shape[1], k)).astype(V.dtype)
    floor_time(V, W, Ht)  # warm-up
    rows = []
    for b in batch_sizes:
        floors, epochs_t = [], []
        epoch_times(V, k, b, precondition, 2)  # compile / warm caches
        for _ in range(repeats):
            floors.append(floor_time(V, W, Ht))
            epochs_t.extend(epoch_times(V, k, b, precondition, epochs))
            floors.append(floor_time(V, W, Ht))
        f, e = statistics.median(floors), statistics.median(epochs_t)
        rows.append(dict(batch_size=b if b < V.shape[0] else "full", precondition=precondition,
                         epoch_s=e, floor_s=f, ratio=e / f))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "epoch"))
    args = ap.parse_args(argv)
    m, n, k = (1000, 400, 10) if args.quick else (5000, 2000, 20)
    sm, sn = (10000, 2000) if args.quick else (100_000, 20_000)
    epochs = 3 if args.quick else 4
    results = []
    for dtype in (np.float64, np.float32):
        V = datasets.planted(m, n, k, noise=0.1, seed=0, dtype=dtype).V
        for pre in ("cd", "none"):
            for row in bench(V, k, [256, 10**9], pre, args.repeats, epochs):
                results.append(dict(case=f"dense {m}x{n} k={k} {np.dtype(dtype).name}", **row))
                print(results[-1], flush=True)
    S = datasets.sparse_tfidf(sm, sn, density=0.005, rank=20, seed=0)
    for row in bench(S, 20, [4096, 10**9], "cd", args.repeats, epochs):
        results.append(dict(case=f"sparse {sm}x{sn} 0.5% k=20 float64", **row))
        print(results[-1], flush=True)
    meta = dict(machine=platform.platform(), cpus=os.cpu_count(), numpy=np.__version__,
                quick=args.quick, repeats=args.repeats)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as fh:
        json.dump(dict(meta=meta, results=results), fh, indent=1)
    lines = ["| case | batch | precondition | epoch (s) | floor (s) | epoch / floor |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['case']} | {r['batch_size']} | {r['precondition']} | {r['epoch_s']:.4f} "
                     f"| {r['floor_s']:.4f} | {r['ratio']:.2f} |")
    with open(args.out + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
