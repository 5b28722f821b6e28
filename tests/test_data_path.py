"""Iterations on raw data (C never formed) against the Gram-matrix kernels.

The product kernel's tests switch laefast._passes between its three ways
of multiplying by the centered samples (the AVX-512 kernel for 1 or 2
columns, the AVX2 kernel, and BLAS on centered blocks) through its private
``simd`` and ``simd512``: nothing public chooses.
"""

import tracemalloc
import warnings

import numpy as np
import pytest

import laefast
from laefast import _passes

from _helpers import scaled_gaussian

_AVX2 = _passes.simd()
_AVX512 = _passes.simd512()


@pytest.fixture(params=["avx512", "avx2", "blas"])
def product_kernel(request):
    """Runs a test with each product kernel this CPU has."""
    if request.param == "avx2" and not _AVX2:
        pytest.skip("this CPU has no AVX2 and FMA")
    if request.param == "avx512" and not _AVX512:
        pytest.skip("this CPU has no AVX-512F")
    _passes.simd(request.param != "blas")
    _passes.simd512(request.param == "avx512")
    yield request.param
    _passes.simd(_AVX2)
    _passes.simd512(_AVX512)

METHODS_ON_DATA = ("untied", "sync", "tied", "exact-sync", "exact-tied")


def _data(order="C", offset=3.0, dtype=np.float64):
    X = scaled_gaussian(400, 12, np.linspace(4, 1, 12), offset=offset)
    return np.asarray(X, dtype=dtype, order=order)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("method", METHODS_ON_DATA)
def test_data_iterates_equal_gram_iterates(order, method):
    X = _data(order)
    alpha = 1e-5 if method in ("untied", "sync", "tied") else None
    kw = dict(method=method, alpha=alpha, tol=0.0, max_iter=40,
              random_state=1, history=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_gram = laefast.fit(X, 3, 500.0, path="gram", **kw)
        on_data = laefast.fit(X, 3, 500.0, path="data", **kw)
    for a, b in ((on_data.W1, on_gram.W1), (on_data.W2, on_gram.W2)):
        assert np.linalg.norm(a - b) <= 1e-11 * np.linalg.norm(b)
    np.testing.assert_allclose(on_data.history["objective"],
                               on_gram.history["objective"], rtol=1e-11)
    np.testing.assert_allclose(on_data.mean, X.mean(axis=0), rtol=1e-13)


@pytest.mark.parametrize("center", [True, False])
def test_data_path_finds_principal_directions(center):
    X = _data(offset=0.0 if not center else 50.0)
    res = laefast.fit(X, 3, 500.0, path="data", method="exact-tied",
                      center=center, tol=1e-10)
    Xc = X - X.mean(axis=0) if center else X
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    assert laefast.metrics.max_principal_sine(res.components.T, Vt[:3].T) < 1e-8
    np.testing.assert_allclose(res.singular_values, s[:3], rtol=1e-8)


def test_data_path_float32():
    X = _data(dtype=np.float32)
    res = laefast.fit(X, 3, 500.0, path="data", tol=1e-5)
    assert res.W2.dtype == np.float32
    _, s, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    assert laefast.metrics.max_principal_sine(res.components.T, Vt[:3].T) < 1e-3


def test_data_path_does_not_copy_x():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 100))            # 16 MB
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", laefast.ConvergenceWarning)
        laefast.fit(X, 4, 1e4, path="data", method="exact-tied", max_iter=30)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < X.nbytes / 4


def _quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", laefast.ConvergenceWarning)
        # A few steps from a random start: not at a minimum yet.
        warnings.filterwarnings("ignore", "decoder singular values",
                                RuntimeWarning)
        return laefast.fit(*args, **kwargs)


