"""The Dask path of the one engine against the single-machine fit, on the same cores.

``nmf_sched.fit(dask_array, rank, client=client)`` (row shards as Dask actors, one per
worker, local minibatch steps, an H average per epoch) against ``nmf_sched.fit(V_numpy,
rank)`` on the same planted matrix (``nmf_sched.datasets.planted``, relative noise 0.1,
float64), same seed, same settings (``tol=0``, everything else at its default).
LocalCluster(threads_per_worker=1, processes=True, host="127.0.0.1") on this machine;
the single-machine fit runs in the driver process with its default BLAS threads (all
cores) and, as a second baseline, with one BLAS thread (threadpoolctl).

Sections

1. Reference (the issue's setup): 20000 x 300, rank 10, ``da.from_array(V, chunks=(2500,
   300))``, 2 workers; for each seed ``s`` (data ``planted(seed=s)``, fit ``seed=s``): final
   relative error after the same number of epochs (200, the default ``epochs``; the ratio
   after 10, 25, 50 and 100 epochs from the traces), and the epoch time, of the Dask fit
   and the single-machine fit with default and with one BLAS thread (alternating, order
   rotated). Ratios per seed; median and range over seeds.
2. Size sweep, 1 and 2 workers: m rows x 300 columns, chunks of ``min(2500, m/2)`` rows,
   persisted once per size on each cluster (the data already lives on the workers, as it
   would in use). The clusters are up for the whole sweep and the five fits (Dask 2
   workers, Dask 1 worker, Dask 2 workers started without distributed's default
   ``MALLOC_TRIM_THRESHOLD_=65536``, single machine with all BLAS threads, with 1 thread)
   alternate, order rotated, ``--repeats`` times per size; medians (ratios: the median of
   the ratios within a repeat).
3. Pay-off: the smallest swept m from which on the Dask epoch (2 workers) is below the
   single-machine epoch, and a linear model ``epoch = a + b m`` of each, fitted to the
   swept sizes from 10000 rows up, whose crossing estimates the pay-off size.

How times are taken: an epoch is the difference of the cumulative ``seconds`` of two
consecutive trace rows (the engine's clock starts after the setup and the init), the
first epoch of every fit is dropped, and the median over the rest is the fit's epoch
time; each cluster first runs an untimed warm-up fit (numba compiles in the workers and
in the driver). Cluster start-up is outside every clock. The machine may be shared: before
each measurement (a fit of section 1, a repeat of section 2) the benchmark waits, within
``--max-wait`` seconds in all, until at most ``--max-busy`` other tasks are runnable
(``/proc/loadavg``), and records what it saw. ``setup`` is the rest of a fit's
wall time (Dask: persist, one actor per worker, statistics, the init, gathering ``W``).

    python benchmarks/bench_distributed.py            # full run, 4-10 minutes
    python benchmarks/bench_distributed.py --quick    # tiny sizes, < 30 s

Writes benchmarks/results/distributed.json and .md (``--out`` changes the stem).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: The old Dask loop (before the engine), from the issue: same reference setup.
PREVIOUS = dict(error_ratio_range=[2.96, 3.5], epoch_ratio=24.0, dask_epoch_s=1.22,
                single_epoch_s=0.05)
#: Goals of the issue.
GOAL_ERROR_RATIO = 1.1
GOAL_EPOCH_RATIO = 3.0

FULL = dict(m=20000, n=300, k=10, block_rows=2500, seeds=[0, 1, 2, 3, 4], epochs=200,
            sizes=[2500, 5000, 10000, 20000, 40000, 80000, 160000], sweep_epochs=8, repeats=3)
QUICK = dict(m=4000, n=100, k=5, block_rows=500, seeds=[0, 1], epochs=60,
             sizes=[1000, 4000], sweep_epochs=5, repeats=1)


# ---------------------------------------------------------------------------
# measurement helpers
# ---------------------------------------------------------------------------
def summarize(res, wall):
    """Epoch time (median over epochs 2..E), setup time and errors of one fit."""
    sec = np.asarray(res.trace.column("seconds"), dtype=float)
    ep = np.diff(sec)[1:]
    return dict(epoch_s=float(np.median(ep)), epoch_mean_s=float(np.mean(ep)),
                setup_s=float(wall - sec[-1]), wall_s=float(wall), epochs=int(res.n_epochs),
                rel_error=float(res.rel_error),
                rel_error_curve=[float(e) for e in res.trace.column("rel_error")],
                shard_rows=res.settings.get("shard_rows"))


def dask_matrix(V, block_rows, client=None):
    """``da.from_array(V, chunks=(block_rows, n))``; with ``client``: persisted there (waited for)."""
    import dask.array as da

    dV = da.from_array(V, chunks=(block_rows, V.shape[1]))
    if client is not None:
        from distributed import wait

        dV = client.persist(dV)
        wait(dV)
    return dV


def fit_dask(dV, k, client, *, seed, epochs):
    import nmf_sched

    # as_current: several clusters are up here, and the engine once persisted V on the
    # current client instead of client= (checked by client_kwarg_honoured, see the notes)
    with client.as_current():
        t = time.perf_counter()
        res = nmf_sched.fit(dV, k, seed=seed, epochs=epochs, tol=0, client=client)
        return summarize(res, time.perf_counter() - t)


def fit_single(V, k, *, seed, epochs, threads=None):
    import nmf_sched

    ctx = contextlib.nullcontext()
    if threads is not None:
        from threadpoolctl import threadpool_limits

        ctx = threadpool_limits(threads)
    with ctx:
        t = time.perf_counter()
        res = nmf_sched.fit(V, k, seed=seed, epochs=epochs, tol=0)
        return summarize(res, time.perf_counter() - t)


def planted(m, n, k, seed):
    from nmf_sched import datasets

    return datasets.planted(m, n, k, noise=0.1, seed=seed).V


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info

        return max((d.get("num_threads", 0) for d in threadpool_info()
                    if d.get("user_api") == "blas"), default=None)
    except ImportError:  # pragma: no cover
        return None


def _git():
    """The commit measured and whether the package had uncommitted changes."""
    import subprocess

    def run(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=HERE.parent, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    dirty = run("status", "--short", "--", "nmf_sched")
    return dict(commit=run("rev-parse", "HEAD"),
                package_dirty=None if dirty is None else dirty.splitlines())


@contextlib.contextmanager
def local_cluster(n_workers, malloc_trim=True):
    """A loopback LocalCluster; the environment variables distributed writes into this
    process (thread limits and ``MALLOC_TRIM_THRESHOLD_``, meant for its workers) are
    restored on exit. ``malloc_trim=False``: workers without distributed's default
    ``MALLOC_TRIM_THRESHOLD_=65536`` (the thread limits kept); create it before any other
    cluster of the process, which would have put the variable into ``os.environ``."""
    import dask
    from distributed import Client, LocalCluster

    saved = dict(os.environ)
    cfg = {}
    if not malloc_trim:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        cfg = {"distributed.nanny.pre-spawn-environ": {
            "OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}}
    with dask.config.set(cfg):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        os.environ.clear()
        os.environ.update(saved)


def busy_others(seconds=1.0):
    """Mean number of runnable tasks other than this sampler over ``seconds`` (Linux
    ``/proc/loadavg``, field 4); None elsewhere. Taken while this benchmark is idle, it
    counts other jobs on the machine."""
    try:
        n, counts = max(1, int(seconds / 0.05)), []
        for _ in range(n):
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]))
            time.sleep(0.05)
        return max(0.0, sum(counts) / len(counts) - 1)
    except (OSError, ValueError, IndexError):
        return None


class QuietGate:
    """Before a measurement: wait (within a total budget) until other jobs leave the
    machine, i.e. until :func:`busy_others` is at most ``max_busy``; report what it saw."""

    def __init__(self, max_busy, budget_s):
        self.max_busy, self.budget_s, self.spent_s, self.log = max_busy, budget_s, 0.0, []

    def __call__(self):
        t0 = time.perf_counter()
        while True:
            busy = busy_others(min(1.0, self.budget_s))  # no budget: one quick look
            waited = time.perf_counter() - t0
            if busy is None or busy <= self.max_busy or self.spent_s + waited >= self.budget_s:
                break
        self.spent_s += waited
        rec = dict(busy=busy, waited_s=waited, quiet=busy is not None and busy <= self.max_busy)
        self.log.append(rec)
        return rec


_CLIENT_CHECK = """
import numpy as np, dask.array as da
from distributed import Client, LocalCluster
import nmf_sched
if __name__ == "__main__":
    kw = dict(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
              dashboard_address=None)
    given, current = Client(LocalCluster(**kw)), Client(LocalCluster(**kw))
    V = np.random.default_rng(0).random((200, 20))
    try:
        with current.as_current():
            nmf_sched.fit(da.from_array(V, chunks=(50, 20)), 3, epochs=1, seed=0, tol=0,
                          client=given)
        print("RESULT ok")
    except Exception as exc:
        print("RESULT", type(exc).__name__, str(exc)[:200].replace(chr(10), " "))
