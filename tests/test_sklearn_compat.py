"""LAEPCA as a scikit-learn citizen, and PCA's parameters (whiten, a
variance fraction, 'mle', copy) against scikit-learn's PCA."""

import os
import pickle
import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import numpy as np
import pytest

import laefast
from laefast import GramAccumulator, LAEPCA
from laefast.metrics import max_principal_sine

sklearn = pytest.importorskip("sklearn")
from sklearn import datasets, decomposition  # noqa: E402
from sklearn.base import BaseEstimator, TransformerMixin, clone  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402

from _helpers import sklearn_sets  # noqa: E402

SETS = sklearn_sets()


def _assert_matches(est, ref, X):
    """Counts, variances, axes and projections equal to 1e-8 (relative to
    the data's scale) on the components scikit-learn resolves."""
    assert est.n_components_ == ref.n_components_
    ev = ref.explained_variance_
    resolved = ev > 1e-9 * ev[0]
    np.testing.assert_allclose(est.explained_variance_[resolved],
                               ev[resolved], rtol=1e-8)
    np.testing.assert_allclose(est.explained_variance_ratio_,
                               ref.explained_variance_ratio_, atol=1e-12)
    np.testing.assert_allclose(est.noise_variance_, ref.noise_variance_,
                               rtol=1e-8, atol=1e-12 * ev[0])
    assert max_principal_sine(est.components_[resolved].T,
                              ref.components_[resolved].T) < 1e-8
    if resolved.all():
        Z, Zr = est.transform(X), ref.transform(X)
        signs = np.sign(np.sum(Z * Zr, axis=0))
        scale = np.abs(Zr).max()
        np.testing.assert_allclose(Z * signs, Zr, atol=1e-8 * scale)
        np.testing.assert_allclose(est.inverse_transform(Z),
                                   ref.inverse_transform(Zr),
                                   atol=1e-8 * np.abs(X).max())


# ---------------------------------------------------------------------------
# PCA's parameters


@pytest.mark.parametrize("name", sorted(SETS))
@pytest.mark.parametrize("n_components", [5, 0.5, 0.9, 0.95, 0.999])
def test_whiten_and_variance_fraction_match_pca(name, n_components):
    X = SETS[name]
    ref = decomposition.PCA(n_components, whiten=True,
                            svd_solver="full").fit(X)
    est = LAEPCA(n_components, whiten=True, random_state=0).fit(X)
    _assert_matches(est, ref, X)
    Z = est.transform(X)
    # Whitened: unit variance along each component.
    np.testing.assert_allclose(Z.var(axis=0, ddof=1), 1.0, rtol=1e-8)
    np.testing.assert_allclose(est.fit_transform(X), Z, atol=1e-8)


@pytest.mark.parametrize("name", sorted(SETS))
def test_mle_matches_pca(name):
    X = SETS[name]
    ref = decomposition.PCA("mle", svd_solver="full").fit(X)
    est = LAEPCA("mle", random_state=0).fit(X)
    assert est.n_components_ == ref.n_components_
    _assert_matches(est, ref, X)


def test_mle_on_a_low_rank_signal_and_its_limits():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 4)) * [9, 7, 5, 3] @ \
        np.linalg.qr(rng.standard_normal((30, 4)))[0].T
    X += 0.1 * rng.standard_normal(X.shape)
    assert LAEPCA("mle", random_state=0).fit(X).n_components_ == 4
    with pytest.raises(ValueError, match="only supported if n_samples >= "
                                         "n_features"):
        LAEPCA("mle").fit(X[:20])


def test_mle_count_is_minkas_as_in_sklearn():
    # Minka's MLE on 20 data sets of random shapes and heavy-tailed
    # spectra: the count PCA('mle') chooses, which varies from set to set.
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(20):
        m = int(rng.integers(3, 30))
        spectrum = np.sort(rng.exponential(size=m) ** 3)[::-1]
        n = int(rng.integers(m, 200))
        X = rng.standard_normal((n, m)) * np.sqrt(spectrum)
        ref = decomposition.PCA("mle", svd_solver="full").fit(X)
        est = LAEPCA("mle", random_state=0).fit(X)
        assert est.n_components_ == ref.n_components_, (n, m)
        counts.add(ref.n_components_)
    assert len(counts) >= 4, counts


