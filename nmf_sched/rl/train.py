"""Train the RL schedule with stable-baselines3 PPO and export it to ``policy.npz``.

``python -m nmf_sched.rl.train [--timesteps N] [--seed S] [--out DIR] [--export PATH]``
(or ``nmf-sched rl-train``). Training problems come from the ``"train"`` split of
:class:`~nmf_sched.rl.env.ProblemDistribution`, evaluation problems from the
disjoint ``"eval"`` split. Saved in ``--out``: ``curve.json`` (per-episode
training returns and the periodic deterministic evaluation), ``ppo.zip`` (the SB3
model). The exported ``.npz`` holds the actor MLP (weights ``W{i}`` as
``x @ W + b``, tanh activations) for :mod:`nmf_sched.schedules.rl_policy`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["train", "export_policy", "evaluate", "main", "build_arg_parser"]

DEFAULTS = dict(timesteps=20000, seed=0, epochs=30, train_problems=256, eval_problems=8,
                eval_every=4096, n_steps=512, batch_size=64, net=(32, 32), lr=3e-4)


def _single_thread():
    """BLAS/OpenMP threads fight on small matrices: one thread is much faster here."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def export_policy(model, path, meta=None):
    """Write the PPO actor (policy MLP + action head, deterministic mean) to ``path``."""
    import torch

    layers = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    layers.append(model.policy.action_net)
    arrays = {}
    for i, lin in enumerate(layers):
        arrays[f"W{i}"] = lin.weight.detach().cpu().numpy().T.astype(np.float32)
        arrays[f"b{i}"] = lin.bias.detach().cpu().numpy().astype(np.float32)
    arrays["activation"] = np.array("tanh")
    arrays["meta"] = np.array(json.dumps(meta or {}))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def evaluate(act, problems, epochs, seed=0):
    """Mean final log loss ratio log(loss_T / loss_0) of ``act(obs) -> action`` over eval problems."""
    from .env import NMFScheduleEnv

    env = NMFScheduleEnv("eval", epochs=epochs)
    out = []
    for i in range(problems):
        obs, info = env.reset(seed=seed + i, options={"problem": i})
        l0, done = info["loss"], False
        while not done:
            obs, _, done, trunc, inf = env.step(act(obs))
            done = done or trunc
        out.append(math.log(inf["loss"] / l0))
    return float(np.mean(out)), out


