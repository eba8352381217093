"""Out-of-core benchmark: fit a dense float32 matrix on disk streamed by row blocks.

Writes a planted low-rank + noise matrix to an .npy file block by block (never
whole in memory), opens it with :func:`nmf_sched.streaming.open_rows`, fits with
``shuffle="blocks"`` and reports the peak resident memory of this process
(``ru_maxrss``) against the file size, and the error against an in-memory fit
on a random row subsample (same settings).

    python benchmarks/bench_outofcore.py --size-gb 4      # the goal: peak RSS < 1 GB
    python benchmarks/bench_outofcore.py                  # default 0.5 GB

Results: benchmarks/results/outofcore.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import nmf_sched
from nmf_sched.streaming import open_rows

HERE = Path(__file__).resolve().parent


def _status(key):
    """/proc/self/status entry in bytes (VmRSS: now; VmHWM: this process's peak)."""
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def rss_now():
    return _status("VmRSS")


def rss_peak():
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork+exec
    return max(_status("VmHWM"), 0)


def write_planted(path, m, n, k, seed, block=20000):
    r = np.random.default_rng(seed)
    H = r.random((k, n), dtype=np.float32)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (m, n)})
        for a in range(0, m, block):
            b = min(m, a + block)
            W = r.random((b - a, k), dtype=np.float32)
            f.write((W @ H + 0.1 * r.random((b - a, n), dtype=np.float32)).tobytes())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=0.5)
    ap.add_argument("--n", type=int, default=1000, help="columns")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--subsample", type=int, default=20000, help="rows of the in-memory comparison")
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--keep", action="store_true", help="keep the file")
    ap.add_argument("--out", default=str(HERE / "results" / "outofcore"))
    args = ap.parse_args(argv)
    n, k = args.n, args.rank
    m = int(args.size_gb * 1e9 / (4 * n))
    path = Path(args.dir) / f"nmf_sched_ooc_{m}x{n}.npy"
    t = time.perf_counter()
    if not path.exists():
        write_planted(path, m, n, k, seed=0)
    t_write = time.perf_counter() - t
    size = path.stat().st_size
    # compile the kernels first so the JIT's memory is part of the baseline
    nmf_sched.fit(np.random.default_rng(0).random((300, 20), dtype=np.float32), 4, epochs=1, seed=0,
                  init="random", shuffle="blocks", batch_size=64)
    base = rss_now()
    try:  # reset the peak to the current RSS, so it measures the fit
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    V = open_rows(path)
    kw = dict(epochs=args.epochs, batch_size=args.batch_size, shuffle="blocks", seed=0,
              init="random", tol=0)
    t = time.perf_counter()
    res = nmf_sched.fit(V, k, **kw)
    t_fit = time.perf_counter() - t
    peak = rss_peak()
    rows = np.sort(np.random.default_rng(1).choice(m, size=min(args.subsample, m), replace=False))
    X = np.concatenate([V[a:a + 1] for a in rows])  # row by row: the pages are released each time
    sub_err_stream = float(np.linalg.norm(X - res.W[rows] @ res.H) / np.linalg.norm(X))
    sub = nmf_sched.fit(X, k, **kw)
    out = dict(m=m, n=n, rank=k, file_bytes=size, epochs=res.n_epochs, batch_size=args.batch_size,
               seconds_fit=t_fit, seconds_per_epoch=t_fit / max(res.n_epochs, 1),
               seconds_write=t_write, rss_baseline_bytes=base, rss_peak_bytes=peak,
               rss_growth_bytes=peak - base, rel_error=res.rel_error,
               subsample_rows=len(rows), subsample_rel_error_streamed=sub_err_stream,
               subsample_rel_error_in_memory=sub.rel_error,
               chunk_bytes=__import__("nmf_sched.data").data.CHUNK_BYTES)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2))
    gb = 2.0**30
    md = [f"# Out-of-core fit ({size / gb:.2f} GiB float32 .npy, {m} x {n}, k={k})", "",
          "| quantity | value |", "|---|---|",
          f"| epochs | {res.n_epochs} (batch {args.batch_size}, shuffle='blocks') |",
          f"| fit time | {t_fit:.1f} s ({out['seconds_per_epoch']:.1f} s/epoch, incl. validation and init passes) |",
          f"| peak RSS | {peak / gb:.3f} GiB (baseline after imports {base / gb:.3f} GiB; growth {(peak - base) / gb:.3f} GiB) |",
          f"| file size | {size / gb:.2f} GiB |",
          f"| rel. error (full) | {res.rel_error:.4f} |",
          f"| rel. error on {len(rows)} random rows: streamed fit / in-memory fit of the rows | "
          f"{sub_err_stream:.4f} / {sub.rel_error:.4f} |", ""]
    Path(args.out + ".md").write_text("\n".join(md))
    print("\n".join(md))
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
