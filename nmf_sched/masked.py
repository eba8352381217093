r"""Masked NMF (missing entries, matrix completion) by entry-wise projected SGD.

Only the observed entries :math:`\Omega` enter the objective

.. math::

    f(W, H) = \sum_{(i,j) \in \Omega} \Big[\tfrac12 (v_{ij} - w_i \cdot h_j)^2
              + \tfrac{\lambda}{2}\big(\|w_i\|^2 + \|h_j\|^2\big)\Big],
    \qquad W, H \ge 0,

(``w_i`` row ``i`` of W, ``h_j`` column ``j`` of H; the per-entry L2 term is
LIBMF's, so a row with many observations is regularized more). One epoch visits
every training entry once in a fresh seeded random order and takes the
projected step of :mod:`nmf_sched.kernels.masked` on both rows it touches.

Learning rate and ceiling
-------------------------
The schedule gives one global LR per epoch (every schedule of the protocol
works; ``"auto"`` is GreedyLR started at half the ceiling). ``adaptive=True``
divides it per row by LIBMF's accumulated gradient norm (the baseline rule).
With ``clip_lr`` the step is ``min(lr, kappa * ceiling)`` where, for the entry
step, the per-entry curvature of the row update is :math:`\|h_j\|^2 + \lambda`
(the Hessian :math:`h_j h_j^\top + \lambda I` of the entry's loss in
:math:`w_i`) and of the column update :math:`\|w_i\|^2 + \lambda`, so

.. math::

    \eta < c = \min\Big(\frac{2}{\max_j \|h_j\|^2 + \lambda},\;
                        \frac{2}{\max_i \|w_i\|^2 + \lambda}\Big)

makes every single-block entry step a contraction on its own quadratic
(:func:`masked_ceiling`; it costs one pass over the factor rows).

Missing rows/columns
--------------------
A row (column) with no observed training entry has no data term; its factor
row is **set to zero** (it predicts 0) and never updated. Their indices are
reported in ``result.settings["empty_rows"]`` / ``["empty_cols"]`` and a
``UserWarning`` is issued. All entries missing is a ValueError.
"""
from __future__ import annotations

import math
import numbers
import time
import warnings

import numpy as np
import scipy.sparse as sp

from .data import check_rank, check_seed
from .kernels.masked import cd_rows_masked, masked_sse, row_sqnorms_max, sgd_entries, sgd_entries_adaptive
from .result import FitResult, Trace
from .schedules.base import StepInfo

__all__ = ["fit_masked", "observed_entries", "split_observed", "rmse", "masked_ceiling",
           "masked_block_ceilings", "MISSING_MODES", "SOLVERS"]

MISSING_MODES = (None, "nan", "unobserved")
SOLVERS = ("entry", "rows")
_HINT = ("pass mask=<bool array, True = observed>, missing='nan' (dense V, NaN = missing) "
         "or missing='unobserved' (sparse V, stored entries = observed)")


# ---------------------------------------------------------------------------
# observed entries
# ---------------------------------------------------------------------------
def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return np.dtype(np.float32)
    if dtype.kind in "fiub":
        return np.dtype(np.float64)
    raise TypeError(f"V must have a real numeric dtype; got dtype {dtype}")


