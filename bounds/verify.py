#!/usr/bin/env python
"""Empirical check of the stability ceilings derived in bounds/THEORY.md.

For every problem (matrix, rank, batch size, gradient noise, preconditioner)
and seed, the LR is swept as a multiple of the ceiling, ``eta = mult x
ceiling``, with ``guard=False`` (the first non-finite loss stops the run), and
the run is classified:

diverged
    non-finite loss, or the solver's own check (a scaled batch loss above
    ``100 x`` the initial loss stops the run even with ``guard=False``), or the
    loss exceeded ``1e4 x`` its initial value (the run is stopped there), or
    the final loss exceeds ``10 x`` the initial one;
increased
    the mean full loss over the last third of the epochs exceeds the initial
    loss (no progress "on average over the epoch", i.e. in expectation).

The empirical edge of a problem x seed is the smallest multiplier that
diverges (``inf`` when none up to 8 does).

What "eta at mult x ceiling" means (mode ``seq``, the claim)
    Every step of every block runs at exactly ``mult`` times *its own current*
    ceiling: the solver's ``clip_lr`` is used as the instrument, with
    ``kappa = mult`` and a schedule whose LR is huge, so
    ``eta_X = min(huge, mult * ceiling_X) = mult * ceiling_X`` at each step,
    for the ceiling of that very step (the H ceiling uses the batch Gram after
    the W step). ``clip_lr=False`` with a schedule cannot do this: a schedule
    only sees the ceilings of past batches (``StepInfo`` is the running minimum
    over the epoch), one step late. The ceiling is the one of THEORY.md §2.2,
    ``(1 + b/m)/2 x 2/L_X`` per block, which the engine's row model applies to the
    preconditioner's rules (:data:`nmf_sched.bounds.CEILING_RULES`); the ``block``
    mode replaces ``nmf_sched.bounds`` inside the engine by a stand-in whose factor is 1
    (see :class:`_Ceilings`). For ``precondition="gram"`` the W ceiling is the constant
    ``2 x factor``, set through a per-block LR.

The sharded scheme (mode ``shard-half``, group ``sharded``, THEORY.md §10)
    The same instrument on :func:`nmf_sched.engine.shards.solve_sharded`, the scheme of
    the Dask path run in this process: ``p`` row shards with local minibatch steps, the
    other shards' exact stale terms in the H step, an H average per epoch. Every local step
    of every shard runs at ``mult`` times the ceiling the engine enforces for it (the
    preconditioner's rule on the shard's curvature ``s_i W_B^T W_B + G_{-i}``, times the
    factor ``1/2`` of THEORY.md §10.4, :data:`nmf_sched.bounds.SHARDED_FACTOR`). Mode
    ``shard`` (group ``finding``) uses the single-machine factor ``(1 + b_i/m_i)/2``
    instead, what the engine enforced before: it is not stable (§10.3).

Penalties (family ``regularized``, group ``regularized``, THEORY.md §11)
    The ``seq`` instrument on fits with ``alpha_W > 0``, ``alpha_H="same"`` (pure L2, pure L1
    and a mix): the engine's ceilings are then the rules on the ridged Grams (``HH^T + l2_W I``,
    ``s W_B^T W_B + l2_H I``), times the minibatch factor, and the loss of the classification
    is the regularized objective (the trace's loss; the initial loss ``loss0`` includes the
    penalty too). ``alpha_W = alpha_rel x min(L_W/n, L_H/m)`` at the init, so the larger
    relative ridge ``max(l2_W/L_W, l2_H/L_H)`` is ``alpha_rel (1 - l1_ratio)``. Each run
    records the ceilings the engine used at the init (the trace's first row), and each
    problem x seed the unregularized ones of the same first batch (a one-epoch fit with
    ``alpha = 0``) and the formula :func:`nmf_sched.bounds.block_ceilings` with the ridges.

Other modes (not part of the claim; they document two findings)
    ``block``: the per-block ceilings ``2/L_X`` without the minibatch factor
    (what the solver enforced before the factor was wired in); ``const``: a constant per-block LR equal
    to ``mult x`` the ceiling *at the initialization*, ``clip_lr=False``.

Usage::

    python bounds/verify.py            # full grid, ~15 min on 2 cores
    python bounds/verify.py --quick    # small grid, < 1 min (tests/test_verify.py)
    python bounds/verify.py --only regularized --merge bounds/results/verify.json
        # run only the families whose name or group matches, keep the other families'
        # runs (and the extras) of the JSON, write the merged verify.{json,md,png}

Writes ``verify.json``, ``verify.md``, ``verify.png`` (``verify_quick.*`` with
``--quick``) to ``--out`` (default ``bounds/results``).
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # BLAS threads fight the worker processes

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import nmf_sched  # noqa: E402
from nmf_sched import bounds  # noqa: E402
from nmf_sched.engine import precond as _precond  # noqa: E402
from nmf_sched.engine import rows as _rows  # noqa: E402
from nmf_sched.init import initialize  # noqa: E402
from nmf_sched.objective import loss as exact_loss  # noqa: E402

from verify_report import (ABOVE, BELOW, _fmt, summarize, write_figure,  # noqa: E402
                           write_markdown)
HUGE = 1e300
EXPLODE = 1e4
#: a run stalls when it makes less than this fraction of the progress of the 0.25 run
STALL = 0.5


# ---------------------------------------------------------------------------
# instruments
# ---------------------------------------------------------------------------
class _Cap:
    """Schedule with a huge LR (per block): the solver's clip sets the step."""

    needs = ()

    def __init__(self, lr_W=HUGE, lr_H=HUGE):
        self.lr_W, self.lr_H = lr_W, lr_H

    def init(self):
        return {}

    def lr(self, state):
        return {"W": self.lr_W, "H": self.lr_H}

    def update(self, state, info):
        return {}


