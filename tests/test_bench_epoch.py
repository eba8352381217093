"""benchmarks/bench_epoch.py: the --quick mode end to end (the structure of its JSON and the
ratios it derives, never its timings)."""
import importlib.util
import json
import math
import os

import pytest

from conftest import TOL

pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_epoch.py")


def _load():
    spec = importlib.util.spec_from_file_location("bench_epoch", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_mode(tmp_path):
    mod = _load()
    out = tmp_path / "epoch"
    mod.main(["--quick", "--repeats", "1", "--no-sparse", "--variants", "python", "fused",
              "--out", str(out)])
    res = json.loads((tmp_path / "epoch.json").read_text())
    assert res["meta"]["quick"] is True
    floor = [r for r in res["results"] if r["part"] == "floor"]
    ranks = [r for r in res["results"] if r["part"] == "ranks"]
    assert {r["variant"] for r in floor} == {"python", "fused"}
    assert {r["batch_size"] for r in floor} == {256, "full"}
    assert {r["k"] for r in ranks} == {4, 12}
    assert {r["variant"] for r in ranks} == {"python", "fused", "fused-unblocked"}
    for r in res["results"]:
        assert r["epoch_s"] > 0 and r["floor_s"] > 0
        assert r["ratio"] == pytest.approx(r["epoch_s"] / r["floor_s"], rel=TOL["exact"])
    for r in ranks:
        assert r["per_cd"] == pytest.approx(r["epoch_s"] / r["cd_iter_s"], rel=TOL["exact"])
    assert all(math.isnan(r["cd_iter_s"]) for r in floor)
    inits = {r["init"] for r in res["init"]}
    assert len(inits) == 3 and "scikit-learn nndsvda" in inits and len(res["init"]) == 9
    for r in res["init"]:
        assert r["seconds"] > 0 and 0 < r["nndsvd_rel_error"] < 1
    md = (tmp_path / "epoch.md").read_text()
    assert md.count("| dense 600x200") == len(floor) + len(ranks)


def test_batch_part_times_to_target():
    from nmf_sched import datasets

    mod = _load()
    V = datasets.planted(200, 60, 3, noise=0.1, seed=0).V
    rows = mod.bench_batch([("tiny", V, 3)], [32, 10**9], 0.2, 1)
    assert [r["batch_size"] for r in rows] == [32, 10**9]
    best = rows[0]["best"]
    assert all(r["best"] == best for r in rows)
    for r in rows:
        assert r["s_to_0.1"] <= r["s_to_0.01"]  # the looser target is reached first
        assert r["epochs"] >= 1
    # the run that reached the best error reached both targets
    assert min(r["s_to_0.01"] for r in rows) < math.inf
