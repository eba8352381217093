r"""Stability ceilings for projected (stochastic) gradient steps on NMF.

The loss is :math:`f(W,H) = \tfrac12\|V - WH\|_F^2`. The derivation of every
formula here, with its assumptions, is ``bounds/THEORY.md``; the empirical
check is ``bounds/verify.py``. Section numbers below (§) refer to THEORY.md.

Per block the loss is a convex quadratic whose curvature is a k x k Gram
matrix (§1-2):

* ``W`` rows (any batch ``B``): :math:`L_W = \lambda_{\max}(HH^\top)`; the row
  step is exact: rows of ``W`` do not interact.
* ``H`` from a row batch ``B`` of ``b`` out of ``m`` rows, gradient scaled by
  ``s = m/b`` (unbiased): :math:`L_H^B = s\,\lambda_{\max}(W_B^\top W_B)`;
  full data: :math:`L_H = \lambda_{\max}(W^\top W)`.

A projected step ``X+ = max(0, X - eta g)`` on an L-smooth convex block never
increases that block's loss when ``0 < eta <= 2/L`` (descent lemma plus the
projection inequality, §1), and the step map is non-expansive, so the ceiling
of a block is ``2/L``. Above ``2/L`` the map expands along the top
eigenvector (linear instability) unless the projection happens to cut it.

The minibatch scheme as a whole (W_B, then H with the new W_B) is stricter:
with ``M = m/b`` batches per epoch it is linearly unstable above
``(1 + b/m)/2`` of the per-block ceilings (§2.2: a theorem in the rank-one
model, checked numerically in general), i.e. ``eta_X < (1 + b/m) / L_X``.
:func:`minibatch_factor` gives the factor, ``step_ceilings(...,
coupling="sequential")`` and :func:`ceiling_W` apply it.

Per-step helpers (:func:`step_ceilings`, :func:`noise_adjusted`,
:func:`joint_ceiling`, :func:`joint_fraction`, :func:`gram_safe_ceiling`,
:func:`noise_floor`) cost O(k^3) at most. :func:`report` builds a
:class:`BoundReport` for a matrix at an initialization (or given factors),
sparse-aware and without m x n temporaries.

References
----------
.. [1] Y. Nesterov. *Introductory Lectures on Convex Optimization*, Kluwer 2004, Lemma 1.2.3.
.. [2] D. P. Bertsekas. *Nonlinear Programming*, 3rd ed., Athena 2016, §2.3 (gradient projection).
.. [3] H. Robbins, S. Monro. "A stochastic approximation method". Ann. Math. Stat. 22(3), 1951.
.. [4] L. Bottou, F. E. Curtis, J. Nocedal. "Optimization methods for large-scale machine
   learning". SIAM Review 60(2), 2018, §4.
.. [5] C.-J. Lin. "Projected gradient methods for nonnegative matrix factorization".
   Neural Computation 19(10), 2007.
.. [6] N. Gillis. *Nonnegative Matrix Factorization*. SIAM 2020.
"""
from __future__ import annotations

from .ceilings import *  # noqa: F401,F403
from .ceilings import __all__ as _c
from .curvature import *  # noqa: F401,F403
from .curvature import __all__ as _v
from .noise import *  # noqa: F401,F403
from .noise import __all__ as _n
from .report import *  # noqa: F401,F403
from .report import __all__ as _r

__all__ = [*_c, *_v, *_n, *_r]
