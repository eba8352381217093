"""The engine's device code path, run with numpy standing in for CuPy and the CPU coordinate
kernel standing in for the CUDA one, against the host backend.

tests/test_gpu.py needs a GPU and skips elsewhere; this keeps the device path's bookkeeping
(batches uploaded per epoch, ceilings and step sizes as 0-d device arrays, accumulators,
the deferred divergence check, one fetch per tick) checked on every CI run.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from nmf_sched.config import RowConfig
from nmf_sched.engine.backends import DeviceBackend
from nmf_sched.engine.solve import solve_rows
from nmf_sched.kernels.cpu import cd_rows

from conftest import TOL, planted_dense


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("precondition", ["cd", "gram", "lipschitz", "none"])
@pytest.mark.parametrize("kw", [dict(), dict(shuffle="blocks"), dict(schedule_every=2),
                                dict(batch_size=1000), dict(clip_lr=False)])
def test_device_path_matches_host(dtype, sparse, precondition, kw):
    V = planted_dense(300, 40, 4, seed=1, dtype=dtype)
    if sparse:
        V[V < np.quantile(V, 0.5)] = 0
        V = sp.csr_array(V)
    cfg = RowConfig(epochs=8, tol=0.0, precondition=precondition,
                    **{"batch_size": 64, **kw})
    schedule = 1e-3 if precondition == "none" else "auto"
    host = solve_rows(V, 4, schedule=schedule, cfg=cfg, seed=5)
    dev = solve_rows(V, 4, schedule=schedule, cfg=cfg, seed=5, backend=DeviceBackend(np, cd_rows))
    rtol = TOL["float32"] if dtype == np.float32 else TOL["float64_paths"]
    np.testing.assert_allclose(dev.W, host.W, rtol=rtol, atol=rtol * np.abs(host.W).max())
    np.testing.assert_allclose(dev.H, host.H, rtol=rtol, atol=rtol * np.abs(host.H).max())
    np.testing.assert_allclose(dev.trace.column("loss"), host.trace.column("loss"), rtol=rtol)
    assert dev.stop_reason == host.stop_reason
    assert dev.settings["backend"] == "numpy-as-device" and host.settings["backend"] == "numpy"


def test_device_path_guard_restores_and_damps():
    V = planted_dense(300, 40, 4, seed=2)
    cfg = RowConfig(epochs=6, tol=0.0, batch_size=50, precondition="none", clip_lr=False)
    host = solve_rows(V, 4, schedule=50.0, cfg=cfg, seed=0)
    dev = solve_rows(V, 4, schedule=50.0, cfg=cfg, seed=0, backend=DeviceBackend(np, cd_rows))
    # the device path detects a divergence at the end of the epoch, the host path at once:
    # both restore the snapshot and shrink the step
    assert dev.trace[-1]["retries"] >= 1 and host.trace[-1]["retries"] >= 1
    assert np.isfinite(dev.W).all() and np.isfinite(dev.H).all()
    assert dev.loss < dev.trace[0]["loss"]
