"""The full sweep's extra experiments (bounds/verify.py, full run only): the THEORY-NOTES case,
the linearized epoch maps (single machine and sharded) and the Gram-step variants.

    python bounds/verify.py            # runs these after the sweep, into the JSON's "extras"
"""
from __future__ import annotations

import math

import numpy as np

from nmf_sched import bounds
from verify import EXPLODE, exact_loss, initial_factors, run_one


def notes_case():
    """The THEORY-NOTES run: 2000 x 1000, k = 20, b = 200, W then H at scale/L per block."""
    from nmf_sched import datasets

    V = datasets.planted(2000, 1000, 20, noise=0.1, seed=0).V
    W0, H0 = initial_factors(V, 20, {"init": "rescaled"}, 1)
    loss0 = exact_loss(V, W0, H0)
    b = 200
    pre_rep = bounds.report(V, 20, W=W0, H=H0, batch_size=b, n_batches_sample=200)
    rows = []
    for scale_over_L in (1.0, 1.05, 1.1, 1.15, 1.2, 1.5):
        mu = scale_over_L / 2.0  # eta = scale/L = mu * 2/L
        log = []
        spec = {"b": b, "mode": "block"}
        r = run_one(V, 20, W0, H0, spec, mu, 0, loss0, None, 30, log=log)
        first = log[:10]
        rows.append({"eta_times_L": scale_over_L, "mu": mu, "diverged": r["diverged"],
                     "stop_reason": r["stop_reason"], "epochs_run": r["epochs_run"],
                     "final_rel": r["final_rel"], "min_rel": r["min_rel"],
                     "batch_excess_first_epoch_max": max(first) if first else None,
                     "batch_excess_max": max(log) if log else None})
    return {
        "problem": "planted uniform 2000 x 1000, k = 20, noise 0.1, b = 200 (M = 10 batches)",
        "predicted_edge_eta_times_L": 2 * bounds.minibatch_factor(10.0),
        "batch_excess_at_init": {"mean": pre_rep.L_H_batch_mean / pre_rep.L_H,
                                 "max_of_200": pre_rep.batch_excess,
                                 "bound_all_batches": pre_rep.L_H_batch_bound / pre_rep.L_H},
        "runs": rows,
    }


def _rank_one_rho(M, mu_W, mu_H):
    c_W, c_H = 1 - 2 * mu_W, 1 - 2 * mu_H
    P = np.eye(M)
    for B in range(M):
        A = np.eye(M)
        A[:, B] = -2 * mu_H * c_W
        A[B, B] = c_H * c_W
        P = A @ P
    return float(np.max(np.abs(np.linalg.eigvals(P))))


