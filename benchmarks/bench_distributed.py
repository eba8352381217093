"""Dask benchmark: factorize a matrix larger than one worker's memory_limit.

Starts a LocalCluster (loopback, 2 worker processes x 1 thread by default),
generates a planted low-rank + noise float32 matrix chunk-wise *on the workers*
(``map_blocks`` from per-block seeds; nothing is built on the driver), persists
it (each worker holds its row blocks), runs :func:`nmf_sched.distributed.fit`
and reports the error, the time and each worker's peak RSS (``ru_maxrss``).

    python benchmarks/bench_distributed.py                       # 56000 x 4000 (0.83 GiB), 768 MiB/worker
    python benchmarks/bench_distributed.py --rows 80000 --memory-limit 1GiB

Spilling and pausing are switched off so the data really lives in the workers' memory
(a block spilled to disk would make the comparison with memory_limit moot).
Results: benchmarks/results/distributed.json and .md.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _planted_block(block_id=None, block_info=None, *, k, n, seed, noise):
    info = block_info[None]
    (r0, r1), _ = info["array-location"]
    i = block_id[0]
    H = np.random.default_rng([seed, 0]).random((k, n), dtype=np.float32)
    r = np.random.default_rng([seed, 1, i])
    W = r.random((r1 - r0, k), dtype=np.float32)
    X = W @ H
    X += noise * r.random(X.shape, dtype=np.float32)
    return X


def _peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=56000)
    ap.add_argument("--cols", type=int, default=4000)
    ap.add_argument("--block-rows", type=int, default=4000)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="768MiB")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", default="auto")
    ap.add_argument("--out", default=str(HERE / "results" / "distributed"))
    args = ap.parse_args(argv)
    import dask
    import dask.array as da
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    import nmf_sched.distributed as nd

    m, n, k = args.rows, args.cols, args.rank
    limit = parse_bytes(args.memory_limit)
    nbytes = m * n * 4
    with dask.config.set({"distributed.worker.memory.target": False,
                          "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": False,
                          "distributed.worker.memory.terminate": False}):
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None, memory_limit=limit)
        client = Client(cluster)
        try:
            chunks = ((args.block_rows,) * (m // args.block_rows)
                      + ((m % args.block_rows,) if m % args.block_rows else ()), (n,))
            V = da.map_blocks(_planted_block, chunks=chunks, dtype=np.float32, k=k, n=n, seed=0,
                              noise=0.1, meta=np.empty((0, 0), np.float32))
            t = time.perf_counter()
            V = V.persist()
            from distributed import wait
            wait(V)
            t_gen = time.perf_counter() - t
            bs = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
            res = nd.fit(V, k, epochs=args.epochs, batch_size=bs, seed=0, client=client, tol=0)
            peaks = client.run(_peak_rss)
            held = {w: int(v) for w, v in client.run(
                lambda dask_worker: sum(getattr(x, "nbytes", 0) for x in dask_worker.data.values())).items()}
        finally:
            client.close()
            cluster.close()
    out = dict(m=m, n=n, rank=k, data_bytes=nbytes, workers=args.workers, memory_limit=limit,
               epochs=res.n_epochs, steps=res.n_steps, batch_size=res.settings["batch_size"],
               n_blocks=res.settings["n_blocks"], seconds_generate=t_gen, seconds_fit=res.seconds,
               seconds_per_epoch=res.seconds / max(res.n_epochs, 1), rel_error=res.rel_error,
               rel_error_per_epoch=list(res.trace.column("rel_error")),
               worker_peak_rss=peaks, worker_bytes_held_at_end=held)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2))
    mib = 2.0**20
    md = [f"# Dask data-parallel fit: {m} x {n} float32 ({nbytes / mib:.0f} MiB), k={k}", "",
          f"{args.workers} worker processes x 1 thread, memory_limit {limit / mib:.0f} MiB each "
          f"(data > one worker's limit: {nbytes > limit}), spilling off, {res.settings['n_blocks']} row blocks.", "",
          "| quantity | value |", "|---|---|",
          f"| generate + persist on workers | {t_gen:.1f} s |",
          f"| fit | {res.seconds:.1f} s, {res.n_epochs} epochs, {res.n_steps} steps "
          f"(batch {res.settings['batch_size']}), {out['seconds_per_epoch']:.1f} s/epoch |",
          f"| rel. error: init -> final | {res.trace[0]['rel_error']:.4f} -> {res.rel_error:.4f} |"]
    for w, p in peaks.items():
        md.append(f"| peak RSS {w} | {p / mib:.0f} MiB (holds {held[w] / mib:.0f} MiB of data) |")
    md.append("")
    Path(args.out + ".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
