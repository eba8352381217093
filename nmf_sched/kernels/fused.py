r"""The compiled parts of one ``cd`` minibatch step of the row model (dense and CSR rows).

Between the products, everything that
:meth:`nmf_sched.engine.rows.RowModel.step` does for the ``cd`` preconditioner without
penalties, noise or clipping runs in two compiled calls (:mod:`nmf_sched.engine.fused`
drives them):

* :func:`cd_step_W`: the batch loss ``f_B = (||V_B||^2 - 2<W_B, P> + <G_B^{old}, HH^T>)/2``
  (float64) and the divergence check (nothing changes when it fails), the W ceiling, its
  step size, the Gauss–Seidel sweep of the rows of ``W_B`` (:func:`nmf_sched.kernels.cpu.
  _cd_rows`, the loop the Python step calls) and the write-back ``W[rows] = W_B``;
* :func:`cd_step_H`: ``G += G_B - G_B^{old}``, ``A += Q`` (the epoch's ``V^T W``), the H
  ceiling ``2 min_c G_cc / (s G_{B,cc})`` (times the minibatch factor), its step size and
  the sweep of the rows of ``H^T``;
* :func:`gather_rows_parallel`: the dense batch rows, copied by several threads.

The products ``V_B H^T``, ``V_B^T W_B`` and the k x k Grams stay with numpy's BLAS:
``np.dot`` inside a kernel calls scipy's OpenBLAS, a second thread pool next to numpy's,
and the two pools spinning on the same cores made one 256 x 2000 x 20 product 12 ms instead
of 0.35 ms (measured on 2 cores; equal with one BLAS thread).
The sweeps split their rows into ``threads`` contiguous chunks run under ``prange``
(rows are independent, so every chunk count gives the same result); ``threads=1`` runs
serially.
"""
import numpy as np
from numba import prange

from ._jit import jit, jit_parallel
from .cpu import _cd_rows, gather_rows

__all__ = ["gather_rows_parallel", "cd_step_W", "cd_step_H", "cd_block", "RES_FIELDS"]

#: The slots of the kernels' float64 result vector.
RES_FIELDS = ("fB", "cW", "cH", "eta_W", "eta_H", "ok")


@jit_parallel
def _gather_par(V, idx, out, threads):
    b = idx.shape[0]
    chunk = (b + threads - 1) // threads
    for t in prange(threads):
        for i in range(t * chunk, min(b, (t + 1) * chunk)):
            out[i, :] = V[idx[i], :]


def gather_rows_parallel(V, idx, out, threads=2):
    """``out[:] = V[idx]`` with the rows split among ``threads`` threads (one thread: the
    serial :func:`nmf_sched.kernels.cpu.gather_rows`, no thread pool)."""
    if threads <= 1:
        return gather_rows(V, idx, out)
    _gather_par(V, idx, out, int(threads))
    return out


@jit
def _safe_diag(A, out):
    """:func:`nmf_sched.bounds.safe_diag` (float64) into ``out``."""
    k = A.shape[0]
    mn, mx = np.inf, -np.inf
    for c in range(k):
        d = np.float64(A[c, c])
        out[c] = d
        mn = min(mn, d)
        mx = max(mx, d)
    if k > 0 and mn > 0.0:
        return
    floor = max(mx, 1.0) * 1e-12
    for c in range(k):
        if not out[c] > 0.0:
            out[c] = floor


@jit
def _eta(lr, ceiling, capk, damp):
    """:meth:`nmf_sched.engine.control.StepControl.eta` for a scalar ``lr`` (``capk`` =
    ``cap * kappa``)."""
    if np.isfinite(capk) and np.isfinite(ceiling):
        lr = min(lr, capk * ceiling)
    return lr * damp


@jit_parallel
def _sweep_par(X, A, P, lr, scale, diag, noise, inf, zero, threads):
    r = X.shape[0]
    chunk = (r + threads - 1) // threads
    for t in prange(threads):
        a = t * chunk
        e = min(r, a + chunk)
        if a < e:
            _cd_rows(X[a:e], A, P[a:e], lr, scale, diag, noise, False, inf, inf, zero, zero)


@jit
def _sweep(X, A, P, lrbuf, diag, threads):
    """``_cd_rows`` on ``threads`` contiguous row chunks (identical to one call; no thread
    pool runs for ``threads=1``); ``lrbuf`` holds the step size, the scale, inf and 0 in the
    dtype of ``X``."""
    noise = np.zeros((1, 1), dtype=X.dtype)
    lr, scale, inf, zero = lrbuf[0], lrbuf[1], lrbuf[2], lrbuf[3]
    if threads <= 1 or X.shape[0] < 2 * threads:
        _cd_rows(X, A, P, lr, scale, diag, noise, False, inf, inf, zero, zero)
    else:
        _sweep_par(X, A, P, lr, scale, diag, noise, inf, zero, threads)


