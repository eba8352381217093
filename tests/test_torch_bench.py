"""benchmarks/bench_dnn.py and its workloads: the Hugging Face baselines are HF's formulas, the
paper's equivalence rule, the workloads are seeded and offline, and the --quick mode runs."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from conftest import TOL  # noqa: E402
from nmf_sched.torch import ScheduleLR  # noqa: E402
from nmf_sched.torch.workloads import (BASE_LR, OPTIMIZERS, WORKLOADS, TrainingRun,  # noqa: E402
                                       make_workload)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import bench_dnn  # noqa: E402


def _hf_lambda(kind, T, lr0):
    """transformers.optimization's lambdas at warmup 0 (get_*_schedule_with_warmup)."""
    if kind == "linear":
        return lambda t: max(0.0, (T - t) / max(1, T))
    if kind == "cosine":
        return lambda t: max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * t / T)))
    if kind == "polynomial":
        end = 1e-7

        def f(t):
            if t > T:
                return end / lr0
            return ((lr0 - end) * (1 - t / T) ** 1.0 + end) / lr0
        return f
    return lambda t: 1.0


@pytest.mark.parametrize("kind", bench_dnn.HF_BASELINES)
def test_hf_baselines_are_hf_formulas(kind):
    T, lr0 = 25, 0.03
    p1 = [torch.nn.Parameter(torch.zeros(2))]
    p2 = [torch.nn.Parameter(torch.zeros(2))]
    o1, o2 = torch.optim.SGD(p1, lr=lr0), torch.optim.SGD(p2, lr=lr0)
    ours = ScheduleLR(o1, bench_dnn.hf_spec(kind, T))
    ref = torch.optim.lr_scheduler.LambdaLR(o2, _hf_lambda(kind, T, lr0))
    for t in range(T + 1):  # a run stops at T (after it HF's cosine climbs back, ours holds 0)
        a, b = o1.param_groups[0]["lr"], o2.param_groups[0]["lr"]
        assert abs(a - b) <= TOL["torch_schedule"] * max(lr0, abs(b)), (kind, t, a, b)
        o1.step(), o2.step()
        ours.step(), ref.step()


def test_greedy_settings_of_the_paper():
    name, kw = bench_dnn.greedy_spec("greedy_paper", 2e-3)
    assert name == "greedy"
    assert kw["min_lr"] == pytest.approx(2e-4, rel=TOL["exact"])  # 0.1 x the initial LR
    assert (kw["patience"], kw["window"], kw["factor"], kw["threshold_mode"]) == (10, 50, 0.95, "abs")
    _, ours = bench_dnn.greedy_spec("greedy_ours", 2e-3)
    assert ours["max_lr"] == pytest.approx(2e-3 * bench_dnn.GREEDY_OURS_MAX, rel=TOL["exact"])


@pytest.mark.parametrize("a, b, rule, want", [
    (1.00, 1.09, "abs", "tie"), (1.00, 1.11, "abs", "better"), (1.20, 1.00, "abs", "worse"),
    (0.010, 0.012, "abs", "tie"), (0.010, 0.012, "rel", "better"), (101.0, 100.5, "rel", "tie"),
    (math.inf, 1.0, "abs", "worse"), (1.0, math.inf, "rel", "better")])
def test_equivalence_rule(a, b, rule, want):
    assert bench_dnn.verdict(a, b, rule) == want


def test_rates_count_the_paper_figures():
    rows = [{"checkpoint": 100, "abs": "better", "rel": "better", "strictly_lower": True, "clear_win": True},
            {"checkpoint": 100, "abs": "tie", "rel": "worse", "strictly_lower": False, "clear_win": False},
            {"checkpoint": 10, "abs": "worse", "rel": "worse", "strictly_lower": False, "clear_win": False}]
    r = bench_dnn.rates(rows)
    assert r["as_good_or_better_abs"] == pytest.approx(2 / 3, rel=TOL["exact"])
    assert r["as_good_or_better_rel"] == pytest.approx(1 / 3, rel=TOL["exact"])
    assert r["better_final"] == 0.5 and r["clear_wins"] == pytest.approx(1 / 3, rel=TOL["exact"])


def test_workloads_are_seeded_and_learn():
    for name in WORKLOADS:
        a, b = make_workload(name, seed=3), make_workload(name, seed=3)
        c = make_workload(name, seed=4)
        pa = torch.cat([p.detach().flatten() for p in a.model.parameters()])
        pb = torch.cat([p.detach().flatten() for p in b.model.parameters()])
        pc = torch.cat([p.detach().flatten() for p in c.model.parameters()])
        assert torch.equal(pa, pb) and not torch.equal(pa, pc), name
        ev = a.evaluate()
        assert math.isfinite(ev["train_loss"]) and math.isfinite(ev["val_loss"])
        assert (ev["val_acc"] is None) == (name == "quadratic")
    run = TrainingRun("mlp_digits", "adamw", seed=0)
    first = run.evaluate()["train_loss"]
    losses = [run.train_step() for _ in range(60)]
    assert run.evaluate()["train_loss"] < 0.5 * first and run.steps_done == 60
    again = TrainingRun("mlp_digits", "adamw", seed=0)
    assert [again.train_step() for _ in range(60)] == losses  # same seed, same run
    assert set(BASE_LR) == {(w, o) for w in WORKLOADS for o in OPTIMIZERS}
    with pytest.raises(ValueError, match="workload"):
        make_workload("resnet", 0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainingRun("quadratic", "lbfgs")


@pytest.mark.timeout(150)
def test_bench_quick_mode(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_dnn.py"), "--quick",
                          "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=140, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((tmp_path / "dnn_quick.json").read_text())
    assert {r["workload"] for r in res["results"]} == set(WORKLOADS)
    assert {r["optimizer"] for r in res["results"]} == set(OPTIMIZERS)
    want = set(bench_dnn.METHODS) - (set() if res["schedulefree_installed"] else {"schedulefree"})
    for r in res["results"]:
        assert set(r["runs"]) == want
        for run in r["runs"].values():
            assert set(run["checkpoints"]) == {"10", "50", "100"}
            assert len(run["history"]["lr"]) == len(run["history"]["loss"]) > 0
    for g in ("greedy_paper", "greedy_ours"):
        s = res["summary"][g]["vs_hf"]
        assert s["n"] == 4 * 3 * len(res["results"])  # 4 baselines x 3 checkpoints per run
        assert 0.0 <= s["as_good_or_better_abs"] <= 1.0
    assert {r["workload"] for r in res["rl"]["rl_dnn"]} == set(WORKLOADS)
    md = (tmp_path / "dnn_quick.md").read_text()
    assert "86.7%" in md and "Phase 2: rl_dnn against cosine" in md
