r"""Preconditioners: the per-block ceilings, the W step and the H step of one minibatch.

One object per ``precondition`` (``"cd"``, ``"gram"``, ``"lipschitz"``, ``"none"``), built
on a backend (:mod:`nmf_sched.engine.backends`), so the same object steps numpy, CuPy and
the shards of a Dask run. The ceilings come from the rules of :mod:`nmf_sched.bounds`
(:data:`~nmf_sched.bounds.CEILING_RULES`), the one place that states them.

With ``P_W``, ``P_H`` the preconditioner, ``s = m/b``, and the H step's curvature
``A = s W_B^T W_B`` (plus the stale blocks' Gram in the sharded scheme, bounds/THEORY.md 10):

.. math::

    W_B &\leftarrow \Pi\big(W_B - \eta_W\,(W_B HH^\top - V_B H^\top + \xi_W) P_W^{-1}\big) \\
    H^\top &\leftarrow \Pi\big(H^\top - \eta_H\,(H^\top A - C + \xi_H) P_H^{-1}\big),
    \qquad C = s\,V_B^\top W_B\ (+\ \text{stale blocks' } V^\top W)

``"cd"``: the rows' coordinates in Gauss–Seidel order with steps ``eta / X_cc`` (the
kernel of :mod:`nmf_sched.kernels`); ``"gram"``: ``P_W = HH^T`` and ``P_H = diag(W^T W)``
(the full Gram metric breaks the projected H step, THEORY.md 7); ``"lipschitz"``: each
block's gradient over its curvature; ``"none"``: plain SGD (absolute LR).
``Pi`` clips at 0 (and at ``max_value``); ``clip_update`` bounds every entry's change.

With penalties (:mod:`nmf_sched.engine.penalty`) every gradient gains ``l2 X + l1`` (the
proximal step of the L1 term on the orthant: soft-threshold, then project) and every Gram
that scales a step or sets a ceiling gains ``l2 I``: ``HH^T + l2_W I`` for the W rows,
``A + l2_H I`` and ``W^T W + l2_H I`` for the H step ("cd": ``eta / (G_cc + l2)``).
"""
from __future__ import annotations

import numpy as np

from .. import bounds
from .penalty import NO_PENALTY

__all__ = ["make_preconditioner", "Preconditioner"]


def _inv_psd(P, xp, ridge=1e-9):
    """``P^{-1}`` of a PSD k x k matrix (float64), ridge-regularized."""
    P = P.astype(xp.float64)
    d, U = xp.linalg.eigh(P)
    floor = ridge * xp.maximum(d[-1], 1e-300)
    d = xp.maximum(d, floor)
    return (U / d) @ U.T


class Preconditioner:
    """Base: the rules from :mod:`nmf_sched.bounds`, steps written once with ``xp``."""

    name = ""
    #: whether the step takes one LR per factor entry (arrays shaped like the factors)
    per_entry = True

    def __init__(self, backend, clip_update=None, max_value=None, penalty=None):
        self.be = backend
        self.xp = backend.xp
        self.clip_update = clip_update
        self.max_value = max_value
        self.pen = NO_PENALTY if penalty is None else penalty
        self.rule_W, self.rule_H = bounds.ceiling_rule(self.name)

    # -- the ridge of the L2 penalties ---------------------------------------------------
    def _ridge_W(self, HHt):
        return self.pen.ridge(HHt, self.pen.l2_W, self.xp)

    def _ridge_H(self, G, A, dG):
        l2 = self.pen.l2_H
        if not l2:
            return G, A, dG
        r = self.pen.ridge
        return r(G, l2, self.xp), r(A, l2, self.xp), (None if dG is None else dG + l2)

    # -- ceilings (without the minibatch factor; the model applies it) -----------------
    def ceiling_W(self, HHt):
        return self.rule_W(self._ridge_W(HHt), self.xp)

    def ceiling_H(self, G, A, dG=None):
        G, A, dG = self._ridge_H(G, A, dG)
        return self.rule_H(G, A, self.xp, dG)

    # -- steps ---------------------------------------------------------------------------
    def _apply(self, X, D, eta):
        xp = self.xp
        if isinstance(eta, (float, int)):
            eta = X.dtype.type(eta)
        elif hasattr(eta, "shape") and eta.ndim == 0:
            eta = eta.astype(X.dtype)
        upd = D * eta
        if self.clip_update is not None:
            xp.clip(upd, -self.clip_update, self.clip_update, out=upd)
        Xn = X - upd
        xp.maximum(Xn, 0, out=Xn)
        if self.max_value is not None:
            xp.minimum(Xn, self.max_value, out=Xn)
        return Xn

    def grad_W(self, WB, HHt, P):
        """The gradient of the batch rows' objective (penalties included)."""
        g = WB @ HHt - P
        return self.pen.grad_W(g, WB) if self.pen.on_W else g

    def grad_H(self, Ht, GB, Q, scale, rest):
        """The H gradient estimate: the batch's data term scaled by ``s``, the stale blocks'
        exact terms (sharded), the penalties unscaled."""
        g = scale * (Ht @ GB - Q)
        if rest is not None:
            g += Ht @ rest[0] - rest[1]
        return self.pen.grad_H(g, Ht) if self.pen.on_H else g

    def step_W(self, WB, HHt, P, eta, noise, fresh):
        """The new ``W_B`` (``fresh``: ``WB`` may be overwritten)."""
        g = self.grad_W(WB, HHt, P)
        if noise is not None:
            g += noise
        return self._apply(WB, self.direction_W(g, self._ridge_W(HHt)), eta)

    def step_H(self, Ht, GB, Q, eta, scale, noise, dG, G, rest):
        """The new ``H^T`` from the batch products (in place where the kernel allows)."""
        g = self.grad_H(Ht, GB, Q, scale, rest)
        if noise is not None:
            g += noise
        G, _, dG = self._ridge_H(G, G, dG)
        return self._apply(Ht, self.direction_H(g, dG, G), eta)

    def direction_W(self, g, HHt):  # pragma: no cover - abstract
        raise NotImplementedError

    def direction_H(self, g, dG, G):  # pragma: no cover - abstract
        raise NotImplementedError


