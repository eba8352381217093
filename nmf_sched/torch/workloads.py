r"""Small offline DNN workloads for the schedule benchmarks and the RL environment.

Every workload runs on a CPU core in seconds and downloads nothing:

``logreg_digits``, ``mlp_digits``, ``cnn_digits``
    scikit-learn's ``load_digits`` (1797 images 8 x 8, 10 classes), a fixed 80/20
    train/validation split, features standardized with the training statistics;
    multinomial logistic regression, an MLP 64-128-64-10 (ReLU), a CNN
    (conv 3x3 16, conv 3x3 32, max-pool 2, linear) on the 8 x 8 images.
``quadratic``
    DeepOBS-style noisy quadratic (Schneider et al., ICLR 2019): per sample
    :math:`\ell(\theta; x) = \tfrac12 (\theta - x)^\top Q (\theta - x)`, :math:`x \sim
    N(0, I_{d})`, :math:`d = 100`, :math:`Q = R\,\mathrm{diag}(\lambda)\,R^\top` with 90
    eigenvalues uniform in [0, 1] and 10 in [30, 60] and :math:`R` a random rotation;
    1000 training and 1000 validation samples. No accuracy.
``char_lm``
    A character-level language model (embedding 24, GRU 64, linear) on ~150k characters
    of Python source read from the interpreter's own standard library (a fixed list of
    modules, so the text depends on the Python version only); windows of 32 characters,
    last 10% held out; accuracy is next-character accuracy.

The split and the problem (data, ``Q``) are fixed per workload; a run's ``seed`` sets
the model's initialization and the minibatch order.
"""
from __future__ import annotations

import functools
import math
import os
import sysconfig
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["WORKLOADS", "DEFAULT_STEPS", "BASE_LR", "Workload", "make_workload", "TrainingRun",
           "make_optimizer", "OPTIMIZERS"]

WORKLOADS = ("logreg_digits", "mlp_digits", "cnn_digits", "quadratic", "char_lm")
OPTIMIZERS = ("sgd", "adamw")
#: optimizer steps of a full benchmark run
DEFAULT_STEPS = {"logreg_digits": 400, "mlp_digits": 600, "cnn_digits": 600, "quadratic": 500,
                 "char_lm": 400}
#: base LR per (workload, optimizer): the constant LR with the lowest final training loss
#: on a half-decade grid, development seed 99 (never a benchmark seed); reproduce with
#: ``python benchmarks/bench_dnn.py --tune-lr`` (results/dnn_lr_grid.json)
BASE_LR = {
    ("logreg_digits", "sgd"): 0.1, ("logreg_digits", "adamw"): 0.1,
    ("mlp_digits", "sgd"): 0.03, ("mlp_digits", "adamw"): 0.003,
    ("cnn_digits", "sgd"): 0.03, ("cnn_digits", "adamw"): 0.01,
    ("quadratic", "sgd"): 0.001, ("quadratic", "adamw"): 0.1,
    ("char_lm", "sgd"): 1.0, ("char_lm", "adamw"): 0.01,
}
_BATCH = 32
_LM_FILES = ("argparse.py", "textwrap.py", "string.py", "heapq.py", "fractions.py", "shlex.py",
             "calendar.py", "dataclasses.py", "functools.py", "pprint.py", "random.py")
_LM_CHARS = 150_000
_LM_CONTEXT = 32


# ----------------------------------------------------------------------------
# data (built once per process, never at import)
# ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(20240601).permutation(len(y))
    n_tr = int(0.8 * len(y))
    tr, va = perm[:n_tr], perm[n_tr:]
    mu, sd = X[tr].mean(0), X[tr].std(0)
    sd[sd == 0] = 1.0
    Xs = ((X - mu) / sd).astype(np.float32)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return t(Xs[tr]), t(y[tr].astype(np.int64)), t(Xs[va]), t(y[va].astype(np.int64))


