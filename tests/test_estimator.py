"""SGDNMF: scikit-learn conformance, transform quality, partial_fit, sparse input, bad params."""
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("sklearn")

from sklearn.decomposition import non_negative_factorization  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import nmf_sched  # noqa: E402
from nmf_sched import datasets  # noqa: E402
from nmf_sched.estimator import SGDNMF, nnls_gram  # noqa: E402

from conftest import TOL, planted_dense  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return datasets.digits()


@pytest.fixture(scope="module")
def anls_digits(digits):
    """Reference NMF of digits at rank 10: 20 rounds of exact alternating NNLS.

    Returns ``(error, H)``; the error (about 0.329 ||V||) is within 1% of
    scikit-learn's converged coordinate-descent NMF (0.326 ||V||).
    """
    H = np.random.default_rng(0).random((10, digits.shape[1]))
    for _ in range(20):
        W, _ = nnls_gram(digits @ H.T, H @ H.T, max_iter=50, tol=1e-8)
        Ht, _ = nnls_gram(digits.T @ W, W.T @ W, max_iter=50, tol=1e-8)
        H = Ht.T
    return np.linalg.norm(digits - W @ H), H


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_check_estimator_passes():
    check_estimator(SGDNMF())


def test_nmf_sched_exposes_sgdnmf_lazily_and_core_imports_without_sklearn():
    assert nmf_sched.SGDNMF is SGDNMF
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import numpy as np, nmf_sched\n"
            "r = nmf_sched.fit(np.random.default_rng(0).random((30, 8)), 3, seed=0, epochs=3)\n"
            "assert r.W.shape == (30, 3)\n"
            "try:\n    nmf_sched.SGDNMF\nexcept ImportError:\n    print('lazy-ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "lazy-ok" in out.stdout


def test_shapes_and_learned_attributes():
    X = planted_dense(60, 25, 4)
    est = SGDNMF(4, epochs=20, random_state=0)
    W = est.fit_transform(X)
    assert W.shape == (60, 4) and est.components_.shape == (4, 25)
    assert est.n_components_ == 4 and est.n_features_in_ == 25
    assert est.n_iter_ == est.fit_result_.n_epochs >= 1
    assert (W >= 0).all() and (est.components_ >= 0).all()
    assert est.transform(X[:7]).shape == (7, 4)
    assert est.inverse_transform(W).shape == (60, 25)
    assert list(est.get_feature_names_out()) == [f"sgdnmf{i}" for i in range(4)]
    # n_components=None -> n_features, like scikit-learn's NMF
    assert SGDNMF(epochs=3, random_state=0).fit(X[:, :5]).n_components_ == 5


def test_fit_runs_nmf_sched_fit_and_error_is_never_above_the_solvers():
    X = planted_dense(80, 30, 5, seed=1)
    est = SGDNMF(5, epochs=40, random_state=3, schedule="auto", batch_size=20).fit(X)
    ref = nmf_sched.fit(X, 5, epochs=40, seed=3, schedule="auto", batch_size=20)
    np.testing.assert_array_equal(est.fit_result_.H, ref.H)  # same run, bit for bit
    np.testing.assert_array_equal(est.components_, ref.H)
    solver_err = math.sqrt(2 * ref.loss)
    # W is re-solved for the final H: never worse than the solver's W, and close to it
    assert est.reconstruction_err_ <= solver_err * (1 + 1e-9)
    assert est.reconstruction_err_ >= 0.5 * solver_err
    W = est.transform(X)
    explicit = np.linalg.norm(X - W @ est.components_)
    assert est.reconstruction_err_ == pytest.approx(explicit, rel=TOL["identity"])


def test_fit_transform_equals_fit_then_transform():
    X = planted_dense(50, 20, 3, seed=2)
    W1 = SGDNMF(3, epochs=30, random_state=0).fit_transform(X)
    est = SGDNMF(3, epochs=30, random_state=0).fit(X)
    W2 = est.transform(X)
    # two NNLS solves for the same H to transform_tol, from different starts (the solver's W,
    # and the transform's own): the same objective, entries close on the scale of W
    np.testing.assert_allclose(W1, W2, rtol=0, atol=TOL["nnls_start"] * W1.max())
    H = est.components_
    assert np.linalg.norm(X - W1 @ H) == pytest.approx(np.linalg.norm(X - W2 @ H),
                                                       rel=TOL["identity"])


def test_nnls_gram_matches_scipy_nnls_row_by_row():
    from scipy.optimize import nnls

    r = np.random.default_rng(0)
    H = r.random((6, 15))
    X = r.random((12, 15))
    W, _ = nnls_gram(X @ H.T, H @ H.T, max_iter=2000, tol=1e-12)
    for i in range(X.shape[0]):
        w_ref, _ = nnls(H.T, X[i])
        np.testing.assert_allclose(W[i], w_ref, rtol=0, atol=TOL["nnls"])


def test_transform_matches_sklearn_nmf_transform(digits, anls_digits):
    """Same H: our W is at least as good as scikit-learn NMF's transform (its CD solver)."""
    H = anls_digits[1]
    est = SGDNMF(10)
    est.components_, est.n_components_, est.n_features_in_ = H, 10, 64
    ours = np.linalg.norm(digits - est.transform(digits) @ H)
    W_sk, _, _ = non_negative_factorization(digits, H=H, n_components=10, init="custom",
                                            update_H=False)
    theirs = np.linalg.norm(digits - W_sk @ H)
    assert ours <= theirs * (1 + 1e-6)


