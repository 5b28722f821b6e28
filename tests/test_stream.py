"""LAEStream: streaming Gram accumulation and minibatch SGD (OpenMP)."""

import numpy as np
import pytest

import laefast

parallel = pytest.mark.skipif(not laefast.openmp_enabled(),
                              reason="built without OpenMP")


def _spiked(n=6000, m=40, k=3, offset=7.0, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    scales = np.r_[np.linspace(10, 6, k), np.full(m - k, noise)]
    Q, _ = np.linalg.qr(rng.standard_normal((m, m)))
    return offset + (rng.standard_normal((n, m)) * scales) @ Q.T


def _centered_gram(X):
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc


def _chunks(X, size):
    return [X[i:i + size] for i in range(0, len(X), size)]


def _state(stream):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v)
            for k, v in vars(stream).items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("chunk", [1, 7, 1000, 6000])
def test_streaming_gram_equals_whole_gram(chunk):
    X = _spiked(n=2000 if chunk == 1 else 6000)
    stream = laefast.LAEStream(3, 1.0, block_rows=64)
    for piece in _chunks(X, chunk):
        stream.partial_fit(piece)
    expected = _centered_gram(X)
    assert stream.n_samples_seen_ == len(X)
    np.testing.assert_allclose(stream.mean_, X.mean(axis=0), rtol=1e-13)
    err = np.abs(stream.gram_ - expected).max() / np.abs(expected).max()
    assert err < 1e-10


def test_stream_solve_matches_svd():
    X = _spiked()
    _, s, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    # lam = sigma_3^2 / 2: exact-tied contracts fast there.
    stream = laefast.LAEStream(3, s[2] ** 2 / 2)
    res = stream.partial_fit(iter(_chunks(X, 500))).solve(tol=1e-10)
    assert laefast.metrics.max_principal_sine(res.components.T, Vt[:3].T) < 1e-8
    np.testing.assert_allclose(res.singular_values, s[:3], rtol=1e-8)
    np.testing.assert_allclose(res.mean, X.mean(axis=0), rtol=1e-13)


def test_float32_stream():
    X = _spiked().astype(np.float32)
    stream = laefast.LAEStream(3, 1e3).partial_fit(_chunks(X, 999))
    # Accumulated in float64: only the rounding of the centered float32
    # values and of products within blocks remains.
    assert stream.gram_.dtype == np.float64
    expected = _centered_gram(X.astype(np.float64))
    assert np.abs(stream.gram_ - expected).max() / np.abs(expected).max() < 1e-6
    assert stream.solve(tol=1e-4).W2.dtype == np.float32


@parallel
def test_gram_one_and_two_threads_agree():
    X = _spiked(n=8000, m=40)               # n m^2 above the parallel cutoff
    grams = []
    for threads in (1, 2):
        stream = laefast.LAEStream(3, 1.0, n_threads=threads, block_rows=128)
        grams.append(stream.partial_fit(X).gram_)
    assert np.abs(grams[0] - grams[1]).max() <= 1e-12 * np.abs(grams[0]).max()


@parallel
@pytest.mark.parametrize("method", ["untied", "tied"])
def test_sgd_one_and_two_threads_agree(method):
    X = _spiked(n=8192, m=64)               # b m k above the parallel cutoff
    weights = []
    for threads in (1, 2):
        stream = laefast.LAEStream(3, 1e3, mode="sgd", method=method,
                                   batch_size=4096, block_rows=512,
                                   n_threads=threads, random_state=0)
        stream.partial_fit(X)
        weights.append((stream.W1_, stream.W2_))
    for a, b in zip(*weights):
        assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()


def test_memmap_matches_in_memory(tmp_path):
    X = _spiked(n=5000)
    path = tmp_path / "data.f64"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    mm = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    # 64 KiB slabs: the file is read in 40 pieces, never whole.
    from_disk = laefast.LAEStream(3, 1e3, max_memory=1 << 16).partial_fit(mm)
    in_memory = laefast.LAEStream(3, 1e3).partial_fit(X)
    np.testing.assert_allclose(from_disk.gram_, in_memory.gram_, rtol=1e-11,
                               atol=1e-11 * np.abs(in_memory.gram_).max())
    sgd = [laefast.LAEStream(3, 1e3, mode="sgd", random_state=0,
                             batch_size=250, max_memory=max_memory)
           .partial_fit(data) for data, max_memory in ((mm, 1 << 16),
                                                      (X, 1 << 28))]
    np.testing.assert_allclose(sgd[0].W2_, sgd[1].W2_, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["untied", "tied"])