def observed_entries(V, *, mask=None, missing=None):
    """Observed entries of ``V`` in coordinate form.

    Parameters
    ----------
    V : ndarray (m, n) or scipy.sparse matrix
        Data. Values at unobserved positions are ignored (may be NaN).
    mask : bool ndarray (m, n) or scipy.sparse matrix, optional
        True (stored nonzero, for sparse) marks an observed entry. With a
        sparse ``V`` an observed entry that ``V`` does not store is a 0.
    missing : {None, "nan", "unobserved"}
        Without ``mask``: ``"nan"`` (dense V, NaN = missing), ``"unobserved"``
        (sparse V: its stored entries are the observations). ``None``: a dense
        V without NaN is fully observed; NaN or sparse V raise ValueError.

    Returns
    -------
    rows, cols : int64 arrays (nnz,)
    vals : float32/float64 array (nnz,)
    shape : (m, n)
    """
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {list(MISSING_MODES)}, got {missing!r}")
    if V is None:
        raise TypeError("V must be a 2-D array or scipy.sparse matrix; got None")
    if mask is not None and missing is not None:
        raise ValueError(f"give either mask= or missing=, not both (missing={missing!r})")
    if sp.issparse(V):
        shape = tuple(V.shape)
        dt = _float_dtype(V.dtype)
    else:
        V = np.asarray(V)
        if V.dtype == object or V.dtype.kind not in "fiub":
            raise TypeError(f"V must have a real numeric dtype; got dtype {V.dtype}")
        if V.ndim != 2:
            raise ValueError(f"V must be 2-D; got shape {V.shape}")
        shape = V.shape
        dt = _float_dtype(V.dtype)
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"V must be non-empty; got shape {shape}")

    if mask is not None:
        if sp.issparse(mask):
            if tuple(mask.shape) != shape:
                raise ValueError(f"mask must have the shape of V {shape}; got shape {tuple(mask.shape)}")
            if mask.dtype != np.bool_:
                raise TypeError(f"mask must have dtype bool; got dtype {mask.dtype}")
            M = sp.coo_array(mask)
            M.sum_duplicates()
            keep = M.data.astype(bool)
            rows, cols = M.row[keep].astype(np.int64), M.col[keep].astype(np.int64)
        else:
            if not isinstance(mask, np.ndarray):
                raise TypeError(f"mask must be a bool numpy array or scipy.sparse matrix; got {type(mask).__name__}")
            if mask.dtype != np.bool_:
                raise TypeError(f"mask must have dtype bool; got dtype {mask.dtype}")
            if mask.shape != shape:
                raise ValueError(f"mask must have the shape of V {shape}; got shape {mask.shape}")
            rows, cols = np.nonzero(mask)
            rows, cols = rows.astype(np.int64), cols.astype(np.int64)
        if sp.issparse(V):
            Vc = sp.csr_array(V)
            vals = np.asarray(Vc[rows, cols]).ravel() if rows.size else np.zeros(0)
        else:
            vals = V[rows, cols]
        where = "at an observed (mask=True) entry"
    elif missing == "nan":
        if sp.issparse(V):
            raise ValueError("missing='nan' needs a dense V; for sparse V use missing='unobserved'")
        obs = ~np.isnan(V) if V.dtype.kind == "f" else np.ones(shape, bool)
        rows, cols = np.nonzero(obs)
        rows, cols = rows.astype(np.int64), cols.astype(np.int64)
        vals = V[rows, cols]
        where = "at a non-NaN entry"
    elif missing == "unobserved":
        if not sp.issparse(V):
            raise ValueError("missing='unobserved' needs a scipy.sparse V; for dense V use "
                             "missing='nan' or mask=")
        C = sp.coo_array(V)
        C.sum_duplicates()
        rows, cols, vals = C.row.astype(np.int64), C.col.astype(np.int64), C.data
        where = "at a stored entry"
    else:
        if sp.issparse(V):
            raise ValueError("V is sparse and no masked mode was given: are its unstored entries "
                             f"zeros or missing? {_HINT}; for zeros use nmf_sched.fit(V, rank)")
        if V.dtype.kind == "f" and np.isnan(V).any():
            n_nan = int(np.isnan(V).sum())
            raise ValueError(f"V contains {n_nan} NaN value(s) and no masked mode was given; "
                             f"to treat NaN as missing {_HINT}")
        rows, cols = np.divmod(np.arange(shape[0] * shape[1], dtype=np.int64), shape[1])
        vals = V.ravel()
        where = "in V"
    vals = np.ascontiguousarray(vals, dtype=dt)
    if vals.size == 0:
        raise ValueError(f"V of shape {shape} has no observed entry (all entries missing)")
    bad = ~np.isfinite(vals)
    if bad.any():
        e = int(np.flatnonzero(bad)[0])
        raise ValueError(f"V has a non-finite value {float(vals[e])!r} {where} "
                         f"({int(rows[e])}, {int(cols[e])})")
    if (vals < 0).any():
        e = int(np.argmin(vals))
        raise ValueError(f"V must be non-negative at the observed entries; got {float(vals[e])!r} "
                         f"at ({int(rows[e])}, {int(cols[e])})")
    return rows, cols, vals, shape


