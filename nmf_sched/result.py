"""What a fit returns: the factors, the per-epoch trace, why it stopped."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Trace", "FitResult", "STOP_REASONS"]

STOP_REASONS = ("max_epochs", "tol", "max_time", "callback", "diverged")


class Trace:
    """Per-epoch records of a run (row 0 is the initialization).

    Columns: ``epoch, step, lr_W, lr_H`` (the schedule's LR), ``step_W, step_H``
    (the mean step actually taken, after the ceiling), ``ceiling_W, ceiling_H``
    (the smallest stability ceiling met in the epoch), ``loss``
    (``0.5 ||V - WH||_F^2``), ``rel_error`` (``||V - WH||_F / ||V||_F``),
    ``seconds`` (wall time since the start) and ``retries`` (divergence-guard
    restarts so far).

    Indexing gives a row (dict); :meth:`column` gives a numpy array;
    :meth:`as_dict` gives ``{column: list}``, ready for JSON or a DataFrame.
    """

    def __init__(self, rows=None):
        self._rows: list[dict] = list(rows or [])

    def append(self, **row):
        self._rows.append({k: (float(v) if isinstance(v, (float, np.floating)) else v)
                           for k, v in row.items()})

    def __len__(self):
        return len(self._rows)

    def __getitem__(self, i):
        return self._rows[i]

    def __iter__(self):
        return iter(self._rows)

    @property
    def columns(self) -> list[str]:
        return list(self._rows[0]) if self._rows else []

    def column(self, name) -> np.ndarray:
        if self._rows and name not in self._rows[0]:
            raise KeyError(f"no trace column {name!r}; columns: {self.columns}")
        return np.array([r[name] for r in self._rows], dtype=float)

    def as_dict(self) -> dict[str, list]:
        return {c: [r[c] for r in self._rows] for c in self.columns}

    def to_json(self, path=None) -> str:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        text = json.dumps({c: [clean(v) for v in vals] for c, vals in self.as_dict().items()})
        if path is not None:
            with open(path, "w") as fh:
                fh.write(text)
        return text

    def __repr__(self):
        return f"Trace({len(self)} rows, columns={self.columns})"


@dataclass
class FitResult:
    """Result of :func:`nmf_sched.fit`.

    Attributes
    ----------
    W : ndarray (m, k)
    H : ndarray (k, n)
    trace : Trace
    stop_reason : str
        One of ``"max_epochs", "tol", "max_time", "callback", "diverged"``.
    schedule : the Schedule instance used
    schedule_state : dict
        The schedule's final (JSON-able) state.
    loss, rel_error : float
        Final ``0.5 ||V - WH||^2`` and ``||V - WH|| / ||V||``.
    n_epochs, n_steps : int
    seconds : float
    bound : BoundReport or None
        The stability report at the final factors (filled by ``fit``).
    settings : dict
        The resolved settings of the run.
    """

    W: np.ndarray
    H: np.ndarray
    trace: Trace
    stop_reason: str
    schedule: Any
    schedule_state: dict
    loss: float
    rel_error: float
    n_epochs: int
    n_steps: int
    seconds: float
    bound: Any = None
    settings: dict = field(default_factory=dict)

    def __repr__(self):
        return (f"FitResult(W={self.W.shape}, H={self.H.shape}, rel_error={self.rel_error:.6g}, "
                f"epochs={self.n_epochs}, stop_reason={self.stop_reason!r}, seconds={self.seconds:.3g})")
