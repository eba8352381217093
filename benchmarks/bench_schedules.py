"""Every schedule in one run: held-out planted problems (the RL "eval" split, never used in
training) and real data (digits, faces).

Classic schedules get a small tuning grid (reported; the best grid point *per problem* is kept,
an oracle-tuned baseline); GreedyLR, auto and RL run untuned; hypergradient and SLS run with
their defaults (ticked every minibatch, as in their papers). Per problem all runs share the
initialization (fit's default init, computed once) and the seed.

Metrics: final loss at the epoch budget, epochs and seconds to a target loss (1.05 x the best
final loss of any run on that problem), divergences (stop_reason "diverged" or guard retries).

    python benchmarks/bench_schedules.py [--quick] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)  # small matrices: BLAS threads only fight on a shared machine
except ImportError:  # pragma: no cover
    pass

import nmf_sched
from nmf_sched.datasets import digits, faces
from nmf_sched.init import initialize
from nmf_sched.rl.env import ProblemDistribution

CLASSIC = ("constant", "step", "exp", "cosine", "linear")


def grids(epochs, quick):
    k = (0.5, 0.9) if quick else (0.25, 0.5, 0.9)
    g = {
        "constant": [("constant", {"kappa": a}) for a in k],
        "step": [("step", {"kappa": a, "step_size": s, "gamma": gm}) for a in k
                 for s, gm in ((max(1, epochs // 3), 0.5), (max(1, epochs // 2), 0.1))],
        "exp": [("exp", {"kappa": a, "gamma": gm}) for a in k for gm in (0.9, 0.97)],
        "cosine": [("cosine", {"kappa": a, "total": epochs}) for a in k],
        "linear": [("linear", {"kappa": a, "total": epochs, "end_factor": 0.1}) for a in k],
        "inverse_time": [("inverse_time", {"kappa": a, "decay": d}) for a in k for d in (0.1, 1.0)],
        "plateau": [("plateau", {"kappa": a, "patience": 2, "factor": 0.5}) for a in k],
    }
    if quick:
        g["inverse_time"] = g["inverse_time"][:2]
    return g


UNTUNED = {
    "greedy": dict(schedule="greedy"),
    "auto": dict(schedule="auto"),
    "rl": dict(schedule="rl"),
    "hg_global": dict(schedule=("hypergradient", {"granularity": "global"}), schedule_every=1),
    "hg_group": dict(schedule=("hypergradient", {"granularity": "group"}), schedule_every=1),
    "hg_parameter": dict(schedule=("hypergradient", {"granularity": "parameter"}), schedule_every=1,
                         precondition="gram"),
    "sls": dict(schedule="sls", schedule_every=1),
    # reference, not a schedule under test: isolates the effect of the gram preconditioner that
    # per-entry hypergradient needs (the default cd step takes one LR per block)
    "ref_constant_gram": dict(schedule=("constant", {"kappa": 0.5}), precondition="gram"),
}
#: runs that do not use the default cd preconditioner
NON_CD = ("hg_parameter", "ref_constant_gram")


def problems(quick):
    d = ProblemDistribution("eval")
    n_heldout = 3 if quick else 10
    out = []
    for i in range(n_heldout):
        p = d.draw(i)
        out.append((f"heldout{i}", p.V, p.rank, p.batch_size, p.spec))
    out.append(("digits", digits(), 10, 256, {"m": 1797, "n": 64, "rank": 10}))
    if not quick:
        out.append(("faces", faces(), 10, 32, {"m": 200, "n": 625, "rank": 10}))
    return out


def one(V, rank, W0, H0, batch, epochs, kw):
    kw = dict(kw)
    res = nmf_sched.fit(V, rank, W0=W0, H0=H0, epochs=epochs, batch_size=batch, seed=0, tol=0, **kw)
    tr = list(res.trace)
    return {"final": float(res.loss), "losses": [float(r["loss"]) for r in tr],
            "seconds": [float(r["seconds"]) for r in tr],
            "diverged": res.stop_reason == "diverged" or tr[-1]["retries"] > 0,
            "stop": res.stop_reason}


def to_target(run, target):
    for e, (l, s) in enumerate(zip(run["losses"], run["seconds"])):
        if l <= target:
            return e, s
    return None, None


def bench(quick=False, epochs=None):
    epochs = epochs or (15 if quick else 30)
    G = grids(epochs, quick)
    results = []
    t_all = time.perf_counter()
    for name, V, rank, batch, spec in problems(quick):
        W0, H0 = initialize(V, rank, "auto", seed=0)
        runs = {}
        for fam, grid in G.items():
            for sched in grid:
                runs[f"{fam}:{json.dumps(sched[1], sort_keys=True)}"] = one(
                    V, rank, W0, H0, batch, epochs, {"schedule": sched})
        for fam, kw in UNTUNED.items():
            runs[fam] = one(V, rank, W0, H0, batch, epochs, kw)
        best_final = min(r["final"] for r in runs.values() if math.isfinite(r["final"]))
        target = 1.05 * best_final
        target_cd = 1.05 * min(r["final"] for k, r in runs.items()
                               if k not in NON_CD and math.isfinite(r["final"]))
        for r in runs.values():
            r["epochs_to_target"], r["seconds_to_target"] = to_target(r, target)
            r["epochs_to_cd_target"], r["seconds_to_cd_target"] = to_target(r, target_cd)
        fam_best = {}
        for fam in G:
            cands = {k: v for k, v in runs.items() if k.startswith(fam + ":")}
            kbest = min(cands, key=lambda k: cands[k]["final"])
            fam_best[fam] = dict(cands[kbest], params=kbest.split(":", 1)[1], divergences=sum(
                v["diverged"] for v in cands.values()), grid_size=len(cands))
        for fam in UNTUNED:
            fam_best[fam] = dict(runs[fam], params="untuned", divergences=int(runs[fam]["diverged"]),
                                 grid_size=1)
        for v in fam_best.values():
            v.pop("losses"), v.pop("seconds")
        results.append({"problem": name, "spec": spec, "target": target, "target_cd": target_cd,
                        "schedules": fam_best})
        print(f"{name}: best {best_final:.5g}; " + ", ".join(
            f"{k}={v['final']:.4g}" for k, v in fam_best.items()), flush=True)
    return {"epochs": epochs, "quick": quick, "grids": {k: [s[1] for s in v] for k, v in G.items()},
            "untuned": {k: repr(v) for k, v in UNTUNED.items()}, "problems": results,
            "claims": claims(results), "seconds": time.perf_counter() - t_all,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}"}


def claims(results):
    held = [r for r in results if r["problem"].startswith("heldout")]
    c1 = [r["schedules"]["rl"]["final"] < r["schedules"]["step"]["final"] for r in held]
    ratio1 = [r["schedules"]["rl"]["final"] / r["schedules"]["step"]["final"] for r in held]
    c2, c2_detail = [], {}
    for r in results:
        g = r["schedules"]["greedy"]["final"]
        for fam in CLASSIC:
            ok = g <= 1.01 * r["schedules"][fam]["final"]
            c2.append(ok)
            c2_detail.setdefault(fam, []).append(g / r["schedules"][fam]["final"])
    c3, c3_pairs, c3_epochs, c3_cd, c3_cd_pairs, c3_reach = [], [], [], [], [], []
    for r in results:
        s = r["schedules"]
        gs, ge = s["greedy"]["seconds_to_target"], s["greedy"]["epochs_to_target"]
        gcd = s["greedy"]["seconds_to_cd_target"]
        wins, wins_e, wins_cd = [], [], []
        for other in ("hg_parameter", "hg_group", "sls"):
            os_, oe = s[other]["seconds_to_target"], s[other]["epochs_to_target"]
            ocd = s[other]["seconds_to_cd_target"]
            wins.append(gs is not None and (os_ is None or gs < os_))
            wins_e.append(ge is not None and (oe is None or ge < oe))
            wins_cd.append(gcd is not None and (ocd is None or gcd < ocd))
        c3.append(all(wins))
        c3_pairs += wins
        c3_epochs.append(all(wins_e))
        c3_cd.append(all(wins_cd))
        c3_cd_pairs += wins_cd
        c3_reach.append(gs is not None)

    def frac(x):
        return float(np.mean(x)) if x else float("nan")
    return {
        "rl_beats_tuned_step": {"fraction": frac(c1), "need": 0.8, "n": len(c1),
                                "rl_over_step_final_loss": ratio1, "holds": frac(c1) >= 0.8},
        "greedy_within_1pct_of_classic": {"fraction": frac(c2), "need": 0.9, "n": len(c2),
                                          "greedy_over_classic_final_loss": c2_detail,
                                          "holds": frac(c2) >= 0.9},
        "greedy_faster_to_target": {"fraction_problems_all_three": frac(c3),
                                    "fraction_pairwise": frac(c3_pairs),
                                    "fraction_problems_all_three_in_epochs": frac(c3_epochs),
                                    "fraction_problems_all_three_cd_target": frac(c3_cd),
                                    "fraction_pairwise_cd_target": frac(c3_cd_pairs),
                                    "greedy_reaches_target": frac(c3_reach),
                                    "need": 0.7, "n": len(c3), "holds": frac(c3) >= 0.7},
    }


def markdown(out):
    L = [f"# Schedule comparison ({'quick' if out['quick'] else 'full'}, {out['epochs']} epochs)", "",
         f"Run time {out['seconds']:.0f} s on {out['machine']}. Command: "
         f"`python benchmarks/bench_schedules.py{' --quick' if out['quick'] else ''}`.", "",
         "Final loss at the budget relative to the best run on the problem (1.000 = best), "
         "epochs to target (1.05 x best; '-' = not reached), divergences (summed over grid). "
         "hg_parameter and ref_constant_gram use precondition='gram' (per-entry LRs need it); "
         "everything else the default 'cd'.", ""]
    fams = list(out["problems"][0]["schedules"])
    L.append("| problem | " + " | ".join(fams) + " |")
    L.append("|---|" + "---|" * len(fams))
    for r in out["problems"]:
        best = r["target"] / 1.05
        cells = []
        for f in fams:
            s = r["schedules"][f]
            e = "-" if s["epochs_to_target"] is None else str(s["epochs_to_target"])
            d = f" D{s['divergences']}" if s["divergences"] else ""
            cells.append(f"{s['final'] / best:.3f} ({e}){d}")
        L.append(f"| {r['problem']} | " + " | ".join(cells) + " |")
    c = out["claims"]
    a, b, d = c["rl_beats_tuned_step"], c["greedy_within_1pct_of_classic"], c["greedy_faster_to_target"]
    L += ["", "## Research claims", "",
          f"1. RL beats tuned step decay (final loss) on >= 80% of held-out problems: "
          f"**{a['fraction']:.0%}** of {a['n']} -> {'holds' if a['holds'] else 'FAILS'}; "
          f"RL/step final-loss ratios: {', '.join(f'{x:.3f}' for x in a['rl_over_step_final_loss'])}.",
          f"2. GreedyLR within 1% or better vs constant/step/exp/cosine/linear in >= 90% of comparisons: "
          f"**{b['fraction']:.0%}** of {b['n']} -> {'holds' if b['holds'] else 'FAILS'}; median "
          "greedy/tuned ratio per family: " + ", ".join(
              f"{k} {np.median(v):.3f}" for k, v in b["greedy_over_classic_final_loss"].items()) + ".",
          f"3. GreedyLR faster (seconds) to target than hypergradient per-parameter, per-group and SLS in "
          f">= 70% of problems: **{d['fraction_problems_all_three']:.0%}** of {d['n']} -> "
          f"{'holds' if d['holds'] else 'FAILS'} (pairwise {d['fraction_pairwise']:.0%}; in epochs "
          f"{d['fraction_problems_all_three_in_epochs']:.0%}; GreedyLR reaches the target on "
          f"{d['greedy_reaches_target']:.0%} of problems). With the target taken over cd runs only "
          f"(1.05 x best run with the default preconditioner): {d['fraction_problems_all_three_cd_target']:.0%} "
          f"of problems, pairwise {d['fraction_pairwise_cd_target']:.0%}.", "",
          "Grids: " + "; ".join(f"{k}: {len(v)} points" for k, v in out["grids"].items())
          + ". Classic results are the best grid point per problem (oracle tuning).", ""]
    return "\n".join(L)


#: Reading of the full run (written for the committed results; the runs are seeded, so the losses
#: and epochs reproduce; seconds vary with the machine).
ANALYSIS = """
## Why the claims fail (full run)

