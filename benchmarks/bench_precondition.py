"""Which preconditioner should be the default? Error after a fixed epoch budget.

Each preconditioner runs with its natural constant LR (cd/gram/lipschitz: 1.0 in
their dimensionless unit; none: the initial-LR rule, half the ceiling at the
init) and with ``schedule="auto"``, same seed, same default batch size, and is
compared with a scikit-learn coordinate-descent reference (400 iterations,
``init="nndsvda"``) on the same matrix.

    python benchmarks/bench_precondition.py [--epochs 100] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

import nmf_sched
from nmf_sched import datasets

HERE = os.path.dirname(os.path.abspath(__file__))


def problems(quick):
    out = {"digits k=10": (datasets.digits(), 10), "faces k=20": (datasets.faces(), 20)}
    if not quick:
        out["planted 2000x1000 k=20"] = (datasets.planted(2000, 1000, 20, noise=0.1, seed=0).V, 20)
        out["camera patches 20000x64 k=16"] = (datasets.camera_patches()[:20000], 16)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "precondition"))
    args = ap.parse_args(argv)
    from sklearn.decomposition import NMF

    runs = {
        "cd, lr 1.0": dict(precondition="cd", schedule=1.0),
        "cd, auto": dict(precondition="cd", schedule="auto"),
        "gram, lr 1.0": dict(precondition="gram", schedule=1.0),
        "gram, auto": dict(precondition="gram", schedule="auto"),
        "lipschitz, lr 1.0": dict(precondition="lipschitz", schedule=1.0),
        "none, lr0 = ceiling/2": dict(precondition="none", schedule=("constant", {"lr": "bound"})),
    }
    rows = []
    for pname, (V, k) in problems(args.quick).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            ref = NMF(k, init="nndsvda", max_iter=400, tol=1e-10, random_state=0).fit(V)
            t_ref = time.perf_counter() - t
        e_ref = ref.reconstruction_err_ / np.linalg.norm(V)
        for rname, kw in runs.items():
            r = nmf_sched.fit(V, k, seed=0, epochs=args.epochs, tol=0, **kw)
            e = r.trace.column("rel_error") / e_ref
            rows.append(dict(problem=pname, run=rname, ref_rel_error=e_ref, ref_seconds=t_ref,
                             ratio_10=float(e[min(10, len(e) - 1)]),
                             ratio_30=float(e[min(30, len(e) - 1)]),
                             ratio_final=float(e[-1]), epochs=r.n_epochs, seconds=r.seconds,
                             stop_reason=r.stop_reason))
            print(rows[-1], flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as fh:
        json.dump(dict(epochs=args.epochs, rows=rows), fh, indent=1)
    lines = [f"Relative error / scikit-learn CD reference error after 10, 30 and {args.epochs} epochs "
             "(1.00 = the reference; below 1 = better).", "",
             "| problem | run | @10 | @30 | @final | seconds | stop |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['problem']} | {r['run']} | {r['ratio_10']:.3f} | {r['ratio_30']:.3f} | "
                     f"{r['ratio_final']:.3f} | {r['seconds']:.2f} | {r['stop_reason']} |")
    with open(args.out + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
