"""GreedyLR semantics: the documented table, patience, cooldown/warmup, thresholds,
smoothing, bounds, the ceiling-tracking max_lr, resets and validation."""
from __future__ import annotations

import json
import math

import pytest

from nmf_sched.schedules import GreedyLR, StepInfo, make_schedule

INF = float("inf")


def drive(sched, losses, ceilings=None, state=None):
    """Feed losses at ticks 0, 1, ...; return (lrs after each update, states)."""
    state = sched.init() if state is None else state
    lrs, states = [], []
    for t, loss in enumerate(losses):
        c = None if ceilings is None else ceilings[t]
        state = sched.update(state, StepInfo(step=t, epoch=t, loss=loss, ceiling=c, tick=t))
        lrs.append(sched.lr(state))
        states.append(state)
    return lrs, states


def simple(**kw):
    """Numeric lr, no upper bound, plain comparison; override as needed."""
    base = dict(lr=1.0, factor=0.5, patience=0, threshold=0.0, threshold_mode="abs",
                max_lr=None)
    base.update(kw)
    return GreedyLR(**base)


DOWN = [10.0 - t for t in range(10)]  # strictly improving
FLAT = [5.0] * 10                     # never improving (equal is not better)


def test_docstring_table_exact():
    g = GreedyLR(lr=1.0, factor=0.5, patience=1, threshold=0.0, threshold_mode="abs",
                 cooldown=1, warmup=1, min_lr=1.0, max_lr=4.0)
    losses = [10, 9, 8, 7, 6, 5, 4, 3, 2, 3, 3, 3, 1, 2, None, 2, 2, 2, 2]
    expected = [1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 2.0, 2.0, 2.0, 2.0,
                1.0, 1.0, 1.0, 1.0]
    lrs, states = drive(g, [None if x is None else float(x) for x in losses])
    assert lrs == expected
    assert states[12]["best"] == 1.0  # improvement during cooldown updates best


def test_defaults_follow_reference():
    g = GreedyLR()
    assert g.factor == 0.95 and g.patience == 10
    assert g.lr0 == "bound" and g.max_lr == "bound"
    assert g.needs == ()


def test_plain_rule_patience_zero():
    lrs, _ = drive(simple(), DOWN[:4])
    assert lrs == [1.0, 2.0, 4.0, 8.0]
    lrs, _ = drive(simple(), FLAT[:4])
    assert lrs == [1.0, 0.5, 0.25, 0.125]


def test_patience_counts_consecutive_ticks():
    lrs, _ = drive(simple(patience=2), DOWN)
    # the (p+1)-th consecutive good tick triggers; the run counter restarts after a change
    assert lrs == [1, 1, 1, 2, 2, 2, 4, 4, 4, 8]
    lrs, _ = drive(simple(patience=2), FLAT)
    assert lrs == [1, 1, 1, .5, .5, .5, .25, .25, .25, .125]
    # an interrupted run starts over: good, good, bad, good, good -> no change
    lrs, states = drive(simple(patience=2), [10.0, 9.0, 8.0, 8.5, 7.0, 6.0])
    assert lrs == [1.0] * 6
    assert states[-1]["num_good"] == 2 and states[-1]["num_bad"] == 0


def test_cooldown_after_decrease():
    lrs, states = drive(simple(cooldown=2), FLAT[:8])
    assert lrs == [1, .5, .5, .5, .25, .25, .25, .125]
    assert [s["cooldown_counter"] for s in states[:5]] == [0, 2, 1, 0, 2]
    # cooldown is not started by an increase
    lrs, _ = drive(simple(cooldown=2), DOWN[:4])
    assert lrs == [1, 2, 4, 8]


def test_warmup_after_increase():
    lrs, states = drive(simple(warmup=2), DOWN[:8])
    assert lrs == [1, 2, 2, 2, 4, 4, 4, 8]
    assert [s["warmup_counter"] for s in states[:5]] == [0, 2, 1, 0, 2]
    lrs, _ = drive(simple(warmup=2), FLAT[:4])
    assert lrs == [1, .5, .25, .125]


def test_best_tracked_during_warmup():
    # the big drop at tick 2 happens during warmup; afterwards 6 is worse than best=1
    lrs, states = drive(simple(warmup=1), [10.0, 9.0, 1.0, 6.0])
    assert states[2]["best"] == 1.0
    assert lrs == [1, 2, 2, 1]


@pytest.mark.parametrize("mode, thr, loss, good", [
    ("rel", 0.1, 95.0, False),   # needs < 100 * 0.9 = 90
    ("rel", 0.1, 89.0, True),
    ("rel", 0.1, 90.0, False),   # strict
    ("abs", 5.0, 96.0, False),   # needs < 100 - 5 = 95
    ("abs", 5.0, 94.0, True),
    ("abs", 0.0, 100.0, False),  # equal is not an improvement
    ("abs", 0.0, 99.999, True),
])
def test_threshold_modes(mode, thr, loss, good):
    g = simple(threshold=thr, threshold_mode=mode)
    lrs, states = drive(g, [100.0, loss])
    assert lrs[1] == (2.0 if good else 0.5)
    assert states[1]["best"] == (loss if good else 100.0)


