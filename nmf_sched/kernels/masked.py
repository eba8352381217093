r"""Numba loops of masked (entry-wise) NMF: only the loops that need compiling.

The observed entries are given in coordinate form ``rows, cols, vals`` (length
``nnz``); the factors are ``W`` (m, k) and ``Ht = H^T`` (n, k), both C-ordered so
that one entry touches two contiguous rows. The caller arranges the entries
in chunks (chunk ``b`` is ``ptr[b]:ptr[b+1]``) and each epoch visits the chunks
in the order ``blocks``, drawn from a seeded ``numpy.random.Generator`` (no
numba RNG), so a seed gives bit-identical factors. Streaming through chunks
keeps the memory access sequential; chunks of one entry each in a random order
is a full random permutation.

Entry step (projected SGD with per-entry L2 regularization), for entry
``(i, j)`` with error :math:`e = v_{ij} - w_i \cdot h_j`, both rows updated from
their old values:

.. math::

    w_i &\leftarrow \Pi_+\big(w_i - \eta_i\,(-e\,h_j + \lambda w_i)\big) \\
    h_j &\leftarrow \Pi_+\big(h_j - \eta_j\,(-e\,w_i + \lambda h_j)\big)

With ``adaptive=False``, :math:`\eta_i = \eta_j = \eta` (the schedule's global
LR). With ``adaptive=True`` it is LIBMF's per-row rule [1]_:
:math:`\eta_i = \eta / \sqrt{G^W_i}` where :math:`G^W_i` starts at 1 and, after
each step on row ``i``, grows by the mean squared gradient entry
:math:`\tfrac1k\|g_{w_i}\|^2` (AdaGrad with one accumulator per row); the same
for the columns with :math:`G^H_j`.

References
----------
.. [1] W.-S. Chin, Y. Zhuang, Y.-C. Juan, C.-J. Lin, "A learning-rate schedule
   for stochastic gradient methods to matrix factorization", PAKDD 2015.
"""
from __future__ import annotations

import math

import numpy as np

from ._jit import jit

__all__ = ["sgd_entries", "sgd_entries_adaptive", "masked_sse", "row_sqnorms_max", "cd_rows_masked",
           "entry_loss_grad"]


@jit
def sgd_entries(rows, cols, vals, blocks, ptr, W, Ht, lr, lam):
    """One epoch of projected entry-wise SGD (global LR), chunks in the order ``blocks``.

    Returns the sum of squared errors met along the way (each error computed
    before its own step: the "online" training loss of the epoch).
    """
    k = W.shape[1]
    sse = 0.0
    for b in range(blocks.shape[0]):
        for e in range(ptr[blocks[b]], ptr[blocks[b] + 1]):
            i = rows[e]
            j = cols[e]
            pred = 0.0
            for c in range(k):
                pred += W[i, c] * Ht[j, c]
            err = vals[e] - pred
            sse += err * err
            for c in range(k):
                w = W[i, c]
                h = Ht[j, c]
                nw = w - lr * (lam * w - err * h)
                nh = h - lr * (lam * h - err * w)
                W[i, c] = nw if nw > 0.0 else 0.0
                Ht[j, c] = nh if nh > 0.0 else 0.0
    return sse


@jit
def sgd_entries_adaptive(rows, cols, vals, blocks, ptr, W, Ht, lr, lam, GW, GH):
    """One epoch of entry-wise SGD with LIBMF's per-row adaptive step.

    ``GW`` (m,) and ``GH`` (n,) are the accumulated mean squared gradients
    (start them at 1); they are updated in place. Returns the online SSE.
    """
    k = W.shape[1]
    sse = 0.0
    for b in range(blocks.shape[0]):
        for e in range(ptr[blocks[b]], ptr[blocks[b] + 1]):
            i = rows[e]
            j = cols[e]
            pred = 0.0
            for c in range(k):
                pred += W[i, c] * Ht[j, c]
            err = vals[e] - pred
            sse += err * err
            etaw = lr / math.sqrt(GW[i])
            etah = lr / math.sqrt(GH[j])
            gw2 = 0.0
            gh2 = 0.0
            for c in range(k):
                w = W[i, c]
                h = Ht[j, c]
                gw = lam * w - err * h
                gh = lam * h - err * w
                gw2 += gw * gw
                gh2 += gh * gh
                nw = w - etaw * gw
                nh = h - etah * gh
                W[i, c] = nw if nw > 0.0 else 0.0
                Ht[j, c] = nh if nh > 0.0 else 0.0
            GW[i] += gw2 / k
            GH[j] += gh2 / k
    return sse


