"""The ceiling-relative schedules (AnnealedGreedy, CeilingFraction), the auto benchmark's quick
mode and the comparison rules of the schedule benchmark (ties under 1%, sign test, intervals)."""
import json
import math
import os
import subprocess
import sys

import pytest

import nmf_sched
from nmf_sched.schedules import AnnealedGreedy, GreedyLR, StepInfo, make_schedule
from nmf_sched.schedules.ceiling_relative import CeilingFraction
from nmf_sched.schedules.base import replay

from conftest import TOL, planted_dense

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def test_ceiling_fraction_docstring_table():
    # the table of CeilingFraction's docstring: the ceiling re-read at every tick
    got = replay(CeilingFraction(0.5), [None] * 4, [2.0, 1.0, None, 4.0])
    assert got == pytest.approx([1.0, 0.5, 0.5, 2.0], rel=TOL["exact"])


def test_ceiling_fraction_differs_from_constant_bound():
    # Constant(lr="bound") resolves the ceiling once; the control follows it
    ceilings = [2.0, 1.0, 0.5]
    assert replay(make_schedule(("constant", {"lr": "bound", "kappa": 0.5})), [None] * 3,
                  ceilings) == pytest.approx([1.0, 1.0, 1.0], rel=TOL["exact"])
    assert replay(CeilingFraction(0.5), [None] * 3, ceilings) == pytest.approx(
        [1.0, 0.5, 0.25], rel=TOL["exact"])


@pytest.mark.parametrize("kw, exc, word", [
    ({"fraction": 0.0}, ValueError, "fraction"),
    ({"fraction": 1.5}, ValueError, "fraction"),
    ({"fraction": "half"}, TypeError, "fraction"),
])
def test_ceiling_fraction_bad_input(kw, exc, word):
    with pytest.raises(exc, match=word):
        CeilingFraction(**kw)


def test_ceiling_fraction_needs_a_ceiling():
    s = CeilingFraction(0.5)
    with pytest.raises(ValueError, match="ceiling"):
        s.update(s.init(), StepInfo(step=0, epoch=0, loss=1.0, ceiling=None, tick=0))


def _annealing_naive(t, total, tail, end):
    """The factor of AnnealedGreedy written out again: 1 before the tail, then a half cosine
    from 1 down to ``end`` over the remaining ticks."""
    start = math.ceil((1 - tail) * total)
    if t < start:
        return 1.0
    x = min(1.0, (t - start) / (total - start))
    return end + (1 - end) * (1 + math.cos(math.pi * x)) / 2


@pytest.mark.parametrize("tail, end, total", [(0.3, 0.1, 20), (0.5, 0.0, 4), (1.0, 0.2, 7)])
def test_annealed_greedy_is_greedy_times_the_tail(tail, end, total):
    losses = [10.0 - 0.1 * t for t in range(total + 1)]  # always improving: greedy raises its LR
    ceilings = [2.0] * (total + 1)
    inner = dict(lr=1.0, patience=1, factor=0.8, max_lr=None)
    greedy = replay(GreedyLR(**inner), losses, ceilings)
    annealed = replay(AnnealedGreedy(tail=tail, end_factor=end, greedy=inner, total=total),
                      losses, ceilings)
    expected = [g * _annealing_naive(t, total, tail, end) for t, g in enumerate(greedy)]
    assert annealed == pytest.approx(expected, rel=TOL["exact"], abs=TOL["ulp"])
    assert greedy[-1] > greedy[0]  # the inner rule did act


def test_annealed_greedy_without_tail_is_greedy():
    losses, ceilings = [5.0, 4.0, 4.5, 3.0, 3.5, 3.6], [2.0] * 6
    assert replay(AnnealedGreedy(tail=0.0, greedy={"patience": 0}, total=6), losses, ceilings) == \
        replay(GreedyLR(patience=0), losses, ceilings)


