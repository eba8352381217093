r"""Stability ceilings for projected (stochastic) gradient steps on NMF.

The loss is :math:`f(W,H) = \tfrac12\|V - WH\|_F^2`. The derivation of every
formula here, with its assumptions, is ``bounds/THEORY.md``; the empirical
check is ``bounds/verify.py``. Section numbers below (§) refer to THEORY.md.

Per block the loss is a convex quadratic whose curvature is a k x k Gram
matrix (§1-2):

* ``W`` rows (any batch ``B``): :math:`L_W = \lambda_{\max}(HH^\top)`; the row
  step is exact: rows of ``W`` do not interact.
* ``H`` from a row batch ``B`` of ``b`` out of ``m`` rows, gradient scaled by
  ``s = m/b`` (unbiased): :math:`L_H^B = s\,\lambda_{\max}(W_B^\top W_B)`;
  full data: :math:`L_H = \lambda_{\max}(W^\top W)`.

A projected step ``X+ = max(0, X - eta g)`` on an L-smooth convex block never
increases that block's loss when ``0 < eta <= 2/L`` (descent lemma plus the
projection inequality, §1), and the step map is non-expansive, so the ceiling
of a block is ``2/L``. Above ``2/L`` the map expands along the top
eigenvector (linear instability) unless the projection happens to cut it.

The minibatch scheme as a whole (W_B, then H with the new W_B) is stricter:
with ``M = m/b`` batches per epoch it is linearly unstable above
``(1 + b/m)/2`` of the per-block ceilings (§2.2: a theorem in the rank-one
model, checked numerically in general), i.e. ``eta_X < (1 + b/m) / L_X``.
:func:`minibatch_factor` gives the factor, ``step_ceilings(...,
coupling="sequential")`` and :func:`ceiling_W` apply it.

Per-step helpers (:func:`step_ceilings`, :func:`noise_adjusted`,
:func:`joint_ceiling`, :func:`joint_fraction`, :func:`gram_safe_ceiling`,
:func:`noise_floor`) cost O(k^3) at most. :func:`report` builds a
:class:`BoundReport` for a matrix at an initialization (or given factors),
sparse-aware and without m x n temporaries.

References
----------
.. [1] Y. Nesterov. *Introductory Lectures on Convex Optimization*, Kluwer 2004, Lemma 1.2.3.
.. [2] D. P. Bertsekas. *Nonlinear Programming*, 3rd ed., Athena 2016, §2.3 (gradient projection).
.. [3] H. Robbins, S. Monro. "A stochastic approximation method". Ann. Math. Stat. 22(3), 1951.
.. [4] L. Bottou, F. E. Curtis, J. Nocedal. "Optimization methods for large-scale machine
   learning". SIAM Review 60(2), 2018, §4.
.. [5] C.-J. Lin. "Projected gradient methods for nonnegative matrix factorization".
   Neural Computation 19(10), 2007.
.. [6] N. Gillis. *Nonnegative Matrix Factorization*. SIAM 2020.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "lmax", "gen_lmax", "step_ceilings", "PRECONDITIONERS", "COUPLINGS", "ceiling_W",
    "minibatch_factor", "coupling_stable",
    "block_curvatures", "batch_curvatures", "noise_adjusted", "noise_floor",
    "joint_ceiling", "joint_fraction", "clip_ceilings", "gram_safe_ceiling",
    "entry_curvatures", "rescale_balance", "balance_columns", "BoundReport", "report", "ASSUMPTIONS", "REPORT_UNITS",
]

PRECONDITIONERS = ("none", "lipschitz", "gram")
#: Units ``report`` accepts: the above and the solver's coordinate-wise ``"cd"``.
REPORT_UNITS = ("none", "lipschitz", "gram", "cd")


# ---------------------------------------------------------------------------
# k x k primitives (called at every step by the solver)
# ---------------------------------------------------------------------------
def lmax(A) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite k x k matrix."""
    A = np.asarray(A, dtype=np.float64)
    if A.shape[0] == 1:
        return float(A[0, 0])
    return float(np.linalg.eigvalsh(A)[-1])


def gen_lmax(A, P_inv_sqrt) -> float:
    """Largest eigenvalue of ``P^{-1} A`` given ``P^{-1/2}`` (both k x k, symmetric)."""
    M = P_inv_sqrt @ np.asarray(A, dtype=np.float64) @ P_inv_sqrt
    return lmax(0.5 * (M + M.T))


def minibatch_factor(scale) -> float:
    r"""Fraction ``(1 + b/m) / 2`` of the per-block ceilings that sequential minibatch steps allow (§2.2).

    With ``M = m/b`` batches per epoch, W_B-then-H steps at ``mu * 2/L`` per
    block are linearly unstable for ``mu > (M + 1) / (2M)`` (proved in the
    rank-one model, where ``1`` becomes an eigenvalue of the epoch map exactly
    there; checked on general linearizations). ``scale = m/b = M``; 1 for a
    full batch.
    """
    M = max(float(scale), 1.0)
    return 0.5 * (1.0 + 1.0 / M)


