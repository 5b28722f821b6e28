"""LAEStream: streaming Gram accumulation and minibatch SGD (OpenMP)."""

import warnings

import numpy as np
import pytest

import laefast

from _helpers import assert_same_state as _assert_same_state
from _helpers import centered_gram as _centered_gram
from _helpers import loss_progress
from _helpers import scaled_gaussian
from _helpers import snapshot as _state
from _helpers import spiked

parallel = pytest.mark.skipif(not laefast.openmp_enabled(),
                              reason="built without OpenMP")


def _spiked(n=6000, m=40, k=3, offset=7.0, seed=0, noise=0.5):
    """k axes of standard deviation 10 .. 6 over m - k of noise, rotated."""
    scales = np.r_[np.linspace(10, 6, k), np.full(m - k, noise)]
    return scaled_gaussian(n, m, scales, offset=offset, seed=seed,
                           rotate=True)


def _chunks(X, size):
    return [X[i:i + size] for i in range(0, len(X), size)]


@pytest.mark.parametrize("chunk", [1, 7, 1000, 6000])
def test_streaming_gram_equals_whole_gram(chunk):
    X = _spiked(n=2000 if chunk == 1 else 6000)
    stream = laefast.LAEStream(3, block_rows=64)
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
    expected = {"nan": "NaN", "inf-late": "infinity",
                "features": "X has 41 features, but LAEStream is expecting 40",
                "dtype": "X must be numeric: real numbers, got dtype <U1",
                "complex": "Complex data not supported",
                "1-D": r"X must be 2-D \(n_samples, n_features\), got 1-D"}
    for name, chunk in _bad_chunks(X.shape[1]).items():
        with pytest.raises(ValueError, match=expected[name]):
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


@pytest.mark.parametrize("params, match", [
    ({"mode": "online"}, "mode"),
    ({"mode": "sgd", "method": "exact-tied"}, "sgd mode"),
    ({"n_threads": 0}, "n_threads"),
    ({"batch_size": 0}, "batch_size"),
    ({"lam": -1.0}, "lam"),
    ({"lam": "big"}, "lam"),
    ({"n_components": 0}, "n_components"),
    ({"alpha": 0.0}, "alpha"),
    ({"max_iter": -1}, "max_iter"),
    ({"method": "newton"}, "method"),
    ({"oversample": -1}, "oversample"),
])
def test_stream_parameters_are_checked_at_fit(params, match):
    stream = laefast.LAEStream(**{"n_components": 2, **params})  # stores only
    assert stream.get_params()[next(iter(params))] == params[next(iter(params))]
    with pytest.raises(ValueError, match=match):
        stream.partial_fit(np.ones((5, 4)))
    with pytest.raises(ValueError, match=match):
        stream.fit(np.ones((5, 4)))
    with pytest.raises(ValueError, match="no samples"):
        laefast.LAEStream(2).solve()


def test_sgd_default_step_with_a_tiny_first_chunk_and_batches_of_one():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((2000, 10)) * np.linspace(3, 1, 10)
    # One row first: no spread to estimate the step from yet.
    stream = laefast.LAEStream(2, 1.0, mode="sgd", random_state=0)
    stream.partial_fit(Y[:1])
    stream.partial_fit(Y[1:])
    # One pass went most of the way to the minimum (a step too small or
    # too large would not), measured against the closed form.
    assert loss_progress(_centered_gram(Y), stream.W1_, stream.W2_, 1.0) > 0.5
    laefast.LAEStream(1, 0.0, mode="sgd").partial_fit(Y[:1, :2])
    # Batches of one sample: the step bounds a single sample's curvature.
    single = laefast.LAEStream(3, 10.0, mode="sgd", batch_size=1,
                               random_state=0).partial_fit(Y)
    assert loss_progress(_centered_gram(Y), single.W1_, single.W2_, 10.0) > 0.5


# ---------------------------------------------------------------------------
# LAEStream as an estimator


