"""The grid of the verify sweep (bounds/verify.py): every family's problems, batch fractions,
multipliers and settings, as the list of specs that ``sweep`` in verify.py runs per seed."""
from __future__ import annotations


#: (family, mode, group) of the sharded scheme: the ceiling the engine enforces (the block rule
#: of §10.1 on the shard's curvature, times 1/2, §10.4), and the single-machine factor
#: (1 + b/m)/2 it enforced before (a finding: not stable, §10.3)
SHARDED = (("sharded (p=2, p=4), factor 1/2", "shard-half", "sharded"),
           ("sharded, factor (1 + b/m)/2 (before)", "shard", "finding"))


#: the regularized family (THEORY.md §11): l1_ratio and alpha_rel (alpha_W = alpha_rel x
#: min(L_W/n, L_H/m) at the init): pure L2 with the ridge equal to the curvature of one block
#: (its ceiling halves), a mix (ridge 1/4 of it, plus L1), pure L1 (mild: stronger L1 zeroes
#: the planted factors)
REGULARIZED = "regularized (L1/L2 prox, §11)"
PENALTIES = ((0.0, 1.0), (0.5, 0.5), (1.0, 0.1))


def _b(m, frac):
    return max(1, int(round(frac * m)))


def grid(quick=False):
    specs = []

    def add(family, data, k, m, fracs, **kw):
        for f in fracs:
            sid = f"{family}:{data.get('kind')}:{data.get('m', m)}x{data.get('n', '')}:k{k}:b{f:g}"
            for key in ("dist", "condition", "density", "noise"):
                if key in data and data[key] is not None:
                    sid += f":{key}={data[key]}"
            for key in ("noise_rel", "precondition", "mode", "shards", "init", "balance",
                        "l1_ratio", "alpha_rel", "dtype", "max_value_rel", "clip_update_rel"):
                if key in kw:
                    sid += f":{key}={kw[key]}"
            specs.append(dict(id=sid, family=family, data=data, k=k, b=_b(m, f), quick=quick, **kw))

    if quick:
        add("planted-dense", dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200,
            (0.05, 1.0))
        add("planted-sparse", dict(kind="planted", m=300, n=150, rank=4, noise=0.05, seed=0,
                                   density=0.1), 4, 300, (0.1,))
        add("grad-noise + balance", dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0),
            4, 200, (0.2,), noise_rel=0.5, balance=True, group="noise")
        add("real", dict(kind="faces"), 6, 200, (0.2,))
        add("grad-noise x0.3/3/30, noise-aware ceiling",
            dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200, (0.2,),
            noise_rel=30.0, balance=True, precondition="cd", group="noise")
        for (fam, mode, group), ps in zip(SHARDED, ((2, 4), (4,))):
            for p in ps:
                add(fam, dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200,
                    (1.0,), shards=p, mode=mode, group=group)
        add(REGULARIZED, dict(kind="planted", m=200, n=120, rank=4, noise=0.05, seed=0), 4, 200,
            (0.2,), l1_ratio=0.5, alpha_rel=0.5, group="regularized")
        return specs, (0,)

    fr = (0.01, 0.05, 0.2, 1.0)
    for (m, n, k) in ((200, 150, 4), (500, 300, 8), (1000, 400, 16)):
        for extra in (dict(dist="uniform"), dict(dist="exponential"), dict(dist="uniform", condition=50.0)):
            add("planted-dense", dict(kind="planted", m=m, n=n, rank=k, noise=0.05, seed=1, **extra),
                k, m, fr)
    add("planted-dense", dict(kind="planted", m=500, n=300, rank=8, noise=0.3, seed=2), 8, 500, fr)
    for (m, n, k, dens) in ((800, 400, 8, 0.1), (2000, 600, 10, 0.02)):
        add("planted-sparse", dict(kind="planted", m=m, n=n, rank=k, noise=0.05, seed=3, density=dens),
            k, m, fr)
    for nu in (0.05, 0.5):
        add("grad-noise + balance", dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=4),
            8, 500, (0.05, 0.2, 1.0), noise_rel=nu, balance=True, group="noise")
    for nu in (0.05, 0.5):
        add("grad-noise + balance", dict(kind="digits"), 10, 1797, (0.05, 0.2), noise_rel=nu,
            balance=True, group="noise")
    for data, m, ks in ((dict(kind="digits"), 1797, (10, 16)), (dict(kind="faces"), 200, (10, 20)),
                        (dict(kind="camera", rows=4000, seed=0), 4000, (8, 16))):
        for k in ks:
            add("real", data, k, m, fr)
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=5), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        add("gram (W Gram, H diag(G), §7)", data, k, m, (0.05, 0.2, 1.0), precondition="gram",
            group="finding")
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=6), 500, 8),
                       (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10)):
        add("raw-init", data, k, m, (0.05, 1.0), init="nndsvda")
    cd_data = ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=7), 500, 8),
               (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10))
    for data, m, k in cd_data:
        add("cd (solver default)", data, k, m, (0.05, 0.2, 1.0), precondition="cd")
    # the sharded scheme of the Dask path (§10): the engine's factor 1/2, and the factor before
    shard_data = ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=8), 500, 8),
                  (dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=8,
                        dist="exponential"), 500, 8),
                  (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10))
    for fam, mode, group in SHARDED:
        for data, m, k in shard_data:
            for p in (2, 4):
                for pre in ("none", "cd"):
                    add(fam, data, k, m, (0.05, 0.2, 1.0), shards=p, mode=mode, precondition=pre,
                        group=group)
    # penalties (§11): the proximal step at the ridged ceilings, plain and coordinate-wise
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=9), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        for pre in ("none", "cd"):
            for rho, a in PENALTIES:
                add(REGULARIZED, data, k, m, (0.05, 0.2, 1.0), precondition=pre, l1_ratio=rho,
                    alpha_rel=a, group="regularized")
    # float32 data, entry and update clipping, an over-specified rank, sparse small batches
    # (noise-free: the claim), and gradient noise at three levels against the noise-aware
    # ceiling the engine enforces (group noise)
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=10), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        for pre in ("none", "cd"):
            add("float32", data, k, m, (0.05, 0.2, 1.0), dtype="float32", precondition=pre)
    clip_data = dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=11)
    for pre in ("none", "cd"):
        add("max_value (entries in [0, c])", clip_data, 8, 500, (0.05, 0.2, 1.0),
            max_value_rel=1.5, precondition=pre)
        add("clip_update (|update| <= u)", clip_data, 8, 500, (0.05, 0.2, 1.0),
            clip_update_rel=0.05, precondition=pre)
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=4, noise=0.05, seed=12), 500, 12),
                       (dict(kind="faces"), 200, 40)):
        for pre in ("none", "cd"):
            add("over-specified rank", data, k, m, (0.05, 0.2, 1.0), precondition=pre)
    for pre in ("none", "cd"):
        add("sparse small batches", dict(kind="planted", m=2000, n=600, rank=10, noise=0.05, seed=13,
                                         density=0.02), 10, 2000, (0.005, 0.01), precondition=pre)
    for nu in (0.3, 3.0, 30.0):
        for pre in ("none", "cd"):
            for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=14), 500, 8),
                               (dict(kind="digits"), 1797, 10)):
                add("grad-noise x0.3/3/30, noise-aware ceiling", data, k, m, (0.05, 1.0),
                    noise_rel=nu, balance=True, precondition=pre, group="noise")
    # not part of the claim: noise without the balancing step, the per-block ceiling without
    # the minibatch factor, and a constant LR fixed at the init
    for nu in (0.05, 0.5):
        add("grad-noise, no balance", dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=4),
            8, 500, (0.05, 0.2, 1.0), noise_rel=nu, group="finding")
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=5), 500, 8),
                       (dict(kind="digits"), 1797, 10), (dict(kind="faces"), 200, 10)):
        add("per-block 2/L, no factor (old solver)", data, k, m, (0.05, 0.2, 1.0), mode="block", group="finding")
    for data, m, k in cd_data:
        add("cd, no factor (old solver)", data, k, m, (0.05, 0.2, 1.0), precondition="cd",
            mode="block", group="finding")
    for data, m, k in ((dict(kind="planted", m=500, n=300, rank=8, noise=0.05, seed=5), 500, 8),
                       (dict(kind="digits"), 1797, 10)):
        add("constant at init", data, k, m, (0.05, 0.2, 1.0), mode="const", group="finding")
    return specs, (0, 1)
