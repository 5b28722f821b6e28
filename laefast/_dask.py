"""LAEPCA on Dask arrays: the blocks stay on the workers.

Imported only when LAEPCA meets a Dask collection (the ``[dask]`` extra).
Every block is a task; nothing but m x m (or m x r) summaries travels.

- Tall data (C fits in memory): each block's count, mean and centered Gram
  matrix by the compiled accumulator (GramAccumulator.add) on its worker,
  the partial accumulators tree-reduced by Chan's formula
  (GramAccumulator.merge), the solve on the client (LAEPCA.fit_gram's).
- Wide data (C too large): LAEPCA's block Lanczos iteration on the client,
  each product C Q = Xc^T (Xc Q) one round of block tasks calling the
  compiled centered product, their m x r partials summed by a tree.

The blocks must hold whole rows: X is rechunked along the features to one
chunk when it is not.  Every task is pure (no task changes its inputs), so
Dask may recompute any of them after a worker is lost.
"""

import dask
import dask.array as da
import numpy as np

from . import _passes
from ._accumulator import GramAccumulator
from ._problem import GRAM_MEMORY_LIMIT, GramProblem
from ._validation import check_layout

__all__ = ["fit", "partial_fit", "transform", "inverse_transform"]

# Partials summed per task of the reduction tree.
SPLIT_EVERY = 8
# Beyond this, the Gram matrix is not formed (per worker partial, and the
# client's): the samples path runs instead.
GRAM_BYTES_LIMIT = GRAM_MEMORY_LIMIT
# A block of whole rows may take at most this many bytes (None: 4x Dask's
# array.chunk-size); a row that alone exceeds it cannot be processed.
MAX_BLOCK_BYTES = None


def _max_block_bytes():
    if MAX_BLOCK_BYTES is not None:
        return int(MAX_BLOCK_BYTES)
    size = dask.config.get("array.chunk-size", "128MiB")
    return 4 * int(dask.utils.parse_bytes(size))


def _check(X, n_features=None):
    """X as a 2-D numeric dask array of whole-row blocks."""
    if not isinstance(X, da.Array):
        raise TypeError(f"LAEPCA takes a dask.array.Array among Dask "
                        f"collections, got {type(X).__name__}")
    if any(np.isnan(c) for chunks in X.chunks for c in chunks):
        raise ValueError("X has unknown chunk sizes; call "
                         "X.compute_chunk_sizes() first")
    # The faults the in-memory checks name, with their messages.
    check_layout(X.shape, X.dtype, "X", n_features=n_features,
                 owner="LAEPCA")
    return _whole_rows(X)


def _whole_rows(X):
    """Rechunk along the features to one chunk, keeping blocks in bounds."""
    n, m = X.shape
    limit = _max_block_bytes()
    row_bytes = m * np.dtype(X.dtype).itemsize
    if row_bytes > limit:
        raise ValueError(
            f"one row of X takes {row_bytes} bytes, more than the "
            f"{limit} bytes a block of whole rows may take (raise "
            "laefast._dask.MAX_BLOCK_BYTES or dask's array.chunk-size): "
            "X cannot be split into blocks of whole rows")
    if X.numblocks[1] == 1 and max(X.chunks[0]) * row_bytes <= limit:
        return X
    rows = max(1, min(max(X.chunks[0]), limit // row_bytes))
    return X.rechunk({0: rows, 1: -1})


def _blocks(X):
    """(delayed block, index, first row, last row) of whole-row blocks."""
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])])
    return [(block, i, int(starts[i]), int(starts[i + 1]))
            for i, block in enumerate(X.to_delayed()[:, 0])]


def _named(exc, i, r0, r1):
    return ValueError(f"block {i} of X (rows {r0}:{r1}): {exc}")


# -- tasks (run on the workers; pure) -----------------------------------------

def _block_accumulator(block, i, r0, r1, n_threads):
    acc = GramAccumulator(n_threads=n_threads)
    try:
        acc.add(block)
    except ValueError as exc:
        raise _named(exc, i, r0, r1) from None
    return acc


def _merge_accumulators(*parts):
    out = GramAccumulator(n_threads=1)
    for part in parts:
        out.merge(part)
    return out


def _block_moments(block, i, r0, r1):
    """(rows, mean, sum of squares about it) of one block, float64."""
    B = np.asarray(block)
    dtype = B.dtype if B.dtype.kind == "f" else np.float64
    s = _passes.column_sums(B.astype(dtype, copy=False), 1)
    mean = s / B.shape[0]
    with np.errstate(all="ignore"):
        ss = float(np.sum((B - mean) ** 2))
    if not (np.isfinite(mean).all() and np.isfinite(ss)):
        try:
            from ._validation import raise_nonfinite
            raise_nonfinite(B)
        except ValueError as exc:
            raise _named(exc, i, r0, r1) from None
    return B.shape[0], mean, ss


def _merge_moments(*parts):
    n, mean, ss = parts[0]
    for n_b, mean_b, ss_b in parts[1:]:
        tot = n + n_b
        delta = mean_b - mean
        ss = ss + ss_b + float(delta @ delta) * n * n_b / tot
        mean = mean + delta * (n_b / tot)
        n = tot
    return n, mean, ss


