r"""The online noise estimate of the row model and the noise-aware ceiling it enforces.

Two noise sources reach the steps of :class:`~nmf_sched.engine.rows.RowModel`: the research
model's additive Gaussian gradient noise (``noise_std = sigma`` per entry) and, for row
batches (``b < m``), the sampling noise of the H gradient estimate ``s W_B^T (W_B H - V_B)``.
Per block, in the metric of the preconditioner (weights ``w_c``: ``1/X_cc`` for ``"cd"`` and
``"gram"``, ``1/lambda_max`` for ``"lipschitz"``, 1 for ``"none"``), the tracker estimates

* ``s_W^2 = sigma^2 m sum_c w_c`` (every row once per epoch) and ``||G_W||^2``, the gradient
  mapping of the W rows at the step (summed over the epoch's batches, from the batch products
  ``P = V_B H^T`` and ``W_B HH^T`` the step has);
* ``s_H^2 = sigma^2 n sum_c w_c + m(m-b)/(b(m-1)) (sum_i ||w_i||_w^2 ||r_i||^2 -
  ||grad_H||_w^2 / m)``, the exact variance of the sampled H gradient (rows without
  replacement, rank-one terms ``w_i r_i^T``; the per-row residual norms come from ``P`` and
  the backend's squared row norms), and ``||G_H||^2`` from the exact H gradient ``H^T G - V^T W`` at
  the end of the epoch (``V^T W`` is the epoch's accumulator: no extra product);

and sets, for the next epoch, the noise-aware ceilings of bounds/THEORY.md §3.2
(:func:`nmf_sched.bounds.noise.projected_noise_ceiling`, the projection bias omitted):

.. math::

    c^{noise}_X = c_X^{full}\,\frac{\|G_X\|^2}{\|G_X\|^2 + s_X^2},

with ``c^full`` the preconditioner's rule on the full-data curvature. The step then runs at
``min(c_X^{seq}, c^{noise}_X)`` where ``c^seq`` is the noise-free sequential ceiling. The
trace records ``noise_var_W``, ``noise_var_H``, ``ceiling_noise_W``, ``ceiling_noise_H`` and
``floor``, the predicted stationary excess loss at the epoch's mean steps
(:func:`nmf_sched.bounds.noise.stationary_floor`, per block, summed).

Cost: nothing for a noise-free full batch (the tracker is off). With row batches,
``O(b k^2)`` per step (the rows' residual norms) and ``O(n k^2)`` per epoch; with injected
noise, also the W gradient mapping (``O(b k^2)`` per step) and two full products at the init.
The sharded scheme (stale blocks) is not covered: the tracker is off there.
"""
from __future__ import annotations

import math

import numpy as np

from .. import bounds
from ..bounds.noise import stationary_floor

__all__ = ["NoiseTracker"]

_EMPTY_FIELDS = {"noise_var_W": 0.0, "noise_var_H": 0.0, "ceiling_noise_W": math.inf,
                 "ceiling_noise_H": math.inf, "floor": 0.0}


def _rowsq(VB, xp):
    """Squared norms of the rows of a dense or sparse batch (float64, length b)."""
    if hasattr(VB, "multiply") and not isinstance(VB, np.ndarray):
        return xp.asarray(VB.multiply(VB).sum(axis=1), dtype=xp.float64).ravel()
    V64 = VB.astype(xp.float64, copy=False)
    return xp.einsum("ij,ij->i", V64, V64)


