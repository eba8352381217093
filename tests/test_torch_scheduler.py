"""nmf_sched.torch.ScheduleLR: torch's scheduler conventions, equality with torch's own
schedulers, per-group LRs, refusals, JSON checkpoints, and the Lightning call pattern."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from torch.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR,  # noqa: E402
                                      LRScheduler, ReduceLROnPlateau, StepLR)

from conftest import TOL  # noqa: E402
from nmf_sched.schedules import make_schedule  # noqa: E402
from nmf_sched.schedules.base import StepInfo  # noqa: E402
from nmf_sched.torch import LossScheduleLR, ScheduleLR  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _opt(lrs=(0.1,), kind="sgd"):
    """An optimizer with one param group per LR."""
    g = torch.Generator().manual_seed(0)
    groups = [{"params": [torch.nn.Parameter(torch.randn(3, generator=g))], "lr": lr} for lr in lrs]
    if kind == "adamw":
        return torch.optim.AdamW(groups)
    return torch.optim.SGD(groups, momentum=0.9)


def _losses(n):
    """Deterministic noisy, decreasing then flat losses."""
    return [1.0 / (1 + 0.3 * t) + 0.02 * ((7 * t) % 5 - 2) if t < n // 2 else 0.3 + 0.01 * (t % 3)
            for t in range(n)]


def _drive(sched, opt, n, losses=None):
    out = [list(sched.get_last_lr())]
    for t in range(n):
        opt.step()
        sched.step(None if losses is None else losses[t])
        out.append(list(sched.get_last_lr()))
    return out


def _torch_lrs(sched, opt, n, losses=None):
    out = [[g["lr"] for g in opt.param_groups]]
    for t in range(n):
        opt.step()
        if losses is None:
            sched.step()
        else:
            sched.step(losses[t])
        out.append([g["lr"] for g in opt.param_groups])
    return out


def _close(a, b, tol):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb):
            assert abs(x - y) <= tol * max(1.0, abs(y)), (a, b)


# ----------------------------------------------------------------------------
# equal to torch's own schedulers
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("eta_min", [0.0, 0.003])
def test_cosine_equals_cosine_annealing(eta_min):
    T = 37
    o1, o2 = _opt((0.1, 0.02)), _opt((0.1, 0.02))
    ours = ScheduleLR(o1, ("cosine", {"min_lr": eta_min}), total=T)
    ref = CosineAnnealingLR(o2, T_max=T, eta_min=eta_min)
    a, b = _drive(ours, o1, T), _torch_lrs(ref, o2, T)
    _close(a, b, TOL["torch_schedule"])
    assert a[0] == [0.1, 0.02]  # the base LR per group
    assert abs(a[-1][0] - eta_min) <= TOL["ulp"]  # and it ends at the minimum
    assert ours.last_epoch == ref.last_epoch == T


def test_step_and_exp_equal_torch():
    o1, o2 = _opt((0.5, 0.05)), _opt((0.5, 0.05))
    a = _drive(ScheduleLR(o1, ("step", {"step_size": 4, "gamma": 0.3})), o1, 25)
    b = _torch_lrs(StepLR(o2, step_size=4, gamma=0.3), o2, 25)
    _close(a, b, TOL["torch_schedule"])
    # the drop happens at tick 4
    assert a[4][0] == pytest.approx(0.15, rel=TOL["exact"]) and a[3][0] == 0.5
    o1, o2 = _opt((0.5,)), _opt((0.5,))
    _close(_drive(ScheduleLR(o1, ("exp", {"gamma": 0.9})), o1, 25),
           _torch_lrs(ExponentialLR(o2, gamma=0.9), o2, 25), TOL["torch_schedule"])


def test_plateau_equals_reduce_lr_on_plateau():
    losses = _losses(60)
    o1, o2 = _opt((0.1, 0.01)), _opt((0.1, 0.01))
    ours = ScheduleLR(o1, ("plateau", {"patience": 3, "factor": 0.5, "eps": 1e-8}))
    ref = ReduceLROnPlateau(o2, patience=3, factor=0.5)
    a, b = _drive(ours, o1, 60, losses), _torch_lrs(ref, o2, 60, losses)
    _close(a, b, TOL["torch_schedule"])
    assert a[-1][0] < 0.1  # the plateau did reduce


def test_lr_after_kth_step_is_schedule_lr_at_tick_k():
    losses = _losses(40)
    spec = ("greedy", {"lr": 0.05, "patience": 1, "window": 3, "max_lr": 0.2, "min_lr": 0.001})
    sched = make_schedule(spec)
    state = sched.update(sched.init(), StepInfo(0, 0, None, None, tick=0))
    want = [sched.lr(state)]
    for t in range(1, 41):
        state = sched.update(state, StepInfo(t, t, losses[t - 1], None, tick=t))
        want.append(sched.lr(state))
    opt = _opt((0.3,))
    got = [lr[0] for lr in _drive(ScheduleLR(opt, spec), opt, 40, losses)]
    assert got == want
    assert len(set(want)) > 2  # the LR moved both ways over the run


def test_callable_and_float_specs():
    opt = _opt((0.1,))
    s = ScheduleLR(opt, lambda tick: 0.01 * (tick + 1))
    assert _drive(s, opt, 3) == [[0.01], [0.02], [0.03], [0.04]]
    opt = _opt((0.1,))
    s = ScheduleLR(opt, 0.025)
    assert _drive(s, opt, 2) == [[0.025]] * 3


# ----------------------------------------------------------------------------
# base LR and param groups
# ----------------------------------------------------------------------------

def test_base_lr_from_groups_and_spec_lr_wins():
    opt = _opt((0.2, 0.02))
    s = ScheduleLR(opt, ("linear", {"end_factor": 0.5}), total=4)
    assert s.get_last_lr() == [0.2, 0.02]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.2, 0.02]
    lrs = _drive(s, opt, 4)
    assert lrs[-1] == pytest.approx([0.1, 0.01], rel=TOL["exact"])
    opt = _opt((0.2, 0.02))
    s = ScheduleLR(opt, ("linear", {"lr": 0.4, "end_factor": 0.5}), total=4)
    assert s.get_last_lr() == [0.4, 0.4]  # the spec's lr for every group


def test_each_vs_shared_state():
    """'each': the groups run independent states (a min_lr floor binds only the small group);
    'shared': one state, group LRs keep their ratio."""
    losses = [1.0] * 30  # never improves: GreedyLR keeps lowering
    spec = ("greedy", {"patience": 0, "factor": 0.5, "min_lr": 0.01})
    o1 = _opt((0.1, 0.02))
    each = ScheduleLR(o1, spec, groups="each")
    assert len(each.schedules) == 2 and len(each.state_dict()["schedule_states"]) == 2
    a = _drive(each, o1, 6, losses)
    assert a[-1] == pytest.approx([0.01, 0.01], rel=TOL["exact"])
    o2 = _opt((0.1, 0.02))
    shared = ScheduleLR(o2, spec, groups="shared")
    assert len(shared.schedules) == 1
    b = _drive(shared, o2, 6, losses)
    assert all(r[1] == pytest.approx(0.2 * r[0], rel=TOL["exact"]) for r in b)
    assert b[-1][0] == pytest.approx(0.01, rel=TOL["exact"])
    with pytest.raises(ValueError, match="groups"):
        ScheduleLR(_opt(), "cosine", total=3, groups="per")


def test_warmup_and_chain_get_the_group_lr():
    opt = _opt((0.4,))
    s = ScheduleLR(opt, ("warmup", {"inner": "cosine", "warmup": 2, "start_factor": 0.5}), total=10)
    lrs = [r[0] for r in _drive(s, opt, 3)]
    assert lrs[0] == pytest.approx(0.4 * 0.5, rel=TOL["exact"])  # start_factor x the group's LR
    assert lrs[1] == pytest.approx(0.75 * 0.2 * (1 + math.cos(math.pi / 10)), rel=TOL["exact"])
    assert lrs[2] == pytest.approx(0.4 * 0.5 * (1 + math.cos(2 * math.pi / 10)), rel=TOL["exact"])
    opt = _opt((0.4,))
    s = ScheduleLR(opt, ("chain", {"segments": [("constant", 2), (("exp", {"gamma": 0.5}), None)]}))
    assert [r[0] for r in _drive(s, opt, 4)] == pytest.approx([0.4, 0.4, 0.4, 0.2, 0.1],
                                                             rel=TOL["exact"])


# ----------------------------------------------------------------------------
# refusals
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, word", [
    (("greedy", {"lr": "bound"}), "lr='bound'"),
    (("greedy", {"max_lr": "bound"}), "max_lr='bound'"),
    (("cosine", {"lr": "bound", "total": 5}), "lr='bound'"),
    (("warmup", {"inner": ("constant", {"lr": "bound"})}), "lr='bound'"),
    ("auto", "no stability ceiling"),
    ("rl", "DNNPolicy"),
    ("hypergradient", "HypergradientOptimizer"),
    ("sls", "probe"),
    (("greedy", {"min_lr": 1e-3}), "Hugging Face"),
    ("cosin", "valid names"),
])
def test_refused_with_a_clear_error(spec, word):
    opt = _opt((5e-5,), kind="adamw")
    with pytest.raises(ValueError, match=word.replace("(", r"\(").replace("'", "'")):
        ScheduleLR(opt, spec, total=10)


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="optimizer"):
        ScheduleLR(object(), "cosine", total=3)
    with pytest.raises(ValueError, match="last_epoch"):
        ScheduleLR(_opt(), "cosine", total=3, last_epoch=4)
    with pytest.raises(ValueError, match="total"):
        ScheduleLR(_opt(), "cosine", total=0)
    with pytest.raises(TypeError, match="watch_loss"):
        ScheduleLR(_opt(), "cosine", total=3, watch_loss="yes")
    s = ScheduleLR(_opt(), "greedy")
    with pytest.raises(TypeError, match="loss"):
        s.step("0.5")
    with pytest.raises(ValueError, match="scalar"):
        s.step(torch.ones(2))


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [("greedy", {"patience": 2, "window": 5, "min_lr": 1e-3}),
                                  ("cosine", {"min_lr": 1e-3})])
def test_state_dict_json_resume_is_exact(spec):
    losses = _losses(50)
    opt = _opt((0.05, 0.01))
    full = _drive(ScheduleLR(opt, spec, total=50), opt, 50, losses)
    opt = _opt((0.05, 0.01))
    s = ScheduleLR(opt, spec, total=50)
    _drive(s, opt, 20, losses)
    saved = json.loads(json.dumps(s.state_dict(), allow_nan=False))
    opt_saved = opt.state_dict()
    opt2 = _opt((0.05, 0.01))
    s2 = ScheduleLR(opt2, spec, total=50)  # build first, then restore (torch's order)
    opt2.load_state_dict(opt_saved)
    s2.load_state_dict(saved)
    assert s2.last_epoch == 20 and s2.get_last_lr() == full[20]
    rest = []
    for t in range(20, 50):
        opt2.step()
        s2.step(losses[t])
        rest.append(list(s2.get_last_lr()))
    assert rest == full[21:]
    with pytest.raises(ValueError, match="groups"):
        ScheduleLR(_opt((0.05, 0.01)), spec, total=50, groups="shared").load_state_dict(saved)


# ----------------------------------------------------------------------------
# where ReduceLROnPlateau works: isinstance checks, Lightning's call pattern
# ----------------------------------------------------------------------------

def test_loss_driven_schedules_are_reduce_on_plateau_instances():
    for spec in ("greedy", "plateau", ("warmup", {"inner": "greedy"})):
        s = ScheduleLR(_opt(), spec)
        assert isinstance(s, LossScheduleLR) and isinstance(s, ReduceLROnPlateau), spec
    s = ScheduleLR(_opt(), "cosine", total=5)
    assert type(s) is ScheduleLR and not isinstance(s, ReduceLROnPlateau)
    assert isinstance(s, LRScheduler)
    assert not isinstance(ScheduleLR(_opt(), "greedy", watch_loss=False), ReduceLROnPlateau)
    assert isinstance(ScheduleLR(_opt(), "cosine", total=5, watch_loss=True), ReduceLROnPlateau)


class _LightningLike:
    """Lightning 2.x's handling of an lr_scheduler_config, reduced to its call pattern
    (core/optimizer.py: _configure_schedulers_automatic_opt and _validate_scheduler_api;
    loops/training_epoch_loop.py: _update_learning_rates; LightningModule.lr_scheduler_step)."""

    def __init__(self, optim_conf):
        self.optimizer = optim_conf["optimizer"]
        config = dict(optim_conf["lr_scheduler"])
        config.setdefault("interval", "epoch")
        config.setdefault("frequency", 1)
        config["reduce_on_plateau"] = config.get(
            "reduce_on_plateau", isinstance(config["scheduler"], ReduceLROnPlateau))
        if config["reduce_on_plateau"] and config.get("monitor") is None:
            raise RuntimeError("The lr scheduler dict must include a monitor when a "
                               "`ReduceLROnPlateau` scheduler is used.")
        sched = config["scheduler"]
        if not (hasattr(sched, "state_dict") and hasattr(sched, "load_state_dict")):
            raise TypeError("invalid scheduler")
        if not isinstance(sched, (LRScheduler, ReduceLROnPlateau)):
            raise RuntimeError("doesn't follow PyTorch's LRScheduler API")
        if sched.optimizer is not self.optimizer:
            raise RuntimeError("scheduler attached to another optimizer")
        self.config = config
        self.callback_metrics = {}

    def update_learning_rates(self, interval, idx):
        c = self.config
        if c["interval"] != interval or (idx + 1) % c["frequency"]:
            return
        metric = None
        if c["reduce_on_plateau"]:
            metric = self.callback_metrics.get(c["monitor"])
            if metric is None:
                raise RuntimeError(f"ReduceLROnPlateau conditioned on metric {c['monitor']}")
        if metric is None:  # LightningModule.lr_scheduler_step
            c["scheduler"].step()
        else:
            c["scheduler"].step(metric)


def test_lightning_config_with_monitor():
    losses = _losses(30)
    opt = _opt((0.1,))
    sched = ScheduleLR(opt, ("greedy", {"patience": 1, "min_lr": 0.01}))
    trainer = _LightningLike({"optimizer": opt, "lr_scheduler": {
        "scheduler": sched, "monitor": "train_loss", "interval": "step"}})
    assert trainer.config["reduce_on_plateau"]
    ref = make_schedule(("greedy", {"lr": 0.1, "patience": 1, "min_lr": 0.01, "max_lr": None}))
    state = ref.update(ref.init(), StepInfo(0, 0, None, None, tick=0))
    for t, loss in enumerate(losses):
        opt.step()
        trainer.callback_metrics["train_loss"] = torch.tensor(loss)  # Lightning logs tensors
        trainer.update_learning_rates("step", t)
        state = ref.update(state, StepInfo(t + 1, t + 1, loss, None, tick=t + 1))
        assert opt.param_groups[0]["lr"] == pytest.approx(ref.lr(state), rel=TOL["exact"])
    assert sched.last_epoch == 30
    with pytest.raises(RuntimeError, match="monitor"):
        _LightningLike({"optimizer": opt, "lr_scheduler": {"scheduler": ScheduleLR(opt, "greedy")}})
    # a tick schedule: no monitor needed, step() without a metric
    opt = _opt((0.1,))
    cos = ScheduleLR(opt, "cosine", total=4)
    trainer = _LightningLike({"optimizer": opt, "lr_scheduler": {"scheduler": cos}})
    for epoch in range(4):
        opt.step()
        trainer.update_learning_rates("epoch", epoch)
    assert not trainer.config["reduce_on_plateau"] and cos.get_last_lr() == [0.0]


def test_import_nmf_sched_does_not_import_torch():
    code = ("import sys\nimport nmf_sched\nassert 'torch' not in sys.modules, 'torch imported'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
