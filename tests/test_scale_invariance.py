"""Scale must not matter: ``fit(c V)`` is the ``sqrt(c)``-scaled ``fit(V)``.

For ``c`` a power of four, ``sqrt(c)`` is a power of two, every product, quotient and square
root of the run scales exactly, and no constant of the library is absolute (the NNDSVD
truncation and fills in :mod:`nmf_sched.init`, the guard's thresholds, the tol rule, the
schedules' default thresholds and the RL observation are all relative), so the factors agree
bit for bit. This holds wherever the LR is relative to the ceiling or dimensionless: every
named schedule (all start at ``lr="bound"``) under every preconditioner, and with
"cd"/"gram"/"lipschitz" also a float LR. For other ``c`` the data themselves round, and the
runs agree up to rounding.

Not tested, because not invariant by nature: an absolute float LR under
``precondition="none"`` (its unit is 1/scale of V), and the other settings that carry a
unit: ``noise_std``, ``clip_update``, ``max_value``, ``alpha_W``/``alpha_H``, and schedule
parameters given in loss or absolute-LR units (``threshold_mode="abs"``, ``min_lr``,
``eps``, ``end_lr``, the additive hypergradient's ``beta``).
"""
import numpy as np
import pytest
import scipy.sparse as sp

import nmf_sched
from nmf_sched.datasets import planted

from conftest import TOL

POW4 = [4.0**-10, 4.0**-1, 4.0, 4.0**10]
SCHEDULES = ["auto", "greedy", "cosine", "step", "hypergradient", "sls", "rl"]
PRECONDS = ["cd", "gram", "lipschitz", "none"]


@pytest.fixture(scope="module")
def V():
    return planted(60, 40, 4, noise=0.05, seed=1).V


def _fit(V, c, fmt, dtype, **kw):
    X = (V * c).astype(dtype)
    if fmt == "csr":
        X = sp.csr_array(X)
    kw.setdefault("batch_size", 16)
    return nmf_sched.fit(X, 4, seed=0, epochs=kw.pop("epochs", 8), tol=0, **kw)


def _assert_scaled(V, fmt, dtype, **kw):
    """Bit-for-bit at every power of four; returns the base run."""
    r1 = _fit(V, 1.0, fmt, dtype, **kw)
    errs = [row["rel_error"] for row in r1.trace]
    for c in POW4:
        rc = _fit(V, c, fmt, dtype, **kw)
        s = dtype(np.sqrt(c))
        assert rc.W.dtype == dtype
        assert np.array_equal(rc.W, s * r1.W), f"W differs at c={c}"
        assert np.array_equal(rc.H, s * r1.H), f"H differs at c={c}"
        assert rc.rel_error == r1.rel_error, f"relative error differs at c={c}"
        assert [row["rel_error"] for row in rc.trace] == errs
        assert rc.stop_reason == r1.stop_reason
    return r1


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("precondition", PRECONDS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedules_and_preconditioners(V, schedule, precondition, fmt, dtype):
    _assert_scaled(V, fmt, dtype, schedule=schedule, precondition=precondition)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("balance", [True, False])
@pytest.mark.parametrize("init", ["nndsvda", "nndsvd", "random", "nndsvdar"])
def test_inits_balance_rescale(V, init, balance, fmt, dtype):
    _assert_scaled(V, fmt, dtype, init=init, balance=balance, rescale_init=balance)


@pytest.mark.parametrize("kw", [
    dict(schedule=("constant", {"lr": 0.5}), precondition="cd"),       # dimensionless float LR
    dict(schedule=("constant", {"lr": 0.5}), precondition="gram"),
    dict(schedule=("greedy", {"lr": "bound"}), precondition="none"),   # started at the bound
    dict(schedule=("hypergradient", {"granularity": "parameter"}), precondition="lipschitz"),
    dict(schedule="greedy", schedule_every=2),                         # mid-epoch ticks
    dict(schedule="greedy", schedule_loss="batch"),
    dict(schedule="plateau", batch_size=60),                           # full batch
], ids=["cd-float", "gram-float", "none-bound", "hg-entry", "every2", "batchloss", "full"])
def test_more_settings(V, kw):
    _assert_scaled(V, "dense", np.float64, **kw)


def test_divergence_guard(V):
    """A dimensionless LR past the ceiling with clip_lr=False diverges; the guard's restore,
    cap and damp are relative, so the rescued run scales too."""
    r = _assert_scaled(V, "dense", np.float64, schedule=("constant", {"lr": 2.5}),
                       precondition="lipschitz", clip_lr=False)
    assert r.trace[-1]["retries"] > 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("schedule", ["auto", "hypergradient", "sls", "rl"])
@pytest.mark.parametrize("c", [2.0**-21, 2.0**21, 3.0, 0.1])
def test_other_scales_up_to_rounding(V, c, schedule, dtype):
    """``c`` not a power of four: ``sqrt(c)`` (and for float32 ``c V`` itself) rounds."""
    tol = TOL["float64_paths"] if dtype == np.float64 else TOL["float32"]
    r1 = _fit(V, 1.0, "dense", dtype, schedule=schedule)
    rc = _fit(V, c, "dense", dtype, schedule=schedule)
    s = np.sqrt(c)
    np.testing.assert_allclose(rc.W, s * r1.W, rtol=0, atol=tol * s * np.abs(r1.W).max())
    np.testing.assert_allclose(rc.H, s * r1.H, rtol=0, atol=tol * s * np.abs(r1.H).max())
    assert rc.rel_error == pytest.approx(r1.rel_error, rel=tol)


def test_issue_example_shape():
    """The issue's setting in small: default fit of an exact low-rank product at 2^-20, 1,
    2^20 (powers of four) ends at one relative error."""
    rng = np.random.default_rng(0)
    V = rng.random((80, 6)) @ rng.random((6, 50))
    errs = {nmf_sched.fit(V * 2.0**e, 6, seed=0, epochs=10, tol=0).rel_error for e in (-20, 0, 20)}
    assert len(errs) == 1
