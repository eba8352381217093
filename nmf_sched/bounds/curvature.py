"""Curvatures of the factors and the scale rules: block, batch and entry curvatures,
component balancing and the initialization rule (bounds/THEORY.md sections 2.1, 2.3, 3.4, 6).
"""
from __future__ import annotations

import math

import numpy as np

from .ceilings import lmax

__all__ = ["block_curvatures", "batch_curvatures", "entry_curvatures", "balance_columns",
           "rescale_balance"]


# ---------------------------------------------------------------------------
# curvature of the factors (cheap: k x k, or one pass over rows of W)
# ---------------------------------------------------------------------------
def block_curvatures(W, H) -> tuple[float, float]:
    """``(L_W, L_H) = (lambda_max(H H^T), lambda_max(W^T W))`` (§1)."""
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    return lmax(H @ H.T), lmax(W.T @ W)


def batch_curvatures(W, batch_size, *, n_batches=64, seed=0) -> dict:
    r"""Curvature of the scaled minibatch H step over random row batches (§2).

    Draws batches as the solver does (a random permutation cut into chunks of
    ``batch_size``; several permutations if ``n_batches`` asks for more) and
    returns statistics of :math:`L_H^B = s\lambda_{\max}(W_B^\top W_B)`.

    Returns
    -------
    dict
        ``mean`` and ``max`` over the sampled batches (empirical), ``bound``:
        a worst case over *every* batch of that size,
        :math:`s\min(\lambda_{\max}(W^\top W), \sum_{\text{top } b}\|w_i\|^2)`,
        ``full``: :math:`\lambda_{\max}(W^\top W)`, ``n``: batches sampled,
        ``scale``: ``m/b``.
    """
    W = np.asarray(W, dtype=np.float64)
    m = W.shape[0]
    b = int(min(max(1, batch_size), m))
    s = m / b
    full = lmax(W.T @ W)
    rn = np.einsum("ij,ij->i", W, W)
    topb = float(np.sum(np.sort(rn)[m - b:]))
    bound = s * min(full, topb)
    if b >= m:
        return {"mean": full, "max": full, "bound": full, "full": full, "n": 1, "scale": 1.0,
                "values": [full]}
    rng = np.random.default_rng(seed)
    vals = []
    while len(vals) < n_batches:
        perm = rng.permutation(m)
        for a in range(0, m, b):
            idx = perm[a:a + b]
            WB = W[idx]
            # the last, short batch of a permutation has its own scale m/|B|
            vals.append((m / idx.size) * lmax(WB.T @ WB))
            if len(vals) >= n_batches:
                break
    v = np.asarray(vals)
    rn_sorted = np.sort(rn)
    # a short last batch (size r = m mod b) has scale m/r: include its worst case
    r = m % b
    if r:
        bound = max(bound, (m / r) * min(full, float(np.sum(rn_sorted[m - r:]))))
    return {"mean": float(v.mean()), "max": float(v.max()), "bound": float(bound), "full": full,
            "n": int(v.size), "scale": s, "values": v.tolist()}


def entry_curvatures(V, W, H) -> dict:
    r"""Curvatures of single-entry SGD steps on the observed entries (§2.3).

    For one entry ``(i, j)`` with residual ``r = w_i.h_j - v_ij``, the step on
    ``w_i`` has curvature ``||h_j||^2``, on ``h_j`` ``||w_i||^2``, and the joint
    step on ``(w_i, h_j)`` at most ``||w_i||^2 + ||h_j||^2 + |r|``. An
    unbiased step that samples each entry with probability ``p`` scales these
    by ``1/p``. Only the stored entries of a sparse ``V`` are read
    (O(nnz k)); for dense ``V`` the residual bound uses ``max|V| + max w.h``.

    Returns
    -------
    dict
        ``w`` = max_j ||h_j||^2, ``h`` = max_i ||w_i||^2, ``joint`` (max over
        observed entries), and the ceilings ``2/curvature``.
    """
    import scipy.sparse as sp

    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    wn = np.einsum("ij,ij->i", W, W)
    hn = np.einsum("ij,ij->j", H, H)
    if sp.issparse(V):
        A = V.tocsr()
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        cols = A.indices
        joint = 0.0
        step = 1 << 18
        for a in range(0, rows.size, step):
            r, c = rows[a:a + step], cols[a:a + step]
            pred = np.einsum("ij,ji->i", W[r], H[:, c])
            res = np.abs(pred - A.data[a:a + step])
            joint = max(joint, float(np.max(wn[r] + hn[c] + res)) if r.size else 0.0)
    else:
        from ..data import row_chunks  # noqa: PLC0415

        vmax = 0.0
        for _, _, blk in row_chunks(V):
            vmax = max(vmax, float(np.max(blk)))
        # |w.h - v| <= max(w.h, v) for non-negative entries
        res = max(vmax, float(np.sqrt(wn.max() * hn.max())))
        joint = float(wn.max() + hn.max() + res)
    cw, ch = float(hn.max()), float(wn.max())
    inv = lambda x: 2.0 / x if x > 0 else math.inf  # noqa: E731
    return {"w": cw, "h": ch, "joint": joint,
            "ceiling_w": inv(cw), "ceiling_h": inv(ch), "ceiling_joint": inv(joint)}


