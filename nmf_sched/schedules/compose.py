"""Schedules built from other schedules: a linear warmup wrapper and a chain.

Both keep their inner schedules' states nested inside their own plain dict,
so the composite state stays JSON-able.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .base import StepInfo, check_positive, make_schedule, register
from .classic import _check_kappa, _check_total, _ParamsRepr

__all__ = ["Warmup", "Chain"]


def _scale(value, factor: float):
    """Multiply an LR (float, per-block dict, or per-entry arrays) by ``factor``."""
    if factor == 1.0:
        return value
    if isinstance(value, Mapping):
        return {k: v * factor for k, v in value.items()}
    return value * factor


def _merge_needs(schedules) -> tuple:
    needs: list = []
    for s in schedules:
        for key in getattr(s, "needs", ()):
            if key not in needs:
                needs.append(key)
    return tuple(needs)


@register("warmup")
class Warmup(_ParamsRepr):
    r"""Linear warmup in front of another schedule.

    The wrapped schedule runs on the same ticks; its rate is multiplied by a
    factor that ramps linearly from ``start_factor`` to 1 over ``warmup`` ticks:

    .. math::
        \eta_t = \eta^{inner}_t \left(f_0 + (1 - f_0)\,\frac{\min(t, w)}{w}\right)

    Parameters
    ----------
    inner : Schedule or spec, default "constant"
        The wrapped schedule: an object following the protocol or anything
        :func:`~nmf_sched.schedules.base.make_schedule` accepts (a name, a
        ``(name, kwargs)`` pair, a float, a callable). A spec receives this
        wrapper's ``total`` and ``kappa`` as defaults.
    warmup : int >= 0, default 5
        :math:`w`, ticks of the ramp (0: no ramp).
    start_factor : float in (0, 1], default 0.1
        :math:`f_0`, the fraction of the inner rate used at tick 0.
    kappa : float in (0, 1], default 0.5
        Passed to a spec ``inner``.
    total : int or None
        Passed to a spec ``inner``.

    Notes
    -----
    State: ``{"tick": t, "inner": <inner state>}``. ``needs`` is the inner
    schedule's ``needs``; the inner schedule sees every :class:`StepInfo`
    unchanged.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``Warmup(inner=("exp", {"lr": 1.0, "gamma": 0.5}), warmup=2, start_factor=0.5)``

    ====  ========
    tick  lr
    ====  ========
    0     0.5
    1     0.375
    2     0.25
    3     0.125
    ====  ========

    References
    ----------
    .. [1] P. Goyal et al., "Accurate, large minibatch SGD: training ImageNet
       in 1 hour", arXiv:1706.02677, 2017 (gradual warmup).
    """

    needs: tuple = ()
    _repr_params = ("inner", "warmup", "start_factor", "kappa", "total")

    def __init__(self, inner="constant", warmup=5, start_factor=0.1, *, kappa=0.5, total=None):
        check_positive("warmup", warmup, integer=True, allow_zero=True)
        check_positive("start_factor", start_factor, upper=1.0)
        _check_kappa(kappa)
        _check_total(total, required=False, owner="Warmup")
        self.inner = inner
        self.warmup = warmup
        self.start_factor = start_factor
        self.kappa = kappa
        self.total = total
        self._inner = make_schedule(inner, total=total, kappa=kappa)
        self.needs = _merge_needs([self._inner])

    def _factor(self, t: int) -> float:
        if self.warmup == 0 or t >= self.warmup:
            return 1.0
        return self.start_factor + (1.0 - self.start_factor) * (t / self.warmup)

    def init(self) -> dict:
        return {"tick": 0, "inner": self._inner.init()}

    def update(self, state: dict, info: StepInfo) -> dict:
        return {"tick": int(info.tick), "inner": self._inner.update(state["inner"], info)}

    def lr(self, state: dict):
        return _scale(self._inner.lr(state["inner"]), self._factor(state["tick"]))


@register("sequence")
@register("chain")
class Chain(_ParamsRepr):
    r"""Run schedules one after the other.

    ``segments = [(s_0, n_0), (s_1, n_1), ...]``: segment :math:`i` covers the
    ticks :math:`B_i \le t < B_i + n_i` with :math:`B_0 = 0`,
    :math:`B_{i+1} = B_i + n_i`, and sees the local tick :math:`t - B_i`, so its
    clock restarts at 0 (its own initial observation: a segment with
    ``lr="bound"`` starts from ``kappa`` times the ceiling at that moment). The
    last segment continues past its length; its ``n_ticks`` may be ``None``.

    .. math:: \eta_t = \eta^{(i)}_{t - B_i}, \qquad B_i \le t < B_{i+1}

    Parameters
    ----------
    segments : sequence of (schedule, n_ticks)
        Each schedule is a protocol object or a spec for
        :func:`~nmf_sched.schedules.base.make_schedule`; a spec receives
        ``total=n_ticks`` (for the last segment with ``n_ticks=None``: the
        ticks left of this chain's ``total``, if known) and ``kappa``.
        ``n_ticks`` is an integer >= 1.
    kappa : float in (0, 1], default 0.5
        Passed to spec segments.
    total : int or None
        The run's number of ticks (used for an open last segment).

    Notes
    -----
    State: ``{"tick": t, "segment": i, "states": [state_0, state_1, ...]}``;
    only the active segment's state changes. ``needs`` is the union of the
    segments' ``needs``. Registered as ``"chain"`` and ``"sequence"``.

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``Chain([(("constant", {"lr": 0.5}), 2), (("exp", {"lr": 1.0, "gamma": 0.5}), None)])``

    ====  ======
    tick  lr
    ====  ======
    0     0.5
    1     0.5
    2     1.0
    3     0.5
    4     0.25
    ====  ======

    References
    ----------
    .. [1] PyTorch ``torch.optim.lr_scheduler.SequentialLR`` (the same
       composition, with restarting segment clocks).
    """

    needs: tuple = ()
    _repr_params = ("segments", "kappa", "total")

    def __init__(self, segments=None, *, kappa=0.5, total=None):
        _check_kappa(kappa)
        _check_total(total, required=False, owner="Chain")
        if segments is None or isinstance(segments, (str, bytes, Mapping)) \
                or not hasattr(segments, "__len__") or len(segments) == 0:
            raise ValueError(
                f"segments must be a non-empty list of (schedule, n_ticks) pairs, got {segments!r}")
        self.segments = segments
        self.kappa = kappa
        self.total = total
        schedules, lengths = [], []
        used = 0
        for i, seg in enumerate(segments):
            if isinstance(seg, (str, bytes, Mapping)) or not hasattr(seg, "__len__") or len(seg) != 2:
                raise ValueError(
                    f"segments[{i}] must be a (schedule, n_ticks) pair, got {seg!r}")
            spec, n = seg
            last = i == len(segments) - 1
            if n is None:
                if not last:
                    raise ValueError(
                        f"segments[{i}] n_ticks may be None only for the last segment, got None")
                horizon = None if total is None else max(total - used, 1)
            else:
                check_positive(f"segments[{i}] n_ticks", n, integer=True)
                horizon = n
                used += n
            schedules.append(make_schedule(spec, total=horizon, kappa=kappa))
            lengths.append(n)
        self._schedules = schedules
        self._lengths = lengths
        self.needs = _merge_needs(schedules)

    def _locate(self, tick: int) -> tuple[int, int]:
        """Return ``(segment index, local tick)`` for a global tick."""
        start = 0
        for i, n in enumerate(self._lengths):
            if n is None or i == len(self._lengths) - 1 or tick < start + n:
                return i, tick - start
            start += n
        raise AssertionError("unreachable")  # pragma: no cover

    def init(self) -> dict:
        return {"tick": 0, "segment": 0, "states": [s.init() for s in self._schedules]}

    def update(self, state: dict, info: StepInfo) -> dict:
        tick = int(info.tick)
        i, local = self._locate(tick)
        states = list(state["states"])
        states[i] = self._schedules[i].update(states[i], dataclasses.replace(info, tick=local))
        return {"tick": tick, "segment": i, "states": states}

    def lr(self, state: dict):
        i = state["segment"]
        return self._schedules[i].lr(state["states"][i])
