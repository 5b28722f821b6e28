"""The paper's default problem (docs/theory.md), every method, end to end."""

import numpy as np
import pytest

import laefast
from laefast import reference

LAM, ALPHA, EPS, K = 50.0, 1e-5, 1e-8, 2


@pytest.fixture(scope="module")
def paper():
    X, W1, W2 = reference.paper_problem()
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    return X, X @ X.T, W1, W2, U[:, :K], s[:K]


@pytest.mark.parametrize("method", laefast.METHODS)
def test_paper_problem(paper, method):
    X, C, W1, W2, U, s = paper
    alpha = ALPHA if method in ("untied", "sync", "tied") else None
    ref = reference.run(method, C, W1, W2, LAM, alpha, EPS)
    res = laefast.solve(C, K, LAM, method=method, alpha=alpha, tol=EPS,
                        init=(W1, W2))
    assert res.converged and ref.converged
    assert abs(res.n_iter - ref.n_iter) <= 0.01 * ref.n_iter
    assert laefast.metrics.u_error(res.components.T, U) < 1e-4
    np.testing.assert_allclose(res.singular_values, s, rtol=1e-6)
    np.testing.assert_allclose(res.eigenvalues, s ** 2, rtol=2e-6)
    assert res.alpha == alpha and res.lam == LAM and res.method == method


def test_fit_from_data_matches_svd(paper):
    X = paper[0]
    # numpy / scikit-learn layout: samples as rows.
    res = laefast.fit(X.T, K, LAM, method="exact-untied")
    U, s, _ = np.linalg.svd(X - X.mean(axis=1, keepdims=True),
                            full_matrices=False)
    assert laefast.metrics.u_error(res.components.T, U[:, :K]) < 1e-4
    np.testing.assert_allclose(res.singular_values, s[:K], rtol=1e-6)
    np.testing.assert_allclose(res.mean, X.mean(axis=1), atol=1e-12)


@pytest.mark.parametrize("method", laefast.METHODS)
def test_default_start_and_alpha_converge(method):
    # alpha=None and init=None: no tuning, no divergence.
    rng = np.random.default_rng(3)
    X = np.diag([3.0, 2.0, 1.5, 0.5, 0.4, 0.3]) @ rng.standard_normal((6, 500))
    X -= X.mean(axis=1, keepdims=True)
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    res = laefast.solve(X @ X.T, 2, 0.1 * s[1] ** 2, method=method,
                        random_state=0, tol=1e-10, max_iter=200_000)
    assert res.converged
    assert laefast.metrics.max_principal_sine(res.components.T, U[:, :2]) < 1e-5
    np.testing.assert_allclose(res.singular_values, s[:2], rtol=1e-6)