def coupling_stable(mu_W, mu_H, scale) -> bool:
    r"""Whether per-block fractions ``(mu_W, mu_H)`` of ``2/L`` are in the stable region (§2.2).

    The rank-one model gives the exact condition, for ``0 < mu_W, mu_H < 1``,
    :math:`M\mu_H(2\mu_W - 1) < \mu_W` with ``M = scale = m/b``: only an
    overshooting W step (``mu_W > 1/2``) couples the batches. For ``M = 1`` it
    reduces to the per-block condition ``mu < 1``.
    """
    M = max(float(scale), 1.0)
    mu_W, mu_H = float(mu_W), float(mu_H)
    if not (0 < mu_W < 1 and 0 < mu_H < 1):
        return False
    return M * mu_H * (2.0 * mu_W - 1.0) < mu_W


COUPLINGS = ("none", "sequential")


def _check_coupling(coupling):
    if coupling not in COUPLINGS:
        raise ValueError(f"coupling must be one of {list(COUPLINGS)}, got {coupling!r}")


def ceiling_W(HHt, scale=1.0, *, precondition="none", coupling="sequential", LW=None) -> float:
    """Ceiling of the W-row step in the LR's unit (§1, §2.2, §7).

    ``2/L_W`` ("none"), 2 ("lipschitz", "gram"), times :func:`minibatch_factor`
    with ``coupling="sequential"``. ``LW`` skips the eigenproblem when known.
    """
    _check_coupling(coupling)
    f = minibatch_factor(scale) if coupling == "sequential" else 1.0
    if precondition == "gram":
        return 2.0 * f
    LW = lmax(HHt) if LW is None else float(LW)
    if LW <= 0:
        return np.inf
    return 2.0 * f if precondition == "lipschitz" else 2.0 * f / LW


def step_ceilings(HHt, GB, scale, *, precondition="none", G=None, G_inv_sqrt=None,
                  coupling="none"):
    """Per-block ceilings ``(ceiling_W, ceiling_H)`` in the LR's unit (§1, §2, §7).

    Parameters
    ----------
    HHt : array (k, k)
        ``H H^T`` at the W step.
    GB : array (k, k)
        ``W_B^T W_B`` of the batch rows after their W step.
    scale : float
        ``m / b``, the factor that makes the batch H gradient unbiased.
    precondition : {"none", "lipschitz", "gram"}
    G : array (k, k), optional
        The full Gram ``W^T W`` (needed for "lipschitz").
    G_inv_sqrt : array (k, k), optional
        ``(W^T W)^{-1/2}`` (needed for "gram").
    coupling : {"none", "sequential"}, default "none"
        "none": the per-block ceilings (each block step alone never increases
        its block loss). "sequential": both multiplied by
        :func:`minibatch_factor` ``(1 + 1/scale)/2``, the ceiling of the
        W_B-then-H minibatch scheme as a whole (§2.2); equal to "none" for a
        full batch. The solver should use "sequential" (see THEORY.md §9).

    Returns
    -------
    (float, float)
        ``inf`` where the curvature is zero (the block's loss is flat).
        "none": ``2/lambda_max(HH^T)`` and ``2/(s lambda_max(W_B^T W_B))``;
        "lipschitz": ``2`` and ``2 lambda_max(G) / (s lambda_max(G_B))``;
        "gram": ``2`` and ``2 / lambda_max(G^{-1} s G_B)`` (valid in the
        interior; see :func:`gram_safe_ceiling` for the projected step).
    """
    _check_coupling(coupling)
    f = minibatch_factor(scale) if coupling == "sequential" else 1.0
    LW = lmax(HHt)
    if precondition == "gram":
        cW = 2.0
        LH = scale * gen_lmax(GB, G_inv_sqrt)
        cH = 2.0 / LH if LH > 0 else np.inf
        return cW * f, cH * f
    LH = scale * lmax(GB)
    if precondition == "lipschitz":
        cW = 2.0 if LW > 0 else np.inf
        Lref = lmax(G)
        cH = 2.0 * Lref / LH if LH > 0 else np.inf
        return cW * f, cH * f
    cW = 2.0 / LW if LW > 0 else np.inf
    cH = 2.0 / LH if LH > 0 else np.inf
    return cW * f, cH * f


def noise_adjusted(ceiling, grad_sq, noise_var) -> float:
    r"""Expected-descent ceiling under gradient noise (§3).

    For an L-smooth block and an unbiased gradient estimate ``g = grad + xi``
    with ``E||xi||^2 = noise_var``, the descent lemma gives
    :math:`E f^+ \le f - \eta(1 - \eta L/2)\|\nabla f\|^2 + \eta^2 L\, s^2/2`,
    so the expected loss decreases iff

    .. math:: \eta < \frac{2}{L}\,\frac{\|\nabla f\|^2}{\|\nabla f\|^2 + s^2}.

    Parameters
    ----------
    ceiling : float
        The noise-free ceiling ``2/L``.
    grad_sq : float
        ``||grad f||^2`` of the block (the same set of entries the noise acts on).
    noise_var : float
        ``E||xi||^2`` (e.g. ``noise_std**2 * entries`` for iid Gaussian noise,
        plus the minibatch sampling variance).

    Returns
    -------
    float
        ``ceiling * grad_sq / (grad_sq + noise_var)``; ``ceiling`` when there is
        no noise, 0 when the gradient vanishes under noise.
    """
    ceiling, grad_sq, noise_var = float(ceiling), float(grad_sq), float(noise_var)
    if grad_sq < 0 or noise_var < 0:
        raise ValueError(f"grad_sq and noise_var must be >= 0, got {grad_sq!r}, {noise_var!r}")
    if noise_var == 0:
        return ceiling
    if grad_sq == 0:
        return 0.0
    if not math.isfinite(ceiling):
        return ceiling
    return ceiling * grad_sq / (grad_sq + noise_var)


