"""The Schedule protocol, the information a schedule sees, and the registry.

A schedule is a small object with three pure methods (optax-style):

``init() -> state``
    A plain, JSON-able dict. The schedule keeps no other mutable data, so a run
    can be checkpointed (``json.dumps(state)``) and resumed.
``lr(state) -> float | dict``
    The learning rate to use until the next update. A float is one global LR;
    a dict ``{"W": float, "H": float}`` gives one LR per block; a dict holding
    arrays shaped like the factors gives one LR per entry (hypergradient).
``update(state, info) -> state``
    Returns a *new* state from the old one and a :class:`StepInfo`; the old
    state is never mutated.

The clock
---------
The solver calls ``update`` once with ``info.tick == 0`` before the first
step: the *initial observation* (loss and ceiling at the initialization).
After that it calls ``update`` every schedule tick (each epoch by default, or
every ``schedule_every`` minibatches) with ``tick = 1, 2, ...``. Classic
schedules are functions of the tick: with per-epoch ticks, tick ``t`` is the
number of completed epochs. A schedule never touches the factors.

Units
-----
The LR is in the unit of the solver's step (``precondition="none"``: an
absolute step size; ``"gram"`` and ``"lipschitz"``: dimensionless). The
``ceiling`` in :class:`StepInfo` is in the same unit, so ``lr0="bound"`` (start
at ``kappa * ceiling``) and ``max_lr="bound"`` mean the same thing for every
preconditioner.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from ..config import check_int, check_real

__all__ = [
    "StepInfo",
    "Schedule",
    "register",
    "make_schedule",
    "available",
    "check_positive",
    "check_lr",
    "resolve_lr0",
    "CallableSchedule",
    "AUTO",
    "resolve",
    "replay",
]

#: What ``schedule="auto"`` means: GreedyLR started at half the stability ceiling (the
#: initial-LR rule); the solver caps every step at kappa * ceiling, so nobody picks a
#: learning rate and no step exceeds the ceiling.
AUTO = ("greedy", {"lr": "bound", "max_lr": None})


@dataclass(frozen=True)
class StepInfo:
    """What the solver tells a schedule at each tick.

    Parameters
    ----------
    step : int
        Minibatch updates done so far.
    epoch : int
        Completed epochs.
    loss : float or None
        The loss the schedule watches (full loss from the Gram identity, or the
        smoothed minibatch loss, see ``fit(schedule_loss=...)``); ``None`` when
        not evaluated at this tick.
    ceiling : float or None
        The current stability ceiling (the binding one over the blocks), in the
        LR's unit. ``None`` when the solver computes no ceiling.
    extras : Mapping
        Additional signals a schedule asked for through its ``needs`` attribute
        (e.g. ``"ceilings"`` per block, ``"grad_dot"`` for hypergradient descent,
        ``"probe"`` for line search). Empty for schedules that ask for nothing.
    tick : int
        0 for the initial observation, then 1, 2, ... one per schedule update.
    """

    step: int
    epoch: int
    loss: float | None
    ceiling: float | None
    extras: Mapping[str, Any] = field(default_factory=dict)
    tick: int = 0

    @classmethod
    def at_tick(cls, tick: int, loss=None, ceiling=None, extras=None) -> "StepInfo":
        """The observation of a driver that counts ticks only (the PyTorch adapters, the
        DNN policy): ``step = epoch = tick``. The NMF engine builds its own from the fit."""
        return cls(step=tick, epoch=tick, loss=loss, ceiling=ceiling,
                   extras={} if extras is None else extras, tick=tick)


@runtime_checkable
class Schedule(Protocol):
    """Protocol every learning-rate schedule follows (see module docstring)."""

    def init(self) -> dict: ...

    def lr(self, state: dict) -> Any: ...

    def update(self, state: dict, info: StepInfo) -> dict: ...


# ----------------------------------------------------------------------------
# validation helpers shared by every schedule
# ----------------------------------------------------------------------------

def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_positive(name: str, value, *, allow_zero: bool = False, integer: bool = False,
                   upper: float | None = None, upper_inclusive: bool = True):
    """Validate a numeric schedule parameter (the checks of :mod:`nmf_sched.config`).

    ``integer``: an integer; otherwise a finite real number. ``> 0`` (``>= 0`` with
    ``allow_zero``) and at most ``upper``. Raises TypeError/ValueError naming ``name``.
    The value is returned as given.
    """
    if integer:
        check_int(name, value, minimum=0 if allow_zero else 1)
        if upper is not None:
            check_real(name, value, minimum=None, upper=upper, upper_inclusive=upper_inclusive)
        return value
    check_real(name, value, minimum=0.0, positive=not allow_zero, upper=upper,
               upper_inclusive=upper_inclusive)
    return value


def check_lr(name: str, value, *, allow_bound: bool = True):
    """Validate an LR argument: a positive finite float, or ``"bound"``."""
    if isinstance(value, str):
        if allow_bound and value == "bound":
            return value
        raise ValueError(f"{name} must be a positive float or 'bound', got {value!r}")
    return check_positive(name, value)


def resolve_lr0(lr0, info: StepInfo, kappa: float = 0.5) -> float:
    """Turn ``lr0`` into a number at the initial observation.

    ``"bound"`` means ``kappa * info.ceiling`` (the initial-LR rule of the
    theory toolkit); a number is returned unchanged.
    """
    if lr0 == "bound":
        if info.ceiling is None or not math.isfinite(info.ceiling) or info.ceiling <= 0:
            raise ValueError(
                "lr0='bound' needs a stability ceiling, but the solver reported "
                f"ceiling={info.ceiling!r}; pass a numeric lr or enable clip_lr")
        return float(kappa * info.ceiling)
    return float(lr0)


# ----------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., Schedule]] = {}


def register(name: str):
    """Class decorator: make a schedule constructible by name."""

    def deco(cls):
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> list[str]:
    """Names accepted by ``fit(schedule=NAME)``."""
    from . import _load_all  # noqa: F401  (importing the package fills the registry)

    return sorted(set(_REGISTRY) | {"auto"})


class CallableSchedule:
    """Wrap a callable ``tick -> lr`` as a Schedule.

    The callable receives the schedule tick (0 before the first epoch, then the
    number of completed ticks) and returns a positive float.
    """

    needs: tuple = ()

    def __init__(self, fn: Callable[[int], float]):
        if not callable(fn):
            raise TypeError(f"schedule must be callable, got {fn!r}")
        self.fn = fn

    def init(self) -> dict:
        return {"tick": 0}

    def lr(self, state: dict) -> float:
        value = self.fn(state["tick"])
        if not _is_real(value) or not math.isfinite(float(value)) or value < 0:
            raise ValueError(
                f"schedule callable returned lr={value!r} at tick {state['tick']}; "
                "it must return a finite float >= 0")
        return float(value)

    def update(self, state: dict, info: StepInfo) -> dict:
        return {"tick": int(info.tick)}

    def __repr__(self):
        return f"CallableSchedule({self.fn!r})"


def make_schedule(spec, **defaults) -> Schedule:
    """Build a Schedule from any accepted form of ``fit(schedule=...)``.

    Accepted: a registered name, a ``(name, kwargs)`` pair, a positive float
    (constant LR), a callable ``tick -> lr``, or an object following the
    protocol. ``"auto"`` is :data:`AUTO`.
    Unknown names raise ValueError listing the valid ones.
    """
    from . import _load_all  # noqa: F401

    if spec is None:
        raise TypeError("schedule must not be None; use a name such as 'auto' or 'greedy'")
    if isinstance(spec, str) and spec.lower() == "auto":
        spec = AUTO
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[0], str) or not isinstance(spec[1], Mapping):
            raise TypeError(f"schedule tuple must be (name, kwargs), got {spec!r}")
        name, kwargs = spec[0], dict(spec[1])
    elif _is_real(spec):
        check_positive("schedule", spec)
        return _REGISTRY["constant"](lr=float(spec))
    elif all(hasattr(spec, a) for a in ("init", "lr", "update")):
        return spec
    elif callable(spec):
        return CallableSchedule(spec)
    else:
        raise TypeError(
            "schedule must be a name, a (name, kwargs) pair, a float, a callable "
            f"tick -> lr or a Schedule instance, got {spec!r}")
    key = name.lower().replace("-", "_")
    if key == "auto":  # ("auto", kwargs): the auto schedule with some settings changed
        name, kwargs = AUTO[0], {**AUTO[1], **kwargs}
        key = name
    if key not in _REGISTRY:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(available())}")
    merged = {**defaults, **kwargs}
    return _REGISTRY[key](**merged)


def resolve(spec, *, total) -> Schedule:
    """``fit(schedule=...)`` -> a Schedule instance (``"auto"`` included), ``total`` ticks."""
    return make_schedule(spec, total=total)


def lr_granularity(schedule) -> str:
    """``"entry"`` when the schedule returns one LR per factor entry (arrays shaped like the
    factors, e.g. hypergradient with ``granularity="parameter"``), else ``"block"``.

    A schedule declares it with an attribute ``per_entry = True``; the engine reads it to
    refuse, before any work, a preconditioner or backend that takes one LR per block.
    """
    return "entry" if bool(getattr(schedule, "per_entry", False)) else "block"


def replay(schedule, losses, ceilings):
    """The LRs a schedule gives, tick by tick, for given losses and ceilings (no solver).

    Tick ``t`` sees ``loss = losses[t]`` and ``ceiling = ceilings[t]`` (also as the per-block
    ``"ceilings"`` extra); returns the list of ``schedule.lr(state)`` after each update. For
    figures and tables of a schedule's behaviour; a schedule that needs solver signals other
    than the ceilings (``grad_dot``, ``probe``) cannot be replayed.
    """
    needs = set(getattr(schedule, "needs", ())) - {"ceilings"}
    if needs:
        raise ValueError(f"schedule {schedule!r} needs solver signals {sorted(needs)}; it cannot "
                         "be replayed without a fit")
    state = schedule.init()
    out = []
    for t, (loss, c) in enumerate(zip(losses, ceilings)):
        extras = {"ceilings": {"W": c, "H": c}} if c is not None else {}
        state = schedule.update(state, StepInfo.at_tick(t, loss=loss, ceiling=c, extras=extras))
        out.append(schedule.lr(state))
    return out