Solver: the sequential minibatch factor on every ceiling, the init rule and per-epoch
balancing, `diag(G)` scaling of the `gram` H step (bounds/THEORY.md §9). The RL policy was
trained before those changes (nmf_sched/rl/POLICY.md) and was not retrained.

* **Claim 1 (RL vs tuned step decay): 7 of 10 held-out problems (needs 8).** RL is the best of
  all 15 runs on 6 held-out problems (heldout0/1/2/4/6/9) and wins against oracle-tuned step
  decay by 0.41-0.91x there and on heldout3 (0.52x); it loses on the three problems that sit near
  their noise floor early (heldout5 1.01x, heldout7 1.09x, heldout8 1.015x), where its
  exploratory LR choices cost a few percent. The baseline is the best of 6 grid points *on each
  problem*; with the previous solver RL won 5 of 10. More training, a late-phase decay feature,
  and retraining on the current solver are the next steps; we did not tune the benchmark to the
  claim.
* **Claim 2 (GreedyLR within 1% of tuned classic): 22% of 60 comparisons (needs 90%).** Median
  GreedyLR/tuned ratio 1.04-1.39x (cosine 1.04, linear 1.05, step 1.06, exp 1.18, constant
  1.39). The default `GreedyLR(max_lr="bound")` caps the LR at 0.5 x the ceiling reported for
  the epoch (the minimum over its minibatch ceilings, with the minibatch factor), so it steps
  at about half of what tuned constant LRs use, and with `patience=10` and 30 ticks it can raise
  the LR at most twice. Until this run the cap also clipped GreedyLR's stored LR, so one epoch
  with a low ceiling cut the LR for good (digits: from 0.5 to 0.03 at epoch 2); the cap now only
  clips the LR returned, which moved this claim from 13% to 22% (median ratios were
  1.22-1.81x) and GreedyLR's final loss down on 11 of 12 problems. `auto` (GreedyLR with
  `max_lr=None`, capped per batch by the solver) ends 1.02-1.60x of the best run. The classic
  schedules get the best of 3-6 grid points per problem; GreedyLR runs untuned.
