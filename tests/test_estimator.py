"""LAEPCA against scikit-learn's PCA and against np.linalg.eigh."""

import pickle
import tracemalloc
import warnings

import numpy as np
import pytest

import laefast
from laefast import LAEPCA
from laefast.metrics import max_principal_sine

import _helpers
from _helpers import assert_unchanged as _assert_same_state
from _helpers import snapshot, sklearn_sets


def spiked(n=2000, m=150, k=8, seed=0, dtype=np.float64):
    """k strong directions (variances 400 .. 100) over unit noise."""
    return _helpers.spiked(n, m, np.linspace(20, 10, k), offset=5.0,
                           seed=seed).astype(dtype)


def eigh_pca(X, k):
    """Top-k principal axes (rows) and variances (ddof=1) by np.linalg.eigh."""
    Xc = X.astype(np.float64) - X.astype(np.float64).mean(axis=0)
    w, V = np.linalg.eigh(Xc.T @ Xc / (X.shape[0] - 1))
    return V[:, ::-1][:, :k].T, w[::-1][:k], w.sum()


def sign_aligned(A, B):
    """B's rows flipped to match A's signs."""
    return B * np.sign(np.sum(A * B, axis=1))[:, None]


# ---------------------------------------------------------------------------
# Agreement with independent references


@pytest.mark.parametrize("k", [1, 5, 8, 20])
def test_matches_eigh_on_spiked_problem(k):
    X = spiked()
    est = LAEPCA(k, random_state=0).fit(X)
    V, w, total = eigh_pca(X, k)
    assert est.converged_ and est.n_iter_ >= 1
    assert max_principal_sine(est.components_.T, V.T) < 1e-6
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-6)
    np.testing.assert_allclose(est.explained_variance_ratio_, w / total,
                               rtol=1e-6)
    np.testing.assert_allclose(est.singular_values_,
                               np.sqrt(w * (X.shape[0] - 1)), rtol=1e-6)
    np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-12)
    # Each component, not just the span (variances are distinct).
    np.testing.assert_allclose(sign_aligned(V, est.components_), V, atol=1e-6)


@pytest.mark.parametrize("method", laefast.METHODS)
def test_every_method_reaches_the_principal_directions(method):
    X = spiked(n=400, m=30, k=3, seed=1)
    # oversample=0: the autoencoder has exactly k latents, so the solver
    # itself has to find the subspace.
    est = LAEPCA(3, method=method, oversample=0, random_state=0,
                 max_iter=50000).fit(X)
    V, w, _ = eigh_pca(X, 3)
    assert est.converged_
    assert max_principal_sine(est.components_.T, V.T) < 1e-6
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-6)


def test_weights_are_the_lae_minimum():
    # docs/theory.md: W2 = U_k (I - lam S_k^-2)^(1/2) O, W1 = W2^T.
    X = spiked(n=500, m=40, k=4, seed=2)
    lam = 50.0
    est = LAEPCA(4, lam=lam, random_state=0).fit(X)
    np.testing.assert_array_equal(est.W1_, est.W2_.T)
    eig = est.singular_values_ ** 2
    s = np.linalg.svd(est.W2_, compute_uv=False)
    np.testing.assert_allclose(s, np.sqrt(1 - lam / eig), rtol=1e-10)
    # Gradients of L_sigma vanish there (the paper's G1 with C = Xc^T Xc).
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc
    W1, W2 = est.W1_, est.W2_
    G1 = W2.T @ (W2 @ W1 - np.eye(40)) @ C + lam * W1
    assert np.abs(G1).max() < 1e-6 * np.abs(C).max()
    assert est.lam_ == lam


def test_lam_auto_keeps_components_over_many_decades():
    rng = np.random.default_rng(3)
    m = 20
    scales = np.logspace(0, -5, m)          # variances over 10 decades
    X = rng.standard_normal((600, m)) * scales
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no collapse warning
        est = LAEPCA(m - 2, random_state=0).fit(X)
    V, w, _ = eigh_pca(X, m - 2)
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-6)
    # lam is in units of C = Xc^T Xc: far below the smallest kept eigenvalue.
    assert est.lam_ < 1e-3 * w[-1] * (X.shape[0] - 1)


