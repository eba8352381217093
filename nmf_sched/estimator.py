r"""``SGDNMF``: a scikit-learn estimator over the nmf-sched solver.

This is the only module of :mod:`nmf_sched` that imports scikit-learn; the
package exposes :class:`SGDNMF` lazily (``nmf_sched.SGDNMF``), so the core
works without it.

* :meth:`SGDNMF.fit` runs :func:`nmf_sched.fit` (projected stochastic
  gradient descent with a learning-rate schedule and the stability ceiling),
  then re-solves ``W`` for the final ``H`` (a few exact coordinate sweeps, the
  same solver as :meth:`~SGDNMF.transform`), so that ``fit_transform(X)`` and
  ``fit(X).transform(X)`` agree.
* :meth:`SGDNMF.transform` solves the non-negative least-squares problem
  ``min_{W >= 0} ||X - W H||_F`` with ``H = components_`` fixed, row by row.
* :meth:`SGDNMF.partial_fit` learns from a stream of row chunks (online NMF).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, check_non_negative

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

from . import api as _api
from .api import fit as _fit, resolve_schedule
from .config import check_bool, check_choice, check_int, check_path, check_real
from .init import initialize
from .objective import loss as _loss
from .sklearn_compat import check_init_dtypes, check_init_factor, penalties

__all__ = ["SGDNMF", "nnls_gram"]

_INITS = (None, "auto", "random", "nndsvd", "nndsvda", "nndsvdar", "custom")
_BLOCK_ROWS = 8192


# ---------------------------------------------------------------------------
# the non-negative least-squares solver behind transform / partial_fit
# ---------------------------------------------------------------------------
def nnls_gram(C, G, Z0=None, *, max_iter=200, tol=1e-6):
    r"""Row-wise NNLS in Gram form by exact coordinate descent (HALS).

    Solves, independently for every row ``z`` of ``Z`` (and ``c`` of ``C``),

    .. math:: \min_{z \ge 0}\ \tfrac12 z G z^\top - c\,z^\top,

    which is :math:`\min_{w \ge 0} \tfrac12\|x - wH\|^2` for ``G = H H^T`` and
    ``c = x H^T``. One sweep updates each coordinate ``j`` to its exact
    minimizer, :math:`z_j \leftarrow \max(0, z_j - (zG - c)_j / G_{jj})`, so
    the objective never increases. A row stops when its update is small:
    :math:`\|\Delta z\|_2 \le \mathrm{tol}\,\|z\|_2`. Rows are solved
    independently (also their stopping), so the result of a row does not
    depend on the other rows: transforming a subset gives the subset of the
    transform.

    Parameters
    ----------
    C : ndarray (r, k)
        Linear terms, e.g. ``X @ H.T``.
    G : ndarray (k, k)
        Symmetric positive semi-definite Gram, e.g. ``H @ H.T``.
    Z0 : ndarray (r, k), optional
        Warm start (copied). Default: the unconstrained least-squares solution
        ``C G^+`` clipped at 0.
    max_iter : int
        Maximum sweeps per row.
    tol : float
        Relative stopping tolerance on the update of a row.

    Returns
    -------
    Z : ndarray (r, k), float64, non-negative
    n_iter : int
        Sweeps done by the slowest row.

    References
    ----------
    A. Cichocki, A.-H. Phan, IEICE Trans. Fundamentals E92-A(3), 2009 (HALS).
    """
    C = np.asarray(C, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    r, k = C.shape
    d = np.diag(G).copy()
    live = d > 0
    if Z0 is None:
        Z = np.maximum(C @ np.linalg.pinv(G, hermitian=True), 0.0)
    else:
        Z = np.array(Z0, dtype=np.float64, copy=True)
    Z[:, ~live] = 0.0
    cols = np.flatnonzero(live)
    active = np.arange(r)
    n_iter = 0
    tol2 = float(tol) ** 2
    while active.size and n_iter < max_iter:
        n_iter += 1
        Za = Z[active]
        Ca = C[active]
        change = np.zeros(active.size)
        for j in cols:
            g = Za @ G[:, j] - Ca[:, j]
            new = np.maximum(Za[:, j] - g / d[j], 0.0)
            diff = new - Za[:, j]
            change += diff * diff
            Za[:, j] = new
        Z[active] = Za
        norm2 = np.einsum("ij,ij->i", Za, Za)
        still = change > tol2 * norm2
        active = active[still]
    return Z, n_iter


def _solve_rows(X, H, Z0=None, *, max_iter, tol, l1=0.0, l2=0.0):
    r"""``argmin_{W >= 0} 1/2||X - W H||^2 + l1 sum(W) + l2/2 ||W||^2`` row-wise, in blocks
    of rows (float64): the Gram ``HH^T + l2 I`` and the linear term ``X H^T - l1``."""
    H64 = np.asarray(H, dtype=np.float64)
    G = H64 @ H64.T
    if l2:
        G[np.diag_indices_from(G)] += l2
    m = X.shape[0]
    W = np.empty((m, H.shape[0]), dtype=np.float64)
    n_iter = 0
    for a in range(0, m, _BLOCK_ROWS):
        b = min(m, a + _BLOCK_ROWS)
        C = np.asarray(X[a:b] @ H64.T, dtype=np.float64)
        if l1:
            C -= l1
        W[a:b], it = nnls_gram(C, G, None if Z0 is None else Z0[a:b], max_iter=max_iter, tol=tol)
        n_iter = max(n_iter, it)
    return W, n_iter


# ---------------------------------------------------------------------------
# parameter validation (settings are checked at fit, never in __init__)
# ---------------------------------------------------------------------------
def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _param(check, name, value, **kw):
    """A check of :mod:`nmf_sched.config`, raising ValueError (scikit-learn's convention for
    a bad parameter) that names the estimator, the parameter and the value."""
    try:
        return check(name, value, **kw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"SGDNMF parameter {exc}") from exc


def _int_param(name, value, minimum=1, allow_none=False, allow_str=None):
    return _param(check_int, name, value, minimum=minimum, allow_none=allow_none,
                  words=(allow_str,) if allow_str else ())


def _float_param(name, value, *, positive=False, allow_none=False, upper=None):
    return _param(check_real, name, value, positive=positive, allow_none=allow_none, upper=upper)


def _bad(name, value, what):
    return ValueError(f"SGDNMF parameter {name} must be {what}; got {value!r}")


class SGDNMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    r"""Non-negative matrix factorization by projected stochastic gradient descent.

    Finds ``W >= 0`` (n_samples x n_components) and ``H = components_ >= 0``
    (n_components x n_features) minimizing :math:`\tfrac12\|X - WH\|_F^2`
    with :func:`nmf_sched.fit`: row minibatches, a pluggable learning-rate
    schedule, and (with ``clip_lr``) the step capped at ``kappa`` times the
    stability ceiling.

    Parameters
    ----------
    n_components : int, "auto" or None, default None
        Rank ``k``; None and ``"auto"`` use ``n_features`` (as scikit-learn's NMF), except
        that ``"auto"`` with ``init="custom"`` takes the rank of the custom ``H``.
    schedule : str, (str, dict), float, callable or Schedule, default "auto"
        Learning-rate schedule, as in :func:`nmf_sched.fit`; ``"auto"`` is
        GreedyLR started at, and capped by, the stability ceiling.
    epochs : int, default 200
        Maximum passes over the rows.
    max_iter : int or None, default None
        scikit-learn's name for ``epochs``; when given it is used (``epochs`` must then be
        left at its default).
    batch_size : int or "auto", default "auto"
        Rows per stochastic step (``"auto"``: about 16 batches per epoch, at
        least 256 rows).
    init : {None, "auto", "random", "nndsvd", "nndsvda", "nndsvdar", "custom"}, default None
        Initialization (:func:`nmf_sched.init.initialize`); None is ``"auto"``.
        ``"custom"`` takes ``W`` and ``H`` from :meth:`fit` / :meth:`fit_transform` (and
        ``H`` from the first :meth:`partial_fit`), checked as scikit-learn checks them: a
        dtype other than X's is a TypeError, a wrong shape a ValueError naming the
        dimension.
    alpha_W : float >= 0, default 0.0
        Strength of the penalty on ``W`` (scaled by ``n_features``, as scikit-learn):
        :math:`n\,\alpha_W(\rho\|W\|_1 + \tfrac{1-\rho}{2}\|W\|_F^2)`.
    alpha_H : float >= 0 or "same", default "same"
        Strength of the penalty on ``H`` (scaled by ``n_samples``); ``"same"`` takes
        ``alpha_W``.
    l1_ratio : float in [0, 1], default 0.0
        ``rho``: the L1 share of the penalties (1: pure L1, sparse factors; 0: pure L2).
        The solver takes proximal steps (soft-threshold, then project at 0); the L2 part
        adds ``n alpha_W (1 - rho)`` (``m alpha_H (1 - rho)``) to the block's curvature and
        lowers its stability ceiling to ``2 / (L + l2)`` (bounds/THEORY.md).
    random_state : None, int, numpy RandomState or Generator, default None
        Seed; an int gives bit-identical results (the same as
        ``nmf_sched.fit(seed=random_state)``).
    noise_std : float, default 0.0
        Std of additive Gaussian noise on every gradient entry.
    clip_lr : bool, default True
        Cap each block's step at ``kappa`` times its stability ceiling.
    kappa : float, default 0.9
        Fraction of the ceiling allowed.
    precondition : str or None, default None
        Gradient preconditioner, one of :func:`nmf_sched.fit`'s (``"gram"``:
        the LR is dimensionless, 1 is a block Newton step; ``"none"``: plain
        SGD). None uses :func:`nmf_sched.fit`'s default.
    tol : float, default 1e-4
        Relative-improvement stopping tolerance of the solver (0 disables).
    max_time : float or None, default None
        Wall-clock budget of a fit in seconds.
    transform_max_iter : int, default 200
        Maximum coordinate sweeps per row of the NNLS solve in
        :meth:`transform` (and the polishing of ``W`` at the end of fit).
    transform_tol : float, default 1e-6
        Relative stopping tolerance of that solve.
    checkpoint : path or None, default None
        Write a checkpoint of the fit there every ``checkpoint_every`` epochs (atomically);
        ``fit(X, resume=path)`` continues a fit from one, bit-identically.
    checkpoint_every : int, default 1
    forget_factor : float in [0, 1], default 0.7
        :meth:`partial_fit` only: weight kept by the statistics of the chunks
        seen so far when a new chunk arrives (0 forgets everything, 1 keeps
        the plain sum).

    Attributes
    ----------
    components_ : ndarray (n_components, n_features)
        ``H``.
    n_components_ : int
    reconstruction_err_ : float
        ``||X - W H||_F`` on the training data after fit (``W`` as returned
        by ``fit_transform``).
    n_iter_ : int
        Epochs run by fit (chunks seen by partial_fit).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string column names.
    fit_result_ : FitResult
        What :func:`nmf_sched.fit` returned (trace, stop reason, bound); its
        ``W`` is the solver's, before the final re-solve.
    n_samples_seen_ : int
        partial_fit only: rows seen so far.
    n_steps_ : int
        partial_fit only: chunks seen so far.

    Notes
    -----
    ``partial_fit`` is online NMF with sufficient statistics (Mairal et al.):
    for a chunk ``X_c`` it solves ``W_c`` (as :meth:`transform`), updates
    :math:`A \leftarrow \rho A + W_c^\top W_c`, :math:`B \leftarrow \rho B +
    W_c^\top X_c` (``rho = forget_factor``) and moves ``H`` by a few exact
    coordinate sweeps on the surrogate :math:`\tfrac12\mathrm{tr}(H^\top A H)
    - \mathrm{tr}(H^\top B)`, each a projected step of LR ``1/A_{jj}`` on one
    row of ``H``. It does not use ``schedule``.

    References
    ----------
    J. Mairal, F. Bach, J. Ponce, G. Sapiro, "Online learning for matrix
    factorization and sparse coding", JMLR 11, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from nmf_sched import SGDNMF
    >>> X = np.random.default_rng(0).random((100, 20))
    >>> est = SGDNMF(5, epochs=30, random_state=0)
    >>> W = est.fit_transform(X)
    >>> W.shape, est.components_.shape
    ((100, 5), (5, 20))
    """

    def __init__(self, n_components=None, *, schedule="auto", epochs=200, max_iter=None,
                 batch_size="auto", init=None, random_state=None, alpha_W=0.0, alpha_H="same",
                 l1_ratio=0.0, noise_std=0.0, clip_lr=True, kappa=0.9, precondition=None,
                 tol=1e-4, max_time=None, transform_max_iter=200, transform_tol=1e-6,
                 forget_factor=0.7, checkpoint=None, checkpoint_every=1):
        self.n_components = n_components
        self.schedule = schedule
        self.epochs = epochs
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.init = init
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.noise_std = noise_std
        self.clip_lr = clip_lr
        self.kappa = kappa
        self.precondition = precondition
        self.tol = tol
        self.max_time = max_time
        self.transform_max_iter = transform_max_iter
        self.transform_tol = transform_tol
        self.forget_factor = forget_factor
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    # ------------------------------------------------------------------ plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _more_tags(self):  # pragma: no cover - scikit-learn < 1.6
        return {"requires_positive_X": True, "preserves_dtype": [np.float64, np.float32]}

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def _validate(self, X, reset):
        kw = dict(accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32], reset=reset)
        if _sk_validate_data is not None:
            X = _sk_validate_data(self, X, **kw)
        else:  # pragma: no cover - older scikit-learn
            X = self._validate_data(X, **kw)
        check_non_negative(X, f"{type(self).__name__} (input X)")
        return X

    def _check_params(self, n_features):
        """Validate every setting; ValueError names the parameter. ``rank`` is None for
        ``n_components="auto"`` (resolved from the custom init by :meth:`_start`)."""
        p = {}
        k = _int_param("n_components", self.n_components, allow_none=True, allow_str="auto")
        p["rank"] = None if k == "auto" else (n_features if k is None else k)
        p["epochs"] = _int_param("epochs", self.epochs)
        if self.max_iter is not None:
            p["epochs"] = _int_param("max_iter", self.max_iter)
            if not (_is_int(self.epochs) and self.epochs == 200):
                raise ValueError(f"SGDNMF parameters max_iter={self.max_iter!r} and "
                                 f"epochs={self.epochs!r} both set the number of epochs; "
                                 "give one of them")
        p["batch_size"] = _int_param("batch_size", self.batch_size, allow_str="auto")
        p["init"] = _param(check_choice, "init", self.init, choices=_INITS) or "auto"
        p["alpha_W"] = _float_param("alpha_W", self.alpha_W)
        p["alpha_H"] = _param(check_real, "alpha_H", self.alpha_H, words=("same",))
        p["l1_ratio"] = _float_param("l1_ratio", self.l1_ratio, upper=1.0)
        p["noise_std"] = _float_param("noise_std", self.noise_std)
        p["clip_lr"] = _param(check_bool, "clip_lr", self.clip_lr)
        p["kappa"] = _float_param("kappa", self.kappa, positive=True)
        p["precondition"] = (None if self.precondition is None else
                             _param(check_choice, "precondition", self.precondition,
                                    choices=tuple(_api.PRECONDITIONERS)))
        p["checkpoint"] = _param(check_path, "checkpoint", self.checkpoint)
        p["checkpoint_every"] = _int_param("checkpoint_every", self.checkpoint_every)
        p["tol"] = _float_param("tol", self.tol)
        p["max_time"] = _float_param("max_time", self.max_time, positive=True, allow_none=True)
        self._transform_settings()
        _float_param("forget_factor", self.forget_factor, upper=1.0)
        try:
            resolve_schedule(self.schedule, total=p["epochs"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"SGDNMF parameter schedule is invalid ({exc}); got "
                             f"{self.schedule!r}") from exc
        p["schedule"] = self.schedule
        p["seed"] = self._seed()
        return p

    def _penalties(self, p, n_samples, n_features):
        """``(l1_W, l2_W, l1_H, l2_H)`` with scikit-learn's scaling."""
        return penalties(p["alpha_W"], p["alpha_H"], p["l1_ratio"], n_samples, n_features)

    def _custom_init(self, X, p, W, H, whom_rows=True):
        """The checked custom ``(W, H)`` of ``init="custom"`` and the rank they give, or
        ``(None, None, rank)`` (with scikit-learn's RuntimeWarning when W/H are ignored)."""
        m, n = X.shape
        k = "auto" if p["rank"] is None else p["rank"]
        name = type(self).__name__
        if p["init"] != "custom":
            if W is not None or H is not None:
                warnings.warn("When init!='custom', provided W or H are ignored. Set "
                              "init='custom' to use them as initialization.", RuntimeWarning,
                              stacklevel=3)
            return None, None, (n if k == "auto" else k)
        H = check_init_factor(H, (k, n), f"{name} (input H)")
        k = H.shape[0]
        if whom_rows or W is not None:
            W = check_init_factor(W, (m, k), f"{name} (input W)")
        check_init_dtypes(X.dtype, W, H)
        return W, H, k

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, W=None, H=None, resume=None):
        """Learn the factorization of ``X`` (n_samples, n_features); returns self.

        ``W``, ``H``: the custom initialization (``init="custom"``). ``resume``: a
        checkpoint file written by a fit of the same data and settings (see the
        ``checkpoint`` parameter); the fit continues from it.
        """
        self.fit_transform(X, W=W, H=H, resume=resume)
        return self

    def fit_transform(self, X, y=None, W=None, H=None, resume=None):
        """Learn the factorization and return ``W`` (n_samples, n_components).

        ``W``, ``H``: the custom initialization (``init="custom"``; arrays of X's dtype,
        shapes (n_samples, k) and (k, n_features)). ``W`` is re-solved exactly for the
        final ``components_`` (starting from the solver's ``W``), so it equals
        ``transform(X)`` up to the transform tolerance and its objective is never above the
        solver's. ``resume``: continue from a checkpoint file (as :meth:`fit`).
        """
        X = self._validate(X, reset=True)
        p = self._check_params(X.shape[1])
        W0, H0, rank = self._custom_init(X, p, W, H)
        extra = {} if p["precondition"] is None else {"precondition": p["precondition"]}
        res = _fit(X, rank, schedule=p["schedule"], epochs=p["epochs"],
                   batch_size=p["batch_size"], init=p["init"], seed=p["seed"], W0=W0, H0=H0,
                   noise_std=p["noise_std"], clip_lr=p["clip_lr"], kappa=p["kappa"],
                   alpha_W=p["alpha_W"], alpha_H=p["alpha_H"], l1_ratio=p["l1_ratio"],
                   tol=p["tol"], max_time=p["max_time"], checkpoint=p["checkpoint"],
                   checkpoint_every=p["checkpoint_every"],
                   resume=_param(check_path, "resume", resume), **extra)
        if res.stop_reason == "diverged":
            warnings.warn(f"SGDNMF: the solver diverged after {res.n_epochs} epochs "
                          f"(rel_error {res.rel_error:.4g}); lower kappa or the schedule's LR",
                          ConvergenceWarning, stacklevel=2)
        H = np.asarray(res.H)
        l1_W, l2_W, _, _ = self._penalties(p, *X.shape)
        ts = self._transform_settings()
        W, _ = _solve_rows(X, H, np.asarray(res.W, dtype=np.float64), l1=l1_W, l2=l2_W, **ts)
        W = W.astype(X.dtype, copy=False)
        self.components_ = H
        self.n_components_ = H.shape[0]
        self._n_components = self.n_components_
        self.reconstruction_err_ = math.sqrt(2.0 * _loss(X, W, H))
        self.n_iter_ = int(res.n_epochs)
        self.fit_result_ = res
        for name in ("n_samples_seen_", "n_steps_", "_A", "_B", "_n_eff"):
            if hasattr(self, name):
                delattr(self, name)
        return W

    def partial_fit(self, X, y=None, W=None, H=None):
        """Update the factorization with one chunk of rows ``X``; returns self.

        Call it once per chunk (e.g. ``for chunk in chunks: est.partial_fit(chunk)``),
        possibly over several passes. The first call (on an unfitted
        estimator) initializes ``components_`` from the chunk (or from ``H`` with
        ``init="custom"``; a given ``W`` warm-starts that chunk's coefficients); a call
        after :meth:`fit` continues from the fitted ``components_``.
        """
        first = not hasattr(self, "components_")
        X = self._validate(X, reset=first)
        p = self._check_params(X.shape[1])
        ts = self._transform_settings()
        rho = float(self.forget_factor)
        Z0 = None
        if first:
            W0, H0, rank = self._custom_init(X, p, W, H, whom_rows=False)
            if H0 is None:
                _, H0 = initialize(X, rank, p["init"], seed=p["seed"])
            Z0 = None if W0 is None else np.asarray(W0, dtype=np.float64)
            self.components_ = np.ascontiguousarray(H0).astype(X.dtype, copy=False)
            self.n_components_ = self._n_components = H0.shape[0]
        H = np.asarray(self.components_, dtype=np.float64)
        k = H.shape[0]
        if not hasattr(self, "_A"):
            self._A = np.zeros((k, k))
            self._B = np.zeros((k, H.shape[1]))
            self.n_samples_seen_ = 0
            self.n_steps_ = 0
            self._n_eff = 0.0
        l1_W, l2_W, _, _ = self._penalties(p, X.shape[0], X.shape[1])
        Wc, _ = _solve_rows(X, H, Z0, l1=l1_W, l2=l2_W, **ts)
        self._A = rho * self._A + Wc.T @ Wc
        self._B = rho * self._B + np.asarray((X.T @ Wc).T if sp.issparse(X) else Wc.T @ X)
        # the H penalty scales with the samples the statistics stand for
        self._n_eff = rho * self._n_eff + X.shape[0]
        _, _, l1_H, l2_H = self._penalties(p, self._n_eff, X.shape[1])
        A = self._A + l2_H * np.eye(k) if l2_H else self._A
        # exact coordinate sweeps on the surrogate 0.5 tr(H^T A H) - tr(H^T B) + penalties
        Ht, _ = nnls_gram(self._B.T - l1_H, A, H.T, max_iter=_PARTIAL_SWEEPS, tol=ts["tol"])
        self.components_ = np.ascontiguousarray(Ht.T).astype(self.components_.dtype, copy=False)
        self.n_samples_seen_ += X.shape[0]
        self.n_steps_ += 1
        self.n_iter_ = self.n_steps_
        return self

    def _transform_settings(self):
        return dict(max_iter=_int_param("transform_max_iter", self.transform_max_iter),
                    tol=_float_param("transform_tol", self.transform_tol))

    def _seed(self):
        rs = self.random_state
        if rs is None or isinstance(rs, np.random.Generator):
            return rs
        if _is_int(rs):
            if rs < 0:
                raise _bad("random_state", rs, "None, an integer >= 0, a RandomState or a Generator")
            return int(rs)
        if isinstance(rs, np.random.RandomState):
            return int(check_random_state(rs).randint(np.iinfo(np.int32).max))
        raise _bad("random_state", rs, "None, an integer >= 0, a RandomState or a Generator")

    # ------------------------------------------------------------------ transform
    def transform(self, X):
        """``W = argmin_{W >= 0} ||X - W H||_F^2 / 2`` (plus the ``W`` penalties of
        ``alpha_W``, ``l1_ratio``) with ``H = components_`` fixed.

        Parameters
        ----------
        X : array or sparse matrix (n_samples, n_features), non-negative

        Returns
        -------
        W : ndarray (n_samples, n_components), X's float dtype
        """
        check_is_fitted(self, "components_")
        X = self._validate(X, reset=False)
        return self._transform(X, self.components_)[0]

    def _transform(self, X, H):
        p = self._check_params(X.shape[1])
        l1_W, l2_W, _, _ = self._penalties(p, *X.shape)
        W, n_iter = _solve_rows(X, H, l1=l1_W, l2=l2_W, **self._transform_settings())
        return W.astype(X.dtype, copy=False), n_iter

    def _solve_W_fixed_H(self, X, H):
        """``non_negative_factorization(update_H=False)``: ``(W, H, n_iter)`` for a fixed,
        checked ``H`` (its rank sets ``n_components="auto"``)."""
        X = self._validate(X, reset=True)
        p = self._check_params(X.shape[1])
        k = "auto" if p["rank"] is None else p["rank"]
        H = check_init_factor(H, (k, X.shape[1]), f"{type(self).__name__} (input H)")
        check_init_dtypes(X.dtype, None, H)
        W, n_iter = self._transform(X, H)
        return W, H, n_iter

    def inverse_transform(self, X):
        """Reconstruct data: ``X @ components_`` for ``X = W`` (n_samples, n_components)."""
        check_is_fitted(self, "components_")
        from sklearn.utils import check_array

        W = check_array(X, accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32])
        if W.shape[1] != self.components_.shape[0]:
            raise ValueError(f"X has {W.shape[1]} columns; expected n_components="
                             f"{self.components_.shape[0]}")
        out = W @ self.components_
        return np.asarray(out.toarray() if sp.issparse(out) else out)


#: coordinate sweeps on the surrogate per partial_fit call
_PARTIAL_SWEEPS = 10
