"""The Dask path of the one engine on a real LocalCluster (2 worker processes, loopback)."""
import math
import os
import signal
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import nmf_sched  # noqa: E402
from nmf_sched import distributed as ndist  # noqa: E402
from nmf_sched.engine import loop  # noqa: E402
from nmf_sched.engine.dask import WorkerLostError  # noqa: E402

from conftest import TOL, planted_dense  # noqa: E402


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


def _kill_one_worker(client):
    addr = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(os.getpid, workers=[addr])[addr]
    os.kill(pid, signal.SIGKILL)


def test_one_block_equals_the_single_machine_fit(client):
    V = planted_dense(m=400, n=40, k=4, noise=0.2, seed=3)
    kw = dict(epochs=12, batch_size=64, seed=0, tol=0)
    res = nmf_sched.fit(da.from_array(V, chunks=(400, 40)), 4, client=client, **kw)
    ref = nmf_sched.fit(V, 4, **kw)
    assert res.settings["n_shards"] == 1 and res.settings["backend"] == "dask"
    np.testing.assert_allclose(res.W, ref.W, rtol=TOL["float64"], atol=0)
    np.testing.assert_allclose(res.H, ref.H, rtol=TOL["float64"], atol=0)
    np.testing.assert_allclose(res.trace.column("loss"), ref.trace.column("loss"),
                               rtol=TOL["float64"])


def test_the_shards_do_not_depend_on_where_dask_put_the_blocks(client):
    """The shards depend on the blocks and the worker count only (contiguous, balanced), never
    on where Dask placed the blocks: a seed gives the same factors run after run."""
    V = planted_dense(m=400, n=30, k=3, noise=0.2, seed=8)
    dV = da.from_array(V, chunks=(50, 30))
    runs = [nmf_sched.fit(dV, 3, epochs=6, batch_size=50, tol=0, seed=2, client=client)
            for _ in range(3)]
    for res in runs:
        assert res.settings["n_shards"] == 2 and res.settings["shard_rows"] == [200, 200]
        assert np.array_equal(res.W, runs[0].W) and np.array_equal(res.H, runs[0].H)


def test_blocks_on_two_workers_match_the_single_machine_error(client):
    V = planted_dense(m=1600, n=40, k=4, noise=0.3, seed=3)
    seen = []
    res = ndist.fit(da.from_array(V, chunks=(200, 40)), 4, epochs=25, batch_size=200, seed=0,
                    client=client, tol=0, callback=lambda rec, W, H: seen.append(W.shape))
    ref = nmf_sched.fit(V, 4, epochs=25, batch_size=200, seed=0, tol=0)
    assert res.settings["n_shards"] == 2 and sum(res.settings["shard_rows"]) == 1600
    assert np.all(res.W >= 0) and np.all(res.H >= 0)
    true_err = np.linalg.norm(V - res.W @ res.H) / np.linalg.norm(V)
    assert math.isclose(true_err, res.rel_error, rel_tol=TOL["identity"])  # free Gram-identity loss
    assert res.rel_error <= 1.1 * ref.rel_error, (res.rel_error, ref.rel_error)
    assert seen == [(1600, 4)] * 25  # the callback gets the real W
    tr = res.trace
    assert len(tr) == res.n_epochs + 1 and res.stop_reason == "max_epochs"
    assert np.all(np.isfinite(tr.column("ceiling_H")))
    assert tr.column("loss")[-1] < tr.column("loss")[0]


def test_every_step_runs_at_kappa_times_its_ceiling_when_the_schedule_asks_for_more(client):
    V = planted_dense(m=800, n=40, k=4, noise=0.3, seed=3)
    res = nmf_sched.fit(da.from_array(V, chunks=(200, 40)), 4, schedule=1e6, kappa=0.7,
                        epochs=4, batch_size=200, seed=0, tol=0, client=client)
    tr = list(res.trace)[1:]
    for row in tr:
        # the W ceiling is the same at every step (the minibatch factor): the mean step is it
        assert row["step_W"] == pytest.approx(0.7 * row["ceiling_W"], rel=TOL["float64"])
        # the H ceiling moves: the mean step lies between kappa x the smallest and the LR
        assert 0.7 * row["ceiling_H"] * (1 - TOL["float64"]) <= row["step_H"] < row["lr_H"]


#: kwargs for the schedules that require some (the rest run with their defaults)
SCHEDULE_KWARGS = {
    "chain": {"segments": [("constant", 2), (("cosine", {"min_lr": 0.01}), None)]},
    "sequence": {"segments": [(("exp", {"gamma": 0.9}), 2), ("greedy", None)]},
}


@pytest.mark.parametrize("precondition", ["cd", "gram", "lipschitz", "none"])
def test_parity_on_dask(client, precondition):
    """Every registered schedule (hypergradient, SLS and RL included) x this preconditioner on
    two Dask workers: finite, non-negative factors; the per-entry LR is refused up front."""
    V = planted_dense(m=300, n=20, k=3, noise=0.3, seed=5)
    dV = da.from_array(V, chunks=(75, 20))
    names = nmf_sched.available_schedules()
    assert {"hypergradient", "sls", "rl", "chain", "sequence"} <= set(names)
    for name in names:
        spec = (name, SCHEDULE_KWARGS[name]) if name in SCHEDULE_KWARGS else name
        res = nmf_sched.fit(dV, 3, schedule=spec, epochs=3, batch_size=60, seed=1, tol=0,
                            precondition=precondition, schedule_every=2, client=client)
        assert res.n_epochs == 3 and res.settings["n_shards"] == 2, name
        assert np.isfinite(res.W).all() and np.isfinite(res.H).all(), name
        assert res.W.min() >= 0 and res.H.min() >= 0, name
    with pytest.raises(ValueError, match=r"granularity='parameter'.*dask"):
        nmf_sched.fit(dV, 3, schedule=("hypergradient", {"granularity": "parameter"}),
                      precondition=precondition, client=client)


