"""The verify sweep's multiplier grid, its summaries, its markdown tables and its figure
(``bounds/verify.py`` runs the sweep; this module only reads results)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: multipliers of the ceiling the sweep runs at (at or below 1: the claim; above: the edge)
BELOW = (0.25, 0.5, 2 ** -0.5, 2 ** -0.25, 1.0)
#: 2^(1/8) steps up to 2 (1.09, 1.19, 1.30, ...), then 2^(1/4) steps up to 8
ABOVE = tuple(2 ** (j / 8) for j in range(1, 9)) + tuple(2 ** (j / 4) for j in range(5, 13))


def _median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def summarize(results):
    fams = {}
    for r in results:
        fams.setdefault(r["family"], []).append(r)
    rows = []
    for fam, rs in fams.items():
        edges = [r["edge"] for r in rs]
        fedges = [r["fail_edge"] for r in rs]
        rows.append({
            "family": fam, "mode": rs[0]["mode"], "claim": rs[0]["claim"], "group": rs[0]["group"],
            "problems": len({r["id"] for r in rs}),
            "problem_x_seed": len(rs),
            "runs_at_or_below": sum(r["below_runs"] for r in rs),
            "diverged_at_or_below": sum(r["below_diverged"] for r in rs),
            "increased_at_or_below": sum(r["below_increased"] for r in rs),
            "median_edge": _median(edges), "min_edge": min(edges),
            "max_finite_edge": max([e for e in edges if math.isfinite(e)], default=None),
            "no_edge_up_to_8": sum(1 for e in edges if not math.isfinite(e)),
            "median_fail_edge": _median(fedges),
            "stalled_at_or_below": sum(r.get("below_stalled", 0) for r in rs),
            "median_stall_edge": _median([r.get("stall_edge", math.inf) for r in rs]),
            "frac_edge_le_1.5": float(np.mean([e <= 1.5 for e in edges])),
        })
    def group_total(claim):
        return {
            "problem_x_seed": len(claim),
            "runs": sum(len(r["runs"]) for r in claim),
            "runs_at_or_below": sum(r["below_runs"] for r in claim),
            "diverged_at_or_below": sum(r["below_diverged"] for r in claim),
            "increased_at_or_below": sum(r["below_increased"] for r in claim),
            "median_edge": _median([r["edge"] for r in claim]),
            "median_fail_edge": _median([r["fail_edge"] for r in claim]),
        }

    noise_total = group_total([r for r in results if r["group"] == "noise"])
    sharded_total = group_total([r for r in results if r["group"] == "sharded"])
    regularized_total = group_total([r for r in results if r["group"] == "regularized"])
    claim = [r for r in results if r["claim"]]
    total = {
        "problem_x_seed": len(claim),
        "runs": sum(len(r["runs"]) for r in claim),
        "runs_at_or_below": sum(r["below_runs"] for r in claim),
        "diverged_at_or_below": sum(r["below_diverged"] for r in claim),
        "increased_at_or_below": sum(r["below_increased"] for r in claim),
        "median_edge": _median([r["edge"] for r in claim]),
        "median_fail_edge": _median([r["fail_edge"] for r in claim]),
        "min_edge": min([r["edge"] for r in claim], default=None),
        "min_fail_edge": min([r["fail_edge"] for r in claim], default=None),
        "frac_edge_le_1.5": float(np.mean([r["edge"] <= 1.5 for r in claim])) if claim else None,
        "noise_group": noise_total,
        "sharded_group": sharded_total,
        "sharded_cells": sharded_cells(results),
        "regularized_group": regularized_total,
        "regularized_cells": regularized_cells(results),
    }
    return rows, total


def _cell_counts(rs):
    """Counts at or below the ceiling and the edges of the problems ``rs`` of one cell."""
    return {"problem_x_seed": len(rs),
            "runs_at_or_below": sum(r["below_runs"] for r in rs),
            "diverged_at_or_below": sum(r["below_diverged"] for r in rs),
            "increased_at_or_below": sum(r["below_increased"] for r in rs),
            "median_edge": _median([r["edge"] for r in rs]),
            "min_edge": min(r["edge"] for r in rs),
            "median_fail_edge": _median([r["fail_edge"] for r in rs])}


def sharded_cells(results):
    """The sharded families per (family, p, precondition, b/m): counts at or below the
    ceiling and the median edge (THEORY.md §10)."""
    cells = {}
    for r in results:
        if r["mode"] not in ("shard", "shard-half"):
            continue
        key = (r["family"], r["shards"], r["precondition"], float(f"{r['batch_frac']:.2g}"))
        cells.setdefault(key, []).append(r)
    out = []
    for (fam, p, pre, frac), rs in cells.items():
        out.append({"family": fam, "shards": p, "precondition": pre, "batch_frac": frac,
                    **_cell_counts(rs)})
    return out


def regularized_cells(results):
    """The regularized family per (precondition, l1_ratio, b/m): counts at or below the
    (ridged) ceiling, the median edge, and the ridged ceilings at the init over the
    unregularized ones of the same first batch (THEORY.md §11)."""
    cells = {}
    for r in results:
        if r["group"] != "regularized":
            continue
        key = (r["precondition"], r["l1_ratio"], float(f"{r['batch_frac']:.2g}"))
        cells.setdefault(key, []).append(r)
    out = []
    for (pre, rho, frac), rs in cells.items():
        out.append({"precondition": pre, "l1_ratio": rho, "batch_frac": frac,
                    "alpha_rel": rs[0]["penalty"]["alpha_rel"], **_cell_counts(rs),
                    "collapsed_at_or_below": sum(run.get("collapsed", False) for r in rs
                                                 for run in r["runs"] if run["mult"] <= 1.0),
                    "collapsed_above": sum(run.get("collapsed", False) for r in rs
                                           for run in r["runs"] if run["mult"] > 1.0),
                    "ceiling_W0_ratio": _median([r["runs"][0]["ceiling_W0"]
                                                 / r["penalty"]["unreg_ceiling_W0"] for r in rs]),
                    "ceiling_H0_ratio": _median([r["runs"][0]["ceiling_H0"]
                                                 / r["penalty"]["unreg_ceiling_H0"] for r in rs])})
    return out


def _floor_cell(rs):
    """Predicted (the trace's ``floor``, tail mean) and measured (tail loss) increase of the
    stationary level from multiplier 0.25 to 1, over the initial loss (means over seeds)."""
    pred, meas = [], []
    for r in rs:
        runs = {round(x["mult"], 6): x for x in r["runs"]}
        a, b = runs.get(0.25), runs.get(1.0)
        if a is None or b is None or a.get("floor_tail") is None or b.get("floor_tail") is None:
            continue
        pred.append((b["floor_tail"] - a["floor_tail"]) / r["runs"][0]["loss0"])
        meas.append(b["tail_rel"] - a["tail_rel"])
    if not pred:
        return "-"
    return f"{_fmt(float(np.mean(pred)))} / {_fmt(float(np.mean(meas)))}"


def _fmt(x, d=3, inf="> 8"):
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return inf
        return f"{x:.{d}g}"
    return str(x)


def write_markdown(path, rows, total, results, extras, meta):
    L = ["# Verification of the stability ceilings", "",
         f"Generated by `python bounds/verify.py{' --quick' if meta['quick'] else ''}` "
         f"({meta['seconds']:.0f} s, {meta['workers']} worker(s), numpy {meta['numpy']})"
         + "".join(f"; families {', '.join(f'`{x}`' for x in mg['families'])} rerun with "
                   f"`--only {mg['only']} --merge` ({mg['seconds']:.0f} s, {mg['workers']} "
                   f"worker(s)), the other families' runs kept"
                   for mg in meta.get("merged", [])) + ". "
         "Every step of every block runs at `mult x` its own current ceiling; the claimed ceiling "
         "(mode `seq`) is THEORY.md §2.2: `(1 + b/m)/2 x 2/L_X` per block. "
         "Multipliers: " + ", ".join(f"{m:.3g}" for m in BELOW + ABOVE) + " (the scan upward "
         "stops at the first divergence). `guard=False`, `clip_lr` used as the instrument "
         "(see the module docstring).", "",
         "## Claim: the stability ceiling (group `stability`: noise-free, plain steps)", "",
         f"- problem x seed runs: **{total['problem_x_seed']}** ({total['runs']} fits, "
         f"{total['runs_at_or_below']} at multipliers <= 1)",
         f"- divergences at or below the ceiling: **{total['diverged_at_or_below']}**",
         f"- runs at or below the ceiling whose mean loss over the last third of the epochs "
         f"exceeds the initial loss: **{total['increased_at_or_below']}**",
         f"- median edge / ceiling: **{_fmt(total['median_edge'])}** (divergence edge; min "
         f"{_fmt(total['min_edge'])}); median failure edge (divergence or no progress): "
         f"**{_fmt(total['median_fail_edge'])}** (min {_fmt(total['min_fail_edge'])}); fraction of "
         f"problem x seed with divergence edge <= 1.5: {_fmt(total['frac_edge_le_1.5'])}", "",
         "## Gradient noise with per-epoch balancing (group `noise`, THEORY.md §3.4)", "",
         f"- problem x seed: {total['noise_group']['problem_x_seed']}; diverged at or below the "
         f"ceiling: **{total['noise_group']['diverged_at_or_below']}** of "
         f"{total['noise_group']['runs_at_or_below']} runs; increased: "
         f"{total['noise_group']['increased_at_or_below']}; median edge "
         f"{_fmt(total['noise_group']['median_edge'])}", "",
         "## The sharded scheme of the Dask path (group `sharded`, THEORY.md §10)", "",
         f"- problem x seed: {total['sharded_group']['problem_x_seed']} "
         f"({total['sharded_group']['runs']} fits); diverged at or below the ceiling the engine "
         f"enforces: **{total['sharded_group']['diverged_at_or_below']}** of "
         f"{total['sharded_group']['runs_at_or_below']} runs; increased: "
         f"{total['sharded_group']['increased_at_or_below']}; median edge "
         f"{_fmt(total['sharded_group']['median_edge'])}; median failure edge "
         f"{_fmt(total['sharded_group']['median_fail_edge'])}", "",
         "`solve_sharded` in this process, p row shards, local steps, the other shards' stale "
         "exact terms in the H step, an H average per epoch; every local step at `mult x` the "
         "ceiling the engine enforces for it (the rule on `s_i W_B^T W_B + G_-i`, times 1/2, "
         "THEORY.md §10.4). The family `sharded, factor (1 + b/m)/2 (before)` (group `finding`) "
         "runs the same problems with the single-machine factor the engine applied before "
         "(§10.3: not stable).", "",
         "| family | p | precondition | b/m | problem x seed | runs <= 1 | diverged <= 1 | "
         "increased <= 1 | median edge | min edge | median failure edge |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in total.get("sharded_cells", []):
        L.append(f"| {c['family']} | {c['shards']} | {c['precondition']} | {c['batch_frac']:g} | "
                 f"{c['problem_x_seed']} | {c['runs_at_or_below']} | {c['diverged_at_or_below']} | "
                 f"{c['increased_at_or_below']} | {_fmt(c['median_edge'])} | {_fmt(c['min_edge'])} "
                 f"| {_fmt(c['median_fail_edge'])} |")
    rg = total.get("regularized_group")
    if rg and rg["problem_x_seed"]:
        L += ["", "## Penalties: the proximal step at the ridged ceiling (group `regularized`, "
              "THEORY.md §11)", "",
              f"- problem x seed: {rg['problem_x_seed']} ({rg['runs']} fits); diverged at or below "
              f"the ridged ceiling: **{rg['diverged_at_or_below']}** of {rg['runs_at_or_below']} "
              f"runs; increased (regularized objective): {rg['increased_at_or_below']}; median "
              f"edge {_fmt(rg['median_edge'])}; median failure edge "
              f"{_fmt(rg['median_fail_edge'])}", "",
              "`fit(alpha_W=alpha, alpha_H=\"same\", l1_ratio=rho)` with `alpha = alpha_rel x "
              "min(L_W/n, L_H/m)` at the init; every step at `mult x` the engine's ceiling: the "
              "preconditioner's rule on the ridged Grams (`HH^T + l2_W I`, `s W_B^T W_B + l2_H I`) "
              "times `(1 + b/m)/2`. Loss = the regularized objective (the trace's; the initial "
              "loss includes the penalty). Ceiling ratios: the engine's ceilings at the init over "
              "the unregularized ones of the same first batch (median; `cd` is in its own LR "
              "unit: its W ceiling is 2 whatever the ridge, the ridge goes into the scaling "
              "`G_cc + l2`). Collapsed: runs ending with `W = 0` or `H = 0` (the "
              "objective is then `||V||^2/2`, which can be below the regularized initial loss: "
              "neither divergence nor increase flags it).", "",
              "| precondition | l1_ratio | alpha_rel | b/m | problem x seed | runs <= 1 | "
              "diverged <= 1 | increased <= 1 | median edge | min edge | median failure edge | "
              "collapsed <= 1 | collapsed > 1 | c_W / unreg. | c_H / unreg. |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in total.get("regularized_cells", []):
            L.append(f"| {c['precondition']} | {c['l1_ratio']:g} | {c['alpha_rel']:g} | "
                     f"{c['batch_frac']:g} | {c['problem_x_seed']} | {c['runs_at_or_below']} | "
                     f"{c['diverged_at_or_below']} | {c['increased_at_or_below']} | "
                     f"{_fmt(c['median_edge'])} | {_fmt(c['min_edge'])} | "
                     f"{_fmt(c['median_fail_edge'])} | {c['collapsed_at_or_below']} | "
                     f"{c['collapsed_above']} | {_fmt(c['ceiling_W0_ratio'])} | "
                     f"{_fmt(c['ceiling_H0_ratio'])} |")
    L += ["",
         "Group `finding` (not claims): the Gram W step with the diag(G) H step, noise without "
         "balancing, the per-block ceiling without the minibatch factor, a constant LR fixed at "
         "the init, the single-machine factor on the sharded scheme (before 1/2).", "",
         "## Per family", "",
         "| family | group | ceiling | problems | problem x seed | runs <= 1 | diverged <= 1 | "
         "increased <= 1 | stalled <= 1 | median edge | min edge | max finite edge | no edge <= 8 "
         "| edge <= 1.5 | median failure edge | median increased-or-stalled edge |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['family']} | {r['group']} | {r['mode']} | {r['problems']} | "
                 f"{r['problem_x_seed']} | {r['runs_at_or_below']} | {r['diverged_at_or_below']} | "
                 f"{r['increased_at_or_below']} | {r.get('stalled_at_or_below', '-')} | "
                 f"{_fmt(r['median_edge'])} | {_fmt(r['min_edge'])} | "
                 f"{_fmt(r['max_finite_edge'])} | {r['no_edge_up_to_8']} | "
                 f"{_fmt(r['frac_edge_le_1.5'])} | {_fmt(r['median_fail_edge'])} | "
                 f"{_fmt(r.get('median_stall_edge'))} |")
    L += ["", "Ceiling `seq`: `(1 + b/m)/2 x 2/L_X` per block at every step (THEORY.md §2.2); "
          "`block`: the per-block `2/L_X` without the minibatch factor (the solver before it was wired in); `const`: a constant per-block "
          "LR, `mult x` the `seq` ceilings at the initialization; `shard`: the sharded scheme at the "
          "ceiling the engine enforces for each local step (THEORY.md §10); `shard-half`: the same "
          "with the factor 1/2. Edge = smallest multiplier that "
          "diverged (non-finite, > 1e4 x, or final > 10 x the initial loss); failure edge = smallest "
          "multiplier that diverged or whose mean loss over the last third of the epochs exceeds the "
          "initial loss. `increased <= 1` counts the latter at multipliers <= 1. Stalled: the mean "
          "loss of the last third achieved less than half the progress (initial minus tail) of the "
          "same problem x seed at multiplier 0.25 (not a loss of stability; with the noise-aware "
          "ceiling it measures what the small LR buys); the increased-or-stalled edge is the "
          "smallest multiplier that diverged, increased or stalled. Edges are per family; the "
          "pooled medians above are a summary only.", ""]
    L += ["## Per problem (edge per seed)", "",
          "| problem | shape | b/m | factor | edges (per seed) | failure edges | diverged <= 1 "
          "| increased <= 1 | predicted floor at 1 / initial loss (plain steps) | best tail / initial "
          "loss | floor 1 vs 0.25: predicted (trace) / measured |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    byid = {}
    for r in results:
        byid.setdefault(r["id"], []).append(r)
    for pid, rs in byid.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        L.append(f"| {pid} | {rs[0]['shape'][0]}x{rs[0]['shape'][1]}{' sp' if rs[0]['sparse'] else ''} "
                 f"| {rs[0]['batch_frac']:.3g} | {rs[0]['factor']:.3g} | "
                 + ", ".join(_fmt(r["edge"]) for r in rs) + " | "
                 + ", ".join(_fmt(r["fail_edge"]) for r in rs)
                 + f" | {sum(r['below_diverged'] for r in rs)} | {sum(r['below_increased'] for r in rs)} | "
                 + (f"{_fmt(float(np.mean([r['floor_pred_at_1'] for r in rs])), inf='inf')} | "
                    if rs[0]["precondition"] == "none" and rs[0]["shards"] == 1
                    and "penalty" not in rs[0] else "- | ")
                 + f"{_fmt(float(np.mean([r['best_tail'] for r in rs])))} | "
                 + _floor_cell(rs) + " |")
    if extras.get("notes_case"):
        nc = extras["notes_case"]
        be = nc["batch_excess_at_init"]
        L += ["", "## The THEORY-NOTES run", "", nc["problem"] + ", per-block ceilings without the minibatch factor, "
              "solver, W then H, each block at `eta = c / L_X` (`L_H` = batch curvature of the step). "
              f"Predicted edge (THEORY.md §2.2): c = {nc['predicted_edge_eta_times_L']:.3g}. "
              f"Batch curvature / full curvature at the init: mean {be['mean']:.4g}, max over 200 "
              f"batches {be['max_of_200']:.4g}, bound over all batches {be['bound_all_batches']:.4g}.", "",
              "| c = eta x L | diverged | stop | epochs | final / initial loss | max batch excess "
              "(first epoch) | max batch excess (run) |", "|---|---|---|---|---|---|---|"]
        for r in nc["runs"]:
            L.append(f"| {r['eta_times_L']:.3g} | {r['diverged']} | {r['stop_reason']} | "
                     f"{r['epochs_run']} | {_fmt(r['final_rel'])} | "
                     f"{_fmt(r['batch_excess_first_epoch_max'])} | {_fmt(r['batch_excess_max'])} |")
    if extras.get("linearization"):
        lin = extras["linearization"]
        L += ["", "## Linear stability of the sequential minibatch epoch map", "",
              "Rank-one model (THEORY.md §2.2): first mu with spectral radius > 1 on a 0.0005 grid.", "",
              "| M = m/b | edge (numeric) | (M+1)/(2M) |", "|---|---|---|"]
        for r in lin["rank_one_model"]:
            L.append(f"| {r['M']} | {_fmt(r['edge_numeric'], 4)} | {r['edge_formula']:.4g} |")
        L += ["", "General k (60 x 40 exact planted factorization, finite-difference Jacobian of one "
              "epoch, the k^2 neutral modes removed): spectral radius at the predicted edge -/+ 0.02.", "",
              "| entries | k | M | predicted mu* | rho(mu* - 0.02) | rho(mu* + 0.02) |",
              "|---|---|---|---|---|---|"]
        for r in lin["general_k"]:
            L.append(f"| {r['dist']} | {r['k']} | {r['M']} | {r['mu_pred']:.3g} | "
                     f"{r['rho_below']:.4f} | {r['rho_above']:.4f} |")
        L += ["", "Asymmetric fractions: the region M mu_H (2 mu_W - 1) < mu_W.", "",
              "| M | mu_W | mu_H | predicted stable | rho (rank-one model) |", "|---|---|---|---|---|"]
        for r in lin["asymmetric"]:
            L.append(f"| {r['M']} | {r['mu_W']} | {r['mu_H']} | {r['predicted_stable']} | "
                     f"{r['rho_rank_one']:.4g} |")
    if extras.get("sharded_linearization"):
        sl = extras["sharded_linearization"]
        L += ["", "## Linear stability of the sharded epoch map (THEORY.md §10.3)", "",
              "Rank-one model, p equal shards of M equal batches, every local step at mu of its own "
              "ceiling (W and H alike): first mu with spectral radius > 1 (scan 0.01, then "
              "bisection); the single-machine factor (M+1)/(2M) (the engine's before 1/2); the "
              "closed form of Theorem 10.2 for M = 1; the spectral radius at mu = 1/2 (the "
              "engine's factor, §10.4).", "",
              "| p | M | edge (numeric) | single-machine factor (M+1)/(2M) | edge / factor | closed form (M = 1) "
              "| rho at 1/2 |", "|---|---|---|---|---|---|---|"]
        for r in sl["rank_one_model"]:
            e = r["edge_numeric"]
            L.append(f"| {r['p']} | {r['M']} | {_fmt(e, 4)} | {r['factor']:.4g} | "
                     f"{_fmt(e / r['factor'] if e is not None else None, 3)} | "
                     f"{_fmt(r['edge_closed_form'], 4)} | {r['rho_at_half']:.3f} |")
        L += ["", "General k (60 x 40 exact planted factorization, finite-difference Jacobian of one "
              "sharded epoch, the k^2 neutral modes removed): spectral radius at mu = 1/2, at the "
              "engine's factor and at the rank-one edge -/+ 0.02.", "",
              "| entries | k | p | M | engine factor | rank-one edge | rho(1/2) | rho(factor) "
              "| rho(edge - 0.02) | rho(edge + 0.02) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sl["general_k"]:
            L.append(f"| {r['dist']} | {r['k']} | {r['p']} | {r['M']} | {r['factor']:.4g} | "
                     f"{r['edge_rank_one']:.4g} | {r['rho_half']:.4f} | {r['rho_factor']:.4f} | "
                     f"{r['rho_edge_below']:.4f} | {r['rho_edge_above']:.4f} |")
    if extras.get("gram_variants"):
        gv = extras["gram_variants"]
        L += ["", "## The projected Gram H step and two fallbacks (THEORY.md §7)", "",
              "numpy re-implementation of the solver's Gram scheme (same batches, W step "
              "`(HH^T)^-1`-scaled, steps at mult x the §2.2 ceiling of each variant), H step: `gram` = "
              "`G^-1 g` then the Euclidean projection (the solver before the diag H step), `diag` = `diag(G)^-1 g`, "
              "`pnewton` = `G` restricted to the free variables of each column. Final loss / initial "
              "loss after 25 epochs (DIV = diverged).", "",
              "| problem | b/m | H step | " + " | ".join(f"mult {m:g}" for m in (0.5, 0.841, 1.0, 1.41))
              + " |", "|---|---|---|---|---|---|---|"]
        keys = []
        for r in gv:
            key = (r["problem"], r["batch_frac"], r["variant"])
            if key not in keys:
                keys.append(key)
        for key in keys:
            cells = []
            for r in gv:
                if (r["problem"], r["batch_frac"], r["variant"]) == key:
                    cells.append("DIV" if r["diverged"] else _fmt(r["final_rel"]))
            L.append(f"| {key[0]} | {key[1]:g} | {key[2]} | " + " | ".join(cells) + " |")
    Path(path).write_text("\n".join(L) + "\n")


def write_figure(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = []
    for r in results:
        if r["family"] not in fams:
            fams.append(r["family"])
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(fams)), 4.2))
    rng = np.random.default_rng(0)
    top = 11.0
    for i, fam in enumerate(fams):
        es = np.array([r["edge"] for r in results if r["family"] == fam], dtype=float)
        fin = np.isfinite(es)
        x = i + 0.15 * rng.standard_normal(es.size)
        group = [r for r in results if r["family"] == fam][0]["group"]
        color = {"stability": "C0", "noise": "C2", "sharded": "C4",
                 "regularized": "C5"}.get(group, "C1")
        ax.scatter(x[fin], es[fin], s=14, alpha=0.6, color=color)
        ax.scatter(x[~fin], np.full((~fin).sum(), top), s=14, marker="^", alpha=0.6, color="C3")
        if fin.any():
            ax.hlines(np.median(np.where(fin, es, top)), i - 0.3, i + 0.3, color="k", lw=2)
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], ls="", marker="o", color=c, label=lab) for c, lab in (
        ("C0", "claim: stability"), ("C2", "noise + balancing"), ("C4", "sharded scheme (§10)"),
        ("C5", "penalties (§11)"),
        ("C1", "finding (not a claim)"))]
        + [Line2D([], [], ls="", marker="^", color="C3", label="no divergence up to 8")],
        fontsize=7, loc="upper left")
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.axhline(1.5, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_ylim(0.2, 14)
    ax.set_xticks(range(len(fams)))
    ax.set_xticklabels(fams, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("empirical edge / ceiling")
    ax.set_title("smallest diverging multiplier of the ceiling (line: median; "
                 "red triangles: none up to 8)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
