"""The step-size control the guard owns, and the exceptions the engine catches.

``eta = damp * min(lr, cap * kappa * ceiling)`` per block: ``cap`` is 1 with ``clip_lr``
(infinite without, until the first divergence turns it on) and ``damp`` starts at 1 and is
multiplied by ``guard_shrink`` after each divergence.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Diverged", "ShardLost", "StepControl", "split_lr", "mean_lr"]


class Diverged(Exception):
    """A non-finite or exploding loss: the guard restores the epoch's snapshot."""


class ShardLost(Exception):
    """A worker holding part of the data was lost (Dask): the engine recovers or stops."""


class StepControl:
    """``eta = damp * min(lr, cap * kappa * ceiling)``; the guard moves ``cap`` and ``damp``."""

    def __init__(self, kappa: float, clip_lr: bool):
        self.kappa = float(kappa)
        self.cap = 1.0 if clip_lr else math.inf
        self.damp = 1.0

    def state(self) -> dict:
        return {"cap": self.cap, "damp": self.damp}

    def load(self, state: dict):
        self.cap, self.damp = float(state["cap"]), float(state["damp"])

    def eta(self, lr, ceiling, xp=np, dtype=None):
        """The step size for one block.

        ``lr``: a float or an array of per-entry LRs; ``ceiling``: a host float, or a 0-d
        device array (then the result stays on the device: no host sync).
        """
        if isinstance(ceiling, (float, int)) or xp is np:
            if math.isfinite(self.cap) and math.isfinite(float(ceiling)):
                cap = self.cap * self.kappa * float(ceiling)
                lr = np.minimum(lr, cap) if isinstance(lr, np.ndarray) else min(lr, cap)
            if isinstance(lr, np.ndarray):
                return (lr * self.damp).astype(dtype or lr.dtype)
            return lr * self.damp
        if math.isfinite(self.cap):
            return xp.minimum(ceiling * (self.cap * self.kappa), lr) * self.damp
        return xp.full((), lr * self.damp, dtype=xp.float64) if not hasattr(lr, "shape") \
            else lr * self.damp


def split_lr(lr, xp=np):
    """Schedule output -> ``(lr_W, lr_H)``: floats, or arrays shaped like ``W`` (m, k) and
    ``H^T`` (n, k) for per-entry LRs (a schedule returns the H ones shaped like H)."""
    if isinstance(lr, dict):
        try:
            lw, lh = lr["W"], lr["H"]
        except KeyError as exc:
            raise ValueError(f"a per-block lr must have keys 'W' and 'H', got {sorted(lr)}") from exc
    else:
        lw = lh = lr
    out = []
    for name, v in (("W", lw), ("H", lh)):
        if isinstance(v, np.ndarray) and v.ndim == 2:
            if name == "H":
                v = v.T  # per-entry LRs for H come shaped like H (k x n)
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise ValueError(f"schedule returned a non-finite or negative per-entry lr for {name}")
            out.append(v if xp is np else xp.asarray(v))
        else:
            v = float(v)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"schedule returned lr={v!r} for block {name}; it must be finite and >= 0")
            out.append(v)
    return out


def mean_lr(x) -> float:
    if hasattr(x, "shape") and getattr(x, "ndim", 0) > 0:
        return float(x.mean())
    return float(x)
