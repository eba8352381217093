"""Matplotlib figures of fit traces and learning-rate schedules.

Matplotlib is imported only when a function here is called. Figures are built
as :class:`matplotlib.figure.Figure` objects without pyplot, so they need no
display and no backend switch (saving uses the Agg renderer) and leave
pyplot's global state alone; in a notebook a returned figure displays as usual.

Used by the command line (``nmf-sched fit --plot``, ``nmf-sched demo``) and by
the notebooks.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["plot_traces", "plot_schedules", "trace_columns"]

_X_LABELS = {"epoch": "epoch", "step": "minibatch steps", "seconds": "wall time (s)"}


def _figure(ncols, width=5.2, height=3.8):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def trace_columns(obj) -> dict[str, np.ndarray]:
    """Columns of a run as float arrays.

    Parameters
    ----------
    obj : FitResult, Trace, or mapping ``{column: sequence}``
        E.g. a result, its ``trace``, or ``json.load`` of a ``trace.json``.

    Returns
    -------
    dict of str -> ndarray
        ``None`` entries (non-finite values in JSON) become NaN.
    """
    trace = getattr(obj, "trace", obj)
    if hasattr(trace, "as_dict"):
        cols = trace.as_dict()
    elif isinstance(trace, Mapping):
        cols = dict(trace)
    else:
        raise TypeError(f"expected a FitResult, Trace or {{column: values}} mapping; got "
                        f"{type(obj).__name__}")
    out = {}
    for name, vals in cols.items():
        try:
            out[name] = np.array([np.nan if v is None else v for v in vals], dtype=float)
        except (TypeError, ValueError):
            continue  # a non-numeric column: not plottable
    return out


def _positive(v):
    v = np.asarray(v, dtype=float)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def _as_runs(results) -> dict:
    if isinstance(results, Mapping) and "epoch" not in results:
        return dict(results)  # {name: run}; a {column: values} mapping is one run
    return {"run": results}


def _differs(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    return bool(ok.any()) and not np.allclose(a[ok], b[ok], rtol=1e-9, atol=0)


def plot_traces(results, path=None, *, x="epoch", title=None):
    """Loss and learning rate of one or more runs, side by side.

    Left panel: relative error ``||V - WH|| / ||V||`` (or the loss when the
    trace has no ``rel_error``) on a log scale. Right panel, log scale: the
    schedule's LR (solid; ``lr_W`` dash-dotted where it differs from
    ``lr_H``), the mean step actually taken after the ceiling (dashed, H
    block; W dash-dotted where it differs from its LR) and the stability
    ceiling (dotted, the binding block), each run in its own colour.

    Parameters
    ----------
    results : mapping name -> FitResult, Trace or {column: values}; or one of those
        The runs to draw (the names go into the legend).
    path : str or os.PathLike, optional
        Also save the figure there (format from the suffix, e.g. ``.png``).
    x : {"epoch", "step", "seconds"}
        Horizontal axis.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if x not in _X_LABELS:
        raise ValueError(f"x must be one of {list(_X_LABELS)}; got {x!r}")
    runs = _as_runs(results)
    if not runs:
        raise ValueError("results is empty: nothing to plot")
    from matplotlib.lines import Line2D

    fig, (ax_loss, ax_lr) = _figure(2)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    any_lr = False
    for (name, run), color in zip(runs.items(), colors):
        cols = trace_columns(run)
        if x not in cols:
            raise ValueError(f"run {name!r} has no column {x!r}; columns: {sorted(cols)}")
        xs = cols[x]
        ykey = "rel_error" if "rel_error" in cols else "loss"
        if ykey in cols:
            ax_loss.plot(xs, _positive(cols[ykey]), color=color, label=str(name), lw=1.6)
        lr_h = cols.get("lr_H", cols.get("lr"))
        if lr_h is not None:
            any_lr = True
            ax_lr.plot(xs, _positive(lr_h), color=color, lw=1.6, ls="-")
            lr_w = cols.get("lr_W")
            if lr_w is not None and _differs(lr_w, lr_h):
                ax_lr.plot(xs, _positive(lr_w), color=color, lw=1.2, ls="-.")
        if "step_H" in cols:
            any_lr = True
            ax_lr.plot(xs, _positive(cols["step_H"]), color=color, lw=1.2, ls="--")
            if "step_W" in cols and lr_h is not None:
                step_w = cols["step_W"]
                ref = cols.get("lr_W", lr_h)
                if _differs(step_w[1:], ref[1:]):
                    ax_lr.plot(xs[1:], _positive(step_w[1:]), color=color, lw=1.0, ls=(0, (5, 1, 1, 1)))
        ceils = [cols[c] for c in ("ceiling_W", "ceiling_H") if c in cols]
        if ceils:
            ceiling = np.nanmin(np.vstack([_positive(c) for c in ceils]), axis=0) \
                if len(ceils) > 1 else _positive(ceils[0])
            ax_lr.plot(xs, ceiling, color=color, lw=1.0, ls=":")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel(_X_LABELS[x])
    ax_loss.set_ylabel("relative error ||V - WH|| / ||V||")
    ax_loss.set_title("loss")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.legend(fontsize="small")
    ax_lr.set_xlabel(_X_LABELS[x])
    ax_lr.set_ylabel("learning rate (solver unit)")
    ax_lr.set_title("learning rate")
    ax_lr.grid(True, which="both", alpha=0.3)
    if any_lr:
        ax_lr.set_yscale("log")
        handles = [Line2D([], [], color="0.3", ls="-", label="schedule LR"),
                   Line2D([], [], color="0.3", ls="--", label="step taken (H)"),
                   Line2D([], [], color="0.3", ls=":", label="stability ceiling")]
        ax_lr.legend(handles=handles, fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _series(value, ticks, name):
    if value is None:
        return [None] * ticks
    if callable(value):
        return [value(t) for t in range(ticks)]
    if isinstance(value, (int, float)):
        return [float(value)] * ticks
    seq = list(value)
    if len(seq) < ticks:
        raise ValueError(f"{name} has {len(seq)} values; need at least ticks={ticks}")
    return seq[:ticks]


def _lr_value(lr):
    """A schedule's lr -> (lr_W, lr_H) floats."""
    if isinstance(lr, Mapping):
        return float(np.mean(lr["W"])), float(np.mean(lr["H"]))
    v = float(np.mean(lr))
    return v, v


def plot_schedules(schedules, ticks=100, path=None, *, losses=None, ceiling=2.0, title=None):
    """Learning-rate curves of schedules, simulated without a solver.

    Each schedule sees the initial observation (tick 0) and then one update
    per tick with the given loss and ceiling, exactly as the solver would
    call it once per epoch; the curve is ``lr(state)`` after each update.

    Parameters
    ----------
    schedules : mapping name -> schedule spec, or a sequence of specs
        Anything :func:`nmf_sched.fit` accepts as ``schedule`` (``"auto"``
        included).
    ticks : int, default 100
        Number of ticks (epochs) to draw.
    path : str or os.PathLike, optional
        Also save the figure there.
    losses : sequence, callable ``tick -> loss`` or None
        The loss each tick reports (matters for loss-driven schedules such as
        GreedyLR and plateau). Default: a decaying curve ``1 / (1 + t/10)``.
    ceiling : float, sequence, callable ``tick -> ceiling`` or None, default 2.0
        The stability ceiling reported (2 is the Gram-preconditioned W block's).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .api import resolve_schedule
    from .data import check_positive_int
    from .schedules.base import StepInfo

    ticks = check_positive_int("ticks", ticks)
    if not isinstance(schedules, Mapping):
        schedules = {repr(s): s for s in schedules}
    if not schedules:
        raise ValueError("schedules is empty: nothing to plot")
    loss_seq = _series((lambda t: 1.0 / (1.0 + t / 10.0)) if losses is None else losses,
                       ticks, "losses")
    ceil_seq = _series(ceiling, ticks, "ceiling")
    fig, (ax,) = _figure(1, width=6.4, height=4.0)
    for i, (name, spec) in enumerate(schedules.items()):
        sched = resolve_schedule(spec, total=ticks)
        needs = set(getattr(sched, "needs", ())) - {"ceilings"}
        if needs:
            raise ValueError(f"schedule {name!r} needs solver signals {sorted(needs)}; "
                             "plot it from a fit trace with plot_traces instead")
        state = sched.init()
        lr_w, lr_h = [], []
        for t in range(ticks):
            c = ceil_seq[t]
            extras = {"ceilings": {"W": c, "H": c}} if c is not None else {}
            state = sched.update(state, StepInfo(step=t, epoch=t, loss=loss_seq[t],
                                                 ceiling=c, extras=extras, tick=t))
            w, h = _lr_value(sched.lr(state))
            lr_w.append(w)
            lr_h.append(h)
        color = f"C{i % 10}"
        ax.plot(range(ticks), _positive(lr_h), color=color, label=str(name), lw=1.6)
        if _differs(np.array(lr_w), np.array(lr_h)):
            ax.plot(range(ticks), _positive(lr_w), color=color, ls="-.", lw=1.2,
                    label=f"{name} (W)")
    if any(c is not None for c in ceil_seq):
        cs = np.array([np.nan if c is None else c for c in ceil_seq], dtype=float)
        ax.plot(range(ticks), _positive(cs), color="0.4", ls=":", lw=1.2, label="ceiling")
    ax.set_yscale("log")
    ax.set_xlabel("tick (epoch)")
    ax.set_ylabel("learning rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)
