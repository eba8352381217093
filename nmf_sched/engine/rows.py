r"""The row-minibatch model: projected stochastic-gradient NMF on batches of rows.

One *step* processes a row batch ``B`` (``b`` rows drawn without replacement within an
epoch), sequentially (``s = m/b``):

.. math::

    W_B &\leftarrow \Pi_+\big(W_B - \eta_W\, (W_B HH^\top - V_B H^\top + \xi_W) P_W^{-1}\big) \\
    H   &\leftarrow \Pi_+\big(H - \eta_H\, P_H^{-1} (s\,(W_B^\top W_B H - W_B^\top V_B) + \xi_H)\big),

with the preconditioner ``P`` of :mod:`nmf_sched.engine.precond`, the optional Gaussian
gradient noise ``xi`` of the research model, and step sizes
``eta = damp * min(lr, cap * kappa * ceiling)`` (:class:`~nmf_sched.engine.control.StepControl`)
where each ceiling is the preconditioner's rule times the sequential minibatch factor
``(1 + b/m)/2`` (bounds/THEORY.md 2.2), capped by the noise-aware ceiling of
:mod:`nmf_sched.engine.noise` (THEORY.md 3.2). After every epoch the components are balanced,
``||w_j|| = ||h_j||`` (``W H`` and the loss unchanged, THEORY.md 3.4).

Because every row is visited exactly once per epoch, the products ``V_B^T W_B`` summed over
the epoch equal ``V^T W`` at the end of the epoch, so the exact loss (Gram identity,
``2f = ||V||^2 - 2<H^T, V^T W> + <W^T W, HH^T>``) costs nothing extra.

In the sharded scheme (:mod:`nmf_sched.engine.shards`) a model holds one shard's rows and
the H step adds the stale blocks' exact terms ``rest = (G_rest, A_rest)`` to its curvature
and linear term (THEORY.md 10); with ``rest=None`` it is the single-machine step.
"""
from __future__ import annotations

import math

import numpy as np

from .. import bounds
from .control import Diverged, mean_lr
from .extras import GradDot
from .fused import fused_step
from .noise import NoiseTracker

__all__ = ["RowModel", "row_batches"]


def row_batches(m, b, shuffle, rng):
    """One epoch's batches: sorted index arrays (``"rows"``), slices of contiguous blocks in
    random (``"blocks"``) or natural (``"none"``) order, or ``[None]`` for a full batch."""
    if b >= m:
        return [None]
    if shuffle == "rows":
        perm = rng.permutation(m)
        return [np.sort(perm[a:a + b]) for a in range(0, m, b)]
    starts = np.arange(0, m, b)
    if shuffle == "blocks":
        starts = rng.permutation(starts)
    return [slice(int(a), int(min(m, a + b))) for a in starts]


def _bsz(idx, m):
    if idx is None:
        return m
    if isinstance(idx, slice):
        return idx.stop - idx.start
    return int(idx.shape[0])


