"""Synthetic and offline real datasets (nmf_sched.datasets)."""
import numpy as np
import pytest
import scipy.sparse as sp

from nmf_sched import datasets as ds
from nmf_sched.data import check_matrix

from conftest import TOL


def _assert_nonneg_dense(X, shape):
    assert isinstance(X, np.ndarray) and X.shape == shape
    assert X.dtype == np.float64 and X.flags.c_contiguous
    assert X.min() >= 0 and X.max() > 0 and np.isfinite(X).all()


# ---------------------------------------------------------------------------
# planted
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dist", ["uniform", "exponential", "halfnormal"])
def test_planted_dense(dist):
    P = ds.planted(50, 30, 4, noise=0.1, seed=1, dist=dist)
    _assert_nonneg_dense(P.V, (50, 30))
    assert P.W.shape == (50, 4) and P.H.shape == (4, 30) and P.rank == 4
    assert (P.W >= 0).all() and (P.H >= 0).all()
    WH = P.W @ P.H
    rel = np.std(P.V - WH) / np.std(WH)
    assert 0.05 < rel < 0.15  # relative noise ~0.1 (clipping lowers it a bit)
    assert dist in P.describe() and "50 x 30" in P.describe()
    check_matrix(P.V)


def test_planted_noiseless_exact():
    P = ds.planted(20, 10, 3, noise=0.0, seed=0)
    np.testing.assert_allclose(P.V, P.W @ P.H, rtol=TOL["float64"])


def test_planted_deterministic():
    a = ds.planted(40, 20, 3, seed=7)
    b = ds.planted(40, 20, 3, seed=7)
    c = ds.planted(40, 20, 3, seed=8)
    np.testing.assert_array_equal(a.V, b.V)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.V, c.V)
    s1 = ds.planted(40, 20, 3, seed=7, density=0.2).V
    s2 = ds.planted(40, 20, 3, seed=7, density=0.2).V
    assert (s1 != s2).nnz == 0


def test_planted_float32():
    P = ds.planted(30, 20, 3, seed=0, dtype=np.float32)
    assert P.V.dtype == P.W.dtype == P.H.dtype == np.float32
    assert ds.planted(30, 20, 3, seed=0, density=0.5, dtype=np.float32).V.dtype == np.float32


@pytest.mark.parametrize("condition", [20.0, 1000.0])
def test_planted_condition(condition):
    P = ds.planted(200, 50, 6, seed=2, condition=condition)
    s = np.linalg.svd(P.W, compute_uv=False)
    assert s[0] / s[-1] == pytest.approx(condition, rel=TOL["svd"])
    assert P.cond_W == pytest.approx(condition, rel=TOL["svd"])
    assert f"{condition:g}" in P.describe()


def test_planted_sparse():
    P = ds.planted(300, 200, 5, seed=3, density=0.05, noise=0.0)
    V = P.V
    assert isinstance(V, sp.csr_array) and V.has_canonical_format
    assert V.nnz == pytest.approx(0.05 * 300 * 200, rel=TOL["density"])
    rows, cols = V.nonzero()
    np.testing.assert_allclose(V.data, np.einsum("ij,ji->i", P.W[rows], P.H[:, cols]),
                               rtol=TOL["float64"])
    assert "sparse" in P.describe()
    check_matrix(V)


def test_planted_sparse_large_is_cheap():
    V = ds.planted(20000, 10000, 8, seed=0, density=0.001).V  # 2e8 cells, 2e5 kept
    assert V.shape == (20000, 10000) and V.nnz == pytest.approx(2e5, rel=TOL["density"])


@pytest.mark.parametrize("kw,exc,match", [
    (dict(dist="gauss"), ValueError, "dist must be one of"),
    (dict(noise=-1), ValueError, "noise"),
    (dict(density=0.0), ValueError, "density"),
    (dict(density=1.5), ValueError, "density"),
    (dict(condition=0.5), ValueError, "condition"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(dtype=np.int64), TypeError, "dtype"),
])
def test_planted_bad(kw, exc, match):
    with pytest.raises(exc, match=match):
        ds.planted(10, 10, 2, **kw)


def test_planted_bad_sizes():
    with pytest.raises(ValueError, match="rank"):
        ds.planted(10, 10, 0)
    with pytest.raises(TypeError, match="m"):
        ds.planted(10.0, 10, 2)


# ---------------------------------------------------------------------------
# sparse_tfidf
# ---------------------------------------------------------------------------
def test_tfidf_properties():
    X = ds.sparse_tfidf(20000, 5000, density=0.005, rank=10, seed=0)
    assert isinstance(X, sp.csr_array) and X.shape == (20000, 5000)
    assert X.has_canonical_format
    assert X.nnz / X.shape[0] / X.shape[1] == pytest.approx(0.005, rel=TOL["density"])
    assert X.data.min() > 0
    norms = np.sqrt(np.bincount(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)),
                                weights=X.data ** 2, minlength=X.shape[0]))
    np.testing.assert_allclose(norms, 1.0, rtol=TOL["float64"])
    # Zipf-like popularity: the top 1% of terms hold a large share of entries
    df = np.sort(np.bincount(X.indices, minlength=5000))[::-1]
    assert df[:50].sum() > 0.2 * df.sum()
    check_matrix(X)


