"""The one engine: the parity matrix (backend x preconditioner x every registered schedule),
refusals by name, the sharded scheme's reduction to the single-machine fit, checkpoint and
resume (bit-identical, also after SIGKILL), and the import layering."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import nmf_sched
from nmf_sched.config import PRECONDITIONERS, RowConfig
from nmf_sched.engine.backends import DeviceBackend
from nmf_sched.engine.checkpoint import CheckpointError, read_checkpoint
from nmf_sched.engine.shards import solve_sharded
from nmf_sched.engine.solve import solve_rows
from nmf_sched.kernels.cpu import cd_rows
from nmf_sched.schedules import available

from conftest import TOL, planted_dense

ROOT = Path(__file__).resolve().parents[1]

#: kwargs for the schedules that take required ones (the rest run with their defaults)
SCHEDULE_KWARGS = {
    "chain": {"segments": [("constant", 2), (("cosine", {"min_lr": 0.01}), None)]},
    "sequence": {"segments": [(("exp", {"gamma": 0.9}), 2), ("greedy", None)]},
}
PER_ENTRY = ("hypergradient", {"granularity": "parameter"})


def _specs():
    out = [(n, SCHEDULE_KWARGS.get(n, {})) for n in available()]
    return out + [PER_ENTRY, ("hypergradient", {"granularity": "group"})]


def _run(backend, V, precondition, spec, **kw):
    """One cell: returns the FitResult, or raises what the path raises."""
    cfg = RowConfig(epochs=3, batch_size=40, tol=0.0, precondition=precondition,
                    schedule_every=2, **kw)
    if backend == "host":
        return solve_rows(V, 3, schedule=spec, cfg=cfg, seed=1)
    if backend == "numpy-as-device":
        return solve_rows(V, 3, schedule=spec, cfg=cfg, seed=1, backend=DeviceBackend(np, cd_rows))
    return solve_sharded(V, 3, 2, schedule=spec, cfg=cfg, seed=1)


def _refused(backend, precondition, spec) -> str | None:
    """The name of the part that refuses the cell, or None if it must run."""
    if spec == PER_ENTRY:
        if backend == "sharded":
            return "sharded"
        if precondition == "cd":
            return "precondition='cd'"
    return None


@pytest.mark.parametrize("backend", ["host", "numpy-as-device", "sharded"])
@pytest.mark.parametrize("precondition", PRECONDITIONERS)
def test_parity_matrix(backend, precondition):
    V = planted_dense(120, 30, 3, seed=7)
    for name, kw in _specs():
        spec = (name, kw)  # every schedule starts at the ceiling ("bound"): any LR unit works
        calls = []
        refuser = _refused(backend, precondition, (name, kw))
        if refuser is not None:
            with pytest.raises(ValueError) as err:
                _run(backend, V, precondition, spec, callback=lambda *a: calls.append(1))
            msg = str(err.value)
            assert "granularity='parameter'" in msg and refuser in msg, msg
            assert calls == [], "refused only after some work"
            continue
        res = _run(backend, V, precondition, spec)
        assert res.n_epochs == 3, (name, res.stop_reason)
        W, H = np.asarray(res.W), np.asarray(res.H)
        assert np.isfinite(W).all() and np.isfinite(H).all(), name
        assert W.min() >= 0 and H.min() >= 0, name
        assert np.isfinite(res.loss), name


def test_every_registered_schedule_is_in_the_matrix():
    names = {n for n, _ in _specs()}
    assert names >= set(available()) and {"hypergradient", "sls", "rl"} <= names


# ---------------------------------------------------------------------------
# the sharded scheme (the Dask path's math, in this process)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(schedule_every=2), dict(shuffle="blocks"),
                                dict(precondition="gram"), dict(noise_std=0.05),
                                dict(schedule="hypergradient", schedule_every=1)])
def test_one_shard_is_the_single_machine_fit(kw):
    V = planted_dense(300, 40, 4, seed=1)
    schedule = kw.pop("schedule", "auto")
    # the sharded scheme does not enforce the noise-aware ceiling (engine/noise.py)
    cfg = RowConfig(epochs=6, batch_size=64, tol=0.0, noise_ceiling=False, **kw)
    ref = solve_rows(V, 4, schedule=schedule, cfg=cfg, seed=5)
    one = solve_sharded(V, 4, 1, schedule=schedule, cfg=cfg, seed=5)
    np.testing.assert_allclose(one.W, ref.W, rtol=TOL["float64"], atol=0)
    np.testing.assert_allclose(one.H, ref.H, rtol=TOL["float64"], atol=0)
    np.testing.assert_allclose(one.trace.column("loss"), ref.trace.column("loss"),
                               rtol=TOL["float64"])


@pytest.mark.parametrize("p", [2, 4])
def test_shards_reach_the_single_machine_error(p):
    """Within 1.1x the single-machine error after 80 epochs (the shards step at 1/2 of the
    per-block ceilings, THEORY.md 10.4, so they lag early: 1.11x at 40 epochs on this problem)."""
    V = planted_dense(800, 60, 5, noise=0.05, seed=2)
    cfg = RowConfig(epochs=80, tol=0.0, batch_size=100)
    ref = solve_rows(V, 5, schedule="auto", cfg=cfg, seed=0)
    res = solve_sharded(V, 5, p, schedule="auto", cfg=cfg, seed=0)
    assert res.rel_error <= 1.1 * ref.rel_error
    # the exact loss from the shards' products is the loss of the returned factors
    R = V - res.W @ res.H
    assert res.loss == pytest.approx(0.5 * float(np.sum(R * R)), rel=TOL["identity"])


# ---------------------------------------------------------------------------
# checkpoint and resume
# ---------------------------------------------------------------------------
RESUME_CASES = [dict(), dict(schedule_every=1), dict(schedule="hypergradient"),
                dict(schedule=PER_ENTRY, precondition="none"), dict(schedule="sls", schedule_every=2),
                dict(noise_std=0.1), dict(schedule="cosine"), dict(shuffle="blocks", sparse=True)]


@pytest.mark.parametrize("kw", RESUME_CASES, ids=lambda kw: ",".join(f"{k}" for k in kw) or "default")
def test_resume_is_bit_identical(tmp_path, kw):
    kw = dict(kw)
    V = planted_dense(300, 40, 4, seed=1)
    if kw.pop("sparse", False):
        V[V < np.quantile(V, 0.5)] = 0
        V = sp.csr_array(V)
    path = tmp_path / "ck.npz"
    base = dict(seed=2, epochs=9, tol=0, batch_size=64, **kw)
    full = nmf_sched.fit(V, 4, **base)
    # stop after epoch 5 (checkpoints every 2 epochs: the last is epoch 4), then resume
    part = nmf_sched.fit(V, 4, checkpoint=path, checkpoint_every=2,
                         callback=lambda rec, W, H: rec["epoch"] >= 5, **base)
    assert part.stop_reason == "callback" and read_checkpoint(path)["engine"]["epoch"] == 4
    res = nmf_sched.fit(V, 4, resume=path, **base)
    assert np.array_equal(res.W, full.W) and np.array_equal(res.H, full.H)
    for col in ("loss", "lr_W", "step_H", "ceiling_H", "step", "retries"):
        np.testing.assert_array_equal(res.trace.column(col), full.trace.column(col))
    assert _same(res.schedule_state, full.schedule_state)
    assert not [f for f in os.listdir(tmp_path) if f != "ck.npz"], "temporary files left behind"


def _same(a, b) -> bool:
    """Exact equality of two schedule states (numpy arrays compared entry by entry)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b or (a != a and b != b)


