"""Stochastic line search: the backtracking table of the docstring, the reset options, and
that the solver's probe evaluates the step on the very batch the next step uses."""
import math

import numpy as np
import pytest

import nmf_sched
from nmf_sched.schedules import make_schedule
from nmf_sched.schedules.base import StepInfo
from nmf_sched.schedules.sls import SLS

from conftest import TOL, planted_dense


class _FakeProbe:
    """Armijo holds iff lr <= 0.3 (f0 = 1, lin = -lr, c = 0.5)."""

    batch_fraction = 0.5

    def __init__(self):
        self.tried = []

    def __call__(self, lr):
        self.tried.append(lr)
        return (1.0 - lr if lr <= 0.3 else 2.0), 1.0, -lr


def _info(tick, probe, ceiling=None):
    return StepInfo(step=tick, epoch=0, loss=None, ceiling=ceiling, extras={"probe": probe}, tick=tick)


def test_backtracking_table_grow():
    s = SLS(lr=1.0, c=0.5, beta=0.5, gamma=4.0, reset="grow", max_lr=None)
    p = _FakeProbe()
    st = s.update(s.init(), _info(0, p))
    assert p.tried == pytest.approx([1.0, 0.5, 0.25], rel=TOL["exact"])
    assert s.lr(st) == pytest.approx(0.25, rel=TOL["exact"])
    p.tried.clear()
    st = s.update(st, _info(1, p))
    assert p.tried == pytest.approx([0.5, 0.25], rel=TOL["exact"])
    assert s.lr(st) == pytest.approx(0.25, rel=TOL["exact"])
    assert st["backtracks"] == 3 and st["failed"] == 0


def test_reset_initial_and_max_lr_and_cap():
    s = SLS(lr=1.0, c=0.5, beta=0.5, reset="initial", max_lr="bound", kappa=1.0)
    p = _FakeProbe()
    st = s.update(s.init(), _info(0, p, ceiling=0.8))
    p.tried.clear()
    st = s.update(st, _info(1, p, ceiling=0.8))
    # restart from lr0, capped by the ceiling
    assert p.tried == pytest.approx([0.8, 0.4, 0.2], rel=TOL["exact"])
    s2 = SLS(lr=1.0, c=0.5, beta=0.5, max_backtracks=1, max_lr=None)
    st2 = s2.update(s2.init(), _info(0, _FakeProbe()))
    assert s2.lr(st2) == pytest.approx(0.5, rel=TOL["exact"]) and st2["failed"] == 1


def test_needs_probe_and_bad_args():
    with pytest.raises(ValueError, match="probe"):
        SLS(lr=1.0).update(SLS(lr=1.0).init(), StepInfo(0, 0, None, None, {}, 0))
    with pytest.raises(ValueError, match="reset"):
        SLS(reset="never")
    with pytest.raises(ValueError, match="gamma"):
        SLS(gamma=0.5)
    assert isinstance(make_schedule("sls"), SLS)


class _Recording(SLS):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.log = []

    def update(self, state, info):
        new = super().update(state, info)
        f1, f0, lin = info.extras["probe"](new["lr"])
        self.log.append((info.tick, info.loss, f0, f1, lin))
        return new


@pytest.mark.parametrize("pre", ["cd", "none", "gram"])
def test_probe_reuses_the_next_batch(pre):
    V = planted_dense(80, 40, 4)
    s = _Recording()
    res = nmf_sched.fit(V, 4, schedule=s, epochs=2, batch_size=20, seed=0, precondition=pre,
                        tol=0, schedule_every=1, noise_std=0.01)
    assert res.stop_reason == "max_epochs"
    # ticks 1, 2 are after steps 1, 2 of epoch 1: info.loss is the running mean of the
    # (scaled) pre-step batch losses, so the pre-step loss of step 2 is 2*L2 - L1; the probe
    # given at tick 1 evaluated exactly that batch at exactly that point.
    (_, L1, f0_1, f1_1, lin1), (_, L2, *_ ) = s.log[1], s.log[2]
    assert f0_1 == pytest.approx(2 * L2 - L1, rel=TOL["float64_paths"])
    # the accepted step satisfies Armijo and is a descent step on the batch
    assert lin1 < 0 and f1_1 <= f0_1 + 0.1 * lin1 * (1 - TOL["exact"])
    # the probe left the factors untouched: a rerun without probing-by-the-test matches
    s2 = SLS()
    res2 = nmf_sched.fit(V, 4, schedule=s2, epochs=2, batch_size=20, seed=0, precondition=pre,
                         tol=0, schedule_every=1, noise_std=0.01)
    np.testing.assert_allclose(res2.W, res.W, rtol=TOL["float64"])


def test_sls_decreases_loss_and_respects_ceiling():
    V = planted_dense(60, 40, 4)
    res = nmf_sched.fit(V, 4, schedule="sls", epochs=8, batch_size=20, seed=0, tol=0,
                        schedule_every=1, precondition="gram")
    assert math.isfinite(res.loss) and res.loss < 0.5 * res.trace[0]["loss"]
    for row in list(res.trace)[1:]:
        assert row["step_W"] <= 0.9 * row["ceiling_W"] * (1 + TOL["margin"])