def test_path_choice():
    # Tall data (n >> m): C is cheap to form and to iterate on, and 'auto'
    # does: its iterates are path='gram''s, bit for bit, not path='data''s.
    X = _data()
    kw = dict(method="exact-tied", tol=0.0, max_iter=30, random_state=1)
    auto, gram, data = (_quiet_fit(X, 2, 500.0, path=p, **kw)
                        for p in ("auto", "gram", "data"))
    assert not np.array_equal(gram.W2, data.W2)      # the paths differ ...
    np.testing.assert_array_equal(auto.W2, gram.W2)  # ... and auto is gram
    # Wide data (n << m): C would take 4 to 8 times the samples' memory;
    # 'auto' iterates on the samples and never forms it.
    n, m = 100, 3000
    for method, k, dtype in (("exact-tied", 2, np.float64),
                             ("untied", 1, np.float32)):
        X = scaled_gaussian(n, m, np.linspace(4, 1, m), seed=1).astype(dtype)
        tracemalloc.start()
        try:
            _quiet_fit(X, k, 1.0, method=method, tol=0.0, max_iter=5)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < m * m * X.itemsize / 4, (method, peak)
    # exact-untied needs C (path='data' refuses it): 'auto' forms it, even
    # for wide data, and matches path='gram'.
    X = _data()[:10]
    kw = dict(method="exact-untied", tol=0.0, max_iter=10, random_state=1)
    np.testing.assert_array_equal(_quiet_fit(X, 2, 1.0, **kw).W2,
                                  _quiet_fit(X, 2, 1.0, path="gram", **kw).W2)
    with pytest.raises(ValueError, match="path"):
        laefast.fit(_data(), 2, 1.0, path="disk")
    with pytest.raises(ValueError, match="exact-untied needs"):
        laefast.fit(_data(), 2, 1.0, path="data", method="exact-untied")


def _top_subspace_sine(components, X, k):
    """Largest principal-angle sine between LAEPCA's components and the
    top-k right singular vectors of the centered X (np.linalg.svd)."""
    Xc = X - X.mean(axis=0)
    Vt = np.linalg.svd(Xc, full_matrices=False)[2]
    return laefast.metrics.max_principal_sine(components[:k].T, Vt[:k].T)


def test_wide_data_with_a_double_eigenvalue(product_kernel):
    # Directions 3 and 4 have exactly the same variance, above noise that
    # makes X full rank: the samples path's Krylov iteration must return
    # the whole top-k subspace and both equal variances.
    rng = np.random.default_rng(7)
    n, m, k = 200, 600, 6
    U = np.linalg.qr(rng.standard_normal((m, k)))[0]
    ones = np.ones((n, 1)) / np.sqrt(n)
    Z = np.linalg.qr(np.hstack([ones, rng.standard_normal((n, k))]))[0]
    Z = Z[:, 1:] * np.sqrt(n)          # centered, orthogonal columns
    # Noise orthogonal to Z, to the ones and to U: C is exactly
    # U diag(n scales^2) U^T plus a part orthogonal to U.
    P = np.hstack([ones, Z / np.sqrt(n)])
    E = rng.standard_normal((n, m))
    E -= P @ (P.T @ E)
    E -= (E @ U) @ U.T
    scales = np.array([9.0, 7.0, 5.0, 5.0, 3.0, 2.0])
    X = (Z * scales) @ U.T + 0.05 * E + 4.0
    est = laefast.LAEPCA(k, random_state=0).fit(X)
    assert est.converged_
    assert _top_subspace_sine(est.components_, X, k) < 1e-8
    np.testing.assert_allclose(est.explained_variance_,
                               n * scales ** 2 / (n - 1), rtol=1e-10)


def test_wide_data_of_rank_below_the_width():
    # 12 samples span 11 centered directions, fewer than the k + 10
    # columns the iteration keeps: the space runs out and is filled.
    rng = np.random.default_rng(8)
    X = rng.standard_normal((12, 300)) * np.linspace(3, 1, 300)
    est = laefast.LAEPCA(5, random_state=0).fit(X)
    assert _top_subspace_sine(est.components_, X, 5) < 1e-8
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)[:5]
    np.testing.assert_allclose(est.explained_variance_, s ** 2 / 11,
                               rtol=1e-10)


@pytest.mark.parametrize("max_iter", [1, 2, 3])
def test_a_short_max_iter_still_trains_every_component(max_iter):
    # The samples path's Krylov block starts narrow; with too few products
    # to reach k + p columns it must widen, not return fewer components.
    X = np.random.default_rng(0).standard_normal((100, 400))
    with pytest.warns(laefast.ConvergenceWarning,
                      match=f"stopped at max_iter={max_iter} "):
        est = laefast.LAEPCA(10, max_iter=max_iter, random_state=0).fit(X)
    assert est.components_.shape == (10, 400)
    np.testing.assert_allclose(est.components_ @ est.components_.T,
                               np.eye(10), atol=1e-12)
    # Each component's variance is its Rayleigh quotient on the data.
    Xc = X - X.mean(axis=0)
    q = np.einsum("ij,ij->i", est.components_ @ Xc.T @ Xc,
                  est.components_) / 99
    np.testing.assert_allclose(est.explained_variance_, q, rtol=1e-10)


