"""The array library follows the data: numpy for numpy/scipy inputs, cupy for
cupy inputs. No global switch."""
import numpy as np
import scipy.sparse as sp

__all__ = ["namespace", "is_sparse", "is_cupy", "to_numpy"]


def is_cupy(x) -> bool:
    """True for a cupy array or cupyx sparse matrix (without importing cupy)."""
    mod = type(x).__module__
    return mod.startswith("cupy") or mod.startswith("cupyx")


def is_sparse(x) -> bool:
    """True for scipy.sparse (or cupyx.scipy.sparse) matrices and arrays."""
    if sp.issparse(x):
        return True
    return is_cupy(x) and type(x).__module__.startswith("cupyx.scipy.sparse")


def namespace(x):
    """The array module (numpy or cupy) that owns ``x``."""
    if is_cupy(x):
        import cupy

        return cupy
    return np


def to_numpy(x):
    """A numpy array from a numpy or cupy array (no copy for numpy)."""
    if is_cupy(x):
        return x.get()
    return np.asarray(x)