def test_minibatch_sgd_reaches_the_subspace(method):
    X = _spiked(n=20000, m=20, noise=0.5)
    _, s, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    stream = laefast.LAEStream(3, 0.1 * s[2] ** 2, mode="sgd", method=method,
                               batch_size=256, n_samples_total=len(X),
                               random_state=0)
    for _ in range(20):
        stream.partial_fit(X)
    assert laefast.metrics.max_principal_sine(stream.W2_, Vt[:3].T) < 1e-3
    res = stream.solve()
    assert laefast.metrics.max_principal_sine(res.components.T, Vt[:3].T) < 1e-3


def _bad_chunks(m, dtype=np.float64):
    rng = np.random.default_rng(1)
    nan = rng.standard_normal((50, m)).astype(dtype)
    nan[49, 3] = np.nan
    inf = rng.standard_normal((3000, m)).astype(dtype)
    inf[-1, 0] = np.inf                        # in the last slab
    return {
        "nan": nan,
        "inf-late": inf,
        "features": rng.standard_normal((50, m + 1)),
        "dtype": np.array([["a"] * m] * 3),
        "complex": np.ones((3, m), dtype=complex),
        "1-D": np.ones(m),
    }


@pytest.mark.parametrize("mode", ["gram", "sgd"])
def test_bad_chunk_leaves_state_untouched(mode):
    X = _spiked(n=2000)
    stream = laefast.LAEStream(3, 1e3, mode=mode, random_state=0,
                               max_memory=1 << 16)
    stream.partial_fit(X)
    before = _state(stream)
    for name, chunk in _bad_chunks(X.shape[1]).items():
        with pytest.raises(ValueError):
            stream.partial_fit(chunk)
        _assert_same_state(before, _state(stream))
    # Good chunks after the bad ones still work.
    stream.partial_fit(X[:100])
    assert stream.n_samples_seen_ == 2100


def test_float64_into_float32_stream_is_refused():
    X = _spiked(n=500)
    stream = laefast.LAEStream(3, 1.0).partial_fit(X.astype(np.float32))
    before = _state(stream)
    with pytest.raises(ValueError, match="cannot be cast safely"):
        stream.partial_fit(X)
    _assert_same_state(before, _state(stream))
    stream.partial_fit(X[:10].astype(np.int8))      # a safe cast is fine


def test_bad_chunk_in_iterator_keeps_earlier_chunks():
    X = _spiked(n=900)
    bad = X[:10].copy()
    bad[0, 0] = np.nan
    stream = laefast.LAEStream(3, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        stream.partial_fit(iter([X[:300], X[300:600], bad, X[600:]]))
    assert stream.n_samples_seen_ == 600
    np.testing.assert_allclose(stream.gram_, _centered_gram(X[:600]),
                               rtol=1e-10)


def test_stream_parameters():
    with pytest.raises(ValueError, match="mode"):
        laefast.LAEStream(2, 1.0, mode="online")
    with pytest.raises(ValueError, match="sgd mode"):
        laefast.LAEStream(2, 1.0, mode="sgd", method="exact-tied")
    with pytest.raises(ValueError, match="n_threads"):
        laefast.LAEStream(2, 1.0, n_threads=0)
    with pytest.raises(ValueError, match="batch_size"):
        laefast.LAEStream(2, 1.0, batch_size=0)
    with pytest.raises(ValueError, match="no samples"):
        laefast.LAEStream(2, 1.0).solve()


def test_sgd_default_step_with_a_tiny_first_chunk_and_batches_of_one():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((2000, 10)) * np.linspace(3, 1, 10)
    # One row first: no spread to estimate the step from yet.
    stream = laefast.LAEStream(2, 1.0, mode="sgd", random_state=0)
    stream.partial_fit(Y[:1])
    stream.partial_fit(Y[1:])
    assert np.isfinite(stream.W2_).all() and np.abs(stream.W2_).max() > 0
    laefast.LAEStream(1, 0.0, mode="sgd").partial_fit(Y[:1, :2])
    # Batches of one sample: the step bounds a single sample's curvature.
    single = laefast.LAEStream(3, 10.0, mode="sgd", batch_size=1,
                               random_state=0).partial_fit(Y)
    assert np.isfinite(single.W2_).all()
