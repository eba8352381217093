r"""The Dask placement: one shard per worker, each a Dask actor next to its data.

``V`` (a dask array, rows in chunks; columns are rechunked into one) is persisted on the
cluster. The blocks each worker holds become that worker's shard: a
:class:`~nmf_sched.engine.shards.ShardWorker` created *as an actor on that worker* from the
block futures (so the data never moves), which keeps its rows of ``W`` and its row model
between calls. The driver runs the one engine over a
:class:`~nmf_sched.engine.shards.ShardedModel`: per unit (an epoch, or ``schedule_every``
local steps) one call per worker, in parallel, straight to the actor.

Same defaults as every path: the init rule (NNDSVDA, then the scale-and-balance rule;
computed on the driver from a gathered copy when the matrix is small enough for the exact
SVD, as the single-machine init does, otherwise from a randomized SVD whose products run
on the shards), per-epoch balancing, the minibatch factor, the guard and the stop rules.

Lost workers
------------
The driver keeps a recovery point (the factors and the engine state, as a checkpoint file
would hold them) every ``checkpoint_every`` epochs when ``checkpoint=`` is set and every
:data:`RECOVER_EVERY` epochs otherwise. When a call to a shard fails because its worker
died, the engine re-creates the shards on the workers the cluster has now (the lost blocks
of ``V`` are recomputed by Dask from their graph) and continues from the recovery point, at
most 3 times per fit; after that it raises :class:`WorkerLostError`, whose ``result`` holds
the last good factors.
"""
from __future__ import annotations

import math

import numpy as np

from ..bounds import rescale_balance
from ..data import check_rank, check_seed
from ..init import _EXACT_MAX_DIM, _EXACT_MAX_ENTRIES, computed_init, initialize
from ..schedules.base import resolve
from .checkpoint import check_fingerprint, read_checkpoint
from .control import ShardLost
from .loop import Engine
from .shards import ShardedModel, ShardWorker

__all__ = ["solve_dask", "DaskShard", "WorkerLostError", "RECOVER_EVERY"]

#: Epochs between the driver's recovery points when no checkpoint file is asked for.
RECOVER_EVERY = 10


class WorkerLostError(RuntimeError):
    """A Dask worker holding a shard was lost and the fit could not recover.

    ``result``: a FitResult at the last recovery point (the last good factors), or None.
    """

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


def _lost_types():
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return (OSError, CommClosedError, KilledWorker, FutureCancelledError, TimeoutError)


def _is_lost(exc) -> bool:
    if isinstance(exc, _lost_types()):
        return True
    text = str(exc).lower()
    return type(exc).__name__ in ("CancelledError",) or "worker" in text and (
        "lost" in text or "closed" in text or "not found" in text or "no longer" in text)


class DaskShard:
    """A handle on a :class:`ShardWorker` actor (calls go straight to its worker)."""

    def __init__(self, actor, address):
        self.actor = actor
        self.address = address

    def call(self, method, *args):
        return DaskShard.call_all([self], method, [args])[0]

    @staticmethod
    def call_all(handles, method, args_list):
        try:
            futs = [getattr(h.actor, method)(*args) for h, args in zip(handles, args_list)]
            return [f.result() for f in futs]
        except Exception as exc:  # noqa: BLE001 - a worker's death surfaces in many forms
            if _is_lost(exc):
                raise ShardLost(f"{type(exc).__name__}: {exc}") from exc
            raise


class _DaskModel(ShardedModel):
    """:class:`ShardedModel` whose shards live on Dask workers (recoverable)."""

    recoverable = True

    def __init__(self, cluster, *args, **kw):
        self.cluster = cluster
        super().__init__(*args, **kw)

    def recover(self):
        handles, rows = self.cluster.make_shards()
        self.handles, self.rows = handles, rows
        self._set_sizes()
        W = np.zeros((self.m, self.k), dtype=self.dtype)
        self.setup(W, np.zeros((self.k, self.n), dtype=self.dtype), self.needs)

    def lost_error(self, exc, result):
        return WorkerLostError(
            f"a Dask worker holding part of V was lost ({exc}) and the fit could not recover "
            "(no recovery point, or more than 3 losses); the last good factors are in "
            "this error's .result", result)


