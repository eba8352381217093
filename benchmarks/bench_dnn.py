"""The schedules driving PyTorch training, measured by the GreedyLR paper's protocol
(Subramanian et al., arXiv 2512.14527), on small offline workloads.

Workloads (nmf_sched.torch.workloads): logistic regression, an MLP and a CNN on scikit-learn
digits, a DeepOBS-style noisy quadratic, a character-level GRU language model on text from the
installed Python sources. Optimizers: SGD with momentum 0.9 and AdamW, each from the base LR of
``BASE_LR`` (best constant LR on a development seed, ``--tune-lr``). Seeds 0, 1, 2.

Methods, all per optimizer step:
  linear, cosine, polynomial, constant_with_warmup   Hugging Face's defaults (no warmup:
      warmup_steps=0; cosine half a period to 0; polynomial power 1 to lr_end=1e-7), run
      through nmf_sched.torch.ScheduleLR (same formulas, checked in tests/test_torch_bench.py)
  plateau          torch's ReduceLROnPlateau at its defaults, on the mean of the last 50
                   minibatch losses
  hypergradient    nmf_sched.torch.HypergradientOptimizer at its defaults
  schedulefree     schedulefree's SGD / AdamW (skipped, and said so, when not installed)
  greedy_paper     GreedyLR, the paper's settings: HF defaults (factor 0.95, threshold 1e-6
                   abs, max_lr 1.0) with patience 10, min_lr 0.1 x initial LR, window 50
  greedy_ours      GreedyLR, ours (GREEDY_OURS; chosen on the development seed)
  rl_dnn           the PPO policy of nmf_sched/rl/dnn_policy.npz (phase 2)
  rl_nmf           the NMF-trained policy with 2 x base LR as its ceiling (transfer)

Metric (the paper's): the training loss (full training set; char_lm: 256 fixed windows) at
10%, 50% and 100% of the steps; also validation loss and accuracy. Equivalence rule (the
paper's): a loss difference under 0.1 is "not significant"; reported beside a relative 1%
rule. "As good or better": GreedyLR not significantly worse than the baseline.

    python benchmarks/bench_dnn.py [--quick] [--out benchmarks/results] [--tune-lr]
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
    threadpool_limits(1)
except ImportError:  # pragma: no cover
    pass

import torch

from nmf_sched.rl.dnn_env import HELDOUT_WORKLOADS, TRAIN_WORKLOADS
from nmf_sched.rl.dnn_policy import DNNPolicy, NMFPolicyOnDNN
from nmf_sched.torch import HypergradientOptimizer, ScheduleLR
from nmf_sched.torch.workloads import BASE_LR, DEFAULT_STEPS, OPTIMIZERS, WORKLOADS, TrainingRun

torch.set_num_threads(1)

HF_BASELINES = ("linear", "cosine", "polynomial", "constant_with_warmup")
OTHER_BASELINES = ("plateau", "hypergradient", "schedulefree")
GREEDY = ("greedy_paper", "greedy_ours")
RL = ("rl_dnn", "rl_nmf")
METHODS = HF_BASELINES + OTHER_BASELINES + GREEDY + RL
SEEDS = (0, 1, 2)
CHECKPOINTS = (10, 50, 100)  # % of the steps
WINDOW = 50  # smoothing window of the training loss (the paper's)
PAPER = {"as_good_or_better": 0.867, "better_final": 0.91, "clear_wins": 0.245}
#: GreedyLR as the paper ran it (Hugging Face defaults + patience 10, min_lr 0.1 x, window 50)
GREEDY_PAPER = dict(factor=0.95, patience=10, threshold=1e-6, threshold_mode="abs", cooldown=0,
                    warmup=0, max_lr=1.0, window=WINDOW)
#: candidates for "ours" (kwargs, min_lr and max_lr as multiples of the base LR; None: no cap),
#: compared on the development seed 99 (``--greedy-dev``, results/dnn_greedy_dev.json)
GREEDY_CANDIDATES = {
    "A_library_defaults": (dict(factor=0.95, patience=10, threshold=1e-4, threshold_mode="rel",
                                window=WINDOW), 0.0, None),
    "B_factor0.9_cap1x": (dict(factor=0.9, patience=10, threshold=1e-3, threshold_mode="rel",
                               window=WINDOW), 1e-3, 1.0),
    "C_factor0.9_cap4x": (dict(factor=0.9, patience=10, threshold=1e-3, threshold_mode="rel",
                               window=WINDOW), 1e-3, 4.0),
    "D_factor0.8_patience5_cap1x": (dict(factor=0.8, patience=5, threshold=1e-3,
                                         threshold_mode="rel", window=WINDOW), 1e-3, 1.0),
}
#: ours = candidate C, the lowest final training loss of the 4 candidates on 6 of the 10
#: workload x optimizer pairs of the development seed: a relative threshold (scale-free),
#: factor 0.9, LR kept in [1e-3, 4] x the base LR
GREEDY_OURS, GREEDY_OURS_MIN, GREEDY_OURS_MAX = GREEDY_CANDIDATES["C_factor0.9_cap4x"]


def greedy_spec(kind, lr0):
    if kind == "greedy_paper":
        kw = dict(GREEDY_PAPER, lr=lr0, min_lr=0.1 * lr0)
        kw["max_lr"] = max(kw["max_lr"], lr0)
    else:
        kw = dict(GREEDY_OURS, lr=lr0, min_lr=GREEDY_OURS_MIN * lr0,
                  max_lr=None if GREEDY_OURS_MAX is None else GREEDY_OURS_MAX * lr0)
    return ("greedy", kw)


def hf_spec(kind, total):
    """Hugging Face's get_scheduler at its defaults (warmup 0) in nmf-sched terms."""
    return {"linear": ("linear", {"total": total}),
            "cosine": ("cosine", {"total": total}),
            "polynomial": ("polynomial", {"total": total, "power": 1.0, "end_lr": 1e-7}),
            "constant_with_warmup": ("warmup", {"inner": "constant", "warmup": 0})}[kind]