class _Ceilings:
    """Stands in for :mod:`nmf_sched.bounds` inside the engine's row model during one run.

    ``coupling="sequential"``: both ceilings get the minibatch factor ``(1 + 1/scale)/2``
    (THEORY.md §2.2), as the engine applies it; ``"none"``: the factor is 1 (the per-block
    ceilings alone, what the solver enforced before the factor); ``"half"``: the factor is
    ``1/2`` for every batch size (the sharded scheme's factor, §10.4).
    ``log`` collects ``lambda_max(s W_B^T W_B) / lambda_max(W^T W)`` at every H step (through the
    preconditioner's H ceiling rule).
    """

    def __init__(self, scale, coupling, inline_w=False, log=None):
        self.coupling = coupling
        self.factor = self.minibatch_factor(scale)
        self.log = log

    def __getattr__(self, name):
        return getattr(bounds, name)

    def step_factor(self, scale, sharded=False):
        """The engine's factor for one step, replaced by this run's (``sharded`` ignored: the
        mode decides)."""
        return self.minibatch_factor(scale)

    def minibatch_factor(self, scale):
        if self.coupling == "sequential":
            return bounds.minibatch_factor(scale)
        return 0.5 if self.coupling == "half" else 1.0

    def ceiling_rule(self, precondition):
        rw, rh = bounds.ceiling_rule(precondition)
        if self.log is None:
            return rw, rh
        log = self.log

        def rh_logged(G, A, xp, dG=None):
            full = bounds.lmax(G)
            if full > 0:
                log.append(bounds.lmax(A) / full)
            return rh(G, A, xp, dG)

        return rw, rh_logged


def _solver_inline_w() -> bool:
    """True if the engine's row step computed the W ceiling without the minibatch factor."""
    try:
        src = inspect.getsource(_rows.RowModel.step)
    except (OSError, TypeError, AttributeError):  # pragma: no cover
        return True
    return "minibatch_factor" not in src and "step_factor" not in src


INLINE_W = _solver_inline_w()


# ---------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------
_CACHE: dict = {}


def load_problem(spec):
    """``V`` for a problem spec (cached per process)."""
    key = json.dumps(spec["data"], sort_keys=True) + str(spec.get("dtype", ""))
    if key in _CACHE:
        return _CACHE[key]
    from nmf_sched import datasets

    d = dict(spec["data"])
    kind = d.pop("kind")
    if kind == "planted":
        V = datasets.planted(**d).V
    elif kind == "digits":
        V = datasets.digits()
    elif kind == "faces":
        V = datasets.faces()
    elif kind == "camera":
        X = datasets.camera_patches(patch=8, step=4)
        rows = np.random.default_rng(d.get("seed", 0)).choice(X.shape[0], d["rows"], replace=False)
        V = np.ascontiguousarray(X[np.sort(rows)])
    else:  # pragma: no cover
        raise ValueError(f"unknown data kind {kind!r}")
    if spec.get("dtype") == "float32":
        V = V.astype(np.float32)
    _CACHE.clear()
    _CACHE[key] = V
    return V


def initial_factors(V, k, spec, seed):
    """The init rule of THEORY.md §6 (random + best scale + balance), or a raw init."""
    init = spec.get("init", "rescaled")
    if init == "rescaled":
        W, H = initialize(V, k, "random", seed=seed)
        W, H, _ = bounds.rescale_balance(V, W, H)
    else:
        W, H = initialize(V, k, init, seed=seed)
    return W, H


def _epochs(m, b, quick):
    steps_per_epoch = math.ceil(m / b)
    lo, hi = (12, 60) if quick else (25, 150)
    return int(min(hi, max(lo, math.ceil(240 / steps_per_epoch))))


def run_one(V, k, W0, H0, spec, mult, seed, loss0, ceil0, epochs, log=None):
    m = V.shape[0]
    b = min(spec["b"], m)
    scale = m / b
    mode = spec.get("mode", "seq")
    pre = spec.get("precondition", "none")

    def stop(rec, W, H):
        return not math.isfinite(rec["loss"]) or rec["loss"] > EXPLODE * loss0

    # balancing (THEORY.md 3.4) is the solver's own per-epoch step, on only where a family asks
    kw = dict(epochs=epochs, batch_size=b, seed=seed, noise_std=spec.get("noise_std", 0.0),
              precondition=pre, tol=0.0, guard=False, callback=stop, W0=W0, H0=H0,
              balance=bool(spec.get("balance", False)))
    for key in ("max_value", "clip_update"):  # the clipping family (set from the init)
        if spec.get(key) is not None:
            kw[key] = float(spec[key])
    if spec.get("alpha_W"):  # the regularized family (alpha_H = "same")
        kw.update(alpha_W=float(spec["alpha_W"]), alpha_H="same",
                  l1_ratio=float(spec.get("l1_ratio", 0.0)))
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):  # overflow warnings of diverging runs are expected
        res = _fit(V, k, spec, mode, pre, scale, mult, ceil0, kw, log)
    return _classify(res, loss0, mult, t0)


COUPLING = {"seq": "sequential", "block": "none", "shard": "sequential", "shard-half": "half"}


def _fit(V, k, spec, mode, pre, scale, mult, ceil0, kw, log):
    if mode in COUPLING:
        proxy = _Ceilings(scale, COUPLING[mode], INLINE_W, log)
        sharded = mode.startswith("shard")
        if sharded and pre == "gram":  # the constant W ceiling would need each shard's factor
            raise ValueError("the sharded modes take precondition 'none', 'lipschitz' or 'cd'")
        lr_W = mult * proxy.factor * 2.0 if pre == "gram" else HUGE
        # "cd" computes both ceilings inline: the factor goes into kappa (constant per run)
        kappa = mult * proxy.factor if (pre == "cd" and INLINE_W) else mult
        _rows.bounds = _precond.bounds = proxy
        try:
            if sharded:
                res = _fit_sharded(V, k, spec["shards"], _Cap(lr_W=lr_W), kappa, kw)
            else:
                res = nmf_sched.fit(V, k, schedule=_Cap(lr_W=lr_W), clip_lr=True, kappa=kappa, **kw)
        finally:
            _rows.bounds = _precond.bounds = bounds
    else:  # const: per-block constant LR at mult x the ceilings at the init
        res = nmf_sched.fit(V, k, schedule=_Cap(mult * ceil0["W"], mult * ceil0["H"]),
                            clip_lr=False, **kw)
    return res


def _fit_sharded(V, k, p, schedule, kappa, kw):
    """The same fit (``kw`` of :func:`run_one`) through the sharded scheme over ``p`` row
    shards, in this process (:func:`nmf_sched.engine.shards.solve_sharded`)."""
    from nmf_sched.config import RowConfig
    from nmf_sched.engine.shards import solve_sharded

    call = {key: kw[key] for key in ("seed", "W0", "H0")}
    settings = {key: v for key, v in kw.items() if key not in call}
    cfg = RowConfig(clip_lr=True, kappa=kappa, **settings)
    return solve_sharded(V, k, p, schedule=schedule, cfg=cfg, **call)


