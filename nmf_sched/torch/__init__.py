"""nmf-sched schedules driving PyTorch training (extra ``torch``).

``ScheduleLR(optimizer, schedule, **options)``
    Any nmf-sched schedule (a name, a ``(name, kwargs)`` pair, a float, a callable or an
    instance) as a ``torch.optim.lr_scheduler``: ``step(loss=None)``, ``get_last_lr()``,
    ``state_dict()`` / ``load_state_dict()`` (JSON-able), ``last_epoch``. Loss-driven
    schedules (GreedyLR, plateau, the RL policies) give a :class:`LossScheduleLR`, which is
    also a ``ReduceLROnPlateau`` so that Lightning (``{"scheduler": s, "monitor": ...}``)
    and Hugging Face's Trainer hand it the monitored metric.
``HypergradientOptimizer(optimizer, ...)``
    Hypergradient descent needs gradients, which a scheduler never sees: it wraps the
    optimizer instead.

Which schedules need what: tick count only (``step()``): constant, step, exp,
inverse_time, polynomial, linear, cosine, warmup, chain, callables; the loss
(``step(loss)``): greedy, plateau, :class:`nmf_sched.rl.dnn_policy.DNNPolicy`; gradients:
hypergradient (:class:`HypergradientOptimizer`); a stability ceiling (refused for DNNs):
``"bound"`` LRs, ``"auto"``, the NMF policy ``"rl"``; a loss probe (refused): ``"sls"``.

The Hugging Face ``min_lr`` trap
--------------------------------
Hugging Face's GreedyLR defaults to ``min_lr=1e-3``, above typical AdamW LRs (1e-5 to
5e-4): a "decrease" then yields ``max(lr * factor, min_lr) > lr``, which is rejected, so
the LR can only go up. ScheduleLR refuses a ``min_lr`` above the initial LR with a
ValueError; give it relative to the LR (the GreedyLR paper uses ``0.1 x`` the initial LR).

Importing this module imports torch; ``import nmf_sched`` never does.
"""
from .hypergradient import HypergradientOptimizer
from .scheduler import LossScheduleLR, ScheduleLR, build_schedule, check_dnn_schedule, watches_loss

__all__ = ["ScheduleLR", "LossScheduleLR", "HypergradientOptimizer", "build_schedule",
           "check_dnn_schedule", "watches_loss"]