@jit
def _vdot64(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            s += np.float64(a[i, j]) * np.float64(b[i, j])
    return s


@jit
def cd_step_W(W, rows, WB, HHt, GBo, P, row_sq, vB, lr_W, capk, damp, scale, f, limit, threads,
              res, lrbuf, diag, sweep, rW=1.0):
    """Given ``WB = W[rows]``, ``HHt``, ``GBo = WB^T WB`` and ``P = V_B H^T``: the batch loss
    and its check (on failure ``res[5] = 0`` and nothing changes), the W step size, then
    (``sweep``) the sweep of ``WB`` and ``W[rows] = WB``. Without ``sweep``, ``lrbuf`` and
    ``diag`` hold the sweep's arguments for :func:`cd_block` and the caller writes back.
    ``vB``: ``||V_B||^2``, or negative to sum the squared row norms ``row_sq`` of the rows.
    ``rW < 1``: the noise-aware fraction of the W ceiling (:mod:`nmf_sched.engine.noise`)."""
    k = WB.shape[1]
    if vB < 0.0:
        vB = 0.0
        for r in range(rows.shape[0]):
            vB += row_sq[rows[r]]
    fB = 0.5 * (vB - 2.0 * _vdot64(WB, P) + _vdot64(GBo, HHt))
    res[0] = fB
    if not np.isfinite(fB) or fB * scale > limit:
        res[5] = 0.0
        return
    res[5] = 1.0
    cW = 2.0 * f
    if rW < 1.0:
        cW = cW * rW
    eta_W = _eta(lr_W, cW, capk, damp)
    res[1] = cW
    res[3] = eta_W
    dscr = np.empty(k, dtype=np.float64)
    _safe_diag(HHt, dscr)
    for c in range(k):
        diag[c] = dscr[c]
    lrbuf[0] = eta_W
    lrbuf[1] = 1.0
    lrbuf[2] = np.inf
    lrbuf[3] = 0.0
    if not sweep:
        return
    _sweep(WB, HHt, P, lrbuf, diag, threads)
    for r in range(rows.shape[0]):
        W[rows[r], :] = WB[r, :]


@jit
def cd_step_H(Ht, G, GB, GBo, Q, Aacc, lr_H, capk, damp, scale, f, threads, res, lrbuf, diag,
              sweep, capH=np.inf):
    """Given ``GB = W_B^T W_B`` (new ``W_B``) and ``Q = V_B^T W_B``: ``G += GB - GBo``,
    ``Aacc += Q``, the H ceiling, its step size and (``sweep``) the sweep of ``Ht``; without
    ``sweep``, ``lrbuf`` and ``diag`` hold the sweep's arguments for :func:`cd_block`.
    ``capH``: the noise-aware cap on the H ceiling (:mod:`nmf_sched.engine.noise`; inf: none)."""
    k = GB.shape[0]
    n = Q.shape[0]
    for a in range(k):
        for b in range(k):
            G[a, b] += GB[a, b] - GBo[a, b]
    for j in range(n):
        for c in range(k):
            Aacc[j, c] += Q[j, c]
    dscr = np.empty(k, dtype=np.float64)
    _safe_diag(G, dscr)
    lrbuf[1] = scale
    lrbuf[2] = np.inf
    lrbuf[3] = 0.0
    cH = np.inf
    for c in range(k):
        dA = np.float64(lrbuf[1] * GB[c, c])
        if dA > 0.0:
            cH = min(cH, 2.0 * (dscr[c] / dA))
    cH = cH * f
    if np.isfinite(capH):
        cH = min(cH, capH)
    eta_H = _eta(lr_H, cH, capk, damp)
    res[2] = cH
    res[4] = eta_H
    for c in range(k):
        diag[c] = dscr[c]
    lrbuf[0] = eta_H
    if sweep:
        _sweep(Ht, GB, Q, lrbuf, diag, threads)


@jit
def cd_block(X, Y, A, P, c0, lrbuf, diag, D):
    r"""Coordinates ``c0 .. c0 + kb - 1`` of the sweep of :func:`nmf_sched.kernels.cpu.cd_rows`
    (no noise, clipping or penalties) given ``Y = X A[:, c0:c0+kb]`` at the block's start:
    coordinate ``c`` adds the changes ``D`` of the block's earlier coordinates,
    ``(xA)_c = Y_c + \sum_{c0 <= d < c} D_d A_{dc}``, the same Gauss–Seidel step as the
    unblocked loop (up to rounding) with BLAS doing ``k/kb`` of the ``k`` dot products' work.
    ``lrbuf[:2]``: the step size and the scale; ``D``: scratch (r x kb)."""
    r = X.shape[0]
    kb = Y.shape[1]
    lr, scale = lrbuf[0], lrbuf[1]
    for cc in range(kb):
        c = c0 + cc
        step = lr / diag[c]
        for i in range(r):
            acc = np.float64(Y[i, cc])
            for dd in range(cc):
                acc += D[i, dd] * A[c0 + dd, c]
            xc = X[i, c]
            x = xc - step * (scale * (acc - P[i, c]))
            X[i, c] = x if x > 0.0 else 0.0
            D[i, cc] = X[i, c] - xc
