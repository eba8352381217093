"""Settings of a fit, validated in one place.

Every scalar setting of :mod:`nmf_sched` goes through the checks of this module, so an error
always has the same shape: a :class:`TypeError` for a value of the wrong type, a
:class:`ValueError` for a value out of range, both naming the argument and the value.

The settings of a run are frozen dataclasses that validate themselves when built
(:class:`RowConfig` for row minibatches: dense, sparse, memmap, CuPy and Dask data;
:class:`MaskedConfig` for the observed entries of masked NMF; both extend
:class:`EngineConfig`, the settings the one epoch loop reads). Building one from a user's
keyword arguments is the whole validation of :func:`nmf_sched.fit`::

    cfg = RowConfig(epochs=50, kappa=0.8)      # ValueError/TypeError on a bad setting
    cfg = cfg.resolved(m=1000)                 # batch_size="auto" -> an integer

Settings are stored as given and checked here (scikit-learn's convention: the estimator
stores its parameters unchanged in ``__init__`` and validates them in ``fit``).
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable

import numpy as np

__all__ = [
    "check_int", "check_real", "check_bool", "check_choice", "check_callable", "check_path",
    "EngineConfig", "RowConfig", "MaskedConfig", "PRECONDITIONERS", "SHUFFLES", "MASKED_SOLVERS",
    "default_batch_size",
]

#: ``"cd"``: coordinate-wise (Gauss–Seidel) scaled steps, the default; ``"gram"``: k x k
#: Gram-preconditioned W step with a ``diag(W^T W)`` H step; ``"lipschitz"``: gradient over
#: the block curvature; ``"none"``: plain SGD with an absolute LR (the research setting).
PRECONDITIONERS = ("cd", "gram", "lipschitz", "none")
SHUFFLES = ("rows", "blocks", "none")
MASKED_SOLVERS = ("entry", "rows")


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_int(name: str, value, *, minimum: int | None = 1, allow_none: bool = False,
              words: tuple = ()):
    """An integer ``>= minimum`` (bool and floats such as ``2.0`` are refused).

    ``words`` are strings accepted as they are (e.g. ``"auto"``); ``allow_none`` accepts None.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value in words:
        return value
    if not _is_int(value):
        alts = "".join(f" or {w!r}" for w in words) + (" or None" if allow_none else "")
        bound = f" >= {minimum}" if minimum is not None else ""
        raise TypeError(f"{name} must be an integer{bound}{alts}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_real(name: str, value, *, minimum: float | None = 0.0, positive: bool = False,
               upper: float | None = None, upper_inclusive: bool = True,
               allow_none: bool = False, allow_inf: bool = False, words: tuple = ()):
    """A real number (bool refused), finite unless ``allow_inf``, ``>= minimum``
    (``> 0`` with ``positive``) and ``<= upper`` (``< upper`` unless ``upper_inclusive``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value in words:
        return value
    if not _is_real(value):
        alts = "".join(f" or {w!r}" for w in words) + (" or None" if allow_none else "")
        raise TypeError(f"{name} must be a real number{alts}, got {value!r}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    if upper is not None and (v > upper or (not upper_inclusive and v >= upper)):
        raise ValueError(f"{name} must be {'<=' if upper_inclusive else '<'} {upper:g}, got {value!r}")
    return v


def check_bool(name: str, value) -> bool:
    """A bool (``numpy.bool_`` included); 0/1 and strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_choice(name: str, value, choices):
    """One of ``choices`` (compared with ``==``)."""
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_callable(name: str, value, *, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f"{name} must be callable{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_path(name: str, value, *, allow_none: bool = True):
    """A file path (str or os.PathLike) or None; returned as a str."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {value!r}")
    return os.fspath(value)


def default_batch_size(m: int) -> int:
    """``batch_size="auto"``: about 16 batches per epoch, at least 1024 rows."""
    return int(min(m, max(1024, math.ceil(m / 16))))


# ---------------------------------------------------------------------------
# the configs
# ---------------------------------------------------------------------------
class _Validating:
    """Frozen-dataclass mixin: ``_check()`` in ``__post_init__`` normalizes every field."""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            rule = self._rules().get(f.name)
            if rule is not None:
                object.__setattr__(self, f.name, rule(f.name, value))
        self._cross_checks()

    @classmethod
    def _rules(cls) -> dict:
        return {}

    def _cross_checks(self):
        pass

    def replace(self, **changes):
        """A validated copy with ``changes``."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


def _int(minimum=1, **kw):
    return lambda name, v: check_int(name, v, minimum=minimum, **kw)


def _real(**kw):
    return lambda name, v: check_real(name, v, **kw)


def _choice(choices):
    return lambda name, v: check_choice(name, v, choices)


@dataclass(frozen=True)
class EngineConfig(_Validating):
    """What the one epoch loop reads (:mod:`nmf_sched.engine.loop`).

    Attributes
    ----------
    epochs : int >= 1
        Maximum passes over the data.
    clip_lr : bool
        Step at ``min(lr, kappa * ceiling)`` per block.
    kappa : float > 0
        Fraction of the ceiling allowed.
    tol : float >= 0
        Stop when the best watched loss improved by at most ``tol`` (relative) over the last
        ``n_iter_no_change`` epochs (0 disables).
    n_iter_no_change : int >= 1
    max_time : float > 0 or None
        Wall-clock budget in seconds (checked after every step).
    callback : callable ``(record, W, H) -> bool`` or None
        Called after every epoch; a truthy return stops the run.
    progress : bool
        A tqdm progress bar (extra ``progress``).
    schedule_every : int >= 1 or None
        Tick the schedule every N steps (it then sees the mean scaled step loss) instead of
        once per epoch.
    guard, max_retries, guard_shrink, explode :
        The divergence guard: a non-finite loss, or one above ``explode`` times the initial
        loss, restores the epoch's snapshot, turns the ceiling on and multiplies the step by
        ``guard_shrink``, at most ``max_retries`` times; ``guard=False`` stops at the first.
    checkpoint : path or None
        Write a checkpoint there every ``checkpoint_every`` epochs (temp file + rename).
    checkpoint_every : int >= 1
    resume : path or None
        Continue from that checkpoint (refused if its matrix or settings differ).
    alpha_W : float >= 0
        Penalty strength on ``W``, scaled by ``n_features`` as scikit-learn scales it:
        ``n alpha_W (l1_ratio ||W||_1 + (1 - l1_ratio)/2 ||W||_F^2)``.
    alpha_H : float >= 0 or "same"
        Penalty strength on ``H`` (scaled by ``n_samples``); ``"same"`` takes ``alpha_W``.
    l1_ratio : float in [0, 1]
        The L1 share of the penalties.
    """

    epochs: int = 200
    clip_lr: bool = True
    kappa: float = 0.9
    tol: float = 1e-4
    n_iter_no_change: int = 5
    max_time: float | None = None
    callback: Callable | None = None
    progress: bool = False
    schedule_every: int | None = None
    guard: bool = True
    max_retries: int = 6
    guard_shrink: float = 0.5
    explode: float = 100.0
    checkpoint: Any = None
    checkpoint_every: int = 1
    resume: Any = None
    alpha_W: float = 0.0
    alpha_H: Any = "same"
    l1_ratio: float = 0.0

    @classmethod
    def _rules(cls) -> dict:
        return dict(
            alpha_W=_real(), alpha_H=_real(words=("same",)), l1_ratio=_real(upper=1.0),
            epochs=_int(), clip_lr=check_bool, kappa=_real(positive=True), tol=_real(),
            n_iter_no_change=_int(), max_time=_real(positive=True, allow_none=True, allow_inf=True),
            callback=lambda n, v: check_callable(n, v), progress=check_bool,
            schedule_every=_int(allow_none=True), guard=check_bool, max_retries=_int(0),
            guard_shrink=_real(positive=True, upper=1.0, upper_inclusive=False),
            explode=_real(minimum=1.0, allow_inf=True),
            checkpoint=lambda n, v: check_path(n, v), checkpoint_every=_int(),
            resume=lambda n, v: check_path(n, v),
        )

    #: fields that only decide when a run stops or what it reports: they may change on resume
    STOP_FIELDS = ("epochs", "tol", "n_iter_no_change", "max_time", "callback", "progress",
                   "checkpoint", "checkpoint_every", "resume")

    @property
    def regularized(self) -> bool:
        """Whether the penalties are on (some ``alpha > 0``)."""
        aH = self.alpha_W if self.alpha_H == "same" else self.alpha_H
        return bool(self.alpha_W or aH)

    def penalty(self, m: int, n: int):
        """The absolute penalties for ``m`` samples and ``n`` features
        (:class:`nmf_sched.engine.penalty.Penalty`)."""
        from .engine.penalty import Penalty

        return Penalty.from_alphas(self.alpha_W, self.alpha_H, self.l1_ratio, m, n)

    def trajectory_settings(self) -> dict:
        """The settings that decide the path of a run (the checkpoint fingerprint)."""
        out = {}
        for f in fields(self):
            if f.name in self.STOP_FIELDS:
                continue
            v = getattr(self, f.name)
            out[f.name] = v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
        return out


@dataclass(frozen=True)
class RowConfig(EngineConfig):
    """Settings of a fit on row minibatches (dense, sparse, memmap, CuPy and Dask data).

    See :func:`nmf_sched.fit` for the meaning of each setting.
    """

    batch_size: Any = "auto"
    init: str = "auto"
    noise_std: float = 0.0
    clip_update: float | None = None
    max_value: float | None = None
    precondition: str = "cd"
    schedule_loss: str = "full"
    shuffle: str = "rows"
    balance: bool = True
    rescale_init: bool = True
    noise_ceiling: bool = True   # enforce the noise-aware ceiling (engine/noise.py)

    @classmethod
    def _rules(cls) -> dict:
        from .init import INITS

        return dict(
            super()._rules(),
            batch_size=_int(words=("auto",)), init=_choice(INITS), noise_std=_real(),
            clip_update=_real(positive=True, allow_none=True),
            max_value=_real(positive=True, allow_none=True), precondition=_choice(PRECONDITIONERS),
            schedule_loss=_choice(("full", "batch")), shuffle=_choice(SHUFFLES),
            balance=check_bool, rescale_init=check_bool, noise_ceiling=check_bool,
        )

    def resolved(self, m: int) -> "RowConfig":
        """``batch_size="auto"`` replaced by :func:`default_batch_size` of ``m`` rows."""
        if self.batch_size == "auto":
            return replace(self, batch_size=default_batch_size(m))
        return self


@dataclass(frozen=True)
class MaskedConfig(EngineConfig):
    """Settings of masked NMF (:func:`nmf_sched.fit_masked`).

    ``batch_size`` counts training entries per step (``"auto"``: one step per epoch).
    """

    epochs: int = 50
    lam: float = 0.01
    solver: str = "entry"
    adaptive: bool = False
    schedule_on: str = "train"
    block_size: int = 256
    batch_size: Any = "auto"
    balance: bool = True

    @classmethod
    def _rules(cls) -> dict:
        return dict(
            super()._rules(), lam=_real(), solver=_choice(MASKED_SOLVERS), adaptive=check_bool,
            schedule_on=_choice(("train", "validation")), block_size=_int(),
            batch_size=_int(words=("auto",)), balance=check_bool,
        )

    def _cross_checks(self):
        if self.adaptive and self.solver == "rows":
            raise ValueError("adaptive=True is LIBMF's rule for solver='entry'; got solver='rows'")
