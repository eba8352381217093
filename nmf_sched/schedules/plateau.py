"""Reduce the learning rate when the watched loss stops improving (PyTorch semantics)."""
from __future__ import annotations

import math

from .base import StepInfo, check_lr, check_positive, register
from .classic import _check_choice, _check_kappa, _initial_lr, _ParamsRepr, _resolved

__all__ = ["ReduceLROnPlateau"]


def _is_better(current: float, best: float, mode: str, threshold_mode: str, threshold: float) -> bool:
    """PyTorch's ``ReduceLROnPlateau.is_better`` (False for a NaN ``current``)."""
    if mode == "min":
        ref = best * (1.0 - threshold) if threshold_mode == "rel" else best - threshold
        return current < ref
    ref = best * (1.0 + threshold) if threshold_mode == "rel" else best + threshold
    return current > ref


@register("plateau")
class ReduceLROnPlateau(_ParamsRepr):
    r"""Multiply the LR by ``factor`` after ``patience`` ticks without improvement.

    Same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau``, on
    ``info.loss``. Ticks whose loss is ``None`` are skipped (nothing changes
    but the tick); a NaN/inf loss is never an improvement, so it counts as a
    bad tick. The initial observation (tick 0) sets the baseline
    ``best = loss`` and the starting LR.

    At each later tick with a loss :math:`\ell_t` (mode ``"min"``):

    .. math::

        \text{improved} &= \ell_t < \begin{cases}
            \text{best}\,(1 - \delta) & \text{threshold\_mode = rel} \\
            \text{best} - \delta & \text{threshold\_mode = abs}\end{cases} \\
        \text{improved} &\Rightarrow \text{best} \leftarrow \ell_t,\ n_{bad} \leftarrow 0,
            \quad\text{else } n_{bad} \leftarrow n_{bad} + 1 \\
        c > 0 &\Rightarrow c \leftarrow c - 1,\ n_{bad} \leftarrow 0 \quad\text{(cooldown)} \\
        n_{bad} > p &\Rightarrow \eta' = \max(\eta F, \eta_{min}),\
            \eta \leftarrow \eta' \text{ if } \eta - \eta' > \epsilon,\
            c \leftarrow \texttt{cooldown},\ n_{bad} \leftarrow 0

    (mode ``"max"`` mirrors the comparison: ``best (1 + delta)`` / ``best + delta``.)

    Parameters
    ----------
    lr : float or "bound", default "bound"
        Initial LR; ``"bound"`` means ``kappa * ceiling`` at tick 0.
    mode : {"min", "max"}, default "min"
        Whether the watched quantity should decrease (a loss) or increase.
    factor : float in (0, 1), default 0.1
        :math:`F`.
    patience : int >= 0, default 10
        :math:`p`: the LR drops at the :math:`(p+1)`-th consecutive bad tick.
    threshold : float >= 0, default 1e-4
        :math:`\delta`.
    threshold_mode : {"rel", "abs"}, default "rel"
        See the rule above. ``"abs"`` is in the loss's unit (:math:`\|V\|^2`): the run
        then depends on the scale of ``V``; ``"rel"`` does not.
    cooldown : int >= 0, default 0
        Ticks with a loss after a reduction during which bad ticks are not counted.
    min_lr : float >= 0, default 0.0
        :math:`\eta_{min}`.
    eps : float >= 0, default 0.0
        :math:`\epsilon`: a reduction smaller than this is not applied. PyTorch's
        default is 1e-8 (absolute); here the LR may be an absolute step size of
        any scale (``precondition="none"``), so the default is 0 (as ``min_lr``'s, which keeps
        ``fit(c V)`` the ``sqrt(c)``-scaled ``fit(V)``).
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling used by ``lr="bound"``.
    total : int or None
        Ignored.

    Notes
    -----
    State: ``{"tick", "lr", "best", "num_bad", "cooldown_counter"}``; ``best`` is
    ``None`` until a finite loss has been seen.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``ReduceLROnPlateau(lr=1.0, factor=0.5, patience=1, threshold=0.0, threshold_mode="abs", cooldown=1, min_lr=0.2)``

    ====  ====  ====
    tick  loss  lr
    ====  ====  ====
    0     10    1.0
    1     9     1.0
    2     9     1.0
    3     9     0.5
    4     9     0.5
    5     9     0.5
    6     None  0.5
    7     9     0.25
    8     8     0.25
    9     8     0.25
    10    8     0.2
    11    8     0.2
    12    8     0.2
    13    8     0.2
    ====  ====  ====

    References
    ----------
    .. [1] PyTorch documentation, ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """

    needs: tuple = ()
    _repr_params = ("lr", "mode", "factor", "patience", "threshold", "threshold_mode",
                    "cooldown", "min_lr", "eps", "kappa")

    def __init__(self, lr="bound", mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=0.0, *, kappa=0.5, total=None):
        check_lr("lr", lr)
        _check_choice("mode", mode, ("min", "max"))
        check_positive("factor", factor, upper=1.0, upper_inclusive=False)
        check_positive("patience", patience, integer=True, allow_zero=True)
        check_positive("threshold", threshold, allow_zero=True)
        _check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        check_positive("cooldown", cooldown, integer=True, allow_zero=True)
        check_positive("min_lr", min_lr, allow_zero=True)
        check_positive("eps", eps, allow_zero=True)
        _check_kappa(kappa)
        if lr != "bound" and min_lr > lr:
            raise ValueError(f"min_lr must be <= lr, got min_lr={min_lr!r} > lr={lr!r}")
        self.lr0 = lr  # ``lr`` is the protocol method
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.eps = eps
        self.kappa = kappa
        self.total = total

    @property
    def _repr_lr(self):
        return self.lr0

    def init(self) -> dict:
        lr = None if self.lr0 == "bound" else float(self.lr0)
        return {"tick": 0, "lr": lr, "best": None, "num_bad": 0, "cooldown_counter": 0}

    def lr(self, state: dict) -> float:
        return float(_resolved(state["lr"], self))

    def update(self, state: dict, info: StepInfo) -> dict:
        new = dict(state)
        new["tick"] = tick = int(info.tick)
        loss = None if info.loss is None else float(info.loss)
        if tick == 0 or state["lr"] is None:
            # initial observation: starting LR and baseline
            new["lr"] = max(_initial_lr(self.lr0, info, self.kappa), float(self.min_lr))
            new["best"] = loss if loss is not None and math.isfinite(loss) else None
            new["num_bad"] = 0
            new["cooldown_counter"] = 0
            return new
        if loss is None:
            return new
        if new["best"] is None:
            if math.isfinite(loss):
                new["best"] = loss  # first finite loss: baseline, not counted
                return new
            improved = False
        else:
            improved = _is_better(loss, new["best"], self.mode, self.threshold_mode, self.threshold)
        if improved:
            new["best"] = loss
            new["num_bad"] = 0
        else:
            new["num_bad"] += 1
        if new["cooldown_counter"] > 0:
            new["cooldown_counter"] -= 1
            new["num_bad"] = 0
        if new["num_bad"] > self.patience:
            old = new["lr"]
            cand = max(old * self.factor, float(self.min_lr))
            if old - cand > self.eps:
                new["lr"] = cand
            new["cooldown_counter"] = self.cooldown
            new["num_bad"] = 0
        return new