"""


def client_kwarg_honoured(timeout=30):
    """Does ``nmf_sched.fit(dask_array, client=given)`` work while another client is the
    current one? True, or what happened instead (an error, or no answer within ``timeout``
    seconds). Run in a child process with its own two clusters: a hang must not stop the
    benchmark, which runs its Dask fits inside ``client.as_current()`` either way."""
    import subprocess

    try:
        out = subprocess.run([sys.executable, "-c", _CLIENT_CHECK], capture_output=True, text=True,
                             timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout} s (hangs)"
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    if not lines:
        return f"child exited with {out.returncode}: {out.stderr[-200:]}"
    return True if lines[-1] == "RESULT ok" else lines[-1][len("RESULT "):]


def _rotate(items, r):
    r %= len(items)
    return items[r:] + items[:r]


def _stats(values):
    return dict(median=float(statistics.median(values)), min=float(min(values)),
                max=float(max(values)))


def warm_up(clients, k):
    """Untimed fits: numba compiles in every worker and in the driver."""
    V = planted(400, 40, k, seed=123)
    for c in clients:
        fit_dask(dask_matrix(V, 100), k, c, seed=0, epochs=3)
    fit_single(V, k, seed=0, epochs=3)
    fit_single(V, k, seed=0, epochs=3, threads=1)


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------
def reference(p, client, log, gate):
    """Error and epoch time at the issue's setup, several seeds, 2 workers."""
    runs = []
    checkpoints = sorted({e for e in (10, 25, 50, 100) if e < p["epochs"]} | {p["epochs"]})
    for i, s in enumerate(p["seeds"]):
        V = planted(p["m"], p["n"], p["k"], seed=s)
        out = {}
        quiet = []
        for which in _rotate(["dask", "single", "single1"], i):
            quiet.append(gate())
            if which == "dask":
                out[which] = fit_dask(dask_matrix(V, p["block_rows"]), p["k"], client, seed=s,
                                      epochs=p["epochs"])
            else:
                out[which] = fit_single(V, p["k"], seed=s, epochs=p["epochs"],
                                        threads=1 if which == "single1" else None)
        d, sm, s1 = out["dask"], out["single"], out["single1"]
        row = dict(seed=s, dask=d, single=sm, single1=s1, error_ratio=d["rel_error"] / sm["rel_error"],
                   epoch_ratio_1thread=d["epoch_s"] / s1["epoch_s"],
                   load_average=os.getloadavg()[0], quiet=quiet,
                   epoch_ratio=d["epoch_s"] / sm["epoch_s"],
                   error_ratio_at={str(e): d["rel_error_curve"][e] / sm["rel_error_curve"][e]
                                   for e in checkpoints})
        runs.append(row)
        log(f"[reference] seed {s}: error {d['rel_error']:.5f} / {sm['rel_error']:.5f} = "
            f"{row['error_ratio']:.4f}; epoch {d['epoch_s'] * 1e3:.1f} / {sm['epoch_s'] * 1e3:.1f} ms"
            f" = {row['epoch_ratio']:.2f} (1 thread {s1['epoch_s'] * 1e3:.1f} ms: "
            f"{row['epoch_ratio_1thread']:.2f}); shards {d['shard_rows']}; setup {d['setup_s']:.2f} s")
    er = _stats([r["error_ratio"] for r in runs])
    tr = _stats([r["epoch_ratio"] for r in runs])
    tr1 = _stats([r["epoch_ratio_1thread"] for r in runs])
    return dict(setup=dict(m=p["m"], n=p["n"], rank=p["k"], chunks=[p["block_rows"], p["n"]],
                           epochs=p["epochs"], seeds=p["seeds"], workers=2, threads_per_worker=1),
                runs=runs, error_ratio=er, epoch_ratio=tr, epoch_ratio_1thread=tr1,
                error_ratio_at={str(e): _stats([r["error_ratio_at"][str(e)] for r in runs])
                                for e in checkpoints},
                dask_epoch_s=_stats([r["dask"]["epoch_s"] for r in runs]),
                single_epoch_s=_stats([r["single"]["epoch_s"] for r in runs]),
                single1_epoch_s=_stats([r["single1"]["epoch_s"] for r in runs]),
                dask_setup_s=_stats([r["dask"]["setup_s"] for r in runs]),
                goals=dict(error_ratio=er["max"] <= GOAL_ERROR_RATIO,
                           epoch_ratio=tr["max"] <= GOAL_EPOCH_RATIO))


