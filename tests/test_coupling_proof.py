"""bounds/coupling_proof.py: the exact converse of Theorem 2 (rank-one model) for small M."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TOL

sp = pytest.importorskip("sympy")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bounds"))
import coupling_proof as cp  # noqa: E402


def _epoch_matrix(M, mu):
    c = 1 - 2 * mu
    t = -2 * mu * c
    L, U = np.tril(np.ones((M, M)), -1), np.triu(np.ones((M, M)), 1)
    return (c * c * np.eye(M) + t * U) @ np.linalg.inv(np.eye(M) - t * L)


@pytest.mark.parametrize("M", [2, 3])
def test_characteristic_polynomial_is_the_epoch_map(M):
    for mu in (0.3, 0.6, 0.7):
        coeffs = [float(c) for c in sp.Poly(cp.chi(M, sp.Rational(str(mu)), sp.Rational(str(mu))), cp.lam).all_coeffs()]
        roots = np.sort_complex(np.roots(coeffs))
        eig = np.sort_complex(np.linalg.eigvals(_epoch_matrix(M, mu)))
        np.testing.assert_allclose(roots, eig, rtol=TOL["float64_paths"], atol=TOL["float64_paths_abs"])


@pytest.mark.parametrize("M", [2, 3])
def test_schur_stability_below_the_edge_is_proved(M):
    ok, rows = cp.prove(M)
    assert ok
    assert [r[0] for r in rows] == ["a0"] + [f"D{k}" for k in range(1, M + 1)]
    # the proof's conclusion, checked: spectral radius < 1 inside, > 1 just above the edge
    edge = (M + 1) / (2 * M)
    assert max(abs(np.linalg.eigvals(_epoch_matrix(M, 0.99 * edge)))) < 1
    assert max(abs(np.linalg.eigvals(_epoch_matrix(M, 1.01 * edge)))) > 1