def test_threshold_compares_with_best_not_previous():
    # 9.5 improves on the previous loss (9.8) but not on best (9.0)
    lrs, states = drive(simple(patience=5), [10.0, 9.0, 9.8, 9.5])
    assert states[-1]["best"] == 9.0
    assert states[-1]["num_bad"] == 2 and states[-1]["num_good"] == 0


def test_smoothing_window():
    losses = [10.0, 12.0, 9.0]
    raw, _ = drive(simple(), losses)
    assert raw == [1.0, 0.5, 1.0]  # 9 < best 10: improvement
    smooth, states = drive(simple(window=3), losses)
    # mean(10, 12) = 11 and mean(10, 12, 9) = 10.33 are both above best 10
    assert smooth == [1.0, 0.5, 0.25]
    assert states[-1]["window"] == losses
    _, states = drive(simple(window=2), [10.0, 12.0, 9.0, 7.0])
    assert states[-1]["window"] == [9.0, 7.0]
    assert states[-1]["best"] == 8.0  # mean(9, 7) improved on 10


def test_min_max_clamp():
    lrs, _ = drive(simple(min_lr=0.3), FLAT[:5])
    assert lrs == [1, .5, .3, .3, .3]
    lrs, _ = drive(simple(max_lr=3.0), DOWN[:5])
    assert lrs == [1, 2, 3, 3, 3]
    # a numeric lr outside the bounds is clipped at the initial observation
    lrs, _ = drive(simple(lr=10.0, max_lr=3.0), [1.0])
    assert lrs == [3.0]


def test_max_lr_bound_tracks_ceiling():
    g = simple(max_lr="bound", kappa=0.5)
    ceilings = [4.0, 4.0, 1.0, 1.0, None, 8.0, 8.0]
    lrs, states = drive(g, DOWN[:7], ceilings)
    # caps: 2, 2, 0.5, 0.5, 0.5 (ceiling None: last cap reused), 4, 4; the LR returned is
    # min(the schedule's own LR, cap): the dip to 0.5 does not erase the 2.0 built up, and
    # improvements raise it again (to 4 = the cap) once the ceiling is back
    assert lrs == [1.0, 2.0, 0.5, 0.5, 0.5, 4.0, 4.0]
    assert [s["max_lr"] for s in states] == [2.0, 2.0, 0.5, 0.5, 0.5, 4.0, 4.0]
    assert [s["lr"] for s in states] == [1.0, 2.0, 2.0, 2.0, 2.0, 4.0, 4.0]
    # a falling ceiling pulls the LR down at once, even on a tick with no loss
    lrs, _ = drive(g, [10.0, 9.0, None], [4.0, 4.0, 1.0])
    assert lrs == [1.0, 2.0, 0.5]


def test_max_lr_bound_increase_stops_at_the_cap_and_decreases_act_on_the_own_lr():
    g = simple(max_lr="bound", kappa=1.0)  # factor 0.5, patience 0
    # improving ticks under a cap of 3: 1 -> 2 -> 3 (capped) -> 3; an improvement never lowers
    # the stored LR when the cap is below it (cap 1: the LR returned is 1, the state keeps 3)
    lrs, states = drive(g, [10.0, 9.0, 8.0, 7.0, 6.0], [3.0, 3.0, 3.0, 3.0, 1.0])
    assert lrs == [1.0, 2.0, 3.0, 3.0, 1.0]
    assert states[-1]["lr"] == 3.0
    # a worse tick halves the schedule's own LR (3 -> 1.5); the cap of 1 still wins
    lrs, states = drive(g, [10.0, 9.0, 8.0, 7.0, 6.0, 6.5], [3.0, 3.0, 3.0, 3.0, 1.0, 1.0])
    assert states[-1]["lr"] == 1.5 and lrs[-1] == 1.0
    # a numeric max_lr still clips the stored LR
    lrs, states = drive(simple(max_lr=3.0), [10.0, 9.0, 8.0, 7.0])
    assert [s["lr"] for s in states] == lrs == [1.0, 2.0, 3.0, 3.0]


def test_max_lr_bound_needs_a_ceiling():
    g = simple(max_lr="bound")
    with pytest.raises(ValueError, match="max_lr"):
        drive(g, [1.0], [None])


def test_lr_bound_starts_at_the_cap():
    g = GreedyLR(lr="bound", max_lr="bound", kappa=0.25, patience=0, factor=0.5,
                 threshold=0.0)
    lrs, _ = drive(g, [10.0, 11.0, 9.0, 8.0], [8.0, 8.0, 8.0, 8.0])
    assert lrs == [2.0, 1.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="bound"):
        g.lr(g.init())
    assert simple(lr=0.7).lr(simple(lr=0.7).init()) == 0.7


