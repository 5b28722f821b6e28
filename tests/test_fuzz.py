"""Property-based fuzzing (hypothesis): shapes up to 40, scales, dtypes,
methods and parameters; every run either agrees with np.linalg.eigh or
ends in a documented outcome (a ConvergenceWarning with converged=False).

Derandomized, so CI sees the same examples every time, and bounded so the
file runs in well under a minute on two cores.
"""

import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import laefast  # noqa: E402
from laefast import LAEPCA, solve  # noqa: E402

from _helpers import subspace_sine  # noqa: E402

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow],
                database=None)


def _not_converged(result, caught):
    """The documented outcome of a run that met max_iter first: converged
    False and a ConvergenceWarning.  (float64 runs here always converge;
    float32 gradient descent can stall at its rounding floor.)  Any other
    warning than those two is a failure."""
    kinds = {w.category for w in caught}
    assert kinds <= {laefast.ConvergenceWarning,
                     laefast.CollapsedComponentWarning}, \
        [str(w.message) for w in caught]
    if result.converged:
        return False
    assert laefast.ConvergenceWarning in kinds
    assert result.W2.dtype == np.float32, (result.n_iter, result.stop)
    return True


@st.composite
def gram_problems(draw):
    """C = Q diag(ev) Q^T with gaps of at least 1.5x between the leading
    eigenvalues (so every method converges in a bounded number of steps),
    possibly rank-deficient, scaled by 10^e; lam sits between two
    eigenvalues, so the first n_live components are live and the rest
    collapse."""
    m = draw(st.integers(1, 40))
    k = draw(st.integers(1, min(m, 4)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    e = draw(st.integers(-150, 150) if dtype == np.float64
             else st.integers(-15, 15))
    rank = draw(st.integers(1, m))
    ratios = draw(st.lists(st.floats(1.5, 3.0), min_size=m, max_size=m))
    ev = np.cumprod([1.0] + ratios[:m - 1])[::-1]
    ev = ev / ev[0]
    ev[rank:] = 0.0
    n_live = draw(st.integers(1, min(k, rank)))
    below = ev[n_live] if n_live < m else 0.0
    lam = np.sqrt(ev[n_live - 1] * below) if below > 0 else \
        0.3 * ev[n_live - 1]
    seed = draw(st.integers(0, 2**32 - 1))
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, m)))[0]
    C = (Q * ev) @ Q.T
    C = (C + C.T) / 2
    method = draw(st.sampled_from(laefast.METHODS))
    return C, ev, Q, k, n_live, lam, 10.0 ** e, dtype, method


@FUZZ
@given(gram_problems())
def test_solve_matches_eigh(problem):
    C, ev, Q, k, n_live, lam, scale, dtype, method = problem
    f64 = dtype == np.float64
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = solve((C * scale).astype(dtype), k, lam * scale, method=method,
                  tol=1e-10 if f64 else 1e-4, max_iter=50_000,
                  random_state=0)
    if _not_converged(r, caught):
        return
    expect = np.zeros(k, dtype=bool)
    expect[n_live:] = True
    assert r.collapsed.tolist() == expect.tolist()
    live = ~expect
    np.testing.assert_allclose(r.eigenvalues[live] / scale, ev[:k][live],
                               rtol=1e-5 if f64 else 5e-2)
    assert not r.eigenvalues[~live].any()
    assert subspace_sine(r.components[live], Q[:, :k][:, live].T) < (
        1e-5 if f64 else 2e-2)


