"""Time of one epoch against the BLAS floor and against one scikit-learn CD iteration.

Floor (dense): ``V @ Ht`` plus ``V.T @ W`` on the same arrays, the two products every epoch
must do. Floor (sparse): the same two products with scipy.sparse. CD iteration: one
iteration of scikit-learn's coordinate descent (``_fit_coordinate_descent``, ``max_iter``
iterations timed together and divided) from the same random factors. An epoch's time is
read from the trace (difference of the cumulative seconds of consecutive epochs; it includes
the exact loss, which the solver gets free).

The init part times the NNDSVDA init (this package's, with the settings of before the
change reproduced through ``nmf_sched.init``'s constants, and scikit-learn's
``_initialize_nmf``) and reports the relative error of plain NNDSVD (no fill) for each.

Every configuration runs each *variant* of the step in the same process, interleaved with
the floor, and reports medians:

* ``python``: the Python step (``nmf_sched.engine.fused`` off: the code before the fused step);
* ``fused``: the fused step with the default thread count and block rule;
* ``fused-2t``: the fused step with 2 threads for the gather and the sweeps;
* ``fused-unblocked`` (rank sweep): the fused step without coordinate blocks.

    python benchmarks/bench_epoch.py            # full sizes
    python benchmarks/bench_epoch.py --quick    # small sizes, seconds
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import numpy as np

import nmf_sched
from nmf_sched import datasets
from nmf_sched.engine import fused

HERE = os.path.dirname(os.path.abspath(__file__))

#: variant -> (fused on, threads, block)
VARIANTS = {"python": (False, None, None), "fused": (True, None, None),
            "fused-2t": (True, 2, None), "fused-unblocked": (True, None, 0)}


def floor_time(V, W, Ht):
    t = time.perf_counter()
    V @ Ht
    V.T @ W
    return time.perf_counter() - t


def epoch_times(V, k, batch_size, variant, epochs):
    on, threads, block = VARIANTS[variant]
    prev = fused.set_enabled(on)
    fused.set_threads(threads)
    fused.set_block(block)
    try:
        res = nmf_sched.fit(V, k, seed=0, epochs=epochs, batch_size=batch_size, tol=0,
                            precondition="cd", schedule=0.5, init="random")
    finally:
        fused.set_enabled(prev)
        fused.set_threads(None)
        fused.set_block(None)
    return list(np.diff(res.trace.column("seconds"))[1:])  # drop the first (warm-up) epoch


def cd_iteration_time(V, W, Ht, iters):
    from sklearn.decomposition._nmf import _fit_coordinate_descent

    W, H = W.copy(), np.ascontiguousarray(Ht.T)
    t = time.perf_counter()
    _fit_coordinate_descent(V, W, H, tol=0.0, max_iter=iters)
    return (time.perf_counter() - t) / iters


def bench(V, k, batch_sizes, variants, repeats, epochs, cd_iters=0):
    rng = np.random.default_rng(0)
    W = rng.random((V.shape[0], k)).astype(V.dtype)
    Ht = rng.random((V.shape[1], k)).astype(V.dtype)
    floor_time(V, W, Ht)  # warm-up
    if cd_iters:
        cd_iteration_time(V, W, Ht, 1)
    rows = []
    for b in batch_sizes:
        for v in variants:
            epoch_times(V, k, b, v, 1)  # compile / warm caches
        floors, cds, ep = [], [], {v: [] for v in variants}
        for _ in range(repeats):
            for v in variants:
                floors.append(floor_time(V, W, Ht))
                ep[v].extend(epoch_times(V, k, b, v, epochs))
            if cd_iters:
                cds.append(cd_iteration_time(V, W, Ht, cd_iters))
            floors.append(floor_time(V, W, Ht))
        f = statistics.median(floors)
        cd = statistics.median(cds) if cds else float("nan")
        for v in variants:
            e = statistics.median(ep[v])
            rows.append(dict(k=k, batch_size=b if b < V.shape[0] else "full", variant=v,
                             epoch_s=e, floor_s=f, ratio=e / f, cd_iter_s=cd, per_cd=e / cd))
            print(rows[-1], flush=True)
    return rows


#: init settings: the current ones and those before the change (7 QR power iterations, exact
#: SVD up to min(m, n) = 1000), reproduced through the module's constants
INIT_SETTINGS = {"nndsvda (current)": None,
                 "nndsvda (before: 7 QR iterations, exact SVD to min dim 1000)": ("auto", "qr", 1000)}


def _init_error(V, W, H):
    import scipy.sparse as sp

    vsq = float(V.multiply(V).sum()) if sp.issparse(V) else float(np.vdot(V, V))
    cross = float(np.vdot(W, np.asarray(V @ H.T)))
    return math.sqrt(max(vsq - 2 * cross + float(np.vdot(W.T @ W, H @ H.T)), 0.0) / vsq)


def bench_init(cases, repeats):
    """Seconds of the NNDSVDA init (this package, now and before) and of scikit-learn's, and
    the relative error of the init (plain NNDSVD: no fill, the SVD's own quality)."""
    from sklearn.decomposition._nmf import _initialize_nmf

    from nmf_sched import init as I

    saved = (I._INIT_POWER_ITERS, I._INIT_NORMALIZER, I._EXACT_MAX_DIM)  # the before settings
    # use 7 QR iterations on every size, so _INIT_CHEAP_ENTRIES does not matter for them
    rows = []
    for name, V, k in cases:
        times = {s: [] for s in INIT_SETTINGS}
        times["scikit-learn nndsvda"] = []
        errs = {}
        for _ in range(repeats):
            for s, old in INIT_SETTINGS.items():
                if old is not None:
                    I._INIT_POWER_ITERS, I._INIT_NORMALIZER, I._EXACT_MAX_DIM = old
                try:
                    t = time.perf_counter()
                    I.initialize(V, k, "nndsvda", seed=0)
                    times[s].append(time.perf_counter() - t)
                    errs[s] = _init_error(V, *I.initialize(V, k, "nndsvd", seed=0))
                finally:
                    I._INIT_POWER_ITERS, I._INIT_NORMALIZER, I._EXACT_MAX_DIM = saved
            t = time.perf_counter()
            W, H = _initialize_nmf(V, k, init="nndsvda", random_state=0)
            times["scikit-learn nndsvda"].append(time.perf_counter() - t)
            errs["scikit-learn nndsvda"] = _init_error(V, *_initialize_nmf(V, k, init="nndsvd",
                                                                           random_state=0))
        sk = statistics.median(times["scikit-learn nndsvda"])
        for s, ts in times.items():
            rows.append(dict(case=name, k=k, init=s, seconds=statistics.median(ts),
                             per_sklearn=statistics.median(ts) / sk, nndsvd_rel_error=errs[s]))
            print(rows[-1], flush=True)
    return rows


def bench_batch(cases, batch_sizes, budget, repeats):
    """Seconds to ``(1 + d) x`` the best error any run of a shape reached (d = 0.1, 0.01), per
    batch size (``schedule="auto"``, default init, ``max_time=budget``; times from the trace,
    the init excluded); medians over repeats (seeds 0..), a run that never reaches: inf."""
    rows = []
    for name, V, k in cases:
        nmf_sched.fit(V, k, epochs=1, batch_size=256, seed=0)  # warm-up
        curves = {b: [] for b in batch_sizes}
        for rep in range(repeats):
            for b in batch_sizes:
                res = nmf_sched.fit(V, k, schedule="auto", epochs=10**6, tol=0, max_time=budget,
                                    batch_size=b, seed=rep)
                curves[b].append((list(res.trace.column("seconds")),
                                  list(res.trace.column("rel_error"))))
        best = min(min(e) for runs in curves.values() for _, e in runs)
        for b in batch_sizes:
            row = dict(case=name, k=k, batch_size=b, best=best)
            for d in (0.1, 0.01):
                ts = []
                for t, e in curves[b]:
                    hit = [tt for tt, ee in zip(t, e) if ee <= (1 + d) * best]
                    ts.append(hit[0] if hit else math.inf)
                row[f"s_to_{d}"] = statistics.median(ts)
            row["epochs"] = statistics.median(len(t) - 1 for t, _ in curves[b])
            rows.append(row)
            print(row, flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", nargs="+", default=["floor", "ranks", "init"],
                    choices=["floor", "ranks", "init", "batch"])
    ap.add_argument("--budget", type=float, default=4.0, help="seconds per run (batch part)")
    ap.add_argument("--no-sparse", action="store_true", help="dense cases only")
    ap.add_argument("--variants", nargs="+", default=["python", "fused", "fused-2t"],
                    choices=list(VARIANTS), help="variants of the floor part")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "epoch"))
    args = ap.parse_args(argv)
    m, n, k = (600, 200, 6) if args.quick else (5000, 2000, 20)
    sm, sn = (3000, 1000) if args.quick else (100_000, 20_000)
    epochs = 2 if args.quick else 4
    ranks = (4, 12) if args.quick else (10, 50, 100, 200)
    base = args.variants
    results = []
    if "floor" in args.parts:
        for dtype in (np.float64, np.float32):
            V = datasets.planted(m, n, k, noise=0.1, seed=0, dtype=dtype).V
            for row in bench(V, k, [256, 10**9] if args.quick else [256, 1024, 10**9], base,
                             args.repeats, epochs):
                results.append(dict(part="floor", case=f"dense {m}x{n} {np.dtype(dtype).name}", **row))
        if not args.no_sparse:
            S = datasets.sparse_tfidf(sm, sn, density=0.005, rank=20, seed=0)
            for row in bench(S, 20, [1024, 4096], base, args.repeats, epochs):
                results.append(dict(part="floor", case=f"sparse {sm}x{sn} 0.5% float64", **row))
    if "ranks" in args.parts:
        V = datasets.planted(m, n, 10, noise=0.1, seed=0).V
        for r in ranks:
            for row in bench(V, r, [1024], ["python", "fused", "fused-unblocked"], args.repeats,
                             epochs, cd_iters=2 if args.quick else 3):
                results.append(dict(part="ranks", case=f"dense {m}x{n} float64", **row))
        T = datasets.source_tfidf() if not args.quick else \
            datasets.sparse_tfidf(sm, sn, density=0.005, rank=20, seed=0)
        tm, tn = T.shape
        for r in ranks if not args.no_sparse else ():
            for row in bench(T, r, [1024], ["python", "fused"], args.repeats, epochs,
                             cd_iters=2 if args.quick else 3):
                results.append(dict(part="ranks", case=f"sparse {tm}x{tn} source_tfidf", **row))
    init_rows = []
    if "init" in args.parts:
        from nmf_sched.datasets import digits

        cases = [("digits 1797x64", digits(), 10),
                 (f"planted {m // 5 * 2}x{n // 2}", datasets.planted(m // 5 * 2, n // 2, 10, noise=0.1,
                                                                      seed=0).V, 10),
                 (f"planted {m}x{n}", datasets.planted(m, n, 20, noise=0.1, seed=0).V, 20)]
        if not args.quick:
            cases.append(("source_tfidf 1760x20000 CSR", datasets.source_tfidf(), 20))
        cases = cases[1:] if args.quick else cases
        cases.append((f"sparse {sm}x{sn} 0.5%",
                      datasets.sparse_tfidf(sm, sn, density=0.005, rank=20, seed=0), 20))
        init_rows = bench_init(cases, args.repeats)
    batch_rows = []
    if "batch" in args.parts:
        sc = 10 if args.quick else 1
        cases = [(f"tall {50000 // sc}x200", datasets.planted(50000 // sc, 200, 10, noise=0.1,
                                                              seed=0).V, 10),
                 (f"wide 1000x{20000 // sc}", datasets.planted(1000, 20000 // sc, 10, noise=0.1,
                                                               seed=0).V, 10),
                 (f"square {m}x{n}", datasets.planted(m, n, 20, noise=0.1, seed=0).V, 20),
                 (f"sparse {20000 // sc}x10000 0.5%",
                  datasets.sparse_tfidf(20000 // sc, 10000, density=0.005, rank=20, seed=0), 20)]
        batch_rows = bench_batch(cases, ["auto", 256, 1024, 4096, 10**9], args.budget / sc,
                                 args.repeats)
    meta = dict(machine=platform.platform(), cpus=os.cpu_count(), numpy=np.__version__,
                quick=args.quick, repeats=args.repeats, load=os.getloadavg()[0],
                blas_threads=os.environ.get("OPENBLAS_NUM_THREADS", "default"))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as fh:
        json.dump(dict(meta=meta, results=results, init=init_rows, batch=batch_rows), fh,
                  indent=1)
    lines = [f"Load average at the end: {meta['load']:.1f} (2 cores); OPENBLAS_NUM_THREADS="
             f"{meta['blas_threads']}. Medians of {args.repeats} interleaved repeats.", "",
             "| case | k | batch | variant | epoch (s) | floor (s) | epoch / floor | CD iteration (s) "
             "| epoch / CD iteration |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cd = "-" if r["cd_iter_s"] != r["cd_iter_s"] else f"{r['cd_iter_s']:.4f}"
        pc = "-" if r["per_cd"] != r["per_cd"] else f"{r['per_cd']:.2f}"
        lines.append(f"| {r['case']} | {r['k']} | {r['batch_size']} | {r['variant']} "
                     f"| {r['epoch_s']:.4f} | {r['floor_s']:.4f} | {r['ratio']:.2f} | {cd} | {pc} |")
    if init_rows:
        lines += ["", "| data | k | init | seconds | / scikit-learn's | NNDSVD rel. error |",
                  "|---|---|---|---|---|---|"]
        for r in init_rows:
            lines.append(f"| {r['case']} | {r['k']} | {r['init']} | {r['seconds']:.4f} "
                         f"| {r['per_sklearn']:.2f} | {r['nndsvd_rel_error']:.5f} |")
    if batch_rows:
        lines += ["", "| data | k | batch | s to 1.1 x best | s to 1.01 x best | epochs in budget |",
                  "|---|---|---|---|---|---|"]
        for r in batch_rows:
            lines.append(f"| {r['case']} | {r['k']} | {r['batch_size']} | {r['s_to_0.1']:.3g} "
                         f"| {r['s_to_0.01']:.3g} | {r['epochs']:.0f} |")
    with open(args.out + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
