"""``nmf-sched fit PATH --rank K``: factorize a matrix file, write W, H and the trace.

Reads ``.npy`` (memory-mapped), ``.npz`` (dense or scipy.sparse), ``.csv`` and
``.mtx`` files (:func:`nmf_sched.data.load_matrix`), runs
:func:`nmf_sched.fit` and writes ``W.npy``, ``H.npy``, ``trace.json`` (the
per-epoch trace, ``{column: [values]}``) and ``result.json`` (summary and
settings) to ``--out``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path

__all__ = ["add_parser", "run", "parse_schedule", "parse_batch_size", "write_result"]


def _value(text: str):
    """``"1.0"`` -> 1.0, ``"true"`` -> True, ``"bound"`` -> "bound"."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_schedule(spec: str):
    """A ``--schedule`` value -> what ``nmf_sched.fit(schedule=...)`` accepts.

    ``NAME`` (e.g. ``auto``, ``greedy``), a number (a constant LR), or
    ``NAME:key=value,key=value`` (e.g. ``step:lr=1.0,step_size=50,gamma=0.5``).
    """
    spec = spec.strip()
    try:
        return float(spec)
    except ValueError:
        pass
    if ":" not in spec:
        return spec
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--schedule: expected NAME:key=value,...; got {spec!r}")
        kwargs[key.strip()] = _value(val.strip())
    return (name.strip(), kwargs)


def schedule_label(schedule) -> str:
    """A short legend label for a parsed ``--schedule`` value."""
    if isinstance(schedule, tuple):
        name, kwargs = schedule
        return name + "(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
    if isinstance(schedule, float):
        return f"constant({schedule:g})"
    return str(schedule)


def parse_batch_size(text: str):
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or 'auto', got {text!r}") from None


def add_parser(subparsers):
    p = subparsers.add_parser(
        "fit", help="factorize a matrix file (.npy .npz .csv .mtx)",
        description="Factorize V ~= W H (W, H >= 0) by projected stochastic gradient descent "
                    "and write W.npy, H.npy, trace.json and result.json.")
    p.add_argument("path", metavar="PATH", help="matrix file: .npy, .npz (dense or scipy.sparse), "
                   ".csv (comma separated, optional header row) or .mtx (Matrix Market)")
    p.add_argument("-k", "--rank", type=int, required=True, help="number of components")
    p.add_argument("--schedule", default="auto", type=parse_schedule, metavar="SPEC",
                   help="schedule name (auto, greedy, constant, step, cosine, ...), a number "
                        "(constant LR) or NAME:key=value,... (default: auto)")
    p.add_argument("--epochs", type=int, default=200, help="maximum epochs (default: 200)")
    p.add_argument("--batch-size", type=parse_batch_size, default="auto",
                   help="rows per step, or 'auto' (default)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: fresh entropy)")
    p.add_argument("--init", default="auto",
                   help="auto, random, nndsvd, nndsvda or nndsvdar (default: auto)")
    p.add_argument("--kappa", type=float, default=0.9,
                   help="fraction of the stability ceiling allowed (default: 0.9)")
    p.add_argument("--precondition", default=None,
                   help="gradient preconditioner, e.g. gram, lipschitz or none "
                        "(default: nmf_sched.fit's)")
    p.add_argument("--noise-std", type=float, default=0.0,
                   help="std of Gaussian noise added to the gradients (default: 0)")
    p.add_argument("--tol", type=float, default=1e-4, help="stopping tolerance, 0 disables "
                   "(default: 1e-4)")
    p.add_argument("--max-time", type=float, default=None, help="wall-clock budget in seconds")
    p.add_argument("--out", default="nmf_out", metavar="DIR",
                   help="output folder, created if missing (default: ./nmf_out)")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="also write a figure of the loss and learning rate (e.g. fit.png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="write a checkpoint (.npz) every --checkpoint-every epochs, atomically")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                   help="epochs between checkpoints (default: 1)")
    p.add_argument("--resume", default=None, metavar="FILE",
                   help="continue from a checkpoint of the same matrix and settings")
    return p


def _has_tqdm() -> bool:
    return importlib.util.find_spec("tqdm") is not None


def summary(result) -> dict:
    """The JSON-able summary of a FitResult."""
    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    bound = result.bound
    return {
        "rel_error": clean(float(result.rel_error)),
        "loss": clean(float(result.loss)),
        "stop_reason": result.stop_reason,
        "epochs": int(result.n_epochs),
        "steps": int(result.n_steps),
        "seconds": float(result.seconds),
        "schedule": repr(result.schedule),
        "settings": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                     for k, v in (result.settings or {}).items()},
        "bound": None if bound is None else repr(bound),
    }


def write_result(result, out: Path, extra=None) -> None:
    """Write ``W.npy``, ``H.npy``, ``trace.json`` and ``result.json`` into ``out``."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "W.npy", np.asarray(result.W))
    np.save(out / "H.npy", np.asarray(result.H))
    result.trace.to_json(out / "trace.json")
    info = summary(result)
    if extra:
        info.update(extra)
    (out / "result.json").write_text(json.dumps(info, indent=2) + "\n")


def run(args) -> int:
    import nmf_sched
    from nmf_sched.data import load_matrix

    V = load_matrix(args.path)
    kind = "sparse" if hasattr(V, "nnz") else "dense"
    progress = not args.no_progress and _has_tqdm()
    extra = {} if args.precondition is None else {"precondition": args.precondition}
    result = nmf_sched.fit(V, args.rank, schedule=args.schedule, epochs=args.epochs,
                           batch_size=args.batch_size, init=args.init, seed=args.seed,
                           kappa=args.kappa, noise_std=args.noise_std, tol=args.tol,
                           max_time=args.max_time, progress=progress,
                           checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                           resume=args.resume, **extra)
    out = Path(args.out)
    write_result(result, out, extra={"input": str(args.path), "shape": list(V.shape),
                                     "format": kind, "dtype": str(V.dtype)})
    if args.plot:
        from nmf_sched.plotting import plot_traces

        plot_traces({schedule_label(args.schedule): result}, args.plot)
    m, n = V.shape
    print(f"nmf-sched fit: {m}x{n} {kind} {V.dtype}, rank {args.rank}, schedule "
          f"{schedule_label(args.schedule)}: rel_error {result.rel_error:.4g} after {result.n_epochs} epochs "
          f"({result.stop_reason}) in {result.seconds:.2f} s -> {out}/"
          + (f", plot {args.plot}" if args.plot else ""))
    return 0
