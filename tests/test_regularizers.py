"""Per-latent lam and the product regularizer: kernels against the NumPy
reference, losses and gradients against finite differences, read-outs
against the theory."""

import warnings

import numpy as np
import pytest

import laefast
from laefast import reference
from laefast.metrics import max_principal_sine, objective, u_error

from _helpers import make_problem, rel_error, start_weights

GD = ("untied", "sync", "tied")


def _cases():
    for method in laefast.METHODS:
        yield method, "vector"
    for method in GD:
        yield method, "product"


def _setup(method, case):
    X, C, U, s = make_problem()
    k = 3
    if case == "vector":
        lam = np.array([0.1, 0.2, 0.3]) * s[k - 1] ** 2
        reg = "sum"
    else:
        lam, reg = 0.2 * s[k - 1] ** 2, "product"
    alpha = 0.3 / s[0] ** 2 if method in GD else None
    W1, W2 = start_weights(C.shape[0], k)
    return X, C, W1, W2, lam, reg, alpha


@pytest.mark.parametrize("method,case", list(_cases()))
def test_kernel_iterates_match_reference(method, case):
    X, C, W1, W2, lam, reg, alpha = _setup(method, case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", laefast.ConvergenceWarning)
        warnings.filterwarnings("ignore", "decoder singular values",
                                RuntimeWarning)
        res = laefast.solve(C, 3, lam, method=method, alpha=alpha, tol=0.0,
                            max_iter=40, init=(W1, W2), regularizer=reg,
                            history="weights")
    ref = reference.iterates(method, C, W1, W2, lam, alpha, tol=-1.0,
                             regularizer=reg)
    for t in range(40):
        r1, r2, rstop = next(ref)
        assert rel_error(res.history["W1"][t], r1) < 1e-10, t
        assert rel_error(res.history["W2"][t], r2) < 1e-10, t
        assert res.history["stop"][t] == pytest.approx(rstop, rel=1e-8)
        # The recorded loss is the run's own: L_sigma (per latent) or L_pi.
        assert res.history["objective"][t] == pytest.approx(
            laefast.loss(C, r1, r2, lam, reg), rel=1e-10)
    assert np.array_equal(res.history["W2"][-1], res.W2)


@pytest.mark.parametrize("method,case", [("untied", "product"),
                                         ("tied", "product"),
                                         ("exact-tied", "vector"),
                                         ("sync", "vector")])
def test_data_path_matches_gram_path(method, case):
    X, C, W1, W2, lam, reg, alpha = _setup(method, case)
    kwargs = dict(method=method, alpha=alpha, tol=0.0, max_iter=25,
                  init=(W1, W2), regularizer=reg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_c = laefast.solve(C, 3, lam, **kwargs)
        # make_problem's X is m x n, columns samples: fit takes X^T.
        on_x = laefast.fit(X.T, 3, lam, center=False, path="data", **kwargs)
    assert rel_error(on_x.W2, on_c.W2) < 1e-10
    assert rel_error(on_x.W1, on_c.W1) < 1e-10


@pytest.mark.parametrize("method,case", [("untied", "product"),
                                         ("exact-untied", "vector"),
                                         ("tied", "vector")])
def test_float32_tracks_float64(method, case):
    X, C, W1, W2, lam, reg, alpha = _setup(method, case)
    kwargs = dict(method=method, alpha=alpha, tol=0.0, max_iter=30,
                  init=(W1, W2), regularizer=reg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r64 = laefast.solve(C, 3, lam, **kwargs)
        r32 = laefast.solve(C.astype(np.float32), 3, lam, **kwargs)
    assert r32.W2.dtype == np.float32
    assert rel_error(r32.W2.astype(np.float64), r64.W2) < 1e-4


def test_exact_steps_with_vector_lam_match_kronecker_reference():
    X, C, U, s = make_problem()
    W1, W2 = start_weights(C.shape[0], 3, seed=4, scale=1.0)
    lam = np.array([0.5, 2.0, 7.0])
    assert rel_error(laefast.exact_w1(C, W2, lam),
                     reference.exact_w1(C, W2, lam)) < 1e-10
    assert rel_error(laefast.exact_w2(C, W1, lam),
                     reference.exact_w2(C, W1, lam)) < 1e-12
    # A vector of equal entries is the scalar lam, by another route.
    same = np.full(3, 2.0)
    assert rel_error(laefast.exact_w1(C, W2, same),
                     laefast.exact_w1(C, W2, 2.0)) < 1e-10


def test_step_takes_the_regularizer():
    X, C, W1, W2, lam, reg, alpha = _setup("untied", "product")
    w1, w2 = W1.copy(), W2.copy()
    stop = laefast.step(w1, w2, C, lam, method="untied", alpha=alpha,
                        regularizer="product")
    r1, r2, rstop = next(reference.iterates("untied", C, W1, W2, lam, alpha,
                                            tol=-1.0, regularizer="product"))
    assert rel_error(w1, r1) < 1e-12 and rel_error(w2, r2) < 1e-12
    assert stop == pytest.approx(rstop, rel=1e-10)


# ---------------------------------------------------------------------------
# Losses and gradients

@pytest.mark.parametrize("regularizer,lam", [(None, 0.7), ("sum", 0.7),
                                             ("sum", [0.2, 0.9]),
                                             ("product", 0.7)])
def test_loss_gradient_matches_finite_differences(regularizer, lam):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 6))
    C = A @ A.T
    W1, W2 = rng.standard_normal((2, 4)), rng.standard_normal((4, 2))
    G1, G2 = laefast.loss_gradient(C, W1, W2, lam, regularizer)
    h = 1e-6
    for W, G, which in ((W1, G1, 0), (W2, G2, 1)):
        for idx in np.ndindex(W.shape):
            E = np.zeros_like(W)
            E[idx] = h
            args_p = (W1 + E, W2) if which == 0 else (W1, W2 + E)
            args_m = (W1 - E, W2) if which == 0 else (W1, W2 - E)
            fd = (laefast.loss(C, *args_p, lam, regularizer)
                  - laefast.loss(C, *args_m, lam, regularizer)) / (2 * h)
            assert fd == pytest.approx(G[idx], rel=1e-6, abs=1e-6)


def test_loss_against_the_definitions():
    X, C, U, s = make_problem()
    W1, W2 = start_weights(C.shape[0], 3, seed=5, scale=1.0)
    R = X - W2 @ (W1 @ X)
    L = np.sum(R * R)
    assert laefast.loss(C, W1, W2, 3.0, None) == pytest.approx(L, rel=1e-10)
    assert laefast.loss(C, W1, W2, 3.0, "product") == pytest.approx(
        L + 3.0 * np.sum((W2 @ W1) ** 2), rel=1e-10)
    assert laefast.loss(C, W1, W2, 3.0) == pytest.approx(
        objective(C, W1, W2, 3.0), rel=1e-12)
    lam = np.array([1.0, 2.0, 3.0])
    penalty = sum(lam[i] * (W1[i] @ W1[i] + W2[:, i] @ W2[:, i])
                  for i in range(3))
    assert laefast.loss(C, W1, W2, lam) == pytest.approx(L + penalty,
                                                         rel=1e-10)


# ---------------------------------------------------------------------------
# What each regularizer's minimum gives, and what the result says

def test_vector_lam_columns_are_the_ordered_directions():
    X, C, U, s = make_problem()
    k = 3
    # Given out of order: the smallest lam's latent learns the top direction.
    lam = np.array([0.3, 0.1, 0.2]) * s[k - 1] ** 2
    res = laefast.solve(C, k, lam, method="exact-tied", tol=1e-13,
                        max_iter=100_000, random_state=0)
    assert res.converged and res.readout == "columns"
    assert res.directions_identified
    order = np.argsort(lam)
    cols = res.W2[:, order] / np.linalg.norm(res.W2[:, order], axis=0)
    assert u_error(cols, U[:, :k]) < 1e-6
    assert u_error(res.components.T, U[:, :k]) < 1e-6
    # s_i^2 = 1 - lam_i / sigma_i^2, so the read-out gives sigma_i^2 back.
    np.testing.assert_allclose(res.eigenvalues, s[:k] ** 2, rtol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(res.W2[:, order], axis=0) ** 2,
                               1 - lam[order] / s[:k] ** 2, rtol=1e-8)


def test_t6_product_untied_gives_the_subspace_and_says_so():
    X, C, U, s = make_problem()
    k = 3
    lam = 0.5 * s[k - 1] ** 2
    res = laefast.solve(C, k, lam, method="untied", regularizer="product",
                        tol=1e-12, max_iter=200_000, random_state=0)
    assert res.converged
    assert res.readout == "subspace" and not res.directions_identified
    assert np.all(np.isnan(res.eigenvalues))
    assert max_principal_sine(res.components.T, U[:, :k]) < 1e-6
    # L_pi's minimum: W2 W1 = U_k diag(sigma^2 / (sigma^2 + lam)) U_k^T.
    Uk = U[:, :k]
    target = Uk @ np.diag(s[:k] ** 2 / (s[:k] ** 2 + lam)) @ Uk.T
    assert np.linalg.norm(res.W2 @ res.W1 - target) < 1e-6
    # ... and it is not tied, unlike L_sigma's.
    assert np.linalg.norm(res.W1 - res.W2.T) > 1e-2


@pytest.mark.parametrize("method", ["sync", "tied"])
def test_product_tied_reads_out_directions_and_variances(method):
    X, C, U, s = make_problem()
    k = 3
    lam = 0.5 * s[k - 1] ** 2
    res = laefast.solve(C, k, lam, method=method, regularizer="product",
                        tol=1e-12, max_iter=200_000, random_state=0)
    assert res.readout == "svd" and res.directions_identified
    assert u_error(res.components.T, U[:, :k]) < 1e-6
    np.testing.assert_allclose(res.eigenvalues, s[:k] ** 2, rtol=1e-7)


def test_scalar_sum_result_is_unchanged():
    X, C, U, s = make_problem()
    lam = 0.5 * s[2] ** 2
    res = laefast.solve(C, 3, lam, tol=1e-12, random_state=0)
    assert res.regularizer == "sum" and res.readout == "svd"
    assert isinstance(res.lam, float) and res.lam == lam
    # The read-out of one lam: the SVD directions and values (docs/theory.md).
    assert u_error(res.components.T, U[:, :3]) < 1e-6
    np.testing.assert_allclose(res.singular_values, s[:3], rtol=1e-8)


# ---------------------------------------------------------------------------
# Errors

def test_product_rejected_by_exact_methods():
    X, C, U, s = make_problem()
    for method in ("exact-untied", "exact-sync", "exact-tied"):
        with pytest.raises(ValueError, match="regularizer='product' works "
                                             "with the gradient methods"):
            laefast.solve(C, 2, 1.0, method=method, regularizer="product")
    with pytest.raises(ValueError, match="regularizer='product' works"):
        laefast.fit(X.T, 2, 1.0, method="exact-tied", regularizer="product")


@pytest.mark.parametrize("lam,message", [
    ([1.0, 2.0], r"one value per latent: shape \(3,\)"),
    ([1.0, 0.0, 2.0], "finite values > 0"),
    ([1.0, np.nan, 2.0], "finite values > 0"),
    ("a", r"The 'lam' parameter of solve must be a finite float in the "
           r"range \[0, inf\) or an array-like of shape \(n_components,\)"),
    (-1.0, r"lam' parameter of solve must be .*Got -1.0 instead"),
])
def test_bad_lam(lam, message):
    X, C, U, s = make_problem()
    with pytest.raises(ValueError, match=message):
        laefast.solve(C, 3, lam)


def test_bad_regularizer_and_vector_product():
    X, C, U, s = make_problem()
    with pytest.raises(ValueError, match=r"The 'regularizer' parameter of solve "
                                         r"must be a str among \{'sum', "
                                         r"'product'\}\. Got 'l1' instead"):
        laefast.solve(C, 2, 1.0, regularizer="l1")
    with pytest.raises(ValueError, match="a vector lam goes with "
                                         "regularizer='sum'"):
        laefast.solve(C, 2, [1.0, 2.0], method="untied",
                      regularizer="product")
    with pytest.raises(ValueError, match=r"The 'history' parameter of solve must "
                                         r"be an instance of 'bool' or a str "
                                         r"among \{'weights'\}\. Got 'all'"):
        laefast.solve(C, 2, 1.0, history="all")
    with pytest.raises(ValueError, match=r"The 'regularizer' parameter of loss "
                                         r"must be None or a str among "
                                         r"\{'sum', 'product'\}\. Got 'l2'"):
        laefast.loss(C, np.ones((1, 8)), np.ones((8, 1)), 1.0, "l2")