def test_variance_fraction_grows_the_count_past_the_first_try():
    # Flat spectrum: 0.999 needs nearly every one of the 40 components,
    # more than the first count tried (16).
    X = np.random.default_rng(2).standard_normal((300, 40))
    ref = decomposition.PCA(0.999, svd_solver="full").fit(X)
    est = LAEPCA(0.999, random_state=0).fit(X)
    assert est.n_components_ == ref.n_components_ > 16
    _assert_matches(est, ref, X)
    # partial_fit chooses the count the same way.
    inc = LAEPCA(0.999, random_state=0).partial_fit(X[:150]).partial_fit(
        X[150:])
    assert inc.n_components_ == ref.n_components_


def test_copy_never_writes_to_x():
    X = SETS["random"]
    before = X.copy()
    a = LAEPCA(5, copy=False, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(X, before)
    b = LAEPCA(5, copy=True, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(a, b)
    ref = decomposition.PCA(5, copy=False, svd_solver="full").fit(X.copy())
    np.testing.assert_allclose(np.abs(a), np.abs(ref.transform(X)),
                               atol=1e-8 * np.abs(a).max())


def test_whiten_with_a_zero_variance_component_stays_finite():
    X = np.random.default_rng(1).standard_normal((50, 3))
    X[:, 2] = X[:, 0]                       # rank 2
    est = LAEPCA(3, whiten=True, random_state=0).fit(X)
    Z = est.transform(X)
    assert np.isfinite(Z).all()
    # The third axis is the null direction (e0 - e2) / sqrt(2), of zero
    # variance; the other two are PCA's, whitened as PCA whitens them.
    null = np.array([1.0, 0.0, -1.0]) / np.sqrt(2.0)
    assert abs(est.components_[2] @ null) == pytest.approx(1.0, abs=1e-12)
    assert est.explained_variance_[2] <= 1e-14 * est.explained_variance_[0]
    ref = decomposition.PCA(3, whiten=True, svd_solver="full").fit(X)
    signs = np.sign(np.sum(Z[:, :2] * ref.transform(X)[:, :2], axis=0))
    np.testing.assert_allclose(Z[:, :2] * signs, ref.transform(X)[:, :2],
                               atol=1e-10)
    # Its output is the projection divided by eps (the documented floor),
    # not by sqrt(0): rounding-sized, finite.
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(Z[:, 2], (X - est.mean_) @ est.components_[2]
                               / max(np.sqrt(est.explained_variance_[2]), eps),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", ["csr", "csc", "coo"])
def test_sparse_input_is_rejected_with_the_alternatives(make):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X = getattr(scipy_sparse, f"{make}_matrix")(np.eye(5))
    with pytest.raises(TypeError, match=r"sparse input.*X.toarray\(\).*"
                                        r"partial_fit.*TruncatedSVD"):
        LAEPCA(2).fit(X)


@pytest.mark.parametrize("params, match", [
    ({"n_components": 1.0}, "n_components"),
    ({"n_components": "mse"}, "n_components"),
    ({"whiten": "yes"}, "whiten"),
    ({"copy": None}, "copy"),
])
def test_new_parameters_are_checked_at_fit(params, match):
    with pytest.raises(ValueError, match=match):
        LAEPCA(**params).fit(SETS["random"])


# ---------------------------------------------------------------------------
# The estimator protocol through scikit-learn's bases


def test_bases_exceptions_and_warnings_are_sklearns():
    assert isinstance(LAEPCA(), BaseEstimator)
    assert isinstance(LAEPCA(), TransformerMixin)
    assert issubclass(laefast.NotFittedError,
                      sklearn.exceptions.NotFittedError)
    assert issubclass(laefast.ConvergenceWarning,
                      sklearn.exceptions.ConvergenceWarning)
    with pytest.raises(sklearn.exceptions.NotFittedError, match="not fitted"):
        LAEPCA(2).transform(np.ones((3, 2)))
    X = SETS["random"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore",
                                category=sklearn.exceptions.ConvergenceWarning)
        est = LAEPCA(3, method="untied", max_iter=2, random_state=0).fit(X)
    assert not est.converged_


def test_feature_names_and_set_output_pandas():
    pd = pytest.importorskip("pandas")
    X = SETS["breast_cancer"]
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = LAEPCA(3, random_state=0).set_output(transform="pandas").fit(df)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    out = est.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["laepca0", "laepca1", "laepca2"]
    assert list(est.get_feature_names_out()) == list(out.columns)
    with pytest.raises(ValueError, match="feature names should match"):
        est.transform(df[df.columns[::-1]])
    # fit_transform is wrapped as well, and inside a pipeline too.
    assert isinstance(est.fit_transform(df), pd.DataFrame)
    pipe = make_pipeline(StandardScaler(), LAEPCA(2, random_state=0))
    pipe.set_output(transform="pandas")
    assert list(pipe.fit_transform(df).columns) == ["laepca0", "laepca1"]
    # A fit that fails keeps the names of the fit before it.
    bad = df.rename(columns=lambda c: "g" + c).iloc[:1]
    with pytest.raises(ValueError, match="n_samples = 1"):
        est.fit(bad)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    # An array after a DataFrame: fitted without names.
    est.fit(X)
    assert not hasattr(est, "feature_names_in_")


class _Subclass(np.ndarray):
    """An ndarray that is not exactly np.ndarray: LAEPCA's name checks then
    take scikit-learn's validate_data, the reference for its fast path."""


@pytest.mark.parametrize("steps", [
    ["fit:arr", "transform:df", "transform:arr", "partial_fit:arr"],
    ["fit:df", "transform:arr", "partial_fit:arr", "transform:df"],
    ["partial_fit:arr", "partial_fit:df", "fit:df", "partial_fit:arr"],
    ["fit:arr", "fit:df", "fit:arr", "transform:df", "partial_fit:df"],
    ["fit:arr", "transform:wide"],
])
def test_plain_ndarray_name_checks_match_scikit_learns(steps):
    # A plain ndarray skips scikit-learn's dataframe probes: the names,
    # the warnings and the errors must be those scikit-learn gives.
    pd = pytest.importorskip("pandas")
    X = SETS["breast_cancer"][:, :5]
    df = pd.DataFrame(X, columns=list("abcde"))

    def run(as_array):
        est, seen = LAEPCA(2, random_state=0), []
        data = {"arr": as_array(X), "df": df,
                "wide": as_array(np.hstack([X, X]))}
        for step in steps:
            method, kind = step.split(":")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    getattr(est, method)(data[kind])
                    outcome = "ok"
                except ValueError as exc:
                    outcome = str(exc)
            seen.append((step, outcome,
                         sorted(str(w.message) for w in caught
                                if issubclass(w.category, UserWarning)),
                         list(getattr(est, "feature_names_in_", [])),
                         getattr(est, "n_features_in_", None)))
        return seen

    assert run(lambda a: a) == run(lambda a: a.view(_Subclass))


def test_partial_fit_without_solve_keeps_the_first_batch_names():
    # Names and their warnings as IncrementalPCA's, whose partial_fit
    # always solves: the first batch's names wait for the first solve.
    pd = pytest.importorskip("pandas")
    X = SETS["breast_cancer"][:, :6]
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    ipca = decomposition.IncrementalPCA(2).partial_fit(df[:100])
    est = LAEPCA(2, random_state=0).partial_fit(df[:100], solve=False)
    assert not hasattr(est, "feature_names_in_")       # nothing solved yet
    with pytest.raises(ValueError, match="feature names should match"):
        est.partial_fit(df[100:200][df.columns[::-1]], solve=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no "fitted without"
        est.partial_fit(df[100:200], solve=False)
        est.partial_fit(df[200:])
    np.testing.assert_array_equal(est.feature_names_in_,
                                  ipca.feature_names_in_)
    assert est.n_samples_seen_ == X.shape[0]
    with pytest.warns(UserWarning, match="fitted with feature names"):
        ipca.partial_fit(X[100:200])
    with pytest.warns(UserWarning, match="fitted with feature names"):
        LAEPCA(2).partial_fit(df[:100], solve=False).partial_fit(
            X[100:200], solve=False)
    # An array first: no names, as IncrementalPCA.
    est = LAEPCA(2, random_state=0).partial_fit(X[:100], solve=False)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        est.partial_fit(df[100:])
    assert not hasattr(est, "feature_names_in_")
    # fit replaces the waiting names with its own (none for an array).
    est = LAEPCA(2, random_state=0).partial_fit(df[:100], solve=False)
    est.fit(X)
    est.partial_fit(X[:50])
    assert not hasattr(est, "feature_names_in_")


def test_waiting_names_survive_a_pickle_and_a_failed_solve():
    pd = pytest.importorskip("pandas")
    X = SETS["breast_cancer"][:, :6]
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    est = LAEPCA(2, random_state=0).partial_fit(df[:100], solve=False)
    est = pickle.loads(pickle.dumps(est))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.partial_fit(df[100:])
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    # A solve that fails (10 components of 6 features) leaves the names
    # waiting for the next one.
    est = LAEPCA(10, random_state=0).partial_fit(df[:100], solve=False)
    with pytest.raises(ValueError, match="n_components=10"):
        est.partial_fit(None)
    assert not hasattr(est, "feature_names_in_")
    with pytest.warns(UserWarning, match="fitted with feature names"), \
            pytest.raises(ValueError, match="5 features, but LAEPCA is "
                          "expecting 6"):
        est.partial_fit(X[100:, :5], solve=False)
    est.set_params(n_components=2).partial_fit(None)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns)
    with pytest.warns(UserWarning, match="fitted with feature names"):
        est.transform(X[:3])


def test_fit_gram_drops_the_previous_fits_feature_names():
    # A Gram matrix has no column names; the model fitted on it must not
    # keep those of an earlier fit on a DataFrame (nor warn on arrays).
    pd = pytest.importorskip("pandas")
    X = SETS["breast_cancer"][:, :6]
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    acc = GramAccumulator().add(X[:, :4])
    for source in ((acc,), (acc.gram_, acc.mean_, acc.n_samples_seen_)):
        est = LAEPCA(2, random_state=0).fit(df)
        assert hasattr(est, "feature_names_in_")
        est.fit_gram(*source)
        assert not hasattr(est, "feature_names_in_")
        assert est.n_features_in_ == 4
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est.transform(X[:5, :4])


def test_set_output_polars():
    pl = pytest.importorskip("polars")
    X = SETS["random"]
    est = LAEPCA(2, random_state=0).set_output(transform="polars")
    out = est.fit(X).transform(X)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["laepca0", "laepca1"]


def test_html_repr_clone_and_metadata_routing():
    est = LAEPCA(4, whiten=True, lam=2.0)
    html = est._repr_html_()
    assert "LAEPCA" in html and "whiten" in html
    again = clone(est)
    assert again.get_params() == est.get_params() and again is not est
    routing = est.get_metadata_routing()
    assert routing.consumes("fit", ["sample_weight"]) == set()
    assert repr(est) == "LAEPCA(lam=2.0, n_components=4, whiten=True)"
    fitted = LAEPCA(2, random_state=0).fit(SETS["random"])
    assert pickle.loads(pickle.dumps(fitted)).n_components_ == 2


def test_validation_makes_no_copy():
    # A float64 (Fortran-ordered) or float32 X is read in place: fit
    # allocates a fraction of it (a block of 4096 rows on one thread, the
    # m x m state), never a converted or reordered copy; transform one
    # centered float32 temporary (X - mean_), not a float64 copy (2x).
    rng = np.random.default_rng(0)
    X = np.asfortranarray(rng.standard_normal((80_000, 20)))   # 12.8 MB
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    for data, call, bound in ((X, "fit", X.nbytes / 4),
                              (X32, "fit", X32.nbytes / 4),
                              (X32, "transform", 1.25 * X32.nbytes)):
        est = LAEPCA(2, n_threads=1, random_state=0)
        if call == "transform":
            est.fit(X32[:1000])
        tracemalloc.start()
        try:
            getattr(est, call)(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < bound, (data.dtype, call, peak)


_EXTRA_CHECKS = [
    "check_dataframe_column_names_consistency",
    "check_get_feature_names_out_error",
    "check_transformer_get_feature_names_out",
    "check_transformer_get_feature_names_out_pandas",
    "check_set_output_transform",
    "check_set_output_transform_pandas",
    "check_global_output_transform_pandas",
    "check_set_output_transform_polars",
    "check_global_set_output_transform_polars",
    "check_param_validation",
]


@pytest.mark.parametrize("check", _EXTRA_CHECKS)
def test_sklearn_feature_name_and_set_output_checks(check):
    if check in ("check_set_output_transform_polars",
                 "check_global_set_output_transform_polars"):
        pytest.importorskip("polars")
    if "pandas" in check or check == "check_dataframe_column_names_consistency":
        pytest.importorskip("pandas")
    fn = getattr(estimator_checks, check)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn("LAEPCA", LAEPCA(random_state=0))


# ---------------------------------------------------------------------------
# Without scikit-learn


def test_works_without_sklearn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 12)) * np.arange(12, 0, -1)
    # Minka's count on the script's X, from scikit-learn here.
    mle = decomposition.PCA("mle", svd_solver="full").fit(X).n_components_
    code = textwrap.dedent("""
        import sys, warnings
        sys.modules["sklearn"] = None          # import sklearn fails
        import numpy as np
        import laefast
        from laefast import LAEPCA
        assert "sklearn" not in [m for m in sys.modules if sys.modules[m]]
        assert issubclass(laefast.NotFittedError, ValueError)
        assert issubclass(laefast.NotFittedError, AttributeError)
        assert issubclass(laefast.ConvergenceWarning, UserWarning)

        def raises(call, text):
            try:
                call()
            except ValueError as e:
                assert text in str(e), str(e)
            else:
                raise AssertionError(f"no ValueError ({text!r})")

        rng = np.random.default_rng(0)
        X = rng.standard_normal((200, 12)) * np.arange(12, 0, -1)
        raises(lambda: LAEPCA(2).transform(X), "not fitted")
        est = LAEPCA(3, whiten=True, random_state=0).fit(X)
        Z = est.transform(X)
        assert np.allclose(Z.var(axis=0, ddof=1), 1.0)
        assert np.allclose(est.inverse_transform(Z)
                           @ est.components_.T, X @ est.components_.T)
        assert list(est.get_feature_names_out()) == ["laepca0", "laepca1",
                                                     "laepca2"]
        assert repr(est) == "LAEPCA(n_components=3, random_state=0, whiten=True)"
        assert est.get_params()["copy"] is True
        raises(lambda: est.set_params(gamma=1), "Invalid parameter")
        eig = np.linalg.eigvalsh(np.cov(X.T))[::-1]
        frac = eig.cumsum() / eig.sum()
        k = int(np.searchsorted(frac, 0.8, side="right")) + 1
        assert LAEPCA(0.8, random_state=0).fit(X).n_components_ == k
        assert LAEPCA("mle", random_state=0).fit(X).n_components_ == MLE
        raises(lambda: LAEPCA(2).fit(X[:, :3].tolist() + [[np.nan] * 3]),
               "NaN")
        raises(lambda: LAEPCA(method="newton").fit(X), "method")
        stream = laefast.LAEStream(3, random_state=0)
        for chunk in np.array_split(X, 4):
            stream.partial_fit(chunk)
        assert np.allclose(stream.explained_variance_,
                           LAEPCA(3, random_state=0).fit(X).explained_variance_)
        assert repr(laefast.LAEStream(3, mode="sgd")) == \
            "LAEStream(mode='sgd', n_components=3)"
        sgd = laefast.LAEStream(3, mode="sgd", random_state=0).fit(X)
        assert np.allclose(sgd.transform(X),
                           (X - sgd.mean_) @ sgd.components_.T)
        print("ok")
    """).replace("MLE", str(int(mle)))
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_whiten_leaves_the_covariance_model_alone():
    # With all components kept the model's covariance is the data's; with
    # whiten=True scikit-learn's PCA departs from it (its components are
    # scaled by sqrt(explained_variance_) in get_covariance), LAEPCA not.
    X = np.random.default_rng(0).standard_normal((500, 4)) * [3, 2, 1, .5]
    cov = np.cov(X.T)
    for whiten in (False, True):
        est = LAEPCA(whiten=whiten, random_state=0).fit(X)
        np.testing.assert_allclose(est.get_covariance(), cov, atol=1e-12)
    ref = decomposition.PCA(whiten=True).fit(X)
    assert np.abs(ref.get_covariance() - cov).max() > 1.0
    np.testing.assert_allclose(
        LAEPCA(3, whiten=True, random_state=0).fit(X).score_samples(X),
        decomposition.PCA(3, whiten=False).fit(X).score_samples(X),
        rtol=1e-8)


def test_dask_fit_drops_the_previous_feature_names():
    pd = pytest.importorskip("pandas")
    da = pytest.importorskip("dask.array")
    X = SETS["random"]
    est = LAEPCA(2, random_state=0).fit(pd.DataFrame(X).add_prefix("c"))
    assert hasattr(est, "feature_names_in_")
    est.fit(da.from_array(X, chunks=(100, 40)))
    assert not hasattr(est, "feature_names_in_")
    ref = decomposition.PCA(2, svd_solver="full").fit(X)
    Z, Zr = est.transform(X), ref.transform(X)
    np.testing.assert_allclose(np.abs(Z), np.abs(Zr),
                               atol=1e-8 * np.abs(Zr).max())