def _classify(res, loss0, mult, t0):
    losses = res.trace.column("loss")
    final = float(losses[-1])
    tail = losses[1:][-max(1, (len(losses) - 1) // 3):] if len(losses) > 1 else losses
    diverged = (res.stop_reason in ("diverged", "callback") or not math.isfinite(final)
                or final > 10 * loss0)
    inc = np.diff(losses[1:]) > 0 if len(losses) > 2 else np.zeros(0, bool)
    cH = res.trace.column("ceiling_H")[1:]
    cH0 = res.trace[0]["ceiling_H"]
    return {
        "mult": float(mult),
        "diverged": bool(diverged),
        "increased": bool(diverged or float(np.mean(tail)) > loss0),
        "stop_reason": res.stop_reason,
        "backend": res.settings.get("backend"),
        "n_shards": int(res.settings.get("n_shards", 1)),
        "epochs_run": int(res.n_epochs),
        "loss0": float(loss0),
        "final_rel": final / loss0 if math.isfinite(final) else None,
        "min_rel": float(np.nanmin(losses)) / loss0,
        "tail_rel": float(np.mean(tail)) / loss0,
        "frac_epochs_up": float(inc.mean()) if inc.size else 0.0,
        "ceiling_H_drift": float(np.min(cH) / cH0) if cH.size and cH0 and math.isfinite(cH0) else None,
        # what the engine computed at the init: its loss (the regularized objective with
        # penalties) and the ceilings it enforced for the first batch (ridged with L2)
        "loss0_trace": float(losses[0]),
        # a collapse to W = 0 or H = 0 (F = ||V||^2/2): with penalties that can be below the
        # initial (regularized) loss, so neither "diverged" nor "increased" flags it
        "collapsed": bool(not np.any(np.asarray(res.W)) or not np.any(np.asarray(res.H))),
        "ceiling_W0": float(res.trace[0]["ceiling_W"]),
        "ceiling_H0": float(cH0),
        # the engine's predicted stationary floor (absolute), mean over the last third
        "floor_tail": (float(np.mean(res.trace.column("floor")[1:][-max(1, (len(losses) - 1) // 3):]))
                       if "floor" in res.trace.columns and len(losses) > 1 else None),
        "seconds": time.perf_counter() - t0,
    }


def _penalized(V, k, W0, H0, spec, seed):
    """``alpha_W`` of a regularized spec and what the engine must reproduce at the init: the
    regularized objective, the ridged ceilings (formula, for the W rows any batch; for H the
    full batch) and the unregularized ceilings of the same first batch (THEORY.md §11)."""
    from nmf_sched.engine.penalty import Penalty

    m, n = V.shape
    b = min(spec["b"], m)
    HHt, G = H0 @ H0.T, W0.T @ W0
    LW, LH = bounds.lmax(HHt), bounds.lmax(G)
    rho = float(spec.get("l1_ratio", 0.0))
    alpha = float(spec["alpha_rel"]) * min(LW / n, LH / m)
    pen = Penalty.from_alphas(alpha, "same", rho, m, n)
    loss0 = exact_loss(V, W0, H0) + pen.value_W(W0) + pen.value_H(H0.T)
    pre = spec.get("precondition", "none")
    ridged = bounds.block_ceilings(pre, HHt, G, G, m / b, l2_W=pen.l2_W, l2_H=pen.l2_H)
    plain = bounds.block_ceilings(pre, HHt, G, G, m / b)
    # the unregularized ceilings the engine computes for the same first batch (same seed)
    spec0 = {key: v for key, v in spec.items() if key not in ("alpha_rel",)}
    with np.errstate(all="ignore"):
        res0 = nmf_sched.fit(V, k, schedule=_Cap(), clip_lr=True, kappa=1.0, epochs=1,
                             batch_size=b, seed=seed, precondition=pre, tol=0.0, guard=False,
                             W0=W0, H0=H0, balance=False, noise_std=spec0.get("noise_std", 0.0))
    reg = {"alpha_W": alpha, "alpha_rel": float(spec["alpha_rel"]), "l1_ratio": rho,
           "l1_W": pen.l1_W, "l2_W": pen.l2_W, "l1_H": pen.l1_H, "l2_H": pen.l2_H,
           "L_W0": LW, "L_H0": LH, "ridge_rel_W": pen.l2_W / LW, "ridge_rel_H": pen.l2_H / LH,
           "loss0": float(loss0), "loss0_unregularized": float(exact_loss(V, W0, H0)),
           # block_ceilings with the ridges (W: exact for every batch; H: the full-batch
           # curvature A = G) and without
           "formula_ceiling_W0": float(ridged[0]), "formula_ceiling_H0_full": float(ridged[1]),
           "formula_ceiling_W0_unreg": float(plain[0]),
           "formula_ceiling_H0_full_unreg": float(plain[1]),
           "unreg_ceiling_W0": float(res0.trace[0]["ceiling_W"]),
           "unreg_ceiling_H0": float(res0.trace[0]["ceiling_H"])}
    return dict(spec, alpha_W=alpha, l1_ratio=rho), reg


def sweep(task):
    """All multipliers for one problem x seed; stops scanning upward at the first divergence."""
    spec, seed = task
    V = load_problem(spec)
    k = spec["k"]
    W0, H0 = initial_factors(V, k, spec, seed)
    loss0 = exact_loss(V, W0, H0)
    m = V.shape[0]
    b = min(spec["b"], m)
    epochs = _epochs(m, b, spec.get("quick", False))
    reg = None
    if "alpha_rel" in spec:  # penalties: alpha from the init's curvatures; loss0 regularized
        spec, reg = _penalized(V, k, W0, H0, spec, seed)
        loss0 = reg["loss0"]
    if "max_value_rel" in spec:  # entry bound: a multiple of the init's largest entry
        spec = dict(spec, max_value=float(spec["max_value_rel"] * max(W0.max(), H0.max())))
    if "clip_update_rel" in spec:  # update bound: a multiple of the init's rms W entry
        spec = dict(spec, clip_update=float(spec["clip_update_rel"] * np.sqrt(np.mean(W0 ** 2))))
    if "noise_rel" in spec:  # gradient noise relative to the RMS H-gradient entry at the init
        from nmf_sched.objective import gradients

        gH = gradients(V, W0, H0)[1]
        spec = dict(spec, noise_std=float(spec["noise_rel"] * np.sqrt(np.mean(gH ** 2))))
    rep = bounds.report(V, k, W=W0, H=H0, batch_size=b, n_batches_sample=32, seed=seed,
                        noise_std=spec.get("noise_std", 0.0))
    ceil0 = {"W": rep.ceiling_W_seq, "H": rep.ceiling_H_seq}

    def floor(mult):
        """Predicted stationary excess loss / initial loss at the init's curvatures (§3.3)."""
        fH = bounds.noise_floor(mult * rep.ceiling_H_seq, rep.L_H,
                                rep.noise_var_H + rep.sampling_var_H)
        fW = bounds.noise_floor(mult * rep.ceiling_W_seq, rep.L_W, rep.noise_var_W)
        return (fH + fW) / loss0
    runs = []
    for mult in BELOW:
        runs.append(run_one(V, k, W0, H0, spec, mult, seed, loss0, ceil0, epochs))
    if not any(r["diverged"] for r in runs):
        for mult in ABOVE:
            r = run_one(V, k, W0, H0, spec, mult, seed, loss0, ceil0, epochs)
            runs.append(r)
            if r["diverged"]:
                break
    for r in runs:
        r["floor_pred"] = floor(r["mult"])
    # "stalled": less than half the progress of the same problem x seed at multiplier 0.25
    ref = runs[0]["tail_rel"] if runs and runs[0]["mult"] == BELOW[0] else None
    for r in runs:
        r["stalled"] = bool(ref is not None and ref < 1.0 and not r["diverged"]
                            and r["tail_rel"] > 1.0 - STALL * (1.0 - ref))
    div = [r["mult"] for r in runs if r["diverged"]]
    fail = [r["mult"] for r in runs if r["increased"]]
    stall = [r["mult"] for r in runs if r["increased"] or r["stalled"]]
    out = {
        "id": spec["id"], "family": spec["family"], "mode": spec.get("mode", "seq"), "seed": seed,
        "group": spec.get("group", "stability"), "claim": spec.get("group", "stability") == "stability",
        "balance": bool(spec.get("balance", False)),
        "shape": list(V.shape), "sparse": bool(hasattr(V, "nnz")), "k": k, "b": b,
        "batch_frac": b / m, "noise_std": spec.get("noise_std", 0.0),
        "precondition": spec.get("precondition", "none"), "init": spec.get("init", "rescaled"),
        "shards": spec.get("shards", 1), "epochs": epochs, "factor": bounds.minibatch_factor(m / b),
        "edge": min(div) if div else math.inf,
        "fail_edge": min(fail) if fail else math.inf,
        "stall_edge": min(stall) if stall else math.inf,
        "below_stalled": sum(r["stalled"] for r in runs if r["mult"] <= 1.0),
        "below_diverged": sum(r["diverged"] for r in runs if r["mult"] <= 1.0),
        "below_increased": sum(r["increased"] for r in runs if r["mult"] <= 1.0),
        "below_runs": sum(1 for r in runs if r["mult"] <= 1.0),
        "runs": runs,
    }
    out["floor_pred_at_1"] = floor(1.0)
    out["best_tail"] = min(r["tail_rel"] for r in runs if r["mult"] <= 1.0)
    if reg is not None:
        out["penalty"] = reg
        out["alpha_W"], out["l1_ratio"] = spec["alpha_W"], spec["l1_ratio"]
    if rep is not None:
        out["report"] = {key: rep.as_dict()[key] for key in (
            "ceiling_W_seq", "ceiling_H_seq", "ceiling_W", "ceiling_H", "ceiling_H_batch",
            "batch_excess", "minibatch_factor", "ceiling_H_noise", "ceiling_joint", "rel_error")}
    return out


# ---------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------
#: (family, mode, group) of the sharded scheme: the ceiling the engine enforces (the block rule
#: of §10.1 on the shard's curvature, times 1/2, §10.4), and the single-machine factor
#: (1 + b/m)/2 it enforced before (a finding: not stable, §10.3)
SHARDED = (("sharded (p=2, p=4), factor 1/2", "shard-half", "sharded"),
           ("sharded, factor (1 + b/m)/2 (before)", "shard", "finding"))


#: the regularized family (THEORY.md §11): l1_ratio and alpha_rel (alpha_W = alpha_rel x
#: min(L_W/n, L_H/m) at the init): pure L2 with the ridge equal to the curvature of one block
#: (its ceiling halves), a mix (ridge 1/4 of it, plus L1), pure L1 (mild: stronger L1 zeroes
#: the planted factors)
REGULARIZED = "regularized (L1/L2 prox, §11)"
PENALTIES = ((0.0, 1.0), (0.5, 0.5), (1.0, 0.1))


def _b(m, frac):
    return max(1, int(round(frac * m)))


def grid(quick=False):
    specs = []

    def add(family, data, k, m, fracs, **kw):
        for f in fracs:
            sid = f"{family}:{data.get('kind')}:{data.get('m', m)}x{data.get('n', '')}:k{k}:b{f:g}"
            for key in ("dist", "condition", "density", "noise"):
                if key in data and data[key] is not None:
                    sid += f":{key}={data[key]}"
            for key in ("noise_rel", "precondition", "mode", "shards", "init", "balance",
                        "l1_ratio", "alpha_rel", "dtype", "max_value_rel", "clip_update_rel"):
                if key in kw:
                    sid += f":{key}={kw[key]}"
            specs.append(dict(id=sid, family=family, data=data, k=k, b=_b(m, f), quick=quick, **kw))

    if quick:
        add("planted-dense", dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200,
            (0.05, 1.0))
        add("planted-sparse", dict(kind="planted", m=300, n=150, rank=4, noise=0.05, seed=0,
                                   density=0.1), 4, 300, (0.1,))
        add("grad-noise + balance", dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0),
            4, 200, (0.2,), noise_rel=0.5, balance=True, group="noise")
        add("real", dict(kind="faces"), 6, 200, (0.2,))
        add("grad-noise x0.3/3/30, noise-aware ceiling",
            dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200, (0.2,),
            noise_rel=30.0, balance=True, precondition="cd", group="noise")
        for (fam, mode, group), ps in zip(SHARDED, ((2, 4), (4,))):
            for p in ps:
                add(fam, dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200,
                    (1.0,), shards=p, mode=mode, group=group)
        add(REGULARIZED, dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200,
            (0.2,), l1_ratio=0.5, alpha_rel=0.5, group="regularized")
        return specs, (0,)

    fr = (0.01, 0.05, 0.2, 1.0)
    for (m, n, k) in ((200, 150, 4), (500, 300, 8), (1000, 400, 16)):
        for extra in (dict(dist="uniform"), dict(dist="exponential"), dict(dist="uniform", condition=50.0)):
            add("planted-dense", dict(kind="planted", m=m, n=n, rank=k, noise=0.05, seed=1, **extra),
                k, m, fr)
    add("planted-dense", dict(kind="planted", m=500, n=300, rank=8, noise=0.3, seed=2), 8, 500, fr)
    for (m, n, k, dens) in ((800, 400, 8, 0.1), (2000, 600, 10, 0.02)):
        add("planted-sparse", dict(kind="planted", m=m, n=n, rank=k, noise=0.05, seed=3, density=dens),
            k, m, fr)
    for nu in (0.05, 0.5):
        add("grad-noise + balance", dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=4),
            8, 500, (0.05, 0.2, 1.0), noise_rel=nu, balance=True, group="noise")
    for nu in (0.05, 0.5):
        add("grad-noise + balance", dict(kind="digits"), 10, 1797, (0.05, 0.2), noise_rel=nu,
            balance=True, group="noise")
    for data, m, ks in ((dict(kind="digits"), 1797, (10, 16)), (dict(kind="faces"), 200, (10, 20)),
                        (dict(kind="camera", rows=4000, seed=0), 4000, (8, 16))):
        for k in ks:
            add("real", data, k, m, fr)
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=5), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        add("gram (W Gram, H diag(G), §7)", data, k, m, (0.05, 0.2, 1.0), precondition="gram",
            group="finding")
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=6), 500, 8),
                       (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10)):
        add("raw-init", data, k, m, (0.05, 1.0), init="nndsvda")
    cd_data = ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=7), 500, 8),
               (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10))
    for data, m, k in cd_data:
        add("cd (solver default)", data, k, m, (0.05, 0.2, 1.0), precondition="cd")
    # the sharded scheme of the Dask path (§10): the engine's factor 1/2, and the factor before
    shard_data = ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=8), 500, 8),
                  (dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=8,
                        dist="exponential"), 500, 8),
                  (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10))
    for fam, mode, group in SHARDED:
        for data, m, k in shard_data:
            for p in (2, 4):
                for pre in ("none", "cd"):
                    add(fam, data, k, m, (0.05, 0.2, 1.0), shards=p, mode=mode, precondition=pre,
                        group=group)
    # penalties (§11): the proximal step at the ridged ceilings, plain and coordinate-wise
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=9), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        for pre in ("none", "cd"):
            for rho, a in PENALTIES:
                add(REGULARIZED, data, k, m, (0.05, 0.2, 1.0), precondition=pre, l1_ratio=rho,
                    alpha_rel=a, group="regularized")
    # float32 data, entry and update clipping, an over-specified rank, sparse small batches
    # (noise-free: the claim), and gradient noise at three levels against the noise-aware
    # ceiling the engine enforces (group noise)
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=10), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        for pre in ("none", "cd"):
            add("float32", data, k, m, (0.05, 0.2, 1.0), dtype="float32", precondition=pre)
    clip_data = dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=11)
    for pre in ("none", "cd"):
        add("max_value (entries in [0, c])", clip_data, 8, 500, (0.05, 0.2, 1.0),
            max_value_rel=1.5, precondition=pre)
        add("clip_update (|update| <= u)", clip_data, 8, 500, (0.05, 0.2, 1.0),
            clip_update_rel=0.05, precondition=pre)
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=4, noise=0.05, seed=12), 500, 12),
                       (dict(kind="faces"), 200, 40)):
        for pre in ("none", "cd"):
            add("over-specified rank", data, k, m, (0.05, 0.2, 1.0), precondition=pre)
    for pre in ("none", "cd"):
        add("sparse small batches", dict(kind="planted", m=2000, n=600, rank=10, noise=0.05, seed=13,
                                         density=0.02), 10, 2000, (0.005, 0.01), precondition=pre)
    for nu in (0.3, 3.0, 30.0):
        for pre in ("none", "cd"):
            for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=14), 500, 8),
                               (dict(kind="digits"), 1797, 10)):
                add("grad-noise x0.3/3/30, noise-aware ceiling", data, k, m, (0.05, 1.0),
                    noise_rel=nu, balance=True, precondition=pre, group="noise")
    # not part of the claim: noise without the balancing step, the per-block ceiling without
    # the minibatch factor, and a constant LR fixed at the init
    for nu in (0.05, 0.5):
        add("grad-noise, no balance", dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=4),
            8, 500, (0.05, 0.2, 1.0), noise_rel=nu, group="finding")
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=5), 500, 8),
                       (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10)):
        add("per-block 2/L, no factor (old solver)", data, k, m, (0.05, 0.2, 1.0), mode="block", group="finding")
    for data, m, k in cd_data:
        add("cd, no factor (old solver)", data, k, m, (0.05, 0.2, 1.0), precondition="cd",
            mode="block", group="finding")
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=5), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        add("constant at init", data, k, m, (0.05, 0.2, 1.0), mode="const", group="finding")
    return specs, (0, 1)


