"""Assemble a run: validated data and settings -> initial factors -> model -> engine.

:func:`solve_rows` serves every row-minibatch placement that lives in one process: NumPy
arrays, numpy memmaps and scipy.sparse matrices (:class:`~.backends.HostBackend`), and CuPy
arrays (:class:`~.backends.DeviceBackend`, the same loop with the array module ``cupy``).
The Dask placement is :func:`nmf_sched.engine.dask.solve_dask`; masked NMF is
:func:`nmf_sched.engine.entries.solve_masked`. All of them end in :class:`~.loop.Engine`.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ..backend import is_cupy, is_sparse
from ..bounds import rescale_balance
from ..data import check_matrix, check_rank, check_seed
from ..init import initialize
from ..objective import sqnorm
from ..schedules.base import lr_granularity, resolve
from .backends import DeviceBackend, HostBackend
from .checkpoint import check_fingerprint, data_fingerprint, read_checkpoint
from .loop import Engine
from .precond import make_preconditioner
from .rows import RowModel

__all__ = ["solve_rows", "check_combination", "schedule_signature", "n_ticks"]


def schedule_signature(sched) -> str:
    """The schedule's repr without memory addresses (stable across processes)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(sched))


def check_combination(schedule, precond, placement, cfg=None):
    """Refuse, before any work, a combination that cannot run; the error names both parts."""
    if cfg is not None and placement == "masked" and getattr(cfg, "regularized", False):
        raise ValueError(
            f"alpha_W={cfg.alpha_W!r}, alpha_H={cfg.alpha_H!r} (the L1/L2 penalties of the row "
            "paths) are not taken by the masked path, whose penalty is its own per-entry L2 "
            "term lam; use lam= with mask=/missing=, or fit the full matrix")
    if lr_granularity(schedule) == "entry":
        if precond is not None and not precond.per_entry:
            raise ValueError(
                f"schedule {schedule!r} gives one learning rate per factor entry, but "
                f"precondition={precond.name!r} takes one per block; use precondition='none', "
                "'lipschitz' or 'gram', or a per-block schedule")
        if placement in ("dask", "masked", "sharded"):
            raise ValueError(
                f"schedule {schedule!r} gives one learning rate per factor entry, which the "
                f"{placement} path does not take (one learning rate per block); use a per-block "
                "schedule (e.g. granularity='group')")


