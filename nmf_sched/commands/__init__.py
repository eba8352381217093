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


def warm_up(V, rank, **fit_kw) -> float:
    """Compile the numba kernels that a fit of ``V`` will use, before anything is timed.

    Runs one epoch on the first rows of ``V`` (same dtype, same storage, same settings), so
    the compile time is not reported as the first schedule's fit time. Returns the seconds
    it took, which the commands print on a line of their own. numba caches compiled kernels
    on disk, so after the first run on a machine this costs a few milliseconds.
    """
    import time

    import nmf_sched
    from nmf_sched.config import default_batch_size

    m, n = V.shape
    rows = min(m, max(64, 2 * int(rank)))
    k = max(1, min(int(rank), rows, n))
    kw = {key: v for key, v in fit_kw.items()
          if key not in ("epochs", "max_time", "callback", "checkpoint", "resume", "tol")}
    # the same code path: minibatches (row gathers) if the real fit takes minibatches
    bs = kw.get("batch_size")
    bs = default_batch_size(m) if bs in (None, "auto") else int(bs)
    kw["batch_size"] = rows if bs >= m else max(1, min(bs, rows // 2))
    t0 = time.perf_counter()
    nmf_sched.fit(V[:rows], k, epochs=1, tol=0, **kw)
    return time.perf_counter() - t0