# ---------------------------------------------------------------------------
# extra experiments (full run only)
# ---------------------------------------------------------------------------
def notes_case():
    """The THEORY-NOTES run: 2000 x 1000, k = 20, b = 200, W then H at scale/L per block."""
    from nmf_sched import datasets

    V = datasets.planted(2000, 1000, 20, noise=0.1, seed=0).V
    W0, H0 = initial_factors(V, 20, {"init": "rescaled"}, 1)
    loss0 = exact_loss(V, W0, H0)
    b = 200
    pre_rep = bounds.report(V, 20, W=W0, H=H0, batch_size=b, n_batches_sample=200)
    rows = []
    for scale_over_L in (1.0, 1.05, 1.1, 1.15, 1.2, 1.5):
        mu = scale_over_L / 2.0  # eta = scale/L = mu * 2/L
        log = []
        spec = {"b": b, "mode": "block"}
        r = run_one(V, 20, W0, H0, spec, mu, 0, loss0, None, 30, log=log)
        first = log[:10]
        rows.append({"eta_times_L": scale_over_L, "mu": mu, "diverged": r["diverged"],
                     "stop_reason": r["stop_reason"], "epochs_run": r["epochs_run"],
                     "final_rel": r["final_rel"], "min_rel": r["min_rel"],
                     "batch_excess_first_epoch_max": max(first) if first else None,
                     "batch_excess_max": max(log) if log else None})
    return {
        "problem": "planted uniform 2000 x 1000, k = 20, noise 0.1, b = 200 (M = 10 batches)",
        "predicted_edge_eta_times_L": 2 * bounds.minibatch_factor(10.0),
        "batch_excess_at_init": {"mean": pre_rep.L_H_batch_mean / pre_rep.L_H,
                                 "max_of_200": pre_rep.batch_excess,
                                 "bound_all_batches": pre_rep.L_H_batch_bound / pre_rep.L_H},
        "runs": rows,
    }


