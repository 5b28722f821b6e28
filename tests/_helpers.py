"""Test data, independent references and state snapshots shared by the tests.

Imported as ``from _helpers import ...``: conftest.py puts this folder on
sys.path, whatever pytest's import mode.  Nothing here imports laefast's
private modules: the references are NumPy's (svd, eigh, qr) or closed form.

Generators (each test file calls them with its own seeds and shapes):

- :func:`make_problem`: centered m x n data (columns are samples), its Gram
  matrix and SVD, for the functional API;
- :func:`spiked`: n samples of k strong directions over unit noise;
- :func:`scaled_gaussian`: Gaussian samples with given per-axis scales,
  optionally in a random orthonormal basis;
- :func:`random_spd`: a random symmetric positive definite C;
- :func:`digits` and :func:`sklearn_sets`: scikit-learn's data sets.

References: :func:`centered_gram`, :func:`svd_components`, :func:`max_sine`
(matching directions), :func:`subspace_sine` (spans), :func:`rel_error`
and :func:`loss_progress` (against the closed-form minimum of the loss);
:func:`start_weights` is a Gaussian start for the solvers.

Snapshots: :func:`snapshot`, :func:`assert_unchanged` and
:func:`assert_same_state`, to show that a call that fails leaves an
estimator, a stream or an accumulator as it was.
"""

import numpy as np
import pytest

import laefast
from laefast.metrics import max_principal_sine

# ---------------------------------------------------------------------------
# Data


def make_problem(m=8, n=200, k=3, seed=0, dtype=np.float64):
    """Centered data X (m x n, columns are samples), its Gram C and SVD.

    The m singular values are distinct and well separated (axis scales
    3 .. 0.5); ``k`` is unused and kept for the callers' readability.
    """
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.5, m)
    X = scales[:, None] * rng.standard_normal((m, n))
    X -= X.mean(axis=1, keepdims=True)
    C = X @ X.T
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    return X.astype(dtype), C.astype(dtype), U, s


def spiked(n, m, spikes, *, offset=0.0, scale=1.0, seed=0,
           noise_first=False):
    """n samples (rows) of m features: ``len(spikes)`` strong directions
    over unit noise, ``scale * (signal + noise) + offset``.

    The signal is ``N(0, 1)^(n x k) * spikes @ U^T`` with U (m x k) the Q
    of a Gaussian matrix, so spikes[i] is the standard deviation along the
    i-th direction.  The draws are U, the signal's factors, then the noise
    (``noise_first``: U, the noise, then the factors).
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    k = spikes.shape[0]
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((m, k)))[0]
    noise = rng.standard_normal((n, m)) if noise_first else None
    X = (rng.standard_normal((n, k)) * spikes) @ U.T
    X = X + (noise if noise_first else rng.standard_normal((n, m)))
    if scale != 1.0:
        X = scale * X
    return X + offset if offset else X


def scaled_gaussian(n, m, scales, *, offset=0.0, seed=0, rotate=False):
    """n Gaussian samples of m features, ``offset + N(0, 1) * scales``.

    With rotate, the scaled samples are turned by a random orthogonal Q
    (drawn before them): their covariance is Q diag(scales^2) Q^T.
    """
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((m, m)))[0] if rotate else None
    X = rng.standard_normal((n, m)) * scales
    if rotate:
        X = X @ Q.T
    return offset + X


def random_spd(m, seed=0, scale=1.0):
    """scale A A^T with A a Gaussian m x (m + 5): positive definite."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, m + 5))
    return (A @ A.T) * scale


def digits():
    """scikit-learn's digits as float64 (1797 x 64); skips without it."""
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_digits().data.astype(np.float64)


def sklearn_sets():
    """Real and random data sets for comparisons with scikit-learn's PCA:
    digits, breast_cancer, and a correlated Gaussian 500 x 40."""
    datasets = pytest.importorskip("sklearn.datasets")
    return {"digits": datasets.load_digits().data,
            "breast_cancer": datasets.load_breast_cancer().data,
            "random": np.random.default_rng(7).standard_normal((500, 40))
            @ np.random.default_rng(8).standard_normal((40, 40))}


# ---------------------------------------------------------------------------
# Independent references


def centered_gram(X):
    """Xc^T Xc in float64, with Xc the column-centered samples."""
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc


def svd_components(X, k):
    """The top-k principal axes (rows) of the samples X, by np.linalg.svd."""
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0)
    return np.linalg.svd(Xc, full_matrices=False)[2][:k]


def max_sine(A, B):
    """Largest sine between matching rows (unit vectors) of A and B, as
    ||a - (a.b) b|| (1 - cos^2 would lose everything below sqrt(eps))."""
    cos = np.sum(A * B, axis=1)
    return float(np.linalg.norm(A - cos[:, None] * B, axis=1).max())


def subspace_sine(A, B):
    """Largest principal sine between the spans of A's and B's rows."""
    return max_principal_sine(np.asarray(A, float).T, np.asarray(B, float).T)


def loss_progress(C, W1, W2, lam):
    """How far (W1, W2) went from W = 0 towards the minimum of L_sigma on
    C: 0 at W = 0, 1 at the minimum, which is the closed form of
    docs/theory.md, sum_{i > k} s_i + sum_{i <= k} (2 lam - lam^2 / s_i)
    with s the eigenvalues of C (each above lam) by np.linalg.eigvalsh."""
    k = W1.shape[0]
    s = np.linalg.eigvalsh(np.asarray(C, dtype=np.float64))[::-1]
    assert s[k - 1] > lam
    best = s[k:].sum() + np.sum(2 * lam - lam ** 2 / s[:k])
    zero = s.sum()
    return (zero - laefast.loss(C, W1, W2, lam)) / (zero - best)


def start_weights(m, k, seed=1, scale=0.3):
    """A Gaussian start (W1 k x m, W2 m x k) of the given scale."""
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((k, m)),
            scale * rng.standard_normal((m, k)))


def rel_error(a, b):
    """||a - b|| / ||b|| (Frobenius)."""
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ---------------------------------------------------------------------------
# State snapshots


class _Snapshot(dict):
    fitted_only = False


def snapshot(obj, fitted_only=False):
    """A copy of ``vars(obj)`` (arrays copied) to compare after a call.

    fitted_only: only the fitted attributes (names ending in ``_``), as
    scikit-learn's conventions define an estimator's state.
    """
    state = _Snapshot({k: (v.copy() if isinstance(v, np.ndarray) else v)
                       for k, v in vars(obj).items()
                       if not fitted_only or k.endswith("_")})
    state.fitted_only = fitted_only
    return state


def assert_same_state(before, now):
    """Two snapshots are equal: the same names, arrays equal element by
    element, anything else ``==``."""
    assert now.keys() == before.keys(), \
        f"attributes added or removed: {sorted(now.keys() ^ before.keys())}"
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(now[key], value, err_msg=key)
        else:
            assert now[key] == value, f"{key}: {value!r} -> {now[key]!r}"


def assert_unchanged(obj, before):
    """obj's attributes equal the snapshot ``before`` taken of it."""
    assert_same_state(before, snapshot(obj, before.fitted_only))
