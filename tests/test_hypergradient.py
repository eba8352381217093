"""Hypergradient descent: the LR table of the docstring, the solver's grad_dot signal
against a naive reference, granularities, the ceiling, and that others pay nothing."""
import math

import numpy as np
import pytest

import nmf_sched
from nmf_sched.schedules import make_schedule
from nmf_sched.schedules.base import StepInfo
from nmf_sched.schedules.hypergradient import Hypergradient

from conftest import TOL, planted_dense


def _gd(hW, hH, g2W=1.0, g2H=0.0, u2W=1.0, u2H=0.0):
    return {"W": hW, "H": hH, "W_g2": g2W, "H_g2": g2H, "W_u2": u2W, "H_u2": u2H,
            "W_entry": np.zeros((3, 2)), "H_entry": np.zeros((2, 4))}


def _info(tick, gd, ceiling=10.0):
    return StepInfo(step=tick, epoch=tick, loss=None, ceiling=ceiling,
                    extras={"grad_dot": gd, "ceilings": {"W": ceiling, "H": ceiling}}, tick=tick)


def test_lr_table_multiplicative_global():
    s = Hypergradient(lr=1.0, beta=0.5, variant="multiplicative", max_lr=None)
    st = s.update(s.init(), _info(0, _gd(0, 0)))
    lrs = [s.lr(st)]
    for gd in (_gd(1.0, 0.0, 1.0, 0.0, 1.0, 0.0), _gd(-1.0, -1.0, 2.0, 2.0, 0.5, 0.5), _gd(0, 0)):
        st = s.update(st, _info(len(lrs), gd))
        lrs.append(s.lr(st))
    assert lrs == pytest.approx([1.0, 1.5, 0.75, 0.75], rel=TOL["exact"])


def test_lr_table_additive_group_and_clipping():
    s = Hypergradient(lr=1.0, beta=0.1, variant="additive", granularity="group", max_lr="bound",
                      kappa=1.0)
    st = s.update(s.init(), _info(0, _gd(0, 0), ceiling=1.15))
    st = s.update(st, _info(1, _gd(2.0, -1.0), ceiling=1.15))
    # W clipped to the ceiling
    assert s.lr(st) == pytest.approx({"W": 1.15, "H": 0.9}, rel=TOL["exact"])
    st = s.update(st, _info(2, _gd(-1.0, 0.0), ceiling=1.15))
    assert s.lr(st) == pytest.approx({"W": 1.05, "H": 0.9}, rel=TOL["exact"])
    assert st["lr"]["W"] >= 1e-4  # floor min_lr = 1e-4 lr0


