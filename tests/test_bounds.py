"""The stability ceilings of nmf_sched.bounds against brute force (bounds/THEORY.md)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import nmf_sched
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from nmf_sched import bounds
from nmf_sched.bounds import (
    BoundReport, block_curvatures, clip_ceilings, coupling_stable, gram_safe_ceiling,
    joint_ceiling, joint_fraction, lmax, minibatch_factor, noise_adjusted, noise_floor, report,
    rescale_balance, step_ceilings,
)

from conftest import TOL

SETTINGS = settings(max_examples=40, deadline=None)


def _problem(seed, m, n, k, dist="uniform"):
    rng = np.random.default_rng(seed)
    draw = rng.random if dist == "uniform" else (lambda s: rng.exponential(size=s))
    V = draw((m, k)) @ draw((k, n)) + 0.1 * rng.random((m, n))
    W = draw((m, k)) * rng.uniform(0.1, 3)
    H = draw((k, n)) * rng.uniform(0.1, 3)
    return V, W, H


def f(V, W, H):
    return 0.5 * float(np.sum((V - W @ H) ** 2))


dims = st.tuples(st.integers(2, 12), st.integers(2, 12), st.integers(1, 4))


# ---------------------------------------------------------------------------
# per-block descent at lr <= ceiling (deterministic, projected)
# ---------------------------------------------------------------------------
@SETTINGS
@given(seed=st.integers(0, 10**6), shape=dims, frac=st.floats(0.01, 1.0),
       dist=st.sampled_from(["uniform", "exponential"]))
def test_projected_step_at_or_below_ceiling_never_increases_the_block_loss(seed, shape, frac, dist):
    m, n, k = shape
    V, W, H = _problem(seed, m, n, k, dist)
    LW, LH = block_curvatures(W, H)
    # W block (H fixed)
    eta = frac * 2.0 / LW
    W1 = np.maximum(W - eta * (W @ H @ H.T - V @ H.T), 0)
    f0 = f(V, W, H)
    assert f(V, W1, H) <= f0 * (1 + TOL["exact"]) + TOL["float64_abs"]
    # the projected-gradient inequality f+ <= f - (1/eta - L/2) ||x+ - x||^2
    assert f(V, W1, H) <= f0 - (1 / eta - LW / 2) * np.sum((W1 - W) ** 2) + TOL["margin"] * (1 + f0)
    # H block (W fixed)
    eta = frac * 2.0 / LH
    H1 = np.maximum(H - eta * (W.T @ W @ H - W.T @ V), 0)
    assert f(V, W, H1) <= f0 * (1 + TOL["exact"]) + TOL["float64_abs"]
    # box projection [0, c] as well
    c = float(np.median(H))
    Hc = np.clip(H, 0, c)
    Hc1 = np.clip(Hc - eta * (W.T @ W @ Hc - W.T @ V), 0, c)
    assert f(V, W, Hc1) <= f(V, W, Hc) * (1 + TOL["exact"]) + TOL["float64_abs"]


@SETTINGS
@given(seed=st.integers(0, 10**6), shape=dims, frac=st.floats(0.01, 1.0), b=st.integers(1, 12))
def test_minibatch_H_step_at_its_ceiling_never_increases_the_scaled_batch_loss(seed, shape, frac, b):
    m, n, k = shape
    V, W, H = _problem(seed, m, n, k)
    b = min(b, m)
    rows = np.random.default_rng(seed).choice(m, b, replace=False)
    s = m / b
    WB, VB = W[rows], V[rows]
    GB = WB.T @ WB
    _, cH = step_ceilings(H @ H.T, GB, s)
    H1 = np.maximum(H - frac * cH * s * (GB @ H - WB.T @ VB), 0)
    assert s * f(VB, WB, H1) <= s * f(VB, WB, H) * (1 + TOL["exact"]) + TOL["float64_abs"]


# ---------------------------------------------------------------------------
# the ceilings against brute-force Lipschitz estimates
# ---------------------------------------------------------------------------
def _quad_form(fun, X, D, t=1e-3):
    """Second directional derivative of a quadratic (exact up to rounding)."""
    return (fun(X + t * D) - 2 * fun(X) + fun(X - t * D)) / (t * t)


@SETTINGS
@given(seed=st.integers(0, 10**6), shape=dims)
def test_block_curvature_matches_brute_force(seed, shape):
    m, n, k = shape
    V, W, H = _problem(seed, m, n, k)
    LW, LH = block_curvatures(W, H)
    rng = np.random.default_rng(seed + 1)
    best_W = best_H = 0.0
    for _ in range(30):
        D = rng.standard_normal(W.shape)
        best_W = max(best_W, _quad_form(lambda X: f(V, X, H), W, D) / np.sum(D * D))
        D = rng.standard_normal(H.shape)
        best_H = max(best_H, _quad_form(lambda X: f(V, W, X), H, D) / np.sum(D * D))
    assert best_W <= LW * (1 + 1e-5) + 1e-8
    assert best_H <= LH * (1 + 1e-5) + 1e-8
    # and the bound is attained along the top eigenvector
    u = np.linalg.eigh(H @ H.T)[1][:, -1]
    D = np.outer(rng.standard_normal(m), u)
    q = _quad_form(lambda X: f(V, X, H), W, D) / np.sum(D * D)
    assert q == pytest.approx(LW, rel=TOL["fd"])
    u = np.linalg.eigh(W.T @ W)[1][:, -1]
    D = np.outer(u, rng.standard_normal(n))
    q = _quad_form(lambda X: f(V, W, X), H, D) / np.sum(D * D)
    assert q == pytest.approx(LH, rel=TOL["fd"])


def test_gradient_lipschitz_constant_brute_force():
    V, W, H = _problem(3, 9, 7, 3)
    LW, LH = block_curvatures(W, H)
    rng = np.random.default_rng(0)
    gH = lambda X: W.T @ W @ X - W.T @ V  # noqa: E731
    ratios = []
    for _ in range(300):
        A, B = rng.random(H.shape), rng.random(H.shape)
        ratios.append(np.linalg.norm(gH(A) - gH(B)) / np.linalg.norm(A - B))
    assert max(ratios) <= LH * (1 + TOL["exact"])
    assert max(ratios) >= 0.5 * LH  # random directions get close to the top one


@SETTINGS
@given(seed=st.integers(0, 10**6), shape=dims)
def test_joint_hessian_bound(seed, shape):
    m, n, k = shape
    V, W, H = _problem(seed, m, n, k)
    LW, LH = block_curvatures(W, H)
    R = np.linalg.norm(W @ H - V)
    L = 2.0 / joint_ceiling(LW, LH, R)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        dW, dH = rng.standard_normal(W.shape), rng.standard_normal(H.shape)
        q = np.sum((dW @ H + W @ dH) ** 2) + 2 * np.sum((W @ H - V) * (dW @ dH))
        assert abs(q) <= L * (np.sum(dW ** 2) + np.sum(dH ** 2)) * (1 + TOL["exact"])
    assert 0 < joint_fraction(LW, LH, R) <= 0.5


def test_gauss_newton_part_of_the_joint_hessian_has_normalized_top_eigenvalue_two():
    # J D^-1 J^T with D = diag(L_W, L_H): R -> R H^T H / L_W + W W^T R / L_H; top eigenvalue 2
    V, W, H = _problem(5, 8, 6, 3)
    LW, LH = block_curvatures(W, H)
    m, n = V.shape
    A = np.kron(np.eye(m), H.T @ H) / LW + np.kron(W @ W.T, np.eye(n)) / LH
    assert lmax(A) == pytest.approx(2.0, rel=TOL["float64"])


def test_batch_curvature_brute_force_and_bounds():
    V, W, H = _problem(7, 40, 9, 3)
    bc = bounds.batch_curvatures(W, 8, n_batches=50, seed=0)
    assert bc["mean"] >= bc["full"] * (1 - TOL["exact"]) * 0.99  # Jensen, up to sampling noise
    assert bc["max"] <= bc["bound"] * (1 + TOL["exact"])
    # the bound holds for every batch, including adversarial ones (the largest rows)
    top = np.argsort(np.einsum("ij,ij->i", W, W))[-8:]
    assert 5 * lmax(W[top].T @ W[top]) <= bc["bound"] * (1 + TOL["exact"])
    full = bounds.batch_curvatures(W, 10**6)
    assert full["max"] == pytest.approx(lmax(W.T @ W), rel=TOL["float64"])


@SETTINGS
@given(seed=st.integers(0, 10**6), shape=dims, c=st.floats(0.1, 5))
def test_clip_ceilings_are_global_on_the_box(seed, shape, c):
    m, n, k = shape
    rng = np.random.default_rng(seed)
    W, H = c * rng.random((m, k)), c * rng.random((k, n))
    W[rng.random(W.shape) < 0.3] = c
    V = rng.random((m, n))
    g = clip_ceilings((m, n), k, c, np.linalg.norm(V))
    LW, LH = block_curvatures(W, H)
    assert 2 / LW >= g["W"] * (1 - TOL["exact"]) and 2 / LH >= g["H"] * (1 - TOL["exact"])
    R = np.linalg.norm(W @ H - V, 2)
    assert joint_ceiling(LW, LH, R) >= g["joint"] * (1 - TOL["exact"])


# ---------------------------------------------------------------------------
# the sequential minibatch coupling (§2.2)
# ---------------------------------------------------------------------------
def _rank_one_epoch_rho(M, mu_W, mu_H):
    cW, cH = 1 - 2 * mu_W, 1 - 2 * mu_H
    P = np.eye(M)
    for B in range(M):
        A = np.eye(M)
        A[:, B] = -2 * mu_H * cW
        A[B, B] = cH * cW
        P = A @ P
    return np.max(np.abs(np.linalg.eigvals(P)))


@pytest.mark.parametrize("M", [1, 2, 3, 5, 10, 40])
def test_minibatch_factor_is_the_rank_one_edge(M):
    mu = minibatch_factor(M)
    assert mu == pytest.approx((M + 1) / (2 * M), rel=TOL["exact"])
    if M > 1:
        assert _rank_one_epoch_rho(M, mu * 0.98, mu * 0.98) < 1
        assert _rank_one_epoch_rho(M, mu * 1.02, mu * 1.02) > 1
    assert coupling_stable(mu * 0.98, mu * 0.98, M)
    assert not coupling_stable(min(mu * 1.02, 0.999), min(mu * 1.02, 0.999), M) or M == 1


@settings(max_examples=60, deadline=None)
@given(M=st.integers(2, 30), mu_W=st.floats(0.05, 0.95), mu_H=st.floats(0.05, 0.95))
def test_coupling_region_matches_the_rank_one_model(M, mu_W, mu_H):
    margin = M * mu_H * (2 * mu_W - 1) - mu_W
    if abs(margin) < 0.02:  # too close to the boundary for a clean numerical call
        return
    rho = _rank_one_epoch_rho(M, mu_W, mu_H)
    assert (rho < 1) == coupling_stable(mu_W, mu_H, M)


def test_rank_one_nonlinear_dynamics_edge():
    """The exact reduced dynamics x_j = alpha_j beta of §2.2 (no linearization)."""

    def run(M, mu, epochs=300):
        x = 1 + 0.01 * np.random.default_rng(0).standard_normal(M)
        for _ in range(epochs):
            for B in range(M):
                x[B] = (1 - 2 * mu) * x[B] + 2 * mu
                x *= 1 - 2 * mu + 2 * mu / x[B]
                if not np.all(np.isfinite(x)) or np.any(np.abs(x) > 1e6):
                    return np.inf
        return np.max(np.abs(x - 1))

    for M in (2, 5, 10):
        edge = minibatch_factor(M)
        assert run(M, 0.97 * edge) < 1e-6
        assert run(M, 1.03 * edge) > 0.1


def test_step_ceilings_default_is_unchanged_and_sequential_applies_the_factor():
    rng = np.random.default_rng(0)
    W, H = rng.random((50, 4)), rng.random((4, 30))
    HHt, GB = H @ H.T, W[:10].T @ W[:10]
    cW, cH = step_ceilings(HHt, GB, 5.0)
    assert cW == pytest.approx(2 / lmax(HHt), rel=TOL["exact"])
    assert cH == pytest.approx(2 / (5 * lmax(GB)), rel=TOL["exact"])
    sW, sH = step_ceilings(HHt, GB, 5.0, coupling="sequential")
    assert sW == pytest.approx(0.6 * cW, rel=TOL["exact"])
    assert sH == pytest.approx(0.6 * cH, rel=TOL["exact"])
    assert bounds.ceiling_W(HHt, 5.0) == pytest.approx(sW, rel=TOL["exact"])
    assert bounds.ceiling_W(HHt, 1.0) == pytest.approx(cW, rel=TOL["exact"])
    assert bounds.ceiling_W(HHt, 5.0, precondition="gram") == pytest.approx(1.2, rel=TOL["exact"])
    with pytest.raises(ValueError, match="coupling"):
        step_ceilings(HHt, GB, 5.0, coupling="bogus")


# ---------------------------------------------------------------------------
# noise (§3)
# ---------------------------------------------------------------------------
def test_noise_adjusted():
    assert noise_adjusted(2.0, 1.0, 0.0) == 2.0
    assert noise_adjusted(2.0, 1.0, 1.0) == pytest.approx(1.0, rel=TOL["exact"])
    assert noise_adjusted(2.0, 0.0, 1.0) == 0.0
    assert noise_adjusted(2.0, 3.0, 1.0) < 2.0
    with pytest.raises(ValueError):
        noise_adjusted(2.0, -1.0, 1.0)


def test_expected_descent_threshold_of_the_noisy_step():
    """E f(x - eta g) - f(x) changes sign at the noise-adjusted ceiling (exact for a quadratic)."""
    rng = np.random.default_rng(1)
    A = rng.random((5, 3))
    A = A.T @ A
    L = lmax(A)
    x = rng.random(3)
    grad = A @ x
    sigma2 = 0.3
    N = 3

    def expected_change(eta):  # E[f(x - eta (g + xi))] - f(x), f = x^T A x / 2
        return -eta * grad @ grad + 0.5 * eta ** 2 * (grad @ A @ grad + sigma2 * np.trace(A))

    c = noise_adjusted(2 / L, grad @ grad, sigma2 * N)
    # the threshold uses L for every direction: it is conservative, never optimistic
    assert expected_change(0.999 * c) < 0


def test_noise_floor_matches_simulation():
    rng = np.random.default_rng(2)
    k, n = 2, 400
    W = rng.random((30, k)) + 0.5
    G = W.T @ W
    lam = np.linalg.eigvalsh(G)
    L = lam[-1]
    eta = 1.2 / L
    sigma = 0.5
    X = np.zeros((k, n))  # distance to the optimum, unconstrained quadratic 1/2 tr(X^T G X)
    excess = []
    for t in range(3000):
        X = X - eta * (G @ X + sigma * rng.standard_normal(X.shape))
        if t > 500:
            excess.append(0.5 * np.sum(X * (G @ X)))
    sim = np.mean(excess)
    exact = noise_floor(eta, L, sigma ** 2 * k * n, curvatures=np.repeat(lam, n))
    assert sim == pytest.approx(exact, rel=TOL["monte_carlo"])
    assert eta * sigma ** 2 * k * n / 4 <= exact <= noise_floor(eta, L, sigma ** 2 * k * n)
    assert noise_floor(2.0 / L, L, 1.0) == math.inf
    assert noise_floor(2.0 / L, L, 0.0) == 0.0


def test_sampling_variance_formula_matches_enumeration():
    """Variance of the scaled batch H gradient (without replacement) against all batches."""
    from itertools import combinations

    V, W, H = _problem(11, 7, 5, 2)
    m, b = 7, 3
    rep = report(V, 2, W=W, H=H, batch_size=b)
    g = W.T @ W @ H - W.T @ V
    vals = []
    for B in combinations(range(m), b):
        B = list(B)
        gB = (m / b) * (W[B].T @ W[B] @ H - W[B].T @ V[B])
        vals.append(np.sum((gB - g) ** 2))
    assert rep.sampling_var_H == pytest.approx(np.mean(vals), rel=TOL["float64_paths"])


# ---------------------------------------------------------------------------
# Gram preconditioning (§7)
# ---------------------------------------------------------------------------
def test_gram_safe_ceiling_gives_a_euclidean_contraction():
    rng = np.random.default_rng(3)
    # well-conditioned W (near-disjoint supports): for typical non-negative data the Gram is
    # ill-conditioned and the guarantee is vacuous (ceiling 0), see THEORY.md §7
    W = np.kron(np.eye(4), np.ones((15, 1))) + 0.05 * rng.random((60, 4))
    G = W.T @ W
    rows = rng.choice(60, 40, replace=False)
    GB = W[rows].T @ W[rows]
    s = 60 / 40
    c = gram_safe_ceiling(G, GB, s)
    assert 0 < c < 2
    assert gram_safe_ceiling(G, 3.0 * GB, s) == 0.0  # delta >= 1: no guarantee
    Ginv = np.linalg.inv(G)
    C = rng.random((4, 5))
    for eta in (0.5 * c, 0.99 * c):
        T = lambda X: np.maximum(X - eta * Ginv @ (s * GB @ X - C), 0)  # noqa: E731
        for _ in range(50):
            X, Y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
            assert np.linalg.norm(T(X) - T(Y)) <= np.linalg.norm(X - Y) * (1 + TOL["exact"])
    # W block: A = P, so the ceiling is 2 and the projected step contracts towards the clipped LS
    assert gram_safe_ceiling(G, G, 1.0) == pytest.approx(2.0, rel=TOL["float64"])


def test_gram_projected_step_converges_to_clipped_least_squares_not_nnls():
    rng = np.random.default_rng(4)
    H = rng.random((3, 8))
    P = H @ H.T
    w_true = np.array([1.0, -0.6, 0.4])
    v = w_true @ H
    x = np.ones(3)
    for _ in range(300):
        x = np.maximum(x - 1.0 * ((x @ P - v @ H.T) @ np.linalg.inv(P)), 0)
    x_ls = np.linalg.solve(P, H @ v)
    assert np.allclose(x, np.maximum(x_ls, 0), rtol=TOL["float64"], atol=TOL["float64_abs"])
    from scipy.optimize import nnls

    x_nnls = nnls(H.T, v)[0]
    assert np.sum((v - x @ H) ** 2) > np.sum((v - x_nnls @ H) ** 2) + 1e-6


# ---------------------------------------------------------------------------
# init rule and scaling laws (§6)
# ---------------------------------------------------------------------------
def test_rescale_balance():
    V, W, H = _problem(5, 30, 20, 3)
    W2, H2, alpha = rescale_balance(V, 40 * W, H)
    assert np.allclose(W2 @ H2, alpha * 40 * W @ H, rtol=TOL["float64"], atol=TOL["float64_abs"])
    assert np.allclose(np.linalg.norm(W2, axis=0), np.linalg.norm(H2, axis=1),
                       rtol=TOL["float64"], atol=TOL["float64_abs"])
    assert f(V, W2, H2) <= 0.5 * np.sum(V ** 2)
    for eps in (0.99, 1.01):
        assert f(V, W2, H2) <= f(V, eps * W2, H2)


def test_balance_columns_in_place_keeps_the_product():
    V, W, H = _problem(14, 20, 15, 3)
    W, Ht = 50 * W, np.ascontiguousarray(H.T) / 50
    P = W @ Ht.T
    bounds.balance_columns(W, Ht)
    assert np.allclose(W @ Ht.T, P, rtol=TOL["float64"], atol=TOL["float64_abs"])
    assert np.allclose(np.linalg.norm(W, axis=0), np.linalg.norm(Ht, axis=0),
                       rtol=TOL["float64"], atol=TOL["float64_abs"])


@pytest.mark.parametrize("a", [1e-3, 0.5, 7.0, 1e4])
def test_scaling_laws(a):
    V, W, H = _problem(6, 40, 25, 3)
    r1 = report(V, 3, W=W, H=H, batch_size=10, noise_std=0.1)
    ra = report(a * V, 3, W=np.sqrt(a) * W, H=np.sqrt(a) * H, batch_size=10,
                noise_std=0.1 * a ** 1.5)
    for q in ("L_W", "L_H", "L_H_batch_max", "residual_norm"):
        assert getattr(ra, q) == pytest.approx(a * getattr(r1, q), rel=TOL["float64_paths"])
    for c in ("ceiling_W", "ceiling_H", "ceiling_H_batch", "ceiling_W_seq", "ceiling_H_seq",
              "ceiling_joint", "ceiling", "lr0", "ceiling_W_noise", "ceiling_H_noise"):
        assert getattr(ra, c) == pytest.approx(getattr(r1, c) / a, rel=TOL["float64_paths"])
    for c in ("ceiling_W_gram", "ceiling_H_gram", "ceiling_H_gram_safe", "minibatch_factor",
              "joint_fraction", "rel_error", "ceiling_H_lipschitz", "alpha_opt", "balance"):
        assert getattr(ra, c) == pytest.approx(getattr(r1, c), rel=TOL["float64_paths"])
    # gauge W -> gW, H -> H/g: L_W / g^2, L_H g^2
    g = 3.0
    rg = report(V, 3, W=g * W, H=H / g, batch_size=10)
    assert rg.L_W == pytest.approx(r1.L_W / g ** 2, rel=TOL["float64"])
    assert rg.L_H == pytest.approx(r1.L_H * g ** 2, rel=TOL["float64"])


def test_scaling_law_through_the_init_rule():
    V, _, _ = _problem(8, 40, 25, 3)
    a = 9.0
    r1, ra = report(V, 3, init="nndsvd"), report(a * V, 3, init="nndsvd")
    assert ra.ceiling_W == pytest.approx(r1.ceiling_W / a, rel=TOL["svd"])
    assert ra.ceiling_H == pytest.approx(r1.ceiling_H / a, rel=TOL["svd"])


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
def test_report_dense_sparse_agree_and_is_serializable():
    rng = np.random.default_rng(9)
    V = rng.random((60, 40))
    V[V < 0.6] = 0
    W, H = rng.random((60, 4)), rng.random((4, 40))
    rd = report(V, 4, W=W, H=H, batch_size=12, seed=1, clip=2.0)
    rs = report(sp.csr_array(V), 4, W=W, H=H, batch_size=12, seed=1, clip=2.0, entry=True)
    for q in ("L_W", "L_H", "residual_norm", "grad_W_sq", "grad_H_sq", "sampling_var_H",
              "L_H_batch_max", "ceiling", "ceiling_global_joint"):
        assert getattr(rs, q) == pytest.approx(getattr(rd, q), rel=TOL["float64_paths"])
    assert rd.residual_norm == pytest.approx(np.linalg.norm(V - W @ H), rel=TOL["float64_paths"])
    assert rs.entry["ceiling_joint"] <= rs.entry["ceiling_w"]
    d = json.loads(json.dumps(rs.as_dict()))
    assert d["shape"] == [60, 40] and d["sparse"] is True
    text = rs.to_table()
    for name in ("ceiling_W_seq", "ceiling_H_batch", "ceiling_joint", "ceiling_global_W",
                 "ceiling_H_gram_safe", "assumptions"):
        assert name in text
    assert isinstance(rs, BoundReport)
    with pytest.raises(Exception):
        rs.ceiling = 1.0  # frozen


def test_report_binding_ceiling_and_units():
    V, W, H = _problem(10, 50, 30, 3)
    for pre in ("none", "lipschitz", "gram", "cd"):
        r = report(V, 3, W=W, H=H, batch_size=10, precondition=pre, kappa=0.4)
        assert r.lr0 == pytest.approx(0.4 * r.ceiling, rel=TOL["exact"])
    r = report(V, 3, W=W, H=H, batch_size=10, precondition="cd")
    assert r.ceiling == pytest.approx(r.minibatch_factor * min(2.0, r.ceiling_H_cd),
                                      rel=TOL["exact"])
    r = report(V, 3, W=W, H=H, batch_size=10)
    assert r.ceiling == pytest.approx(r.minibatch_factor * min(r.ceiling_W, r.ceiling_H_batch),
                                      rel=TOL["exact"])
    full = report(V, 3, W=W, H=H, batch_size=50)
    assert full.minibatch_factor == 1.0
    assert full.ceiling_H_batch == pytest.approx(full.ceiling_H, rel=TOL["exact"])
    assert full.sampling_var_H == 0.0


def test_report_warmup_and_init():
    V, _, _ = _problem(12, 60, 30, 3)
    r0 = report(V, 3, init="random", batch_size=20)
    r1 = report(V, 3, init="random", batch_size=20, warmup_epochs=5, fit=nmf_sched.fit)
    assert r1.warmup_epochs == 5 and r1.rel_error < r0.rel_error
    # the bounds package is pure math: the warm-up runs the solver it is given
    with pytest.raises(ValueError, match="needs fit="):
        report(V, 3, init="random", batch_size=20, warmup_epochs=5)


@pytest.mark.parametrize("kw, match", [
    (dict(precondition="nope"), "precondition"), (dict(noise_std=-1.0), "noise_std"),
    (dict(clip=0.0), "clip"), (dict(warmup_epochs=-1), "warmup_epochs"),
    (dict(batch_size=0), "batch_size"), (dict(kappa=0.0), "kappa"),
])
def test_report_rejects_bad_arguments(kw, match):
    V, _, _ = _problem(13, 20, 10, 2)
    with pytest.raises(ValueError, match=match):
        report(V, 2, **kw)


# ---------------------------------------------------------------------------
# the CLI on real files
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    pytest.importorskip("sklearn")
    from nmf_sched.datasets import digits

    X = digits()
    d = tmp_path_factory.mktemp("digits")
    np.save(d / "digits.npy", X)
    np.savetxt(d / "digits.csv", X[:400], delimiter=",", fmt="%g")
    return d


def _cli(argv, capsys):
    from nmf_sched.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_bound_json_on_npy(digits_files, capsys):
    rc, out, err = _cli(["bound", str(digits_files / "digits.npy"), "--rank", "8",
                         "--batch-size", "100", "--noise-std", "0.01", "--clip", "16",
                         "--json"], capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert d["shape"] == [1797, 64] and d["rank"] == 8 and d["batch_size"] == 100
    assert d["ceiling"] > 0 and d["ceiling_global_W"] > 0 and d["assumptions"]
    assert d["minibatch_factor"] == pytest.approx(0.5 * (1 + 100 / 1797), rel=TOL["exact"])


def test_cli_bound_table_on_csv(digits_files, capsys):
    rc, out, err = _cli(["bound", str(digits_files / "digits.csv"), "-k", "4", "--init", "random",
                         "--warmup-epochs", "2", "--precondition", "gram"], capsys)
    assert rc == 0, err
    assert "ceiling_H_gram_safe" in out and "400 x 64" in out and "2 warm-up epochs" in out


@pytest.mark.parametrize("args, match", [
    (["MISSING", "-k", "3"], "no such file"),
    (["FILE", "-k", "0"], "rank"),
    (["FILE", "-k", "3", "--init", "bogus"], "init"),
    (["FILE", "-k", "3", "--clip", "-1"], "clip"),
    (["FILE", "-k", "3", "--batch-size", "0"], "batch-size"),
    (["BAD", "-k", "3"], "cannot read"),
])
def test_cli_bound_errors_are_one_line_exit_2(digits_files, tmp_path, capsys, args, match):
    bad = tmp_path / "bad.npy"
    bad.write_text("not an array")
    paths = {"MISSING": str(tmp_path / "nope.npy"), "FILE": str(digits_files / "digits.npy"),
             "BAD": str(bad)}
    rc, out, err = _cli(["bound"] + [paths.get(a, a) for a in args], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmf-sched: error:") and match in lines[0]


def test_lmax_of_a_diverged_gram_is_inf_not_an_error():
    import math

    from nmf_sched.bounds import gen_lmax, lmax

    A = np.eye(3)
    A[1, 2] = A[2, 1] = np.nan
    assert lmax(A) == math.inf
    with np.errstate(invalid="ignore"):  # inf * 0 in the congruence: NaN, still "not finite"
        assert gen_lmax(np.full((2, 2), np.inf), np.eye(2)) == math.inf
    assert lmax(np.eye(2) * 2.0) == 2.0
