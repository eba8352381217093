"""fit() forwards masked modes to nmf_sched.fit_masked."""
import numpy as np
import pytest
import scipy.sparse as sp

import nmf_sched
from nmf_sched import datasets

from conftest import TOL


def _problem():
    p = datasets.planted(120, 80, 4, noise=0.01, seed=3)
    rng = np.random.default_rng(0)
    mask = rng.random(p.V.shape) < 0.5
    return p.V, mask


def test_mask_nan_and_unobserved_agree_through_fit():
    V, mask = _problem()
    a = nmf_sched.fit(V, 4, mask=mask, seed=1, epochs=5, tol=0)
    Vn = np.where(mask, V, np.nan)
    b = nmf_sched.fit(Vn, 4, missing="nan", seed=1, epochs=5, tol=0)
    np.testing.assert_allclose(a.W, b.W, rtol=TOL["float64"])
    # the stored entries of S are exactly the observed ones (the planted V has no zero)
    S = sp.csr_array(np.where(mask, V, 0.0))
    assert S.nnz == int(mask.sum())
    c = nmf_sched.fit(S, 4, missing="unobserved", seed=1, epochs=5, tol=0)
    np.testing.assert_array_equal(c.W, a.W)
    np.testing.assert_array_equal(c.H, a.H)
    assert a.rel_error == pytest.approx(b.rel_error, rel=TOL["float64"])


def test_nan_without_mode_points_to_the_masked_option():
    V, mask = _problem()
    with pytest.raises(ValueError, match="missing='nan'"):
        nmf_sched.fit(np.where(mask, V, np.nan), 4)


def test_masked_rejects_settings_it_does_not_use():
    V, mask = _problem()
    with pytest.raises(ValueError, match="noise_std"):
        nmf_sched.fit(V, 4, mask=mask, noise_std=0.1)
