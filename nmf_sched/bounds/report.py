"""The bound report: every ceiling of a matrix at an initialization (or given factors),
with the quantities and assumptions behind it (:func:`report`, :class:`BoundReport`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .ceilings import (CEILING_RULES, REPORT_UNITS, clip_ceilings, gen_lmax, gram_safe_ceiling,
                       joint_ceiling, joint_fraction, lmax, minibatch_factor, noise_floor)
from .curvature import batch_curvatures, entry_curvatures
from .noise import block_noise_ceiling

__all__ = ["BoundReport", "report", "ASSUMPTIONS"]


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
ASSUMPTIONS = {
    "block": "Per-block ceilings: f is a convex quadratic in each block with the other fixed; "
             "the ceiling 2/L guarantees the block loss does not increase and the step map is "
             "non-expansive (projection onto the orthant or the box [0, c] included).",
    "local": "The ceilings are local: they hold at the factors they are computed from. The "
             "solver recomputes them at every step; a constant LR fixed at the init can exceed a "
             "later ceiling when the factors grow.",
    "sequential": "Sequential updates (W_B, then H with the new W_B), as in the solver: the scheme "
                  "is stable up to (1 + b/m)/2 of the per-block ceilings (proved in the rank-one "
                  "model, verified numerically in general; a conjecture for general k). The joint "
                  "ceiling applies only to simultaneous updates.",
    "batch": "Row batches drawn without replacement; the H gradient is scaled by m/b (unbiased). "
             "ceiling_H_batch is the worst case over the sampled batches (empirical); "
             "ceiling_H_batch_bound holds for every batch of that size.",
    "noise": "Additive noise iid N(0, noise_std^2) per gradient entry, independent of the state, "
             "plus the exact sampling variance of the row batch for H; the noise-aware ceilings "
             "guarantee, per block and per step, an expected descent of at least half the "
             "noise-free one, for projected steps: they use the gradient mapping "
             "(x - Pi(x - eta g))/eta, not the gradient, and the projection's first-order bias "
             "(at an active constraint the projection can raise E f: f = (x+1)^2/2 on x >= 0, "
             "sigma = 1, eta = 1/2 raises E f from 0.5 to 0.551; §3.2). The predicted floor is "
             "the stationary excess loss of a quadratic block at the enforced ceilings (§3.3).",
    "joint": "Joint ceiling: local Hessian bound L_W + L_H + ||V - WH||_F (Frobenius norm as an "
             "upper bound of the spectral norm).",
    "clip": "Global ceilings need every entry of W and H in [0, c] (fit(max_value=c)) and "
            "||V||_2 <= ||V||_F.",
    "gram": "Gram ceilings are dimensionless. The ceiling 2/lambda_max(G^-1 s G_B) holds for the "
            "unconstrained step; with the orthant projection only the contraction ceiling "
            "2/(1+delta) (ceiling_H_gram_safe) is proven; for W it is exactly 2.",
}


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def _inv2(L):
    return 2.0 / L if L > 0 else math.inf


@dataclass(frozen=True)
class BoundReport:
    """Stability ceilings of projected SGD on NMF at given factors.

    Absolute ceilings (``ceiling_*`` without ``_gram``/``_lipschitz``) are in
    the unit of ``precondition="none"``. ``ceiling`` and ``lr0`` are in the
    LR unit of the report's ``precondition`` (what ``StepInfo.ceiling`` means).

    Attributes (ceilings)
    ---------------------
    ceiling_W : ``2/L_W``, every row batch (the W-row step is exact per row).
    ceiling_H : ``2/L_H``, full batch.
    ceiling_H_batch : worst over the sampled batches of ``2/(s lambda_max(W_B^T W_B))``.
    ceiling_H_batch_mean : ``2 / mean_B(s lambda_max(W_B^T W_B))`` (a typical batch).
    ceiling_H_batch_bound : valid for every batch of that size (worst case).
    minibatch_factor : ``(1 + b/m)/2``, the fraction of the per-block ceilings
        that sequential W_B-then-H minibatch steps allow (§2.2).
    ceiling_W_seq, ceiling_H_seq : ``minibatch_factor * (ceiling_W, ceiling_H_batch)``,
        the ceilings of the solver's scheme as a whole.
    ceiling_W_noise, ceiling_H_noise : the noise-aware ceilings of projected steps (§3.2,
        :func:`nmf_sched.bounds.noise.block_noise_ceiling`): the gradient mapping, the
        projection bias, and at least half the noise-free expected descent; the solver
        enforces ``min(ceiling_*_seq, ceiling_*_noise)`` (in its preconditioner's metric).
    ceiling_joint : one common LR for simultaneous (W, H) steps (§4).
    joint_fraction : fraction of the per-block ceilings allowed for simultaneous steps.
    ceiling_global_W, ceiling_global_H, ceiling_global_joint : under entry clipping [0, clip].
    ceiling_W_gram, ceiling_H_gram, ceiling_H_gram_safe : Gram-preconditioned (dimensionless).
    ceiling_W_lipschitz, ceiling_H_lipschitz : Lipschitz-preconditioned (dimensionless).
    ceiling_W_diag, ceiling_H_diag : diagonal (Jacobi) scaling ``diag(HH^T)``, ``diag(W^T W)``
        (dimensionless, per block, worst sampled batch): the projection-safe fallback of §7.
    ceiling_W_cd, ceiling_H_cd : the solver's coordinate-wise steps ``lr / A_cc`` in
        Gauss-Seidel order (§7.1): 2 and ``2 min_c G_cc / (s (W_B^T W_B)_cc)``, per block.
    noise_floor : predicted stationary excess loss (§3.3) with steps at ``kappa`` times the
        enforced ceilings (``min(ceiling_*_seq, ceiling_*_noise)``), from the additive noise
        and the minibatch sampling noise.
    noise_fraction : ``min(1, ceiling_W_noise / ceiling_W_seq, ceiling_H_noise /
        ceiling_H_seq)`` (plain unit): how far the noise-aware ceiling lowers the binding one.
    ceiling_noise : ``noise_fraction * ceiling``, the noise-aware binding ceiling in the LR
        unit (exact for ``"none"``; for the other preconditioners the plain-unit fraction
        carried over, the solver computes it in their metric).
    ceiling : the binding ceiling of the sequential minibatch scheme in the LR unit of
        ``precondition`` (min over blocks, worst sampled batch, times ``minibatch_factor``).
    lr0 : ``kappa * ceiling``, the initial-LR rule (§6).
    """

    # setting
    shape: tuple
    rank: int
    sparse: bool
    nnz: int
    dtype: str
    init: str
    warmup_epochs: int
    batch_size: int
    n_batches: int
    scale: float
    noise_std: float
    clip: float | None
    precondition: str
    kappa: float
    # quantities
    L_W: float
    L_H: float
    L_H_batch_mean: float
    L_H_batch_max: float
    L_H_batch_bound: float
    batch_excess: float
    n_batches_sampled: int
    norm_V: float
    norm_W_2: float
    norm_H_2: float
    residual_norm: float
    rel_error: float
    grad_W_sq: float
    grad_H_sq: float
    noise_var_W: float
    noise_var_H: float
    sampling_var_H: float
    alpha_opt: float
    balance: float
    # ceilings, absolute unit
    ceiling_W: float
    ceiling_H: float
    ceiling_H_batch: float
    ceiling_H_batch_mean: float
    ceiling_H_batch_bound: float
    minibatch_factor: float
    ceiling_W_seq: float
    ceiling_H_seq: float
    ceiling_W_noise: float
    ceiling_H_noise: float
    ceiling_joint: float
    joint_fraction: float
    ceiling_global_W: float | None
    ceiling_global_H: float | None
    ceiling_global_joint: float | None
    # dimensionless
    ceiling_W_gram: float
    ceiling_H_gram: float
    ceiling_H_gram_safe: float
    ceiling_W_lipschitz: float
    ceiling_H_lipschitz: float
    ceiling_W_diag: float
    ceiling_H_diag: float
    ceiling_W_cd: float
    ceiling_H_cd: float
    noise_floor: float
    # in the LR's unit
    ceiling: float
    lr0: float
    noise_fraction: float = 1.0
    ceiling_noise: float = math.inf
    entry: dict | None = None
    assumptions: tuple = field(default_factory=tuple)

    def as_dict(self) -> dict:
        """Plain dict (JSON-able: inf becomes None, tuples become lists)."""
        d = asdict(self)
        out = {}
        for k, v in d.items():
            if isinstance(v, float):
                out[k] = _finite(v)
            elif isinstance(v, tuple):
                out[k] = list(v)
            elif isinstance(v, dict):
                out[k] = {kk: _finite(vv) if isinstance(vv, float) else vv for kk, vv in v.items()}
            else:
                out[k] = v
        return out

    def to_json(self, **kw) -> str:
        return json.dumps(self.as_dict(), **kw)

    def to_table(self) -> str:
        """Readable text: the setting, the ceilings, the quantities, the assumptions."""
        m, n = self.shape
        unit = "absolute" if self.precondition == "none" else "dimensionless"

        def f(x):
            if x is None:
                return "-"
            if isinstance(x, float) and not math.isfinite(x):
                return "inf"
            return f"{x:.4g}"

        lines = [
            f"stability bound  V {m} x {n} ({'sparse, nnz ' + str(self.nnz) if self.sparse else 'dense'}"
            f", {self.dtype}), rank {self.rank}, init {self.init}"
            + (f" + {self.warmup_epochs} warm-up epochs" if self.warmup_epochs else ""),
            f"batch {self.batch_size} of {m} rows (scale m/b = {self.scale:.4g}, "
            f"{self.n_batches} batches/epoch), noise_std {self.noise_std:g}, "
            f"clip {self.clip if self.clip is not None else '-'}, precondition {self.precondition}",
            "",
            f"{'ceiling':<34}{'value':>12}  meaning",
            f"{'-' * 34}{'-' * 12}  {'-' * 30}",
        ]
        rows = [
            ("ceiling (binding, LR unit)", self.ceiling, f"min over blocks, {unit}; solver's StepInfo.ceiling"),
            ("lr0 = kappa * ceiling", self.lr0, f"initial-LR rule, kappa = {self.kappa:g}"),
            ("ceiling_noise (LR unit)", self.ceiling_noise,
             f"noise-aware binding ceiling (x {self.noise_fraction:.3g})"),
            ("minibatch_factor (1+b/m)/2", self.minibatch_factor, "sequential W_B-then-H coupling"),
            ("ceiling_W_seq", self.ceiling_W_seq, "W step within the minibatch scheme"),
            ("ceiling_H_seq", self.ceiling_H_seq, "H step within the minibatch scheme"),
            ("ceiling_W = 2/L_W", self.ceiling_W, "W rows alone, any batch (per block)"),
            ("ceiling_H = 2/L_H", self.ceiling_H, "H, full batch"),
            ("ceiling_H_batch", self.ceiling_H_batch,
             f"H, worst of {self.n_batches_sampled} sampled batches"),
            ("ceiling_H_batch_mean", self.ceiling_H_batch_mean, "H, typical batch (2/mean curvature)"),
            ("ceiling_H_batch_bound", self.ceiling_H_batch_bound, "H, every batch (worst case)"),
            ("ceiling_W_noise", self.ceiling_W_noise, "noise-aware (projected, gradient mapping), W"),
            ("ceiling_H_noise", self.ceiling_H_noise, "noise-aware, noise + sampling, H"),
            ("ceiling_joint", self.ceiling_joint, "one LR, simultaneous W,H step (local)"),
            ("joint_fraction", self.joint_fraction, "x per-block ceilings, simultaneous steps"),
            ("ceiling_global_W", self.ceiling_global_W, "entries in [0, clip], global"),
            ("ceiling_global_H", self.ceiling_global_H, "entries in [0, clip], global"),
            ("ceiling_global_joint", self.ceiling_global_joint, "entries in [0, clip], any pattern"),
            ("ceiling_W_gram", self.ceiling_W_gram, "Gram step W (dimensionless, projection-safe)"),
            ("ceiling_H_gram", self.ceiling_H_gram, "Gram step H, worst batch (interior only)"),
            ("ceiling_H_gram_safe", self.ceiling_H_gram_safe, "Gram step H with projection (proven)"),
            ("ceiling_W_lipschitz", self.ceiling_W_lipschitz, "Lipschitz-scaled step W"),
            ("ceiling_H_lipschitz", self.ceiling_H_lipschitz, "Lipschitz-scaled step H, worst batch"),
            ("ceiling_W_diag", self.ceiling_W_diag, "diag(HH^T)-scaled step W (projection-safe)"),
            ("ceiling_H_diag", self.ceiling_H_diag, "diag(W^T W)-scaled step H, worst batch"),
            ("ceiling_W_cd", self.ceiling_W_cd, "coordinate-wise step W (per block)"),
            ("ceiling_H_cd", self.ceiling_H_cd, "coordinate-wise step H, worst batch (per block)"),
        ]
        if self.entry is not None:
            rows.append(("ceiling_entry_joint", self.entry.get("ceiling_joint"),
                         "one observed entry, (w_i, h_j) together, p = 1"))
        for name, val, what in rows:
            lines.append(f"{name:<34}{f(val):>12}  {what}")
        lines += [
            "",
            f"{'quantity':<34}{'value':>12}",
            f"{'-' * 34}{'-' * 12}",
        ]
        q = [
            ("L_W = lambda_max(H H^T)", self.L_W), ("L_H = lambda_max(W^T W)", self.L_H),
            ("L_H batch: mean", self.L_H_batch_mean), ("L_H batch: max (sampled)", self.L_H_batch_max),
            ("L_H batch: bound (all)", self.L_H_batch_bound),
            ("batch excess max/full", self.batch_excess),
            ("||V||_F", self.norm_V), ("||W||_2", self.norm_W_2), ("||H||_2", self.norm_H_2),
            ("||V - WH||_F", self.residual_norm), ("relative error", self.rel_error),
            ("||grad_W||^2", self.grad_W_sq), ("||grad_H||^2", self.grad_H_sq),
            ("noise var W (per epoch)", self.noise_var_W), ("noise var H (per step)", self.noise_var_H),
            ("sampling var H (per step)", self.sampling_var_H),
            ("predicted floor (enforced ceil.)", self.noise_floor),
            ("alpha* (best scale of WH)", self.alpha_opt), ("balance L_W / L_H", self.balance),
        ]
        for name, val in q:
            lines.append(f"{name:<34}{f(val):>12}")
        lines += ["", "assumptions:"]
        lines += [f"  - {a}" for a in self.assumptions]
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


def _residual_and_grads(V, W, H, vsq):
    """Residual norm, gradient norms and row-wise residual norms, Gram form.

    No m x n temporary: ``V H^T`` (m x k) and ``V^T W`` (n x k) only.
    """
    from ..objective import v_dot, vt_dot

    Ht = np.ascontiguousarray(H.T)
    VHt = np.asarray(v_dot(V, Ht), dtype=np.float64)        # m x k
    VtW = np.asarray(vt_dot(V, W), dtype=np.float64)        # n x k
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    HHt = H @ H.T
    G = W.T @ W
    cross = float(np.vdot(W, VHt))
    quad = float(np.vdot(G, HHt))
    res_sq = max(vsq - 2.0 * cross + quad, 0.0)
    gW = W @ HHt - VHt                                       # m x k
    gH = G @ H - VtW.T                                       # k x n
    # ||r_i||^2 = ||v_i||^2 - 2 w_i.(V H^T)_i + w_i^T HH^T w_i
    from ..data import row_sqnorms

    vrow = row_sqnorms(V)
    rrow = np.maximum(vrow - 2.0 * np.einsum("ij,ij->i", W, VHt)
                      + np.einsum("ij,jk,ik->i", W, HHt, W), 0.0)
    return dict(res_sq=res_sq, cross=cross, quad=quad, gW_sq=float(np.vdot(gW, gW)),
                gH_sq=float(np.vdot(gH, gH)), rrow=rrow, HHt=HHt, G=G, gW=gW, gH=gH, VHt=VHt,
                VtW=VtW)


class _Instrument:
    """Schedule for the warm-up run: a huge LR clipped by the solver to kappa * ceiling."""

    needs = ()

    def init(self):
        return {}

    def lr(self, state):
        return 1e300

    def update(self, state, info):
        return {}


def report(V, rank, *, W=None, H=None, init="auto", seed=0, batch_size=None, noise_std=0.0,
           clip=None, precondition="none", warmup_epochs=0, n_batches_sample=64, kappa=0.5,
           entry=None, fit=None) -> BoundReport:
    r"""Stability report at an initialization (or at given factors).

    Parameters
    ----------
    V : array (m, n), numpy.memmap or scipy.sparse matrix
        Non-negative data (validated by :func:`nmf_sched.data.check_matrix`).
    rank : int
    W, H : arrays (m, k), (k, n), optional
        Factors to analyze; default: the ``init`` rule of :mod:`nmf_sched.init`.
    init : str, default "auto"
        Initialization (ignored when ``W`` and ``H`` are given).
    seed : int, default 0
        Seed of the init, the warm-up and the batch sample.
    batch_size : int, optional
        Rows per step; default: :func:`nmf_sched.config.default_batch_size`.
    noise_std : float, default 0
        Std of the additive gradient noise per entry.
    clip : float, optional
        Entry bound ``c`` (factors in ``[0, c]``): global ceilings.
    precondition : {"none", "lipschitz", "gram", "cd"}
        Unit of ``ceiling`` and ``lr0`` (the warm-up runs the solver with it).
    warmup_epochs : int, default 0
        Run this many epochs of the solver first (steps at ``kappa`` x the
        per-step ceiling, ``precondition`` as given) and report at the result.
        Needs ``fit``.
    fit : callable, optional
        The solver for the warm-up, called as ``fit(V, rank, W0=..., H0=..., schedule=...,
        epochs=..., ...)`` and returning an object with ``W`` and ``H``
        (:func:`nmf_sched.fit`; this package is pure math and does not run the solver).
    n_batches_sample : int, default 64
        Batches drawn to estimate the minibatch curvature (O(b k^2) each).
    kappa : float, default 0.5
        Fraction of the ceiling of the initial-LR rule ``lr0 = kappa * ceiling``.
    entry : bool, optional
        Also compute single-entry curvatures (default: for sparse ``V``).

    Returns
    -------
    BoundReport
    """
    from ..backend import is_sparse
    from ..config import default_batch_size
    from ..data import check_matrix, check_rank, check_seed, sqnorm
    from ..init import initialize

    V = check_matrix(V, "V")
    m, n = V.shape
    k = check_rank(rank, V.shape)
    if precondition not in REPORT_UNITS:
        raise ValueError(f"precondition must be one of {list(REPORT_UNITS)}, got {precondition!r}")
    for name, val in (("noise_std", noise_std), ("kappa", kappa)):
        if not isinstance(val, (int, float)) or isinstance(val, bool) or not math.isfinite(val) or val < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {val!r}")
    if kappa <= 0:
        raise ValueError(f"kappa must be > 0, got {kappa!r}")
    if clip is not None and (not isinstance(clip, (int, float)) or isinstance(clip, bool)
                             or not math.isfinite(clip) or clip <= 0):
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    if not isinstance(warmup_epochs, int) or isinstance(warmup_epochs, bool) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
    if not isinstance(n_batches_sample, int) or n_batches_sample < 1:
        raise ValueError(f"n_batches_sample must be an integer >= 1, got {n_batches_sample!r}")
    if batch_size is None:
        batch_size = default_batch_size(m)
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    b = int(min(batch_size, m))
    sparse = is_sparse(V)
    rng = check_seed(seed)
    init_rng, run_rng, batch_rng = rng.spawn(3)
    if (W is None) != (H is None):
        raise ValueError("give both W and H, or neither")
    if W is None:
        W, H = initialize(V, k, init, seed=init_rng)
        init_name = init
    else:
        W, H = initialize(V, k, "custom", W0=W, H0=H)
        init_name = "custom"
    if warmup_epochs:
        if not callable(fit):
            raise ValueError(f"warmup_epochs={warmup_epochs} needs fit= (e.g. nmf_sched.fit), "
                             f"got fit={fit!r}")
        res = fit(V, k, W0=W, H0=H, schedule=_Instrument(), epochs=warmup_epochs, batch_size=b,
                  seed=run_rng, noise_std=float(noise_std), clip_lr=True, kappa=float(kappa),
                  max_value=clip, precondition=precondition, tol=0.0)
        W, H = res.W, res.H

    vsq = sqnorm(V)
    q = _residual_and_grads(V, W, H, vsq)
    HHt, G = q["HHt"], q["G"]
    LW, LH = lmax(HHt), lmax(G)
    bc = batch_curvatures(W, b, n_batches=n_batches_sample,
                          seed=int(batch_rng.integers(2**31)))
    s = m / b
    n_batches = math.ceil(m / b)

    # gram and lipschitz ceilings over the same sampled batches
    W64 = np.asarray(W, dtype=np.float64)
    Gis = None
    gram_gen, gram_safe = [], []
    if LH > 0:
        d, U = np.linalg.eigh(G)
        d = np.maximum(d, 1e-12 * max(d[-1], 1e-300))
        Gis = (U / np.sqrt(d)) @ U.T
    if b >= m:
        batches = [np.arange(m)]
    else:
        brng = np.random.default_rng(int(batch_rng.integers(2**31)))
        perm = brng.permutation(m)
        batches = [perm[a:a + b] for a in range(0, m, b)][: max(1, min(n_batches_sample, n_batches))]
    rule_H = {pre: [] for pre in CEILING_RULES}  # the solver's own H rules, per batch
    for idx in batches:
        GB = W64[idx].T @ W64[idx]
        sc = m / idx.size
        if Gis is not None:
            gram_gen.append(sc * gen_lmax(GB, Gis))
            gram_safe.append(gram_safe_ceiling(G, GB, sc))
        for pre, (_, rh) in CEILING_RULES.items():
            rule_H[pre].append(rh(G, sc * GB, np))
    ceiling_H_gram = _inv2(max(gram_gen)) if gram_gen else math.inf
    ceiling_H_gram_safe = min(gram_safe) if gram_safe else math.inf
    ceiling_H_diag = min(rule_H["gram"])   # diag(W^T W)-scaled H step (the solver's "gram" H)
    ceiling_H_cd = min(rule_H["cd"])
    ceiling_W_cd = 2.0 if LW > 0 else math.inf
    dP = np.diag(HHt)
    ceiling_W_diag = (_inv2(gen_lmax(HHt, np.diag(1.0 / np.sqrt(dP)))) if np.all(dP > 0)
                      else math.inf)

    # noise (§3): W sees additive noise only (per epoch: every row once);
    # H sees additive noise + the sampling noise of the row batch (exact formula).
    sigma2 = float(noise_std) ** 2
    noise_var_W = sigma2 * m * k
    wrow = np.einsum("ij,ij->i", W64, W64)
    if b < m and m > 1:
        spread = max(float(np.dot(wrow, q["rrow"])) - q["gH_sq"] / m, 0.0)
        sampling_var = m * (m - b) / (b * (m - 1)) * spread
    else:
        sampling_var = 0.0
    noise_var_H = sigma2 * k * n
    cW, cH = _inv2(LW), _inv2(LH)
    # the noise-aware ceilings of projected steps (gradient mapping, projection bias, half the
    # noise-free descent guaranteed: bounds/noise.py), the solver's rule in the plain unit
    W64h, H64h = np.asarray(W, dtype=np.float64), np.asarray(H, dtype=np.float64)
    cW_noise = block_noise_ceiling(W64h, q["gW"], lambda T: T @ HHt - q["VHt"], cW, noise_var_W,
                                   float(noise_std), kappa=kappa)["ceiling"]
    cH_noise = block_noise_ceiling(H64h, q["gH"], lambda T: G @ T - q["VtW"].T, cH,
                                   noise_var_H + sampling_var, float(noise_std),
                                   kappa=kappa)["ceiling"]

    res_norm = math.sqrt(q["res_sq"])
    vnorm = math.sqrt(vsq)
    glob = clip_ceilings((m, n), k, clip, vnorm) if clip is not None else None
    cH_batch = _inv2(bc["max"])
    rho = minibatch_factor(s)
    floor = (noise_floor(kappa * min(rho * cH_batch, cH_noise), LH, noise_var_H + sampling_var)
             + noise_floor(kappa * min(rho * cW, cW_noise), LW, noise_var_W)) \
        if LH > 0 and LW > 0 else math.inf
    cW_lip = 2.0 if LW > 0 else math.inf
    cH_lip = 2.0 * LH / bc["max"] if bc["max"] > 0 else math.inf
    # the binding ceiling of each solver unit: W rows, worst sampled H batch
    binding = {"none": (cW, cH_batch), "lipschitz": (cW_lip, cH_lip),
               "cd": (ceiling_W_cd, ceiling_H_cd), "gram": (2.0, ceiling_H_diag)}
    ceiling = rho * min(binding[precondition])
    frac = 1.0
    for c_noise, c_seq in ((cW_noise, rho * cW), (cH_noise, rho * cH_batch)):
        if math.isfinite(c_seq) and c_seq > 0:
            frac = min(frac, c_noise / c_seq)
    alpha = q["cross"] / q["quad"] if q["quad"] > 0 else math.inf
    if entry is None:
        entry = sparse
    ent = entry_curvatures(V, W, H) if entry else None
    assumptions = [ASSUMPTIONS[key] for key in ("block", "local", "sequential", "batch")]
    if noise_std > 0 or b < m:
        assumptions.append(ASSUMPTIONS["noise"])
    assumptions.append(ASSUMPTIONS["joint"])
    if clip is not None:
        assumptions.append(ASSUMPTIONS["clip"])
    assumptions.append(ASSUMPTIONS["gram"])
    return BoundReport(
        shape=(m, n), rank=k, sparse=bool(sparse), nnz=int(V.nnz) if sparse else m * n,
        dtype=str(V.dtype), init=init_name, warmup_epochs=int(warmup_epochs), batch_size=b,
        n_batches=n_batches, scale=s, noise_std=float(noise_std),
        clip=None if clip is None else float(clip), precondition=precondition, kappa=float(kappa),
        L_W=LW, L_H=LH, L_H_batch_mean=bc["mean"], L_H_batch_max=bc["max"],
        L_H_batch_bound=bc["bound"], batch_excess=bc["max"] / LH if LH > 0 else math.nan,
        n_batches_sampled=bc["n"], norm_V=vnorm, norm_W_2=math.sqrt(LH), norm_H_2=math.sqrt(LW),
        residual_norm=res_norm, rel_error=res_norm / vnorm if vnorm > 0 else math.nan,
        grad_W_sq=q["gW_sq"], grad_H_sq=q["gH_sq"], noise_var_W=noise_var_W,
        noise_var_H=noise_var_H, sampling_var_H=sampling_var, alpha_opt=alpha,
        balance=LW / LH if LH > 0 else math.inf,
        ceiling_W=cW, ceiling_H=cH, ceiling_H_batch=cH_batch,
        ceiling_H_batch_mean=_inv2(bc["mean"]), ceiling_H_batch_bound=_inv2(bc["bound"]),
        minibatch_factor=rho, ceiling_W_seq=rho * cW, ceiling_H_seq=rho * cH_batch,
        ceiling_W_noise=cW_noise, ceiling_H_noise=cH_noise,
        ceiling_joint=joint_ceiling(LW, LH, res_norm), joint_fraction=joint_fraction(LW, LH, res_norm),
        ceiling_global_W=glob["W"] if glob else None, ceiling_global_H=glob["H"] if glob else None,
        ceiling_global_joint=glob["joint"] if glob else None,
        ceiling_W_gram=2.0, ceiling_H_gram=ceiling_H_gram, ceiling_H_gram_safe=ceiling_H_gram_safe,
        ceiling_W_lipschitz=cW_lip, ceiling_H_lipschitz=cH_lip,
        ceiling_W_diag=ceiling_W_diag, ceiling_H_diag=ceiling_H_diag,
        ceiling_W_cd=ceiling_W_cd, ceiling_H_cd=ceiling_H_cd, noise_floor=floor,
        ceiling=ceiling, lr0=float(kappa) * ceiling, noise_fraction=frac,
        ceiling_noise=frac * ceiling, entry=ent, assumptions=tuple(assumptions),
    )
