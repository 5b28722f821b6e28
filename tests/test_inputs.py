"""Layouts, dtypes, read-only inputs, and clear errors on bad input."""

import warnings

import numpy as np
import pytest

import laefast

from _helpers import make_problem


@pytest.fixture
def gram():
    X, C, U, s = make_problem(m=6, n=300)
    return X, C, U, s


def _frozen(a):
    a = a.copy(order="K")
    a.flags.writeable = False
    return a


# --- layouts and dtypes ---------------------------------------------------

@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_solve_layouts_readonly_and_untouched(gram, order, dtype):
    X, C, U, s = gram
    C = _frozen(np.asarray(C, dtype=dtype, order=order))
    rng = np.random.default_rng(0)
    W1 = _frozen(0.1 * rng.standard_normal((2, 6)).astype(dtype))
    W2 = _frozen(np.asfortranarray(0.1 * rng.standard_normal((6, 2))).astype(dtype))
    copies = [a.copy() for a in (C, W1, W2)]
    tol = 1e-6 if dtype == np.float32 else 1e-10
    res = laefast.solve(C, 2, 0.1 * s[1] ** 2, init=(W1, W2), tol=tol)
    for a, b in zip((C, W1, W2), copies):
        np.testing.assert_array_equal(a, b)
    assert res.components.dtype == dtype and res.W2.dtype == dtype
    assert laefast.metrics.u_error(res.components.T, U[:, :2]) < (
        1e-2 if dtype == np.float32 else 1e-6)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_layouts(gram, layout, dtype):
    X, C, U, s = gram
    data = np.asarray(X.T, dtype=dtype)          # (n_samples, n_features)
    if layout == "C":
        data = np.ascontiguousarray(data)
    elif layout == "F":
        data = np.asfortranarray(data)
    else:
        big = np.zeros((data.shape[0] * 2, data.shape[1] * 3), dtype=dtype)
        big[::2, ::3] = data
        data = big[::2, ::3]
    data = _frozen(data) if layout != "strided" else data
    before = data.copy()
    tol = 1e-5 if dtype == np.float32 else 1e-10
    res = laefast.fit(data, 2, 0.1 * s[1] ** 2, tol=tol)
    np.testing.assert_array_equal(data, before)
    assert res.components.dtype == dtype
    # X was already centered, so the Gram is X X^T.
    C_expected = X @ X.T
    C_got, mean = laefast.gram_matrix(data)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C_got, C_expected, rtol=rtol,
                               atol=rtol * np.abs(C_expected).max())
    assert laefast.metrics.u_error(res.components.T, U[:, :2]) < (
        1e-2 if dtype == np.float32 else 1e-6)


def test_gram_matrix_centers_large_offsets():
    rng = np.random.default_rng(1)
    data = 1e4 + rng.standard_normal((3000, 5))   # 3000 rows: several chunks
    C, mean = laefast.gram_matrix(data)
    centered = data - data.mean(axis=0)
    np.testing.assert_allclose(C, centered.T @ centered, rtol=1e-9)
    np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-14)
    C_raw, none = laefast.gram_matrix(data, center=False)
    assert none is None
    np.testing.assert_allclose(C_raw, data.T @ data, rtol=1e-12)


def test_integer_input_becomes_float64(gram):
    X, C, U, s = gram
    res = laefast.fit(np.round(100 * X.T).astype(np.int64), 2, 1e4 * s[1] ** 2 / 4)
    assert res.components.dtype == np.float64


# --- errors -----------------------------------------------------------------

def test_bad_gram(gram):
    C = gram[1]
    with pytest.raises(ValueError, match="square"):
        laefast.solve(C[:, :4], 2, 1.0)
    with pytest.raises(ValueError, match="square"):
        laefast.solve(np.ones(5), 2, 1.0)
    bad = C.copy()
    bad[0, 3] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        laefast.solve(bad, 2, 1.0)
    for value in (np.nan, np.inf):
        bad = C.copy()
        bad[1, 1] = value
        with pytest.raises(ValueError, match=r"C contains (NaN|infinity) "
                                             r"\(first at row 1\)"):
            laefast.solve(bad, 2, 1.0)
    with pytest.raises(ValueError, match="numeric"):
        laefast.solve(np.array([["a", "b"], ["b", "a"]]), 1, 1.0)