def test_parameter_granularity_shapes_and_bounded_ratio():
    s = Hypergradient(lr=1.0, beta=0.5, granularity="parameter", max_lr=None)
    gd = _gd(0, 0)
    st = s.update(s.init(), _info(0, gd))
    lr = s.lr(st)
    assert lr["W"].shape == (3, 2) and lr["H"].shape == (2, 4)
    gd = _gd(1.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    gd["W_entry"] = np.array([[1.0, -1.0], [0.0, 0.0], [0.0, 5.0]])
    st = s.update(st, _info(1, gd))
    W = s.lr(st)["W"]
    assert W[0, 0] == pytest.approx(1.5, rel=TOL["exact"])
    assert W[0, 1] == pytest.approx(0.5, rel=TOL["exact"])
    assert W[1, 0] == 1.0 and W[2, 1] == pytest.approx(1.5, rel=TOL["exact"])  # ratio clipped to 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        Hypergradient(variant="sideways")
    with pytest.raises(ValueError, match="granularity"):
        Hypergradient(granularity="row")
    with pytest.raises(ValueError, match="beta"):
        Hypergradient(beta=-1.0)


class _Recorder:
    def __init__(self, lr, needs):
        self.needs, self.lr0, self.seen = needs, lr, []

    def init(self):
        return {}

    def lr(self, state):
        return self.lr0

    def update(self, state, info):
        self.seen.append(info)
        return state


def test_grad_dot_matches_naive_reference():
    V = planted_dense(40, 30, 4)
    r = np.random.default_rng(3)
    W0, H0 = r.random((40, 4)), r.random((4, 30))
    lr = 0.3 / np.linalg.norm(V, 2) ** 2
    rec = _Recorder(lr, ("grad_dot",))
    nmf_sched.fit(V, 4, schedule=rec, W0=W0, H0=H0, batch_size=40, epochs=3, precondition="none",
                  clip_lr=False, tol=0, balance=False)
    # naive: sequential block steps, u = (X_old - X_new) / lr, h_t = <g_t, u_{t-1}>
    W, H = W0.copy(), H0.copy()
    uW, uH = np.zeros_like(W), np.zeros_like(H)
    hs = []
    for _ in range(3):
        gW = W @ H @ H.T - V @ H.T
        hW = float(np.sum(gW * uW))
        Wn = np.maximum(W - lr * gW, 0)
        uW, W = (W - Wn) / lr, Wn
        gH = W.T @ W @ H - W.T @ V
        hH = float(np.sum(gH * uH))
        Hn = np.maximum(H - lr * gH, 0)
        uH, H = (H - Hn) / lr, Hn
        hs.append((hW, hH))
    got = [(i.extras["grad_dot"]["W"], i.extras["grad_dot"]["H"]) for i in rec.seen[1:]]
    assert np.allclose(got, hs, rtol=TOL["float64_paths"], atol=TOL["float64_paths_abs"])
    assert got[1][0] != 0.0
    e = rec.seen[2].extras["grad_dot"]
    assert e["W_entry"].shape == (40, 4) and e["H_entry"].shape == (4, 30)
    assert e["W_entry"].sum() == pytest.approx(e["W"], rel=TOL["float64"])


def test_other_schedules_get_no_extras():
    V = planted_dense(40, 30, 4)
    rec = _Recorder(0.5, ())
    nmf_sched.fit(V, 4, schedule=rec, epochs=2, batch_size=10, seed=0, tol=0)
    assert all(dict(i.extras) == {} for i in rec.seen)


@pytest.mark.parametrize("pre,gran", [("cd", "global"), ("cd", "group"), ("gram", "parameter"),
                                      ("none", "parameter"), ("lipschitz", "group")])
@pytest.mark.parametrize("variant", ["multiplicative", "additive"])
def test_fit_runs_and_respects_ceiling(pre, gran, variant):
    V = planted_dense(60, 40, 4)
    res = nmf_sched.fit(V, 4, schedule=("hypergradient", {"granularity": gran, "variant": variant}),
                        epochs=6, batch_size=20, seed=0, precondition=pre, tol=0, schedule_every=1)
    assert res.stop_reason == "max_epochs"
    assert math.isfinite(res.loss) and res.loss < res.trace[0]["loss"]
    # the schedule's own LR never exceeds the block ceilings it last saw (max_lr="bound")
    st = res.schedule_state
    for b in ("W", "H"):
        assert np.all(np.asarray(st["lr"][b]) <= 0.5 * st["ceil"][b] * (1 + TOL["exact"]))
    # and the applied steps are capped by the solver (step_* are epoch means; the W ceiling
    # does not depend on the batch)
    for row in list(res.trace)[1:]:
        assert row["step_W"] <= 0.9 * row["ceiling_W"] * (1 + TOL["margin"])


def test_per_parameter_with_cd_is_refused_before_any_work_naming_both_parts():
    V = planted_dense(30, 20, 3)
    calls = []
    with pytest.raises(ValueError, match=r"Hypergradient\(.*granularity='parameter'.*precondition='cd'"):
        nmf_sched.fit(V, 3, schedule=("hypergradient", {"granularity": "parameter"}), epochs=2,
                      seed=0, callback=lambda *a: calls.append(1))
    assert calls == []


def test_registered():
    assert isinstance(make_schedule("hypergradient"), Hypergradient)
