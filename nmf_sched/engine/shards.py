r"""Row shards with local steps and a periodic H reduction (the scheme under Dask).

The rows of ``V`` are split into ``p`` shards ``V_i`` (``m_i`` rows; on Dask one shard per
worker, made of the blocks that worker holds). Each shard keeps its rows of ``W`` and runs
the single-machine minibatch scheme of :mod:`nmf_sched.engine.rows` on its own rows, with
its own copy of ``H``, for a *unit* of local steps (a whole epoch by default, or
``schedule_every`` steps). The H gradient of a local step is that of the full loss with the
other shards' rows frozen at the start of the epoch:

.. math::

    g_H = s_i\,(W_{B_i}^\top W_{B_i} H - W_{B_i}^\top V_{B_i})
          + (G_{-i} H - A_{-i}^\top),\qquad s_i = m_i / b_i,

with ``G_{-i} = sum_{j != i} W_j^T W_j`` and ``A_{-i} = sum_{j != i} V_j^T W_j`` (exact
products the driver already has from the previous epoch: no extra pass over the data). The
curvature of that step is ``s_i W_{B_i}^T W_{B_i} + G_{-i}``: the preconditioner's ceiling
rule on it gives descent per step (bounds/THEORY.md 10.1), but the shards' steps are partly
simultaneous with respect to each other, so with ``p >= 2`` every ceiling takes the factor
1/2 (:data:`nmf_sched.bounds.SHARDED_FACTOR`, THEORY.md 10.3-10.4) instead of the
single-machine ``(1 + b/m)/2``; the row model's ``rest`` term carries ``(G_{-i}, A_{-i})``.
At the end of a unit the driver averages the shards' copies, ``H <- sum_i (m_i/m) H_i``: for
the new ``W`` the loss is convex in ``H``, so the loss at the average is never above the
weighted mean of the losses at the shards' copies (Jensen, THEORY.md 10.2) — which is not
the objective each shard descended (its neighbours' rows were stale).

Penalties (:mod:`nmf_sched.engine.penalty`, the absolute values of the whole matrix): each
shard's steps add them as the single-machine steps do (its W rows' penalty, and H's in full:
a local H step is a step on the full objective with the other shards frozen); the driver adds
the penalty of ``W`` from the column sums and squared norms the shards send.

With one shard this *is* the single-machine step: the same batches from the same generator,
the same products and kernels, no stale terms; :mod:`nmf_sched.engine.dask` tests it to
1e-10 against the host backend.

Per unit the driver sends ``H`` (n x k) and, at the start of an epoch, the batch order and
the stale terms (k x k + n x k) to every shard; it gets back ``H_i`` and the accumulators,
and at the end of an epoch ``V_i^T W_i``, ``W_i^T W_i`` and the column norms of ``W_i`` (the
exact loss and the balancing cost nothing more). ``W`` never leaves the shards except for a
checkpoint, a callback or the result.

:class:`ShardWorker` is one shard (it runs where its data is); :class:`ShardedModel` is the
engine's model on the driver; :class:`LocalShard` runs a worker in this process (tests,
the verify sweep), :mod:`nmf_sched.engine.dask` puts each on a Dask worker as an actor.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ..objective import sqnorm
from .backends import HostBackend
from .control import Diverged, ShardLost, StepControl
from .precond import make_preconditioner
from .rows import RowModel, row_batches

__all__ = ["ShardWorker", "LocalShard", "ShardedModel", "local_batch_sizes"]


def local_batch_sizes(sizes, b, m):
    """Rows per local step of each shard: ``ceil(m_i b / m)`` (``b`` itself for one shard)."""
    return [int(min(s, max(1, math.ceil(s * b / m)))) for s in sizes]


# ---------------------------------------------------------------------------
# the worker side
# ---------------------------------------------------------------------------
class ShardWorker:
    """One shard: its rows of ``V`` (concatenated once), its rows of ``W``, a row model.

    Parameters
    ----------
    *blocks : arrays or CSR matrices
        The shard's row blocks, in shard order.
    """

    def __init__(self, *blocks):
        if any(sp.issparse(b) for b in blocks):
            V = sp.csr_array(sp.vstack([sp.csr_array(b) for b in blocks], format="csr"))
            V.sum_duplicates()
        else:
            V = np.ascontiguousarray(np.concatenate([np.asarray(b) for b in blocks], axis=0)
                                     if len(blocks) > 1 else np.asarray(blocks[0]))
        if V.dtype not in (np.float32, np.float64):
            V = V.astype(np.float64)
        self.V = V
        self.m, self.n = V.shape
        self.model = None
        self.W = None
        self.snap = None
        self.acc = None
        self.batches = None

    # ------------------------------------------------------------------ data
    def stats(self) -> dict:
        V = self.V
        data = V.data if sp.issparse(V) else V
        finite = bool(np.isfinite(data).all()) if data.size else True
        return {"m": self.m, "vsq": sqnorm(V) if finite else math.nan,
                "sum": float(np.sum(data, dtype=np.float64)) if finite else math.nan,
                "min": float(data.min()) if data.size else 0.0, "finite": finite,
                "nnz": int(V.nnz) if sp.issparse(V) else self.m * self.n,
                "sparse": bool(sp.issparse(V)), "dtype": str(V.dtype)}

    def row_bytes(self, local_rows) -> list:
        out = []
        for i in local_rows:
            if sp.issparse(self.V):
                a, b = self.V.indptr[i], self.V.indptr[i + 1]
                out.append(np.ascontiguousarray(self.V.indices[a:b], dtype=np.int64).tobytes()
                           + np.ascontiguousarray(self.V.data[a:b], dtype=np.float64).tobytes())
            else:
                out.append(np.ascontiguousarray(self.V[i], dtype=np.float64).tobytes())
        return out

    def dense(self):
        return self.V.toarray() if sp.issparse(self.V) else self.V

    def matmul(self, X):
        """``V_i X`` (m_i x l)."""
        return np.asarray(self.V @ X)

    def rmatmul(self, Y):
        """``V_i^T Y`` (n x l) for this shard's rows ``Y`` (m_i x l)."""
        return np.asarray(self.V.T @ Y)

    # ------------------------------------------------------------------ factors
    def setup(self, W, Ht, cfg, b, needs, seed=None, penalty=None):
        """Start a row model on the shard's rows (``W``: m_i x k; ``cfg``: RowConfig;
        ``penalty``: the whole matrix's :class:`~nmf_sched.engine.penalty.Penalty` or None)."""
        be = HostBackend()
        cfg = cfg.replace(batch_size=int(b), callback=None, checkpoint=None, resume=None,
                          progress=False, noise_ceiling=False)  # not covered (noise.py)
        pre = make_preconditioner(cfg.precondition, be, clip_update=cfg.clip_update,
                                  max_value=cfg.max_value, penalty=penalty)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.model = RowModel(self.V, np.ascontiguousarray(W), np.ascontiguousarray(Ht), cfg, be,
                              pre, rng)
        self.ctl = StepControl(cfg.kappa, cfg.clip_lr)
        self.model.bind(self.ctl, needs)
        return True

    def set_W(self, W):
        self.model.W = np.ascontiguousarray(W, dtype=self.model.dtype)
        self.model.G = self.model.W.T @ self.model.W
        if self.model.gd is not None:
            self.model.gd.reset()
        return True

    def get_W(self, d=None):
        W = self.model.W
        return W * d.astype(W.dtype) if d is not None else W

    def products(self, d=None):
        """``(V_i^T W_i, W_i^T W_i, column sums of W_i^2, column sums of W_i)`` after a
        pending balancing ``d``."""
        self._scale(d)
        W = self.model.W
        return (self.model.be.full_Q(W), W.T @ W,
                np.einsum("ij,ij->j", W, W, dtype=np.float64), W.sum(axis=0, dtype=np.float64))

    def cross(self, Ht):
        """``<W_i, V_i H^T>`` (the init rule's scale)."""
        return float(np.vdot(np.asarray(self.model.W, dtype=np.float64),
                             np.asarray(self.V @ Ht, dtype=np.float64)))

    def _scale(self, d):
        if d is not None:
            mdl = self.model
            mdl.W *= d.astype(mdl.W.dtype)
            mdl.G = mdl.W.T @ mdl.W
            if mdl.gd is not None:
                mdl.gd.u["W"] *= d
                mdl.gd.u["H"] /= d

    # ------------------------------------------------------------------ steps
    def initial_ceilings(self, Ht, rest, batch):
        mdl = self.model
        mdl.Ht = np.ascontiguousarray(Ht, dtype=mdl.dtype)
        mdl.rest = rest
        return tuple(float(c) for c in mdl.initial_ceilings(batch))

    def run(self, msg: dict) -> dict:
        """One unit of local steps (see the module docstring for the message)."""
        mdl = self.model
        self._scale(msg.get("d"))
        if msg.get("snapshot"):
            self.snap = mdl.snapshot()
        mdl.Ht = np.ascontiguousarray(msg["Ht"], dtype=mdl.dtype)
        if "batches" in msg:
            self.batches = msg["batches"]
            mdl.rest = msg["rest"]
            self.acc = mdl.new_acc()
        self.ctl.cap, self.ctl.damp = msg["ctl"]
        mdl.loss_ref = msg["loss_ref"]
        lr_W, lr_H = msg["lr"]
        a, b = msg["steps"]
        before = {key: self.acc[key] for key in ("fB", "nB", "eW", "eH")}
        acc = self.acc
        acc["cW"] = acc["cH"] = math.inf
        out = {"diverged": None}
        try:
            for idx in self.batches[a:b]:
                mdl.step(idx, lr_W, lr_H, acc)
        except (Diverged, FloatingPointError, np.linalg.LinAlgError) as exc:
            return {"diverged": str(exc)}
        out.update(Ht=mdl.Ht, fB=acc["fB"] - before["fB"], nB=acc["nB"] - before["nB"],
                   eW=acc["eW"] - before["eW"], eH=acc["eH"] - before["eH"], cW=acc["cW"],
                   cH=acc["cH"], gd=mdl.grad_dot())
        if msg.get("last"):
            W = mdl.W
            mdl.G = W.T @ W
            out.update(A=acc["A"], G=mdl.G, wsq=np.einsum("ij,ij->j", W, W, dtype=np.float64),
                       wsum=W.sum(axis=0, dtype=np.float64))
        return out

    def restore(self):
        self.model.restore(self.snap)
        return True

    def probe(self, lr, Ht, rest, batch, ctl):
        mdl = self.model
        W0, Ht0, rest0 = mdl.W.copy(), mdl.Ht, mdl.rest
        mdl.Ht = np.ascontiguousarray(Ht, dtype=mdl.dtype)
        mdl.rest = rest
        cap, damp = self.ctl.cap, self.ctl.damp
        self.ctl.cap, self.ctl.damp = ctl
        try:
            return mdl.probe(batch)(lr)
        finally:
            mdl.W, mdl.Ht, mdl.rest = W0, Ht0, rest0
            mdl.G = mdl.W.T @ mdl.W
            self.ctl.cap, self.ctl.damp = cap, damp