@pytest.mark.parametrize("k", [5, 40])
def test_wide_data_whose_row_space_the_krylov_space_exhausts(
        k, product_kernel):
    # 50 samples span 49 centered directions: after a dozen products of 4
    # columns the Krylov space holds all of them, and the remainders of
    # the last blocks are rounding.  The space must stay orthonormal and
    # the iteration converge (once it silently stalled at a residual of
    # 1e-9 and warned).
    X = np.random.default_rng(0).standard_normal((50, 300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = laefast.LAEPCA(k, random_state=0).fit(X)
    assert est.converged_
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)[:k]
    np.testing.assert_allclose(est.explained_variance_, s ** 2 / 49,
                               rtol=1e-12)
    assert _top_subspace_sine(est.components_, X, min(k, 20)) < 1e-9


def _views(X, layout):
    if layout == "C":
        return X
    if layout == "reversed":
        return X[::-1]
    if layout == "F":
        return np.asfortranarray(X)      # columns of unit stride
    if layout == "F reversed":
        return np.asfortranarray(X)[:, ::-1]   # a negative column stride
    if layout == "F padded":
        # Columns of unit stride, n + 5 entries apart.
        tall = np.zeros((X.shape[0] + 5, X.shape[1]), dtype=X.dtype,
                        order="F")
        tall[:X.shape[0]] = X
        return tall[:X.shape[0]]
    if layout == "shifted":
        # Contiguous rows that start one entry past a cache line (the SIMD
        # kernels' vectors begin at the next line: a masked first vector).
        buf = np.empty(X.size + 64 // X.itemsize + 1, dtype=X.dtype)
        first = (-buf.ctypes.data % 64) // X.itemsize + 1
        out = buf[first:first + X.size].reshape(X.shape)
        out[...] = X
        return out
    wide = np.zeros((X.shape[0], X.shape[1] + 3), dtype=X.dtype)
    wide[:, :X.shape[1]] = X
    return wide[:, :X.shape[1]]          # rows of stride m + 3


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["C", "rows", "reversed", "shifted", "F",
                                    "F reversed", "F padded"])
def test_centered_product_against_numpy(product_kernel, layout, dtype,
                                        n_threads):
    # Odd sizes: a single row, row counts that leave 1, 2 or 3 rows after
    # the AVX2 kernel's groups (4 rows for 1 or 2 columns, pairs for
    # more) and 4, 2 and 1 after the AVX-512 kernel's 8, m not a multiple
    # of 4 or 8 (their vectors) and below one vector, column counts 1 to 9
    # (the AVX2 kernel's groups of 4, 2 and 1, padded at 3), and more rows
    # than one block of the pass (the next block's rows are prefetched).
    # On column-major layouts the column kernel takes columns 4 at a time
    # and Q's columns 2 at a time, with n not a multiple of its vectors.
    # A mean of 1e3 over a spread of 2 tests the fused centering.
    rng = np.random.default_rng(3)
    for n, m, r in [(1, 1, 1), (2, 3, 2), (3, 5, 3), (17, 37, 5),
                    (64, 130, 9), (101, 64, 4), (33, 8, 6), (9, 70, 7),
                    (5, 9, 1), (6, 37, 2), (7, 12, 1), (11, 70, 2),
                    (15, 23, 2), (23, 7, 1), (31, 2048, 2),
                    (2003, 513, 2), (1999, 300, 1)]:
        X = _views((2 * rng.standard_normal((n, m)) + 1e3).astype(dtype),
                   layout)
        Q = rng.standard_normal((m, r))
        out, mean = _check_centered_product(X, Q, n_threads)
        # The trace is optional: the product must not change without it.
        again = np.full((m, r), np.nan)
        assert _passes.centered_product(X, mean, Q, again, n_threads) == 0.0
        np.testing.assert_array_equal(again, out)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_centered_product_of_no_columns_still_gives_the_trace(
        product_kernel, dtype):
    # Q with no columns: nothing to multiply, but the trace is still the
    # centered sum of squares (the SIMD kernels, which would take r = 0
    # for a width of 1 or 2, are not called).
    rng = np.random.default_rng(5)
    X = (rng.standard_normal((40, 24)) + 7.0).astype(dtype)
    X64 = X.astype(np.float64)
    mean = X64.mean(axis=0)
    out = np.empty((24, 0))
    trace = _passes.centered_product(X, mean, np.empty((24, 0)), out, 1,
                                     want_trace=True)
    expected = np.sum((X64 - mean) ** 2)
    assert abs(trace - expected) <= 1e-12 * expected


def _check_centered_product(X, Q, n_threads):
    """centered_product of X and Q against NumPy in float64, with the
    trace; returns (out, mean)."""
    X64 = X.astype(np.float64)
    mean = X64.mean(axis=0)
    Xc = X64 - mean
    expected = Xc.T @ (Xc @ Q)
    out = np.full(Q.shape, np.nan)
    trace = _passes.centered_product(X, mean, Q, out, n_threads,
                                     want_trace=True)
    assert (np.abs(out - expected).max()
            <= 1e-12 * np.abs(expected).max()), (X.shape, Q.shape)
    assert abs(trace - np.sum(Xc ** 2)) <= 1e-12 * np.sum(Xc ** 2)
    return out, mean


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_sums_in_every_layout(dtype, n_threads):
    # The samples path's mean pass: rows of unit stride, Fortran order
    # (summed a column at a time), reversed and strided views, one row,
    # one column, and enough rows for two threads (one column of them too:
    # Fortran order splits columns over the threads).
    rng = np.random.default_rng(9)
    for n, m in [(1, 5), (7, 1), (3, 9), (70001, 40), (70001, 1)]:
        X = (rng.standard_normal((n, m)) + 1e3).astype(dtype)
        for view in (X, np.asfortranarray(X), X[::-1], X[:, ::-1],
                     np.asfortranarray(X)[::2], X[::3, ::2]):
            expected = view.astype(np.float64).sum(axis=0)
            got = _passes.column_sums(view, n_threads)
            assert got.dtype == np.float64 and got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-12,
                                       err_msg=str((n, m, view.strides)))
    for X in (rng.standard_normal((70001, 40)),
              np.asfortranarray(rng.standard_normal((70001, 40)))):
        # In the second thread's rows (C order) and columns (Fortran
        # order), and in the first's.
        X[50000, 5] = X[50000, 35] = X[3, 36] = np.nan
        sums = _passes.column_sums(X, n_threads)
        assert np.isnan(sums[[5, 35, 36]]).all()
        assert np.isfinite(np.delete(sums, [5, 35, 36])).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_centered_product_split_over_threads(product_kernel, dtype):
    # Enough work for two threads: each adds its rows into its own partial,
    # and the partials are summed over the team.
    n, m, r = 5001, 1000, 2
    if _passes.centered_product_threads(n, m, r, 2) < 2:
        pytest.skip("this build runs the pass on one thread")
    rng = np.random.default_rng(8)
    X = (rng.standard_normal((n, m)) + 10.0).astype(dtype)
    _check_centered_product(X, rng.standard_normal((m, r)), 2)
    # Column-major: each thread adds its columns into its own partial of
    # Xc Q, the partials are summed, then each forms its columns' rows.
    _check_centered_product(np.asfortranarray(X),
                            rng.standard_normal((m, r)), 2)
    # Very wide with few samples: 40 rows still split over two threads
    # (each partial is only m x r).
    n, m = 40, 40000
    assert _passes.centered_product_threads(n, m, r, 2) == 2
    X = (rng.standard_normal((n, m)) + 10.0).astype(dtype)
    for view in (X, np.asfortranarray(X)):
        _check_centered_product(view, rng.standard_normal((m, r)), 2)


