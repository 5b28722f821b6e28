"""Input checks shared by every entry point.

Arrays are accepted without a copy whenever their dtype (float32/float64)
and layout already fit; anything else is converted once, here.
"""

import numpy as np

from ._checks import gram_stats
from ._methods import METHODS
from ._parallel import resolve_threads

__all__ = [
    "METHODS",
    "as_float_array",
    "assert_finite",
    "raise_nonfinite",
    "raise_if_squares_vanish",
    "reject_sparse",
    "check_array",
    "check_chunk",
    "check_layout",
    "check_n_features",
    "check_gram",
    "check_data",
    "check_matrix",
    "check_weights",
]

# One message per fault, for every array laefast takes: the samples of
# fit / LAEPCA / gram_matrix (check_array), the chunks of LAEStream,
# GramAccumulator and LAEPCA's out-of-core batches (check_chunk), and the
# matrices C, W1, W2 (check_gram, check_matrix).


def _float_dtype(a):
    return a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def reject_sparse(X, name="X"):
    """TypeError for a SciPy sparse matrix or array."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name}: laefast does not support sparse input "
            f"({type(X).__name__}): centering the samples would densify "
            "them. Pass a dense array (X.toarray()), feed dense blocks of "
            "rows (X[i:j].toarray()) to partial_fit or GramAccumulator.add, "
            "or use sklearn.decomposition.TruncatedSVD, which does not "
            "center.")


def _check_kind(dtype, name):
    """ValueError unless dtype holds real numbers (bool, int, float)."""
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        extra = " (Complex data not supported)" if dtype.kind == "c" else ""
        raise ValueError(f"{name} must be numeric: real numbers, got dtype "
                         f"{dtype}{extra}")


def _check_shape(shape, name, min_rows=1):
    shape = tuple(shape)
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {len(shape)}-D "
            f"(shape {shape}). Reshape your data either using "
            "array.reshape(-1, 1) if it has a single feature or "
            "array.reshape(1, -1) if it holds a single sample.")
    if shape[1] < 1:
        raise ValueError(f"{name} has no columns: found array with 0 "
                         f"feature(s) (shape={shape}) while a minimum of 1 is "
                         "required.")
    if shape[0] < min_rows:
        raise ValueError(f"{name} has no rows: found array with 0 sample(s) "
                         f"(shape={shape}) while a minimum of 1 is required.")


def check_n_features(m, expected, owner):
    """ValueError when a later batch's feature count differs."""
    if expected is not None and m != expected:
        raise ValueError(f"X has {m} features, but {owner} is expecting "
                         f"{expected} features as input.")


def as_float_array(a, name, dtype=None):
    """An ndarray of float32/float64 (other numeric types become float64;
    objects holding numbers are converted, anything else makes NumPy raise
    TypeError naming the value)."""
    reject_sparse(a, name)
    arr = np.asarray(a)
    if arr.dtype == object:
        arr = arr.astype(np.float64)
    _check_kind(arr.dtype, name)
    if dtype is None:
        dtype = _float_dtype(arr)
    return arr.astype(dtype, copy=False)


def assert_finite(arr, name):
    """ValueError naming the first NaN or infinity of arr (or the overflow
    of its sum).  Summing first is cheap and allocation-free; the
    element-wise search only runs when the sum says something is wrong."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum(dtype=np.float64)
    if not np.isfinite(total):
        _raise_first_nonfinite(arr, name)
        raise ValueError(f"{name} has values too large to sum in float64")


def _raise_first_nonfinite(X, name):
    """ValueError naming X's first NaN or infinity, by blocks of rows (no
    copy of X); returns if there is none."""
    X2 = X.reshape(X.shape[0], -1) if X.ndim > 1 else X.reshape(-1, 1)
    rows = max(1, (64 << 20) // max(1, 8 * X2.shape[1]))
    for start in range(0, X2.shape[0], rows):
        block = np.asarray(X2[start:start + rows])
        for test, what in ((np.isnan, "NaN"), (np.isinf, "infinity")):
            bad = test(block)
            if bad.any():
                row = start + int(np.flatnonzero(bad.any(axis=1))[0])
                raise ValueError(f"{name} contains {what} (first at row "
                                 f"{row}); remove or impute those values")


def raise_nonfinite(X, name="X"):
    """Raise ValueError naming the first NaN or infinity in X, or else the
    overflow: for callers whose own pass over X came out non-finite."""
    _raise_first_nonfinite(X, name)
    big = float(np.abs(X).max())
    raise ValueError(
        f"Input {name} has values whose squares overflow {X.dtype.name} when "
        f"summed over the samples (largest magnitude {big:.3g}): rescale "
        f"the data, e.g. divide it by {2.0 ** np.floor(np.log2(big)):.3g} "
        "(a power of two: exact)")


def check_array(X, name="X", *, finite=True, dtype=None):
    """Samples (n_samples, n_features) as a float32/float64 ndarray, no
    copy when X already is one (any layout).

    The faults, each with its one message: sparse (TypeError), not numeric
    (strings, objects that are not numbers, complex), not 2-D, no
    features, no samples, NaN, infinity.  finite=False leaves finiteness
    to the caller's own pass over X (the Gram pass, the mean).
    """
    X = as_float_array(X, name, dtype)
    _check_shape(X.shape, name)
    if finite:
        assert_finite(X, name)
    return X


def check_chunk(chunk, name="chunk", *, n_features=None, owner=None,
                min_rows=0):
    """One piece of a stream of rows: (X, float dtype).

    NumPy arrays, memmaps and array-likes with shape, dtype and row
    slicing (h5py, zarr) are returned as they are, to be read slab by slab;
    anything else goes through np.asarray.  Faults as check_array's, with
    the same messages, except that a chunk may have 0 rows (min_rows) and
    that its
    finiteness is read off the pass that consumes it.  n_features: the
    count the earlier chunks had (owner names who expects it).
    """
    X = chunk
    if type(X) is not np.ndarray:
        reject_sparse(X, name)
        if not (isinstance(X, np.ndarray) or (
                hasattr(X, "shape") and hasattr(X, "dtype")
                and hasattr(X, "__getitem__") and len(X.shape) == 2)):
            if hasattr(X, "__next__"):
                raise TypeError(
                    f"{name} must be one 2-D array of rows, got an iterator "
                    f"({type(X).__name__}): pass its chunks one at a time "
                    "(for chunk in chunks: ...)")
            X = np.asarray(X)
    dtype = np.dtype(X.dtype)
    if dtype.kind == "O":
        X = X.astype(np.float64)            # numbers stored as objects
        dtype = X.dtype
    check_layout(X.shape, dtype, name, min_rows=min_rows,
                 n_features=n_features, owner=owner)
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return X, dtype
    return X, np.dtype(np.float64)


def check_layout(shape, dtype, name="X", *, min_rows=1, n_features=None,
                 owner=None):
    """check_chunk's faults read off shape and dtype alone, for data that
    are read later (a Dask array, an out-of-core slab source)."""
    _check_kind(dtype, name)
    _check_shape(shape, name, min_rows=min_rows)
    check_n_features(shape[1], n_features, owner)


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
    reject_sparse(C, "C")
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
        _raise_first_nonfinite(C, "C")
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
    """check_array under its former name (laefast._problem calls it)."""
    return check_array(X, finite=finite)


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
