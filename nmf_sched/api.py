"""The public face: ``nmf_sched.fit`` and ``nmf_sched.fit_masked``.

Validate the settings (:mod:`nmf_sched.config`), choose the path from where the data lives
(NumPy/SciPy/memmap, CuPy, Dask) or from ``mask=``/``missing=`` (masked NMF), and hand over
to the one engine (:mod:`nmf_sched.engine`). Nothing below this module imports it.
"""
from __future__ import annotations

from .config import PRECONDITIONERS, MaskedConfig, RowConfig, default_batch_size
from .result import FitResult
from .schedules.base import AUTO as AUTO_SCHEDULE
from .schedules.base import resolve

__all__ = ["fit", "fit_masked", "AUTO_SCHEDULE", "default_batch_size", "resolve_schedule",
           "PRECONDITIONERS"]


def resolve_schedule(schedule, *, total):
    """``fit(schedule=...)`` -> a Schedule instance (``"auto"`` included)."""
    return resolve(schedule, total=total)


def _is_dask(V) -> bool:
    return type(V).__module__.split(".")[0] == "dask"


def fit(V, rank, *, schedule="auto", epochs=200, batch_size="auto", init="auto", seed=None,
        W0=None, H0=None, noise_std=0.0, clip_lr=True, kappa=0.9, clip_update=None,
        max_value=None, precondition="cd", alpha_W=0.0, alpha_H="same", l1_ratio=0.0,
        tol=1e-4, n_iter_no_change=5, max_time=None,
        callback=None, progress=False, schedule_every=None, schedule_loss="full",
        shuffle="rows", guard=True, balance=True, rescale_init=True, checkpoint=None,
        checkpoint_every=1, resume=None, client=None, mask=None, missing=None,
        **masked) -> FitResult:
    r"""Factorize ``V ~= W H`` (W, H >= 0) by projected stochastic gradient descent.

    Minimizes :math:`\tfrac12\|V - WH\|_F^2` (plus the L1/L2 penalties of ``alpha_W``,
    ``alpha_H``, ``l1_ratio``) with row minibatches drawn without
    replacement in each epoch, run by the one engine (:mod:`nmf_sched.engine`; the
    update rule is in :mod:`nmf_sched.engine.precond`) whatever the data's placement:
    NumPy/SciPy/memmap on the CPU, CuPy on a GPU, a Dask array on a cluster (row
    shards with local steps, bounds/THEORY.md 10). The schedule decides the learning
    rate; with ``clip_lr`` the theory (:mod:`nmf_sched.bounds`) caps it at ``kappa``
    times the stability ceiling.

    Scale: ``fit(c V)`` returns ``sqrt(c)`` times the factors of ``fit(V)`` and the same
    relative error, bit for bit when ``c`` is a power of four (up to rounding otherwise),
    whenever the LR is relative to the ceiling or dimensionless: every named schedule (they
    start at ``lr="bound"``) with any ``precondition``, and any LR with "cd", "gram" or
    "lipschitz" (tests/test_scale_invariance.py). Settings that carry a unit break this by
    nature: a float LR under ``precondition="none"`` (unit 1/scale of ``V``), ``noise_std``,
    ``clip_update``, ``max_value``, ``alpha_W``/``alpha_H``, and schedule parameters in loss
    or absolute-LR units (``threshold_mode="abs"``, non-zero ``min_lr``/``eps``/``end_lr``,
    the additive hypergradient's ``beta``).

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
    alpha_W : float >= 0, default 0.0
        Penalty on ``W``, scaled as scikit-learn's NMF scales it: the objective gains
        :math:`n\,\alpha_W\big(\rho\|W\|_1 + \tfrac{1-\rho}{2}\|W\|_F^2\big)` (``n``
        columns of V, ``rho = l1_ratio``). The L1 part is a proximal step (soft-threshold,
        then project at 0); the L2 part adds ``n alpha_W (1 - rho)`` to the W rows'
        curvature, so their ceiling becomes ``2 / (L + l2)`` in plain-SGD units
        (bounds/THEORY.md, the proximal step). The trace's ``loss`` and the loss the
        schedules see are the regularized objective; ``rel_error`` stays
        ``||V - WH|| / ||V||``. Not taken with ``mask=``/``missing=`` (masked NMF has
        its own L2 penalty ``lam``).
    alpha_H : float >= 0 or "same", default "same"
        Penalty on ``H`` (scaled by the ``m`` rows of V); ``"same"`` takes ``alpha_W``.
    l1_ratio : float in [0, 1], default 0.0
        The L1 share ``rho`` of both penalties (1: pure L1, sparse factors).
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
    checkpoint : str or Path, optional
        Write a checkpoint (W, H, schedule state, RNG state, epoch, trace and a
        fingerprint of V and of the settings) every ``checkpoint_every`` epochs,
        atomically (temporary file, then rename). On Dask the driver writes it.
    checkpoint_every : int, default 1
        Epochs between checkpoints.
    resume : str or Path, optional
        Continue from a checkpoint; a resumed fit returns factors bit-identical to
        an uninterrupted one. A checkpoint of another matrix, rank or setting is
        refused (:class:`nmf_sched.engine.checkpoint.CheckpointError`, a
        ValueError). ``epochs``, ``tol`` and the other stop rules may change.
    client : distributed.Client, optional
        The Dask client for a Dask ``V`` (default: the running one). Lost workers
        are recovered from the last recovery point (at most 3 times); beyond that
        :class:`nmf_sched.engine.dask.WorkerLostError` carries the last good factors.
    mask : array (m, n) of bool, optional
        Observed entries (masked NMF, :func:`nmf_sched.fit_masked`): the
        loss and gradients run over observed entries only.
    missing : {"nan", "unobserved"}, optional
        ``"nan"``: NaN entries of a dense V are missing; ``"unobserved"``: the
        stored entries of a sparse V are the observations, the rest unknown.
    lam, validation, schedule_on, adaptive, solver
        Masked-mode settings, see :func:`nmf_sched.fit_masked`.

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
        if init not in ("auto", "random", "custom"):
            raise ValueError(f"init={init!r} is not supported with mask=/missing= (masked NMF "
                             "initializes uniformly at the observed mean, or from W0/H0)")
        for name, value, default in (("batch_size", batch_size, "auto"), ("noise_std", noise_std, 0.0),
                                     ("clip_update", clip_update, None), ("max_value", max_value, None),
                                     ("precondition", precondition, "cd"),
                                     ("schedule_loss", schedule_loss, "full"),
                                     ("shuffle", shuffle, "rows"),
                                     ("rescale_init", rescale_init, True), ("client", client, None),
                                     ("alpha_W", alpha_W, 0.0), ("alpha_H", alpha_H, "same"),
                                     ("l1_ratio", l1_ratio, 0.0)):
            if not (value is default or value == default):
                raise ValueError(f"{name}={value!r} is not supported with mask=/missing= "
                                 "(masked NMF); leave it at its default or call "
                                 "nmf_sched.fit_masked")
        return fit_masked(V, rank, mask=mask, missing=missing, schedule=schedule, epochs=epochs,
                          seed=seed, W0=W0, H0=H0, clip_lr=clip_lr, kappa=kappa, tol=tol,
                          n_iter_no_change=n_iter_no_change, max_time=max_time,
                          callback=callback, progress=progress, schedule_every=schedule_every,
                          guard=guard, balance=balance, checkpoint=checkpoint,
                          checkpoint_every=checkpoint_every, resume=resume, **masked)
    if masked:
        name = sorted(masked)[0]
        raise TypeError(f"fit() got an unexpected keyword argument {name!r} (masked-NMF settings "
                        "need mask= or missing=; see nmf_sched.fit_masked)")
    cfg = RowConfig(epochs=epochs, batch_size=batch_size, init=init, noise_std=noise_std,
                    clip_lr=clip_lr, kappa=kappa, clip_update=clip_update, max_value=max_value,
                    precondition=precondition, alpha_W=alpha_W, alpha_H=alpha_H,
                    l1_ratio=l1_ratio, tol=tol, n_iter_no_change=n_iter_no_change,
                    max_time=max_time, callback=callback, progress=progress,
                    schedule_every=schedule_every, schedule_loss=schedule_loss, shuffle=shuffle,
                    guard=guard, balance=balance, rescale_init=rescale_init, checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every, resume=resume)
    if _is_dask(V):
        from .engine.dask import solve_dask

        return solve_dask(V, rank, schedule=schedule, cfg=cfg, seed=seed, W0=W0, H0=H0,
                          client=client)
    if client is not None:
        raise ValueError(f"client={client!r} is only used with a dask array V")
    from .engine.solve import solve_rows

    return solve_rows(V, rank, schedule=schedule, cfg=cfg, seed=seed, W0=W0, H0=H0)


def fit_masked(V, rank, *, mask=None, missing=None, schedule="auto", epochs=50, lam=0.01,
               seed=None, solver="entry", adaptive=False, validation=None,
               schedule_on="train", W0=None, H0=None, clip_lr=True, kappa=0.9, tol=1e-4,
               n_iter_no_change=5, max_time=None, callback=None, progress=False,
               schedule_every=None, batch_size="auto", guard=True, block_size=256,
               balance=True, checkpoint=None, checkpoint_every=1, resume=None) -> FitResult:
    r"""Masked NMF: fit ``W H`` (W, H >= 0) to the observed entries of ``V`` only.

    Minimizes :math:`\sum_{(i,j)\in\Omega} \tfrac12 (v_{ij} - w_i h_j)^2 +
    \tfrac{\lambda}{2}(\|w_i\|^2 + \|h_j\|^2)` by entry-wise projected SGD in the one engine
    (:mod:`nmf_sched.engine.entries`): the same schedules, guard, stop rules, trace, progress,
    callback and checkpoints as :func:`fit`.

    Parameters
    ----------
    V : ndarray (m, n) or scipy.sparse matrix
        Data; see :func:`nmf_sched.masked.observed_entries` for ``mask`` / ``missing``.
    rank : int
    mask : bool ndarray or scipy.sparse (m, n), optional
        True = observed.
    missing : {None, "nan", "unobserved"}
        Masked mode when no ``mask`` is given: ``"nan"`` (dense V, NaN = missing),
        ``"unobserved"`` (sparse V: its stored entries are the observations).
    schedule : as in :func:`fit`, default "auto"
        One LR for the entry step (absolute for ``solver="entry"``).
    epochs : int, default 50
        Passes over the training entries.
    lam : float, default 0.01
        Per-entry L2 regularization :math:`\lambda` on W and H.
    seed : None, int or Generator
        Same seed, bit-identical factors (init, split, visiting orders).
    solver : {"entry", "rows"}
        ``"entry"``: entry-wise projected SGD over shuffled observed entries (LR absolute,
        ceiling :func:`nmf_sched.masked.masked_ceiling`). ``"rows"``: each epoch one
        Gauss–Seidel sweep of masked projected coordinate descent on every row of W, then
        every column of H (LR dimensionless, 1 = exact coordinate minimization, ceiling 2).
    adaptive : bool, default False
        LIBMF's per-row adaptive step (AdaGrad-like), the baseline rule.
    validation : None, float in (0, 1) or (rows, cols, vals)
        Hold out this fraction of the observed entries (seeded), or these entries; the trace
        reports the validation RMSE per epoch.
    schedule_on : {"train", "validation"}
        The loss the schedule (and ``tol``) watches.
    W0, H0 : arrays (m, k), (k, n), optional
        Custom initialization (default: uniform, scaled to the observed mean).
    clip_lr, kappa, tol, n_iter_no_change, max_time, callback, progress, schedule_every,
    guard, checkpoint, checkpoint_every, resume :
        As in :func:`fit`.
    batch_size : int or "auto"
        Training entries per step (``"auto"``: one step per epoch).
    block_size : int, default 256
        Entries per chunk of the visiting order (LIBMF-like, for cache locality).
    balance : bool, default True
        After every epoch rescale the components along the scale symmetry (``W H`` unchanged)
        to the minimizer of the L2 term (:meth:`nmf_sched.engine.entries.EntryModel.balance`),
        as on the row path; the objective can only go down.

    Returns
    -------
    FitResult
        ``W`` (m, k), ``H`` (k, n), ``trace`` (per epoch: ``lr``, ``step_size``, ``ceiling``,
        ``loss``, ``train_rmse``, ``val_rmse``, ...), ``bound`` = ``{"ceiling",
        "ceiling_W", "ceiling_H"}`` at the end, ``settings`` (``empty_rows``/``empty_cols``
        included: rows and columns without a training entry, set to 0).
    """
    from .engine.entries import solve_masked

    cfg = MaskedConfig(epochs=epochs, lam=lam, solver=solver, adaptive=adaptive,
                       schedule_on=schedule_on, clip_lr=clip_lr, kappa=kappa, tol=tol,
                       n_iter_no_change=n_iter_no_change, max_time=max_time, callback=callback,
                       progress=progress, schedule_every=schedule_every, batch_size=batch_size,
                       guard=guard, block_size=block_size, balance=balance, checkpoint=checkpoint,
                       checkpoint_every=checkpoint_every, resume=resume)
    return solve_masked(V, rank, mask=mask, missing=missing, schedule=schedule, cfg=cfg,
                        seed=seed, validation=validation, W0=W0, H0=H0)
