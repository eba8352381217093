"""The one place that holds the numba JIT options.

``fastmath`` keeps reassociation and contraction (vectorized reductions) but
never assumes finite values: divergence detection needs NaN and inf to survive.
``NUMBA_DISABLE_JIT=1`` turns every kernel into plain Python (the tests run a
subset that way to check the kernels against their naive references).
"""
from numba import njit

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
JIT_OPTIONS = dict(nogil=True, cache=True, fastmath=FASTMATH)


def jit(fn):
    """Compile ``fn`` with the project's JIT options."""
    return njit(**JIT_OPTIONS)(fn)



def jit_strict(fn):
    """Compile ``fn`` without fast-math: sums in the written order, so a dense row and the
    stored entries of its sparse copy give the same bits (the zeros add exactly nothing)."""
    return njit(nogil=True, cache=True)(fn)


def jit_parallel(fn):
    """:func:`jit` with ``parallel=True`` (for ``prange`` loops)."""
    return njit(parallel=True, **JIT_OPTIONS)(fn)
