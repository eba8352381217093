"""The epoch loop: equivalence with naive references, the stochastic model,
determinism, dtypes, sparse and memmap input, the ceiling and the guard."""
import math
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import nmf_sched
from nmf_sched.result import STOP_REASONS

from conftest import TOL, planted_dense
from reference import loss as ref_loss
from reference import pgd_full_batch, pgd_full_batch_gram


def _init(V, k, seed=1):
    r = np.random.default_rng(seed)
    s = math.sqrt(V.mean() / k)
    return s * r.random((V.shape[0], k)), s * r.random((k, V.shape[1]))


def test_full_batch_plain_is_projected_gradient_descent(small_dense):
    V = small_dense
    W0, H0 = _init(V, 5)
    lr = 0.5 / np.linalg.norm(V, 2) ** 2 * 5
    res = nmf_sched.fit(V, 5, schedule=lr, W0=W0, H0=H0, batch_size=V.shape[0], epochs=15,
                        precondition="none", clip_lr=False, tol=0, balance=False)
    Wr, Hr = pgd_full_batch(V, W0, H0, lr, 15)
    np.testing.assert_allclose(res.W, Wr, rtol=TOL["float64"], atol=TOL["float64_abs"])
    np.testing.assert_allclose(res.H, Hr, rtol=TOL["float64"], atol=TOL["float64_abs"])
    assert res.n_epochs == 15 and res.n_steps == 15


def test_full_batch_gram_matches_reference(small_dense):
    V = small_dense
    W0, H0 = _init(V, 5)
    res = nmf_sched.fit(V, 5, schedule=0.7, W0=W0, H0=H0, batch_size=10**6, epochs=8,
                        precondition="gram", clip_lr=False, tol=0, balance=False)
    Wr, Hr = pgd_full_batch_gram(V, W0, H0, 0.7, 8)
    np.testing.assert_allclose(res.W, Wr, rtol=TOL["gram"], atol=TOL["float64_paths_abs"])
    np.testing.assert_allclose(res.H, Hr, rtol=TOL["gram"], atol=TOL["float64_paths_abs"])


@pytest.mark.parametrize("precondition", ["none", "lipschitz", "gram"])
@pytest.mark.parametrize("batch_size", [7, 32, 120])
def test_trace_loss_is_the_exact_loss(small_dense, precondition, batch_size):
    V = small_dense
    res = nmf_sched.fit(V, 4, schedule=0.3 if precondition != "none" else 1e-3, seed=0,
                        epochs=5, batch_size=batch_size, precondition=precondition, tol=0)
    exact = ref_loss(V, res.W, res.H)
    assert res.trace[-1]["loss"] == pytest.approx(exact, rel=TOL["identity"])
    assert res.loss == pytest.approx(exact, rel=TOL["identity"])
    assert res.rel_error == pytest.approx(math.sqrt(2 * exact) / np.linalg.norm(V),
                                          rel=TOL["identity"])
    assert (res.W >= 0).all() and (res.H >= 0).all()


def test_same_seed_bit_identical_and_different_seed_differs(small_dense):
    a = nmf_sched.fit(small_dense, 4, seed=3, epochs=6, batch_size=16)
    b = nmf_sched.fit(small_dense, 4, seed=3, epochs=6, batch_size=16)
    c = nmf_sched.fit(small_dense, 4, seed=4, epochs=6, batch_size=16)
    assert np.array_equal(a.W, b.W) and np.array_equal(a.H, b.H)
    assert not np.array_equal(a.W, c.W)


def test_sparse_and_dense_take_the_same_path(small_dense):
    V = small_dense.copy()
    V[V < np.quantile(V, 0.6)] = 0.0
    kw = dict(seed=5, epochs=5, batch_size=25, init="random", tol=0)
    d = nmf_sched.fit(V, 4, **kw)
    s = nmf_sched.fit(sp.csr_matrix(V), 4, **kw)
    np.testing.assert_allclose(s.W, d.W, rtol=TOL["float64_paths"], atol=TOL["float64_paths_abs"])
    np.testing.assert_allclose(s.H, d.H, rtol=TOL["float64_paths"], atol=TOL["float64_paths_abs"])
    for fmt in ("csc", "coo"):
        r = nmf_sched.fit(sp.csr_matrix(V).asformat(fmt), 4, **kw)
        np.testing.assert_allclose(r.W, d.W, rtol=TOL["float64_paths"],
                                   atol=TOL["float64_paths_abs"])


