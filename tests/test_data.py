"""Validation and file reading (nmf_sched.data)."""
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from nmf_sched import data as D
from nmf_sched.data import (
    check_matrix, check_nonneg_float, check_positive_int, check_rank, check_seed,
    load_matrix, row_sqnorms, sqnorm,
)

from conftest import TOL


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def V(rng):
    return rng.random((7, 5))


# ---------------------------------------------------------------------------
# check_matrix: accepted input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contiguous_float_not_copied(V, dtype):
    A = np.ascontiguousarray(V, dtype=dtype)
    out = check_matrix(A)
    assert out is A


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memmap_not_copied(tmp_path, V, dtype):
    path = tmp_path / "v.npy"
    np.save(path, V.astype(dtype))
    mm = np.load(path, mmap_mode="r")
    out = check_matrix(mm)
    assert out is mm
    assert isinstance(out, np.memmap)
    mm2 = np.memmap(tmp_path / "raw.bin", dtype=dtype, mode="w+", shape=V.shape)
    mm2[:] = V
    out2 = check_matrix(mm2)
    assert np.shares_memory(out2, mm2) and out2.dtype == dtype


def test_memmap_chunked_scan(tmp_path, V, monkeypatch):
    """Tiny chunks: the scan still finds a bad value in the last block."""
    monkeypatch.setattr(D, "CHUNK_BYTES", 2 * V.shape[1] * 8)
    W = V.copy()
    W[-1, -1] = -3.0
    path = tmp_path / "neg.npy"
    np.save(path, W)
    with pytest.raises(ValueError, match=r"non-negative.*-3.*row 6"):
        check_matrix(np.load(path, mmap_mode="r"))
    W[-1, -1] = np.nan
    np.save(path, W)
    with pytest.raises(ValueError, match=r"NaN.*row 6"):
        check_matrix(np.load(path, mmap_mode="r"))
    assert np.isclose(sqnorm(np.load(tmp_path / "neg.npy", mmap_mode="r")[:-1]),
                      (V[:-1] ** 2).sum(), rtol=TOL["float64"], atol=0)


@pytest.mark.parametrize("dtype,expected", [
    (np.bool_, np.float64), (np.int8, np.float64), (np.int64, np.float64),
    (np.uint16, np.float64), (np.float16, np.float32), (np.float32, np.float32),
    (np.float64, np.float64),
])
def test_dtype_rules(V, dtype, expected):
    out = check_matrix((V * 10).astype(dtype) + (dtype is np.bool_))
    assert out.dtype == expected and out.flags.c_contiguous


def test_dtype_override_and_fortran(V):
    out = check_matrix(np.asfortranarray(V), dtype=np.float32)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, V, rtol=TOL["io_f32"])
    with pytest.raises(TypeError, match="dtype"):
        check_matrix(V, dtype=np.int32)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_list_and_array_like(V):
    out = check_matrix(V.tolist())
    np.testing.assert_array_equal(out, V)

    class ArrayLike:
        def __array__(self, dtype=None, copy=None):
            return V

    np.testing.assert_array_equal(check_matrix(ArrayLike()), V)
    np.testing.assert_array_equal(check_matrix(np.asmatrix(V)), V)
    assert type(check_matrix(np.asmatrix(V))) is np.ndarray


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "dok", "bsr", "dia"])
def test_sparse_formats_to_csr(rng, fmt):
    S = sp.random(20, 10, density=0.3, random_state=0, format=fmt)
    out = check_matrix(S)
    assert isinstance(out, sp.csr_array) and out.has_canonical_format
    np.testing.assert_allclose(out.toarray(), S.toarray(), rtol=TOL["exact"])


def test_sparse_duplicates_summed_input_untouched():
    S = sp.coo_matrix(([1.0, 2.0, 3.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 3))
    C = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]),
                       np.array([0, 2, 3])), shape=(2, 3))
    for A in (S, C):
        out = check_matrix(A)
        assert out.has_canonical_format and out.nnz == 2
        assert out[0, 1] == 3.0
    assert C.nnz == 3  # caller's matrix not modified


def test_sparse_dtypes_and_no_copy():
    S = sp.random(10, 8, density=0.4, random_state=1, format="csr", dtype=np.float32)
    out = check_matrix(S)
    assert out.dtype == np.float32 and np.shares_memory(out.data, S.data)
    A = sp.csr_array(S)
    assert check_matrix(A) is A
    Si = (S * 10).astype(np.int32)
    Si.data[:] = np.maximum(Si.data, 1)
    assert check_matrix(Si).dtype == np.float64


# ---------------------------------------------------------------------------
# check_matrix: rejected input
# ---------------------------------------------------------------------------
def _sparse_with(value):
    S = sp.random(6, 5, density=0.5, random_state=0, format="csr")
    S.data[0] = value
    return S


