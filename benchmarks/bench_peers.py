"""nmf-sched against scikit-learn's NMF (cd, mu) and MiniBatchNMF: seconds to a target error.

Protocol (one process; every number below is computed, nothing is asserted):

* Methods: nmf-sched ``schedule="auto"`` (the default), ``"greedy"`` and ``"rl"`` (default
  ``cd`` preconditioner and batch size, ``tol=0``; ``rl`` keeps fit's default ``epochs=200``,
  because its policy observes the fraction ``epoch / epochs`` it was trained with, the others
  run until the time budget); scikit-learn ``NMF(solver="cd")`` and ``NMF(solver="mu")``
  (``tol=0``), ``MiniBatchNMF(batch_size=256)`` and ``(batch_size=1024)`` (``tol=0``,
  ``max_no_improvement=None``). No method stops early: each runs until the per-run time budget.
  Input format follows the dataset (dense ndarray, or the TF-IDF CSR matrix for every method:
  nobody densifies).
* Same init for all: NNDSVDA (``nmf_sched.init.initialize``, seed 0), then nmf-sched's
  init rule (``nmf_sched.bounds.rescale_balance``: best scalar scale of ``WH``, balanced
  columns; ``--init nndsvda`` skips it), computed once per dataset outside every timed
  region and handed to every method as a custom init (``W0/H0``, ``init="custom"``).
* Timing: one clock for all, started right before the library's public fit call (so its
  input validation counts), read by a hook after every iteration (nmf-sched: the epoch
  ``callback``; NMF cd: a wrapper around sklearn's ``_update_coordinate_descent`` (the H step
  closes an iteration); NMF mu: around ``_multiplicative_update_h``; MiniBatchNMF: around the
  instance's ``_minibatch_step``, plus ``_check_w_h`` to see the full ``W`` that fit_transform
  returns). The public ``fit`` runs unmodified; the hook only reads the clock and, at
  checkpoints, evaluates the error on the full matrix with the clock paused (that time is
  subtracted). A checkpoint is taken after an iteration when at least
  ``max(2 x one evaluation, min(budget/300, 0.02 t))`` of algorithm time passed since the last
  one (t: algorithm time so far), and at the end. A fidelity check (skip with
  ``--no-fidelity``) runs nmf-sched auto and each peer hooked for a fixed number of iterations
  and as a plain, unhooked fit with that many iterations (twice, alternating): the factors
  must agree, and both times are reported.
* Error: ``||V - WH||_F / ||V||_F`` for every method by one function (Gram identity
  ``||V||^2 - 2<W, V H^T> + <W^T W, H H^T>`` in float64; sparse V never densified).
* Reference per dataset: a long ``NMF(solver="cd")`` run (``--ref-factor`` x the budget, same
  init), and the reference used for the targets is the min of that and every run's best
  error (both reported). Target ``(1 + d) x reference`` for d in {0.1, 0.01}; seconds to target
  = algorithm time of the first checkpoint at or below it within the budget, else not reached.
* Repeats: round-robin over the methods within each repeat (the order rotates by one per
  repeat); medians over repeats (a not-reached run counts as +inf). nmf-sched seed = repeat.
* Budgets per run (x ``--budget-scale``): planted 2000x1000 5 s, planted 10000x5000 12 s,
  digits 3 s, faces 3 s, camera patches 8 s, TF-IDF 12 s, source TF-IDF 6 s. The shared
  init's seconds and scikit-learn's own NNDSVDA init's are reported per dataset. The full run takes about 25 min on
  2 idle cores (21 runs per dataset + the reference + the fidelity check + evaluations).
  BLAS threads: the libraries' defaults unless ``--blas-threads``.

    python benchmarks/bench_peers.py                       # full: 6 datasets, 3 repeats
    python benchmarks/bench_peers.py --quick --out /tmp/p  # 3 tiny datasets, 1 repeat, < 1 min
    python benchmarks/bench_peers.py --datasets digits faces --repeats 5 --budget-scale 2
    python benchmarks/bench_peers.py --regularized [--quick]  # L1/L2: vs NMF cd, same alpha

``--regularized`` runs the experiment of benchmarks/peers_regularized.py instead (the same
clock, hooks and init; the regularized objective; seconds to within 1% of the best; the
sparsity of faces with and without L1) and writes peers_regularized[_quick].json/.md.

Writes peers.json, peers.md, peers.png (``peers_quick.*`` with --quick) into --out.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp

import nmf_sched
from nmf_sched import datasets
from nmf_sched.init import initialize

HERE = os.path.dirname(os.path.abspath(__file__))
DS = (0.1, 0.01)
NS_AUTO, CD, MB = "nmf-sched auto", "sklearn NMF cd", ("MiniBatchNMF b=256", "MiniBatchNMF b=1024")

# name -> (kind, settings). nmf-sched epochs None = run until the budget.
METHODS = {
    "nmf-sched auto": ("nmf-sched", dict(schedule="auto", epochs=None)),
    "nmf-sched greedy": ("nmf-sched", dict(schedule="greedy", epochs=None)),
    "nmf-sched rl": ("nmf-sched", dict(schedule="rl", epochs=200)),
    "sklearn NMF cd": ("nmf", dict(solver="cd")),
    "sklearn NMF mu": ("nmf", dict(solver="mu")),
    "MiniBatchNMF b=256": ("minibatch", dict(batch_size=256)),
    "MiniBatchNMF b=1024": ("minibatch", dict(batch_size=1024)),
}
FIDELITY = ("nmf-sched auto", "sklearn NMF cd", "sklearn NMF mu", "MiniBatchNMF b=1024")
BIG = 10 ** 9


def dataset_specs(quick):
    """name -> (label, loader, rank, budget seconds)."""
    if quick:
        return {
            "digits": ("digits 1797x64", datasets.digits, 10, 1.0),
            "planted-400x300": ("planted 400x300 k=5",
                                lambda: datasets.planted(400, 300, 5, noise=0.1, seed=0).V, 5, 0.5),
            "tfidf-3000x1500": ("TF-IDF-like 3000x1500 @1% (CSR)",
                                lambda: datasets.sparse_tfidf(3000, 1500, density=0.01, rank=8,
                                                              seed=0), 8, 1.0),
        }
    return {
        "planted-2000x1000": ("planted 2000x1000 k=10",
                              lambda: datasets.planted(2000, 1000, 10, noise=0.1, seed=0).V, 10, 5.0),
        "planted-10000x5000": ("planted 10000x5000 k=50",
                               lambda: datasets.planted(10000, 5000, 50, noise=0.1, seed=0).V, 50, 12.0),
        "digits": ("digits 1797x64", datasets.digits, 10, 3.0),
        "faces": ("faces 200x625", datasets.faces, 20, 3.0),
        # patch 8, stride 2: 64009 x 64 (stride 3 would give 28561 rows; 2 is the nearest to ~50k)
        "camera-patches": ("camera 8x8 patches, stride 2 (64009x64)",
                           lambda: datasets.camera_patches(patch=8, step=2), 16, 8.0),
        "tfidf-100000x20000": ("TF-IDF-like 100000x20000 @0.5% (CSR)",
                               lambda: datasets.sparse_tfidf(100000, 20000, density=0.005, rank=20,
                                                             seed=0), 20, 12.0),
        # a real sparse text matrix, built on the machine (no download)
        "source-tfidf": ("TF-IDF of the standard library's source files (1760x20000, CSR)",
                         datasets.source_tfidf, 20, 6.0),
    }


# ---------------------------------------------------------------------------
# error and clock
# ---------------------------------------------------------------------------
def make_rel_error(V):
    """``(W, H) -> ||V - WH||_F / ||V||_F`` by the Gram identity (float64, sparse-aware)."""
    vsq = float(np.vdot(V.data, V.data)) if sp.issparse(V) else float(np.vdot(V, V))

    def rel_error(W, H):
        cross = float(np.vdot(W, np.asarray(V @ H.T)))
        quad = float(np.vdot(W.T @ W, H @ H.T))
        return math.sqrt(max(vsq - 2.0 * cross + quad, 0.0) / vsq)

    return rel_error


class _Stop(Exception):
    """Raised by a hook to end a peer's fit at the budget."""


