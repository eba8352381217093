"""Read and validate data matrices and scalar settings.

Every public entry point of :mod:`nmf_sched` funnels its data through
:func:`check_matrix`, so the rules live in one place:

* dense input (``numpy.ndarray``, ``numpy.memmap``, lists, any object with
  ``__array__``) becomes a 2-D, C-contiguous float32 or float64 array. A
  C-contiguous float32/float64 array or memmap is returned *as is* (no copy);
* scipy.sparse input of any format becomes a ``scipy.sparse.csr_array`` in
  canonical form (sorted indices, no duplicates). It is never densified;
* the values must be finite, non-negative and not all zero. NaN is only
  accepted with ``allow_nan=True`` (masked NMF, NaN = missing).

The scans over a dense matrix (min, max, finiteness) run over blocks of rows
of at most :data:`CHUNK_BYTES` bytes, so checking a large ``numpy.memmap``
does not allocate a full-size temporary.

Errors are :class:`ValueError` (bad value or shape) or :class:`TypeError`
(bad type or dtype) and name the argument and the offending value.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .backend import is_sparse, namespace

__all__ = [
    "CHUNK_BYTES",
    "check_matrix",
    "check_rank",
    "check_positive_int",
    "check_nonneg_float",
    "check_seed",
    "load_matrix",
    "row_chunks",
    "row_sqnorms",
    "sqnorm",
]

#: Largest block (in bytes) that the dense scans read at once.
CHUNK_BYTES = 64 * 2**20

_NAN_HINT = "to treat NaN as missing entries pass missing='nan' or a mask= of observed entries (masked NMF)"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def row_chunks(V, max_bytes=None):
    """Yield ``(start, stop, block)`` over blocks of rows of a dense matrix.

    Parameters
    ----------
    V : ndarray of shape (m, n)
        Dense matrix (``numpy.memmap`` included).
    max_bytes : int, optional
        Largest block size in bytes; default :data:`CHUNK_BYTES`. At least
        one row is always yielded per block.

    Yields
    ------
    start, stop : int
        Row range of the block.
    block : ndarray of shape (stop - start, n)
        ``V[start:stop]`` (a view, no copy).
    """
    if max_bytes is None:
        max_bytes = CHUNK_BYTES
    m = V.shape[0]
    row_bytes = max(1, V.shape[1] * V.dtype.itemsize)
    step = max(1, int(max_bytes) // row_bytes)
    for start in range(0, m, step):
        stop = min(m, start + step)
        yield start, stop, V[start:stop]


def _target_dtype(dtype, name):
    """Map an input dtype to float32/float64, or raise TypeError."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or dtype.kind in "iu":
        return np.dtype(np.float64)
    if dtype.kind == "f":
        if dtype.itemsize <= 4:
            return np.dtype(np.float32)
        if dtype.itemsize == 8:
            return np.dtype(np.float64)
        # longdouble: no BLAS support, downcast explicitly
        return np.dtype(np.float64)
    raise TypeError(
        f"{name} must have a real numeric dtype (bool, int or float); "
        f"got dtype {dtype}"
    )


def _check_dtype_arg(dtype):
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64; got {dt}")
    return dt


def _first_bad_row(block, start, pred):
    rows = np.flatnonzero(pred(block).any(axis=1))
    return start + int(rows[0]) if rows.size else start