def noise_floor(lr, L, noise_var, *, curvatures=None) -> float:
    r"""Stationary excess loss of constant-LR SGD on one quadratic block (§3.3).

    For the unconstrained iteration ``x+ = x - lr (A x - c + xi)`` with iid
    noise of per-entry variance ``sigma^2`` (``noise_var = sigma^2 N`` over ``N``
    entries) the stationary excess loss is exactly
    :math:`\tfrac{\eta\sigma^2}{2}\sum_i \frac{1}{2 - \eta\lambda_i}`, which is
    at most :math:`\eta s^2 / (2(2-\eta L))` (and at least :math:`\eta s^2/4`).

    Parameters
    ----------
    lr : float
    L : float
        Largest curvature ``lambda_max(A)``.
    noise_var : float
        ``s^2 = sigma^2 N``.
    curvatures : array, optional
        All ``N`` eigenvalues ``lambda_i`` of ``A``; gives the exact value.

    Returns
    -------
    float
        0 without noise; ``inf`` when ``lr >= 2/L`` (no stationary variance).
    """
    lr, L, noise_var = float(lr), float(L), float(noise_var)
    if noise_var == 0:
        return 0.0
    if lr * L >= 2:
        return math.inf
    if curvatures is not None:
        lam = np.asarray(curvatures, dtype=np.float64).ravel()
        sigma2 = noise_var / lam.size
        return float(0.5 * lr * sigma2 * np.sum(1.0 / (2.0 - lr * lam)))
    return lr * noise_var / (2.0 * (2.0 - lr * L))


def joint_ceiling(L_W, L_H, residual_norm) -> float:
    r"""Ceiling of one common LR for a simultaneous (W, H) step (§4).

    The Hessian of ``f`` in a direction ``(dW, dH)`` is
    :math:`\|dW\,H + W\,dH\|^2 + 2\langle WH - V, dW\,dH\rangle`, bounded by
    :math:`(L_W + L_H + \|WH - V\|_2)\,(\|dW\|^2 + \|dH\|^2)`. So a local
    ceiling is ``2 / (L_W + L_H + ||R||)``; pass the Frobenius norm of the
    residual for a cheap upper bound of its spectral norm. Local: valid while
    the step stays where these norms hold (see :func:`clip_ceilings` for a
    global version).
    """
    L = float(L_W) + float(L_H) + float(residual_norm)
    return 2.0 / L if L > 0 else math.inf


def joint_fraction(L_W, L_H, residual_norm) -> float:
    r"""Fraction of the per-block ceilings allowed for simultaneous block steps (§4).

    With per-block steps ``eta_X = mu * 2 / L_X`` taken from the *same* state
    (Jacobi), linear stability needs ``mu < 1 / (2 + rho)`` with
    ``rho = ||R||_2 / sqrt(L_W L_H)``. The Gauss-Newton part alone gives
    exactly 1/2: a simultaneous step at ``1/L_X`` per block is already at the
    edge. Sequential steps (W then H, the solver) need no such factor.
    """
    LW, LH, r = float(L_W), float(L_H), float(residual_norm)
    if LW <= 0 or LH <= 0:
        return 1.0
    return 1.0 / (2.0 + r / math.sqrt(LW * LH))


def clip_ceilings(shape, rank, c, v_norm) -> dict:
    r"""Global ceilings when every factor entry is kept in ``[0, c]`` (§5).

    On the box, :math:`\|W\|_2^2 \le c^2 mk`, :math:`\|H\|_2^2 \le c^2 kn`,
    every batch curvature :math:`s\lambda_{\max}(W_B^\top W_B) \le c^2 mk` and
    :math:`\|WH - V\|_2 \le c^2 k\sqrt{mn} + \|V\|`. These hold everywhere the
    projected iterates can be, so the ceilings are global (no "locally").

    Parameters
    ----------
    shape : (m, n)
    rank : int
    c : float
        Entry bound (``fit(max_value=c)``).
    v_norm : float
        An upper bound of ``||V||_2`` (``||V||_F`` is fine).

    Returns
    -------
    dict
        ``W``, ``H`` (per block, any batch size) and ``joint`` (one LR for any
        update pattern, simultaneous included).
    """
    m, n = shape
    k = int(rank)
    c2 = float(c) ** 2
    LW, LH = c2 * k * n, c2 * k * m
    Lj = LW + LH + c2 * k * math.sqrt(m * n) + float(v_norm)
    return {"W": 2.0 / LW, "H": 2.0 / LH, "joint": 2.0 / Lj}