class LocalShard:
    """A :class:`ShardWorker` in this process, called like a remote one."""

    def __init__(self, *blocks):
        self.worker = ShardWorker(*blocks)

    def call(self, method, *args):
        return getattr(self.worker, method)(*args)

    @staticmethod
    def call_all(handles, method, args_list):
        return [h.call(method, *args) for h, args in zip(handles, args_list)]


# ---------------------------------------------------------------------------
# the driver side: the engine's model
# ---------------------------------------------------------------------------
class ShardedModel:
    """The engine's model over ``p`` shards (see the module docstring).

    Parameters
    ----------
    handles : list
        One handle per shard with ``call(method, *args)`` and a class-level
        ``call_all(handles, method, args_list)`` that runs the calls in parallel.
    rows : list of int arrays
        The global row indices of each shard, in the shard's order.
    shape, k, dtype, cfg, vsq :
        The data's shape, the rank, the factors' dtype, the RowConfig (resolved), ``||V||^2``.
    """

    kind = "shards"
    xp = np
    per_entry_lr = False
    recoverable = False
    recover_every = 10

    def __init__(self, handles, rows, shape, k, dtype, cfg, vsq, rng, *, describe="sharded"):
        self.handles, self.rows = list(handles), [np.asarray(r) for r in rows]
        self.m, self.n = shape
        self.k = int(k)
        self.dtype = np.dtype(dtype)
        self.cfg = cfg
        self.vsq = float(vsq)
        self.vnorm = math.sqrt(self.vsq)
        self.rng = rng
        self._describe = describe
        self._set_sizes()
        self.ctl = None
        self.needs = ()
        self.loss_ref = math.inf
        self.d = None            # a pending balancing, applied by the shards with the next call
        self.gd_sum = None
        self.tick_every = 1 if cfg.schedule_every else None
        self.pen = cfg.penalty(self.m, self.n) if cfg.regularized else None
        self.reg_last = 0.0

    def _set_sizes(self):
        self.sizes = [int(r.size) for r in self.rows]
        self.p = len(self.handles)
        self.bs = local_batch_sizes(self.sizes, self.cfg.batch_size, self.m)
        self.w = [s / self.m for s in self.sizes]
        self.T = max(math.ceil(s / b) for s, b in zip(self.sizes, self.bs))

    def describe(self) -> str:
        return self._describe

    def _all(self, method, args_list):
        return type(self.handles[0]).call_all(self.handles, method, args_list)

    # ------------------------------------------------------------------ factors
    def setup(self, W, H, needs=()):
        """Send each shard its rows of ``W`` and start its row model."""
        Ht = np.ascontiguousarray(np.asarray(H).T, dtype=self.dtype)
        seeds = [self.rng if (self.p == 1 and self._local()) else
                 (int(self.rng.integers(0, 2**63 - 1)) if self.cfg.noise_std > 0 else 0)
                 for _ in range(self.p)]
        # what a shard needs of the settings: no callback or paths (they stay on the driver)
        wcfg = self.cfg.replace(callback=None, checkpoint=None, resume=None, progress=False)
        self._all("setup", [(np.ascontiguousarray(W[r], dtype=self.dtype), Ht, wcfg, b,
                             tuple(needs), s, self.pen)
                            for r, b, s in zip(self.rows, self.bs, seeds)])
        self.Ht = Ht
        self._products()

    def _local(self):
        return isinstance(self.handles[0], LocalShard)

    def _products(self):
        parts = self._all("products", [(self.d,)] * self.p)
        self.d = None
        self.A_i = [p[0] for p in parts]
        self.G_i = [p[1] for p in parts]
        self.A = _sum(self.A_i)
        self.G = _sum(self.G_i)
        self.wsq = _sum([p[2] for p in parts])
        self.wsum = _sum([p[3] for p in parts])

    def host_factors(self):
        parts = self._all("get_W", [(self.d,)] * self.p)
        W = np.empty((self.m, self.k), dtype=self.dtype)
        for r, Wi in zip(self.rows, parts):
            W[r] = Wi
        return W, np.ascontiguousarray(self.Ht.T)

    def factors(self):
        return self.host_factors()

    def set_factors(self, W, H):
        self._all("set_W", [(np.ascontiguousarray(W[r], dtype=self.dtype),) for r in self.rows])
        self.d = None
        self.Ht = np.ascontiguousarray(np.asarray(H).T, dtype=self.dtype)
        self._products()

    def extra_arrays(self) -> dict:
        return {}

    def load_extra_arrays(self, arrays):
        pass

    # ------------------------------------------------------------------ engine interface
    def bind(self, ctl, needs):
        self.ctl = ctl
        self.needs = tuple(needs)
        if "grad_dot" in needs:
            self.gd_sum = _zero_gd()

    def n_units(self) -> int:
        every = self.cfg.schedule_every
        return 1 if not every else math.ceil(self.T / every)

    def epoch_units(self, rng):
        self.batches = [row_batches(s, b, self.cfg.shuffle, rng) for s, b in zip(self.sizes, self.bs)]
        every = self.cfg.schedule_every or self.T
        return [(a, min(a + every, self.T)) for a in range(0, self.T, every)]

    def unit_steps(self, unit) -> int:
        return unit[1] - unit[0]

    def new_acc(self):
        return {"fB": 0.0, "nB": 0, "cW": math.inf, "cH": math.inf, "eW": 0.0, "eH": 0.0}

    def summary(self, acc) -> dict:
        nB = max(acc["nB"], 1)
        return {"fB": acc["fB"] / nB, "cW": acc["cW"], "cH": acc["cH"], "step_W": acc["eW"] / nB,
                "step_H": acc["eH"] / nB}

    def rel_error(self, loss) -> float:
        data = loss - self.reg_last if self.pen is not None else loss
        return math.sqrt(2 * max(data, 0.0)) / self.vnorm if self.vnorm > 0 else math.nan

    def _loss(self):
        """The exact loss from the shards' products, plus the penalties when on."""
        HHt = self.Ht.T @ self.Ht
        val = 0.5 * (self.vsq - 2.0 * float(np.vdot(self.Ht, self.A)) + float(np.vdot(self.G, HHt)))
        val = max(val, 0.0) if val == val else val
        if self.pen is None:
            return val
        Ht = self.Ht
        self.reg_last = self.pen.value_sums(float(self.wsum.sum()), float(self.wsq.sum()),
                                            float(Ht.sum(dtype=np.float64)),
                                            float(np.vdot(Ht, Ht)))
        return val + self.reg_last

    def _rest(self, i):
        if self.p == 1:
            return None
        G = _sum([g for j, g in enumerate(self.G_i) if j != i])
        A = _sum([a for j, a in enumerate(self.A_i) if j != i])
        return (G, A)

    def start(self, first_unit) -> dict:
        loss = self._loss()
        self.loss_ref = max(loss, 1e-300)
        cs = self._all("initial_ceilings", [(self.Ht, self._rest(i), self._first_batch(i, 0))
                                            for i in range(self.p)])
        cW = min(c[0] for c in cs)
        cH = min(c[1] for c in cs)
        return {"loss": loss, "watched": loss, "rel_error": self.rel_error(loss), "cW": cW, "cH": cH}

    def _first_batch(self, i, step):
        bt = self.batches[i]
        return bt[step] if step < len(bt) else bt[-1]

    def step(self, unit, lr_W, lr_H, acc):
        a, b = unit
        first, last = a == 0, b == self.T
        msgs = []
        for i in range(self.p):
            msg = {"Ht": self.Ht, "d": self.d, "steps": (a, b), "lr": (lr_W, lr_H),
                   "ctl": (self.ctl.cap, self.ctl.damp), "loss_ref": self.loss_ref,
                   "last": last, "snapshot": first and self._snap_pending}
            if first:
                msg["batches"] = self.batches[i]
                msg["rest"] = self._rest(i)
            msgs.append((msg,))
        self.d = None
        if first:
            self._snap_pending = False
        outs = self._all("run", msgs)
        bad = [o["diverged"] for o in outs if o["diverged"] is not None]
        if bad:
            raise Diverged(bad[0])
        Ht = np.zeros_like(self.Ht)
        for w, o in zip(self.w, outs):
            Ht += self.dtype.type(w) * o["Ht"] if w != 1.0 else o["Ht"]
        self.Ht = Ht
        acc["fB"] += sum(o["fB"] for o in outs)
        acc["nB"] += max(o["nB"] for o in outs)
        acc["eW"] += sum(w * o["eW"] for w, o in zip(self.w, outs))
        acc["eH"] += sum(w * o["eH"] for w, o in zip(self.w, outs))
        acc["cW"] = min([acc["cW"]] + [o["cW"] for o in outs])
        acc["cH"] = min([acc["cH"]] + [o["cH"] for o in outs])
        if self.gd_sum is not None:
            for w, o in zip(self.w, outs):
                g = o["gd"]
                for key in ("W", "W_g2", "W_u2"):
                    self.gd_sum[key] += g[key]
                for key in ("H", "H_g2", "H_u2"):
                    self.gd_sum[key] += w * g[key]
        if last:
            self.A_i = [o["A"] for o in outs]
            self.G_i = [o["G"] for o in outs]
            self.A, self.G = _sum(self.A_i), _sum(self.G_i)
            self.wsq = _sum([o["wsq"] for o in outs])
            self.wsum = _sum([o["wsum"] for o in outs])

    def end_epoch(self, acc, complete) -> dict:
        if not complete:
            self._products()
        loss = self._loss()
        if not math.isfinite(loss) or loss > self.cfg.explode * self.loss_ref:
            raise Diverged(f"loss {loss!r}")
        return {"loss": loss, "watched": loss, "rel_error": self.rel_error(loss),
                "summary": self.summary(acc), "fields": {}}

    def balance(self):
        """``||w_j|| = ||h_j||`` from the column norms the shards sent (the shards scale their
        rows of W with their next call; the stale products follow)."""
        hsq = np.einsum("ij,ij->j", self.Ht, self.Ht, dtype=np.float64)
        if self.pen is not None:  # the penalty's minimizer along the symmetry
            d = self.pen.balance_scale(self.wsum, self.wsq, self.Ht.sum(axis=0, dtype=np.float64),
                                       hsq)
        else:
            wn = np.sqrt(self.wsq)
            hn = np.sqrt(hsq)
            ok = (wn > 0) & (hn > 0) & np.isfinite(wn) & np.isfinite(hn)
            d = np.ones_like(wn)
            d[ok] = np.sqrt(hn[ok] / wn[ok])
        self.Ht /= d.astype(self.Ht.dtype)
        self.d = d if self.d is None else self.d * d
        self.A_i = [a * d.astype(a.dtype) for a in self.A_i]
        self.G_i = [g * d[:, None] * d[None, :] for g in self.G_i]
        self.A, self.G = _sum(self.A_i), _sum(self.G_i)
        self.wsq = self.wsq * d * d
        self.wsum = self.wsum * d
        return d

    def current_loss(self) -> dict:
        self._products()
        loss = self._loss()
        return {"loss": loss, "watched": loss, "rel_error": self.rel_error(loss)}

    def snapshot(self):
        self._snap_pending = True
        return (self.Ht.copy(), list(self.A_i), list(self.G_i), self.wsq.copy(), self.d,
                self.wsum.copy())

    def restore(self, snap):
        self._all("restore", [()] * self.p)
        self.Ht, self.A_i, self.G_i, self.wsq, self.d = snap[0].copy(), snap[1], snap[2], snap[3], snap[4]
        self.wsum = snap[5]
        self.A, self.G = _sum(self.A_i), _sum(self.G_i)
        if self.d is not None:  # the shards' snapshot was taken after that balancing
            self.d = None

    def grad_dot(self):
        if self.gd_sum is None:
            return None
        out = dict(self.gd_sum, W_entry=None, H_entry=None)
        self.gd_sum = _zero_gd()
        return out

    def probe(self, unit):
        """The line search's trial step on shard 0's next batch, with the stale terms."""
        batch = self._first_batch(0, unit[0])

        def f(lr):
            return self.handles[0].call("probe", lr, self.Ht, self._rest(0), batch,
                                        (self.ctl.cap, self.ctl.damp))

        f.batch_fraction = (self.bs[0] if batch is not None else self.sizes[0]) / self.sizes[0]
        return f

    # ------------------------------------------------------------------ lost workers
    def recover(self):  # pragma: no cover - overridden where shards can be lost
        raise NotImplementedError

    def lost_error(self, exc, result):
        return ShardLost(str(exc))