* **Claim 3 (GreedyLR faster to target than hg-parameter, hg-group and SLS): 17% of 12
  problems (needs 70%).** GreedyLR reaches the target (1.05 x the best final loss of any run)
  on 2 problems of 12 (heldout5, heldout8), the same cause as claim 2. With the target taken over
  `cd` runs only it is still 17%. hg-group (multiplicative, default beta) is the best run on
  heldout5/7/8 and within 7-10% on the real data.
* **Side findings for the theory issue.** With the previous full-Gram H step,
  `ref_constant_gram` (constant 0.5 x ceiling, `gram` preconditioner) triggered the divergence
  guard on 11 of 12 problems and per-entry hypergradient under `gram` blew up on
  heldout0/4/9 (33x-2300x). With the `diag(G)` H step neither happens: no divergence anywhere in
  this table, per-entry hypergradient ends within 1.0-1.9x of the best run.
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 held-out problems + digits, 15 epochs")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = p.parse_args(argv)
    out = bench(a.quick, a.epochs)
    os.makedirs(a.out, exist_ok=True)
    stem = "schedules_quick" if a.quick else "schedules"
    with open(os.path.join(a.out, stem + ".json"), "w") as fh:
        json.dump(out, fh, indent=1, default=float)
    md = markdown(out) + ("" if a.quick or a.epochs else ANALYSIS)
    with open(os.path.join(a.out, stem + ".md"), "w") as fh:
        fh.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
