r"""Stochastic line search: Armijo backtracking on the minibatch the next step uses."""
from __future__ import annotations

import math

from .base import StepInfo, check_lr, check_positive, register, resolve_lr0
from .classic import _check_choice, _ParamsRepr

__all__ = ["SLS"]


@register("sls")
class SLS(_ParamsRepr):
    r"""Stochastic line search (Vaswani et al., NeurIPS 2019) with the Armijo condition.

    At each tick the solver passes ``extras["probe"]`` (``needs = ("probe",)``): a
    callable ``lr -> (f_B(X'), f_B(X), <grad f_B(X), X' - X>)`` that performs, on
    copies of the factors, the exact step the solver would take next with that LR,
    **on the same minibatch** B that step will use (:math:`f_B` is the batch loss
    scaled by m/b). Starting from a candidate :math:`\eta`, the schedule accepts
    the first :math:`\eta` with

    .. math::

        f_B(X'(\eta)) \le f_B(X) + c\,\langle \nabla f_B(X), X'(\eta) - X\rangle,

    else :math:`\eta \leftarrow \beta\eta` (at most ``max_backtracks`` times; then
    the last, smallest, trial is kept). For plain unprojected SGD
    :math:`X' - X = -\eta g` and this is the paper's
    :math:`f_B(X - \eta g) \le f_B(X) - c\,\eta\,\|g\|^2`; with the projection and
    the preconditioner it is the projected Armijo rule on the step actually taken.

    Candidate between ticks (``reset``): ``"grow"``: :math:`\eta \leftarrow
    \eta\,\gamma^{b/m}` (b/m = the batch fraction; the paper's reset option 2),
    or ``"initial"``: :math:`\eta \leftarrow \eta_0` (option 0/1: every search
    starts from the initial step). Then :math:`\eta \leftarrow \min(\eta,
    \eta_{max})`. Tick the schedule every minibatch (``fit(schedule_every=1)``) to
    search every step, as in the paper; with per-epoch ticks the accepted LR is
    used for the whole epoch.

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`; ``"bound"`` = ``kappa * ceiling`` at tick 0.
    c : float in (0, 1), default 0.1
        Armijo constant (the paper uses 0.1).
    beta : float in (0, 1), default 0.9
        Backtracking factor (the paper's 0.9).
    gamma : float >= 1, default 2.0
        Growth base for ``reset="grow"``.
    reset : {"grow", "initial"}, default "grow"
    max_lr : float, "bound" or None, default "bound"
        :math:`\eta_{max}`; ``"bound"`` = ``kappa *`` the current ceiling.
    max_backtracks : int >= 0, default 30
    kappa : float in (0, 1], default 1.0
    total : ignored

    Examples
    --------
    With ``lr=1, c=0.5, beta=0.5, gamma=4, reset="grow", max_lr=None`` and a
    batch fraction 1/2, on a probe where a step is accepted iff ``lr <= 0.3``:
    tick 0 tries 1, 0.5, 0.25 (accepted, 2 backtracks); tick 1 starts from
    0.25 * 4^(1/2) = 0.5, backtracks once to 0.25. With ``reset="initial"``
    each tick restarts from 1.

    References
    ----------
    .. [1] S. Vaswani, A. Mishkin, I. Laradji, M. Schmidt, G. Gidel, S. Lacoste-Julien,
       "Painless stochastic gradient: interpolation, line-search, and convergence
       rates", NeurIPS 2019.
    .. [2] L. Armijo, "Minimization of functions having Lipschitz continuous first
       partial derivatives", Pacific J. Math. 16(1), 1966.
    """

    needs: tuple = ("probe",)
    _repr_params = ("lr", "c", "beta", "gamma", "reset", "max_lr", "max_backtracks", "kappa")

    def __init__(self, lr="bound", c=0.1, beta=0.9, gamma=2.0, reset="grow", max_lr="bound",
                 max_backtracks=30, *, kappa=1.0, total=None):
        check_lr("lr", lr)
        check_positive("c", c, upper=1.0, upper_inclusive=False)
        check_positive("beta", beta, upper=1.0, upper_inclusive=False)
        check_positive("gamma", gamma)
        if gamma < 1:
            raise ValueError(f"gamma must be >= 1, got {gamma!r}")
        _check_choice("reset", reset, ("grow", "initial"))
        if max_lr is not None:
            check_lr("max_lr", max_lr)
        check_positive("max_backtracks", max_backtracks, integer=True, allow_zero=True)
        check_positive("kappa", kappa, upper=1.0)
        self.lr0, self.c, self.beta, self.gamma, self.reset = lr, c, beta, gamma, reset
        self.max_lr, self.max_backtracks, self.kappa, self.total = max_lr, max_backtracks, kappa, total

    @property
    def _repr_lr(self):
        return self.lr0

    def init(self) -> dict:
        return {"tick": 0, "lr": None, "lr0": None, "backtracks": 0, "probes": 0, "failed": 0}

    def lr(self, state: dict) -> float:
        if state["lr"] is None:
            if self.lr0 == "bound":
                raise ValueError("SLS: lr='bound' is resolved at the initial observation "
                                 "(update with tick 0); call update(state, info) first")
            return float(self.lr0)
        return float(state["lr"])

    def _upper(self, info: StepInfo) -> float:
        if self.max_lr is None:
            return math.inf
        if self.max_lr == "bound":
            c = info.ceiling
            return self.kappa * c if c is not None and math.isfinite(c) and c > 0 else math.inf
        return float(self.max_lr)

    def update(self, state: dict, info: StepInfo) -> dict:
        probe = info.extras.get("probe")
        if probe is None:
            raise ValueError("SLS needs StepInfo.extras['probe'] (a callable lr -> batch losses) "
                             "from the solver")
        new = dict(state, tick=int(info.tick))
        if state["lr0"] is None:
            new["lr0"] = lr0 = resolve_lr0(self.lr0, info, self.kappa)
            cand = lr0
        elif self.reset == "initial":
            cand = state["lr0"]
        else:
            frac = float(getattr(probe, "batch_fraction", 1.0))
            cand = state["lr"] * self.gamma ** frac
        lr = min(cand, self._upper(info))
        n_back, ok = 0, False
        while True:
            f1, f0, lin = probe(lr)
            new["probes"] += 1
            if math.isfinite(f1) and f1 <= f0 + self.c * lin:
                ok = True
                break
            if n_back >= self.max_backtracks:
                break
            lr *= self.beta
            n_back += 1
        new["lr"] = float(lr)
        new["backtracks"] += n_back
        new["failed"] += 0 if ok else 1
        return new
