#!/usr/bin/env python
r"""The converse of Theorem 2 (bounds/THEORY.md §2.2.2) for each fixed number of batches M:
an exact (computer-assisted) Schur stability proof of the rank-one epoch map below the edge.

The epoch map's characteristic polynomial is explicit (§2.2.2),

.. math::

    \chi(\lambda) = \frac{\lambda(c_W - \lambda)^M - (c_Hc_W - \lambda(1+t))^M}{\lambda - 1},
    \qquad c_X = 1 - 2\mu_X,\ t = -2\mu_Hc_W .

For equal fractions ``mu_W = mu_H = mu`` the claim is: every root of ``chi`` lies in the open
unit disk for ``0 < mu < mu* = (M+1)/(2M)``. The proof for one ``M``, in exact rational
arithmetic (sympy):

1. the Moebius map ``lambda = (1+z)/(1-z)`` sends the unit disk to the left half-plane:
   ``q(z) = (1-z)^M chi((1+z)/(1-z))`` has all roots with negative real part iff ``chi`` is
   Schur stable (when ``deg q = M``, i.e. its leading coefficient ``a_0 != 0``);
2. Routh–Hurwitz: ``q`` is Hurwitz stable iff ``a_0`` and the Hurwitz determinants
   ``D_1..D_M`` are non-zero with ``sign(D_k) = sign(a_0)^k`` (the test of ``-q`` when
   ``a_0 < 0``);
3. each of ``a_0, D_1..D_M`` is a rational function of ``mu``: no factor of its numerator or
   denominator has a root in the open interval ``(0, mu*)`` (Sturm counts, exact), so its sign
   is constant there, and the sign at ``mu*/2`` is the one step 2 needs.

Steps 1-3 prove stability on the whole open interval for that ``M`` (not a grid). Run::

    python bounds/coupling_proof.py [--max-M 8] [--out bounds/results/coupling_proof.md]
"""
from __future__ import annotations

import argparse
import time

import sympy as sp

lam, mu, z = sp.symbols("lambda mu z")


def chi(M, mu_W, mu_H):
    """The characteristic polynomial of the rank-one epoch map (a sympy expression in
    ``lambda``; the division by ``lambda - 1`` is exact)."""
    cW, cH = 1 - 2 * mu_W, 1 - 2 * mu_H
    t = -2 * mu_H * cW
    num = lam * (cW - lam) ** M - (cH * cW - lam * (1 + t)) ** M
    q, r = sp.div(sp.expand(num), lam - 1, lam)
    if sp.expand(r) != 0:  # pragma: no cover - an algebra error
        raise ArithmeticError("lambda - 1 does not divide the numerator")
    return sp.expand(q)


def hurwitz_determinants(coeffs):
    """``D_1..D_n`` of ``a_0 z^n + ... + a_n`` (``coeffs = [a_0, ..., a_n]``)."""
    n = len(coeffs) - 1

    def a(k):
        return coeffs[k] if 0 <= k <= n else 0

    H = sp.Matrix(n, n, lambda i, j: a(2 * (j + 1) - (i + 1)))
    return [sp.factor(H[:k, :k].det(method="berkowitz")) for k in range(1, n + 1)]


def _roots_inside(f, lo, hi):
    P = sp.Poly(f, mu)
    if P.degree() <= 0:
        return 0
    return P.count_roots(lo, hi) - int(P.eval(lo) == 0) - int(P.eval(hi) == 0)


def prove(M):
    """``(proved, rows)``: whether steps 1-3 of the module docstring succeed for ``M``, and
    per quantity ``(name, roots inside (0, mu*), sign at mu*/2)``."""
    ms = sp.Rational(M + 1, 2 * M)
    p = chi(M, mu, mu)
    q = sp.Poly(sp.cancel(sp.together((1 - z) ** M * p.subs(lam, (1 + z) / (1 - z)))), z)
    coeffs = [sp.factor(c) for c in q.all_coeffs()]
    if len(coeffs) != M + 1:
        return False, []
    items = [("a0", coeffs[0])] + [(f"D{k + 1}", d)
                                  for k, d in enumerate(hurwitz_determinants(coeffs))]
    rows = []
    for name, expr in items:
        num, den = sp.fraction(sp.together(expr))
        inside = sum(_roots_inside(fac, 0, ms) for fac, _ in sp.factor_list(num * den)[1]
                     if fac.free_symbols)
        rows.append((name, inside, int(sp.sign(expr.subs(mu, ms / 2)))))
    s0 = rows[0][2]
    ok = s0 != 0 and all(r[1] == 0 for r in rows) and all(
        r[2] == s0 ** k for k, r in enumerate(rows[1:], start=1))
    return ok, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-M", type=int, default=8)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    lines = ["# Theorem 2, converse: exact Schur stability below the edge (rank-one model)", "",
             "Equal fractions mu_W = mu_H = mu; proved on the open interval (0, (M+1)/(2M)) "
             "by the Moebius map, Routh-Hurwitz and exact Sturm counts "
             "(`python bounds/coupling_proof.py`).", "",
             "| M | proved | roots of a0, D1..DM inside (0, mu*) | seconds |", "|---|---|---|---|"]
    for M in range(2, a.max_M + 1):
        t = time.perf_counter()
        ok, rows = prove(M)
        sec = time.perf_counter() - t
        lines.append(f"| {M} | {'yes' if ok else 'NO'} | {sum(r[1] for r in rows)} | {sec:.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return text


if __name__ == "__main__":
    main()