# ---------------------------------------------------------------------------
# matrices
# ---------------------------------------------------------------------------
def check_matrix(V, name="V", *, allow_sparse=True, allow_nan=False, dtype=None):
    """Validate a data matrix and convert it to the solver's format.

    Parameters
    ----------
    V : array_like or scipy.sparse matrix/array of shape (m, n)
        Non-negative data. Dense: ``numpy.ndarray``, ``numpy.memmap``, nested
        lists or any object with ``__array__``. Sparse: any scipy.sparse
        format.
    name : str, default "V"
        Argument name used in error messages.
    allow_sparse : bool, default True
        If False, sparse input raises TypeError.
    allow_nan : bool, default False
        Accept NaN entries (masked NMF: NaN marks a missing entry). Infinite
        values are always rejected.
    dtype : {None, numpy.float32, numpy.float64}, default None
        Force the output dtype. By default float32 stays float32 (float16
        becomes float32) and everything else (bool, integers, float64)
        becomes float64.

    Returns
    -------
    V : ndarray or scipy.sparse.csr_array of shape (m, n)
        Dense input: a C-contiguous float array. A C-contiguous float32 or
        float64 array (or memmap) of the requested dtype is returned
        unchanged, without a copy; anything else is converted (which copies,
        also for a Fortran-ordered memmap). Sparse input: a ``csr_array`` in
        canonical format (sorted indices, duplicates summed). The input
        object is never modified.

    Raises
    ------
    TypeError
        ``V`` is None, has a complex/object/string dtype, or is sparse while
        ``allow_sparse=False``.
    ValueError
        ``V`` is ragged, not 2-D, empty, contains NaN (unless ``allow_nan``)
        or infinite values, negative values, or is all zero.

    Notes
    -----
    Dense checks (min, max, finiteness) run in blocks of rows of at most
    :data:`CHUNK_BYTES` bytes, so peak extra memory is bounded for a large
    memmap.
    """
    out_dtype = _check_dtype_arg(dtype)
    if V is None:
        raise TypeError(f"{name} must be a 2-D array or scipy.sparse matrix; got None")
    if sp.issparse(V):
        if not allow_sparse:
            raise TypeError(
                f"{name} must be dense here; got a scipy.sparse {V.format} matrix "
                f"of shape {V.shape}"
            )
        return _check_sparse(V, name, allow_nan, out_dtype)
    return _check_dense(V, name, allow_nan, out_dtype)


def _check_shape(shape, name):
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D; got shape {tuple(shape)}")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{name} must be non-empty; got shape {tuple(shape)}")


def _check_sparse(V, name, allow_nan, out_dtype):
    _check_shape(V.shape, name)
    target = out_dtype or _target_dtype(V.dtype, name)
    if V.format == "csr" and isinstance(V, sp.csr_array):
        A = V
    else:
        A = sp.csr_array(V)  # shares data when V is a csr_matrix
    if not A.has_canonical_format:
        A = A.copy()
        A.sum_duplicates()  # also sorts indices
    if A.dtype != target:
        A = A.astype(target)
    data = A.data
    if data.size:
        finite = np.isfinite(data)
        if not finite.all():
            bad = data[~finite]
            if np.isinf(bad).any():
                raise ValueError(f"{name} contains infinite values")
            if not allow_nan:
                raise ValueError(f"{name} contains NaN; {_NAN_HINT}")
            data = data[finite]
        if data.size:
            mn = float(data.min())
            if mn < 0:
                raise ValueError(
                    f"{name} must be non-negative; got min value {mn:.6g}"
                )
    if data.size == 0 or not np.any(data):
        raise ValueError(
            f"{name} is all zero (shape {A.shape}, nnz {A.nnz}); NMF needs "
            f"at least one positive entry"
        )
    return A


def _as_dense(V, name):
    if isinstance(V, np.ndarray):
        if type(V) is np.ndarray or isinstance(V, np.memmap):
            return V
        return np.asarray(V)  # np.matrix and other subclasses, no copy
    if isinstance(V, (str, bytes)):
        raise TypeError(f"{name} must be a 2-D numeric array; got {type(V).__name__}")
    try:
        with np.errstate(all="ignore"):
            return np.asarray(V)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(
            f"{name} could not be converted to a 2-D array (ragged rows?): {exc}"
        ) from exc
    except TypeError as exc:
        raise TypeError(
            f"{name} could not be converted to a numpy array "
            f"(type {type(V).__name__}): {exc}"
        ) from exc