def split_observed(rows, cols, vals, fraction, seed=None):
    """Split observed entries at random into training and validation parts.

    Returns ``(train, valid)``, each a ``(rows, cols, vals)`` tuple; the
    validation part holds ``round(fraction * nnz)`` entries (at least 1).
    """
    if not isinstance(fraction, numbers.Real) or isinstance(fraction, bool):
        raise TypeError(f"validation must be None, a fraction in (0, 1) or (rows, cols, vals); got {fraction!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1); got {fraction!r}")
    nnz = rows.shape[0]
    n_val = max(1, int(round(fraction * nnz)))
    if n_val >= nnz:
        raise ValueError(f"validation={fraction!r} leaves no training entry out of {nnz} observed")
    perm = check_seed(seed).permutation(nnz)
    va, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return (rows[tr], cols[tr], vals[tr]), (rows[va], cols[va], vals[va])


def rmse(W, H, rows, cols, vals):
    """Root mean squared error of ``W H`` at the entries ``(rows, cols)``.

    ``W`` (m, k), ``H`` (k, n); never forms the m x n product.
    """
    Ht = np.ascontiguousarray(np.asarray(H).T)
    W = np.ascontiguousarray(W)
    n = len(rows)
    if n == 0:
        raise ValueError("rmse needs at least one entry; got 0")
    return math.sqrt(masked_sse(np.asarray(rows, np.int32), np.asarray(cols, np.int32),
                                np.asarray(vals), W, Ht) / n)


def masked_block_ceilings(W, H, lam):
    r"""Entry-wise step ceilings ``(c_W, c_H)``.

    ``c_W = 2 / (max_j ||h_j||^2 + lam)`` (row update of entry (i, j): curvature
    ``||h_j||^2 + lam``), ``c_H = 2 / (max_i ||w_i||^2 + lam)``. ``W`` (m, k),
    ``H`` (k, n). Infinite when the curvature is 0.
    """
    return _ceilings(np.ascontiguousarray(W), np.ascontiguousarray(np.asarray(H).T), lam)


def masked_ceiling(W, H, lam):
    """The entry-wise SGD stability ceiling ``min(c_W, c_H)`` (see module docstring)."""
    return min(masked_block_ceilings(W, H, lam))


def _ceilings(W, Ht, lam, solver="entry"):
    if solver == "rows":
        return 2.0, 2.0
    LW = row_sqnorms_max(Ht) + lam
    LH = row_sqnorms_max(W) + lam
    return (2.0 / LW if LW > 0 else math.inf), (2.0 / LH if LH > 0 else math.inf)


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------
#: Target size in bytes of one bin's factor rows in the entry solver's grid.
CELL_BYTES = 256 * 1024