def _rank_one_rho(M, mu_W, mu_H):
    c_W, c_H = 1 - 2 * mu_W, 1 - 2 * mu_H
    P = np.eye(M)
    for B in range(M):
        A = np.eye(M)
        A[:, B] = -2 * mu_H * c_W
        A[B, B] = c_H * c_W
        P = A @ P
    return float(np.max(np.abs(np.linalg.eigvals(P))))


def _epoch_jacobian_rho(m, n, k, M, mu, seed=0, dist="uniform", p=1):
    """Spectral radius (excluding the k^2 neutral modes) of the linearized epoch map
    at an exact planted factorization, sequential W_B then H steps at mu x 2/L.

    ``p > 1``: the sharded scheme of THEORY.md §10 (``p`` contiguous row shards of ``M``
    batches each, the other shards' exact terms frozen at the start of the epoch in the H
    step, whose ceiling is ``2 / lambda_max(s W_B^T W_B + G_-i)``, and the mean of the H
    copies at the end of the epoch); ``p = 1`` is the single-machine scheme."""
    r = np.random.default_rng(seed)
    draw = r.random if dist == "uniform" else (lambda s: r.exponential(size=s))
    W = draw((m, k)) + 0.1
    H = draw((k, n)) + 0.1
    d = np.sqrt(np.linalg.norm(H, axis=1) / np.linalg.norm(W, axis=0))
    W, H = W * d, H / d[:, None]
    V = W @ H
    mi = m // p
    b = mi // M
    s = mi / b
    shards = [slice(i * mi, (i + 1) * mi) for i in range(p)]
    etaW = mu * 2 / bounds.lmax(H @ H.T)

    def batch(i, j):
        return slice(i * mi + j * b, i * mi + (j + 1) * b)

    def rest(parts, i, shape):  # the other shards' sum
        return sum((x for q, x in enumerate(parts) if q != i), np.zeros(shape))

    if p == 1:
        etaH = [[mu * 2 / (s * bounds.lmax(W[batch(0, j)].T @ W[batch(0, j)])) for j in range(M)]]
    else:
        G0 = [W[S].T @ W[S] for S in shards]
        etaH = [[mu * 2 / bounds.lmax(s * W[batch(i, j)].T @ W[batch(i, j)]
                                      + rest(G0, i, (k, k))) for j in range(M)] for i in range(p)]

    def F(x):
        Wx = x[:W.size].reshape(W.shape).copy()
        Hx = x[W.size:].reshape(H.shape).copy()
        if p > 1:
            G = [Wx[S].T @ Wx[S] for S in shards]
            A = [Wx[S].T @ V[S] for S in shards]
        Hsum = np.zeros_like(Hx)
        for i in range(p):
            Hi = Hx.copy()
            for j in range(M):
                B = batch(i, j)
                Wx[B] = Wx[B] - etaW * (Wx[B] @ Hi @ Hi.T - V[B] @ Hi.T)
                g = s * (Wx[B].T @ Wx[B] @ Hi - Wx[B].T @ V[B])
                if p > 1:
                    g += rest(G, i, (k, k)) @ Hi - rest(A, i, (k, Hi.shape[1]))
                Hi = Hi - etaH[i][j] * g
            Hsum += Hi
        Hx = Hsum if p == 1 else Hsum / p
        return np.concatenate([Wx.ravel(), Hx.ravel()])

    x0 = np.concatenate([W.ravel(), H.ravel()])
    N = x0.size
    J = np.empty((N, N))
    h = 1e-6
    for i in range(N):
        e = np.zeros(N)
        e[i] = h
        J[:, i] = (F(x0 + e) - F(x0 - e)) / (2 * h)
    ev = np.linalg.eigvals(J)
    rest = np.abs(ev[np.abs(ev - 1) >= 1e-5])  # drop the neutral modes (at +1), keep -1
    return float(rest.max()) if rest.size else 0.0


