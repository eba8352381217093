"""Reinforcement learning of an LR schedule (extra ``rl``).

:mod:`nmf_sched.rl.env` holds the gymnasium environment and the problem
distribution, :mod:`nmf_sched.rl.train` the stable-baselines3 PPO training and
the export to ``policy.npz``. The shipped policy runs without any of these
(``fit(schedule="rl")``, :mod:`nmf_sched.schedules.rl_policy`); nothing here is
imported by ``import nmf_sched``.
"""
