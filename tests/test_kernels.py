"""Numba sparse kernels against naive loops, and against their own no-JIT execution."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from nmf_sched.kernels.cpu import csr_rows_matmul, csr_rows_sqnorm, csr_rows_tmatmul

from conftest import TOL
from reference import rows_matmul, rows_tmatmul


def _csr(m, n, density, seed, dtype=np.float64):
    V = sp.random(m, n, density=density, format="csr", random_state=seed, dtype=np.float64)
    V.data = np.abs(V.data)
    return V.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_products_match_reference(rng, dtype):
    D = _csr(40, 30, 0.2, 1, dtype).toarray()
    D[3] = 0  # an empty row
    V = sp.csr_matrix(D)
    rows = np.array([5, 3, 0, 39, 17])
    Ht = rng.random((30, 4)).astype(dtype)
    WB = rng.random((5, 4)).astype(dtype)
    P = csr_rows_matmul(V, rows, Ht)
    Q = csr_rows_tmatmul(V, rows, WB)
    assert P.dtype == dtype and Q.dtype == dtype
    tol = TOL["float32"] if dtype == np.float32 else TOL["float64"]
    np.testing.assert_allclose(P, rows_matmul(V, rows, Ht), rtol=tol, atol=tol)
    np.testing.assert_allclose(Q, rows_tmatmul(V, rows, WB), rtol=tol, atol=tol)
    np.testing.assert_allclose(csr_rows_sqnorm(V), np.asarray(V.multiply(V).sum(axis=1)).ravel(),
                               rtol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_and_sparse_row_norms_are_the_same_bits(dtype):
    """A matrix and its CSR copy: the same ||v_i||^2 to the bit (no fast-math, column order),
    which is what makes dense and sparse fits agree (tests/test_sklearn_nmf.py)."""
    from nmf_sched.kernels.cpu import dense_rows_sqnorm

    D = _csr(60, 45, 0.3, 4, dtype).toarray()
    D[7] = 0
    got = dense_rows_sqnorm(D)
    np.testing.assert_array_equal(got, csr_rows_sqnorm(sp.csr_matrix(D)))
    np.testing.assert_allclose(got, (D.astype(np.float64) ** 2).sum(axis=1), rtol=TOL["float64"])


def test_rows_products_reuse_out_buffer(rng):
    V = _csr(20, 10, 0.3, 2)
    rows = np.arange(20)
    WB = rng.random((20, 3))
    out = np.full((10, 3), 7.0)  # stale values must be overwritten, not accumulated
    csr_rows_tmatmul(V, rows, WB, out=out)
    np.testing.assert_allclose(out, V.T @ WB, rtol=TOL["float64"])


_NOJIT_SCRIPT = r"""
import json, sys
import numpy as np, scipy.sparse as sp
from nmf_sched.kernels.cpu import csr_rows_matmul, csr_rows_tmatmul
V = sp.random(50, 35, density=0.15, format="csr", random_state=3)
r = np.random.default_rng(0)
rows = r.permutation(50)[:17]
Ht = r.random((35, 4)); WB = r.random((17, 4))
print(json.dumps({"P": csr_rows_matmul(V, rows, Ht).tolist(),
                  "Q": csr_rows_tmatmul(V, rows, WB).tolist()}))
