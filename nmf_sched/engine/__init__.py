"""The one engine under every path: the epoch loop and the parts that plug into it.

* :mod:`.loop` -- :class:`Engine`: ticks, StepInfo and extras, guard, stop rules, trace,
  progress, callback, checkpoint/resume.
* :mod:`.precond` -- preconditioners (``cd``, ``gram``, ``lipschitz``, ``none``).
* :mod:`.backends` -- where arrays live: NumPy + Numba, or a device array module (CuPy).
* :mod:`.rows`, :mod:`.entries`, :mod:`.shards` -- models: row minibatches, the observed
  entries of masked NMF, and row shards with periodic H reductions (Dask).
* :mod:`.solve`, :mod:`.dask` -- assembling a run for a placement of the data.
"""
from .control import Diverged, StepControl
from .loop import Engine

__all__ = ["Engine", "Diverged", "StepControl"]
