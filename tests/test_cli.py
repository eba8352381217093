"""The nmf-sched command line: fit on real files of every format, errors, demo, discovery."""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

pytest.importorskip("sklearn")  # datasets.digits()

from nmf_sched import cli, datasets  # noqa: E402
from nmf_sched.commands.fit import parse_schedule  # noqa: E402


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    """scikit-learn digits written as .npy, .csv (with a header), sparse .npz and .mtx."""
    d = tmp_path_factory.mktemp("data")
    V = datasets.digits()
    np.save(d / "digits.npy", V)
    np.savetxt(d / "digits.csv", V, delimiter=",", fmt="%g",
               header=",".join(f"px{i}" for i in range(V.shape[1])), comments="")
    sp.save_npz(d / "digits.npz", sp.csr_matrix(V))
    scipy.io.mmwrite(str(d / "digits.mtx"), sp.coo_matrix(V))
    return d, V


def _fit_args(path, out, *extra):
    return ["fit", str(path), "--rank", "6", "--epochs", "4", "--seed", "0", "--out", str(out),
            "--no-progress", *extra]


def _check_outputs(out, shape, rank):
    W, H = np.load(out / "W.npy"), np.load(out / "H.npy")
    assert W.shape == (shape[0], rank) and H.shape == (rank, shape[1])
    assert (W >= 0).all() and (H >= 0).all()
    assert np.isfinite(W).all() and np.isfinite(H).all()
    trace = json.loads((out / "trace.json").read_text())
    assert {"epoch", "loss", "rel_error", "lr_H", "ceiling_H"} <= set(trace)
    info = json.loads((out / "result.json").read_text())
    assert info["stop_reason"] in ("max_epochs", "tol", "max_time", "callback", "diverged")
    assert info["shape"] == list(shape)
    return info


@pytest.mark.parametrize("fmt, kind", [("npy", "dense"), ("csv", "dense"), ("npz", "sparse"),
                                       ("mtx", "sparse")])
def test_fit_every_file_format(digits_files, tmp_path, capsys, fmt, kind):
    d, V = digits_files
    out = tmp_path / "out"
    assert cli.main(_fit_args(d / f"digits.{fmt}", out)) == 0
    info = _check_outputs(out, V.shape, 6)
    assert info["format"] == kind
    stdout = capsys.readouterr().out.strip().splitlines()
    assert len(stdout) == 1 and "rel_error" in stdout[0] and f"1797x64 {kind}" in stdout[0]


def test_fit_same_seed_same_factors_across_formats(digits_files, tmp_path):
    d, _ = digits_files
    Ws = []
    for fmt in ("npy", "csv"):
        out = tmp_path / fmt
        assert cli.main(_fit_args(d / f"digits.{fmt}", out)) == 0
        Ws.append(np.load(out / "W.npy"))
    np.testing.assert_array_equal(Ws[0], Ws[1])


