"""GreedyLR: raise the LR while the loss improves, lower it while it does not."""
from __future__ import annotations

import math

from .base import StepInfo, check_lr, check_positive, register
from .classic import _check_choice, _check_kappa, _initial_lr, _ParamsRepr, _resolved

__all__ = ["GreedyLR"]


@register("greedy")
class GreedyLR(_ParamsRepr):
    r"""GreedyLR (Subramanian et al.): a zeroth-order, loss-driven LR scheduler.

    The LR is divided by :math:`F \in (0, 1)` after a run of improving ticks and
    multiplied by :math:`F` after a run of non-improving ticks, with patience,
    cooldown/warmup, bounds, smoothing and periodic resets. Only ``info.loss``
    (and ``info.ceiling`` for ``lr``/``max_lr="bound"``) is used.

    **Initial observation** (tick 0, or the first update if tick 0 was never
    seen): :math:`\eta_0` = ``lr`` (``"bound"``: ``kappa * ceiling``),
    :math:`\eta = \mathrm{clip}(\eta_0)`; the loss, if finite, starts the
    smoothing window and is the baseline ``best``; counters are 0.

    **Every later update** (one call = one tick):

    1. The upper bound for this tick is :math:`\eta_{max}` = ``max_lr`` (a
       float), ``kappa * info.ceiling`` (``"bound"``; when the ceiling is
       ``None`` the last one seen is reused), or :math:`+\infty` (``None``).
    2. If ``reset_every`` is set, the reset countdown decreases by exactly 1
       (once per update call, whatever the loss or the number of blocks).
    3. If ``info.loss`` is ``None`` the comparison is skipped (no counter moves).
       Otherwise the smoothed loss is
       :math:`\bar\ell_t = \mathrm{mean}` of the last ``window`` finite losses
       (a NaN/inf loss is kept out of the window and counts as not improving).
       If no baseline exists yet, :math:`\bar\ell_t` becomes ``best`` and
       nothing is counted. Else

       .. math::

           \text{improved} = \bar\ell_t < \begin{cases}
               \text{best}\,(1 - \delta) & \text{threshold\_mode = "rel"} \\
               \text{best} - \delta & \text{threshold\_mode = "abs"}
           \end{cases}

       compared with the best smoothed loss so far (as in the reference
       implementation). An improvement sets ``best`` = :math:`\bar\ell_t`,
       also during cooldown/warmup.
    4. Counters (over ticks with a loss): if a cooldown is running, it
       decreases by 1 and both run counters are 0; else if a warmup is
       running, likewise; else an improvement does
       :math:`n_{good} \mathrel{+}= 1, n_{bad} = 0` and a non-improvement
       (worse *or equal within the threshold*) does
       :math:`n_{bad} \mathrel{+}= 1, n_{good} = 0`. Then

       .. math::

           n_{good} > p &\Rightarrow \eta' = \min(\eta / F,\ \eta_{max}),\quad
               \text{warmup counter} \leftarrow w,\ n_{good} \leftarrow 0 \\
           n_{bad} > p &\Rightarrow \eta' = \max(\eta F,\ \eta_{min}),\quad
               \text{cooldown counter} \leftarrow c,\ n_{bad} \leftarrow 0

       and :math:`\eta \leftarrow \eta'` only if :math:`|\eta' - \eta| > \epsilon`
       (the counters restart even when a bound or ``eps`` suppresses the change).
       So patience :math:`p` means the :math:`(p+1)`-th consecutive
       good/bad tick triggers a change; :math:`p = 0` is the plain rule of the
       paper (divide by :math:`F` on improvement, multiply on no improvement).
    5. Bounds, every tick: :math:`\eta \leftarrow \min(\max(\eta, \eta_{min}),
       \eta_{max})` for a numeric ``max_lr``. With ``max_lr="bound"`` the stored
       :math:`\eta` is only floored at :math:`\eta_{min}`, an increase stops at the
       current cap (it never lowers :math:`\eta`), and the LR returned is
       :math:`\min(\eta, \eta_{max})`: it follows a falling stability ceiling at
       once (the ceiling wins over ``min_lr``), and comes back as soon as the ceiling
       does, instead of being cut for good by one low-ceiling epoch.
    6. Reset: when the countdown reaches 0, the tick acts as a fresh initial
       observation: :math:`\eta = \mathrm{clip}(\eta_0)` (the LR resolved at
       tick 0), window = [loss], ``best`` = loss (``None`` if no finite loss),
       all counters 0, countdown = ``reset_every``. With ``reset_every = N`` the
       resets happen at the updates number :math:`N, 2N, \dots` after the initial
       observation (ticks :math:`N, 2N, \dots` when the solver ticks 0, 1, 2, ...).

    Parameters
    ----------
    lr : float or "bound", default "bound"
        Initial LR :math:`\eta_0`; ``"bound"`` = ``kappa * ceiling`` at tick 0.
    factor : float in (0, 1), default 0.95
        :math:`F`. The paper's recommended value and the default of the
        authors' implementation is 0.95.
    patience : int >= 0, default 10
        :math:`p` (reference default 10).
    threshold : float >= 0, default 1e-4
        :math:`\delta`.
    threshold_mode : {"rel", "abs"}, default "rel"
        Relative thresholds are invariant to the scale of the data (the NMF loss
        scales with :math:`\|V\|^2`); the authors' implementation defaults to
        ``"abs"`` with 1e-6. An ``"abs"`` threshold is in the loss's unit
        (:math:`\|V\|^2`), so ``fit(c V)`` then no longer scales with ``c``.
    cooldown : int >= 0, default 0
        :math:`c`: ticks with a loss after a decrease during which nothing changes.
    warmup : int >= 0, default 0
        :math:`w`: ticks with a loss after an increase during which nothing changes.
    min_lr : float >= 0, default 0.0
        :math:`\eta_{min}`, in the LR's unit (dimensionless under "cd", "gram" and
        "lipschitz"; 1 / scale of ``V`` under ``precondition="none"``, like ``eps`` and a
        float ``lr``/``max_lr``: there a non-zero value ties the run to ``V``'s unit).
    max_lr : float, "bound" or None, default "bound"
        :math:`\eta_{max}`: a float; ``"bound"`` = ``kappa * info.ceiling``
        re-read at every tick (so the LR never exceeds the current stability
        cap); ``None`` = no upper bound. With ``lr="bound"`` too, the LR starts
        at this cap and can only rise back to the (moving) cap.
    window : int >= 1, default 1
        Smoothing window: compare the mean of the last ``window`` losses
        (1 = no smoothing).
    eps : float >= 0, default 0.0
        Changes of the LR not larger than ``eps`` are not applied.
    reset_every : int >= 1 or None, default None
        Periodic reset (step 6); ``None`` disables it.
    kappa : float in (0, 1], default 0.5
        Fraction of the ceiling for ``lr``/``max_lr="bound"``.
    total : int or None
        Ignored.

    Notes
    -----
    State keys: ``tick, lr0, lr, max_lr, best, num_good, num_bad,
    cooldown_counter, warmup_counter, window, until_reset, resets``.

    Differences from public implementations, chosen deliberately: (a) the
    reset is a plain countdown that decreases exactly once per update call,
    independent of blocks/parameter groups and of the LR value (public
    versions tie it to the epoch index, or count decreases spent at
    ``min_lr`` -- and one is reported to decrement it on every step when all
    groups share one LR); (b) ``best`` is updated during
    cooldown/warmup (the authors' Transformers version freezes it), so
    "best so far" means what it says; (c) cooldown follows a *decrease* and
    warmup an *increase*, as in the authors' Transformers version (an older
    one swaps them).

    Examples
    --------
    LR table (the LR after the update at each tick):

    ``GreedyLR(lr=1.0, factor=0.5, patience=1, threshold=0.0, threshold_mode="abs", cooldown=1, warmup=1, min_lr=1.0, max_lr=4.0)``

    ====  ====  ====  ============================================
    tick  loss  lr    why
    ====  ====  ====  ============================================
    0     10    1.0   baseline best=10
    1     9     1.0   good 1
    2     8     2.0   good 2 > p: increase, warmup 1
    3     7     2.0   warmup (best=7)
    4     6     2.0   good 1
    5     5     4.0   good 2: increase to max_lr, warmup 1
    6     4     4.0   warmup (best=4)
    7     3     4.0   good 1
    8     2     4.0   good 2: at max_lr, no change; warmup 1
    9     3     4.0   warmup
    10    3     4.0   bad 1
    11    3     2.0   bad 2 > p: decrease, cooldown 1
    12    1     2.0   cooldown (best=1)
    13    2     2.0   bad 1
    14    None  2.0   no loss: skipped
    15    2     1.0   bad 2: decrease to min_lr, cooldown 1
    16    2     1.0   cooldown
    17    2     1.0   bad 1
    18    2     1.0   bad 2: at min_lr, no change
    ====  ====  ====  ============================================

    References
    ----------
    .. [1] S. Subramanian, V. Ganapathiraman, "Zeroth order GreedyLR: an
       adaptive learning rate scheduler for deep neural network training",
       Amazon Science, 2023.
    .. [2] S. Subramanian, B. Krishnamoorthy, P. Murthy, "Dynamic learning rate
       scheduling based on loss changes leads to faster convergence",
       arXiv:2512.14527, 2025.
    """

    needs: tuple = ()
    _repr_params = ("lr", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                    "warmup", "min_lr", "max_lr", "window", "eps", "reset_every", "kappa")

    def __init__(self, lr="bound", factor=0.95, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, warmup=0, min_lr=0.0, max_lr="bound",
                 window=1, eps=0.0, reset_every=None, *, kappa=0.5, total=None):
        check_lr("lr", lr)
        check_positive("factor", factor, upper=1.0, upper_inclusive=False)
        check_positive("patience", patience, integer=True, allow_zero=True)
        check_positive("threshold", threshold, allow_zero=True)
        _check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        if threshold_mode == "rel" and threshold >= 1:
            raise ValueError(f"threshold must be < 1 with threshold_mode='rel', got {threshold!r}")
        check_positive("cooldown", cooldown, integer=True, allow_zero=True)
        check_positive("warmup", warmup, integer=True, allow_zero=True)
        check_positive("min_lr", min_lr, allow_zero=True)
        if max_lr is not None:
            check_lr("max_lr", max_lr)
        check_positive("window", window, integer=True)
        check_positive("eps", eps, allow_zero=True)
        if reset_every is not None:
            check_positive("reset_every", reset_every, integer=True)
        _check_kappa(kappa)
        if max_lr is not None and max_lr != "bound" and min_lr > max_lr:
            raise ValueError(f"min_lr must be <= max_lr, got min_lr={min_lr!r} > max_lr={max_lr!r}")
        self.lr0 = lr  # ``lr`` is the protocol method
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.warmup = warmup
        self.min_lr = min_lr
        self.max_lr = max_lr
        self.window = window
        self.eps = eps
        self.reset_every = reset_every
        self.kappa = kappa
        self.total = total

    @property
    def _repr_lr(self):
        return self.lr0

    # -- helpers --------------------------------------------------------------

    def _upper(self, state: dict, info: StepInfo):
        """The upper bound for this tick (float or None for none) and what to store."""
        if self.max_lr is None:
            return None
        if self.max_lr != "bound":
            return float(self.max_lr)
        c = info.ceiling
        if c is not None and math.isfinite(c) and c > 0:
            return float(self.kappa * c)
        if state.get("max_lr") is not None:
            return state["max_lr"]
        raise ValueError(
            "max_lr='bound' needs a stability ceiling, but the solver reported "
            f"ceiling={c!r} and none was seen before; pass a numeric max_lr or max_lr=None")

    def _state_upper(self, upper):
        """The bound applied to the stored LR: a numeric ``max_lr`` clips it; the moving
        ``"bound"`` cap only clips what :meth:`lr` returns, so a transient dip of the
        ceiling does not erase the LR the schedule has built up (increases still stop at
        the current cap)."""
        return None if self.max_lr == "bound" else upper

    def _clip(self, lr: float, upper) -> float:
        lr = max(lr, float(self.min_lr))
        return lr if upper is None else min(lr, upper)

    def _improved(self, current: float, best: float) -> bool:
        if self.threshold_mode == "rel":
            return current < best * (1.0 - self.threshold)
        return current < best - self.threshold

    def _baseline(self, new: dict, loss) -> None:
        """Make this tick a fresh initial observation (everything but the LR)."""
        finite = loss is not None and math.isfinite(loss)
        new["best"] = loss if finite else None
        new["window"] = [loss] if finite else []
        new["num_good"] = new["num_bad"] = 0
        new["cooldown_counter"] = new["warmup_counter"] = 0
        new["until_reset"] = self.reset_every

    # -- protocol ---------------------------------------------------------------

    def init(self) -> dict:
        lr0 = None if self.lr0 == "bound" else float(self.lr0)
        upper = None if self.max_lr in (None, "bound") else float(self.max_lr)
        return {
            "tick": 0, "lr0": lr0, "lr": None if lr0 is None else self._clip(lr0, upper),
            "max_lr": upper, "best": None, "num_good": 0, "num_bad": 0,
            "cooldown_counter": 0, "warmup_counter": 0, "window": [],
            "until_reset": self.reset_every, "resets": 0,
        }

    def lr(self, state: dict) -> float:
        lr = float(_resolved(state["lr"], self))
        if self.max_lr == "bound" and state.get("max_lr") is not None:
            lr = min(lr, state["max_lr"])  # the current cap; the state keeps the schedule's own LR
        return lr

    def update(self, state: dict, info: StepInfo) -> dict:
        new = dict(state)
        new["window"] = list(state["window"])
        new["tick"] = tick = int(info.tick)
        loss = None if info.loss is None else float(info.loss)
        upper = self._upper(state, info)
        new["max_lr"] = upper

        if tick == 0 or state["lr0"] is None:
            lr0 = _initial_lr(self.lr0, info, self.kappa)
            new["lr0"] = lr0
            new["lr"] = self._clip(lr0, upper)  # the initial LR starts at or below the cap
            self._baseline(new, loss)
            return new

        if new["until_reset"] is not None:
            new["until_reset"] -= 1

        lr = new["lr"]
        if loss is not None:
            if math.isfinite(loss):
                new["window"] = (new["window"] + [loss])[-self.window:]
                current = sum(new["window"]) / len(new["window"])
            else:
                current = math.nan
            if new["best"] is None and math.isfinite(current):
                new["best"] = current  # baseline: nothing counted
            else:
                improved = new["best"] is not None and self._improved(current, new["best"])
                if improved:
                    new["best"] = current
                if new["cooldown_counter"] > 0:
                    new["cooldown_counter"] -= 1
                    new["num_good"] = new["num_bad"] = 0
                elif new["warmup_counter"] > 0:
                    new["warmup_counter"] -= 1
                    new["num_good"] = new["num_bad"] = 0
                else:
                    if improved:
                        new["num_good"] += 1
                        new["num_bad"] = 0
                    else:
                        new["num_bad"] += 1
                        new["num_good"] = 0
                    if new["num_good"] > self.patience:
                        cand = lr / self.factor if upper is None else max(lr, min(lr / self.factor, upper))
                        if cand - lr > self.eps:
                            lr = cand
                        new["warmup_counter"] = self.warmup
                        new["num_good"] = 0
                    elif new["num_bad"] > self.patience:
                        cand = max(lr * self.factor, float(self.min_lr))
                        if lr - cand > self.eps:
                            lr = cand
                        new["cooldown_counter"] = self.cooldown
                        new["num_bad"] = 0
        new["lr"] = self._clip(lr, self._state_upper(upper))

        if new["until_reset"] is not None and new["until_reset"] <= 0:
            new["lr"] = self._clip(new["lr0"], self._state_upper(upper))
            self._baseline(new, loss)
            new["resets"] = state["resets"] + 1
        return new
