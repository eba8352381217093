r"""The RL-learned schedule: a small MLP policy, evaluated with NumPy alone.

The policy was trained with PPO (stable-baselines3) in
:class:`nmf_sched.rl.env.NMFScheduleEnv`; its weights ship in
``nmf_sched/rl/policy.npz`` (provenance in ``nmf_sched/rl/POLICY.md``). Neither
torch, stable-baselines3 nor gymnasium is needed to *run* it.
"""
from __future__ import annotations

import math
import os

import numpy as np

from .base import StepInfo, check_positive, register
from .classic import _ParamsRepr

__all__ = ["RLPolicy", "observation", "action_to_fraction", "load_policy", "N_OBS",
           "MIN_FRACTION", "POLICY_PATH"]

#: The action x in [-1, 1] sets lr = a * ceiling with a = MIN_FRACTION ** ((1 - x) / 2)
#: (log scale from MIN_FRACTION to 1): the policy cannot leave the stable region.
MIN_FRACTION = 0.02
#: initial "previous action" fraction seen in the first observation
A_INIT = 0.5
N_OBS = 7
POLICY_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "rl", "policy.npz")


def action_to_fraction(x) -> float:
    """Map a policy output in [-1, 1] (clipped) to the LR fraction of the ceiling."""
    x = float(np.clip(x, -1.0, 1.0))
    return float(MIN_FRACTION ** ((1.0 - x) / 2.0))


def observation(log_losses, c_ratio_log, a_prev, t, total) -> np.ndarray:
    r"""The scale-free observation (shared by the env and the schedule).

    Parameters
    ----------
    log_losses : sequence of float
        :math:`\log \ell_0, \dots, \log \ell_t` (at least the first; only the first
        and the last four are used).
    c_ratio_log : float
        :math:`\log(c_t / c_0)`, the current ceiling relative to the initial one.
    a_prev : float
        The previous LR fraction of the ceiling.
    t, total : int
        Epochs done and the epoch budget.

    Returns
    -------
    ndarray of shape (7,), float32
        ``[(l_t - l_0)/10, 10 (l_{t-1} - l_t), 10 (l_{t-2} - l_{t-1}),
        10 (l_{t-3} - l_{t-2}), a_prev, t / total, log(c_t/c_0)]``, each clipped
        to [-5, 5] (missing differences are 0).
    """
    ll = list(log_losses)
    o = np.zeros(N_OBS, dtype=np.float64)
    o[0] = (ll[-1] - ll[0]) / 10.0
    for i in range(3):
        if len(ll) >= i + 2:
            o[1 + i] = 10.0 * (ll[-2 - i] - ll[-1 - i])
    o[4] = a_prev
    o[5] = t / max(total, 1)
    o[6] = c_ratio_log
    o = np.nan_to_num(o, nan=0.0, posinf=5.0, neginf=-5.0)
    return np.clip(o, -5.0, 5.0).astype(np.float32)


def load_policy(path=None) -> dict:
    """Load the exported MLP: ``{"W0", "b0", ..., "activation"}`` as float64 arrays."""
    path = POLICY_PATH if path is None else os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"RL policy file not found: {path!r}; train one with "
                         "'nmf-sched rl-train' (see nmf_sched/rl/POLICY.md)")
    with np.load(path, allow_pickle=False) as z:
        out = {k: np.asarray(z[k], dtype=np.float64) for k in z.files
               if k[:1] in ("W", "b") and k[1:].isdigit()}
        out["activation"] = str(z["activation"]) if "activation" in z.files else "tanh"
    n = sum(1 for k in out if k.startswith("W"))
    if n < 1 or out["W0"].shape[0] != N_OBS:
        raise ValueError(f"{path!r} is not an nmf-sched policy (expects {N_OBS} inputs)")
    return out


def policy_forward(params: dict, obs) -> float:
    """Deterministic action (the Gaussian mean) of the exported PPO actor, in [-1, 1]."""
    x = np.asarray(obs, dtype=np.float64)
    n = sum(1 for k in params if k.startswith("W"))
    act = np.tanh if params.get("activation", "tanh") == "tanh" else (lambda v: np.maximum(v, 0))
    for i in range(n):
        x = x @ params[f"W{i}"] + params[f"b{i}"]
        if i < n - 1:
            x = act(x)
    return float(np.clip(x.reshape(-1)[0], -1.0, 1.0))


@register("rl")
class RLPolicy(_ParamsRepr):
    r"""The learned schedule: each tick, :math:`\eta_t = a_t\, c_t` with
    :math:`a_t = \pi(o_t) \in [0.02, 1]` a fraction of the current ceiling
    :math:`c_t` (``info.ceiling``) chosen by the exported PPO policy from the
    scale-free observation :func:`observation` (loss history, previous fraction,
    progress ``tick / total``, ceiling drift). The solver caps the step at
    ``kappa * ceiling`` as for every schedule.

    Parameters
    ----------
    path : str or None
        A policy ``.npz``; None = the one shipped in ``nmf_sched/rl/policy.npz``.
    total : int or None
        Tick budget (``fit`` passes the epoch budget); None: 100.
    kappa : ignored
        Accepted for a uniform constructor; the policy picks its own fraction of
        the ceiling, and the solver's ``kappa`` caps the step.

    Notes
    -----
    The policy was trained on per-epoch ticks with the default preconditioner;
    other settings run but are out of its training distribution.
    State: ``tick, loss0, log_losses`` (``log(loss / loss0)``, first + last 4), ``c0, a, lr``.
    """

    needs: tuple = ()
    _repr_params = ("path", "total")

    def __init__(self, path=None, *, total=None, kappa=None):
        if total is not None:
            check_positive("total", total, integer=True)
        self.path, self.total = path, total
        self._params = load_policy(path)

    def init(self) -> dict:
        return {"tick": 0, "loss0": None, "log_losses": [], "c0": None, "a": A_INIT, "lr": None}

    def lr(self, state: dict) -> float:
        if state["lr"] is None:
            raise ValueError("RLPolicy: call update(state, info) with the initial observation first")
        return float(state["lr"])

    def update(self, state: dict, info: StepInfo) -> dict:
        new = dict(state, tick=int(info.tick))
        c = info.ceiling
        if c is None or not math.isfinite(c) or c <= 0:
            if state["c0"] is None:
                raise ValueError("schedule='rl' needs a stability ceiling (clip_lr=True); "
                                 f"the solver reported ceiling={c!r}")
            c = state.get("c_last", state["c0"])
        new["c_last"] = c
        if state["c0"] is None:
            new["c0"] = c
        loss = info.loss
        if loss is None or not math.isfinite(loss) or loss <= 0:
            if state["lr"] is not None:
                return new
            loss = 1.0
        ll = list(state["log_losses"])
        first = ll[:1]
        # logs of loss / first loss: the ratio is exact under a power-of-two rescaling of V,
        # so the observation is bit-for-bit scale-free (log(c l) - log(c l0) is not)
        if first:
            ll = first + (ll[1:] + [math.log(loss / state["loss0"])])[-4:]
        else:
            new["loss0"], ll = loss, [0.0]
        new["log_losses"] = ll
        total = self.total or 100
        obs = observation(ll, math.log(c / new["c0"]), state["a"], info.tick, total)
        a = action_to_fraction(policy_forward(self._params, obs))
        new["a"] = a
        new["lr"] = a * c
        return new
