"""Figures of traces and schedules: produced headless, PNG written, matplotlib imported lazily."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import nmf_sched  # noqa: E402
from nmf_sched.plotting import plot_schedules, plot_traces, trace_columns  # noqa: E402

from conftest import TOL, planted_dense  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results():
    V = planted_dense(120, 40, 4)
    return {
        "auto": nmf_sched.fit(V, 4, seed=0, epochs=8, batch_size=40),
        "constant": nmf_sched.fit(V, 4, schedule=0.5, seed=0, epochs=8, batch_size=40),
        "step": nmf_sched.fit(V, 4, schedule=("step", {"lr": 1.0, "step_size": 2, "gamma": 0.5}),
                              seed=0, epochs=8, batch_size=40),
    }


def test_plot_traces_two_log_panels_and_png(results, tmp_path):
    from matplotlib.figure import Figure

    path = tmp_path / "traces.png"
    fig = plot_traces(results, path, title="t")
    assert isinstance(fig, Figure)
    ax_loss, ax_lr = fig.axes
    assert ax_loss.get_yscale() == "log" and ax_lr.get_yscale() == "log"
    assert [t.get_text() for t in ax_loss.get_legend().get_texts()] == list(results)
    assert len(ax_loss.lines) == 3
    assert len(ax_lr.lines) >= 3 * 3  # lr, step taken and ceiling per run
    assert path.read_bytes()[:8] == PNG


@pytest.mark.parametrize("x", ["epoch", "step", "seconds"])
def test_plot_traces_accepts_traces_results_and_json(results, tmp_path, x):
    res = results["auto"]
    from_json = json.loads(res.trace.to_json())
    for obj in (res, res.trace, from_json):
        fig = plot_traces({"r": obj}, x=x)
        xs = fig.axes[0].lines[0].get_xdata()
        np.testing.assert_allclose(xs, res.trace.column(x), rtol=TOL["exact"])
    plot_traces(res, tmp_path / "single.png")  # one run without a name
    assert (tmp_path / "single.png").exists()


def test_trace_columns_turn_json_nulls_into_nan(results):
    cols = trace_columns(json.loads(results["auto"].trace.to_json()))
    assert np.isnan(cols["lr_H"][0]) and np.isfinite(cols["loss"]).all()
    with pytest.raises(TypeError):
        trace_columns(42)


def test_plot_traces_bad_input(results):
    with pytest.raises(ValueError, match="x must be"):
        plot_traces(results, x="time")
    with pytest.raises(ValueError, match="empty"):
        plot_traces({})


def test_plot_schedules_png(tmp_path):
    path = tmp_path / "sched.png"
    fig = plot_schedules({"constant": 0.5, "step": ("step", {"lr": 1.0, "step_size": 10,
                                                            "gamma": 0.5}),
                          "cosine": ("cosine", {"lr": 1.0}), "greedy": "greedy", "auto": "auto"},
                         ticks=40, path=path, title="schedules")
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_allclose(lines["constant"].get_ydata(), 0.5, rtol=TOL["exact"])
    step = lines["step"].get_ydata()
    assert step[0] == 1.0 and step[-1] == pytest.approx(0.125, rel=TOL["exact"])
    assert "ceiling" in lines
    assert path.read_bytes()[:8] == PNG


def test_plot_schedules_rejects_schedules_needing_solver_signals():
    class Probe:
        needs = ("probe",)

        def init(self):
            return {}

        def lr(self, state):
            return 1.0

        def update(self, state, info):
            return state

    with pytest.raises(ValueError, match="probe"):
        plot_schedules({"ls": Probe()}, ticks=5)


def test_matplotlib_is_imported_lazily():
    code = ("import sys, nmf_sched, nmf_sched.plotting, nmf_sched.cli\n"
            "nmf_sched.cli.build_parser()\n"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_plot_trace_grid_panels_colours_and_png(results, tmp_path):
    from nmf_sched.plotting import plot_trace_grid

    path = tmp_path / "grid.png"
    panels = {"p1": results, "p2": {"constant": results["constant"], "auto": results["auto"]},
              "p3": {"step": results["step"].trace}}
    fig = plot_trace_grid(panels, path, ncols=2, lr="lr_H", title="grid")
    assert path.read_bytes()[:8] == PNG
    assert len(fig.axes) == 6  # 2 x 2 problem cells, one unused cell (2 panels) removed
    ax_lr, ax_loss = fig.axes[0], fig.axes[2]
    assert ax_lr.get_title() == "p1" and ax_lr.get_yscale() == "log"
    assert ax_loss.get_yscale() == "log"
    # one LR line and one ceiling line per run; one loss line per run
    assert len(ax_lr.lines) == 2 * len(results) and len(ax_loss.lines) == len(results)
    np.testing.assert_allclose(ax_loss.lines[0].get_ydata(),
                               results["auto"].trace.column("rel_error"), rtol=TOL["exact"])
    np.testing.assert_allclose(ax_lr.lines[0].get_ydata()[1:],
                               results["auto"].trace.column("lr_H")[1:], rtol=TOL["exact"])
    # the same run has the same colour in every panel
    colour = {ln.get_label(): ln.get_color() for ln in fig.axes[2].lines}
    p2 = {ln.get_label(): ln.get_color() for ln in fig.axes[3].lines}
    assert p2["constant"] == colour["constant"] and p2["auto"] == colour["auto"]
    assert [t.get_text() for t in ax_lr.get_legend().get_texts()] == list(results)
    fig = plot_trace_grid({"p": results}, ceiling=False, x="step", loss="loss", first=1)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == len(results)
    np.testing.assert_allclose(fig.axes[1].lines[0].get_xdata(),
                               results["auto"].trace.column("step")[1:], rtol=TOL["exact"])


def test_plot_trace_grid_bad_input(results):
    from nmf_sched.plotting import plot_trace_grid

    with pytest.raises(ValueError, match="non-empty"):
        plot_trace_grid({})
    with pytest.raises(ValueError, match="panels\\['p'\\]"):
        plot_trace_grid({"p": {}})
    with pytest.raises(ValueError, match="no column 'lr_X'"):
        plot_trace_grid({"p": results}, lr="lr_X")
    with pytest.raises(ValueError, match="x must be"):
        plot_trace_grid({"p": results}, x="time")
    with pytest.raises(ValueError, match="loss must be"):
        plot_trace_grid({"p": results}, loss="rmse")
    with pytest.raises(ValueError, match="first must be"):
        plot_trace_grid({"p": results}, first=-1)


def test_plot_edges_families_medians_infinite_and_png(tmp_path):
    from nmf_sched.plotting import plot_edges

    recs = ([{"family": "a", "group": "stability", "edge": e, "fail_edge": 1.0} for e in (1.2, 1.4, 2.0)]
            + [{"family": "b", "group": "finding", "edge": e, "fail_edge": "inf"}
               for e in (0.7, "inf")])
    path = tmp_path / "edges.png"
    fig = plot_edges(recs, path, title="edges")
    assert path.read_bytes()[:8] == PNG
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    # the ceiling line y = 1 is drawn
    assert any(np.allclose(ln.get_ydata(), 1.0, rtol=TOL["exact"], atol=0) for ln in ax.lines)
    pts = np.vstack([c.get_offsets() for c in ax.collections
                     if c.__class__.__name__ == "PathCollection" and len(c.get_offsets())])
    ys = sorted(pts[:, 1])
    assert ys[:4] == [0.7, 1.2, 1.4, 2.0]
    assert ys[-1] == pytest.approx(1.3 * 8.0, rel=TOL["exact"])  # inf drawn above
    meds = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    assert len(meds) == 2
    assert meds[0].get_segments()[0][0][1] == pytest.approx(1.4, rel=TOL["exact"])
    fig = plot_edges(recs, keys=("edge", "fail_edge"))
    assert len([c for c in fig.axes[0].collections if c.__class__.__name__ == "LineCollection"]) == 4


def test_plot_edges_bad_input():
    from nmf_sched.plotting import plot_edges

    with pytest.raises(ValueError, match="empty"):
        plot_edges([])
    with pytest.raises(ValueError, match="no field 'edge'"):
        plot_edges([{"family": "a"}])
    with pytest.raises(ValueError, match="top must be"):
        plot_edges([{"family": "a", "edge": 1.0}], top=float("inf"))
