r"""Masked NMF (missing entries, matrix completion): the observed entries and their ceilings.

The data side of masked NMF: :func:`observed_entries` (mask, NaN or the stored entries of a
sparse matrix), :func:`split_observed`, :func:`rmse`, the entry-step ceilings, and the
visiting-order grid. The fit is :func:`nmf_sched.fit_masked` (the model in the one engine is
:mod:`nmf_sched.engine.entries`).

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

import numpy as np
import scipy.sparse as sp

from .data import check_seed
from .kernels.masked import masked_sse, row_sqnorms_max

__all__ = ["observed_entries", "split_observed", "rmse", "masked_ceiling",
           "masked_block_ceilings", "MISSING_MODES", "SOLVERS"]

MISSING_MODES = (None, "nan", "unobserved")
from .config import MASKED_SOLVERS as SOLVERS  # noqa: E402
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
