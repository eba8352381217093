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

__all__ = ["plot_traces", "plot_schedules", "trace_columns", "plot_trace_grid", "plot_edges"]

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
    from .data import check_positive_int
    from .schedules.base import replay, resolve

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
        sched = resolve(spec, total=ticks)
        needs = set(getattr(sched, "needs", ())) - {"ceilings"}
        if needs:
            raise ValueError(f"schedule {name!r} needs solver signals {sorted(needs)}; "
                             "plot it from a fit trace with plot_traces instead")
        lr_w, lr_h = [], []
        for value in replay(sched, loss_seq[:ticks], ceil_seq[:ticks]):
            w, h = _lr_value(value)
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


def _binding_ceiling(cols):
    ceils = [_positive(cols[c]) for c in ("ceiling_W", "ceiling_H") if c in cols]
    if not ceils:
        return None
    if len(ceils) == 1:
        return ceils[0]
    stack = np.vstack(ceils)
    out = np.full(stack.shape[1], np.nan)
    ok = np.isfinite(stack).any(axis=0)
    out[ok] = np.nanmin(stack[:, ok], axis=0)
    return out


def plot_trace_grid(panels, path=None, *, lr="step_H", loss="rel_error", x="epoch", ncols=4,
                    ceiling=True, first=0, title=None, dpi=100):
    """Learning rate and loss of several runs on several problems, one column per problem.

    Each problem gets two stacked panels sharing the horizontal axis: on top
    the learning-rate column ``lr`` of every run (log scale; with ``ceiling``
    the binding stability ceiling ``min(ceiling_W, ceiling_H)`` of each run,
    dotted, in the run's colour), below it the ``loss`` column (log scale).
    A run name has the same colour in every panel; one legend, in the first
    learning-rate panel.

    Parameters
    ----------
    panels : mapping problem name -> mapping run name -> FitResult, Trace or {column: values}
        The problems (panel titles, in order) and the runs on each.
    path : str or os.PathLike, optional
        Also save the figure there (format from the suffix, e.g. ``.png``).
    lr : str, default "step_H"
        Trace column drawn on top: ``"step_H"`` (mean step taken on H, after the
        ceiling), ``"lr_H"`` (the schedule's LR), ``"step_W"``, ``"lr_W"``.
    loss : {"rel_error", "loss"}
        Trace column drawn below: relative error ``||V - WH|| / ||V||`` or the loss.
    x : {"epoch", "step", "seconds"}
        Horizontal axis.
    ncols : int, default 4
        Problems per row of the grid (a row of problems is two rows of panels).
    ceiling : bool, default True
        Draw each run's stability ceiling in the learning-rate panels.
    first : int, default 0
        First trace row drawn; ``1`` leaves out the initialization (row 0),
        whose loss can dwarf the differences between runs.
    title : str, optional
        Figure title.
    dpi : float, default 100
        Resolution of the saved file.

    Returns
    -------
    matplotlib.figure.Figure
        Axes in ``fig.axes`` row-major: for problem ``p`` at grid row ``r``,
        column ``c``, the LR panel is ``fig.axes[2 r ncols + c]`` and the
        loss panel ``fig.axes[(2 r + 1) ncols + c]`` (unused cells removed).
    """
    from .data import check_positive_int

    if x not in _X_LABELS:
        raise ValueError(f"x must be one of {list(_X_LABELS)}; got {x!r}")
    if loss not in ("rel_error", "loss"):
        raise ValueError(f"loss must be 'rel_error' or 'loss'; got {loss!r}")
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError("panels must be a non-empty mapping problem -> {run name: run}; "
                         f"got {panels!r}")
    ncols = min(check_positive_int("ncols", ncols), len(panels))
    if not isinstance(first, (int, np.integer)) or isinstance(first, bool) or first < 0:
        raise ValueError(f"first must be an integer >= 0; got {first!r}")
    names = []
    for prob, runs in panels.items():
        if not isinstance(runs, Mapping) or not runs:
            raise ValueError(f"panels[{prob!r}] must be a non-empty mapping run name -> run")
        names += [n for n in runs if n not in names]
    colors = {n: f"C{i % 10}" for i, n in enumerate(names)}
    nrows = -(-len(panels) // ncols)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * ncols, 4.8 * nrows), layout="constrained")
    axes = fig.subplots(2 * nrows, ncols, squeeze=False, sharex="col")
    for i, (prob, runs) in enumerate(panels.items()):
        r, c = divmod(i, ncols)
        ax_lr, ax_loss = axes[2 * r, c], axes[2 * r + 1, c]
        for name, run in runs.items():
            cols = trace_columns(run)
            for col in (x, lr, loss):
                if col not in cols:
                    raise ValueError(f"run {name!r} of {prob!r} has no column {col!r}; "
                                     f"columns: {sorted(cols)}")
            cols = {k: v[first:] for k, v in cols.items()}
            xs, color = cols[x], colors[name]
            ax_lr.plot(xs, _positive(cols[lr]), color=color, lw=1.5, label=str(name))
            ceil = _binding_ceiling(cols) if ceiling else None
            if ceil is not None:
                ax_lr.plot(xs, ceil, color=color, lw=0.9, ls=":")
            ax_loss.plot(xs, _positive(cols[loss]), color=color, lw=1.5, label=str(name))
        ax_lr.set_title(str(prob), fontsize=10)
        for ax in (ax_lr, ax_loss):
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
        ax_loss.set_xlabel(_X_LABELS[x])
        if c == 0:
            ax_lr.set_ylabel(lr + (" (dotted: ceiling)" if ceiling else ""))
            ax_loss.set_ylabel("relative error" if loss == "rel_error" else "loss")
    for j in range(len(panels), nrows * ncols):
        r, c = divmod(j, ncols)
        axes[2 * r, c].remove()
        axes[2 * r + 1, c].remove()
    axes[0, 0].legend(fontsize="x-small")
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


_GROUP_COLORS = {"stability": "C0", "noise": "C2"}


def plot_edges(results, path=None, *, keys=("edge",), top=8.0, title=None, dpi=100):
    """Empirical divergence edge over the stability ceiling, per problem family.

    One column per family (in order of first appearance), one point per
    problem x seed at ``edge / ceiling`` (the smallest multiplier of the
    ceiling at which the sweep diverged, as ``bounds/verify.py`` records it),
    jittered sideways, with the family median as a black bar. Edges that are
    infinite (no divergence up to the largest multiplier) are drawn as
    triangles just above ``top``. The dashed line ``y = 1`` is the ceiling: a
    point below it is a divergence the bound failed to prevent. Colours follow
    the record's ``group``: "stability" (the claim) blue, "noise" green,
    anything else (findings) orange. A second key (e.g. ``"fail_edge"``:
    divergence or no progress) is drawn with hollow markers beside the first.

    Parameters
    ----------
    results : iterable of mappings
        Records with ``"family"``, each of ``keys`` (a float, or ``"inf"`` as
        ``verify.json`` stores infinity) and optionally ``"group"``; e.g.
        ``verify.sweep(...)`` outputs or ``json.load(...)["results"]`` of
        ``bounds/results/verify.json``.
    path : str or os.PathLike, optional
        Also save the figure there.
    keys : sequence of str, default ("edge",)
        Record fields to draw (multipliers of the ceiling), filled markers
        for the first, hollow for the others.
    top : float, default 8.0
        Largest multiplier swept; infinite edges are drawn at ``1.3 * top``.
    title : str, optional
    dpi : float, default 100
        Resolution of the saved file.

    Returns
    -------
    matplotlib.figure.Figure
    """
    results = list(results)
    if not results:
        raise ValueError("results is empty: nothing to plot")
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys is empty: nothing to plot")
    fams, groups = [], {}
    for r in results:
        for field in ("family", *keys):
            if field not in r:
                raise ValueError(f"a result has no field {field!r}; fields: {sorted(r)}")
        if r["family"] not in fams:
            fams.append(r["family"])
            groups[r["family"]] = r.get("group", "stability")
    if not (isinstance(top, (int, float)) and np.isfinite(top) and top > 0):
        raise ValueError(f"top must be a positive finite number; got {top!r}")
    from matplotlib.lines import Line2D

    fig, (ax,) = _figure(1, width=max(6.0, 1.25 * len(fams) + 1.5), height=4.6)
    rng = np.random.default_rng(0)  # jitter only: deterministic figure
    above = 1.3 * top
    width = 0.6 / len(keys)
    for i, fam in enumerate(fams):
        color = _GROUP_COLORS.get(groups[fam], "C1")
        recs = [r for r in results if r["family"] == fam]
        for j, key in enumerate(keys):
            vals = np.array([float(r[key]) for r in recs], dtype=float)
            center = i + (j - (len(keys) - 1) / 2) * width
            xs = center + 0.25 * width * rng.standard_normal(vals.size)
            fin = np.isfinite(vals)
            face = color if j == 0 else "none"
            ax.scatter(xs[fin], vals[fin], s=16, alpha=0.7, facecolors=face, edgecolors=color)
            ax.scatter(xs[~fin], np.full((~fin).sum(), above), s=20, marker="^", alpha=0.7,
                       facecolors=face if j == 0 else "none", edgecolors="C3")
            ax.hlines(np.median(np.where(fin, vals, above)), center - 0.45 * width,
                      center + 0.45 * width, color="k", lw=2)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.axhline(top, color="0.6", ls=":", lw=1)
    ax.set_yscale("log")
    lo = min([float(r[k]) for r in results for k in keys] + [1.0])
    ax.set_ylim(min(0.8, 0.8 * lo), 1.6 * top)
    ax.set_xticks(range(len(fams)))
    ax.set_xticklabels(fams, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("empirical edge / ceiling")
    handles = [Line2D([], [], ls="", marker="o", color=c, label=lab) for c, lab in (
        ("C0", "stability (the claim)"), ("C2", "gradient noise"), ("C1", "finding (not a claim)"))
        if any((_GROUP_COLORS.get(g, "C1") == c) for g in groups.values())]
    handles.append(Line2D([], [], ls="", marker="^", color="C3", label=f"no divergence up to {top:g}"))
    handles += [Line2D([], [], ls="", marker="o", mfc="none", color="0.3", label=f"{k} (hollow)")
                for k in keys[1:]]
    handles.append(Line2D([], [], ls="--", color="k", label="ceiling (y = 1)"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig

