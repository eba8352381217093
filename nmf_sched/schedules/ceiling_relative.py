"""Schedules relative to the stability ceiling of the moment.

:class:`CeilingFraction` is a constant fraction of the current ceiling (or a cycle of
fractions): the control for the RL policy, whose action is such a fraction.
:class:`AnnealedGreedy` is GreedyLR with an annealed tail, measured as a candidate for
``schedule="auto"`` in ``benchmarks/bench_auto.py``.
"""
from __future__ import annotations

import math

from .base import StepInfo, check_positive, register
from .classic import _check_total, _ParamsRepr
from .greedy import GreedyLR

__all__ = ["AnnealedGreedy", "CeilingFraction"]


@register("annealed_greedy")
class AnnealedGreedy(_ParamsRepr):
    r"""GreedyLR for the first part of the run, then annealed to ``end_factor`` of its LR.

    .. math::

        \eta_t = \eta^{greedy}_t \cdot a(t), \qquad
        a(t) = \begin{cases} 1 & t < t_0 \\
        e + (1 - e)\,\tfrac12\bigl(1 + \cos(\pi \tfrac{t - t_0}{T - t_0})\bigr) & t \ge t_0
        \end{cases}

    with :math:`T` = ``total`` (the run's ticks), :math:`t_0 = \lceil (1 - \text{tail}) T \rceil`
    and :math:`e` = ``end_factor``. The inner GreedyLR (``greedy`` keyword arguments) sees every
    observation unchanged, so its own rule (raise the LR while the loss improves, lower it while
    it does not) runs throughout. ``tail=0`` or ``total=None`` is the plain GreedyLR.

    Parameters
    ----------
    tail : float in [0, 1], default 0.3
        Fraction of the run's ticks over which the LR is annealed.
    end_factor : float in [0, 1], default 0.1
        Multiplier of the LR at the last tick.
    greedy : dict, optional
        Keyword arguments of :class:`~nmf_sched.schedules.greedy.GreedyLR`.
    kappa : float in (0, 1], default 0.5
        Passed to the GreedyLR (fraction of the ceiling for ``lr="bound"``).
    total : int or None
        Ticks of the run (``fit`` passes it).

    Examples
    --------
    ``AnnealedGreedy(tail=0.5, end_factor=0.0, greedy={"lr": 1.0}, total=4)``: greedy keeps
    1.0 (patience 10); ticks 0, 1 give 1.0, tick 2 starts the tail (1.0), tick 3 gives
    0.5, tick 4 gives 0.0 (the LR for after the last tick).
    """

    needs: tuple = ()
    _repr_params = ("tail", "end_factor", "greedy", "kappa", "total")

    def __init__(self, tail=0.3, end_factor=0.1, greedy=None, *, kappa=0.5, total=None):
        check_positive("tail", tail, allow_zero=True, upper=1.0)
        check_positive("end_factor", end_factor, allow_zero=True, upper=1.0)
        if greedy is not None and not isinstance(greedy, dict):
            raise TypeError(f"greedy must be a dict of GreedyLR arguments, got {greedy!r}")
        _check_total(total, required=False, owner="AnnealedGreedy")
        self.tail, self.end_factor, self.kappa, self.total = tail, end_factor, kappa, total
        self.greedy = dict(greedy or {})
        self.inner = GreedyLR(**{"kappa": kappa, **self.greedy})

    def _factor(self, t: int) -> float:
        T = self.total
        if T is None or self.tail == 0:
            return 1.0
        t0 = math.ceil((1.0 - self.tail) * T)
        if t < t0 or T <= t0:
            return 1.0
        x = min(1.0, (t - t0) / (T - t0))
        return self.end_factor + (1.0 - self.end_factor) * 0.5 * (1.0 + math.cos(math.pi * x))

    def init(self) -> dict:
        return {"tick": 0, "inner": self.inner.init()}

    def lr(self, state: dict) -> float:
        return self.inner.lr(state["inner"]) * self._factor(state["tick"])

    def update(self, state: dict, info: StepInfo) -> dict:
        return {"tick": int(info.tick), "inner": self.inner.update(state["inner"], info)}


@register("ceiling_fraction")
class CeilingFraction(_ParamsRepr):
    r"""A constant fraction of the *current* stability ceiling: :math:`\eta_t = a\,c_t`.

    The control for schedules whose action is relative to the ceiling of the moment (the RL
    policy's action, GreedyLR's ``max_lr="bound"``): ``Constant(lr="bound")`` resolves
    :math:`a\,c_0` once, at the initial observation; this one re-reads the ceiling at every
    tick (the last finite one when a tick reports none).

    With a tuple ``fraction = (a_0, ..., a_{p-1})`` the fraction cycles with the tick,
    :math:`a = a_{t \bmod p}`: ``(0.9, 0.2)`` is the two-step high/low cycle that the RL policy's
    action resembles on most problems (a control for that pattern).

    Parameters
    ----------
    fraction : float in (0, 1] or tuple of them, default 0.5
        :math:`a` (or the cycle of fractions).
    kappa, total :
        Accepted for the common constructor signature and ignored (``fraction`` is the
        fraction of the ceiling).

    Examples
    --------
    ====  =======  ====
    tick  ceiling  lr (fraction 0.5)
    ====  =======  ====
    0     2.0      1.0
    1     1.0      0.5
    2     None     0.5
    3     4.0      2.0
    ====  =======  ====

    ``fraction=(0.9, 0.2)`` with the ceiling 1.0 at every tick: 0.9, 0.2, 0.9, 0.2, ...
    """

    needs: tuple = ()
    _repr_params = ("fraction",)

    def __init__(self, fraction=0.5, *, kappa=None, total=None):
        if isinstance(fraction, (tuple, list)):
            if not fraction:
                raise ValueError("fraction must be a float or a non-empty tuple, got ()")
            for a in fraction:
                check_positive("fraction", a, upper=1.0)
            fraction = tuple(fraction)
        else:
            check_positive("fraction", fraction, upper=1.0)
        self.fraction, self.kappa, self.total = fraction, kappa, total

    def _fraction(self, tick: int) -> float:
        f = self.fraction
        return f[tick % len(f)] if isinstance(f, tuple) else f

    def init(self) -> dict:
        return {"tick": 0, "ceiling": None}

    def lr(self, state: dict) -> float:
        if state["ceiling"] is None:
            raise ValueError("ceiling_fraction needs a stability ceiling at the initial "
                             "observation (update with tick 0 and clip_lr on) before lr(state)")
        return self._fraction(state["tick"]) * state["ceiling"]

    def update(self, state: dict, info: StepInfo) -> dict:
        c = info.ceiling
        ok = c is not None and math.isfinite(c) and c > 0
        if not ok and state["ceiling"] is None:
            raise ValueError(f"ceiling_fraction needs a finite positive ceiling, got {c!r}")
        return {"tick": int(info.tick), "ceiling": float(c) if ok else state["ceiling"]}
