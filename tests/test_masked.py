"""Masked NMF: kernels against naive loops, recovery, determinism, modes, bad input."""
import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from nmf_sched.kernels.masked import masked_sse, sgd_entries, sgd_entries_adaptive
from nmf_sched import fit_masked
from nmf_sched.masked import (masked_block_ceilings, masked_ceiling, observed_entries, rmse,
                              split_observed)

from conftest import TOL
from reference import block_order, masked_sgd_epoch


def _problem(m=60, n=40, k=3, frac=0.3, seed=0, noise=0.0):
    r = np.random.default_rng(seed)
    W, H = r.random((m, k)), r.random((k, n))
    V = W @ H
    if noise:
        V = np.maximum(V + noise * V.std() * r.standard_normal(V.shape), 0)
    M = r.random((m, n)) < frac
    M[np.arange(m), r.integers(0, n, m)] = True  # every row observed
    M[r.integers(0, m, n), np.arange(n)] = True  # every column observed
    return V, M


def _entries(seed=1, m=12, n=9, k=3, nnz=50):
    r = np.random.default_rng(seed)
    idx = r.choice(m * n, nnz, replace=False)
    rows, cols = (a.astype(np.int32) for a in np.divmod(idx, n))
    vals = r.random(nnz) * 2
    W, Ht = r.random((m, k)), r.random((n, k))
    return rows, cols, vals, W, Ht, r


@pytest.mark.parametrize("bsize", [1, 7])
def test_sgd_kernel_matches_reference(bsize):
    rows, cols, vals, W, Ht, r = _entries()
    ptr = np.minimum(np.arange(0, len(vals) + bsize, bsize), len(vals))
    blocks = r.permutation(len(ptr) - 1)
    order = block_order(blocks, ptr)
    Wr, Hr = masked_sgd_epoch(rows, cols, vals, order, W, Ht, 0.05, 0.1)
    W2, H2 = W.copy(), Ht.copy()
    sse = sgd_entries(rows, cols, vals, blocks, ptr, W2, H2, 0.05, 0.1)
    np.testing.assert_allclose(W2, Wr, rtol=TOL["float64"], atol=TOL["float64_abs"])
    np.testing.assert_allclose(H2, Hr, rtol=TOL["float64"], atol=TOL["float64_abs"])
    assert sse > 0 and (W2 >= 0).all() and (H2 >= 0).all()


def test_sgd_kernel_projects():
    rows, cols, vals, W, Ht, r = _entries()
    vals[:] = 0.0  # the data pull everything down: projection must bind
    blocks = np.arange(len(vals))
    W2, H2 = W.copy(), Ht.copy()
    sgd_entries(rows, cols, vals, blocks, np.arange(len(vals) + 1), W2, H2, 2.0, 0.0)
    Wr, Hr = masked_sgd_epoch(rows, cols, vals, list(blocks), W, Ht, 2.0, 0.0)
    assert (W2 == 0).any()
    np.testing.assert_allclose(W2, Wr, rtol=TOL["float64"], atol=TOL["float64_abs"])


def test_adaptive_kernel_matches_reference():
    rows, cols, vals, W, Ht, r = _entries(seed=2)
    blocks = r.permutation(len(vals))
    GW, GH = np.ones(W.shape[0]), np.ones(Ht.shape[0])
    Wr, Hr, GWr, GHr = masked_sgd_epoch(rows, cols, vals, list(blocks), W, Ht, 0.1, 0.05, GW, GH)
    W2, H2 = W.copy(), Ht.copy()
    sgd_entries_adaptive(rows, cols, vals, blocks, np.arange(len(vals) + 1), W2, H2, 0.1, 0.05,
                         GW, GH)
    for a, b in ((W2, Wr), (H2, Hr), (GW, GWr), (GH, GHr)):
        np.testing.assert_allclose(a, b, rtol=TOL["float64"], atol=TOL["float64_abs"])