def n_ticks(cfg, n_units) -> int:
    """Schedule ticks in a run of ``cfg.epochs`` epochs of ``n_units`` steps (the ``total``
    a horizon schedule such as cosine is built with)."""
    if not cfg.schedule_every:
        return max(cfg.epochs, 1)
    return max(cfg.epochs, 1) * max(1, n_units // cfg.schedule_every)


def _fingerprint(V, vsq, rank, cfg, sched, placement):
    settings = dict(cfg.trajectory_settings(), rank=int(rank), schedule=schedule_signature(sched),
                    placement=placement)
    return {"data": data_fingerprint(V, vsq), "settings": settings}


def _cupy_matrix(V):
    """Validate a CuPy array or cupyx CSR matrix (checks on the device, one transfer)."""
    import cupy
    import cupyx.scipy.sparse as csp

    if csp.issparse(V):
        V = V.tocsr()
        if V.dtype not in (cupy.float32, cupy.float64):
            V = V.astype(cupy.float64)
        V.sum_duplicates()
        data = V.data
    else:
        V = cupy.asarray(V)
        if V.ndim != 2:
            raise ValueError(f"V must be 2-D, got shape {V.shape}")
        if V.dtype not in (cupy.float32, cupy.float64):
            V = V.astype(cupy.float64)
        V = cupy.ascontiguousarray(V)
        data = V
    m, n = V.shape
    if m == 0 or n == 0:
        raise ValueError(f"V must be non-empty, got shape {V.shape}")
    vmin, vmax, finite = (float(x) for x in cupy.stack([
        data.min() if data.size else cupy.zeros((), data.dtype),
        data.max() if data.size else cupy.zeros((), data.dtype),
        cupy.isfinite(data).all().astype(data.dtype)]).get())
    if not finite:
        raise ValueError("V must be finite (it contains NaN or inf)")
    if vmin < 0:
        raise ValueError(f"V must be non-negative, got min(V) = {vmin!r}")
    if vmax <= 0:
        raise ValueError("V is all zero")
    return V


def _host_copy(V):
    """A host copy of a CuPy matrix (the init runs on the host: CPU and GPU start equal)."""
    return V.get()


def solve_rows(V, rank, *, schedule, cfg, seed=None, W0=None, H0=None, backend=None):
    """Fit ``V ~= W H`` on row minibatches in this process (see the module docstring).

    ``cfg``: a RowConfig. ``backend``: None (chosen from ``V``: NumPy or CuPy) or a backend
    object (tests pass a :class:`~.backends.DeviceBackend` with ``numpy`` standing in).
    """
    device = is_cupy(V)
    if device:
        V = _cupy_matrix(V)
        Vh = None
    else:
        V = check_matrix(V, "V")
    m, n = V.shape
    rank = check_rank(rank, (m, n))
    cfg = cfg.resolved(m)
    if backend is None:
        if device:
            import cupy

            from ..kernels.gpu import cd_rows

            backend = DeviceBackend(cupy, cd_rows)
        else:
            backend = HostBackend()
    placement = backend.name
    precond = make_preconditioner(cfg.precondition, backend, clip_update=cfg.clip_update,
                                  max_value=cfg.max_value,
                                  penalty=cfg.penalty(m, n) if cfg.regularized else None)
    n_batches = math.ceil(m / min(cfg.batch_size, m))
    sched = resolve(schedule, total=n_ticks(cfg, n_batches))
    check_combination(sched, precond, placement)
    rng = check_seed(seed)
    init_rng, run_rng = rng.spawn(2)
    fingerprint = None
    ck = None
    if cfg.checkpoint is not None or cfg.resume is not None:
        Vf = _host_copy(V) if device else V
        fingerprint = _fingerprint(Vf, sqnorm(Vf), rank, cfg, sched, "device" if device else "host")
        del Vf
    if cfg.resume is not None:
        ck = read_checkpoint(cfg.resume)
        check_fingerprint(ck["fingerprint"], fingerprint, cfg.resume)
        W, H = ck["W"].astype(V.dtype), ck["H"].astype(V.dtype)
        rescaled = bool(cfg.rescale_init and W0 is None and H0 is None and cfg.init != "custom")
    else:
        custom = W0 is not None or H0 is not None
        if device:
            Vh = _host_copy(V)
            W, H = initialize(Vh, rank, "custom" if custom else cfg.init, seed=init_rng,
                              W0=None if W0 is None else backend.to_host(W0),
                              H0=None if H0 is None else backend.to_host(H0))
        else:
            Vh = V
            W, H = initialize(V, rank, "custom" if custom else cfg.init, seed=init_rng, W0=W0, H0=H0)
        rescaled = bool(cfg.rescale_init and not custom and cfg.init != "custom")
        if rescaled:
            W, H, _ = rescale_balance(Vh, W, H)
        del Vh
    W = backend.asarray(W, V.dtype)
    Ht = backend.asarray(np.asarray(H).T, V.dtype)
    settings = dict(rank=rank, schedule=repr(sched), epochs=cfg.epochs, batch_size=cfg.batch_size,
                    init=cfg.init, seed=seed if not hasattr(seed, "spawn") else None,
                    noise_std=cfg.noise_std, clip_lr=cfg.clip_lr, kappa=cfg.kappa,
                    clip_update=cfg.clip_update, max_value=cfg.max_value,
                    precondition=cfg.precondition, tol=cfg.tol, balance=cfg.balance,
                    alpha_W=cfg.alpha_W, alpha_H=cfg.alpha_H, l1_ratio=cfg.l1_ratio,
                    rescale_init=rescaled, sparse=is_sparse(V), dtype=str(V.dtype),
                    backend=placement)
    model = RowModel(V, W, Ht, cfg, backend, precond, run_rng)
    engine = Engine(model, sched, cfg, run_rng, fingerprint=fingerprint, settings=settings)
    return engine.run(resume=ck)
