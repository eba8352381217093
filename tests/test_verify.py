"""``python bounds/verify.py --quick``: the empirical check of the ceilings, small grid."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TOL

ROOT = Path(__file__).resolve().parents[1]
SHARDED = "sharded (p=2, p=4), factor 1/2"
BEFORE = "sharded, factor (1 + b/m)/2 (before)"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One ``--quick`` run for the tests of this module: (output folder, seconds, process)."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    pytest.importorskip("skimage")
    out = tmp_path_factory.mktemp("verify")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(ROOT / "bounds" / "verify.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)
    return out, time.time() - t0, proc


def test_verify_quick(quick):
    tmp_path, seconds, proc = quick
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert seconds < 60
    for ext in ("json", "md", "png"):
        assert (tmp_path / f"verify_quick.{ext}").stat().st_size > 0
    d = json.loads((tmp_path / "verify_quick.json").read_text())
    total = d["total"]
    assert total["problem_x_seed"] >= 4
    # the claim on the small grid: nothing at or below the ceiling diverges or ends worse
    assert total["diverged_at_or_below"] == 0
    assert total["increased_at_or_below"] == 0
    assert total["noise_group"]["problem_x_seed"] >= 1
    assert total["noise_group"]["diverged_at_or_below"] == 0
    for r in d["results"]:
        assert r["below_runs"] == 5
        mults = [run["mult"] for run in r["runs"]]
        assert mults == sorted(mults) and mults[4] == 1.0
    md = (tmp_path / "verify_quick.md").read_text()
    assert "divergences at or below the ceiling" in md


def test_verify_quick_finer_grid_stalls_and_heavy_noise(quick):
    """The grid steps by 2^(1/8) above 1; "stalled" is counted against the run at 0.25 of the
    same problem x seed; the heavy-noise family (30x the rms gradient entry, the noise-aware
    ceiling enforced) has no loss of stability at or below the ceiling."""
    tmp_path, _, proc = quick
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = json.loads((tmp_path / "verify_quick.json").read_text())
    assert d["meta"]["multipliers"][5] == pytest.approx(2 ** 0.125, rel=TOL["exact"])
    for r in d["results"]:
        below = [run for run in r["runs"] if run["mult"] <= 1.0]
        assert r["below_stalled"] == sum(run["stalled"] for run in below)
        assert float(r["stall_edge"]) <= float(r["fail_edge"])
    heavy = [r for r in d["results"] if r["family"].startswith("grad-noise x0.3/3/30")]
    assert len(heavy) == 1
    assert heavy[0]["below_diverged"] == 0 and heavy[0]["below_increased"] == 0
    assert all(run["floor_tail"] > 0 for run in heavy[0]["runs"])


def test_verify_quick_sharded(quick):
    """The sharded family runs the sharded scheme (p = 2 and 4) at the engine's factor 1/2
    (THEORY.md §10.4) and its counts at or below the ceiling are the per-run classifications;
    the single-machine factor the engine used before runs as a finding (p = 4)."""
    tmp_path, _, proc = quick
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = json.loads((tmp_path / "verify_quick.json").read_text())
    sh = [r for r in d["results"] if r["family"] == SHARDED]
    assert sorted(r["shards"] for r in sh) == [2, 4]
    for r in sh:
        assert r["mode"] == "shard-half" and r["group"] == "sharded"
        # every fit went through the sharded scheme with the problem's number of shards
        assert {run["backend"] for run in r["runs"]} == {"sharded"}
        assert {run["n_shards"] for run in r["runs"]} == {r["shards"]}
        below = [run for run in r["runs"] if run["mult"] <= 1.0]
        assert r["below_diverged"] == sum(run["diverged"] for run in below)
        assert r["below_increased"] == sum(run["increased"] for run in below)
        # the scan found a divergence above the ceiling: the classifier sees sharded blow-ups
        assert r["edge"] != "inf" and r["edge"] > 1.0
    g = d["total"]["sharded_group"]
    assert g["problem_x_seed"] == 2 and g["runs_at_or_below"] == 10
    assert g["diverged_at_or_below"] == sum(r["below_diverged"] for r in sh) == 0
    assert g["increased_at_or_below"] == sum(r["below_increased"] for r in sh) == 0
    fam = {f["family"]: f for f in d["families"]}
    assert fam[SHARDED]["diverged_at_or_below"] == g["diverged_at_or_below"]
    cells = [c for c in d["total"]["sharded_cells"] if c["family"] == SHARDED]
    assert sum(c["diverged_at_or_below"] for c in cells) == g["diverged_at_or_below"]
    before = [r for r in d["results"] if r["family"] == BEFORE]
    assert [(r["shards"], r["mode"], r["group"]) for r in before] == [(4, "shard", "finding")]
    assert fam[BEFORE]["runs_at_or_below"] == 5
    md = (tmp_path / "verify_quick.md").read_text()
    assert f"diverged at or below the ceiling the engine enforces: **{g['diverged_at_or_below']}**" in md


REGULARIZED = "regularized (L1/L2 prox, §11)"


def test_verify_quick_regularized(quick):
    """The regularized family runs the engine with penalties (alpha_W > 0, alpha_H = "same"),
    its loss is the regularized objective, the ceilings the engine enforced at the init are
    the ridged ones (below the unregularized ones of the same first batch when l1_ratio < 1,
    equal to bounds.block_ceilings with the ridges for the W rows), and its counts at or below
    the ceiling are the per-run classifications (THEORY.md §11)."""
    import numpy as np

    from nmf_sched import bounds, datasets
    from nmf_sched.engine.penalty import Penalty
    from nmf_sched.init import initialize

    tmp_path, _, proc = quick
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = json.loads((tmp_path / "verify_quick.json").read_text())
    reg = [r for r in d["results"] if r["family"] == REGULARIZED]
    assert len(reg) >= 1
    for r in reg:
        assert r["group"] == "regularized" and r["mode"] == "seq" and not r["claim"]
        pen = r["penalty"]
        assert r["alpha_W"] > 0 and pen["alpha_W"] == r["alpha_W"]
        rho = r["l1_ratio"]
        assert 0.0 <= rho < 1.0  # the quick case has a ridge
        m, n = r["shape"]
        # scikit-learn's scaling, alpha_H = "same"
        expect = Penalty.from_alphas(r["alpha_W"], "same", rho, m, n)
        assert np.allclose([pen["l1_W"], pen["l2_W"], pen["l1_H"], pen["l2_H"]],
                           [expect.l1_W, expect.l2_W, expect.l1_H, expect.l2_H])
        assert pen["l2_W"] > 0 and pen["l2_H"] > 0
        # the ridge is comparable to the curvature (it moves the ceiling)
        assert max(pen["ridge_rel_W"], pen["ridge_rel_H"]) >= 0.1
        assert pen["loss0"] > pen["loss0_unregularized"]
        for run in r["runs"]:
            # the trace's loss at the init is the regularized objective the sweep classifies by
            assert run["loss0"] == pytest.approx(pen["loss0"], rel=1e-12)
            assert run["loss0_trace"] == pytest.approx(pen["loss0"], rel=1e-9)
            # the engine's ceilings at the init are the ridged ones
            assert run["ceiling_W0"] == pytest.approx(pen["formula_ceiling_W0"], rel=1e-9)
            if r["precondition"] == "none":
                assert run["ceiling_W0"] < pen["unreg_ceiling_W0"]
                assert run["ceiling_H0"] < pen["unreg_ceiling_H0"]
                # 2/(L + l2) vs 2/L, times the minibatch factor
                assert run["ceiling_W0"] == pytest.approx(
                    2 * r["factor"] / (pen["L_W0"] + pen["l2_W"]), rel=1e-9)
        # an independent check of the formula at the init
        V = datasets.planted(m=200, n=120, rank=4, noise=0.05, seed=0).V  # the quick case
        assert list(V.shape) == [m, n]
        W0, H0 = initialize(V, r["k"], "random", seed=r["seed"])
        W0, H0, _ = bounds.rescale_balance(V, W0, H0)
        cW, _ = bounds.block_ceilings(r["precondition"], H0 @ H0.T, W0.T @ W0, W0.T @ W0,
                                      m / r["b"], l2_W=pen["l2_W"], l2_H=pen["l2_H"])
        assert cW == pytest.approx(r["runs"][0]["ceiling_W0"], rel=1e-9)
        below = [run for run in r["runs"] if run["mult"] <= 1.0]
        assert len(below) == r["below_runs"] == 5
        assert r["below_diverged"] == sum(run["diverged"] for run in below)
        assert r["below_increased"] == sum(run["increased"] for run in below)
        # at or below the ridged ceiling: no divergence, no increase of the objective, no
        # collapse to zero
        assert r["below_diverged"] == 0 and r["below_increased"] == 0
        assert not any(run["collapsed"] for run in below)
        assert all(run["final_rel"] < 1.0 for run in below)
    g = d["total"]["regularized_group"]
    assert g["problem_x_seed"] == len(reg)
    assert g["runs_at_or_below"] == sum(r["below_runs"] for r in reg)
    assert g["diverged_at_or_below"] == sum(r["below_diverged"] for r in reg)
    assert g["increased_at_or_below"] == sum(r["below_increased"] for r in reg)
    cells = d["total"]["regularized_cells"]
    assert sum(c["runs_at_or_below"] for c in cells) == g["runs_at_or_below"]
    fam = {f["family"]: f for f in d["families"]}
    assert fam[REGULARIZED]["runs_at_or_below"] == g["runs_at_or_below"]
    # the other families run without penalties
    assert all("penalty" not in r for r in d["results"] if r["family"] != REGULARIZED)
    md = (tmp_path / "verify_quick.md").read_text()
    assert (f"diverged at or below the ridged ceiling: **{g['diverged_at_or_below']}** of "
            f"{g['runs_at_or_below']} runs") in md


def test_verify_only_merge(quick, tmp_path):
    """``--only regularized --merge JSON`` reruns that family and keeps the other families'
    runs of the JSON unchanged."""
    src, _, proc = quick
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, str(ROOT / "bounds" / "verify.py"), "--quick", "--only",
                          "regularized", "--merge", str(src / "verify_quick.json"), "--out",
                          str(tmp_path)], capture_output=True, text=True, env=env, timeout=120,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    old = json.loads((src / "verify_quick.json").read_text())
    new = json.loads((tmp_path / "verify_quick.json").read_text())
    keep = [r for r in old["results"] if r["family"] != REGULARIZED]
    assert [r for r in new["results"] if r["family"] != REGULARIZED] == keep
    assert [r["id"] for r in new["results"]] == [r["id"] for r in old["results"]]
    assert new["meta"]["merged"][-1]["families"] == [REGULARIZED]
    assert new["total"]["problem_x_seed"] == old["total"]["problem_x_seed"]
    assert "--only regularized --merge" in (tmp_path / "verify_quick.md").read_text()


def test_verify_noise_quick():
    """bounds/verify_noise.py --quick: noise at 0.3x, 3x, 30x the rms gradient entry, a
    schedule that asks for far more than the ceiling, "none" and "cd": no guard, no
    divergence, no final loss above the initial one (beyond the frozen runs' fluctuation)."""
    sys.path.insert(0, str(ROOT / "bounds"))
    import verify_noise

    out = verify_noise.main(["--quick"])
    assert out["n"] == 6
    for r in out["runs"]:
        assert r["retries"] == 0 and r["stop_reason"] == "max_epochs"
        assert r["ratio"] <= 1 + TOL["noisy_final"]
