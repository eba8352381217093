"""Phase 2: the DNN gymnasium env, the NumPy DNN policy (same decisions as in the env, through
ScheduleLR), the NMF policy on a DNN, the shipped policy file, and the PPO trainer."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")
pytest.importorskip("sklearn")

from nmf_sched.rl.dnn_policy import (DNN_POLICY_PATH, MULT, N_OBS, RATIO_RANGE,  # noqa: E402
                                     DNNPolicy, NMFPolicyOnDNN, apply_action, dnn_observation,
                                     load_dnn_policy, tick_stats)
from nmf_sched.torch import LossScheduleLR, ScheduleLR  # noqa: E402

from conftest import TOL  # noqa: E402


def test_env_passes_check_env_and_splits_are_disjoint():
    from gymnasium.utils.env_checker import check_env

    from nmf_sched.rl.dnn_env import DNNScheduleEnv, TaskDistribution

    check_env(DNNScheduleEnv("train", n_ticks=4, tasks=2), skip_render_check=True)
    tr, ev = TaskDistribution("train"), TaskDistribution("eval")
    seeds_tr = {tr.draw(i).seed for i in range(200)}
    assert not seeds_tr & {ev.draw(i).seed for i in range(200)}
    assert not seeds_tr & {0, 1, 2}  # the benchmark's seeds are held out
    assert tr.draw(5) == tr.draw(5)


def test_observation_is_scale_free_and_actions_bounded():
    a = dnn_observation(np.log([2.0, 1.5, 1.2]), 0.3, 0.05, 0.5, 3)
    b = dnn_observation(np.log([2e3, 1.5e3, 1.2e3]), 0.3, 0.05, 0.5, 3)
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL["io_f32"])  # float32 observations
    assert a.shape == (N_OBS,) and a.dtype == np.float32
    assert apply_action(1.0, [5.0]) == (MULT, 1.0)
    assert apply_action(RATIO_RANGE[0], -1.0)[0] == RATIO_RANGE[0]
    mean, noise = tick_stats([1.0, 3.0, float("nan")])
    assert mean == 2.0 and noise == pytest.approx(0.5, rel=TOL["exact"])


def test_env_episode_and_policy_through_schedulelr_make_the_same_decisions():
    """The shipped policy deciding in the env and DNNPolicy deciding from the minibatch losses
    ScheduleLR feeds it: identical LR sequences (and so identical runs)."""
    from nmf_sched.rl.dnn_env import DNNScheduleEnv

    pol = DNNPolicy(lr=1.0, total=60, n_ticks=6)
    env = DNNScheduleEnv("eval", n_ticks=6, workloads=("logreg_digits",))
    obs, _ = env.reset(options={"task": 0})
    task = env.task
    env_lrs = [env.run.lr]
    done, total_r, n = False, 0.0, 0
    while not done:
        obs, r, done, trunc, info = env.step(np.array([pol.act(obs)]))  # float64, as DNNPolicy
        env_lrs.append(info["lr"])
        total_r, n = total_r + r, n + 1
    assert n == 5 and not trunc
    logs = env.all_logs
    assert math.isclose(total_r, logs[0] - logs[-1] - (logs[-1] - min(logs)), rel_tol=TOL["exact"])
    run = task.run()
    total = 6 * task.every
    sched = ScheduleLR(run.opt, DNNPolicy(lr=task.lr, total=total, n_ticks=6))
    assert isinstance(sched, LossScheduleLR)
    lrs = []
    for t in range(total):
        if t % task.every == 0:
            lrs.append(run.lr)
        sched.step(run.train_step())
    assert lrs == pytest.approx(env_lrs, rel=TOL["exact"])
    assert len(set(np.round(lrs, 12))) > 1  # the policy did move the LR
    state = json.loads(json.dumps(sched.state_dict()))  # JSON-able
    assert state["schedule_states"][0]["k"] == 6


def test_nmf_policy_on_dnn_stays_in_its_range():
    from nmf_sched.torch.workloads import TrainingRun

    run = TrainingRun("quadratic", "adamw", seed=0)
    lr0 = run.lr0
    sched = ScheduleLR(run.opt, NMFPolicyOnDNN(lr0, total=40, n_ticks=10))
    seen = set()
    for _ in range(40):
        sched.step(run.train_step())
        seen.add(round(run.lr / lr0, 9))
    assert len(seen) > 1
    assert all(0.04 - TOL["margin"] <= r <= 2.0 + TOL["margin"] for r in seen if r != 1.0)
    with pytest.raises(ValueError, match="total"):
        NMFPolicyOnDNN(0.1, total=0)


def test_shipped_dnn_policy_is_small_and_documented():
    assert os.path.getsize(DNN_POLICY_PATH) < 64 * 1024
    p = load_dnn_policy()
    assert p["W0"].shape[0] == N_OBS and p["meta"]["timesteps"] > 0
    here = os.path.dirname(DNN_POLICY_PATH)
    doc = open(os.path.join(here, "DNN_POLICY.md")).read()
    assert "python -m nmf_sched.rl.dnn_train" in doc and "seed" in doc
    curve = json.load(open(os.path.join(here, "dnn_policy_curve.json")))
    assert curve["train"] and curve["eval"]
    with pytest.raises(ValueError, match="not found"):
        load_dnn_policy("/nonexistent/p.npz")


def test_dnn_train_tiny_and_numpy_forward_matches_sb3(tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from nmf_sched.rl.dnn_train import main
    from nmf_sched.schedules.rl_policy import policy_forward

    out = tmp_path / "run"
    rc = main(["--timesteps", "16", "--n-steps", "16", "--n-ticks", "3", "--train-tasks", "2",
               "--eval-tasks", "1", "--eval-every", "8", "--out", str(out),
               "--export", str(tmp_path / "p.npz")])
    assert rc == 0
    curve = json.loads((out / "curve.json").read_text())
    assert curve["train"] and curve["eval"] and curve["settings"]["seed"] == 0
    params = load_dnn_policy(str(tmp_path / "p.npz"))
    model = PPO.load(str(out / "ppo.zip"), device="cpu")
    rng = np.random.default_rng(0)
    for _ in range(5):
        o = rng.uniform(-2, 2, size=N_OBS).astype(np.float32)
        want = float(np.clip(model.predict(o, deterministic=True)[0][0], -1, 1))
        assert policy_forward(params, o) == pytest.approx(want, abs=TOL["float32_op"])
    assert main(["--timesteps", "0"]) == 2
