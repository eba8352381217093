"""Regularized NMF: nmf-sched against scikit-learn ``NMF(solver="cd")`` with the same penalties.

Run through ``python benchmarks/bench_peers.py --regularized [--quick]`` (this module holds
the experiment; bench_peers.py its clock, hooks and command line).

Protocol (one process; nothing asserted):

* Objective: scikit-learn's regularized Frobenius objective (:mod:`nmf_sched.sklearn_compat`)
  with ``alpha_W = alpha_H = alpha`` and ``l1_ratio``, evaluated for both methods by one
  function (Gram identity, float64) with the clock paused (bench_peers.Clock).
* Methods: ``nmf_sched.fit(schedule="auto", alpha_W, l1_ratio)`` (cd preconditioner, default
  batch size, ``tol=0``, until the budget) and ``NMF(solver="cd", alpha_W, l1_ratio,
  tol=0)`` hooked around ``_update_coordinate_descent`` as in bench_peers. Same init for
  both: NNDSVDA + the init rule (bench_peers.shared_init), given as a custom init.
* Reference: a long CD run (``ref_factor`` x the budget); the target is 1.01 x the min of
  the reference and every run's best objective. Reported: seconds to the target for each
  method (median over repeats, nmf-sched seed = repeat) and their ratio.
* Sparsity (faces, scikit-image's ``lfw_subset``, 200 x 625, k = 20): fraction of exact zeros
  of ``H`` (the parts) and of ``W`` for SGDNMF without a penalty and with L1
  (``l1_ratio=1``), and the relative error of each.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time

import numpy as np

import nmf_sched
from nmf_sched import datasets
from nmf_sched.sklearn_compat import penalties

#: name -> (label, loader, rank, budget seconds, alpha, l1_ratio)
FULL = {
    "digits": ("digits 1797x64", datasets.digits, 10, 3.0, 2e-3, 0.5),
    "faces": ("faces 200x625", datasets.faces, 20, 3.0, 2e-4, 0.5),
    "planted-2000x1000": ("planted 2000x1000 k=10",
                          lambda: datasets.planted(2000, 1000, 10, noise=0.1, seed=0).V, 10, 5.0,
                          1e-4, 0.5),
}
QUICK = {
    "digits": ("digits 1797x64", datasets.digits, 10, 1.0, 2e-3, 0.5),
    "planted-400x300": ("planted 400x300 k=5",
                        lambda: datasets.planted(400, 300, 5, noise=0.1, seed=0).V, 5, 0.5,
                        1e-4, 0.5),
}


def make_objective(V, alpha, l1_ratio):
    """``(W, H) -> F(W, H)`` (scikit-learn's objective; float64, Gram identity)."""
    l1W, l2W, l1H, l2H = penalties(alpha, "same", l1_ratio, *V.shape)
    vsq = float(np.vdot(V, V))

    def f(W, H):
        cross = float(np.vdot(W, np.asarray(V @ H.T)))
        quad = float(np.vdot(W.T @ W, H @ H.T))
        return (0.5 * max(vsq - 2.0 * cross + quad, 0.0) + l1W * float(W.sum())
                + 0.5 * l2W * float(np.vdot(W, W)) + l1H * float(H.sum())
                + 0.5 * l2H * float(np.vdot(H, H)))

    return f


def run_ours(bp, V, k, W0, H0, clock, alpha, l1_ratio, seed):
    def cb(record, W, H):
        return clock.tick(W, H, n=record["epoch"])

    clock.start()
    res = nmf_sched.fit(V, k, schedule="auto", W0=W0.copy(), H0=H0.copy(), seed=seed, tol=0.0,
                        epochs=bp.BIG, callback=cb, alpha_W=alpha, l1_ratio=l1_ratio)
    clock.finish(res.W, res.H)
    return {"stop": res.stop_reason, "n_iter": res.n_epochs}


def run_cd(bp, V, k, W0, H0, clock, alpha, l1_ratio):
    info, _ = bp.run_nmf(V, k, W0, H0, clock, "cd", alpha_W=alpha, l1_ratio=l1_ratio)
    return {"stop": info["stop"], "n_iter": info["n_iter"]}


def bench(bp, key, spec, repeats, ref_factor, log):
    label, loader, k, budget, alpha, l1_ratio = spec
    V = np.ascontiguousarray(loader(), dtype=np.float64)
    W0, H0, _ = bp.shared_init(V, k, "nndsvda-rescaled")
    f = make_objective(V, alpha, l1_ratio)
    f0 = f(W0, H0)
    gap = budget / 300

    ref_clock = bp.Clock(f, budget * ref_factor, gap, f0)
    run_cd(bp, V, k, W0, H0, ref_clock, alpha, l1_ratio)
    runs = {"nmf-sched auto": [], "sklearn NMF cd": []}
    for r in range(repeats):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            clock = bp.Clock(f, budget, gap, f0)
            info = (run_ours(bp, V, k, W0, H0, clock, alpha, l1_ratio, seed=r)
                    if name.startswith("nmf") else run_cd(bp, V, k, W0, H0, clock, alpha, l1_ratio))
            runs[name].append(dict(info, curve={"t": clock.t, "obj": clock.err}))
    ref = min([min(ref_clock.err)] + [min(x["curve"]["obj"]) for v in runs.values() for x in v])
    target = 1.01 * ref
    out = {"label": label, "rank": k, "budget": budget, "alpha": alpha, "l1_ratio": l1_ratio,
           "reference": ref, "reference_cd_long": min(ref_clock.err), "target": target}
    for name, rs in runs.items():
        secs = [bp.seconds_to(x["curve"]["t"], x["curve"]["obj"], target, budget) for x in rs]
        best = [min(x["curve"]["obj"]) for x in rs]
        out[name] = {"seconds": statistics.median(secs), "all_seconds": secs,
                     "best_over_ref": statistics.median(best) / ref,
                     "n_iter": [x["n_iter"] for x in rs]}
    a, b = out["nmf-sched auto"]["seconds"], out["sklearn NMF cd"]["seconds"]
    out["time_ratio"] = a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else None
    log(f"{key}: target {target:.6g}; nmf-sched {a:.3g} s, CD {b:.3g} s, ratio "
        f"{out['time_ratio']}; best/ref {out['nmf-sched auto']['best_over_ref']:.4f} vs "
        f"{out['sklearn NMF cd']['best_over_ref']:.4f}")
    return out


def sparsity(log, alpha=1e-3, epochs=300):
    """Zeros of H and W on faces without and with the L1 penalty (SGDNMF, k = 20)."""
    from nmf_sched import SGDNMF

    V = datasets.faces()
    out = {"data": "faces (scikit-image lfw_subset) 200x625", "rank": 20, "alpha": alpha,
           "epochs": epochs}
    for name, a in (("no penalty", 0.0), ("L1", alpha)):
        est = SGDNMF(20, alpha_W=a, l1_ratio=1.0, max_iter=epochs, random_state=0)
        W = est.fit_transform(V)
        H = est.components_
        out[name] = {"zeros_H": float(np.mean(H == 0)), "zeros_W": float(np.mean(W == 0)),
                     "rel_error": float(np.linalg.norm(V - W @ H) / np.linalg.norm(V)),
                     "mean_nonzeros_per_component": float(np.mean((H > 0).sum(axis=1)))}
        log(f"faces {name}: zeros H {out[name]['zeros_H']:.3f}, W {out[name]['zeros_W']:.3f}, "
            f"rel_error {out[name]['rel_error']:.4f}")
    return out


def main(bp, args, log):
    specs = QUICK if args.quick else FULL
    if args.datasets:
        specs = {k: v for k, v in specs.items() if k in args.datasets}
    repeats = args.repeats or (1 if args.quick else 3)
    ref_factor = args.ref_factor or (2.0 if args.quick else 3.0)
    t0 = time.perf_counter()
    res = {"datasets": {k: bench(bp, k, s, repeats, ref_factor, log) for k, s in specs.items()},
           "repeats": repeats, "ref_factor": ref_factor}
    res["sparsity"] = sparsity(log, epochs=100 if args.quick else 300)
    res["seconds"] = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "peers_regularized" + ("_quick" if args.quick else ""))
    with open(stem + ".json", "w") as fh:
        json.dump(bp.clean(res), fh, indent=1)
    write_md(res, stem + ".md")
    log(f"wrote {stem}.json/.md in {res['seconds']:.0f} s")
    return res