def test_transform_is_row_independent_and_deterministic():
    X = planted_dense(70, 20, 4, seed=4)
    est = SGDNMF(4, epochs=10, random_state=0).fit(X)
    full = est.transform(X)
    np.testing.assert_array_equal(full, est.transform(X))
    np.testing.assert_allclose(est.transform(X[10:30]), full[10:30], rtol=TOL["float64"], atol=TOL["float64_abs"])


def test_partial_fit_over_chunks_of_digits_approaches_full_fit(digits, anls_digits):
    """partial_fit, 3 passes over 200-row chunks: within 15% of the full fits' errors."""
    full = SGDNMF(10, random_state=0).fit(digits)
    est = SGDNMF(10, random_state=0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        perm = rng.permutation(digits.shape[0])
        chunks = (digits[perm[a:a + 200]] for a in range(0, digits.shape[0], 200))
        for chunk in chunks:  # any iterator of chunks
            est.partial_fit(chunk)
    assert est.n_samples_seen_ == 3 * digits.shape[0]
    assert est.n_steps_ == est.n_iter_ == 3 * 9
    err = np.linalg.norm(digits - est.transform(digits) @ est.components_)
    assert err <= 1.15 * full.reconstruction_err_
    assert err <= 1.15 * anls_digits[0]


def test_partial_fit_continues_after_fit_and_checks_features():
    X = planted_dense(90, 20, 3, seed=5)
    est = SGDNMF(3, epochs=15, random_state=0).fit(X)
    H0 = est.components_.copy()
    est.partial_fit(X[:30])
    assert est.components_.shape == H0.shape and est.n_samples_seen_ == 30
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:10, :-1])
    with pytest.raises(ValueError, match="[Nn]egative"):
        est.partial_fit(-X[:10])


def test_sparse_input_fit_and_transform():
    X = planted_dense(80, 40, 4, seed=6)
    X[X < np.quantile(X, 0.6)] = 0
    Xs = sp.csr_matrix(X)
    # the same init: the dense and the CSR fit agree to rounding
    a = SGDNMF(4, epochs=20, random_state=0, init="random").fit(Xs)
    b = SGDNMF(4, epochs=20, random_state=0, init="random").fit(X)
    np.testing.assert_allclose(a.components_, b.components_, rtol=TOL["dense_sparse"])
    # the default init reads a dense X by an exact SVD and a CSR X by a randomized one
    est = SGDNMF(4, epochs=20, random_state=0).fit(Xs)
    dense = SGDNMF(4, epochs=20, random_state=0).fit(X)
    np.testing.assert_allclose(est.components_, dense.components_, rtol=0,
                               atol=TOL["svd_paths"] * dense.components_.max())
    np.testing.assert_allclose(est.transform(Xs), est.transform(X), rtol=TOL["dense_sparse"], atol=TOL["float64_paths_abs"])
    np.testing.assert_allclose(est.transform(sp.csc_matrix(X)), est.transform(X),
                               rtol=TOL["dense_sparse"], atol=TOL["float64_paths_abs"])
    W = est.partial_fit(Xs[:20]).transform(Xs[:5])
    assert W.shape == (5, 4) and (W >= 0).all()


def test_float32_is_preserved():
    X = planted_dense(40, 12, 3).astype(np.float32)
    est = SGDNMF(3, epochs=10, random_state=0)
    W = est.fit_transform(X)
    assert W.dtype == np.float32 and est.components_.dtype == np.float32
    assert est.transform(X).dtype == np.float32


@pytest.mark.parametrize("param, value", [
    ("n_components", 0), ("n_components", 2.5), ("epochs", 0), ("epochs", "10"),
    ("batch_size", "big"), ("batch_size", 0), ("init", "svd"), ("noise_std", -1.0),
    ("clip_lr", "yes"), ("kappa", 0.0), ("kappa", float("nan")), ("precondition", "newton"),
    ("tol", -1e-3), ("max_time", 0), ("transform_max_iter", 0), ("transform_tol", -1.0),
    ("forget_factor", 1.5), ("schedule", "nope"), ("schedule", object()),
    ("random_state", "seed"), ("random_state", -1),
])
def test_bad_params_raise_value_error_naming_the_parameter(param, value):
    X = planted_dense(20, 8, 2)
    est = SGDNMF(2, epochs=2).set_params(**{param: value})  # stored unchanged
    assert est.get_params()[param] is value
    with pytest.raises(ValueError, match=param):
        est.fit(X)
    with pytest.raises(ValueError, match=param):
        SGDNMF(2, epochs=2).set_params(**{param: value}).partial_fit(X)


@pytest.mark.parametrize("precondition", ["gram", "none"])
def test_settings_are_passed_to_the_solver(precondition):
    X = planted_dense(60, 20, 3, seed=7)
    kw = dict(epochs=6, batch_size=15, kappa=0.5, tol=0.0, noise_std=0.01, clip_lr=True)
    est = SGDNMF(3, random_state=1, precondition=precondition, schedule=0.3, **kw).fit(X)
    ref = nmf_sched.fit(X, 3, seed=1, precondition=precondition, schedule=0.3, **kw)
    np.testing.assert_array_equal(est.components_, ref.H)
    assert est.fit_result_.settings["precondition"] == precondition
    assert est.n_iter_ == 6


def test_random_state_forms():
    X = planted_dense(30, 10, 2)
    a = SGDNMF(2, epochs=5, random_state=7).fit(X).components_
    b = SGDNMF(2, epochs=5, random_state=7).fit(X).components_
    np.testing.assert_array_equal(a, b)
    SGDNMF(2, epochs=5, random_state=np.random.RandomState(0)).fit(X)
    SGDNMF(2, epochs=5, random_state=np.random.default_rng(0)).fit(X)