@jit
def masked_sse(rows, cols, vals, W, Ht):
    """Sum over the given entries of ``(v_ij - w_i . h_j)^2`` (float64 accumulator)."""
    k = W.shape[1]
    sse = 0.0
    for e in range(rows.shape[0]):
        i = rows[e]
        j = cols[e]
        pred = 0.0
        for c in range(k):
            pred += W[i, c] * Ht[j, c]
        err = vals[e] - pred
        sse += err * err
    return sse


@jit
def row_sqnorms_max(X):
    """``max_i ||X[i]||^2`` for a C-ordered (rows, k) array."""
    best = 0.0
    for i in range(X.shape[0]):
        s = 0.0
        for c in range(X.shape[1]):
            s += X[i, c] * X[i, c]
        if s > best:
            best = s
    return best


@jit
def cd_rows_masked(indptr, indices, data, W, Ht, lr, lam, sweeps):
    r"""Masked projected coordinate descent on every row of ``W`` (``Ht`` fixed).

    Row ``i`` minimizes :math:`\tfrac12 w^\top G_i w - b_i^\top w` over
    :math:`w \ge 0`, with :math:`G_i = \sum_{j \in \Omega_i} h_j h_j^\top +
    \lambda |\Omega_i| I` and :math:`b_i = \sum_{j \in \Omega_i} v_{ij} h_j`
    (``indptr, indices, data``: CSR of the observed entries). Each of
    ``sweeps`` Gauss–Seidel sweeps takes, per coordinate,
    :math:`w_c \leftarrow \max(0, w_c - \eta\,(G_i w - b_i)_c / (G_i)_{cc})`;
    ``eta = 1`` is exact coordinate minimization, the ceiling is 2. Rows with no
    entry are left unchanged. Call it on the transposed problem for ``H``.
    """
    k = W.shape[1]
    G = np.zeros((k, k))
    b = np.zeros(k)
    for i in range(W.shape[0]):
        p0 = indptr[i]
        p1 = indptr[i + 1]
        if p1 == p0:
            continue
        G[:, :] = 0.0
        b[:] = 0.0
        for p in range(p0, p1):
            j = indices[p]
            v = data[p]
            for c in range(k):
                hc = Ht[j, c]
                b[c] += v * hc
                for d in range(c, k):
                    G[c, d] += hc * Ht[j, d]
        reg = lam * (p1 - p0)
        for c in range(k):
            G[c, c] += reg
            for d in range(c):
                G[c, d] = G[d, c]
        for _ in range(sweeps):
            for c in range(k):
                if G[c, c] <= 0.0:
                    continue
                g = -b[c]
                for d in range(k):
                    g += G[c, d] * W[i, d]
                nw = W[i, c] - lr * g / G[c, c]
                W[i, c] = nw if nw > 0.0 else 0.0


@jit
def entry_loss_grad(rows, cols, vals, blocks, ptr, W, Ht, lam, gW, gHt, want_grad):
    r"""Loss and (optionally) gradient of the entries of the chunks ``blocks``.

    :math:`f_U = \sum_{(i,j) \in U} \tfrac12 e_{ij}^2 + \tfrac{\lambda}{2}(\|w_i\|^2 + \|h_j\|^2)`
    with :math:`e_{ij} = v_{ij} - w_i \cdot h_j` (float64 accumulator). With ``want_grad``,
    :math:`\nabla_{w_i} f_U` and :math:`\nabla_{h_j} f_U` are *added* to the rows of ``gW``
    (m, k) and ``gHt`` (n, k): per entry :math:`-e\,h_j + \lambda w_i` and
    :math:`-e\,w_i + \lambda h_j`. Nothing is updated otherwise.
    """
    k = W.shape[1]
    f = 0.0
    for b in range(blocks.shape[0]):
        for e in range(ptr[blocks[b]], ptr[blocks[b] + 1]):
            i = rows[e]
            j = cols[e]
            pred = 0.0
            nw = 0.0
            nh = 0.0
            for c in range(k):
                pred += W[i, c] * Ht[j, c]
                nw += W[i, c] * W[i, c]
                nh += Ht[j, c] * Ht[j, c]
            err = vals[e] - pred
            f += 0.5 * err * err + 0.5 * lam * (nw + nh)
            if want_grad:
                for c in range(k):
                    gW[i, c] += lam * W[i, c] - err * Ht[j, c]
                    gHt[j, c] += lam * Ht[j, c] - err * W[i, c]
    return f
