"""Schedule protocol, LR tables and parameter validation for the schedule families."""
from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Mapping

import numpy as np
import pytest

from nmf_sched import schedules as S
from nmf_sched.schedules.base import _REGISTRY, StepInfo, available, make_schedule

from conftest import TOL

MY_CLASSES = [S.Constant, S.StepDecay, S.Exponential, S.InverseTime, S.Polynomial, S.Linear,
              S.Cosine, S.Warmup, S.Chain, S.ReduceLROnPlateau, S.GreedyLR]

# ----------------------------------------------------------------------------
# helpers (kept here: tests/conftest.py belongs to someone else)
# ----------------------------------------------------------------------------

N_TICKS = 30
TOTAL = 40  # what the solver would pass: longer than the driven run


def _loss(t):
    """A deterministic noisy decreasing loss with gaps (None) and plateaus."""
    if t % 5 == 4:
        return None
    return 100.0 * 0.93 ** t * (1.0 + 0.08 * ((7 * t) % 3 - 1)) + (5.0 if 12 <= t < 16 else 0.0)


def _probe(t):
    """A deterministic line-search probe: the batch loss of a step of size lr on a quadratic
    whose curvature changes with the tick (``f(lr) = f0 - lr g2 + L lr^2 g2 / 2``)."""
    L, g2, f0 = 1.5 + 0.5 * math.sin(t), 2.0, 10.0

    def f(lr):
        lr = min(float(v) for v in lr.values()) if isinstance(lr, Mapping) else float(lr)
        return f0 - lr * g2 + 0.5 * L * lr * lr * g2, f0, -lr * g2

    f.batch_fraction = 0.25
    return f


def _grad_dot(t):
    """Deterministic hypergradient signals (sums over a tick, as the engine reports them)."""
    c = math.cos(0.7 * t)
    return {"W": 0.3 * c, "H": -0.2 * c, "W_g2": 1.0 + t, "H_g2": 2.0, "W_u2": 1.5, "H_u2": 0.5 + t,
            "W_entry": np.full((3, 2), 0.3 * c / 6), "H_entry": np.full((2, 4), -0.2 * c / 8)}


def _info(t, loss="auto", ceiling="auto", needs=()):
    if loss == "auto":
        loss = _loss(t)
    if ceiling == "auto":
        ceiling = 2.0 * (1.0 + 0.05 * math.sin(t))
    extras = {}
    if "ceilings" in needs:
        extras["ceilings"] = {"W": ceiling, "H": 0.8 * ceiling}
    if "grad_dot" in needs:
        extras["grad_dot"] = _grad_dot(t)
    if "probe" in needs:
        extras["probe"] = _probe(t)
    return StepInfo(step=10 * t, epoch=t, loss=loss, ceiling=ceiling, extras=extras, tick=t)


def _check_lr_value(value):
    vals = value.values() if isinstance(value, Mapping) else [value]
    for v in vals:
        arr = np.asarray(v, dtype=float)
        assert np.all(np.isfinite(arr)), value
        assert np.all(arr > 0), value


def _run(sched, n=N_TICKS, state=None, start=0):
    state = sched.init() if state is None else state
    lrs, states = [], []
    for t in range(start, n):
        state = sched.update(state, _info(t, needs=getattr(sched, "needs", ())))
        states.append(state)
        lrs.append(sched.lr(state))
    return lrs, states


PROTOCOL_KWARGS = {
    "chain": {"segments": [("constant", 5), (("cosine", {"min_lr": 0.01}), None)]},
    "sequence": {"segments": [(("exp", {"gamma": 0.9}), 3), ("greedy", 10), ("plateau", None)]},
}

EXTRA_SPECS = [
    ("greedy", {"patience": 0, "window": 3, "reset_every": 7, "cooldown": 1, "warmup": 1,
                "max_lr": None, "lr": 0.3}),
    ("greedy", {"patience": 1, "threshold_mode": "abs", "threshold": 0.5, "eps": 1e-3}),
    ("cosine", {"total": 5, "restarts": True, "t_mult": 2, "min_lr": 0.01}),
    ("warmup", {"inner": "greedy", "warmup": 4}),
    ("warmup", {"inner": ("step", {"lr": 0.5, "step_size": 3, "gamma": 0.5})}),
    ("plateau", {"patience": 1, "cooldown": 1, "threshold_mode": "abs", "threshold": 1.0}),
    ("linear", {"end_factor": 0.1}),
    ("polynomial", {"power": 0.5, "end_lr": 0.001}),
]