def _shard_rank_one_epoch(X, p, M, mu_W, mu_H):
    """One epoch of the sharded scheme in the rank-one model (THEORY.md §10.3), for a stack
    of states ``X`` (r x (pM + 1)): ``alpha`` of the ``pM`` equal batches (shard-major) and
    ``beta``; ``W_B = alpha_B u_B``, ``H = beta v``, ``V = u v^T``, ``||u|| = ||v|| = 1``.
    Steps at the fractions ``mu`` of each step's own ceiling (W: ``2/beta_i^2``; H:
    ``2/A``, ``A = s alpha_B^2 ||u_B||^2 + stale``), the projection inactive."""
    r = X.shape[0]
    a = X[:, :-1].reshape(r, p, M).copy()
    beta = X[:, -1]
    u2 = 1.0 / (p * M)  # ||u_B||^2
    s = float(M)        # m_i / b_i
    lin = u2 * a.sum(axis=2)          # per shard: sum_C alpha_C ||u_C||^2 (V_i^T W_i)
    quad = u2 * (a ** 2).sum(axis=2)  # per shard: W_i^T W_i
    Hmean = np.zeros(r)
    for i in range(p):
        gl = lin.sum(axis=1) - lin[:, i]   # the stale terms of the other shards
        gq = quad.sum(axis=1) - quad[:, i]
        bi = beta.copy()
        for B in range(M):
            a[:, i, B] = (1 - 2 * mu_W) * a[:, i, B] + 2 * mu_W / bi
            aB = a[:, i, B]
            A = s * u2 * aB ** 2 + gq
            bi = bi - 2 * mu_H / A * (s * u2 * aB * (aB * bi - 1) + gq * bi - gl)
        Hmean += bi / p
    return np.concatenate([a.reshape(r, -1), Hmean[:, None]], axis=1)


def _shard_rank_one_rho(p, M, mu_W, mu_H):
    """Spectral radius of the linearized epoch map at the fixed point ``alpha = beta = 1``,
    without the one neutral mode of the scale symmetry (central differences)."""
    N = p * M + 1
    h = 1e-6
    E = h * np.eye(N)
    x0 = np.ones(N)
    J = (_shard_rank_one_epoch(x0 + E, p, M, mu_W, mu_H)
         - _shard_rank_one_epoch(x0 - E, p, M, mu_W, mu_H)).T / (2 * h)
    ev = np.linalg.eigvals(J)
    ev = np.delete(ev, np.argmin(np.abs(ev - 1)))
    return float(np.max(np.abs(ev))) if ev.size else 0.0


