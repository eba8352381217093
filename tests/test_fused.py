"""The fused cd step of the row model against the Python step (the naive reference).

Every test runs both paths from the same state in one process (``fused.set_enabled``) and
compares the factors, the Grams, the epoch accumulators, the ceilings and the returned batch
products. The last test runs the comparison with NUMBA_DISABLE_JIT=1 as well.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import nmf_sched
from nmf_sched.config import RowConfig
from nmf_sched.engine import fused
from nmf_sched.engine.backends import HostBackend
from nmf_sched.engine.control import Diverged, StepControl
from nmf_sched.engine.precond import make_preconditioner
from nmf_sched.engine.rows import RowModel

from conftest import TOL, planted_dense


def _tol(dtype):
    return TOL["float64"] if dtype == np.float64 else TOL["float32"]


def _data(kind, dtype, m=90, n=40, k=5, seed=0):
    V = planted_dense(m, n, k, seed=seed).astype(dtype)
    if kind == "csr":
        V[V < np.quantile(V, 0.6)] = 0  # 40% stored entries
        return sp.csr_matrix(V)
    return V


def _model(V, k, batch, seed=0, precondition="cd", **cfg_kw):
    cfg = RowConfig(batch_size=batch, precondition=precondition, **cfg_kw).resolved(V.shape[0])
    be = HostBackend()
    r = np.random.default_rng(seed)
    dtype = V.dtype
    W = r.random((V.shape[0], k)).astype(dtype)
    Ht = r.random((V.shape[1], k)).astype(dtype)
    pen = cfg.penalty(*V.shape) if cfg.regularized else None
    pre = make_preconditioner(cfg.precondition, be, clip_update=cfg.clip_update,
                              max_value=cfg.max_value, penalty=pen)
    model = RowModel(V, W, Ht, cfg, be, pre, np.random.default_rng(seed))
    model.bind(StepControl(cfg.kappa, cfg.clip_lr), ())
    model.loss_ref = 1e300
    return model


def _copy_state(model):
    return model.W.copy(), model.Ht.copy(), model.G.copy()


def _run_steps(model, units, lr, enabled):
    prev = fused.set_enabled(enabled)
    try:
        acc = model.new_acc()
        outs = [model.step(u, lr, lr, acc) for u in units]
    finally:
        fused.set_enabled(prev)
    return acc, outs


def _compare(V, k, batch, units_of, lr, dtype, **cfg_kw):
    a, b = _model(V, k, batch, **cfg_kw), _model(V, k, batch, **cfg_kw)
    units = units_of(a)
    assert fused.eligible(a, lr, lr)
    acc_f, outs_f = _run_steps(a, units, lr, True)
    acc_p, outs_p = _run_steps(b, units, lr, False)
    tol = _tol(dtype)
    for x, y in ((a.W, b.W), (a.Ht, b.Ht), (a.G, b.G), (acc_f["A"], acc_p["A"])):
        assert x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * max(1.0, float(np.abs(y).max())))
    for key in ("fB", "cW", "cH", "eW", "eH"):
        assert acc_f[key] == pytest.approx(acc_p[key], rel=tol)
    assert acc_f["nB"] == acc_p["nB"] == len(units)
    for (Qf, GBf), (Qp, GBp) in zip(outs_f, outs_p):
        np.testing.assert_allclose(Qf, Qp, rtol=tol, atol=tol * float(np.abs(Qp).max()))
        np.testing.assert_allclose(GBf, GBp, rtol=tol, atol=tol * float(np.abs(GBp).max()))
    # the projection was active: some entries of the factors sit at 0
    assert (a.W == 0).any() or (a.Ht == 0).any()
    return a, b


@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shuffle", ["rows", "blocks", "full"])
def test_fused_step_matches_python_step(kind, dtype, shuffle):
    V = _data(kind, dtype)
    batch = 10**6 if shuffle == "full" else 16  # 90 = 5 x 16 + 10: a short last batch
    sh = "rows" if shuffle == "full" else shuffle
    _compare(V, 5, batch, lambda mdl: mdl.epoch_units(np.random.default_rng(3)) * 2, 1.0, dtype,
             shuffle=sh)


@pytest.mark.parametrize("lr", [0.3, 50.0])
def test_fused_step_ceilings_and_clipped_steps(lr):
    """A large lr is cut to kappa x the ceiling: the same step sizes on both paths."""
    V = _data("dense", np.float64)
    a, _ = _compare(V, 4, 32, lambda mdl: mdl.epoch_units(np.random.default_rng(1)), lr,
                    np.float64)
    assert a.ctl.cap == 1.0  # clip_lr on: the ceiling applies


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_fused_step_applies_the_noise_aware_caps(kind):
    """The noise estimate's statistics and caps (engine/noise.py) on both paths: the same
    batch statistics, and a binding H cap bounds the H ceiling of every step."""
    V = _data(kind, np.float64)
    a, b = _model(V, 5, 16), _model(V, 5, 16)
    for mdl in (a, b):
        assert mdl.nz.active  # row batches: the sampling noise is tracked
        mdl.nz.capH = 1e-3
    units = a.epoch_units(np.random.default_rng(2))
    acc_f, _ = _run_steps(a, units, 50.0, True)
    acc_p, _ = _run_steps(b, units, 50.0, False)
    tol = TOL["float64"]
    np.testing.assert_allclose(a.Ht, b.Ht, rtol=tol, atol=tol * float(np.abs(b.Ht).max()))
    assert acc_f["cH"] == acc_p["cH"] == pytest.approx(1e-3, rel=tol)
    assert acc_f["nz_obs"] == acc_p["nz_obs"] > 0
    assert acc_f["nz_rows"] == acc_p["nz_rows"]
    assert float(acc_f["nz_spread"]) == pytest.approx(float(acc_p["nz_spread"]), rel=tol)
    assert float(acc_p["nz_spread"]) > 0


@pytest.mark.parametrize("kb", [1, 3, 4, 32])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blocked_sweep_matches_naive_gauss_seidel(kb, dtype):
    from reference import cd_rows_naive

    rng = np.random.default_rng(4)
    r, k = 45, 10
    B = rng.random((30, k))
    A = B.T @ B + 0.05 * np.eye(k)
    A[0, 5] += 0.4  # non-symmetric: the row/column roles must be right
    X = rng.random((r, k))
    P = (X @ A) * rng.uniform(0.3, 1.2, (r, k))
    d = np.diag(A).copy()
    want = cd_rows_naive(X, A, P, 0.8, 1.7, d)
    got = X.astype(dtype)
    lrbuf = np.array([0.8, 1.7, np.inf, 0.0], dtype=dtype)
    fused.blocked_sweep(got, A.astype(dtype), P.astype(dtype), lrbuf, d.astype(dtype), kb)
    tol = _tol(dtype)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert 0 < np.mean(got == 0) < 0.9  # the projection was active


@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_blocked_step_matches_python_step(kind, dtype):
    V = _data(kind, dtype, k=8)
    fused.set_block(3)
    try:
        _compare(V, 8, 16, lambda mdl: mdl.epoch_units(np.random.default_rng(3)) * 2, 1.0, dtype)
    finally:
        fused.set_block(None)


@pytest.mark.parametrize("threads", [2, 3])
def test_fused_threads_give_the_same_bits(threads):
    V = _data("dense", np.float64, m=200, n=60)
    out = []
    for t in (1, threads):
        fused.set_threads(t)
        try:
            mdl = _model(V, 6, 64)
            _run_steps(mdl, mdl.epoch_units(np.random.default_rng(2)), 1.0, True)
        finally:
            fused.set_threads(None)
        out.append(_copy_state(mdl))
    for x, y in zip(*out):
        np.testing.assert_array_equal(x, y)


def test_fused_divergence_changes_nothing():
    V = _data("dense", np.float64)
    mdl = _model(V, 5, 16)
    mdl.loss_ref = 1e-9  # every batch loss "explodes"
    before = _copy_state(mdl)
    unit = mdl.epoch_units(np.random.default_rng(0))[0]
    acc = mdl.new_acc()
    with pytest.raises(Diverged, match="batch loss"):
        mdl.step(unit, 1.0, 1.0, acc)
    for x, y in zip(before, _copy_state(mdl)):
        np.testing.assert_array_equal(x, y)
    assert acc["nB"] == 0 and acc["fB"] == 0.0


@pytest.mark.parametrize("kw", [dict(alpha_W=0.1), dict(noise_std=0.1), dict(clip_update=0.1),
                                dict(max_value=2.0), dict(precondition="gram")])
def test_fused_falls_back_where_not_exact(kw):
    V = _data("dense", np.float64)
    mdl = _model(V, 5, 16, **kw)
    assert not fused.eligible(mdl, 1.0, 1.0)
    assert fused.fused_step(mdl, mdl.epoch_units(np.random.default_rng(0))[0], 1.0, 1.0,
                            mdl.new_acc()) is None


@pytest.mark.parametrize("layout", ["fortran", "memmap"])
@pytest.mark.parametrize("shuffle", ["rows", "blocks"])
def test_fused_step_on_fortran_and_memmap_data(tmp_path, layout, shuffle):
    V = np.asfortranarray(_data("dense", np.float64))
    if layout == "memmap":
        mm = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float64,
                                       shape=V.shape)
        mm[:] = V
        mm.flush()
        V = np.load(tmp_path / "v.npy", mmap_mode="r")
    _compare(V, 5, 16, lambda mdl: mdl.epoch_units(np.random.default_rng(3)), 1.0, np.float64,
             shuffle=shuffle)


def test_fused_falls_back_for_mixed_dtypes():
    mdl = _model(_data("dense", np.float64), 5, 16)
    mdl.W, mdl.Ht = mdl.W.astype(np.float32), mdl.Ht.astype(np.float32)
    assert not fused.eligible(mdl, 1.0, 1.0)


def test_fused_fit_matches_python_fit():
    """Whole fits (the engine, the guard, balancing): the same trace on both paths."""
    V = _data("dense", np.float64, m=150, n=50)
    res = []
    for flag in (True, False):
        prev = fused.set_enabled(flag)
        try:
            res.append(nmf_sched.fit(V, 5, seed=1, epochs=4, batch_size=32, tol=0, init="random",
                                     schedule=0.8))
        finally:
            fused.set_enabled(prev)
    for col in ("loss", "ceiling_W", "ceiling_H", "step_W", "step_H"):
        np.testing.assert_allclose(res[0].trace.column(col), res[1].trace.column(col),
                                   rtol=TOL["float64_paths"])
    np.testing.assert_allclose(res[0].W, res[1].W, rtol=TOL["float64_paths"],
                               atol=TOL["float64_paths_abs"])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="threads"):
        fused.set_threads(bad)


@pytest.mark.parametrize("bad", [-1, 2.0, True, "8"])
def test_set_block_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="kb"):
        fused.set_block(bad)


def test_set_enabled_rejects_non_bool():
    with pytest.raises(TypeError, match="flag"):
        fused.set_enabled(1)


_NOJIT_SCRIPT = r"""
import json, numpy as np, scipy.sparse as sp, nmf_sched
r = np.random.default_rng(0)
V = r.random((70, 30)) @ r.random((30, 25))
V[V < np.quantile(V, 0.5)] = 0
out = {}
for name, X in (("dense", V), ("csr", sp.csr_matrix(V))):
    res = nmf_sched.fit(X, 4, seed=0, epochs=3, batch_size=16, tol=0, init="random", schedule=0.9)
    out[name] = {"W": res.W.tolist(), "H": res.H.tolist(), "loss": list(res.trace.column("loss"))}
print(json.dumps(out))
"""


def test_fused_fit_agrees_with_nojit_execution():
    """The compiled fused kernels and the same code run as plain Python."""
    outs = []
    for flag in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=flag, NMF_SCHED_FUSED="1")
        proc = subprocess.run([sys.executable, "-c", _NOJIT_SCRIPT], env=env, capture_output=True,
                              text=True, timeout=300, check=True)
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for kind in ("dense", "csr"):
        for key in ("W", "H", "loss"):
            np.testing.assert_allclose(outs[0][kind][key], outs[1][kind][key],
                                       rtol=TOL["float64_paths"], atol=TOL["float64_paths_abs"])
    assert math.isfinite(outs[0]["dense"]["loss"][-1])