def _paired(got, a, b):
    """Median over repeats of the ratio of two fits' epoch times taken in the same repeat."""
    return float(statistics.median(x["epoch_s"] / y["epoch_s"] for x, y in zip(got[a], got[b])))


def sweep(p, clients, log, gate):
    """Epoch time against m for Dask on 2 and 1 workers and the single machine."""
    rows = []
    for m in p["sizes"]:
        V = planted(m, p["n"], p["k"], seed=0)
        br = min(p["block_rows"], math.ceil(m / 2))
        # V persisted once per cluster: every fit of this size finds it on the workers
        dVs = {w: dask_matrix(V, br, c) for w, c in clients.items()}

        def dask_fit(w):
            return lambda: fit_dask(dVs[w], p["k"], clients[w], seed=0, epochs=p["sweep_epochs"])

        fits = {"dask2": dask_fit(2), "dask1": dask_fit(1),
                "single": lambda: fit_single(V, p["k"], seed=0, epochs=p["sweep_epochs"]),
                "single1": lambda: fit_single(V, p["k"], seed=0, epochs=p["sweep_epochs"],
                                              threads=1)}
        if "2nt" in clients:
            fits["dask2nt"] = dask_fit("2nt")
        got = {key: [] for key in fits}
        quiet = []
        for r in range(p["repeats"]):
            quiet.append(gate())
            for key in _rotate(list(fits), r):
                got[key].append(fits[key]())
        dVs.clear()  # release the persisted copies before the next size
        row = dict(m=m, n=p["n"], block_rows=br, load_average=os.getloadavg()[0], quiet=quiet,
                   shard_rows=[g["shard_rows"] for g in got["dask2"]])
        for key, runs in got.items():
            row[key] = dict(epoch_s=float(statistics.median(g["epoch_s"] for g in runs)),
                            setup_s=float(statistics.median(g["setup_s"] for g in runs)),
                            epoch_s_runs=[g["epoch_s"] for g in runs],
                            rel_error=float(statistics.median(g["rel_error"] for g in runs)))
        # ratios: medians of the ratios within a repeat (the fits of a repeat run back to back)
        row["dask2_over_single"] = _paired(got, "dask2", "single")
        row["dask2_over_single1"] = _paired(got, "dask2", "single1")
        row["speedup_1_to_2_workers"] = _paired(got, "dask1", "dask2")
        row["dask1_over_single1"] = _paired(got, "dask1", "single1")
        if "dask2nt" in got:
            row["dask2nt_over_single"] = _paired(got, "dask2nt", "single")
            row["dask2nt_over_single1"] = _paired(got, "dask2nt", "single1")
            row["dask2nt_over_dask2"] = _paired(got, "dask2nt", "dask2")
        rows.append(row)
        log(f"[sweep] m={m}: epoch ms dask2 {row['dask2']['epoch_s'] * 1e3:.1f}, dask1 "
            f"{row['dask1']['epoch_s'] * 1e3:.1f}, single {row['single']['epoch_s'] * 1e3:.1f}, "
            f"single 1 thread {row['single1']['epoch_s'] * 1e3:.1f}; dask2/single "
            f"{row['dask2_over_single']:.2f}, 1->2 workers x{row['speedup_1_to_2_workers']:.2f}"
            + (f", no malloc trim {row['dask2nt']['epoch_s'] * 1e3:.1f} ms "
               f"(/single {row['dask2nt_over_single']:.2f})" if "dask2nt" in row else "") + "; "
            f"shards {row['shard_rows']}; load {row['load_average']:.1f}")
    return rows