class _Cluster:
    """The persisted row blocks of ``V`` and the shards made from them."""

    def __init__(self, V, client):
        import dask.array as da

        if not isinstance(V, da.Array):
            raise TypeError(f"V must be a dask.array.Array, got {type(V).__name__}")
        if V.ndim != 2:
            raise ValueError(f"V must be 2-D, got shape {V.shape}")
        if any(math.isnan(c) for cs in V.chunks for c in cs):
            raise ValueError("V has unknown chunk sizes; call V.compute_chunk_sizes() first")
        if len(V.chunks[1]) != 1:
            V = V.rechunk({1: -1})
        self.V = V
        self.client = client
        self.m, self.n = (int(s) for s in V.shape)
        sizes = V.chunks[0]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def _assign(self, nb, workers, who, blocks):
        """Blocks -> shards -> workers. The shards depend only on the blocks and the number of
        workers (contiguous runs of blocks with balanced row counts), never on where Dask
        happened to put the blocks, so a seed gives the same factors on every run; each shard
        then goes to the free worker that already holds most of its rows."""
        p = max(1, min(len(workers), nb))
        sizes = np.diff(self.offsets).astype(np.float64)
        mid = (self.offsets[:-1] + sizes / 2) / max(self.m, 1)
        group = np.minimum((mid * p).astype(np.int64), p - 1)
        free, out = list(workers), {}
        for g in range(p):
            ids = [i for i in range(nb) if group[i] == g]
            if not ids:
                continue
            held = {w: sum(sizes[i] for i in ids if w in (who.get(blocks[i].key) or ()))
                    for w in free}
            addr = max(free, key=lambda w: (held[w], -free.index(w)))
            free.remove(addr)
            out[addr] = ids
        return out

    def make_shards(self):
        """Persist ``V`` and create one shard actor per worker holding blocks of it."""
        from distributed import wait

        client = self.client
        Vp = client.persist(self.V)  # on this client, not on whichever is current
        wait(Vp)
        futs = client.futures_of(Vp)
        keyed = {f.key: f for f in futs}
        nb = len(self.offsets) - 1
        blocks = [keyed[(Vp.name, i, 0)] for i in range(nb)]
        who = client.who_has(blocks)
        by_worker = self._assign(nb, sorted(client.scheduler_info()["workers"]), who, blocks)
        handles, rows = [], []
        for addr, ids in sorted(by_worker.items(), key=lambda kv: kv[1][0]):
            fut = client.submit(ShardWorker, *[blocks[i] for i in ids], actor=True,
                                workers=[addr], allow_other_workers=False, pure=False)
            handles.append(DaskShard(fut.result(), addr))
            rows.append(np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in ids]))
        self.persisted = Vp
        return handles, rows


class _Operator:
    """``V`` as a linear operator over the shards (the randomized SVD's products)."""

    def __init__(self, handles, rows, shape, dtype):
        self.handles, self.rows, self.shape, self.dtype = handles, rows, shape, np.dtype(dtype)

    def __matmul__(self, X):
        parts = DaskShard.call_all(self.handles, "matmul", [(X,)] * len(self.handles))
        out = np.empty((self.shape[0], X.shape[1]), dtype=np.result_type(self.dtype, X.dtype))
        for r, p in zip(self.rows, parts):
            out[r] = p
        return out

    @property
    def T(self):
        op = self

        class _T:
            def __matmul__(self, Y):
                parts = DaskShard.call_all(op.handles, "rmatmul", [(Y[r],) for r in op.rows])
                out = parts[0].copy()
                for p in parts[1:]:
                    out += p
                return out

        return _T()


def _gather(handles, rows, m, n):
    parts = DaskShard.call_all(handles, "dense", [()] * len(handles))
    out = np.empty((m, n), dtype=parts[0].dtype)
    for r, p in zip(rows, parts):
        out[r] = p
    return out


def _init(cluster, handles, rows, k, cfg, init_rng, stats, W0, H0):
    """The init rule of every path (see the module docstring)."""
    m, n = cluster.m, cluster.n
    dtype = np.dtype(stats["dtype"])
    if W0 is not None or H0 is not None:
        # validated like the single-machine custom init (shapes, finite, non-negative)
        if W0 is None or H0 is None:
            raise ValueError("init='custom' needs both W0 and H0")
        from ..init import _check_factor

        return _check_factor(W0, "W0", (m, k), dtype), _check_factor(H0, "H0", (k, n), dtype), False
    init = cfg.init
    if init == "auto":
        init = "nndsvda" if k <= min(m, n) else "random"
    exact = (not stats["sparse"] and m * n <= _EXACT_MAX_ENTRIES and min(m, n) <= _EXACT_MAX_DIM)
    if exact or init == "random" and not stats["sparse"] and m * n <= _EXACT_MAX_ENTRIES:
        Vh = _gather(handles, rows, m, n)   # what the single-machine init reads, bit for bit
        W, H = initialize(Vh, k, init, seed=init_rng, check_input=False)
        if cfg.rescale_init and init != "custom":
            W, H, _ = rescale_balance(Vh, W, H)
        return W, H, bool(cfg.rescale_init)
    op = _Operator(handles, rows, (m, n), dtype)
    W, H = computed_init(op, k, init, check_seed(init_rng), stats["sum"] / (m * n), dtype)
    if cfg.rescale_init:
        W, H, _ = rescale_balance(None, W, H, VHt=op @ np.ascontiguousarray(H.T))
    return W, H, bool(cfg.rescale_init)


