import numpy as np
import pytest


def make_problem(m=8, n=200, k=3, seed=0, dtype=np.float64):
    """Centered data X (m x n, columns are samples), its Gram C and SVD."""
    rng = np.random.default_rng(seed)
    # Distinct, well separated singular values.
    scales = np.linspace(3.0, 0.5, m)
    X = scales[:, None] * rng.standard_normal((m, n))
    X -= X.mean(axis=1, keepdims=True)
    C = X @ X.T
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    return X.astype(dtype), C.astype(dtype), U, s


@pytest.fixture
def problem():
    return make_problem()