def _protocol_specs():
    specs = []
    for name in available():
        if name == "auto":
            continue
        specs.append(pytest.param((name, PROTOCOL_KWARGS.get(name, {})), id=name))
    for i, (name, kw) in enumerate(EXTRA_SPECS):
        specs.append(pytest.param((name, kw), id=f"{name}-variant{i}"))
    return specs


def _make(spec):
    return make_schedule(spec, total=TOTAL, kappa=0.5)


# ----------------------------------------------------------------------------
# the shared protocol test
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec", _protocol_specs())
def test_protocol(spec):
    sched = _make(spec)
    assert hasattr(sched, "needs")
    state = sched.init()
    assert isinstance(state, dict)
    json.dumps(state, allow_nan=False)

    snapshots = [(state, copy.deepcopy(state))]
    lrs = []
    for t in range(N_TICKS):
        new = sched.update(state, _info(t, needs=sched.needs))
        assert isinstance(new, dict)
        assert new is not state
        assert state == snapshots[-1][1], "update mutated its input state"
        json.dumps(new, allow_nan=False)
        value = sched.lr(new)
        _check_lr_value(value)
        lrs.append(value)
        snapshots.append((new, copy.deepcopy(new)))
        state = new
    # no later update touched an earlier state (nothing mutable is shared and then changed)
    for live, frozen in snapshots:
        assert live == frozen

    # same inputs, same outputs (a second, independent instance)
    lrs2, _ = _run(_make(spec))
    assert lrs2 == lrs

    # checkpoint mid-run through JSON, resume in a fresh instance: identical later LRs
    k = 13
    _, states = _run(sched, n=k)
    restored = json.loads(json.dumps(states[-1]))
    resumed, _ = _run(_make(spec), state=restored, start=k)
    assert resumed == lrs[k:]


def test_registry_names():
    names = available()
    for name in ("constant", "step", "exp", "inverse_time", "polynomial", "linear", "cosine",
                 "warmup", "chain", "sequence", "plateau", "greedy", "auto"):
        assert name in names
    assert _REGISTRY["chain"] is _REGISTRY["sequence"] is S.Chain
    for cls in MY_CLASSES:
        assert cls.needs == ()


def test_every_schedule_accepts_uniform_defaults():
    for name in ("constant", "step", "exp", "inverse_time", "polynomial", "linear", "cosine",
                 "warmup", "plateau", "greedy"):
        sched = make_schedule(name, total=10, kappa=0.25)
        assert sched.kappa == 0.25


def test_unknown_name_lists_valid():
    with pytest.raises(ValueError, match="cosine"):
        make_schedule("cosin")


# ----------------------------------------------------------------------------
# LR tables written in the docstrings
# ----------------------------------------------------------------------------

def _doc_tables(cls):
    """Parse the LR tables of the ``Examples`` section: [(constructor source, header, rows)]."""
    lines = inspect.getdoc(cls).splitlines()
    start = lines.index("Examples")
    tables, ctor, i = [], None, start
    while i < len(lines) and lines[i].strip() != "References":
        s = lines[i].strip()
        if s.startswith("``") and s.endswith("``") and "(" in s:
            ctor = s.strip("`")
        elif s.startswith("====") and ctor is not None:
            header = lines[i + 1].split()
            j, rows = i + 3, []
            while not lines[j].strip().startswith("===="):
                rows.append(lines[j].split())
                j += 1
            tables.append((ctor, header, rows))
            ctor, i = None, j
        i += 1
    return tables


def _table_lrs(sched, rows, header):
    """Drive ``sched`` over ticks 0..max and return {tick: lr} for the rows' ticks."""
    col = {h: k for k, h in enumerate(header)}
    by_tick = {int(r[col["tick"]]): r for r in rows}
    state, out = sched.init(), {}
    for t in range(max(by_tick) + 1):
        loss = None
        if "loss" in col and t in by_tick and by_tick[t][col["loss"]] != "None":
            loss = float(by_tick[t][col["loss"]])
        state = sched.update(state, StepInfo(step=t, epoch=t, loss=loss, ceiling=None, tick=t))
        if t in by_tick:
            out[t] = sched.lr(state)
    return out, {t: float(r[col["lr"]]) for t, r in by_tick.items()}