def test_simd_product_workspace_is_sized_for_its_own_path():
    # Very wide data with few samples, 16 threads: the SIMD kernels need
    # their m x r partials, far less than X; the BLAS path's centered
    # blocks (16 rows of m per thread) would need more than X itself.
    n, m, r = 100, 100_000, 2
    simd = _passes.centered_product_workspace(n, m, r, 16, True)
    blas = _passes.centered_product_workspace(n, m, r, 16, False)
    assert simd < n * m / 2 < n * m < blas
    assert _passes.centered_product_workspace(n, m, r, 16) == max(simd, blas)
    # The column kernel (Fortran order) holds an n x r partial per thread:
    # it takes only X at least 16 r columns wide, with a thread per 16 r
    # columns at most, so its partials stay under half of X.
    for n, m, r in [(2_000_000, 3, 9), (1_000_000, 5, 9), (100_000, 64, 2),
                    (50_000, 40, 2), (3000, 4096, 2)]:
        need = _passes.centered_product_workspace(n, m, r, 16, True)
        assert need <= max(n * m / 2, 20 * r * m), (n, m, r, need)
    # Which path a product takes depends on Q's columns too: 40 columns of
    # X take the column kernel for 2 columns of Q, the BLAS path for 4.
    XF = np.asfortranarray(np.zeros((100, 40)))
    assert _passes.centered_product_cost_grows(XF, 2) == _AVX2
    assert not _passes.centered_product_cost_grows(XF, 4)
    # Whatever work it is given, a product too small for its path gets its
    # own: the BLAS path (Q with no columns) after a SIMD-sized workspace.
    X = np.random.default_rng(1).standard_normal((40, 300))
    mean = X.mean(axis=0)
    work = np.empty(_passes.centered_product_workspace(40, 300, 2, 2, True))
    trace = _passes.centered_product(X, mean, np.empty((300, 0)),
                                     np.empty((300, 0)), 2, want_trace=True,
                                     work=work)
    assert trace == pytest.approx(np.sum((X - mean) ** 2), rel=1e-12)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_fit_with_each_product_kernel(product_kernel, dtype, order):
    X = scaled_gaussian(60, 203, np.linspace(6, 1, 203), offset=50.0)
    X = np.asarray(X, dtype=dtype, order=order)
    est = laefast.LAEPCA(5, random_state=0).fit(X)
    assert est.converged_
    # The products are exact in float64 for float32 data too; the results
    # are then stored in X's dtype, so float32 ones hold ~1e-7.
    tol = 1e-9 if dtype == np.float64 else 1e-6
    X64 = X.astype(np.float64)
    assert _top_subspace_sine(est.components_, X64, 5) < tol
    s = np.linalg.svd(X64 - X64.mean(axis=0), compute_uv=False)[:5]
    np.testing.assert_allclose(est.explained_variance_, s ** 2 / 59,
                               rtol=tol)