def _shard_rank_one_edge(p, M, lo=0.45, hi=1.2, step=0.01, tol=1e-9):
    """Smallest ``mu = mu_W = mu_H`` with spectral radius > 1 (scan, then bisection);
    ``lo`` when already unstable there, None when stable up to ``hi``."""
    def bad(mu):
        return _shard_rank_one_rho(p, M, mu, mu) > 1 + tol

    if bad(lo):
        return lo
    prev = lo
    for mu in np.arange(lo + step, hi + step / 2, step):
        if bad(mu):
            a, b = prev, float(mu)
            for _ in range(16):
                c = 0.5 * (a + b)
                a, b = (a, c) if bad(c) else (c, b)
            return b
        prev = float(mu)
    return None


def full_batch_shard_edge(p):
    """The rank-one edge of equal fractions for one full-batch step per shard (§10.3):
    ``1`` for ``p <= 2``, else ``p (1 - sqrt(1 - 2/p)) / 2``."""
    return 1.0 if p <= 2 else p * (1 - math.sqrt(1 - 2 / p)) / 2


def sharded_linearization():
    """The edge of the sharded scheme: rank-one model and general k (THEORY.md §10.3)."""
    model = []
    for p in (1, 2, 3, 4, 8):
        for M in (1, 2, 3, 5, 10, 20):
            model.append({"p": p, "M": M, "edge_numeric": _shard_rank_one_edge(p, M),
                          "factor": (M + 1) / (2 * M),
                          "edge_closed_form": full_batch_shard_edge(p) if M == 1 else None,
                          "rho_at_half": _shard_rank_one_rho(p, M, 0.5, 0.5)})
    edges = {(r["p"], r["M"]): r["edge_numeric"] for r in model}
    general = []
    for dist, k in (("uniform", 3), ("exponential", 4)):
        for p in (2, 4):
            for M in (1, 3, 5):
                e = edges[(p, M)]
                row = {"dist": dist, "k": k, "p": p, "M": M, "factor": (M + 1) / (2 * M),
                       "edge_rank_one": e}
                for key, mu in (("rho_half", 0.5), ("rho_factor", (M + 1) / (2 * M)),
                                ("rho_edge_below", e - 0.02), ("rho_edge_above", e + 0.02)):
                    row[key] = _epoch_jacobian_rho(60, 40, k, M, mu, dist=dist, seed=1, p=p)
                general.append(row)
    return {"rank_one_model": model, "general_k": general}


def _gram_scheme(V, k, mult, variant, b, epochs=25, seed=0):
    """The solver's Gram-preconditioned sequential scheme in numpy, with three H steps:
    "gram" (G^-1 g, then the Euclidean projection: what the solver does), "diag"
    (diag(G)^-1 g, THEORY.md §7 safe fallback) and "pnewton" (G restricted to the free
    variables per column, Bertsekas 1982). Steps at mult x the §2.2 ceiling of each variant."""
    m, n = V.shape
    W, H = initial_factors(V, k, {"init": "rescaled"}, seed)
    f0 = exact_loss(V, W, H)
    rng = np.random.default_rng(seed)
    rho = bounds.minibatch_factor(m / b)

    def inv_parts(P):
        d, U = np.linalg.eigh(P)
        d = np.maximum(d, 1e-12 * max(d[-1], 1e-300))
        return (U / d) @ U.T, (U / np.sqrt(d)) @ U.T, d[-1]

    for ep in range(epochs):
        perm = rng.permutation(m)
        for a in range(0, m, b):
            B = np.sort(perm[a:a + b])
            sc = m / B.size
            Pinv, _, _ = inv_parts(H @ H.T)
            W[B] = np.maximum(W[B] - mult * rho * 2.0 * (W[B] @ (H @ H.T) - V[B] @ H.T) @ Pinv, 0)
            G, GB = W.T @ W, W[B].T @ W[B]
            gH = sc * (GB @ H - W[B].T @ V[B])
            if variant == "diag":
                Dg = np.maximum(np.diag(G), 1e-12 * max(np.diag(G).max(), 1e-300))
                c = rho * 2.0 / (sc * bounds.gen_lmax(GB, np.diag(1 / np.sqrt(Dg))))
                D = gH / Dg[:, None]
            else:
                Ginv, Gis, top = inv_parts(G)
                c = rho * 2.0 / (sc * bounds.gen_lmax(GB, Gis))
                if variant == "gram":
                    D = Ginv @ gH
                else:
                    free = (H > 0) | (gH < 0)
                    D = np.zeros_like(H)
                    for j in range(n):
                        F = free[:, j]
                        if F.any():
                            D[F, j] = np.linalg.solve(G[np.ix_(F, F)] + 1e-12 * top * np.eye(F.sum()),
                                                      gH[F, j])
            H = np.maximum(H - mult * c * D, 0)
        fl = exact_loss(V, W, H)
        if not math.isfinite(fl) or fl > EXPLODE * f0:
            return {"diverged": True, "epoch": ep + 1, "final_rel": None}
    return {"diverged": fl > 10 * f0, "epoch": epochs, "final_rel": fl / f0}


def gram_variants():
    from nmf_sched import datasets

    rows = []
    probs = (("digits k=10", datasets.digits(), 10),
             ("planted 500x300 k=8", datasets.planted(500, 300, 8, noise=0.05, seed=5).V, 8))
    with np.errstate(all="ignore"):
        for name, V, k in probs:
            for frac in (0.05, 0.2):
                b = max(1, int(round(frac * V.shape[0])))
                for variant in ("gram", "diag", "pnewton"):
                    for mult in (0.5, 0.841, 1.0, 1.41):
                        r = _gram_scheme(V, k, mult, variant, b)
                        rows.append(dict(problem=name, batch_frac=frac, variant=variant, mult=mult, **r))
    return rows


