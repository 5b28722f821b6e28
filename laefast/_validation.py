"""Input checks shared by every entry point.

Arrays are accepted without a copy whenever their dtype (float32/float64)
and layout already fit; anything else is converted once, here.
"""

import numbers

import numpy as np

from ._checks import gram_stats
from ._methods import METHODS
from ._parallel import resolve_threads

__all__ = [
    "METHODS",
    "as_float_array",
    "raise_nonfinite",
    "raise_if_squares_vanish",
    "check_gram",
    "check_data",
    "check_matrix",
    "check_weights",
    "check_scalar",
    "check_n_components",
    "check_method",
]



def _float_dtype(a):
    return a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def as_float_array(a, name, dtype=None):
    """An ndarray of float32/float64 (other numeric types become float64)."""
    arr = np.asarray(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
    if dtype is None:
        dtype = _float_dtype(arr)
    return arr.astype(dtype, copy=False)


def assert_finite(arr, name):
    # Summing first is cheap and allocation-free; the element-wise test only
    # runs when the sum says something is wrong (it also catches overflow).
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum(dtype=np.float64)
    if not np.isfinite(total):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity")
        raise ValueError(f"{name} has values too large to sum in float64")


def raise_nonfinite(X):
    """Raise ValueError naming the first NaN or infinity in X (by blocks of
    rows, no copy of X), or else the overflow: for callers whose own pass
    over X came out non-finite."""
    rows = max(1, (64 << 20) // max(1, 8 * X.shape[1]))
    for start in range(0, X.shape[0], rows):
        block = np.asarray(X[start:start + rows])
        for test, what in ((np.isnan, "NaN"), (np.isinf, "infinity")):
            bad = test(block)
            if bad.any():
                row = start + int(np.flatnonzero(bad.any(axis=1))[0])
                raise ValueError(
                    f"Input X contains {what} (first at row {row}); remove "
                    "or impute those rows")
    big = float(np.abs(X).max())
    raise ValueError(
        f"Input X has values whose squares overflow {X.dtype.name} when "
        f"summed over the samples (largest magnitude {big:.3g}): rescale "
        f"the data, e.g. divide it by {2.0 ** np.floor(np.log2(big)):.3g} "
        "(a power of two: exact)")


def raise_if_squares_vanish(X, center=True):
    """For data whose Gram matrix came out exactly 0: raise ValueError when
    X is not constant (its deviations are so small that their squares
    underflow), since reporting every variance as 0 would be wrong."""
    rows = max(1, (64 << 20) // max(1, 8 * X.shape[1]))
    first = np.asarray(X[:1], dtype=np.float64) if center else 0.0
    for start in range(0, X.shape[0], rows):
        block = np.asarray(X[start:start + rows], dtype=np.float64)
        spread = np.abs(block - first).max()
        if spread > 0:
            raise ValueError(
                f"Input X varies (by up to {spread:.3g}) but the squares of "
                f"its deviations underflow {X.dtype.name} to 0, so every "
                "variance would come out 0: rescale the data (e.g. divide "
                "it by its standard deviation) before fitting")


def check_gram(C, with_stats=False):
    """A square, symmetric, finite Gram matrix as a C-contiguous float array.

    One tiled pass over C (compiled, no temporaries) checks finiteness and
    symmetry.  with_stats=True also returns {'trace', 'row_abs_max'}.
    """
    C = as_float_array(C, "C")
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be a square 2-D matrix, got shape {C.shape}")
    if C.shape[0] == 0:
        raise ValueError("C must be at least 1 x 1")
    if not C.flags.c_contiguous:
        # A symmetric matrix stored in Fortran order is its own transpose in
        # C order: use that view instead of copying.
        C = C.T if C.flags.f_contiguous else np.ascontiguousarray(C)
    asym, diag, row_abs_max, trace, total = gram_stats(C, resolve_threads(None))
    if not np.isfinite(total):
        # NaN or infinity, or finite entries whose sum overflows: the
        # solvers only need the trace (they run on C scaled by ~1 / tr C).
        if not np.isfinite(C).all():
            raise ValueError("C contains NaN or infinity")
        if not np.isfinite(trace):
            raise ValueError(
                f"C is too large for {C.dtype.name}: its trace overflows "
                f"(largest diagonal entry {diag:.3g}). Rescale it: divide C "
                "and lam by the same power of two (the components do not "
                "change; the eigenvalues scale with it)")
    # Gram matrices formed by a non-symmetric product carry rounding of
    # order eps * sqrt(n) * scale; sqrt(eps) * scale allows for that.
    tol = np.sqrt(np.finfo(C.dtype).eps) * diag
    if asym > tol:
        raise ValueError(
            f"C must be symmetric: |C - C^T| reaches {asym:.3g} "
            f"(tolerance {tol:.3g})")
    # A Gram matrix's diagonal is >= 0, up to the rounding of its sums
    # (a constant feature's variance can come out as -1e-17 of the rest).
    d = np.diagonal(C)
    i = int(np.argmin(d))
    if d[i] < -tol:
        raise ValueError(
            f"C must be positive semi-definite (a Gram matrix X^T X), but "
            f"its diagonal entry C[{i}, {i}] = {float(d[i]):.3g} is negative; "
            "pass C = Xc^T Xc of centered data (or use laefast.fit on X)")
    if with_stats:
        return C, {"trace": trace, "row_abs_max": row_abs_max}
    return C


def check_data(X, finite=True):
    """Data of shape (n_samples, n_features), float; no copy if it fits.

    finite=False leaves finiteness to the caller's own pass over X.
    """
    X = as_float_array(X, "X")
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got {X.ndim}-D")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be non-empty, got shape {X.shape}")
    if finite:
        assert_finite(X, "X")
    return X


def check_n_components(n_components, m):
    if (not isinstance(n_components, numbers.Integral)
            or isinstance(n_components, bool)):
        raise ValueError(
            f"n_components must be an integer, got {n_components!r}")
    if not 1 <= n_components <= m:
        raise ValueError(
            f"n_components must be in [1, {m}] (the number of features), "
            f"got {n_components}")
    return int(n_components)


def check_scalar(value, name, *, allow_zero=True):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_method(method):
    if method not in METHODS:
        raise ValueError(
            f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def check_matrix(W, name, shape, dtype):
    """W as a finite, C-contiguous 2-D array of dtype, of the given shape
    (None in `shape`: any positive size).  Copies only when needed."""
    W = as_float_array(W, name, dtype)
    if (W.ndim != 2 or any(want is not None and got != want
                           for got, want in zip(W.shape, shape))
            or 0 in W.shape):
        expected = tuple("any" if s is None else s for s in shape)
        raise ValueError(f"{name} must have shape {expected}, got {W.shape}")
    assert_finite(W, name)
    return np.ascontiguousarray(W)


def check_weights(W1, W2, m, k, dtype):
    """Copies of W1 (k x m) and W2 (m x k) in dtype, C order, finite."""
    W1 = check_matrix(W1, "W1", (k, m), dtype)
    W2 = check_matrix(W2, "W2", (m, k), dtype)
    return np.array(W1, copy=True), np.array(W2, copy=True)
