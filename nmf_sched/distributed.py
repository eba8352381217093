r"""Data-parallel stochastic-gradient NMF on a Dask cluster (extra ``dask``).

Scheme: synchronous, reduced, stratified minibatch steps
-----------------------------------------------------------
``V`` (m x n) is split into row blocks ``V_i`` (m_i x n, the dask chunks along
axis 0; the columns are never split). Each block stays on the worker that holds
it, together with its rows of ``W`` (``W_i``, a future on the same worker).
``H`` (held transposed, ``Ht`` n x k) lives on the driver and is broadcast to
the workers at every step (n k numbers).

One step, for every block ``i`` in parallel on its worker, takes a minibatch
``B_i`` of ``b_i = ceil(m_i b / m)`` of its rows (drawn without replacement in
the epoch, so every row is visited exactly once per epoch) and does

.. math::

    P_i &= V_{B_i} H^\top,\qquad
    W_{B_i} \leftarrow \text{cd-sweep}(W_{B_i};\ HH^\top, P_i, \eta_W)
    \quad\text{(exactly the single-machine W step)} \\
    &\text{returns}\quad s_i W_{B_i}^\top W_{B_i},\ \ s_i V_{B_i}^\top W_{B_i},
    \qquad s_i = m_i / b_i .

The driver reduces ``GB = sum_i s_i W_Bi^T W_Bi`` and ``Q = sum_i s_i V_Bi^T W_Bi``
and takes one H step, the single-machine H step with the scaled batch products

.. math::

    H^\top \leftarrow \text{cd-sweep}(H^\top;\ GB, Q, \eta_H),\qquad
    \mathbb E[GB] = W^\top W,\ \ \mathbb E[Q] = V^\top W ,

so the H gradient ``Ht GB - Q`` is an unbiased estimate of the full gradient
(stratified sampling: each block contributes its own rows with its own
inverse inclusion probability ``s_i``). This is the stochastic model of
:mod:`nmf_sched.solver` with the uniform row sample replaced by a stratified
one; with a single block it *is* the ``shuffle="rows"`` solver step.

The bound: the cd step of coordinate ``c`` on the sampled quadratic
``1/2 tr(H GB H^T) - tr(H Q^T)`` with step ``lr / G_cc`` (``G = W^T W``)
descends for ``lr < 2 G_cc / GB_cc`` (the per-coordinate ceiling of the
single-machine solver with ``s GB_cc`` replaced by the stratified ``GB_cc``);
the ceiling for H is the min over ``c``. The W rows decouple, so their ceiling
is 2 as in the solver. The step is ``eta = damp * min(lr, cap * kappa * ceiling)``
as in :mod:`nmf_sched.solver`, with the same divergence guard (restore the
epoch's snapshot -- the W futures are immutable, so a snapshot is free --
turn the cap on, halve ``damp``).

The exact loss costs nothing extra: the ``Q`` partials (before scaling) summed
over an epoch equal ``V^T W`` (every row visited once), and ``G`` is reduced
from the blocks at the epoch's end (k x k per block).

Communication per step: ``Ht`` (n k) to each worker; ``GB`` (k^2) and
``Q`` (n k) back from each sampled block. Only ``precondition="cd"`` is
implemented (the default of :func:`nmf_sched.fit`).
"""
from __future__ import annotations

import math
import time

import numpy as np

from .api import build_config, resolve_schedule
from .kernels.cpu import cd_rows
from .result import FitResult, Trace
from .schedules.base import StepInfo
from .solver import _cd_ceiling_H, _safe_diag, _scalar, _split_lr

__all__ = ["fit"]


# ----------------------------------------------------------------- worker side
def _block_sqnorm(Vi):
    """``(||V_i||^2, sum V_i, min V_i)`` of one block (float64)."""
    Vi = np.asarray(Vi)
    return (float(np.einsum("ij,ij->", Vi, Vi, dtype=np.float64)), float(Vi.sum(dtype=np.float64)),
            float(Vi.min()) if Vi.size else 0.0)


def _init_W(Vi, k, scale, seed, dtype):
    r = np.random.default_rng(seed)
    return (scale * r.random((np.shape(Vi)[0], k))).astype(dtype)


def _block_products(Vi, Wi):
    """``(V_i^T W_i, W_i^T W_i)`` of one block."""
    Vi = np.asarray(Vi)
    return Vi.T @ Wi, Wi.T @ Wi


