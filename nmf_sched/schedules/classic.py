"""Classic learning-rate schedules: fixed functions of the schedule tick.

Every schedule here is a function ``lr(t) = base_lr * g(t)`` (or an affine
variant) of the tick ``t = StepInfo.tick``. The state is
``{"tick": t, "base_lr": float | None}``: ``base_lr`` is the numeric ``lr``, or,
for ``lr="bound"``, ``kappa * ceiling`` resolved at the initial observation
(tick 0; see :func:`~nmf_sched.schedules.base.resolve_lr0`).

Every constructor accepts ``total`` and ``kappa`` so the solver can pass the
same defaults to every schedule (``make_schedule(spec, total=..., kappa=...)``);
schedules without a horizon ignore ``total``.

The helpers at the top (``_check_kappa``, ``_resolved``, ``_ParamsRepr``) are
shared with the other schedule families of this package.
"""
from __future__ import annotations

import math

from .base import StepInfo, check_lr, check_positive, register, resolve_lr0
from ..config import check_choice

__all__ = [
    "Constant", "StepDecay", "Exponential", "InverseTime", "Polynomial", "Linear", "Cosine",
]


# ----------------------------------------------------------------------------
# helpers shared by the schedule modules of this package
# ----------------------------------------------------------------------------

def _check_kappa(kappa):
    """``kappa`` scales the stability ceiling: a real number in (0, 1]."""
    return check_positive("kappa", kappa, upper=1.0)


def _check_total(total, *, required: bool, owner: str):
    """Validate a horizon ``total`` (number of ticks): None or an integer >= 1."""
    if total is None:
        if required:
            raise ValueError(
                f"{owner} needs total (the number of schedule ticks of the run), got None; "
                "fit() passes it when the schedule is given by name, otherwise pass total=N")
        return None
    return check_positive("total", total, integer=True)


def _check_choice(name: str, value, choices):
    return check_choice(name, value, choices)


def _resolved(value, owner) -> float:
    """Return a resolved base LR or raise the error for an unresolved ``"bound"``."""
    if value is None:
        raise ValueError(
            f"{owner!r}: lr='bound' is resolved at the initial observation "
            "(update with tick 0, which carries the stability ceiling); "
            "call update(state, info) before lr(state), or pass a numeric lr")
    return value


def _initial_lr(lr0, info: StepInfo, kappa) -> float:
    """Resolve ``lr0`` (a float or ``"bound"``) at the initial observation."""
    return resolve_lr0(lr0, info, kappa)


class _ParamsRepr:
    """``__repr__`` listing the constructor parameters (stored as given)."""

    _repr_params: tuple = ()

    def __repr__(self):
        args = ", ".join(f"{p}={getattr(self, '_repr_' + p, getattr(self, p, None))!r}"
                         for p in self._repr_params)
        return f"{type(self).__name__}({args})"