def gram_safe_ceiling(G, GB, scale) -> float:
    r"""Projection-safe ceiling of the Gram-preconditioned H step (§7).

    The step ``H <- Pi_+(H - eta G^{-1} s(G_B H - W_B^T V_B))`` maps ``H``
    affinely by ``I - eta G^{-1} A`` (``A = s G_B``) and then projects. In the
    Euclidean norm :math:`\|I - \eta G^{-1}A\|_2 \le |1-\eta| + \eta\delta` with
    :math:`\delta = \|G^{-1}(A - G)\|_2`, and the orthant projection is
    non-expansive, so the projected step is a contraction whenever
    ``delta < 1`` and ``eta < 2 / (1 + delta)``. For the W block ``A = G``
    exactly (``delta = 0``): the ceiling 2 survives the projection.

    Returns
    -------
    float
        ``2 / (1 + delta)``, or 0.0 when ``delta >= 1`` (no guarantee: use a
        diagonal preconditioner or the plain step).
    """
    G = np.asarray(G, dtype=np.float64)
    A = float(scale) * np.asarray(GB, dtype=np.float64)
    try:
        M = np.linalg.solve(G, A - G)
    except np.linalg.LinAlgError:
        return 0.0
    delta = float(np.linalg.norm(M, 2))
    if not math.isfinite(delta) or delta >= 1.0:
        return 0.0
    return 2.0 / (1.0 + delta)


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
        from .objective import _row_chunks  # noqa: PLC0415

        vmax = 0.0
        for a, b in _row_chunks(V):
            vmax = max(vmax, float(np.max(V[a:b])))
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