def _epoch_jacobian_rho(m, n, k, M, mu, seed=0, dist="uniform", p=1):
    """Spectral radius (excluding the k^2 neutral modes) of the linearized epoch map
    at an exact planted factorization, sequential W_B then H steps at mu x 2/L.

    ``p > 1``: the sharded scheme of THEORY.md §10 (``p`` contiguous row shards of ``M``
    batches each, the other shards' exact terms frozen at the start of the epoch in the H
    step, whose ceiling is ``2 / lambda_max(s W_B^T W_B + G_-i)``, and the mean of the H
    copies at the end of the epoch); ``p = 1`` is the single-machine scheme."""
    r = np.random.default_rng(seed)
    draw = r.random if dist == "uniform" else (lambda s: r.exponential(size=s))
    W = draw((m, k)) + 0.1
    H = draw((k, n)) + 0.1
    d = np.sqrt(np.linalg.norm(H, axis=1) / np.linalg.norm(W, axis=0))
    W, H = W * d, H / d[:, None]
    V = W @ H
    mi = m // p
    b = mi // M
    s = mi / b
    shards = [slice(i * mi, (i + 1) * mi) for i in range(p)]
    etaW = mu * 2 / bounds.lmax(H @ H.T)

    def batch(i, j):
        return slice(i * mi + j * b, i * mi + (j + 1) * b)

    def rest(parts, i, shape):  # the other shards' sum
        return sum((x for q, x in enumerate(parts) if q != i), np.zeros(shape))

    if p == 1:
        etaH = [[mu * 2 / (s * bounds.lmax(W[batch(0, j)].T @ W[batch(0, j)])) for j in range(M)]]
    else:
        G0 = [W[S].T @ W[S] for S in shards]
        etaH = [[mu * 2 / bounds.lmax(s * W[batch(i, j)].T @ W[batch(i, j)]
                                      + rest(G0, i, (k, k))) for j in range(M)] for i in range(p)]

    def F(x):
        Wx = x[:W.size].reshape(W.shape).copy()
        Hx = x[W.size:].reshape(H.shape).copy()
        if p > 1:
            G = [Wx[S].T @ Wx[S] for S in shards]
            A = [Wx[S].T @ V[S] for S in shards]
        Hsum = np.zeros_like(Hx)
        for i in range(p):
            Hi = Hx.copy()
            for j in range(M):
                B = batch(i, j)
                Wx[B] = Wx[B] - etaW * (Wx[B] @ Hi @ Hi.T - V[B] @ Hi.T)
                g = s * (Wx[B].T @ Wx[B] @ Hi - Wx[B].T @ V[B])
                if p > 1:
                    g += rest(G, i, (k, k)) @ Hi - rest(A, i, (k, Hi.shape[1]))
                Hi = Hi - etaH[i][j] * g
            Hsum += Hi
        Hx = Hsum if p == 1 else Hsum / p
        return np.concatenate([Wx.ravel(), Hx.ravel()])

    x0 = np.concatenate([W.ravel(), H.ravel()])
    N = x0.size
    J = np.empty((N, N))
    h = 1e-6
    for i in range(N):
        e = np.zeros(N)
        e[i] = h
        J[:, i] = (F(x0 + e) - F(x0 - e)) / (2 * h)
    ev = np.linalg.eigvals(J)
    rest = np.abs(ev[np.abs(ev - 1) >= 1e-5])  # drop the neutral modes (at +1), keep -1
    return float(rest.max()) if rest.size else 0.0


def _shard_rank_one_epoch(X, p, M, mu_W, mu_H):
    """One epoch of the sharded scheme in the rank-one model (THEORY.md §10.3), for a stack
    of states ``X`` (r x (pM + 1)): ``alpha`` of the ``pM`` equal batches (shard-major) and
    ``beta``; ``W_B = alpha_B u_B``, ``H = beta v``, ``V = u v^T``, ``||u|| = ||v|| = 1``.
    Steps at the fractions ``mu`` of each step's own ceiling (W: ``2/beta_i^2``; H:
    ``2/A``, ``A = s alpha_B^2 ||u_B||^2 + stale``), the projection inactive."""
    r = X.shape[0]
    a = X[:, :-1].reshape(r, p, M).copy()
    beta = X[:, -1]
    u2 = 1.0 / (p * M)  # ||u_B||^2
    s = float(M)        # m_i / b_i
    lin = u2 * a.sum(axis=2)          # per shard: sum_C alpha_C ||u_C||^2 (V_i^T W_i)
    quad = u2 * (a ** 2).sum(axis=2)  # per shard: W_i^T W_i
    Hmean = np.zeros(r)
    for i in range(p):
        gl = lin.sum(axis=1) - lin[:, i]   # the stale terms of the other shards
        gq = quad.sum(axis=1) - quad[:, i]
        bi = beta.copy()
        for B in range(M):
            a[:, i, B] = (1 - 2 * mu_W) * a[:, i, B] + 2 * mu_W / bi
            aB = a[:, i, B]
            A = s * u2 * aB ** 2 + gq
            bi = bi - 2 * mu_H / A * (s * u2 * aB * (aB * bi - 1) + gq * bi - gl)
        Hmean += bi / p
    return np.concatenate([a.reshape(r, -1), Hmean[:, None]], axis=1)