def balance_columns(W, Ht):
    r"""Balance the components in place: ``||w_j|| = ||h_j||``, ``W H`` unchanged (§3.4).

    ``w_j *= d_j``, ``h_j /= d_j`` with :math:`d_j = \sqrt{\|h_j\|/\|w_j\|}`; O((m+n)k).

    Parameters
    ----------
    W : ndarray (m, k)
        Modified in place.
    Ht : ndarray (n, k)
        ``H`` transposed (the solver's layout), modified in place.

    Returns
    -------
    ndarray (k,)
        The factors ``d`` (1 where a column is zero or non-finite).
    """
    wn = np.sqrt(np.einsum("ij,ij->j", W, W, dtype=np.float64))
    hn = np.sqrt(np.einsum("ij,ij->j", Ht, Ht, dtype=np.float64))
    ok = (wn > 0) & (hn > 0) & np.isfinite(wn) & np.isfinite(hn)
    d = np.ones_like(wn)
    d[ok] = np.sqrt(hn[ok] / wn[ok])
    W *= d.astype(W.dtype)
    Ht /= d.astype(Ht.dtype)
    return d


def rescale_balance(V, W, H, *, vsq=None, VHt=None):
    r"""The initialization rule of §6: optimal scale, then balanced columns.

    1. Scale: multiply ``W H`` by :math:`\alpha^* = \langle V, WH\rangle /
       \|WH\|_F^2` (the best scalar; both from k x k / m x k products), by
       multiplying ``W`` and ``H`` each by :math:`\sqrt{\alpha^*}`.
    2. Balance: for each component ``j``, ``w_j *= d_j``, ``h_j /= d_j`` with
       :math:`d_j = \sqrt{\|h_j\|/\|w_j\|}`, so ``||w_j|| = ||h_j||``
       (``W H`` unchanged).

    After it, :math:`\|V - WH\|^2 = \|V\|^2 - \alpha^{*2}\|WH\|^2 \le \|V\|^2`
    (the residual never exceeds the data) and the two block curvatures are of
    the same order, which maximizes ``min(2/L_W, 2/L_H)`` over the rescalings
    of a rank-one factor pair and keeps both ceilings meaningful in general.

    ``VHt``: the product ``V H^T`` when the caller has it (then ``V`` is not read).

    Returns
    -------
    W, H : new arrays (same dtypes), and ``alpha`` (float).
    """
    from ..objective import v_dot

    dt = W.dtype
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    if VHt is None:  # V H^T (m x k); a caller holding V elsewhere (Dask) passes it
        VHt = v_dot(V, np.ascontiguousarray(H.T))
    VHt = np.asarray(VHt, dtype=np.float64)
    cross = float(np.vdot(W, VHt))
    quad = float(np.vdot(W.T @ W, H @ H.T))
    alpha = cross / quad if quad > 0 else 1.0
    if alpha <= 0 or not math.isfinite(alpha):
        alpha = 1.0
    r = math.sqrt(alpha)
    W = W * r
    H = H * r
    wn = np.linalg.norm(W, axis=0)
    hn = np.linalg.norm(H, axis=1)
    ok = (wn > 0) & (hn > 0)
    d = np.ones_like(wn)
    d[ok] = np.sqrt(hn[ok] / wn[ok])
    W = W * d
    H = H / d[:, None]
    return np.ascontiguousarray(W, dtype=dt), np.ascontiguousarray(H, dtype=dt), float(alpha)
