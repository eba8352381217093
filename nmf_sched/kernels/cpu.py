"""Numba loops for sparse minibatch products (CSR rows, never densified).

Only the loops live here; dense products stay in numpy/BLAS. The factor ``H``
is held transposed (``Ht``, shape n x k, C-order) so both kernels write
contiguous k-vectors.
"""
import numpy as np

from ._jit import jit

__all__ = ["csr_rows_matmul", "csr_rows_tmatmul", "csr_rows_sqnorm"]


@jit
def _rows_matmul(indptr, indices, data, rows, Ht, out):
    k = Ht.shape[1]
    for r in range(rows.shape[0]):
        i = rows[r]
        for c in range(k):
            out[r, c] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            j = indices[p]
            for c in range(k):
                out[r, c] += v * Ht[j, c]


@jit
def _rows_tmatmul(indptr, indices, data, rows, WB, out):
    k = WB.shape[1]
    out[:, :] = 0.0
    for r in range(rows.shape[0]):
        i = rows[r]
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            j = indices[p]
            for c in range(k):
                out[j, c] += v * WB[r, c]


@jit
def _rows_sqnorm(indptr, data, out):
    for i in range(indptr.shape[0] - 1):
        s = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            s += data[p] * data[p]
        out[i] = s


def csr_rows_matmul(V, rows, Ht, out=None):
    """``V[rows] @ Ht`` for CSR ``V`` (m x n), ``Ht`` (n x k): shape (b, k)."""
    if out is None:
        out = np.empty((rows.shape[0], Ht.shape[1]), dtype=Ht.dtype)
    _rows_matmul(V.indptr, V.indices, V.data, rows, Ht, out)
    return out


def csr_rows_tmatmul(V, rows, WB, out=None):
    """``V[rows].T @ WB`` for CSR ``V`` (m x n), ``WB`` (b x k): shape (n, k)."""
    if out is None:
        out = np.empty((V.shape[1], WB.shape[1]), dtype=WB.dtype)
    _rows_tmatmul(V.indptr, V.indices, V.data, rows, WB, out)
    return out


def csr_rows_sqnorm(V):
    """Squared norm of every row of CSR ``V`` (float64)."""
    out = np.empty(V.shape[0], dtype=np.float64)
    _rows_sqnorm(V.indptr, V.data, out)
    return out