def test_sse_and_rmse():
    rows, cols, vals, W, Ht, _ = _entries()
    P = W @ Ht.T
    want = float(((vals - P[rows, cols]) ** 2).sum())
    assert math.isclose(masked_sse(rows, cols, vals, W, Ht), want, rel_tol=TOL["float64"])
    assert math.isclose(rmse(W, Ht.T, rows, cols, vals), math.sqrt(want / len(vals)),
                        rel_tol=TOL["float64"])


def test_ceiling_matches_entry_curvature():
    r = np.random.default_rng(3)
    W, H, lam = r.random((20, 4)), r.random((4, 15)), 0.3
    LW = max(np.linalg.eigvalsh(np.outer(h, h) + lam * np.eye(4)).max() for h in H.T)
    LH = max(np.linalg.eigvalsh(np.outer(w, w) + lam * np.eye(4)).max() for w in W)
    cW, cH = masked_block_ceilings(W, H, lam)
    assert math.isclose(cW, 2 / LW, rel_tol=TOL["float64"])
    assert math.isclose(cH, 2 / LH, rel_tol=TOL["float64"])
    assert masked_ceiling(W, H, lam) == min(cW, cH)


def test_recovery_beats_mean_predictor():
    V, M = _problem(m=120, n=80, k=4, frac=0.35, noise=0.05)
    res = fit_masked(V, 4, mask=M, seed=0, epochs=60, validation=0.1, lam=0.001)
    rows, cols, vals, _ = observed_entries(V, mask=M)
    trivial = float(np.sqrt(np.mean((vals - vals.mean()) ** 2)))
    assert res.settings["val_rmse"] < 0.35 * trivial
    assert res.W.shape == (120, 4) and res.H.shape == (4, 80)
    assert (res.W >= 0).all() and (res.H >= 0).all()
    tr = res.trace
    assert tr[0]["epoch"] == 0 and tr[-1]["loss"] < tr[0]["loss"]
    assert np.isfinite(tr.column("val_rmse")[1:]).all()
    # the clipped step never exceeds kappa times the ceiling it was taken under
    steps, ceil = tr.column("step_size")[1:], tr.column("ceiling")[:-1]
    assert (steps <= 0.9 * ceil * (1 + TOL["exact"])).all()


def test_unobserved_entries_ignored():
    V, M = _problem()
    V2 = V.copy()
    V2[~M] = 1e3  # garbage at missing positions must not matter
    a = fit_masked(V, 3, mask=M, seed=5, epochs=5, tol=0)
    b = fit_masked(V2, 3, mask=M, seed=5, epochs=5, tol=0)
    np.testing.assert_array_equal(a.W, b.W)


def test_modes_agree_and_determinism():
    V, M = _problem()
    Vn = V.copy()
    Vn[~M] = np.nan
    Vs = sp.csr_array(np.where(M, V, 0.0))
    kw = dict(seed=7, epochs=6, tol=0, validation=0.2)
    a = fit_masked(V, 3, mask=M, **kw)
    b = fit_masked(Vn, 3, missing="nan", **kw)
    c = fit_masked(Vs, 3, missing="unobserved", **kw)
    d = fit_masked(V, 3, mask=sp.csr_array(M), **kw)
    for other in (b, c, d):
        np.testing.assert_array_equal(a.W, other.W)
        np.testing.assert_array_equal(a.H, other.H)
    e = fit_masked(V, 3, mask=M, **{**kw, "seed": 8})
    assert not np.array_equal(a.W, e.W)


def test_dense_without_mode_is_fully_observed():
    V, _ = _problem(m=20, n=10)
    res = fit_masked(V, 2, seed=0, epochs=3)
    assert res.settings["n_observed"] == 200