def test_eps_suppresses_small_changes():
    lrs, states = drive(simple(eps=0.6), FLAT[:3])
    assert lrs == [1.0, 1.0, 1.0]  # 1 -> 0.5 changes by 0.5 <= eps
    assert states[-1]["num_bad"] == 0  # the triggered change still restarts the run
    lrs, _ = drive(simple(eps=0.6), DOWN[:3])
    assert lrs == [1.0, 2.0, 4.0]


def test_missing_and_nonfinite_losses():
    lrs, states = drive(simple(patience=1), [10.0, 11.0, None, None, 12.0])
    assert lrs == [1, 1, 1, 1, .5]  # None ticks neither count nor break the run
    assert states[3]["num_bad"] == 1
    lrs, states = drive(simple(window=2), [10.0, math.nan, 9.0, INF])
    assert lrs == [1.0, 0.5, 1.0, 0.5]  # NaN / inf count as not improving
    assert states[-1]["window"] == [10.0, 9.0]  # ... and stay out of the window
    for s in states:
        json.dumps(s, allow_nan=False)
    # no loss at tick 0: the first finite loss is the baseline, not counted
    lrs, states = drive(simple(), [None, 10.0, 9.0])
    assert lrs == [1.0, 1.0, 2.0]


def test_reset_every_is_one_countdown_per_update():
    g = simple(reset_every=3)
    losses = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, None, None, 3.0]
    lrs, states = drive(g, losses)
    # increases, then back to lr0 at updates 3, 6, 9 after the initial observation;
    # ticks without a loss count too (exactly one decrement per update call)
    assert lrs == [1, 2, 4, 1, 2, 4, 1, 1, 1, 1]
    assert [s["until_reset"] for s in states] == [3, 2, 1, 3, 2, 1, 3, 2, 1, 3]
    assert [s["resets"] for s in states] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    # a long run: resets == updates // reset_every
    _, states = drive(simple(reset_every=4), [10.0 - 0.1 * t for t in range(41)])
    assert states[-1]["resets"] == 10


def test_reset_rebaselines_and_clears_counters():
    # tick 3 (loss 8, worse than best 4) is the reset tick: a fresh baseline, so
    # 7 at tick 4 is an improvement on 8, not a worsening w.r.t. the old best 4
    g = simple(reset_every=3, window=2, cooldown=5)
    lrs, states = drive(g, [10.0, 5.0, 4.0, 8.0, 7.0])
    assert lrs == [1, 2, 4, 1, 2]
    s = states[3]
    assert (s["best"], s["window"], s["num_good"], s["num_bad"]) == (8.0, [8.0], 0, 0)
    assert (s["cooldown_counter"], s["warmup_counter"]) == (0, 0)


def test_reset_returns_to_lr_resolved_at_tick0():
    g = GreedyLR(lr="bound", max_lr=None, kappa=0.5, factor=0.5, patience=0,
                 threshold=0.0, reset_every=2)
    lrs, _ = drive(g, [10.0, 9.0, 8.0], [4.0, 100.0, 100.0])
    assert lrs == [2.0, 4.0, 2.0]


def test_by_name_with_solver_defaults():
    g = make_schedule(("greedy", {"lr": 0.1, "max_lr": 1.0}), total=50, kappa=0.3)
    assert isinstance(g, GreedyLR) and g.kappa == 0.3 and g.total == 50


BAD = [
    ({"factor": 1.0}, ValueError, "factor"),
    ({"factor": 0.0}, ValueError, "factor"),
    ({"factor": 1.5}, ValueError, "factor"),
    ({"patience": -1}, ValueError, "patience"),
    ({"patience": 1.5}, TypeError, "patience"),
    ({"threshold": -0.1}, ValueError, "threshold"),
    ({"threshold": 1.0}, ValueError, "threshold"),
    ({"threshold_mode": "relative"}, ValueError, "threshold_mode"),
    ({"cooldown": -1}, ValueError, "cooldown"),
    ({"warmup": 2.0}, TypeError, "warmup"),
    ({"min_lr": -1.0}, ValueError, "min_lr"),
    ({"max_lr": 0.0}, ValueError, "max_lr"),
    ({"max_lr": "ceiling"}, ValueError, "max_lr"),
    ({"min_lr": 2.0, "max_lr": 1.0}, ValueError, "min_lr"),
    ({"window": 0}, ValueError, "window"),
    ({"eps": -1e-9}, ValueError, "eps"),
    ({"reset_every": 0}, ValueError, "reset_every"),
    ({"reset_every": 2.5}, TypeError, "reset_every"),
    ({"kappa": 2.0}, ValueError, "kappa"),
    ({"lr": "auto"}, ValueError, "lr"),
    ({"lr": math.nan}, ValueError, "lr"),
]


@pytest.mark.parametrize("kwargs, exc, word", BAD, ids=[str(k) for k, _, _ in BAD])
def test_bad_params(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        GreedyLR(**kwargs)