def test_float32_wide_data_keeps_small_resolvable_components():
    # The samples path multiplies float32 data in float64, so lam and the
    # zero floor follow float64's rounding: components holding 2e-5 of the
    # variance (below float32's 10 (k + p) eps, above float64's) are read
    # out, as scikit-learn's arpack and full solvers do, not set to 0.
    rng = np.random.default_rng(15)
    n, m, k = 50, 187, 14
    U, _ = np.linalg.qr(rng.standard_normal((m, n)))
    sv = 10.0 * 0.675 ** np.arange(n)
    X = ((rng.standard_normal((n, n)) * sv) @ U.T
         + rng.uniform(-100, 100, m)).astype(np.float32)
    est = laefast.LAEPCA(k, random_state=0).fit(X)
    X64 = X.astype(np.float64)
    s = np.linalg.svd(X64 - X64.mean(axis=0), compute_uv=False)
    truth = s[:k] ** 2 / (n - 1)
    assert truth[-1] / truth.sum() < 1e-4           # a small component
    np.testing.assert_allclose(est.explained_variance_, truth, rtol=1e-5)
    assert _top_subspace_sine(est.components_, X64, k) < 1e-5


def test_float32_wide_data_reads_zero_variance_as_zero():
    # Rank 4 after centering: the other components hold no variance, and
    # float64 products put them at rounding, below the zero floor.
    rng = np.random.default_rng(16)
    n, m, k = 40, 120, 8
    X = (rng.standard_normal((n, 4)) @ rng.standard_normal((4, m))
         + 5.0).astype(np.float32)
    est = laefast.LAEPCA(k, random_state=0).fit(X)
    X64 = X.astype(np.float64)
    s = np.linalg.svd(X64 - X64.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(est.explained_variance_[:4],
                               s[:4] ** 2 / (n - 1), rtol=1e-5)
    assert np.all(est.explained_variance_[4:]
                  <= 1e-12 * est.explained_variance_[0])
