#!/usr/bin/env python
"""Noisy runs at the enforced ceiling: does the solver's noise-aware ceiling keep them stable?

The setting (bounds/THEORY.md §3.4):

* the schedule asks for far more than the ceiling (``schedule=1e12``), so every step runs
  at ``kappa x`` the ceiling the solver enforces (the noise-aware one when it is on);
* ``epochs`` epochs (40, ``tol=0``: no early stop), the default batch size and init;
* ``noise_std`` at 0.3x, 3x and 30x the rms gradient entry at the init (the gradient of
  :func:`nmf_sched.bounds.report` at the same seed);
* ``precondition="none"`` (the research setting) and ``"cd"`` (the default);
* six problems: digits, faces, a planted problem, a heavy-tailed one (squared exponential
  factors), a badly scaled one (``cond(W) = 1e3``) and a wide 100 x 5000 one; two seeds.

A run *loses stability* when the divergence guard fires (``retries > 0``), it stops
"diverged", or its final loss exceeds its initial loss. It *stalls* when its final loss is
above 0.99 x the initial one (reported, not a loss of stability).

The script uses only ``nmf_sched.fit``, so the same file measures an older checkout
(``PYTHONPATH=<checkout>``): the before/after counts of the noise-aware ceiling.

Usage::

    python bounds/verify_noise.py [--quick] [--procs 2] [--out bounds/results/verify_noise]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


LEVELS = (0.3, 3.0, 30.0)
PRECONDITIONERS = ("none", "cd")


def problem(name):
    """``(V, rank)`` of a named problem (deterministic)."""
    from nmf_sched import datasets

    if name == "digits":
        return datasets.digits(), 10
    if name == "faces":
        return datasets.faces(), 10
    if name == "planted":
        return datasets.planted(500, 300, 8, noise=0.1, seed=3).V, 8
    if name == "heavy":
        return datasets.planted(400, 300, 8, noise=0.1, seed=4, dist="exponential").V ** 2, 8
    if name == "badly-scaled":
        return datasets.planted(400, 300, 8, noise=0.1, seed=5, condition=1e3).V, 8
    if name == "wide":
        return datasets.planted(100, 5000, 5, noise=0.1, seed=6).V, 5
    raise ValueError(f"unknown problem {name!r}")


PROBLEMS = ("digits", "faces", "planted", "heavy", "badly-scaled", "wide")


def rms_gradient(V, k, seed):
    """The rms gradient entry at the init of ``report`` (seed ``seed``)."""
    from nmf_sched import bounds

    rep = bounds.report(V, k, seed=seed)
    m, n = V.shape
    return math.sqrt((rep.grad_W_sq + rep.grad_H_sq) / (k * (m + n)))


def run_one(args):
    name, seed, pre, level, epochs = args
    import nmf_sched

    V, k = problem(name)
    sigma = level * rms_gradient(V, k, seed)
    t0 = time.perf_counter()
    res = nmf_sched.fit(V, k, schedule=1e12, epochs=epochs, seed=seed, noise_std=sigma,
                        precondition=pre, tol=0.0)
    tr = res.trace
    loss0, loss1 = tr[0]["loss"], res.loss
    retries = int(tr[-1]["retries"])
    lost = res.stop_reason == "diverged" or retries > 0 or not (loss1 <= loss0)
    row = {"problem": name, "seed": seed, "precondition": pre, "level": level,
           "noise_std": sigma, "loss0": loss0, "loss": loss1, "ratio": loss1 / loss0,
           "stop_reason": res.stop_reason, "retries": retries, "lost": bool(lost),
           "stalled": bool(loss1 > 0.99 * loss0), "seconds": time.perf_counter() - t0}
    if "floor" in tr.columns:
        row["floor"] = tr[-1]["floor"]
        row["ceiling_noise_H"] = tr[-1]["ceiling_noise_H"]
    return row


def render(out, title=""):
    """The markdown table of a result dict (``main``'s JSON)."""
    rows = out["runs"]
    epochs = out.get("epochs", 40)
    probs = list(dict.fromkeys(r["problem"] for r in rows))
    worst = max(r["ratio"] for r in rows)
    md = [f"# Noisy runs at the enforced ceiling ({len(rows)} runs, {epochs} epochs){title}", "",
          f"lost stability: **{out['lost']}** of {len(rows)} (guard fired: "
          f"{sum(r['retries'] > 0 for r in rows)}, diverged: "
          f"{sum(r['stop_reason'] == 'diverged' for r in rows)}, final above initial: "
          f"{sum(not r['ratio'] <= 1 for r in rows)}; with a 1e-3 relative tolerance on the "
          f"final loss: {sum(r['retries'] > 0 or r['stop_reason'] == 'diverged' or not r['ratio'] <= 1.001 for r in rows)}); "
          f"largest final/initial loss: {worst:.6g}; stalled (final > 0.99 x initial): "
          f"{out['stalled']}; {out['seconds']:.0f} s", "",
          "| problem | precondition | noise / rms grad | seeds lost | final/initial loss |",
          "|---|---|---|---|---|"]
    for nm in probs:
        for pre in PRECONDITIONERS:
            for lv in LEVELS:
                sel = [r for r in rows if r["problem"] == nm and r["precondition"] == pre
                       and r["level"] == lv]
                md.append(f"| {nm} | {pre} | {lv:g} | {sum(r['lost'] for r in sel)}/{len(sel)} | "
                          + ", ".join(f"{r['ratio']:.3g}" for r in sel) + " |")
    return "\n".join(md) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 problem, 1 seed, 5 epochs")
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    p.add_argument("--render", metavar="JSON", help="only rewrite OUT.md from a result JSON")
    p.add_argument("--title", default="", help="appended to the markdown title")
    a = p.parse_args(argv)
    if a.render:
        with open(a.render) as f:
            out = json.load(f)
        text = render(out, a.title)
        if a.out:
            with open(a.out + ".md", "w") as f:
                f.write(text)
        print(text)
        return out
    probs, seeds, epochs = (("planted",), (0,), 5) if a.quick else (PROBLEMS, (0, 1), a.epochs)
    jobs = [(nm, s, pre, lv, epochs) for nm in probs for s in seeds for pre in PRECONDITIONERS
            for lv in LEVELS]
    t0 = time.perf_counter()
    if a.procs > 1:
        with ProcessPoolExecutor(a.procs) as ex:
            rows = list(ex.map(run_one, jobs))
    else:
        rows = [run_one(j) for j in jobs]
    out = {"runs": rows, "n": len(rows), "lost": sum(r["lost"] for r in rows),
           "stalled": sum(r["stalled"] for r in rows), "seconds": time.perf_counter() - t0,
           "epochs": epochs, "code": os.environ.get("PYTHONPATH", "") or "installed"}
    text = render(out, a.title)
    if a.out:
        with open(a.out + ".json", "w") as f:
            json.dump(out, f, indent=1, default=float)
        with open(a.out + ".md", "w") as f:
            f.write(text)
    print(text)
    print(f"{out['seconds']:.0f} s", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
