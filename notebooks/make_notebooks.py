#!/usr/bin/env python
"""Write the figure notebooks of this folder (without outputs).

    python notebooks/make_notebooks.py

Each notebook only calls functions: the package (:mod:`nmf_sched`, figures from
:mod:`nmf_sched.plotting`), ``benchmarks/bench_schedules.py`` (problems, tuning
grids, untuned settings) and ``bounds/verify.py`` (the ceiling sweep). Settings:

``NMF_SCHED_QUICK=1``
    small problems and few epochs (seconds; what tests/test_notebooks.py runs).
``NMF_SCHED_FIGURES=DIR``
    where the PNG goes (default ``figures/`` next to the notebooks).
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import os
import sys
from pathlib import Path

from IPython.display import Image

QUICK = os.environ.get("NMF_SCHED_QUICK", "0") not in ("", "0")
FIGURES = Path(os.environ.get("NMF_SCHED_FIGURES", "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
# the repository root (this folder's parent): the benchmark and verify scripts live there
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "bounds" / "verify.py").is_file())
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "bounds")]
print(f"quick={QUICK}, figures -> {FIGURES.resolve()}")'''

RUN_KW = '''\
def fit_kw(V, rank, batch):
    """The settings of bench_schedules.one: shared init, seed 0, no early stop."""
    W0, H0 = initialize(V, rank, "auto", seed=0)
    return dict(W0=W0, H0=H0, epochs=EPOCHS, batch_size=batch, seed=0, tol=0)'''

NOTEBOOKS = {
    "stability_bound": [
        new_markdown_cell("""\
# The stability ceiling against the empirical divergence edge

`bounds/verify.py` runs projected SGD with every step of every block at `mult x` its own current
ceiling (THEORY.md §2.2: `(1 + b/m)/2 x 2/L_X` per block) and records, per problem x seed, the
smallest multiplier that diverges (the *edge*). The ceiling holds when no edge is at or below 1
for the claimed families (`stability`); the `noise` and `finding` families document where it
does not apply. Full size loads `bounds/results/verify.json` (the committed full sweep,
`python bounds/verify.py`); quick mode, or a checkout without it, runs the quick grid here."""),
        new_code_cell(SETUP),
        new_code_cell('''\
import json

import verify
from nmf_sched.plotting import plot_edges

SOURCE = ROOT / "bounds" / "results" / "verify.json"
if not QUICK and SOURCE.is_file():
    results = json.loads(SOURCE.read_text())["results"]  # infinities are stored as "inf"
    origin = "bounds/results/verify.json (full sweep)"
else:
    specs, seeds = verify.grid(quick=True)
    results = [verify.sweep((spec, seed)) for spec in specs for seed in seeds]
    origin = "verify.grid(quick=True), run here"
print(f"{len(results)} problem x seed from {origin}")'''),
        new_code_cell('''\
path = FIGURES / "stability_bound.png"
fig = plot_edges(results, path, keys=("edge", "fail_edge"),
                 title="divergence edge (filled) and failure edge (hollow) / ceiling; " + origin)
Image(str(path))'''),
        new_code_cell('''\
rows, total = verify.summarize([{**r, "edge": float(r["edge"]), "fail_edge": float(r["fail_edge"])}
                                for r in results])
for r in rows:
    print(f"{r['family']:<32} {r['group']:<9} n={r['problem_x_seed']:>3}  "
          f"median edge {r['median_edge']:.3g}  min edge {r['min_edge']:.3g}  "
          f"diverged at <= 1: {r['diverged_at_or_below']} of {r['runs_at_or_below']} runs")
print("claim (stability group): diverged at <= 1:", total["diverged_at_or_below"], "of",
      total["runs_at_or_below"], "runs; median edge", total["median_edge"])'''),
    ],
    "rl_vs_step_decay": [
        new_markdown_cell("""\
# RL policy against tuned step decay on held-out problems

The RL schedule (`schedule="rl"`, the PPO policy shipped in `nmf_sched/rl/policy.npz`) against
step decay tuned per problem (the best final loss over `bench_schedules.grids(...)["step"]`, an
oracle-tuned baseline) on the held-out planted problems of `benchmarks/bench_schedules.py` (the
RL eval split, never used in training). Same initialization, seed and epoch budget as the
benchmark, with two more curves: step decay with the setting the protocol of
`benchmarks/bench_schedules.py` tuned on *training* problems (not on this one), and the
two-step cycle (0.9, 0.2) of the current ceiling. Top row: the step taken on H (solid) and the
stability ceiling (dotted); bottom row: relative error; from epoch 1 (the initialization's
error is far above). The research claim: RL ends below tuned step decay on >= 80% of the
problems.

