r"""Hypergradient descent: the LR follows the gradient of the loss with respect to itself."""
from __future__ import annotations

import math

import numpy as np

from .base import StepInfo, check_lr, check_positive, register, resolve_lr0
from .classic import _check_choice, _check_kappa, _ParamsRepr

__all__ = ["Hypergradient"]

_BLOCKS = ("W", "H")


@register("hypergradient")
class Hypergradient(_ParamsRepr):
    r"""Hypergradient descent (Baydin et al., ICLR 2018) for the NMF blocks.

    The solver (``needs = ("grad_dot", "ceilings")``) reports at each tick the
    hypergradient :math:`h_t = \langle g_t, u_{t-1}\rangle = -\partial f/\partial\eta`,
    where :math:`g_t` is the new minibatch gradient and :math:`u_{t-1} =
    (X_{t-1} - X_t)/\eta` the last displacement per unit LR of the same entries
    (it includes the projection on :math:`X \ge 0` and the preconditioner; for
    plain SGD without projection :math:`u_{t-1} = g_{t-1}`, Baydin's rule
    exactly), summed over the steps since the previous tick. Then

    * ``variant="additive"``: :math:`\eta_t = \eta_{t-1} + \beta\, h_t`
      (:math:`\beta` has the unit LR / loss: it depends on the scale of the data);
    * ``variant="multiplicative"`` (normalized):
      :math:`\eta_t = \eta_{t-1}\,(1 + \beta\, h_t / (\|g_t\|\,\|u_{t-1}\|))`, with
      the cosine in [-1, 1]: scale-free.

    Granularity: ``"global"`` (one LR, :math:`h = h_W + h_H` and norms over
    both blocks), ``"group"`` (one LR per block W and H), ``"parameter"`` (one
    LR per entry, arrays shaped like W (m x k) and H (k x n); the multiplicative
    rule uses :math:`r_{ij} = \mathrm{clip}(N h_{ij} / (\|g\|\|u\|), -1, 1)`
    with :math:`N` the block size, so that the mean of :math:`r` is the block
    cosine). Per-entry LRs need ``precondition`` in ``{"none", "lipschitz",
    "gram"}``: the default coordinate-descent step takes one LR per block.

    After each update the LR is clipped to :math:`[\eta_{min}, \eta_{max}]` with
    ``max_lr="bound"`` = ``kappa *`` the block's current ceiling (as in GreedyLR);
    with ``clip_lr`` the solver additionally caps the step at ``kappa_solver * ceiling``.

    Parameters
    ----------
    lr : float or "bound", default "bound"
        Initial LR; ``"bound"``: ``kappa *`` the block's ceiling at tick 0.
    beta : float > 0 or None
        Hyper-LR; ``None``: 0.1 (multiplicative) or 1e-3 (additive).
    variant : {"multiplicative", "additive"}
    granularity : {"global", "group", "parameter"}
    min_lr : float >= 0 or None
        Floor; ``None``: ``1e-4 * lr0``.
    max_lr : float, "bound" or None, default "bound"
        ``"bound"``: ``kappa *`` the block's ceiling, re-read at every tick.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling for ``lr`` and ``max_lr="bound"``.
    total : ignored

    Examples
    --------
    LR table, ``Hypergradient(lr=1.0, beta=0.5, variant="multiplicative",
    max_lr=None)`` (global), with the solver's signals per tick:

    ====  ================================  ======
    tick  h (g2, u2 summed over W and H)    lr
    ====  ================================  ======
    0     --                                1.0
    1     h=1, g2=1, u2=1 (cos 1)           1.5
    2     h=-2, g2=4, u2=1 (cos -1)         0.75
    3     h=0                               0.75
    ====  ================================  ======

    ``variant="additive", beta=0.1``: h=2 -> 1.2; h=-1 -> 1.1.

    References
    ----------
    .. [1] A. G. Baydin, R. Cornish, D. Martinez Rubio, M. Schmidt, F. Wood,
       "Online learning rate adaptation with hypergradient descent", ICLR 2018.
    """

    needs: tuple = ("grad_dot", "ceilings")
    _repr_params = ("lr", "beta", "variant", "granularity", "min_lr", "max_lr", "kappa")

    def __init__(self, lr="bound", beta=None, variant="multiplicative", granularity="global",
                 min_lr=None, max_lr="bound", *, kappa=0.5, total=None):
        check_lr("lr", lr)
        _check_choice("variant", variant, ("multiplicative", "additive"))
        _check_choice("granularity", granularity, ("global", "group", "parameter"))
        if beta is not None:
            check_positive("beta", beta)
        if min_lr is not None:
            check_positive("min_lr", min_lr, allow_zero=True)
        if max_lr is not None:
            check_lr("max_lr", max_lr)
        _check_kappa(kappa)
        self.lr0, self.beta, self.variant, self.granularity = lr, beta, variant, granularity
        #: one LR per factor entry (the engine refuses a preconditioner that takes one per block)
        self.per_entry = granularity == "parameter"
        self.min_lr, self.max_lr, self.kappa, self.total = min_lr, max_lr, kappa, total

    @property
    def _repr_lr(self):
        return self.lr0

    @property
    def _beta(self) -> float:
        if self.beta is not None:
            return float(self.beta)
        return 0.1 if self.variant == "multiplicative" else 1e-3

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _ceilings(info: StepInfo, state: dict) -> dict:
        c = dict(info.extras.get("ceilings") or {})
        out = {}
        for b in _BLOCKS:
            v = c.get(b, info.ceiling)
            if v is None or not math.isfinite(v) or v <= 0:
                v = state.get("ceil", {}).get(b) if state.get("ceil") else None
            out[b] = v
        return out

    def _bounds(self, ceil: dict, lr0: dict) -> dict:
        out = {}
        for b in _BLOCKS:
            lo = 1e-4 * lr0[b] if self.min_lr is None else float(self.min_lr)
            if self.max_lr is None:
                hi = math.inf
            elif self.max_lr == "bound":
                hi = self.kappa * ceil[b] if ceil[b] is not None else math.inf
            else:
                hi = float(self.max_lr)
            out[b] = (lo, max(hi, lo))
        if self.granularity == "global":  # one LR: the tighter of the two bounds
            both = (max(out["W"][0], out["H"][0]), min(out["W"][1], out["H"][1]))
            out = {b: (both[0], max(both)) for b in _BLOCKS}
        return out

    # -- protocol ----------------------------------------------------------------
    def init(self) -> dict:
        return {"tick": 0, "lr": None, "lr0": None, "ceil": None}

    def lr(self, state: dict):
        if state["lr"] is None:
            if self.lr0 == "bound":
                raise ValueError("Hypergradient: lr='bound' is resolved at the initial observation "
                                 "(update with tick 0); call update(state, info) first")
            return float(self.lr0)
        lr = state["lr"]
        if self.granularity == "global":
            return float(lr["W"])
        return {"W": lr["W"], "H": lr["H"]}

    def update(self, state: dict, info: StepInfo) -> dict:
        ceil = self._ceilings(info, state)
        new = dict(state, tick=int(info.tick), ceil=ceil)
        gd = info.extras.get("grad_dot")
        if state["lr"] is None:  # initial observation
            if self.lr0 == "bound":
                if self.granularity == "global":
                    c = min(v for v in ceil.values() if v is not None) if any(
                        v is not None for v in ceil.values()) else None
                    base = resolve_lr0("bound", StepInfo(0, 0, None, c), self.kappa)
                    lr0 = {b: base for b in _BLOCKS}
                else:
                    lr0 = {b: resolve_lr0("bound", StepInfo(0, 0, None, ceil[b]), self.kappa)
                           for b in _BLOCKS}
            else:
                lr0 = {b: float(self.lr0) for b in _BLOCKS}
            new["lr0"] = lr0
            if self.granularity == "parameter":
                if gd is None:
                    raise ValueError("granularity='parameter' needs the solver's 'grad_dot' extras "
                                     "(factor shapes) at the initial observation")
                new["lr"] = {b: np.full(np.shape(gd[b + "_entry"]), lr0[b]) for b in _BLOCKS}
            else:
                new["lr"] = dict(lr0)
            new["lr"] = self._clip(new["lr"], self._bounds(ceil, lr0))
            return new
        if gd is None:
            raise ValueError("Hypergradient needs StepInfo.extras['grad_dot'] from the solver")
        beta = self._beta
        lr = state["lr"]
        mult = self.variant == "multiplicative"
        if self.granularity == "global":
            h = gd["W"] + gd["H"]
            if mult:
                den = math.sqrt((gd["W_g2"] + gd["H_g2"]) * (gd["W_u2"] + gd["H_u2"]))
                v = lr["W"] * (1.0 + beta * (h / den if den > 0 else 0.0))
            else:
                v = lr["W"] + beta * h
            out = {b: v for b in _BLOCKS}
        elif self.granularity == "group":
            out = {}
            for b in _BLOCKS:
                if mult:
                    den = math.sqrt(gd[b + "_g2"] * gd[b + "_u2"])
                    out[b] = lr[b] * (1.0 + beta * (gd[b] / den if den > 0 else 0.0))
                else:
                    out[b] = lr[b] + beta * gd[b]
        else:
            out = {}
            for b in _BLOCKS:
                hb = np.asarray(gd[b + "_entry"], dtype=np.float64)
                if mult:
                    den = math.sqrt(gd[b + "_g2"] * gd[b + "_u2"])
                    r = np.clip(hb * (hb.size / den), -1.0, 1.0) if den > 0 else 0.0
                    out[b] = lr[b] * (1.0 + beta * r)
                else:
                    out[b] = lr[b] + beta * hb
        new["lr"] = self._clip(out, self._bounds(ceil, state["lr0"]))
        return new

    @staticmethod
    def _clip(lr: dict, bounds: dict) -> dict:
        out = {}
        for b in _BLOCKS:
            lo, hi = bounds[b]
            v = lr[b]
            if isinstance(v, np.ndarray):
                out[b] = np.clip(np.nan_to_num(v, nan=lo), lo, hi)
            else:
                v = float(v)
                out[b] = lo if not math.isfinite(v) else min(max(v, lo), hi)
        return out