@functools.lru_cache(maxsize=1)
def _quadratic(dim=100):
    r = np.random.default_rng(4242)
    lam = np.concatenate([r.uniform(0, 1, dim - dim // 10), r.uniform(30, 60, dim // 10)])
    R, _ = np.linalg.qr(r.standard_normal((dim, dim)))
    Q = (R * lam) @ R.T
    x_tr = r.standard_normal((1000, dim)).astype(np.float32)
    x_va = r.standard_normal((1000, dim)).astype(np.float32)
    return (torch.from_numpy(Q.astype(np.float32)), torch.from_numpy(x_tr),
            torch.from_numpy(x_va))


def lm_text() -> str:
    """The char-LM corpus: the listed stdlib modules, concatenated, first 150k characters."""
    root = sysconfig.get_paths()["stdlib"]
    parts = []
    for name in _LM_FILES:
        path = os.path.join(root, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                parts.append(fh.read())
    text = "\n".join(parts)[:_LM_CHARS]
    if len(text) < 20_000:
        raise ValueError(f"char_lm needs the Python standard library sources under {root!r}; "
                         f"found only {len(text)} characters")
    return text


@functools.lru_cache(maxsize=1)
def _chars():
    text = lm_text()
    vocab = sorted(set(text))
    lookup = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([lookup[c] for c in text], dtype=torch.int64)
    n_tr = int(0.9 * len(ids))
    return ids[:n_tr], ids[n_tr:], len(vocab)


# ----------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------

class _Quadratic(nn.Module):
    def __init__(self, Q, dim, gen):
        super().__init__()
        self.Q = Q
        self.theta = nn.Parameter(3.0 * torch.randn(dim, generator=gen))

    def forward(self, x):
        d = self.theta - x
        return 0.5 * ((d @ self.Q) * d).sum(1)  # per-sample loss


class _CharGRU(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, 24)
        self.rnn = nn.GRU(24, 64, batch_first=True)
        self.out = nn.Linear(64, vocab)

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.out(h)


def _build_model(name, gen, vocab=None):
    """The model, initialized from ``gen`` without touching torch's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen)))
        return _layers(name, vocab)


def _layers(name, vocab):
    if name == "logreg_digits":
        return nn.Linear(64, 10)
    if name == "mlp_digits":
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                             nn.Linear(64, 10))
    if name == "cnn_digits":
        return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(32 * 16, 10))
    if name == "char_lm":
        return _CharGRU(vocab)
    raise AssertionError(name)  # pragma: no cover


# ----------------------------------------------------------------------------
# a workload: model + data + loss + evaluation
# ----------------------------------------------------------------------------

@dataclass
class Workload:
    """One workload instance: a freshly initialized model and its data.

    Attributes
    ----------
    name : str
    model : torch.nn.Module
    batch_size : int
    has_accuracy : bool
    """

    name: str
    model: nn.Module
    batch_size: int
    has_accuracy: bool
    _data: dict = field(default_factory=dict, repr=False)

    def n_train(self) -> int:
        return int(self._data["n_train"])

    def batch(self, idx):
        """Minibatch loss (a scalar tensor with grad) for training indices ``idx``."""
        d = self._data
        if self.name == "quadratic":
            return self.model(d["x_tr"][idx]).mean()
        if self.name == "char_lm":
            return _lm_loss(self.model, d["tr"], idx)[0]
        return nn.functional.cross_entropy(self.model(d["X_tr"][idx]), d["y_tr"][idx])

    @torch.no_grad()
    def evaluate(self) -> dict:
        """``{"train_loss", "val_loss", "val_acc"}`` on the fixed evaluation sets
        (``val_acc`` is None without accuracy). Full sets, except ``char_lm``: 256 fixed
        windows of each split."""
        d, m = self._data, self.model
        was = m.training
        m.eval()
        try:
            if self.name == "quadratic":
                out = {"train_loss": float(m(d["x_tr"]).mean()), "val_loss": float(m(d["x_va"]).mean()),
                       "val_acc": None}
            elif self.name == "char_lm":
                tl, _ = _lm_loss(m, d["tr"], d["eval_tr"])
                vl, acc = _lm_loss(m, d["va"], d["eval_va"])
                out = {"train_loss": float(tl), "val_loss": float(vl), "val_acc": float(acc)}
            else:
                f = nn.functional.cross_entropy
                logits = m(d["X_va"])
                out = {"train_loss": float(f(m(d["X_tr"]), d["y_tr"])),
                       "val_loss": float(f(logits, d["y_va"])),
                       "val_acc": float((logits.argmax(1) == d["y_va"]).float().mean())}
        finally:
            m.train(was)
        return out


def _lm_loss(model, ids, starts):
    starts = torch.as_tensor(starts)
    pos = starts[:, None] + torch.arange(_LM_CONTEXT + 1)[None, :]
    seq = ids[pos]
    logits = model(seq[:, :-1])
    target = seq[:, 1:]
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    acc = (logits.argmax(-1) == target).float().mean()
    return loss, acc


def make_workload(name: str, seed: int = 0) -> Workload:
    """Build workload ``name`` with a model initialized from ``seed``.

    Parameters
    ----------
    name : {"logreg_digits", "mlp_digits", "cnn_digits", "quadratic", "char_lm"}
    seed : int
        Model initialization (and, in :class:`TrainingRun`, the minibatch order).
    """
    if name not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {name!r}")
    gen = torch.Generator().manual_seed(int(seed))
    if name == "quadratic":
        Q, x_tr, x_va = _quadratic()
        model = _Quadratic(Q, Q.shape[0], gen)
        return Workload(name, model, _BATCH, False, {"x_tr": x_tr, "x_va": x_va,
                                                     "n_train": len(x_tr)})
    if name == "char_lm":
        tr, va, vocab = _chars()
        model = _build_model(name, gen, vocab)
        g = torch.Generator().manual_seed(777)  # fixed evaluation windows
        n_tr, n_va = len(tr) - _LM_CONTEXT - 1, len(va) - _LM_CONTEXT - 1
        return Workload(name, model, _BATCH, True, {
            "tr": tr, "va": va, "n_train": n_tr,
            "eval_tr": torch.randint(0, n_tr, (256,), generator=g),
            "eval_va": torch.randint(0, n_va, (256,), generator=g)})
    X_tr, y_tr, X_va, y_va = _digits()
    model = _build_model(name, gen)
    return Workload(name, model, _BATCH, True, {"X_tr": X_tr, "y_tr": y_tr, "X_va": X_va,
                                                "y_va": y_va, "n_train": len(y_tr)})


def make_optimizer(kind: str, params, lr: float):
    """``"sgd"``: SGD with momentum 0.9; ``"adamw"``: AdamW (torch defaults, weight decay
    0.01); ``"sgd_schedulefree"`` / ``"adamw_schedulefree"``: the ``schedulefree``
    package's SGD (momentum 0.9) and AdamW (weight decay 0.01), warmup 0."""
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if kind in ("sgd_schedulefree", "adamw_schedulefree"):
        import schedulefree

        if kind == "sgd_schedulefree":
            return schedulefree.SGDScheduleFree(params, lr=lr, momentum=0.9, warmup_steps=0)
        return schedulefree.AdamWScheduleFree(params, lr=lr, weight_decay=0.01, warmup_steps=0)
    raise ValueError(f"optimizer must be one of 'sgd', 'adamw', 'sgd_schedulefree', "
                     f"'adamw_schedulefree', got {kind!r}")


class TrainingRun:
    """A training run one optimizer step at a time (what benchmarks and the RL env drive).

    Parameters
    ----------
    workload : str
        A name of :data:`WORKLOADS`.
    optimizer : str
        ``"sgd"``, ``"adamw"`` or a schedule-free variant (:func:`make_optimizer`).
    lr : float or None
        Initial LR; None: :data:`BASE_LR` of the workload and optimizer family.
    seed : int
        Model initialization and minibatch order.

    Attributes
    ----------
    opt : torch.optim.Optimizer
    steps_done : int
    """

    def __init__(self, workload: str, optimizer: str = "adamw", lr=None, seed: int = 0):
        family = optimizer.replace("_schedulefree", "") if isinstance(optimizer, str) else None
        if family not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of 'sgd', 'adamw', 'sgd_schedulefree', "
                             f"'adamw_schedulefree', got {optimizer!r}")
        self.workload = make_workload(workload, seed)
        self.lr0 = float(BASE_LR[(workload, family)] if lr is None else lr)
        if not math.isfinite(self.lr0) or self.lr0 <= 0:
            raise ValueError(f"lr must be a finite float > 0, got {lr!r}")
        self.opt = make_optimizer(optimizer, self.workload.model.parameters(), self.lr0)
        self._schedulefree = optimizer.endswith("_schedulefree")
        if self._schedulefree:
            self.opt.train()
        self._gen = torch.Generator().manual_seed(10_000 + int(seed))
        self._order, self._pos = None, 0
        self.steps_done = 0

    def _next_idx(self):
        n, b = self.workload.n_train(), self.workload.batch_size
        if self.workload.name == "char_lm":  # random windows
            return torch.randint(0, n, (b,), generator=self._gen)
        if self._order is None or self._pos + b > n:  # epochs of a fresh permutation
            self._order, self._pos = torch.randperm(n, generator=self._gen), 0
        idx = self._order[self._pos:self._pos + b]
        self._pos += b
        return idx

    def train_step(self) -> float:
        """One minibatch step at the optimizer's current LR; returns the minibatch loss
        (NaN/inf are returned as they are: the caller decides about divergence)."""
        idx = self._next_idx()
        self.opt.zero_grad(set_to_none=True)
        loss = self.workload.batch(idx)
        value = float(loss.detach())
        if math.isfinite(value):
            loss.backward()
            self.opt.step()
        self.steps_done += 1
        return value

    def evaluate(self) -> dict:
        """:meth:`Workload.evaluate` (schedule-free optimizers are switched to their
        evaluation weights for it, as their authors require)."""
        if self._schedulefree:
            self.opt.eval()
        try:
            return self.workload.evaluate()
        finally:
            if self._schedulefree:
                self.opt.train()

    def set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = float(lr)

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])
