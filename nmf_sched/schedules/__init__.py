"""Learning-rate schedules: one protocol (:mod:`.base`), one module per family.

Every schedule follows :class:`~nmf_sched.schedules.base.Schedule` and is
constructible by name through :func:`make_schedule`.
"""
from .base import Schedule, StepInfo, available, make_schedule, register

_load_all = True  # importing the family modules below fills the registry
from . import classic, compose, greedy, plateau  # noqa: E402,F401
from .classic import (  # noqa: E402,F401
    Constant, Cosine, Exponential, InverseTime, Linear, Polynomial, StepDecay,
)
from .compose import Chain, Warmup  # noqa: E402,F401
from .greedy import GreedyLR  # noqa: E402,F401
from .plateau import ReduceLROnPlateau  # noqa: E402,F401
from . import hypergradient  # noqa: E402,F401
from . import sls  # noqa: E402,F401
from . import rl_policy  # noqa: E402,F401
from . import ceiling_relative  # noqa: E402,F401
from .ceiling_relative import AnnealedGreedy, CeilingFraction  # noqa: E402,F401

__all__ = [
    "Schedule", "StepInfo", "available", "make_schedule", "register",
    "Constant", "StepDecay", "Exponential", "InverseTime", "Polynomial", "Linear",
    "Cosine", "Warmup", "Chain", "ReduceLROnPlateau", "GreedyLR", "AnnealedGreedy",
    "CeilingFraction",
]