@pytest.mark.parametrize("cls", MY_CLASSES, ids=lambda c: c.__name__)
def test_docstring_lr_table(cls):
    tables = _doc_tables(cls)
    assert tables, f"{cls.__name__} has no LR table"
    namespace = {c.__name__: c for c in MY_CLASSES}
    for ctor, header, rows in tables:
        sched = eval(ctor, namespace)  # the constructor written above the table
        got, expected = _table_lrs(sched, rows, header)
        for t in expected:
            assert got[t] == pytest.approx(expected[t], rel=0, abs=TOL["printed"]), (ctor, t)


# hand-written again here, independent of the docstring parser
@pytest.mark.parametrize("sched, expected", [
    (S.Constant(lr=0.25), [0.25, 0.25, 0.25]),
    (S.StepDecay(lr=1.0, step_size=2, gamma=0.5), [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125]),
    (S.Exponential(lr=1.0, gamma=0.5), [1, 0.5, 0.25, 0.125]),
    (S.InverseTime(lr=1.0), [1, 1 / 2, 1 / 3, 1 / 4]),
    (S.InverseTime(lr=2.0, decay=0.5, power=2.0), [2, 2 / 1.5 ** 2, 0.5]),
    (S.Polynomial(lr=1.0, total=4, power=2.0), [1, 0.5625, 0.25, 0.0625, 0, 0]),
    (S.Polynomial(lr=1.0, total=2, end_lr=0.5), [1, 0.75, 0.5, 0.5]),
    (S.Linear(lr=1.0, total=4), [1, 0.75, 0.5, 0.25, 0, 0]),
    (S.Linear(lr=1.0, total=2, end_lr=2.0), [1, 1.5, 2, 2]),
    (S.Linear(lr=1.0, total=4, end_factor=0.5), [1, 0.875, 0.75, 0.625, 0.5, 0.5]),
    (S.Cosine(lr=1.0, total=4), [1, (1 + 2 ** -0.5) / 2, 0.5, (1 - 2 ** -0.5) / 2, 0, 0]),
    (S.Cosine(lr=1.0, total=2, restarts=True), [1, 0.5, 1, 0.5, 1]),
    (S.Cosine(lr=1.0, total=2, min_lr=0.5, restarts=True, t_mult=2),
     [1, 0.75, 1, 0.5 + 0.25 * (1 + 2 ** -0.5), 0.75, 0.5 + 0.25 * (1 - 2 ** -0.5), 1]),
])
def test_classic_values(sched, expected):
    state = sched.init()
    got = []
    for t in range(len(expected)):
        state = sched.update(state, StepInfo(step=t, epoch=t, loss=None, ceiling=None, tick=t))
        got.append(sched.lr(state))
    assert got == pytest.approx(expected, rel=TOL["exact"], abs=TOL["ulp"])


# ----------------------------------------------------------------------------
# lr="bound"
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["constant", "step", "exp", "inverse_time", "polynomial",
                                  "linear", "cosine", "plateau", "greedy"])
def test_bound_resolves_at_tick0_and_raises_before(name):
    sched = make_schedule(name, total=10, kappa=0.5)
    state = sched.init()
    with pytest.raises(ValueError, match="bound"):
        sched.lr(state)
    state = sched.update(state, StepInfo(0, 0, loss=1.0, ceiling=4.0, tick=0))
    assert sched.lr(state) == pytest.approx(2.0, rel=TOL["exact"])
    # the base is fixed at tick 0: a later ceiling does not move tick-function schedules
    if name in ("constant", "step"):
        state = sched.update(state, StepInfo(1, 1, loss=1.0, ceiling=100.0, tick=1))
        assert sched.lr(state) == pytest.approx(2.0, rel=TOL["exact"])


def test_bound_without_ceiling_raises():
    sched = S.Exponential()
    with pytest.raises(ValueError, match="ceiling"):
        sched.update(sched.init(), StepInfo(0, 0, loss=1.0, ceiling=None, tick=0))