@pytest.mark.parametrize("bad,exc,match", [
    (None, TypeError, "V.*None"),
    (np.array([[1.0, -0.5]]), ValueError, r"V must be non-negative.*-0\.5"),
    (np.array([[1.0, np.nan]]), ValueError, r"V contains NaN.*mask=.*masked NMF"),
    (np.array([[1.0, np.inf]]), ValueError, "V contains infinite"),
    (np.array([[1.0, -np.inf]]), ValueError, "V contains infinite"),
    (np.ones(3), ValueError, r"V must be 2-D.*\(3,\)"),
    (np.ones((2, 2, 2)), ValueError, r"V must be 2-D.*\(2, 2, 2\)"),
    (np.float64(3.0), ValueError, r"V must be 2-D.*\(\)"),
    (np.ones((0, 3)), ValueError, r"V must be non-empty.*\(0, 3\)"),
    (np.ones((3, 0)), ValueError, r"V must be non-empty.*\(3, 0\)"),
    (np.zeros((3, 4)), ValueError, "V is all zero"),
    (np.ones((2, 2), dtype=complex), TypeError, "V.*dtype complex128"),
    (np.ones((2, 2), dtype=object), TypeError, "V.*dtype object"),
    (np.array([["a", "b"]]), TypeError, "V.*dtype <U1"),
    ([[1.0, 2.0], [3.0]], ValueError, "V.*ragged"),
    ("abc", TypeError, "V.*str"),
    (_sparse_with(-1.0), ValueError, r"V must be non-negative.*-1"),
    (_sparse_with(np.nan), ValueError, r"V contains NaN.*masked NMF"),
    (_sparse_with(np.inf), ValueError, "V contains infinite"),
    (sp.csr_matrix((3, 4)), ValueError, "V is all zero"),
    (sp.csr_matrix((0, 4)), ValueError, "V must be non-empty"),
    (sp.csr_matrix(np.ones((2, 2), dtype=complex)), TypeError, "V.*complex"),
])
def test_bad_matrix(bad, exc, match):
    with pytest.raises(exc, match=match):
        check_matrix(bad)


def test_name_in_message():
    with pytest.raises(ValueError, match=r"^X_train must be non-negative"):
        check_matrix([[1.0, -2.0]], name="X_train")


def test_sparse_rejected_when_not_allowed():
    with pytest.raises(TypeError, match="W0 must be dense"):
        check_matrix(sp.eye(3, format="csr"), name="W0", allow_sparse=False)


def test_allow_nan():
    A = np.array([[1.0, np.nan], [0.0, 2.0]])
    assert check_matrix(A, allow_nan=True) is A
    with pytest.raises(ValueError, match="all NaN"):
        check_matrix(np.full((2, 2), np.nan), allow_nan=True)
    with pytest.raises(ValueError, match="infinite"):
        check_matrix(np.array([[np.nan, np.inf]]), allow_nan=True)
    with pytest.raises(ValueError, match="non-negative"):
        check_matrix(np.array([[np.nan, -1.0]]), allow_nan=True)
    S = _sparse_with(np.nan)
    assert check_matrix(S, allow_nan=True).nnz == S.nnz


# ---------------------------------------------------------------------------
# scalars
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 3, np.int64(4), np.uint8(2), 100])
def test_rank_ok(rank):
    k = check_rank(rank, (10, 6))
    assert k == int(rank) and type(k) is int


@pytest.mark.parametrize("rank,exc", [
    (0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError),
    (3.0, TypeError), ("3", TypeError), (None, TypeError), (np.bool_(True), TypeError),
])
def test_rank_bad(rank, exc):
    with pytest.raises(exc, match="rank"):
        check_rank(rank, (10, 6))


def test_positive_int_and_nonneg_float():
    assert check_positive_int("epochs", np.int32(5)) == 5
    with pytest.raises(ValueError, match=r"epochs.*0"):
        check_positive_int("epochs", 0)
    with pytest.raises(TypeError, match="epochs"):
        check_positive_int("epochs", 1.0)
    assert check_nonneg_float("noise_std", 0) == 0.0
    assert check_nonneg_float("tol", np.float32(0.5)) == 0.5
    assert check_nonneg_float("max_time", np.inf, allow_inf=True) == np.inf
    for bad, exc in [(-0.1, ValueError), (np.nan, ValueError), (np.inf, ValueError),
                     (True, TypeError), ("1", TypeError), (None, TypeError)]:
        with pytest.raises(exc, match="noise_std"):
            check_nonneg_float("noise_std", bad)


def test_check_seed():
    g = np.random.default_rng(0)
    assert check_seed(g) is g
    a = check_seed(7).random(3)
    np.testing.assert_array_equal(a, check_seed(np.int64(7)).random(3))
    np.testing.assert_array_equal(
        check_seed(np.random.SeedSequence(7)).random(3), a)
    assert isinstance(check_seed(None), np.random.Generator)
    for bad, exc in [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                     (np.random.RandomState(0), TypeError), ("0", TypeError)]:
        with pytest.raises(exc, match="seed"):
            check_seed(bad)