class CoordinateDescent(Preconditioner):
    """``"cd"``: projected coordinate steps ``eta / X_cc`` in Gauss–Seidel order (the default)."""

    name = "cd"
    per_entry = False

    def step_W(self, WB, HHt, P, eta, noise, fresh):
        xp = self.xp
        X = WB if fresh else WB.copy()
        pen = self.pen
        if not pen.on_W:
            return self.be.cd(X, HHt, P, eta, 1.0, bounds.safe_diag(HHt, xp), noise,
                              self.clip_update, self.max_value)
        return self.be.cd(X, HHt, P, eta, 1.0, bounds.safe_diag(HHt, xp) + pen.l2_W, noise,
                          self.clip_update, self.max_value, l1=pen.l1_W, l2=pen.l2_W)

    def step_H(self, Ht, GB, Q, eta, scale, noise, dG, G, rest):
        if rest is not None:  # stale blocks of the sharded scheme: exact, unsampled terms
            GB = GB + rest[0] / scale
            Q = Q + (rest[1] / scale).astype(Q.dtype)
        if hasattr(eta, "shape") and not isinstance(eta, float):
            eta = eta.astype(Ht.dtype)
        pen = self.pen
        if not pen.on_H:
            return self.be.cd(Ht, GB, Q, eta, scale, dG, noise, self.clip_update, self.max_value)
        return self.be.cd(Ht, GB, Q, eta, scale, dG + pen.l2_H, noise, self.clip_update,
                          self.max_value, l1=pen.l1_H, l2=pen.l2_H)


class Gram(Preconditioner):
    """``"gram"``: ``W`` step in the metric ``HH^T`` (``lr = 1``: the block's Newton step),
    ``H`` step scaled by ``diag(W^T W)^{-1}``."""

    name = "gram"

    def direction_W(self, g, HHt):
        return g @ _inv_psd(HHt, self.xp).astype(g.dtype)

    def direction_H(self, g, dG, G):
        return g / dG.astype(g.dtype)


class Lipschitz(Preconditioner):
    """``"lipschitz"``: each block's gradient over its curvature ``lambda_max``."""

    name = "lipschitz"

    def _lmax(self, A):
        L = bounds.ceilings._lmax_xp(A, self.xp)
        if self.xp is np:
            return L if L > 0 else 1.0
        return self.xp.where(L > 0, L, 1.0)

    def direction_W(self, g, HHt):
        L = self._lmax(HHt)
        return g / (g.dtype.type(L) if self.xp is np else L.astype(g.dtype))

    def direction_H(self, g, dG, G):
        L = self._lmax(G)
        return g / (g.dtype.type(L) if self.xp is np else L.astype(g.dtype))


class Plain(Preconditioner):
    """``"none"``: plain projected SGD with an absolute LR."""

    name = "none"

    def direction_W(self, g, HHt):
        return g

    def direction_H(self, g, dG, G):
        return g


_CLASSES = {c.name: c for c in (CoordinateDescent, Gram, Lipschitz, Plain)}


def make_preconditioner(name, backend, *, clip_update=None, max_value=None,
                        penalty=None) -> Preconditioner:
    """The preconditioner ``name`` (one of :data:`nmf_sched.config.PRECONDITIONERS`) with the
    penalties ``penalty`` (a :class:`~nmf_sched.engine.penalty.Penalty`; None: none)."""
    try:
        cls = _CLASSES[name]
    except KeyError:
        raise ValueError(f"precondition must be one of {list(_CLASSES)}, got {name!r}") from None
    return cls(backend, clip_update=clip_update, max_value=max_value, penalty=penalty)