def linearization():
    """The minibatch coupling edge mu* = (M+1)/(2M): rank-one model and general k."""
    model = []
    mus = np.linspace(0.3, 1.05, 1501)
    for M in (1, 2, 3, 5, 10, 20, 50, 100):
        rho = np.array([_rank_one_rho(M, u, u) for u in mus])
        bad = mus[rho > 1 + 1e-9]
        model.append({"M": M, "edge_numeric": float(bad[0]) if bad.size else None,
                      "edge_formula": (M + 1) / (2 * M)})
    general = []
    for dist, k in (("uniform", 3), ("exponential", 4)):
        for M in (1, 2, 5, 10):
            pred = (M + 1) / (2 * M)
            lo = _epoch_jacobian_rho(60, 40, k, M, pred - 0.02, dist=dist, seed=1)
            hi = _epoch_jacobian_rho(60, 40, k, M, pred + 0.02, dist=dist, seed=1)
            general.append({"dist": dist, "k": k, "M": M, "mu_pred": pred,
                            "rho_below": lo, "rho_above": hi})
    asym = []
    for M, mu_W, mu_H in ((10, 0.5, 0.95), (10, 0.55, 0.5), (10, 0.6, 0.5), (10, 0.6, 0.25),
                          (10, 0.7, 0.15), (10, 0.7, 0.2), (2, 0.9, 0.5), (2, 0.9, 0.6)):
        asym.append({"M": M, "mu_W": mu_W, "mu_H": mu_H,
                     "predicted_stable": bounds.coupling_stable(mu_W, mu_H, M),
                     "rho_rank_one": _rank_one_rho(M, mu_W, mu_H)})
    return {"rank_one_model": model, "general_k": general, "asymmetric": asym}


# ---------------------------------------------------------------------------
# summaries and output
# ---------------------------------------------------------------------------
def _clean(o):
    """JSON-safe: infinities as the strings "inf"/"-inf"."""
    if isinstance(o, float) and not math.isfinite(o):
        return "inf" if o > 0 else "-inf"
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


def _unclean(o):
    if o == "inf":
        return math.inf
    if isinstance(o, dict):
        return {k: _unclean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_unclean(v) for v in o]
    return o


def _render(src, out):
    d = _unclean(json.loads(Path(src).read_text()))
    stem = "verify_quick" if d["meta"]["quick"] else "verify"
    rows, total = summarize(d["results"])
    write_markdown(out / f"{stem}.md", rows, total, d["results"], d["extras"], d["meta"])
    write_figure(out / f"{stem}.png", d["results"])
    d.update(total=total, families=rows)
    (out / f"{stem}.json").write_text(json.dumps(_clean(d), separators=(",", ":")))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small grid, < 1 minute")
    ap.add_argument("--out", default=str(ROOT / "bounds" / "results"), help="output folder")
    ap.add_argument("--workers", type=int, default=None, help="processes (default 2, quick 1)")
    ap.add_argument("--no-extras", action="store_true", help="skip the notes case and linearization")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the .md/.png (and a compact "
                    ".json) from an existing verify JSON")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated substrings: run only the "
                    "families whose name or group contains one of them")
    ap.add_argument("--merge", metavar="JSON", help="with --only: keep the other families' runs "
                    "and the extras of this verify JSON and write the merged results")
    args = ap.parse_args(argv)
    if args.merge and not args.only:
        ap.error("--merge needs --only")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        return _render(Path(args.render), out)
    specs, seeds = grid(args.quick)
    all_specs = specs
    if args.only:
        keys = [x.strip() for x in args.only.split(",") if x.strip()]
        specs = [s for s in specs if any(x in s["family"] or x in s.get("group", "stability")
                                         for x in keys)]
        if not specs:
            ap.error(f"--only {args.only!r} matches no family of the grid")
    tasks = [(s, seed) for s in specs for seed in seeds]
    workers = args.workers or (1 if args.quick else 2)
    t0 = time.time()
    results = []
    if workers > 1:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers) as pool:
            for i, r in enumerate(pool.imap_unordered(sweep, tasks)):
                results.append(r)
                if (i + 1) % 25 == 0:
                    print(f"  {i + 1}/{len(tasks)} problem x seed done, {time.time() - t0:.0f} s",
                          flush=True)
    else:
        results = [sweep(t) for t in tasks]
    seconds = time.time() - t0
    extras, merged = {}, None
    if args.merge:  # the other families' runs of an earlier sweep, and its extras
        old = _unclean(json.loads(Path(args.merge).read_text()))
        if old["meta"]["quick"] != args.quick:
            ap.error("--merge: the JSON's grid (quick or full) differs from this one")
        rerun = {s["family"] for s in specs}
        results = [r for r in old["results"] if r["family"] not in rerun] + results
        extras = old.get("extras", {})
        merged = old["meta"]
        merged.setdefault("merged", []).append(
            {"families": sorted(rerun), "only": args.only, "seconds": seconds,
             "workers": workers, "problem_x_seed": len(tasks)})
    order = {s["id"]: i for i, s in enumerate(all_specs)}
    results.sort(key=lambda r: (order.get(r["id"], len(order)), r["seed"]))
    if not args.quick and not args.no_extras and not args.only:
        print("  notes case ...", flush=True)
        extras["notes_case"] = notes_case()
        print("  linearization ...", flush=True)
        extras["linearization"] = linearization()
        print("  gram variants ...", flush=True)
        extras["gram_variants"] = gram_variants()
        print("  sharded linearization ...", flush=True)
        extras["sharded_linearization"] = sharded_linearization()
    rows, total = summarize(results)
    meta = {"quick": args.quick, "seconds": time.time() - t0, "workers": workers,
            "numpy": np.__version__, "python": platform.python_version(),
            "solver_w_ceiling_inline": INLINE_W, "multipliers": list(BELOW + ABOVE),
            "explode": EXPLODE}
    if merged is not None:
        meta = merged
    stem = "verify_quick" if args.quick else "verify"
    (out / f"{stem}.json").write_text(json.dumps(_clean(
        {"meta": meta, "total": total, "families": rows, "extras": extras, "results": results}),
        separators=(",", ":")))
    write_markdown(out / f"{stem}.md", rows, total, results, extras, meta)
    try:
        write_figure(out / f"{stem}.png", results)
    except ImportError:  # pragma: no cover - matplotlib is optional
        pass
    print(f"problem x seed: {total['problem_x_seed']}, runs at/below the ceiling: "
          f"{total['runs_at_or_below']}, diverged there: {total['diverged_at_or_below']}, "
          f"increased there: {total['increased_at_or_below']}, median edge/ceiling: "
          f"{_fmt(total['median_edge'])} ({time.time() - t0:.0f} s)")
    for r in rows:
        print(f"  {r['family']:<24} {r['problem_x_seed']:>4} median edge {_fmt(r['median_edge']):>6} "
              f"min {_fmt(r['min_edge']):>6}  diverged<=1 {r['diverged_at_or_below']}  "
              f"increased<=1 {r['increased_at_or_below']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
