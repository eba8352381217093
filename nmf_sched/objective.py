r"""Loss and gradients of :math:`f(W,H) = \tfrac12\|V - WH\|_F^2`, array-library agnostic.

Everything is in Gram form: no m x n residual is ever built.

.. math::

    \nabla_W f = W (H H^\top) - V H^\top, \qquad
    \nabla_H f = (W^\top W) H - W^\top V,

    2 f = \|V\|_F^2 - 2\langle W, V H^\top\rangle + \langle W^\top W, H H^\top\rangle.

The solver holds ``H`` transposed (``Ht``, n x k); the helpers below take
``Ht`` where they say so.
"""
import numpy as np

from . import data as _data
from .backend import is_sparse, namespace
from .data import row_chunks, sqnorm

__all__ = ["sqnorm", "vt_dot", "v_dot", "loss_from_products", "loss", "gradients"]

def vt_dot(V, W):
    """``V.T @ W`` (n x k) without densifying sparse ``V``; dense memmaps are
    streamed by row chunks so peak memory stays bounded."""
    if is_sparse(V):
        return np.asarray(V.T @ W)
    if isinstance(V, np.memmap) or V.nbytes > 4 * _data.CHUNK_BYTES:
        out = np.zeros((V.shape[1], W.shape[1]), dtype=W.dtype)
        for a, b, blk in row_chunks(V):
            out += np.asarray(blk).T @ W[a:b]
        return out
    return V.T @ W


def v_dot(V, Ht):
    """``V @ Ht`` (m x k), streaming dense memmaps by row chunks."""
    if is_sparse(V):
        return np.asarray(V @ Ht)
    if isinstance(V, np.memmap) or V.nbytes > 4 * _data.CHUNK_BYTES:
        out = np.empty((V.shape[0], Ht.shape[1]), dtype=Ht.dtype)
        for a, b, blk in row_chunks(V):
            out[a:b] = np.asarray(blk) @ Ht
        return out
    return V @ Ht


def loss_from_products(vsq, Ht, VtW, G, HHt=None) -> float:
    r"""Exact loss from products already at hand.

    Parameters
    ----------
    vsq : float
        ``||V||_F^2``.
    Ht : array (n, k)
        ``H`` transposed.
    VtW : array (n, k)
        ``V.T @ W``.
    G : array (k, k)
        ``W.T @ W``.
    HHt : array (k, k), optional
        ``H @ H.T`` (computed when omitted).

    Returns
    -------
    float
        :math:`\tfrac12(\|V\|^2 - 2\langle H^\top, V^\top W\rangle + \langle G, HH^\top\rangle)`,
        clipped at 0 (rounding can make the identity slightly negative).
    """
    xp = namespace(Ht)
    if HHt is None:
        HHt = Ht.T @ Ht
    cross = float(xp.vdot(Ht.ravel(), VtW.ravel()))
    quad = float(xp.vdot(G.ravel(), HHt.ravel()))
    val = 0.5 * (vsq - 2.0 * cross + quad)
    if val != val:  # NaN stays NaN: divergence detection needs it
        return val
    return max(val, 0.0)


def loss(V, W, H, vsq=None) -> float:
    """Exact loss ``0.5 ||V - W H||_F^2`` in Gram form (one pass over V)."""
    Ht = H.T
    if vsq is None:
        vsq = sqnorm(V)
    return loss_from_products(vsq, Ht, vt_dot(V, W), W.T @ W, H @ H.T)


def gradients(V, W, H):
    """Full gradients ``(grad_W, grad_H)`` in Gram form, shapes of W and H."""
    VHt = v_dot(V, np.ascontiguousarray(H.T)) if not is_sparse(V) else np.asarray(V @ H.T)
    WtV = vt_dot(V, W).T
    return W @ (H @ H.T) - VHt, (W.T @ W) @ H - WtV