def rescale_balance(V, W, H, *, vsq=None):
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

    Returns
    -------
    W, H : new arrays (same dtypes), and ``alpha`` (float).
    """
    from .objective import v_dot

    dt = W.dtype
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    VHt = np.asarray(v_dot(V, np.ascontiguousarray(H.T)), dtype=np.float64)
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


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
ASSUMPTIONS = {
    "block": "Per-block ceilings: f is a convex quadratic in each block with the other fixed; "
             "the ceiling 2/L guarantees the block loss does not increase and the step map is "
             "non-expansive (projection onto the orthant or the box [0, c] included).",
    "local": "The ceilings are local: they hold at the factors they are computed from. The "
             "solver recomputes them at every step; a constant LR fixed at the init can exceed a "
             "later ceiling when the factors grow.",
    "sequential": "Sequential updates (W_B, then H with the new W_B), as in the solver: the scheme "
                  "is stable up to (1 + b/m)/2 of the per-block ceilings (proved in the rank-one "
                  "model, verified numerically in general; a conjecture for general k). The joint "
                  "ceiling applies only to simultaneous updates.",
    "batch": "Row batches drawn without replacement; the H gradient is scaled by m/b (unbiased). "
             "ceiling_H_batch is the worst case over the sampled batches (empirical); "
             "ceiling_H_batch_bound holds for every batch of that size.",
    "noise": "Additive noise iid N(0, noise_std^2) per gradient entry, independent of the state; "
             "noise-adjusted ceilings are for expected descent of the full loss and use the "
             "unconstrained descent lemma (projection can only help, §3.2).",
    "joint": "Joint ceiling: local Hessian bound L_W + L_H + ||V - WH||_F (Frobenius norm as an "
             "upper bound of the spectral norm).",
    "clip": "Global ceilings need every entry of W and H in [0, c] (fit(max_value=c)) and "
            "||V||_2 <= ||V||_F.",
    "gram": "Gram ceilings are dimensionless. The ceiling 2/lambda_max(G^-1 s G_B) holds for the "
            "unconstrained step; with the orthant projection only the contraction ceiling "
            "2/(1+delta) (ceiling_H_gram_safe) is proven; for W it is exactly 2.",
}


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _inv2(L):
    return 2.0 / L if L > 0 else math.inf


@dataclass(frozen=True)
class BoundReport:
    """Stability ceilings of projected SGD on NMF at given factors.

    Absolute ceilings (``ceiling_*`` without ``_gram``/``_lipschitz``) are in
    the unit of ``precondition="none"``. ``ceiling`` and ``lr0`` are in the
    LR unit of the report's ``precondition`` (what ``StepInfo.ceiling`` means).

    Attributes (ceilings)
    ---------------------
    ceiling_W : ``2/L_W``, every row batch (the W-row step is exact per row).
    ceiling_H : ``2/L_H``, full batch.
    ceiling_H_batch : worst over the sampled batches of ``2/(s lambda_max(W_B^T W_B))``.
    ceiling_H_batch_mean : ``2 / mean_B(s lambda_max(W_B^T W_B))`` (a typical batch).
    ceiling_H_batch_bound : valid for every batch of that size (worst case).
    minibatch_factor : ``(1 + b/m)/2``, the fraction of the per-block ceilings
        that sequential W_B-then-H minibatch steps allow (§2.2).
    ceiling_W_seq, ceiling_H_seq : ``minibatch_factor * (ceiling_W, ceiling_H_batch)``,
        the ceilings of the solver's scheme as a whole.
    ceiling_W_noise, ceiling_H_noise : expected-descent ceilings under noise (§3).
    ceiling_joint : one common LR for simultaneous (W, H) steps (§4).
    joint_fraction : fraction of the per-block ceilings allowed for simultaneous steps.
    ceiling_global_W, ceiling_global_H, ceiling_global_joint : under entry clipping [0, clip].
    ceiling_W_gram, ceiling_H_gram, ceiling_H_gram_safe : Gram-preconditioned (dimensionless).
    ceiling_W_lipschitz, ceiling_H_lipschitz : Lipschitz-preconditioned (dimensionless).
    ceiling_W_diag, ceiling_H_diag : diagonal (Jacobi) scaling ``diag(HH^T)``, ``diag(W^T W)``
        (dimensionless, per block, worst sampled batch): the projection-safe fallback of §7.
    ceiling_W_cd, ceiling_H_cd : the solver's coordinate-wise steps ``lr / A_cc`` in
        Gauss-Seidel order (§7.1): 2 and ``2 min_c G_cc / (s (W_B^T W_B)_cc)``, per block.
    noise_floor : predicted stationary excess loss (§3.3) with steps at ``kappa`` times the
        sequential ceilings, from the additive noise and the minibatch sampling noise.
    ceiling : the binding ceiling of the sequential minibatch scheme in the LR unit of
        ``precondition`` (min over blocks, worst sampled batch, times ``minibatch_factor``).
    lr0 : ``kappa * ceiling``, the initial-LR rule (§6).
    """

    # setting
    shape: tuple
    rank: int
    sparse: bool
    nnz: int
    dtype: str
    init: str
    warmup_epochs: int
    batch_size: int
    n_batches: int
    scale: float
    noise_std: float
    clip: float | None
    precondition: str
    kappa: float
    # quantities
    L_W: float
    L_H: float
    L_H_batch_mean: float
    L_H_batch_max: float
    L_H_batch_bound: float
    batch_excess: float
    n_batches_sampled: int
    norm_V: float
    norm_W_2: float
    norm_H_2: float
    residual_norm: float
    rel_error: float
    grad_W_sq: float
    grad_H_sq: float
    noise_var_W: float
    noise_var_H: float
    sampling_var_H: float
    alpha_opt: float
    balance: float
    # ceilings, absolute unit
    ceiling_W: float
    ceiling_H: float
    ceiling_H_batch: float
    ceiling_H_batch_mean: float
    ceiling_H_batch_bound: float
    minibatch_factor: float
    ceiling_W_seq: float
    ceiling_H_seq: float
    ceiling_W_noise: float
    ceiling_H_noise: float
    ceiling_joint: float
    joint_fraction: float
    ceiling_global_W: float | None
    ceiling_global_H: float | None
    ceiling_global_joint: float | None
    # dimensionless
    ceiling_W_gram: float
    ceiling_H_gram: float
    ceiling_H_gram_safe: float
    ceiling_W_lipschitz: float
    ceiling_H_lipschitz: float
    ceiling_W_diag: float
    ceiling_H_diag: float
    ceiling_W_cd: float
    ceiling_H_cd: float
    noise_floor: float
    # in the LR's unit
    ceiling: float
    lr0: float
    entry: dict | None = None
    assumptions: tuple = field(default_factory=tuple)

    def as_dict(self) -> dict:
        """Plain dict (JSON-able: inf becomes None, tuples become lists)."""
        d = asdict(self)
        out = {}
        for k, v in d.items():
            if isinstance(v, float):
                out[k] = _finite(v)
            elif isinstance(v, tuple):
                out[k] = list(v)
            elif isinstance(v, dict):
                out[k] = {kk: _finite(vv) if isinstance(vv, float) else vv for kk, vv in v.items()}
            else:
                out[k] = v
        return out

    def to_json(self, **kw) -> str:
        return json.dumps(self.as_dict(), **kw)

    def to_table(self) -> str:
        """Readable text: the setting, the ceilings, the quantities, the assumptions."""
        m, n = self.shape
        unit = "absolute" if self.precondition == "none" else "dimensionless"

        def f(x):
            if x is None:
                return "-"
            if isinstance(x, float) and not math.isfinite(x):
                return "inf"
            return f"{x:.4g}"

        lines = [
            f"stability bound  V {m} x {n} ({'sparse, nnz ' + str(self.nnz) if self.sparse else 'dense'}"
            f", {self.dtype}), rank {self.rank}, init {self.init}"
            + (f" + {self.warmup_epochs} warm-up epochs" if self.warmup_epochs else ""),
            f"batch {self.batch_size} of {m} rows (scale m/b = {self.scale:.4g}, "
            f"{self.n_batches} batches/epoch), noise_std {self.noise_std:g}, "
            f"clip {self.clip if self.clip is not None else '-'}, precondition {self.precondition}",
            "",
            f"{'ceiling':<34}{'value':>12}  meaning",
            f"{'-' * 34}{'-' * 12}  {'-' * 30}",
        ]
        rows = [
            ("ceiling (binding, LR unit)", self.ceiling, f"min over blocks, {unit}; solver's StepInfo.ceiling"),
            ("lr0 = kappa * ceiling", self.lr0, f"initial-LR rule, kappa = {self.kappa:g}"),
            ("minibatch_factor (1+b/m)/2", self.minibatch_factor, "sequential W_B-then-H coupling"),
            ("ceiling_W_seq", self.ceiling_W_seq, "W step within the minibatch scheme"),
            ("ceiling_H_seq", self.ceiling_H_seq, "H step within the minibatch scheme"),
            ("ceiling_W = 2/L_W", self.ceiling_W, "W rows alone, any batch (per block)"),
            ("ceiling_H = 2/L_H", self.ceiling_H, "H, full batch"),
            ("ceiling_H_batch", self.ceiling_H_batch,
             f"H, worst of {self.n_batches_sampled} sampled batches"),
            ("ceiling_H_batch_mean", self.ceiling_H_batch_mean, "H, typical batch (2/mean curvature)"),
            ("ceiling_H_batch_bound", self.ceiling_H_batch_bound, "H, every batch (worst case)"),
            ("ceiling_W_noise", self.ceiling_W_noise, "expected descent under noise, W"),
            ("ceiling_H_noise", self.ceiling_H_noise, "expected descent under noise + sampling, H"),
            ("ceiling_joint", self.ceiling_joint, "one LR, simultaneous W,H step (local)"),
            ("joint_fraction", self.joint_fraction, "x per-block ceilings, simultaneous steps"),
            ("ceiling_global_W", self.ceiling_global_W, "entries in [0, clip], global"),
            ("ceiling_global_H", self.ceiling_global_H, "entries in [0, clip], global"),
            ("ceiling_global_joint", self.ceiling_global_joint, "entries in [0, clip], any pattern"),
            ("ceiling_W_gram", self.ceiling_W_gram, "Gram step W (dimensionless, projection-safe)"),
            ("ceiling_H_gram", self.ceiling_H_gram, "Gram step H, worst batch (interior only)"),
            ("ceiling_H_gram_safe", self.ceiling_H_gram_safe, "Gram step H with projection (proven)"),
            ("ceiling_W_lipschitz", self.ceiling_W_lipschitz, "Lipschitz-scaled step W"),
            ("ceiling_H_lipschitz", self.ceiling_H_lipschitz, "Lipschitz-scaled step H, worst batch"),
            ("ceiling_W_diag", self.ceiling_W_diag, "diag(HH^T)-scaled step W (projection-safe)"),
            ("ceiling_H_diag", self.ceiling_H_diag, "diag(W^T W)-scaled step H, worst batch"),
            ("ceiling_W_cd", self.ceiling_W_cd, "coordinate-wise step W (per block)"),
            ("ceiling_H_cd", self.ceiling_H_cd, "coordinate-wise step H, worst batch (per block)"),
        ]
        if self.entry is not None:
            rows.append(("ceiling_entry_joint", self.entry.get("ceiling_joint"),
                         "one observed entry, (w_i, h_j) together, p = 1"))
        for name, val, what in rows:
            lines.append(f"{name:<34}{f(val):>12}  {what}")
        lines += [
            "",
            f"{'quantity':<34}{'value':>12}",
            f"{'-' * 34}{'-' * 12}",
        ]
        q = [
            ("L_W = lambda_max(H H^T)", self.L_W), ("L_H = lambda_max(W^T W)", self.L_H),
            ("L_H batch: mean", self.L_H_batch_mean), ("L_H batch: max (sampled)", self.L_H_batch_max),
            ("L_H batch: bound (all)", self.L_H_batch_bound),
            ("batch excess max/full", self.batch_excess),
            ("||V||_F", self.norm_V), ("||W||_2", self.norm_W_2), ("||H||_2", self.norm_H_2),
            ("||V - WH||_F", self.residual_norm), ("relative error", self.rel_error),
            ("||grad_W||^2", self.grad_W_sq), ("||grad_H||^2", self.grad_H_sq),
            ("noise var W (per epoch)", self.noise_var_W), ("noise var H (per step)", self.noise_var_H),
            ("sampling var H (per step)", self.sampling_var_H),
            ("noise floor at kappa x ceilings", self.noise_floor),
            ("alpha* (best scale of WH)", self.alpha_opt), ("balance L_W / L_H", self.balance),
        ]
        for name, val in q:
            lines.append(f"{name:<34}{f(val):>12}")
        lines += ["", "assumptions:"]
        lines += [f"  - {a}" for a in self.assumptions]
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


def _residual_and_grads(V, W, H, vsq):
    """Residual norm, gradient norms and row-wise residual norms, Gram form.

    No m x n temporary: ``V H^T`` (m x k) and ``V^T W`` (n x k) only.
    """
    from .objective import v_dot, vt_dot

    Ht = np.ascontiguousarray(H.T)
    VHt = np.asarray(v_dot(V, Ht), dtype=np.float64)        # m x k
    VtW = np.asarray(vt_dot(V, W), dtype=np.float64)        # n x k
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    HHt = H @ H.T
    G = W.T @ W
    cross = float(np.vdot(W, VHt))
    quad = float(np.vdot(G, HHt))
    res_sq = max(vsq - 2.0 * cross + quad, 0.0)
    gW = W @ HHt - VHt                                       # m x k
    gH = G @ H - VtW.T                                       # k x n
    # ||r_i||^2 = ||v_i||^2 - 2 w_i.(V H^T)_i + w_i^T HH^T w_i
    from .data import row_sqnorms

    vrow = row_sqnorms(V)
    rrow = np.maximum(vrow - 2.0 * np.einsum("ij,ij->i", W, VHt)
                      + np.einsum("ij,jk,ik->i", W, HHt, W), 0.0)
    return dict(res_sq=res_sq, cross=cross, quad=quad, gW_sq=float(np.vdot(gW, gW)),
                gH_sq=float(np.vdot(gH, gH)), rrow=rrow, HHt=HHt, G=G)


class _Instrument:
    """Schedule for the warm-up run: a huge LR clipped by the solver to kappa * ceiling."""

    needs = ()

    def init(self):
        return {}

    def lr(self, state):
        return 1e300

    def update(self, state, info):
        return {}


def report(V, rank, *, W=None, H=None, init="auto", seed=0, batch_size=None, noise_std=0.0,
           clip=None, precondition="none", warmup_epochs=0, n_batches_sample=64, kappa=0.5,
           entry=None) -> BoundReport:
    r"""Stability report at an initialization (or at given factors).

    Parameters
    ----------
    V : array (m, n), numpy.memmap or scipy.sparse matrix
        Non-negative data (validated by :func:`nmf_sched.data.check_matrix`).
    rank : int
    W, H : arrays (m, k), (k, n), optional
        Factors to analyze; default: the ``init`` rule of :mod:`nmf_sched.init`.
    init : str, default "auto"
        Initialization (ignored when ``W`` and ``H`` are given).
    seed : int, default 0
        Seed of the init, the warm-up and the batch sample.
    batch_size : int, optional
        Rows per step; default: ``nmf_sched.api.default_batch_size(m)``.
    noise_std : float, default 0
        Std of the additive gradient noise per entry.
    clip : float, optional
        Entry bound ``c`` (factors in ``[0, c]``): global ceilings.
    precondition : {"none", "lipschitz", "gram", "cd"}
        Unit of ``ceiling`` and ``lr0`` (the warm-up runs the solver with it).
    warmup_epochs : int, default 0
        Run this many epochs of the solver first (steps at ``kappa`` x the
        per-step ceiling, ``precondition`` as given) and report at the result.
    n_batches_sample : int, default 64
        Batches drawn to estimate the minibatch curvature (O(b k^2) each).
    kappa : float, default 0.5
        Fraction of the ceiling of the initial-LR rule ``lr0 = kappa * ceiling``.
    entry : bool, optional
        Also compute single-entry curvatures (default: for sparse ``V``).

    Returns
    -------
    BoundReport
    """
    from .api import default_batch_size
    from .backend import is_sparse
    from .data import check_matrix, check_rank, check_seed, sqnorm
    from .init import initialize

    V = check_matrix(V, "V")
    m, n = V.shape
    k = check_rank(rank, V.shape)
    if precondition not in REPORT_UNITS:
        raise ValueError(f"precondition must be one of {list(REPORT_UNITS)}, got {precondition!r}")
    for name, val in (("noise_std", noise_std), ("kappa", kappa)):
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not math.isfinite(val) or val < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {val!r}")
    if kappa <= 0:
        raise ValueError(f"kappa must be > 0, got {kappa!r}")
    if clip is not None and (not isinstance(clip, (int, float)) or isinstance(clip, bool)
                             or not math.isfinite(clip) or clip <= 0):
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    if not isinstance(warmup_epochs, int) or isinstance(warmup_epochs, bool) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
    if not isinstance(n_batches_sample, int) or n_batches_sample < 1:
        raise ValueError(f"n_batches_sample must be an integer >= 1, got {n_batches_sample!r}")
    if batch_size is None:
        batch_size = default_batch_size(m)
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    b = int(min(batch_size, m))
    sparse = is_sparse(V)
    rng = check_seed(seed)
    init_rng, run_rng, batch_rng = rng.spawn(3)
    if (W is None) != (H is None):
        raise ValueError("give both W and H, or neither")
    if W is None:
        W, H = initialize(V, k, init, seed=init_rng)
        init_name = init
    else:
        W, H = initialize(V, k, "custom", W0=W, H0=H)
        init_name = "custom"
    if warmup_epochs:
        from .api import fit

        res = fit(V, k, W0=W, H0=H, schedule=_Instrument(), epochs=warmup_epochs, batch_size=b,
                  seed=run_rng, noise_std=float(noise_std), clip_lr=True, kappa=float(kappa),
                  max_value=clip, precondition=precondition, tol=0.0)
        W, H = res.W, res.H

    vsq = sqnorm(V)
    q = _residual_and_grads(V, W, H, vsq)
    HHt, G = q["HHt"], q["G"]
    LW, LH = lmax(HHt), lmax(G)
    bc = batch_curvatures(W, b, n_batches=n_batches_sample,
                          seed=int(batch_rng.integers(2**31)))
    s = m / b
    n_batches = math.ceil(m / b)

    # gram and lipschitz ceilings over the same sampled batches
    W64 = np.asarray(W, dtype=np.float64)
    Gis = None
    gram_gen, gram_safe, diag_gen, cd_ratio = [], [], [], []
    dG = np.diag(G).copy()
    Dis_H = np.diag(1.0 / np.sqrt(np.maximum(dG, 1e-300))) if np.all(dG > 0) else None
    if LH > 0:
        d, U = np.linalg.eigh(G)
        d = np.maximum(d, 1e-12 * max(d[-1], 1e-300))
        Gis = (U / np.sqrt(d)) @ U.T
    if b >= m:
        batches = [np.arange(m)]
    else:
        brng = np.random.default_rng(int(batch_rng.integers(2**31)))
        perm = brng.permutation(m)
        batches = [perm[a:a + b] for a in range(0, m, b)][: max(1, min(n_batches_sample, n_batches))]
    for idx in batches:
        GB = W64[idx].T @ W64[idx]
        sc = m / idx.size
        if Gis is not None:
            gram_gen.append(sc * gen_lmax(GB, Gis))
            gram_safe.append(gram_safe_ceiling(G, GB, sc))
        if Dis_H is not None:
            diag_gen.append(sc * gen_lmax(GB, Dis_H))
        dB = sc * np.diag(GB)
        pos = dB > 0
        if pos.any():
            cd_ratio.append(float(np.min(dG[pos] / dB[pos])))
    ceiling_H_gram = _inv2(max(gram_gen)) if gram_gen else math.inf
    ceiling_H_gram_safe = min(gram_safe) if gram_safe else math.inf
    ceiling_H_diag = _inv2(max(diag_gen)) if diag_gen else math.inf
    ceiling_H_cd = 2.0 * min(cd_ratio) if cd_ratio else math.inf
    ceiling_W_cd = 2.0 if LW > 0 else math.inf
    dP = np.diag(HHt)
    ceiling_W_diag = (_inv2(gen_lmax(HHt, np.diag(1.0 / np.sqrt(dP)))) if np.all(dP > 0)
                      else math.inf)

    # noise (§3): W sees additive noise only (per epoch: every row once);
    # H sees additive noise + the sampling noise of the row batch (exact formula).
    sigma2 = float(noise_std) ** 2
    noise_var_W = sigma2 * m * k
    wrow = np.einsum("ij,ij->i", W64, W64)
    if b < m and m > 1:
        spread = max(float(np.dot(wrow, q["rrow"])) - q["gH_sq"] / m, 0.0)
        sampling_var = m * (m - b) / (b * (m - 1)) * spread
    else:
        sampling_var = 0.0
    noise_var_H = sigma2 * k * n
    cW, cH = _inv2(LW), _inv2(LH)
    cW_noise = noise_adjusted(cW, q["gW_sq"], noise_var_W)
    cH_noise = noise_adjusted(cH, q["gH_sq"], noise_var_H + sampling_var)

    res_norm = math.sqrt(q["res_sq"])
    vnorm = math.sqrt(vsq)
    glob = clip_ceilings((m, n), k, clip, vnorm) if clip is not None else None
    cH_batch = _inv2(bc["max"])
    rho = minibatch_factor(s)
    floor = (noise_floor(kappa * rho * cH_batch, LH, noise_var_H + sampling_var)
             + noise_floor(kappa * rho * cW, LW, noise_var_W)) if LH > 0 and LW > 0 else math.inf
    cW_lip = 2.0 if LW > 0 else math.inf
    cH_lip = 2.0 * LH / bc["max"] if bc["max"] > 0 else math.inf
    if precondition == "none":
        ceiling = rho * min(cW, cH_batch)
    elif precondition == "lipschitz":
        ceiling = rho * min(cW_lip, cH_lip)
    elif precondition == "cd":
        ceiling = rho * min(ceiling_W_cd, ceiling_H_cd)
    else:
        ceiling = rho * min(2.0, ceiling_H_gram)
    alpha = q["cross"] / q["quad"] if q["quad"] > 0 else math.inf
    if entry is None:
        entry = sparse
    ent = entry_curvatures(V, W, H) if entry else None
    assumptions = [ASSUMPTIONS[key] for key in ("block", "local", "sequential", "batch")]
    if noise_std > 0 or b < m:
        assumptions.append(ASSUMPTIONS["noise"])
    assumptions.append(ASSUMPTIONS["joint"])
    if clip is not None:
        assumptions.append(ASSUMPTIONS["clip"])
    assumptions.append(ASSUMPTIONS["gram"])
    return BoundReport(
        shape=(m, n), rank=k, sparse=bool(sparse), nnz=int(V.nnz) if sparse else m * n,
        dtype=str(V.dtype), init=init_name, warmup_epochs=int(warmup_epochs), batch_size=b,
        n_batches=n_batches, scale=s, noise_std=float(noise_std),
        clip=None if clip is None else float(clip), precondition=precondition, kappa=float(kappa),
        L_W=LW, L_H=LH, L_H_batch_mean=bc["mean"], L_H_batch_max=bc["max"],
        L_H_batch_bound=bc["bound"], batch_excess=bc["max"] / LH if LH > 0 else math.nan,
        n_batches_sampled=bc["n"], norm_V=vnorm, norm_W_2=math.sqrt(LH), norm_H_2=math.sqrt(LW),
        residual_norm=res_norm, rel_error=res_norm / vnorm if vnorm > 0 else math.nan,
        grad_W_sq=q["gW_sq"], grad_H_sq=q["gH_sq"], noise_var_W=noise_var_W,
        noise_var_H=noise_var_H, sampling_var_H=sampling_var, alpha_opt=alpha,
        balance=LW / LH if LH > 0 else math.inf,
        ceiling_W=cW, ceiling_H=cH, ceiling_H_batch=cH_batch,
        ceiling_H_batch_mean=_inv2(bc["mean"]), ceiling_H_batch_bound=_inv2(bc["bound"]),
        minibatch_factor=rho, ceiling_W_seq=rho * cW, ceiling_H_seq=rho * cH_batch,
        ceiling_W_noise=cW_noise, ceiling_H_noise=cH_noise,
        ceiling_joint=joint_ceiling(LW, LH, res_norm), joint_fraction=joint_fraction(LW, LH, res_norm),
        ceiling_global_W=glob["W"] if glob else None, ceiling_global_H=glob["H"] if glob else None,
        ceiling_global_joint=glob["joint"] if glob else None,
        ceiling_W_gram=2.0, ceiling_H_gram=ceiling_H_gram, ceiling_H_gram_safe=ceiling_H_gram_safe,
        ceiling_W_lipschitz=cW_lip, ceiling_H_lipschitz=cH_lip,
        ceiling_W_diag=ceiling_W_diag, ceiling_H_diag=ceiling_H_diag,
        ceiling_W_cd=ceiling_W_cd, ceiling_H_cd=ceiling_H_cd, noise_floor=floor,
        ceiling=ceiling, lr0=float(kappa) * ceiling, entry=ent, assumptions=tuple(assumptions),
    )
