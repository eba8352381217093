r"""The epoch loop of projected stochastic-gradient NMF.

One *step* processes a row batch ``B`` (``b`` rows drawn without replacement
within an epoch), sequentially:

.. math::

    W_B &\leftarrow \Pi_+\big(W_B - \eta_W\, (W_B HH^\top - V_B H^\top + \xi_W) P_W^{-1}\big) \\
    H   &\leftarrow \Pi_+\big(H - \eta_H\, P_H^{-1} (s\,(W_B^\top W_B H - W_B^\top V_B) + \xi_H)\big),
    \qquad s = m/b,

where ``Pi_+`` clips at 0 (and at ``max_value`` when given), ``xi`` is the
optional Gaussian gradient noise of the research model and ``P`` the
preconditioner: identity, the block Lipschitz constant, ``diag`` coordinate-wise
Gauss–Seidel steps ("cd", the default), or the k x k Gram ``HH^T`` for W with
``diag(W^T W)`` for H ("gram"; the full Gram metric breaks the projected H step,
bounds/THEORY.md 7).
``cap`` is 1 with ``clip_lr`` (infinite without) and ``damp`` is 1; after each
divergence the guard sets ``cap = 1`` and halves ``damp``.
The step sizes are ``eta = damp * min(lr, cap * kappa * ceiling)`` with the
schedule's ``lr`` and the per-block ceiling from :mod:`nmf_sched.bounds` times
the sequential minibatch factor ``(1 + b/m)/2`` (bounds/THEORY.md 2.2). After
every epoch the components are balanced, ``||w_j|| = ||h_j||`` (``balance``;
``W H`` and the loss unchanged, THEORY.md 3.4).

Because every row is visited exactly once per epoch, the products
``V_B^T W_B`` summed over the epoch equal ``V^T W`` at the end of the epoch, so
the exact loss (Gram identity) costs nothing extra.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import bounds
from .backend import is_sparse
from .kernels.cpu import cd_rows, csr_rows_matmul, csr_rows_sqnorm, csr_rows_tmatmul, gather_rows
from .objective import loss_from_products, sqnorm, vt_dot
from .result import FitResult, Trace
from .schedules.base import StepInfo

log = logging.getLogger("nmf_sched")

__all__ = ["SolverConfig", "run", "PRECONDITIONERS"]

#: ``"cd"``: coordinate-wise (Gauss–Seidel) scaled steps, the default;
#: ``"gram"``: k x k Gram-preconditioned steps; ``"lipschitz"``: gradient over
#: the block curvature; ``"none"``: plain SGD with an absolute LR.
PRECONDITIONERS = ("cd", "gram", "lipschitz", "none")


@dataclass
class SolverConfig:
    """Validated settings of one run (built by :func:`nmf_sched.fit`)."""

    epochs: int = 200
    batch_size: int = 256
    noise_std: float = 0.0
    clip_lr: bool = True
    kappa: float = 0.9
    clip_update: float | None = None
    max_value: float | None = None
    precondition: str = "cd"
    tol: float = 1e-4
    n_iter_no_change: int = 5
    max_time: float | None = None
    callback: Callable | None = None
    progress: bool = False
    schedule_every: int | None = None
    schedule_loss: str = "full"
    shuffle: str = "rows"
    guard: bool = True
    max_retries: int = 6
    guard_shrink: float = 0.5
    explode: float = 100.0
    balance: bool = True


class _Diverged(Exception):
    pass


def _inv_and_inv_sqrt(P, ridge=1e-9):
    """``P^{-1}`` and ``P^{-1/2}`` of a PSD k x k matrix (float64), ridge-regularized."""
    P = np.asarray(P, dtype=np.float64)
    d, U = np.linalg.eigh(P)
    floor = ridge * max(float(d[-1]), 1e-300)
    d = np.maximum(d, floor)
    inv = (U / d) @ U.T
    inv_sqrt = (U / np.sqrt(d)) @ U.T
    return inv, inv_sqrt


def _split_lr(lr, m, n):
    """Schedule output -> (lr_W, lr_H): floats or arrays shaped (m,k) / (n,k)."""
    if isinstance(lr, dict):
        try:
            lw, lh = lr["W"], lr["H"]
        except KeyError as exc:
            raise ValueError(f"a per-block lr must have keys 'W' and 'H', got {sorted(lr)}") from exc
    else:
        lw = lh = lr
    out = []
    for name, v in (("W", lw), ("H", lh)):
        if isinstance(v, np.ndarray) and v.ndim == 2:
            if name == "H":
                v = v.T  # per-entry LRs for H come shaped like H (k x n)
            if not np.all(np.isfinite(v)) or np.any(v < 0):
                raise ValueError(f"schedule returned a non-finite or negative per-entry lr for {name}")
            out.append(v)
        else:
            v = float(v)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"schedule returned lr={v!r} for block {name}; it must be finite and >= 0")
            out.append(v)
    return out


def _safe_diag(A):
    d = A.diagonal().astype(np.float64)
    if d.size and d.min() > 0:
        return d
    return np.where(d > 0, d, max(float(d.max()), 1.0) * 1e-12 if d.size else 1.0)


def _cd_ceiling_H(dG, GB, scale):
    """Coordinate steps ``lr / G_cc`` on the batch curvature ``s (W_B^T W_B)_cc``
    descend for ``lr < 2 G_cc / (s (W_B^T W_B)_cc)``: the ceiling is the min over c."""
    dB = scale * GB.diagonal().astype(np.float64)
    pos = dB > 0
    if pos.all():
        return float(2.0 * np.min(dG / dB))
    if not pos.any():
        return math.inf
    return float(2.0 * np.min(dG[pos] / dB[pos]))


def _diag_ceiling_H(dG, GB, scale):
    """Ceiling of the H step scaled by ``diag(G)^-1`` on the batch curvature ``s W_B^T W_B``:
    ``2 / lambda_max(D^-1/2 s G_B D^-1/2)`` with ``D = diag(G)`` (THEORY.md 7)."""
    L = scale * bounds.gen_lmax(GB, np.diag(1.0 / np.sqrt(dG)))
    return 2.0 / L if L > 0 else math.inf


def _scalar(eta, block):
    if isinstance(eta, np.ndarray):
        raise ValueError(f"precondition='cd' takes one learning rate per block; the schedule "
                         f"returned per-entry learning rates for {block}")
    return float(eta)


def _mean(x):
    return float(np.mean(x)) if isinstance(x, np.ndarray) else float(x)


class _Run:
    def __init__(self, V, W, H, schedule, cfg: SolverConfig, rng: np.random.Generator):
        self.V, self.cfg, self.rng, self.schedule = V, cfg, rng, schedule
        self.m, self.n = V.shape
        self.k = W.shape[1]
        self.sparse = is_sparse(V)
        self.dtype = W.dtype
        self.W = np.ascontiguousarray(W)
        self.Ht = np.ascontiguousarray(H.T)
        self.b = min(cfg.batch_size, self.m)
        self.full_batch = self.b >= self.m
        self.vsq = sqnorm(V)
        if self.sparse:
            self.row_sq = csr_rows_sqnorm(V)
        elif type(V) is np.ndarray and not self.full_batch:
            # in-memory dense: row norms once, so a batch's ||V_B||^2 is a gather of b numbers
            # (memmaps skip this: it would be one more pass over the file)
            self.row_sq = np.einsum("ij,ij->i", V, V, dtype=np.float64)
        else:
            self.row_sq = None
        self.needs = tuple(getattr(schedule, "needs", ()))
        # multiplier on kappa * ceiling: inf = no cap (clip_lr=False until a divergence)
        self.cap = 1.0 if cfg.clip_lr else math.inf
        # multiplier on the step itself, halved by the guard after each divergence
        self.damp = 1.0
        self.step_count = 0
        self.tick = 0
        self.buf = None
        # extras hook: only schedules that declare these needs pay for them
        self.hg = _GradDot(self.m, self.n, self.k) if "grad_dot" in self.needs else None
        self.probing = False

    # ------------------------------------------------------------------ batches
    def batches(self):
        m, b = self.m, self.b
        if self.full_batch:
            return [None]
        if self.cfg.shuffle == "rows":
            perm = self.rng.permutation(m)
            return [np.sort(perm[a:a + b]) for a in range(0, m, b)]
        starts = np.arange(0, m, b)
        if self.cfg.shuffle == "blocks":
            starts = self.rng.permutation(starts)
        return [slice(int(a), int(min(m, a + b))) for a in starts]

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
        if self.row_sq is not None:  # in-memory ndarray (see __init__): the row-copy kernel
            return gather_rows(V, idx, out)
        np.take(V, idx, axis=0, out=out)
        return out

    def batch_products_P(self, VB):
        if self.sparse:
            rows = VB if VB is not self.V else np.arange(self.m)
            return csr_rows_matmul(self.V, rows, self.Ht)
        return VB @ self.Ht

    def batch_products_Q(self, VB, WB):
        if self.sparse:
            rows = VB if VB is not self.V else np.arange(self.m)
            return csr_rows_tmatmul(self.V, rows, WB)
        return VB.T @ WB

    def _bsz(self, idx):
        if idx is None:
            return self.m
        if isinstance(idx, slice):
            return idx.stop - idx.start
        return idx.shape[0]

    def batch_vsq(self, VB, idx):
        if idx is None:
            return self.vsq
        if self.sparse:
            return float(self.row_sq[VB].sum())
        if self.row_sq is not None:
            return float(self.row_sq[idx].sum())
        return float(np.einsum("ij,ij->", VB, VB, dtype=np.float64))

    # ------------------------------------------------------------------ one step
    def step(self, idx, lr_W, lr_H, acc):
        cfg = self.cfg
        VB = self.gather(idx)
        scale = self.m / self._bsz(idx)
        Ht = self.Ht
        HHt = Ht.T @ Ht
        WB = self.W if idx is None else self.W[idx]
        P = self.batch_products_P(VB)
        GB_old = WB.T @ WB
        # batch loss before the step (the smoothed-loss signal, and a NaN check)
        fB = 0.5 * (self.batch_vsq(VB, idx) - 2.0 * float(np.vdot(WB, P)) + float(np.vdot(GB_old, HHt)))
        if not math.isfinite(fB) or fB * scale > cfg.explode * self.loss_ref:
            raise _Diverged(f"batch loss {fB!r}")
        acc["fB"] += fB * scale
        acc["nB"] += 1
        pre = cfg.precondition
        hg = self.hg
        if hg is not None:  # hypergradient: gradient at the batch, before the step
            hg_gW, hg_WB = WB @ HHt - P, WB.copy()
        # ---- W_B step (rows decouple: the curvature is HH^T for any batch)
        f = bounds.minibatch_factor(scale)  # sequential W_B-then-H coupling (THEORY.md 2.2)
        if pre == "cd":
            cW = 2.0 * f
            eta_W = self._eta(lr_W, cW, idx, "W")
            WBn = cd_rows(WB.copy() if idx is None else WB, HHt, P, _scalar(eta_W, "W"), 1.0,
                          _safe_diag(HHt), self._noise(WB.shape), cfg.clip_update, cfg.max_value)
        else:
            gW = WB @ HHt - P
            if cfg.noise_std > 0:
                gW += self._noise(gW.shape)
            LW = bounds.lmax(HHt)
            if pre == "gram":
                dW = gW @ _inv_and_inv_sqrt(HHt)[0].astype(self.dtype)
                cW = 2.0
            elif pre == "lipschitz":
                dW = gW / self.dtype.type(LW if LW > 0 else 1.0)
                cW = 2.0 if LW > 0 else np.inf
            else:
                dW = gW
                cW = 2.0 / LW if LW > 0 else np.inf
            # sequential W_B-then-H minibatch steps: (1 + b/m)/2 of the per-block
            # ceiling (bounds/THEORY.md section 2.2); 1 for a full batch
            cW *= f
            eta_W = self._eta(lr_W, cW, idx, "W")
            WBn = self._apply(WB, dW, eta_W)
        if hg is not None:
            hg.add("W", idx, hg_gW, hg_WB, WBn, eta_W)
        if idx is None:
            self.W = WBn
        else:
            self.W[idx] = WBn
        GB = WBn.T @ WBn
        self.G += GB - GB_old
        Q = self.batch_products_Q(VB, WBn)
        acc["A"] += Q
        if hg is not None:
            hg_gH, hg_Ht = scale * (Ht @ GB - Q), Ht.copy()
        # ---- H step from the batch (gradient scaled by m/b: unbiased)
        if pre == "cd":
            dG = _safe_diag(self.G)
            cH = _cd_ceiling_H(dG, GB, scale) * f
            eta_H = self._eta(lr_H, cH, None, "H")
            self.Ht = cd_rows(Ht, GB, Q, _scalar(eta_H, "H"), scale, dG, self._noise(Ht.shape),
                              cfg.clip_update, cfg.max_value)
        else:
            gH = scale * (Ht @ GB - Q)
            if cfg.noise_std > 0:
                gH += self._noise(gH.shape)
            if pre == "gram":
                # the projected step in the full Gram metric is unstable (THEORY.md 7): the H
                # step is scaled by diag(G)^-1, for which the orthant projection is the metric one
                dG = _safe_diag(self.G)
                cH = _diag_ceiling_H(dG, GB, scale) * f
                dH = gH / dG.astype(self.dtype)
            else:
                _, cH = bounds.step_ceilings(HHt, GB, scale, precondition=pre, G=self.G,
                                             coupling="sequential")
                dH = gH / self.dtype.type(bounds.lmax(self.G) or 1.0) if pre == "lipschitz" else gH
            eta_H = self._eta(lr_H, cH, None, "H")
            self.Ht = self._apply(Ht, dH, eta_H)
        if hg is not None:
            hg.add("H", None, hg_gH, hg_Ht, self.Ht, eta_H)
        acc["cW"] = min(acc["cW"], cW)
        acc["cH"] = min(acc["cH"], cH)
        acc["eW"] += _mean(eta_W)
        acc["eH"] += _mean(eta_H)
        self.step_count += 1

    def _noise(self, shape):
        """Gaussian gradient noise of the research model (None when off)."""
        if self.cfg.noise_std <= 0:
            return None
        if self.probing:  # a line-search probe draws no noise
            return np.zeros(shape, dtype=self.dtype)
        return self.rng.standard_normal(shape).astype(self.dtype) * self.dtype.type(self.cfg.noise_std)

    def _eta(self, lr, ceiling, idx, block):
        if isinstance(lr, np.ndarray) and idx is not None and block == "W":
            lr = lr[idx]
        if math.isfinite(self.cap) and math.isfinite(ceiling):
            cap = self.cap * self.cfg.kappa * ceiling
            lr = np.minimum(lr, cap) if isinstance(lr, np.ndarray) else min(lr, cap)
        if isinstance(lr, np.ndarray):
            return (lr * self.damp).astype(self.dtype)
        return lr * self.damp

    def _apply(self, X, D, eta):
        cfg = self.cfg
        upd = D * (eta if isinstance(eta, np.ndarray) else self.dtype.type(eta))
        if cfg.clip_update is not None:
            np.clip(upd, -cfg.clip_update, cfg.clip_update, out=upd)
        Xn = X - upd
        np.maximum(Xn, 0, out=Xn)
        if cfg.max_value is not None:
            np.minimum(Xn, cfg.max_value, out=Xn)
        return Xn

    # ------------------------------------------------------------------ epochs
    def exact_loss(self, A=None):
        if A is None:
            A = vt_dot(self.V, self.W)
        return loss_from_products(self.vsq, self.Ht, A, self.W.T @ self.W)

    def initial_ceilings(self, first):
        """Ceilings at the init for the first batch of the first epoch."""
        VBidx = first
        HHt = self.Ht.T @ self.Ht
        WB = self.W if VBidx is None else self.W[VBidx]
        bsz = self._bsz(VBidx)
        GB = WB.T @ WB
        pre = self.cfg.precondition
        scale = self.m / bsz
        f = bounds.minibatch_factor(scale)
        if pre == "cd":
            return 2.0 * f, _cd_ceiling_H(_safe_diag(self.G), GB, scale) * f
        if pre == "gram":
            return 2.0 * f, _diag_ceiling_H(_safe_diag(self.G), GB, scale) * f
        return bounds.step_ceilings(HHt, GB, scale, precondition=pre, G=self.G, coupling="sequential")

    def probe(self, idx):
        """``lr -> (f_B(new), f_B(old), <grad f_B, new - old>)`` for one trial step on batch
        ``idx`` (the batch the next step uses), with ``f_B`` the batch loss scaled by ``m/b``.
        The factors are restored after each call; no noise is drawn."""
        def f(lr):
            VB = self.gather(idx)
            s = self.m / self._bsz(idx)
            W0, Ht0, G0, steps = self.W.copy(), self.Ht.copy(), self.G.copy(), self.step_count
            WB0 = W0 if idx is None else W0[idx]
            HHt0, P0 = Ht0.T @ Ht0, self.batch_products_P(VB)
            vB = self.batch_vsq(VB, idx)
            f0 = 0.5 * s * (vB - 2.0 * float(np.vdot(WB0, P0)) + float(np.vdot(WB0.T @ WB0, HHt0)))
            gW, gH = s * (WB0 @ HHt0 - P0), s * (Ht0 @ (WB0.T @ WB0) - self.batch_products_Q(VB, WB0))
            lw, lh = _split_lr(lr, self.m, self.n)
            acc = {"A": np.zeros((self.n, self.k), dtype=self.dtype), "fB": 0.0, "nB": 0,
                   "cW": np.inf, "cH": np.inf, "eW": 0.0, "eH": 0.0}
            self.probing, hg, self.hg = True, self.hg, None
            try:
                self.step(idx, lw, lh, acc)
                WB1 = self.W if idx is None else self.W[idx]
                HHt1 = self.Ht.T @ self.Ht
                f1 = 0.5 * s * (vB - 2.0 * float(np.vdot(WB1, self.batch_products_P(VB)))
                                + float(np.vdot(WB1.T @ WB1, HHt1)))
                lin = float(np.vdot(gW, WB1 - WB0)) + float(np.vdot(gH, self.Ht - Ht0))
            except _Diverged:
                f1, lin = math.inf, 0.0
            finally:
                self.W, self.Ht, self.G, self.step_count = W0, Ht0, G0, steps
                self.probing, self.hg = False, hg
            return f1, f0, lin
        f.batch_fraction = self._bsz(idx) / self.m
        return f

    def info(self, epoch, loss, cW, cH, next_idx=None):
        extras = {}
        if "ceilings" in self.needs:
            extras["ceilings"] = {"W": cW, "H": cH}
        if self.hg is not None:
            extras["grad_dot"] = self.hg.pop()
        if "probe" in self.needs:
            extras["probe"] = self.probe(next_idx)
        ceiling = min(cW, cH)
        return StepInfo(step=self.step_count, epoch=epoch, loss=loss,
                        ceiling=ceiling if math.isfinite(ceiling) else None,
                        extras=extras, tick=self.tick)

    def run(self) -> FitResult:
        cfg, sched = self.cfg, self.schedule
        t0 = time.perf_counter()
        self.G = self.W.T @ self.W
        loss0 = self.exact_loss()
        self.loss_ref = max(loss0, 1e-300)
        vnorm = math.sqrt(self.vsq)
        trace = Trace()
        pending = self.batches()
        cW0, cH0 = self.initial_ceilings(pending[0])
        state = sched.init()
        state = sched.update(state, self.info(0, loss0, cW0, cH0, pending[0]))
        trace.append(epoch=0, step=0, lr_W=np.nan, lr_H=np.nan, step_W=0.0, step_H=0.0,
                     ceiling_W=cW0, ceiling_H=cH0, loss=loss0,
                     rel_error=math.sqrt(2 * loss0) / vnorm, seconds=time.perf_counter() - t0, retries=0)
        best = [loss0]
        stop_reason = "max_epochs"
        loss = loss0
        bar = _progress(cfg.progress, cfg.epochs)
        retries_total = 0
        epoch = 0
        while epoch < cfg.epochs:
            snap = (self.W.copy(), self.Ht.copy(), state, self.step_count, self.tick)
            acc = {"A": np.zeros((self.n, self.k), dtype=self.dtype), "fB": 0.0, "nB": 0,
                   "cW": np.inf, "cH": np.inf, "eW": 0.0, "eH": 0.0}
            lr_W, lr_H = _split_lr(sched.lr(state), self.m, self.n)
            lr_log = (_mean(lr_W), _mean(lr_H))
            timed_out = False
            try:
                for j, idx in enumerate(pending):
                    self.step(idx, lr_W, lr_H, acc)
                    if cfg.schedule_every and (j + 1) % cfg.schedule_every == 0 and j + 1 < len(pending):
                        self.tick += 1
                        state = sched.update(state, self.info(epoch, acc["fB"] / max(acc["nB"], 1),
                                                              acc["cW"], acc["cH"], pending[j + 1]))
                        lr_W, lr_H = _split_lr(sched.lr(state), self.m, self.n)
                    if cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time \
                            and j + 1 < len(pending):
                        timed_out = True
                        break
                self.G = self.W.T @ self.W
                loss = self.exact_loss(None if timed_out else acc["A"])
                if not math.isfinite(loss) or loss > cfg.explode * self.loss_ref:
                    raise _Diverged(f"loss {loss!r}")
            except (_Diverged, FloatingPointError, np.linalg.LinAlgError) as exc:
                self.W, self.Ht, state, self.step_count, self.tick = snap
                self.G = self.W.T @ self.W
                if self.hg is not None:
                    self.hg = _GradDot(self.m, self.n, self.k)
                retries_total += 1
                log.info("epoch %d diverged (%s); restoring and shrinking the step", epoch + 1, exc)
                if not cfg.guard or retries_total > cfg.max_retries:
                    stop_reason = "diverged"
                    loss = self.exact_loss()
                    break
                # the first divergence of an unclipped run turns the ceiling on;
                # every divergence halves the step
                self.cap = 1.0
                self.damp *= cfg.guard_shrink
                pending = self.batches()
                continue
            epoch += 1
            if cfg.balance:
                # ||w_j|| = ||h_j||: W H and the loss unchanged; removes the drift along the
                # scale symmetry that gradient noise drives (THEORY.md 3.4)
                d = bounds.balance_columns(self.W, self.Ht)
                self.G = self.W.T @ self.W
                if self.hg is not None:
                    self.hg.rescale(d)
            nB = max(acc["nB"], 1)
            trace.append(epoch=epoch, step=self.step_count, lr_W=lr_log[0], lr_H=lr_log[1],
                         step_W=acc["eW"] / nB, step_H=acc["eH"] / nB,
                         ceiling_W=acc["cW"], ceiling_H=acc["cH"], loss=loss,
                         rel_error=math.sqrt(2 * loss) / vnorm,
                         seconds=time.perf_counter() - t0, retries=retries_total)
            best.append(min(best[-1], loss))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rel_error=f"{math.sqrt(2 * loss) / vnorm:.4g}")
            log.debug("epoch %d loss %.6g", epoch, loss)
            reason = epoch_stop(cfg, best, t0, timed_out, trace[-1], self.W, self.Ht)
            if reason is not None:
                stop_reason = reason
                break
            sched_loss = loss if cfg.schedule_loss == "full" else acc["fB"] / nB
            self.tick += 1
            pending = self.batches()
            state = sched.update(state, self.info(epoch, sched_loss, acc["cW"], acc["cH"], pending[0]))
        if bar is not None:
            bar.close()
        H = np.ascontiguousarray(self.Ht.T)
        return FitResult(W=self.W, H=H, trace=trace, stop_reason=stop_reason,
                         schedule=sched, schedule_state=state, loss=float(loss),
                         rel_error=math.sqrt(2 * max(loss, 0.0)) / vnorm, n_epochs=epoch,
                         n_steps=self.step_count, seconds=time.perf_counter() - t0)


def epoch_stop(cfg, best, t0, timed_out, record, W, Ht):
    """The end-of-epoch stop rules shared by the CPU and GPU loops, in order: the time
    budget, the user's callback (``record, W, H``), the relative tolerance over the last
    ``n_iter_no_change`` epochs of the running best loss. Returns the stop reason or None."""
    if timed_out or (cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time):
        return "max_time"
    if cfg.callback is not None and cfg.callback(record, W, Ht.T):
        return "callback"
    w = cfg.n_iter_no_change
    if cfg.tol > 0 and len(best) > w and (best[-1 - w] - best[-1]) <= cfg.tol * best[-1]:
        return "tol"
    return None


class _GradDot:
    r"""Hypergradient signals (``needs=("grad_dot",)``), summed over the steps since the last tick.

    After each block step the displacement per unit LR, :math:`u = (X_{old} - X_{new}) / \eta`
    (which includes the projection and the preconditioner), is kept per row; the next step on
    those rows contributes :math:`h = g \odot u_{prev}` (:math:`g` the new minibatch gradient),
    the hypergradient :math:`-\partial f / \partial \eta` of Baydin et al.
    ``pop()`` returns ``{"W", "H"}`` (sums of h), ``{"W_g2", "H_g2", "W_u2", "H_u2"}`` (squared
    norms of g and of u_prev) and ``{"W_entry" (m x k), "H_entry" (k x n)}`` (h per entry).
    """

    def __init__(self, m, n, k):
        self.u = {"W": np.zeros((m, k)), "H": np.zeros((n, k))}
        self._zero()

    def _zero(self):
        self.acc = {"W": 0.0, "H": 0.0, "W_g2": 0.0, "H_g2": 0.0, "W_u2": 0.0, "H_u2": 0.0}
        self.entry = {b: np.zeros_like(u) for b, u in self.u.items()}

    def add(self, block, idx, g, X_old, X_new, eta):
        rows = slice(None) if idx is None else idx
        u_prev = self.u[block][rows]
        h = g * u_prev
        self.acc[block] += float(h.sum())
        self.acc[block + "_g2"] += float(np.vdot(g, g))
        self.acc[block + "_u2"] += float(np.vdot(u_prev, u_prev))
        self.entry[block][rows] += h
        eta = np.asarray(eta, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(eta > 0, (X_old - X_new) / np.where(eta > 0, eta, 1.0), 0.0)
        self.u[block][rows] = u

    def rescale(self, d):
        """Follow a component balancing ``W -> W diag(d)``, ``H -> diag(d)^-1 H``: the stored
        displacements are expressed in the new coordinates."""
        self.u["W"] *= d
        self.u["H"] /= d

    def pop(self):
        out = dict(self.acc, W_entry=self.entry["W"], H_entry=self.entry["H"].T)
        self._zero()
        return out


def _progress(enabled, total):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("progress=True needs tqdm: pip install 'nmf-sched[progress]'") from exc
    return tqdm(total=total, unit="epoch", desc="nmf-sched")


def run(V, W, H, schedule, cfg: SolverConfig, rng) -> FitResult:
    """Run the epoch loop on validated inputs; see :func:`nmf_sched.fit`."""
    return _Run(V, W, H, schedule, cfg, rng).run()
