r"""Initialization of the factors ``W`` (m x k) and ``H`` (k x n).

Rules (as in scikit-learn's ``NMF``):

``"random"``
    :math:`W_{ik}, H_{kj} = \sqrt{\bar V / k}\,|z|,\ z \sim N(0, 1)`, so that
    ``W @ H`` has the scale of ``V`` (:math:`E[(WH)_{ij}] = k \cdot \bar V / k
    \cdot 2/\pi`).
``"nndsvd"``
    Non-negative double SVD (Boutsidis & Gallopoulos 2008): from the leading
    ``k`` singular triplets :math:`(\sigma_j, u_j, v_j)`, keep the dominant
    of the positive and negative parts of each pair. Zeros are kept
    (sparse factors); a factor column/row may be entirely zero, e.g. when
    ``V`` has rank < k. Such zeros stay zero under multiplicative updates, but
    projected gradient steps can move them.
``"nndsvda"``
    NNDSVD with zeros replaced by ``sqrt(mean(V))`` (scikit-learn: ``mean(V)``, which
    has the unit of ``V``, not of a factor; the two agree at ``mean(V) = 1``).
``"nndsvdar"``
    NNDSVD with zeros replaced by ``|sqrt(mean(V)) * z| / 100``, ``z ~ N(0, 1)``.

Scale: every rule is equivariant, ``initialize(c V)`` is ``sqrt(c)`` times
``initialize(V)`` (bit-for-bit when ``c`` is a power of four): the NNDSVD
truncation is relative to each factor's largest entry (scikit-learn's is an
absolute 1e-6) and the fills have the unit of ``sqrt(V)``.
``"custom"``
    User factors ``W0``, ``H0`` (validated and copied).
``"auto"``
    ``"custom"`` if ``W0``/``H0`` are given, otherwise ``"nndsvda"`` if
    ``k <= min(m, n)`` else ``"random"``.

The SVD is exact (LAPACK) for small dense matrices (``min(m, n) <= 50``) and a
seeded randomized range finder (Halko, Martinsson & Tropp 2011) otherwise: scikit-learn's
7 LU-normalized power iterations up to 2**16 stored entries, two above;
sparse ``V`` is never densified. NNDSVD does not depend on the sign convention of the SVD.

References
----------
.. [1] C. Boutsidis, E. Gallopoulos. "SVD based initialization: A head start
   for nonnegative matrix factorization". Pattern Recognition 41(4), 2008.
.. [2] N. Halko, P.-G. Martinsson, J. A. Tropp. "Finding structure with
   randomness". SIAM Review 53(2), 2011.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .data import _check_dtype_arg, check_matrix, check_rank, check_seed, row_chunks

__all__ = ["initialize", "INITS", "randomized_svd"]

#: Valid values of ``init``.
INITS = ("auto", "random", "nndsvd", "nndsvda", "nndsvdar", "custom")

# Dense matrices at most this many entries with min(m, n) <= _EXACT_MAX_DIM use
# an exact LAPACK SVD; others use the randomized range finder. (The exact SVD of a
# 2000 x 1000 matrix took 1.7 s where the randomized one takes 0.05 s, and 11 ms against 7 ms
# for 1797 x 64: benchmarks/README.md.)
_EXACT_MAX_ENTRIES = 2**24
_EXACT_MAX_DIM = 50
# The randomized SVD of the NNDSVD inits: LU-normalized power iterations (scikit-learn's
# normalizer), scikit-learn's 7 up to _INIT_CHEAP_ENTRIES stored entries (a few milliseconds;
# the sparse and the dense init of one small matrix then agree to round-off) and
# _INIT_POWER_ITERS above. NNDSVD keeps only the dominant signed part of each pair of
# singular vectors, and its error against V was the same to 3-4 digits with 2 iterations as
# with 7, at 0.35-0.4x the time (benchmarks/README.md).
_INIT_POWER_ITERS = 2
_INIT_NORMALIZER = "lu"
_INIT_CHEAP_ENTRIES = 2**16
_EPS = 1e-6  # scikit-learn's truncation threshold for NNDSVD entries


def _total_sum(V):
    if sp.issparse(V):
        return float(np.sum(V.data, dtype=np.float64))
    return float(sum(np.sum(b, dtype=np.float64) for _, _, b in row_chunks(V)))


def _matmul(V, X):
    """``V @ X`` as a plain ndarray (V dense, memmap or sparse)."""
    return np.asarray(V @ X)


def _rmatmul(V, X):
    """``V.T @ X`` as a plain ndarray."""
    return np.asarray(V.T @ X)


def _orth(X, normalizer):
    """An orthonormal (``"qr"``) or well-conditioned (``"lu"``: the permuted L factor,
    scikit-learn's normalizer) basis of the columns of ``X``."""
    if normalizer == "lu":
        return scipy.linalg.lu(X, permute_l=True, check_finite=False)[0]
    return np.linalg.qr(X)[0]


def randomized_svd(V, k, rng, *, n_oversamples=10, n_iter="auto", normalizer="qr"):
    """Leading ``k`` singular triplets by a randomized range finder.

    Parameters
    ----------
    V : ndarray or scipy.sparse matrix of shape (m, n)
        Only products ``V @ X`` and ``V.T @ X`` are used (sparse and memmap
        stay as they are). Computed in ``V``'s dtype.
    k : int
        Number of triplets, ``1 <= k <= min(m, n)``.
    rng : numpy.random.Generator
        Source of the Gaussian test matrix.
    n_oversamples : int, default 10
        Extra columns of the sketch.
    n_iter : int or "auto", default "auto"
        Power iterations; "auto" is 7 if ``k < 0.1 min(m, n)`` else 4 (scikit-learn's rule).
    normalizer : {"qr", "lu"}, default "qr"
        How the sketch is re-conditioned between the products of a power iteration: a QR
        factorization, or an LU factorization (cheaper; scikit-learn's default). The last
        basis is always orthonormalized by QR.

    Returns
    -------
    U : ndarray of shape (m, k)
    s : ndarray of shape (k,)
        Non-increasing.
    Vt : ndarray of shape (k, n)

    References
    ----------
    Halko, Martinsson & Tropp, SIAM Review 53(2), 2011, Algorithms 4.4 and 5.1.
    """
    m, n = V.shape
    dtype = V.dtype
    if n_iter == "auto":
        n_iter = 7 if k < 0.1 * min(m, n) else 4
    if normalizer not in ("qr", "lu"):
        raise ValueError(f"normalizer must be 'qr' or 'lu', got {normalizer!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative integer or 'auto', got {n_iter!r}")
    ell = min(k + n_oversamples, min(m, n))
    omega = rng.standard_normal((n, ell)).astype(dtype, copy=False)
    Y = _matmul(V, omega)
    for _ in range(n_iter):
        Z = _orth(_rmatmul(V, _orth(Y, normalizer)), normalizer)
        Y = _matmul(V, Z)
    Q, _ = np.linalg.qr(Y)
    B = _rmatmul(V, Q).T  # (ell, n) = Q^T V
    Ub, s, Vt = scipy.linalg.svd(B, full_matrices=False)
    return Q @ Ub[:, :k], s[:k], Vt[:k]


def _svd(V, k, rng):
    m, n = V.shape
    if not sp.issparse(V) and m * n <= _EXACT_MAX_ENTRIES and min(m, n) <= _EXACT_MAX_DIM:
        U, s, Vt = scipy.linalg.svd(np.asarray(V), full_matrices=False, check_finite=False)
        return U[:, :k], s[:k], Vt[:k]
    entries = V.nnz if sp.issparse(V) else m * n
    if entries <= _INIT_CHEAP_ENTRIES:
        return randomized_svd(V, k, rng, normalizer=_INIT_NORMALIZER)
    return randomized_svd(V, k, rng, n_iter=_INIT_POWER_ITERS, normalizer=_INIT_NORMALIZER)


def _nndsvd(V, k, rng):
    """Plain NNDSVD factors (float64 work, cast at the end)."""
    U, s, Vt = _svd(V, k, rng)
    U = U.astype(np.float64, copy=False)
    Vt = Vt.astype(np.float64, copy=False)
    s = s.astype(np.float64, copy=False)
    m, n = V.shape
    W = np.zeros((m, k))
    H = np.zeros((k, n))
    # Leading singular vectors of a non-negative matrix are one-signed.
    W[:, 0] = np.sqrt(s[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(s[0]) * np.abs(Vt[0])
    for j in range(1, k):
        x, y = U[:, j], Vt[j]
        xp, yp = np.maximum(x, 0), np.maximum(y, 0)
        xn, yn = np.maximum(-x, 0), np.maximum(-y, 0)
        xpn, ypn = np.linalg.norm(xp), np.linalg.norm(yp)
        xnn, ynn = np.linalg.norm(xn), np.linalg.norm(yn)
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            u, v, sigma = xp / xpn, yp / ypn, mp
        elif mn > 0:
            u, v, sigma = xn / xnn, yn / ynn, mn
        else:  # no usable part: leave the pair at zero (filled by a/ar)
            continue
        lam = np.sqrt(s[j] * sigma)
        W[:, j] = lam * u
        H[j] = lam * v
    # scikit-learn truncates at 1e-6 (absolute); here 1e-6 of the factor's largest entry, so
    # that the truncation never wipes a whole factor and does not depend on V's unit
    W[W < _EPS * W.max()] = 0
    H[H < _EPS * H.max()] = 0
    return W, H


def _check_factor(X, name, shape, dtype):
    if X is None:
        raise ValueError(f"init='custom' needs both W0 and H0; {name} is None")
    A = check_matrix(X, name=name, allow_sparse=False, dtype=dtype)
    if A.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got shape {A.shape}")
    return np.array(A, dtype=dtype, order="C", copy=True)


def initialize(V, rank, init="auto", *, seed=None, W0=None, H0=None, dtype=None,
               check_input=True):
    """Initial factors ``W`` (m x k) and ``H`` (k x n) for ``V ~= W H``.

    Parameters
    ----------
    V : ndarray, numpy.memmap or scipy.sparse matrix of shape (m, n)
        Non-negative data (validated with
        :func:`~nmf_sched.data.check_matrix` unless ``check_input=False``).
        Sparse and memmap input are never densified/copied.
    rank : int
        Number of components ``k``.
    init : {"auto", "random", "nndsvd", "nndsvda", "nndsvdar", "custom"}
        Rule, see the module docstring. ``"nndsvd*"`` need
        ``k <= min(m, n)``.
    seed : None, int, SeedSequence or numpy.random.Generator
        Randomness for "random", "nndsvdar" and the randomized SVD. The same
        int seed gives bit-identical factors.
    W0 : array_like of shape (m, k), optional
        Custom initial ``W`` (with ``init="custom"`` or ``"auto"``); copied.
    H0 : array_like of shape (k, n), optional
        Custom initial ``H``; copied.
    dtype : {None, numpy.float32, numpy.float64}
        Output dtype; default ``V``'s dtype after validation (float32 stays
        float32).
    check_input : bool, default True
        Run :func:`~nmf_sched.data.check_matrix` on ``V`` (skip it when the
        caller already did, to avoid a second pass over a large memmap).

    Returns
    -------
    W : ndarray of shape (m, k)
        C-contiguous, non-negative, of the output dtype.
    H : ndarray of shape (k, n)
        C-contiguous, non-negative, of the output dtype.

    Raises
    ------
    ValueError
        Unknown ``init`` (the message lists the valid names), NNDSVD with
        ``k > min(m, n)``, a custom factor of the wrong shape, negative,
        non-finite or all zero, or ``W0``/``H0`` given with a non-custom
        ``init``.

    Notes
    -----
    "random" draws ``H`` first, then ``W`` (scikit-learn's order), from a
    ``numpy.random.Generator`` (so values differ from scikit-learn's
    ``RandomState``). "nndsvda"/"nndsvdar"/"random" never return an all-zero
    column of ``W`` or row of ``H``; plain "nndsvd" may.

    References
    ----------
    C. Boutsidis, E. Gallopoulos, Pattern Recognition 41(4), 2008.
    """
    if not isinstance(init, str) or init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}; got {init!r}")
    if check_input:
        V = check_matrix(V)
    m, n = V.shape
    k = check_rank(rank, (m, n))
    out = _check_dtype_arg(dtype) or np.dtype(V.dtype)

    custom = W0 is not None or H0 is not None
    if custom and init not in ("auto", "custom"):
        raise ValueError(
            f"W0/H0 are only used with init='custom' (or 'auto'); got init={init!r}"
        )
    if init == "custom" or (init == "auto" and custom):
        W = _check_factor(W0, "W0", (m, k), out)
        H = _check_factor(H0, "H0", (k, n), out)
        return W, H
    if init == "auto":
        init = "nndsvda" if k <= min(m, n) else "random"

    rng = check_seed(seed)
    return computed_init(V, k, init, rng, _total_sum(V) / (m * n), out)


def computed_init(V, k, init, rng, mean, dtype):
    """The computed inits ("random", "nndsvd", "nndsvda", "nndsvdar") of ``V`` (an array, or any
    operator with ``@``, ``.T @`` and ``.shape``, e.g. the shards of a Dask run) whose mean
    entry is ``mean``; one copy for every path."""
    m, n = V.shape
    if init == "random":
        avg = np.sqrt(mean / k)
        H = np.abs(rng.standard_normal((k, n))) * avg
        W = np.abs(rng.standard_normal((m, k))) * avg
        return np.ascontiguousarray(W, dtype=dtype), np.ascontiguousarray(H, dtype=dtype)

    if k > min(m, n):
        raise ValueError(
            f"init={init!r} needs rank <= min(m, n) = {min(m, n)}; got rank={k} "
            f"(use init='random' for an over-complete factorization)"
        )
    W, H = _nndsvd(V, k, rng)
    # a factor entry has the unit of sqrt(V): fill at sqrt(mean(V)) (scikit-learn's mean(V) at
    # mean 1), so that fit(c V) is the sqrt(c)-scaled fit(V)
    fill = float(np.sqrt(mean))
    if init == "nndsvda":
        W[W == 0] = fill
        H[H == 0] = fill
    elif init == "nndsvdar":
        zw, zh = W == 0, H == 0
        W[zw] = np.abs(fill * rng.standard_normal(int(zw.sum())) / 100)
        H[zh] = np.abs(fill * rng.standard_normal(int(zh.sum())) / 100)
    return np.ascontiguousarray(W, dtype=dtype), np.ascontiguousarray(H, dtype=dtype)