class Clock:
    """Algorithm time (wall time minus evaluation time) and the error curve of one run.

    A checkpoint (error evaluation) is taken after an iteration when the algorithm time since
    the last one is at least ``max(floor, min(gap, rel * t))``: relative resolution ``rel``
    early on, at most ``gap`` apart later, never closer than ``floor`` (twice the cost of an
    evaluation, measured before the run and again at each one, so evaluating adds at most about
    half the algorithm time to the wall time).
    """

    def __init__(self, rel_error, budget, gap, err0, *, floor=0.0, rel=0.02, stop_at=None):
        self.rel_error, self.budget, self.stop_at = rel_error, budget, stop_at
        self.gap, self.floor0, self.floor, self.rel = gap, floor, floor, rel
        self.t, self.err, self.it = [0.0], [err0], [0]
        self.paused, self.last_eval, self.n, self.last_t = 0.0, 0.0, 0, 0.0
        self.prev_dt = math.inf
        self.factors = None
        self.t0 = None

    def start(self):
        self.t0 = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.t0 - self.paused

    def tick(self, W, H, n=None):
        """After an iteration: maybe evaluate; True when the run must stop."""
        t = self.elapsed()
        self.n = self.n + 1 if n is None else int(n)
        self.last_t, self.factors = t, (W, H)
        done = t >= self.budget or (self.stop_at is not None and self.n >= self.stop_at)
        if done or t - self.last_eval >= max(self.floor, min(self.gap, self.rel * t)):
            self._record(W, H, t)
        return done

    def _record(self, W, H, t):
        s = time.perf_counter()
        e = float(f"{self.rel_error(W, H):.10g}")  # 10 digits: ample for d = 0.01, smaller JSON
        self.t.append(t)
        self.err.append(e)
        self.it.append(self.n)
        self.last_eval = t
        dt = time.perf_counter() - s
        self.paused += dt
        # follows the evaluation cost if the machine slows (the smaller of the last two
        # evaluations, so that one hiccup does not coarsen the next checkpoints)
        self.floor = max(self.floor0, 2.0 * min(dt, self.prev_dt))
        self.prev_dt = dt

    def finish(self, W, H):
        """A run that ended by itself: record its last state if not recorded yet."""
        if self.it[-1] != self.n:
            self._record(W, H, self.last_t)