def test_float32_is_preserved_and_accurate():
    X = spiked(dtype=np.float32)
    est = LAEPCA(5, random_state=0).fit(X)
    assert est.components_.dtype == np.float32
    assert est.explained_variance_.dtype == np.float32
    assert est.transform(X).dtype == np.float32
    assert est.W2_.dtype == np.float32
    V, w, _ = eigh_pca(X, 5)
    assert max_principal_sine(est.components_.T, V.T) < 1e-3
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-4)


def test_transform_and_inverse_transform():
    X = spiked(n=300, m=20, k=3)
    est = LAEPCA(20, random_state=0).fit(X)
    Z = est.transform(X)
    np.testing.assert_allclose(Z, (X - X.mean(axis=0)) @ est.components_.T,
                               atol=1e-10)
    # With every component kept the round trip is the identity.
    np.testing.assert_allclose(est.inverse_transform(Z), X,
                               atol=1e-8 * np.abs(X).max())
    np.testing.assert_allclose(LAEPCA(20, random_state=0).fit_transform(X), Z,
                               atol=1e-8 * np.abs(Z).max())


def test_fortran_and_c_input_agree_without_copying():
    X = spiked(n=60000, m=100, k=4)
    F = np.asfortranarray(X)
    est_c = LAEPCA(4, random_state=0).fit(X)
    tracemalloc.start()
    est_f = LAEPCA(4, random_state=0).fit(F)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # No copy of X (48 MB): only an 8 MB centering buffer and small arrays.
    assert peak < 0.25 * F.nbytes
    np.testing.assert_allclose(est_f.components_, est_c.components_,
                               atol=1e-10)


def test_read_only_input_is_not_modified():
    X = spiked(n=300, m=20, k=3)
    before = X.copy()
    X.setflags(write=False)
    est = LAEPCA(3, random_state=0).fit(X)
    est.transform(X)
    np.testing.assert_array_equal(X, before)


# ---------------------------------------------------------------------------
# Streaming


def test_partial_fit_equals_fit():
    X = spiked(n=3000, m=60, k=5, seed=4)
    full = LAEPCA(5, random_state=0).fit(X)
    inc = LAEPCA(5, random_state=0)
    for start in range(0, 3000, 700):
        inc.partial_fit(X[start:start + 700])
    assert inc.n_samples_seen_ == 3000
    np.testing.assert_allclose(inc.mean_, full.mean_, rtol=1e-12)
    assert max_principal_sine(inc.components_.T, full.components_.T) < 1e-6
    np.testing.assert_allclose(inc.explained_variance_,
                               full.explained_variance_, rtol=1e-8)


def test_batch_size_and_memmap(tmp_path):
    X = spiked(n=3000, m=60, k=5, seed=5)
    path = tmp_path / "x.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    mm = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    full = LAEPCA(5, random_state=0).fit(X)
    batched = LAEPCA(5, batch_size=512, random_state=0).fit(mm)
    assert max_principal_sine(batched.components_.T,
                              full.components_.T) < 1e-6
    np.testing.assert_allclose(batched.explained_variance_,
                               full.explained_variance_, rtol=1e-8)


# ---------------------------------------------------------------------------
# Bad input: clear errors, nothing half-updated


@pytest.fixture
def fitted():
    X = spiked(n=300, m=20, k=3)
    return LAEPCA(3, random_state=0).fit(X), X


def _state(est):
    return snapshot(est, fitted_only=True)


@pytest.mark.parametrize("bad, match", [
    ("nan", "NaN"),
    ("inf", "infinity"),
    ("empty", "0 sample"),
    ("nofeat", "0 feature"),
    ("1d", r"must be 2-D \(n_samples, n_features\), got 1-D.*Reshape"),
    ("strings", "numeric"),
    ("complex", "Complex"),
    ("one_sample", "n_samples = 1"),
])
def test_bad_fit_input_raises_and_keeps_the_previous_fit(fitted, bad, match):
    est, X = fitted
    state = _state(est)
    data = {
        "nan": np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X),
        "inf": np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X),
        "empty": np.empty((0, 20)),
        "nofeat": np.empty((10, 0)),
        "1d": X[0],
        "strings": np.array([["a", "b"], ["c", "d"]]),
        "complex": X + 1j,
        "one_sample": X[:1],
    }[bad]
    with pytest.raises(ValueError, match=match):
        est.fit(data)
    _assert_same_state(est, state)


