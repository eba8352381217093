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

from verify_grid import grid  # noqa: E402  (also verify.grid for the notebooks)
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
        from verify_extra import gram_variants, linearization, notes_case, sharded_linearization

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