class RowModel:
    """Row minibatches of dense, sparse or memmap data on a backend (see the module docstring).

    Parameters
    ----------
    V : the data, placed on ``backend``
    W, Ht : arrays (m, k), (n, k) on the backend
    cfg : RowConfig (resolved batch size)
    backend : HostBackend or DeviceBackend
    precond : Preconditioner
    rest : (G_rest, A_rest) or None
        The sharded scheme's stale blocks (k x k, n x k).
    """

    kind = "rows"

    def __init__(self, V, W, Ht, cfg, backend, precond, rng, rest=None):
        self.cfg, self.be, self.pre, self.rng = cfg, backend, precond, rng
        self.xp = backend.xp
        self.m, self.n = V.shape
        self.k = W.shape[1]
        self.dtype = np.dtype(W.dtype)
        backend.prepare(V, cfg.batch_size, rng, cfg.noise_std)
        self.b = backend.b
        self.W = self.xp.ascontiguousarray(W)
        self.Ht = self.xp.ascontiguousarray(Ht)
        self.rest = rest
        self.vnorm = math.sqrt(backend.vsq)
        self.gd = None
        self.probing = False
        self.G = self.W.T @ self.W
        self.ctl = None
        self.loss_ref = math.inf
        self.pen = precond.pen
        self.reg_last = 0.0   # the penalty inside the last loss computed (rel_error's data term)
        self.nz = NoiseTracker(self)  # noise estimate and noise-aware ceilings (noise.py)
        self._nz_pending = None

    # ------------------------------------------------------------------ engine interface
    @property
    def per_entry_lr(self) -> bool:
        return self.pre.per_entry

    def describe(self) -> str:
        return f"precondition={self.pre.name!r}"

    def bind(self, ctl, needs):
        self.ctl = ctl
        if "grad_dot" in needs:
            self.gd = GradDot(self.m, self.n, self.k, self.xp)

    def n_units(self) -> int:
        return math.ceil(self.m / self.b)

    def epoch_units(self, rng):
        units = row_batches(self.m, self.b, self.cfg.shuffle, rng)
        return [self.be.indices(u) for u in units]

    def unit_steps(self, unit) -> int:
        return 1

    def new_acc(self):
        xp = self.xp
        if self.be.host:
            z, inf = 0.0, math.inf
        else:
            z, inf = xp.zeros((), dtype=xp.float64), xp.full((), xp.inf)
        return {"A": xp.zeros((self.n, self.k), dtype=self.dtype), "fB": z, "fBmax": z, "nB": 0,
                "cW": inf, "cH": inf, "eW": z, "eH": z, **self.nz.new_acc()}

    def summary(self, acc) -> dict:
        """Host floats of the accumulators (one sync on a device)."""
        fB, cW, cH, eW, eH, fBmax = self.be.fetch(acc["fB"], acc["cW"], acc["cH"], acc["eW"],
                                                   acc["eH"], acc["fBmax"])
        nB = max(acc["nB"], 1)
        return {"fB": fB / nB, "cW": cW, "cH": cH, "step_W": eW / nB, "step_H": eH / nB,
                "fBmax": fBmax}

    def exact_loss(self, A=None):
        if A is None:
            A = self.be.full_Q(self.W)
        HHt = self.Ht.T @ self.Ht
        G = self.W.T @ self.W
        return 0.5 * (self.be.vsq - 2.0 * self.be.dot(self.Ht, A) + self.be.dot(G, HHt))

    def _objective(self, A=None) -> float:
        """The exact loss (a host float, clipped at 0) plus the penalties; records the
        penalty for :meth:`rel_error`."""
        if not self.pen.active:
            loss = self.be.fetch(self.exact_loss(A))[0]
            return max(loss, 0.0) if loss == loss else loss
        xp = self.xp
        loss, reg = self.be.fetch(self.exact_loss(A),
                                  self.pen.value_W(self.W, xp) + self.pen.value_H(self.Ht, xp))
        loss = max(loss, 0.0) if loss == loss else loss
        self.reg_last = reg
        return loss + reg

    def start(self, first_unit) -> dict:
        """Loss and ceilings at the initialization (the first unit's batch)."""
        A = self.be.full_Q(self.W)
        loss = self._objective(A)
        self.loss_ref = max(loss, 1e-300)
        fields = self.nz.update(A)
        cW, cH = self.be.fetch(*self.initial_ceilings(first_unit))
        return {"loss": loss, "watched": loss, "rel_error": self.rel_error(loss), "cW": cW, "cH": cH,
                "fields": fields}

    def rel_error(self, loss) -> float:
        """``||V - WH|| / ||V||`` from a loss this model computed (its penalty removed)."""
        data = loss - self.reg_last if self.pen.active else loss
        return math.sqrt(2 * max(data, 0.0)) / self.vnorm if self.vnorm > 0 else math.nan

    def initial_ceilings(self, idx):
        """Ceilings at the current factors for the batch ``idx``."""
        HHt = self.Ht.T @ self.Ht
        WB = self.W if idx is None else self.W[idx]
        scale = self.m / _bsz(idx, self.m)
        f = bounds.step_factor(scale, sharded=self.rest is not None)
        return (self.nz.cap_W(self.pre.ceiling_W(HHt) * f),
                self.nz.cap_H(self.pre.ceiling_H(self._Gfull(), self._curv(WB.T @ WB, scale)) * f))

    def _Gfull(self):
        """``W^T W`` over all rows: this model's rows plus the stale blocks' when sharded."""
        return self.G if self.rest is None else self.G + self.rest[0]

    def _curv(self, GB, scale):
        """The H step's curvature ``s G_B`` (plus the stale blocks' Gram when sharded)."""
        A = scale * GB
        return A if self.rest is None else A + self.rest[0]

    # ------------------------------------------------------------------ one step
    def step(self, idx, lr_W, lr_H, acc):
        """One minibatch step; returns ``(Q, G_B)``: the batch's ``V_B^T W_B`` and
        ``W_B^T W_B`` at the new ``W_B``."""
        fast = fused_step(self, idx, lr_W, lr_H, acc)  # the compiled cd step where it is exact
        if fast is not None:
            return fast
        be, xp, pre, ctl = self.be, self.xp, self.pre, self.ctl
        VB = be.gather(idx)
        scale = self.m / _bsz(idx, self.m)
        Ht = self.Ht
        HHt = Ht.T @ Ht
        WB = self.W if idx is None else self.W[idx]
        P = be.prod_P(VB, Ht)
        GB_old = WB.T @ WB
        # batch loss before the step (the smoothed-loss signal, and the divergence check)
        fB = 0.5 * (be.batch_vsq(VB, idx) - 2.0 * be.dot(WB, P) + be.dot(GB_old, HHt))
        if self.pen.active:  # the regularized objective's unbiased batch estimate
            fB = fB + self.pen.value_W(WB, xp) + self.pen.value_H(Ht, xp) / scale
        if be.host:
            fB = float(fB)
            if not math.isfinite(fB) or fB * scale > self.cfg.explode * self.loss_ref:
                raise Diverged(f"batch loss {fB!r}")
            acc["fB"] += fB * scale
        else:
            acc["fB"] = acc["fB"] + fB * scale
            acc["fBmax"] = xp.maximum(acc["fBmax"], xp.where(xp.isfinite(fB), fB * scale, xp.inf))
        acc["nB"] += 1
        gd = self.gd
        if gd is not None:  # hypergradient: gradient at the batch, before the step
            gd_gW, gd_WB = pre.grad_W(WB, HHt, P), WB.copy()
        # ---- W_B step (rows decouple: the curvature is HH^T for any batch)
        # sequential W_B-then-H coupling (THEORY.md 2.2); 1/2 with stale shards (10.4)
        f = bounds.step_factor(scale, sharded=self.rest is not None)
        cW = pre.ceiling_W(HHt) * f
        self.nz.observe(idx, VB, WB, P, HHt, cW, acc)
        cW = self.nz.cap_W(cW)
        lw = lr_W[idx] if (isinstance(lr_W, np.ndarray) or hasattr(lr_W, "ndim")) \
            and getattr(lr_W, "ndim", 0) == 2 and idx is not None else lr_W
        eta_W = ctl.eta(lw, cW, xp, self.dtype)
        fresh = idx is not None  # a fancy-indexed batch is a copy; a slice is a view of W
        WBn = pre.step_W(WB, HHt, P, eta_W, be.noise(WB.shape, self.dtype, self.probing),
                         fresh or isinstance(idx, slice))
        if gd is not None:
            gd.add("W", idx, gd_gW, gd_WB, WBn, eta_W)
        if idx is None:
            self.W = WBn
        else:
            self.W[idx] = WBn
        GB = WBn.T @ WBn
        self.G += GB - GB_old
        Q = be.prod_Q(VB, WBn)
        acc["A"] += Q
        if gd is not None:
            gd_gH, gd_Ht = pre.grad_H(Ht, GB, Q, scale, self.rest), Ht.copy()
        # ---- H step from the batch (gradient scaled by m/b: unbiased)
        Gf = self._Gfull()
        dG = bounds.safe_diag(Gf, xp)
        cH = self.nz.cap_H(pre.ceiling_H(Gf, self._curv(GB, scale), dG) * f)
        eta_H = ctl.eta(lr_H, cH, xp, self.dtype)
        self.Ht = pre.step_H(Ht, GB, Q, eta_H, scale, be.noise(Ht.shape, self.dtype, self.probing),
                             dG, Gf, self.rest)
        if gd is not None:
            gd.add("H", None, gd_gH, gd_Ht, self.Ht, eta_H)
        if be.host:
            acc["cW"] = min(acc["cW"], cW)
            acc["cH"] = min(acc["cH"], cH)
            acc["eW"] += mean_lr(eta_W)
            acc["eH"] += mean_lr(eta_H)
        else:
            acc["cW"] = xp.minimum(acc["cW"], cW)
            acc["cH"] = xp.minimum(acc["cH"], cH)
            acc["eW"] = acc["eW"] + (eta_W.mean() if getattr(eta_W, "ndim", 0) else eta_W)
            acc["eH"] = acc["eH"] + (eta_H.mean() if getattr(eta_H, "ndim", 0) else eta_H)
        return Q, GB

    # ------------------------------------------------------------------ epochs
    def end_epoch(self, acc, complete) -> dict:
        """The exact loss at the end of the epoch (free from the epoch's products when every
        row was visited) and the accumulators; raises Diverged on a bad loss."""
        self.G = self.W.T @ self.W
        s = self.summary(acc)
        loss = self._objective(acc["A"] if complete else None)
        if not self.be.host:  # the deferred per-step check (device accumulators)
            if not math.isfinite(s["fBmax"]) or s["fBmax"] > self.cfg.explode * self.loss_ref:
                raise Diverged(f"largest scaled batch loss {s['fBmax']!r}")
        if not math.isfinite(loss) or loss > self.cfg.explode * self.loss_ref:
            raise Diverged(f"loss {loss!r}")
        fields = {} if self.nz.active else self.nz.update(None)
        self._nz_pending = self.nz.active and (acc["A"] if complete else self.be.full_Q(self.W), acc,
                                               (s["step_W"], s["step_H"]), fields)
        if not getattr(self.cfg, "balance", False):  # else after the balancing (balance())
            self._nz_update(1.0)
        return {"loss": loss, "watched": loss, "rel_error": self.rel_error(loss), "summary": s,
                "fields": fields}

    def _nz_update(self, d):
        """The noise-aware ceilings for the next epoch, at the (balanced: column scales ``d``)
        factors; fills the trace fields the last :meth:`end_epoch` returned."""
        if not self._nz_pending:
            self._nz_pending = None
            return
        A, acc, steps, fields = self._nz_pending
        self._nz_pending = None
        fields.update(self.nz.update(A if np.isscalar(d) else A * d.astype(A.dtype), acc, steps))

    def balance(self):
        """``||w_j|| = ||h_j||``: W H and the loss unchanged; removes the drift along the scale
        symmetry that gradient noise drives (THEORY.md 3.4)."""
        xp = self.xp
        if self.pen.active:  # the penalty's minimizer along the symmetry (never raises F)
            W, Ht = self.W, self.Ht
            d = self.pen.balance_scale(*self.pen.column_totals(W, Ht, xp), xp)
            self.W *= d.astype(W.dtype)
            self.Ht /= d.astype(Ht.dtype)
        elif xp is np:
            d = bounds.balance_columns(self.W, self.Ht)
        else:
            wn = xp.sqrt((self.W.astype(xp.float64) ** 2).sum(axis=0))
            hn = xp.sqrt((self.Ht.astype(xp.float64) ** 2).sum(axis=0))
            ok = (wn > 0) & (hn > 0) & xp.isfinite(wn) & xp.isfinite(hn)
            d = xp.where(ok, xp.sqrt(hn / xp.where(ok, wn, 1.0)), 1.0)
            self.W *= d.astype(self.W.dtype)
            self.Ht /= d.astype(self.Ht.dtype)
        self.G = self.W.T @ self.W
        if self.gd is not None:
            self.gd.rescale(d)
        self._nz_update(d)
        return d

    def current_loss(self) -> dict:
        loss = self._objective()
        return {"loss": loss, "watched": loss, "rel_error": self.rel_error(loss)}

    def snapshot(self):
        return (self.W.copy(), self.Ht.copy())

    def restore(self, snap):
        self.W, self.Ht = snap[0].copy(), snap[1].copy()
        self.G = self.W.T @ self.W
        if self.gd is not None:
            self.gd.reset()

    def factors(self):
        """``(W, H)`` as the backend holds them (device arrays stay on the device)."""
        return self.W, self.Ht.T

    def host_factors(self):
        return self.be.to_host(self.W), np.ascontiguousarray(self.be.to_host(self.Ht).T)

    def set_factors(self, W, H):
        self.W = self.be.asarray(W, self.dtype)
        self.Ht = self.be.asarray(np.asarray(H).T, self.dtype)
        self.G = self.W.T @ self.W

    def grad_dot(self):
        return self.gd.pop() if self.gd is not None else None

    def extra_arrays(self) -> dict:
        """Model state beyond the factors that a checkpoint must carry."""
        out = self.nz.state()
        if self.gd is None:
            return out
        return {**out, **{k: self.be.to_host(v) for k, v in self.gd.arrays().items()}}

    def load_extra_arrays(self, arrays):
        self.nz.load(arrays)
        if self.gd is not None:
            self.gd.load(arrays)

    # ------------------------------------------------------------------ line search
    def probe(self, idx):
        """``lr -> (f_B(new), f_B(old), <grad f_B, new - old>)`` for one trial step on batch
        ``idx`` (the batch the next step uses), with ``f_B`` the batch loss scaled by ``m/b``.
        The factors are restored after each call; no noise is drawn."""
        from .control import split_lr

        xp, be = self.xp, self.be

        pen = self.pen

        def batch_loss(WB, Ht, VB, s, vB):
            P = be.prod_P(VB, Ht)
            val = 0.5 * s * (vB - 2.0 * be.dot(WB, P) + be.dot(WB.T @ WB, Ht.T @ Ht))
            if pen.active:
                val = val + s * pen.value_W(WB, xp) + pen.value_H(Ht, xp)
            return val, P

        def f(lr):
            VB = be.gather(idx)
            s = self.m / _bsz(idx, self.m)
            W0, Ht0, G0 = self.W.copy(), self.Ht.copy(), self.G.copy()
            WB0 = W0 if idx is None else W0[idx]
            vB = be.batch_vsq(VB, idx)
            f0, P0 = batch_loss(WB0, Ht0, VB, s, vB)
            gW = s * self.pre.grad_W(WB0, Ht0.T @ Ht0, P0)
            gH = self.pre.grad_H(Ht0, WB0.T @ WB0, be.prod_Q(VB, WB0), s, self.rest)
            lw, lh = split_lr(lr, xp)
            acc = self.new_acc()
            self.probing, gd, self.gd = True, self.gd, None
            try:
                self.step(idx, lw, lh, acc)
                WB1 = self.W if idx is None else self.W[idx]
                f1, _ = batch_loss(WB1, self.Ht, VB, s, vB)
                lin = be.dot(gW, WB1 - WB0) + be.dot(gH, self.Ht - Ht0)
                f1, f0v, lin = be.fetch(f1, f0, lin)
            except Diverged:
                f1, f0v, lin = math.inf, be.fetch(f0)[0], 0.0
            finally:
                self.W, self.Ht, self.G = W0, Ht0, G0
                self.probing, self.gd = False, gd
            return f1, f0v, lin

        f.batch_fraction = _bsz(idx, self.m) / self.m
        return f
