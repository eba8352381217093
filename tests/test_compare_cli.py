"""``nmf-sched compare``: several schedules on one matrix, table, JSON, plot, errors."""
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")  # datasets.digits()

import nmf_sched  # noqa: E402
from nmf_sched import cli, datasets  # noqa: E402
from nmf_sched.commands.compare import results_table, split_schedules  # noqa: E402

from conftest import TOL  # noqa: E402


def test_split_schedules():
    assert split_schedules("auto,greedy,0.5") == ["auto", "greedy", 0.5]
    assert split_schedules("auto,step:lr=1.0,step_size=20,gamma=0.5,rl") == [
        "auto", ("step", {"lr": 1.0, "step_size": 20, "gamma": 0.5}), "rl"]
    for bad in ("", "gamma=0.5,step", "auto,,rl", "auto,gamma=2"):
        with pytest.raises(ValueError, match="--schedules"):
            split_schedules(bad)


def test_compare_runs_each_schedule_like_fit(tmp_path, capsys):
    V = datasets.digits()[:600]
    path = tmp_path / "V.npy"
    np.save(path, V)
    js, png = tmp_path / "out" / "cmp.json", tmp_path / "cmp.png"
    rc = cli.main(["compare", str(path), "--rank", "5", "--epochs", "4",
                   "--schedules", "auto,step:lr=1.0,step_size=2,gamma=0.5,0.3",
                   "--json", str(js), "--plot", str(png), "--seed", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    info = json.loads(js.read_text())
    labels = [r["label"] for r in info["runs"]]
    assert labels == ["auto", "step(lr=1.0, step_size=2, gamma=0.5)", "constant(0.3)"]
    for label in labels:
        assert label in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each row is exactly what nmf_sched.fit gives with the same settings
    ref = nmf_sched.fit(V, 5, schedule=0.3, epochs=4, seed=2, tol=0.0)
    row = info["runs"][2]
    assert row["rel_error"] == pytest.approx(ref.rel_error, rel=TOL["exact"])
    assert info["traces"]["constant(0.3)"]["rel_error"][-1] == pytest.approx(ref.rel_error, rel=TOL["exact"])
    # same seed: the same initial error for every schedule
    starts = {t["rel_error"][0] for t in info["traces"].values()}
    assert len(starts) == 1
    best = min(r["rel_error"] for r in info["runs"])
    for r in info["runs"]:
        if r["epochs_to_1pct"] is not None:
            e = info["traces"][r["label"]]["rel_error"]
            assert e[r["epochs_to_1pct"]] <= 1.01 * best
            assert all(x > 1.01 * best for x in e[:r["epochs_to_1pct"]])


def test_compare_bundled_dataset_and_errors(capsys):
    assert cli.main(["compare", "dataset:digits", "-k", "4", "--epochs", "2", "--schedules",
                     "constant,cosine"]) == 0
    assert "1797x64" in capsys.readouterr().out
    for argv, msg in ((["compare", "dataset:nope", "-k", "3"], "dataset:nope"),
                      (["compare", "dataset:digits", "-k", "3", "--schedules", "auto,auto"], "twice"),
                      (["compare", "dataset:digits", "-k", "3", "--schedules", "nosuch"], "nosuch"),
                      (["compare", "/no/such/file.npy", "-k", "3"], "file.npy")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_results_table_orders_by_error_and_marks_never():
    rows = [dict(label="a", rel_error=0.5, epochs_to_1pct=None, epochs=3, seconds=0.1,
                 stop_reason="max_epochs"),
            dict(label="b", rel_error=0.25, epochs_to_1pct=2, epochs=3, seconds=0.2,
                 stop_reason="tol")]
    lines = results_table(rows).splitlines()
    assert lines[2].startswith("b") and lines[3].startswith("a")
    assert "2.000" in lines[3] and lines[3].split()[3] == "-"
