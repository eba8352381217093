"""``nmf_sched.distributed.fit``: a dask array on its cluster (extra ``dask``).

The same fit as :func:`nmf_sched.fit` (which also accepts a dask array and uses the current
client): the one engine over row shards, one per worker, each a Dask actor holding its
blocks of ``V`` and its rows of ``W``, with local minibatch steps and an H reduction per
unit. See :mod:`nmf_sched.engine.dask` for the scheme, :mod:`nmf_sched.engine.shards` for
the math and bounds/THEORY.md section 10 for its ceiling.
"""
from __future__ import annotations

from .config import RowConfig
from .result import FitResult

__all__ = ["fit"]


def fit(V, rank, *, schedule="auto", seed=None, W0=None, H0=None, client=None,
        return_numpy=True, **settings) -> FitResult:
    """Factorize a dask array ``V ~= W H`` on a Dask cluster.

    Parameters
    ----------
    V : dask.array.Array (m, n), non-negative
        Row blocks are the chunks along axis 0 (columns are rechunked into one chunk); the
        blocks each worker holds form its shard and never move.
    rank : int
    schedule, seed, W0, H0 :
        As in :func:`nmf_sched.fit`.
    client : distributed.Client, optional
        Default: the current client.
    return_numpy : bool, default True
        ``W`` as a numpy array; ``False``: the same values as a dask array chunked like
        ``V``'s rows (``W`` is gathered to the driver either way).
    **settings :
        Every other setting of :func:`nmf_sched.fit` (``epochs``, ``batch_size``,
        ``precondition``, ``checkpoint``, ...).

    Returns
    -------
    FitResult
        ``settings["n_shards"]`` and ``settings["shard_rows"]`` describe the split.
    """
    from .engine.dask import solve_dask

    cfg = RowConfig(**settings)
    return solve_dask(V, rank, schedule=schedule, cfg=cfg, seed=seed, W0=W0, H0=H0,
                      client=client, return_numpy=return_numpy)