def _sum(parts):
    out = None
    for p in parts:
        out = p.copy() if out is None else out + p
    return out


def _zero_gd():
    return {"W": 0.0, "H": 0.0, "W_g2": 0.0, "H_g2": 0.0, "W_u2": 0.0, "H_u2": 0.0}



def solve_sharded(V, rank, n_shards, *, schedule, cfg, seed=None, W0=None, H0=None):
    """The sharded scheme in this process over ``n_shards`` contiguous row shards.

    The same init as the single-machine fit (:func:`nmf_sched.engine.solve.solve_rows`), so
    ``n_shards=1`` reproduces it; for tests and the verify sweep of bounds/THEORY.md 10.
    """
    from ..bounds import rescale_balance
    from ..data import check_matrix, check_rank, check_seed
    from ..init import initialize
    from ..schedules.base import resolve
    from .loop import Engine
    from .solve import check_combination, n_ticks

    V = check_matrix(V, "V")
    m, n = V.shape
    k = check_rank(rank, (m, n))
    cfg = cfg.resolved(m)
    if not isinstance(n_shards, (int, np.integer)) or isinstance(n_shards, bool) \
            or not 1 <= n_shards <= m:
        raise ValueError(f"n_shards must be an integer in [1, {m}], got {n_shards!r}")
    rng = check_seed(seed)
    init_rng, run_rng = rng.spawn(2)
    custom = W0 is not None or H0 is not None
    W, H = initialize(V, k, "custom" if custom else cfg.init, seed=init_rng, W0=W0, H0=H0)
    if cfg.rescale_init and not custom and cfg.init != "custom":
        W, H, _ = rescale_balance(V, W, H)
    cuts = np.array_split(np.arange(m), n_shards)
    handles = [LocalShard(V[c[0]:c[-1] + 1]) for c in cuts]
    vsq = sum(h.call("stats")["vsq"] for h in handles)
    model = ShardedModel(handles, cuts, (m, n), k, V.dtype, cfg, vsq, run_rng,
                         describe=f"the sharded scheme ({n_shards} shards)")
    sched = resolve(schedule, total=n_ticks(cfg, model.T))
    check_combination(sched, None, "sharded", cfg)
    model.setup(W, H, tuple(getattr(sched, "needs", ()) or ()))
    settings = dict(rank=k, schedule=repr(sched), backend="sharded", n_shards=n_shards,
                    precondition=cfg.precondition, batch_size=cfg.batch_size,
                    alpha_W=cfg.alpha_W, alpha_H=cfg.alpha_H, l1_ratio=cfg.l1_ratio)
    return Engine(model, sched, cfg, run_rng, settings=settings).run()
