"""RL schedule: the gymnasium env (check_env, bounded actions, disjoint splits, scale-free
observations), the NumPy policy (matches SB3's deterministic action, runs without torch), the
rl-train command and the benchmark's --quick mode."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import nmf_sched
from nmf_sched.schedules.rl_policy import (MIN_FRACTION, POLICY_PATH, action_to_fraction,
                                           load_policy, observation, policy_forward)

from conftest import TOL, planted_dense

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

gym = pytest.importorskip("gymnasium")


def test_env_passes_check_env():
    from gymnasium.utils.env_checker import check_env

    from nmf_sched.rl.env import NMFScheduleEnv

    env = NMFScheduleEnv("train", epochs=3, problems=2)
    check_env(env, skip_render_check=True)


def test_env_episode_bounded_actions_and_reward_telescopes():
    from nmf_sched.rl.env import NMFScheduleEnv

    env = NMFScheduleEnv("eval", epochs=4)
    obs, info = env.reset(seed=1, options={"problem": 0})
    assert env.observation_space.contains(obs)
    total, done = 0.0, False
    for x in (1.0, -1.0, 5.0, -5.0):  # out-of-range actions are clipped
        obs, r, done, trunc, inf = env.step(np.array([x], dtype=np.float32))
        assert MIN_FRACTION - TOL["exact"] <= inf["fraction"] <= 1.0
        total += r
    assert done and not trunc
    ll = env.log_losses
    assert total == pytest.approx(ll[0] - ll[-1] - (ll[-1] - min(ll)), rel=TOL["exact"])
    assert all(math.isfinite(v) for v in ll)


def test_train_and_eval_problems_are_disjoint():
    from nmf_sched.rl.env import ProblemDistribution

    tr, ev = ProblemDistribution("train"), ProblemDistribution("eval")
    assert not {tr.seed_of(i) for i in range(1000)} & {ev.seed_of(i) for i in range(1000)}
    a, b = tr.draw(3), tr.draw(3)
    assert a.spec == b.spec and np.array_equal(np.asarray(a.V.todense() if hasattr(a.V, "todense")
                                                          else a.V),
                                               np.asarray(b.V.todense() if hasattr(b.V, "todense")
                                                          else b.V))


def test_observation_is_scale_free_and_schedule_follows_ceiling():
    o1 = observation(np.log([10.0, 8.0, 7.0]), 0.1, 0.5, 2, 30)
    o2 = observation(np.log([1e4, 8e3, 7e3]), 0.1, 0.5, 2, 30)
    np.testing.assert_allclose(o1, o2, rtol=0, atol=TOL["io_f32"])  # float32 observations
    assert action_to_fraction(1.0) == 1.0
    assert action_to_fraction(-3) == pytest.approx(MIN_FRACTION, rel=TOL["exact"])
    V = planted_dense(60, 40, 4)
    g = np.random.default_rng(2)
    W0, H0 = g.random((60, 4)), g.random((4, 40))
    r1 = nmf_sched.fit(V, 4, schedule="rl", epochs=5, batch_size=20, seed=0, tol=0, W0=W0, H0=H0)
    r2 = nmf_sched.fit(100.0 * V, 4, schedule="rl", epochs=5, batch_size=20, seed=0, tol=0,
                       W0=10 * W0, H0=10 * H0)
    l1 = [row["lr_W"] for row in list(r1.trace)[1:]]
    l2 = [row["lr_W"] for row in list(r2.trace)[1:]]
    np.testing.assert_allclose(l1, l2, rtol=TOL["float32_op"])  # the cd LR unit is dimensionless
    for row in list(r1.trace)[1:]:
        assert row["step_W"] <= 0.9 * row["ceiling_W"] * (1 + TOL["margin"])
    assert r1.loss < r1.trace[0]["loss"]


def test_shipped_policy_is_small_and_documented():
    assert os.path.getsize(POLICY_PATH) < 64 * 1024
    p = load_policy()
    assert p["W0"].shape[0] == 7
    doc = open(os.path.join(os.path.dirname(POLICY_PATH), "POLICY.md")).read()
    assert "python -m nmf_sched.rl.train" in doc and "seed" in doc


def test_numpy_forward_matches_sb3(tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from nmf_sched.rl.env import NMFScheduleEnv
    from nmf_sched.rl.train import export_policy

    model = PPO("MlpPolicy", NMFScheduleEnv("train", epochs=2, problems=1), seed=0, n_steps=8,
                batch_size=8, policy_kwargs=dict(net_arch=[8, 8]), device="cpu")
    path = export_policy(model, str(tmp_path / "p.npz"))
    params = load_policy(path)
    rng = np.random.default_rng(0)
    for _ in range(5):
        o = rng.uniform(-2, 2, size=7).astype(np.float32)
        want = float(np.clip(model.predict(o, deterministic=True)[0][0], -1, 1))
        assert policy_forward(params, o) == pytest.approx(want, abs=TOL["float32_op"])


def test_rl_schedule_runs_without_torch():
    code = (
        "import sys\n"
        "for m in ('torch', 'stable_baselines3', 'gymnasium'):\n"
        "    sys.modules[m] = None\n"
        "import numpy as np, nmf_sched\n"
        "V = np.random.default_rng(0).random((50, 30))\n"
        "r = nmf_sched.fit(V, 3, schedule='rl', epochs=4, seed=0)\n"
        "assert np.isfinite(r.loss) and r.loss < r.trace[0]['loss'], r.loss\n"
        "assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_rl_train_cli_tiny(tmp_path):
    pytest.importorskip("stable_baselines3")
    from nmf_sched.cli import main

    out = tmp_path / "run"
    rc = main(["rl-train", "--timesteps", "32", "--n-steps", "32", "--epochs", "2",
               "--train-problems", "2", "--eval-problems", "1", "--eval-every", "16",
               "--out", str(out), "--export", str(tmp_path / "p.npz"), "--no-progress"])
    assert rc == 0
    curve = json.loads((out / "curve.json").read_text())
    assert curve["train"] and curve["eval"] and curve["settings"]["seed"] == 0
    assert load_policy(str(tmp_path / "p.npz"))["W0"].shape == (7, 32)
    assert main(["rl-train", "--timesteps", "0"]) == 2


def test_bench_quick_mode(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_schedules.py"),
                          "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "schedules_quick.json").read_text())
    methods = set(res["rows"][0]["final"])
    assert {"constant", "step", "exp", "cosine", "ceiling_fraction", "greedy_epoch",
            "greedy_batch", "hypergradient", "sls", "rl", "auto"} == methods
    # equal tuning budgets: every tuned method has the same number of trials
    assert {len(g) for m, g in res["grids"].items() if m not in ("rl", "auto")} == {res["n_trials"]}
    assert set(res["claims"]) == {"rl_vs_step", "greedy_vs_classic", "greedy_faster",
                                  "auto_vs_tuned"}
    assert {r["set"] for r in res["rows"]} == {"heldout", "ood"}
    for t in res["claims"]["greedy_vs_classic"].values():
        assert t["strict_wins"] + t["strict_losses"] <= t["n"]
        assert 0 <= t["as_good_or_better"] <= 1
        assert t["as_good_or_better"] >= t["strict_win_fraction"]