def have_schedulefree():
    try:
        import schedulefree  # noqa: F401
        return True
    except ImportError:
        return False


def run_one(workload, optimizer, method, seed, steps, hist_points=60, lr=None):
    """One training run; returns checkpoints, histories, divergence, seconds. ``lr``: the
    base LR (None: ``BASE_LR``)."""
    torch.set_num_threads(1)
    run = TrainingRun(workload, optimizer + ("_schedulefree" if method == "schedulefree" else ""),
                      lr=lr, seed=seed)
    lr0 = run.lr0
    step = lambda loss: None
    if method in HF_BASELINES:
        s = ScheduleLR(run.opt, hf_spec(method, steps))
        step = lambda loss: s.step()
    elif method in GREEDY:
        s = ScheduleLR(run.opt, greedy_spec(method, lr0))
        step = s.step
    elif method == "rl_dnn":
        s = ScheduleLR(run.opt, DNNPolicy(lr0, steps))
        step = s.step
    elif method == "rl_nmf":
        s = ScheduleLR(run.opt, NMFPolicyOnDNN(lr0, steps))
        step = s.step
    elif method == "plateau":
        s = torch.optim.lr_scheduler.ReduceLROnPlateau(run.opt)
        window = []

        def step(loss):
            if math.isfinite(loss):
                window.append(loss)
                del window[:-WINDOW]
            s.step(sum(window) / len(window) if window else math.inf)
    elif method == "hypergradient":
        run.opt = HypergradientOptimizer(run.opt)
    elif method != "schedulefree":
        raise ValueError(f"unknown method {method!r}")
    marks = {max(1, math.ceil(steps * p / 100)): p for p in CHECKPOINTS}
    every = max(1, steps // hist_points)
    checkpoints, hist, recent, diverged = {}, {"step": [], "lr": [], "loss": []}, [], False
    t0 = time.perf_counter()
    for t in range(1, steps + 1):
        lr_used = run.lr
        loss = run.train_step()
        if not math.isfinite(loss):
            diverged = True
        recent.append(loss)
        del recent[:-WINDOW]
        step(loss)
        if t % every == 0 or t == steps:
            fin = [x for x in recent if math.isfinite(x)]
            hist["step"].append(t)
            hist["lr"].append(_g6(lr_used))
            hist["loss"].append(_g6(np.mean(fin)) if fin else math.inf)
        if t in marks:
            ev = run.evaluate()
            checkpoints[str(marks[t])] = {k: (None if v is None else _finite(v)) for k, v in ev.items()}
    return {"checkpoints": checkpoints, "history": hist, "diverged": diverged, "lr0": lr0,
            "seconds": time.perf_counter() - t0}


def _g6(v):
    """6 significant digits (histories are for plots; checkpoints keep full precision)."""
    return float(f"{float(v):.6g}")


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else math.inf


# ----------------------------------------------------------------------------
# comparisons
# ----------------------------------------------------------------------------

def verdict(a, b, rule):
    """'better' / 'tie' / 'worse' of loss a against loss b: 'abs' (the paper's: a difference
    under 0.1 is not significant) or 'rel' (under 1% of the baseline)."""
    if not math.isfinite(a) and not math.isfinite(b):
        return "tie"
    if not math.isfinite(a):
        return "worse"
    if not math.isfinite(b):
        return "better"
    margin = 0.1 if rule == "abs" else 0.01 * abs(b)
    if abs(a - b) < margin:
        return "tie"
    return "better" if a < b else "worse"


def comparisons(results, method, baselines, workloads=None):
    """One row per (workload, optimizer, seed, baseline, checkpoint)."""
    rows = []
    for r in results:
        if workloads is not None and r["workload"] not in workloads:
            continue
        runs = r["runs"]
        if method not in runs:
            continue
        for b in baselines:
            if b not in runs:
                continue
            for cp in map(str, CHECKPOINTS):
                a_, b_ = runs[method]["checkpoints"][cp]["train_loss"], runs[b]["checkpoints"][cp]["train_loss"]
                rows.append({"workload": r["workload"], "optimizer": r["optimizer"], "seed": r["seed"],
                             "baseline": b, "checkpoint": int(cp), "loss": a_, "baseline_loss": b_,
                             "abs": verdict(a_, b_, "abs"), "rel": verdict(a_, b_, "rel"),
                             "strictly_lower": a_ < b_, "clear_win": a_ < b_ - 0.1})
    return rows


def rates(rows):
    """The paper's three figures (and the 1% rule) over comparison rows."""
    if not rows:
        return {"n": 0}
    fin = [r for r in rows if r["checkpoint"] == 100]
    n = len(rows)
    return {
        "n": n, "n_final": len(fin),
        "as_good_or_better_abs": sum(r["abs"] != "worse" for r in rows) / n,
        "as_good_or_better_rel": sum(r["rel"] != "worse" for r in rows) / n,
        "as_good_or_better_abs_final": sum(r["abs"] != "worse" for r in fin) / max(len(fin), 1),
        "as_good_or_better_rel_final": sum(r["rel"] != "worse" for r in fin) / max(len(fin), 1),
        "better_final": sum(r["strictly_lower"] for r in fin) / max(len(fin), 1),
        "clear_wins": sum(r["clear_win"] for r in rows) / n,
        "ties_abs": sum(r["abs"] == "tie" for r in rows) / n,
    }


def rl_vs_cosine(results, method):
    """Phase 2: final train/val loss of an RL policy over cosine, held-out workloads and seeds."""
    out = []
    for r in results:
        runs = r["runs"]
        if method not in runs or "cosine" not in runs:
            continue
        a, c = runs[method]["checkpoints"]["100"], runs["cosine"]["checkpoints"]["100"]
        target = runs["cosine"]["history"]["loss"][-1]
        reach = next((s for s, l in zip(runs[method]["history"]["step"],
                                        runs[method]["history"]["loss"]) if l <= target), None)
        out.append({"workload": r["workload"], "optimizer": r["optimizer"], "seed": r["seed"],
                    "heldout_workload": r["workload"] in HELDOUT_WORKLOADS,
                    "train_ratio": a["train_loss"] / c["train_loss"] if c["train_loss"] else math.nan,
                    "val_ratio": a["val_loss"] / c["val_loss"] if c["val_loss"] else math.nan,
                    "val_acc": a["val_acc"], "cosine_val_acc": c["val_acc"],
                    "steps_to_cosine_final": reach, "steps": runs[method]["history"]["step"][-1]})
    return out


# ----------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------

def bench(quick=False, seeds=None, workloads=None, optimizers=None, methods=None, steps=None):
    seeds = seeds or ((0,) if quick else SEEDS)
    workloads = workloads or WORKLOADS
    optimizers = optimizers or OPTIMIZERS
    methods = list(methods or METHODS)
    sf = have_schedulefree()
    if not sf and "schedulefree" in methods:
        methods.remove("schedulefree")
        print("schedulefree is not installed: its runs are skipped", flush=True)
    results, t_all = [], time.perf_counter()
    for w in workloads:
        n = steps or (12 if quick else DEFAULT_STEPS[w])
        for o in optimizers:
            for seed in seeds:
                runs = {m: run_one(w, o, m, seed, n) for m in methods}
                results.append({"workload": w, "optimizer": o, "seed": seed, "steps": n,
                                "base_lr": BASE_LR[(w, o)], "runs": runs})
                fin = {m: runs[m]["checkpoints"]["100"]["train_loss"] for m in methods}
                print(f"{w:<14} {o:<6} seed {seed}: " + ", ".join(
                    f"{m} {v:.4g}" for m, v in fin.items()), flush=True)
    out = {"quick": quick, "seeds": list(seeds), "workloads": list(workloads),
           "optimizers": list(optimizers), "methods": methods, "schedulefree_installed": sf,
           "checkpoints": list(CHECKPOINTS), "window": WINDOW, "greedy_paper": GREEDY_PAPER,
           "greedy_ours": dict(GREEDY_OURS, min_lr_factor=GREEDY_OURS_MIN,
                               max_lr_factor=GREEDY_OURS_MAX),
           "base_lr": {f"{w}/{o}": v for (w, o), v in BASE_LR.items()},
           "rl_train_workloads": list(TRAIN_WORKLOADS), "rl_heldout_workloads": list(HELDOUT_WORKLOADS),
           "paper": PAPER, "results": results}
    summary = {}
    for g in GREEDY:
        if g not in methods:
            continue
        hf = [b for b in HF_BASELINES if b in methods]
        other = [b for b in OTHER_BASELINES if b in methods]
        summary[g] = {"vs_hf": rates(comparisons(results, g, hf)),
                      "vs_other": rates(comparisons(results, g, other)),
                      "per_baseline": {b: rates(comparisons(results, g, [b])) for b in hf + other},
                      "per_workload": {f"{w}/{o}": rates([r for r in comparisons(results, g, hf)
                                                          if r["workload"] == w and r["optimizer"] == o])
                                       for w in workloads for o in optimizers},
                      "per_checkpoint": {str(cp): rates([r for r in comparisons(results, g, hf)
                                                         if r["checkpoint"] == cp]) for cp in CHECKPOINTS}}
    out["summary"] = summary
    out["rl"] = {m: rl_vs_cosine(results, m) for m in RL if m in methods}
    out["seconds"] = time.perf_counter() - t_all
    out["machine"] = (f"{platform.machine()} {os.cpu_count()} cpus, python "
                      f"{platform.python_version()}, torch {torch.__version__}")
    return out


LR_GRIDS = {"sgd": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
            "adamw": [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3]}


def tuned_cosine(results_path, seed=99):
    """A check of the protocol: cosine with its *own* best base LR (grid on the development
    seed) against GreedyLR's runs of ``results_path`` (which start from the best constant
    LR). Cosine decays, so its best peak LR can be higher than the best constant LR."""
    with open(results_path) as fh:
        full = json.load(fh)
    best, runs = {}, []
    for w in full["workloads"]:
        for o in full["optimizers"]:
            n = DEFAULT_STEPS[w]
            grid = {lr: run_one(w, o, "cosine", seed, n, lr=lr)["checkpoints"]["100"]["train_loss"]
                    for lr in LR_GRIDS[o]}
            best[f"{w}/{o}"] = lr = min(grid, key=grid.get)
            for r in full["results"]:
                if r["workload"] == w and r["optimizer"] == o:
                    tuned = run_one(w, o, "cosine", r["seed"], n, lr=lr)
                    runs.append({**r, "runs": {**r["runs"], "cosine_tuned": tuned}})
            print(f"{w}/{o}: cosine's best base LR {lr} (BASE_LR {BASE_LR[(w, o)]})", flush=True)
    out = {"seed": seed, "best_lr": best, "summary": {}}
    for g in GREEDY:
        out["summary"][g] = {"vs_cosine_tuned": rates(comparisons(runs, g, ["cosine_tuned"])),
                             "vs_cosine_base_lr": rates(comparisons(runs, g, ["cosine"]))}
    out["final_train_loss"] = {f"{r['workload']}/{r['optimizer']}/{r['seed']}": {
        m: r["runs"][m]["checkpoints"]["100"]["train_loss"]
        for m in ("cosine", "cosine_tuned", "greedy_paper", "greedy_ours")} for r in runs}
    return out


def tune_lr(seed=99):
    """The base-LR grid: final training loss of a constant LR, development seed 99."""
    grids = LR_GRIDS
    out = {}
    for w in WORKLOADS:
        for o, grid in grids.items():
            rows = []
            for lr in grid:
                run = TrainingRun(w, o, lr=lr, seed=seed)
                for _ in range(DEFAULT_STEPS[w]):
                    run.train_step()
                rows.append({"lr": lr, **{k: (None if v is None else _finite(v))
                                          for k, v in run.evaluate().items()}})
            best = min(rows, key=lambda r: r["train_loss"])["lr"]
            out[f"{w}/{o}"] = {"grid": rows, "best": best, "BASE_LR": BASE_LR[(w, o)]}
            print(f"{w}/{o}: best constant LR {best} (BASE_LR {BASE_LR[(w, o)]})", flush=True)
    return out


def greedy_dev(seed=99):
    """Final training loss of the GreedyLR candidates (and cosine, linear, greedy_paper) on
    the development seed: how ``greedy_ours`` was chosen."""
    global GREEDY_OURS, GREEDY_OURS_MIN, GREEDY_OURS_MAX
    chosen = (GREEDY_OURS, GREEDY_OURS_MIN, GREEDY_OURS_MAX)
    out = {}
    try:
        for w in WORKLOADS:
            for o in OPTIMIZERS:
                n = DEFAULT_STEPS[w]
                row = {m: run_one(w, o, m, seed, n)["checkpoints"]["100"]["train_loss"]
                       for m in ("cosine", "linear", "greedy_paper")}
                for name, cand in GREEDY_CANDIDATES.items():
                    GREEDY_OURS, GREEDY_OURS_MIN, GREEDY_OURS_MAX = cand
                    row[name] = run_one(w, o, "greedy_ours", seed, n)["checkpoints"]["100"]["train_loss"]
                out[f"{w}/{o}"] = row
                print(f"{w}/{o}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    finally:
        GREEDY_OURS, GREEDY_OURS_MIN, GREEDY_OURS_MAX = chosen
    best = {name: sum(min(row, key=lambda k: row[k] if k in GREEDY_CANDIDATES else math.inf) == name
                      for row in out.values()) for name in GREEDY_CANDIDATES}
    return {"seed": seed, "final_train_loss": out, "lowest_among_candidates": best}


def plot_histories(panels, path, title="", dpi=80):
    """LR (top row, log scale) and smoothed training loss (bottom row) per step, one column
    per panel; ``panels = {title: {method: run_one(...) result}}``. Writes ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n, 5.6), squeeze=False, sharex="col")
    for j, (name, runs) in enumerate(panels.items()):
        for m, r in runs.items():
            h = r["history"]
            axes[0, j].plot(h["step"], h["lr"], label=m, lw=1.4)
            axes[1, j].plot(h["step"], h["loss"], label=m, lw=1.4)
        axes[0, j].set_yscale("log")
        axes[1, j].set_yscale("log")
        axes[0, j].set_title(name, fontsize=9)
        axes[1, j].set_xlabel("optimizer step")
    axes[0, 0].set_ylabel("learning rate")
    axes[1, 0].set_ylabel(f"training loss (mean of last {WINDOW})")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------

def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def _mean_final(results, w, o, m, key):
    vals = [r["runs"][m]["checkpoints"]["100"][key] for r in results
            if r["workload"] == w and r["optimizer"] == o and m in r["runs"]]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def markdown(out):
    q = " --quick" if out["quick"] else ""
    L = [f"# GreedyLR and friends on DNN workloads ({'quick' if out['quick'] else 'full'})", "",
         f"Run time {out['seconds']:.0f} s on {out['machine']}, one thread, `nice -n 19`. "
         f"Command: `python benchmarks/bench_dnn.py{q}`. Seeds {out['seeds']}; schedulefree "
         f"{'installed' if out['schedulefree_installed'] else 'NOT installed (its column is missing)'}.", ""]
    L += ["## The paper's figures", "",
          "Comparisons: GreedyLR's training loss against each baseline's, per workload x optimizer "
          "x seed x checkpoint (10/50/100% of the steps). *abs*: the paper's rule (a difference "
          "under 0.1 is not significant); *rel*: under 1% of the baseline's loss.", "",
          "| GreedyLR | against | n | as good or better (abs) | (rel 1%) | at 100% only (abs / rel) | "
          "strictly lower final loss | clear wins (< -0.1) | ties (abs) |",
          "|---|---|---|---|---|---|---|---|---|",
          f"| paper (arXiv 2512.14527) | linear, cosine, polynomial, constant+warmup | 132 runs | "
          f"{_pct(PAPER['as_good_or_better'])} | - | - | {_pct(PAPER['better_final'])} | "
          f"{_pct(PAPER['clear_wins'])} | - |"]
    for g, s in out["summary"].items():
        for name, key in (("HF: linear, cosine, polynomial, constant+warmup", "vs_hf"),
                          ("plateau, hypergradient, schedule-free", "vs_other")):
            r = s[key]
            if not r.get("n"):
                continue
            L.append(f"| {g} | {name} | {r['n']} | {_pct(r['as_good_or_better_abs'])} | "
                     f"{_pct(r['as_good_or_better_rel'])} | {_pct(r['as_good_or_better_abs_final'])} / "
                     f"{_pct(r['as_good_or_better_rel_final'])} | {_pct(r['better_final'])} | "
                     f"{_pct(r['clear_wins'])} | {_pct(r['ties_abs'])} |")
    L += ["", "Per checkpoint (against the four HF baselines): as good or better abs / rel 1%, "
          "clear wins:", "", "| GreedyLR | " + " | ".join(f"{cp}% of the steps" for cp in CHECKPOINTS)
          + " |", "|---|" + "---|" * len(CHECKPOINTS)]
    for g, s in out["summary"].items():
        cells = []
        for cp in CHECKPOINTS:
            r = s["per_checkpoint"][str(cp)]
            cells.append("-" if not r.get("n") else f"{_pct(r['as_good_or_better_abs'])} / "
                         f"{_pct(r['as_good_or_better_rel'])}, {_pct(r['clear_wins'])}")
        L.append(f"| {g} | " + " | ".join(cells) + " |")
    L += ["", "Per baseline (as good or better, abs / rel 1%, all checkpoints):", "",
          "| GreedyLR | " + " | ".join(HF_BASELINES + OTHER_BASELINES) + " |",
          "|---|" + "---|" * len(HF_BASELINES + OTHER_BASELINES)]
    for g, s in out["summary"].items():
        cells = []
        for b in HF_BASELINES + OTHER_BASELINES:
            r = s["per_baseline"].get(b, {"n": 0})
            cells.append("-" if not r.get("n") else
                         f"{_pct(r['as_good_or_better_abs'])} / {_pct(r['as_good_or_better_rel'])}")
        L.append(f"| {g} | " + " | ".join(cells) + " |")
    L += ["", "Per workload (against the four HF baselines; abs / rel 1%):", "",
          "| workload | optimizer | " + " | ".join(out["summary"]) + " |",
          "|---|---|" + "---|" * len(out["summary"])]
    for w in out["workloads"]:
        for o in out["optimizers"]:
            cells = []
            for g, s in out["summary"].items():
                r = s["per_workload"][f"{w}/{o}"]
                cells.append("-" if not r.get("n") else
                             f"{_pct(r['as_good_or_better_abs'])} / {_pct(r['as_good_or_better_rel'])}")
            L.append(f"| {w} | {o} | " + " | ".join(cells) + " |")
    res, methods = out["results"], out["methods"]
    for key, title in (("train_loss", "Final training loss"), ("val_loss", "Final validation loss"),
                       ("val_acc", "Final validation accuracy")):
        L += ["", f"## {title} (mean over seeds)", "",
              "| workload | optimizer | base LR | " + " | ".join(methods) + " |",
              "|---|---|---|" + "---|" * len(methods)]
        for w in out["workloads"]:
            if key == "val_acc" and w == "quadratic":
                continue
            for o in out["optimizers"]:
                vals = [_mean_final(res, w, o, m, key) for m in methods]
                ok = [v for v in vals if v is not None and math.isfinite(v)]
                best = (max(ok) if key == "val_acc" else min(ok)) if ok else None
                cells = ["-" if v is None else (f"**{v:.4g}**" if v == best else f"{v:.4g}")
                         for v in vals]
                L.append(f"| {w} | {o} | {BASE_LR[(w, o)]:g} | " + " | ".join(cells) + " |")
    for m, rows in out["rl"].items():
        if not rows:
            continue
        L += ["", f"## Phase 2: {m} against cosine (final loss ratio; < 1: {m} lower)", "",
              "| workload | held-out workload | optimizer | seed | train loss ratio | val loss ratio | "
              "val acc (policy / cosine) | steps to cosine's final smoothed loss |",
              "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            acc = "-" if r["val_acc"] is None else f"{r['val_acc']:.3f} / {r['cosine_val_acc']:.3f}"
            L.append(f"| {r['workload']} | {'yes' if r['heldout_workload'] else 'no (held-out seed)'} | "
                     f"{r['optimizer']} | {r['seed']} | {r['train_ratio']:.3f} | {r['val_ratio']:.3f} | "
                     f"{acc} | {r['steps_to_cosine_final'] or 'not reached'} of {r['steps']} |")
        for held in (True, False):
            sub = [r for r in rows if r["heldout_workload"] == held]
            if sub:
                L.append("")
                L.append(f"{'Held-out workloads' if held else 'Training workloads, held-out seeds'}: "
                         f"{m} lower train loss than cosine in {sum(r['train_ratio'] < 1 for r in sub)} of "
                         f"{len(sub)}, lower val loss in {sum(r['val_ratio'] < 1 for r in sub)} of "
                         f"{len(sub)}; median train ratio {np.median([r['train_ratio'] for r in sub]):.3f}.")
    return "\n".join(L) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="12 steps, seed 0 (what the test runs)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    p.add_argument("--tune-lr", action="store_true", help="the base-LR grid (development seed 99)")
    p.add_argument("--tuned-cosine", default=None, metavar="JSON",
                   help="cosine at its own best base LR against the GreedyLR runs of a results "
                        "JSON (writes dnn_tuned_cosine.json)")
    p.add_argument("--greedy-dev", action="store_true",
                   help="the GreedyLR candidates for greedy_ours (development seed 99)")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="only rewrite the markdown of a results JSON (dnn.json -> dnn.md)")
    p.add_argument("--workloads", nargs="*", default=None, choices=WORKLOADS)
    p.add_argument("--methods", nargs="*", default=None, choices=METHODS)
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    if a.report:
        with open(a.report) as fh:
            out = json.load(fh)
        md = os.path.splitext(a.report)[0] + ".md"
        with open(md, "w") as fh:
            fh.write(markdown(out))
        print(f"wrote {md}")
        return 0
    if a.tuned_cosine:
        res = tuned_cosine(a.tuned_cosine)
        with open(os.path.join(a.out, "dnn_tuned_cosine.json"), "w") as fh:
            json.dump(res, fh, indent=1)
        print(json.dumps(res["summary"], indent=1))
        return 0
    if a.tune_lr:
        res = tune_lr()
        with open(os.path.join(a.out, "dnn_lr_grid.json"), "w") as fh:
            json.dump(res, fh, indent=1)
        return 0
    if a.greedy_dev:
        res = greedy_dev()
        with open(os.path.join(a.out, "dnn_greedy_dev.json"), "w") as fh:
            json.dump(res, fh, indent=1)
        print(res["lowest_among_candidates"])
        return 0
    out = bench(a.quick, workloads=a.workloads, methods=a.methods)
    stem = "dnn_quick" if a.quick else "dnn"
    with open(os.path.join(a.out, stem + ".json"), "w") as fh:
        json.dump(out, fh, separators=(",", ":"), default=float)
    with open(os.path.join(a.out, stem + ".md"), "w") as fh:
        fh.write(markdown(out))
    print(f"wrote {stem}.json and {stem}.md in {a.out} ({out['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
