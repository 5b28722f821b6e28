"""Out-of-core LAEPCA on one machine, and the public Gram entry points.

- fit(memmap or sliceable array-like, batch_size=...) reads X once, slab by
  slab, converting and checking each slab: peak memory is a slab plus the
  m x m state, measured with tracemalloc;
- fit_gram (from C, mean, n or an accumulator) and partial_fit(solve=False);
- accumulators pickled across processes merge into the whole data's.
"""

import concurrent.futures
import multiprocessing
import os
import tracemalloc

import numpy as np
import pytest

from laefast import GramAccumulator, LAEPCA

import _helpers
from _helpers import (assert_unchanged, centered_gram, max_sine, snapshot,
                      svd_components)


def spiked(n, m, k=4, seed=0, scale=1.0):
    """k spikes of standard deviation 10 k .. 10 over unit noise, times
    scale, offset 3."""
    return _helpers.spiked(n, m, 10.0 * np.arange(k, 0, -1), offset=3.0,
                           scale=scale, seed=seed)


def kernel_blocks(rows, m):
    """At most the bytes of the Gram pass's per-thread float64 blocks of a
    slab of rows, whatever the thread count: the threads split the rows
    (see GramAccumulator's Notes), rounding up by less than a row each."""
    return (rows + (os.cpu_count() or 1)) * m * 8


class Sliced:
    """An h5py/zarr-like array: shape, dtype, slicing; counts rows read."""

    def __init__(self, a):
        self._a = a
        self.shape, self.dtype = a.shape, a.dtype
        self.rows_read = self.whole_reads = 0

    def __getitem__(self, key):
        out = np.array(self._a[key])
        self.rows_read += out.shape[0]
        return out

    def __array__(self, dtype=None, copy=None):     # as h5py's and zarr's
        self.whole_reads += 1
        return self[:].astype(dtype) if dtype is not None else self[:]


def test_int16_memmap_read_in_slabs_within_memory_bound(tmp_path):
    n, m, batch = 40000, 64, 1000
    X = np.rint(spiked(n, m, seed=1)).astype(np.int16)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    est = LAEPCA(4, batch_size=batch)
    tracemalloc.start()
    try:
        est.fit(mm)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One float64 slab, the Gram pass's per-thread block of rows, the m x m
    # state and the solver's few m x m / m x (k + p) arrays; converting X
    # whole would take n m 8 = 20 MB.
    bound = (batch * m * 8 + kernel_blocks(batch, m) + 12 * m * m * 8
             + (256 << 10))
    assert peak <= bound, (peak, bound)
    assert peak < n * m * 8 / 4
    assert est.components_.dtype == np.float64
    assert max_sine(est.components_, svd_components(X, 4)) < 1e-10
    assert np.allclose(est.mean_, X.mean(axis=0, dtype=np.float64))


def test_array_like_read_once_and_matches_in_memory_fit():
    X = spiked(3000, 20, seed=2).astype(np.float32)
    src = Sliced(X)
    est = LAEPCA(3, batch_size=700).fit(src)
    assert src.rows_read == X.shape[0] and src.whole_reads == 0
    ref = LAEPCA(3).fit(X)
    assert est.components_.dtype == np.float32
    np.testing.assert_allclose(est.explained_variance_,
                               ref.explained_variance_, rtol=1e-5)
    assert max_sine(est.components_.astype(np.float64),
                    svd_components(X, 3)) < 1e-5
    src.rows_read = 0
    Z = est.fit_transform(src)
    assert src.rows_read == 2 * X.shape[0]      # fit, then the projection
    assert src.whole_reads == 0
    np.testing.assert_allclose(Z, est.transform(X), rtol=1e-5, atol=1e-3)


def test_h5py_dataset_if_available(tmp_path):
    h5py = pytest.importorskip("h5py")
    X = spiked(2000, 12, seed=3)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["X"] = X
    with h5py.File(tmp_path / "x.h5", "r") as f:
        est = LAEPCA(2, batch_size=300).fit(f["X"])
    assert max_sine(est.components_, svd_components(X, 2)) < 1e-10


def test_bad_slab_names_rows_and_leaves_model():
    X = spiked(1000, 8, seed=4)
    est = LAEPCA(2, batch_size=300).fit(X)
    before = snapshot(est, fitted_only=True)
    bad = X.copy()
    bad[650, 3] = np.nan
    with pytest.raises(ValueError, match=r"rows 600:900: .*NaN \(first at "
                                         r"row 50\)"):
        est.fit(Sliced(bad))
    assert_unchanged(est, before)
    with pytest.raises(ValueError, match="X must be numeric"):
        est.fit(Sliced(np.array([["a", "b"], ["c", "d"]])))
    assert_unchanged(est, before)


