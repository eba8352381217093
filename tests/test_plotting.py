"""Figures of traces and schedules: produced headless, PNG written, matplotlib imported lazily."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import nmf_sched  # noqa: E402
from nmf_sched.plotting import plot_schedules, plot_traces, trace_columns  # noqa: E402

from conftest import planted_dense  # noqa: E402

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
        np.testing.assert_allclose(xs, res.trace.column(x))
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
    np.testing.assert_allclose(lines["constant"].get_ydata(), 0.5)
    step = lines["step"].get_ydata()
    assert step[0] == 1.0 and step[-1] == pytest.approx(0.125)
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
