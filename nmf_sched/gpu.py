r"""``fit`` on the GPU with CuPy (extra ``gpu``): the epoch loop of
:mod:`nmf_sched.solver` with every array on the device.

Same stochastic model and epoch semantics as the CPU solver with the default
preconditioner ``"cd"``: per epoch a random permutation of the rows (the same
``numpy`` generator stream as the CPU run, so the same seed gives the same
batch order), and per minibatch ``B`` (``s = m / b``)

.. math::

    P = V_B H^\top,\quad W_B \leftarrow \text{cd}(W_B; HH^\top, P, \eta_W),\quad
    Q = V_B^\top W_B,\quad H^\top \leftarrow \text{cd}(H^\top; W_B^\top W_B, Q, \eta_H, s),

with ``eta = damp * min(lr, cap * kappa * ceiling)``, ceilings ``2 f`` (W rows) and
``2 f min_c G_cc / (s GB_cc)`` (H), ``f = (1 + b/m)/2`` the sequential minibatch
factor; the components are balanced after every epoch (as on the CPU). Products are cuBLAS GEMMs (cupyx.scipy.sparse
for CSR input); the coordinate sweeps are one CUDA kernel
(:mod:`nmf_sched.kernels.gpu`); the exact loss comes from the Gram identity.

Host synchronizations (documented, by design)
---------------------------------------------
* Once per run: validation (``min``/finiteness of ``V``), ``||V||^2``, the
  initialization (computed by :func:`nmf_sched.init.initialize` on a host copy
  of ``V`` so that CPU and GPU start from identical factors; pass ``W0``/``H0``
  to skip that copy), the initial loss and ceiling.
* Once per schedule tick (each epoch by default): the epoch's exact loss and
  its accumulated diagnostics, fetched together in one transfer. The schedule
  needs them; the trace records them.
* Per minibatch: **none**. The H ceiling, ``min(lr, kappa * ceiling)`` and the
  trace accumulators stay on the device (the kernel reads the step size from
  device memory); the batch indices of an epoch are uploaded once per epoch.
  With ``schedule_every`` the schedule ticks every N minibatches, which syncs
  once per tick. ``max_time`` is checked against the host clock (no sync).

Differences from the CPU solver: the per-minibatch divergence check (a
non-finite or exploding minibatch loss) is evaluated at the end of the epoch
from device accumulators; the guard's outcome is the same (restore the epoch's
snapshot, cap on, halve the step), only detected later. Gradient noise
(``noise_std > 0``) is drawn with CuPy's generator (seeded from the run's
generator), so noisy runs do not reproduce the CPU noise. Only
``precondition="cd"`` is implemented.

Float32 agreement: with the same seed, batch order and init, GPU and CPU
factors agree to float32 round-off amplified by the iteration (summation order
of the GEMMs differs); tests/test_gpu.py checks relative factor differences
below 1e-3 after a few epochs and the final relative error within 1e-4.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .bounds import minibatch_factor, rescale_balance
from .result import FitResult, Trace
from .schedules.base import StepInfo

__all__ = ["fit", "run"]


def _safe_diag(xp, A):
    d = xp.diag(A).astype(xp.float64)
    floor = xp.maximum(d.max(), 1.0) * 1e-12
    return xp.where(d > 0, d, floor)


def _balance(xp, W, Ht):
    """:func:`nmf_sched.bounds.balance_columns` with the array module ``xp`` (in place)."""
    wn = xp.sqrt((W.astype(xp.float64) ** 2).sum(axis=0))
    hn = xp.sqrt((Ht.astype(xp.float64) ** 2).sum(axis=0))
    ok = (wn > 0) & (hn > 0) & xp.isfinite(wn) & xp.isfinite(hn)
    d = xp.where(ok, xp.sqrt(hn / xp.where(ok, wn, 1.0)), 1.0)
    W *= d.astype(W.dtype)
    Ht /= d.astype(Ht.dtype)


def _cd_ceiling_H(xp, dG, GB, scale):
    dB = scale * xp.diag(GB).astype(xp.float64)
    ratio = xp.where(dB > 0, dG / xp.where(dB > 0, dB, 1.0), xp.inf)
    return 2.0 * ratio.min()


class _GpuRun:
    """The epoch loop; ``xp`` is cupy (numpy in the CPU-side tests) and ``cd`` the sweep kernel."""

    def __init__(self, V, W, H, schedule, cfg, rng, xp, cd, sparse):
        self.V, self.cfg, self.rng, self.schedule, self.xp, self.cd = V, cfg, rng, schedule, xp, cd
        self.sparse = sparse
        self.m, self.n = V.shape
        self.k = W.shape[1]
        self.dtype = np.dtype(W.dtype)
        self.W = xp.ascontiguousarray(W)
        self.Ht = xp.ascontiguousarray(H.T)
        self.b = min(cfg.batch_size, self.m)
        self.full_batch = self.b >= self.m
        # squared row norms once (float64, row chunks): batch losses cost b numbers, not b x n
        self.row_sq = xp.empty(self.m, dtype=xp.float64)
        step = max(1, (32 * 2**20) // max(1, self.n * 8))
        for a in range(0, self.m, step):
            blk = V[a:a + step]
            if sparse:
                self.row_sq[a:a + step] = xp.asarray(blk.multiply(blk).sum(axis=1), dtype=xp.float64).ravel()
            else:
                blk = blk.astype(xp.float64)
                self.row_sq[a:a + step] = xp.sum(blk * blk, axis=1)
        self.vsq = float(self.row_sq.sum())
        self.cap = 1.0 if cfg.clip_lr else math.inf
        self.damp = 1.0
        self.step_count = 0
        self.tick = 0
        self.needs = tuple(getattr(schedule, "needs", ()))
        self.dev_rng = None
        if cfg.noise_std > 0:
            seed = int(rng.integers(0, 2**63 - 1))
            self.dev_rng = xp.random.default_rng(seed) if xp is np else xp.random.RandomState(seed % 2**32)

    # ---------------------------------------------------------------- batches
    def batches(self):
        """Same generator calls as the CPU solver -> same batch order for the same seed."""
        m, b = self.m, self.b
        if self.full_batch:
            return [None]
        if self.cfg.shuffle == "rows":
            perm = self.rng.permutation(m)
            host = [np.sort(perm[a:a + b]) for a in range(0, m, b)]
            return [self.xp.asarray(h) for h in host]  # uploaded once per epoch
        starts = np.arange(0, m, b)
        if self.cfg.shuffle == "blocks":
            starts = self.rng.permutation(starts)
        return [slice(int(a), int(min(m, a + b))) for a in starts]

    def _bsz(self, idx):
        if idx is None:
            return self.m
        if isinstance(idx, slice):
            return idx.stop - idx.start
        return int(idx.shape[0])

    def _noise(self, shape):
        if self.dev_rng is None:
            return None
        z = self.dev_rng.standard_normal(shape)
        return (z * self.cfg.noise_std).astype(self.dtype)

    def _eta(self, lr, ceiling_dev):
        """``damp * min(lr, cap * kappa * ceiling)`` as a device scalar (no sync)."""
        xp = self.xp
        if math.isfinite(self.cap):
            # python scalars go to the kernel as arguments: no host->device copy
            return xp.minimum(ceiling_dev * (self.cap * self.cfg.kappa), lr) * self.damp
        return xp.full((), lr * self.damp, dtype=xp.float64)

    # ---------------------------------------------------------------- one step
    def step(self, idx, lr_W, lr_H, acc):
        xp, cfg = self.xp, self.cfg
        VB = self.V if idx is None else self.V[idx]
        scale = self.m / self._bsz(idx)
        Ht = self.Ht
        HHt = Ht.T @ Ht
        WB = self.W.copy() if idx is None else xp.ascontiguousarray(self.W[idx])
        P = xp.ascontiguousarray(VB @ Ht)
        GB_old = WB.T @ WB
        vsqB = self.row_sq.sum() if idx is None else self.row_sq[idx].sum()
        fB = 0.5 * (vsqB - 2.0 * xp.vdot(WB.ravel(), P.ravel()) + xp.vdot(GB_old.ravel(), HHt.ravel()))
        acc["fB"] = acc["fB"] + fB * scale
        acc["fBmax"] = xp.maximum(acc["fBmax"], xp.where(xp.isfinite(fB), fB * scale, xp.inf))
        acc["nB"] += 1
        f = minibatch_factor(scale)  # sequential W_B-then-H coupling (bounds/THEORY.md 2.2)
        cW = 2.0 * f
        eta_W = self.damp * (min(lr_W, self.cap * cfg.kappa * cW) if math.isfinite(self.cap) else lr_W)
        WBn = self.cd(WB, HHt, P, eta_W, 1.0, _safe_diag(xp, HHt), self._noise(WB.shape),
                      cfg.clip_update, cfg.max_value)
        if idx is None:
            self.W = WBn
        else:
            self.W[idx] = WBn
        GB = WBn.T @ WBn
        self.G += GB - GB_old
        Q = xp.ascontiguousarray(VB.T @ WBn)
        acc["A"] += Q
        dG = _safe_diag(xp, self.G)
        cH = _cd_ceiling_H(xp, dG, GB, scale) * f
        eta_H = self._eta(lr_H, cH)
        self.Ht = self.cd(Ht, GB, Q, eta_H.astype(self.dtype), scale, dG, self._noise(Ht.shape),
                          cfg.clip_update, cfg.max_value)
        acc["cH"] = xp.minimum(acc["cH"], cH)
        acc["cW"] = min(acc["cW"], cW)
        acc["eW"] += eta_W
        acc["eH"] = acc["eH"] + eta_H
        self.step_count += 1

    # ---------------------------------------------------------------- epochs
    def exact_loss(self, A=None):
        xp = self.xp
        if A is None:
            A = xp.asarray(self.V.T @ self.W)
        HHt = self.Ht.T @ self.Ht
        G = self.W.T @ self.W
        return 0.5 * (self.vsq - 2.0 * xp.vdot(self.Ht.ravel(), A.ravel()) + xp.vdot(G.ravel(), HHt.ravel()))

    def info(self, epoch, loss, cW, cH):
        extras = {"ceilings": {"W": cW, "H": cH}} if "ceilings" in self.needs else {}
        c = min(cW, cH)
        return StepInfo(step=self.step_count, epoch=epoch, loss=loss,
                        ceiling=c if math.isfinite(c) else None, extras=extras, tick=self.tick)

    def _fresh_acc(self):
        xp = self.xp
        z = xp.zeros((), dtype=xp.float64)
        return {"A": xp.zeros((self.n, self.k), dtype=self.dtype), "fB": z, "fBmax": z.copy(),
                "nB": 0, "cH": xp.full((), xp.inf), "cW": math.inf, "eW": 0.0, "eH": z.copy()}

    def _fetch(self, *scalars):
        """One device->host transfer for several device scalars (the per-tick sync)."""
        xp = self.xp
        v = xp.stack([xp.asarray(s, dtype=xp.float64).reshape(()) for s in scalars])
        return [float(x) for x in (v.get() if hasattr(v, "get") else v)]

    def run(self):
        from .solver import _scalar, _split_lr, epoch_stop

        xp, cfg, sched = self.xp, self.cfg, self.schedule
        t0 = time.perf_counter()
        self.G = self.W.T @ self.W
        pending = self.batches()
        first = pending[0]
        WB0 = self.W if first is None else self.W[first]
        f0 = minibatch_factor(self.m / self._bsz(first))
        cH0_d = _cd_ceiling_H(xp, _safe_diag(xp, self.G), WB0.T @ WB0, self.m / self._bsz(first)) * f0
        loss0, cH0 = self._fetch(self.exact_loss(), cH0_d)
        loss0 = max(loss0, 0.0) if loss0 == loss0 else loss0
        cW0 = 2.0 * f0
        self.loss_ref = max(loss0, 1e-300)
        vnorm = math.sqrt(self.vsq)
        trace = Trace()
        state = sched.update(sched.init(), self.info(0, loss0, cW0, cH0))
        trace.append(epoch=0, step=0, lr_W=np.nan, lr_H=np.nan, step_W=0.0, step_H=0.0,
                     ceiling_W=cW0, ceiling_H=cH0, loss=loss0, rel_error=math.sqrt(2 * loss0) / vnorm,
                     seconds=time.perf_counter() - t0, retries=0)
        best, stop_reason, loss, epoch, retries = [loss0], "max_epochs", loss0, 0, 0
        while epoch < cfg.epochs:
            snap = (self.W.copy(), self.Ht.copy(), state, self.step_count, self.tick)
            acc = self._fresh_acc()
            lr_W, lr_H = _split_lr(sched.lr(state), self.m, self.n)
            lr_W, lr_H = _scalar(lr_W, "W"), _scalar(lr_H, "H")
            lr_log = (lr_W, lr_H)
            timed_out = False
            try:
                for j, idx in enumerate(pending):
                    self.step(idx, lr_W, lr_H, acc)
                    if cfg.schedule_every and (j + 1) % cfg.schedule_every == 0 and j + 1 < len(pending):
                        fB, cH = self._fetch(acc["fB"], acc["cH"])  # the schedule's scalars: a sync
                        self.tick += 1
                        state = sched.update(state, self.info(epoch, fB / max(acc["nB"], 1), acc["cW"], cH))
                        lr_W, lr_H = _split_lr(sched.lr(state), self.m, self.n)
                        lr_W, lr_H = _scalar(lr_W, "W"), _scalar(lr_H, "H")
                    if cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time \
                            and j + 1 < len(pending):
                        timed_out = True
                        break
                self.G = self.W.T @ self.W
                loss, fB, fBmax, cH, eH = self._fetch(self.exact_loss(None if timed_out else acc["A"]),
                                                      acc["fB"], acc["fBmax"], acc["cH"], acc["eH"])
                loss = max(loss, 0.0) if loss == loss else loss
                bad = (not math.isfinite(loss) or loss > cfg.explode * self.loss_ref
                       or not math.isfinite(fBmax) or fBmax > cfg.explode * self.loss_ref)
                if bad:
                    raise FloatingPointError(f"loss {loss!r}, largest scaled batch loss {fBmax!r}")
            except FloatingPointError:
                self.W, self.Ht, state, self.step_count, self.tick = snap
                self.G = self.W.T @ self.W
                retries += 1
                if not cfg.guard or retries > cfg.max_retries:
                    stop_reason = "diverged"
                    loss = self._fetch(self.exact_loss())[0]
                    break
                self.cap = 1.0
                self.damp *= cfg.guard_shrink
                pending = self.batches()
                continue
            epoch += 1
            if cfg.balance:  # ||w_j|| = ||h_j||, W H unchanged (bounds/THEORY.md 3.4)
                _balance(xp, self.W, self.Ht)
                self.G = self.W.T @ self.W
            nB = max(acc["nB"], 1)
            trace.append(epoch=epoch, step=self.step_count, lr_W=lr_log[0], lr_H=lr_log[1],
                         step_W=acc["eW"] / nB, step_H=eH / nB, ceiling_W=acc["cW"], ceiling_H=cH,
                         loss=loss, rel_error=math.sqrt(2 * loss) / vnorm,
                         seconds=time.perf_counter() - t0, retries=retries)
            best.append(min(best[-1], loss))
            reason = epoch_stop(cfg, best, t0, timed_out, trace[-1], self.W, self.Ht)
            if reason is not None:
                stop_reason = reason
                break
            sched_loss = loss if cfg.schedule_loss == "full" else fB / nB
            self.tick += 1
            state = sched.update(state, self.info(epoch, sched_loss, acc["cW"], cH))
            pending = self.batches()
        return FitResult(W=self.W, H=xp.ascontiguousarray(self.Ht.T), trace=trace,
                         stop_reason=stop_reason, schedule=sched, schedule_state=state,
                         loss=float(loss), rel_error=math.sqrt(2 * max(loss, 0.0)) / vnorm,
                         n_epochs=epoch, n_steps=self.step_count, seconds=time.perf_counter() - t0)


def run(V, W, H, schedule, cfg, rng, *, xp, cd, sparse=False):
    """The GPU epoch loop on validated device arrays (``xp``: the array module)."""
    return _GpuRun(V, W, H, schedule, cfg, rng, xp, cd, sparse).run()


def fit(V, rank, *, schedule="auto", epochs=200, batch_size="auto", init="auto", seed=None,
        W0=None, H0=None, noise_std=0.0, clip_lr=True, kappa=0.9, clip_update=None,
        max_value=None, precondition="cd", tol=1e-4, n_iter_no_change=5, max_time=None,
        callback=None, progress=False, schedule_every=None, schedule_loss="full",
        shuffle="rows", guard=True, balance=True, rescale_init=True) -> FitResult:
    """:func:`nmf_sched.fit` for a CuPy array or cupyx CSR matrix (see the module docstring).

    Returns a FitResult whose ``W`` (m, k) and ``H`` (k, n) are CuPy arrays.
    """
    import cupy
    import cupyx.scipy.sparse as csp

    from .api import build_config, resolve_schedule
    from .data import check_rank, check_seed
    from .init import initialize
    from .kernels.gpu import cd_rows

    if precondition != "cd":
        raise ValueError(f"the GPU backend implements precondition='cd' only, got {precondition!r}")
    sparse = csp.issparse(V)
    if sparse:
        V = V.tocsr()
        if V.dtype not in (cupy.float32, cupy.float64):
            V = V.astype(cupy.float64)
        V.sum_duplicates()
        data = V.data
    else:
        V = cupy.asarray(V)
        if V.ndim != 2:
            raise ValueError(f"V must be 2-D, got shape {V.shape}")
        if V.dtype not in (cupy.float32, cupy.float64):
            V = V.astype(cupy.float64)
        V = cupy.ascontiguousarray(V)
        data = V
    m, n = V.shape
    if m == 0 or n == 0:
        raise ValueError(f"V must be non-empty, got shape {V.shape}")
    vmin, vmax, finite = (float(x) for x in cupy.stack([
        data.min() if data.size else cupy.zeros((), data.dtype),
        data.max() if data.size else cupy.zeros((), data.dtype),
        cupy.isfinite(data).all().astype(data.dtype)]).get())
    if not finite:
        raise ValueError("V must be finite (it contains NaN or inf)")
    if vmin < 0:
        raise ValueError(f"V must be non-negative, got min(V) = {vmin!r}")
    if vmax <= 0:
        raise ValueError("V is all zero")
    rank = check_rank(rank, (m, n))
    cfg = build_config(epochs=epochs, batch_size=batch_size, m=m, noise_std=noise_std,
                       clip_lr=clip_lr, kappa=kappa, clip_update=clip_update, max_value=max_value,
                       precondition=precondition, tol=tol, n_iter_no_change=n_iter_no_change,
                       max_time=max_time, callback=callback, progress=progress,
                       schedule_every=schedule_every, schedule_loss=schedule_loss,
                       shuffle=shuffle, guard=guard, balance=balance)
    if not isinstance(rescale_init, (bool, np.bool_)):
        raise TypeError(f"rescale_init must be a bool, got {rescale_init!r}")
    rng = check_seed(seed)
    init_rng, run_rng = rng.spawn(2)
    custom = W0 is not None or H0 is not None
    if custom and W0 is not None and H0 is not None:
        W = cupy.asarray(W0, dtype=V.dtype).copy()
        H = cupy.asarray(H0, dtype=V.dtype).copy()
        if W.shape != (m, rank) or H.shape != (rank, n):
            raise ValueError(f"W0/H0 must have shapes {(m, rank)}/{(rank, n)}, got {W.shape}/{H.shape}")
        if float(cupy.minimum(W.min(), H.min())) < 0:
            raise ValueError("W0 and H0 must be non-negative")
    else:
        # one host copy of V so that the init is identical to the CPU run's
        Vh = V.get()
        Wh, Hh = initialize(Vh, rank, "custom" if custom else init, seed=init_rng,
                            W0=None if W0 is None else cupy.asnumpy(W0),
                            H0=None if H0 is None else cupy.asnumpy(H0))
        if rescale_init and not custom and init != "custom":
            Wh, Hh, _ = rescale_balance(Vh, Wh, Hh)
        del Vh
        W, H = cupy.asarray(Wh, dtype=V.dtype), cupy.asarray(Hh, dtype=V.dtype)
    n_batches = math.ceil(m / min(cfg.batch_size, m))
    total = cfg.epochs if not cfg.schedule_every else cfg.epochs * max(1, n_batches // cfg.schedule_every)
    sched = resolve_schedule(schedule, total=total)
    result = run(V, W, H, sched, cfg, run_rng, xp=cupy, cd=cd_rows, sparse=sparse)
    result.settings = dict(rank=rank, schedule=repr(sched), epochs=cfg.epochs,
                           batch_size=cfg.batch_size, init=init, noise_std=cfg.noise_std,
                           clip_lr=cfg.clip_lr, kappa=cfg.kappa, precondition="cd", tol=cfg.tol,
                           balance=cfg.balance, rescale_init=bool(rescale_init and not custom),
                           sparse=sparse, dtype=str(V.dtype), backend="cupy")
    return result
