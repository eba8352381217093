"""Naive references for every fast routine (loops and dense algebra, no tricks)."""
import numpy as np


def dense(V):
    return V.toarray() if hasattr(V, "toarray") else np.asarray(V)


def rows_matmul(V, rows, Ht):
    """V[rows] @ Ht with explicit loops over stored entries."""
    Vd = dense(V)
    out = np.zeros((len(rows), Ht.shape[1]))
    for r, i in enumerate(rows):
        for j in range(Vd.shape[1]):
            if Vd[i, j] != 0:
                out[r] += Vd[i, j] * Ht[j]
    return out


def rows_tmatmul(V, rows, WB):
    """V[rows].T @ WB with explicit loops."""
    Vd = dense(V)
    out = np.zeros((Vd.shape[1], WB.shape[1]))
    for r, i in enumerate(rows):
        for j in range(Vd.shape[1]):
            if Vd[i, j] != 0:
                out[j] += Vd[i, j] * WB[r]
    return out


def loss(V, W, H):
    """0.5 ||V - W H||_F^2 with the residual built explicitly."""
    R = dense(V) - W @ H
    return 0.5 * float(np.sum(R * R))


def pgd_full_batch(V, W, H, lr, epochs):
    """Full-batch projected gradient descent, W then H, plain (unpreconditioned) steps."""
    Vd = dense(V)
    W, H = W.copy(), H.copy()
    for _ in range(epochs):
        R = W @ H - Vd
        W = np.maximum(W - lr * (R @ H.T), 0.0)
        R = W @ H - Vd
        H = np.maximum(H - lr * (W.T @ R), 0.0)
    return W, H


def pgd_full_batch_gram(V, W, H, lr, epochs):
    """Full-batch preconditioned projected steps, W then H: the W step scaled by
    (HH^T)^-1, the H step by diag(W^T W)^-1 (the solver's "gram")."""
    Vd = dense(V)
    W, H = W.copy(), H.copy()
    for _ in range(epochs):
        R = W @ H - Vd
        W = np.maximum(W - lr * (R @ H.T) @ np.linalg.inv(H @ H.T), 0.0)
        R = W @ H - Vd
        H = np.maximum(H - lr * (W.T @ R) / np.diag(W.T @ W)[:, None], 0.0)
    return W, H


def lipschitz_bruteforce(A_fn, shape, rng, n_dirs=200):
    """max over random unit directions D of ||A_fn(D)||: a lower estimate of
    the Lipschitz constant of a linear gradient map."""
    best = 0.0
    for _ in range(n_dirs):
        D = rng.standard_normal(shape)
        D /= np.linalg.norm(D)
        best = max(best, float(np.linalg.norm(A_fn(D))))
    return best


def masked_sgd_epoch(rows, cols, vals, order, W, Ht, lr, lam, GW=None, GH=None):
    """Naive entry-wise projected SGD over the entries in ``order`` (masked NMF).

    Plain Python, float64. With ``GW``/``GH`` (arrays, start at 1) it applies
    LIBMF's per-row adaptive step ``lr / sqrt(G)``, then ``G += mean(g**2)``.
    Returns the new ``W``, ``Ht`` (and ``GW``, ``GH``) without touching the inputs.
    """
    W = np.array(W, dtype=np.float64)
    Ht = np.array(Ht, dtype=np.float64)
    adaptive = GW is not None
    if adaptive:
        GW, GH = np.array(GW, dtype=np.float64), np.array(GH, dtype=np.float64)
    for e in order:
        i, j = int(rows[e]), int(cols[e])
        w, h = W[i].copy(), Ht[j].copy()
        err = float(vals[e]) - float(w @ h)
        gw = lam * w - err * h
        gh = lam * h - err * w
        ew = lr / np.sqrt(GW[i]) if adaptive else lr
        eh = lr / np.sqrt(GH[j]) if adaptive else lr
        W[i] = np.maximum(w - ew * gw, 0.0)
        Ht[j] = np.maximum(h - eh * gh, 0.0)
        if adaptive:
            GW[i] += float(gw @ gw) / len(w)
            GH[j] += float(gh @ gh) / len(h)
    return (W, Ht, GW, GH) if adaptive else (W, Ht)


def block_order(blocks, ptr):
    """Entry order of a chunked visit: chunk ``b`` is ``ptr[b]:ptr[b+1]``, in the order ``blocks``."""
    return [e for b in blocks for e in range(ptr[b], ptr[b + 1])]


def masked_cd_rows(Vd, M, W, Ht, lr, lam):
    """Naive masked projected coordinate descent, one sweep per row of W (Ht fixed).

    ``Vd`` dense values, ``M`` bool mask of observed entries. Row i: G = sum over
    its observed j of h_j h_j^T + lam * n_i I, b = sum v_ij h_j, then for each
    coordinate c: w_c <- max(0, w_c - lr * (G w - b)_c / G_cc).
    """
    W = np.array(W, dtype=np.float64)
    for i in range(W.shape[0]):
        js = np.flatnonzero(M[i])
        if js.size == 0:
            continue
        Hj = Ht[js]
        G = Hj.T @ Hj + lam * js.size * np.eye(W.shape[1])
        b = Hj.T @ Vd[i, js]
        for c in range(W.shape[1]):
            g = G[c] @ W[i] - b[c]
            W[i, c] = max(0.0, W[i, c] - lr * g / G[c, c])
    return W


def cd_rows_naive(X, A, P, lr, scale, diag, noise=None, clip_update=None, max_value=None,
                  l1=0.0, l2=0.0):
    """Projected Gauss–Seidel coordinate steps on every row, the gradient recomputed from
    scratch for each coordinate (plain Python, float64): the definition the kernel must match.
    With penalties: ``x_c <- Pi(x_c - lr (s((xA)_c - p_c) + xi_c + l2 x_c + l1) / d_c)`` (the
    L1 soft-threshold, then the projection)."""
    X = np.array(X, dtype=np.float64)
    r, k = X.shape
    for i in range(r):
        for c in range(k):
            g = scale * (float(X[i] @ A[:, c]) - P[i, c])
            if noise is not None:
                g += noise[i, c]
            g += l2 * X[i, c] + l1
            delta = lr * g / diag[c]
            if clip_update is not None:
                delta = min(max(delta, -clip_update), clip_update)
            x = max(X[i, c] - delta, 0.0)
            if max_value is not None:
                x = min(x, max_value)
            X[i, c] = x
    return X