def test_masked_resume_is_bit_identical(tmp_path):
    V = planted_dense(200, 60, 4, seed=4)
    mask = np.random.default_rng(0).random(V.shape) < 0.5
    base = dict(mask=mask, seed=1, epochs=8, tol=0, schedule="hypergradient", batch_size=1500,
                schedule_every=2)
    full = nmf_sched.fit_masked(V, 4, **base)
    nmf_sched.fit_masked(V, 4, checkpoint=tmp_path / "m.npz", checkpoint_every=3,
                         callback=lambda rec, W, H: rec["epoch"] >= 4, **base)
    res = nmf_sched.fit_masked(V, 4, resume=tmp_path / "m.npz", **base)
    assert np.array_equal(res.W, full.W) and np.array_equal(res.H, full.H)


def test_checkpoint_of_another_run_is_refused_by_name(tmp_path):
    V = planted_dense(200, 30, 3, seed=3)
    path = tmp_path / "ck.npz"
    nmf_sched.fit(V, 3, seed=0, epochs=2, batch_size=50, checkpoint=path)
    W = V.copy()
    W[7, 3] += 1.0
    cases = [((W, 3), {}, "the matrix"), ((V[:150], 3), {}, "shape"),
             ((V, 4), {}, "rank"), ((V, 3), dict(precondition="none"), "precondition"),
             ((V, 3), dict(batch_size=40), "batch_size"), ((V, 3), dict(kappa=0.5), "kappa"),
             ((V.astype(np.float32), 3), {}, "dtype")]
    for (X, k), kw, word in cases:
        with pytest.raises(CheckpointError, match=word):
            nmf_sched.fit(X, k, seed=0, epochs=5, **{"batch_size": 50, **kw}, resume=path)
    # stop rules may change: more epochs, another tolerance
    res = nmf_sched.fit(V, 3, seed=0, epochs=4, batch_size=50, tol=1e-9, resume=path)
    assert res.n_epochs == 4
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        nmf_sched.fit(V, 3, epochs=2, resume=tmp_path / "missing.npz")
    (tmp_path / "torn.npz").write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read"):
        nmf_sched.fit(V, 3, epochs=2, batch_size=50, resume=tmp_path / "torn.npz")
    with pytest.raises(TypeError, match="checkpoint"):
        nmf_sched.fit(V, 3, checkpoint=12)


_CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    import nmf_sched
    from conftest import planted_dense
    V = planted_dense(600, 50, 5, seed=11)
    kw = dict(seed=3, epochs={epochs}, tol=0, batch_size=64, schedule={schedule!r},
              schedule_every={every!r})
    mode = sys.argv[1]
    if mode == "kill":
        nmf_sched.fit(V, 5, checkpoint={path!r}, checkpoint_every=1,
                      callback=lambda rec, W, H: time.sleep(0.15), **kw)
    else:
        res = nmf_sched.fit(V, 5, resume={path!r} if mode == "resume" else None, **kw)
        np.savez(sys.argv[2], W=res.W, H=res.H, n_epochs=res.n_epochs)
""")


@pytest.mark.parametrize("schedule, every", [("auto", None), ("greedy", 1)],
                         ids=["default", "ticked-every-minibatch"])
def test_resume_after_sigkill_is_bit_identical(tmp_path, schedule, every):
    """Kill a checkpointing fit with SIGKILL, resume it, compare with an uninterrupted fit.

    All three runs are child processes started the same way, so they share BLAS and numba
    thread settings (a parent whose thread pools an earlier test changed would not)."""
    path = tmp_path / "ck.npz"
    epochs = 14
    code = _CHILD.format(tests=str(ROOT / "tests"), epochs=epochs, schedule=schedule, every=every,
                         path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code, "kill"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if path.exists() and read_checkpoint(path)["engine"]["epoch"] >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(path)["engine"]["epoch"]
    assert 4 <= killed_at < epochs
    out = {}
    for mode in ("resume", "full"):
        out[mode] = tmp_path / f"{mode}.npz"
        done = subprocess.run([sys.executable, "-c", code, mode, str(out[mode])],
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
    resumed, full = np.load(out["resume"]), np.load(out["full"])
    assert int(resumed["n_epochs"]) == epochs
    assert np.array_equal(resumed["W"], full["W"]) and np.array_equal(resumed["H"], full["H"])


# ---------------------------------------------------------------------------
# layering
# ---------------------------------------------------------------------------
PUBLIC_FACE = {"api.py", "__init__.py", "estimator.py", "cli.py", "distributed.py"}


def _modules():
    pkg = ROOT / "nmf_sched"
    for path in sorted(pkg.rglob("*.py")):
        yield path, path.relative_to(pkg).as_posix()


def test_no_module_below_the_public_face_imports_api():
    offenders = []
    for path, rel in _modules():
        if rel in PUBLIC_FACE or rel.startswith(("commands/", "torch/")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names]
                if (node.module or "").endswith("api") or "api" in names:
                    offenders.append(rel)
            elif isinstance(node, ast.Import) and any(a.name.endswith(".api") for a in node.names):
                offenders.append(rel)
    assert offenders == []


def test_only_the_engine_builds_a_step_info_for_nmf():
    builders = []
    for path, rel in _modules():
        if rel.startswith("schedules/"):
            continue  # the protocol itself (StepInfo.at_tick serves the tick-only drivers)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "StepInfo":
                builders.append(rel)
    assert builders == ["engine/loop.py"]


def test_estimator_and_cli_checkpoint_and_resume(tmp_path):
    from nmf_sched import SGDNMF, cli

    X = planted_dense(200, 30, 3, seed=8)
    kw = dict(random_state=0, tol=0.0, batch_size=50)
    SGDNMF(3, epochs=4, checkpoint=tmp_path / "est.npz", checkpoint_every=2, **kw).fit(X)
    resumed = SGDNMF(3, epochs=8, **kw).fit(X, resume=tmp_path / "est.npz")
    full = SGDNMF(3, epochs=8, **kw).fit(X)
    np.testing.assert_array_equal(resumed.components_, full.components_)
    assert resumed.fit_result_.trace[-1]["epoch"] == 8
    with pytest.raises(ValueError, match="SGDNMF parameter checkpoint_every"):
        SGDNMF(3, checkpoint_every=0).fit(X)

    np.save(tmp_path / "X.npy", X)
    base = [str(tmp_path / "X.npy"), "-k", "3", "--seed", "0", "--no-progress", "--tol", "0"]
    assert cli.main(["fit", *base, "--epochs", "4", "--checkpoint", str(tmp_path / "c.npz"),
                     "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["fit", *base, "--epochs", "8", "--resume", str(tmp_path / "c.npz"),
                     "--out", str(tmp_path / "b")]) == 0
    assert cli.main(["fit", *base, "--epochs", "8", "--out", str(tmp_path / "c")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "W.npy"), np.load(tmp_path / "c" / "W.npy"))
    # a checkpoint of another rank: one line on stderr, exit code 2
    assert cli.main(["fit", str(tmp_path / "X.npy"), "-k", "4", "--resume",
                     str(tmp_path / "c.npz"), "--out", str(tmp_path / "d")]) == 2
