"""Per-step stability ceilings: k x k primitives, the minibatch coupling factor, noise,
joint, clipping and Gram ceilings (bounds/THEORY.md sections 1-5, 7).

Called at every solver step; each costs O(k^3) at most.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "lmax", "gen_lmax", "safe_diag", "ceiling_rule", "ridge", "block_ceilings", "CEILING_RULES", "minibatch_factor", "step_factor", "SHARDED_FACTOR", "coupling_stable", "ceiling_W", "step_ceilings",
    "noise_adjusted", "noise_floor", "joint_ceiling", "joint_fraction", "clip_ceilings",
    "gram_safe_ceiling", "PRECONDITIONERS", "COUPLINGS", "REPORT_UNITS",
]

PRECONDITIONERS = ("none", "lipschitz", "gram")
#: Units ``report`` accepts: the above and the solver's coordinate-wise ``"cd"``.
REPORT_UNITS = ("none", "lipschitz", "gram", "cd")


# ---------------------------------------------------------------------------
# k x k primitives (called at every step by the solver)
# ---------------------------------------------------------------------------
def lmax(A) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite k x k matrix.

    ``inf`` when ``A`` has a non-finite entry (a diverging iterate: every ceiling built
    from it is then 0, and the solver's divergence checks take over).
    """
    A = np.asarray(A, dtype=np.float64)
    if not np.isfinite(A).all():
        return math.inf
    if A.shape[0] == 1:
        return float(A[0, 0])
    return float(np.linalg.eigvalsh(A)[-1])


def gen_lmax(A, P_inv_sqrt) -> float:
    """Largest eigenvalue of ``P^{-1} A`` given ``P^{-1/2}`` (both k x k, symmetric)."""
    M = P_inv_sqrt @ np.asarray(A, dtype=np.float64) @ P_inv_sqrt
    return lmax(0.5 * (M + M.T))


def safe_diag(A, xp=np):
    """The diagonal of a k x k Gram in float64, non-positive entries raised to a tiny floor
    (``1e-12 max(max diag, 1)``) so that ``lr / d_c`` stays finite for a dead component."""
    d = xp.diag(A).astype(xp.float64)
    if xp is np:
        if d.size and d.min() > 0:
            return d
        return np.where(d > 0, d, max(float(d.max()), 1.0) * 1e-12 if d.size else 1.0)
    floor = xp.maximum(d.max(), 1.0) * 1e-12
    return xp.where(d > 0, d, floor)


def _lmax_xp(A, xp):
    if xp is np:
        return lmax(A)
    A = A.astype(xp.float64)
    ok = xp.all(xp.isfinite(A))
    return xp.where(ok, xp.linalg.eigvalsh(xp.where(ok, A, 0.0))[-1], xp.inf)


def _inv2_xp(L, xp):
    if xp is np:
        return 2.0 / L if L > 0 else math.inf
    return xp.where(L > 0, 2.0 / xp.where(L > 0, L, 1.0), xp.inf)


def _cd_H(G, A, xp, dG=None):
    r"""Coordinate steps ``lr / G_cc`` on the curvature ``A`` descend for ``lr < 2 G_cc / A_cc``
    (§7.1): the ceiling is the min over the coordinates with ``A_cc > 0``."""
    dG = safe_diag(G, xp) if dG is None else dG
    dA = xp.diag(A).astype(xp.float64)
    if xp is np:
        pos = dA > 0
        if pos.all():
            return float(2.0 * np.min(dG / dA))
        if not pos.any():
            return math.inf
        return float(2.0 * np.min(dG[pos] / dA[pos]))
    ratio = xp.where(dA > 0, dG / xp.where(dA > 0, dA, 1.0), xp.inf)
    return 2.0 * ratio.min()


def _diag_H(G, A, xp, dG=None):
    r"""The H step scaled by ``diag(G)^{-1}`` on the curvature ``A``:
    ``2 / lambda_max(D^{-1/2} A D^{-1/2})`` with ``D = diag(G)`` (§7)."""
    dG = safe_diag(G, xp) if dG is None else dG
    r = 1.0 / xp.sqrt(dG)
    M = (A.astype(xp.float64) * r[:, None]) * r[None, :]
    return _inv2_xp(_lmax_xp(0.5 * (M + M.T), xp), xp)


