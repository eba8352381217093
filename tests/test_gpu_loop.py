"""The GPU epoch loop's logic, run with numpy standing in for CuPy and the CPU
coordinate kernel standing in for the CUDA one, against the CPU solver.

tests/test_gpu.py needs a GPU and skips elsewhere; this keeps the device loop's
bookkeeping (batches, ceilings, schedule ticks, exact loss) checked on every CI run.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from nmf_sched import gpu, solver
from nmf_sched.api import build_config, resolve_schedule
from nmf_sched.init import initialize
from nmf_sched.kernels.cpu import cd_rows

from conftest import planted_dense


def _cfg(**kw):
    base = dict(epochs=8, batch_size=64, m=300, noise_std=0.0, clip_lr=True, kappa=0.9,
                clip_update=None, max_value=None, precondition="cd", tol=0.0, n_iter_no_change=5,
                max_time=None, callback=None, progress=False, schedule_every=None,
                schedule_loss="full", shuffle="rows", guard=True)
    base.update(kw)
    return build_config(**base)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("kw", [dict(), dict(shuffle="blocks"), dict(schedule_every=2),
                                dict(batch_size=1000), dict(clip_lr=False)])
def test_gpu_loop_matches_cpu_solver(dtype, sparse, kw):
    V = planted_dense(300, 40, 4, seed=1, dtype=dtype)
    if sparse:
        V[V < np.quantile(V, 0.5)] = 0
        V = sp.csr_array(V)
    W, H = initialize(V, 4, "random", seed=np.random.default_rng(0))
    c = _cfg(**kw)
    r1 = solver.run(V, W.copy(), H.copy(), resolve_schedule("auto", total=8), c,
                    np.random.default_rng(5))
    r2 = gpu.run(V, W.copy(), H.copy(), resolve_schedule("auto", total=8), c,
                 np.random.default_rng(5), xp=np, cd=cd_rows, sparse=sparse)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(r2.W, r1.W, rtol=rtol, atol=rtol * np.abs(r1.W).max())
    np.testing.assert_allclose(r2.H, r1.H, rtol=rtol, atol=rtol * np.abs(r1.H).max())
    np.testing.assert_allclose(r2.trace.column("loss"), r1.trace.column("loss"), rtol=max(rtol, 1e-6))
    assert r1.stop_reason == r2.stop_reason
