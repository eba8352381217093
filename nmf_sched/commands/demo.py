"""``nmf-sched demo``: four schedules on a real data set, one table, one figure.

Factorizes a data set shipped with scikit-learn / scikit-image (no download)
with the same seed, initialization and epoch budget under four schedules:

* ``greedy``   GreedyLR from lr 0.25: divided by 0.8 after 3 improving epochs,
  multiplied by 0.8 after 3 others, capped by the ceiling;
* ``step``     step decay: lr 1.0, halved every ``epochs // 4`` epochs;
* ``constant`` constant lr 0.5;
* ``auto``     the library default: GreedyLR started at, and capped by, the ceiling.

The LR values are dimensionless, in the unit of the preconditioner (by default
:func:`nmf_sched.fit`'s; with ``"gram"`` 1.0 is a block Newton step), and every
step is capped at ``kappa`` (0.9) times the stability ceiling. Prints a table
and writes ``demo.png`` (loss and LR per epoch) and ``demo.json`` (summaries
and traces) to ``--out``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["add_parser", "run", "DATASETS", "demo_schedules"]

#: data set name -> (loader in nmf_sched.datasets, default rank)
DATASETS = {"digits": ("digits", 10), "faces": ("faces", 20)}

#: what an LR of 1.0 means under each preconditioner
UNITS = {
    "gram": "Gram-preconditioned unit (dimensionless; 1.0 = block Newton step)",
    "cd": "coordinate-wise unit (dimensionless; 1.0 = exact coordinate minimization)",
    "lipschitz": "Lipschitz-preconditioned unit (dimensionless; 1.0 = a 1/L step)",
    "none": "absolute unit of plain SGD (the ceiling is 2/L)",
}


def lr_note(precondition: str) -> str:
    unit = UNITS.get(precondition, f"unit of precondition={precondition!r}")
    return (f"precondition={precondition!r}: LRs are in the {unit}; each step is capped at "
            "kappa x the stability ceiling (clip_lr, kappa=0.9).")


def default_precondition() -> str:
    """``nmf_sched.fit``'s default preconditioner."""
    import inspect

    import nmf_sched

    return inspect.signature(nmf_sched.fit).parameters["precondition"].default


def demo_schedules(epochs: int) -> dict:
    """The four schedules of the demo: name -> (fit's schedule spec, description)."""
    step_size = max(1, epochs // 4)
    return {
        "greedy": (("greedy", {"lr": 0.25, "factor": 0.8, "patience": 2}),
                   "GreedyLR from 0.25, x1.25 / x0.8 per 3 good / bad epochs"),
        "step": (("step", {"lr": 1.0, "step_size": step_size, "gamma": 0.5}),
                 f"lr 1.0, x0.5 every {step_size} epochs"),
        "constant": (("constant", {"lr": 0.5}), "lr 0.5"),
        "auto": ("auto", "library default: GreedyLR from the ceiling"),
    }


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="compare schedules on a bundled real data set (table + figure)",
        description="Factorize a real data set (scikit-learn digits by default) under the "
                    "greedy, step, constant and auto schedules with the same seed and epochs; "
                    "print a table and write demo.png and demo.json.")
    p.add_argument("--out", default="demo_out", metavar="DIR",
                   help="output folder (default: ./demo_out)")
    p.add_argument("--epochs", type=int, default=200, help="epoch budget of every run "
                   "(default: 200; runs may stop earlier on tol)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="digits",
                   help="digits: 1797 x 64 (scikit-learn); faces: 200 x 625 (scikit-image) "
                        "(default: digits)")
    p.add_argument("--rank", type=int, default=None,
                   help="number of components (default: 10 for digits, 20 for faces)")
    p.add_argument("--seed", type=int, default=0, help="random seed shared by all runs (default: 0)")
    p.add_argument("--init", default="auto", help="initialization shared by all runs (default: auto)")
    p.add_argument("--tol", type=float, default=1e-4, help="stopping tolerance (default: 1e-4)")
    p.add_argument("--precondition", default=None,
                   help="preconditioner shared by all runs (default: nmf_sched.fit's)")
    return p


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def format_table(rows) -> str:
    """Rows of dicts -> an aligned text table."""
    head = ["schedule", "setting", "rel_error", "epochs", "seconds", "stop"]
    body = [[r["name"], r["setting"], f"{r['rel_error']:.4f}", str(r["epochs"]),
             f"{r['seconds']:.2f}", r["stop_reason"]] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    right = {2, 3, 4}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]
    return "\n".join(lines)


def run(args) -> int:
    import nmf_sched
    from nmf_sched import datasets
    from nmf_sched.plotting import plot_traces

    loader, default_rank = DATASETS[args.dataset]
    V = getattr(datasets, loader)()
    rank = default_rank if args.rank is None else args.rank
    m, n = V.shape
    print(f"nmf-sched demo: {args.dataset} ({m} x {n}), rank {rank}, seed {args.seed}, "
          f"up to {args.epochs} epochs, init {args.init!r}")
    precondition = args.precondition or default_precondition()
    note = lr_note(precondition)
    print(note)
    from . import warm_up

    jit = warm_up(V, rank, seed=args.seed, init=args.init, precondition=precondition)
    print(f"JIT warm-up (numba compile on first use, then cached on disk): {jit:.2f} s, "
          "not counted in the fit times below")
    results, rows, runs_json = {}, [], {}
    for name, (spec, setting) in demo_schedules(args.epochs).items():
        res = nmf_sched.fit(V, rank, schedule=spec, epochs=args.epochs, seed=args.seed,
                            init=args.init, tol=args.tol, precondition=precondition)
        results[name] = res
        row = {"name": name, "setting": setting, "rel_error": float(res.rel_error),
               "epochs": int(res.n_epochs), "seconds": float(res.seconds),
               "stop_reason": res.stop_reason}
        rows.append(row)
        runs_json[name] = {**row, "schedule": repr(res.schedule),
                           "schedule_state": res.schedule_state,
                           "trace": res.trace.as_dict()}
    print()
    print(format_table(rows))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "demo.png"
    plot_traces(results, png, title=f"nmf-sched demo: {args.dataset} {m}x{n}, rank {rank}")
    meta = {"dataset": args.dataset, "shape": [m, n], "rank": rank, "seed": args.seed,
            "epochs": args.epochs, "init": args.init, "tol": args.tol,
            "precondition": precondition, "lr_unit": note,
            "runs": runs_json}
    (out / "demo.json").write_text(json.dumps(_clean(meta), indent=1, default=repr) + "\n")
    best = min(rows, key=lambda r: r["rel_error"])
    print(f"\nlowest error: {best['name']} ({best['rel_error']:.4f}); wrote {png} and "
          f"{out / 'demo.json'}")
    return 0