def _lipschitz_H(G, A, xp, dG=None):
    """The H gradient divided by ``lambda_max(G)``: ``2 lambda_max(G) / lambda_max(A)``."""
    LA = _lmax_xp(A, xp)
    LG = _lmax_xp(G, xp)
    if xp is np:
        return 2.0 * LG / LA if LA > 0 else math.inf
    return xp.where(LA > 0, 2.0 * LG / xp.where(LA > 0, LA, 1.0), xp.inf)


def _plain_H(G, A, xp, dG=None):
    return _inv2_xp(_lmax_xp(A, xp), xp)


def _two_W(HHt, xp):
    return 2.0


def _lipschitz_W(HHt, xp):
    L = _lmax_xp(HHt, xp)
    return (2.0 if L > 0 else math.inf) if xp is np else xp.where(L > 0, 2.0, xp.inf)


def _plain_W(HHt, xp):
    return _inv2_xp(_lmax_xp(HHt, xp), xp)


#: Per-block ceiling rules of each preconditioner, in that preconditioner's LR unit:
#: ``W(HHt, xp)`` for the W rows (any batch: rows decouple) and ``H(G, A, xp)`` for the H step
#: on the curvature ``A`` (``s W_B^T W_B`` for a row batch, plus the stale blocks' Gram in the
#: sharded scheme, §10). ``G = W^T W`` is the full Gram the step is scaled by.
#: With L2 penalties every argument is ridged (``HHt + l2_W I``; ``G + l2_H I``,
#: ``A + l2_H I``): the penalized block is ``L + l2``-smooth, and the L1 term is linear on the
#: orthant, so the proximal step has the ceiling of the ridged rule (the proximal-step section
#: of THEORY.md; :func:`ridge`).
CEILING_RULES = {
    "cd": (_two_W, _cd_H),
    "gram": (_two_W, _diag_H),
    "lipschitz": (_lipschitz_W, _lipschitz_H),
    "none": (_plain_W, _plain_H),
}


def ceiling_rule(precondition):
    """``(W_rule, H_rule)`` of a preconditioner (see :data:`CEILING_RULES`)."""
    try:
        return CEILING_RULES[precondition]
    except KeyError:
        raise ValueError(f"precondition must be one of {list(CEILING_RULES)}, "
                         f"got {precondition!r}") from None


def ridge(A, l2, xp=np):
    """``A + l2 I`` for a k x k Gram (``A`` itself when ``l2 == 0``): the curvature of a block
    with the L2 penalty ``l2/2 ||X||^2``."""
    if not l2:
        return A
    return A + l2 * xp.eye(A.shape[0], dtype=A.dtype)


def block_ceilings(precondition, HHt, G, A, scale, *, xp=np, l2_W=0.0, l2_H=0.0):
    r"""Per-block ceilings ``(c_W, c_H)`` of the sequential minibatch scheme (§2.2, §7).

    ``precondition``'s rules (:data:`CEILING_RULES`) times :func:`minibatch_factor` of
    ``scale = m/b``. ``HHt``: ``H H^T``; ``G``: ``W^T W``; ``A``: the H step's curvature
    (``s W_B^T W_B``); ``l2_W``, ``l2_H``: the absolute L2 penalties (ridges; L1 adds no
    curvature). Host floats for numpy, device scalars for another array module.
    """
    rw, rh = ceiling_rule(precondition)
    f = minibatch_factor(scale)
    return (rw(ridge(HHt, l2_W, xp), xp) * f,
            rh(ridge(G, l2_H, xp), ridge(A, l2_H, xp), xp) * f)


#: the factor on every ceiling of a shard's local steps when other shards' rows are stale
#: (p >= 2, THEORY.md 10.3-10.4): the steps are partly simultaneous with respect to the other
#: shards, and the single-machine factor (1 + b/m)/2 leaves the scheme unstable (edge 0.586
#: at p = 4 full batch in the rank-one model; 4 divergences and 31 loss increases in 720 verify
#: runs at or below it). 1/2 is proven for full batches in the rank-one model and gave 0 of
#: the same 720 runs diverging or increasing.
SHARDED_FACTOR = 0.5


def step_factor(scale, sharded: bool = False) -> float:
    """The factor on the per-block ceilings of one step: :func:`minibatch_factor` on one
    machine (or one shard), :data:`SHARDED_FACTOR` for a shard with stale neighbours."""
    return SHARDED_FACTOR if sharded else minibatch_factor(scale)


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
