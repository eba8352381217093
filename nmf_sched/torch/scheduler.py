r"""``ScheduleLR``: any nmf-sched schedule as a ``torch.optim.lr_scheduler``.

The adapter drives a :class:`~nmf_sched.schedules.base.Schedule` (pure, JSON-able state)
from a PyTorch training loop and writes its LR into the optimizer's param groups:

* construction is the schedule's initial observation (tick 0, no loss): the groups get
  the LR at tick 0 and ``last_epoch == 0``;
* the :math:`k`-th ``step(loss=None)`` is tick :math:`k`: ``StepInfo.at_tick(k,
  loss=loss)`` (``step = epoch = tick = k``, no ceiling); the groups get the schedule's LR at tick :math:`k`
  and ``last_epoch == k``. Whether a tick is an optimizer step or an epoch is the
  caller's choice, as with torch's own schedulers.

There is no stability ceiling for a DNN, so ``"bound"`` LRs (``lr="bound"``,
``max_lr="bound"``, ``schedule="auto"``) are refused with a ValueError.
"""
from __future__ import annotations

import copy
import inspect
import math
import numbers
from collections.abc import Mapping

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from ..schedules import make_schedule
from ..schedules.base import _REGISTRY, StepInfo
from ..schedules.compose import Chain, Warmup
from ..schedules.greedy import GreedyLR
from ..schedules.plateau import ReduceLROnPlateau as _Plateau
from ..schedules.rl_policy import RLPolicy

__all__ = ["ScheduleLR", "LossScheduleLR", "build_schedule", "watches_loss"]

_GROUPS = ("each", "shared")
#: schedule names whose LR follows the loss passed to ``step``
_LOSS_NAMES = {"greedy", "plateau", "rl", "auto"}
_STATE_VERSION = 1


# ----------------------------------------------------------------------------
# building a schedule for a DNN: base LR from the param group, no ceiling
# ----------------------------------------------------------------------------

def _key(name: str) -> str:
    return name.lower().replace("-", "_")


def _split(spec):
    """``(name, kwargs)`` for a name or a pair, else ``(None, None)``."""
    if isinstance(spec, str):
        return _key(spec), {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) \
            and isinstance(spec[1], Mapping):
        return _key(spec[0]), dict(spec[1])
    return None, None


def _is_instance(spec) -> bool:
    return all(hasattr(spec, a) for a in ("init", "lr", "update")) and not isinstance(spec, type)


def watches_loss(spec) -> bool:
    """Whether a schedule (spec or instance) changes its LR from the loss it is given.

    True for GreedyLR, ReduceLROnPlateau, the RL policies (an instance may declare it
    with an attribute ``watches_loss = True``) and a Warmup/Chain wrapping one of them.
    """
    if _is_instance(spec):
        own = getattr(spec, "watches_loss", None)
        if isinstance(own, bool):
            return own
        if isinstance(spec, (GreedyLR, _Plateau, RLPolicy)):
            return True
        if isinstance(spec, Warmup):
            return watches_loss(spec._inner)
        if isinstance(spec, Chain):
            return any(watches_loss(s) for s in spec._schedules)
        return False
    name, kwargs = _split(spec)
    if name is None:
        return False
    if name in _LOSS_NAMES:
        return True
    if name == "warmup":
        return watches_loss(kwargs.get("inner", "constant"))
    if name in ("chain", "sequence"):
        return any(watches_loss(seg[0]) for seg in kwargs.get("segments") or ()
                   if isinstance(seg, (tuple, list)) and len(seg) == 2)
    return False


def _accepts(cls, param: str) -> bool:
    try:
        return param in inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False