class _Chunks:
    """Grid of row bins x column bins; chunks of at most ``bsize`` entries per cell."""

    def __init__(self, rows, cols, shape, row_bytes, bsize):
        m, n = shape
        R = max(1, -(-m * row_bytes // CELL_BYTES))
        C = max(1, -(-n * row_bytes // CELL_BYTES))
        cell = (rows.astype(np.int64) * R // m) * C + (cols.astype(np.int64) * C // n)
        self.order = np.argsort(cell, kind="stable")  # keeps the shuffled order within a cell
        starts = np.searchsorted(cell[self.order], np.arange(R * C + 1))
        ptr, first, count = [], [], []
        for c in range(R * C):
            a, b = starts[c], starts[c + 1]
            first.append(len(ptr))
            cuts = list(range(a, b, bsize))
            ptr.extend(cuts)
            count.append(len(cuts))
        ptr.append(len(rows))
        self.ptr = np.asarray(ptr, dtype=np.int64)
        self.first = np.asarray(first, dtype=np.int64)
        self.count = np.asarray(count, dtype=np.int64)
        self.grid = (R, C)

    def epoch_order(self, rng):
        """Cells in random order; within each, its chunks in random order."""
        parts = [self.first[c] + rng.permutation(self.count[c])
                 for c in rng.permutation(len(self.first)) if self.count[c]]
        return np.concatenate(parts)


def _check_real(name, value, *, positive=False, allow_none=False, upper=None):
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} and finite, got {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be <= {upper}, got {value!r}")
    return value


def _check_int(name, value, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _init_factors(shape, k, vals, dt, rng, W0, H0):
    m, n = shape
    if W0 is not None or H0 is not None:
        if W0 is None or H0 is None:
            raise ValueError("give both W0 and H0 (custom init), not only one")
        W0, H0 = np.asarray(W0, dtype=dt), np.asarray(H0, dtype=dt)
        if W0.shape != (m, k):
            raise ValueError(f"W0 must have shape {(m, k)}; got {W0.shape}")
        if H0.shape != (k, n):
            raise ValueError(f"H0 must have shape {(k, n)}; got {H0.shape}")
        if not (np.isfinite(W0).all() and np.isfinite(H0).all()) or W0.min() < 0 or H0.min() < 0:
            raise ValueError("W0 and H0 must be finite and non-negative")
        return np.array(W0, dtype=dt, order="C"), np.array(H0.T, dtype=dt, order="C")
    # entries U(0, 2a) with k a^2 = mean(v): E[w_i . h_j] matches the observed mean
    a = math.sqrt(max(float(vals.mean()), 1e-12) / k)
    W = (2 * a * rng.random((m, k))).astype(dt)
    Ht = (2 * a * rng.random((n, k))).astype(dt)
    return W, Ht


def fit_masked(V, rank, *, mask=None, missing=None, schedule="auto", epochs=50, lam=0.01,
               seed=None, solver="entry", adaptive=False, validation=None,
               schedule_on="train", W0=None, H0=None, clip_lr=True, kappa=0.9, tol=1e-4,
               n_iter_no_change=5, max_time=None, callback=None, guard=True,
               block_size=256) -> FitResult:
    r"""Masked NMF: fit ``W H`` (W, H >= 0) to the observed entries of ``V`` only.

    Parameters
    ----------
    V : ndarray (m, n) or scipy.sparse matrix
        Data; see :func:`observed_entries` for ``mask`` / ``missing``.
    rank : int
        ``k``.
    mask : bool ndarray or scipy.sparse (m, n), optional
        True = observed.
    missing : {None, "nan", "unobserved"}
        Masked mode when no ``mask`` is given.
    schedule : as in :func:`nmf_sched.fit`, default "auto"
        Global LR (absolute step size of the entry step), one tick per epoch.
    epochs : int, default 50
        Passes over the training entries.
    lam : float, default 0.01
        Per-entry L2 regularization :math:`\lambda` on W and H.
    seed : None, int or Generator
        Same seed, bit-identical factors (init, split, visiting orders).
    solver : {"entry", "rows"}
        ``"entry"``: entry-wise projected SGD over shuffled observed entries
        (LR absolute, ceiling :func:`masked_ceiling`). ``"rows"``: each epoch
        one Gauss–Seidel sweep of masked projected coordinate descent on every
        row of W (each row's own k x k Gram over its observed entries), then on
        every column of H (:func:`nmf_sched.kernels.masked.cd_rows_masked`);
        not stochastic; LR dimensionless, ``1`` = exact coordinate
        minimization, ceiling 2. ``adaptive`` does not apply to it.
    adaptive : bool, default False
        LIBMF's per-row adaptive step (AdaGrad-like, one accumulator per row of
        W and per column of H), the baseline rule; the schedule's LR is then
        its base ``eta``.
    validation : None, float in (0, 1) or (rows, cols, vals)
        Hold out this fraction of the observed entries (seeded), or these
        entries, and report the validation RMSE per epoch.
    schedule_on : {"train", "validation"}
        The loss the schedule (and ``tol``) watches: the training objective, or
        ``0.5 * sum of squared validation errors``.
    W0, H0 : arrays (m, k), (k, n), optional
        Custom initialization (default: uniform, scaled to the observed mean).
    clip_lr, kappa : bool, float
        Step ``min(lr, kappa * ceiling)`` with :func:`masked_ceiling`.
    tol, n_iter_no_change : float, int
        Stop when the best watched loss improved by at most ``tol`` (relative)
        over the last ``n_iter_no_change`` epochs (``tol=0`` disables).
    max_time : float, optional
        Wall-clock budget (checked each epoch).
    callback : callable ``(record, W, H) -> bool``, optional
        Called each epoch; a truthy return stops.
    block_size : int, default 256
        Visiting order of ``solver="entry"`` (LIBMF-like, for cache locality):
        the training entries are shuffled once (seeded) and grouped into the
        cells of a grid of contiguous row bins x column bins, each bin's factor
        rows about :data:`CELL_BYTES`; each epoch visits the cells in a fresh
        random order and, within a cell, chunks of ``block_size`` entries in a
        fresh random order.
    guard : bool
        On a non-finite or exploding loss restore the last good factors and
        halve the step (at most 6 times); otherwise stop with "diverged".

    Returns
    -------
    FitResult
        ``W`` (m, k), ``H`` (k, n), ``trace`` (per epoch: ``lr``, ``step``
        size taken, ``ceiling``, ``loss``, ``train_rmse``, ``val_rmse``, ...),
        ``bound`` = ``{"ceiling", "ceiling_W", "ceiling_H"}`` at the end,
        ``settings`` (including ``empty_rows`` / ``empty_cols``).
    """
    t0 = time.perf_counter()
    rows, cols, vals, shape = observed_entries(V, mask=mask, missing=missing)
    m, n = shape
    k = check_rank(rank, shape)
    epochs = _check_int("epochs", epochs)
    lam = _check_real("lam", lam)
    kappa = _check_real("kappa", kappa, positive=True)
    tol = _check_real("tol", tol)
    n_iter_no_change = _check_int("n_iter_no_change", n_iter_no_change)
    max_time = _check_real("max_time", max_time, positive=True, allow_none=True)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {list(SOLVERS)}, got {solver!r}")
    if schedule_on not in ("train", "validation"):
        raise ValueError(f"schedule_on must be 'train' or 'validation', got {schedule_on!r}")
    for name, val in (("adaptive", adaptive), ("clip_lr", clip_lr), ("guard", guard)):
        if not isinstance(val, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {val!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    if adaptive and solver == "rows":
        raise ValueError("adaptive=True is LIBMF's rule for solver='entry'; got solver='rows'")
    dt = vals.dtype
    rng = check_seed(seed)
    split_rng, init_rng, run_rng = rng.spawn(3)

    if validation is None:
        train, valid = (rows, cols, vals), None
        if schedule_on == "validation":
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
    tr_r, tr_c, tr_v = train
    nnz = tr_r.shape[0]
    bsize = _check_int("block_size", block_size)
    # shuffle once (seeded), then group into the cells of a grid of row/column bins
    shuf = run_rng.permutation(nnz)
    tr_r, tr_c, tr_v = tr_r[shuf], tr_c[shuf], tr_v[shuf]
    chunks = _Chunks(tr_r, tr_c, shape, k * dt.itemsize, bsize)
    o = chunks.order
    tr_r, tr_c, tr_v = (tr_r[o].astype(np.int32), tr_c[o].astype(np.int32),
                        np.ascontiguousarray(tr_v[o]))
    if solver == "rows":
        csr = sp.csr_array((tr_v, (tr_r, tr_c)), shape=shape)
        csc = sp.csr_array((tr_v, (tr_c, tr_r)), shape=(n, m))
        csr.sum_duplicates()
        csc.sum_duplicates()
    if valid is not None:
        valid = (valid[0].astype(np.int32), valid[1].astype(np.int32), valid[2])

    cnt_r = np.bincount(tr_r, minlength=m)
    cnt_c = np.bincount(tr_c, minlength=n)
    empty_rows, empty_cols = np.flatnonzero(cnt_r == 0), np.flatnonzero(cnt_c == 0)
    if empty_rows.size or empty_cols.size:
        warnings.warn(f"{empty_rows.size} row(s) and {empty_cols.size} column(s) of V have no observed "
                      "training entry; their factor rows are set to 0 (see settings['empty_rows'/"
                      "'empty_cols'])", UserWarning, stacklevel=2)

    W, Ht = _init_factors(shape, k, tr_v, dt, init_rng, W0, H0)
    W[empty_rows] = 0
    Ht[empty_cols] = 0
    vsq = float(np.dot(tr_v.astype(np.float64), tr_v))

    def objective(W, Ht):
        sse = masked_sse(tr_r, tr_c, tr_v, W, Ht)
        reg = 0.5 * lam * (float(cnt_r @ np.einsum("ik,ik->i", W, W, dtype=np.float64))
                           + float(cnt_c @ np.einsum("jk,jk->j", Ht, Ht, dtype=np.float64)))
        return 0.5 * sse + reg, sse

    def evaluate(W, Ht):
        loss, sse = objective(W, Ht)
        rec = dict(loss=loss, rel_error=math.sqrt(sse / vsq) if vsq > 0 else math.sqrt(sse),
                   train_rmse=math.sqrt(sse / nnz), val_rmse=math.nan)
        watched = loss
        if valid is not None:
            vsse = masked_sse(valid[0], valid[1], valid[2], W, Ht)
            rec["val_rmse"] = math.sqrt(vsse / valid[0].shape[0])
            if schedule_on == "validation":
                watched = 0.5 * vsse
        return rec, watched

    from .api import resolve_schedule  # lazy: api may dispatch here

    sched = resolve_schedule(schedule, total=epochs)
    needs = getattr(sched, "needs", ()) or ()
    cW, cH = _ceilings(W, Ht, lam, solver)
    ceiling = min(cW, cH)
    rec, watched = evaluate(W, Ht)

    def info(epoch, loss, cW, cH, tick):
        c = min(cW, cH)
        extras = {"ceilings": {"W": cW, "H": cH}} if "ceilings" in needs else {}
        return StepInfo(step=epoch * nnz, epoch=epoch, loss=loss,
                        ceiling=c if math.isfinite(c) else None, extras=extras, tick=tick)

    state = sched.update(sched.init(), info(0, watched, cW, cH, 0))
    trace = Trace()
    trace.append(epoch=0, step=0, lr=math.nan, lr_W=math.nan, lr_H=math.nan, step_size=math.nan,
                 step_W=math.nan, step_H=math.nan, ceiling=ceiling, ceiling_W=cW, ceiling_H=cH,
                 **rec, seconds=time.perf_counter() - t0, retries=0)
    GW = np.ones(m, dtype=np.float64)
    GH = np.ones(n, dtype=np.float64)
    cap = 1.0 if clip_lr else math.inf
    damp, retries, max_retries = 1.0, 0, 6
    best, history = watched, [watched]
    loss0 = rec["loss"]
    stop_reason = "max_epochs"
    epoch = 0
    while epoch < epochs:
        lr = sched.lr(state)
        if isinstance(lr, dict):
            vals_ = [float(np.min(v)) for v in lr.values()]
            lr = min(vals_)  # one global LR: the most cautious block
        lr = float(lr)
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"schedule returned lr={lr!r} at epoch {epoch}; it must be finite and >= 0")
        eta = lr if not (math.isfinite(cap) and math.isfinite(ceiling)) else min(lr, cap * kappa * ceiling)
        eta *= damp
        backup = (W.copy(), Ht.copy(), GW.copy(), GH.copy())
        blocks = chunks.epoch_order(run_rng)
        if solver == "rows":
            cd_rows_masked(csr.indptr, csr.indices, csr.data, W, Ht, eta, lam, 1)
            cd_rows_masked(csc.indptr, csc.indices, csc.data, Ht, W, eta, lam, 1)
        elif adaptive:
            sgd_entries_adaptive(tr_r, tr_c, tr_v, blocks, chunks.ptr, W, Ht, eta, lam, GW, GH)
        else:
            sgd_entries(tr_r, tr_c, tr_v, blocks, chunks.ptr, W, Ht, eta, lam)
        rec, watched = evaluate(W, Ht)
        if not math.isfinite(rec["loss"]) or rec["loss"] > 100.0 * max(loss0, 1e-300):
            if guard and retries < max_retries:
                W, Ht, GW, GH = backup
                retries += 1
                damp *= 0.5
                cap = 1.0
                continue
            stop_reason = "diverged"
            W, Ht = backup[0], backup[1]
            break
        epoch += 1
        cW, cH = _ceilings(W, Ht, lam, solver)
        ceiling = min(cW, cH)
        row = dict(epoch=epoch, step=epoch * nnz, lr=lr, lr_W=lr, lr_H=lr, step_size=eta,
                   step_W=eta, step_H=eta, ceiling=ceiling, ceiling_W=cW, ceiling_H=cH, **rec,
                   seconds=time.perf_counter() - t0, retries=retries)
        trace.append(**row)
        state = sched.update(state, info(epoch, watched, cW, cH, epoch))
        history.append(watched)
        best = min(best, watched)
        if callback is not None and callback(trace[-1], W, Ht.T):
            stop_reason = "callback"
            break
        if tol > 0 and len(history) > n_iter_no_change:
            old_best = min(history[:-n_iter_no_change])
            if old_best - best <= tol * abs(best):
                stop_reason = "tol"
                break
        if max_time is not None and time.perf_counter() - t0 > max_time:
            stop_reason = "max_time"
            break
    final = trace[-1]
    cW, cH = _ceilings(W, Ht, lam, solver)
    return FitResult(
        W=W, H=np.ascontiguousarray(Ht.T), trace=trace, stop_reason=stop_reason, schedule=sched,
        schedule_state=state, loss=final["loss"], rel_error=final["rel_error"], n_epochs=epoch,
        n_steps=epoch * nnz, seconds=time.perf_counter() - t0,
        bound={"ceiling": min(cW, cH), "ceiling_W": cW, "ceiling_H": cH, "lam": lam},
        settings=dict(rank=k, schedule=repr(sched), epochs=epochs, lam=lam, solver=solver,
                      adaptive=bool(adaptive), validation=validation if not isinstance(validation, tuple) else "entries",
                      schedule_on=schedule_on, clip_lr=bool(clip_lr), kappa=kappa, tol=tol,
                      seed=seed if not hasattr(seed, "spawn") else None, dtype=str(dt),
                      grid=list(chunks.grid) if solver == "entry" else None,
                      n_observed=int(rows.shape[0]), n_train=int(nnz),
                      n_valid=0 if valid is None else int(valid[0].shape[0]),
                      empty_rows=empty_rows, empty_cols=empty_cols,
                      val_rmse=final["val_rmse"], train_rmse=final["train_rmse"]))
