"""Dask data-parallel fit on a real LocalCluster (2 worker processes, loopback)."""
import math
import os

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import nmf_sched  # noqa: E402
from nmf_sched import distributed as ndist  # noqa: E402

from conftest import planted_dense  # noqa: E402


@pytest.fixture(scope="module")
def client():
    # distributed writes OMP/MKL/OPENBLAS_NUM_THREADS=1 and MALLOC_TRIM_THRESHOLD_ into
    # os.environ of this process (for its workers); restore it for the rest of the session
    saved = dict(os.environ)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       memory_limit="1GiB")
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        os.environ.clear()
        os.environ.update(saved)


def test_matches_single_machine(client):
    # noisy planted problem: both fits reach the noise floor within the budget
    V = planted_dense(m=800, n=40, k=4, noise=0.3, seed=3)
    dV = da.from_array(V, chunks=(200, 40))
    res = ndist.fit(dV, 4, epochs=25, batch_size=200, seed=0, client=client, tol=0)
    ref = nmf_sched.fit(V, 4, epochs=25, batch_size=200, seed=0, tol=0)
    assert res.W.shape == (800, 4) and res.H.shape == (4, 40)
    assert np.all(res.W >= 0) and np.all(res.H >= 0)
    true_err = np.linalg.norm(V - res.W @ res.H) / np.linalg.norm(V)
    assert math.isclose(true_err, res.rel_error, rel_tol=1e-6)  # the free Gram-identity loss
    assert abs(res.rel_error - ref.rel_error) <= 0.10 * ref.rel_error, (res.rel_error, ref.rel_error)
    tr = res.trace
    assert len(tr) == res.n_epochs + 1 and res.stop_reason == "max_epochs"
    assert np.all(np.isfinite(tr.column("ceiling_H")))
    # the cap only lowers the schedule's LR; the first epoch is capped by the ceiling
    assert np.all(tr.column("step_H")[1:] <= tr.column("lr_H")[1:] * (1 + 1e-9))
    assert tr[1]["step_H"] <= 0.9 * 2.0 * (1 + 1e-9)
    assert tr.column("loss")[-1] < tr.column("loss")[0]


def test_schedule_float_and_tol_and_float32(client):
    V = planted_dense(m=400, n=30, k=3, noise=0.3, seed=1, dtype=np.float32)
    dV = da.from_array(V, chunks=(100, 15))  # columns get rechunked into one block
    res = ndist.fit(dV, 3, schedule=0.5, epochs=60, batch_size=400, seed=1, client=client,
                     tol=1e-2, n_iter_no_change=2)
    assert res.stop_reason == "tol"
    assert res.W.dtype == np.float32 and res.H.dtype == np.float32
    assert np.allclose(res.trace.column("lr_H")[1:], 0.5)


def test_bad_arguments(client):
    dV = da.ones((10, 4), chunks=(5, 4))
    with pytest.raises(ValueError, match="precondition"):
        ndist.fit(dV, 2, precondition="gram", client=client)
    with pytest.raises(TypeError, match="dask"):
        ndist.fit(np.ones((10, 4)), 2, client=client)
    with pytest.raises(ValueError, match="non-negative"):
        ndist.fit(-dV, 2, client=client)
    with pytest.raises(TypeError, match="nmf_sched.distributed.fit"):
        nmf_sched.fit(dV, 2)


def test_noise_and_lazy_W(client):
    V = planted_dense(m=300, n=20, k=3, noise=0.3, seed=5)
    dV = da.from_array(V, chunks=(150, 20))
    res = ndist.fit(dV, 3, epochs=4, batch_size=100, seed=2, client=client, tol=0,
                    noise_std=1e-3, return_numpy=False)
    assert isinstance(res.W, da.Array) and res.W.shape == (300, 3)
    W = res.W.compute()
    err = np.linalg.norm(V - W @ res.H) / np.linalg.norm(V)
    assert math.isclose(err, res.rel_error, rel_tol=1e-6)
    again = ndist.fit(dV, 3, epochs=4, batch_size=100, seed=2, client=client, tol=0, noise_std=1e-3)
    np.testing.assert_allclose(again.W, W, rtol=1e-12)  # same seed, same run
