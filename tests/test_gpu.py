"""GPU backend (CuPy). Skipped at import where CuPy or a CUDA device is missing.

The engine's device backend runs on the CPU with numpy standing in for CuPy in
tests/test_gpu_loop.py; here the real device path is checked against the CPU
solver: same seed, same batch order, same init.
"""
import numpy as np
import pytest

cupy = pytest.importorskip("cupy")
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no device")
except Exception as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"no CUDA device: {exc}", allow_module_level=True)

import scipy.sparse as sp  # noqa: E402

import nmf_sched  # noqa: E402
from nmf_sched.kernels import cpu as kcpu  # noqa: E402
from nmf_sched.kernels import gpu as kgpu  # noqa: E402

from conftest import TOL, planted_dense  # noqa: E402


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cd_kernel_matches_numba(dtype):
    r = np.random.default_rng(0)
    X = r.random((257, 7)).astype(dtype)
    B = r.random((40, 7)).astype(dtype)
    A = (B.T @ B).astype(dtype)
    P = r.random((257, 7)).astype(dtype)
    d = np.diag(A).astype(np.float64)
    ref = kcpu.cd_rows(X.copy(), A, P, 0.7, 1.5, d, None, 0.05, 2.0)
    Xd = cupy.asarray(X)
    kgpu.cd_rows(Xd, cupy.asarray(A), cupy.asarray(P), cupy.asarray(0.7), 1.5, cupy.asarray(d), None, 0.05, 2.0)
    tol = TOL["float32_op"] if dtype == np.float32 else TOL["nojit"]
    np.testing.assert_allclose(Xd.get(), ref, rtol=tol, atol=tol)


def test_cd_kernel_keeps_nan():
    X = cupy.asarray(np.full((3, 2), np.nan, np.float32))
    A = cupy.eye(2, dtype=cupy.float32)
    kgpu.cd_rows(X, A, cupy.zeros((3, 2), cupy.float32), 1.0, 1.0, cupy.ones(2))
    assert bool(cupy.isnan(X).all())


@pytest.mark.parametrize("shuffle", ["rows", "blocks"])
def test_dense_matches_cpu(shuffle):
    V = planted_dense(600, 80, 5, seed=2, dtype=np.float32)
    kw = dict(epochs=5, batch_size=128, seed=0, init="random", tol=0, shuffle=shuffle)
    ref = nmf_sched.fit(V, 5, **kw)
    res = nmf_sched.fit(cupy.asarray(V), 5, **kw)      # the engine's device backend
    assert isinstance(res.W, cupy.ndarray) and isinstance(res.H, cupy.ndarray)
    W, H = res.W.get(), res.H.get()
    # float32 factors after a few epochs: the GEMMs sum in another order on the device
    assert np.abs(W - ref.W).max() <= TOL["float32_fit"] * np.abs(ref.W).max()
    assert np.abs(H - ref.H).max() <= TOL["float32_fit"] * np.abs(ref.H).max()
    assert res.rel_error == pytest.approx(ref.rel_error, rel=TOL["float32"])
    np.testing.assert_allclose(res.trace.column("loss"), ref.trace.column("loss"),
                               rtol=TOL["float32_fit"])
    assert res.stop_reason == ref.stop_reason


def test_sparse_matches_cpu():
    import cupyx.scipy.sparse as csp

    V = planted_dense(500, 60, 4, seed=3)
    V[V < np.quantile(V, 0.6)] = 0
    Vs = sp.csr_matrix(V)
    kw = dict(epochs=4, batch_size=100, seed=1, init="random", tol=0)
    ref = nmf_sched.fit(Vs, 4, **kw)
    res = nmf_sched.fit(csp.csr_matrix(Vs), 4, **kw)
    np.testing.assert_allclose(res.W.get(), ref.W, rtol=TOL["float64_paths"],
                               atol=TOL["float64_paths_abs"])
    np.testing.assert_allclose(res.H.get(), ref.H, rtol=TOL["float64_paths"],
                               atol=TOL["float64_paths_abs"])


def test_guard_and_schedule_every():
    V = planted_dense(400, 50, 4, seed=4, dtype=np.float32)
    kw = dict(epochs=6, batch_size=50, seed=0, init="random", tol=0, schedule=5.0, clip_lr=False,
              schedule_every=3)
    ref = nmf_sched.fit(V, 4, **kw)
    res = nmf_sched.fit(cupy.asarray(V), 4, **kw)
    assert res.stop_reason == ref.stop_reason
    assert np.isfinite(res.rel_error)
    assert res.rel_error == pytest.approx(ref.rel_error, rel=TOL["guard"])


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        nmf_sched.fit(cupy.asarray(-np.ones((5, 4))), 2)


@pytest.mark.parametrize("precondition", ["gram", "lipschitz", "none"])
def test_every_preconditioner_matches_cpu(precondition):
    V = planted_dense(300, 40, 4, seed=5)
    kw = dict(epochs=4, batch_size=64, seed=0, init="random", tol=0, precondition=precondition,
              schedule=1e-3 if precondition == "none" else 0.5)
    ref = nmf_sched.fit(V, 4, **kw)
    res = nmf_sched.fit(cupy.asarray(V), 4, **kw)
    np.testing.assert_allclose(res.W.get(), ref.W, rtol=TOL["float64_paths"],
                               atol=TOL["float64_paths_abs"])
    np.testing.assert_allclose(res.H.get(), ref.H, rtol=TOL["float64_paths"],
                               atol=TOL["float64_paths_abs"])


@pytest.mark.parametrize("schedule", ["hypergradient", "sls"])
def test_extras_schedules_run_on_the_device(schedule):
    V = planted_dense(300, 40, 4, seed=6)
    kw = dict(epochs=4, batch_size=64, seed=0, tol=0, schedule=schedule, schedule_every=2)
    ref = nmf_sched.fit(V, 4, **kw)
    res = nmf_sched.fit(cupy.asarray(V), 4, **kw)
    assert res.stop_reason == ref.stop_reason
    assert res.rel_error == pytest.approx(ref.rel_error, rel=TOL["adaptive"])