class NoiseTracker:
    """Online noise estimate and noise-aware ceilings of one :class:`RowModel` (module
    docstring). ``active`` is False for a noise-free full batch, for shards and with
    ``RowConfig(noise_ceiling=False)``."""

    def __init__(self, model):
        self.model = model
        self.xp = model.xp
        self.sigma = float(getattr(model.be, "noise_std", 0.0))
        self.m, self.n, self.b = model.m, model.n, model.b
        self.minibatch = self.b < self.m
        self.active = ((self.sigma > 0 or self.minibatch) and model.rest is None
                       and getattr(model.cfg, "noise_ceiling", True))
        self.factor = bounds.step_factor(self.m / self.b)
        self.rW = 1.0            # fraction of the noise-free W ceiling allowed
        self.capH = math.inf     # absolute cap on the H ceiling
        self.fields = dict(_EMPTY_FIELDS)
        self.name = model.pre.name

    # ------------------------------------------------------------------ metric weights
    def _weights(self, X):
        """Per-column metric weights of the preconditioner for the Gram ``X`` (float64)."""
        xp = self.xp
        k = X.shape[0]
        if self.name in ("cd", "gram"):
            return 1.0 / bounds.safe_diag(X, xp)
        if self.name == "lipschitz":
            L = float(self.model.be.fetch(bounds.ceilings._lmax_xp(X, xp))[0])
            return xp.full(k, 1.0 / L if L > 0 else 1.0)
        return xp.ones(k)

    # ------------------------------------------------------------------ per step
    def new_acc(self) -> dict:
        return {"nz_gW": 0.0, "nz_sW": 0.0, "nz_spread": 0.0} if self.active else {}

    def observe(self, idx, VB, WB, P, HHt, cW, acc):
        """Statistics of one batch before its W step: the W rows' gradient mapping (injected
        noise) and the sampling spread of the H gradient (row batches)."""
        if not self.active:
            return
        xp = self.xp
        W64 = WB.astype(xp.float64)
        WH = W64 @ HHt.astype(xp.float64)
        if self.sigma > 0:
            wW = self._weights(HHt)
            g = WH - P
            c = min(cW, 1e300) if self.model.be.host else xp.minimum(cW, 1e300)
            eta = (self.model.ctl.kappa * self.rW) * c * wW
            Gm = (W64 - xp.maximum(W64 - eta * g, 0.0)) / eta
            acc["nz_gW"] = acc["nz_gW"] + (Gm * Gm * wW).sum()
            acc["nz_sW"] = acc["nz_sW"] + self.sigma ** 2 * WB.shape[0] * float(wW.sum())
        if self.minibatch:
            rs = getattr(self.model.be, "row_sq", None)
            vr = rs[idx] if rs is not None else _rowsq(VB, xp)
            r2 = xp.maximum(vr - 2.0 * xp.einsum("ij,ij->i", W64, P) + xp.einsum("ij,ij->i", WH, W64), 0.0)
            wH = self._weights(self.model.G)
            acc["nz_spread"] = acc["nz_spread"] + ((W64 * W64) @ wH * r2).sum()

    def cap_W(self, cW):
        return cW * self.rW if self.active and self.rW < 1.0 else cW

    def cap_H(self, cH):
        if not self.active or not math.isfinite(self.capH):
            return cH
        return min(cH, self.capH) if self.model.be.host else self.xp.minimum(cH, self.capH)

    def state(self) -> dict:
        """What a checkpoint carries: the ceilings set for the next epoch."""
        return {"nz_state": np.array([self.rW, self.capH])} if self.active else {}

    def load(self, arrays):
        if self.active and "nz_state" in arrays:
            self.rW, self.capH = (float(v) for v in np.asarray(arrays["nz_state"]))

    # ------------------------------------------------------------------ per epoch
    def update(self, A, acc=None, steps=None):
        """New noise-aware ceilings from the factors, ``A = V^T W`` and the epoch's
        accumulators (None at the init: the W statistics come from a full product).
        ``steps``: the epoch's mean ``(eta_W, eta_H)`` for the predicted floor. Returns the
        trace fields."""
        if not self.active:
            return dict(_EMPTY_FIELDS)
        md, xp = self.model, self.xp
        fetch = md.be.fetch
        W, Ht = md.W, md.Ht
        G = (W.T @ W).astype(xp.float64)
        HHt = (Ht.T @ Ht).astype(xp.float64)
        kappa = md.ctl.kappa
        # ---- H: the exact gradient, its mapping, the injected and the sampling variance
        wH = self._weights(G)
        cH_full = float(fetch(md.pre.rule_H(G, G, xp))[0])
        H64 = Ht.astype(xp.float64)
        gH = H64 @ G - A.astype(xp.float64)
        gsq_H = float(fetch(((gH * gH) @ wH).sum())[0])
        if math.isfinite(cH_full) and cH_full > 0:
            eta = kappa * cH_full * wH
            Gm = (H64 - xp.maximum(H64 - eta * gH, 0.0)) / eta
            gm_H = float(fetch(((Gm * Gm) @ wH).sum())[0])
        else:
            gm_H = gsq_H
        s_H = self.sigma ** 2 * self.n * float(fetch(wH.sum())[0])
        if self.minibatch and acc is not None:
            m, b = self.m, self.b
            spread = float(fetch(acc["nz_spread"])[0])
            s_H += m * (m - b) / (b * (m - 1)) * max(spread - gsq_H / m, 0.0)
        rho_H = gm_H / (gm_H + s_H) if s_H > 0 else 1.0
        self.capH = cH_full * rho_H if s_H > 0 else math.inf
        # ---- W: the injected noise against the rows' gradient mapping
        cW_full = float(fetch(md.pre.rule_W(HHt, xp))[0])
        if self.sigma > 0:
            if acc is None:  # at the init: one full product
                P = md.be.prod_P(md.be.gather(None), Ht)
                wW = self._weights(HHt)
                W64 = W.astype(xp.float64)
                g = W64 @ HHt - P
                eta = kappa * min(cW_full * self.factor, 1e300) * wW
                Gm = (W64 - xp.maximum(W64 - eta * g, 0.0)) / eta
                gm_W = float(fetch((Gm * Gm * wW).sum())[0])
                s_W = self.sigma ** 2 * self.m * float(fetch(wW.sum())[0])
            else:
                gm_W, s_W = (float(v) for v in fetch(acc["nz_gW"], acc["nz_sW"]))
            rho_W = gm_W / (gm_W + s_W) if s_W > 0 else 1.0
            self.rW = min(1.0, rho_W / self.factor)
        else:
            s_W, rho_W = 0.0, 1.0
        # ---- the predicted floor at the steps taken (or the enforced ceilings at the init)
        eW, eH = steps if steps is not None else (
            kappa * cW_full * min(self.factor, rho_W), kappa * min(cH_full * self.factor, self.capH))
        LmW = 2.0 / cW_full if cW_full > 0 else math.inf
        LmH = 2.0 / cH_full if cH_full > 0 else math.inf
        floor = stationary_floor(eW, LmW, s_W) + stationary_floor(eH, LmH, s_H)
        self.fields = {"noise_var_W": s_W, "noise_var_H": s_H,
                       "ceiling_noise_W": cW_full * rho_W if s_W > 0 else math.inf,
                       "ceiling_noise_H": self.capH, "floor": floor}
        return dict(self.fields)
