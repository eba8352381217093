r"""Stability ceilings for projected (stochastic) gradient steps on NMF.

The solver calls :func:`step_ceilings` at every minibatch step; it costs two
k x k eigenproblems. The derivation lives in ``bounds/THEORY.md``.

Per block, the loss is a quadratic whose curvature is a k x k Gram matrix:

* ``W`` rows (any batch): :math:`L_W = \lambda_{\max}(HH^\top)`;
* ``H`` from a row batch ``B`` of ``b`` out of ``m`` rows, gradient scaled by
  ``s = m/b`` (unbiased): :math:`L_H^B = s\,\lambda_{\max}(W_B^\top W_B)`.

A projected step ``X+ = max(0, X - eta g)`` on an L-smooth convex block never
increases that block's loss when ``0 < eta <= 2/L`` (descent lemma plus the
non-expansiveness of the projection), so the ceiling of a block is ``2/L``.

With a preconditioner the LR becomes dimensionless:

* ``"lipschitz"``: direction ``g / L_ref`` with ``L_ref`` the full-data block
  curvature, ceiling ``2 L_ref / L``;
* ``"gram"``: direction ``g P^{-1}`` with ``P = HH^T`` (W block) and
  ``P = W^T W`` (H block, the full Gram), ceiling
  ``2 / lambda_max(P^{-1} L_batch)``: exactly 2 for W.
"""
from __future__ import annotations

import numpy as np

__all__ = ["lmax", "gen_lmax", "step_ceilings", "PRECONDITIONERS"]

PRECONDITIONERS = ("none", "lipschitz", "gram")


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


def step_ceilings(HHt, GB, scale, *, precondition="none", G=None, G_inv_sqrt=None):
    """Per-block ceilings ``(ceiling_W, ceiling_H)`` in the LR's unit.

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

    Returns
    -------
    (float, float)
        ``inf`` where the curvature is zero (the block's loss is flat).
    """
    LW = lmax(HHt)
    if precondition == "gram":
        cW = 2.0
        LH = scale * gen_lmax(GB, G_inv_sqrt)
        cH = 2.0 / LH if LH > 0 else np.inf
        return cW, cH
    LH = scale * lmax(GB)
    if precondition == "lipschitz":
        cW = 2.0 if LW > 0 else np.inf
        Lref = lmax(G)
        cH = 2.0 * Lref / LH if LH > 0 else np.inf
        return cW, cH
    cW = 2.0 / LW if LW > 0 else np.inf
    cH = 2.0 / LH if LH > 0 else np.inf
    return cW, cH
