"""benchmarks/bench_peers.py: the --quick mode end to end (structure and internal consistency of
its JSON, never its timings), and the goal bookkeeping on hand-made numbers."""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import TOL

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_peers.py")
METHODS = {"nmf-sched auto", "nmf-sched greedy", "nmf-sched rl", "sklearn NMF cd", "sklearn NMF mu",
           "MiniBatchNMF b=256", "MiniBatchNMF b=1024"}


def _load():
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _inf(v):
    return math.inf if v is None else v


def test_quick_mode(tmp_path):
    # one BLAS thread: the machine running the suite may be busy (timings are not checked)
    out = subprocess.run([sys.executable, SCRIPT, "--quick", "--blas-threads", "1",
                          "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stderr[-3000:]
    for ext in ("json", "md", "png"):
        assert (tmp_path / f"peers_quick.{ext}").stat().st_size > 0
    res = json.loads((tmp_path / "peers_quick.json").read_text())
    assert res["meta"]["quick"] is True and res["meta"]["repeats"] == 1
    assert res["meta"]["blas_threads"] == 1
    assert [d["name"] for d in res["datasets"]] == ["digits", "planted-400x300", "tfidf-3000x1500"]
    assert [d["sparse"] for d in res["datasets"]] == [False, False, True]
    for d in res["datasets"]:
        ref = d["reference"]
        best = min(r["best_rel_error"] for row in d["methods"].values() for r in row["runs"])
        assert ref["best_run_rel_error"] == pytest.approx(best, rel=TOL["exact"])
        assert ref["reference_rel_error"] == min(ref["long_cd_rel_error"], best)
        assert set(d["targets"]) == {"0.1", "0.01"}
        for key, t in d["targets"].items():
            assert t == pytest.approx((1 + float(key)) * ref["reference_rel_error"], rel=TOL["exact"])
        assert set(d["methods"]) == METHODS
        for name, row in d["methods"].items():
            assert len(row["runs"]) == 1
            med = row["median_seconds_to"]
            assert _inf(med["0.1"]) <= _inf(med["0.01"]), name
            for r in row["runs"]:
                t, e, it = (np.array(r["curve"][c], dtype=float) for c in ("t", "rel_error", "it"))
                assert len(t) == len(e) == len(it) >= 2
                assert t[0] == 0 and np.all(np.diff(t) >= 0) and np.all(np.diff(it) >= 0)
                assert e[0] == pytest.approx(d["init_rel_error"], rel=TOL["exact"])
                assert np.all(e >= ref["reference_rel_error"] * (1 - TOL["margin"])), name
                assert r["final_rel_error"] == e[-1] and r["best_rel_error"] == e.min()
                s1, s2 = _inf(r["seconds_to"]["0.1"]), _inf(r["seconds_to"]["0.01"])
                assert s1 <= s2, name
                for key, s in r["seconds_to"].items():  # recompute from the curve
                    hit = [ti for ti, ei in zip(t, e) if ti <= d["budget_s"] and ei <= d["targets"][key]]
                    assert _inf(s) == (hit[0] if hit else math.inf)
                assert r["algo_seconds"] <= r["wall_seconds"] + 1e-6
                assert r["stop"] in ("callback", "max_epochs", "diverged", "budget", "converged")
                if r["stop"] in ("callback", "budget"):  # stopped by the clock (rl: 200 epochs)
                    assert r["algo_seconds"] >= d["budget_s"]
        # the hooks change nothing: hooked and plain fits give the same factors
        for name, f in d["fidelity"].items():
            assert f["max_rel_factor_diff"] <= TOL["exact"], name
            assert f["hooked_algo_seconds"] > 0 and f["plain_wall_seconds"] > 0
    for g in (res["goals"], res["goals_d001"]):
        assert g["datasets"] == 3 and g["required"] == 2
        assert g["vs_cd_count"] == sum(r["vs_cd_met"] for r in g["per_dataset"])
        assert g["vs_cd"] == (g["vs_cd_count"] >= 2)
        assert g["vs_minibatch_best"] == (g["vs_minibatch_best_count"] >= 2)
    md = (tmp_path / "peers_quick.md").read_text()
    assert "No slower than scikit-learn CD" in md and "Timing fidelity" in md


def test_goal_bookkeeping():
    bp = _load()

    def ds(name, init_err, auto, cd, mb256, mb1024):
        times = {"nmf-sched auto": auto, "sklearn NMF cd": cd, "MiniBatchNMF b=256": mb256,
                 "MiniBatchNMF b=1024": mb1024}
        return dict(name=name, init_rel_error=init_err, targets={"0.1": 1.1, "0.01": 1.01},
                    methods={m: dict(median_seconds_to={"0.1": t, "0.01": t}) for m, t in times.items()})

    inf = math.inf
    g = bp.goals([ds("win", 2.0, 1.0, 1.0, 3.0, 2.0),        # tie with CD counts; 1 <= 0.5 * 2
                  ds("lose", 2.0, 2.0, 1.0, 3.0, 3.0),       # slower than CD; 2 > 1.5
                  ds("peers-fail", 2.0, 5.0, inf, inf, inf),  # only auto reaches it
                  ds("auto-fails", 2.0, inf, inf, inf, inf),
                  ds("trivial", 1.05, 0.0, 0.0, 0.0, 0.0)])   # the init meets the target
    per = {r["dataset"]: r for r in g["per_dataset"]}
    assert [per[n]["vs_cd_met"] for n in per] == [True, False, True, False, False]
    assert [per[n]["vs_minibatch_best_met"] for n in per] == [True, False, True, False, False]
    assert per["win"]["minibatch_best_s"] == 2.0 and per["trivial"]["init_meets_target"]
    assert per["lose"]["auto_over_cd"] == 2.0 and per["peers-fail"]["auto_over_cd"] is None
    assert per["trivial"]["auto_over_cd"] is None
    assert g["required"] == 3 and g["vs_cd_count"] == 2 and g["vs_cd"] is False
    assert bp.seconds_to([0.0, 1.0, 2.0, 3.0], [5.0, 1.2, 1.05, 1.0], 1.1, 2.5) == 2.0
    assert bp.seconds_to([0.0, 1.0, 3.0], [5.0, 1.2, 1.0], 1.1, 2.5) == math.inf


def test_rel_error_matches_residual():
    import scipy.sparse as sp

    bp = _load()
    rng = np.random.default_rng(0)
    V = rng.random((30, 20))
    V[V < 0.6] = 0.0
    W, H = rng.random((30, 4)), rng.random((4, 20))
    want = np.linalg.norm(V - W @ H) / np.linalg.norm(V)
    assert bp.make_rel_error(V)(W, H) == pytest.approx(want, rel=TOL["float64"])
    assert bp.make_rel_error(sp.csr_array(V))(W, H) == pytest.approx(want, rel=TOL["float64"])
