"""``nmf_sched.fit``: validate, choose the backend, build the run, return a FitResult."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import is_cupy, is_sparse
from .data import check_matrix, check_rank, check_seed
from .bounds import rescale_balance
from .init import initialize
from .result import FitResult
from .schedules.base import make_schedule
from .solver import PRECONDITIONERS, SolverConfig, run

__all__ = ["fit", "AUTO_SCHEDULE", "default_batch_size"]

#: What ``schedule="auto"`` means: GreedyLR started at half the stability ceiling
#: (the initial-LR rule); the solver caps every step at kappa * ceiling, so
#: nobody picks a learning rate and no step exceeds the ceiling.
AUTO_SCHEDULE = ("greedy", {"lr": "bound", "max_lr": None})


def default_batch_size(m: int) -> int:
    """``batch_size="auto"``: about 16 batches per epoch, at least 1024 rows."""
    return int(min(m, max(1024, math.ceil(m / 16))))


def _check_int(name, value, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name, value, *, allow_none=False, positive=False, allow_inf=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return value


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def build_config(*, epochs, batch_size, m, noise_std, clip_lr, kappa, clip_update, max_value,
                 precondition, tol, n_iter_no_change, max_time, callback, progress,
                 schedule_every, schedule_loss, shuffle, guard, balance=True) -> SolverConfig:
    """Validate the solver settings (each error names the argument and value)."""
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
        batch_size = default_batch_size(m)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    for name, val in (("clip_lr", clip_lr), ("progress", progress), ("guard", guard),
                      ("balance", balance)):
        if not isinstance(val, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {val!r}")
    return SolverConfig(
        epochs=_check_int("epochs", epochs),
        batch_size=_check_int("batch_size", batch_size),
        noise_std=_check_float("noise_std", noise_std),
        clip_lr=bool(clip_lr),
        kappa=_check_float("kappa", kappa, positive=True),
        clip_update=_check_float("clip_update", clip_update, allow_none=True, positive=True),
        max_value=_check_float("max_value", max_value, allow_none=True, positive=True),
        precondition=_check_choice("precondition", precondition, PRECONDITIONERS),
        tol=_check_float("tol", tol),
        n_iter_no_change=_check_int("n_iter_no_change", n_iter_no_change),
        max_time=_check_float("max_time", max_time, allow_none=True, positive=True, allow_inf=True),
        callback=callback,
        progress=bool(progress),
        schedule_every=None if schedule_every is None else _check_int("schedule_every", schedule_every),
        schedule_loss=_check_choice("schedule_loss", schedule_loss, ("full", "batch")),
        shuffle=_check_choice("shuffle", shuffle, ("rows", "blocks", "none")),
        guard=bool(guard),
        balance=bool(balance),
    )


def resolve_schedule(schedule, *, total):
    """``fit(schedule=...)`` -> a Schedule instance (``"auto"`` included)."""
    if isinstance(schedule, str) and schedule.lower() == "auto":
        schedule = AUTO_SCHEDULE
    return make_schedule(schedule, total=total)


def fit(V, rank, *, schedule="auto", epochs=200, batch_size="auto", init="auto", seed=None,
        W0=None, H0=None, noise_std=0.0, clip_lr=True, kappa=0.9, clip_update=None,
        max_value=None, precondition="cd", tol=1e-4, n_iter_no_change=5, max_time=None,
        callback=None, progress=False, schedule_every=None, schedule_loss="full",
        shuffle="rows", guard=True, balance=True, rescale_init=True, mask=None, missing=None,
        lam=0.01, validation=None,
        schedule_on="train", adaptive=False, solver="entry") -> FitResult:
    r"""Factorize ``V ~= W H`` (W, H >= 0) by projected stochastic gradient descent.

    Minimizes :math:`\tfrac12\|V - WH\|_F^2` with row minibatches drawn without
    replacement in each epoch; see :mod:`nmf_sched.solver` for the update rule.
    The schedule decides the learning rate; with ``clip_lr`` the theory
    (:mod:`nmf_sched.bounds`) caps it at ``kappa`` times the stability ceiling.

    Parameters
    ----------
    V : array (m, n), scipy.sparse matrix, or numpy.memmap
        Non-negative data. float32 stays float32; sparse input is never densified.
    rank : int
        Number of components ``k``.
    schedule : str, (str, dict), float, callable or Schedule, default "auto"
        ``"auto"`` is GreedyLR started at and capped by the ceiling. Names:
        :func:`nmf_sched.schedules.available`.
    epochs : int, default 200
        Maximum passes over the rows.
    batch_size : int or "auto"
        Rows per step; ``>= m`` is full-batch projected gradient descent.
        ``"auto"``: :func:`default_batch_size`.
    init : {"auto", "random", "nndsvd", "nndsvda", "nndsvdar", "custom"}
        Initialization (:mod:`nmf_sched.init`); ``W0``/``H0`` give a custom one.
    seed : None, int or numpy.random.Generator
        Same seed, bit-identical factors.
    noise_std : float, default 0
        Std of additive Gaussian noise on every gradient entry (the research model).
    clip_lr : bool, default True
        Step at ``min(lr, kappa * ceiling)`` per block.
    kappa : float, default 0.9
        Fraction of the ceiling allowed.
    clip_update : float, optional
        Per-entry update clipping: ``|X+ - X| <= clip_update`` before projection.
    max_value : float, optional
        Entry bound: factors are clipped to ``[0, max_value]``.
    precondition : {"cd", "gram", "lipschitz", "none"}, default "cd"
        ``"cd"``: projected coordinate-wise (Gauss–Seidel) steps of size
        ``lr / G_cc`` with ``G`` the block's k x k Gram (LR dimensionless; ``lr = 1``
        on the W rows is exact coordinate minimization, ceiling 2; the fastest
        in our measurements, see benchmarks/README.md). ``"none"`` is plain SGD
        (absolute LR, ceiling ``2/L``: the research setting); ``"lipschitz"``
        divides each block's gradient by its curvature; ``"gram"`` multiplies by
        the inverse k x k Gram (``lr = 1`` is the block's Newton step; the
        projection breaks its descent guarantee, see bounds/THEORY.md).
    tol : float, default 1e-4
        Stop when the best loss improved by at most ``tol`` (relative to the
        best loss) over the last ``n_iter_no_change`` epochs (0 disables).
    max_time : float, optional
        Wall-clock budget in seconds (checked after every minibatch).
    callback : callable ``(record, W, H) -> bool``, optional
        Called after every epoch; a truthy return stops the run.
    progress : bool
        Show a tqdm bar (extra ``progress``).
    schedule_every : int, optional
        Tick the schedule every N minibatches (it then sees the mean scaled
        minibatch loss) instead of once per epoch.
    schedule_loss : {"full", "batch"}
        Loss the per-epoch tick reports: the exact loss (free, from the Gram
        identity) or the mean scaled minibatch loss of the epoch.
    shuffle : {"rows", "blocks", "none"}
        Row batches drawn at random ("rows"), contiguous blocks in random order
        ("blocks", friendly to memmaps), or in order.
    guard : bool, default True
        Divergence guard: on a non-finite or exploding loss, restore the last
        good factors, halve the step and retry (at most 6 times); with
        ``guard=False`` the first divergence stops the run.
    balance : bool, default True
        After every epoch rescale the components so that ``||w_j|| = ||h_j||``
        (``W H`` and the loss unchanged): removes the drift along the scale
        symmetry that noisy steps drive (bounds/THEORY.md 3.4).
    rescale_init : bool, default True
        The initialization rule of bounds/THEORY.md 6 for computed inits (not
        for ``W0``/``H0``): scale ``W H`` by the best scalar
        ``<V, WH> / ||WH||^2``, then balance the components, so the ceilings at
        step 0 are on the scale of the solution's.

    mask : array (m, n) of bool, optional
        Observed entries (masked NMF, :func:`nmf_sched.masked.fit_masked`): the
        loss and gradients run over observed entries only.
    missing : {"nan", "unobserved"}, optional
        ``"nan"``: NaN entries of a dense V are missing; ``"unobserved"``: the
        stored entries of a sparse V are the observations, the rest unknown.
    lam, validation, schedule_on, adaptive, solver
        Masked-mode settings, see :func:`nmf_sched.masked.fit_masked`.

    Returns
    -------
    FitResult
        ``W`` (m, k), ``H`` (k, n), ``trace``, ``stop_reason``, ``bound``.

    Examples
    --------
    >>> import numpy as np, nmf_sched
    >>> V = np.random.default_rng(0).random((100, 40))
    >>> res = nmf_sched.fit(V, 5, seed=0, epochs=20)
    >>> res.W.shape, res.H.shape
    ((100, 5), (5, 40))
    """
    if mask is not None or missing is not None:
        from .masked import fit_masked

        if init not in ("auto", "random", "custom"):
            raise ValueError(f"init={init!r} is not supported with mask=/missing= (masked NMF "
                             "initializes uniformly at the observed mean, or from W0/H0)")
        for name, value, default in (("batch_size", batch_size, "auto"), ("noise_std", noise_std, 0.0),
                                     ("clip_update", clip_update, None), ("max_value", max_value, None),
                                     ("precondition", precondition, "cd"),
                                     ("schedule_every", schedule_every, None),
                                     ("schedule_loss", schedule_loss, "full"),
                                     ("shuffle", shuffle, "rows"), ("progress", progress, False)):
            if value != default:
                raise ValueError(f"{name}={value!r} is not supported with mask=/missing= "
                                 "(masked NMF); leave it at its default")
        return fit_masked(V, rank, mask=mask, missing=missing, schedule=schedule, epochs=epochs,
                          lam=lam, seed=seed, solver=solver, adaptive=adaptive,
                          validation=validation, schedule_on=schedule_on, W0=W0, H0=H0,
                          clip_lr=clip_lr, kappa=kappa, tol=tol, n_iter_no_change=n_iter_no_change,
                          max_time=max_time, callback=callback, guard=guard)
    if is_cupy(V):
        from .gpu import fit as gpu_fit

        return gpu_fit(V, rank, schedule=schedule, epochs=epochs, batch_size=batch_size, init=init,
                       seed=seed, W0=W0, H0=H0, noise_std=noise_std, clip_lr=clip_lr, kappa=kappa,
                       clip_update=clip_update, max_value=max_value, precondition=precondition,
                       tol=tol, n_iter_no_change=n_iter_no_change, max_time=max_time,
                       callback=callback, progress=progress, schedule_every=schedule_every,
                       schedule_loss=schedule_loss, shuffle=shuffle, guard=guard)
    if type(V).__module__.startswith("dask"):
        raise TypeError("V is a dask array: use nmf_sched.distributed.fit(V, rank, ...)")
    V = check_matrix(V, "V")
    m, n = V.shape
    rank = check_rank(rank, V.shape)
    cfg = build_config(epochs=epochs, batch_size=batch_size, m=m, noise_std=noise_std,
                       clip_lr=clip_lr, kappa=kappa, clip_update=clip_update, max_value=max_value,
                       precondition=precondition, tol=tol, n_iter_no_change=n_iter_no_change,
                       max_time=max_time, callback=callback, progress=progress,
                       schedule_every=schedule_every, schedule_loss=schedule_loss,
                       shuffle=shuffle, guard=guard, balance=balance)
    if not isinstance(rescale_init, (bool, np.bool_)):
        raise TypeError(f"rescale_init must be a bool, got {rescale_init!r}")
    rng = check_seed(seed)
    init_rng, run_rng = rng.spawn(2)
    custom = W0 is not None or H0 is not None
    W, H = initialize(V, rank, "custom" if custom else init, seed=init_rng, W0=W0, H0=H0)
    if rescale_init and not custom and init != "custom":
        W, H, _ = rescale_balance(V, W, H)
    n_batches = math.ceil(m / min(cfg.batch_size, m))
    total = cfg.epochs if not cfg.schedule_every else cfg.epochs * max(1, n_batches // cfg.schedule_every)
    sched = resolve_schedule(schedule, total=total)
    result = run(V, W, H, sched, cfg, run_rng)
    result.settings = dict(rank=rank, schedule=repr(sched), epochs=cfg.epochs,
                           batch_size=cfg.batch_size, init=init, seed=seed if not hasattr(seed, "spawn") else None,
                           noise_std=cfg.noise_std, clip_lr=cfg.clip_lr, kappa=cfg.kappa,
                           clip_update=cfg.clip_update, max_value=cfg.max_value,
                           precondition=cfg.precondition, tol=cfg.tol, balance=cfg.balance,
                           rescale_init=bool(rescale_init and not custom), sparse=is_sparse(V),
                           dtype=str(V.dtype))
    return result