def _w_step(Vi, Wi, Ht, rows, eta_W, clip_update, max_value, noise_std, seed):
    """The W step of one block's minibatch; returns the new W_i and the partials."""
    Vi = np.asarray(Vi)
    HHt = Ht.T @ Ht
    VB = Vi[rows]
    WB = Wi[rows]
    P = VB @ Ht
    GB_old = WB.T @ WB
    vsqB = float(np.einsum("ij,ij->", VB, VB, dtype=np.float64))
    fB = 0.5 * (vsqB - 2.0 * float(np.vdot(WB, P)) + float(np.vdot(GB_old, HHt)))
    noise = None
    if noise_std > 0:
        noise = (np.random.default_rng(seed).standard_normal(WB.shape) * noise_std).astype(WB.dtype)
    WBn = cd_rows(WB, HHt, P, eta_W, 1.0, _safe_diag(HHt), noise, clip_update, max_value)
    Wn = Wi.copy()  # futures are immutable: a guard snapshot is just the old future
    Wn[rows] = WBn
    GBn = WBn.T @ WBn
    return Wn, (GBn, GBn - GB_old, VB.T @ WBn, fB, len(rows))


def _first(t):
    return t[0]


def _second(t):
    return t[1]


# ----------------------------------------------------------------- driver side
def _row_blocks(V):
    """Rechunk ``V`` so that every chunk spans all columns; returns (V, offsets)."""
    if len(V.chunks[1]) != 1:
        V = V.rechunk({1: -1})
    sizes = V.chunks[0]
    return V, np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def fit(V, rank, *, schedule="auto", epochs=200, batch_size="auto", seed=None, client=None,
        noise_std=0.0, clip_lr=True, kappa=0.9, clip_update=None, max_value=None,
        precondition="cd", tol=1e-4, n_iter_no_change=5, max_time=None, callback=None,
        schedule_loss="full", guard=True, init="random", return_numpy=True) -> FitResult:
    r"""Factorize a dask array ``V ~= W H`` on a Dask cluster (see the module docstring).

    Parameters
    ----------
    V : dask.array.Array (m, n), non-negative, float32 or float64
        Row blocks are the chunks along axis 0 (columns are rechunked to one
        chunk). Each block stays on its worker.
    rank : int
    schedule, epochs, batch_size, noise_std, clip_lr, kappa, clip_update, max_value,
    tol, n_iter_no_change, max_time, callback, schedule_loss, guard :
        As in :func:`nmf_sched.fit`. ``batch_size`` is the total rows per step
        over all blocks (block ``i`` contributes ``ceil(m_i b / m)``).
    seed : int or None
        Seeds the init, the row permutations and the noise.
    client : distributed.Client, optional
        Default: the current client (``distributed.get_client()``).
    precondition : "cd"
        Only the coordinate-wise preconditioner is implemented here.
    init : "random"
        ``W, H ~ U(0, 1) * sqrt(mean(V) / k)`` (W generated on the workers).
    return_numpy : bool, default True
        Gather ``W`` to the driver (m x k); ``False`` returns a dask array.

    Returns
    -------
    FitResult
        ``W`` (m, k) numpy (or dask) array, ``H`` (k, n), trace as in ``fit``.
    """
    import dask.array as da
    from distributed import get_client

    if not isinstance(V, da.Array):
        raise TypeError(f"V must be a dask.array.Array, got {type(V).__name__}")
    if V.ndim != 2:
        raise ValueError(f"V must be 2-D, got shape {V.shape}")
    if precondition != "cd":
        raise ValueError(f"nmf_sched.distributed.fit implements precondition='cd' only, got {precondition!r}")
    if init != "random":
        raise ValueError(f"nmf_sched.distributed.fit implements init='random' only, got {init!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank must be a positive integer, got {rank!r}")
    client = client or get_client()
    dtype = np.dtype(V.dtype)
    if dtype not in (np.float32, np.float64):
        V = V.astype(np.float64)
        dtype = np.dtype(np.float64)
    m, n = V.shape
    k = int(rank)
    cfg = build_config(epochs=epochs, batch_size=batch_size, m=m, noise_std=noise_std,
                       clip_lr=clip_lr, kappa=kappa, clip_update=clip_update, max_value=max_value,
                       precondition=precondition, tol=tol, n_iter_no_change=n_iter_no_change,
                       max_time=max_time, callback=callback, progress=False, schedule_every=None,
                       schedule_loss=schedule_loss, shuffle="rows", guard=guard)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    V, off = _row_blocks(V)
    V = V.persist()
    blocks = client.futures_of(V)
    # order the futures by block index (futures_of order is not guaranteed)
    keyed = {f.key: f for f in blocks}
    blocks = [keyed[(V.name, i, 0)] for i in range(len(off) - 1)]
    nb = len(blocks)
    sizes = np.diff(off)
    where = client.who_has(blocks)

    def on(i):
        w = where.get(blocks[i].key) or ()
        return dict(workers=list(w), allow_other_workers=False) if w else {}

    stats = client.gather([client.submit(_block_sqnorm, blocks[i], pure=False, **on(i)) for i in range(nb)])
    vsq = sum(s[0] for s in stats)
    mean = sum(s[1] for s in stats) / (m * n)
    vmin = min(s[2] for s in stats)
    if not math.isfinite(vsq) or not vmin == vmin:
        raise ValueError("V must be finite (it contains NaN or inf)")
    if vmin < 0:
        raise ValueError(f"V must be non-negative, got min(V) = {vmin!r}")
    if vsq <= 0:
        raise ValueError("V is all zero")
    scale = math.sqrt(mean / k)
    seeds = rng.integers(0, 2**63 - 1, size=nb + 1)
    Ht = (scale * np.random.default_rng(seeds[-1]).random((n, k))).astype(dtype)
    Wf = [client.submit(_init_W, blocks[i], k, scale, int(seeds[i]), dtype, pure=False, **on(i))
          for i in range(nb)]

    def reduce_products(Wf):
        parts = client.gather([client.submit(_block_products, blocks[i], Wf[i], pure=False, **on(i))
                               for i in range(nb)])
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def exact_loss(Ht, A, G):
        val = 0.5 * (vsq - 2.0 * float(np.vdot(Ht, A)) + float(np.vdot(G, Ht.T @ Ht)))
        return val if val != val else max(val, 0.0)

    A, G = reduce_products(Wf)
    loss0 = exact_loss(Ht, A, G)
    loss_ref = max(loss0, 1e-300)
    vnorm = math.sqrt(vsq)
    sched = resolve_schedule(schedule, total=cfg.epochs)
    b = min(cfg.batch_size, m)
    bi = np.maximum(1, np.ceil(sizes * b / m).astype(int))
    n_steps = int(max(math.ceil(s / c) for s, c in zip(sizes, bi)))

    def batches():
        """Per step: for each block, the local row indices (sorted) or None."""
        perms = [rng.permutation(int(s)) for s in sizes]
        return [[np.sort(perms[i][j * bi[i]:(j + 1) * bi[i]]) if j * bi[i] < sizes[i] else None
                 for i in range(nb)] for j in range(n_steps)]

    # initial ceiling, as the solver: the first batch's cd ceiling at the init
    cW0, cH0 = 2.0, _cd_ceiling_H(_safe_diag(G), G, 1.0)  # E[GB] = G
    cap = 1.0 if cfg.clip_lr else math.inf
    damp = 1.0

    def eta(lr, ceiling):
        if math.isfinite(cap) and math.isfinite(ceiling):
            lr = min(lr, cap * cfg.kappa * ceiling)
        return lr * damp

    def info(epoch, loss, cW, cH, tick, step):
        c = min(cW, cH)
        extras = {"ceilings": {"W": cW, "H": cH}} if "ceilings" in getattr(sched, "needs", ()) else {}
        return StepInfo(step=step, epoch=epoch, loss=loss, ceiling=c if math.isfinite(c) else None,
                        extras=extras, tick=tick)

    state = sched.update(sched.init(), info(0, loss0, cW0, cH0, 0, 0))
    trace = Trace()
    trace.append(epoch=0, step=0, lr_W=np.nan, lr_H=np.nan, step_W=0.0, step_H=0.0,
                 ceiling_W=cW0, ceiling_H=cH0, loss=loss0, rel_error=math.sqrt(2 * loss0) / vnorm,
                 seconds=time.perf_counter() - t0, retries=0)
    best = [loss0]
    stop_reason, loss, epoch, step_count, tick, retries = "max_epochs", loss0, 0, 0, 0, 0
    Gtot = G
    while epoch < cfg.epochs:
        snap = (list(Wf), Ht.copy(), state, step_count, tick, Gtot.copy())
        lr_W, lr_H = _split_lr(sched.lr(state), m, n)
        lr_W, lr_H = _scalar(lr_W, "W"), _scalar(lr_H, "H")
        acc = dict(A=np.zeros((n, k), dtype=dtype), fB=0.0, nB=0, cW=2.0, cH=np.inf, eW=0.0, eH=0.0)
        timed_out = False
        try:
            for j, step_rows in enumerate(batches()):
                eta_W = eta(lr_W, 2.0)
                Ht_f = client.scatter(Ht, broadcast=True, hash=False)
                outs = {}
                for i, rows in enumerate(step_rows):
                    if rows is None:
                        continue
                    noise_seed = int(rng.integers(0, 2**63 - 1)) if cfg.noise_std > 0 else 0
                    outs[i] = client.submit(_w_step, blocks[i], Wf[i], Ht_f, rows, eta_W,
                                            cfg.clip_update, cfg.max_value, cfg.noise_std,
                                            noise_seed, pure=False, **on(i))
                parts = {}
                for i, fut in outs.items():
                    Wf[i] = client.submit(_first, fut, **on(i))
                    parts[i] = client.submit(_second, fut, **on(i))
                got = client.gather(parts)
                del outs, parts
                GB = np.zeros((k, k), dtype=np.float64)
                Q = np.zeros((n, k), dtype=dtype)
                fB = 0.0
                for i, (GBn, dG, Qi, fBi, cnt) in got.items():
                    s = sizes[i] / cnt
                    GB += s * GBn
                    Q += dtype.type(s) * Qi
                    acc["A"] += Qi
                    fB += s * fBi
                    Gtot = Gtot + dG
                if not math.isfinite(fB) or fB > cfg.explode * loss_ref:
                    raise FloatingPointError(f"batch loss {fB!r}")
                acc["fB"] += fB
                acc["nB"] += 1
                dG = _safe_diag(Gtot)
                cH = _cd_ceiling_H(dG, GB, 1.0)
                eta_H = eta(lr_H, cH)
                noise = None
                if cfg.noise_std > 0:
                    noise = (rng.standard_normal(Ht.shape) * cfg.noise_std).astype(dtype)
                Ht = cd_rows(Ht, GB.astype(dtype), Q, eta_H, 1.0, dG, noise, cfg.clip_update,
                             cfg.max_value)
                acc["cH"] = min(acc["cH"], cH)
                acc["eW"] += eta_W
                acc["eH"] += eta_H
                step_count += 1
                if cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time \
                        and j + 1 < n_steps:
                    timed_out = True
                    break
            A, Gtot = reduce_products(Wf) if timed_out else (acc["A"], reduce_products(Wf)[1])
            loss = exact_loss(Ht, A, Gtot)
            if not math.isfinite(loss) or loss > cfg.explode * loss_ref:
                raise FloatingPointError(f"loss {loss!r}")
        except FloatingPointError:
            Wf, Ht, state, step_count, tick, Gtot = snap
            Wf = list(Wf)
            retries += 1
            if not cfg.guard or retries > cfg.max_retries:
                stop_reason = "diverged"
                A, Gtot = reduce_products(Wf)
                loss = exact_loss(Ht, A, Gtot)
                break
            cap = 1.0
            damp *= cfg.guard_shrink
            continue
        epoch += 1
        nB = max(acc["nB"], 1)
        trace.append(epoch=epoch, step=step_count, lr_W=lr_W, lr_H=lr_H,
                     step_W=acc["eW"] / nB, step_H=acc["eH"] / nB, ceiling_W=acc["cW"],
                     ceiling_H=acc["cH"], loss=loss, rel_error=math.sqrt(2 * loss) / vnorm,
                     seconds=time.perf_counter() - t0, retries=retries)
        best.append(min(best[-1], loss))
        if timed_out or (cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time):
            stop_reason = "max_time"
            break
        if cfg.callback is not None and cfg.callback(trace[-1], None, Ht.T):
            stop_reason = "callback"
            break
        w = cfg.n_iter_no_change
        if cfg.tol > 0 and len(best) > w and (best[-1 - w] - best[-1]) <= cfg.tol * best[-1]:
            stop_reason = "tol"
            break
        tick += 1
        sched_loss = loss if cfg.schedule_loss == "full" else acc["fB"] / nB
        state = sched.update(state, info(epoch, sched_loss, acc["cW"], acc["cH"], tick, step_count))
    if return_numpy:
        W = np.concatenate(client.gather(Wf), axis=0) if nb else np.zeros((0, k), dtype)
    else:
        W = da.concatenate([da.from_delayed(f, shape=(int(sizes[i]), k), dtype=dtype)
                            for i, f in enumerate(Wf)], axis=0)
    res = FitResult(W=W, H=np.ascontiguousarray(Ht.T), trace=trace, stop_reason=stop_reason,
                    schedule=sched, schedule_state=state, loss=float(loss),
                    rel_error=math.sqrt(2 * max(loss, 0.0)) / vnorm, n_epochs=epoch,
                    n_steps=step_count, seconds=time.perf_counter() - t0)
    res.settings = dict(rank=k, schedule=repr(sched), epochs=cfg.epochs, batch_size=cfg.batch_size,
                        init=init, seed=seed, noise_std=cfg.noise_std, clip_lr=cfg.clip_lr,
                        kappa=cfg.kappa, precondition="cd", tol=cfg.tol, n_blocks=nb,
                        dtype=str(dtype), backend="dask")
    return res
