"""Shared fixtures: seeded generators, small problems, the one tolerance table."""
import numpy as np
import pytest

#: The one tolerance table of the suite: every closeness check in tests/ (pytest.approx,
#: assert_allclose, allclose, isclose, hand-written |a - b| <= tol) takes its tolerance from here,
#: by what is compared. Relative tolerances, except the "_abs" entries and those marked absolute.
TOL = {
    "float64": 1e-10,     # same algorithm, different summation order (or a float64 routine,
                          # e.g. an eigensolver, against the closed-form value)
    "float32": 2e-4,      # float32 kernels and float32 fits against float64 / host references
    "identity": 1e-8,     # Gram-identity loss against the explicit residual (float64)
    "nojit": 1e-12,       # numba kernels against their pure-Python execution, and the CUDA
                          # kernels against the numba ones (float64, one call)
    "torch_schedule": 1e-12,  # nmf-sched schedules against torch's own lr_schedulers
    # float64 values that agree up to round-off
    "ulp": 1e-15,         # a few float64 ulps (eps 2.2e-16): a CSV round trip (18 digits);
                          # absolute: an LR that must land on 0 or on eta_min
    "exact": 1e-12,       # closed-form values computed two ways in float64 (a few scalar ops:
                          # LR tables, ceilings, fractions), values copied through JSON, files,
                          # traces, plots or a hook that must change nothing
    "float64_abs": 1e-12,  # absolute floor next to "float64" for entries at 0 (projected)
    "float64_paths": 1e-8,  # float64 results reached by two long computations: a formula against
                            # enumeration, a naive loop or running means, a rescaled, balanced
                            # or sparse problem against the plain one, a whole fit along two
                            # code paths (sparse/dense, device/host), a randomized SVD
    "float64_paths_abs": 1e-10,  # absolute floor next to "float64_paths"
    "gram": 1e-7,         # Gram-preconditioned fits against the NumPy reference: the solves with
                          # H H^T amplify round-off by its condition number
    "svd": 1e-6,          # NNDSVD initializations through different SVDs (ours against
                          # scikit-learn's, randomized against exact, a rescaled problem) and
                          # a planted condition number read back by an SVD
    "svd_abs": 1e-8,      # absolute floor next to "svd"
    "svd_init": 5e-5,     # an NNDSVD init through the init's randomized SVD (2 LU-normalized
                          # power iterations) against the exact SVD (measured 7e-6)
    "init_quality": 1e-2,  # relative error of an NNDSVD(A) init through the init's randomized
                           # SVD over the same init through 7 QR iterations: at most 1% higher
                           # (measured up to 0.8%, often lower)
    # float32
    "io_f32": 1e-6,       # float32 round trips: float64 data, W0 or observation vectors stored
                          # as float32 (eps 6e-8); float32 data read or reduced two ways
    "float32_op": 1e-5,   # one float32 computation by two implementations: the NumPy policy
                          # forward against torch/SB3 (also the RL LR on a rescaled problem),
                          # a CUDA kernel against the numba one
    "float32_fit": 1e-3,  # whole float32 fits against the float64 fit or on the GPU against the
                          # CPU: GEMM summation orders differ and the difference grows per epoch
    # path-dependent or estimated
    "adaptive": 1e-6,     # adaptive schedules (hypergradient, line search) on the GPU against the
                          # CPU, float64: their LR decisions see the device's round-off
    "guard": 1e-2,        # float32 runs the divergence guard had to rescue, GPU against CPU: a
                          # blow-up amplifies round-off, only the final error still agrees
    "printed": 1e-6,      # absolute: LR tables printed with 6 decimals in the docstrings
    "fd": 1e-4,           # second differences (step 1e-3) of a quadratic: cancellation
    "density": 0.05,      # realized nnz against the requested density: clipped zeros dropped,
                          # tf-idf's documented "within a few percent"
    "monte_carlo": 0.1,   # a simulated stationary noise floor (2500 noisy steps) against the
                          # formula
    "noisy_final": 1e-3,  # final / initial loss of a run whose steps the noise-aware ceiling
                          # has nearly frozen (noise 30x the gradient): it fluctuates by ~1e-5
    "differs": 1e-6,      # asserting two runs differ (not allclose / !=): the smallest relative
                          # difference that counts
    # scikit-learn's NMF tests (tests/test_sklearn_nmf.py)
    "dense_sparse": 1e-7,  # a fit of X and of its CSR/CSC copy: scikit-learn's rtol, met (same
                           # ||X||^2 bits from both kernels; W through the final NNLS products)
    "sgd_exact_zero": 1e-12,  # absolute: an exact planted zero reached by SGD + projection
    "sgd_float32_vs_64": 5e-2,  # absolute, W of size 1: float32 against float64 SGDNMF, whose
                                # greedy LR and tol stop see float32-rounded losses (measured
                                # 1.3e-2; scikit-learn's CD asserts 1e-5)
    "reg_vs_sklearn": 1e-2,  # a regularized fit's objective against scikit-learn CD's (same
                             # alpha): the 1% goal
    "margin": 1e-9,       # one-sided round-off margin: a step against its recorded ceiling,
                          # values that went through different float64 paths
    "nnls": 1e-7,         # absolute: nnls_gram at tol 1e-12 against scipy's active-set NNLS
    "nnls_start": 1e-5,   # absolute, on the scale of W: two NNLS solves (transform_tol 1e-4)
                          # of the same problem from different starts (measured 3e-6)
    "svd_paths": 1e-4,    # absolute, on the scale of H: fits from an exact-SVD and a
                          # randomized-SVD NNDSVDA init of the same matrix (measured 1e-5)
}


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def planted_dense(m=120, n=80, k=5, noise=0.05, seed=0, dtype=np.float64):
    r = np.random.default_rng(seed)
    W = r.random((m, k))
    H = r.random((k, n))
    V = W @ H
    V = np.maximum(V + noise * V.std() * r.standard_normal(V.shape), 0.0)
    return V.astype(dtype)


@pytest.fixture
def small_dense():
    return planted_dense()