def make_ppo(env, out, *, seed, n_steps, batch_size, lr, net):
    """``(Monitor(env), PPO)`` on one torch thread, seeded, with ``out`` created: the setup
    the NMF and the DNN schedule trainers share."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor

    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    env = Monitor(env)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    model = PPO("MlpPolicy", env, seed=seed, n_steps=n_steps, batch_size=batch_size,
                learning_rate=lr, gamma=0.99, policy_kwargs=dict(net_arch=list(net)), verbose=0,
                device="cpu")
    return env, model


def train(timesteps=DEFAULTS["timesteps"], seed=DEFAULTS["seed"], out="rl_runs/latest",
          export=None, epochs=DEFAULTS["epochs"], train_problems=DEFAULTS["train_problems"],
          eval_problems=DEFAULTS["eval_problems"], eval_every=DEFAULTS["eval_every"],
          n_steps=DEFAULTS["n_steps"], batch_size=DEFAULTS["batch_size"], net=DEFAULTS["net"],
          lr=DEFAULTS["lr"], progress=True, verbose=True):
    """Train PPO; save the curve and model in ``out``; export the actor to ``export``."""
    _single_thread()
    from stable_baselines3.common.callbacks import BaseCallback

    from .env import NMFScheduleEnv
    from ..schedules.rl_policy import A_INIT

    env, model = make_ppo(NMFScheduleEnv("train", epochs=epochs, problems=train_problems),
                          out, seed=seed, n_steps=n_steps, batch_size=batch_size, lr=lr, net=net)
    curve = {"train": [], "eval": []}
    const_x = 2 * math.log(A_INIT) / math.log(0.02) * -1 + 1  # action giving a = A_INIT
    base, _ = evaluate(lambda o: np.array([const_x], dtype=np.float32), eval_problems, epochs)
    curve["eval_baseline_constant_half_ceiling"] = base

    def policy_act(o):
        return model.predict(o, deterministic=True)[0]

    class _CB(BaseCallback):
        def __init__(self):
            super().__init__()
            self.bar = None
            self.next_eval = eval_every

        def _on_training_start(self):
            if progress:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=timesteps, desc="rl-train", unit="step")

        def _on_step(self):
            if self.bar is not None:
                self.bar.update(1)
            for inf in self.locals.get("infos", []):
                if "episode" in inf:
                    curve["train"].append({"timestep": int(self.num_timesteps),
                                           "return": float(inf["episode"]["r"])})
            if self.num_timesteps >= self.next_eval:
                self.next_eval += eval_every
                m, _ = evaluate(policy_act, eval_problems, epochs)
                curve["eval"].append({"timestep": int(self.num_timesteps), "mean_log_loss_ratio": m})
                if self.bar is not None:
                    self.bar.set_postfix(eval=f"{m:.3f}", const=f"{base:.3f}")
            return True

        def _on_training_end(self):
            if self.bar is not None:
                self.bar.close()

    t0 = time.time()
    model.learn(total_timesteps=timesteps, callback=_CB())
    final, per = evaluate(policy_act, eval_problems, epochs)
    curve["eval"].append({"timestep": int(timesteps), "mean_log_loss_ratio": final})
    curve["final_eval_per_problem"] = per
    curve["seconds"] = time.time() - t0
    meta = dict(timesteps=timesteps, seed=seed, epochs=epochs, train_problems=train_problems,
                eval_problems=eval_problems, n_steps=n_steps, batch_size=batch_size,
                net=list(net), lr=lr, final_eval=final, baseline_eval=base)
    curve["settings"] = meta
    with open(os.path.join(out, "curve.json"), "w") as fh:
        json.dump(curve, fh, indent=1)
    model.save(os.path.join(out, "ppo.zip"))
    if export:
        export_policy(model, export, meta)
    if verbose:
        print(f"final eval mean log(loss_T/loss_0) = {final:.4f} (constant 0.5*ceiling: {base:.4f}); "
              f"{curve['seconds']:.0f}s; curve in {out}/curve.json" + (f"; policy -> {export}" if export else ""))
    return curve


def build_arg_parser(parser=None):
    p = parser or argparse.ArgumentParser(prog="python -m nmf_sched.rl.train",
                                          description="Train the RL LR schedule with PPO.")
    p.add_argument("--timesteps", type=int, default=DEFAULTS["timesteps"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="episode length")
    p.add_argument("--train-problems", type=int, default=DEFAULTS["train_problems"])
    p.add_argument("--eval-problems", type=int, default=DEFAULTS["eval_problems"])
    p.add_argument("--eval-every", type=int, default=DEFAULTS["eval_every"])
    p.add_argument("--n-steps", type=int, default=DEFAULTS["n_steps"])
    p.add_argument("--out", default="rl_runs/latest", help="directory for curve.json and ppo.zip")
    p.add_argument("--export", default=None, help="write the policy .npz here")
    p.add_argument("--no-progress", action="store_true")
    return p


def run_args(args) -> int:
    for name in ("timesteps", "epochs", "train_problems", "eval_problems", "eval_every", "n_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    train(timesteps=args.timesteps, seed=args.seed, out=args.out, export=args.export,
          epochs=args.epochs, train_problems=args.train_problems, eval_problems=args.eval_problems,
          eval_every=args.eval_every, n_steps=args.n_steps,
          batch_size=min(DEFAULTS["batch_size"], args.n_steps), progress=not args.no_progress)
    return 0


def main(argv=None) -> int:
    return run_args(build_arg_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
