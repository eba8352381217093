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


def test_verify_quick(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    pytest.importorskip("skimage")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(ROOT / "bounds" / "verify.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.time() - t0 < 60
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