def _shard_rank_one_rho(p, M, mu_W, mu_H):
    """Spectral radius of the linearized epoch map at the fixed point ``alpha = beta = 1``,
    without the one neutral mode of the scale symmetry (central differences)."""
    N = p * M + 1
    h = 1e-6
    E = h * np.eye(N)
    x0 = np.ones(N)
    J = (_shard_rank_one_epoch(x0 + E, p, M, mu_W, mu_H)
         - _shard_rank_one_epoch(x0 - E, p, M, mu_W, mu_H)).T / (2 * h)
    ev = np.linalg.eigvals(J)
    ev = np.delete(ev, np.argmin(np.abs(ev - 1)))
    return float(np.max(np.abs(ev))) if ev.size else 0.0


def _shard_rank_one_edge(p, M, lo=0.45, hi=1.2, step=0.01, tol=1e-9):
    """Smallest ``mu = mu_W = mu_H`` with spectral radius > 1 (scan, then bisection);
    ``lo`` when already unstable there, None when stable up to ``hi``."""
    def bad(mu):
        return _shard_rank_one_rho(p, M, mu, mu) > 1 + tol

    if bad(lo):
        return lo
    prev = lo
    for mu in np.arange(lo + step, hi + step / 2, step):
        if bad(mu):
            a, b = prev, float(mu)
            for _ in range(16):
                c = 0.5 * (a + b)
                a, b = (a, c) if bad(c) else (c, b)
            return b
        prev = float(mu)
    return None


def full_batch_shard_edge(p):
    """The rank-one edge of equal fractions for one full-batch step per shard (§10.3):
    ``1`` for ``p <= 2``, else ``p (1 - sqrt(1 - 2/p)) / 2``."""
    return 1.0 if p <= 2 else p * (1 - math.sqrt(1 - 2 / p)) / 2


def sharded_linearization():
    """The edge of the sharded scheme: rank-one model and general k (THEORY.md §10.3)."""
    model = []
    for p in (1, 2, 3, 4, 8):
        for M in (1, 2, 3, 5, 10, 20):
            model.append({"p": p, "M": M, "edge_numeric": _shard_rank_one_edge(p, M),
                          "factor": (M + 1) / (2 * M),
                          "edge_closed_form": full_batch_shard_edge(p) if M == 1 else None,
                          "rho_at_half": _shard_rank_one_rho(p, M, 0.5, 0.5)})
    edges = {(r["p"], r["M"]): r["edge_numeric"] for r in model}
    general = []
    for dist, k in (("uniform", 3), ("exponential", 4)):
        for p in (2, 4):
            for M in (1, 3, 5):
                e = edges[(p, M)]
                row = {"dist": dist, "k": k, "p": p, "M": M, "factor": (M + 1) / (2 * M),
                       "edge_rank_one": e}
                for key, mu in (("rho_half", 0.5), ("rho_factor", (M + 1) / (2 * M)),
                                ("rho_edge_below", e - 0.02), ("rho_edge_above", e + 0.02)):
                    row[key] = _epoch_jacobian_rho(60, 40, k, M, mu, dist=dist, seed=1, p=p)
                general.append(row)
    return {"rank_one_model": model, "general_k": general}