# ---------------------------------------------------------------------------
# runners: each takes the shared init, runs until the clock says stop
# ---------------------------------------------------------------------------
def run_nmf_sched(V, k, W0, H0, clock, schedule, epochs, seed):
    def cb(record, W, H):
        return clock.tick(W, H, n=record["epoch"])

    clock.start()
    res = nmf_sched.fit(V, k, schedule=schedule, W0=W0, H0=H0, seed=seed, tol=0.0,
                        epochs=BIG if epochs is None else epochs, callback=cb)
    clock.finish(res.W, res.H)
    return dict(stop=res.stop_reason, n_iter=res.n_epochs, unit="epochs"), (res.W, res.H)


def run_nmf(V, k, W0, H0, clock, solver, **nmf_kw):
    """scikit-learn's NMF (``nmf_kw``: e.g. ``alpha_W``, ``l1_ratio``) timed by ``clock``
    through a hook on its per-iteration update."""
    from sklearn.decomposition import NMF, _nmf

    est = NMF(k, solver=solver, init="custom", tol=0.0, max_iter=BIG, **nmf_kw)
    W, H = W0.copy(), H0.copy()
    if solver == "cd":
        name = "_update_coordinate_descent"
        orig = getattr(_nmf, name)
        calls = [0]

        def hook(X, A, B, *args, **kw):  # W step: (X, W, Ht); H step: (X.T, Ht, W)
            v = orig(X, A, B, *args, **kw)
            calls[0] += 1
            if calls[0] % 2 == 0 and clock.tick(B, A.T):
                raise _Stop
            return v
    else:
        name = "_multiplicative_update_h"
        orig = getattr(_nmf, name)

        def hook(X, W_, H_, *args, **kw):
            Hn = orig(X, W_, H_, *args, **kw)
            if clock.tick(W_, Hn):
                raise _Stop
            return Hn

    setattr(_nmf, name, hook)
    stop = "budget"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clock.start()
            try:
                Wf = est.fit_transform(V, W=W, H=H)
                clock.finish(Wf, est.components_)
                stop = "converged"
            except _Stop:
                pass
    finally:
        setattr(_nmf, name, orig)
    if clock.n == 0:
        raise RuntimeError(f"the {name} hook never fired: scikit-learn's NMF internals changed")
    return dict(stop=stop, n_iter=clock.n, unit="iterations"), clock.factors


def run_minibatch(V, k, W0, H0, clock, batch_size):
    from sklearn.decomposition import MiniBatchNMF

    est = MiniBatchNMF(k, init="custom", batch_size=batch_size, tol=0.0,
                       max_no_improvement=None, max_iter=BIG)
    W, H = W0.copy(), H0.copy()
    full = {}
    orig_check, orig_step = est._check_w_h, est._minibatch_step

    def check_hook(X, W_, H_, update_H):
        full["W"], full["H"] = orig_check(X, W_, H_, update_H)
        return full["W"], full["H"]

    def step_hook(X, W_, H_, update_H):  # W_ is a view of the rows of the full W (updated in place)
        cost = orig_step(X, W_, H_, update_H)
        if clock.tick(full["W"], H_):
            raise _Stop
        return cost

    est._check_w_h, est._minibatch_step = check_hook, step_hook
    stop = "budget"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clock.start()
        try:
            Wf = est.fit_transform(V, W=W, H=H)
            clock.finish(Wf, est.components_)
            stop = "converged"
        except _Stop:
            pass
    if clock.n == 0:
        raise RuntimeError("the _minibatch_step hook never fired: MiniBatchNMF internals changed")
    steps_per_epoch = math.ceil(V.shape[0] / min(batch_size, V.shape[0]))
    return dict(stop=stop, n_iter=clock.n, unit="minibatch steps",
                epochs=clock.n / steps_per_epoch), clock.factors


def run_method(name, V, k, W0, H0, clock, seed=0):
    kind, cfg = METHODS[name]
    if kind == "nmf-sched":
        return run_nmf_sched(V, k, W0, H0, clock, cfg["schedule"], cfg["epochs"], seed)
    if kind == "nmf":
        return run_nmf(V, k, W0, H0, clock, cfg["solver"])
    return run_minibatch(V, k, W0, H0, clock, cfg["batch_size"])


