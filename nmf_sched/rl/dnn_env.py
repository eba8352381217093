r"""A gymnasium environment in which an agent schedules the LR of one PyTorch training run.

Episode: one :class:`~nmf_sched.torch.workloads.TrainingRun` on a task drawn from
:class:`TaskDistribution` (workload, optimizer, base LR, steps per tick, seed). The run is
cut into ``n_ticks`` policy ticks of ``every`` optimizer steps (the clock of
:class:`nmf_sched.rl.dnn_policy.DNNPolicy`). ``reset`` runs the first tick at the base LR.
Step: action :math:`x \in [-1, 1]` scales the LR by :math:`2^x` (relative LR clipped to
:math:`[10^{-3}, 10]`), then one tick runs. Observation:
:func:`~nmf_sched.rl.dnn_policy.dnn_observation` (scale-free: loss trend, relative LR,
minibatch-loss noise, progress, previous action). Reward: :math:`\log\bar\ell_{k-1} -
\log\bar\ell_k` of the tick-mean minibatch losses (the episode sums to the log decrease of
the training loss); terminal term :math:`-(\log\bar\ell_T - \min_k \log\bar\ell_k)`; a
diverged run (non-finite tick mean, or above 100x the first) ends with reward -3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from ..torch.workloads import BASE_LR, TrainingRun
from .dnn_policy import N_OBS, N_TICKS, apply_action, dnn_observation, tick_stats

__all__ = ["Task", "TaskDistribution", "DNNScheduleEnv", "TRAIN_WORKLOADS", "HELDOUT_WORKLOADS"]

#: workloads the policy is trained on; the others of WORKLOADS are held out entirely
TRAIN_WORKLOADS = ("logreg_digits", "mlp_digits", "quadratic")
HELDOUT_WORKLOADS = ("cnn_digits", "char_lm")
_SEED_BASE = {"train": 1000, "eval": 500_000}


@dataclass(frozen=True)
class Task:
    """One drawn training run."""

    workload: str
    optimizer: str
    lr: float
    every: int
    seed: int

    def run(self) -> TrainingRun:
        return TrainingRun(self.workload, self.optimizer, lr=self.lr, seed=self.seed)


class TaskDistribution:
    """Seeded tasks; the ``"train"`` and ``"eval"`` splits never share a seed.

    Task ``i`` of a split: seed ``1000 + i`` (train) or ``500000 + i`` (eval), so neither
    uses the benchmark's seeds 0, 1, 2. Drawn: workload from ``workloads``, optimizer
    SGD-momentum or AdamW, base LR = the benchmark's base LR times a log-uniform factor in
    [1/4, 4] (the policy has to recognize a mis-set LR from the loss alone), ``every`` in
    {5, 10, 20} steps per tick.
    """

    def __init__(self, split="train", workloads=TRAIN_WORKLOADS):
        if split not in _SEED_BASE:
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        self.split, self.workloads = split, tuple(workloads)

    def draw(self, i: int) -> Task:
        seed = _SEED_BASE[self.split] + int(i)
        r = np.random.default_rng([seed, 31])
        w = self.workloads[int(r.integers(len(self.workloads)))]
        opt = ("sgd", "adamw")[int(r.integers(2))]
        lr = BASE_LR[(w, opt)] * float(math.exp(r.uniform(math.log(0.25), math.log(4.0))))
        every = int(r.choice([5, 10, 20]))
        return Task(w, opt, lr, every, seed)


class DNNScheduleEnv(gym.Env):
    """One torch training run per episode, one policy tick per step (module docstring).

    Parameters
    ----------
    split : {"train", "eval"}
    n_ticks : int, default 30
        Policy ticks per run (``n_ticks - 1`` actions per episode).
    tasks : int or None
        Draw each episode's task index from 0..tasks-1 (None: out of 10**6).
    workloads : tuple of str
        The workloads tasks are drawn from.
    """

    metadata = {"render_modes": []}

    def __init__(self, split="train", n_ticks=N_TICKS, tasks=None, workloads=TRAIN_WORKLOADS):
        super().__init__()
        self.dist = TaskDistribution(split, workloads)
        self.n_ticks, self.tasks = int(n_ticks), tasks
        self.observation_space = gym.spaces.Box(-5.0, 5.0, shape=(N_OBS,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def _tick(self):
        losses = [self.run.train_step() for _ in range(self.task.every)]
        return tick_stats(losses)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if options and "task" in options:
            i = int(options["task"])
        else:
            i = int(self.np_random.integers(0, 10 ** 6 if self.tasks is None else int(self.tasks)))
        self.task = self.dist.draw(i)
        self.run = self.task.run()
        self.ratio, self.x, self.k = 1.0, 0.0, 1
        mean, self.noise = self._tick()
        if not math.isfinite(mean) or mean <= 0:
            mean = 1.0  # a first tick that already diverged: the episode ends at the first step
        self.first = mean
        self.log_means = [math.log(mean)]
        self.all_logs = [math.log(mean)]
        return self._obs(), {"task": i, "workload": self.task.workload,
                             "optimizer": self.task.optimizer, "lr": self.task.lr}

    def _obs(self):
        return dnn_observation(self.log_means, math.log(self.ratio), self.noise, self.x, self.k,
                               self.n_ticks)

    def step(self, action):
        self.ratio, self.x = apply_action(self.ratio, action)
        self.run.set_lr(self.task.lr * self.ratio)
        mean, self.noise = self._tick()
        self.k += 1
        prev = self.all_logs[-1]
        diverged = not math.isfinite(mean) or mean <= 0 or mean > 100.0 * self.first
        info = {"lr": self.run.lr, "ratio": self.ratio, "loss": mean}
        if diverged:
            return self._obs(), -3.0, True, False, dict(info, diverged=True)
        cur = math.log(mean)
        self.all_logs.append(cur)
        self.log_means = self.log_means[:1] + (self.log_means[1:] + [cur])[-4:]
        reward = prev - cur
        terminated = self.k >= self.n_ticks
        if terminated:
            reward -= cur - min(self.all_logs)
        return self._obs(), float(reward), bool(terminated), False, dict(info, diverged=False)
