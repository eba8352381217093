"""Initialization rules (nmf_sched.init)."""
import numpy as np
import pytest
import scipy.sparse as sp

from nmf_sched import init as I
from nmf_sched.datasets import planted
from nmf_sched.init import INITS, initialize, randomized_svd

from conftest import TOL

RULES = ["random", "nndsvd", "nndsvda", "nndsvdar"]


@pytest.fixture(scope="module")
def P():
    return planted(60, 40, 5, noise=0.05, seed=3)


@pytest.fixture(scope="module")
def V(P):
    return P.V


def _relerr(V, W, H):
    Vd = V.toarray() if sp.issparse(V) else np.asarray(V)
    return np.linalg.norm(Vd - W @ H) / np.linalg.norm(Vd)


@pytest.mark.parametrize("init", RULES + ["auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_dtype_nonneg(V, init, dtype):
    W, H = initialize(V.astype(dtype), 5, init, seed=0)
    assert W.shape == (60, 5) and H.shape == (5, 40)
    assert W.dtype == dtype and H.dtype == dtype
    assert W.flags.c_contiguous and H.flags.c_contiguous
    assert (W >= 0).all() and (H >= 0).all()
    assert np.isfinite(W).all() and np.isfinite(H).all()
    if init != "nndsvd":
        assert (W.max(axis=0) > 0).all() and (H.max(axis=1) > 0).all()


def test_dtype_override(V):
    W, H = initialize(V, 3, "nndsvda", seed=0, dtype=np.float32)
    assert W.dtype == H.dtype == np.float32


@pytest.mark.parametrize("init", RULES)
def test_deterministic(V, init):
    W1, H1 = initialize(V, 5, init, seed=42)
    W2, H2 = initialize(V, 5, init, seed=42)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(H1, H2)
    if init in ("random", "nndsvdar"):
        W3, _ = initialize(V, 5, init, seed=43)
        assert not np.array_equal(W1, W3)


def test_deterministic_randomized_svd_path():
    S = planted(300, 200, 8, seed=1, density=0.2).V
    a = initialize(S, 8, "nndsvd", seed=5)
    b = initialize(S, 8, "nndsvd", seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_random_scale(P):
    W, H = initialize(P.V, 5, "random", seed=0)
    ratio = np.linalg.norm(W @ H) / np.linalg.norm(P.V)
    assert 1 / 3 < ratio < 3
    # scikit-learn's rule: entries sqrt(mean(V)/k) * |N(0, 1)|
    avg = np.sqrt(P.V.mean() / 5)
    assert abs(W.mean() / (avg * np.sqrt(2 / np.pi)) - 1) < 0.3


def test_auto_rule(V):
    Wa, Ha = initialize(V, 5, "auto", seed=0)
    Wb, Hb = initialize(V, 5, "nndsvda", seed=0)
    np.testing.assert_array_equal(Wa, Wb)
    Wa, Ha = initialize(V, 50, "auto", seed=0)  # 50 > min(60, 40)
    Wb, Hb = initialize(V, 50, "random", seed=0)
    np.testing.assert_array_equal(Ha, Hb)


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
def test_matches_sklearn(V, init):
    nmf = pytest.importorskip("sklearn.decomposition._nmf")
    W, H = initialize(V, 5, init, seed=0)
    Wr, Hr = nmf._initialize_nmf(V, 5, init="nndsvd", random_state=0)
    if init == "nndsvda":  # scikit-learn fills with mean(V), a unit of V; here sqrt(mean(V))
        assert (Wr == 0).any() and (Hr == 0).any()
        Wr, Hr = Wr.copy(), Hr.copy()
        Wr[Wr == 0] = np.sqrt(V.mean())
        Hr[Hr == 0] = np.sqrt(V.mean())
    np.testing.assert_allclose(W, Wr, rtol=TOL["svd"], atol=TOL["svd_abs"])
    np.testing.assert_allclose(H, Hr, rtol=TOL["svd"], atol=TOL["svd_abs"])
    assert abs(_relerr(V, W, H) - _relerr(V, Wr, Hr)) < TOL["svd"] * _relerr(V, Wr, Hr)


def test_nndsvdar_fills_small(V):
    W0, H0 = initialize(V, 5, "nndsvd", seed=0)
    W, H = initialize(V, 5, "nndsvdar", seed=0)
    zero = W0 == 0
    assert zero.any()
    np.testing.assert_array_equal(W[~zero], W0[~zero])
    assert (W[zero] > 0).all() and W[zero].max() < np.sqrt(V.mean()) / 100 * 6


def test_randomized_svd_matches_exact(V):
    U, s, Vt = randomized_svd(V, 5, np.random.default_rng(0))
    s_ref = np.linalg.svd(V, compute_uv=False)[:5]
    np.testing.assert_allclose(s, s_ref, rtol=TOL["float64_paths"])
    np.testing.assert_allclose(np.abs(U.T @ U), np.eye(5), rtol=TOL["float64_paths"],
                               atol=TOL["float64_paths_abs"])


def test_sparse_nndsvd_no_densify(monkeypatch):
    P = planted(400, 250, 6, noise=0.05, seed=4, density=0.3)
    S = P.V

    def boom(*a, **k):
        raise AssertionError("sparse V was densified")

    monkeypatch.setattr(sp.csr_array, "toarray", boom)
    monkeypatch.setattr(sp.csr_array, "todense", boom)
    monkeypatch.setattr(sp.csr_array, "__array__", boom, raising=False)
    Ws, Hs = initialize(S, 6, "nndsvd", seed=0)
    monkeypatch.undo()
    Wd, Hd = initialize(S.toarray(), 6, "nndsvd", seed=0)
    es, ed = _relerr(S, Ws, Hs), _relerr(S, Wd, Hd)
    assert abs(es - ed) < 0.02 * ed
    assert Ws.dtype == np.float64


@pytest.mark.parametrize("cheap", [True, False])
def test_large_dense_uses_randomized(monkeypatch, P, cheap):
    monkeypatch.setattr(I, "_EXACT_MAX_DIM", 10)
    if not cheap:
        monkeypatch.setattr(I, "_INIT_CHEAP_ENTRIES", 0)
    W, H = initialize(P.V, 5, "nndsvd", seed=0)
    monkeypatch.undo()
    Wr, Hr = initialize(P.V, 5, "nndsvd", seed=0)
    tol = TOL["svd"] if cheap else TOL["svd_init"]
    np.testing.assert_allclose(W, Wr, rtol=tol, atol=TOL["svd_abs"])


def _quality_cases():
    from nmf_sched.datasets import sparse_tfidf

    return [("planted", planted(300, 200, 8, noise=0.1, seed=1).V),
            ("tfidf", sparse_tfidf(1500, 1200, density=0.01, rank=10, seed=0))]


@pytest.mark.parametrize("case", [0, 1])
@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
@pytest.mark.parametrize("k", [5, 12])
def test_init_svd_quality_does_not_drop(monkeypatch, case, init, k):
    """The init's cheap randomized SVD (2 LU-normalized power iterations) against the
    7-iteration QR one it replaced: the init's relative error is at most 1% higher."""
    name, V = _quality_cases()[case]
    monkeypatch.setattr(I, "_EXACT_MAX_DIM", 0)  # the randomized path on every shape
    monkeypatch.setattr(I, "_INIT_CHEAP_ENTRIES", 0)  # and its cheap settings
    W, H = initialize(V, k, init, seed=0)
    monkeypatch.setattr(I, "_INIT_POWER_ITERS", "auto")
    monkeypatch.setattr(I, "_INIT_NORMALIZER", "qr")
    Wr, Hr = initialize(V, k, init, seed=0)
    assert not np.array_equal(W, Wr)  # the two paths differ
    assert _relerr(V, W, H) <= _relerr(V, Wr, Hr) * (1 + TOL["init_quality"]), name


def test_randomized_svd_lu_normalizer_matches_qr(V):
    U, s, Vt = randomized_svd(V, 5, np.random.default_rng(0), normalizer="lu")
    s_ref = np.linalg.svd(V, compute_uv=False)[:5]
    np.testing.assert_allclose(s, s_ref, rtol=TOL["float64_paths"])
    np.testing.assert_allclose(np.abs(U.T @ U), np.eye(5), rtol=TOL["float64_paths"],
                               atol=TOL["float64_paths_abs"])


@pytest.mark.parametrize("kw, match", [(dict(normalizer="svd"), "normalizer"),
                                       (dict(n_iter=-1), "n_iter"), (dict(n_iter=2.5), "n_iter")])
def test_randomized_svd_bad_arguments(V, kw, match):
    with pytest.raises(ValueError, match=match):
        randomized_svd(V, 5, np.random.default_rng(0), **kw)


def test_memmap_input(tmp_path, V):
    p = tmp_path / "v.npy"
    np.save(p, V.astype(np.float32))
    mm = np.load(p, mmap_mode="r")
    W, H = initialize(mm, 4, "nndsvda", seed=0)
    W2, H2 = initialize(np.array(mm), 4, "nndsvda", seed=0)
    np.testing.assert_array_equal(W, W2)
    assert W.dtype == np.float32


def test_rank_deficient_nndsvda_has_no_zero_columns():
    rng = np.random.default_rng(0)
    V = rng.random((30, 2)) @ rng.random((2, 20))  # rank 2, ask for 6
    W, H = initialize(V, 6, "nndsvda", seed=0)
    assert (W.max(axis=0) > 0).all() and (H.max(axis=1) > 0).all()
    W, H = initialize(V, 6, "nndsvd", seed=0)  # zeros allowed here
    assert np.isfinite(W).all() and np.isfinite(H).all()


def test_tiny_scale_not_truncated_to_zero():
    V = planted(20, 15, 3, seed=0).V * 1e-9
    W, H = initialize(V, 3, "nndsvd", seed=0)
    assert (W[:, 0] > 0).all() and (H[0] > 0).all()


@pytest.mark.parametrize("init", RULES)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("c", [4.0**-10, 4.0, 4.0**10])
def test_scale_equivariant(V, init, sparse, c):
    """initialize(c V) == sqrt(c) initialize(V), bit for bit for c a power of four (the
    NNDSVD truncation is relative, the fills have the unit of sqrt(V))."""
    X = sp.csr_array(V) if sparse else V
    W, H = initialize(X, 5, init, seed=0)
    Wc, Hc = initialize(X * c, 5, init, seed=0)
    assert np.array_equal(Wc, np.sqrt(c) * W) and np.array_equal(Hc, np.sqrt(c) * H)


def test_large_scale_truncation_is_relative():
    """Entries below 1e-6 of a factor's largest are cut at every scale (scikit-learn's
    absolute 1e-6 would keep them for large V)."""
    V = planted(60, 40, 5, seed=3).V
    W, H = initialize(V, 5, "nndsvd", seed=0)
    Wc, _ = initialize(V * 4.0**12, 5, "nndsvd", seed=0)
    assert np.array_equal(Wc == 0, W == 0)
    nz = Wc[Wc > 0]
    assert nz.min() >= 1e-6 * Wc.max()


# ---------------------------------------------------------------------------
# custom and errors
# ---------------------------------------------------------------------------
def test_custom(V):
    rng = np.random.default_rng(0)
    W0, H0 = rng.random((60, 5)), rng.random((5, 40))
    for init in ("custom", "auto"):
        W, H = initialize(V.astype(np.float32), 5, init, W0=W0, H0=H0)
        assert W.dtype == np.float32 and W.flags.c_contiguous
        np.testing.assert_allclose(W, W0, rtol=TOL["io_f32"])
        assert not np.shares_memory(W, W0)
    W, H = initialize(V, 5, "custom", W0=W0.tolist(), H0=H0)
    W[0, 0] = 123.0
    assert W0[0, 0] != 123.0


@pytest.mark.parametrize("W0,H0,match", [
    (np.ones((60, 4)), np.ones((5, 40)), r"W0 must have shape \(60, 5\); got shape \(60, 4\)"),
    (np.ones((60, 5)), np.ones((40, 5)), r"H0 must have shape \(5, 40\); got shape \(40, 5\)"),
    (-np.ones((60, 5)), np.ones((5, 40)), r"W0 must be non-negative.*-1"),
    (np.ones((60, 5)), np.full((5, 40), np.nan), "H0 contains NaN"),
    (np.ones((60, 5)), np.full((5, 40), np.inf), "H0 contains infinite"),
    (np.zeros((60, 5)), np.ones((5, 40)), "W0 is all zero"),
    (np.ones((60, 5)), None, "H0 is None"),
    (None, np.ones((5, 40)), "W0 is None"),
])
def test_custom_bad(V, W0, H0, match):
    with pytest.raises(ValueError, match=match):
        initialize(V, 5, "custom", W0=W0, H0=H0)


def test_custom_sparse_factor_rejected(V):
    with pytest.raises(TypeError, match="W0"):
        initialize(V, 5, "custom", W0=sp.csr_matrix(np.ones((60, 5))),
                   H0=np.ones((5, 40)))


def test_errors(V):
    with pytest.raises(ValueError, match="init must be one of.*nndsvda.*'bogus'"):
        initialize(V, 3, "bogus")
    assert set(INITS) >= {"random", "nndsvd", "nndsvda", "nndsvdar", "custom", "auto"}
    with pytest.raises(ValueError, match=r"rank <= min\(m, n\) = 40"):
        initialize(V, 41, "nndsvd")
    with pytest.raises(ValueError, match="W0/H0 are only used"):
        initialize(V, 5, "random", W0=np.ones((60, 5)), H0=np.ones((5, 40)))
    for bad, exc in [(0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError)]:
        with pytest.raises(exc, match="rank"):
            initialize(V, bad)
    with pytest.raises(ValueError, match="V must be non-negative"):
        initialize(-V, 3)
    with pytest.raises(TypeError, match="seed"):
        initialize(V, 3, "random", seed="x")