def _block_product(block, mean, Q, i, r0, r1):
    B = np.asarray(block)
    if B.dtype.kind != "f":
        B = B.astype(np.float64)
    out = np.empty_like(Q)
    trace = _passes.centered_product(B, mean, Q, out, 1, want_trace=True)
    if not np.isfinite(trace):
        raise _named("the product with C is not finite", i, r0, r1)
    return out


def _sum_arrays(*parts):
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


def _tree(parts, combine):
    """Delayed tree reduction of delayed parts, SPLIT_EVERY at a time."""
    fn = dask.delayed(combine, pure=True)
    while len(parts) > 1:
        parts = [fn(*parts[j:j + SPLIT_EVERY])
                 for j in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


def accumulate(X, n_threads=1):
    """One GramAccumulator of a whole-row dask array, computed by a tree."""
    task = dask.delayed(_block_accumulator, pure=True)
    parts = [task(b, i, r0, r1, n_threads) for b, i, r0, r1 in _blocks(X)]
    return dask.compute(_tree(parts, _merge_accumulators))[0]


class DaskProblem:
    """C = Xc^T Xc of a dask array, left implicit: GramProblem's interface
    for LAEPCA's block Lanczos loop (products with C only)."""

    C = None
    on_data = True
    # Products are float64 whatever the blocks' dtype (see GramProblem).
    product_dtype = np.dtype(np.float64)

    def __init__(self, X):
        self.X = X
        self.n, self.m = X.shape
        self.dtype = (np.dtype(X.dtype) if np.dtype(X.dtype).kind == "f"
                      else np.dtype(np.float64))
        self._blocks = _blocks(X)
        moment = dask.delayed(_block_moments, pure=True)
        n, self.mean, self._trace = dask.compute(_tree(
            [moment(b, i, r0, r1) for b, i, r0, r1 in self._blocks],
            _merge_moments))[0]
        self.n_products = 0

    def lanczos_block(self):
        """Columns per product: 4.  Each product is a round of Dask tasks
        whose scheduling costs far more than the columns, so fewer, wider
        products win."""
        return 4

    def times(self, Q):
        """C @ Q, Q (m, r): one round of block tasks."""
        Q = np.ascontiguousarray(Q, dtype=np.float64)
        Qd = dask.delayed(Q, pure=True)
        meand = dask.delayed(self.mean, pure=True)
        task = dask.delayed(_block_product, pure=True)
        parts = [task(b, meand, Qd, i, r0, r1)
                 for b, i, r0, r1 in self._blocks]
        self.n_products += 1
        return dask.compute(_tree(parts, _sum_arrays))[0]

    def trace(self):
        return self._trace


# -- LAEPCA's entry points ----------------------------------------------------

def _worker_threads(est):
    # One task per worker thread runs at once: each task uses one thread
    # unless n_threads says otherwise.
    t = est.n_threads
    return 1 if t is None else int(t)


def fit(est, X):
    X = _check(X)
    n, m = X.shape
    if n < 2:
        raise ValueError(
            "LAEPCA needs at least 2 samples to estimate variances, got "
            f"n_samples = {n}")
    est._n_components(n, m)           # checked before any task runs
    if m * m * 8 <= GRAM_BYTES_LIMIT:
        acc = accumulate(X, _worker_threads(est))
        problem = GramProblem.from_accumulator(acc)
        fitted = est._solve(problem, n, acc.dtype_)
        est._acc = acc
        est._set_fitted(fitted, acc.mean_, n, m)
        return est
    method = est._method()
    if method != "auto":
        raise ValueError(
            f"method={method!r} needs the Gram matrix or the samples in "
            f"memory; C ({m} x {m}) is too large for this Dask array: use "
            "method='auto', which runs on the blocks")
    problem = DaskProblem(X)
    fitted = est._solve(problem, n, problem.dtype)
    est._acc = None
    est._set_fitted(fitted, problem.mean, n, m)
    return est


def partial_fit(est, X, solve):
    acc = est._accumulator_to_extend()
    X = _check(X, acc.n_features_in_ if acc is not None else None)
    batch = accumulate(X, _worker_threads(est))
    dtype = (est.components_.dtype if hasattr(est, "components_")
             else acc.dtype_ if acc is not None else batch.dtype_)
    return est._add_batch(X.shape[0], lambda a: a.merge(batch), dtype, solve)


def _project_block(block, mean, components):
    B = np.asarray(block).astype(components.dtype, copy=False)
    return (B - mean) @ components.T


def _reconstruct_block(block, mean, components):
    Z = np.asarray(block).astype(components.dtype, copy=False)
    return Z @ components + mean


def transform(est, X):
    X = _check(X, est.n_features_in_)
    comps = est.components_
    mean = est.mean_.astype(comps.dtype)
    return X.map_blocks(_project_block, mean, comps, dtype=comps.dtype,
                        chunks=(X.chunks[0], (comps.shape[0],)))


def inverse_transform(est, Z):
    k = est.n_components_
    if Z.ndim != 2 or Z.shape[1] != k:
        raise ValueError(f"X must have shape (n_samples, {k}), got "
                         f"{Z.shape}")
    Z = Z.rechunk({1: -1})
    comps = est.components_
    return Z.map_blocks(_reconstruct_block, est.mean_, comps,
                        dtype=comps.dtype,
                        chunks=(Z.chunks[0], (comps.shape[1],)))
