"""nmf-sched: stochastic-gradient NMF with provable learning-rate ceilings.

The schedule decides the learning rate; the theory decides the ceiling.
"""
from .api import fit, fit_masked
from .result import FitResult, Trace
from .schedules import StepInfo, available as available_schedules, make_schedule
from .sklearn_compat import non_negative_factorization

__version__ = "0.1.0"

__all__ = ["fit", "fit_masked", "FitResult", "Trace", "StepInfo", "make_schedule", "available_schedules",
           "SGDNMF", "non_negative_factorization", "__version__"]


def __getattr__(name):
    # the estimator imports scikit-learn lazily: core needs only numpy/scipy/numba
    if name == "SGDNMF":
        from .estimator import SGDNMF

        return SGDNMF
    raise AttributeError(f"module 'nmf_sched' has no attribute {name!r}")
