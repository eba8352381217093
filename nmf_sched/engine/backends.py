r"""Where the arrays live: the host (NumPy + Numba) or a device (CuPy).

A backend supplies what a row-minibatch model needs from the data: the batches' rows
(:meth:`gather`), the two batch products ``P = V_B H^T`` and ``Q = V_B^T W_B``, the squared
norm of a batch, the full product ``V^T W`` and the coordinate-sweep kernel. The model
(:mod:`nmf_sched.engine.rows`) writes its step once, in terms of the array module ``xp`` of
its backend.

* :class:`HostBackend`: numpy arrays, numpy memmaps and scipy CSR matrices; numba kernels
  for the row gather, the CSR batch products and the coordinate sweep; every scalar a host
  float, divergence checked after every step.
* :class:`DeviceBackend`: the loop takes the array module as an argument (CuPy on a GPU,
  ``numpy`` standing in for it in CI, which keeps the device code path tested on every run).
  Scalars stay 0-d device arrays between ticks: the step sizes, the ceilings and the
  accumulators never leave the device inside an epoch; the per-step divergence check is
  evaluated at the end of the epoch from a device accumulator (same outcome, detected later).
"""
from __future__ import annotations

import numpy as np

from ..backend import is_sparse
from ..kernels.cpu import cd_rows as cpu_cd_rows
from ..kernels.cpu import (csr_rows_matmul, csr_rows_sqnorm, csr_rows_tmatmul, dense_rows_sqnorm,
                           gather_rows)
from ..objective import sqnorm, vt_dot

__all__ = ["HostBackend", "DeviceBackend"]


class HostBackend:
    """NumPy + Numba (see the module docstring)."""

    name = "numpy"
    host = True
    xp = np

    def __init__(self):
        self.cd = cpu_cd_rows

    def prepare(self, V, batch_size, rng=None, noise_std=0.0):
        self.V = V
        self.m, self.n = V.shape
        self.sparse = is_sparse(V)
        self.full_batch = batch_size >= self.m
        self.b = min(batch_size, self.m)
        if self.sparse or type(V) is np.ndarray:
            # in memory: row norms once, so a batch's ||V_B||^2 is a gather of b numbers; the
            # dense and the sparse kernels sum each row in column order without fast-math, so
            # a matrix and its CSR copy give the same ||V||^2 to the bit (the losses the
            # schedules compare then differ only by the products' summation order)
            self.row_sq = csr_rows_sqnorm(V) if self.sparse else dense_rows_sqnorm(V)
            self.vsq = float(self.row_sq.sum())
        else:  # memmaps skip this: it would be one more pass over the file
            self.row_sq = None
            self.vsq = sqnorm(V)
        self.buf = None
        self.noise_std = float(noise_std)
        self.rng = rng

    # ------------------------------------------------------------------ batches
    def gather(self, idx):
        """V_B (dense) or the row index array (sparse)."""
        V = self.V
        if idx is None:
            return V
        if self.sparse:
            if isinstance(idx, slice):
                return np.arange(idx.start, idx.stop)
            return idx
        if isinstance(idx, slice):
            return np.asarray(V[idx])
        if self.buf is None or self.buf.shape[0] < idx.shape[0]:
            self.buf = np.empty((self.b, self.n), dtype=V.dtype)
        out = self.buf[: idx.shape[0]]
        if self.row_sq is not None:  # in-memory ndarray: the row-copy kernel
            return gather_rows(V, idx, out)
        np.take(V, idx, axis=0, out=out)
        return out

    def prod_P(self, VB, Ht):
        """``V_B H^T`` (b x k)."""
        if self.sparse:
            rows = VB if VB is not self.V else np.arange(self.m)
            return csr_rows_matmul(self.V, rows, Ht)
        return VB @ Ht

    def prod_Q(self, VB, WB):
        """``V_B^T W_B`` (n x k)."""
        if self.sparse:
            rows = VB if VB is not self.V else np.arange(self.m)
            return csr_rows_tmatmul(self.V, rows, WB)
        return VB.T @ WB

    def batch_vsq(self, VB, idx):
        if idx is None:
            return self.vsq
        if self.sparse:
            return float(self.row_sq[VB].sum())
        if self.row_sq is not None:
            return float(self.row_sq[idx].sum())
        return float(np.einsum("ij,ij->", VB, VB, dtype=np.float64))

    def full_Q(self, W):
        """``V^T W`` (n x k), streamed for memmaps, never densifying sparse V."""
        return vt_dot(self.V, W)

    # ------------------------------------------------------------------ scalars and noise
    def noise(self, shape, dtype, probing=False):
        """Gaussian gradient noise of the research model (None when off)."""
        if self.noise_std <= 0:
            return None
        if probing:  # a line-search probe draws no noise
            return np.zeros(shape, dtype=dtype)
        return self.rng.standard_normal(shape).astype(dtype) * dtype.type(self.noise_std)

    @staticmethod
    def fetch(*scalars):
        return [float(s) for s in scalars]

    @staticmethod
    def dot(a, b):
        """``<a, b>`` as a float64 scalar (a host float here)."""
        return float(np.vdot(a, b))

    @staticmethod
    def to_host(x):
        return x

    @staticmethod
    def asarray(x, dtype=None):
        return np.ascontiguousarray(x, dtype=dtype)

    def indices(self, idx):
        return idx


