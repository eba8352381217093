"""``nmf-sched bound PATH --rank K``: the stability ceilings of a matrix file.

Loads ``.npy``/``.npz``/``.csv``/``.mtx`` (:func:`nmf_sched.data.load_matrix`),
computes :func:`nmf_sched.bounds.report` at the initialization (after
``--warmup-epochs`` epochs of the solver if asked) and prints a readable table,
or JSON with ``--json``. The derivation is ``bounds/THEORY.md``.
"""
from __future__ import annotations

import argparse

import nmf_sched

__all__ = ["add_parser", "run"]


def _batch_size(text: str):
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', got {text!r}")
    return value


def add_parser(subparsers):
    p = subparsers.add_parser(
        "bound", help="stability ceilings of the learning rate for a matrix file",
        description="Compute the learning-rate stability ceilings of projected SGD NMF "
                    "(per block, minibatch, noise-adjusted, joint, under clipping, Gram) at the "
                    "initialization and print them with the quantities they come from.")
    p.add_argument("path", metavar="PATH", help="matrix file: .npy, .npz (dense or scipy.sparse), "
                   ".csv or .mtx")
    p.add_argument("-k", "--rank", type=int, required=True, help="number of components")
    p.add_argument("--batch-size", type=_batch_size, default=None, metavar="B",
                   help="rows per step (default: auto, as nmf_sched.fit)")
    p.add_argument("--noise-std", type=float, default=0.0, metavar="S",
                   help="std of the additive gradient noise per entry (default 0)")
    p.add_argument("--clip", type=float, default=None, metavar="C",
                   help="entry bound c: factors in [0, c] (global ceilings)")
    p.add_argument("--init", default="auto", metavar="NAME",
                   help="initialization: auto, random, nndsvd, nndsvda, nndsvdar (default auto)")
    p.add_argument("--warmup-epochs", type=int, default=0, metavar="N",
                   help="report after N epochs of the solver at kappa x the ceiling (default 0)")
    p.add_argument("--precondition", default="none", choices=("none", "lipschitz", "gram", "cd"),
                   help="unit of the reported ceiling and lr0 (default none: absolute LR)")
    p.add_argument("--kappa", type=float, default=0.5,
                   help="initial-LR rule lr0 = kappa x ceiling (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the init and batch sample")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def run(args) -> int:
    from ..bounds import report
    from ..data import load_matrix

    if args.rank < 1:
        raise ValueError(f"--rank must be a positive integer, got {args.rank}")
    if args.warmup_epochs < 0:
        raise ValueError(f"--warmup-epochs must be >= 0, got {args.warmup_epochs}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    V = load_matrix(args.path)
    rep = report(V, args.rank, init=args.init, seed=args.seed, batch_size=args.batch_size,
                 noise_std=args.noise_std, clip=args.clip, precondition=args.precondition,
                 warmup_epochs=args.warmup_epochs, kappa=args.kappa,
                 fit=nmf_sched.fit)
    if args.json:
        print(rep.to_json(indent=2))
    else:
        print(rep.to_table())
    return 0