def line_fit(ms, ts):
    """Least-squares ``t = a + b m``."""
    b, a = np.polyfit(np.asarray(ms, float), np.asarray(ts, float), 1)
    return float(a), float(b)


def payoff(rows, min_rows=10000):
    """Where the Dask epoch (2 workers) drops below the single machine's.

    For both baselines (``single``: default BLAS threads; ``single1``: one thread; keys of
    the second end in ``_1thread``) and, where measured, for the Dask workers without
    ``MALLOC_TRIM_THRESHOLD_`` too (``dask2nt``, keys with ``_notrim``): the swept sizes where Dask is faster, the smallest
    size from which it is faster at every larger swept size, and the crossing of the two
    linear models ``epoch = a + b m`` fitted to the sizes from ``min_rows`` up (None: Dask's
    per-row cost is not below the baseline's, so it never pays off by the model), and the
    size where Dask's fixed cost per epoch (the difference at the smallest swept size)
    equals the per-row saving of the models times m.
    """
    fit_rows = [r for r in rows if r["m"] >= min_rows] or rows
    ms = [r["m"] for r in fit_rows]
    out = dict(model_min_rows=min(ms))
    daskkeys = [("dask2", "")] + ([("dask2nt", "_notrim")] if "dask2nt" in rows[0] else [])
    for key in ("dask2", "single", "single1", "dask1") + tuple(k for k, _ in daskkeys[1:]):
        a, b = line_fit(ms, [r[key]["epoch_s"] for r in fit_rows])
        out[key] = dict(overhead_s=a, per_row_s=b)
    for dk, dsuffix, base, bsuffix in [(dk, ds, b, bs) for dk, ds in daskkeys
                                       for b, bs in (("single", ""), ("single1", "_1thread"))]:
        d, suffix = out[dk], dsuffix + bsuffix
        faster = [r[f"{dk}_over_{base}"] < 1.0 for r in rows]
        first = None
        for r, f in zip(reversed(rows), reversed(faster)):
            if not f:
                break
            first = r["m"]
        s = out[base]
        # the fixed cost per epoch, read where the work is negligible (the smallest size),
        # over the per-row saving of the models: the second estimate of the pay-off size
        fixed = rows[0][dk]["epoch_s"] - rows[0][base]["epoch_s"]
        out["fixed_overhead_s" + suffix] = fixed
        out["overhead_crossing_m" + suffix] = (
            fixed / (s["per_row_s"] - d["per_row_s"]) if d["per_row_s"] < s["per_row_s"] else None)
        out["sizes_below" + suffix] = [r["m"] for r, f in zip(rows, faster) if f]
        out["measured_from" + suffix] = first
        out["model_crossing_m" + suffix] = (
            (d["overhead_s"] - s["overhead_s"]) / (s["per_row_s"] - d["per_row_s"])
            if d["per_row_s"] < s["per_row_s"] else None)
    return out


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
def notes(res):
    """Things to read the numbers with, derived from the results themselves."""
    ref, rows = res["reference"], res["sweep"]
    out = []
    loads = [r["load_average"] for r in ref["runs"]] + [r["load_average"] for r in rows]
    q = res["meta"]["quiet_gate"]
    busy = [g["busy"] for g in [x for r in ref["runs"] + rows for x in r["quiet"]]
            if g["busy"] is not None]
    out.append(f"1-minute load average during the run: {min(loads):.1f}-{max(loads):.1f} on "
               f"{res['meta']['cpus']} CPUs (this benchmark alone adds about 1-2). Before each "
               f"measurement the benchmark waited for other jobs to leave (at most "
               f"{q['max_busy']} other runnable tasks; {q['waited_s']:.0f} s of waiting in all, "
               f"budget {q['budget_s']:.0f} s): {q['gates'] - q['not_quiet']} of {q['gates']} "
               f"measurements started quiet"
               + (f"; other runnable tasks at the start: {min(busy):.1f}-{max(busy):.1f}." if busy else "."))
    slower = [r["m"] for r in rows if r["single"]["epoch_s"] > 1.2 * r["single1"]["epoch_s"]]
    slower_ref = [r["seed"] for r in ref["runs"] if r["single"]["epoch_s"] > 1.2 * r["single1"]["epoch_s"]]
    if slower_ref:
        out.append(f"Reference: the single-machine fit with its default BLAS threads was more than "
                   f"1.2x slower than with one thread for seed(s) {slower_ref}.")
    if slower:
        out.append("The single-machine fit with its default BLAS threads was more than 1.2x slower "
                   f"than with one thread at m = {slower}: BLAS threads that wait for a busy core "
                   "(oversubscription); Dask's workers run one thread each. Read the "
                   "`Dask 2 / single 1 thread` column beside `Dask 2 / single`.")
    uneven = []
    for r in [dict(m=ref["setup"]["m"], shard_rows=[x["dask"]["shard_rows"] for x in ref["runs"]])] + rows:
        for sr in r["shard_rows"]:
            if sr and len(sr) > 1 and max(sr) > 1.2 * min(sr) and (r["m"], sr) not in uneven:
                uneven.append((r["m"], sr))
    if uneven:
        out.append("Uneven shards (the engine takes the block placement Dask chose when V was "
                   "persisted, and an epoch waits for the largest shard): "
                   + ", ".join(f"m={m}: {sr}" for m, sr in uneven) + ".")
    if "dask2nt" in rows[0]:
        big = [r for r in rows if r["m"] >= 10000] or rows
        gain = statistics.median(r["dask2nt_over_dask2"] for r in big)
        one = statistics.median(r["dask1_over_single1"] for r in big)
        out.append(f"From m = {big[0]['m']} up, Dask on 1 worker takes {one:.2f}x the single "
                   f"machine on 1 thread (median), though with one shard it does the same "
                   f"steps; workers without distributed's `MALLOC_TRIM_THRESHOLD_` take "
                   f"{gain:.2f}x the default workers' epoch (median).")
    honoured = res["meta"].get("client_kwarg_honoured")
    if honoured not in (True, None):  # None: not checked (--quick)
        out.append("`nmf_sched.fit(dask_array, client=c)` with another client current in the "
                   f"process does not work at this commit ({honoured}); the benchmark runs "
                   "every Dask fit inside `c.as_current()`.")
    return out


