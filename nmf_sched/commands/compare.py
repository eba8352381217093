"""``nmf-sched compare PATH --rank K --schedules greedy,step,rl``: schedules side by side.

Runs :func:`nmf_sched.fit` once per schedule on the same matrix with the same
seed (hence the same initialization and the same batch order), the same epoch
budget and the same settings, prints a results table and, with ``--plot``,
draws loss and learning rate per epoch side by side
(:func:`nmf_sched.plotting.plot_traces`). ``--json`` writes the summaries and
full traces.

``PATH`` is a matrix file (``.npy``, ``.npz``, ``.csv``, ``.mtx``) or
``dataset:NAME`` for a data set shipped inside an installed package
(:func:`nmf_sched.datasets.load`, e.g. ``dataset:digits``).

Schedules are comma separated; a schedule with parameters is written
``NAME:key=value,key=value`` and the items after it that contain ``=`` belong to
it, e.g. ``--schedules auto,step:lr=1.0,step_size=20,gamma=0.5,rl,0.5``
(``0.5`` is a constant LR).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .fit import parse_batch_size, parse_schedule, schedule_label, summary

__all__ = ["add_parser", "run", "split_schedules", "load_input", "results_table"]

DEFAULT_SCHEDULES = "auto,greedy,step,cosine,constant,rl"
#: data sets that load from installed packages without arguments
BUNDLED = ("digits", "faces", "camera_patches", "astronaut_patches")


def split_schedules(text: str) -> list:
    """``"auto,step:lr=1,gamma=0.5,rl"`` -> ``["auto", ("step", {...}), "rl"]``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--schedules: expected a comma-separated list of schedules, got {text!r}")
    specs: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            raise ValueError(f"--schedules: empty item in {text!r}")
        if "=" in item and ":" not in item:
            if not specs or ":" not in specs[-1]:
                raise ValueError(f"--schedules: parameter {item!r} does not follow a NAME:key=value "
                                 f"schedule in {text!r}")
            specs[-1] += "," + item
        else:
            specs.append(item)
    return [parse_schedule(s) for s in specs]


def load_input(path: str):
    """A matrix file, or ``dataset:NAME`` from :mod:`nmf_sched.datasets`."""
    if path.startswith("dataset:"):
        from nmf_sched import datasets

        name = path.partition(":")[2]
        if name not in BUNDLED:
            raise ValueError(f"PATH: unknown bundled data set {name!r} in {path!r}; valid: "
                             + ", ".join(f"dataset:{n}" for n in BUNDLED))
        return datasets.load(name)
    from nmf_sched.data import load_matrix

    return load_matrix(path)