def plain_fit(name, V, k, W0, H0, n, seed=0):
    """The unhooked public fit for n iterations (nmf-sched epochs / NMF iterations /
    MiniBatchNMF epochs): wall seconds and (W, H)."""
    from sklearn.decomposition import NMF, MiniBatchNMF

    kind, cfg = METHODS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W, H = W0.copy(), H0.copy()
        t = time.perf_counter()
        if kind == "nmf-sched":
            r = nmf_sched.fit(V, k, schedule=cfg["schedule"], W0=W, H0=H, seed=seed, tol=0.0, epochs=n)
            return time.perf_counter() - t, (r.W, r.H)
        if kind == "nmf":
            est = NMF(k, solver=cfg["solver"], init="custom", tol=0.0, max_iter=n)
        else:
            est = MiniBatchNMF(k, init="custom", batch_size=cfg["batch_size"], tol=0.0,
                               max_no_improvement=None, max_iter=n)
        Wf = est.fit_transform(V, W=W, H=H)
        return time.perf_counter() - t, (Wf, est.components_)


# ---------------------------------------------------------------------------
# per-dataset benchmark
# ---------------------------------------------------------------------------
def sklearn_init_seconds(V, k):
    """Seconds of scikit-learn's own NNDSVDA init of ``V`` (untimed elsewhere; reported)."""
    from sklearn.decomposition._nmf import _initialize_nmf

    t = time.perf_counter()
    _initialize_nmf(V, k, init="nndsvda", random_state=0)
    return time.perf_counter() - t


def shared_init(V, k, mode):
    t = time.perf_counter()
    W, H = initialize(V, k, "nndsvda", seed=np.random.default_rng(0))
    if mode == "nndsvda-rescaled":
        from nmf_sched.bounds import rescale_balance

        W, H, _ = rescale_balance(V, W, H)
    return np.ascontiguousarray(W), np.ascontiguousarray(H), time.perf_counter() - t


def seconds_to(curve_t, curve_err, target, budget):
    for t, e in zip(curve_t, curve_err):
        if t <= budget and e <= target:
            return t
    return math.inf


def median_curve(runs, grid):
    out = []
    for g in grid:
        vals = []
        for r in runs:
            t, e = np.asarray(r["curve"]["t"]), np.asarray(r["curve"]["rel_error"])
            vals.append(float(e[t <= g].min()))
        out.append(statistics.median(vals))
    return out


def bench_dataset(key, spec, methods, repeats, args, log):
    label, loader, k, budget = spec
    budget *= args.budget_scale
    t = time.perf_counter()
    V = loader()
    t_load = time.perf_counter() - t
    W0, H0, t_init = shared_init(V, k, args.init)
    t_init_sk = sklearn_init_seconds(V, k)
    rel_error = make_rel_error(V)
    ev = []
    for _ in range(7):
        s = time.perf_counter()
        err0 = rel_error(W0, H0)
        ev.append(time.perf_counter() - s)
    # the cost of one evaluation: the minimum after two warm-up calls (single calls can take a
    # scheduler quantum, ~16 ms, when BLAS threads wake up; a median of 3 once set the
    # checkpoint floor of digits to 32 ms, coarser than every method's time to target)
    t_eval = min(ev[2:])
    gap, floor = budget / 300.0, 2.0 * t_eval
    sparse = sp.issparse(V)
    info = dict(name=key, label=label, m=V.shape[0], n=V.shape[1], k=k, sparse=sparse,
                density=(V.nnz / (V.shape[0] * V.shape[1])) if sparse else None,
                budget_s=budget, eval_gap_s=gap, eval_floor_s=floor, eval_rel=0.02,
                eval_seconds=t_eval, load_seconds=t_load,
                init_seconds=t_init, sklearn_init_seconds=t_init_sk, init_rel_error=err0)
    log(f"[{key}] {label}: {V.shape[0]}x{V.shape[1]} k={k} budget {budget:g}s "
        f"init err {err0:.5g} (init {t_init:.2f}s, scikit-learn's {t_init_sk:.2f}s, "
        f"eval {t_eval * 1e3:.1f}ms)")

    # long scikit-learn CD reference (same init)
    ref_budget = args.ref_factor * budget
    clock = Clock(rel_error, ref_budget, ref_budget / 50.0, err0, floor=floor, rel=math.inf)
    s = time.perf_counter()
    meta, _ = run_nmf(V, k, W0, H0, clock, "cd")
    ref = dict(long_cd_rel_error=min(clock.err), long_cd_budget_s=ref_budget,
               long_cd_iterations=meta["n_iter"], long_cd_wall_s=time.perf_counter() - s)
    log(f"[{key}] reference: long CD {ref['long_cd_rel_error']:.6g} after {meta['n_iter']} it")

    results = {m: [] for m in methods}
    for rep in range(repeats):
        order = methods[rep % len(methods):] + methods[:rep % len(methods)]
        for m in order:
            clock = Clock(rel_error, budget, gap, err0, floor=floor)
            s = time.perf_counter()
            meta, _ = run_method(m, V, k, W0, H0, clock, seed=rep)
            wall = time.perf_counter() - s
            run = dict(rep=rep, seed=rep if METHODS[m][0] == "nmf-sched" else None,
                       algo_seconds=clock.last_t, wall_seconds=wall, eval_count=len(clock.t) - 1,
                       final_rel_error=clock.err[-1], best_rel_error=min(clock.err),
                       curve=dict(t=[round(x, 6) for x in clock.t], rel_error=clock.err, it=clock.it),
                       **meta)
            results[m].append(run)
            log(f"[{key}] rep {rep} {m:20s} final {run['final_rel_error']:.6g} "
                f"{meta['n_iter']} {meta['unit']} in {clock.last_t:.2f}s ({meta['stop']})")

    best_m = min(methods, key=lambda m: min(r["best_rel_error"] for r in results[m]))
    best = min(r["best_rel_error"] for r in results[best_m])
    reference = min(ref["long_cd_rel_error"], best)
    ref.update(best_run_rel_error=best, best_run_method=best_m, reference_rel_error=reference,
               reference_source="long CD run" if reference == ref["long_cd_rel_error"] else best_m)
    targets = {str(d): (1.0 + d) * reference for d in DS}
    rows = {}
    for m in methods:
        for r in results[m]:
            r["seconds_to"] = {str(d): seconds_to(r["curve"]["t"], r["curve"]["rel_error"],
                                                  targets[str(d)], budget) for d in DS}
        rs = results[m]
        rows[m] = dict(
            median_seconds_to={str(d): statistics.median(r["seconds_to"][str(d)] for r in rs) for d in DS},
            reached={str(d): sum(math.isfinite(r["seconds_to"][str(d)]) for r in rs) for d in DS},
            median_final_rel_error=statistics.median(r["final_rel_error"] for r in rs),
            median_iterations=statistics.median(r["n_iter"] for r in rs), unit=rs[0]["unit"],
            runs=rs)
    tmin = min(r["curve"]["t"][1] for m in methods for r in results[m] if len(r["curve"]["t"]) > 1)
    grid = np.geomspace(max(tmin, 1e-4), budget, 120)
    curves = {m: dict(t=[round(float(g), 6) for g in grid], rel_error=median_curve(results[m], grid))
              for m in methods}
    out = dict(info, reference=ref, targets=targets, methods=rows, median_curves=curves)
    if args.fidelity:
        out["fidelity"] = fidelity(V, k, W0, H0, rel_error, (gap, floor), budget, results, log, key)
    return out


