r"""RL-learned LR schedules for DNN training, evaluated with NumPy alone.

:class:`DNNPolicy` runs the PPO policy trained in :class:`nmf_sched.rl.dnn_env.DNNScheduleEnv`
(weights in ``nmf_sched/rl/dnn_policy.npz``, provenance in ``nmf_sched/rl/DNN_POLICY.md``);
:class:`NMFPolicyOnDNN` runs the NMF policy (``policy.npz``) on a DNN, with a fixed
reference LR standing in for the stability ceiling. Both follow the Schedule protocol
with one tick per optimizer step and the minibatch loss as ``info.loss``, so they plug
into :class:`nmf_sched.torch.ScheduleLR` (``sched.step(loss)`` after each step). Neither
torch, stable-baselines3 nor gymnasium is needed to run them.

The policy clock
----------------
A run of ``total`` optimizer steps is cut into ``n_ticks`` policy ticks of
``every = max(1, total // n_ticks)`` steps. The first tick runs at the base LR
:math:`\eta_0`; at the end of policy tick :math:`k = 1, \dots, n_{ticks} - 1` the policy
sees the observation :func:`dnn_observation` and picks :math:`x_k \in [-1, 1]`; the LR of
the next tick is :math:`\eta_0 \rho_k` with
:math:`\rho_k = \mathrm{clip}(\rho_{k-1} 2^{x_k}, 10^{-3}, 10)`, :math:`\rho_0 = 1`.
After the last decision the LR stays where it is.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from ..schedules.base import StepInfo, check_positive
from ..schedules.classic import _ParamsRepr
from ..schedules.rl_policy import RLPolicy, policy_forward

__all__ = ["N_OBS", "N_TICKS", "MULT", "RATIO_RANGE", "DNN_POLICY_PATH", "tick_stats",
           "dnn_observation", "apply_action", "load_dnn_policy", "DNNPolicy", "NMFPolicyOnDNN",
           "policy_every"]

N_OBS = 8
#: policy ticks per run
N_TICKS = 30
#: the action x scales the LR by MULT ** x per policy tick
MULT = 2.0
#: bounds of the LR relative to the base LR
RATIO_RANGE = (1e-3, 10.0)
DNN_POLICY_PATH = os.path.join(os.path.dirname(__file__), "dnn_policy.npz")


def policy_every(total: int, n_ticks: int = N_TICKS) -> int:
    """Optimizer steps per policy tick for a run of ``total`` steps."""
    return max(1, int(total) // int(n_ticks))


def tick_stats(losses) -> tuple[float, float]:
    """Mean and relative spread (std / |mean|) of the finite minibatch losses of a tick.

    The spread is the observation's gradient-noise signal: minibatch noise shows in the
    minibatch losses, which a scheduler sees without gradients. ``(nan, 0)`` when no
    loss is finite.
    """
    v = np.asarray([x for x in losses if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, 0.0
    mean = float(v.mean())
    noise = float(v.std() / abs(mean)) if v.size > 1 and mean != 0 else 0.0
    return mean, noise


def dnn_observation(log_means, log_ratio, noise, x_prev, k, n_ticks=N_TICKS) -> np.ndarray:
    r"""The scale-free observation at the end of policy tick ``k``.

    Parameters
    ----------
    log_means : sequence of float
        :math:`\log \bar\ell_1, \dots, \log \bar\ell_k`, the tick-mean minibatch losses
        (only the first and the last four are used).
    log_ratio : float
        :math:`\log(\eta / \eta_0)`, the current LR relative to the base LR.
    noise : float
        The last tick's relative loss spread (:func:`tick_stats`).
    x_prev : float
        The previous action (0 before the first).
    k, n_ticks : int
        Policy ticks done and per run.

    Returns
    -------
    ndarray of shape (8,), float32
        ``[(l_k - l_1)/5, 10 (l_{k-1} - l_k), 10 (l_{k-2} - l_{k-1}), 10 (l_{k-3} - l_{k-2}),
        log10(eta/eta_0), k / n_ticks, log10(noise), x_prev]``, clipped to [-5, 5]
        (missing differences are 0).
    """
    ll = list(log_means)
    o = np.zeros(N_OBS, dtype=np.float64)
    o[0] = (ll[-1] - ll[0]) / 5.0
    for i in range(3):
        if len(ll) >= i + 2:
            o[1 + i] = 10.0 * (ll[-2 - i] - ll[-1 - i])
    o[4] = log_ratio / math.log(10.0)
    o[5] = k / max(n_ticks, 1)
    o[6] = math.log10(max(noise, 1e-5))
    o[7] = x_prev
    o = np.nan_to_num(o, nan=0.0, posinf=5.0, neginf=-5.0)
    return np.clip(o, -5.0, 5.0).astype(np.float32)


def apply_action(ratio: float, x) -> tuple[float, float]:
    """``(new ratio, clipped action)``: :math:`\\rho \\leftarrow \\mathrm{clip}(\\rho\\,2^{x})`."""
    x = float(np.clip(float(np.asarray(x, dtype=np.float64).reshape(-1)[0]), -1.0, 1.0))
    return float(np.clip(ratio * MULT ** x, *RATIO_RANGE)), x


def load_dnn_policy(path=None) -> dict:
    """Load an exported DNN policy (``W0 (8 x h), b0, ...``) as float64 arrays."""
    path = DNN_POLICY_PATH if path is None else os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"DNN policy file not found: {path!r}; train one with "
                         "'python -m nmf_sched.rl.dnn_train' (see nmf_sched/rl/DNN_POLICY.md)")
    with np.load(path, allow_pickle=False) as z:
        out = {k: np.asarray(z[k], dtype=np.float64) for k in z.files
               if k[:1] in ("W", "b") and k[1:].isdigit()}
        out["activation"] = str(z["activation"]) if "activation" in z.files else "tanh"
        out["meta"] = json.loads(str(z["meta"])) if "meta" in z.files else {}
    if "W0" not in out or out["W0"].shape[0] != N_OBS:
        raise ValueError(f"{path!r} is not an nmf-sched DNN policy (expects {N_OBS} inputs)")
    return out


def _check_run(lr, total, n_ticks):
    check_positive("lr", lr)
    check_positive("total", total, integer=True)
    check_positive("n_ticks", n_ticks, integer=True)


class DNNPolicy(_ParamsRepr):
    r"""The RL-learned DNN schedule (see the module docstring for the clock and action).

    Parameters
    ----------
    lr : float > 0
        Base LR :math:`\eta_0` (the optimizer's LR).
    total : int >= 1
        Optimizer steps of the run (ticks of the schedule).
    n_ticks : int, default 30
        Policy ticks per run (the policy was trained with 30).
    path : str or None
        A policy ``.npz``; None: ``nmf_sched/rl/dnn_policy.npz``.

    Notes
    -----
    Feed it every optimizer step's minibatch loss (``ScheduleLR.step(loss)``). State:
    ``tick, ratio, x, k, buf (losses of the current policy tick), log_means (first + last
    4)``; JSON-able.

    Examples
    --------
    >>> import torch
    >>> from nmf_sched.torch import ScheduleLR
    >>> from nmf_sched.rl.dnn_policy import DNNPolicy
    >>> opt = torch.optim.AdamW(torch.nn.Linear(4, 2).parameters(), lr=1e-3)
    >>> sched = ScheduleLR(opt, DNNPolicy(lr=1e-3, total=600))
    """

    needs: tuple = ()
    watches_loss = True
    _repr_params = ("lr", "total", "n_ticks", "path")

    def __init__(self, lr, total, *, n_ticks=N_TICKS, path=None):
        _check_run(lr, total, n_ticks)
        self.lr0, self.total, self.n_ticks, self.path = float(lr), total, n_ticks, path
        self.every = policy_every(total, n_ticks)
        self._params = load_dnn_policy(path)

    @property
    def _repr_lr(self):
        return self.lr0

    def init(self) -> dict:
        return {"tick": 0, "ratio": 1.0, "x": 0.0, "k": 0, "buf": [], "log_means": []}

    def lr(self, state: dict) -> float:
        return self.lr0 * float(state["ratio"])

    def act(self, obs) -> float:
        """The deterministic action for an observation."""
        return policy_forward(self._params, obs)

    def update(self, state: dict, info: StepInfo) -> dict:
        new = dict(state, tick=int(info.tick), buf=list(state["buf"]))
        if info.tick == 0:
            return new
        if info.loss is not None:
            new["buf"].append(float(info.loss))
        if info.tick % self.every or state["k"] >= self.n_ticks:
            return new
        mean, noise = tick_stats(new["buf"])
        k = state["k"] + 1
        new["k"], new["buf"] = k, []
        if not math.isfinite(mean) or mean <= 0:  # diverged or no loss: halve, as a guard
            new["ratio"] = float(max(state["ratio"] / MULT, RATIO_RANGE[0]))
            return new
        ll = list(state["log_means"])
        ll = ll[:1] + (ll[1:] + [math.log(mean)])[-4:] if ll else [math.log(mean)]
        new["log_means"] = ll
        if k >= self.n_ticks:
            return new
        obs = dnn_observation(ll, math.log(state["ratio"]), noise, state["x"], k, self.n_ticks)
        new["ratio"], new["x"] = apply_action(state["ratio"], self.act(obs))
        return new


class NMFPolicyOnDNN(_ParamsRepr):
    r"""The NMF-trained policy (``schedule="rl"``) driving a DNN: does it transfer?

    The NMF policy picks a fraction :math:`a \in [0.02, 1]` of the stability ceiling. A
    DNN has no ceiling; here it is the constant :math:`c = 2\eta_0` (so the policy's
    neutral fraction 0.5 is the base LR and its range is :math:`[0.04, 2]\,\eta_0`). The
    policy is ticked on the same clock as :class:`DNNPolicy`: the first policy tick runs
    at :math:`\eta_0`, then at the end of tick :math:`k` it sees
    ``StepInfo.at_tick(k-1, loss=tick-mean minibatch loss, ceiling=c)`` (its epoch counter
    runs over ``n_ticks``) and sets the LR of the next tick.

    Parameters
    ----------
    lr, total, n_ticks : as for :class:`DNNPolicy`
    path : str or None
        The NMF policy ``.npz``; None: the shipped ``nmf_sched/rl/policy.npz``.
    """

    needs: tuple = ()
    watches_loss = True
    _repr_params = ("lr", "total", "n_ticks", "path")

    def __init__(self, lr, total, *, n_ticks=N_TICKS, path=None):
        _check_run(lr, total, n_ticks)
        self.lr0, self.total, self.n_ticks, self.path = float(lr), total, n_ticks, path
        self.every = policy_every(total, n_ticks)
        self._inner = RLPolicy(path, total=n_ticks)

    @property
    def _repr_lr(self):
        return self.lr0

    def init(self) -> dict:
        return {"tick": 0, "k": 0, "buf": [], "inner": self._inner.init()}

    def lr(self, state: dict) -> float:
        inner = state["inner"]
        return self.lr0 if inner["lr"] is None else float(self._inner.lr(inner))

    def update(self, state: dict, info: StepInfo) -> dict:
        new = dict(state, tick=int(info.tick), buf=list(state["buf"]))
        if info.tick == 0:
            return new
        if info.loss is not None:
            new["buf"].append(float(info.loss))
        if info.tick % self.every or state["k"] >= self.n_ticks:
            return new
        mean, _ = tick_stats(new["buf"])
        k = state["k"] + 1
        new["k"], new["buf"] = k, []
        if k >= self.n_ticks:
            return new
        loss = mean if math.isfinite(mean) else None
        new["inner"] = self._inner.update(
            state["inner"], StepInfo.at_tick(k - 1, loss, 2.0 * self.lr0))
        return new