def _fmt(x, spec=".4g"):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def results_table(rows) -> str:
    """A fixed-width text table of the per-schedule summaries (best error first)."""
    best = min((r["rel_error"] for r in rows if r["rel_error"] is not None
                and math.isfinite(r["rel_error"])), default=math.nan)
    head = ("schedule", "rel_error", "vs best", "epochs to 1%", "epochs", "seconds", "stop")
    lines = []
    for r in sorted(rows, key=lambda r: (r["rel_error"] is None or not math.isfinite(r["rel_error"]),
                                         r["rel_error"] if r["rel_error"] is not None else 0.0)):
        ratio = r["rel_error"] / best if r["rel_error"] is not None and best > 0 else None
        lines.append((r["label"], _fmt(r["rel_error"]), _fmt(ratio, ".3f"),
                      "-" if r["epochs_to_1pct"] is None else str(r["epochs_to_1pct"]),
                      str(r["epochs"]), _fmt(r["seconds"], ".2f"), r["stop_reason"]))
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in lines]
    out.append("'vs best': final relative error / the best final error of this run; 'epochs to "
               "1%': first epoch within 1% of that best error ('-': never).")
    return "\n".join(out)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "compare", help="run several LR schedules on one matrix; table and plot",
        description="Run nmf_sched.fit once per schedule on the same matrix (same seed, init, "
                    "batch order and epochs), print a results table and optionally plot loss and "
                    "learning rate per epoch side by side.")
    p.add_argument("path", metavar="PATH", help="matrix file (.npy .npz .csv .mtx) or "
                   "dataset:NAME (digits, faces, camera_patches, ...)")
    p.add_argument("-k", "--rank", type=int, required=True, help="number of components")
    p.add_argument("--schedules", default=DEFAULT_SCHEDULES, metavar="LIST",
                   help="comma-separated schedules: names, numbers (constant LR) or "
                        f"NAME:key=value,... (default: {DEFAULT_SCHEDULES})")
    p.add_argument("--epochs", type=int, default=50, help="epochs per schedule (default: 50)")
    p.add_argument("--batch-size", type=parse_batch_size, default="auto",
                   help="rows per step, or 'auto' (default)")
    p.add_argument("--seed", type=int, default=0, help="random seed shared by all runs (default: 0)")
    p.add_argument("--init", default="auto", help="initialization (default: auto)")
    p.add_argument("--precondition", default=None,
                   help="cd, gram, lipschitz or none (default: nmf_sched.fit's)")
    p.add_argument("--tol", type=float, default=0.0,
                   help="stopping tolerance (default: 0, every schedule runs all epochs)")
    p.add_argument("--max-time", type=float, default=None, help="wall-clock budget per schedule (s)")
    p.add_argument("--plot", default=None, metavar="FILE", help="write the figure (e.g. compare.png)")
    p.add_argument("--x", default="epoch", choices=("epoch", "seconds", "step"),
                   help="x axis of the plot (default: epoch)")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="write the summaries and per-epoch traces as JSON")
    return p


def run(args) -> int:
    import nmf_sched

    schedules = split_schedules(args.schedules)
    V = load_input(args.path)
    kind = "sparse" if hasattr(V, "nnz") else "dense"
    extra = {} if args.precondition is None else {"precondition": args.precondition}
    from . import warm_up

    jit = warm_up(V, args.rank, batch_size=args.batch_size, init=args.init, seed=args.seed,
                  **extra)
    print(f"JIT warm-up (numba compile on first use, then cached on disk): {jit:.2f} s, "
          "not counted in the fit times below")
    results, rows = {}, []
    for spec in schedules:
        label = schedule_label(spec)
        if label in results:
            raise ValueError(f"--schedules: {label!r} is listed twice")
        res = nmf_sched.fit(V, args.rank, schedule=spec, epochs=args.epochs,
                            batch_size=args.batch_size, init=args.init, seed=args.seed,
                            tol=args.tol, max_time=args.max_time, **extra)
        results[label] = res
        rows.append(dict(label=label, **summary(res)))
    best = min((r["rel_error"] for r in rows if r["rel_error"] is not None), default=None)
    for r, res in zip(rows, results.values()):
        r["epochs_to_1pct"] = None
        if best is not None and best > 0:
            err = res.trace.column("rel_error")
            hit = [i for i, e in enumerate(err) if math.isfinite(e) and e <= 1.01 * best]
            r["epochs_to_1pct"] = int(res.trace.column("epoch")[hit[0]]) if hit else None
    m, n = V.shape
    print(f"nmf-sched compare: {m}x{n} {kind} {V.dtype}, rank {args.rank}, {args.epochs} epochs, "
          f"seed {args.seed}, {len(rows)} schedules")
    print(results_table(rows))
    if args.json:
        payload = {"input": args.path, "shape": [m, n], "format": kind, "rank": args.rank,
                   "epochs": args.epochs, "seed": args.seed, "runs": rows,
                   "traces": {k: _clean(v.trace.as_dict()) for k, v in results.items()}}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        from nmf_sched.plotting import plot_traces

        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_traces(results, args.plot, x=args.x,
                    title=f"{Path(args.path).name if ':' not in args.path else args.path}, k={args.rank}")
        print(f"wrote {args.plot}")
    return 0


def _clean(cols):
    def c(v):
        v = v.item() if hasattr(v, "item") else v
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {k: [c(v) for v in vals] for k, vals in cols.items()}