def test_float32_stays_float32_and_agrees_with_float64(small_dense):
    kw = dict(seed=2, epochs=10, batch_size=30, init="random", tol=0)
    r32 = nmf_sched.fit(small_dense.astype(np.float32), 4, **kw)
    r64 = nmf_sched.fit(small_dense, 4, **kw)
    assert r32.W.dtype == np.float32 and r32.H.dtype == np.float32
    assert r32.rel_error == pytest.approx(r64.rel_error, rel=TOL["float32_fit"])
    r32s = nmf_sched.fit(sp.csr_matrix(small_dense.astype(np.float32)), 4, **kw)
    assert r32s.W.dtype == np.float32


def test_memmap_input(tmp_path, small_dense):
    path = tmp_path / "V.npy"
    np.save(path, small_dense)
    mm = np.load(path, mmap_mode="r")
    a = nmf_sched.fit(mm, 4, seed=0, epochs=4, batch_size=20)
    b = nmf_sched.fit(small_dense, 4, seed=0, epochs=4, batch_size=20)
    np.testing.assert_allclose(a.W, b.W, rtol=TOL["float64"])


def test_minibatch_converges_on_planted_problem():
    V = planted_dense(400, 200, 6, noise=0.02, seed=1)
    res = nmf_sched.fit(V, 6, seed=0, epochs=150, batch_size=64)
    assert res.trace[-1]["loss"] < 0.05 * res.trace[0]["loss"]
    assert res.rel_error < 0.05
    assert res.stop_reason in ("tol", "max_epochs")


def test_no_m_by_n_temporaries():
    m, n, k, b = 2000, 1000, 8, 100
    V = planted_dense(m, n, k, seed=2)
    nmf_sched.fit(V, k, seed=0, epochs=1, batch_size=b)  # warm up the code paths
    tracemalloc.start()
    nmf_sched.fit(V, k, seed=0, epochs=3, batch_size=b, init="random")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # V is 16 MB; the factors and a b x n batch buffer are < 1 MB each
    assert peak < V.nbytes / 4, f"peak traced allocation {peak / 1e6:.1f} MB"


def test_clip_lr_caps_the_step_at_kappa_times_ceiling(small_dense):
    res = nmf_sched.fit(small_dense, 4, schedule=1e6, precondition="none", batch_size=10**6,
                        epochs=5, kappa=0.8, seed=0, tol=0)
    for row in res.trace[1:]:
        assert row["step_W"] == pytest.approx(0.8 * row["ceiling_W"], rel=TOL["exact"])
        assert row["step_H"] == pytest.approx(0.8 * row["ceiling_H"], rel=TOL["exact"])
        assert row["lr_W"] == 1e6
    # and below the ceiling the schedule's LR is used as is
    small = nmf_sched.fit(small_dense, 4, schedule=1e-6, precondition="none", epochs=3, seed=0)
    assert all(r["step_W"] == pytest.approx(1e-6, rel=TOL["exact"]) for r in small.trace[1:])
    assert res.stop_reason != "diverged"


def test_guard_recovers_and_factors_never_nan(small_dense):
    res = nmf_sched.fit(small_dense, 4, schedule=10.0, precondition="none", clip_lr=False,
                        epochs=20, seed=0, tol=0)
    assert np.isfinite(res.W).all() and np.isfinite(res.H).all()
    assert res.trace[-1]["retries"] >= 1
    assert math.isfinite(res.loss)
    # the guard caps and damps the step until the run makes progress: it never gives up here
    assert res.stop_reason == "max_epochs"
    assert res.loss < res.trace[0]["loss"]


