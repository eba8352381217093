r"""The L1/L2 penalties of a regularized fit, as the engine's models and steps use them.

The regularized objective (scikit-learn's, :mod:`nmf_sched.sklearn_compat`) is

.. math::

    F(W, H) = \tfrac12\|V - WH\|_F^2 + \ell_1^W \textstyle\sum W + \tfrac{\ell_2^W}{2}\|W\|_F^2
              + \ell_1^H \textstyle\sum H + \tfrac{\ell_2^H}{2}\|H\|_F^2,

``sum W`` being ``||W||_1`` on the non-negative orthant, where the iterates live. There the
L1 term is *linear*, so the proximal step of ``l1 ||.||_1`` plus the orthant's indicator,
``max(X - eta g - eta l1, 0)`` (soft-threshold, then project), is the projected gradient
step of the smooth function ``f + l1 sum X``: the L1 part adds nothing to the curvature. The
L2 part adds ``l2 I`` to the block Gram: the W rows' curvature is ``HH^T + l2_W I`` and the H
step's is ``s W_B^T W_B + l2_H I``, so every ceiling rule applies to the ridged Grams
(bounds/THEORY.md, the section on the proximal step).

The penalties are deterministic: a minibatch H step adds them unscaled (its data gradient is
scaled by ``m/b``), and a W_B step adds them for the batch's rows only (rows decouple).

:meth:`Penalty.balance_scale` replaces the norm balancing of unregularized fits: along the
scale symmetry ``w_j d, h_j / d`` (``WH`` unchanged) it takes the ``d`` that minimizes the
penalty (never increasing ``F``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Penalty", "NO_PENALTY"]


@dataclass(frozen=True)
class Penalty:
    """Absolute penalties ``l1_W, l2_W, l1_H, l2_H`` (>= 0; see the module docstring)."""

    l1_W: float = 0.0
    l2_W: float = 0.0
    l1_H: float = 0.0
    l2_H: float = 0.0

    @classmethod
    def from_alphas(cls, alpha_W, alpha_H, l1_ratio, m, n) -> "Penalty":
        """scikit-learn's scaling: ``n alpha_W`` on W, ``m alpha_H`` on H (``m`` samples)."""
        from ..sklearn_compat import penalties

        return cls(*(float(x) for x in penalties(alpha_W, alpha_H, l1_ratio, m, n)))

    @property
    def active(self) -> bool:
        return bool(self.l1_W or self.l2_W or self.l1_H or self.l2_H)

    @property
    def on_W(self) -> bool:
        return bool(self.l1_W or self.l2_W)

    @property
    def on_H(self) -> bool:
        return bool(self.l1_H or self.l2_H)

    # ------------------------------------------------------------------ values
    def value_W(self, W, xp=np):
        """``l1_W sum(W) + l2_W/2 ||W||^2`` (float64; W >= 0)."""
        return self._value(W, self.l1_W, self.l2_W, xp)

    def value_H(self, Ht, xp=np):
        return self._value(Ht, self.l1_H, self.l2_H, xp)

    @staticmethod
    def _value(X, l1, l2, xp):
        out = 0.0
        if l1:
            out = out + l1 * X.sum(dtype=xp.float64)
        if l2:
            Xr = X.ravel()
            out = out + 0.5 * l2 * xp.vdot(Xr, Xr)
        return float(out) if xp is np else out

    def value_sums(self, wsum, wsq, hsum, hsq) -> float:
        """The penalty from the factors' totals (``sum W``, ``||W||^2``, ``sum H``, ``||H||^2``)."""
        return float(self.l1_W * wsum + 0.5 * self.l2_W * wsq
                     + self.l1_H * hsum + 0.5 * self.l2_H * hsq)

    # ------------------------------------------------------------------ gradients
    def grad_W(self, g, W):
        """``g + l2_W W + l1_W`` (in place on ``g``: a fresh gradient)."""
        return self._grad(g, W, self.l1_W, self.l2_W)

    def grad_H(self, g, Ht):
        return self._grad(g, Ht, self.l1_H, self.l2_H)

    @staticmethod
    def _grad(g, X, l1, l2):
        if l2:
            g += g.dtype.type(l2) * X
        if l1:
            g += g.dtype.type(l1)
        return g

    @staticmethod
    def ridge(A, l2, xp=np):
        """``A + l2 I`` (a copy; ``A`` itself when ``l2 == 0``): the values of
        :func:`nmf_sched.bounds.ridge`, bit for bit, without building an identity (this runs
        several times per step)."""
        if not l2:
            return A
        R = A.copy()
        R.reshape(-1)[:: R.shape[0] + 1] += l2
        return R

    @staticmethod
    def column_totals(W, Ht, xp=np):
        """``(sum w_j, ||w_j||^2, sum h_j, ||h_j||^2)`` per component (float64, no copies of
        the factors on the host)."""
        if xp is np:
            f64 = np.float64
            return (W.sum(axis=0, dtype=f64), np.einsum("ij,ij->j", W, W, dtype=f64),
                    Ht.sum(axis=0, dtype=f64), np.einsum("ij,ij->j", Ht, Ht, dtype=f64))
        W64, H64 = W.astype(xp.float64), Ht.astype(xp.float64)
        return W64.sum(axis=0), (W64 * W64).sum(axis=0), H64.sum(axis=0), (H64 * H64).sum(axis=0)

    # ------------------------------------------------------------------ balancing
    def balance_scale(self, wsum, wsq, hsum, hsq, xp=np):
        r"""Per-component ``d`` (``w_j *= d``, ``h_j /= d``) that never increases ``F``.

        With ``a = l1_W sum w_j``, ``b = l1_H sum h_j``, ``c = l2_W ||w_j||^2 / 2``,
        ``e = l2_H ||h_j||^2 / 2``, the penalty along the symmetry is
        :math:`\phi(t) = a e^t + b e^{-t} + c e^{2t} + e e^{-2t}` (``d = e^t``), convex in
        ``t``. Both blocks penalized: its minimizer (damped Newton on the increasing
        :math:`\phi'`). One block penalized: the norm balance ``sqrt(||h_j|| / ||w_j||)``
        but only in the direction that shrinks the penalized block (the penalty has no
        minimizer then). Columns with a zero or non-finite total keep ``d = 1``.
        """
        wn, hn = xp.sqrt(wsq), xp.sqrt(hsq)
        ok = (wn > 0) & (hn > 0) & xp.isfinite(wn) & xp.isfinite(hn)
        if not (self.on_W and self.on_H):
            d0 = xp.sqrt(hn / xp.where(ok, wn, 1.0))
            d0 = xp.minimum(d0, 1.0) if self.on_W else xp.maximum(d0, 1.0)
            return xp.where(ok, d0, 1.0)
        a, b = self.l1_W * wsum, self.l1_H * hsum
        c, e = 0.5 * self.l2_W * wsq, 0.5 * self.l2_H * hsq
        if xp is np:  # the same iteration, column by column in one compiled loop
            from ..kernels.cpu import penalty_balance

            return penalty_balance(*(np.ascontiguousarray(x, dtype=np.float64)
                                     for x in (a, b, c, e)), ok)
        # phi' = a u - b/u + 2c u^2 - 2e/u^2 is increasing in t (phi'' > 0): damped Newton
        # from the ratio of its falling and rising parts at t = 0
        t = 0.5 * xp.log(xp.where(ok, (b + 2.0 * e) / xp.where(ok, a + 2.0 * c, 1.0), 1.0))
        for _ in range(40):
            u = xp.exp(t)
            slope = a * u - b / u + 2.0 * c * u * u - 2.0 * e / (u * u)
            curv = a * u + b / u + 4.0 * c * u * u + 4.0 * e / (u * u)
            dt = xp.clip(-slope / xp.where(ok, curv, 1.0), -2.0, 2.0)
            t = t + xp.where(ok, dt, 0.0)
            if float(xp.abs(dt).max()) < 1e-13:
                break
        return xp.where(ok, xp.exp(t), 1.0)


NO_PENALTY = Penalty()