def test_tfidf_deterministic_and_dtype():
    a = ds.sparse_tfidf(500, 300, density=0.02, seed=4)
    b = ds.sparse_tfidf(500, 300, density=0.02, seed=4)
    assert (a != b).nnz == 0
    c = ds.sparse_tfidf(500, 300, density=0.02, seed=5)
    assert (a != c).nnz > 0
    assert ds.sparse_tfidf(100, 50, density=0.1, dtype=np.float32).dtype == np.float32


# ---------------------------------------------------------------------------
# source_tfidf: real text shipped with Python
# ---------------------------------------------------------------------------
def test_source_tfidf_is_a_real_tfidf():
    X = ds.source_tfidf(max_files=300, max_terms=2000)
    assert isinstance(X, sp.csr_array) and X.shape[1] == 2000
    assert X.shape[0] > 250  # the standard library has far more than 300 source files
    assert X.has_canonical_format and X.data.min() > 0
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=TOL["float64"])
    df = np.bincount(X.indices, minlength=X.shape[1])
    assert df.min() >= 2 and df.max() <= 0.5 * X.shape[0]  # min_df / max_df honoured
    check_matrix(X)


def test_source_tfidf_naive_entry():
    """One entry recomputed by hand from the file's text: (1 + log tf) * idf, row-normalized."""
    import re

    files = ds._stdlib_files(40)
    X = ds.source_tfidf(max_files=40, max_terms=500, min_df=1, max_df=1.0)
    texts = [open(f, encoding="utf-8", errors="replace").read() for f in files]
    toks = [[t.lower() for t in re.findall(r"[A-Za-z_][A-Za-z0-9_]{2,}", s)] for s in texts]
    keep = [t for t in toks if t]
    assert X.shape[0] == len(keep)
    from collections import Counter
    df = Counter(w for t in keep for w in set(t))
    vocab = sorted(w for w, _ in sorted(df.items(), key=lambda x: (-x[1], x[0]))[:500])
    N = len(keep)
    row = []
    for w in vocab:
        tf = keep[0].count(w)
        row.append((1 + np.log(tf)) * (np.log((1 + N) / (1 + df[w])) + 1) if tf else 0.0)
    row = np.array(row) / np.linalg.norm(row)
    np.testing.assert_allclose(X[[0]].toarray().ravel(), row, rtol=TOL["float64"],
                               atol=TOL["float64"])


def test_source_tfidf_bad_arguments():
    with pytest.raises(ValueError, match="max_df"):
        ds.source_tfidf(max_df=0)
    with pytest.raises(ValueError, match="max_files"):
        ds.source_tfidf(max_files=0)
    assert ds.source_tfidf(max_files=30, max_terms=100, dtype=np.float32).dtype == np.float32


# ---------------------------------------------------------------------------
# real data (bench extra)
# ---------------------------------------------------------------------------
def test_digits():
    pytest.importorskip("sklearn")
    X = ds.digits()
    _assert_nonneg_dense(X, (1797, 64))
    assert X.max() == 16


def test_faces():
    pytest.importorskip("skimage")
    X = ds.faces()
    _assert_nonneg_dense(X, (200, 625))
    assert X.max() <= 1


def test_camera_patches():
    skd = pytest.importorskip("skimage.data")
    X = ds.camera_patches()
    _assert_nonneg_dense(X, (253 ** 2, 64))
    assert X.max() <= 1
    img = skd.camera() / 255.0
    np.testing.assert_allclose(X[1].reshape(8, 8), img[0:8, 2:10], rtol=TOL["exact"])
    np.testing.assert_allclose(X[253].reshape(8, 8), img[2:10, 0:8], rtol=TOL["exact"])
    assert ds.camera_patches(patch=4, step=100).shape == (36, 16)
    with pytest.raises(ValueError, match="patch"):
        ds.camera_patches(patch=0)


def test_astronaut_patches():
    pytest.importorskip("skimage")
    _assert_nonneg_dense(ds.astronaut_patches(), (127 ** 2, 64))
    X = ds.astronaut_patches(patch=4, step=64, gray=False)
    _assert_nonneg_dense(X, (64, 48))


def test_missing_extra_message(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"scikit-learn.*'bench' extra"):
        ds.digits()


# ---------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------
def test_load_dispatch():
    P = ds.load("planted", m=10, n=8, rank=2, seed=0)
    assert isinstance(P, ds.Planted)
    assert ds.load("sparse_tfidf", m=50, n=40, density=0.1).shape == (50, 40)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*digits.*camera_patches"):
        ds.load("mnist")
    assert set(ds.NAMES) >= {"digits", "faces", "camera_patches", "planted", "sparse_tfidf"}


def test_no_data_at_import():
    big = [v for v in vars(ds).values() if isinstance(v, np.ndarray) or sp.issparse(v)]
    assert big == []
