r"""The fused host step of the row model for the ``cd`` preconditioner.

:func:`fused_step` runs one minibatch step of :class:`~nmf_sched.engine.rows.RowModel` as a
fixed sequence of numpy BLAS products (``V_B H^T``, ``V_B^T W_B``, the k x k Grams) and
compiled kernels (:mod:`nmf_sched.kernels.fused`: the row gather, the batch loss and its
check, the ceilings and step sizes, the coordinate sweeps, the write-back, the Gram update
and the epoch's ``V^T W`` accumulation), with no per-step Python arithmetic between them.
The products stay with numpy because BLAS called from a kernel runs on scipy's OpenBLAS, a
second thread pool next to numpy's (see :mod:`nmf_sched.kernels.fused`).
From rank :data:`BLOCK_MIN_RANK` on, the sweeps run in blocks of :data:`BLOCK` coordinates
(:func:`blocked_sweep`: BLAS does the cross-block part of the Gauss–Seidel dot products).

It runs only where it computes what the Python step computes (up to rounding): the ``cd``
preconditioner on the host backend, dense data (an ndarray or a memmap of the factors'
dtype) or CSR, no penalties, gradient noise, ``clip_update`` or ``max_value``, no
hypergradient bookkeeping, no line-search probe, no stale shards, one learning rate per
block. Everywhere else it returns None and the Python step runs. The noise estimate of
:mod:`nmf_sched.engine.noise` sees the same batches (its statistics from the step's ``P``
and ``W_B`` before the W sweep) and its caps bound the kernels' ceilings, as in the Python
step.

``NMF_SCHED_FUSED=0`` in the environment turns it off (benchmarks compare the two paths in
one process with :func:`set_enabled`). :func:`set_threads` sets how many threads the
gather and the sweeps use (default :data:`DEFAULT_THREADS`; benchmarks/README.md has the
measurement behind it).
"""
from __future__ import annotations

import os

import numpy as np

from .. import bounds
from ..kernels import fused as K
from ..kernels.cpu import csr_rows_matmul, csr_rows_tmatmul
from .control import Diverged

__all__ = ["fused_step", "eligible", "set_enabled", "set_threads", "set_block", "blocked_sweep"]

_STATE = {"enabled": os.environ.get("NMF_SCHED_FUSED", "1") != "0", "threads": None,
          "block": None}

#: The sweeps run in blocks of ``BLOCK`` coordinates (BLAS-3 for the cross-block terms)
#: from rank ``BLOCK_MIN_RANK`` on; :func:`set_block` overrides (benchmarks/README.md).
BLOCK = 32
BLOCK_MIN_RANK = 48


def set_enabled(flag: bool) -> bool:
    """Turn the fused step on or off for this process; returns the previous setting."""
    if not isinstance(flag, (bool, np.bool_)):
        raise TypeError(f"flag must be a bool, got {flag!r}")
    prev = _STATE["enabled"]
    _STATE["enabled"] = bool(flag)
    return prev


