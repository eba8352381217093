"""Subcommands of the ``nmf-sched`` command line, one module per command.

A command module ``nmf_sched/commands/<name>.py`` (``-`` in the command name
becomes ``_``) exposes two functions:

``add_parser(subparsers) -> argparse.ArgumentParser``
    Add the command's parser with ``subparsers.add_parser(NAME, help=...)``,
    declare its arguments and return it.
``run(args) -> int``
    Do the work and return the exit status (0 on success).

:mod:`nmf_sched.cli` lists the command names in ``COMMANDS``; adding a command
is one new module plus its name in that list. A listed module that does not
exist is skipped. Import optional dependencies (torch, dask, matplotlib, ...)
inside ``run`` so that ``nmf-sched --help`` works without them.

Errors: raise ``ValueError``/``TypeError``/``OSError`` with a clear message
for bad input; the CLI prints it as one line ``nmf-sched: error: ...`` and
exits with status 2.
"""
