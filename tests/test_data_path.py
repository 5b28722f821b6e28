"""Iterations on raw data (C never formed) against the Gram-matrix kernels."""

import tracemalloc
import warnings

import numpy as np
import pytest

import laefast

METHODS_ON_DATA = ("untied", "sync", "tied", "exact-sync", "exact-tied")


def _data(order="C", offset=3.0, dtype=np.float64):
    rng = np.random.default_rng(0)
    X = offset + rng.standard_normal((400, 12)) * np.linspace(4, 1, 12)
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


def test_path_choice():
    from laefast._problem import choose_path
    assert choose_path(10_000, 10, 2, "exact-tied", 8) == "gram"
    assert choose_path(100, 50_000, 2, "exact-tied", 8) == "data"   # C of 20 GB
    assert choose_path(1000, 100_000, 1, "untied", 4) == "data"
    assert choose_path(10, 5000, 2, "exact-untied", 8) == "gram"
    with pytest.raises(ValueError, match="path"):
        laefast.fit(_data(), 2, 1.0, path="disk")
    with pytest.raises(ValueError, match="exact-untied needs"):
        laefast.fit(_data(), 2, 1.0, path="data", method="exact-untied")