def _gram_scheme(V, k, mult, variant, b, epochs=25, seed=0):
    """The solver's Gram-preconditioned sequential scheme in numpy, with three H steps:
    "gram" (G^-1 g, then the Euclidean projection: what the solver does), "diag"
    (diag(G)^-1 g, THEORY.md §7 safe fallback) and "pnewton" (G restricted to the free
    variables per column, Bertsekas 1982). Steps at mult x the §2.2 ceiling of each variant."""
    m, n = V.shape
    W, H = initial_factors(V, k, {"init": "rescaled"}, seed)
    f0 = exact_loss(V, W, H)
    rng = np.random.default_rng(seed)
    rho = bounds.minibatch_factor(m / b)

    def inv_parts(P):
        d, U = np.linalg.eigh(P)
        d = np.maximum(d, 1e-12 * max(d[-1], 1e-300))
        return (U / d) @ U.T, (U / np.sqrt(d)) @ U.T, d[-1]

    for ep in range(epochs):
        perm = rng.permutation(m)
        for a in range(0, m, b):
            B = np.sort(perm[a:a + b])
            sc = m / B.size
            Pinv, _, _ = inv_parts(H @ H.T)
            W[B] = np.maximum(W[B] - mult * rho * 2.0 * (W[B] @ (H @ H.T) - V[B] @ H.T) @ Pinv, 0)
            G, GB = W.T @ W, W[B].T @ W[B]
            gH = sc * (GB @ H - W[B].T @ V[B])
            if variant == "diag":
                Dg = np.maximum(np.diag(G), 1e-12 * max(np.diag(G).max(), 1e-300))
                c = rho * 2.0 / (sc * bounds.gen_lmax(GB, np.diag(1 / np.sqrt(Dg))))
                D = gH / Dg[:, None]
            else:
                Ginv, Gis, top = inv_parts(G)
                c = rho * 2.0 / (sc * bounds.gen_lmax(GB, Gis))
                if variant == "gram":
                    D = Ginv @ gH
                else:
                    free = (H > 0) | (gH < 0)
                    D = np.zeros_like(H)
                    for j in range(n):
                        F = free[:, j]
                        if F.any():
                            D[F, j] = np.linalg.solve(G[np.ix_(F, F)] + 1e-12 * top * np.eye(F.sum()),
                                                      gH[F, j])
            H = np.maximum(H - mult * c * D, 0)
        fl = exact_loss(V, W, H)
        if not math.isfinite(fl) or fl > EXPLODE * f0:
            return {"diverged": True, "epoch": ep + 1, "final_rel": None}
    return {"diverged": fl > 10 * f0, "epoch": epochs, "final_rel": fl / f0}


def gram_variants():
    from nmf_sched import datasets

    rows = []
    probs = (("digits k=10", datasets.digits(), 10),
             ("planted 500x300 k=8", datasets.planted(500, 300, 8, noise=0.05, seed=5).V, 8))
    with np.errstate(all="ignore"):
        for name, V, k in probs:
            for frac in (0.05, 0.2):
                b = max(1, int(round(frac * V.shape[0])))
                for variant in ("gram", "diag", "pnewton"):
                    for mult in (0.5, 0.841, 1.0, 1.41):
                        r = _gram_scheme(V, k, mult, variant, b)
                        rows.append(dict(problem=name, batch_frac=frac, variant=variant, mult=mult, **r))
    return rows


def linearization():
    """The minibatch coupling edge mu* = (M+1)/(2M): rank-one model and general k."""
    model = []
    mus = np.linspace(0.3, 1.05, 1501)
    for M in (1, 2, 3, 5, 10, 20, 50, 100):
        rho = np.array([_rank_one_rho(M, u, u) for u in mus])
        bad = mus[rho > 1 + 1e-9]
        model.append({"M": M, "edge_numeric": float(bad[0]) if bad.size else None,
                      "edge_formula": (M + 1) / (2 * M)})
    general = []
    for dist, k in (("uniform", 3), ("exponential", 4)):
        for M in (1, 2, 5, 10):
            pred = (M + 1) / (2 * M)
            lo = _epoch_jacobian_rho(60, 40, k, M, pred - 0.02, dist=dist, seed=1)
            hi = _epoch_jacobian_rho(60, 40, k, M, pred + 0.02, dist=dist, seed=1)
            general.append({"dist": dist, "k": k, "M": M, "mu_pred": pred,
                            "rho_below": lo, "rho_above": hi})
    asym = []
    for M, mu_W, mu_H in ((10, 0.5, 0.95), (10, 0.55, 0.5), (10, 0.6, 0.5), (10, 0.6, 0.25),
                          (10, 0.7, 0.15), (10, 0.7, 0.2), (2, 0.9, 0.5), (2, 0.9, 0.6)):
        asym.append({"M": M, "mu_W": mu_W, "mu_H": mu_H,
                     "predicted_stable": bounds.coupling_stable(mu_W, mu_H, M),
                     "rho_rank_one": _rank_one_rho(M, mu_W, mu_H)})
    return {"rank_one_model": model, "general_k": general, "asymmetric": asym}