This figure's step decay is tuned on each problem itself (an oracle). Under the protocol of
`benchmarks/results/schedules.md` (step decay tuned on training problems, 5 seeds) RL is as
good or better on 5/5, 3/5 and 4/5 held-out problems at 10, 30 and 100 epochs.

The policy's step alternates between a low (~0.1-0.3 x ceiling) and a high (~0.5-1 x) value
from epoch to epoch. That is not a fixed cycle: the two-step cycle (0.9, 0.2) of the current
ceiling ends at 2.4x RL's error at 30 epochs and 1.8x at 100 (`bench_schedules.py
--alternation`, `benchmarks/results/schedules_alternation.md`): after a high step the
reported H ceiling collapses and a fixed cycle keeps stepping at fractions of it, while the
policy's choices keep the ceiling up."""),
        new_code_cell(SETUP),
        new_code_cell('''\
import json

import bench_schedules as bench
import nmf_sched
from nmf_sched.init import initialize
from nmf_sched.plotting import plot_trace_grid

EPOCHS = 15 if QUICK else 30
STEP_GRID = bench.grids(EPOCHS, QUICK)["step"]
# step decay as the protocol tuned it on training problems (benchmarks/results/schedules.json)
PROTOCOL = ROOT / "benchmarks" / "results" / "schedules.json"
choice = json.loads(PROTOCOL.read_text())["tuned_choice"] if PROTOCOL.is_file() else {}
STEP_TRAINED = bench.methods(EPOCHS)["step"][0][choice.get("step@30", 0)]["schedule"]
CYCLE = ("ceiling_fraction", {"fraction": (0.9, 0.2)})  # the two-step high/low cycle

''' + RUN_KW),
        new_code_cell('''\
panels, ratio = {}, {}
for name, V, rank, batch, spec in bench.problems(QUICK):
    if not name.startswith("heldout"):
        continue
    kw = fit_kw(V, rank, batch)
    steps = [nmf_sched.fit(V, rank, schedule=s, **kw) for s in STEP_GRID]
    best = min(range(len(steps)), key=lambda i: steps[i].loss)
    rl = nmf_sched.fit(V, rank, schedule="rl", **kw)
    trained = nmf_sched.fit(V, rank, schedule=STEP_TRAINED, **kw)
    cycle = nmf_sched.fit(V, rank, schedule=CYCLE, **kw)
    title = f"{name}: {V.shape[0]}x{V.shape[1]}, k={rank}, b={batch}"
    panels[title] = {"RL policy": rl, "step decay (tuned here)": steps[best],
                     "step decay (tuned on training)": trained, "cycle (0.9, 0.2) x ceiling": cycle}
    ratio[name] = rl.loss / steps[best].loss
    print(f"{title}: RL/step final loss {ratio[name]:.3f} (step: {STEP_GRID[best][1]}); "
          f"RL/step tuned on training {rl.loss / trained.loss:.3f}; cycle/RL {cycle.loss / rl.loss:.3f}")'''),
        new_code_cell('''\
path = FIGURES / "rl_vs_step_decay.png"
fig = plot_trace_grid(panels, path, lr="step_H", ncols=5, first=1, dpi=66,
                      title=f"RL policy vs tuned step decay, held-out problems, {EPOCHS} epochs")
Image(str(path))'''),
        new_code_cell('''\
wins = sum(r < 1 for r in ratio.values())
print(f"RL ends below tuned step decay on {wins} of {len(ratio)} held-out problems "
      f"(claim needs >= 80%); RL/step final-loss ratios: "
      + ", ".join(f"{r:.3f}" for r in ratio.values()))'''),
    ],
    "greedylr_schedules": [
        new_markdown_cell("""\
# The schedules GreedyLR produces, beside linear, constant and cosine decay

Per problem, the LR the schedule asks for (`lr_H`, solid; the stability ceiling dotted) and the
relative error per epoch, from epoch 1 (the initialization's error is far above). GreedyLR runs untuned (`schedule="greedy"`: start and cap tied to the
ceiling) and as `"auto"` (GreedyLR with no cap of its own; the solver caps every step at
`0.9 x` the ceiling). Constant, linear and cosine decay are tuned per problem (best final loss
over the figure grids of `benchmarks/bench_schedules.py`, an oracle). The GreedyLR paper's
claim: as good or better than the classic schedules in 86.7% of comparisons (1% rule). Under
the protocol of `benchmarks/results/schedules.md` (classics tuned on training problems, 5
seeds, 13 test problems) GreedyLR per minibatch is as good or better in 88%, 90% and 96% of
the problem x classic comparisons at 10, 30 and 100 epochs (per epoch: 88%, 88%, 94%)."""),
        new_code_cell(SETUP),
        new_code_cell('''\
import bench_schedules as bench
import nmf_sched
from nmf_sched.init import initialize
from nmf_sched.plotting import plot_trace_grid

EPOCHS = 15 if QUICK else 30
PROBLEMS = ("heldout0", "digits") if QUICK else ("heldout0", "heldout1", "heldout2", "digits", "faces")
GRIDS = bench.grids(EPOCHS, QUICK)

''' + RUN_KW),
        new_code_cell('''\
panels, ratios = {}, {}
for name, V, rank, batch, spec in bench.problems(QUICK):
    if name not in PROBLEMS:
        continue
    kw = fit_kw(V, rank, batch)
    runs = {"GreedyLR": nmf_sched.fit(V, rank, schedule="greedy", **kw),
            "auto (GreedyLR, solver cap)": nmf_sched.fit(V, rank, schedule="auto", **kw)}
    for family in ("constant", "linear", "cosine"):
        fits = [nmf_sched.fit(V, rank, schedule=s, **kw) for s in GRIDS[family]]
        runs[f"{family} (tuned)"] = min(fits, key=lambda r: r.loss)
    panels[f"{name}: {V.shape[0]}x{V.shape[1]}, k={rank}, b={batch}"] = runs
    ratios[name] = {n: runs["GreedyLR"].loss / r.loss for n, r in runs.items() if n != "GreedyLR"}
    print(name, ", ".join(f"GreedyLR/{n} {q:.3f}" for n, q in ratios[name].items()))'''),
        new_code_cell('''\
path = FIGURES / "greedylr_schedules.png"
fig = plot_trace_grid(panels, path, lr="lr_H", ncols=5, first=1,
                      title=f"schedule LR (top) and relative error (bottom), {EPOCHS} epochs")
Image(str(path))'''),
        new_code_cell('''\
within = [q <= 1.01 for r in ratios.values() for n, q in r.items() if "tuned" in n]
print(f"GreedyLR within 1% of a tuned classic schedule in {sum(within)} of {len(within)} "
      "comparisons (claim needs >= 90%)")'''),
    ],
    "greedylr_vs_hypergradient": [
        new_markdown_cell("""\
# GreedyLR against plain SGD and hypergradient descent

Loss histories of GreedyLR (untuned), a constant LR (plain SGD with the default `cd` step, tuned
per problem over the `bench_schedules` grid), and hypergradient descent per group (one LR per
block, W and H) and per parameter (one LR per entry; needs the `gram` preconditioner, as in
`benchmarks/bench_schedules.py`), the latter two with their defaults, ticked every minibatch.
Top row: the step taken on H (solid) and the ceiling (dotted); bottom row: relative error, from
epoch 1. The per-parameter run's step is in the unit of the `gram` preconditioner, not of the
default `cd` step the others take, so only its loss compares directly with theirs. The research claim: GreedyLR reaches the target loss sooner than per-parameter and per-group
hypergradient (and SLS, not drawn here) on >= 70% of problems. Under the protocol of
`benchmarks/results/schedules.md` (every method tuned on training problems, 5 seeds, 13 test
problems): GreedyLR per minibatch is faster than both hypergradient and SLS on 69% [57%, 79%]
of problem-seeds, per epoch on 55% [43%, 67%]."""),
        new_code_cell(SETUP),
        new_code_cell('''\
import bench_schedules as bench
import nmf_sched
from nmf_sched.init import initialize
from nmf_sched.plotting import plot_trace_grid

EPOCHS = 15 if QUICK else 30
PROBLEMS = ("heldout0", "digits") if QUICK else ("heldout0", "heldout1", "heldout2", "digits", "faces")
CONSTANT_GRID = bench.grids(EPOCHS, QUICK)["constant"]

''' + RUN_KW),
        new_code_cell('''\
panels = {}
for name, V, rank, batch, spec in bench.problems(QUICK):
    if name not in PROBLEMS:
        continue
    kw = fit_kw(V, rank, batch)
    runs = {"GreedyLR": nmf_sched.fit(V, rank, **bench.UNTUNED["greedy"], **kw),
            "constant (SGD, tuned)": min((nmf_sched.fit(V, rank, schedule=s, **kw)
                                          for s in CONSTANT_GRID), key=lambda r: r.loss),
            "hypergradient per group": nmf_sched.fit(V, rank, **bench.UNTUNED["hg_group"], **kw),
            "hypergradient per parameter (gram)": nmf_sched.fit(V, rank, **bench.UNTUNED["hg_parameter"],
                                                                **kw)}
    panels[f"{name}: {V.shape[0]}x{V.shape[1]}, k={rank}, b={batch}"] = runs
    best = min(r.loss for r in runs.values())
    print(name, ", ".join(f"{n} {r.loss / best:.3f}x ({r.stop_reason})" for n, r in runs.items()))'''),
        new_code_cell('''\
path = FIGURES / "greedylr_vs_hypergradient.png"
fig = plot_trace_grid(panels, path, lr="step_H", ncols=5, first=1,
                      title=f"GreedyLR vs SGD vs hypergradient, {EPOCHS} epochs")
Image(str(path))'''),
        new_code_cell('''\
for title, runs in panels.items():
    target = 1.05 * min(r.loss for r in runs.values())
    reached = {n: bench.to_target({"losses": r.trace.column("loss"),
                                   "seconds": r.trace.column("seconds")}, target)
               for n, r in runs.items()}
    print(title.split(":")[0], "epochs (seconds) to 1.05 x best:",
          ", ".join(f"{n}: {e} ({s:.2f} s)" if e is not None else f"{n}: not reached"
                    for n, (e, s) in reached.items()))'''),
    ],
    "greedylr_dnn": [
        new_markdown_cell("""\
# GreedyLR on DNN training: LR schedules and loss histories

Phase 3 of the research line: the same schedules driving PyTorch training
(`nmf_sched.torch.ScheduleLR`), on the small offline workloads of `benchmarks/bench_dnn.py`
(digits logistic regression, MLP and CNN, a noisy quadratic, a character-level GRU on Python
sources), AdamW from each workload's base LR, seed 0. GreedyLR runs per optimizer step on
the smoothed training loss, with the paper's settings (Hugging Face defaults, patience 10,
`min_lr` 0.1 x the initial LR, window 50) and with ours; cosine, linear and constant are
Hugging Face's defaults (no warmup). Top row: the LR each schedule sets; bottom row: the
training loss (mean of the last 50 minibatches). The paper's claim: GreedyLR is as good as
or better than these baselines in 86.7% of comparisons (`benchmarks/results/dnn.md` has the
full protocol: both optimizers, 3 seeds, 7 baselines)."""),
        new_code_cell(SETUP),
        new_code_cell('''\
import torch

import bench_dnn as bench

torch.set_num_threads(1)
OPTIMIZER = "adamw"
WORKLOADS = ("logreg_digits", "quadratic") if QUICK else bench.WORKLOADS
STEPS = 60 if QUICK else None  # None: the benchmark's step counts
METHODS = ("greedy_paper", "greedy_ours", "cosine", "linear", "constant_with_warmup")'''),
        new_code_cell('''\
panels = {}
for w in WORKLOADS:
    steps = STEPS or bench.DEFAULT_STEPS[w]
    runs = {m: bench.run_one(w, OPTIMIZER, m, 0, steps) for m in METHODS}
    panels[f"{w}, {OPTIMIZER}, {steps} steps"] = runs
    print(w, ", ".join(f"{m} {r['checkpoints']['100']['train_loss']:.4g}" for m, r in runs.items()))'''),
        new_code_cell('''\
path = FIGURES / "greedylr_dnn.png"
bench.plot_histories(panels, path, title=f"GreedyLR vs Hugging Face schedules, {OPTIMIZER}, seed 0")
Image(str(path))'''),
        new_code_cell('''\
results = [{"workload": name, "optimizer": OPTIMIZER, "seed": 0, "runs": runs}
           for name, runs in panels.items()]
for g in ("greedy_paper", "greedy_ours"):
    r = bench.rates(bench.comparisons(results, g, ("cosine", "linear", "constant_with_warmup")))
    print(f"{g}: as good or better in {100 * r['as_good_or_better_abs']:.0f}% of {r['n']} "
          f"comparisons (paper's 0.1 rule), {100 * r['as_good_or_better_rel']:.0f}% (1% rule); "
          f"paper: 86.7%")'''),
    ],
}


def build(name, cells):
    for i, cell in enumerate(cells):
        cell["id"] = f"{name}-{i}"  # stable ids: regenerating gives the same files
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    nbformat.validate(nb)
    return nb


def main():
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(build(name, cells), path)
        print("wrote", path.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