@pytest.mark.parametrize("kw, exc, word", [
    ({"tail": 1.5}, ValueError, "tail"),
    ({"end_factor": -0.1}, ValueError, "end_factor"),
    ({"greedy": [1]}, TypeError, "greedy"),
    ({"greedy": {"factor": 2.0}}, ValueError, "factor"),
])
def test_annealed_greedy_bad_input(kw, exc, word):
    with pytest.raises(exc, match=word):
        AnnealedGreedy(**kw)


def test_auto_is_the_documented_schedule_and_fits():
    from nmf_sched.schedules.base import AUTO

    s = make_schedule("auto", total=5)
    assert type(s).__name__ == {"greedy": "GreedyLR", "annealed_greedy": "AnnealedGreedy",
                                "ceiling_fraction": "CeilingFraction", "rl": "RLPolicy"}[AUTO[0]]
    V = planted_dense(60, 40, 3)
    r = nmf_sched.fit(V, 3, epochs=5, seed=0, tol=0)
    assert r.stop_reason == "max_epochs" and r.trace[-1]["loss"] < r.trace[0]["loss"]


def test_bench_auto_quick(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_auto.py"),
                          "--quick", "--set", "dev", "--budgets", "3", "6", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "auto_quick.json").read_text())
    rows = res["sets"]["dev"]["rows"]
    assert rows and set(res["autos"]) == {"auto", "rl"}
    for r in rows:
        for b, row in r["budgets"].items():
            assert len(row["classic"]) == 8
            # the oracle is the best classic setting of the cell
            assert row["oracle"] == min(row["classic"].values())
            assert row["auto_ratio"] == pytest.approx(row["auto"] / row["oracle"], rel=TOL["exact"])
    summ = res["sets"]["dev"]["summary"]["auto"]
    assert summ["cells"] == 2 * len({r["problem"] for r in rows})
    assert (tmp_path / "auto_quick.md").read_text().count("| ") > 4


def test_tally_tie_rule_and_sign_test():
    import bench_schedules as B

    pairs = [(1.0, 1.005), (1.0, 0.995), (0.9, 1.0), (1.2, 1.0), (1.0, 1.0)]
    t = B.tally(pairs)
    # strict: one win inside the tie band, one beyond; one loss inside, one beyond; one equal
    assert (t["strict_wins"], t["strict_losses"], t["ties_1pct"]) == (2, 2, 3)
    assert (t["wins_beyond_tie"], t["losses_beyond_tie"]) == (1, 1)
    assert t["as_good_or_better"] == pytest.approx(4 / 5, rel=TOL["exact"])
    assert t["sign_test_p"] == pytest.approx(1.0, rel=TOL["exact"])
    lo, hi = t["as_good_or_better_ci95"]
    assert lo < 0.8 < hi
    assert B.tally([(0.5, 1.0)] * 10)["sign_test_p"] == pytest.approx(2 * 0.5 ** 10,
                                                                         rel=TOL["float64"])


def test_ceiling_fraction_cycle():
    got = replay(CeilingFraction((0.9, 0.2)), [None] * 5, [1.0, 1.0, 2.0, 2.0, 2.0])
    assert got == pytest.approx([0.9, 0.2, 1.8, 0.4, 1.8], rel=TOL["exact"])
    with pytest.raises(ValueError, match="fraction"):
        CeilingFraction(())
    with pytest.raises(ValueError, match="fraction"):
        CeilingFraction((0.5, 2.0))


def test_bench_schedules_alternation_quick(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_schedules.py"),
                          "--quick", "--alternation", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "schedules_alternation_quick.json").read_text())
    assert set(res["rows"][0]["final"]) == {"rl", "cycle_0.9_0.2", "cycle_0.9_0.1",
                                            "fraction_0.55", "step_tuned"}
    t = res["comparisons"]["cycle_0.9_0.2 vs rl @6"]
    assert t["n"] == len(res["rows"]) and t["strict_wins"] + t["strict_losses"] <= t["n"]