def build_schedule(spec, base_lr: float, total=None):
    """Build a Schedule for a DNN from any nmf-sched spec.

    Parameters
    ----------
    spec : str, (str, dict), float, callable or Schedule
        As for :func:`nmf_sched.make_schedule`.
    base_lr : float > 0
        The LR used when the spec gives none (``lr`` not in its kwargs): the param
        group's LR.
    total : int or None
        Horizon (ticks) for the schedules that need one (cosine, linear, polynomial).

    Returns
    -------
    schedule : Schedule
    given_lr : bool
        True when the LR came from the spec (a float, a callable, an instance, or an
        ``lr`` in the kwargs), False when ``base_lr`` was used.

    Notes
    -----
    Only the *defaults* change for a DNN: a named schedule whose constructor takes
    ``lr`` gets ``lr=base_lr``, one that takes ``max_lr`` gets ``max_lr=None`` (no cap:
    the NMF default is the stability ceiling), and ``total`` is passed through. Warmup's
    ``inner`` and Chain's segments are built by the same rule. A ``"bound"`` the caller
    wrote is refused by :func:`check_dnn_schedule`.
    """
    if spec is None:
        raise TypeError("schedule must not be None; use a name such as 'greedy' or 'cosine'")
    if isinstance(spec, str) and _key(spec) == "auto":
        raise ValueError(
            "schedule='auto' is GreedyLR started at half the stability ceiling, and a DNN has "
            "no stability ceiling; use schedule='greedy' (base LR from the param groups) or "
            "('greedy', {...}) with your settings")
    name, kwargs = _split(spec)
    if name is None:  # a float, a callable or an instance: the spec fixes its own LR
        return make_schedule(spec), True
    if name not in _REGISTRY:
        make_schedule(spec)  # raises the ValueError listing the valid names
    cls = _REGISTRY[name]
    given = "lr" in kwargs
    if name == "warmup":
        inner = kwargs.get("inner", "constant")
        kwargs["inner"], given = build_schedule(inner, base_lr, total)
    elif name in ("chain", "sequence"):
        segments = kwargs.get("segments")
        if segments is None or isinstance(segments, (str, bytes, Mapping)) \
                or not hasattr(segments, "__len__") or len(segments) == 0:
            raise ValueError(
                f"segments must be a non-empty list of (schedule, n_ticks) pairs, got {segments!r}")
        built, used, given = [], 0, False
        for i, seg in enumerate(segments):
            if isinstance(seg, (str, bytes, Mapping)) or not hasattr(seg, "__len__") or len(seg) != 2:
                raise ValueError(f"segments[{i}] must be a (schedule, n_ticks) pair, got {seg!r}")
            s, n = seg
            horizon = n if n is not None else (None if total is None else max(total - used, 1))
            sched, g = build_schedule(s, base_lr, horizon)
            given = given or g
            built.append((sched, n))
            used += n or 0
        kwargs["segments"] = built
    else:
        if _accepts(cls, "lr"):
            kwargs.setdefault("lr", base_lr)
        if _accepts(cls, "max_lr"):
            kwargs.setdefault("max_lr", None)
    if _accepts(cls, "total") and total is not None:
        kwargs.setdefault("total", total)
    return make_schedule((name, kwargs)), given


def _walk(schedule):
    yield schedule
    if isinstance(schedule, Warmup):
        yield from _walk(schedule._inner)
    elif isinstance(schedule, Chain):
        for s in schedule._schedules:
            yield from _walk(s)


def check_dnn_schedule(schedule, base_lr: float | None = None) -> None:
    """Refuse what cannot work without a stability ceiling or the solver's extras.

    Raises ValueError for ``lr="bound"`` / ``max_lr="bound"``, for the NMF RL policy (its
    action is a fraction of the ceiling), for a schedule that needs the solver's extras
    (``"grad_dot"``: use :class:`~nmf_sched.torch.HypergradientOptimizer`; ``"probe"``:
    line search), and for a ``min_lr`` above the initial LR (the Hugging Face trap: the LR
    could then never be lowered).
    """
    for s in _walk(schedule):
        owner = type(s).__name__
        for attr, arg in (("lr0", "lr"), ("max_lr", "max_lr")):
            if getattr(s, attr, None) == "bound":
                raise ValueError(
                    f"{owner}: {arg}='bound' needs a stability ceiling, and a DNN has none; "
                    f"pass a numeric {arg}" + (" or max_lr=None (no cap)" if arg == "max_lr" else
                                               " or leave lr out to use the param group's LR"))
        if isinstance(s, RLPolicy):
            raise ValueError(
                "schedule='rl' is the NMF policy, whose action is a fraction of the stability "
                "ceiling; for a DNN use nmf_sched.rl.dnn_policy.DNNPolicy() (trained on torch "
                "runs) or nmf_sched.rl.dnn_policy.NMFPolicyOnDNN() (the NMF policy with a "
                "fixed reference LR as its ceiling)")
        needs = tuple(getattr(s, "needs", ()))
        if "grad_dot" in needs:
            raise ValueError(
                f"{owner} needs gradient inner products (extras 'grad_dot') that an LR "
                "scheduler does not see; use nmf_sched.torch.HypergradientOptimizer(optimizer) "
                "instead of ScheduleLR")
        if needs:
            raise ValueError(
                f"{owner} needs the solver's extras {needs!r}, which ScheduleLR cannot provide")
        min_lr = getattr(s, "min_lr", None)
        lr0 = getattr(s, "lr0", None)
        if lr0 is None and base_lr is not None:
            lr0 = base_lr
        if isinstance(min_lr, numbers.Real) and isinstance(lr0, numbers.Real) and min_lr > lr0:
            raise ValueError(
                f"{owner}: min_lr={min_lr!r} is above the initial lr={lr0!r}: the LR would be "
                "raised to min_lr and could never come back down (the Hugging Face GreedyLR "
                "default min_lr=1e-3 sits above typical AdamW LRs, where the LR can then only "
                "go up); pass min_lr as a fraction of the LR, e.g. min_lr=0.1 * lr (the "
                "GreedyLR paper's setting)")


