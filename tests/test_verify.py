"""``python bounds/verify.py --quick``: the empirical check of the ceilings, small grid."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
