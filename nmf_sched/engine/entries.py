r"""The observed-entries model: masked NMF by entry-wise projected SGD, in the one engine.

Only the observed entries :math:`\Omega` enter the objective

.. math::

    f(W, H) = \sum_{(i,j) \in \Omega} \Big[\tfrac12 (v_{ij} - w_i \cdot h_j)^2
              + \tfrac{\lambda}{2}\big(\|w_i\|^2 + \|h_j\|^2\big)\Big],
    \qquad W, H \ge 0,

(LIBMF's per-entry L2 term). The training entries are shuffled once (seeded) and grouped
into the cells of a grid of row bins x column bins (:class:`nmf_sched.masked._Chunks`);
each epoch visits the cells, and the chunks within a cell, in a fresh random order.

A *step* is a group of consecutive chunks of the epoch's order holding about
``batch_size`` entries (``"auto"``: the whole epoch, one step), taken by the kernels of
:mod:`nmf_sched.kernels.masked`: projected SGD on every entry (``solver="entry"``, LR
absolute, ceiling :func:`nmf_sched.masked.masked_ceiling` of the factors at the start of
the step), LIBMF's per-row adaptive rule (``adaptive=True``), or one Gauss–Seidel sweep of
masked coordinate descent on W then H (``solver="rows"``; LR dimensionless, ceiling 2; one
step per epoch). The step size is the engine's ``damp * min(lr, cap * kappa * ceiling)``
with one LR for both blocks (the smaller when a schedule gives one per block).

The schedule watches the training objective or, with ``schedule_on="validation"``,
``0.5 x`` the squared error on held-out entries; the engine's ``tol`` rule watches the same.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp

from ..config import MaskedConfig
from ..data import check_rank, check_seed
from ..kernels.masked import (cd_rows_masked, entry_loss_grad, masked_sse, sgd_entries,
                              sgd_entries_adaptive)
from ..masked import _ceilings, _Chunks, _init_factors, observed_entries, split_observed
from ..schedules.base import resolve
from .checkpoint import check_fingerprint, read_checkpoint
from .control import Diverged
from .extras import GradDot
from .loop import Engine

__all__ = ["EntryModel", "solve_masked"]


class _Host:
    """The entry model runs on the host (numba kernels)."""

    xp = np
    host = True


class EntryModel:
    """Masked NMF's observed entries as the engine's model (see the module docstring)."""

    kind = "entries"
    xp = np

    def __init__(self, train, valid, shape, k, cfg, rng):
        self.cfg = cfg
        self.m, self.n = shape
        self.k = int(k)
        self.W = self.Ht = None  # set by the caller (the init reads the shuffled values)
        tr_r, tr_c, tr_v = train
        self.nnz = tr_r.shape[0]
        dt = tr_v.dtype
        # shuffle once (seeded), then group into the cells of a grid of row/column bins
        shuf = rng.permutation(self.nnz)
        tr_r, tr_c, tr_v = tr_r[shuf], tr_c[shuf], tr_v[shuf]
        self.chunks = _Chunks(tr_r, tr_c, shape, self.k * dt.itemsize, cfg.block_size)
        o = self.chunks.order
        self.r, self.c = tr_r[o].astype(np.int32), tr_c[o].astype(np.int32)
        self.v = np.ascontiguousarray(tr_v[o])
        self.ptr = self.chunks.ptr
        self.sizes = np.diff(self.ptr)
        if cfg.solver == "rows":
            self.csr = sp.csr_array((self.v, (self.r, self.c)), shape=shape)
            self.csc = sp.csr_array((self.v, (self.c, self.r)), shape=(self.n, self.m))
            self.csr.sum_duplicates()
            self.csc.sum_duplicates()
        self.valid = None if valid is None else (valid[0].astype(np.int32),
                                                 valid[1].astype(np.int32), valid[2])
        self.cnt_r = np.bincount(self.r, minlength=self.m)
        self.cnt_c = np.bincount(self.c, minlength=self.n)
        self.vsq = float(np.dot(self.v.astype(np.float64), self.v))
        self.GW = np.ones(self.m, dtype=np.float64)
        self.GH = np.ones(self.n, dtype=np.float64)
        self.lam = float(cfg.lam)
        self.gd = None
        self.ctl = None
        self.loss_ref = math.inf
        self.be = _Host()

    # ------------------------------------------------------------------ evaluation
    def objective(self):
        W, Ht = self.W, self.Ht
        sse = masked_sse(self.r, self.c, self.v, W, Ht)
        reg = 0.5 * self.lam * (float(self.cnt_r @ np.einsum("ik,ik->i", W, W, dtype=np.float64))
                                + float(self.cnt_c @ np.einsum("jk,jk->j", Ht, Ht, dtype=np.float64)))
        return 0.5 * sse + reg, sse

    def evaluate(self) -> dict:
        loss, sse = self.objective()
        rec = {"loss": loss, "rel_error": math.sqrt(sse / self.vsq) if self.vsq > 0 else math.sqrt(sse),
               "fields": {"train_rmse": math.sqrt(sse / self.nnz), "val_rmse": math.nan}}
        rec["watched"] = loss
        if self.valid is not None:
            vsse = masked_sse(self.valid[0], self.valid[1], self.valid[2], self.W, self.Ht)
            rec["fields"]["val_rmse"] = math.sqrt(vsse / self.valid[0].shape[0])
            if self.cfg.schedule_on == "validation":
                rec["watched"] = 0.5 * vsse
        return rec

    def ceilings(self):
        return _ceilings(self.W, self.Ht, self.lam, self.cfg.solver)

    # ------------------------------------------------------------------ engine interface
    per_entry_lr = False

    def describe(self) -> str:
        return "masked NMF (one learning rate for the entry step)"

    def bind(self, ctl, needs):
        self.ctl = ctl
        if "grad_dot" in needs:
            self.gd = GradDot(self.m, self.n, self.k)

    def n_units(self) -> int:
        bs = self.cfg.batch_size
        if bs == "auto" or self.cfg.solver == "rows":
            return 1
        return max(1, math.ceil(self.nnz / bs))

    def epoch_units(self, rng):
        order = self.chunks.epoch_order(rng)
        bs = self.cfg.batch_size
        if bs == "auto" or self.cfg.solver == "rows":
            return [order]
        counts = np.cumsum(self.sizes[order])
        cuts = np.searchsorted(counts, np.arange(bs, counts[-1], bs), side="left") + 1
        return [u for u in np.split(order, cuts) if u.size]

    def unit_steps(self, unit) -> int:
        return int(self.sizes[unit].sum())

    def new_acc(self):
        return {"fB": 0.0, "nB": 0, "cW": math.inf, "cH": math.inf, "eW": 0.0, "eH": 0.0, "lr": 0.0}

    def summary(self, acc) -> dict:
        nB = max(acc["nB"], 1)
        return {"fB": acc["fB"] / nB, "cW": acc["cW"], "cH": acc["cH"], "step_W": acc["eW"] / nB,
                "step_H": acc["eH"] / nB}

    def start(self, first_unit) -> dict:
        rec = self.evaluate()
        self.loss_ref = max(rec["loss"], 1e-300)
        cW, cH = self.ceilings()
        rec["fields"].update(lr=math.nan, step_size=math.nan, ceiling=min(cW, cH))
        return dict(rec, cW=cW, cH=cH)

    def rel_error(self, loss):  # pragma: no cover - the trace carries it
        return math.nan

    def _kernel(self, unit, eta):
        W, Ht, cfg = self.W, self.Ht, self.cfg
        if cfg.solver == "rows":
            cd_rows_masked(self.csr.indptr, self.csr.indices, self.csr.data, W, Ht, eta, self.lam, 1)
            cd_rows_masked(self.csc.indptr, self.csc.indices, self.csc.data, Ht, W, eta, self.lam, 1)
            return math.nan
        if cfg.adaptive:
            return sgd_entries_adaptive(self.r, self.c, self.v, unit, self.ptr, W, Ht, eta,
                                        self.lam, self.GW, self.GH)
        return sgd_entries(self.r, self.c, self.v, unit, self.ptr, W, Ht, eta, self.lam)

    def _grad(self, unit):
        gW, gHt = np.zeros_like(self.W, dtype=np.float64), np.zeros_like(self.Ht, dtype=np.float64)
        f = entry_loss_grad(self.r, self.c, self.v, unit, self.ptr, self.W, self.Ht, self.lam,
                            gW, gHt, True)
        s = self.nnz / max(self.unit_steps(unit), 1)
        return s * f, s * gW, s * gHt

    def step(self, unit, lr_W, lr_H, acc):
        lr = min(float(lr_W), float(lr_H))  # one LR for the entry step: the more cautious block
        cW, cH = self.ceilings()
        eta = self.ctl.eta(lr, min(cW, cH))
        gd = self.gd
        if gd is not None:
            _, gW, gHt = self._grad(unit)
            W0, Ht0 = self.W.copy(), self.Ht.copy()
        sse = self._kernel(unit, eta)
        n_u = self.unit_steps(unit)
        fB = 0.5 * sse * (self.nnz / max(n_u, 1))
        if sse == sse and not math.isfinite(fB):
            raise Diverged(f"step loss {fB!r}")
        if gd is not None:
            gd.add("W", None, gW, W0, self.W, eta)
            gd.add("H", None, gHt, Ht0, self.Ht, eta)
        acc["fB"] += fB
        acc["nB"] += 1
        acc["cW"], acc["cH"] = min(acc["cW"], cW), min(acc["cH"], cH)
        acc["eW"] += eta
        acc["eH"] += eta
        acc["lr"] = lr

    def end_epoch(self, acc, complete) -> dict:
        rec = self.evaluate()
        if not math.isfinite(rec["loss"]) or rec["loss"] > self.cfg.explode * self.loss_ref:
            raise Diverged(f"loss {rec['loss']!r}")
        s = self.summary(acc)
        rec["fields"].update(lr=acc["lr"], step_size=s["step_W"], ceiling=min(s["cW"], s["cH"]))
        rec["summary"] = s
        return rec

    def current_loss(self) -> dict:
        return self.evaluate()

    def balance(self):
        r"""Rescale the components, ``W -> W diag(d)``, ``H -> diag(d)^{-1} H``: ``W H`` and the
        data term do not change. With ``lam > 0`` the per-entry L2 term
        :math:`\tfrac{\lambda}{2}\sum_c (a_c d_c^2 + b_c / d_c^2)`, with
        :math:`a_c = \sum_i n_i w_{ic}^2` and :math:`b_c = \sum_j m_j h_{jc}^2` (``n_i``,
        ``m_j`` the observed entries per row and column), is minimized at
        :math:`d_c^2 = \sqrt{b_c / a_c}`, so the objective can only go down; with ``lam = 0``
        it is ``||w_c|| = ||h_c||`` as on the row path. LIBMF's adaptive accumulators (per row
        and column, over all components) are left as they are."""
        W, Ht = self.W, self.Ht
        if self.lam > 0:
            a = self.cnt_r.astype(np.float64) @ (W.astype(np.float64) ** 2)
            b = self.cnt_c.astype(np.float64) @ (Ht.astype(np.float64) ** 2)
        else:
            a = np.einsum("ik,ik->k", W, W, dtype=np.float64)
            b = np.einsum("jk,jk->k", Ht, Ht, dtype=np.float64)
        ok = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b)
        d = np.where(ok, (np.where(ok, b, 1.0) / np.where(ok, a, 1.0)) ** 0.25, 1.0)
        W *= d.astype(W.dtype)
        Ht /= d.astype(Ht.dtype)
        if self.gd is not None:
            self.gd.rescale(d)
        return d

    def snapshot(self):
        return (self.W.copy(), self.Ht.copy(), self.GW.copy(), self.GH.copy())

    def restore(self, snap):
        self.W[...], self.Ht[...] = snap[0], snap[1]
        self.GW[...], self.GH[...] = snap[2], snap[3]
        if self.gd is not None:
            self.gd.reset()

    def factors(self):
        return self.W, self.Ht.T

    def host_factors(self):
        return self.W, np.ascontiguousarray(self.Ht.T)

    def set_factors(self, W, H):
        self.W[...] = W
        self.Ht[...] = np.asarray(H).T

    def grad_dot(self):
        return self.gd.pop() if self.gd is not None else None

    def extra_arrays(self) -> dict:
        out = {"GW": self.GW, "GH": self.GH}
        if self.gd is not None:
            out.update(self.gd.arrays())
        return out

    def load_extra_arrays(self, arrays):
        self.GW[...] = arrays["GW"]
        self.GH[...] = arrays["GH"]
        if self.gd is not None:
            self.gd.load(arrays)

    def probe(self, unit):
        """``lr -> (f_U(new), f_U(old), <grad f_U, new - old>)`` for one trial step on the
        next step's entries ``U`` (loss scaled by ``nnz/|U|``); the factors are restored."""
        def f(lr):
            f0, gW, gHt = self._grad(unit)
            snap = self.snapshot()
            try:
                cW, cH = self.ceilings()
                lw = min(float(v) for v in (lr.values() if isinstance(lr, dict) else [lr]))
                self._kernel(unit, self.ctl.eta(lw, min(cW, cH)))
                f1 = self.nnz / max(self.unit_steps(unit), 1) * entry_loss_grad(
                    self.r, self.c, self.v, unit, self.ptr, self.W, self.Ht, self.lam,
                    gW[:1], gHt[:1], False)
                lin = float(np.vdot(gW, self.W - snap[0])) + float(np.vdot(gHt, self.Ht - snap[1]))
            finally:
                gd, self.gd = self.gd, None
                self.restore(snap)
                self.gd = gd
            return (f1 if math.isfinite(f1) else math.inf), f0, lin

        f.batch_fraction = self.unit_steps(unit) / self.nnz
        return f