def test_guard_off_stops_at_first_divergence_with_last_good_factors(small_dense):
    res = nmf_sched.fit(small_dense, 4, schedule=1e3, precondition="none", clip_lr=False,
                        guard=False, epochs=20, seed=0)
    assert res.stop_reason == "diverged"
    assert np.isfinite(res.W).all() and np.isfinite(res.H).all()
    assert res.loss == pytest.approx(ref_loss(small_dense, res.W, res.H), rel=TOL["identity"])


def test_stop_reasons(small_dense):
    r = nmf_sched.fit(small_dense, 4, epochs=3, seed=0, tol=0)
    assert r.stop_reason == "max_epochs" and r.n_epochs == 3 and len(r.trace) == 4
    r = nmf_sched.fit(small_dense, 4, epochs=500, seed=0, tol=1e-3)
    assert r.stop_reason == "tol" and r.n_epochs < 500
    r = nmf_sched.fit(small_dense, 4, epochs=10**6, seed=0, tol=0, max_time=0.3)
    assert r.stop_reason == "max_time" and r.seconds < 5
    calls = []
    r = nmf_sched.fit(small_dense, 4, epochs=50, seed=0, tol=0,
                      callback=lambda rec, W, H: calls.append(rec["epoch"]) or rec["epoch"] >= 4)
    assert r.stop_reason == "callback" and calls == [1, 2, 3, 4]
    r = nmf_sched.fit(small_dense, 4, schedule=1e3, precondition="none", clip_lr=False,
                      guard=False, epochs=20, seed=0)
    assert r.stop_reason == "diverged"
    # every reason a run can stop for is one of the documented ones (all five seen above)
    assert r.stop_reason in STOP_REASONS


def test_noise_changes_the_path_but_stays_stable(small_dense):
    a = nmf_sched.fit(small_dense, 4, epochs=10, seed=0, tol=0)
    b = nmf_sched.fit(small_dense, 4, epochs=10, seed=0, tol=0, noise_std=0.05)
    assert not np.allclose(a.W, b.W, rtol=TOL["differs"], atol=0)
    assert np.isfinite(b.loss) and b.loss < b.trace[0]["loss"]


def test_per_block_and_per_entry_learning_rates(small_dense):
    m, n = small_dense.shape

    class PerEntry:
        needs = ()

        def init(self):
            return {}

        def lr(self, state):
            return {"W": np.full((m, 4), 0.5), "H": np.full((4, n), 0.5)}

        def update(self, state, info):
            return {}

    kw = dict(epochs=4, seed=0, tol=0, precondition="gram")
    a = nmf_sched.fit(small_dense, 4, schedule=PerEntry(), **kw)
    b = nmf_sched.fit(small_dense, 4, schedule=0.5, **kw)
    np.testing.assert_allclose(a.W, b.W, rtol=TOL["exact"])
    with pytest.raises(ValueError, match="per-entry"):
        nmf_sched.fit(small_dense, 4, schedule=PerEntry(), epochs=1, precondition="cd")

    class PerBlock(PerEntry):
        def lr(self, state):
            return {"W": 0.5, "H": 0.0}

    c = nmf_sched.fit(small_dense, 4, schedule=PerBlock(), epochs=3, seed=0, tol=0, balance=False)
    d = nmf_sched.fit(small_dense, 4, schedule=PerBlock(), epochs=0 + 1, seed=0, tol=0,
                      balance=False)
    np.testing.assert_array_equal(c.H, d.H)  # H never moves with lr_H = 0


