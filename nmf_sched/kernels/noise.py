"""Compiled passes of the noise estimate (:mod:`nmf_sched.engine.noise`).

:func:`gmap` is the weighted squared norm of a block's gradient mapping in one pass;
:func:`curve_parts` splits a block for the gradient-mapping curve
``r -> ||G_{r eta}(X)||_w^2`` (``0 < r <= 1``) in one pass over the entries; the numpy
expression it replaces stays in the tests as the reference.
"""
from __future__ import annotations

import numpy as np

from ._jit import jit

__all__ = ["curve_parts", "gmap"]


@jit
def _curve_parts(X, g, e, w, t, a, bb):
    n, k = X.shape
    a0 = 0.0
    cnt = 0
    for i in range(n):
        for c in range(k):
            gi = g[i, c]
            wg2 = w[c] * gi * gi
            if gi > 0.0:
                ti = X[i, c] / (e[c] * gi)
                if ti >= 1.0:
                    a0 += wg2
                elif ti > 0.0:
                    t[cnt] = ti
                    a[cnt] = wg2
                    q = X[i, c] / e[c]
                    bb[cnt] = w[c] * q * q
                    cnt += 1
            else:
                a0 += wg2
    return a0, cnt


def curve_parts(X, g, e, w):
    """For ``X, g`` (r x k, float64) and per-column ``e`` (steps) and ``w`` (weights):
    ``(a0, t, a, b)`` with ``a0`` the weighted ``g^2`` of the entries never cut for
    ``r <= 1`` (``g <= 0`` or ``t >= 1``), and for the entries with ``0 < t < 1``
    (``t = X / (e g)``, in row-major order) their ``t``, ``w g^2`` and ``w (X / e)^2``.
    Entries with ``g > 0`` and ``X = 0`` are always cut with a zero mapping: left out."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    g = np.ascontiguousarray(g, dtype=np.float64)
    e = np.ascontiguousarray(np.broadcast_to(e, (X.shape[1],)), dtype=np.float64)
    w = np.ascontiguousarray(np.broadcast_to(w, (X.shape[1],)), dtype=np.float64)
    size = X.size
    t, a, b = np.empty(size), np.empty(size), np.empty(size)
    a0, cnt = _curve_parts(X, g, e, w, t, a, b)
    return float(a0), t[:cnt], a[:cnt], b[:cnt]


@jit
def _gmap(X, g, e, w):
    n, k = X.shape
    s = 0.0
    for i in range(n):
        for c in range(k):
            x = X[i, c]
            y = x - e[c] * g[i, c]
            if y < 0.0:
                y = 0.0
            d = (x - y) / e[c]
            s += w[c] * d * d
    return s


def gmap(X, g, e, w):
    """``sum_ic w_c ((X_ic - max(X_ic - e_c g_ic, 0)) / e_c)^2`` for ``X, g`` (r x k) and
    per-column steps ``e`` and weights ``w`` (float64)."""
    k = X.shape[1]
    return float(_gmap(np.ascontiguousarray(X, dtype=np.float64),
                       np.ascontiguousarray(g, dtype=np.float64),
                       np.ascontiguousarray(np.broadcast_to(e, (k,)), dtype=np.float64),
                       np.ascontiguousarray(np.broadcast_to(w, (k,)), dtype=np.float64)))