def solve_masked(V, rank, *, mask=None, missing=None, schedule="auto", cfg: MaskedConfig,
                 seed=None, validation=None, W0=None, H0=None):
    """Masked NMF in the one engine; see :func:`nmf_sched.fit_masked`."""
    from .solve import check_combination, n_ticks, schedule_signature

    rows, cols, vals, shape = observed_entries(V, mask=mask, missing=missing)
    m, n = shape
    k = check_rank(rank, shape)
    dt = vals.dtype
    rng = check_seed(seed)
    split_rng, init_rng, run_rng = rng.spawn(3)
    if validation is None:
        train, valid = (rows, cols, vals), None
        if cfg.schedule_on == "validation":
            raise ValueError("schedule_on='validation' needs validation= (a fraction or entries)")
    elif isinstance(validation, tuple):
        if len(validation) != 3:
            raise TypeError(f"validation entries must be (rows, cols, vals); got a tuple of {len(validation)}")
        vr, vc, vv = (np.asarray(x).ravel() for x in validation)
        if not (vr.shape == vc.shape == vv.shape) or vr.size == 0:
            raise ValueError("validation (rows, cols, vals) must be non-empty and of equal length")
        if vr.min() < 0 or vr.max() >= m or vc.min() < 0 or vc.max() >= n:
            raise ValueError(f"validation indices out of range for shape {shape}")
        train = (rows, cols, vals)
        valid = (vr.astype(np.int64), vc.astype(np.int64), np.ascontiguousarray(vv, dtype=dt))
    else:
        train, valid = split_observed(rows, cols, vals, validation, split_rng)
    nnz = train[0].shape[0]
    cnt_r = np.bincount(train[0], minlength=m)
    cnt_c = np.bincount(train[1], minlength=n)
    empty_rows, empty_cols = np.flatnonzero(cnt_r == 0), np.flatnonzero(cnt_c == 0)
    if empty_rows.size or empty_cols.size:
        warnings.warn(f"{empty_rows.size} row(s) and {empty_cols.size} column(s) of V have no observed "
                      "training entry; their factor rows are set to 0 (see settings['empty_rows'/"
                      "'empty_cols'])", UserWarning, stacklevel=3)
    model = EntryModel(train, valid, shape, k, cfg, run_rng)
    W, Ht = _init_factors(shape, k, model.v, dt, init_rng, W0, H0)
    W[empty_rows] = 0
    Ht[empty_cols] = 0
    model.W, model.Ht = W, Ht
    sched = resolve(schedule, total=n_ticks(cfg, model.n_units()))
    check_combination(sched, None, "masked", cfg)
    fingerprint, ck = None, None
    if cfg.checkpoint is not None or cfg.resume is not None:
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        for a in (model.r, model.c, model.v):
            h.update(np.ascontiguousarray(a).tobytes())
        fingerprint = {"data": {"shape": [m, n], "dtype": str(dt), "storage": "entries",
                                "n_train": int(nnz), "sqnorm": model.vsq, "entries_hash": h.hexdigest()},
                       "settings": dict(cfg.trajectory_settings(), rank=k,
                                        schedule=schedule_signature(sched), placement="masked",
                                        validation=repr(validation) if not isinstance(validation, tuple)
                                        else "entries")}
    if cfg.resume is not None:
        ck = read_checkpoint(cfg.resume)
        check_fingerprint(ck["fingerprint"], fingerprint, cfg.resume)
    settings = dict(rank=k, schedule=repr(sched), epochs=cfg.epochs, lam=cfg.lam, solver=cfg.solver,
                    adaptive=cfg.adaptive,
                    validation=validation if not isinstance(validation, tuple) else "entries",
                    schedule_on=cfg.schedule_on, clip_lr=cfg.clip_lr, kappa=cfg.kappa, tol=cfg.tol,
                    seed=seed if not hasattr(seed, "spawn") else None, dtype=str(dt),
                    grid=list(model.chunks.grid) if cfg.solver == "entry" else None,
                    n_observed=int(rows.shape[0]), n_train=int(nnz),
                    n_valid=0 if valid is None else int(valid[0].shape[0]),
                    empty_rows=empty_rows, empty_cols=empty_cols, backend="masked")
    res = Engine(model, sched, cfg, run_rng, fingerprint=fingerprint, settings=settings).run(resume=ck)
    cW, cH = model.ceilings()
    res.W, res.H = model.W, np.ascontiguousarray(model.Ht.T)
    res.bound = {"ceiling": min(cW, cH), "ceiling_W": cW, "ceiling_H": cH, "lam": cfg.lam}
    final = res.trace[-1]
    res.settings.update(val_rmse=final["val_rmse"], train_rmse=final["train_rmse"])
    res.rel_error = final["rel_error"] if res.stop_reason != "diverged" else model.evaluate()["rel_error"]
    return res