def _iters(run):
    """The runs' iteration counts (epochs / CD iterations within the budget): the column
    that shows how much machine time each got (a loaded machine gives both fewer)."""
    return ", ".join(str(n) for n in run["n_iter"])


def write_md(res, path):
    """The table of seconds to the target and best objective / reference, and the sparsity."""
    def sec(v):
        return "not reached" if v is None or not math.isfinite(v) else f"{v:.3g}"

    lines = ["# Regularized NMF: nmf-sched vs scikit-learn CD (same penalties)", "",
             f"Median of {res['repeats']} runs; reference: the best of a CD run "
             f"{res['ref_factor']:g} x the budget and every run. Iteration counts per run "
             "in the last columns (epochs of nmf-sched, iterations of CD within the budget).", "",
             "| data | budget s | alpha | l1_ratio | target (1.01 x ref) | nmf-sched s | CD s | "
             "ratio | nmf-sched best / ref | CD best / ref | nmf-sched epochs | CD iterations |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in res["datasets"].values():
        ours, cd = d["nmf-sched auto"], d["sklearn NMF cd"]
        ratio = "-" if d["time_ratio"] is None else f"{d['time_ratio']:.2f}"
        lines.append(f"| {d['label']} | {d['budget']:g} | {d['alpha']:g} | {d['l1_ratio']:g} | "
                     f"{d['target']:.6g} | {sec(ours['seconds'])} | {sec(cd['seconds'])} | {ratio} | "
                     f"{ours['best_over_ref']:.4f} | {cd['best_over_ref']:.4f} | "
                     f"{_iters(ours)} | {_iters(cd)} |")
    s = res["sparsity"]
    lines += ["", f"Sparsity on {s['data']}, k = {s['rank']}, alpha_W = {s['alpha']:g}, "
              f"l1_ratio = 1, {s['epochs']} epochs:", "",
              "| fit | zeros in H | zeros in W | nonzeros per component (of 625) | rel. error |",
              "|---|---|---|---|---|"]
    for name in ("no penalty", "L1"):
        r = s[name]
        lines.append(f"| {name} | {r['zeros_H']:.3f} | {r['zeros_W']:.3f} | "
                     f"{r['mean_nonzeros_per_component']:.0f} | {r['rel_error']:.4f} |")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