def test_schedule_every_ticks_within_epochs(small_dense):
    seen = []

    class Spy:
        needs = ("ceilings",)

        def init(self):
            return {}

        def lr(self, state):
            return 0.5

        def update(self, state, info):
            seen.append((info.tick, info.step, info.epoch, info.loss, dict(info.extras)))
            return {}

    nmf_sched.fit(small_dense, 4, schedule=Spy(), epochs=2, batch_size=20, schedule_every=2,
                  seed=0, tol=0)
    ticks = [s[0] for s in seen]
    assert ticks == list(range(len(seen)))  # 0 first (initial observation), then 1, 2, ...
    assert seen[0][1] == 0 and seen[0][3] > 0
    assert all(set(s[4]["ceilings"]) == {"W", "H"} for s in seen)
    # 6 batches per epoch, a tick every 2 batches: 2 mid-epoch ticks + 1 epoch tick per epoch
    assert len(seen) == 1 + 2 * 3


def test_balance_every_epoch_keeps_the_loss_and_equalizes_components(small_dense):
    kw = dict(epochs=6, seed=3, tol=0, batch_size=16, schedule=0.8)
    on = nmf_sched.fit(small_dense, 4, **kw)
    wn, hn = np.linalg.norm(on.W, axis=0), np.linalg.norm(on.H, axis=1)
    live = (wn > 0) & (hn > 0)
    assert live.any()
    np.testing.assert_allclose(wn[live], hn[live], rtol=TOL["float64_paths"])
    off = nmf_sched.fit(small_dense, 4, balance=False, **kw)
    # balancing after an epoch changes W and H but not W H (nor the recorded loss of that epoch)
    one_on = nmf_sched.fit(small_dense, 4, **{**kw, "epochs": 1})
    one_off = nmf_sched.fit(small_dense, 4, balance=False, **{**kw, "epochs": 1})
    np.testing.assert_allclose(one_on.W @ one_on.H, one_off.W @ one_off.H, rtol=TOL["float64"],
                               atol=TOL["float64_abs"])
    assert one_on.loss == pytest.approx(one_off.loss, rel=TOL["float64"])
    assert not np.allclose(one_on.W, one_off.W, rtol=TOL["differs"], atol=0)
    assert np.isfinite(off.loss) and on.settings["balance"] and not off.settings["balance"]


def test_rescale_init_rule(small_dense):
    V = small_dense
    vsq = float(np.sum(V ** 2))
    for init in ("nndsvda", "random"):
        on = nmf_sched.fit(V, 4, init=init, seed=0, epochs=1)
        off = nmf_sched.fit(V, 4, init=init, seed=0, epochs=1, rescale_init=False)
        # the rule scales W H by the best scalar: the residual never exceeds the data
        # and is never worse than the raw init's
        assert on.trace[0]["loss"] <= 0.5 * vsq * (1 + TOL["exact"])
        assert on.trace[0]["loss"] <= off.trace[0]["loss"] * (1 + TOL["exact"])
        assert on.settings["rescale_init"] and not off.settings["rescale_init"]
    # W0/H0 are the user's: never rescaled
    W0, H0 = _init(V, 4)
    res = nmf_sched.fit(V, 4, W0=W0, H0=H0, epochs=1)
    assert res.trace[0]["loss"] == pytest.approx(ref_loss(V, W0, H0), rel=TOL["identity"])
    assert not res.settings["rescale_init"]
    with pytest.raises(TypeError, match="rescale_init"):
        nmf_sched.fit(V, 4, rescale_init="yes")
    with pytest.raises(TypeError, match="balance"):
        nmf_sched.fit(V, 4, balance=1)


@pytest.mark.parametrize("precondition", ["cd", "gram", "lipschitz"])
def test_minibatch_coupling_factor_in_the_recorded_ceilings(small_dense, precondition):
    m = small_dense.shape[0]
    for b in (m, m // 4):
        res = nmf_sched.fit(small_dense, 4, batch_size=b, epochs=2, seed=0, tol=0,
                            precondition=precondition)
        n_batches = -(-m // b)
        smallest_batch = m - (n_batches - 1) * b
        f = 0.5 * (1 + smallest_batch / m)
        # the W ceiling in a dimensionless unit is 2 per block, times the coupling factor
        # (the worst batch of the epoch: the smallest)
        assert res.trace[1]["ceiling_W"] == pytest.approx(2.0 * f, rel=TOL["exact"])