@pytest.mark.parametrize("m", [1, 3, 4, 5, 63, 64, 65, 71, 130, 257])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("avx2", [True, False])
def test_gram_stats_against_numpy(m, dtype, avx2):
    # Both sweeps (AVX2 and portable) on sizes that leave every edge of the
    # 64-row bands and the 4 x 4 blocks, with a planted asymmetry on each
    # side of the diagonal, near the corners and inside.
    from laefast import _checks
    if avx2 and not _checks.simd():
        pytest.skip("this CPU has no AVX2")
    rng = np.random.default_rng(m)
    A = rng.standard_normal((m, m))
    C = ((A + A.T) / 2).astype(dtype)
    spots = {(0, m - 1), (m - 1, 0), (m // 2, m // 3), (m // 3, m // 2),
             (m - 1, m - 2)}
    default = _checks.simd()
    try:
        _checks.simd(avx2)
        for threads in (1, 2):
            assert _checks.gram_stats(C, threads)[0] == 0.0
            for i, j in spots:
                bad = C.copy()
                bad[i, j] += dtype(0.25) * (1 + (i + j) % 3)
                asym, diag, row_max, trace, total = _checks.gram_stats(
                    bad, threads)
                wide = bad.astype(np.float64)
                # the differences are formed in the matrix's dtype
                assert asym == np.abs(bad - bad.T).max()
                assert diag == np.abs(np.diagonal(wide)).max()
                assert trace == pytest.approx(np.trace(wide), rel=1e-12,
                                              abs=1e-12)
                assert row_max == pytest.approx(
                    np.abs(wide).sum(axis=1).max(), rel=1e-12)
                assert total == pytest.approx(wide.sum(), rel=1e-12,
                                              abs=1e-9)
    finally:
        _checks.simd(default)


@pytest.mark.skipif(not laefast.openmp_enabled(), reason="built without OpenMP")
def test_gram_stats_in_parallel_matches_one_thread_and_numpy():
    # Large enough (m = 4600: 1e7 entries a thread) that two threads run:
    # each band writes only its own results, merged in band order, so the
    # numbers are the one-thread ones to the last bit.
    from laefast import _checks
    m = 4600
    rng = np.random.default_rng(7)
    C = rng.standard_normal((m, m)).astype(np.float32)
    C = (C + C.T) / 2
    C[10, 4500] += np.float32(0.5)
    one = _checks.gram_stats(C, 1)
    for _ in range(6):              # a race shows in some runs, not all
        assert _checks.gram_stats(C, 2) == one
    wide = C.astype(np.float64)
    assert one[0] == np.abs(C - C.T).max()
    assert one[3] == pytest.approx(np.trace(wide), rel=1e-12)
    assert one[4] == pytest.approx(wide.sum(), rel=1e-10, abs=1e-6)
    # An off-diagonal NaN reaches only the total (the max and the trace do
    # not see it), whichever thread's band holds it.
    for row in (5, 2000, 4599):
        bad = C.copy()
        bad[row, (row * 7) % m or 1] = np.nan
        assert np.isnan(_checks.gram_stats(bad, 2)[4])


def test_bad_data():
    with pytest.raises(ValueError, match="2-D"):
        laefast.fit(np.ones(5), 1, 1.0)
    with pytest.raises(ValueError, match=r"X has no rows: found array with 0 sample\(s\)"):
        laefast.fit(np.ones((0, 3)), 1, 1.0)
    X = np.random.default_rng(0).standard_normal((20, 3))
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        laefast.fit(X, 1, 1.0)


@pytest.mark.parametrize("k", [0, -1, 7, 2.5, True])
def test_bad_n_components(gram, k):
    with pytest.raises(ValueError, match="n_components"):
        laefast.solve(gram[1], k, 1.0)


@pytest.mark.parametrize("name, value", [
    ("lam", -1.0), ("lam", np.nan), ("alpha", -1e-3), ("alpha", 0.0),
    ("tol", -1e-8), ("tol", np.inf), ("max_iter", -5), ("max_iter", 2.0)])
def test_bad_scalars(gram, name, value):
    kwargs = dict(lam=1.0, method="untied")
    kwargs[name] = value
    lam = kwargs.pop("lam")
    with pytest.raises(ValueError, match=name):
        laefast.solve(gram[1], 2, lam, **kwargs)


def test_unknown_method(gram):
    with pytest.raises(ValueError, match=r"The 'method' parameter of solve must "
                                         r"be a str among .*'exact-tied'\}\. "
                                         r"Got 'newton' instead"):
        laefast.solve(gram[1], 2, 1.0, method="newton")


def test_bad_init(gram):
    C = gram[1]
    good1, good2 = np.ones((2, 6)), np.ones((6, 2))
    with pytest.raises(ValueError, match="W1 must have shape"):
        laefast.solve(C, 2, 1.0, init=(np.ones((6, 2)), good2))
    with pytest.raises(ValueError, match="W2 must have shape"):
        laefast.solve(C, 2, 1.0, init=(good1, np.ones((6, 3))))
    with pytest.raises(ValueError, match="pair"):
        laefast.solve(C, 2, 1.0, init=good1)
    bad = good2.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"W2 contains infinity \(first at row 0\)"):
        laefast.solve(C, 2, 1.0, init=(good1, bad))