def test_bound_resolves_when_tick0_missing():
    sched = S.Constant(kappa=0.25)
    state = sched.update(sched.init(), StepInfo(3, 3, loss=None, ceiling=8.0, tick=3))
    assert sched.lr(state) == 2.0


# ----------------------------------------------------------------------------
# compose
# ----------------------------------------------------------------------------

def test_warmup_wraps_instance_and_scales_dicts():
    class PerBlock:
        needs = ("ceilings",)

        def init(self):
            return {}

        def update(self, state, info):
            return {}

        def lr(self, state):
            return {"W": 1.0, "H": 2.0}

    w = S.Warmup(inner=PerBlock(), warmup=2, start_factor=0.5)
    assert w.needs == ("ceilings",)
    state = w.update(w.init(), StepInfo(0, 0, None, None, tick=0))
    assert w.lr(state) == {"W": 0.5, "H": 1.0}
    state = w.update(state, StepInfo(2, 2, None, None, tick=2))
    assert w.lr(state) == {"W": 1.0, "H": 2.0}


def test_warmup_passes_total_to_inner_spec():
    w = make_schedule(("warmup", {"inner": ("cosine", {"lr": 1.0}), "warmup": 0}), total=4)
    state = w.init()
    for t in range(5):
        state = w.update(state, StepInfo(t, t, None, None, tick=t))
    assert w.lr(state) == pytest.approx(0.0, abs=TOL["ulp"])


def test_chain_segments_restart_clock_and_bound():
    chain = S.Chain([(("constant", {"lr": 0.5}), 2), ("constant", 3)], kappa=0.5)
    state = chain.init()
    lrs = []
    for t, c in enumerate([4.0, 4.0, 10.0, 1.0, 1.0, 1.0]):
        state = chain.update(state, StepInfo(t, t, None, c, tick=t))
        lrs.append(chain.lr(state))
    # the second segment resolves "bound" at its own tick 0 (global tick 2, ceiling 10)
    assert lrs == [0.5, 0.5, 5.0, 5.0, 5.0, 5.0]
    assert state["segment"] == 1


def test_chain_open_last_segment_gets_remaining_total():
    chain = make_schedule(("chain", {"segments": [(0.1, 2), (("linear", {"lr": 1.0}), None)]}),
                          total=6)
    state = chain.init()
    lrs = []
    for t in range(7):
        state = chain.update(state, StepInfo(t, t, None, None, tick=t))
        lrs.append(chain.lr(state))
    assert lrs == pytest.approx([0.1, 0.1, 1.0, 0.75, 0.5, 0.25, 0.0], rel=TOL["exact"])


def test_chain_needs_union():
    class Needy:
        needs = ("grad_dot",)

        def init(self):
            return {}

        def update(self, s, i):
            return {}

        def lr(self, s):
            return 1.0

    assert S.Chain([(Needy(), 2), (S.Constant(1.0), 1)]).needs == ("grad_dot",)


# ----------------------------------------------------------------------------
# plateau
# ----------------------------------------------------------------------------

def _drive(sched, losses, ceiling=None):
    state, out = sched.init(), []
    for t, loss in enumerate(losses):
        state = sched.update(state, StepInfo(t, t, loss, ceiling, tick=t))
        out.append(sched.lr(state))
    return out, state


def test_plateau_rel_threshold_and_nan():
    p = S.ReduceLROnPlateau(lr=1.0, factor=0.5, patience=0, threshold=0.1)
    # 95 is not 10% better than 100 -> bad; 80 is; NaN is bad
    out, state = _drive(p, [100.0, 95.0, 80.0, float("nan")])
    assert out == [1.0, 0.5, 0.5, 0.25]
    assert state["best"] == 80.0
    json.dumps(state, allow_nan=False)


def test_plateau_max_mode_and_min_lr():
    p = S.ReduceLROnPlateau(lr=1.0, mode="max", factor=0.1, patience=0, min_lr=0.05)
    out, _ = _drive(p, [0.5, 0.6, 0.6, 0.6, 0.6])
    assert out == pytest.approx([1.0, 1.0, 0.1, 0.05, 0.05], rel=TOL["exact"])