def test_n_components_above_min_shape():
    X = spiked(n=10, m=20, k=3)
    with pytest.raises(ValueError, match=r"min\(n_samples, n_features\)=10"):
        LAEPCA(11).fit(X)
    # None keeps min(n_samples, n_features), as scikit-learn does.
    assert LAEPCA(random_state=0).fit(X).n_components_ == 10


def test_wrong_feature_count(fitted):
    est, X = fitted
    with pytest.raises(ValueError, match="X has 19 features, but LAEPCA is "
                                         "expecting 20 features"):
        est.transform(X[:, :19])
    inc = LAEPCA(3, random_state=0).partial_fit(X)
    state = _state(inc)
    with pytest.raises(ValueError, match="X has 19 features"):
        inc.partial_fit(X[:, :19])
    with pytest.raises(ValueError, match="NaN"):
        inc.partial_fit(np.full((5, 20), np.nan))
    _assert_same_state(inc, state)
    # The stream behind it is untouched too: the next good batch counts.
    inc.partial_fit(X)
    assert inc.n_samples_seen_ == 2 * X.shape[0]


def test_unfitted_use_raises():
    est = LAEPCA(2)
    with pytest.raises(laefast.NotFittedError, match="not fitted"):
        est.transform(np.ones((3, 2)))
    # scikit-learn's NotFittedError is an AttributeError too.
    with pytest.raises(AttributeError, match="not fitted"):
        est.inverse_transform(np.ones((3, 2)))


def test_lam_that_collapses_components_warns_with_their_indices():
    X = spiked(n=2000, m=40, k=4, seed=6)
    _, w, _ = eigh_pca(X, 4)
    lam = 0.5 * (w[2] + w[3]) * (X.shape[0] - 1)   # between the 3rd and 4th
    with pytest.warns(laefast.CollapsedComponentWarning, match=r"\[3\]"):
        est = LAEPCA(4, lam=lam, random_state=0).fit(X)
    assert est.explained_variance_[3] == 0.0
    np.testing.assert_allclose(est.explained_variance_[:3], w[:3], rtol=1e-6)


def test_white_noise_takes_the_dense_solve_and_spikes_the_krylov_space():
    # White noise (m = 300, above the size where every C goes to the dense
    # solve) has no gap at k: 'auto' takes the closed-form minimum
    # from the dense eigensolver at once (one "iteration"); spikes above
    # the same noise make the Krylov iteration converge in a few products.
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((4000, 300))
    spikes = noise.copy()
    spikes[:, :5] *= 10
    for X, dense in ((noise, True), (spikes, False)):
        est = LAEPCA(5, random_state=0).fit(X)
        Xc = X - X.mean(axis=0)
        _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
        assert max_principal_sine(est.components_.T, Vt[:5].T) < 1e-11
        np.testing.assert_allclose(est.explained_variance_,
                                   s[:5] ** 2 / 3999, rtol=1e-12)
        assert est.converged_
        assert (est.n_iter_ == 1) == dense, est.n_iter_


def test_max_iter_warns_with_the_residual_reached():
    X = spiked(n=400, m=30, k=3, seed=1)
    with pytest.warns(laefast.ConvergenceWarning,
                      match=r"max_iter=5 with relative Ritz residual \S+"):
        est = LAEPCA(3, method="untied", oversample=0, max_iter=5,
                     random_state=0).fit(X)
    assert not est.converged_ and est.n_iter_ == 5


@pytest.mark.parametrize("params, match", [
    ({"method": "newton"}, "method"),
    ({"lam": -1.0}, "lam"),
    ({"lam": "big"}, "lam"),
    ({"alpha": 0.0, "method": "untied"}, "alpha"),
    ({"tol": -1.0}, "tol"),
    ({"max_iter": -1}, "max_iter"),
    ({"n_components": 0}, "n_components"),
    ({"n_components": 2.5}, "n_components"),
    ({"batch_size": 0}, "batch_size"),
    ({"oversample": -1}, "oversample"),
    ({"n_threads": 0}, "n_threads"),
])
def test_bad_parameters_raise_at_fit(params, match):
    X = spiked(n=100, m=10, k=2)
    est = LAEPCA(**{"n_components": 2, **params})   # constructor stores only
    with pytest.raises(ValueError, match=match):
        est.fit(X)