"""


def test_kernels_agree_with_nojit_execution():
    """The compiled kernels and the same code run as plain Python agree."""
    outs = []
    for flag in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=flag)
        proc = subprocess.run([sys.executable, "-c", _NOJIT_SCRIPT], env=env, capture_output=True,
                              text=True, timeout=300, check=True)
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for key in ("P", "Q"):
        np.testing.assert_allclose(outs[0][key], outs[1][key], rtol=TOL["nojit"])


@pytest.mark.parametrize("opts", [dict(), dict(noise=True), dict(clip_update=0.05),
                                  dict(max_value=0.6), dict(noise=True, clip_update=0.1, max_value=0.8)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cd_rows_matches_naive_gauss_seidel(opts, dtype):
    from nmf_sched.kernels.cpu import cd_rows
    from reference import cd_rows_naive

    rng = np.random.default_rng(11)
    r, k = 37, 6
    B = rng.random((20, k))
    A = B.T @ B + 0.05 * np.eye(k)   # a Gram (the kernel never assumes symmetry; see below)
    A[0, 1] += 0.5                   # non-symmetric: the row/column roles must be right
    X = rng.random((r, k))
    P = (X @ A) * rng.uniform(0.3, 1.2, (r, k))  # some coordinates move up, some hit 0
    d = np.diag(A).copy()
    noise = rng.standard_normal((r, k)) * 0.3 if opts.get("noise") else None
    kw = dict(clip_update=opts.get("clip_update"), max_value=opts.get("max_value"))
    want = cd_rows_naive(X, A, P, 0.8, 1.7, d, noise, **kw)
    got = X.astype(dtype)
    cd_rows(got, A.astype(dtype), P.astype(dtype), 0.8, 1.7, d,
            None if noise is None else noise.astype(dtype), **kw)
    tol = TOL["exact"] if dtype == np.float64 else TOL["float32_op"] * 2
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert (got >= 0).all() and 0 < np.mean(got == 0) < 0.5  # the projection was active


@pytest.mark.parametrize("pen", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.7), (0.3, 0.7)])
@pytest.mark.parametrize("opts", [dict(), dict(noise=True, clip_update=0.1, max_value=0.8)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cd_rows_penalized_matches_naive_prox_step(pen, opts, dtype):
    """The kernel's L1 (soft-threshold, then project) and L2 (ridge) arguments."""
    from nmf_sched.kernels.cpu import cd_rows
    from reference import cd_rows_naive

    l1, l2 = pen
    rng = np.random.default_rng(5)
    r, k = 41, 5
    B = rng.random((20, k))
    A = B.T @ B + 0.05 * np.eye(k)
    X = rng.random((r, k))
    P = (X @ A) * rng.uniform(0.5, 1.4, (r, k))
    d = np.diag(A) + l2
    noise = rng.standard_normal((r, k)) * 0.3 if opts.get("noise") else None
    kw = dict(clip_update=opts.get("clip_update"), max_value=opts.get("max_value"))
    want = cd_rows_naive(X, A, P, 0.9, 1.3, d, noise, l1=l1, l2=l2, **kw)
    got = X.astype(dtype)
    cd_rows(got, A.astype(dtype), P.astype(dtype), 0.9, 1.3, d,
            None if noise is None else noise.astype(dtype), l1=l1, l2=l2, **kw)
    tol = TOL["float64"] if dtype == np.float64 else TOL["float32"]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert (got >= 0).all() and 0 < np.mean(got == 0) < 0.9  # the projection was active
    # the unpenalized call is the reference kernel's definition, bit for bit
    plain = X.astype(dtype)
    cd_rows(plain, A.astype(dtype), P.astype(dtype), 0.9, 1.3, np.diag(A).copy(),
            None if noise is None else noise.astype(dtype), **kw)
    base = X.astype(dtype)
    cd_rows(base, A.astype(dtype), P.astype(dtype), 0.9, 1.3, np.diag(A).copy(),
            None if noise is None else noise.astype(dtype), l1=0.0, l2=0.0, **kw)
    np.testing.assert_array_equal(plain, base)
    np.testing.assert_allclose(plain, cd_rows_naive(X, A, P, 0.9, 1.3, np.diag(A), noise, **kw),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gather_rows(order, dtype):
    from nmf_sched.kernels.cpu import gather_rows

    rng = np.random.default_rng(2)
    V = np.asarray(rng.random((50, 7)), dtype=dtype, order=order)
    idx = np.sort(rng.permutation(50)[:13])
    out = np.full((13, 7), np.nan, dtype=dtype)
    assert gather_rows(V, idx, out) is out
    np.testing.assert_array_equal(out, V[idx])


# ---------------------------------------------------------------------------
# the noise estimate's passes (kernels/noise.py) against numpy
# ---------------------------------------------------------------------------
def _noise_block(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((60, 7)) * (rng.random((60, 7)) > 0.3)  # some entries at 0
    g = rng.standard_normal((60, 7))
    e = 0.2 + rng.random(7)
    w = 1.0 / (1.0 + rng.random(7))
    return X, g, e, w


def test_gmap_kernel_matches_numpy():
    from nmf_sched.kernels.noise import gmap

    X, g, e, w = _noise_block()
    Gm = (X - np.maximum(X - e * g, 0.0)) / e
    assert gmap(X, g, e, w) == pytest.approx(float((Gm * Gm * w).sum()), rel=TOL["float64"])


def test_curve_parts_kernel_matches_numpy():
    from nmf_sched.kernels.noise import curve_parts

    X, g, e, w = _noise_block(1)
    a0, t, a, b = curve_parts(X, g, e, w)
    with np.errstate(divide="ignore", invalid="ignore"):
        T = X / (e * g)
    pos = g > 0
    mid = pos & (T > 0) & (T < 1)
    assert 0 < mid.sum() < mid.size  # the block has entries of every kind
    assert a0 == pytest.approx(float((w * g * g)[~pos | (T >= 1)].sum()), rel=TOL["float64"])
    np.testing.assert_allclose(t, T[mid], rtol=TOL["float64"])
    np.testing.assert_allclose(a, (w * g * g)[mid], rtol=TOL["float64"])
    np.testing.assert_allclose(b, (w * (X / e) ** 2)[mid], rtol=TOL["float64"])
