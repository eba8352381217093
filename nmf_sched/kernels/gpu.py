"""CuPy equivalent of :func:`nmf_sched.kernels.cpu.cd_rows` (loops only).

One CUDA thread per row: the k coordinates of a row are swept in order
(Gauss–Seidel, the gradient entry recomputed after each change), exactly as the
numba kernel does. The step size is read from a device scalar, so the solver
can compute ``min(lr, kappa * ceiling)`` on the device without a host sync.

CuPy is imported lazily: importing this module never needs a GPU.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["cd_rows", "CD_SOURCE"]

CD_SOURCE = r"""
extern "C" __global__ void cd_rows_{T}(
    {T}* __restrict__ X, const {T}* __restrict__ A, const {T}* __restrict__ P,
    const {T}* __restrict__ eta, const {T} scale, const {T}* __restrict__ diag,
    const {T}* __restrict__ noise, const int has_noise, const {T} clip_update,
    const {T} max_value, const {T} l1, const {T} l2, const long long r, const int k)
{{
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= r) return;
    const {T} lr = eta[0];
    {T}* x = X + i * k;
    const {T}* p = P + i * k;
    for (int c = 0; c < k; ++c) {{
        {T} g = 0;
        for (int d = 0; d < k; ++d) g += x[d] * A[d * k + c];
        g = scale * (g - p[c]);
        if (has_noise) g += noise[i * k + c];
        if (l1 != ({T})0 || l2 != ({T})0) g += l2 * x[c] + l1;   /* penalties: proximal step */
        {T} delta = lr * g / diag[c];
        if (delta > clip_update) delta = clip_update;
        else if (delta < -clip_update) delta = -clip_update;
        {T} v = x[c] - delta;
        if (v < ({T})0) v = 0;                 /* NaN passes through: divergence detection */
        else if (v > max_value) v = max_value;
        x[c] = v;
    }}
}}
"""

_KERNELS = {}
_THREADS = 128


def _kernel(dtype):
    import cupy

    name = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}[np.dtype(dtype)]
    if name not in _KERNELS:
        _KERNELS[name] = cupy.RawKernel(CD_SOURCE.format(T=name), f"cd_rows_{name}")
    return _KERNELS[name]


def cd_rows(X, A, P, eta, scale, diag, noise=None, clip_update=None, max_value=None, l1=0.0,
            l2=0.0):
    r"""Projected coordinate-wise steps on every row of ``X`` (r x k), in place, on the GPU.

    Same rule as :func:`nmf_sched.kernels.cpu.cd_rows`:
    :math:`x_c \leftarrow \Pi(x_c - \eta\,(s((xA)_c - p_c) + \ell_2 x_c + \ell_1 + \xi_c) / d_c)` for
    ``c = 0..k-1`` in turn. ``eta`` is a float or a 0-d device array (read on
    the device: no host sync). All arrays must share ``X``'s dtype
    (float32/float64); ``X`` and ``P`` must be C-contiguous (r x k).
    """
    import cupy

    dt = X.dtype
    if not X.flags.c_contiguous:
        raise ValueError("cd_rows: X must be C-contiguous")
    r, k = X.shape
    if r == 0:
        return X
    A = cupy.ascontiguousarray(A, dtype=dt)
    P = cupy.ascontiguousarray(P, dtype=dt)
    diag = cupy.ascontiguousarray(diag, dtype=dt)
    if isinstance(eta, cupy.ndarray):
        eta = eta.astype(dt, copy=False).reshape(1)
    else:
        eta = cupy.full((1,), eta, dtype=dt)  # a fill kernel, not a host->device copy
    has_noise = noise is not None
    noise = cupy.ascontiguousarray(noise, dtype=dt) if has_noise else cupy.zeros(1, dtype=dt)
    cu = math.inf if clip_update is None else float(clip_update)
    mv = math.inf if max_value is None else float(max_value)
    T = dt.type
    grid = ((r + _THREADS - 1) // _THREADS,)
    _kernel(dt)(grid, (_THREADS,), (X, A, P, eta, T(scale), diag, noise, np.int32(has_noise),
                                     T(cu), T(mv), T(l1), T(l2), np.int64(r), np.int32(k)))
    return X
