"""Out-of-core input: memmaps streamed by row blocks keep the resident memory bounded."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nmf_sched
from nmf_sched.streaming import StreamedMemmap, iter_row_blocks, open_rows

from conftest import TOL


def _write_npy(path, m, n, k=6, seed=0, block=5000):
    """Planted low-rank + noise, float32, written block by block (never whole in memory)."""
    r = np.random.default_rng(seed)
    W = r.random((m, k), dtype=np.float32)
    H = r.random((k, n), dtype=np.float32)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (m, n)})
        for a in range(0, m, block):
            b = min(m, a + block)
            f.write((W[a:b] @ H + 0.1 * r.random((b - a, n), dtype=np.float32)).tobytes())
    return path


_PROBE = textwrap.dedent("""
    import sys, numpy as np
    import nmf_sched, nmf_sched.data as D
    from nmf_sched.streaming import open_rows
    D.CHUNK_BYTES = 8 * 2**20   # validation / loss passes in 8 MB row chunks
    path, mode = sys.argv[1], sys.argv[2]
    def status(key):   # kB -> bytes; VmHWM is this process's own peak (ru_maxrss is not:
        for line in open("/proc/self/status"):   # Linux carries the parent's across fork+exec)
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    V = open_rows(path) if mode == "streamed" else np.load(path, mmap_mode="r")
    # compile the float32 kernels first (JIT memory is not the data's)
    nmf_sched.fit(np.random.default_rng(0).random((300, 20), dtype=np.float32), 4, epochs=1, seed=0,
                  init="random", shuffle="blocks", batch_size=64)
    base = status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:   # reset the peak to the current RSS
            f.write("5")
    except OSError:
        pass
    r = nmf_sched.fit(V, 6, epochs=2, batch_size=4096, shuffle="blocks", seed=0, init="random", tol=0)
    print(status("VmHWM") - base, r.rel_error)
""")


def _growth(path, mode):
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path), mode], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    return int(out[0]), float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_rss_bounded_by_blocks(tmp_path):
    m, n = 40000, 1000                       # 160 MB float32 on disk
    path = _write_npy(tmp_path / "v.npy", m, n)
    size = m * n * 4
    block = 4096 * n * 4                     # one minibatch: 16 MB
    grow_s, err_s = _growth(path, "streamed")
    grow_p, err_p = _growth(path, "plain")
    # streamed: a small multiple of one block (+ the factors, ~1 MB), far below the file
    assert grow_s < 4 * block + 8 * 2**20, (grow_s, block)
    assert grow_s < 0.4 * size
    # a plain memmap keeps every touched page mapped: its RSS grows by about the file size
    assert grow_p > 0.8 * size, grow_p
    assert err_s == pytest.approx(err_p, rel=TOL["io_f32"]) and err_s < 0.2


def test_streamed_memmap_same_factors_as_in_memory(tmp_path):
    path = _write_npy(tmp_path / "s.npy", 3000, 40, k=4)
    V = open_rows(path)
    assert isinstance(V, StreamedMemmap) and V.shape == (3000, 40)
    blk = V[10:20]
    assert type(blk) is np.ndarray and blk.flags.owndata
    kw = dict(epochs=5, batch_size=500, shuffle="blocks", seed=3, init="random", tol=0)
    a = nmf_sched.fit(V, 4, **kw)
    b = nmf_sched.fit(np.load(path), 4, **kw)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.H, b.H)


def test_open_rows_raw_file_needs_shape(tmp_path):
    raw = tmp_path / "v.bin"
    np.arange(12, dtype=np.float64).reshape(3, 4).tofile(raw)
    with pytest.raises(ValueError, match="shape"):
        open_rows(raw)
    V = open_rows(raw, dtype=np.float64, shape=(3, 4))
    np.testing.assert_array_equal(V[1:3], np.arange(4, 12).reshape(2, 4))
    with pytest.raises(ValueError, match="block_rows"):
        next(iter_row_blocks(V, 0))


def test_partial_fit_from_memmap_iterator(tmp_path):
    from nmf_sched.estimator import SGDNMF

    path = _write_npy(tmp_path / "p.npy", 4000, 50, k=5, seed=1)
    V = open_rows(path)
    est = SGDNMF(n_components=5, random_state=0)
    for _ in range(3):                       # three passes over the file, 500 rows at a time
        for chunk in iter_row_blocks(V, 500):
            est.partial_fit(chunk)
    assert est.components_.shape == (5, 50)
    assert est.n_samples_seen_ == 3 * 4000
    X = np.load(path)
    W = est.transform(X)
    err = np.linalg.norm(X - W @ est.components_) / np.linalg.norm(X)
    ref = nmf_sched.fit(X, 5, epochs=30, seed=0)
    assert err < 1.5 * ref.rel_error + 0.02, (err, ref.rel_error)