def set_threads(threads) -> None:
    """Threads for the gather and the sweeps (None: the default)."""
    if threads is not None and (not isinstance(threads, (int, np.integer))
                                or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    _STATE["threads"] = None if threads is None else int(threads)


#: Threads of the gather and the sweeps when :func:`set_threads` was not called.
DEFAULT_THREADS = 1


def set_block(kb) -> None:
    """Coordinate block of the sweeps: None (the default rule), 0 (unblocked) or a positive
    integer (blocked wherever it is below the rank)."""
    if kb is not None and (not isinstance(kb, (int, np.integer)) or isinstance(kb, bool)
                           or kb < 0):
        raise ValueError(f"kb must be a non-negative integer or None, got {kb!r}")
    _STATE["block"] = None if kb is None else int(kb)


def _threads() -> int:
    t = _STATE["threads"]
    return DEFAULT_THREADS if t is None else t


def eligible(model, lr_W, lr_H) -> bool:
    """Whether the fused kernel computes this model's step exactly (see the module docstring)."""
    be, pre = model.be, model.pre
    if not (_STATE["enabled"] and be.host and pre.name == "cd" and model.gd is None
            and not model.probing and model.rest is None and not model.pen.active
            and pre.clip_update is None and pre.max_value is None and be.noise_std <= 0
            and type(lr_W) is float and type(lr_H) is float):
        return False
    W, Ht = model.W, model.Ht
    if not (W.flags.c_contiguous and Ht.flags.c_contiguous and W.dtype == Ht.dtype
            and W.dtype in (np.float32, np.float64)):
        return False
    V = be.V
    if be.sparse:
        return V.format == "csr"
    return isinstance(V, np.ndarray) and V.dtype == W.dtype


_NO_ROWS = np.zeros(0, dtype=np.float64)


def blocked_sweep(X, A, P, lrbuf, diag, kb):
    """The cd sweep of the rows of ``X`` (curvature ``A``, linear term ``P``) in blocks of
    ``kb`` coordinates: numpy's BLAS computes ``X A[:, block]`` at each block's start and
    :func:`nmf_sched.kernels.fused.cd_block` runs the block's coordinates."""
    k = X.shape[1]
    D = np.empty((X.shape[0], kb), dtype=X.dtype)
    for c0 in range(0, k, kb):
        c1 = min(k, c0 + kb)
        Y = X @ A[:, c0:c1]
        K.cd_block(X, Y, A, P, c0, lrbuf, diag, D[:, :c1 - c0])
    return X


def _block(k) -> int:
    """The coordinate block of the sweeps for rank ``k`` (0: unblocked)."""
    kb = _STATE["block"]
    if kb is None:
        return BLOCK if k >= BLOCK_MIN_RANK else 0
    return kb if kb < k else 0


class _Buffers:
    """Per-model scratch arrays (reused across steps; Q and G_B are fresh: the step returns
    them)."""

    def __init__(self, model):
        b, k, dt = model.b, model.k, model.dtype
        self.P = np.empty((b, k), dtype=dt)
        self.WB = np.empty((b, k), dtype=dt)
        self.GBo = np.empty((k, k), dtype=dt)
        self.HHt = np.empty((k, k), dtype=dt)
        self.res = np.zeros(len(K.RES_FIELDS), dtype=np.float64)
        self.lrbuf = np.zeros(4, dtype=dt)
        self.diag = np.zeros(k, dtype=dt)
        self.VB = None  # the gathered rows (dense, index batches only; allocated at first use)
        self.all_rows = None
        self.key = (b, k, dt, model.n)

    def rows_buffer(self, model):
        if self.VB is None:
            self.VB = np.empty((model.b, model.n), dtype=model.dtype)
        return self.VB


def _rows(model, idx, buf):
    if idx is None:
        if buf.all_rows is None:
            buf.all_rows = np.arange(model.m, dtype=np.int64)
        return buf.all_rows
    if isinstance(idx, slice):
        return np.arange(idx.start, idx.stop, dtype=np.int64)
    return idx if idx.dtype == np.int64 else idx.astype(np.int64)


def fused_step(model, idx, lr_W, lr_H, acc):
    """One fused step (returns ``(Q, G_B)``: ``V_B^T W_B`` with the new ``W_B``, and
    ``W_B^T W_B``), or None where the Python step must run."""
    if not eligible(model, lr_W, lr_H):
        return None
    be, ctl = model.be, model.ctl
    buf = getattr(model, "_fused_buffers", None)
    if buf is None or buf.key != (model.b, model.k, model.dtype, model.n):
        buf = model._fused_buffers = _Buffers(model)
    b = model.m if idx is None else (idx.stop - idx.start if isinstance(idx, slice)
                                     else int(idx.shape[0]))
    rows = _rows(model, idx, buf)
    scale = model.m / b
    f = bounds.step_factor(scale)
    capk = ctl.cap * ctl.kappa if np.isfinite(ctl.cap) else np.inf
    threads = _threads()
    W, Ht, res = model.W, model.Ht, buf.res
    V = be.V
    P, WB, GBo, HHt = buf.P[:b], buf.WB[:b], buf.GBo, buf.HHt
    vB = -1.0  # the kernel sums the squared row norms
    if be.sparse:
        csr_rows_matmul(V, rows, Ht, P)
    else:
        if idx is None or isinstance(idx, slice):
            VB = V if idx is None else V[idx]
        elif be.row_sq is not None:  # in memory: the row-copy kernel
            VB = K.gather_rows_parallel(V, rows, buf.rows_buffer(model)[:b], threads)
        else:  # a memmap: numpy's take, as the Python step
            VB = np.take(V, rows, axis=0, out=buf.rows_buffer(model)[:b])
        if be.row_sq is None:
            vB = be.batch_vsq(VB, idx)
        np.matmul(VB, Ht, out=P)
    np.take(W, rows, axis=0, out=WB)
    np.matmul(Ht.T, Ht, out=HHt)
    np.matmul(WB.T, WB, out=GBo)
    kb = _block(model.k)
    lrbuf, diag = buf.lrbuf, buf.diag
    row_sq = be.row_sq if be.row_sq is not None else _NO_ROWS
    nz = model.nz  # the noise estimate (engine/noise.py): this batch's statistics, the caps
    rW, capH = 1.0, np.inf
    if nz.active:
        nz.observe(idx, None if be.sparse else VB, WB, P, HHt, model.pre.ceiling_W(HHt) * f, acc)
        rW, capH = nz.cap_W(1.0), nz.cap_H(np.inf)
    K.cd_step_W(W, rows, WB, HHt, GBo, P, row_sq, vB, lr_W, capk, ctl.damp, scale, f,
                model.cfg.explode * model.loss_ref, threads, res, lrbuf, diag, kb == 0, rW)
    if not res[5]:
        raise Diverged(f"batch loss {float(res[0])!r}")
    if kb:
        blocked_sweep(WB, HHt, P, lrbuf, diag, kb)
        W[rows] = WB
    GB = WB.T @ WB
    Q = csr_rows_tmatmul(V, rows, WB) if be.sparse else VB.T @ WB
    K.cd_step_H(Ht, model.G, GB, GBo, Q, acc["A"], lr_H, capk, ctl.damp, scale, f, threads, res,
                lrbuf, diag, kb == 0, float(capH))
    if kb:
        blocked_sweep(Ht, GB, Q, lrbuf, diag, kb)
    fB, cW, cH, eta_W, eta_H = (float(x) for x in res[:5])
    acc["fB"] += fB * scale
    acc["nB"] += 1
    acc["cW"] = min(acc["cW"], cW)
    acc["cH"] = min(acc["cH"], cH)
    acc["eW"] += eta_W
    acc["eH"] += eta_H
    return Q, GB
