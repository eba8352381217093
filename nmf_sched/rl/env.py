r"""A gymnasium environment in which an agent schedules the LR of one NMF fit.

Episode: one fit on a problem drawn from :class:`ProblemDistribution`.
Step: one epoch. Action :math:`x \in [-1, 1]`: the LR is
:math:`a\,c_t` with :math:`a = 0.02^{(1-x)/2} \in [0.02, 1]` a fraction of the
current stability ceiling :math:`c_t` (bounded: the agent cannot push the step
past the ceiling, and the solver caps it at ``kappa * ceiling`` anyway).
Observation: :func:`nmf_sched.schedules.rl_policy.observation` (scale-free).
Reward: :math:`\log \ell_{t-1} - \log \ell_t` (sums to the log-loss decrease of
the episode); terminal term :math:`-(\log \ell_T - \log \min_t \ell_t)` (ending
above the best loss seen) and -1 if the fit diverged.

The dynamics are those of ``fit(schedule="rl")``: the first epoch's LR uses the
ceiling at the initialization (the schedule's tick 0), later epochs the ceiling
the solver reported for the previous epoch (the schedule's tick t).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..config import RowConfig
from ..engine.solve import solve_rows
from ..datasets import planted
from ..init import initialize
from ..schedules.rl_policy import A_INIT, N_OBS, action_to_fraction, observation

__all__ = ["ProblemDistribution", "NMFScheduleEnv", "Problem"]


@dataclass
class Problem:
    """One drawn problem: data, rank, batch size and the seed it came from."""

    V: object
    rank: int
    batch_size: int
    seed: int
    spec: dict


class ProblemDistribution:
    """Seeded distribution of planted NMF problems; train and eval splits are disjoint.

    Problem ``i`` of split ``"train"`` is built from seed ``2 i`` and of ``"eval"``
    from seed ``2 i + 1``, so no eval problem is ever a training problem.
    Drawn: m in [80, 400], n in [40, 240], rank in [2, 12], relative noise
    log-uniform in [0.01, 0.5], W conditioning None (1/2) or log-uniform in
    [2, 100], density None (dense, 4/5) or uniform in [0.1, 0.5] (sparse),
    batch size m/{16, 8, 4, 2, 1}.
    """

    def __init__(self, split="train", *, m=(80, 400), n=(40, 240), rank=(2, 12)):
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        self.split, self.m, self.n, self.rank = split, m, n, rank

    def seed_of(self, i: int) -> int:
        return 2 * int(i) + (0 if self.split == "train" else 1)

    def draw(self, i: int) -> Problem:
        seed = self.seed_of(i)
        r = np.random.default_rng([seed, 7919])
        m = int(r.integers(self.m[0], self.m[1] + 1))
        n = int(r.integers(self.n[0], self.n[1] + 1))
        k = int(r.integers(self.rank[0], self.rank[1] + 1))
        noise = float(math.exp(r.uniform(math.log(0.01), math.log(0.5))))
        cond = None if r.random() < 0.5 else float(math.exp(r.uniform(math.log(2), math.log(100))))
        density = None if r.random() < 0.8 else float(r.uniform(0.1, 0.5))
        b = max(1, m // int(r.choice([16, 8, 4, 2, 1])))
        p = planted(m, n, k, noise=noise, seed=seed, condition=cond, density=density)
        spec = dict(m=m, n=n, rank=k, noise=noise, condition=cond, density=density, batch_size=b)
        return Problem(V=p.V, rank=k, batch_size=b, seed=seed, spec=spec)


class _TickZeroFraction:
    """lr = a * ceiling resolved at the fit's initial observation (tick 0)."""

    needs: tuple = ()

    def __init__(self, a):
        self.a = a

    def init(self):
        return {"lr": None}

    def lr(self, state):
        return state["lr"]

    def update(self, state, info):
        return state if state["lr"] is not None else {"lr": self.a * info.ceiling}


def _loss(V, W, H) -> float:
    VHt = V @ H.T
    vsq = float(V.multiply(V).sum()) if hasattr(V, "multiply") else float(np.vdot(V, V))
    return 0.5 * (vsq - 2.0 * float(np.vdot(W, VHt)) + float(np.vdot(W.T @ W, H @ H.T)))


class NMFScheduleEnv(gym.Env):
    """One NMF fit per episode, one epoch per step (see the module docstring).

    Parameters
    ----------
    split : {"train", "eval"}
        Which half of :class:`ProblemDistribution` to draw from.
    epochs : int, default 30
        Episode length (the fit's epoch budget).
    problems : int or None
        Draw each episode's problem index from 0..problems-1 of the split with the
        env's RNG (None: out of 10**6, i.e. a new problem nearly every episode).
    distribution : ProblemDistribution, optional
    """

    metadata = {"render_modes": []}

    def __init__(self, split="train", epochs=30, problems=None, distribution=None):
        super().__init__()
        self.dist = distribution or ProblemDistribution(split)
        self.epochs, self.problems = int(epochs), problems
        self.observation_space = gym.spaces.Box(-5.0, 5.0, shape=(N_OBS,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._episode = 0
        self._cache = {}

    def _problem(self, i):
        if i not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[i] = self.dist.draw(i)
        return self._cache[i]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and "problem" in options:
            i = int(options["problem"])
        else:
            i = int(self.np_random.integers(0, 10 ** 6 if self.problems is None else int(self.problems)))
        self._episode += 1
        self.prob = p = self._problem(i)
        self.W, self.H = initialize(p.V, p.rank, "auto", seed=int(self.np_random.integers(2 ** 31)))
        l0 = _loss(p.V, self.W, self.H)
        self.log_losses = [math.log(max(l0, 1e-300))]
        self.c0 = self.c = None
        self.a = A_INIT
        self.t = 0
        return self._obs(), {"problem": i, "seed": p.seed, "loss": l0}

    def _obs(self):
        cr = 0.0 if self.c0 is None else math.log(self.c / self.c0)
        return observation(self.log_losses, cr, self.a, self.t, self.epochs)

    def step(self, action):
        a = action_to_fraction(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        p = self.prob
        sched = _TickZeroFraction(a) if self.c is None else a * self.c
        res = solve_rows(p.V, p.rank, schedule=sched, W0=self.W, H0=self.H,
                         cfg=RowConfig(epochs=1, tol=0.0, batch_size=p.batch_size),
                         seed=int(self.np_random.integers(2 ** 31)))
        self.t += 1
        self.a = a
        if self.c0 is None:
            self.c0 = min(res.trace[0]["ceiling_W"], res.trace[0]["ceiling_H"])
        row = res.trace[-1]
        c = min(row["ceiling_W"], row["ceiling_H"])
        self.c = c if math.isfinite(c) and c > 0 else (self.c or self.c0)
        diverged = res.stop_reason == "diverged" or not math.isfinite(res.loss)
        prev = self.log_losses[-1]
        cur = math.log(max(res.loss, 1e-300)) if not diverged else prev
        self.W, self.H = res.W, res.H
        self.log_losses.append(cur)
        reward = prev - cur
        terminated = diverged or self.t >= self.epochs
        if terminated:
            reward -= cur - min(self.log_losses)
            if diverged:
                reward -= 1.0
        info = {"loss": float(math.exp(cur)), "lr": a * (self.c if self.c else 0.0), "fraction": a}
        return self._obs(), float(reward), bool(terminated), False, info
