"""The figure notebooks run headless in quick mode and each writes its PNG.

Every notebook in notebooks/ is executed with nbclient (cwd notebooks/,
``NMF_SCHED_QUICK=1``, ``NMF_SCHED_FIGURES`` pointing into a tmp dir so the
repository stays clean). The kernel is a spec written into a tmp dir that
launches this very interpreter, so the test does not depend on which
``python3`` kernel spec happens to be installed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PNG = b"\x89PNG\r\n\x1a\n"

#: notebook -> modules it needs beyond the notebooks extra (bench_schedules imports the RL
#: environment, so gymnasium; digits/faces need scikit-learn)
NEEDS = {
    "stability_bound": ("sklearn",),
    "rl_vs_step_decay": ("gymnasium",),
    "greedylr_schedules": ("gymnasium", "sklearn"),
    "greedylr_vs_hypergradient": ("gymnasium", "sklearn"),
    "greedylr_dnn": ("torch", "gymnasium", "sklearn"),  # bench_dnn imports the DNN RL env
}


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NEEDS)


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A ``python3`` kernel spec for this interpreter, first on JUPYTER_PATH."""
    base = tmp_path_factory.mktemp("jupyter")
    spec = base / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)", "language": "python"}))
    return base


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(NEEDS))
def test_notebook_runs_quick_and_writes_png(name, kernel_env, tmp_path, monkeypatch):
    for module in NEEDS[name]:
        pytest.importorskip(module)
    figures = tmp_path / "figures"
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_env))
    monkeypatch.setenv("NMF_SCHED_QUICK", "1")
    monkeypatch.setenv("NMF_SCHED_FIGURES", str(figures))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")  # small problems; do not fight over 2 cores
    before = {p: p.stat().st_mtime_ns for p in NOTEBOOKS.rglob("*") if p.is_file()}
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=100,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    png = figures / f"{name}.png"
    assert png.is_file() and png.stat().st_size > 1000, png
    assert png.read_bytes()[:8] == PNG
    after = {p: p.stat().st_mtime_ns for p in NOTEBOOKS.rglob("*") if p.is_file()}
    assert after == before  # the repository's notebooks/ (figures included) is left alone
