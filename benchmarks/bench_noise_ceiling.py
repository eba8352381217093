"""Does the noise-aware ceiling slow the default fit? Same-run ratios, on against off.

The default fit (``schedule="auto"``, default batch size and init, ``noise_std=0``) still
has minibatch sampling noise, so the noise-aware ceiling (nmf_sched/engine/noise.py) can cap
its H steps. Each dataset is fitted with ``RowConfig(noise_ceiling=True)`` (the default) and
``noise_ceiling=False`` (the noise-free ceiling only), interleaved, ``--repeats`` times, and
the script reports the medians of

* the final relative error after ``--epochs`` epochs (ratio on/off; < 1: the ceiling helps);
* the epochs and the seconds to reach the target ``1.01 x`` the best error the off run
  reached (ratio on/off; > 1: slower; ``inf`` when never reached);
* the seconds per epoch (the cost of the estimate), wall clock and process CPU time (the
  latter is less sensitive to other jobs on a shared machine).

    python benchmarks/bench_noise_ceiling.py [--quick] [--epochs 60] [--repeats 3]
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one BLAS thread: CPU times comparable on a shared machine

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from nmf_sched import datasets  # noqa: E402
from nmf_sched.config import RowConfig  # noqa: E402
from nmf_sched.engine.solve import solve_rows  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def problems(quick):
    out = {"digits k=10": (datasets.digits(), 10), "faces k=20": (datasets.faces(), 20),
           "planted 2000x1000 k=20": (datasets.planted(2000, 1000, 20, noise=0.1, seed=0).V, 20)}
    if quick:
        out = {"planted 300x200 k=8": (datasets.planted(300, 200, 8, noise=0.1, seed=0).V, 8)}
    return out


def to_target(tr, target):
    err = tr.column("rel_error")
    hit = np.flatnonzero(err <= target)
    if hit.size == 0:
        return float("inf"), float("inf")
    i = int(hit[0])
    return float(tr[i]["epoch"]), float(tr[i]["seconds"])




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "noise_ceiling"))
    ap.add_argument("--only", default=None, help="run the problems whose name contains this")
    a = ap.parse_args(argv)
    epochs, repeats = (8, 1) if a.quick else (a.epochs, a.repeats)
    rows = []
    for name, (V, k) in problems(a.quick).items():
        if a.only and a.only not in name:
            continue
        for flag in (True, False):  # warm-up: JIT compilation and caches outside the timings
            solve_rows(V, k, schedule="auto", cfg=RowConfig(epochs=2, tol=0.0, noise_ceiling=flag),
                       seed=0)
        runs = {True: [], False: []}
        cpu = {True: [], False: []}
        for rep in range(repeats):
            for flag in ((True, False) if rep % 2 == 0 else (False, True)):
                cfg = RowConfig(epochs=epochs, tol=0.0, noise_ceiling=flag)
                c0 = time.process_time()
                runs[flag].append(solve_rows(V, k, schedule="auto", cfg=cfg, seed=rep).trace)
                cpu[flag].append((time.process_time() - c0) / epochs)
        target = 1.01 * min(float(tr.column("rel_error").min()) for tr in runs[False])
        row = {"problem": name, "epochs": epochs, "repeats": repeats, "target": target}
        for flag, key in ((True, "on"), (False, "off")):
            trs = runs[flag]
            row[f"error_{key}"] = statistics.median(tr[-1]["rel_error"] for tr in trs)
            hits = [to_target(tr, target) for tr in trs]
            row[f"epochs_to_target_{key}"] = statistics.median(h[0] for h in hits)
            row[f"seconds_to_target_{key}"] = statistics.median(h[1] for h in hits)
            row[f"seconds_per_epoch_{key}"] = statistics.median(tr[-1]["seconds"] / epochs for tr in trs)
            row[f"cpu_per_epoch_{key}"] = statistics.median(cpu[flag])
        for q in ("error", "epochs_to_target", "seconds_to_target", "seconds_per_epoch",
                  "cpu_per_epoch"):
            row[f"{q}_ratio"] = row[f"{q}_on"] / row[f"{q}_off"]
        rows.append(row)
        print(json.dumps(row))
    md = ["# The noise-aware ceiling on default fits (on / off, same run, medians)", "",
          "| problem | error on/off | epochs to target on/off | seconds to target on/off | "
          "s/epoch on/off (wall) | CPU s/epoch on/off |", "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['problem']} | {r['error_on']:.5g} / {r['error_off']:.5g} "
                  f"({r['error_ratio']:.3f}) | {r['epochs_to_target_on']:g} / "
                  f"{r['epochs_to_target_off']:g} | {r['seconds_to_target_ratio']:.3f} | "
                  f"{r['seconds_per_epoch_ratio']:.3f} | {r['cpu_per_epoch_ratio']:.3f} |")
    text = "\n".join(md) + "\n"
    if not a.quick:
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out + ".json", "w") as f:
            json.dump(rows, f, indent=1)
        with open(a.out + ".md", "w") as f:
            f.write(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
