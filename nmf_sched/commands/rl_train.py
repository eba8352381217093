"""``nmf-sched rl-train``: train the RL schedule with PPO (extra ``rl``); see nmf_sched.rl.train."""
from __future__ import annotations


def add_parser(subparsers):
    from ..rl import train as _t  # light: no torch/SB3 imported at module level

    p = subparsers.add_parser("rl-train", help="train the RL LR schedule (PPO, stable-baselines3)",
                              description="Train the RL LR schedule with stable-baselines3 PPO on "
                              "seeded planted problems and export the policy .npz.")
    _t.build_arg_parser(p)
    return p


def run(args) -> int:
    try:
        import stable_baselines3  # noqa: F401
        import gymnasium  # noqa: F401
    except ImportError as exc:
        raise OSError(f"rl-train needs the 'rl' extra (pip install 'nmf-sched[rl]'): {exc}") from exc
    from ..rl import train as _t

    return _t.run_args(args)