@pytest.mark.parametrize("schedule", ["greedy", "plateau", ("constant", {"lr": 0.05}), 0.05, "auto"])
def test_schedules_and_validation_watch(schedule):
    V, M = _problem()
    res = fit_masked(V, 3, mask=M, seed=0, epochs=4, schedule=schedule, validation=0.2,
                     schedule_on="validation", tol=0)
    assert res.n_epochs == 4 and np.isfinite(res.trace.column("lr")[1:]).all()


def test_adaptive_option_runs():
    V, M = _problem()
    res = fit_masked(V, 3, mask=M, seed=0, epochs=5, adaptive=True, schedule=0.1, lam=0.04)
    assert res.settings["adaptive"] and res.trace[-1]["loss"] < res.trace[0]["loss"]


def test_guard_recovers_from_huge_lr():
    V, M = _problem()
    res = fit_masked(V, 3, mask=M, seed=0, epochs=4, schedule=50.0, clip_lr=False, tol=0)
    assert res.trace[-1]["retries"] >= 1 and np.isfinite(res.loss)
    res = fit_masked(V, 3, mask=M, seed=0, epochs=4, schedule=50.0, clip_lr=False, guard=False)
    assert res.stop_reason == "diverged"


def test_empty_row_and_column_are_zero_and_reported():
    V, M = _problem()
    M[3] = False
    M[:, 5] = False
    with pytest.warns(UserWarning, match="no observed"):
        res = fit_masked(V, 3, mask=M, seed=0, epochs=3)
    assert list(res.settings["empty_rows"]) == [3] and list(res.settings["empty_cols"]) == [5]
    assert (res.W[3] == 0).all() and (res.H[:, 5] == 0).all()


def test_split_observed():
    rows, cols, vals = np.arange(100), np.arange(100), np.ones(100)
    (tr, va) = split_observed(rows, cols, vals, 0.2, seed=0)
    assert len(va[0]) == 20 and len(tr[0]) == 80
    assert not set(tr[0]) & set(va[0])
    with pytest.raises(ValueError, match="validation fraction"):
        split_observed(rows, cols, vals, 1.5)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(mask=np.ones((3, 3), bool)), ValueError, "mask must have the shape"),
    (dict(mask=np.ones((60, 40))), TypeError, "mask must have dtype bool; got dtype float64"),
    (dict(mask=[[True]]), TypeError, "mask must be a bool numpy array"),
    (dict(mask=sp.csr_array(np.ones((60, 40)))), TypeError, "mask must have dtype bool"),
    (dict(mask=np.zeros((60, 40), bool)), ValueError, "all entries missing"),
    (dict(missing="maybe"), ValueError, "missing must be one of"),
    (dict(missing="unobserved"), ValueError, "missing='unobserved' needs a scipy.sparse V"),
    (dict(mask=np.ones((60, 40), bool), missing="nan"), ValueError, "not both"),
    (dict(missing="nan", epochs=0), ValueError, "epochs must be >= 1, got 0"),
    (dict(missing="nan", lam=-1.0), ValueError, "lam must be"),
    (dict(missing="nan", solver="als"), ValueError, "solver must be one of"),
    (dict(missing="nan", schedule_on="validation"), ValueError, "needs validation="),
    (dict(missing="nan", validation=2.0), ValueError, "validation fraction must be in"),
    (dict(missing="nan", adaptive=1), TypeError, "adaptive must be a bool"),
    (dict(missing="nan", schedule="nope"), ValueError, "unknown schedule"),
])
def test_bad_input(kwargs, exc, match):
    V, _ = _problem()
    with pytest.raises(exc, match=match):
        fit_masked(V, 3, **kwargs)