def test_not_positive_definite_raises_linalgerror(gram):
    C = gram[1]
    # lam = 0 and a zero encoder: W1 C W1^T + lam I is the zero matrix.
    # (solve rejects lam = 0 for these methods; step runs them.)
    with pytest.raises(np.linalg.LinAlgError, match=r"not positive definite "
                       r".*with lam = 0 this happens when W1 C W1\^T is "
                       r"singular"):
        laefast.step(np.zeros((2, 6)), np.zeros((6, 2)), C, 0.0,
                     method="exact-tied")
    with pytest.raises(np.linalg.LinAlgError, match=r"not positive definite "
                       r".*with lam = 0 this happens when C is singular"):
        laefast.step(np.ones((2, 6)), np.zeros((6, 2)), C, 0.0,
                     method="exact-untied")
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        laefast.exact_w2(C, np.zeros((2, 6)), 0.0)


def test_an_indefinite_c_is_named_when_lam_is_positive():
    """With lam > 0 only a negative eigenvalue of C makes the exact steps'
    systems indefinite (a float32 C of a singular Gram matrix has some near
    -eps ||C||): the error says so instead of advising lam > 0.  This C's
    diagonal is positive, so the input check cannot see it."""
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    C = (U * np.array([1.0, 0.5, 0.2, 0.1, 0.05, -1e-3])) @ U.T
    C = (C + C.T) / 2
    assert np.all(np.diagonal(C) > 0)
    negative = r"C has a negative eigenvalue: it is not positive semi-definite"
    with pytest.raises(np.linalg.LinAlgError, match=r"d_0 C \+ lam I of the "
                       r"exact W1 step is not positive definite \(lam=1e-06\); "
                       r"so " + negative):
        laefast.solve(C, 3, 1e-6, method="exact-untied", random_state=0)
    W1 = 10.0 * U[:, 5:6].T
    with pytest.raises(np.linalg.LinAlgError, match=r"W1 C W1\^T \+ lam I is "
                       r"not positive definite \(lam=1e-06\); so " + negative):
        laefast.step(W1, W1.T.copy(), C, 1e-6, method="exact-tied")


@pytest.mark.parametrize("method", ["untied", "sync", "tied"])
def test_divergence_names_alpha(gram, method):
    C = gram[1]
    rng = np.random.default_rng(0)
    init = (rng.standard_normal((2, 6)), rng.standard_normal((6, 2)))
    with pytest.raises(laefast.DivergenceError, match="alpha"):
        laefast.solve(C, 2, 1.0, method=method, alpha=1.0, init=init)
    assert issubclass(laefast.DivergenceError, FloatingPointError)


def test_collapsed_components_warn_not_nan(gram):
    X, C, U, s = gram
    lam = 0.5 * (s[1] ** 2 + s[2] ** 2)       # between sigma_3^2 and sigma_2^2
    with pytest.warns(laefast.CollapsedComponentWarning, match=r"\[2\]"):
        res = laefast.solve(C, 3, lam, method="exact-untied", random_state=0)
    assert np.isfinite(res.singular_values).all()
    np.testing.assert_array_equal(res.collapsed, [False, False, True])
    assert res.singular_values[2] == 0
    np.testing.assert_allclose(res.singular_values[:2], s[:2], rtol=1e-6)


def test_max_iter_warns(gram):
    with pytest.warns(laefast.ConvergenceWarning, match="max_iter=3"):
        res = laefast.solve(gram[1], 2, 1.0, method="tied", max_iter=3)
    assert not res.converged and res.n_iter == 3


def test_step_requires_inplace_arrays(gram):
    C = gram[1]
    W1 = np.ones((2, 6))
    with pytest.raises(ValueError, match="C-contiguous and writeable"):
        laefast.step(W1, np.asfortranarray(np.ones((6, 2))), C, 1.0,
                     alpha=1e-3)
    with pytest.raises(ValueError, match="dtype"):
        laefast.step(W1.astype(np.float32), np.ones((6, 2)), C, 1.0,
                     alpha=1e-3)
    with pytest.raises(ValueError, match="alpha"):
        laefast.step(W1, np.ones((6, 2)), C, 1.0, method="tied")


def test_warnings_point_at_caller(gram):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        laefast.solve(gram[1], 2, 1.0, method="tied", max_iter=2)
    assert caught and all(w.filename == __file__ for w in caught)


@pytest.mark.parametrize("order", ["C", "F"])
def test_products_with_a_float32_gram_matrix_are_float64(order):
    """A float32 C is multiplied in float64 panels (m = 2100: two of them),
    exactly as its float64 copy would be, in either order."""
    from laefast._problem import GramProblem
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2100, 60))
    C = np.asarray((A @ A.T).astype(np.float32), order=order)
    Q = rng.standard_normal((2100, 3))
    got = GramProblem.from_gram(C).times(Q)
    want = C.astype(np.float64) @ Q
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13,
                               atol=1e-13 * np.abs(want).max())