def test_stream_is_an_estimator_matching_laepca():
    base = pytest.importorskip("sklearn.base")
    X = _spiked(n=3000, m=30, k=3)
    stream = laefast.LAEStream(3, random_state=0)
    for chunk in _chunks(X, 700):
        stream.partial_fit(chunk)
    ref = laefast.LAEPCA(3, random_state=0).fit(X)
    # The same Rayleigh-Ritz solve on the same Gram matrix (lam='auto').
    np.testing.assert_allclose(stream.explained_variance_,
                               ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(stream.explained_variance_ratio_,
                               ref.explained_variance_ratio_, rtol=1e-10)
    assert laefast.metrics.max_principal_sine(stream.components_.T,
                                              ref.components_.T) < 1e-10
    np.testing.assert_allclose(np.abs(stream.transform(X)),
                               np.abs(ref.transform(X)), atol=1e-8)
    Z = stream.transform(X)
    np.testing.assert_allclose(stream.inverse_transform(Z),
                               ref.inverse_transform(ref.transform(X)),
                               atol=1e-8)
    assert stream.converged_ and stream.lam_ == ref.lam_ > 0   # lam='auto'
    # fit starts over: the same as the chunks, from one array.
    again = base.clone(stream).fit(X)
    np.testing.assert_allclose(again.explained_variance_,
                               stream.explained_variance_, rtol=1e-10)
    assert again.n_samples_seen_ == len(X)
    stream.fit(X[:500])
    assert stream.n_samples_seen_ == 500
    assert list(stream.get_feature_names_out()) == ["laestream0",
                                                    "laestream1",
                                                    "laestream2"]
    with pytest.raises(laefast.NotFittedError, match="not fitted"):
        laefast.LAEStream(2).transform(X)
    with pytest.raises(ValueError, match="X has 29 features, but LAEStream "
                                         "is expecting 30"):
        stream.transform(X[:, 1:])


def test_stream_width_is_fixed_by_the_first_chunk():
    X = np.random.default_rng(4).standard_normal((56, 8))
    stream = laefast.LAEStream(random_state=0)
    for chunk in (X[:3], X[3:6], X[6:]):
        stream.partial_fit(chunk)
        assert stream.n_components_ == 3
        assert stream.transform(X).shape == (56, 3)


@pytest.mark.parametrize("mode", ["gram", "sgd"])
def test_sklearn_check_estimator_on_the_stream(mode):
    estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = estimator_checks.check_estimator(
            laefast.LAEStream(mode=mode, random_state=0), on_fail=None)
    not_passed = {r["check_name"]: r["status"] for r in results
                  if r["status"] != "passed"}
    assert set(not_passed) <= {"check_array_api_input"}, not_passed


def _ten_spikes(n=20000, m=200, k=10, seed=0):
    """m = 200 with 10 well-separated spikes (variances 100 .. 25) over unit
    noise, and the top-10 eigenvectors of its centered Gram matrix."""
    X = spiked(n, m, np.linspace(10, 5, k), offset=3.0, seed=seed)
    V = np.linalg.eigh(_centered_gram(X))[1][:, ::-1][:, :k]
    return X, V


@pytest.mark.parametrize("method", ["untied", "tied"])
def test_sgd_converges_with_its_automatic_decaying_step(method):
    X, V = _ten_spikes()
    stream = laefast.LAEStream(10, mode="sgd", method=method,
                               n_samples_total=len(X), random_state=0)
    sines, stops = [], []
    for _ in range(20):
        stream.partial_fit(X)
        sines.append(laefast.metrics.max_principal_sine(stream.W2_, V))
        stops.append(stream.stop_)
    assert sines[4] <= 1e-2           # 5 passes
    assert sines[19] <= 1e-3          # 20 passes
    assert laefast.metrics.max_principal_sine(stream.components_.T, V) <= 1e-3
    # The criterion: the span moved by at most tol (1e-4) in the last pass.
    assert stream.converged_ and stops[-1] <= 1e-4
    assert not np.isfinite(stops[0])
    res = stream.solve()
    assert res.converged and res.stop == stream.stop_
    # The step decays: step t is alpha_ / (1 + decay t), decay > 0.
    assert stream.alpha_ > 0 and stream.n_steps_ == 20 * 20


def test_sgd_fit_passes_until_converged():
    X, V = _ten_spikes(n=8000, m=60, k=5, seed=2)
    est = laefast.LAEStream(5, mode="sgd", random_state=0).fit(X)
    assert est.converged_ and est.stop_ <= 1e-4
    assert laefast.metrics.max_principal_sine(est.components_.T, V) < 1e-3
    ref = laefast.LAEPCA(5, random_state=0).fit(X)
    np.testing.assert_allclose(est.explained_variance_ratio_,
                               ref.explained_variance_ratio_, rtol=1e-3)
    capped = laefast.LAEStream(5, mode="sgd", max_iter=1,
                               random_state=0).fit(X)
    assert not capped.converged_ and capped.n_steps_ == 8


def test_rejected_sgd_chunk_changes_nothing_and_later_chunks_learn():
    # issue 11 #10: a chunk holding one 1e200 after 1000 good rows.
    X, V = _ten_spikes(n=6000, m=40, k=4, seed=3)
    stream = laefast.LAEStream(4, mode="sgd", n_samples_total=len(X),
                               random_state=0).partial_fit(X[:1000])
    before = _state(stream)
    bad = X[1000:2000].copy()
    bad[10, 3] = 1e200
    with pytest.raises(ValueError, match="squares overflow"):
        stream.partial_fit(bad)
    _assert_same_state(before, _state(stream))
    W2 = stream.W2_.copy()
    stream.partial_fit(X[1000:])
    # The step's scale took the new rows in (up to 4096), not the bad ones.
    assert 0.5 < stream.alpha_ / before["alpha_"] < 2.0
    assert np.abs(stream.W2_ - W2).max() > 1e-3      # W2 still moves
    for _ in range(10):
        stream.partial_fit(X)
    assert laefast.metrics.max_principal_sine(stream.W2_, V) < 1e-3


def test_sgd_step_is_robust_to_a_few_outliers():
    X, V = _ten_spikes(n=6000, m=40, k=4, seed=3)
    clean = laefast.LAEStream(4, mode="sgd", n_samples_total=len(X),
                              random_state=0).partial_fit(X)
    dirty_X = X.copy()
    dirty_X[[5, 700, 2000], 0] = 1e6       # three outliers in the first rows
    dirty = laefast.LAEStream(4, mode="sgd", n_samples_total=len(X),
                              random_state=0).partial_fit(dirty_X[:4096])
    # Before: one 1e6 row took alpha_ from 1e-5 to 1e-16 for good.
    assert 0.5 < dirty.alpha_ / clean.alpha_ < 2.0


def test_user_guide_stream_example_is_warning_free():
    # issue 12: LAEStream(10, lam=1.0) then .solve() ran 100000 iterations
    # into a ConvergenceWarning.
    X, V = _ten_spikes(n=6000, m=100, k=10, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stream = laefast.LAEStream(10, lam=1.0)
        for chunk in _chunks(X, 1000):
            stream.partial_fit(chunk)
        result = stream.solve()
    assert result.converged
    assert laefast.metrics.max_principal_sine(result.components.T, V) < 1e-10
    np.testing.assert_allclose(result.eigenvalues,
                               np.linalg.eigvalsh(_centered_gram(X))[::-1][:10],
                               rtol=1e-10)


def test_warnings_point_at_the_callers_line():
    X = _spiked(n=500, m=30)
    stopped = r"stopped at max_iter=2 with .* > tol="
    with pytest.warns(laefast.ConvergenceWarning, match=stopped) as record:
        laefast.LAEStream(3, method="untied", max_iter=2).partial_fit(X)
    assert record[0].filename == __file__
    with pytest.warns(laefast.ConvergenceWarning, match=stopped) as record:
        laefast.LAEPCA(0.5, method="untied", max_iter=2).fit(X)
    assert record[0].filename == __file__
    with pytest.warns(laefast.ConvergenceWarning, match=stopped) as record:
        laefast.LAEStream(3, lam=1.0).partial_fit(X).solve(max_iter=2)
    assert record[0].filename == __file__


def test_stream_solve_false_then_none_as_laepca():
    X = _spiked(n=3000, m=30, k=3)
    stream = laefast.LAEStream(3, random_state=0)
    for chunk in _chunks(X, 500):
        stream.partial_fit(chunk, solve=False)
    assert not hasattr(stream, "components_")
    assert stream.n_samples_seen_ == 3000
    stream.partial_fit(None)
    ref = laefast.LAEPCA(3, random_state=0).fit(X)
    np.testing.assert_allclose(stream.explained_variance_,
                               ref.explained_variance_, rtol=1e-10)
    with pytest.raises(ValueError, match="none were added"):
        laefast.LAEStream(3).partial_fit(None)


# -- the compiled SVRG sweep (laefast._sgd) against NumPy -----------------------

def _svrg_numpy(X, mean, W1, W2, A2, G1, G2, lam, alpha, decay, t0, b,
                n_total, tied):
    """The SVRG steps of LAEStream's sweep written plainly in NumPy: each
    batch gradient from its residual R = Xb - Xb W1^T W2^T, for W and for
    the anchor A = (A2^T, A2); W -= a_t (g_B(W) - g_B(A) + G(A))."""
    def grad(V1, V2, Xb, weight):
        Z = Xb @ V1.T
        R = Xb - Z @ V2.T
        return (-2.0 * weight * ((R @ V2).T @ Xb) + 2.0 * lam * V1,
                -2.0 * weight * (R.T @ Z) + 2.0 * lam * V2)
    W1, W2 = W1.copy(), W2.copy()
    if tied:
        W1 = W2.T.copy()
    for t, start in enumerate(range(0, X.shape[0], b)):
        Xb = np.asarray(X[start:start + b], dtype=np.float64) - mean
        a = alpha / (1.0 + decay * (t0 + t))
        g1, g2 = grad(W1, W2, Xb, n_total / len(Xb))
        h1, h2 = grad(A2.T, A2, Xb, n_total / len(Xb))
        d1, d2 = g1 - h1 + G1, g2 - h2 + G2
        if tied:
            W2 -= a * (d2 + d1.T)
            W1 = W2.T.copy()
        else:
            W1, W2 = W1 - a * d1, W2 - a * d2
    return W1, W2


def _svrg_problem(n=700, m=24, k=3, seed=0):
    """Data, its mean, a tied orthonormal-ish anchor with its full
    gradient (as the sweep's restart leaves them), and weights near it."""
    rng = np.random.default_rng(seed)
    X = 2.0 + rng.standard_normal((n, m)) * np.linspace(3.0, 0.3, m)
    mean = X.mean(axis=0)
    C = (X - mean).T @ (X - mean)
    lam = 0.01 * np.linalg.eigvalsh(C)[-1]
    A2 = 0.9 * np.linalg.qr(rng.standard_normal((m, k)))[0]
    CA = C @ A2
    G1 = 2.0 * ((A2.T @ A2) @ CA.T - CA.T) + 2.0 * lam * A2.T
    G2 = 2.0 * (A2 @ (A2.T @ CA) - CA) + 2.0 * lam * A2
    W2 = A2 + 0.05 * rng.standard_normal((m, k))
    W1 = W2.T + 0.05 * rng.standard_normal((k, m))
    alpha = 0.2 / np.linalg.eigvalsh(C)[-1]
    return X, mean, W1, W2, A2, np.ascontiguousarray(G1), G2, lam, alpha


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("order", ["C", "F"])
def test_compiled_svrg_sweep_equals_numpy(tied, dtype, order):
    """The kernel's weights equal the NumPy steps to rounding.  float32
    data needs no looser tolerance: both widen each row to float64 before
    the mean is subtracted, and every step runs in float64."""
    from laefast import _sgd
    X, mean, W1, W2, A2, G1, G2, lam, alpha = _svrg_problem()
    X = np.asarray(X, dtype=dtype, order=order)
    b, t0, decay = 64, 5, 0.3       # 11 batches, the last one of 60 rows
    r1, r2 = _svrg_numpy(X, mean, W1, W2, A2, G1, G2, lam, alpha, decay, t0,
                         b, 1500.0, tied)
    w1, w2 = W1.copy(), W2.copy()
    steps, status = _sgd.svrg_sweep(X, mean, w1, w2, A2, G1, G2, lam, alpha,
                                    decay, t0, b, 1500.0, tied, 1,
                                    block_rows=16)
    assert (steps, status) == (11, _sgd.DONE)
    assert np.abs(r2 - W2).max() > 0.1      # the steps moved the weights
    np.testing.assert_allclose(w1, r1, rtol=0, atol=1e-12 * np.abs(r1).max())
    np.testing.assert_allclose(w2, r2, rtol=0, atol=1e-12 * np.abs(r2).max())
    if tied:
        np.testing.assert_array_equal(w1, w2.T)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_compiled_svrg_sweep_on_memmap_slabs(tmp_path, tied):
    """A read-only memmap swept in two slabs of whole batches (the step
    count carried over, as LAEStream reads one) gives the NumPy steps."""
    from laefast import _sgd
    X, mean, W1, W2, A2, G1, G2, lam, alpha = _svrg_problem(n=640)
    path = tmp_path / "x.f32"
    X.astype(np.float32).tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    r1, r2 = _svrg_numpy(mm, mean, W1, W2, A2, G1, G2, lam, alpha, 0.1, 0,
                         64, 640.0, tied)
    w1, w2 = W1.copy(), W2.copy()
    done = 0
    for slab in (mm[:384], mm[384:]):
        steps, status = _sgd.svrg_sweep(slab, mean, w1, w2, A2, G1, G2, lam,
                                        alpha, 0.1, done, 64, 640.0, tied, 2)
        assert status == _sgd.DONE
        done += steps
    assert done == 10
    np.testing.assert_allclose(w1, r1, rtol=0, atol=1e-12 * np.abs(r1).max())
    np.testing.assert_allclose(w2, r2, rtol=0, atol=1e-12 * np.abs(r2).max())


@parallel
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_compiled_svrg_sweep_same_bits_for_any_thread_count(tied):
    """The batch's row ranges and their summing order do not depend on the
    thread count: 1, 2 and 3 threads give identical weights."""
    from laefast import _sgd
    from laefast._parallel import serial_blas
    X, mean, W1, W2, A2, G1, G2, lam, alpha = _svrg_problem(n=4096, m=128,
                                                           k=4)
    assert _sgd.sweep_threads(1024, 128, 4, tied, 2) == 2
    out = []
    for threads in (1, 2, 3):
        w1, w2 = W1.copy(), W2.copy()
        with serial_blas(threads):
            _sgd.svrg_sweep(X, mean, w1, w2, A2, G1, G2, lam, alpha, 0.0, 0,
                            1024, 4096.0, tied, threads)
        out.append((w1, w2))
    for w1, w2 in out[1:]:
        np.testing.assert_array_equal(w1, out[0][0])
        np.testing.assert_array_equal(w2, out[0][1])
    r1, r2 = _svrg_numpy(X, mean, W1, W2, A2, G1, G2, lam, alpha, 0.0, 0,
                         1024, 4096.0, tied)
    np.testing.assert_allclose(out[0][1], r2, rtol=0,
                               atol=1e-12 * np.abs(r2).max())


def test_compiled_svrg_sweep_stops_on_nonfinite_weights():
    from laefast import _sgd
    X, mean, W1, W2, A2, G1, G2, lam, alpha = _svrg_problem()
    w1, w2 = W1.copy(), W2.copy()
    steps, status = _sgd.svrg_sweep(X, mean, w1, w2, A2, G1, G2, lam,
                                    1e150 * alpha, 0.0, 0, 16, 700.0, False,
                                    1)
    assert status == _sgd.NONFINITE
    assert 1 <= steps < 700 // 16
    assert not (np.isfinite(w1).all() and np.isfinite(w2).all())
    with pytest.raises(ValueError, match="shapes of X, mean, W1, W2"):
        _sgd.svrg_sweep(X[:, :-1], mean, w1, w2, A2, G1, G2, lam, alpha,
                        0.0, 0, 16, 700.0, False, 1)


def test_sgd_stream_diverges_with_a_huge_step():
    X = _spiked(n=2000, m=20)
    with pytest.raises(laefast.DivergenceError,
                       match="minibatch SGD diverged.*alpha=1e"):
        laefast.LAEStream(3, 1.0, mode="sgd", alpha=1e30, batch_size=100,
                          random_state=0).partial_fit(X)