# ---------------------------------------------------------------------------
# Estimator protocol, progress


def test_params_round_trip_and_pickle(fitted):
    est, X = fitted
    params = est.get_params()
    clone = LAEPCA(**params)
    assert clone.get_params() == params
    clone.set_params(lam=3.0, verbose=0)
    assert clone.lam == 3.0
    with pytest.raises(ValueError, match="Invalid parameter"):
        clone.set_params(gamma=1)
    assert "lam=3.0" in repr(clone)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X), est.transform(X))


def test_verbose_prints_progress_only_when_asked(capsys):
    X = spiked(n=400, m=30, k=3, seed=1)
    LAEPCA(3, random_state=0).fit(X)
    assert capsys.readouterr().err == ""
    LAEPCA(3, method="tied", oversample=0, verbose=1, random_state=0).fit(X)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("[LAEPCA]")]
    assert lines and lines[-1].startswith("[LAEPCA] done")
    assert "L_sigma" in lines[-1] and "residual" in lines[-1]


# ---------------------------------------------------------------------------
# scikit-learn


def _sklearn_sets():
    return {**sklearn_sets(), "spiked": spiked()}


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "random",
                                  "spiked"])
@pytest.mark.parametrize("k", [3, 10, None])
def test_matches_sklearn_pca(name, k):
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = _sklearn_sets()[name]
    ref = decomposition.PCA(k, svd_solver="full").fit(X)
    est = LAEPCA(k, random_state=0).fit(X)
    assert est.n_components_ == ref.n_components_
    ev_ref = ref.explained_variance_
    # Through the Gram matrix an eigenvalue is known to about
    # eps * lambda_1 absolutely (the covariance_eigh solver's limit too):
    # the relative check applies where that is below 1e-6 relative.
    resolved = ev_ref > 1e-9 * ev_ref[0]
    assert max_principal_sine(est.components_[resolved].T,
                              ref.components_[resolved].T) < 1e-6
    np.testing.assert_allclose(est.explained_variance_[resolved],
                               ev_ref[resolved], rtol=1e-6)
    np.testing.assert_allclose(est.explained_variance_, ev_ref,
                               atol=1e-12 * ev_ref[0])
    np.testing.assert_allclose(est.explained_variance_ratio_,
                               ref.explained_variance_ratio_, atol=1e-12)
    np.testing.assert_allclose(est.noise_variance_, ref.noise_variance_,
                               rtol=1e-6, atol=1e-12 * ev_ref[0])
    scale = np.abs(X).max()
    if resolved.all():
        Z = est.transform(X)
        Zr = ref.transform(X)
        signs = np.sign(np.sum(Z * Zr, axis=0))
        np.testing.assert_allclose(Z * signs, Zr, atol=1e-8 * scale)
        np.testing.assert_allclose(est.inverse_transform(Z),
                                   ref.inverse_transform(Zr),
                                   atol=1e-8 * scale)


