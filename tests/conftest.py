"""Shared fixtures: seeded generators, small problems, the one tolerance table."""
import numpy as np
import pytest

#: The one tolerance table of the suite (relative tolerances).
TOL = {
    "float64": 1e-10,     # same algorithm, different summation order
    "float32": 2e-4,      # float32 kernels against float64 references
    "identity": 1e-8,     # Gram-identity loss against the explicit residual (float64)
    "nojit": 1e-12,       # numba kernels against their pure-Python execution
    "torch_schedule": 1e-12,  # nmf-sched schedules against torch's own lr_schedulers
}


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def planted_dense(m=120, n=80, k=5, noise=0.05, seed=0, dtype=np.float64):
    r = np.random.default_rng(seed)
    W = r.random((m, k))
    H = r.random((k, n))
    V = W @ H
    V = np.maximum(V + noise * V.std() * r.standard_normal(V.shape), 0.0)
    return V.astype(dtype)


@pytest.fixture
def small_dense():
    return planted_dense()