def _ms(x):
    return f"{x * 1e3:.1f}"


def _rng(st, fmt="{:.3f}"):
    return f"{fmt.format(st['median'])} ({fmt.format(st['min'])}-{fmt.format(st['max'])})"


def _shards(runs):
    uniq = []
    for s in runs:
        if s not in uniq:
            uniq.append(s)
    return "; ".join(str(s) for s in uniq)


def markdown(res):
    meta, ref, rows, pay = res["meta"], res["reference"], res["sweep"], res["payoff"]
    su = ref["setup"]
    yes = {True: "met", False: "NOT met"}
    cmd = "python benchmarks/bench_distributed.py" + (" --quick" if meta["quick"] else "")
    L = [f"# Dask path of the one engine against the single-machine fit{' (quick)' if meta['quick'] else ''}",
         "",
         f"Generated by `{cmd}` in {meta['wall_seconds']:.0f} s. Machine: {meta['machine']}, "
         f"{meta['cpus']} CPUs, python {meta['python']}, numpy {meta['numpy']}, dask "
         f"{meta['dask']}, distributed {meta['distributed']}; commit {str(meta['git']['commit'])[:7]}"
         f"{' with uncommitted changes to nmf_sched/' if meta['git']['package_dirty'] else ''}. "
         f"LocalCluster(threads_per_worker=1, "
         f"processes=True, loopback); worker BLAS threads {meta['worker_blas_threads']}, "
         f"driver (single-machine fit) BLAS threads {meta['driver_blas_threads']}. "
         f"Protocol: the script's docstring. Epoch = median over epochs 2..E of the "
         f"trace's per-epoch seconds, after an untimed warm-up fit per cluster.",
         "",
         f"## Reference: planted {su['m']} x {su['n']}, rank {su['rank']}, chunks "
         f"({su['chunks'][0]}, {su['chunks'][1]}), 2 workers, {su['epochs']} epochs, "
         f"seeds {', '.join(map(str, su['seeds']))}",
         "",
         "| quantity | goal | now: median (range over seeds) | | before the engine (issue) |",
         "|---|---|---|---|---|",
         f"| final rel. error, Dask / single | <= {GOAL_ERROR_RATIO} | {_rng(ref['error_ratio'], '{:.4f}')} "
         f"| {yes[ref['goals']['error_ratio']]} | {PREVIOUS['error_ratio_range'][0]}-"
         f"{PREVIOUS['error_ratio_range'][1]} |",
         f"| epoch, Dask / single | <= {GOAL_EPOCH_RATIO} | {_rng(ref['epoch_ratio'], '{:.2f}')} "
         f"| {yes[ref['goals']['epoch_ratio']]} | {PREVIOUS['epoch_ratio']:.0f} |",
         f"| epoch, Dask / single with 1 BLAS thread | | {_rng(ref['epoch_ratio_1thread'], '{:.2f}')} "
         f"| | |",
         f"| epoch, Dask (ms) | | {_rng({k: v * 1e3 for k, v in ref['dask_epoch_s'].items()}, '{:.1f}')} "
         f"| | {PREVIOUS['dask_epoch_s'] * 1e3:.0f} |",
         f"| epoch, single machine (ms) | | "
         f"{_rng({k: v * 1e3 for k, v in ref['single_epoch_s'].items()}, '{:.1f}')} | | "
         f"{PREVIOUS['single_epoch_s'] * 1e3:.0f} |",
         f"| epoch, single machine, 1 BLAS thread (ms) | | "
         f"{_rng({k: v * 1e3 for k, v in ref['single1_epoch_s'].items()}, '{:.1f}')} | | |",
         f"| Dask setup per fit (s) | | {_rng(ref['dask_setup_s'], '{:.2f}')} | | |",
         ""]
    L += ["Error ratio after e epochs (median, range): "
          + "; ".join(f"e={e}: {_rng(st, '{:.4f}')}" for e, st in ref["error_ratio_at"].items()) + ".",
          "",
          "| seed | Dask error | single error | ratio | Dask epoch (ms) | single epoch (ms) | ratio "
          "| single 1 thread (ms) | ratio | Dask mean epoch (ms) | shard rows | load avg. |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in ref["runs"]:
        d, s = r["dask"], r["single"]
        L.append(f"| {r['seed']} | {d['rel_error']:.5f} | {s['rel_error']:.5f} | {r['error_ratio']:.4f} "
                 f"| {_ms(d['epoch_s'])} | {_ms(s['epoch_s'])} | {r['epoch_ratio']:.2f} "
                 f"| {_ms(r['single1']['epoch_s'])} | {r['epoch_ratio_1thread']:.2f} "
                 f"| {_ms(d['epoch_mean_s'])} | {d['shard_rows']} | {r['load_average']:.1f} |")
    L += ["", "The mean epoch includes the driver's recovery point (it gathers W) every 10 epochs.",
          "",
          f"## Size sweep: m x {rows[0]['n']}, rank {ref['setup']['rank']}, "
          f"{meta['params']['sweep_epochs']} epochs per fit, medians of {meta['params']['repeats']}",
          "",
          "| m | chunk rows | Dask 2 workers (ms) | Dask 1 worker (ms) | single (ms) | single, 1 thread (ms) "
          "| Dask 2 / single | Dask 2 / single 1 thread | 1 -> 2 workers speedup | Dask 1 / single 1 thread "
          "| Dask setup (s) | shard rows (2 workers) | load avg. |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['m']} | {r['block_rows']} | {_ms(r['dask2']['epoch_s'])} "
                 f"| {_ms(r['dask1']['epoch_s'])} "
                 f"| {_ms(r['single']['epoch_s'])} | {_ms(r['single1']['epoch_s'])} "
                 f"| {r['dask2_over_single']:.2f} | {r['dask2_over_single1']:.2f} "
                 f"| {r['speedup_1_to_2_workers']:.2f} "
                 f"| {r['dask1_over_single1']:.2f} | {r['dask2']['setup_s']:.2f} "
                 f"| {_shards(r['shard_rows'])} | {r['load_average']:.1f} |")
    nt = "dask2nt" in rows[0]
    if nt:
        L += ["", "### Dask workers without `MALLOC_TRIM_THRESHOLD_`", "",
              "distributed starts its workers with `MALLOC_TRIM_THRESHOLD_=65536` "
              "(`distributed.nanny.pre-spawn-environ`). A third 2-worker cluster started without "
              "it (thread limits kept) runs the same fits in the same repeats:", "",
              "| m | Dask 2 workers (ms) | same, no malloc trim (ms) | no trim / default | "
              "no trim / single | no trim / single 1 thread |",
              "|---|---|---|---|---|---|"]
        for r in rows:
            L.append(f"| {r['m']} | {_ms(r['dask2']['epoch_s'])} | {_ms(r['dask2nt']['epoch_s'])} "
                     f"| {r['dask2nt_over_dask2']:.2f} | {r['dask2nt_over_single']:.2f} "
                     f"| {r['dask2nt_over_single1']:.2f} |")
    d, s, s1 = pay["dask2"], pay["single"], pay["single1"]
    L += ["", "## Pay-off size", "",
          f"Linear model `epoch = a + b m` fitted to the sizes from {pay['model_min_rows']} rows up: "
          f"Dask 2 workers a = {_ms(d['overhead_s'])} ms, b = {d['per_row_s'] * 1e9:.0f} ns/row; "
          f"single machine a = {_ms(s['overhead_s'])} ms, b = {s['per_row_s'] * 1e9:.0f} ns/row "
          f"(1 thread: a = {_ms(s1['overhead_s'])} ms, b = {s1['per_row_s'] * 1e9:.0f} ns/row); "
          f"Dask 1 worker a = {_ms(pay['dask1']['overhead_s'])} ms, "
          f"b = {pay['dask1']['per_row_s'] * 1e9:.0f} ns/row"
          + (f"; Dask 2 workers without malloc trim a = {_ms(pay['dask2nt']['overhead_s'])} ms, "
             f"b = {pay['dask2nt']['per_row_s'] * 1e9:.0f} ns/row." if nt else "."),
          ""]
    cases = [("", "Dask", "single machine (default BLAS threads)"),
             ("_1thread", "Dask", "single machine with one BLAS thread")]
    if nt:
        cases += [("_notrim", "Dask (no malloc trim)", "single machine (default BLAS threads)"),
                  ("_notrim_1thread", "Dask (no malloc trim)", "single machine with one BLAS thread")]
    for suffix, who, what in cases:
        first, below, c = (pay["measured_from" + suffix], pay["sizes_below" + suffix],
                           pay["model_crossing_m" + suffix])
        meas = (f"below from m = {first} rows on" if first is not None
                else "not below at the largest swept sizes")
        model = (f"the models cross at m = {c:.0f}" if c is not None and c > 0 else
                 "by the models Dask is cheaper at every size" if c is not None else
                 "the models never cross (Dask's per-row cost is not below)")
        fixed, oc = pay["fixed_overhead_s" + suffix], pay["overhead_crossing_m" + suffix]
        model += (f"; the fixed cost per epoch ({_ms(fixed)} ms at m = {rows[0]['m']}) over "
                  f"the per-row saving gives m = {oc:.0f}" if oc is not None else "")
        L.append(f"- {who} against the {what}: the epoch is {meas} (faster at "
                 f"{below or 'no size'}); {model}.")
    L.append("")
    if res.get("notes"):
        L += ["## Notes", ""] + [f"- {n}" for n in res["notes"]] + [""]
    return "\n".join(L)


def _write(res, out):
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    Path(str(out) + ".md").write_text(md)
    print(md)


def report(path, out):
    """``--report``: the derived parts again, from the measured parts of a results JSON."""
    res = json.loads(Path(path).read_text())
    res["payoff"] = payoff(res["sweep"], min_rows=0 if res["meta"]["quick"] else 10000)
    res["notes"] = notes(res)
    _write(res, out)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (< 30 s)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="rows of the size sweep")
    ap.add_argument("--out", default=str(HERE / "results" / "distributed"), help="output stem")
    ap.add_argument("--max-busy", type=float, default=0.5,
                    help="wait before each measurement until at most this many other tasks run")
    ap.add_argument("--max-wait", type=float, default=None,
                    help="total seconds the waits may take (default 240; --quick: 0)")
    ap.add_argument("--report", metavar="JSON", default=None,
                    help="no measurement: re-derive the pay-off, the notes and the markdown from "
                         "a results JSON of this script and write them to --out")
    args = ap.parse_args(argv)
    if args.report:
        return report(args.report, args.out)
    t_start = time.perf_counter()
    p = dict(QUICK if args.quick else FULL)
    if args.repeats is not None:
        p["repeats"] = args.repeats
    if args.sizes:
        p["sizes"] = sorted(args.sizes)
    import dask
    import distributed

    # from_array of a numpy matrix embeds it in the graph (the setup): expected
    warnings.filterwarnings("ignore", message=".*large graph.*")
    warnings.filterwarnings("ignore", message=".*Sending large graph.*")

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    honoured = None if args.quick else client_kwarg_honoured(timeout=30)
    log(f"fit(client=c) with another client current: {honoured}")
    # the cluster without MALLOC_TRIM_THRESHOLD_ first (see local_cluster)
    with local_cluster(2, malloc_trim=False) as c2nt, local_cluster(2) as c2, \
            local_cluster(1) as c1:
        clients = {1: c1, 2: c2, "2nt": c2nt}
        warm_up([c2, c1, c2nt], p["k"])
        wb = {**c2.run(_blas_threads), **c1.run(_blas_threads), **c2nt.run(_blas_threads)}
        trim = {str(w): sorted(set(c.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()),
                               key=str)
                for w, c in clients.items()}
        log(f"clusters up and warm; worker BLAS threads {wb}, driver {_blas_threads()}; "
            f"workers' MALLOC_TRIM_THRESHOLD_ {trim}")
        gate = QuietGate(args.max_busy, args.max_wait if args.max_wait is not None
                         else 0.0 if args.quick else 240.0)
        ref = reference(p, c2, log, gate)
        rows = sweep(p, clients, log, gate)
    pay = payoff(rows, min_rows=10000 if not args.quick else 0)
    meta = dict(quick=args.quick, argv=sys.argv[1:] if argv is None else list(argv), params=p,
                machine=platform.processor() or platform.machine(), platform=platform.platform(),
                cpus=os.cpu_count(), python=platform.python_version(), numpy=np.__version__,
                dask=dask.__version__, distributed=distributed.__version__,
                worker_blas_threads=sorted(set(wb.values())), driver_blas_threads=_blas_threads(),
                worker_malloc_trim_threshold=trim, client_kwarg_honoured=honoured,
                load_average=list(os.getloadavg()), git=_git(),
                quiet_gate=dict(max_busy=gate.max_busy, budget_s=gate.budget_s,
                                waited_s=gate.spent_s, gates=len(gate.log),
                                not_quiet=sum(not g["quiet"] for g in gate.log)))
    res = dict(meta=meta, previous=PREVIOUS, goals=dict(error_ratio=GOAL_ERROR_RATIO,
                                                        epoch_ratio=GOAL_EPOCH_RATIO),
               reference=ref, sweep=rows, payoff=pay)
    res["notes"] = notes(res)
    res["meta"]["wall_seconds"] = time.perf_counter() - t_start
    _write(res, args.out)
    return res


if __name__ == "__main__":
    main()