def _check_dense(V, name, allow_nan, out_dtype):
    A = _as_dense(V, name)
    if A.dtype == object:
        raise TypeError(
            f"{name} must have a real numeric dtype; got dtype object "
            f"(ragged rows or mixed types?)"
        )
    _check_shape(A.shape, name)
    target = out_dtype or _target_dtype(A.dtype, name)
    if A.dtype != target or not A.flags.c_contiguous:
        A = np.ascontiguousarray(A, dtype=target)
    mn, mx = np.inf, -np.inf
    for start, _, block in row_chunks(A):
        if allow_nan:
            bmn = float(np.fmin.reduce(block, axis=None))
            bmx = float(np.fmax.reduce(block, axis=None))
        else:
            bmn, bmx = float(block.min()), float(block.max())
        if not (np.isfinite(bmn) and np.isfinite(bmx)):
            if np.isinf(bmn) or np.isinf(bmx):
                row = _first_bad_row(block, start, np.isinf)
                raise ValueError(f"{name} contains infinite values (first at row {row})")
            if not allow_nan:
                row = _first_bad_row(block, start, np.isnan)
                raise ValueError(
                    f"{name} contains NaN (first at row {row}); {_NAN_HINT}"
                )
            continue  # all-NaN block under allow_nan
        if bmn < 0:
            row = _first_bad_row(block, start, lambda b: b < 0)
            raise ValueError(
                f"{name} must be non-negative; got min value {bmn:.6g} "
                f"(first negative at row {row})"
            )
        mn, mx = min(mn, bmn), max(mx, bmx)
    if not mx > 0:
        what = "all NaN" if np.isinf(mx) else "all zero"
        raise ValueError(
            f"{name} is {what} (shape {A.shape}); NMF needs at least one "
            f"positive entry"
        )
    return A


