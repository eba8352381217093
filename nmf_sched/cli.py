"""The ``nmf-sched`` command line: ``nmf-sched fit | bound | compare | demo | rl-train``.

Each subcommand lives in :mod:`nmf_sched.commands` (``<name>.py`` with
``add_parser(subparsers)`` and ``run(args) -> int``, see that package's
docstring). Commands whose module is not present are skipped.

Exit status: 0 on success, 2 on a usage error or on bad input
(``ValueError``, ``TypeError`` or ``OSError`` while loading or validating),
which is printed as one line ``nmf-sched: error: ...`` without a traceback
(set ``NMF_SCHED_TRACEBACK=1`` to see it).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommands in the order of ``nmf-sched --help``. Adding one: write
#: ``nmf_sched/commands/<name>.py`` and add its name here.
COMMANDS = ("fit", "bound", "compare", "demo", "rl-train")

PROG = "nmf-sched"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message):
        prog = self.prog if self.prog.startswith(PROG) else PROG
        self.exit(2, f"{PROG}: error: {_one_line(message)} (see '{prog} --help')\n")


def _one_line(msg) -> str:
    return " ".join(str(msg).split())


def _module_name(command: str) -> str:
    return f"nmf_sched.commands.{command.replace('-', '_')}"


def _load(command: str):
    """The command's module, or None when it is not present."""
    name = _module_name(command)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with one subparser per present command."""
    from . import __version__

    parser = _Parser(prog=PROG, description="Stochastic-gradient NMF with learning-rate "
                     "schedules and stability ceilings.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        module = _load(command)
        if module is None:
            continue
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status (also for usage errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args._run(args) or 0)
    except (ValueError, TypeError, OSError) as exc:
        if os.environ.get("NMF_SCHED_TRACEBACK"):
            raise
        sys.stderr.write(f"{PROG}: error: {_one_line(exc) or type(exc).__name__}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
