"""Out-of-core input: stream a dense matrix on disk by row blocks.

A plain ``numpy.memmap`` already works with :func:`nmf_sched.fit` (every pass
over ``V`` -- validation, ``||V||^2``, the init's products, the exact loss --
goes through row slices ``V[a:b]``, and ``shuffle="blocks"`` makes every
minibatch a contiguous row block). But the pages a memmap has touched stay
mapped into the process: its resident set size (RSS) grows to the file size
after one pass. They are clean, file-backed pages that the kernel can drop
under memory pressure, so a file larger than RAM does not fail -- but the
process *looks* as large as the file and competes with everything else for the
page cache.

:class:`StreamedMemmap` is a ``numpy.memmap`` whose indexing returns a private
copy of the requested rows and then tells the kernel (``madvise(MADV_DONTNEED)``)
that the mapping's pages are no longer needed, so the resident memory stays at
about one row block (plus the factors), whatever the file size. Reads still go
through the page cache, so repeated epochs over a file that fits in RAM are not
slower.

Use ``shuffle="blocks"`` (contiguous blocks in random order): with
``shuffle="rows"`` the solver gathers rows with ``numpy.take``, which bypasses
indexing and leaves the pages mapped.
"""
from __future__ import annotations

import mmap
import os

import numpy as np

__all__ = ["StreamedMemmap", "open_rows", "iter_row_blocks"]

_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


class StreamedMemmap(np.memmap):
    """A ``numpy.memmap`` that copies what is indexed and releases its pages.

    ``X[a:b]`` returns a plain ``ndarray`` copy of rows ``a:b``; afterwards the
    whole mapping is released from the resident set (a no-op where
    ``madvise`` is unavailable).
    """

    def __getitem__(self, key):
        out = super().__getitem__(key)
        if isinstance(out, np.ndarray):
            out = np.array(out, copy=True, subok=False)
        self.release()
        return out

    def release(self):
        """Drop the mapping's resident pages (they are re-read from the page cache)."""
        mm = getattr(self, "_mmap", None)
        if mm is not None and _DONTNEED is not None:
            try:
                mm.madvise(_DONTNEED)
            except (OSError, ValueError):  # pragma: no cover - closed map or platform
                pass


def open_rows(path, *, dtype=None, shape=None, offset=0):
    """Open a matrix on disk for streaming by rows.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` file (dtype and shape from its header), or a raw C-order
        binary file (then ``dtype`` and ``shape`` are required).
    dtype, shape, offset :
        For raw files, as in ``numpy.memmap``.

    Returns
    -------
    StreamedMemmap (m, n), read-only
    """
    path = os.fspath(path)
    if path.endswith(".npy"):
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2 or not arr.flags.c_contiguous:
            raise ValueError(f"{path!r} must hold a 2-D C-ordered array, got shape {arr.shape}")
        return arr.view(StreamedMemmap)
    if dtype is None or shape is None:
        raise ValueError(f"raw file {path!r}: pass dtype= and shape= (or use a .npy file)")
    return StreamedMemmap(path, dtype=dtype, mode="r", shape=tuple(shape), offset=offset)


def iter_row_blocks(V, block_rows, *, start=0, stop=None):
    """Yield copies of consecutive row blocks ``V[a:a+block_rows]`` (the last may be short).

    Works on any row-indexable matrix; with a :class:`StreamedMemmap` the pages
    are released after each block, so iterating a file keeps RSS bounded.
    Feed it to ``SGDNMF.partial_fit`` for streaming updates.
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows!r}")
    stop = V.shape[0] if stop is None else min(stop, V.shape[0])
    for a in range(start, stop, block_rows):
        yield np.array(V[a:min(stop, a + block_rows)], copy=True, subok=False)