# ---------------------------------------------------------------------------
# scalars
# ---------------------------------------------------------------------------
def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_positive_int(name, value):
    """Return ``value`` as a Python int if it is an integer >= 1.

    Parameters
    ----------
    name : str
        Argument name for error messages.
    value : int or numpy integer
        Bool is rejected.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        Not an integer (floats such as ``2.0`` and bools included).
    ValueError
        Integer < 1.
    """
    if not _is_int(value):
        raise TypeError(f"{name} must be a positive integer; got {value!r} "
                        f"of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_rank(rank, shape):
    """Validate the factorization rank ``k`` for a matrix of shape ``(m, n)``.

    Parameters
    ----------
    rank : int or numpy integer
        Number of components ``k >= 1``. Bool and floats are rejected.
        ``k > min(m, n)`` is allowed (an over-complete factorization; the
        NNDSVD inits then do not apply and ``init="auto"`` picks "random").
    shape : tuple of int
        Shape ``(m, n)`` of the data.

    Returns
    -------
    int
    """
    k = check_positive_int("rank", rank)
    if len(shape) != 2:
        raise ValueError(f"shape must be (m, n); got {tuple(shape)}")
    return k


def check_nonneg_float(name, value, *, allow_inf=False):
    """Return ``value`` as a float if it is a real number >= 0.

    Parameters
    ----------
    name : str
        Argument name for error messages.
    value : int, float or numpy scalar
        Bool is rejected.
    allow_inf : bool, default False
        Accept ``+inf``. NaN is always rejected.

    Returns
    -------
    float
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a non-negative real number; got {value!r} "
                        f"of type {type(value).__name__}")
    v = float(value)
    if np.isnan(v) or v < 0 or (np.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a finite non-negative number; got {value!r}")
    return v


def check_seed(seed):
    """Turn a seed into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    seed : None, int, numpy.random.SeedSequence or numpy.random.Generator
        None: fresh OS entropy (not reproducible). An int >= 0 or a
        SeedSequence: a new PCG64 generator. A Generator is returned as is
        (and its state is consumed by the caller).

    Returns
    -------
    numpy.random.Generator
    """
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if _is_int(seed):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        return np.random.default_rng(int(seed))
    raise TypeError(
        f"seed must be None, a non-negative int, a numpy SeedSequence or a "
        f"numpy Generator; got {seed!r} of type {type(seed).__name__}"
    )


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------
def _read_csv(path):
    with open(path, "r", encoding="utf-8") as fh:
        first = fh.readline()
    skip = 0
    try:
        [float(tok) for tok in first.strip().split(",") if tok.strip() != ""]
    except ValueError:
        skip = 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)


def _read_npz(path):
    try:
        return sp.load_npz(path)
    except Exception:  # noqa: BLE001 - not a sparse npz; try a dense one
        pass
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        if "V" in keys:
            return z["V"]
        if len(keys) == 1:
            return z[keys[0]]
    raise ValueError(f"holds arrays {keys}; expected a scipy.sparse npz, a single "
                     f"array, or an array named 'V'")


def _read_mtx(path):
    import scipy.io

    M = scipy.io.mmread(path)
    return sp.csr_array(M) if sp.issparse(M) else np.asarray(M)


_READERS = {
    ".npy": lambda p: np.load(p, mmap_mode="r", allow_pickle=False),
    ".npz": _read_npz,
    ".csv": _read_csv,
    ".mtx": _read_mtx,
}


def load_matrix(path):
    """Read a non-negative matrix from a file and validate it.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` (opened as a read-only memmap: no copy for float32/float64
        C-ordered data), ``.npz`` (``scipy.sparse.save_npz`` output, or a
        ``numpy.savez`` file holding one array or an array named ``'V'``),
        ``.csv`` (comma separated; a non-numeric first row is skipped as a
        header), ``.mtx`` / ``.mtx.gz`` (Matrix Market; sparse becomes CSR).

    Returns
    -------
    V : ndarray, numpy.memmap or scipy.sparse.csr_array of shape (m, n)
        As returned by :func:`check_matrix`.

    Raises
    ------
    ValueError
        Missing file, unknown extension, unreadable content, or content that
        fails :func:`check_matrix` (TypeError for a bad dtype).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    p = Path(path)
    suffix = ".mtx" if p.name.lower().endswith(".mtx.gz") else p.suffix.lower()
    if suffix not in _READERS:
        raise ValueError(
            f"cannot read '{p}': unknown extension {p.suffix!r}; expected one of "
            f"{sorted(_READERS) + ['.mtx.gz']}"
        )
    if not p.is_file():
        raise ValueError(f"cannot read '{p}': no such file")
    try:
        M = _READERS[suffix](p)
    except Exception as exc:  # noqa: BLE001 - one clear line for every reader error
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot read matrix from '{p}': {msg}") from exc
    return check_matrix(M, name=f"matrix in '{p}'")


# ---------------------------------------------------------------------------
# norms
# ---------------------------------------------------------------------------
def row_sqnorms(V):
    """Squared Euclidean norm of every row, accumulated in float64.

    Parameters
    ----------
    V : ndarray or scipy.sparse matrix of shape (m, n)
        Dense (memmap included; read in row blocks) or sparse (any format;
        duplicates are summed first, only stored values are read).

    Returns
    -------
    ndarray of shape (m,), float64
        ``sum_j V[i, j]**2``.
    """
    if sp.issparse(V):
        A = V.tocsr()
        if not A.has_canonical_format:
            A = A.copy()
            A.sum_duplicates()
        d = np.asarray(A.data, dtype=np.float64)
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        return np.bincount(rows, weights=d * d, minlength=A.shape[0])
    V = np.asarray(V) if not isinstance(V, np.ndarray) else V
    if V.ndim != 2:
        raise ValueError(f"V must be 2-D; got shape {V.shape}")
    out = np.empty(V.shape[0], dtype=np.float64)
    for start, stop, block in row_chunks(V):
        out[start:stop] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
    return out


def sqnorm(V) -> float:
    """Squared Frobenius norm ``||V||_F^2`` accumulated in float64 (the one copy).

    Sparse: over the stored values; CuPy: on the device; dense and memmap: streamed by
    row chunks (:func:`row_chunks`), so peak memory stays bounded.

    Parameters
    ----------
    V : ndarray, numpy.memmap, scipy.sparse matrix or CuPy array of shape (m, n)

    Returns
    -------
    float
    """
    if is_sparse(V):
        d = V.data
        return float((d.astype(np.float64) ** 2).sum()) if d.dtype != np.float64 else float(d @ d)
    xp = namespace(V)
    if xp is not np:
        return float(xp.vdot(V.ravel(), V.ravel()).real)
    total = 0.0
    for _, _, blk in row_chunks(V):
        blk = np.asarray(blk)
        total += float(np.einsum("ij,ij->", blk, blk, dtype=np.float64))
    return total
