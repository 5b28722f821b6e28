"""Sum against product regularization, and non-uniform l2, on digits and on
a spiked problem (m = 100, k = 5), against the true eigenvectors."""

import numpy as np
import pytest

import laefast
from laefast.metrics import max_principal_sine, u_error

from _helpers import digits, spiked

K = 5


def _spiked():
    # k spikes of variance 20 .. 10 over unit noise, m = 100, n = 2000.
    return spiked(2000, 100, np.sqrt(np.geomspace(20, 10, K)),
                  noise_first=True)


@pytest.fixture(scope="module", params=["digits", "spiked"])
def problem(request):
    X = digits() if request.param == "digits" else _spiked()
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc
    # The truth from an independent route: the SVD of the centered samples.
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    lam = 0.5 * s[K - 1] ** 2
    return X, C, Vt[:K].T, s[:K] ** 2, lam


def test_sum_recovers_the_directions(problem):
    X, C, U, ev, lam = problem
    res = laefast.fit(X, K, lam, method="exact-tied", tol=1e-12,
                      max_iter=10_000, random_state=0)
    assert res.converged and res.readout == "svd"
    assert u_error(res.components.T, U) <= 1e-6
    np.testing.assert_allclose(res.eigenvalues, ev, rtol=1e-8)


def test_product_recovers_the_subspace_not_the_directions(problem):
    X, C, U, ev, lam = problem
    res = laefast.fit(X, K, lam, method="untied", regularizer="product",
                      tol=1e-12, max_iter=100_000, random_state=0)
    assert res.converged
    assert res.readout == "subspace" and not res.directions_identified
    assert max_principal_sine(res.W2, U) <= 1e-6
    assert max_principal_sine(res.components.T, U) <= 1e-6
    # The directions are mixed: an error of order one, not a rounding one.
    assert u_error(res.components.T, U) > 0.1
    cols = res.W2 / np.linalg.norm(res.W2, axis=0)
    assert u_error(cols, U) > 0.1


def test_non_uniform_l2_puts_the_ordered_directions_in_the_columns(problem):
    X, C, U, ev, lam = problem
    lam_vec = lam * np.linspace(0.5, 1.0, K)
    res = laefast.fit(X, K, lam_vec, method="exact-tied", tol=1e-12,
                      max_iter=100_000, random_state=0)
    assert res.converged and res.readout == "columns"
    # W2's own columns, no SVD: column i is direction i, in lam's order.
    cols = res.W2 / np.linalg.norm(res.W2, axis=0)
    assert u_error(cols, U) <= 1e-6
    np.testing.assert_allclose(np.linalg.norm(res.W2, axis=0) ** 2,
                               1 - lam_vec / ev, rtol=1e-7)
    np.testing.assert_allclose(res.eigenvalues, ev, rtol=1e-7)
