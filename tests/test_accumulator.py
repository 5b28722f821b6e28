"""GramAccumulator: one parallel pass, Chan merge, bad pieces, threads."""

import pickle
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import laefast
from laefast import GramAccumulator, _passes
from laefast.metrics import max_principal_sine

from _helpers import assert_unchanged, centered_gram, scaled_gaussian, snapshot

parallel = pytest.mark.skipif(not laefast.openmp_enabled(),
                              reason="built without OpenMP")


def _data(n=3000, m=40, offset=0.0, seed=0):
    return scaled_gaussian(n, m, np.linspace(5.0, 0.5, m), offset=offset,
                           seed=seed)


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("layout", ["C", "F", "strided", "rows strided",
                                    "reversed"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("tiles", [False, True])
def test_matches_the_wholecentered_gram(layout, threads, tiles):
    X = _data(n=6000, m=37)
    # "rows strided" and "reversed" have unit-stride rows at a row stride
    # other than m (the centering's unit-stride loop), "strided" neither.
    view = {"C": X, "F": np.asfortranarray(X),
            "strided": np.asfortranarray(_data(n=12000, m=74))[::2, ::2],
            "rows strided": _data(n=12000, m=37)[::2],
            "reversed": X[::-1]}[layout]
    # partials_memory=0 forces the shared-G layout whenever threads > 1.
    acc = GramAccumulator(n_threads=threads,
                          partials_memory=0 if tiles else 1 << 30)
    acc.add(view)
    assert acc.n_samples_seen_ == view.shape[0]
    assert acc.gram_.dtype == np.float64
    assert _rel(acc.gram_, centered_gram(view)) < 1e-12
    np.testing.assert_allclose(acc.mean_, view.mean(axis=0), rtol=1e-13,
                               atol=1e-13)
    np.testing.assert_array_equal(acc.gram_, acc.gram_.T)


@pytest.mark.skipif(not _passes.simd(), reason="this CPU has no AVX2")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [3, 37])
@pytest.mark.parametrize("layout", ["C", "rows strided", "reversed"])
@pytest.mark.parametrize("tiles", [False, True])
def test_avx2_centering_gives_the_portable_loops_bits(dtype, m, layout,
                                                      tiles):
    # Both center in float64 and round once, and sum the rounded values:
    # the Gram matrix and mean must agree to the last bit.  m = 3 is all
    # tail, 37 is 9 vectors and a tail.
    X = _data(n=5001, m=m, offset=7.0).astype(dtype)
    view = {"C": X, "rows strided": np.repeat(X, 2, axis=0)[::2],
            "reversed": X[::-1]}[layout]
    fits = []
    try:
        for avx2 in (True, False):
            _passes.simd(avx2)
            acc = GramAccumulator(n_threads=2,
                                  partials_memory=0 if tiles else 1 << 30)
            fits.append(acc.add(view))
    finally:
        _passes.simd(True)
    np.testing.assert_array_equal(fits[0].gram_, fits[1].gram_)
    np.testing.assert_array_equal(fits[0].mean_, fits[1].mean_)
    assert _rel(fits[0].gram_, centered_gram(view.astype(np.float64))) < (
        1e-6 if dtype == np.float32 else 1e-12)


@pytest.fixture(params=["avx512", "avx2", "syrk"])
def gram_kernel(request):
    """Runs a test with each block update this CPU has."""
    default = _passes.gram_kernel()
    try:
        _passes.gram_kernel(request.param)
    except ValueError:
        pytest.skip(f"this CPU cannot run the {request.param} kernel")
    yield request.param
    _passes.gram_kernel(default)


def test_gram_kernel_names():
    default = _passes.gram_kernel()
    assert default in ("avx512", "avx2", "syrk")
    with pytest.raises(ValueError, match="one of"):
        _passes.gram_kernel("sse")
    try:
        assert _passes.gram_kernel("syrk") == "syrk"
    finally:
        assert _passes.gram_kernel(default) == default


# Widths around the kernels' tiles (AVX-512: 8 x 16 float64, 8 x 32
# float32; AVX2: 6 x 8 float64, 6 x 16 float32; tails of 1 to 7 rows,
# masked column tiles) and around their largest widths (256; AVX2 192);
# rows that split into several blocks per thread and several row chunks
# per block (256 rows), with a last chunk of 1 row and one of 44.
@pytest.mark.parametrize("m", [1, 2, 7, 8, 9, 12, 13, 15, 16, 17, 23, 24,
                               31, 33, 47, 64, 100, 128, 129, 192, 193,
                               255, 256, 257])
@pytest.mark.parametrize("n, block_rows, threads", [
    (1, 0, 1), (5, 0, 2), (2000, 0, 2), (2000, 300, 1), (1537, 512, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gram_block_update_matches_the_centered_gram(gram_kernel, m, n,
                                                     block_rows, threads,
                                                     dtype):
    X = _data(n=n, m=m, offset=4.0, seed=m).astype(dtype)
    shift = np.full(m, 3.5)
    G, s = np.full((m, m), np.nan), np.full(m, np.nan)
    _passes.gram_pass(X, shift, G, s, threads, False, block_rows)
    # The pass centers in float64 and rounds once to X's dtype.
    Xs = (X.astype(np.float64) - shift).astype(dtype).astype(np.float64)
    np.testing.assert_allclose(s, Xs.sum(axis=0), rtol=1e-12, atol=1e-12)
    exact = Xs.T @ Xs
    # float32: products summed in float32 over at most a block of rows.
    assert _rel(G, exact) < (1e-13 if dtype == np.float64 else 1e-6)
    np.testing.assert_array_equal(G, G.T)


def test_gram_pass_of_no_features_is_empty_and_silent(gram_kernel, capfd):
    # syrk with m = 0 printed BLAS's "parameter 7 illegal" (lda = 0).
    for dtype in (np.float64, np.float32):
        G, s = np.empty((0, 0)), np.empty(0)
        _passes.gram_pass(np.empty((5, 0), dtype=dtype), None, G, s, 1, False)
    assert capfd.readouterr() == ("", "")


def test_large_mean_offset_loses_nothing_to_cancellation():
    # sum x x^T - n mu mu^T would lose every digit at an offset of 1e6 over
    # unit spread; the pass centers on a shift near the mean.
    X = _data(n=4000, m=20, offset=1e6)
    acc = GramAccumulator().add(X[:1000]).add(X[1000:])
    Xc = X - X.mean(axis=0)                 # exact enough in float64 here
    assert _rel(acc.gram_, Xc.T @ Xc) < 1e-9


@pytest.mark.parametrize("layout", ["C", "F", "reversed"])
def test_float32_is_accumulated_in_float64(layout):
    X64 = _data(n=200_000, m=16, offset=3.0)
    X32 = X64.astype(np.float32)
    X32 = {"C": X32, "F": np.asfortranarray(X32), "reversed": X32[::-1]}[layout]
    acc = GramAccumulator().add(X32)
    exact = centered_gram(X32.astype(np.float64))
    # Only the rounding of the centered values (and of products inside a
    # block of rows) is left; a float32 X^T X over 2e5 rows is far worse.
    assert _rel(acc.gram_, exact) < 1e-6
    naive = (X32.T @ X32) - 200_000 * np.outer(X32.mean(0), X32.mean(0))
    assert _rel(naive.astype(np.float64), exact) > 10 * _rel(acc.gram_, exact)
    assert acc.dtype_ == np.float32


def test_merge_of_two_halves_equals_the_whole():
    X = _data(n=5000, m=30, offset=50.0)
    whole = GramAccumulator().add(X)
    a = GramAccumulator().add(X[:1234])
    b = GramAccumulator().add(X[1234:])
    a.merge(b)
    assert a.n_samples_seen_ == 5000
    assert _rel(a.gram_, whole.gram_) < 1e-12
    np.testing.assert_allclose(a.mean_, whole.mean_, rtol=1e-14)
    # b is unchanged; merging an empty accumulator changes nothing.
    assert b.n_samples_seen_ == 5000 - 1234
    before = a.gram_.copy()
    a.merge(GramAccumulator())
    np.testing.assert_array_equal(a.gram_, before)
    # Into an empty one: a copy of the other's state.
    c = GramAccumulator().merge(a)
    np.testing.assert_array_equal(c.gram_, a.gram_)


def test_merge_rejects_mismatches():
    a = GramAccumulator().add(_data(n=100, m=5))
    with pytest.raises(ValueError, match="4 features into one of 5"):
        a.merge(GramAccumulator().add(_data(n=100, m=4)))
    with pytest.raises(ValueError, match="uncentered"):
        a.merge(GramAccumulator(center=False).add(_data(n=100, m=5)))
    with pytest.raises(TypeError, match="GramAccumulator, got ndarray"):
        a.merge(np.ones((3, 5)))


def test_uncentered_accumulates_x_transpose_x():
    X = _data(n=500, m=6, offset=2.0)
    acc = GramAccumulator(center=False).add(X[:200]).add(X[200:])
    assert _rel(acc.gram_, X.T @ X) < 1e-13
    np.testing.assert_allclose(acc.mean_, X.mean(axis=0), rtol=1e-13)


def test_pickles_and_keeps_adding():
    X = _data(n=2000, m=12)
    acc = GramAccumulator().add(X[:1000])
    again = pickle.loads(pickle.dumps(acc))
    again.add(X[1000:])
    assert _rel(again.gram_, centered_gram(X)) < 1e-12


@pytest.mark.parametrize("bad, match", [
    ("nan", r"NaN \(first at row 77\)"),
    ("inf", r"infinity \(first at row 2999\)"),
    ("overflow", "squares overflow float64"),
    ("features", "X has 13 features, but GramAccumulator is expecting 12 "
                 "features as input"),
    ("strings", "X must be numeric: real numbers, got dtype <U1"),
    ("complex", "real numbers, got dtype complex128 \\(Complex data not "
                "supported\\)"),
    ("1-D", r"X must be 2-D \(n_samples, n_features\), got 1-D \(shape "
            r"\(12,\)\)"),
    ("sparse", r"X: laefast does not support sparse input \(csr_matrix\)"),
])
def test_bad_pieces_leave_the_state_untouched(bad, match):
    X = _data(n=3000, m=12)
    acc = GramAccumulator().add(X)
    before = snapshot(acc)
    piece = X.copy()
    if bad == "nan":
        piece[77, 3] = np.nan
    elif bad == "inf":
        piece[2999, 0] = np.inf
    elif bad == "overflow":
        piece[5, 5] = 1e200
    elif bad == "features":
        piece = np.ones((4, 13))
    elif bad == "strings":
        piece = np.array([["a"] * 12])
    elif bad == "complex":
        piece = piece + 1j
    elif bad == "1-D":
        piece = piece[0]
    elif bad == "sparse":
        scipy_sparse = pytest.importorskip("scipy.sparse")
        piece = scipy_sparse.csr_matrix(piece)
    with pytest.raises((ValueError, TypeError), match=match):
        acc.add(piece)
    assert_unchanged(acc, before)
    acc.add(X[:10])                          # still usable
    assert acc.n_samples_seen_ == 3010


def test_integer_data_and_array_likes_are_read_in_slabs():
    X = np.random.default_rng(1).integers(-100, 100, size=(5000, 9),
                                          dtype=np.int16)
    # 4 KiB slabs: the int16 data are converted a slab at a time.
    acc = GramAccumulator(max_memory=4096).add(X)
    assert _rel(acc.gram_, centered_gram(X)) < 1e-12
    assert acc.dtype_ == np.float64


@parallel
def test_one_and_two_threads_agree_and_are_reproducible():
    X = _data(n=20000, m=40)
    one = GramAccumulator(n_threads=1).add(X).gram_
    two = GramAccumulator(n_threads=2).add(X).gram_
    assert _rel(two, one) < 1e-13
    np.testing.assert_array_equal(GramAccumulator(n_threads=2).add(X).gram_,
                                  two)


def test_concurrent_adds_lose_no_samples():
    X = _data(n=30000, m=20)
    chunks = np.array_split(X, 40)
    acc = GramAccumulator(n_threads=2)
    threads = [threading.Thread(target=lambda part=part: [acc.add(c) for c in part])
               for part in (chunks[0::4], chunks[1::4], chunks[2::4],
                            chunks[3::4])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert acc.n_samples_seen_ == 30000
    assert _rel(acc.gram_, centered_gram(X)) < 1e-11


def test_concurrent_parallel_calls_restore_blas_threads():
    def blas_threads():
        return sorted(p["num_threads"] for p in threadpool_info()
                      if p["user_api"] == "blas")

    before = blas_threads()
    X = _data(n=20000, m=30)

    def work():
        for _ in range(5):
            GramAccumulator(n_threads=2).add(X)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert blas_threads() == before


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["gram", "data", "batched", "partial"])
def test_every_path_gives_the_svd_components(path, dtype):
    rng = np.random.default_rng(4)
    n, m, k = (300, 500, 4) if path == "data" else (4000, 60, 4)
    U = np.linalg.qr(rng.standard_normal((m, k)))[0]
    X = ((rng.standard_normal((n, k)) * [40.0, 30.0, 20.0, 10.0]) @ U.T
         + rng.standard_normal((n, m)) + 7.0).astype(dtype)
    X64 = X.astype(np.float64)
    _, s, Vt = np.linalg.svd(X64 - X64.mean(axis=0), full_matrices=False)
    if path == "partial":
        est = laefast.LAEPCA(k, random_state=0)
        for chunk in np.array_split(X, 7):
            est.partial_fit(chunk)
    else:
        est = laefast.LAEPCA(k, random_state=0,
                             batch_size=700 if path == "batched" else None)
        est.fit(X)
    assert est.converged_
    assert est.components_.dtype == dtype
    # float32 data are solved in float64: only the final rounding of the
    # components to float32 is left.
    assert max_principal_sine(est.components_.T.astype(np.float64),
                              Vt[:k].T) < (1e-10 if dtype == np.float64
                                           else 1e-6)
    np.testing.assert_allclose(est.explained_variance_, s[:k] ** 2 / (n - 1),
                               rtol=1e-10 if dtype == np.float64 else 1e-6)
