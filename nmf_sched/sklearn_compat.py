r"""scikit-learn's NMF API on nmf-sched: custom inits, regularization, the functional form.

* :func:`check_init_factor`: a custom ``W`` or ``H`` checked as scikit-learn's NMF checks
  one (shape per dimension, non-negative, not all zero), then its dtype against ``X``'s.
* :func:`penalties`: scikit-learn's scaling of ``alpha_W``, ``alpha_H`` and ``l1_ratio``.
  The objective of a regularized fit is

  .. math::

      \tfrac12\|X - WH\|_F^2
      + n\,\alpha_W\,\rho\,\|W\|_1 + \tfrac{n}{2}\,\alpha_W(1-\rho)\,\|W\|_F^2
      + m\,\alpha_H\,\rho\,\|H\|_1 + \tfrac{m}{2}\,\alpha_H(1-\rho)\,\|H\|_F^2

  with ``m = n_samples``, ``n = n_features`` and ``rho = l1_ratio``: the penalty of ``W``
  (one row per sample) grows with the features and that of ``H`` with the samples, so the
  data term and the penalties keep their balance whatever the size of ``X``.
* :func:`non_negative_factorization`: ``(W, H, n_iter)`` as scikit-learn's function of the
  same name; ``update_H=False`` solves ``W`` for a fixed ``H`` (the transform's NNLS).

Nothing here imports scikit-learn at module level (the estimator is imported when the
functional form is called).
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["check_init_factor", "check_init_dtypes", "penalties", "non_negative_factorization"]


def check_init_factor(A, shape, whom):
    """A custom initial factor ``A`` checked against ``shape`` (entries may be ``"auto"``).

    Raises ValueError naming the wrong dimension (``first``/``second``), a negative entry,
    a non-finite entry or an all-zero factor; returns ``A`` as a 2-D array (dtype kept).
    """
    if A is None:
        raise ValueError(f"{whom} is required (init='custom' takes both W and H; "
                         "update_H=False takes H)")
    A = np.asarray(A.toarray() if hasattr(A, "toarray") else A)
    if A.ndim != 2:
        raise ValueError(f"{whom} must be 2-D, got shape {A.shape}")
    if A.dtype.kind not in "fiu":
        raise TypeError(f"{whom} must have a numeric dtype, got dtype {A.dtype}")
    for axis, word in ((0, "first"), (1, "second")):
        if shape[axis] != "auto" and A.shape[axis] != shape[axis]:
            raise ValueError(f"Array with wrong {word} dimension passed to {whom}. "
                             f"Expected {shape[axis]}, but got {A.shape[axis]}.")
    if not np.isfinite(A).all():
        raise ValueError(f"{whom} must be finite (it contains NaN or inf)")
    if A.size and A.min() < 0:
        raise ValueError(f"Negative values in data passed to {whom}")
    if A.size == 0 or A.max() == 0:
        raise ValueError(f"Array passed to {whom} is full of zeros.")
    return A


def check_init_dtypes(X_dtype, W=None, H=None):
    """TypeError naming the dtypes when a custom ``W``/``H`` differs from ``X``'s dtype."""
    if W is None:
        if H is not None and H.dtype != X_dtype:
            raise TypeError(f"H should have the same dtype as X. Got H.dtype = {H.dtype} "
                            f"(X.dtype = {X_dtype}).")
        return
    if H.dtype != X_dtype or W.dtype != X_dtype:
        raise TypeError(f"H and W should have the same dtype as X. Got H.dtype = {H.dtype} "
                        f"and W.dtype = {W.dtype} (X.dtype = {X_dtype}).")


def penalties(alpha_W, alpha_H, l1_ratio, n_samples, n_features):
    r"""``(l1_W, l2_W, l1_H, l2_H)``: the absolute penalties of the objective above.

    ``alpha_H="same"`` takes ``alpha_W``. ``l1_W = n alpha_W rho``, ``l2_W = n alpha_W (1 -
    rho)``, ``l1_H = m alpha_H rho``, ``l2_H = m alpha_H (1 - rho)``.
    """
    aH = alpha_W if isinstance(alpha_H, str) and alpha_H == "same" else alpha_H
    r = float(l1_ratio)
    return (n_features * alpha_W * r, n_features * alpha_W * (1.0 - r),
            n_samples * aH * r, n_samples * aH * (1.0 - r))


def non_negative_factorization(X, W=None, H=None, n_components="auto", *, init=None,
                               update_H=True, tol=1e-4, max_iter=200, alpha_W=0.0,
                               alpha_H="same", l1_ratio=0.0, random_state=None, **kwargs):
    r"""Compute ``X ~= W H`` (all non-negative): scikit-learn's functional form on SGDNMF.

    Minimizes the regularized objective of this module (``alpha_W``, ``alpha_H``,
    ``l1_ratio`` scaled as scikit-learn scales them).

    Parameters
    ----------
    X : array or sparse matrix (n_samples, n_features), non-negative
    W : array (n_samples, n_components), optional
        Initial ``W`` with ``init="custom"``; ignored (with a RuntimeWarning) otherwise.
    H : array (n_components, n_features), optional
        Initial ``H`` with ``init="custom"``; with ``update_H=False`` the fixed ``H``.
    n_components : int, "auto" or None, default "auto"
        ``"auto"``: from ``H`` (custom init or ``update_H=False``), else ``n_features``.
    init : None, "auto", "random", "nndsvd", "nndsvda", "nndsvdar" or "custom"
    update_H : bool, default True
        False: solve only ``W`` for the given ``H`` (exact non-negative least squares, row
        by row, with the ``W`` penalties), as :meth:`SGDNMF.transform` does.
    tol, max_iter : as SGDNMF's ``tol`` and ``max_iter`` (epochs)
    alpha_W, alpha_H, l1_ratio : the penalties (see :func:`penalties`)
    random_state : seed
    **kwargs : further SGDNMF settings (``schedule``, ``batch_size``, ``precondition``, ...)

    Returns
    -------
    W : ndarray (n_samples, n_components)
    H : ndarray (n_components, n_features)
    n_iter : int
        Epochs run (``update_H=False``: coordinate sweeps of the slowest row).
    """
    from .estimator import SGDNMF

    est = SGDNMF(n_components=n_components, init=init, tol=tol, max_iter=max_iter,
                 alpha_W=alpha_W, alpha_H=alpha_H, l1_ratio=l1_ratio,
                 random_state=random_state, **kwargs)
    if not isinstance(update_H, (bool, np.bool_)):
        raise TypeError(f"update_H must be a bool, got {update_H!r}")
    if update_H:
        Wout = est.fit_transform(X, W=W, H=H)
        return Wout, est.components_, est.n_iter_
    if W is not None:
        warnings.warn("When update_H=False, the provided initial W is not used.", RuntimeWarning,
                      stacklevel=2)
    return est._solve_W_fixed_H(X, H)