class _TickSchedule(_ParamsRepr):
    """Base of the schedules that are a pure function of the tick.

    Subclasses implement ``_rate(base_lr, t) -> float``.
    """

    needs: tuple = ()

    def __init__(self, lr, kappa, total):
        check_lr("lr", lr)
        _check_kappa(kappa)
        # ``lr`` is the protocol method, so the parameter is stored as ``lr0``.
        self.lr0 = lr
        self.kappa = kappa
        self.total = total

    @property
    def _repr_lr(self):
        return self.lr0

    def init(self) -> dict:
        base = None if self.lr0 == "bound" else float(self.lr0)
        return {"tick": 0, "base_lr": base}

    def update(self, state: dict, info: StepInfo) -> dict:
        base = state["base_lr"]
        tick = int(info.tick)
        if self.lr0 == "bound" and (base is None or tick == 0):
            base = _initial_lr(self.lr0, info, self.kappa)
        return {"tick": tick, "base_lr": base}

    def lr(self, state: dict) -> float:
        base = _resolved(state["base_lr"], self)
        return float(self._rate(base, state["tick"]))

    def _rate(self, base_lr: float, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------
# the schedules
# ----------------------------------------------------------------------------

@register("constant")
class Constant(_TickSchedule):
    r"""Constant learning rate.

    .. math:: \eta_t = \eta_0

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`; ``"bound"`` means ``kappa * ceiling`` at tick 0.
    kappa : float in (0, 1], default 0.5
        Fraction of the stability ceiling used by ``lr="bound"``.
    total : int or None
        Accepted for a uniform constructor; ignored.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``Constant(lr=0.25)``

    ====  ====
    tick  lr
    ====  ====
    0     0.25
    1     0.25
    5     0.25
    ====  ====

    References
    ----------
    .. [1] L. Bottou, F. E. Curtis, J. Nocedal, "Optimization methods for
       large-scale machine learning", SIAM Review 60(2), 2018 (fixed-step SGD).
    """

    _repr_params = ("lr", "kappa")

    def __init__(self, lr="bound", *, kappa=0.5, total=None):
        super().__init__(lr, kappa, total)

    def _rate(self, base_lr, t):
        return base_lr


@register("step")
class StepDecay(_TickSchedule):
    r"""Step decay: multiply by ``gamma`` every ``step_size`` ticks.

    .. math:: \eta_t = \eta_0 \, \gamma^{\lfloor t / s \rfloor}

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`.
    step_size : int >= 1, default 10
        :math:`s`, ticks between decays.
    gamma : float in (0, 1], default 0.1
        Decay factor.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling used by ``lr="bound"``.
    total : int or None
        Ignored.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``StepDecay(lr=1.0, step_size=2, gamma=0.5)``

    ====  =====
    tick  lr
    ====  =====
    0     1.0
    1     1.0
    2     0.5
    3     0.5
    4     0.25
    7     0.125
    ====  =====

    References
    ----------
    .. [1] I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, MIT Press,
       2016, section 8.3.1.
    """

    _repr_params = ("lr", "step_size", "gamma", "kappa")

    def __init__(self, lr="bound", step_size=10, gamma=0.1, *, kappa=0.5, total=None):
        super().__init__(lr, kappa, total)
        check_positive("step_size", step_size, integer=True)
        check_positive("gamma", gamma, upper=1.0)
        self.step_size = step_size
        self.gamma = gamma

    def _rate(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


@register("exp")
class Exponential(_TickSchedule):
    r"""Exponential decay.

    .. math:: \eta_t = \eta_0 \, \gamma^{t}

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`.
    gamma : float in (0, 1], default 0.95
        Per-tick decay factor.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling used by ``lr="bound"``.
    total : int or None
        Ignored.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``Exponential(lr=1.0, gamma=0.5)``

    ====  ======
    tick  lr
    ====  ======
    0     1.0
    1     0.5
    2     0.25
    3     0.125
    ====  ======

    References
    ----------
    .. [1] I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, MIT Press,
       2016, section 8.3.1.
    """

    _repr_params = ("lr", "gamma", "kappa")

    def __init__(self, lr="bound", gamma=0.95, *, kappa=0.5, total=None):
        super().__init__(lr, kappa, total)
        check_positive("gamma", gamma, upper=1.0)
        self.gamma = gamma

    def _rate(self, base_lr, t):
        return base_lr * self.gamma ** t


@register("inverse_time")
class InverseTime(_TickSchedule):
    r"""Inverse-time (Robbins--Monro) decay.

    .. math:: \eta_t = \frac{\eta_0}{(1 + d\,t)^{p}}

    With :math:`p \in (1/2, 1]` the steps satisfy the Robbins--Monro conditions
    :math:`\sum_t \eta_t = \infty`, :math:`\sum_t \eta_t^2 < \infty`; other
    :math:`p > 0` are accepted.

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`.
    decay : float > 0, default 1.0
        :math:`d`.
    power : float > 0, default 1.0
        :math:`p`.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling used by ``lr="bound"``.
    total : int or None
        Ignored.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``InverseTime(lr=1.0, decay=1.0, power=1.0)``

    ====  ========
    tick  lr
    ====  ========
    0     1.0
    1     0.5
    2     0.333333
    3     0.25
    9     0.1
    ====  ========

    ``InverseTime(lr=2.0, decay=0.5, power=2.0)``

    ====  ========
    tick  lr
    ====  ========
    0     2.0
    2     0.5
    6     0.125
    ====  ========

    References
    ----------
    .. [1] H. Robbins, S. Monro, "A stochastic approximation method", Ann. Math.
       Statist. 22(3), 1951.
    """

    _repr_params = ("lr", "decay", "power", "kappa")

    def __init__(self, lr="bound", decay=1.0, power=1.0, *, kappa=0.5, total=None):
        super().__init__(lr, kappa, total)
        check_positive("decay", decay)
        check_positive("power", power)
        self.decay = decay
        self.power = power

    def _rate(self, base_lr, t):
        return base_lr / (1.0 + self.decay * t) ** self.power


@register("polynomial")
class Polynomial(_TickSchedule):
    r"""Polynomial decay from ``lr`` to ``end_lr`` over ``total`` ticks.

    .. math::
        \eta_t = (\eta_0 - \eta_{end}) \left(1 - \frac{\min(t, T)}{T}\right)^{p} + \eta_{end}

    The rate holds at :math:`\eta_{end}` for :math:`t \ge T`.

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`.
    total : int >= 1
        :math:`T`; the solver passes the number of ticks of the run.
    power : float > 0, default 1.0
        :math:`p`.
    end_lr : float >= 0, default 0.0
        :math:`\eta_{end}`.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling used by ``lr="bound"``.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``Polynomial(lr=1.0, total=4, power=2.0, end_lr=0.0)``

    ====  ======
    tick  lr
    ====  ======
    0     1.0
    1     0.5625
    2     0.25
    3     0.0625
    4     0.0
    6     0.0
    ====  ======

    References
    ----------
    .. [1] L.-C. Chen et al., "DeepLab: semantic image segmentation with deep
       convolutional nets, atrous convolution, and fully connected CRFs",
       IEEE TPAMI 40(4), 2018 (the "poly" learning-rate policy).
    """

    _repr_params = ("lr", "total", "power", "end_lr", "kappa")

    def __init__(self, lr="bound", total=None, power=1.0, end_lr=0.0, *, kappa=0.5):
        super().__init__(lr, kappa, total)
        _check_total(total, required=True, owner="Polynomial")
        check_positive("power", power)
        check_positive("end_lr", end_lr, allow_zero=True)
        self.power = power
        self.end_lr = end_lr

    def _rate(self, base_lr, t):
        frac = 1.0 - min(t, self.total) / self.total
        return (base_lr - self.end_lr) * frac ** self.power + self.end_lr


@register("linear")
class Linear(_TickSchedule):
    r"""Linear interpolation from ``lr`` to the end rate over ``total`` ticks.

    .. math::
        \eta_t = \eta_0 + (\eta_{end} - \eta_0)\,\frac{\min(t, T)}{T},
        \qquad \eta_{end} = \texttt{end\_lr} \ \text{or}\ \texttt{end\_factor}\cdot\eta_0

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`.
    total : int >= 1
        :math:`T`; the solver passes the number of ticks of the run.
    end_lr : float >= 0, optional
        Absolute end rate. Default (neither given): 0.
    end_factor : float >= 0, optional
        End rate relative to :math:`\eta_0` (useful with ``lr="bound"``).
        Mutually exclusive with ``end_lr``.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling used by ``lr="bound"``.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``Linear(lr=1.0, total=4)``

    ====  ====
    tick  lr
    ====  ====
    0     1.0
    1     0.75
    2     0.5
    3     0.25
    4     0.0
    5     0.0
    ====  ====

    ``Linear(lr=1.0, total=4, end_factor=0.5)``

    ====  =====
    tick  lr
    ====  =====
    0     1.0
    1     0.875
    2     0.75
    4     0.5
    9     0.5
    ====  =====

    References
    ----------
    .. [1] P. Goyal et al., "Accurate, large minibatch SGD: training ImageNet
       in 1 hour", arXiv:1706.02677, 2017.
    """

    _repr_params = ("lr", "total", "end_lr", "end_factor", "kappa")

    def __init__(self, lr="bound", total=None, end_lr=None, end_factor=None, *, kappa=0.5):
        super().__init__(lr, kappa, total)
        _check_total(total, required=True, owner="Linear")
        if end_lr is not None and end_factor is not None:
            raise ValueError(
                f"give end_lr or end_factor, not both (end_lr={end_lr!r}, end_factor={end_factor!r})")
        if end_lr is not None:
            check_positive("end_lr", end_lr, allow_zero=True)
        if end_factor is not None:
            check_positive("end_factor", end_factor, allow_zero=True)
        self.end_lr = end_lr
        self.end_factor = end_factor

    def _rate(self, base_lr, t):
        if self.end_factor is not None:
            end = self.end_factor * base_lr
        else:
            end = 0.0 if self.end_lr is None else float(self.end_lr)
        return base_lr + (end - base_lr) * (min(t, self.total) / self.total)


@register("cosine")
class Cosine(_TickSchedule):
    r"""Cosine annealing, optionally with warm restarts (SGDR).

    Without restarts (:math:`T = \texttt{total}`):

    .. math::
        \eta_t = \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})
                 \left(1 + \cos\frac{\pi \min(t, T)}{T}\right)

    holding at :math:`\eta_{min}` for :math:`t \ge T`. With ``restarts=True``
    the periods are :math:`T_i = T\, m^i` (:math:`m` = ``t_mult``); the tick
    :math:`t_{cur}` counts from the start of the current period and
    :math:`\min(t, T)/T` above becomes :math:`t_{cur}/T_i`, so the rate jumps
    back to :math:`\eta_0` at each period start.

    Parameters
    ----------
    lr : float or "bound", default "bound"
        :math:`\eta_0`.
    total : int >= 1
        :math:`T`, the (first) period. The solver passes the number of ticks of
        the run; pass a smaller ``total`` explicitly to get restarts.
    min_lr : float >= 0, default 0.0
        :math:`\eta_{min}`; must not exceed a numeric ``lr``.
    restarts : bool, default False
        Warm restarts at the end of each period.
    t_mult : float >= 1, default 1
        Period multiplier :math:`m` after each restart.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling used by ``lr="bound"``.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``Cosine(lr=1.0, total=4)``

    ====  ========
    tick  lr
    ====  ========
    0     1.0
    1     0.853553
    2     0.5
    3     0.146447
    4     0.0
    5     0.0
    ====  ========

    ``Cosine(lr=1.0, total=2, min_lr=0.5, restarts=True, t_mult=2)``

    ====  ========
    tick  lr
    ====  ========
    0     1.0
    1     0.75
    2     1.0
    3     0.926777
    4     0.75
    5     0.573223
    6     1.0
    ====  ========

    References
    ----------
    .. [1] I. Loshchilov, F. Hutter, "SGDR: stochastic gradient descent with
       warm restarts", ICLR 2017.
    """

    _repr_params = ("lr", "total", "min_lr", "restarts", "t_mult", "kappa")

    def __init__(self, lr="bound", total=None, min_lr=0.0, restarts=False, t_mult=1, *,
                 kappa=0.5):
        super().__init__(lr, kappa, total)
        _check_total(total, required=True, owner="Cosine")
        check_positive("min_lr", min_lr, allow_zero=True)
        if lr != "bound" and min_lr > lr:
            raise ValueError(f"min_lr must be <= lr, got min_lr={min_lr!r} > lr={lr!r}")
        if not isinstance(restarts, bool):
            raise TypeError(f"restarts must be a bool, got {restarts!r}")
        check_positive("t_mult", t_mult)
        if t_mult < 1:
            raise ValueError(f"t_mult must be >= 1, got {t_mult!r}")
        self.min_lr = min_lr
        self.restarts = restarts
        self.t_mult = t_mult

    def _phase(self, t):
        """Return ``(t_cur, T_i)`` for tick ``t``."""
        period = float(self.total)
        if not self.restarts:
            return min(t, period), period
        t_cur = float(t)
        if self.t_mult == 1:
            return t_cur % period, period
        while t_cur >= period:  # periods grow geometrically: O(log t) iterations
            t_cur -= period
            period *= self.t_mult
        return t_cur, period

    def _rate(self, base_lr, t):
        t_cur, period = self._phase(t)
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * t_cur / period))