def test_fit_with_schedule_spec_plot_and_progress_bar(digits_files, tmp_path, capsys):
    d, V = digits_files
    out, png = tmp_path / "o", tmp_path / "fit.png"
    args = ["fit", str(d / "digits.npy"), "-k", "5", "--epochs", "3", "--seed", "1",
            "--schedule", "step:lr=1.0,step_size=1,gamma=0.5", "--batch-size", "300",
            "--out", str(out), "--plot", str(png)]
    assert cli.main(args) == 0
    _check_outputs(out, V.shape, 5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    err = capsys.readouterr().err
    assert "nmf-sched" in err and "epoch" in err  # the tqdm bar


def test_fit_as_a_subprocess(digits_files, tmp_path):
    d, V = digits_files
    out = tmp_path / "sub"
    proc = subprocess.run([sys.executable, "-m", "nmf_sched.cli", *_fit_args(d / "digits.npz", out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    _check_outputs(out, V.shape, 6)
    assert "rel_error" in proc.stdout


def test_fit_default_out_dir_is_nmf_out(digits_files, tmp_path, monkeypatch):
    d, V = digits_files
    monkeypatch.chdir(tmp_path)
    assert cli.main(["fit", str(d / "digits.npy"), "--rank", "3", "--epochs", "2",
                     "--no-progress"]) == 0
    _check_outputs(tmp_path / "nmf_out", V.shape, 3)


def _bad_files(tmp_path):
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"this is not a numpy file")
    neg = tmp_path / "negative.csv"
    neg.write_text("1,2,3\n4,-5,6\n")
    txt = tmp_path / "matrix.txt"
    txt.write_text("1 2\n3 4\n")
    return {"missing": tmp_path / "nope.npy", "garbage": garbage, "negative": neg,
            "extension": txt}


@pytest.mark.parametrize("case", ["missing", "garbage", "negative", "extension", "rank0",
                                  "rank_text", "no_rank", "epochs0", "schedule", "unknown_cmd"])
def test_errors_are_one_line_exit_2_no_traceback(digits_files, tmp_path, capsys, case):
    d, _ = digits_files
    files = _bad_files(tmp_path)
    npy = str(d / "digits.npy")
    out = str(tmp_path / "o")
    argv = {
        "rank0": ["fit", npy, "--rank", "0", "--out", out],
        "rank_text": ["fit", npy, "--rank", "abc", "--out", out],
        "no_rank": ["fit", npy, "--out", out],
        "epochs0": ["fit", npy, "--rank", "2", "--epochs", "0", "--out", out],
        "schedule": ["fit", npy, "--rank", "2", "--schedule", "no-such-schedule", "--out", out],
        "unknown_cmd": ["frobnicate"],
    }.get(case) or ["fit", str(files.get(case)), "--rank", "2", "--out", out]
    assert cli.main(argv + ["--no-progress"] if argv[0] == "fit" else argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("nmf-sched: error: ")
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "o" / "W.npy").exists()


def test_error_exit_2_as_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nmf_sched.cli", "fit", str(tmp_path / "x.npy"),
                           "--rank", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("nmf-sched: error: ") and "Traceback" not in proc.stderr


def test_help_and_version(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "demo" in out
    assert cli.main(["fit", "--help"]) == 0
    assert "--rank" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert cli.main([]) == 2


def test_commands_are_discovered_and_missing_ones_skipped(monkeypatch, capsys):
    mod = types.ModuleType("nmf_sched.commands.hello_world")
    mod.add_parser = lambda sub: sub.add_parser("hello-world", help="say hello")
    mod.run = lambda args: print("hello") or 0
    monkeypatch.setitem(sys.modules, "nmf_sched.commands.hello_world", mod)
    monkeypatch.setattr(cli, "COMMANDS", ("fit", "hello-world", "not-written-yet"))
    assert cli.main(["hello-world"]) == 0
    assert capsys.readouterr().out.strip() == "hello"
    assert cli.main(["not-written-yet"]) == 2


def test_parse_schedule():
    assert parse_schedule("auto") == "auto"
    assert parse_schedule("0.5") == 0.5
    assert parse_schedule("step:lr=1.0,step_size=50,gamma=0.5") == (
        "step", {"lr": 1.0, "step_size": 50, "gamma": 0.5})
    assert parse_schedule("greedy:lr=bound") == ("greedy", {"lr": "bound"})
    with pytest.raises(ValueError, match="schedule"):
        parse_schedule("step:lr")


def test_demo_gram_unit_note(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--epochs", "2", "--precondition", "gram"]) == 0
    assert "Gram-preconditioned unit" in capsys.readouterr().out
    assert json.loads((tmp_path / "demo.json").read_text())["precondition"] == "gram"


def test_demo_small_epochs_writes_png_and_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--epochs", "3"]) == 0
    stdout = capsys.readouterr().out
    for name in ("greedy", "step", "constant", "auto"):
        assert any(line.startswith(name) for line in stdout.splitlines()), stdout
    assert "LRs are in the" in stdout and "rel_error" in stdout
    # the JIT compile is done, and reported, before the first schedule is timed
    lines = stdout.splitlines()
    warm = [i for i, line in enumerate(lines) if line.startswith("JIT warm-up")]
    first = min(i for i, line in enumerate(lines) if line.startswith("greedy"))
    assert len(warm) == 1 and warm[0] < first
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((out / "demo.json").read_text())
    assert set(info["runs"]) == {"greedy", "step", "constant", "auto"}
    assert info["shape"] == [1797, 64] and info["epochs"] == 3
    for run in info["runs"].values():
        assert 1 <= run["epochs"] <= 3 and len(run["trace"]["epoch"]) == run["epochs"] + 1


def test_console_script_when_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "nmf-sched")
    if not os.path.exists(exe):
        pytest.skip("the nmf-sched console script is not installed next to this python")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "demo" in proc.stdout


@pytest.mark.parametrize("kind", ["dense64", "dense32", "csr"])
def test_warm_up_compiles_on_a_slice_of_the_same_kind(kind):
    from nmf_sched.commands import warm_up

    V = np.random.default_rng(0).random((300, 40))
    V = {"dense64": V, "dense32": V.astype(np.float32), "csr": sp.csr_matrix(V * (V > 0.7))}[kind]
    from nmf_sched.kernels import cpu as kcpu

    seconds = warm_up(V, 12, seed=0, init="nndsvda", precondition="cd", batch_size=100)
    assert isinstance(seconds, float) and seconds >= 0.0
    # the kernels of this dtype (and of CSR rows) are compiled now: the timed fits reuse them
    dt = "float32" if kind == "dense32" else "float64"
    from nmf_sched.kernels import fused as kfused

    # the sweep: the fused step's compiled W step (cd, no penalties) or the plain kernel
    sweeps = list(kfused.cd_step_W.signatures) + list(kcpu._cd_rows.signatures)
    assert any(f"Array({dt}, 2" in str(sig) for sig in sweeps)
    kernel = kcpu._rows_matmul if kind == "csr" else kcpu._gather_rows
    assert any(f"Array({dt}" in str(sig) for sig in kernel.signatures)