def test_schedule_float_and_tol_and_float32(client):
    V = planted_dense(m=400, n=30, k=3, noise=0.3, seed=1, dtype=np.float32)
    dV = da.from_array(V, chunks=(100, 15))  # columns get rechunked into one block
    res = ndist.fit(dV, 3, schedule=0.5, epochs=60, batch_size=400, seed=1, client=client,
                    tol=1e-2, n_iter_no_change=2)
    assert res.stop_reason == "tol"
    assert res.W.dtype == np.float32 and res.H.dtype == np.float32
    np.testing.assert_allclose(res.trace.column("lr_H")[1:], 0.5, rtol=TOL["float64"])


def test_bad_arguments(client):
    dV = da.ones((10, 4), chunks=(5, 4))
    with pytest.raises(TypeError, match="dask"):
        ndist.fit(np.ones((10, 4)), 2, client=client)
    with pytest.raises(ValueError, match="non-negative"):
        nmf_sched.fit(-dV, 2, client=client)
    with pytest.raises(TypeError, match="bogus"):
        ndist.fit(dV, 2, client=client, bogus=1)
    with pytest.raises(ValueError, match="precondition"):
        ndist.fit(dV, 2, client=client, precondition="newton")
    with pytest.raises(ValueError, match="client"):
        nmf_sched.fit(np.ones((10, 4)), 2, client=client)


def test_checkpoint_and_resume_on_dask(client, tmp_path):
    V = planted_dense(m=600, n=30, k=3, noise=0.3, seed=6)
    dV = da.from_array(V, chunks=(150, 30))
    kw = dict(epochs=10, batch_size=100, seed=4, tol=0, client=client)
    full = nmf_sched.fit(dV, 3, **kw)
    path = tmp_path / "dask.npz"
    nmf_sched.fit(dV, 3, checkpoint=path, checkpoint_every=2,
                  callback=lambda rec, W, H: rec["epoch"] >= 5, **kw)
    res = nmf_sched.fit(dV, 3, resume=path, **kw)
    assert res.n_epochs == 10
    np.testing.assert_allclose(res.W, full.W, rtol=TOL["float64"], atol=0)
    np.testing.assert_allclose(res.H, full.H, rtol=TOL["float64"], atol=0)


def test_lazy_W(client):
    V = planted_dense(m=300, n=20, k=3, noise=0.3, seed=5)
    dV = da.from_array(V, chunks=(150, 20))
    res = ndist.fit(dV, 3, epochs=4, batch_size=100, seed=2, client=client, tol=0,
                    return_numpy=False)
    assert isinstance(res.W, da.Array) and res.W.shape == (300, 3)
    W = res.W.compute()
    assert math.isclose(np.linalg.norm(V - W @ res.H) / np.linalg.norm(V), res.rel_error,
                        rel_tol=TOL["identity"])


def _killer(client, epoch, killed):
    """A fit callback that SIGKILLs one worker once, after ``epoch``."""
    def callback(rec, W, H):
        if rec["epoch"] == epoch and not killed:
            killed.append(True)
            _kill_one_worker(client)
            time.sleep(0.5)
        return False
    return callback


def test_a_killed_worker_is_recovered_from_the_last_checkpoint(client, tmp_path):
    V = planted_dense(m=800, n=40, k=4, noise=0.3, seed=3)
    dV = da.from_array(V, chunks=(200, 40))
    killed = []
    res = nmf_sched.fit(dV, 4, epochs=12, batch_size=200, seed=0, tol=0, client=client,
                        callback=_killer(client, 5, killed), checkpoint=tmp_path / "k.npz",
                        checkpoint_every=2)
    client.wait_for_workers(2, timeout=60)
    assert killed and res.settings["recoveries"] == 1
    assert res.n_epochs == 12 and res.stop_reason == "max_epochs"
    # the trace restarts from the recovery point (epoch 4): one row per epoch in the end
    assert [r["epoch"] for r in res.trace] == list(range(13))
    assert np.isfinite(res.W).all() and res.rel_error < res.trace[0]["rel_error"]


def test_a_lost_worker_without_recovery_stops_with_the_last_good_factors(client, monkeypatch):
    monkeypatch.setattr(loop, "MAX_RECOVERIES", 0)
    V = planted_dense(m=800, n=40, k=4, noise=0.3, seed=3)
    dV = da.from_array(V, chunks=(200, 40))
    killed = []
    with pytest.raises(WorkerLostError, match="last good factors") as err:
        nmf_sched.fit(dV, 4, epochs=12, batch_size=200, seed=0, tol=0, client=client,
                      callback=_killer(client, 3, killed))
    client.wait_for_workers(2, timeout=60)
    last = err.value.result
    assert last is not None and last.n_epochs == 0  # the recovery point at the init
    assert last.W.shape == (800, 4) and np.isfinite(last.W).all()
    assert last.loss == pytest.approx(0.5 * np.linalg.norm(V - last.W @ last.H) ** 2,
                                      rel=TOL["identity"])