def test_plateau_eps_blocks_small_reductions():
    p = S.ReduceLROnPlateau(lr=1.0, factor=0.5, patience=0, eps=0.3)
    out, _ = _drive(p, [1.0, 1.0, 1.0, 1.0])
    assert out == [1.0, 0.5, 0.5, 0.5]  # 0.5 -> 0.25 changes by 0.25 <= eps


# ----------------------------------------------------------------------------
# parameter validation
# ----------------------------------------------------------------------------

BAD = [
    (S.Constant, {"lr": -1.0}, ValueError, "lr"),
    (S.Constant, {"lr": "auto"}, ValueError, "lr"),
    (S.Constant, {"lr": float("inf")}, ValueError, "lr"),
    (S.Constant, {"lr": True}, TypeError, "lr"),
    (S.Constant, {"kappa": 0.0}, ValueError, "kappa"),
    (S.Constant, {"kappa": 1.5}, ValueError, "kappa"),
    (S.StepDecay, {"step_size": 0}, ValueError, "step_size"),
    (S.StepDecay, {"step_size": 2.5}, TypeError, "step_size"),
    (S.StepDecay, {"gamma": 1.5}, ValueError, "gamma"),
    (S.Exponential, {"gamma": 0.0}, ValueError, "gamma"),
    (S.InverseTime, {"decay": -1.0}, ValueError, "decay"),
    (S.InverseTime, {"power": "1"}, TypeError, "power"),
    (S.Polynomial, {}, ValueError, "total"),
    (S.Polynomial, {"total": 0}, ValueError, "total"),
    (S.Polynomial, {"total": 5, "end_lr": -0.1}, ValueError, "end_lr"),
    (S.Linear, {"total": 5, "end_lr": 0.1, "end_factor": 0.1}, ValueError, "end_factor"),
    (S.Linear, {"total": 5.0}, TypeError, "total"),
    (S.Linear, {"total": 5, "end_factor": -1}, ValueError, "end_factor"),
    (S.Cosine, {}, ValueError, "total"),
    (S.Cosine, {"total": 5, "lr": 0.1, "min_lr": 0.2}, ValueError, "min_lr"),
    (S.Cosine, {"total": 5, "restarts": 1}, TypeError, "restarts"),
    (S.Cosine, {"total": 5, "t_mult": 0.5}, ValueError, "t_mult"),
    (S.Warmup, {"warmup": -1}, ValueError, "warmup"),
    (S.Warmup, {"start_factor": 0.0}, ValueError, "start_factor"),
    (S.Warmup, {"inner": "nope"}, ValueError, "nope"),
    (S.Chain, {}, ValueError, "segments"),
    (S.Chain, {"segments": []}, ValueError, "segments"),
    (S.Chain, {"segments": [("constant",)]}, ValueError, "segments"),
    (S.Chain, {"segments": [("constant", 0)]}, ValueError, "n_ticks"),
    (S.Chain, {"segments": [("constant", None), ("constant", 2)]}, ValueError, "n_ticks"),
    (S.ReduceLROnPlateau, {"factor": 1.0}, ValueError, "factor"),
    (S.ReduceLROnPlateau, {"mode": "minimum"}, ValueError, "mode"),
    (S.ReduceLROnPlateau, {"threshold_mode": "relative"}, ValueError, "threshold_mode"),
    (S.ReduceLROnPlateau, {"patience": -1}, ValueError, "patience"),
    (S.ReduceLROnPlateau, {"cooldown": 1.5}, TypeError, "cooldown"),
    (S.ReduceLROnPlateau, {"eps": -1.0}, ValueError, "eps"),
    (S.ReduceLROnPlateau, {"lr": 0.1, "min_lr": 0.5}, ValueError, "min_lr"),
]


@pytest.mark.parametrize("cls, kwargs, exc, word", BAD,
                         ids=[f"{c.__name__}-{'-'.join(map(str, k))}" for c, k, _, _ in BAD])
def test_bad_params(cls, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        cls(**kwargs)


def test_params_stored_as_given_and_repr():
    s = S.StepDecay(lr=0.5, step_size=3, gamma=0.5)
    assert (s.lr0, s.step_size, s.gamma, s.kappa) == (0.5, 3, 0.5, 0.5)
    assert repr(s) == "StepDecay(lr=0.5, step_size=3, gamma=0.5, kappa=0.5)"
    assert "GreedyLR(lr='bound'" in repr(S.GreedyLR())
