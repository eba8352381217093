r"""Hypergradient descent on the optimizer side: ``HypergradientOptimizer``.

An LR scheduler sees no gradients, so hypergradient descent (Baydin et al., ICLR 2018)
lives in a thin ``torch.optim.Optimizer`` wrapper instead. The LR rule is the one of
:class:`nmf_sched.schedules.hypergradient.Hypergradient` (``granularity="global"``): the
wrapper only measures the signals the NMF solver would report and hands them over as
``StepInfo.extras["grad_dot"]``.
"""
from __future__ import annotations

import copy
import math

import torch
from torch.optim import Optimizer

from ..schedules.base import StepInfo
from ..schedules.hypergradient import Hypergradient

__all__ = ["HypergradientOptimizer"]


class HypergradientOptimizer(Optimizer):
    r"""Wrap any torch optimizer; adapt its LR by hypergradient descent every step.

    At step :math:`t` (before the inner optimizer moves the parameters) the wrapper
    computes, over the parameters that have a gradient,

    .. math::

        h_t = \langle g_t, u_{t-1} \rangle, \qquad
        u_{t-1} = \frac{\theta_{t-2} - \theta_{t-1}}{\eta_{t-1}},

    the inner product of the new gradient with the last displacement per unit LR (for
    plain SGD :math:`u_{t-1} = g_{t-1}`: Baydin's SGD-HD; for Adam(W) the Adam direction:
    Adam-HD), and :math:`h_t = -\partial f(\theta_{t-1} - \eta u_{t-1})/\partial\eta`. The
    LR then follows :class:`~nmf_sched.schedules.hypergradient.Hypergradient`:

    * ``variant="multiplicative"`` (default, scale-free):
      :math:`\eta_t = \eta_{t-1}\,(1 + \beta\, h_t / (\|g_t\|\,\|u_{t-1}\|))`;
    * ``variant="additive"`` (Baydin's rule): :math:`\eta_t = \eta_{t-1} + \beta\, h_t`;

    clipped to ``[min_lr, max_lr]``. The first step has no displacement yet and keeps the
    initial LR.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer that takes the steps (SGD, AdamW, ...). Its param groups and state
        are shared, not copied: ``wrapper.param_groups is optimizer.param_groups``.
    beta : float > 0 or None
        Hyper-LR; None: 0.1 (multiplicative) or 1e-3 (additive, unit LR / loss: it
        depends on the scale of the loss and parameters).
    variant : {"multiplicative", "additive"}
    per_group : bool, default False
        False: one LR multiplier for all groups (the ratios of the groups' initial LRs
        are kept; :math:`h` sums over every parameter). True: one independent LR per
        group, each from its own :math:`h`.
    min_lr, max_lr : float or None
        Bounds on the LR (of group 0 when ``per_group=False``; the other groups keep
        their ratio). ``min_lr=None``: ``1e-4 x`` the initial LR; ``max_lr=None``: no cap.

    Attributes
    ----------
    optimizer : torch.optim.Optimizer
        The wrapped optimizer.
    schedules : list of Hypergradient
        One per group (``per_group=True``) or one.

    Notes
    -----
    Cost per step: one copy of the parameters (the displacement) and one inner product
    per parameter. ``state_dict()`` holds the inner optimizer's state, the schedules'
    JSON-able states and the last displacement, so a resumed run continues exactly.
    Do not combine it with an LR scheduler that also writes ``group["lr"]``.

    References
    ----------
    .. [1] A. G. Baydin, R. Cornish, D. Martinez Rubio, M. Schmidt, F. Wood, "Online
       learning rate adaptation with hypergradient descent", ICLR 2018.

    Examples
    --------
    >>> import torch
    >>> from nmf_sched.torch import HypergradientOptimizer
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = HypergradientOptimizer(torch.optim.SGD(model.parameters(), lr=0.1))
    >>> x, y = torch.ones(8, 3), torch.zeros(8, 1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     torch.nn.functional.mse_loss(model(x), y).backward()
    ...     _ = opt.step()
    >>> len(opt.lrs())
    1
    """

    def __init__(self, optimizer: Optimizer, *, beta=None, variant="multiplicative",
                 per_group=False, min_lr=None, max_lr=None):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if isinstance(optimizer, HypergradientOptimizer):
            raise TypeError("optimizer is already a HypergradientOptimizer")
        if not isinstance(per_group, bool):
            raise TypeError(f"per_group must be a bool, got {per_group!r}")
        self.optimizer = optimizer
        self.beta, self.variant, self.per_group = beta, variant, per_group
        self.min_lr, self.max_lr = min_lr, max_lr
        # Optimizer.__init__ sets the hooks; the groups are the inner optimizer's own dicts
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        bases = []
        for g, group in enumerate(self.param_groups):
            lr = float(group["lr"])
            if not math.isfinite(lr) or lr <= 0:
                raise ValueError(f"param_groups[{g}]['lr'] must be a finite float > 0, got {lr!r}")
            bases.append(lr)
        self.base_lrs = bases
        refs = bases if per_group else bases[:1]
        # the schedule validates beta, variant, min_lr and max_lr (errors name them)
        self.schedules = [Hypergradient(lr=b, beta=beta, variant=variant, granularity="global",
                                        min_lr=min_lr, max_lr=max_lr) for b in refs]
        info = StepInfo.at_tick(0)
        self._states = [s.update(s.init(), info) for s in self.schedules]
        self._tick = 0
        self._disp = None  # displacement per unit LR of the last step, one tensor per param
        self._set_lrs()

    # -- the LR ---------------------------------------------------------------------

    def lrs(self) -> list[float]:
        """The current LR of every param group."""
        if self.per_group:
            return [float(s.lr(st)) for s, st in zip(self.schedules, self._states)]
        lr = float(self.schedules[0].lr(self._states[0]))
        return [lr * (b / self.base_lrs[0]) for b in self.base_lrs]

    def _set_lrs(self):
        if len(self.param_groups) != len(self.base_lrs):
            raise ValueError(f"the optimizer has {len(self.param_groups)} param groups, the "
                             f"wrapper was built for {len(self.base_lrs)}; wrap it again after "
                             "add_param_group")
        for group, lr in zip(self.param_groups, self.lrs()):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def _signals(self):
        """Per schedule: (h, |g|^2, |u|^2) over the params with a gradient and a displacement."""
        out = []
        groups = [[g] for g in self.param_groups] if self.per_group else [self.param_groups]
        k = 0
        offsets = []
        for group in self.param_groups:
            offsets.append(k)
            k += len(group["params"])
        index = {id(g): o for g, o in zip(self.param_groups, offsets)}
        for gs in groups:
            h = g2 = u2 = 0.0
            for group in gs:
                for j, p in enumerate(group["params"]):
                    u = self._disp[index[id(group)] + j]
                    if p.grad is None or u is None:
                        continue
                    g = p.grad.detach()
                    h += float(torch.sum(g * u))
                    g2 += float(torch.sum(g * g))
                    u2 += float(torch.sum(u * u))
            out.append((h, g2, u2))
        return out

    @torch.no_grad()
    def step(self, closure=None):
        """Update the LR from the hypergradient, then take the inner optimizer's step.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (as for any torch optimizer); it
            runs before the hypergradient is measured, so the gradients are its own.

        Returns
        -------
        The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._disp is not None:
            self._tick += 1
            new = []
            for s, st, (h, g2, u2) in zip(self.schedules, self._states, self._signals()):
                gd = {"W": h, "H": 0.0, "W_g2": g2, "H_g2": 0.0, "W_u2": u2, "H_u2": 0.0}
                info = StepInfo.at_tick(self._tick, extras={"grad_dot": gd})
                new.append(s.update(st, info))
            self._states = new
            self._set_lrs()
        params = self._params()
        before = [p.detach().clone() for p in params]
        lrs = {id(p): float(group["lr"]) for group in self.param_groups for p in group["params"]}
        ref = None if self.per_group else float(self.param_groups[0]["lr"])
        self.optimizer.step()
        disp = []
        for p, b in zip(params, before):
            if p.grad is None:
                disp.append(None)
                continue
            # per unit of the LR the schedule controls: the group's own, or group 0's
            disp.append((b - p.detach()) / (lrs[id(p)] if ref is None else ref))
        self._disp = disp
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    # -- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"optimizer": inner state dict, "hypergradient": {...}}``; the ``hypergradient``
        part holds ``tick``, ``base_lrs``, ``schedule_states`` (JSON-able) and
        ``displacement`` (tensors or None)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "hypergradient": {
                "tick": self._tick, "per_group": self.per_group,
                "base_lrs": list(self.base_lrs),
                "schedule_states": copy.deepcopy(self._states),
                "displacement": None if self._disp is None else
                [None if u is None else u.clone() for u in self._disp],
            },
        }

    def load_state_dict(self, state_dict: dict) -> None:
        if not isinstance(state_dict, dict) or set(state_dict) != {"optimizer", "hypergradient"}:
            raise ValueError("state_dict must come from HypergradientOptimizer.state_dict() "
                             "(keys 'optimizer' and 'hypergradient')")
        hg = state_dict["hypergradient"]
        if hg["per_group"] != self.per_group or len(hg["schedule_states"]) != len(self._states):
            raise ValueError(f"state_dict was saved with per_group={hg['per_group']!r} and "
                             f"{len(hg['schedule_states'])} schedule states; this wrapper has "
                             f"per_group={self.per_group!r} and {len(self._states)}")
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self.param_groups = self.optimizer.param_groups  # torch rebuilds the group list
        self.state = self.optimizer.state
        self._tick = int(hg["tick"])
        self.base_lrs = [float(b) for b in hg["base_lrs"]]
        self._states = copy.deepcopy(hg["schedule_states"])
        disp = hg["displacement"]
        self._disp = None if disp is None else [None if u is None else u.clone() for u in disp]
        self._set_lrs()

    def __repr__(self):
        return (f"HypergradientOptimizer({type(self.optimizer).__name__}, beta={self.beta!r}, "
                f"variant={self.variant!r}, per_group={self.per_group!r})")

