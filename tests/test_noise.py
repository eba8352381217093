"""The noise-aware ceiling of projected steps (bounds/noise.py) and the solver's online
noise estimate (engine/noise.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import nmf_sched
from nmf_sched import bounds, datasets
from nmf_sched.bounds.noise import (excess_psi, gradient_mapping, projected_noise_ceiling,
                                    projection_bias, stationary_floor)

from conftest import TOL


def _phi(t):
    return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def _tail(t):
    return 0.5 * math.erfc(t / math.sqrt(2))


def test_counterexample_projection_does_not_help():
    """f = (x+1)^2/2 on x >= 0 at x = 0, sigma = 1, eta = 1/2: every step raises E f, the
    unconstrained ceiling says 1.0, the gradient-mapping ceiling says 0."""
    eta, sigma = 0.5, 1.0
    # x+ = eta max(0, -(1 + xi)) = eta Z, Z = max(0, N - 1): E Z = psi(1), E Z^2 exact
    EZ = _phi(1.0) - _tail(1.0)
    EZ2 = 2.0 * _tail(1.0) - _phi(1.0)
    Ef = 0.5 * (1.0 + 2.0 * eta * EZ + eta * eta * EZ2)
    assert Ef == pytest.approx(0.5510, abs=1e-4)
    assert Ef > 0.5
    assert bounds.noise_adjusted(2.0, 1.0, sigma ** 2) == pytest.approx(1.0, rel=TOL["exact"])
    G = gradient_mapping(0.0, 1.0, eta)
    assert G == 0.0
    assert projected_noise_ceiling(2.0, float(G) ** 2, sigma ** 2) == 0.0
    # the bound of the module docstring holds with the projection bias, and is tight enough
    beta = projection_bias(0.0, 1.0, eta, sigma, 1.0)
    assert beta == pytest.approx(EZ, rel=TOL["float64"])
    rhs = 0.5 - eta * (1 - eta / 2) * G ** 2 + eta ** 2 / 2 * sigma ** 2 + eta * beta
    assert Ef <= rhs


def test_excess_psi_against_integration():
    z = np.linspace(-12, 12, 400001)
    dens = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    for t in (0.0, 0.7, 2.5):
        ref = np.trapezoid(np.maximum(z - t, 0.0) * dens, z)
        assert float(excess_psi(t)) == pytest.approx(ref, rel=TOL["float64_paths"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projected_noisy_descent_bound_by_simulation(seed):
    """E f(x+) <= f - eta(1 - eta L/2)||G||^2 + eta^2 L s^2/2 + eta beta on a quadratic on
    the orthant with active constraints (Monte Carlo mean, its standard error as margin)."""
    rng = np.random.default_rng(seed)
    N = 6
    R = rng.standard_normal((N, N))
    A = R @ R.T + 0.1 * np.eye(N)
    c = rng.standard_normal(N) * 2
    L = float(np.linalg.eigvalsh(A)[-1])
    x = np.maximum(rng.standard_normal(N), 0.0)   # some coordinates at 0
    sigma, eta = 0.8, 1.0 / L

    def f(y):
        return 0.5 * np.einsum("...i,ij,...j->...", y, A, y) - y @ c

    g = A @ x - c
    T = np.maximum(x - eta * g, 0.0)
    G = (x - T) / eta
    beta = projection_bias(x, g, eta, sigma, A @ T - c)
    rhs = f(x) - eta * (1 - eta * L / 2) * G @ G + eta ** 2 * L / 2 * sigma ** 2 * N + eta * beta
    xi = rng.standard_normal((200000, N)) * sigma
    vals = f(np.maximum(x - eta * (g + xi), 0.0))
    se = vals.std() / math.sqrt(vals.size)
    assert vals.mean() <= rhs + 4 * se


def test_projected_noise_ceiling_limits():
    assert projected_noise_ceiling(2.0, 3.0, 0.0) == 2.0
    assert projected_noise_ceiling(2.0, 3.0, 1.0) == pytest.approx(1.5, rel=TOL["exact"])
    assert projected_noise_ceiling(2.0, 3.0, 1.0, bias=4.0) == 0.0
    with pytest.raises(ValueError, match="gmap_sq"):
        projected_noise_ceiling(2.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="eta"):
        gradient_mapping(np.ones(2), np.ones(2), 0.0)
    with pytest.raises(ValueError, match="sigma"):
        projection_bias(1.0, 1.0, 1.0, -1.0, 1.0)


def test_stationary_floor_is_the_upper_bound_of_noise_floor():
    lam = np.array([0.5, 1.0, 3.0])
    eta, s2 = 0.4, 0.9
    exact = bounds.noise_floor(eta, lam.max(), s2, curvatures=lam)
    assert stationary_floor(eta, lam.max(), s2) == pytest.approx(
        bounds.noise_floor(eta, lam.max(), s2), rel=TOL["exact"])
    assert exact <= stationary_floor(eta, lam.max(), s2)
    assert stationary_floor(eta, 10.0, s2) == math.inf
    assert stationary_floor(eta, 1.0, 0.0) == 0.0


# ---------------------------------------------------------------------------------- solver
FIELDS = ("noise_var_W", "noise_var_H", "ceiling_noise_W", "ceiling_noise_H", "floor")


def _V():
    return datasets.planted(120, 80, 5, noise=0.1, seed=1).V


def test_noise_free_full_batch_records_no_noise():
    V = _V()
    res = nmf_sched.fit(V, 5, epochs=3, batch_size=V.shape[0], seed=0)
    for row in res.trace:
        assert row["noise_var_W"] == 0.0 and row["noise_var_H"] == 0.0 and row["floor"] == 0.0
        assert row["ceiling_noise_W"] == math.inf and row["ceiling_noise_H"] == math.inf


def test_injected_noise_variance_is_recorded_exactly():
    """precondition="none": the metric is Euclidean, s_W^2 = sigma^2 m k per epoch and
    s_H^2 = sigma^2 n k per step (full batch: no sampling term)."""
    V = _V()
    m, n = V.shape
    sigma = 0.05
    res = nmf_sched.fit(V, 5, epochs=3, batch_size=m, seed=0, noise_std=sigma,
                        precondition="none")
    for row in res.trace[1:]:
        assert row["noise_var_W"] == pytest.approx(sigma ** 2 * m * 5, rel=TOL["float64"])
        assert row["noise_var_H"] == pytest.approx(sigma ** 2 * n * 5, rel=TOL["float64"])
        assert 0 < row["floor"] < math.inf


def test_sampling_variance_matches_the_exact_formula_at_the_init():
    """One epoch with lr 1e-300 (the factors do not move): the tracker's sampling variance of the H
    gradient equals the enumeration formula of THEORY.md §3 at the (balanced) factors."""
    V = _V()
    m, n = V.shape
    b = 30
    res = nmf_sched.fit(V, 5, schedule=1e-300, epochs=1, batch_size=b, seed=0, precondition="none",
                        balance=False)
    W, H = res.W.astype(float), res.H.astype(float)
    R = W @ H - V
    gH = W.T @ R
    spread = sum((W[i] @ W[i]) * (R[i] @ R[i]) for i in range(m))
    ref = m * (m - b) / (b * (m - 1)) * (spread - (gH * gH).sum() / m)
    assert res.trace[1]["noise_var_H"] == pytest.approx(ref, rel=TOL["float64_paths"])


def test_ceiling_enforced_below_the_noise_aware_one():
    V = _V()
    res = nmf_sched.fit(V, 5, schedule=1e12, epochs=4, seed=0, noise_std=5.0,
                        precondition="none")
    tr = res.trace
    for prev, row in zip(tr[:-1], tr[1:]):
        assert row["ceiling_H"] <= prev["ceiling_noise_H"] * (1 + TOL["float64"])


@pytest.mark.parametrize("pre", ["none", "cd"])
def test_heavy_gradient_noise_at_the_enforced_ceiling_stays_stable(pre):
    """The setting the noise-free ceiling failed: the schedule asks for far more than the
    ceiling, the noise is 30x the rms gradient entry at the init."""
    V = datasets.planted(60, 600, 4, noise=0.1, seed=6).V
    rep = bounds.report(V, 4, seed=0)
    rms = math.sqrt((rep.grad_W_sq + rep.grad_H_sq) / (4 * sum(V.shape)))
    res = nmf_sched.fit(V, 4, schedule=1e12, epochs=8, seed=0, noise_std=30 * rms, tol=0.0,
                        precondition=pre)
    assert res.stop_reason == "max_epochs"
    assert res.trace[-1]["retries"] == 0
    assert res.loss <= res.trace[0]["loss"]


def test_report_prints_the_noise_aware_ceiling_and_floor():
    V = _V()
    rep = bounds.report(V, 5, noise_std=2.0, batch_size=30, seed=0)
    assert 0 < rep.ceiling_noise <= rep.ceiling
    assert rep.noise_fraction == pytest.approx(rep.ceiling_noise / rep.ceiling, rel=TOL["exact"])
    assert 0 < rep.noise_floor < math.inf
    table = rep.to_table()
    assert "ceiling_noise" in table and "predicted floor" in table
    quiet = bounds.report(V, 5, batch_size=V.shape[0], seed=0)
    assert quiet.ceiling_noise == quiet.ceiling and quiet.noise_floor == 0.0


def test_gradient_mapping_curve_matches_the_reference():
    """The sorted fast path of the tracker's ``||G_{r eta}||_w^2`` against one pass per r."""
    V = _V()
    res = nmf_sched.fit(V, 5, epochs=1, batch_size=30, seed=0)
    from nmf_sched.engine.noise import NoiseTracker

    class _M:  # the attributes the tracker reads
        xp, rest, m, n, b = np, None, 120, 80, 30
        be = type("B", (), {"noise_std": 0.0, "fetch": staticmethod(lambda *s: [float(x) for x in s])})
        pre = type("P", (), {"name": "cd"})
        pen = type("Pen", (), {"active": False})
        cfg = None
    nzt = NoiseTracker(_M())
    rng = np.random.default_rng(0)
    X = np.abs(res.H.T) * (rng.random(res.H.T.shape) > 0.3)   # some entries at 0
    g = rng.standard_normal(X.shape)
    w = 1.0 / (1.0 + rng.random(X.shape[1]))
    eta = 0.7 * w
    curve = nzt._curve(X, g, eta, w)

    def naive(r):  # the definition, in numpy
        Gm = (X - np.maximum(X - eta * r * g, 0.0)) / (eta * r)
        return float((Gm * Gm * w).sum())
    for r in (1e-9, 1e-3, 0.1, 0.5, 1.0, 3.0):
        assert curve(r) == pytest.approx(naive(r), rel=TOL["float64_paths"])
        assert nzt._gmap(X, g, eta * r, w) == pytest.approx(naive(r), rel=TOL["float64_paths"])