# ---------------------------------------------------------------------------
# load_matrix
# ---------------------------------------------------------------------------
def test_load_npy_is_memmap(tmp_path, V):
    p = tmp_path / "v.npy"
    np.save(p, V.astype(np.float32))
    out = load_matrix(p)
    assert isinstance(out, np.memmap) and out.dtype == np.float32
    np.testing.assert_array_equal(out, V.astype(np.float32))
    out_i = load_matrix(str(p))
    np.testing.assert_array_equal(out_i, out)


def test_load_npz_sparse_and_dense(tmp_path, V):
    S = sp.random(9, 6, density=0.4, random_state=2, format="csc")
    p = tmp_path / "s.npz"
    sp.save_npz(p, S)
    out = load_matrix(p)
    assert sp.issparse(out) and out.format == "csr"
    np.testing.assert_allclose(out.toarray(), S.toarray(), rtol=TOL["exact"])
    p1 = tmp_path / "one.npz"
    np.savez(p1, anything=V)
    np.testing.assert_array_equal(load_matrix(p1), V)
    p2 = tmp_path / "named.npz"
    np.savez(p2, V=V, other=V * 2)
    np.testing.assert_array_equal(load_matrix(p2), V)
    p3 = tmp_path / "ambiguous.npz"
    np.savez(p3, a=V, b=V)
    with pytest.raises(ValueError, match="ambiguous.npz"):
        load_matrix(p3)


@pytest.mark.parametrize("header", [False, True])
def test_load_csv(tmp_path, V, header):
    p = tmp_path / "v.csv"
    np.savetxt(p, V, delimiter=",", header="a,b,c,d,e" if header else "",
               comments="")
    out = load_matrix(p)
    np.testing.assert_allclose(out, V, rtol=TOL["ulp"])
    assert out.dtype == np.float64


def test_load_csv_single_row(tmp_path):
    p = tmp_path / "row.csv"
    p.write_text("1,2,3\n")
    assert load_matrix(p).shape == (1, 3)


def test_load_mtx(tmp_path, V):
    S = sp.random(8, 5, density=0.5, random_state=3, format="coo")
    p = tmp_path / "s.mtx"
    scipy.io.mmwrite(p, S)
    out = load_matrix(p)
    assert isinstance(out, sp.csr_array)
    np.testing.assert_allclose(out.toarray(), S.toarray(), rtol=TOL["exact"])
    pd = tmp_path / "d.mtx"
    scipy.io.mmwrite(pd, V)
    np.testing.assert_allclose(load_matrix(pd), V, rtol=TOL["exact"])


def test_load_bad_files(tmp_path):
    missing = tmp_path / "missing.npy"
    with pytest.raises(ValueError, match="missing.npy.*no such file"):
        load_matrix(missing)
    unknown = tmp_path / "v.txt"
    unknown.write_text("1,2\n")
    with pytest.raises(ValueError, match=r"v\.txt.*unknown extension"):
        load_matrix(unknown)
    for name, content in [("junk.npy", b"not numpy"), ("junk.npz", b"PK nope"),
                          ("junk.mtx", b"%%garbage\n1 2"), ("junk.csv", b"1,2\n3\n")]:
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")) as ei:
            load_matrix(p)
        assert "\n" not in str(ei.value)
    neg = tmp_path / "neg.csv"
    neg.write_text("1,-2\n3,4\n")
    with pytest.raises(ValueError, match=r"neg\.csv.*non-negative"):
        load_matrix(neg)
    with pytest.raises(TypeError, match="path"):
        load_matrix(3)


# ---------------------------------------------------------------------------
# norms
# ---------------------------------------------------------------------------
def test_row_sqnorms_dense_sparse(rng, monkeypatch):
    A = rng.random((50, 7)).astype(np.float32)
    A[A < 0.5] = 0
    ref = (A.astype(np.float64) ** 2).sum(axis=1)
    monkeypatch.setattr(D, "CHUNK_BYTES", 3 * 7 * 4)  # several blocks
    out = row_sqnorms(A)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=TOL["io_f32"])
    for fmt in ("csr", "csc", "coo"):
        np.testing.assert_allclose(row_sqnorms(sp.csr_matrix(A).asformat(fmt)), ref,
                                   rtol=TOL["io_f32"])
    dup = sp.coo_matrix(([1.0, 2.0], ([0, 0], [1, 1])), shape=(2, 2))
    np.testing.assert_allclose(row_sqnorms(dup), [9.0, 0.0], rtol=TOL["exact"])
    assert np.isclose(sqnorm(A), ref.sum(), rtol=TOL["float64"], atol=0)
    assert isinstance(sqnorm(sp.csr_matrix(A)), float)