class DeviceBackend(HostBackend):
    """The array module ``xp`` (CuPy, or numpy standing in) and its coordinate kernel ``cd``."""

    host = False

    def __init__(self, xp, cd, name=None):
        self.xp = xp
        self.cd = cd
        self.name = name or ("cupy" if xp is not np else "numpy-as-device")

    def prepare(self, V, batch_size, rng=None, noise_std=0.0):
        xp = self.xp
        self.V = V
        self.m, self.n = V.shape
        self.sparse = is_sparse(V)
        self.full_batch = batch_size >= self.m
        self.b = min(batch_size, self.m)
        # squared row norms once (float64, row chunks): batch losses cost b numbers, not b x n
        self.row_sq = xp.empty(self.m, dtype=xp.float64)
        step = max(1, (32 * 2**20) // max(1, self.n * 8))
        for a in range(0, self.m, step):
            blk = V[a:a + step]
            if self.sparse:
                self.row_sq[a:a + step] = xp.asarray(blk.multiply(blk).sum(axis=1),
                                                     dtype=xp.float64).ravel()
            else:
                blk = blk.astype(xp.float64)
                self.row_sq[a:a + step] = xp.sum(blk * blk, axis=1)
        self.vsq = float(self.row_sq.sum())
        self.noise_std = float(noise_std)
        self.dev_rng = None
        if noise_std > 0:
            seed = int(rng.integers(0, 2**63 - 1))
            self.dev_rng = (xp.random.default_rng(seed) if xp is np
                            else xp.random.RandomState(seed % 2**32))

    def gather(self, idx):
        if idx is None:
            return self.V
        return self.V[idx]

    def prod_P(self, VB, Ht):
        return self.xp.ascontiguousarray(VB @ Ht)

    def prod_Q(self, VB, WB):
        return self.xp.ascontiguousarray(VB.T @ WB)

    def batch_vsq(self, VB, idx):
        return self.row_sq.sum() if idx is None else self.row_sq[idx].sum()

    def full_Q(self, W):
        return self.xp.asarray(self.V.T @ W)

    def noise(self, shape, dtype, probing=False):
        if self.dev_rng is None:
            return None
        if probing:
            return self.xp.zeros(shape, dtype=dtype)
        return (self.dev_rng.standard_normal(shape) * self.noise_std).astype(dtype)

    def dot(self, a, b):
        xp = self.xp
        return xp.vdot(a.ravel(), b.ravel()).astype(xp.float64)

    def fetch(self, *scalars):
        """One device->host transfer for several device scalars (the per-tick sync)."""
        xp = self.xp
        v = xp.stack([xp.asarray(s, dtype=xp.float64).reshape(()) for s in scalars])
        return [float(x) for x in (v.get() if hasattr(v, "get") else v)]

    @staticmethod
    def to_host(x):
        return x.get() if hasattr(x, "get") else np.asarray(x)

    def asarray(self, x, dtype=None):
        return self.xp.ascontiguousarray(self.xp.asarray(x, dtype=dtype))

    def indices(self, idx):
        """Batch indices are uploaded once per epoch."""
        if isinstance(idx, np.ndarray):
            return self.xp.asarray(idx)
        return idx