def test_bad_values():
    V, M = _problem()
    Vn = V.copy()
    Vn[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN value\(s\) and no masked mode.*mask="):
        fit_masked(Vn, 3)
    M2 = M.copy()
    M2[0, 0] = True
    with pytest.raises(ValueError, match="non-finite value nan at an observed"):
        fit_masked(Vn, 3, mask=M2)
    with pytest.raises(ValueError, match="sparse and no masked mode"):
        fit_masked(sp.csr_array(V), 3)
    with pytest.raises(ValueError, match="missing='nan' needs a dense V"):
        fit_masked(sp.csr_array(V), 3, missing="nan")
    Vneg = V.copy()
    Vneg[1, 1] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        fit_masked(Vneg, 3, mask=np.ones(V.shape, bool))
    Vall = np.full((4, 5), np.nan)
    with pytest.raises(ValueError, match="all entries missing"):
        fit_masked(Vall, 2, missing="nan")
    with pytest.raises(TypeError, match="dtype"):
        fit_masked(np.array([["a", "b"]]), 1, missing="nan")


def test_cd_rows_kernel_matches_reference():
    from nmf_sched.kernels.masked import cd_rows_masked
    from reference import masked_cd_rows

    V, M = _problem(m=15, n=11, k=3, frac=0.4)
    M[2] = False  # an empty row stays unchanged
    r = np.random.default_rng(4)
    W, Ht = r.random((15, 3)), r.random((11, 3))
    A = sp.csr_array((V[M], np.nonzero(M)), shape=V.shape)
    for lr in (1.0, 0.5):
        W2 = W.copy()
        cd_rows_masked(A.indptr, A.indices, A.data, W2, Ht, lr, 0.1, 1)
        np.testing.assert_allclose(W2, masked_cd_rows(V, M, W, Ht, lr, 0.1), rtol=TOL["float64"],
                                   atol=TOL["float64_abs"])
        assert (W2[2] == W[2]).all()


def test_rows_solver_recovers():
    V, M = _problem(m=80, n=60, k=3, frac=0.4, noise=0.05)
    res = fit_masked(V, 3, mask=M, seed=0, epochs=40, solver="rows", validation=0.1, lam=0.001)
    _, _, vals, _ = observed_entries(V, mask=M)
    assert res.settings["val_rmse"] < 0.35 * float(vals.std())
    assert res.trace[1]["ceiling"] == 2.0
    with pytest.raises(ValueError, match="adaptive=True"):
        fit_masked(V, 3, mask=M, solver="rows", adaptive=True)


@pytest.mark.parametrize("lam, drop", [(0.0, 0.0), (0.05, 0.01)])
def test_masked_balance_keeps_WH_and_never_raises_the_objective(lam, drop):
    """The masked model's balancing: W H unchanged, the objective (data + per-entry L2 term)
    not higher, and the weighted column norms equal afterwards (the minimizer along the
    scale symmetry)."""
    from nmf_sched.config import MaskedConfig
    from nmf_sched.engine.entries import EntryModel

    r = np.random.default_rng(4)
    m, n, k = 60, 40, 4
    rows, cols = np.nonzero(r.random((m, n)) < 0.3)
    vals = r.random(rows.size)
    model = EntryModel((rows, cols, vals), None, (m, n), k, MaskedConfig(lam=lam), r)
    model.W = r.random((m, k)) * np.array([5.0, 0.1, 1.0, 30.0])   # badly balanced columns
    model.Ht = r.random((n, k)) * np.array([0.2, 8.0, 1.0, 0.01])
    WH = model.W @ model.Ht.T
    before = model.objective()[0]
    model.balance()
    np.testing.assert_allclose(model.W @ model.Ht.T, WH, rtol=TOL["float64"])
    assert model.objective()[0] <= before * (1 + TOL["float64"])
    weights = (model.cnt_r, model.cnt_c) if lam > 0 else (np.ones(m), np.ones(n))
    np.testing.assert_allclose(weights[0] @ model.W ** 2, weights[1] @ model.Ht ** 2,
                               rtol=TOL["float64"])
    # with the L2 term the badly balanced start loses more than 1%; without it, not higher
    assert model.objective()[0] <= before * (1 - drop) * (1 + TOL["float64"])
