"""Train the DNN LR policy with stable-baselines3 PPO and export it to ``dnn_policy.npz``.

``python -m nmf_sched.rl.dnn_train [--timesteps N] [--seed S] [--out DIR] [--export PATH]``

Training tasks come from the ``"train"`` split of
:class:`~nmf_sched.rl.dnn_env.TaskDistribution` on :data:`~nmf_sched.rl.dnn_env.TRAIN_WORKLOADS`;
the periodic evaluation uses the disjoint ``"eval"`` split of the same workloads and
compares, per task, the final full training loss against cosine decay (the Hugging Face
default, from the same base LR) and a constant LR. Saved in ``--out``: ``curve.json``
(training returns per episode, the evaluations, settings) and ``ppo.zip``. The export
holds the actor MLP (``x @ W + b``, tanh) for :class:`nmf_sched.rl.dnn_policy.DNNPolicy`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["train", "evaluate_tasks", "run_task", "main", "DEFAULTS"]

DEFAULTS = dict(timesteps=30000, seed=0, n_ticks=30, train_tasks=4096, eval_tasks=12,
                eval_every=6144, n_steps=1024, batch_size=64, net=(32, 32), lr=3e-4)


def run_task(task, schedule, n_ticks):
    """Train ``task`` for ``n_ticks * task.every`` steps under ``schedule``, a function
    ``(lr0, total) -> spec`` for :class:`~nmf_sched.torch.ScheduleLR`, stepped with every
    minibatch loss; returns the final full training loss."""
    from ..torch import ScheduleLR

    run = task.run()
    total = n_ticks * task.every
    sched = ScheduleLR(run.opt, schedule(task.lr, total), total=total)
    for _ in range(total):
        loss = run.train_step()
        sched.step(loss)
    return run.evaluate()["train_loss"]


def evaluate_tasks(act, tasks, n_ticks, workloads=None):
    """Final training loss of the policy ``act(obs) -> action`` (run in the env) and of
    cosine and constant LRs on eval tasks 0..tasks-1; returns a dict of lists and the mean
    log ratios policy/cosine and policy/constant."""
    from .dnn_env import TRAIN_WORKLOADS, DNNScheduleEnv

    env = DNNScheduleEnv("eval", n_ticks=n_ticks, workloads=workloads or TRAIN_WORKLOADS)
    pol, cos, const = [], [], []
    for i in range(tasks):
        obs, _ = env.reset(options={"task": i})
        done = False
        while not done:
            obs, _, done, trunc, info = env.step(act(obs))
            done = done or trunc
        pol.append(math.inf if info.get("diverged") else env.run.evaluate()["train_loss"])
        cos.append(run_task(env.task, lambda lr, T: ("cosine", {"lr": lr, "total": T}), n_ticks))
        const.append(run_task(env.task, lambda lr, T: float(lr), n_ticks))
    lr_cos = float(np.mean([math.log(p / c) for p, c in zip(pol, cos)]))
    lr_const = float(np.mean([math.log(p / c) for p, c in zip(pol, const)]))
    return {"policy": pol, "cosine": cos, "constant": const,
            "mean_log_ratio_vs_cosine": lr_cos, "mean_log_ratio_vs_constant": lr_const}


def train(timesteps=DEFAULTS["timesteps"], seed=DEFAULTS["seed"], out="rl_runs/dnn_latest",
          export=None, n_ticks=DEFAULTS["n_ticks"], train_tasks=DEFAULTS["train_tasks"],
          eval_tasks=DEFAULTS["eval_tasks"], eval_every=DEFAULTS["eval_every"],
          n_steps=DEFAULTS["n_steps"], batch_size=DEFAULTS["batch_size"], net=DEFAULTS["net"],
          lr=DEFAULTS["lr"], verbose=True):
    """Train PPO on :class:`DNNScheduleEnv`; save the curve and model; export the actor."""
    from stable_baselines3.common.callbacks import BaseCallback

    from .dnn_env import DNNScheduleEnv
    from .train import _single_thread, export_policy, make_ppo

    _single_thread()
    env, model = make_ppo(DNNScheduleEnv("train", n_ticks=n_ticks, tasks=train_tasks), out,
                          seed=seed, n_steps=n_steps, batch_size=batch_size, lr=lr, net=net)
    curve = {"train": [], "eval": []}
    act = lambda o: model.predict(o, deterministic=True)[0]
    t0 = time.time()

    class _CB(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval = eval_every

        def _on_step(self):
            for inf in self.locals.get("infos", []):
                if "episode" in inf:
                    curve["train"].append({"timestep": int(self.num_timesteps),
                                           "return": float(inf["episode"]["r"])})
            if self.num_timesteps >= self.next_eval:
                self.next_eval += eval_every
                ev = evaluate_tasks(act, eval_tasks, n_ticks)
                curve["eval"].append({"timestep": int(self.num_timesteps),
                                      "vs_cosine": ev["mean_log_ratio_vs_cosine"],
                                      "vs_constant": ev["mean_log_ratio_vs_constant"]})
                if verbose:
                    print(f"{self.num_timesteps:>7} steps, {time.time() - t0:6.0f} s: mean "
                          f"log(policy/cosine) {ev['mean_log_ratio_vs_cosine']:+.4f}, "
                          f"log(policy/constant) {ev['mean_log_ratio_vs_constant']:+.4f}",
                          flush=True)
            return True

    model.learn(total_timesteps=timesteps, callback=_CB())
    final = evaluate_tasks(act, eval_tasks, n_ticks)
    curve["final_eval"] = final
    curve["seconds"] = time.time() - t0
    meta = dict(timesteps=timesteps, seed=seed, n_ticks=n_ticks, train_tasks=train_tasks,
                eval_tasks=eval_tasks, n_steps=n_steps, batch_size=batch_size, net=list(net),
                lr=lr, final_vs_cosine=final["mean_log_ratio_vs_cosine"],
                final_vs_constant=final["mean_log_ratio_vs_constant"])
    curve["settings"] = meta
    with open(os.path.join(out, "curve.json"), "w") as fh:
        json.dump(curve, fh, indent=1)
    model.save(os.path.join(out, "ppo.zip"))
    if export:
        export_policy(model, export, meta)
    if verbose:
        print(f"final: mean log(policy/cosine) {final['mean_log_ratio_vs_cosine']:+.4f}, "
              f"log(policy/constant) {final['mean_log_ratio_vs_constant']:+.4f}; "
              f"{curve['seconds']:.0f} s; curve in {out}/curve.json"
              + (f"; policy -> {export}" if export else ""))
    return curve


def build_arg_parser():
    p = argparse.ArgumentParser(prog="python -m nmf_sched.rl.dnn_train",
                                description="Train the DNN LR policy with PPO.")
    for name in ("timesteps", "seed", "n_ticks", "train_tasks", "eval_tasks", "eval_every",
                 "n_steps"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=DEFAULTS[name])
    p.add_argument("--out", default="rl_runs/dnn_latest")
    p.add_argument("--export", default=None, help="write the policy .npz here")
    return p


def main(argv=None) -> int:
    a = build_arg_parser().parse_args(argv)
    for name in ("timesteps", "n_ticks", "train_tasks", "eval_tasks", "eval_every", "n_steps"):
        if getattr(a, name) < 1:
            print(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}", file=sys.stderr)
            return 2
    train(timesteps=a.timesteps, seed=a.seed, out=a.out, export=a.export, n_ticks=a.n_ticks,
          train_tasks=a.train_tasks, eval_tasks=a.eval_tasks, eval_every=a.eval_every,
          n_steps=a.n_steps, batch_size=min(DEFAULTS["batch_size"], a.n_steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