def fidelity(V, k, W0, H0, rel_error, gap, budget, results, log, key):
    """Hooked run (checkpoints as in the benchmark) vs the plain public fit, same iterations."""
    out = {}
    for m in FIDELITY:
        if m not in results:
            continue
        r0 = results[m][0]
        its = [i for t, i in zip(r0["curve"]["t"], r0["curve"]["it"]) if t <= budget / 8]
        n = max(its[-1] if its else 1, 1)
        n_plain = n
        if METHODS[m][0] == "minibatch":
            spe = math.ceil(V.shape[0] / min(METHODS[m][1]["batch_size"], V.shape[0]))
            n_plain = max(n // spe, 1)
            n = n_plain * spe
        hooked, plain = [], []
        for _ in range(2):  # alternate, keep the faster of each (the machine may be shared)
            clock = Clock(rel_error, math.inf, gap[0], rel_error(W0, H0), floor=gap[1], stop_at=n)
            _, (Wh, Hh) = run_method(m, V, k, W0, H0, clock, seed=0)
            hooked.append(clock.last_t)
            Wh, Hh = np.array(Wh), np.array(Hh)
            t_plain, (Wp, Hp) = plain_fit(m, V, k, W0, H0, n_plain, seed=0)
            plain.append(t_plain)
        diff = float(max(np.abs(Wh - Wp).max() / max(np.abs(Wp).max(), 1e-300),
                         np.abs(Hh - Hp).max() / max(np.abs(Hp).max(), 1e-300)))
        th, tp = min(hooked), min(plain)
        out[m] = dict(iterations=n, plain_max_iter=n_plain, hooked_algo_seconds=th,
                      plain_wall_seconds=tp, ratio=th / tp, hooked_all=hooked, plain_all=plain,
                      max_rel_factor_diff=diff, evaluations=len(clock.t) - 1)
        log(f"[{key}] fidelity {m:20s} n={n}: hooked {th:.3f}s plain {tp:.3f}s "
            f"diff {diff:.2g}")
    return out


# ---------------------------------------------------------------------------
# goals, output
# ---------------------------------------------------------------------------
def goals(results, d="0.1"):
    """Per dataset: auto's median seconds to the d target against CD and MiniBatchNMF."""
    per = []
    for ds in results:
        rows = ds["methods"]
        if NS_AUTO not in rows:
            continue
        t = rows[NS_AUTO]["median_seconds_to"][d]
        # the shared init already meets the target: every method "reaches" it at 0 s, which
        # says nothing about speed; counted as not met
        trivial = ds["init_rel_error"] <= ds["targets"][d]
        row = dict(dataset=ds["name"], auto_s=t, init_meets_target=trivial)

        def ok(limit):
            return bool(not trivial and math.isfinite(t) and t <= limit)

        def ratio(a, b):
            return a / b if (math.isfinite(a) and math.isfinite(b) and b > 0) else None

        if CD in rows:
            row["cd_s"] = tc = rows[CD]["median_seconds_to"][d]
            row["vs_cd_met"] = ok(tc)
            row["auto_over_cd"] = ratio(t, tc)
        mbs = {m: rows[m]["median_seconds_to"][d] for m in MB if m in rows}
        if mbs:
            row["minibatch_s"] = mbs
            row["minibatch_best_s"] = tb = min(mbs.values())
            row["vs_minibatch_best_met"] = ok(0.5 * tb)
            row["vs_minibatch_each_met"] = {m: ok(0.5 * v) for m, v in mbs.items()}
            row["auto_over_minibatch_best"] = ratio(t, tb)
        per.append(row)
    need = math.ceil(len(per) / 2)
    summary = dict(d=float(d), datasets=len(per), required=need, per_dataset=per)
    for g in ("vs_cd_met", "vs_minibatch_best_met"):
        c = sum(r.get(g, False) for r in per)
        summary[g.replace("_met", "_count")] = c
        summary[g.replace("_met", "")] = c >= need
    summary["vs_minibatch_each_count"] = {
        m: sum(r.get("vs_minibatch_each_met", {}).get(m, False) for r in per) for m in MB}
    return summary


def clean(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.generic):
        return clean(x.item())
    return x


def fmt_s(v, reached=None, n=None):
    if v is None or not math.isfinite(v):
        s = "not reached"
    else:
        s = f"{v:.3g}"
    return s if reached is None else f"{s} ({reached}/{n})"


def goal_lines(g, title):
    def ratio(v):
        return "-" if v is None else f"{v:.2f}"

    L = ["", title, "",
         f"Counted over the {g['datasets']} dataset(s) run; a goal is met on at least "
         f"{g['required']} of them (3 of 6 in the full run). MiniBatchNMF: the best (fastest) of "
         "the two batch sizes per dataset (per batch size in the JSON). A not-reached auto run "
         "never meets a goal; a not-reached peer loses to a reached auto run; a dataset whose "
         "shared init already meets the target (all methods at 0 s) counts as not met.", "",
         "| dataset | auto s | CD s | auto / CD | <= CD | MiniBatch best s | auto / MB best | <= 0.5 x MB |",
         "|---|---|---|---|---|---|---|---|"]
    for r in g["per_dataset"]:
        mark = " (init meets target)" if r["init_meets_target"] else ""
        L.append(f"| {r['dataset']}{mark} | {fmt_s(r['auto_s'])} | {fmt_s(r.get('cd_s'))} | "
                 f"{ratio(r.get('auto_over_cd'))} | {'yes' if r.get('vs_cd_met') else 'NO'} | "
                 f"{fmt_s(r.get('minibatch_best_s'))} | {ratio(r.get('auto_over_minibatch_best'))} | "
                 f"{'yes' if r.get('vs_minibatch_best_met') else 'NO'} |")
    lost_cd = [r["dataset"] for r in g["per_dataset"] if not r.get("vs_cd_met")]
    lost_mb = [r["dataset"] for r in g["per_dataset"] if not r.get("vs_minibatch_best_met")]
    L += ["", f"1. No slower than scikit-learn CD: {g.get('vs_cd_count', 0)} of {g['datasets']} -> "
          f"**{'met' if g.get('vs_cd') else 'NOT met'}**" + (f"; not met on {', '.join(lost_cd)}." if lost_cd else "."),
          f"2. At most half MiniBatchNMF's time (best batch size): {g.get('vs_minibatch_best_count', 0)} "
          f"of {g['datasets']} -> **{'met' if g.get('vs_minibatch_best') else 'NOT met'}**"
          + (f"; not met on {', '.join(lost_mb)}." if lost_mb else ".")
          + " Against each batch size separately: " + ", ".join(
              f"{m}: {c} of {g['datasets']}" for m, c in g["vs_minibatch_each_count"].items()) + ".", ""]
    return L


def write_md(res, path):
    meta = res["meta"]
    cmd = "python benchmarks/bench_peers.py" + (" --quick" if meta["quick"] else "")
    L = [f"# nmf-sched against scikit-learn NMF and MiniBatchNMF{' (quick)' if meta['quick'] else ''}", "",
         f"Generated by `{cmd}` ({meta['argv']}); protocol in the script's docstring. "
         f"Machine: {meta['machine']}, {meta['cpus']} CPUs, python {meta['python']}, scikit-learn "
         f"{meta['sklearn']}, nmf-sched {meta['nmf_sched']}; wall time {meta['wall_seconds']:.0f} s.",
         "", f"Medians of {meta['repeats']} interleaved run(s) per method (round-robin, order rotated "
         "per repeat). Timing: every library's public fit call runs unmodified and one clock, started "
         "just before the call, is read after every iteration by a hook: nmf-sched's epoch callback; "
         "for NMF(cd) / NMF(mu) a wrapper around scikit-learn's per-iteration update function "
         "(_update_coordinate_descent / _multiplicative_update_h); for MiniBatchNMF one around its "
         "_minibatch_step (the error uses the full W that fit_transform returns). All runs use "
         "tol=0 and no early stopping (nmf-sched rl: fit's default 200 epochs). Init for every method: "
         f"{meta['init_description']}. Times exclude the shared init and the error evaluations "
         "(the clock is paused while the benchmark evaluates the error); they include each library's "
         "own work inside its fit call (validation, per-iteration loss/violation bookkeeping). "
         "Seconds to target = first checkpoint at or below (1 + d) x reference within the budget; "
         "checkpoints follow the same rule for every method: after an iteration once "
         "max(2 x evaluation time, min(budget/300, 0.02 t)) of algorithm time has passed since "
         "the last. `(r/n)`: runs that reached it.", "",
         "## Datasets and references", "",
         "| dataset | shape | k | input | budget s | init rel. error | long CD ref. (s, it) | best run | reference used |",
         "|---|---|---|---|---|---|---|---|---|"]
    for d in res["datasets"]:
        r = d["reference"]
        inp = f"CSR {100 * d['density']:.2g}%" if d["sparse"] else "dense"
        L.append(f"| {d['label']} | {d['m']}x{d['n']} | {d['k']} | {inp} | {d['budget_s']:g} | "
                 f"{d['init_rel_error']:.4g} | {r['long_cd_rel_error']:.6g} ({r['long_cd_budget_s']:g}, "
                 f"{r['long_cd_iterations']}) | {r['best_run_rel_error']:.6g} ({r['best_run_method']}) | "
                 f"{r['reference_rel_error']:.6g} ({r['reference_source']}) |")
    L += ["", "## Seconds to (1 + d) x reference, final error", "",
          "| dataset | method | s to d=0.1 | s to d=0.01 | final rel. error | final / ref. | iterations |",
          "|---|---|---|---|---|---|---|"]
    for d in res["datasets"]:
        ref = d["reference"]["reference_rel_error"]
        for m, row in d["methods"].items():
            n = len(row["runs"])
            s1, s2 = (row["median_seconds_to"][k] for k in ("0.1", "0.01"))
            L.append(f"| {d['name']} | {m} | {fmt_s(s1, row['reached']['0.1'], n)} | "
                     f"{fmt_s(s2, row['reached']['0.01'], n)} | {row['median_final_rel_error']:.6g} | "
                     f"{row['median_final_rel_error'] / ref:.4f} | {row['median_iterations']:g} {row['unit']} |")
    for g, title in ((res["goals"], "## Goals (computed, d = 0.1)"),
                     (res["goals_d001"], "### The same at d = 0.01 (supplementary, not a stated goal)")):
        L += goal_lines(g, title)
    fid = [(d["name"], m, f) for d in res["datasets"] for m, f in d.get("fidelity", {}).items()]
    if fid:
        L += ["## Timing fidelity", "",
              "Each row: the hooked run as timed above (checkpoints, clock paused while evaluating), "
              "stopped after n iterations, against the plain public fit with max_iter = n (no hooks; "
              "sklearn's fit also computes reconstruction_err_ at the end, and mu one error at the "
              "start). Factor difference: max abs difference / max abs entry.", "",
              "| dataset | method | n | hooked s | plain s | hooked / plain | factor diff |",
              "|---|---|---|---|---|---|---|"]
        for name, m, f in fid:
            L.append(f"| {name} | {m} | {f['iterations']} | {f['hooked_algo_seconds']:.3g} | "
                     f"{f['plain_wall_seconds']:.3g} | {f['ratio']:.2f} | {f['max_rel_factor_diff']:.1g} |")
        L.append("")
    L += ["Curves: `" + os.path.basename(path).replace(".md", ".png") + "` (median over repeats of each "
          "run's best-so-far error, as rel. error / reference - 1, log-log)."]
    with open(path, "w") as fh:
        fh.write("\n".join(L) + "\n")


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ds = res["datasets"]
    nc = min(3, len(ds))
    nr = math.ceil(len(ds) / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(5.2 * nc, 3.9 * nr), squeeze=False)
    styles = {"nmf-sched": "-", "nmf": "--", "minibatch": ":"}
    for ax, d in zip(axes.flat, ds):
        ref = d["reference"]["reference_rel_error"]
        for m, c in d["median_curves"].items():
            t = np.array(c["t"], dtype=float)
            y = np.maximum(np.array(c["rel_error"], dtype=float) / ref - 1.0, 1e-5)
            ax.plot(t, y, styles[METHODS[m][0]], label=m, lw=1.6)
        for dd in DS:
            ax.axhline(dd, color="grey", lw=0.7, ls="-.")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{d['label']}, k={d['k']}", fontsize=9)
        ax.set_xlabel("seconds (algorithm time)")
        ax.set_ylabel("rel. error / reference - 1")
    for ax in list(axes.flat)[len(ds):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def warm_up(log):
    """Untimed: numba compilation (dense and CSR paths) and first-call costs of both libraries."""
    from sklearn.decomposition import NMF, MiniBatchNMF

    s = time.perf_counter()
    for V in (datasets.planted(60, 40, 3, seed=1).V, datasets.sparse_tfidf(80, 60, density=0.1, rank=3, seed=1)):
        for sched in ("auto", "greedy", "rl"):
            nmf_sched.fit(V, 3, schedule=sched, epochs=2, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            NMF(3, solver="cd", max_iter=2).fit(V)
            NMF(3, solver="mu", max_iter=2).fit(V)
            MiniBatchNMF(3, batch_size=16, max_iter=2).fit(V)
    log(f"warm-up {time.perf_counter() - s:.1f}s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 tiny datasets, 1 repeat (< 1 min)")
    ap.add_argument("--datasets", nargs="+", help="subset of the dataset names")
    ap.add_argument("--methods", nargs="+", choices=list(METHODS), help="subset of the methods")
    ap.add_argument("--repeats", type=int, help="runs per method (default 3, quick 1)")
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every time budget")
    ap.add_argument("--ref-factor", type=float, help="long CD reference budget / run budget (3, quick 2)")
    ap.add_argument("--init", choices=("nndsvda-rescaled", "nndsvda"), default="nndsvda-rescaled")
    ap.add_argument("--no-fidelity", dest="fidelity", action="store_false",
                    help="skip the hooked-vs-plain timing check")
    ap.add_argument("--blas-threads", type=int, help="limit BLAS threads (threadpoolctl) for every "
                    "method; default: the libraries' defaults")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output directory")
    ap.add_argument("--regularized", action="store_true",
                    help="the regularized comparison (benchmarks/peers_regularized.py)")
    args = ap.parse_args(argv)
    if args.regularized:
        sys.path.insert(0, HERE)
        import peers_regularized

        return peers_regularized.main(sys.modules[__name__], args, lambda m: print(m, flush=True))
    repeats = args.repeats or (1 if args.quick else 3)
    args.ref_factor = args.ref_factor or (2.0 if args.quick else 3.0)
    if repeats < 1 or args.budget_scale <= 0 or args.ref_factor <= 0:
        ap.error("--repeats, --budget-scale and --ref-factor must be positive")
    specs = dataset_specs(args.quick)
    names = args.datasets or list(specs)
    bad = [n for n in names if n not in specs]
    if bad:
        ap.error(f"unknown dataset(s) {bad}; valid: {list(specs)}")
    methods = args.methods or list(METHODS)

    def log(msg):
        print(msg, flush=True)

    limiter = None
    if args.blas_threads:
        import sklearn.decomposition  # noqa: F401  (load every BLAS/OpenMP library first)
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(args.blas_threads)
    t_start = time.perf_counter()
    warm_up(log)
    results = [bench_dataset(n, specs[n], methods, repeats, args, log) for n in names]
    import sklearn

    init_desc = ("NNDSVDA (nmf_sched.init.initialize, seed 0)" +
                 (", then nmf_sched.bounds.rescale_balance (best scalar scale, balanced columns)"
                  if args.init == "nndsvda-rescaled" else "") +
                 ", computed once per dataset, passed as W0/H0 (init='custom') to every method")
    try:
        from threadpoolctl import threadpool_info
        threads = [dict(api=i.get("internal_api"), num_threads=i.get("num_threads")) for i in threadpool_info()]
    except ImportError:  # pragma: no cover
        threads = None
    res = dict(
        meta=dict(quick=args.quick, repeats=repeats, budget_scale=args.budget_scale,
                  ref_factor=args.ref_factor, init=args.init, blas_threads=args.blas_threads,
                  init_description=init_desc,
                  argv=" ".join(sys.argv[1:]) if argv is None else " ".join(argv),
                  python=platform.python_version(), machine=platform.processor() or platform.machine(),
                  cpus=os.cpu_count(), sklearn=sklearn.__version__,
                  nmf_sched=getattr(nmf_sched, "__version__", "?"), threadpools=threads,
                  methods={m: dict(library=METHODS[m][0], settings=METHODS[m][1]) for m in methods},
                  null_means="not reached within the budget (seconds_to) / undefined ratio",
                  wall_seconds=time.perf_counter() - t_start),
        datasets=results)
    res["goals"] = goals(results, "0.1")
    res["goals_d001"] = goals(results, "0.01")  # supplementary, not a stated goal
    res["meta"]["wall_seconds"] = time.perf_counter() - t_start
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "peers_quick" if args.quick else "peers")
    with open(stem + ".json", "w") as fh:
        json.dump(clean(res), fh, separators=(",", ":"))  # compact: it holds every run's curve
    write_md(res, stem + ".md")
    plot(res, stem + ".png")
    print(open(stem + ".md").read())
    if limiter is not None:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