def _as_float_lr(value, where: str) -> float:
    if isinstance(value, Mapping) or not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{where}: the schedule returned lr={value!r}; ScheduleLR needs one "
                         "float per param group (per-block or per-entry LRs are NMF-only)")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: the schedule returned lr={value!r}; it must be finite and >= 0")
    return value


# ----------------------------------------------------------------------------
# the scheduler
# ----------------------------------------------------------------------------

class ScheduleLR(LRScheduler):
    r"""Drive a torch optimizer's LR with any nmf-sched schedule.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    schedule : str, (str, dict), float, callable or Schedule
        Any spec :func:`nmf_sched.make_schedule` accepts (``"greedy"``,
        ``("cosine", {"total": 100})``, ``0.01``, ``lambda tick: ...``, an instance).
        When the spec gives no ``lr``, each group's LR (``group["initial_lr"]``, set from
        ``group["lr"]`` at construction, as torch does) is the base LR; ``max_lr``
        defaults to ``None`` (no cap).
    total : int or None
        Horizon in ticks for schedules that need one (cosine, linear, polynomial);
        ``total`` in the spec's kwargs wins.
    groups : {"each", "shared"}, default "each"
        ``"each"``: one schedule and one state per param group, each started from its
        group's base LR (torch's convention: every group follows the schedule from its
        own base LR; a loss-driven schedule sees the same loss in every group).
        ``"shared"``: one schedule and one state, built on group 0's base LR; group
        :math:`g` gets :math:`\eta\,b_g/b_0` (the ratios of the base LRs are kept), or
        :math:`\eta` itself when the spec gives the LR.
    watch_loss : bool or None
        Whether the schedule follows the loss given to ``step``. ``None``: decided by the
        schedule (:func:`watches_loss`). When true the instance is a
        :class:`LossScheduleLR`, which is also a ``torch.optim.lr_scheduler.ReduceLROnPlateau``,
        so frameworks that test for that class pass it the monitored metric (Lightning:
        ``{"scheduler": s, "monitor": "train_loss"}``; Hugging Face's Trainer: the eval
        metric).
    last_epoch : int, default -1
        Only -1 (a fresh start); resume with :meth:`load_state_dict`, which carries the
        loss-driven state a tick count cannot rebuild.

    Attributes
    ----------
    schedules : list of Schedule
        One per group (``"each"``) or one (``"shared"``).
    base_lrs : list of float
        The groups' initial LRs.
    last_epoch : int
        Ticks done (0 after construction).

    Notes
    -----
    Which schedules need what:

    ==========================================================  ==============================
    schedule                                                    needs
    ==========================================================  ==============================
    constant, step, exp, inverse_time, polynomial, linear,      ``step()`` (the tick count)
    cosine, warmup, chain, a callable ``tick -> lr``
    greedy, plateau, ``DNNPolicy``, ``NMFPolicyOnDNN``          ``step(loss)``
    hypergradient                                               gradients:
                                                                :class:`HypergradientOptimizer`
    sls                                                         a loss probe at trial LRs: not
                                                                available (refused)
    rl (the NMF policy), auto, ``"bound"`` anywhere             a stability ceiling: refused
    ==========================================================  ==============================

    ``cosine`` equals ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total,
    eta_min=min_lr)`` for ticks ``0..total`` (after ``total`` nmf-sched holds ``min_lr``,
    torch's keeps following the cosine back up), ``step`` equals ``StepLR``, ``exp``
    equals ``ExponentialLR``, ``plateau`` with ``eps=1e-8`` equals ``ReduceLROnPlateau``.

    Examples
    --------
    >>> import torch
    >>> from nmf_sched.torch import ScheduleLR
    >>> opt = torch.optim.AdamW(torch.nn.Linear(4, 2).parameters(), lr=1e-3)
    >>> sched = ScheduleLR(opt, ("greedy", {"window": 50, "min_lr": 1e-4}))
    >>> for batch in range(3):
    ...     loss = torch.tensor(1.0)  # the minibatch loss of a real loop
    ...     opt.step()
    ...     sched.step(loss)
    >>> sched.get_last_lr()
    [0.001]
    """

    def __new__(cls, optimizer=None, schedule=None, *args, watch_loss=None, **kwargs):
        if cls is ScheduleLR:
            wants = watches_loss(schedule) if watch_loss is None else bool(watch_loss)
            if wants:
                cls = LossScheduleLR
        return object.__new__(cls)

    def __init__(self, optimizer: Optimizer, schedule, *, total=None, groups="each",
                 watch_loss=None, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if groups not in _GROUPS:
            raise ValueError(f"groups must be one of {', '.join(map(repr, _GROUPS))}, got {groups!r}")
        if watch_loss is not None and not isinstance(watch_loss, bool):
            raise TypeError(f"watch_loss must be None or a bool, got {watch_loss!r}")
        if total is not None and (not isinstance(total, numbers.Integral) or isinstance(total, bool)
                                  or total < 1):
            raise ValueError(f"total must be None or an integer >= 1, got {total!r}")
        if last_epoch != -1:
            raise ValueError(
                f"last_epoch must be -1 (a fresh start), got {last_epoch!r}; to resume, build "
                "the scheduler then call load_state_dict(saved), which restores the schedule state")
        self.spec = schedule
        self.total = total
        self.groups = groups
        self.watch_loss = watch_loss
        self._built = False
        # torch's constructor: initial_lr/base_lrs, the step-order patch, then _initial_step()
        LRScheduler.__init__(self, optimizer, last_epoch)

    # -- construction ---------------------------------------------------------

    def _build(self):
        bases = [float(b) for b in self.base_lrs]
        for g, b in enumerate(bases):
            if not math.isfinite(b) or b <= 0:
                raise ValueError(f"param_groups[{g}]['lr'] must be a finite float > 0 to serve "
                                 f"as the base LR, got {b!r}")
        if self.groups == "each":
            built = [build_schedule(self.spec, b, self.total) for b in bases]
            self.schedules = [s for s, _ in built]
            self._scales = [1.0] * len(bases)
        else:
            sched, given = build_schedule(self.spec, bases[0], self.total)
            self.schedules = [sched]
            self._scales = [1.0 if given else b / bases[0] for b in bases]
        for s, b in zip(self.schedules, bases):
            check_dnn_schedule(s, b)
        self._built = True

    def _initial_step(self) -> None:
        """Tick 0: build the schedules, take the initial observation, set the LRs."""
        self._step_count = 0
        self._build()
        info = StepInfo.at_tick(0)
        self._states = [s.update(s.init(), info) for s in self.schedules]
        self.last_epoch = 0
        self._apply()

    # -- the LR ----------------------------------------------------------------

    def _lrs(self) -> list[float]:
        if self.groups == "each":
            n = len(self.optimizer.param_groups)
            if n != len(self.schedules):
                raise ValueError(f"the optimizer has {n} param groups but ScheduleLR was built "
                                 f"for {len(self.schedules)}; build a new scheduler after "
                                 "add_param_group")
            return [_as_float_lr(s.lr(st), f"param_groups[{g}]")
                    for g, (s, st) in enumerate(zip(self.schedules, self._states))]
        lr = _as_float_lr(self.schedules[0].lr(self._states[0]), "shared schedule")
        n = len(self.optimizer.param_groups)
        if n != len(self._scales):
            raise ValueError(f"the optimizer has {n} param groups but ScheduleLR was built for "
                             f"{len(self._scales)}; build a new scheduler after add_param_group")
        return [lr * c for c in self._scales]

    def _apply(self):
        values = self._lrs()
        for group, lr in zip(self.optimizer.param_groups, values):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = list(values)

    def get_lr(self) -> list[float]:
        """The LRs of the current state, one per param group (``get_last_lr`` after a step)."""
        return self._lrs()

    def step(self, loss=None) -> None:  # noqa: D401  (torch's signature, with the loss)
        """Advance one tick: ``StepInfo.at_tick(last_epoch + 1, loss=loss)``, then set the LRs.

        Parameters
        ----------
        loss : float, 0-dim tensor or None
            The loss the schedule watches (the minibatch or smoothed training loss, or a
            validation metric). Classic schedules ignore it; a loss-driven schedule skips
            the comparison on a tick without one. NaN/inf count as "not improving".
        """
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise ValueError(f"loss must be a scalar, got a tensor of shape {tuple(loss.shape)}")
            loss = float(loss.detach())
        elif loss is not None:
            if not isinstance(loss, numbers.Real) or isinstance(loss, bool):
                raise TypeError(f"loss must be a float, a 0-dim tensor or None, got {loss!r}")
            loss = float(loss)
        self._step_count += 1
        tick = self.last_epoch + 1
        info = StepInfo.at_tick(tick, loss)
        self._states = [s.update(st, info) for s, st in zip(self.schedules, self._states)]
        self.last_epoch = tick
        self._apply()

    # -- checkpoints -------------------------------------------------------------

    def state_dict(self) -> dict:
        """The scheduler state: plain, JSON-able data built on the schedules' states.

        Keys: ``version``, ``groups``, ``last_epoch``, ``step_count``, ``base_lrs``,
        ``scales``, ``last_lr``, ``schedule_states`` (one per schedule, each the
        schedule's own ``init``/``update`` state), ``schedules`` (their ``repr``, for
        reading only).
        """
        return {
            "version": _STATE_VERSION,
            "groups": self.groups,
            "last_epoch": int(self.last_epoch),
            "step_count": int(self._step_count),
            "base_lrs": [float(b) for b in self.base_lrs],
            "scales": list(self._scales),
            "last_lr": [float(v) for v in self._last_lr],
            "schedule_states": copy.deepcopy(self._states),
            "schedules": [repr(s) for s in self.schedules],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` (after a JSON round trip too).

        As with torch's schedulers the optimizer's LRs are not touched: restore the
        optimizer's own state dict as well (it carries ``group["lr"]``).
        """
        if not isinstance(state_dict, Mapping) or "schedule_states" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, Mapping) else state_dict
            raise ValueError("state_dict must be a dict returned by ScheduleLR.state_dict(), "
                             f"got {got!r}")
        if state_dict.get("groups") != self.groups:
            raise ValueError(f"state_dict['groups']={state_dict.get('groups')!r} does not match "
                             f"this scheduler's groups={self.groups!r}")
        states = state_dict["schedule_states"]
        if len(states) != len(self.schedules):
            raise ValueError(f"state_dict holds {len(states)} schedule states, this scheduler "
                             f"has {len(self.schedules)} (one per param group with groups='each')")
        self._states = copy.deepcopy(list(states))
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("step_count", self.last_epoch))
        self.base_lrs = list(state_dict.get("base_lrs", self.base_lrs))
        self._scales = list(state_dict.get("scales", self._scales))
        self._last_lr = list(state_dict.get("last_lr", self._lrs()))

    def __repr__(self):
        return (f"{type(self).__name__}(schedule={self.spec!r}, groups={self.groups!r}, "
                f"last_epoch={self.last_epoch})")


class LossScheduleLR(ScheduleLR, ReduceLROnPlateau):
    """A :class:`ScheduleLR` whose schedule follows the loss; also a ``ReduceLROnPlateau``.

    ``ScheduleLR(optimizer, schedule)`` returns one when the schedule watches the loss
    (GreedyLR, plateau, the RL policies) or when ``watch_loss=True``. Being an instance
    of ``torch.optim.lr_scheduler.ReduceLROnPlateau`` is what Lightning, Hugging Face's
    Trainer and similar loops test to call ``step(metric)``; nothing of
    ``ReduceLROnPlateau``'s own rule is used (every method comes from ScheduleLR).
    """

    def __init__(self, optimizer: Optimizer, schedule, **kwargs):
        ScheduleLR.__init__(self, optimizer, schedule, **kwargs)
