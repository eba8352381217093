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
  ||grad_H||_w^2 / m)`` (the second term weighted by :meth:`NoiseTracker._delta` in the
  ceiling: random reshuffling), the exact variance of the sampled H gradient (rows without
  replacement, rank-one terms ``w_i r_i^T``; the per-row residual norms come from ``P`` and
  the backend's squared row norms), and ``||G_H||^2`` from the exact H gradient ``H^T G - V^T W`` at
  the end of the epoch (``V^T W`` is the epoch's accumulator: no extra product);

and sets, for the next epoch, the noise-aware ceilings of bounds/THEORY.md §3.2
(:func:`nmf_sched.bounds.noise.projected_noise_ceiling`; shown for ``q = 1/2``, the expected
descent at least half the noise-free one):

.. math::

    c^{noise}_X = c_X^{full}\,\frac{\|G_X\|^2/2 - \beta_X}{\|G_X\|^2/2 + s_X^2},

with ``c^full`` the preconditioner's rule on the full-data curvature. The step then runs at
``min(c_X^{seq}, c^{noise}_X)`` where ``c^seq`` is the noise-free sequential ceiling. The
trace records ``noise_var_W``, ``noise_var_H``, ``ceiling_noise_W``, ``ceiling_noise_H`` and
``floor``, the predicted stationary excess loss at the epoch's mean steps
(:func:`nmf_sched.bounds.noise.stationary_floor`, per block, summed).

Cost: nothing for a noise-free full batch (the tracker is off). Otherwise the per-batch
statistics are taken on the first :data:`OBSERVED` batches of each epoch (random rows; the
sums scaled by ``m`` over the rows seen): ``O(b k^2)`` each (the rows' residual norms), plus
``O(n k^2)`` per epoch; with injected noise, also the W gradient mapping and the projection
bias ``beta`` (``O(b k)`` erfc, host arrays; the gradient at ``x`` stands in for the one at
the noise-free step; ``beta`` of the sampling noise is not estimated) and two full products
at the init. With injected noise the ceiling keeps half the noise-free expected descent
(``q = 1/2``); with the sampling noise alone it only forbids an expected increase (``q = 0``).
The sharded scheme (stale blocks) and penalized fits are not covered: the tracker is off there.
"""
from __future__ import annotations

import math

import numpy as np

from .. import bounds
from ..bounds.noise import excess_psi, projected_noise_ceiling, stationary_floor
from ..kernels.noise import curve_parts, gmap

#: the guaranteed fraction ``q`` of the noise-free expected descent (bounds/noise.py) with
#: injected noise; with the sampling noise alone ``q = 0`` (no expected increase): the default
#: fit's steps (benchmarks/bench_noise_ceiling.py)
DESCENT = 0.5
#: batches per epoch whose statistics are taken (the first ones of the random order; the
#: sums are scaled by ``m / rows seen``): the estimate's cost stays a few steps' worth
OBSERVED = 4
#: bisection steps (log10 scale over [1e-14, 1]) of the implicit condition
#: (:meth:`NoiseTracker._rho`): resolution 10^(14/2^BISECT)
BISECT = 16

__all__ = ["NoiseTracker"]

_EMPTY_FIELDS = {"noise_var_W": 0.0, "noise_var_H": 0.0, "ceiling_noise_W": math.inf,
                 "ceiling_noise_H": math.inf, "floor": 0.0}


def _rowsq(VB, xp, chunk=256):
    """Squared norms of the rows of a dense or sparse batch (float64, length b), in row
    chunks (no float64 copy of the batch: out-of-core batches stay within their block)."""
    if hasattr(VB, "multiply") and not isinstance(VB, np.ndarray):
        return xp.asarray(VB.multiply(VB).sum(axis=1), dtype=xp.float64).ravel()
    out = xp.empty(VB.shape[0], dtype=xp.float64)
    for a in range(0, VB.shape[0], chunk):
        blk = VB[a:a + chunk].astype(xp.float64)
        out[a:a + chunk] = xp.einsum("ij,ij->i", blk, blk)
    return out


class NoiseTracker:
    """Online noise estimate and noise-aware ceilings of one :class:`RowModel` (module
    docstring). ``active`` is False for a noise-free full batch, for shards, with penalties
    (their gradient terms are not modelled) and with ``RowConfig(noise_ceiling=False)``."""

    def __init__(self, model):
        self.model = model
        self.xp = model.xp
        self.sigma = float(getattr(model.be, "noise_std", 0.0))
        self.m, self.n, self.b = model.m, model.n, model.b
        self.minibatch = self.b < self.m
        self.active = ((self.sigma > 0 or self.minibatch) and model.rest is None
                       and not model.pen.active and getattr(model.cfg, "noise_ceiling", True))
        self.factor = bounds.step_factor(self.m / self.b)
        self.rW = 1.0            # fraction of the noise-free W ceiling allowed
        self.capH = math.inf     # absolute cap on the H ceiling
        self.fields = dict(_EMPTY_FIELDS)
        self.name = model.pre.name
        self.q = DESCENT if self.sigma > 0 else 0.0

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
        return ({"nz_gW": 0.0, "nz_sW": 0.0, "nz_bW": 0.0, "nz_spread": 0.0, "nz_rows": 0,
                 "nz_obs": 0} if self.active else {})

    def _bias(self, X, g, eta, w):
        """An estimate of the projection bias ``beta`` of the injected noise at the step
        ``eta`` (host arrays only): the gradient at ``x`` stands in for the one at the
        noise-free step (close for the small steps where it matters), and only its positive
        part counts (the projection's help where ``grad < 0`` is not relied on)."""
        if self.xp is not np:
            return 0.0
        u = np.abs(X / eta - g) / self.sigma
        return self.sigma * float(((np.maximum(g, 0.0) * excess_psi(u)) * w).sum())

    def _gmap(self, X, g, eta, w):
        """``||G_eta(X)||_w^2`` (one pass over the block; compiled on the host)."""
        xp = self.xp
        if xp is np and X.ndim == 2 and np.ndim(eta) <= 1 and np.ndim(w) <= 1:
            return gmap(X, g, eta, w)
        Gm = (X - xp.maximum(X - eta * g, 0.0)) / eta
        return float(self.model.be.fetch((Gm * Gm * w).sum())[0])

    def _curve(self, X, g, eta, w):
        """``r -> ||G_{r eta}(X)||_w^2`` for ``0 < r <= 1``: :meth:`_gmap` at ``r eta``, from
        one sort (host arrays; :meth:`_gmap` on a device). An entry with ``g > 0`` is cut by
        the projection iff ``r > t = X / (eta g)``: then its mapping is ``X / (r eta)``, else
        ``g``; entries with ``g <= 0`` are never cut. For ``r <= 1`` the entries with
        ``t >= 1`` are never cut and those with ``t = 0`` (``X = 0``) always are, with a zero
        mapping: only ``0 < t < 1`` is sorted (on sparse factors a small part of the block)."""
        if self.xp is not np:
            return lambda r: self._gmap(X, g, eta * r, w)
        a0, t, wg2, xe2 = curve_parts(X, g, eta * np.ones_like(w), w)
        order = np.argsort(t)
        t = t[order]
        A = np.concatenate(([0.0], np.cumsum(wg2[order])))
        B = np.concatenate(([0.0], np.cumsum(xe2[order])))

        def value(r):
            if not 0 < r <= 1:
                return self._gmap(X, g, eta * r, w)
            j = int(np.searchsorted(t, r, side="left"))   # entries cut at the step r eta
            return a0 + (A[-1] - A[j]) + B[j] / (r * r)
        return value

    def _delta(self, rho):
        """The weight of the sampling variance at the step ``rho x`` the full ceiling:
        ``min(1, (eta L)^2 M^2 / 12)`` with ``eta L = 2 kappa rho`` and ``M = m/b`` batches
        per epoch (random reshuffling, THEORY.md §3.2: the batch errors of an epoch sum to
        zero, so their effect over the epoch is second order in ``eta L M``; this is the
        large-``M`` form of ``(eta L)^2 M (M+1) / 12``, a first-order heuristic)."""
        x = 2.0 * self.model.ctl.kappa * float(rho) * self.m / self.b
        if not x < 4.0:   # (x^2 / 12 >= 1), and inf / nan from a diverging step
            return 1.0
        return x * x / 12.0

    def _rho(self, X, g, eta, w, s_inj, s_samp=0.0):
        """``(rho, ||G||^2, beta)`` of one block at the noise-free step ``eta``.

        The condition of THEORY.md §3.2 is implicit: ``rho`` must hold with the gradient
        mapping (non-increasing in the step) and the sampling weight :meth:`_delta`
        (non-decreasing) at the step ``rho eta`` it allows, so the ``rho`` that hold form an
        interval ``[0, rho*]``: bisection (log scale) for ``rho*``. The bias ``beta`` is
        evaluated at the final step and can only lower ``rho``."""
        curve = None

        def ratio(r):
            gm = self._gmap(X, g, eta * r, w) if curve is None else curve(r)
            return projected_noise_ceiling(1.0, gm, s_inj + self._delta(r) * s_samp, 0.0,
                                           self.q), gm

        r1, gm = ratio(1.0)        # one pass; the sort only when the cap binds
        if s_inj + s_samp <= 0 or r1 >= 1.0:
            rho = r1 if s_inj + s_samp > 0 else 1.0
        else:
            curve = self._curve(X, g, eta, w)
            lo, hi = -14.0, 0.0      # log10 rho: lo holds (or rho = 0), hi does not
            rlo, gm = ratio(10.0 ** lo)
            if rlo < 10.0 ** lo:
                return 0.0, gm, 0.0
            for _ in range(BISECT):
                mid = 0.5 * (lo + hi)
                rm, gmm = ratio(10.0 ** mid)
                if rm >= 10.0 ** mid:
                    lo, gm = mid, gmm
                else:
                    hi = mid
            rho = 10.0 ** lo
        if self.sigma <= 0 or rho <= 0:
            return rho, gm, 0.0
        beta = self._bias(X, g, eta * rho, w)
        s2 = s_inj + self._delta(rho) * s_samp
        return min(rho, projected_noise_ceiling(1.0, gm, s2, beta, self.q)), gm, beta

    def observe(self, idx, VB, WB, P, HHt, cW, acc):
        """Statistics of one batch before its W step: the W rows' gradient mapping (injected
        noise) and the sampling spread of the H gradient (row batches)."""
        if not self.active or acc["nz_obs"] >= OBSERVED:
            return
        acc["nz_obs"] += 1
        acc["nz_rows"] += WB.shape[0]
        xp = self.xp
        W64 = WB.astype(xp.float64)
        WH = W64 @ HHt.astype(xp.float64)
        if self.sigma > 0:
            wW = self._weights(HHt)
            g = WH - P
            c = min(cW, 1e300) if self.model.be.host else xp.minimum(cW, 1e300)
            eta = self.model.ctl.kappa * c * wW
            Gm = (W64 - xp.maximum(W64 - eta * g, 0.0)) / eta
            acc["nz_gW"] = acc["nz_gW"] + (Gm * Gm * wW).sum()
            # the bias at (about) the step the cap allows: the last ratio, floored
            acc["nz_bW"] = acc["nz_bW"] + self._bias(W64, g, eta * max(self.rW, 1e-6), wW)
            acc["nz_sW"] = acc["nz_sW"] + self.sigma ** 2 * WB.shape[0] * float(wW.sum())
        if self.minibatch:
            rs = getattr(self.model.be, "row_sq", None)
            vr = rs[idx] if rs is not None else _rowsq(VB, xp)
            r2 = xp.maximum(vr - 2.0 * xp.einsum("ij,ij->i", W64, P) + xp.einsum("ij,ij->i", WH, W64), 0.0)
            wH = self._weights(self.model.G)
            acc["nz_spread"] = acc["nz_spread"] + ((W64 * W64) @ wH * r2).sum()

    def _sampling(self, acc, gsq_H):
        """The exact sampling variance of the H gradient (module docstring)."""
        m, b = self.m, self.b
        spread = float(self.model.be.fetch(acc["nz_spread"])[0]) * m / max(acc["nz_rows"], 1)
        return m * (m - b) / (b * (m - 1)) * max(spread - gsq_H / m, 0.0)

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
        G = md.G.astype(xp.float64)       # W^T W, kept current by the model
        HHt = (Ht.T @ Ht).astype(xp.float64)
        kappa = md.ctl.kappa
        # ---- H: the exact gradient, its mapping, the injected and the sampling variance
        wH = self._weights(G)
        cH_full = float(fetch(md.pre.rule_H(G, G, xp))[0])
        H64 = Ht.astype(xp.float64, copy=False)
        gH = H64 @ G - A.astype(xp.float64, copy=False)
        gsq_H = float(fetch(((gH * gH) @ wH).sum())[0])
        s_inj = self.sigma ** 2 * self.n * float(fetch(wH.sum())[0])
        s_samp = self._sampling(acc, gsq_H) if self.minibatch and acc is not None else 0.0
        if math.isfinite(cH_full) and cH_full > 0:
            rho_H, _, b_H = self._rho(H64, gH, kappa * cH_full * wH, wH, s_inj, s_samp)
        else:
            rho_H, b_H = 1.0, 0.0
        s_H = s_inj + s_samp
        self.capH = cH_full * rho_H if s_H > 0 or b_H > 0 else math.inf
        # ---- W: the injected noise against the rows' gradient mapping
        cW_full = float(fetch(md.pre.rule_W(HHt, xp))[0])
        if self.sigma > 0:
            if acc is None:  # at the init: one full product
                P = md.be.prod_P(md.be.gather(None), Ht)
                wW = self._weights(HHt)
                W64 = W.astype(xp.float64)
                g = W64 @ HHt - P
                s_W = self.sigma ** 2 * self.m * float(fetch(wW.sum())[0])
                eta = kappa * min(cW_full * self.factor, 1e300) * wW
                rho_W = self._rho(W64, g, eta, wW, s_W)[0]
            else:
                gm_W, s_W, b_W = (float(v) * self.m / max(acc["nz_rows"], 1)
                                  for v in fetch(acc["nz_gW"], acc["nz_sW"], acc["nz_bW"]))
                rho_W = projected_noise_ceiling(1.0, gm_W, s_W, b_W, self.q)
            self.rW = min(1.0, rho_W / self.factor)
        else:
            s_W, rho_W = 0.0, 1.0
        # ---- the predicted floor at the steps taken (or the enforced ceilings at the init)
        eW, eH = steps if steps is not None else (
            kappa * cW_full * min(self.factor, rho_W), kappa * min(cH_full * self.factor, self.capH))
        LmW = 2.0 / cW_full if cW_full > 0 else math.inf
        LmH = 2.0 / cH_full if cH_full > 0 else math.inf
        # H: the sampling variance weighted at the step taken (random reshuffling, _delta)
        s_eff = s_inj + self._delta(eH * LmH / (2.0 * kappa) if math.isfinite(LmH) else 1.0) * s_samp
        floor = stationary_floor(eW, LmW, s_W) + stationary_floor(eH, LmH, s_eff)
        self.fields = {"noise_var_W": s_W, "noise_var_H": s_H,
                       "ceiling_noise_W": cW_full * rho_W if s_W > 0 else math.inf,
                       "ceiling_noise_H": self.capH, "floor": floor}
        return dict(self.fields)