def test_score_and_covariance_match_sklearn():
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = spiked(n=500, m=30, k=4, seed=9)
    ref = decomposition.PCA(4, svd_solver="full").fit(X)
    est = LAEPCA(4, random_state=0).fit(X)
    np.testing.assert_allclose(est.get_covariance(), ref.get_covariance(),
                               rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(est.score_samples(X), ref.score_samples(X),
                               rtol=1e-8)
    assert est.score(X) == pytest.approx(ref.score(X), rel=1e-8)


def test_sklearn_check_estimator():
    estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")
    with warnings.catch_warnings():
        # The checks' own warnings (on purpose: bad inputs, few samples).
        warnings.simplefilter("ignore")
        results = estimator_checks.check_estimator(LAEPCA(), on_fail=None)
    not_passed = {r["check_name"]: r["status"] for r in results
                  if r["status"] != "passed"}
    # Skipped, with the reason: check_array_api_input needs SCIPY_ARRAY_API
    # set before SciPy is imported, and LAEPCA works on NumPy arrays only.
    assert set(not_passed) <= {"check_array_api_input"}, not_passed
    assert all(status == "skipped" for status in not_passed.values())


def test_wide_data_iterates_on_the_samples():
    # n << m: the cost model iterates on the samples, never forming C
    # (m x m, 72 MB; X is 4.8 MB), so there is no Gram matrix to add to.
    n, m, k = 200, 3000, 3
    X = spiked(n=n, m=m, k=k, seed=11)
    est = LAEPCA(k, random_state=0).fit(X)
    with pytest.raises(ValueError, match="without forming the Gram matrix"):
        est.partial_fit(X[:2])
    Xc = X - X.mean(axis=0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    assert max_principal_sine(est.components_.T, Vt[:k].T) < 1e-6
    np.testing.assert_allclose(est.explained_variance_, s[:k] ** 2 / (n - 1),
                               rtol=1e-6)


# ---------------------------------------------------------------------------
# Regressions found in review


@pytest.mark.parametrize("seed", range(6))
def test_fewer_directions_of_variance_than_latents(seed):
    # Duplicated columns: rank 6 of 12, with k + oversample = 13 latents.
    # Ritz values of the null directions come out as (negative) rounding.
    X = np.tile(np.random.default_rng(seed).standard_normal((200, 6)), 2)
    est = LAEPCA(3, random_state=seed).fit(X)
    V, w, _ = eigh_pca(X, 3)
    assert max_principal_sine(est.components_.T, V.T) < 1e-6
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-6)


@pytest.mark.parametrize("method", ["untied", "exact-untied", "exact-tied"])
def test_rank_deficient_data_every_kind_of_method(method):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 3)) @ rng.standard_normal((3, 50))
    est = LAEPCA(2, method=method, random_state=0, max_iter=20000).fit(X)
    _, w, _ = eigh_pca(X, 2)
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-6)


def test_constant_data_has_zero_variance():
    for X in (np.ones((20, 5)), np.ones((2, 5))):
        est = LAEPCA(2 if X.shape[0] > 2 else 1).fit(X)
        np.testing.assert_array_equal(est.explained_variance_, 0.0)
        np.testing.assert_allclose(
            np.abs(est.components_ @ est.components_.T),
            np.eye(est.n_components_), atol=1e-12)


def test_wide_data_with_a_large_offset():
    # The samples path centers block by block: an implicit X v - mean^T v
    # would lose the small eigenvalues to cancellation here.
    X = 1e5 + np.random.default_rng(0).standard_normal((10, 100))
    est = LAEPCA(3, random_state=0).fit(X)
    Xc = X - X.mean(axis=0)
    s = np.linalg.svd(Xc, compute_uv=False)
    np.testing.assert_allclose(est.explained_variance_, s[:3] ** 2 / 9,
                               rtol=1e-9)


def test_float32_with_a_large_offset():
    # The mean stays in float64: rounded to float32 it would leave an
    # offset d in the data and n d d^T in C.
    rng = np.random.default_rng(0)
    X = (1e7 + rng.standard_normal((60, 100)) * np.linspace(3, 1, 100))
    X = X.astype(np.float32)
    est = LAEPCA(5, random_state=0).fit(X)
    w = np.linalg.eigvalsh(np.cov(X.astype(np.float64).T))[::-1][:5]
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-5)


def test_partial_fit_after_fit_adds_to_it():
    X = spiked(n=600, m=30, k=3, seed=3)
    est = LAEPCA(3, random_state=0).fit(X[:300])
    est.partial_fit(X[300:])
    assert est.n_samples_seen_ == 600
    _, w, _ = eigh_pca(X, 3)
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-8)


def test_partial_fit_casts_later_batches_to_the_model_dtype():
    X = spiked(n=300, m=10, k=2, seed=4)
    est = LAEPCA(2, random_state=0).partial_fit(X[:100].astype(np.float32))
    est.partial_fit(np.abs(X[100:200]).astype(np.uint8))
    est.partial_fit(X[200:])
    assert est.components_.dtype == np.float32
    assert est.n_samples_seen_ == 300


