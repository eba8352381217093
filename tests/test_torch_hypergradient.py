"""nmf_sched.torch.HypergradientOptimizer: the hypergradient it measures is Baydin's
<g_t, u_{t-1}>, the LR follows the Hypergradient schedule's rule, groups, checkpoints."""
from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")

from conftest import TOL  # noqa: E402
from nmf_sched.torch import HypergradientOptimizer  # noqa: E402


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(20, 5, generator=g, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    return A, b


def _loss(x, A, b):
    return 0.5 * torch.sum((A @ x - b) ** 2) / len(b)


def _grad(x, A, b):
    return A.T @ (A @ x - b) / len(b)


def _run(opt, x, A, b, n):
    lrs = []
    for _ in range(n):
        opt.zero_grad()
        _loss(x, A, b).backward()
        opt.step()
        lrs.append(opt.lrs())
    return lrs


@pytest.mark.parametrize("variant, beta", [("multiplicative", 0.1), ("additive", 0.05)])
def test_sgd_lr_follows_baydin_rule(variant, beta):
    """Plain SGD: u_{t-1} = g_{t-1}, so h_t = <g_t, g_{t-1}> (SGD-HD); hand-computed run."""
    A, b = _problem()
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = HypergradientOptimizer(torch.optim.SGD([x], lr=0.05), beta=beta, variant=variant)
    got = _run(opt, x, A, b, 8)
    xr, lr, g_prev, want = torch.zeros(5, dtype=torch.float64), 0.05, None, []
    for _ in range(8):
        g = _grad(xr, A, b)
        if g_prev is not None:
            h = float(g @ g_prev)
            if variant == "multiplicative":
                lr = lr * (1 + beta * h / math.sqrt(float(g @ g) * float(g_prev @ g_prev)))
            else:
                lr = lr + beta * h
        xr = xr - lr * g
        g_prev = g
        want.append(lr)
    assert [r[0] for r in got] == pytest.approx(want, rel=TOL["float64"])
    assert got[0] == [0.05] and got[-1][0] > 0.05  # consistent gradients: the LR grew
    assert torch.allclose(x.detach(), xr, rtol=TOL["float64"], atol=TOL["float64_abs"])


def test_adamw_uses_the_displacement():
    """With AdamW the direction is Adam's: h = <g_t, (theta_{t-2} - theta_{t-1}) / lr>."""
    A, b = _problem(1)
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_(True)
    opt = HypergradientOptimizer(torch.optim.AdamW([x], lr=0.01, weight_decay=0.01), beta=0.1)
    ref = torch.optim.AdamW([y], lr=0.01, weight_decay=0.01)
    lr, prev = 0.01, None
    for _ in range(6):
        opt.zero_grad()
        _loss(x, A, b).backward()
        opt.step()
        ref.zero_grad()
        _loss(y, A, b).backward()
        g = y.grad.detach().clone()
        if prev is not None:
            h = float(g @ prev)
            lr = lr * (1 + 0.1 * h / math.sqrt(float(g @ g) * float(prev @ prev)))
            ref.param_groups[0]["lr"] = lr
        before = y.detach().clone()
        ref.step()
        prev = (before - y.detach()) / lr
        assert opt.lrs()[0] == pytest.approx(lr, rel=TOL["float64"])
    assert lr != 0.01
    assert torch.allclose(x.detach(), y.detach(), rtol=TOL["float64"], atol=TOL["float64_abs"])


def test_shared_and_per_group():
    A, b = _problem(2)
    xs = [torch.zeros(5, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    mk = lambda: torch.optim.SGD([{"params": [xs[0]], "lr": 0.04}, {"params": [xs[1]], "lr": 0.01}])
    shared = HypergradientOptimizer(mk())
    assert shared.param_groups is shared.optimizer.param_groups
    for _ in range(5):
        shared.zero_grad()
        (_loss(xs[0], A, b) + _loss(xs[1], A, 2 * b)).backward()
        shared.step()
    lrs = shared.lrs()
    assert lrs[1] == pytest.approx(lrs[0] / 4, rel=TOL["exact"]) and lrs[0] != 0.04
    assert [g["lr"] for g in shared.param_groups] == lrs
    xs = [torch.zeros(5, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    each = HypergradientOptimizer(mk(), per_group=True)
    assert len(each.schedules) == 2
    for _ in range(5):
        each.zero_grad()
        (_loss(xs[0], A, b) + _loss(xs[1], A, 2 * b)).backward()
        each.step()
    r = each.lrs()
    assert r[1] != pytest.approx(r[0] / 4, rel=TOL["differs"])  # independent LRs: the ratio drifted


def test_bounds_and_bad_arguments():
    A, b = _problem()
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = HypergradientOptimizer(torch.optim.SGD([x], lr=0.05), beta=0.9, max_lr=0.06)
    assert max(r[0] for r in _run(opt, x, A, b, 10)) == 0.06
    with pytest.raises(TypeError, match="optimizer"):
        HypergradientOptimizer([x])
    with pytest.raises(TypeError, match="already"):
        HypergradientOptimizer(opt)
    with pytest.raises(ValueError, match="beta"):
        HypergradientOptimizer(torch.optim.SGD([x], lr=0.05), beta=-1.0)
    with pytest.raises(ValueError, match="variant"):
        HypergradientOptimizer(torch.optim.SGD([x], lr=0.05), variant="sum")
    with pytest.raises(TypeError, match="per_group"):
        HypergradientOptimizer(torch.optim.SGD([x], lr=0.05), per_group=1)


def test_state_dict_resume_is_exact():
    A, b = _problem(3)
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = HypergradientOptimizer(torch.optim.SGD([x], lr=0.05, momentum=0.9))
    full = _run(opt, x, A, b, 12)
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = HypergradientOptimizer(torch.optim.SGD([x], lr=0.05, momentum=0.9))
    _run(opt, x, A, b, 5)
    saved, xs = copy.deepcopy(opt.state_dict()), x.detach().clone()
    x2 = xs.clone().requires_grad_(True)
    opt2 = HypergradientOptimizer(torch.optim.SGD([x2], lr=0.05, momentum=0.9))
    opt2.load_state_dict(saved)
    assert opt2.lrs() == full[4]
    assert _run(opt2, x2, A, b, 7) == full[5:]
    with pytest.raises(ValueError, match="state_dict"):
        opt2.load_state_dict(saved["optimizer"])
