r"""Signals a schedule asks for through ``needs``, other than the ceilings.

``"grad_dot"`` (hypergradient descent): :class:`GradDot`, fed by a model's steps.
``"probe"`` (stochastic line search): a callable each model builds (``Model.probe``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["GradDot"]


class GradDot:
    r"""Hypergradient signals, summed over the steps since the last tick.

    After each block step the displacement per unit LR, :math:`u = (X_{old} - X_{new}) / \eta`
    (which includes the projection and the preconditioner), is kept per row; the next step on
    those rows contributes :math:`h = g \odot u_{prev}` (:math:`g` the new step's gradient),
    the hypergradient :math:`-\partial f / \partial \eta` of Baydin et al.
    ``pop()`` returns ``{"W", "H"}`` (sums of h), ``{"W_g2", "H_g2", "W_u2", "H_u2"}`` (squared
    norms of g and of u_prev) and ``{"W_entry" (m x k), "H_entry" (k x n)}`` (h per entry).

    ``xp`` is the array module of the factors (host floats are read at every step).
    """

    def __init__(self, m, n, k, xp=np):
        self.xp = xp
        self.u = {"W": xp.zeros((m, k)), "H": xp.zeros((n, k))}
        self._zero()

    def _zero(self):
        self.acc = {"W": 0.0, "H": 0.0, "W_g2": 0.0, "H_g2": 0.0, "W_u2": 0.0, "H_u2": 0.0}
        self.entry = {b: self.xp.zeros_like(u) for b, u in self.u.items()}

    def add(self, block, idx, g, X_old, X_new, eta):
        xp = self.xp
        rows = slice(None) if idx is None else idx
        u_prev = self.u[block][rows]
        h = g * u_prev
        self.acc[block] += float(h.sum())
        self.acc[block + "_g2"] += float(xp.vdot(g.ravel(), g.ravel()))
        self.acc[block + "_u2"] += float(xp.vdot(u_prev.ravel(), u_prev.ravel()))
        self.entry[block][rows] += h
        eta = xp.asarray(eta, dtype=xp.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = xp.where(eta > 0, (X_old - X_new) / xp.where(eta > 0, eta, 1.0), 0.0)
        self.u[block][rows] = u

    def rescale(self, d):
        """Follow a component balancing ``W -> W diag(d)``, ``H -> diag(d)^-1 H``: the stored
        displacements are expressed in the new coordinates."""
        self.u["W"] *= d
        self.u["H"] /= d

    def pop(self) -> dict:
        out = dict(self.acc, W_entry=self.entry["W"], H_entry=self.entry["H"].T)
        self._zero()
        return out

    def reset(self):
        m, k = self.u["W"].shape
        self.__init__(m, self.u["H"].shape[0], k, self.xp)

    # checkpoint: the displacements carry over ticks; the sums are zero at a tick
    def arrays(self) -> dict:
        return {"gd_uW": self.u["W"], "gd_uH": self.u["H"]}

    def load(self, arrays: dict):
        self.u["W"][...] = self.xp.asarray(arrays["gd_uW"])
        self.u["H"][...] = self.xp.asarray(arrays["gd_uH"])
        self._zero()