def test_partial_fit_width_is_fixed_by_the_first_batch():
    # issue 11 #11: batches of 3, 3 and 50 rows (m = 8) kept n_components_
    # at 3, as IncrementalPCA does, and transform's width with it.
    decomposition = pytest.importorskip("sklearn.decomposition")
    X = np.random.default_rng(4).standard_normal((56, 8))
    est = LAEPCA(random_state=0)
    ref = decomposition.IncrementalPCA()
    for batch in (X[:3], X[3:6], X[6:]):
        est.partial_fit(batch)
        ref.partial_fit(batch)
        assert est.n_components_ == ref.n_components_ == 3
        assert est.transform(X).shape == (56, 3)
    # Here the three batches hold every sample: the top 3 of all of X.
    _, w, _ = eigh_pca(X, 3)
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-10)


def test_one_collapse_warning_from_solve_and_the_estimators():
    """solve, LAEPCA and LAEStream read out through the same code: a lam
    above the third eigenvalue of C collapses that component, with one
    and the same warning."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1000, 5)) * [10.0, 8.0, 1.0, 0.5, 0.2]
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc
    eig = np.linalg.eigvalsh(C)[::-1]
    lam = 5000.0
    assert eig[2] < lam < eig[1]
    messages = []
    for call in (lambda: laefast.solve(C, 3, lam, method="exact-tied"),
                 lambda: LAEPCA(3, lam=lam, random_state=0).fit(X),
                 lambda: laefast.LAEStream(3, lam=lam,
                                           random_state=0).partial_fit(X)):
        with pytest.warns(laefast.CollapsedComponentWarning,
                          match=r"components \[2\] collapsed: lam = 5000 is "
                                r"at or above their eigenvalue of C") as rec:
            call()
        messages.append({str(w.message) for w in rec
                         if w.category is laefast.CollapsedComponentWarning})
    assert messages[0] == messages[1] == messages[2]
    assert len(messages[0]) == 1


def test_a_warm_basis_of_another_width_is_not_the_start(monkeypatch):
    # partial_fit offers the previous fit's basis as the next start.  After
    # n_components changes, that basis has the old width; block Lanczos
    # draws only its first block at random, and a basis as wide as that
    # block must not pass for it.
    from laefast import _driver
    starts = []
    real = _driver.block_lanczos

    def spy(times, Q, *args, **kwargs):
        starts.append(np.array(Q))
        return real(times, Q, *args, **kwargs)

    monkeypatch.setattr(_driver, "block_lanczos", spy)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1200, 400)) * np.geomspace(10, 0.01, 400)
    est = LAEPCA(2, oversample=2, random_state=0).partial_fit(X[:600])
    first = est.components_.copy()                     # 2 x 400
    est.set_params(n_components=6)
    est.partial_fit(X[600:])
    assert starts[-1].shape == (400, 4)                # one block of 8 - 4
    # A random 4-column start holds little of a fixed 2-D span (about
    # sqrt(2 * 4 / 400)); the old basis would hold all of it (sqrt(2)).
    assert np.linalg.norm(first @ starts[-1]) < 0.5


@pytest.mark.parametrize("m, solo", [(40, False), (100, True), (600, False)])
def test_small_auto_solve_on_c_keeps_blas_on_one_thread(monkeypatch, m, solo):
    # A multithreaded BLAS call leaves OpenBLAS's workers spinning for about
    # 0.1 s, into the next fit's Gram pass; a small solve does without.
    from threadpoolctl import threadpool_info, threadpool_limits

    import laefast._driver as driver

    def blas_threads():
        return max(p["num_threads"] for p in threadpool_info()
                   if p["user_api"] == "blas")

    seen = []
    real = driver.iterate

    def spy(*args, **kwargs):
        seen.append(blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(driver, "iterate", spy)
    X = np.random.default_rng(0).standard_normal((20 * m, m))
    with threadpool_limits(2):
        if blas_threads() < 2:
            pytest.skip("BLAS cannot run two threads here")
        est = LAEPCA(3, random_state=0).fit(X)
        assert blas_threads() == 2      # restored
    assert seen == [1 if solo else 2]
    V = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2][:3]
    assert max_principal_sine(est.components_.T, V.T) < 1e-8