def solve_dask(V, rank, *, schedule, cfg, seed=None, W0=None, H0=None, client=None,
               return_numpy=True):
    """Fit a dask array on its cluster (see the module docstring); ``cfg``: a RowConfig."""
    from distributed import get_client

    from .checkpoint import data_fingerprint
    from .solve import check_combination, n_ticks, schedule_signature

    if client is None:
        try:
            client = get_client()
        except ValueError as exc:
            raise ValueError("V is a dask array but no Dask client is running: start one "
                             "(e.g. distributed.Client(distributed.LocalCluster())) or pass "
                             "client=") from exc
    cluster = _Cluster(V, client)
    m, n = cluster.m, cluster.n
    k = check_rank(rank, (m, n))
    cfg = cfg.resolved(m)
    handles, rows = cluster.make_shards()
    st = DaskShard.call_all(handles, "stats", [()] * len(handles))
    if not all(s["finite"] for s in st):
        raise ValueError("V must be finite (it contains NaN or inf)")
    vmin = min(s["min"] for s in st)
    if vmin < 0:
        raise ValueError(f"V must be non-negative, got min(V) = {vmin!r}")
    vsq = sum(s["vsq"] for s in st)
    if not vsq > 0:
        raise ValueError("V is all zero")
    stats = {"sum": sum(s["sum"] for s in st), "sparse": st[0]["sparse"], "dtype": st[0]["dtype"]}
    dtype = np.dtype(stats["dtype"])
    rng = check_seed(seed)
    init_rng, run_rng = rng.spawn(2)
    steps = ShardedModel(handles, rows, (m, n), k, dtype, cfg, vsq, run_rng).T
    sched = resolve(schedule, total=n_ticks(cfg, steps))
    check_combination(sched, None, "dask")
    fingerprint, ck = None, None
    if cfg.checkpoint is not None or cfg.resume is not None:
        where = {}
        for h, r in zip(handles, rows):
            for local, g in enumerate(r):
                where[int(g)] = (h, local)

        def row_bytes(i):
            h, local = where[i]
            return h.call("row_bytes", [local])[0]

        from types import SimpleNamespace

        fingerprint = {"data": data_fingerprint(SimpleNamespace(shape=(m, n), dtype=dtype), vsq,
                                                rows=row_bytes),
                       "settings": dict(cfg.trajectory_settings(), rank=k,
                                        schedule=schedule_signature(sched), placement="dask")}
        fingerprint["data"]["storage"] = "sparse" if stats["sparse"] else "dense"
    if cfg.resume is not None:
        ck = read_checkpoint(cfg.resume)
        check_fingerprint(ck["fingerprint"], fingerprint, cfg.resume)
        W, H, rescaled = ck["W"].astype(dtype), ck["H"].astype(dtype), bool(cfg.rescale_init)
    else:
        W, H, rescaled = _init(cluster, handles, rows, k, cfg, init_rng, stats, W0, H0)
    model = _DaskModel(cluster, handles, rows, (m, n), k, dtype, cfg, vsq, run_rng,
                       describe="the Dask path")
    model.recover_every = cfg.checkpoint_every if cfg.checkpoint is not None else RECOVER_EVERY
    model.setup(W, H, tuple(getattr(sched, "needs", ()) or ()))
    settings = dict(rank=k, schedule=repr(sched), epochs=cfg.epochs, batch_size=cfg.batch_size,
                    init=cfg.init, seed=seed if not hasattr(seed, "spawn") else None,
                    noise_std=cfg.noise_std, clip_lr=cfg.clip_lr, kappa=cfg.kappa,
                    precondition=cfg.precondition, tol=cfg.tol, balance=cfg.balance,
                    rescale_init=rescaled, sparse=stats["sparse"], dtype=str(dtype),
                    backend="dask", n_shards=len(handles), shard_rows=[int(r.size) for r in rows])
    res = Engine(model, sched, cfg, run_rng, fingerprint=fingerprint, settings=settings).run(resume=ck)
    if not return_numpy:  # W was gathered for the result; hand it back chunked like V's rows
        import dask.array as da

        res.W = da.from_array(res.W, chunks=(cluster.V.chunks[0], (k,)))
    return res
