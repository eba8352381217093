"""Every schedule under one protocol: tuned on training problems, tested on others, over seeds.

Protocol
--------
* **Equal tuning budgets.** Every method that takes hyper-parameters gets the same number of
  trials (``N_TRIALS`` settings, listed in :func:`methods`), tuned on *training* problems (the RL
  "train" split) per budget: the setting with the lowest mean log(final error / best final
  error on that training problem) wins. Nothing is tuned on a test problem. Methods without
  hyper-parameters (``auto``, ``rl``) run as they are. The per-problem oracle (best constant or
  step-decay setting on the test problem itself) is a reference line only.
* **Test sets.** ``heldout``: problems of the RL "eval" split (never trained on, same
  generator). ``ood`` (out of distribution): digits, faces, camera patches, a real sparse text
  matrix (``source_tfidf``), heavy-tailed, badly scaled (x 1e4, ill-conditioned), tall and wide.
* **Seeds.** ``--seeds`` (default 5) per test problem: the seed of the initialization and the
  minibatch order, and of the data for heavy-tailed, badly scaled, tall and wide (a held-out
  problem is one fixed draw of its distribution).
* **Budgets.** 10, 30 and 100 epochs (every method runs once per budget when it depends on the
  horizon; otherwise its 100-epoch run is read at the budget), plus the GreedyLR paper's
  checkpoints: 10%, 50% and 100% of the steps of the 100-epoch run.
* **Comparisons.** Per (problem, seed, budget): strict wins and losses, and the equivalence
  rule of the GreedyLR paper (a relative difference under 1% is a tie); fractions with Wilson
  95% intervals, a two-sided sign test on the strict wins against the strict losses.
* GreedyLR runs both per epoch (exact loss) and per minibatch (``schedule_every=1`` on the
  smoothed minibatch loss, ``window``), and the "constant fraction of the current ceiling"
  control (``ceiling_fraction``) stands beside the RL policy, whose action is such a fraction.

    python benchmarks/bench_schedules.py [--quick] [--seeds 5] [--out benchmarks/results]
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nmf_sched  # noqa: E402
from nmf_sched import datasets  # noqa: E402
from nmf_sched.init import initialize  # noqa: E402
from nmf_sched.rl.env import ProblemDistribution  # noqa: E402

N_TRIALS = 4
TIE = 0.01  # the GreedyLR paper's equivalence rule: |a - b| / b < 1% is a tie
#: the research line's numbers, beside which the measured ones are reported
PAPER = {"rl_vs_step": "RL beats tuned step decay on >= 80% of held-out problems (the RL line's "
                       "claim)",
         "greedy_vs_classic": "GreedyLR as good or better than the classic schedules in 86.7% of "
                              "comparisons (GreedyLR paper, 1% equivalence rule)",
         "greedy_faster": "GreedyLR faster to target than hypergradient and SLS (the research "
                          "line's claim: on >= 70% of problems)"}


def methods(budget):
    """name -> (trials, horizon): the fit keyword arguments of each trial (N_TRIALS for a tuned
    method, one for ``rl`` and ``auto``) and whether the method depends on the budget (then it
    runs once per budget; otherwise its longest run is read at each budget)."""
    g = lambda **kw: ("greedy", dict({"lr": "bound", "max_lr": None}, **kw))  # noqa: E731
    batch = dict(schedule_every=1, schedule_loss="batch")
    M = {
        "constant": ([{"schedule": ("constant", {"lr": a})} for a in (0.25, 0.5, 1.0, 1.5)], False),
        "step": ([{"schedule": ("step", {"lr": 1.0, "step_size": s, "gamma": gm})}
                  for s, gm in ((5, 0.5), (15, 0.5), (10, 0.1), (30, 0.1))], False),
        "exp": ([{"schedule": ("exp", {"lr": 1.0, "gamma": gm})} for gm in (0.9, 0.95, 0.97, 0.99)],
                False),
        "cosine": ([{"schedule": ("cosine", {"lr": a, "total": budget})} for a in (0.5, 1.0, 1.5, 1.8)],
                   True),
        "ceiling_fraction": ([{"schedule": ("ceiling_fraction", {"fraction": a})}
                              for a in (0.2, 0.35, 0.5, 0.7)], False),
        "greedy_epoch": ([{"schedule": g(factor=f, patience=p)}
                          for f, p in ((0.95, 10), (0.9, 2), (0.8, 1), (0.95, 0))], False),
        "greedy_batch": ([dict(batch, schedule=g(factor=0.95, patience=p, window=w))
                          for p, w in ((10, 50), (10, 10), (2, 5), (20, 20))], False),
        "hypergradient": ([{"schedule": ("hypergradient", {"granularity": "group", "beta": b}),
                            "schedule_every": 1} for b in (0.01, 0.02, 0.05, 0.1)], False),
        "sls": ([{"schedule": ("sls", {"c": c, "beta": bt}), "schedule_every": 1}
                 for c, bt in ((0.1, 0.9), (0.1, 0.5), (0.5, 0.9), (0.01, 0.7))], False),
        "rl": ([{"schedule": "rl"}], True),
        "auto": ([{"schedule": "auto"}], True),
    }
    return M


def _heavy(seed, m=400, n=300, k=8):
    p = datasets.planted(m, n, k, noise=0.05, seed=seed, dist="exponential")
    r = np.random.default_rng([seed, 31])
    return p.V * (1.0 + r.pareto(1.5, size=p.V.shape))


_CACHE = {}


def _cached(key, fn):
    if key not in _CACHE:
        _CACHE[key] = fn()
    return _CACHE[key]


def problem_sets(quick):
    """set -> list of (name, builder(seed) -> (V, rank, batch_size))."""
    tr, ev = ProblemDistribution("train"), ProblemDistribution("eval")

    def from_dist(d, i):
        def build(seed):
            p = d.draw(i)
            return p.V, p.rank, p.batch_size
        return build

    n_train, n_held = (1, 1) if quick else (4, 5)
    ood = [
        ("digits", lambda s: (_cached("digits", datasets.digits), 10, "auto")),
        ("heavy_tailed", lambda s: (_heavy(s), 8, "auto")),
        ("faces", lambda s: (_cached("faces", datasets.faces), 10, "auto")),
        ("camera", lambda s: (_cached("camera", lambda: datasets.camera_patches(step=4)), 10, "auto")),
        ("source_tfidf", lambda s: (_cached("tfidf", datasets.source_tfidf), 10, "auto")),
        ("badly_scaled", lambda s: (1e4 * datasets.planted(400, 300, 8, noise=0.1, seed=s,
                                                           condition=100).V, 8, "auto")),
        ("tall", lambda s: (datasets.planted(5000, 50, 6, noise=0.1, seed=s).V, 6, "auto")),
        ("wide", lambda s: (datasets.planted(50, 5000, 6, noise=0.1, seed=s).V, 6, "auto")),
    ]
    if quick:  # tiny problems of the same kinds, so that a test runs the protocol in seconds
        small = dict(m=(40, 80), n=(30, 50), rank=(2, 4))
        tr, ev = ProblemDistribution("train", **small), ProblemDistribution("eval", **small)
        ood = [("tall", lambda s: (datasets.planted(400, 12, 3, noise=0.1, seed=s).V, 3, "auto"))]
    return {"train": [(f"train{i}", from_dist(tr, i)) for i in range(n_train)],
            "heldout": [(f"heldout{i}", from_dist(ev, i)) for i in range(n_held)],
            "ood": ood}


def run(V, rank, W0, H0, batch, epochs, seed, kw):
    res = nmf_sched.fit(V, rank, W0=W0, H0=H0, epochs=epochs, batch_size=batch, seed=seed, tol=0,
                        **kw)
    tr = list(res.trace)
    return {"err": [float(r["rel_error"]) for r in tr], "sec": [float(r["seconds"]) for r in tr],
            "diverged": res.stop_reason == "diverged" or tr[-1]["retries"] > 0}


def _at(r, e):
    return r["err"][min(e, len(r["err"]) - 1)]


def run_all(V, rank, batch, seed, budgets, settings):
    """settings: name -> (list of kwargs, horizon) -> {name: [per trial {budget: run}]}."""
    W0, H0 = initialize(V, rank, "auto", seed=seed)
    bmax = max(budgets)
    out = {}
    for name, (grid, horizon) in settings.items():
        trials = []
        for kw in grid:
            if horizon:
                runs = {}
                for b in budgets:
                    kwb = dict(kw)
                    if kwb["schedule"] != "auto" and isinstance(kwb["schedule"], tuple) and \
                            "total" in kwb["schedule"][1]:
                        kwb["schedule"] = (kwb["schedule"][0], dict(kwb["schedule"][1], total=b))
                    runs[b] = run(V, rank, W0, H0, batch, b, seed, kwb)
            else:
                r = run(V, rank, W0, H0, batch, bmax, seed, kw)
                runs = {b: r for b in budgets}
            trials.append(runs)
        out[name] = trials
    return out


def tune(train_problems, budgets, seed=0):
    """Per method and budget: the index of the trial with the lowest mean log-ratio to the best
    final error on each training problem."""
    scores = {}
    for pname, build in train_problems:
        V, rank, batch = build(seed)
        runs = run_all(V, rank, batch, seed, budgets, methods(max(budgets)))
        for b in budgets:
            finals = {(m, i): _at(t[b], b) for m, ts in runs.items() for i, t in enumerate(ts)}
            best = min(v for v in finals.values() if math.isfinite(v))
            for (m, i), v in finals.items():
                s = math.log(v / best) if math.isfinite(v) else 10.0
                scores.setdefault((m, b), {}).setdefault(i, []).append(s)
        print(f"[train] {pname} done", flush=True)
    return {f"{m}@{b}": int(min(sc, key=lambda i: np.mean(sc[i]))) for (m, b), sc in scores.items()}


def wilson(k, n, z=1.96):
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def sign_test(wins, losses):
    from scipy.stats import binomtest
    n = wins + losses
    return float(binomtest(wins, n, 0.5).pvalue) if n else 1.0


def compare(a, b):
    """+1 a better (strict), -1 worse, and whether |a - b| / b < TIE."""
    return (1 if a < b else -1 if a > b else 0), abs(a - b) / b < TIE


def tally(pairs):
    """pairs: list of (a, b) finals (lower is better) -> counts, fractions, intervals, test."""
    n = len(pairs)
    res = [compare(a, b) for a, b in pairs]
    wins = sum(s > 0 for s, _ in res)
    losses = sum(s < 0 for s, _ in res)
    ties = sum(t for _, t in res)
    good = sum(s >= 0 or t for s, t in res)  # as good or better: strict win, equal, or a tie
    w_eq = sum(s > 0 and not t for s, t in res)
    l_eq = sum(s < 0 and not t for s, t in res)
    return {"n": n, "strict_wins": wins, "strict_losses": losses, "ties_1pct": ties,
            "wins_beyond_tie": w_eq, "losses_beyond_tie": l_eq,
            "as_good_or_better": good / n if n else float("nan"),
            "as_good_or_better_ci95": wilson(good, n),
            "strict_win_fraction": wins / n if n else float("nan"),
            "strict_win_ci95": wilson(wins, n),
            "sign_test_p": sign_test(wins, losses),
            "median_ratio": float(np.median([a / b for a, b in pairs])) if n else float("nan")}


def _seconds_to_target(r, target):
    for i, e in enumerate(r["err"]):
        if e <= target:
            return r["sec"][i]
    return None


def bench(quick=False, seeds=5, budgets=(10, 30, 100), partial=None):
    """``partial``: a path where the results so far are written after every test run."""
    t0 = time.perf_counter()
    sets = problem_sets(quick)
    choice = tune(sets["train"], budgets)
    rows = []
    for sname in ("heldout", "ood"):
        for pname, build in sets[sname]:
            for seed in range(seeds):
                V, rank, batch = build(seed)
                M = methods(max(budgets))
                tuned = {m: ([grid[choice[f"{m}@{max(budgets)}"]]] if len(grid) > 1 else grid, hz)
                         for m, (grid, hz) in M.items()}
                # a per-budget tuned setting differs from the 100-epoch one: run those too
                runs = run_all(V, rank, batch, seed, budgets, tuned)
                row = {"set": sname, "problem": pname, "seed": seed, "shape": list(V.shape),
                       "final": {}, "checkpoints": {}, "diverged": {}}
                for m, (grid, hz) in M.items():
                    per_b = {}
                    for b in budgets:
                        i = choice[f"{m}@{b}"] if len(grid) > 1 else 0
                        if len(grid) > 1 and i != choice[f"{m}@{max(budgets)}"]:
                            r = run_all(V, rank, batch, seed, (b,), {m: ([grid[i]], hz)})[m][0][b]
                        else:
                            r = runs[m][0][b]
                        per_b[str(b)] = _at(r, b)
                    row["final"][m] = per_b
                    r100 = runs[m][0][max(budgets)]
                    row["checkpoints"][m] = {f"{p}%": _at(r100, round(p / 100 * max(budgets)))
                                             for p in (10, 50, 100)}
                    row["diverged"][m] = r100["diverged"]
                # oracle reference: best constant / step setting on this problem (not a method)
                orc = run_all(V, rank, batch, seed, budgets,
                              {k: M[k] for k in ("constant", "step")})
                row["oracle"] = {str(b): min(_at(t[b], b) for ts in orc.values() for t in ts)
                                 for b in budgets}
                best = min(_at(runs[m][0][max(budgets)], max(budgets)) for m in runs)
                target = 1.05 * best
                row["seconds_to_target"] = {m: _seconds_to_target(runs[m][0][max(budgets)], target)
                                            for m in runs}
                rows.append(row)
                if partial is not None:
                    with open(partial, "w") as fh:
                        json.dump(_out(quick, seeds, budgets, choice, sets, rows, t0), fh,
                                  indent=1, default=float)
                print(f"[{sname}] {pname} seed {seed}: " + ", ".join(
                    f"{m}={row['final'][m][str(max(budgets))] / row['oracle'][str(max(budgets))]:.3f}"
                    for m in M), flush=True)
    return _out(quick, seeds, budgets, choice, sets, rows, t0)


def _out(quick, seeds, budgets, choice, sets, rows, t0):
    return {"quick": quick, "seeds": seeds, "budgets": list(budgets), "n_trials": N_TRIALS,
            "grids": {m: [repr(kw) for kw in g] for m, (g, _) in methods(max(budgets)).items()},
            "tuned_choice": choice, "problems": {k: [n for n, _ in v] for k, v in sets.items()},
            "rows": rows, "claims": claims(rows, budgets), "seconds": time.perf_counter() - t0,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}"}


CLASSICS = ("constant", "step", "exp", "cosine")


def per_problem(rows):
    """One row per problem: the median over its seeds of every final error and checkpoint (the
    unit of the "by problem" lines: seeds of one problem are not independent problems)."""
    out = []
    for p in dict.fromkeys(r["problem"] for r in rows):
        R = [r for r in rows if r["problem"] == p]
        med = lambda get: float(np.median([get(r) for r in R]))  # noqa: E731
        out.append({"set": R[0]["set"], "problem": p,
                    "final": {m: {b: med(lambda r: r["final"][m][b]) for b in v}
                              for m, v in R[0]["final"].items()},
                    "checkpoints": {m: {c: med(lambda r: r["checkpoints"][m][c]) for c in v}
                                    for m, v in R[0]["checkpoints"].items()},
                    "seconds_to_target": R[0]["seconds_to_target"]})
    return out


def claims(rows, budgets):
    out = {"rl_vs_step": {}, "greedy_vs_classic": {}, "greedy_faster": {}, "auto_vs_tuned": {}}
    P = per_problem(rows)
    for sname in ("heldout", "ood", "all"):
        Pp = [r for r in P if sname == "all" or r["set"] == sname]
        for b in budgets:
            out["rl_vs_step"][f"{sname}@{b} by problem"] = tally(
                [(r["final"]["rl"][str(b)], r["final"]["step"][str(b)]) for r in Pp])
            for g in ("greedy_batch", "greedy_epoch"):
                out["greedy_vs_classic"][f"{g} {sname}@{b} by problem"] = tally(
                    [(r["final"][g][str(b)], r["final"][c][str(b)]) for r in Pp for c in CLASSICS])
            out["auto_vs_tuned"][f"{sname}@{b} by problem"] = tally(
                [(r["final"]["auto"][str(b)], min(r["final"][c][str(b)] for c in CLASSICS))
                 for r in Pp])
    for sname in ("heldout", "ood", "all"):
        R = [r for r in rows if sname == "all" or r["set"] == sname]
        for b in budgets:
            k = f"{sname}@{b}"
            out["rl_vs_step"][k] = tally([(r["final"]["rl"][str(b)], r["final"]["step"][str(b)])
                                          for r in R])
            out["rl_vs_step"][k + " (ceiling_fraction vs step)"] = tally(
                [(r["final"]["ceiling_fraction"][str(b)], r["final"]["step"][str(b)]) for r in R])
            for g in ("greedy_batch", "greedy_epoch"):
                out["greedy_vs_classic"][f"{g} {k}"] = tally(
                    [(r["final"][g][str(b)], r["final"][c][str(b)]) for r in R for c in CLASSICS])
            out["auto_vs_tuned"][k] = tally(
                [(r["final"]["auto"][str(b)], min(r["final"][c][str(b)] for c in CLASSICS))
                 for r in R])
        for p in ("10%", "50%", "100%"):
            for g in ("greedy_batch", "greedy_epoch"):
                out["greedy_vs_classic"][f"{g} {sname} checkpoint {p}"] = tally(
                    [(r["checkpoints"][g][p], r["checkpoints"][c][p]) for r in R for c in CLASSICS])
        for g in ("greedy_batch", "greedy_epoch"):
            wins, n_all, n_pairs, w_pairs = 0, 0, 0, 0
            for r in R:
                st = r["seconds_to_target"]
                ok = []
                for o in ("hypergradient", "sls"):
                    w = st[g] is not None and (st[o] is None or st[g] < st[o])
                    ok.append(w)
                    n_pairs += 1
                    w_pairs += w
                wins += all(ok)
                n_all += 1
            out["greedy_faster"][f"{g} {sname}"] = {
                "n": n_all, "faster_than_both": wins / n_all if n_all else float("nan"),
                "ci95": wilson(wins, n_all), "pairwise": w_pairs / n_pairs if n_pairs else float("nan"),
                "pairwise_ci95": wilson(w_pairs, n_pairs)}
    return out


def _f(t):
    lo, hi = t["as_good_or_better_ci95"]
    return (f"{t['as_good_or_better']:.0%} [{lo:.0%}, {hi:.0%}] (strict W/L {t['strict_wins']}/"
            f"{t['strict_losses']}, ties {t['ties_1pct']}, sign p={t['sign_test_p']:.2g}, "
            f"median ratio {t['median_ratio']:.3f}; n={t['n']})")


def markdown(out):
    B = out["budgets"]
    L = [f"# Schedule comparison under the tuned-on-training protocol ({'quick' if out['quick'] else 'full'})",
         "", f"Run time {out['seconds']:.0f} s on {out['machine']}; {out['seeds']} seeds per test "
         f"problem; budgets {B} epochs; {out['n_trials']} trials per tuned method, tuned on "
         f"{len(out['problems']['train'])} training problems ({', '.join(out['problems']['train'])}). "
         f"Test: held-out {', '.join(out['problems']['heldout'])}; out-of-distribution "
         f"{', '.join(out['problems']['ood'])}. Command: "
         f"`python benchmarks/bench_schedules.py{' --quick' if out['quick'] else ''} --seeds {out['seeds']}`.",
         "", "Settings chosen on the training problems (method @ budget: the trial's fit "
         "arguments):", ""] + [
             f"* {k}: `{out['grids'][k.split('@')[0]][v]}`" for k, v in out["tuned_choice"].items()
             if len(out["grids"][k.split("@")[0]]) > 1] + [
         "", "(A horizon schedule, cosine, runs with `total` = the budget of the run.)", "",
         "## Final error / per-problem oracle (best constant or step setting on the test problem; "
         "reference only), median over seeds", ""]
    ms = list(out["rows"][0]["final"])
    L.append("| problem | budget | " + " | ".join(ms) + " |")
    L.append("|---|---|" + "---|" * len(ms))
    probs = list(dict.fromkeys((r["set"], r["problem"]) for r in out["rows"]))
    for s, p in probs:
        R = [r for r in out["rows"] if r["problem"] == p]
        for b in B:
            L.append(f"| {p} | {b} | " + " | ".join(
                f"{np.median([r['final'][m][str(b)] / r['oracle'][str(b)] for r in R]):.3f}"
                for m in ms) + " |")
    c = out["claims"]
    L += ["", "## Claims of the research line (as good or better = strict win or |diff| < 1%; "
          "Wilson 95% interval; sign test on strict wins vs losses)", "",
          f"### 1. RL vs tuned step decay — {PAPER['rl_vs_step']}", ""]
    for k, t in c["rl_vs_step"].items():
        who = "ceiling_fraction" if "ceiling_fraction" in k else "RL"
        L.append(f"* {k}: {who} as good or better {_f(t)}; strict wins "
                 f"{t['strict_win_fraction']:.0%}")
    L += ["", f"### 2. GreedyLR vs classic schedules (constant, step, exp, cosine) — {PAPER['greedy_vs_classic']}", ""]
    for k, t in c["greedy_vs_classic"].items():
        L.append(f"* {k}: {_f(t)}")
    L += ["", f"### 3. GreedyLR faster to target (1.05 x best final at {max(B)} epochs) than "
          f"hypergradient and SLS — {PAPER['greedy_faster']}", ""]
    for k, t in c["greedy_faster"].items():
        L.append(f"* {k}: faster than both on {t['faster_than_both']:.0%} [{t['ci95'][0]:.0%}, "
                 f"{t['ci95'][1]:.0%}] of {t['n']} problem-seeds; pairwise {t['pairwise']:.0%}")
    L += ["", "### auto (untuned) vs the best tuned classic", ""]
    for k, t in c["auto_vs_tuned"].items():
        L.append(f"* {k}: {_f(t)}")
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------- RL's alternation
def alternation(quick=False, seeds=5, budgets=(30, 100), tuned_json=None):
    """Does a two-step high/low cycle of the ceiling reproduce the RL policy's results?

    On the held-out problems: the RL policy, the cycles (0.9, 0.2) and (0.9, 0.1) of the current
    ceiling (the pattern the policy's action shows on most problems, fixed from the figure, not
    tuned), the constant fraction 0.55 (the cycle's mean) and step decay with the setting the
    main protocol tuned on the training problems (``tuned_json``; else its first setting)."""
    choice = {}
    if tuned_json and os.path.isfile(tuned_json):
        with open(tuned_json) as fh:
            choice = json.load(fh).get("tuned_choice", {})
    sets = problem_sets(quick)
    M = methods(max(budgets))
    rows = []
    for pname, build in sets["heldout"]:
        for seed in range(seeds):
            V, rank, batch = build(seed)
            row = {"problem": pname, "seed": seed, "final": {}}
            for b in budgets:
                step = M["step"][0][choice.get(f"step@{b}", 0)]
                cand = {"rl": {"schedule": "rl"},
                        "cycle_0.9_0.2": {"schedule": ("ceiling_fraction", {"fraction": (0.9, 0.2)})},
                        "cycle_0.9_0.1": {"schedule": ("ceiling_fraction", {"fraction": (0.9, 0.1)})},
                        "fraction_0.55": {"schedule": ("ceiling_fraction", {"fraction": 0.55})},
                        "step_tuned": step}
                runs = run_all(V, rank, batch, seed, (b,), {k: ([v], True) for k, v in cand.items()})
                for k in cand:
                    row["final"].setdefault(k, {})[str(b)] = _at(runs[k][0][b], b)
            rows.append(row)
            print(f"[alternation] {pname} seed {seed}: " + ", ".join(
                f"{k}={v[str(max(budgets))]:.4g}" for k, v in row["final"].items()), flush=True)
    comp = {}
    for b in budgets:
        fin = lambda k: [r["final"][k][str(b)] for r in rows]  # noqa: E731
        comp[f"rl vs step_tuned @{b}"] = tally(list(zip(fin("rl"), fin("step_tuned"))))
        for c in ("cycle_0.9_0.2", "cycle_0.9_0.1", "fraction_0.55"):
            comp[f"{c} vs step_tuned @{b}"] = tally(list(zip(fin(c), fin("step_tuned"))))
            comp[f"{c} vs rl @{b}"] = tally(list(zip(fin(c), fin("rl"))))
    return {"budgets": list(budgets), "seeds": seeds, "rows": rows, "comparisons": comp,
            "step_choice": {str(b): choice.get(f"step@{b}", 0) for b in budgets}}


def alternation_markdown(out):
    L = ["# The RL policy's high/low alternation against a two-step cycle", "",
         f"Held-out problems, {out['seeds']} seeds, budgets {out['budgets']} epochs; step decay "
         f"with the trial the main protocol tuned on the training problems ({out['step_choice']}). "
         "Command: `python benchmarks/bench_schedules.py --alternation`.", ""]
    for k, t in out["comparisons"].items():
        L.append(f"* {k}: as good or better {_f(t)}")
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------- figure helpers
# The notebooks draw single runs of a few problems (notebooks/make_notebooks.py); these are the
# problems and settings they draw, not the protocol above.

def grids(epochs, quick):
    """Small per-family grids for the notebooks' per-problem "tuned" curves."""
    k = (0.5, 0.9) if quick else (0.25, 0.5, 0.9)
    return {
        "constant": [("constant", {"kappa": a}) for a in k],
        "step": [("step", {"kappa": a, "step_size": s, "gamma": gm}) for a in k
                 for s, gm in ((max(1, epochs // 3), 0.5), (max(1, epochs // 2), 0.1))],
        "cosine": [("cosine", {"kappa": a, "total": epochs}) for a in k],
        "linear": [("linear", {"kappa": a, "total": epochs, "end_factor": 0.1}) for a in k],
    }


UNTUNED = {
    "greedy": dict(schedule="greedy"),
    "hg_group": dict(schedule=("hypergradient", {"granularity": "group"}), schedule_every=1),
    "hg_parameter": dict(schedule=("hypergradient", {"granularity": "parameter"}), schedule_every=1,
                         precondition="gram"),
}


def problems(quick):
    """(name, V, rank, batch, spec) of the notebooks: held-out planted problems and digits
    (and faces at full size)."""
    d = ProblemDistribution("eval")
    out = []
    for i in range(3 if quick else 10):
        p = d.draw(i)
        out.append((f"heldout{i}", p.V, p.rank, p.batch_size, p.spec))
    out.append(("digits", datasets.digits(), 10, 256, {"m": 1797, "n": 64, "rank": 10}))
    if not quick:
        out.append(("faces", datasets.faces(), 10, 32, {"m": 200, "n": 625, "rank": 10}))
    return out


def to_target(run, target):
    """(epoch, seconds) of the first trace entry at or below ``target`` ({"losses", "seconds"})."""
    for e, (loss, s) in enumerate(zip(run["losses"], run["seconds"])):
        if loss <= target:
            return e, s
    return None, None


def write_results(out_dir, stem, out, md):
    """``out_dir/stem.json`` (the results) and ``out_dir/stem.md`` (the report), printed."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + ".json"), "w") as fh:
        json.dump(out, fh, indent=1, default=float)
    with open(os.path.join(out_dir, stem + ".md"), "w") as fh:
        fh.write(md)
    print(md)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 train, 1 held-out, 1 OOD problem, "
                   "tiny, 2 seeds, budgets 2/6/10 epochs")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    p.add_argument("--render", metavar="JSON", help="recompute the claims and the markdown "
                   "from a results JSON (also a *_partial.json of an interrupted run)")
    p.add_argument("--alternation", action="store_true",
                   help="only the RL alternation check (results/schedules_alternation.*)")
    a = p.parse_args(argv)
    seeds = a.seeds or (2 if a.quick else 5)
    if a.render:
        with open(a.render) as fh:
            out = json.load(fh)
        out["claims"] = claims(out["rows"], out["budgets"])
        write_results(a.out, "schedules_quick" if out["quick"] else "schedules", out,
                      markdown(out))
        return 0
    if a.alternation:
        os.makedirs(a.out, exist_ok=True)
        stem = "schedules_alternation" + ("_quick" if a.quick else "")
        out = alternation(a.quick, seeds, (2, 6) if a.quick else (30, 100),
                          os.path.join(a.out, "schedules.json"))
        write_results(a.out, stem, out, alternation_markdown(out))
        return 0
    budgets = (2, 6, 10) if a.quick else (10, 30, 100)
    os.makedirs(a.out, exist_ok=True)
    stem = "schedules_quick" if a.quick else "schedules"
    out = bench(a.quick, seeds, budgets, partial=os.path.join(a.out, stem + "_partial.json"))
    write_results(a.out, stem, out, markdown(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
