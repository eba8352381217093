r"""The noise-aware ceiling of a projected stochastic step, stated with the gradient mapping,
and its stationary floor (bounds/THEORY.md §3).

Setting: ``f`` convex and ``L``-smooth on a block ``C`` (the orthant, or the box
``[0, c]``), ``x in C``, an unbiased gradient estimate ``g + xi`` with ``E xi = 0``,
``E||xi||^2 = s^2``, and the projected step ``x+ = Pi(x - eta (g + xi))``. With the
noise-free step ``T = Pi(x - eta g)`` and the *gradient mapping*
``G_eta(x) = (x - T) / eta``:

.. math::

    E f(x^+) \le f(x) - \eta\big(1 - \tfrac{\eta L}{2}\big)\|G_\eta(x)\|^2
        + \tfrac{\eta^2 L}{2} s^2 + \eta\,\beta_\eta(x),
    \qquad
    \beta_\eta(x) = E\,\big\langle \nabla f(T),\ \xi + (x^+ - T)/\eta \big\rangle,

so the expected loss decreases whenever

.. math::

    \eta \;<\; \frac{2}{L}\,\frac{\|G_\eta(x)\|^2 - \beta_\eta(x)}{\|G_\eta(x)\|^2 + s^2}.

``beta`` is the projection's bias: it vanishes where the projection is inactive for every
noise draw (in the interior, and for noise-free steps), and for iid ``N(0, sigma^2)`` noise
per entry it is ``sigma sum_j [grad f(T)]_j psi(|u_j| / sigma)`` with
``u = x/eta - g`` and ``psi(t) = phi(t) - t (1 - Phi(t))`` (the Gaussian's expected
excess, ``psi(0) = 1/sqrt(2 pi)``). The unconstrained expected-descent ceiling
``(2/L) ||grad||^2/(||grad||^2 + s^2)`` (:func:`nmf_sched.bounds.noise_adjusted`) is the
special case ``C = R^N``; on the orthant it is wrong: at an active constraint the gradient
does not vanish but ``G_eta`` does, and every step raises ``E f`` (``f = (x+1)^2/2`` on
``x >= 0`` at ``x = 0``, ``sigma = 1``, ``eta = 1/2``: ``E f+ = 0.551 > 0.5``; here
``G = 0`` and the ceiling is 0).

Pure math on host arrays; the solver's online estimate is :mod:`nmf_sched.engine.noise`.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["gradient_mapping", "projection_bias", "projected_noise_ceiling",
           "stationary_floor", "excess_psi", "block_noise_ceiling"]


def excess_psi(t):
    r"""``psi(t) = E max(0, Z - t)`` for ``Z ~ N(0, 1)``: ``phi(t) - t (1 - Phi(t))``."""
    t = np.asarray(t, dtype=np.float64)
    phi = np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    from scipy.special import erfc

    return phi - t * (0.5 * erfc(t / math.sqrt(2.0)))


def gradient_mapping(X, g, eta, upper=None):
    r"""``G_eta = (X - Pi(X - eta g)) / eta`` on the orthant (or the box ``[0, upper]``).

    ``eta``: a positive float or an array broadcasting against ``X`` (per-column steps of a
    diagonal preconditioner)."""
    X = np.asarray(X, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    if np.any(eta <= 0):
        raise ValueError(f"eta must be > 0, got {eta!r}")
    T = np.maximum(X - eta * g, 0.0)
    if upper is not None:
        T = np.minimum(T, float(upper))
    return (X - T) / eta


def projection_bias(X, g, eta, sigma, grad_T):
    r"""``beta_eta(x)`` for iid ``N(0, sigma^2)`` noise on the orthant (module docstring).

    ``grad_T``: the gradient at the noise-free step ``T`` (same shape as ``X``). 0 without
    noise. ``beta`` can be negative (where ``grad f(T) < 0`` at active entries).
    """
    sigma = float(sigma)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    if sigma == 0:
        return 0.0
    X = np.asarray(X, dtype=np.float64)
    u = X / np.asarray(eta, dtype=np.float64) - np.asarray(g, dtype=np.float64)
    return float(sigma * np.sum(np.asarray(grad_T, dtype=np.float64)
                                * excess_psi(np.abs(u) / sigma)))


def projected_noise_ceiling(ceiling, gmap_sq, noise_var, bias=0.0, descent=0.0) -> float:
    r"""The noise-aware ceiling of a projected step (module docstring):
    ``ceiling * max((1-q)||G||^2 - beta, 0) / ((1-q)||G||^2 + s^2)``.

    At or below it the expected descent is at least ``q`` times the noise-free one,
    ``E f(x+) <= f(x) - q eta (1 - eta L/2) ||G_eta||^2`` (``q = descent``; ``q = 0``: the
    expected loss does not increase). The solver uses ``q = 1/2``.

    Parameters
    ----------
    ceiling : float
        The noise-free ceiling ``2/L`` (in the step's unit).
    gmap_sq : float
        ``||G_eta(x)||^2`` (in the metric of the step's preconditioner).
    noise_var : float
        ``s^2 = E||xi||^2`` in the same metric: the injected noise plus the sampling
        variance of the minibatch.
    bias : float
        ``beta_eta(x)`` (0 for noise-free or interior steps).
    descent : float in [0, 1)
        ``q``, the guaranteed fraction of the noise-free expected descent.

    Returns
    -------
    float
        ``ceiling`` without noise; 0 when no step is guaranteed to descend in expectation.
    """
    ceiling, gmap_sq, noise_var, bias = float(ceiling), float(gmap_sq), float(noise_var), float(bias)
    if gmap_sq < 0 or noise_var < 0:
        raise ValueError(f"gmap_sq and noise_var must be >= 0, got {gmap_sq!r}, {noise_var!r}")
    if not 0.0 <= descent < 1.0:
        raise ValueError(f"descent must be in [0, 1), got {descent!r}")
    if noise_var == 0 and bias <= 0:
        return ceiling
    g = (1.0 - descent) * gmap_sq
    num = max(g - bias, 0.0)
    if num == 0:
        return 0.0
    if not math.isfinite(ceiling):
        return ceiling
    return ceiling * num / (g + noise_var)


def stationary_floor(lr, L, noise_var) -> float:
    r"""Predicted stationary excess loss ``eta s^2 / (2 (2 - eta L))`` of constant steps
    ``eta`` on an ``L``-smooth quadratic block with per-step noise ``s^2`` (§3.3; the exact
    value over the spectrum is :func:`nmf_sched.bounds.noise_floor` with ``curvatures``).
    ``inf`` when ``eta L >= 2``."""
    lr, L, noise_var = float(lr), float(L), float(noise_var)
    if noise_var == 0 or lr == 0:
        return 0.0
    if lr * L >= 2:
        return math.inf
    return lr * noise_var / (2.0 * (2.0 - lr * L))


def block_noise_ceiling(X, g, grad_at, ceiling, noise_var, sigma, *, kappa=1.0,
                        descent=0.5) -> dict:
    r"""The noise-aware ceiling of one block at ``X`` (host arrays, the plain metric).

    The gradient mapping at the noise-free step ``kappa * ceiling`` (the largest step: the
    smallest mapping), the projection bias of iid ``N(0, sigma^2)`` noise at the step the
    bias-free ratio allows (one fixed-point pass; ``grad_at(T)`` gives the gradient at the
    noise-free step ``T``), then :func:`projected_noise_ceiling` with ``descent``.

    Returns
    -------
    dict
        ``ceiling`` (the noise-aware ceiling), ``gmap_sq``, ``bias``.
    """
    ceiling = float(ceiling)
    if not (math.isfinite(ceiling) and ceiling > 0):
        return {"ceiling": ceiling, "gmap_sq": math.nan, "bias": 0.0}
    eta = float(kappa) * ceiling
    G = gradient_mapping(X, g, eta)
    gm = float(np.vdot(G, G))
    rho0 = projected_noise_ceiling(1.0, gm, noise_var, 0.0, descent)
    bias = 0.0
    if sigma > 0 and rho0 > 0:
        e = eta * rho0
        T = np.maximum(np.asarray(X, dtype=np.float64) - e * np.asarray(g, dtype=np.float64), 0.0)
        bias = projection_bias(X, g, e, sigma, grad_at(T))
    return {"ceiling": projected_noise_ceiling(ceiling, gm, noise_var, bias, descent),
            "gmap_sq": gm, "bias": bias}