@st.composite
def datasets(draw):
    n = draw(st.integers(2, 40))
    m = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    e = draw(st.integers(-150, 150) if dtype == np.float64
             else st.integers(-18, 18))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m)) * 2.0 ** -np.arange(m)
    degenerate = draw(st.sampled_from(["none", "constant column",
                                       "duplicate rows", "low rank"]))
    if degenerate == "constant column":
        X[:, rng.integers(m)] = 3.0
    elif degenerate == "duplicate rows":
        X[n // 2:] = X[:n - n // 2]
    elif degenerate == "low rank" and m > 1:
        X = X[:, :1] @ rng.standard_normal((1, m))
    k = draw(st.integers(1, min(n, m, 5)))
    method = draw(st.sampled_from(("auto",) + laefast.METHODS))
    oversample = draw(st.integers(0, 3))
    batch_size = draw(st.sampled_from([None, 1, 7]))
    return X, 10.0 ** e, dtype, k, method, oversample, batch_size


@FUZZ
@given(datasets())
def test_laepca_matches_eigh(data):
    X, scale, dtype, k, method, oversample, batch_size = data
    f64 = dtype == np.float64
    Xs = (X * scale).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LAEPCA(k, method=method, oversample=oversample,
                     random_state=0, max_iter=20_000,
                     batch_size=batch_size).fit(Xs)
    # The reference: the data as the estimator saw them, in float64.
    X64 = Xs.astype(np.float64) / scale
    Xc = X64 - X64.mean(axis=0)
    w, V = np.linalg.eigh(Xc.T @ Xc)
    w, V = w[::-1] / (X.shape[0] - 1), V[:, ::-1]
    assert est.components_.shape == (k, X.shape[1])
    # Orthonormal axes, whether or not the run converged.
    P = est.components_.astype(np.float64)
    np.testing.assert_allclose(P @ P.T, np.eye(k), atol=1e-6 if f64 else 1e-3)
    if method != "auto" and not est.converged_:
        return                     # documented: ConvergenceWarning
    top = max(w[0], 0.0)
    # Rounding of the centering is relative to the raw values (an offset
    # much larger than the spread leaves eps |x|^2 of spurious variance).
    atol = (1e-7 if f64 else 2e-3) * top + (1e-12 if f64 else 1e-5) * \
        float(np.max(X64 ** 2))
    np.testing.assert_allclose(est.explained_variance_ / scale ** 2, w[:k],
                               rtol=1e-6 if f64 else 1e-2, atol=atol)
    # Each direction whose eigenvalue is separated from its neighbours.
    for i in range(k):
        gap = min(abs(w[i] - w[j]) for j in range(len(w)) if j != i) \
            if len(w) > 1 else top
        if w[i] > 1e-6 * top and gap > 1e-2 * top:
            cos = abs(float(est.components_[i].astype(float) @ V[:, i]))
            assert cos > 1 - (1e-6 if f64 else 1e-2), (i, cos)


@FUZZ
@given(gram_problems(), st.sampled_from(["gram", "data"]),
       st.integers(0, 30))
def test_fit_matches_eigh_on_either_path(problem, path, extra_rows):
    """fit on samples X with X^T X = C (centering off), formed ('gram') or
    never formed ('data'): the same answers as eigh."""
    C, ev, Q, k, n_live, lam, scale, dtype, method = problem
    if method == "exact-untied" and path == "data":
        method = "exact-tied"
    m = C.shape[0]
    f64 = dtype == np.float64
    # X = U diag(sqrt(ev)) Q^T with orthonormal U (n x m): X^T X = C.
    n = m + extra_rows
    U = np.linalg.qr(np.random.default_rng(extra_rows).standard_normal(
        (n, m)))[0]
    X = ((U * np.sqrt(ev)) @ Q.T) * np.sqrt(scale)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = laefast.fit(X.astype(dtype), k, lam * scale, center=False,
                        path=path, method=method,
                        tol=1e-10 if f64 else 1e-4, max_iter=50_000,
                        random_state=0)
    if _not_converged(r, caught):
        return
    live = np.arange(k) < n_live
    assert r.collapsed.tolist() == (~live).tolist()
    np.testing.assert_allclose(r.eigenvalues[live] / scale, ev[:k][live],
                               rtol=1e-5 if f64 else 5e-2)
    assert subspace_sine(r.components[live], Q[:, :k][:, live].T) < (
        1e-5 if f64 else 2e-2)