def test_fit_gram_matches_fit_from_arrays_and_accumulator():
    X = spiked(800, 10, seed=5)
    ref = LAEPCA(3).fit(X)
    acc = GramAccumulator().add(X[:300]).merge(GramAccumulator().add(X[300:]))
    for est in (LAEPCA(3).fit_gram(acc.gram_, acc.mean_, 800),
                LAEPCA(3).fit_gram(acc)):
        assert max_sine(est.components_, svd_components(X, 3)) < 1e-10
        np.testing.assert_allclose(est.explained_variance_,
                                   ref.explained_variance_, rtol=1e-10)
        np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-12)
        assert est.n_samples_seen_ == 800 and est.n_features_in_ == 10
    # The accumulator was copied: adding to the model leaves it alone.
    est.partial_fit(X[:5])
    assert acc.n_samples_seen_ == 800 and est.n_samples_seen_ == 805


def test_fit_gram_rejects_bad_input():
    C = np.eye(3)
    est = LAEPCA(1)
    with pytest.raises(ValueError, match="C must be symmetric"):
        est.fit_gram(np.triu(np.ones((3, 3))), np.zeros(3), 10)
    with pytest.raises(ValueError, match=r"mean must be a finite array of "
                                         r"shape \(3,\)"):
        est.fit_gram(C, np.zeros(4), 10)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        est.fit_gram(C, np.zeros(3), 1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        est.fit_gram(GramAccumulator().add(np.ones((1, 3))))
    assert not hasattr(est, "components_")


def test_partial_fit_without_solving():
    X = spiked(900, 7, seed=6)
    est = LAEPCA(2)
    for chunk in np.array_split(X, 3):
        est.partial_fit(chunk, solve=False)
    assert not hasattr(est, "components_")
    est.partial_fit(None)
    assert est.n_samples_seen_ == 900
    assert max_sine(est.components_, svd_components(X, 2)) < 1e-10
    before = snapshot(est, fitted_only=True)
    est.partial_fit(X[:10] * 5.0, solve=False)
    assert_unchanged(est, before)                           # not re-solved
    assert est.n_samples_seen_ == 900
    est.partial_fit(X[10:20])
    assert est.n_samples_seen_ == 920
    ref = np.vstack([X, X[:10] * 5.0, X[10:20]])
    assert max_sine(est.components_, svd_components(ref, 2)) < 1e-10
    with pytest.raises(ValueError, match=r"partial_fit\(None\) solves"):
        LAEPCA(2).partial_fit(None)


def _accumulate_in_child(seed):
    return GramAccumulator(n_threads=1).add(spiked(500, 6, seed=seed))


def test_accumulators_pickled_across_processes_merge():
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        parts = list(pool.map(_accumulate_in_child, [7, 8, 9]))
    merged = GramAccumulator()
    for part in parts:
        merged.merge(part)
    X = np.vstack([spiked(500, 6, seed=s) for s in (7, 8, 9)])
    G = centered_gram(X)
    np.testing.assert_allclose(merged.gram_, G, rtol=1e-12,
                               atol=1e-9 * np.abs(G).max())
    est = LAEPCA(2).fit_gram(merged)
    assert max_sine(est.components_, svd_components(X, 2)) < 1e-10


@pytest.mark.parametrize("mode", ["gram", "sgd"])
def test_stream_holds_one_slab_at_a_time(tmp_path, mode):
    from laefast import LAEStream
    n, m, budget = 40000, 32, 256 << 10
    X = np.rint(spiked(n, m, seed=10)).astype(np.int16)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    kwargs = {"batch_size": 64} if mode == "sgd" else {}
    stream = LAEStream(2, lam=1.0, mode=mode, max_memory=budget, **kwargs)
    tracemalloc.start()
    try:
        stream.partial_fit(mm)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One float64 slab of max_memory bytes, not two (no look-ahead); beside
    # it the Gram pass's per-thread blocks of rows, the m x m state, and
    # the first rows' step estimate (sgd: 4096 rows).
    rows = budget // (8 * m)
    extra = 8 * m * m * 8 + (kernel_blocks(rows, m) if mode == "gram" else
                             4096 * m * 8 * 3)
    assert peak <= budget + extra + (64 << 10), (peak, budget, extra)
    assert peak < 2 * budget + extra
    assert stream.n_samples_seen_ == n
    np.testing.assert_allclose(stream.mean_, X.mean(axis=0), rtol=1e-10)


def test_stream_reads_array_likes_in_slabs():
    from laefast import LAEStream
    X = spiked(3000, 9, seed=11)
    src = Sliced(X)
    stream = LAEStream(2, lam=1.0, max_memory=8 * 9 * 500).partial_fit(src)
    assert src.rows_read == 3000 and src.whole_reads == 0
    G = centered_gram(X)
    np.testing.assert_allclose(stream.gram_, G, rtol=1e-10,
                               atol=1e-8 * np.abs(G).max())


def test_fit_gram_docstring_example_runs():
    import doctest
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(LAEPCA.fit_gram, "fit_gram",
                        globs={"__name__": "laefast"})
    assert tests and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
