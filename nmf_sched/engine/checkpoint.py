r"""Checkpoint files: everything a run needs to continue bit-identically.

A checkpoint is one ``.npz`` file (no pickle) written atomically: to a temporary file in the
same folder, flushed to disk, then renamed over the target (``os.replace``), so a run killed
at any moment leaves either the previous checkpoint or the new one, never a torn file.

It holds the factors ``W`` and ``H``, the model's extra arrays (e.g. the hypergradient's
stored displacements, LIBMF's adaptive accumulators), and one JSON document with the
engine's state: the epoch, the schedule's state, the generator's state (before the draw of
the next epoch's batches), the step and tick counters, the guard's cap and damp, the running
best loss, the trace, and the *fingerprint*: the data (shape, dtype, storage, ``||V||^2``
and a hash of up to 64 rows spread over the matrix) and the settings that decide the path of
the run (rank, preconditioner, batch size, ceiling, noise, schedule, ...). Resuming checks
the fingerprint first and refuses another matrix, rank or solver setting by name.

Floats go through JSON by their shortest round-trip representation, so every float of the
state comes back bit for bit. A schedule's state may hold numpy arrays (per-entry LRs): they
are stored as arrays of the file and put back in place.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile

import numpy as np
import scipy.sparse as sp

__all__ = ["write_checkpoint", "read_checkpoint", "check_fingerprint", "data_fingerprint",
           "CheckpointError", "FORMAT"]

FORMAT = "nmf-sched-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to another matrix or setting."""


def data_fingerprint(V, vsq: float, *, rows=None) -> dict:
    """Shape, dtype, storage, ``||V||^2`` and a hash of up to 64 rows (dense or CSR).

    ``rows``: a callable ``i -> bytes`` of row ``i`` (for data not in this process).
    """
    m, n = V.shape
    h = hashlib.blake2b(digest_size=16)
    pick = np.unique(np.linspace(0, m - 1, num=min(64, m)).astype(np.int64))
    for i in pick:
        if rows is not None:
            h.update(rows(int(i)))
        elif sp.issparse(V):
            a, b = V.indptr[i], V.indptr[i + 1]
            h.update(np.ascontiguousarray(V.indices[a:b], dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(V.data[a:b], dtype=np.float64).tobytes())
        else:
            h.update(np.ascontiguousarray(np.asarray(V[int(i)]), dtype=np.float64).tobytes())
    return {"shape": [int(m), int(n)], "dtype": str(V.dtype),
            "storage": "sparse" if sp.issparse(V) else "dense",
            "sqnorm": float(vsq), "rows_hash": h.hexdigest()}


def _default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"cannot store a {type(o).__name__} in a checkpoint")


def _split_arrays(obj, store, path="s"):
    """Replace numpy arrays inside a JSON-like structure by references into ``store``."""
    if isinstance(obj, np.ndarray):
        key = f"state_{len(store)}"
        store[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {str(k): _split_arrays(v, store, f"{path}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split_arrays(v, store, path) for v in obj]
    return obj


def _join_arrays(obj, z):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return np.array(z[obj["__array__"]])
        return {k: _join_arrays(v, z) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_arrays(v, z) for v in obj]
    return obj


def write_checkpoint(path, *, W, H, engine: dict, arrays: dict, fingerprint: dict):
    """Write the checkpoint atomically (temp file in the same folder + fsync + rename)."""
    path = os.fspath(path)
    store: dict = {}
    doc = {"format": FORMAT, "fingerprint": fingerprint, "engine": _split_arrays(engine, store),
           "arrays": sorted(arrays)}
    text = json.dumps(doc, default=_default, allow_nan=True)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, W=np.asarray(W), H=np.asarray(H), doc=np.array(text), **arrays, **store)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_checkpoint(path) -> dict:
    """``{"W", "H", "engine", "arrays", "fingerprint"}`` from a checkpoint file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"resume={path!r}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            doc = json.loads(str(z["doc"][()]))
            if doc.get("format") != FORMAT:
                raise CheckpointError(f"resume={path!r}: not an nmf-sched checkpoint "
                                      f"(format {doc.get('format')!r})")
            out = {"W": np.array(z["W"]), "H": np.array(z["H"]),
                   "arrays": {k: np.array(z[k]) for k in doc["arrays"]},
                   "engine": _join_arrays(doc["engine"], z), "fingerprint": doc["fingerprint"]}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - one clear error for a torn or foreign file
        raise CheckpointError(f"resume={path!r}: cannot read the checkpoint ({exc})") from exc
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def check_fingerprint(saved: dict, current: dict, path) -> None:
    """Refuse a checkpoint whose data or settings differ; the error names each difference."""
    diffs = []
    for part in ("data", "settings"):
        s, c = saved.get(part, {}), current.get(part, {})
        for key in sorted(set(s) | set(c)):
            if not _same(s.get(key), c.get(key)):
                what = "the matrix" if part == "data" else "the setting"
                diffs.append(f"{what} {key}: checkpoint {s.get(key)!r}, now {c.get(key)!r}")
    if diffs:
        raise CheckpointError(f"resume={os.fspath(path)!r} was written for another run: "
                              + "; ".join(diffs))
