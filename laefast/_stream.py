"""LAEStream: principal components of data that arrives in chunks."""

import numbers

import numpy as np

from . import _data
from ._api import _initial_weights, make_result, solve, step_for_bound
from ._accumulator import GramAccumulator
from ._exceptions import DivergenceError
from ._parallel import resolve_threads, serial_blas
from ._problem import GramProblem
from ._validation import as_float_array, assert_finite, check_scalar

__all__ = ["LAEStream"]

_MODES = ("gram", "sgd")


def _positive_int(value, name):
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
            or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _merge(n_a, mean_a, M2_a, n_b, mean_b, M2_b):
    """Chan et al.'s pairwise merge of (count, mean, centered Gram)."""
    if n_a == 0:
        return n_b, mean_b, M2_b
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    if M2_a is None:
        return n, mean, None
    M2 = M2_a + M2_b
    M2 += (np.outer(delta, delta) * (n_a * n_b / n)).astype(M2.dtype)
    return n, mean, M2


class LAEStream:
    """Principal components from a stream of (b, m) chunks of samples.

    Parameters
    ----------
    n_components : int
    lam : float
        L2 penalty, in the units of the eigenvalues of C = Xc^T Xc over all
        the samples (the paper's convention, no 1/n).
    mode : {'gram', 'sgd'}
        'gram': one parallel pass over each chunk keeps the running mean and
        centered Gram matrix (m x m; see :class:`laefast.GramAccumulator`);
        :meth:`solve` then runs any solver on it.  The fast choice while an
        m x m matrix fits in memory.
        'sgd': each chunk is swept once by minibatch SGD on L_sigma
        (``method`` 'untied' or 'tied'), holding only the weights.
    method : str or None
        'gram' mode: the solver :meth:`solve` uses (default 'exact-tied').
        'sgd' mode: 'untied' (default) or 'tied'.
    alpha : float or None
        SGD step.  None: laefast.default_alpha's step 1 / (3 c r^2 + lam),
        re-derived for every chunk from the current weights (r^2) and
        c = n_samples_total times the larger of the top eigenvalue per
        sample and max_i ||x_i - mean||^2 / batch_size (which bounds a
        small batch's curvature), both estimated on the first 4096 samples.
    decay : float or None
        SGD step t uses alpha / (1 + decay t).  None: batch_size /
        n_samples_total, so the step halves after one pass over the data.
    batch_size : int
        Samples per SGD step.  Each step descends
        (n / b) ||X_B - W2 W1 X_B||^2 + lam (||W1||^2 + ||W2||^2), an
        unbiased estimate of L_sigma: the paper's minibatch loss with lam
        scaled by b / n, multiplied by n / b.
    n_samples_total : int or None
        n in the line above (SGD only).  None: the samples seen so far,
        which suits a stream seen once; for several passes over the same
        data, pass its size.
    n_threads : int or None
        OpenMP threads for the chunk kernels (None: all, following
        OMP_NUM_THREADS).  Any thread count gives the same SGD result bit
        for bit; the Gram pass is reproducible for a given count.
    block_rows : int or None
        'sgd' mode: rows per parallel work item (None: 256, so a batch
        splits into several blocks).  The 'gram' mode's pass gives each
        thread one contiguous range of rows and picks its own blocks.
    max_memory : int
        Bytes of a chunk converted at a time: chunks that are not float32
        or float64 arrays are cast in slabs of at most this size, and SGD
        reads memmaps in slabs of it.
    random_state : int, Generator or None
        SGD's starting weights.

    Attributes
    ----------
    n_features_in_, n_samples_seen_, mean_ (float64), gram_ ('gram' mode:
    the centered Gram matrix, accumulated and kept in float64 whatever the
    chunks' dtype), W1_, W2_ ('sgd' mode), n_steps_ ('sgd').

    A chunk that holds NaN or inf, has the wrong number of features, or a
    dtype that cannot be cast safely to the stream's raises ValueError and
    leaves the state exactly as it was before that chunk.
    """

    def __init__(self, n_components, lam, *, mode="gram", method=None,
                 alpha=None, decay=None, batch_size=1024,
                 n_samples_total=None, n_threads=None, block_rows=None,
                 max_memory=256 << 20, random_state=None):
        if mode not in _MODES:
            raise ValueError(f"mode must be 'gram' or 'sgd', got {mode!r}")
        if mode == "sgd":
            method = "untied" if method is None else method
            if method not in ("untied", "tied"):
                raise ValueError(
                    f"sgd mode runs 'untied' or 'tied', got {method!r}")
        self.n_components = _positive_int(n_components, "n_components")
        self.lam = check_scalar(lam, "lam")
        self.mode = mode
        self.method = method
        self.alpha = None if alpha is None else check_scalar(
            alpha, "alpha", allow_zero=False)
        self.decay = None if decay is None else check_scalar(decay, "decay")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.n_samples_total = (None if n_samples_total is None else
                                _positive_int(n_samples_total,
                                              "n_samples_total"))
        self.n_threads = resolve_threads(n_threads)
        self.block_rows = (None if block_rows is None else
                           _positive_int(block_rows, "block_rows"))
        self.max_memory = _positive_int(max_memory, "max_memory")
        self.random_state = random_state
        self.n_samples_seen_ = 0
        self.n_features_in_ = None
        self.dtype_ = None
        self.mean_ = None
        self.gram_ = None
        self.W1_ = self.W2_ = None
        self.alpha_ = None
        self.n_steps_ = 0
        self._top_per_sample = None
        self._max_sq = 0.0
        self._scale_samples = 0
        self._acc = None

    # -- input ---------------------------------------------------------------

    def partial_fit(self, chunks):
        """Take one chunk (an (b, m) array or memmap) or an iterable of them."""
        if _is_one_chunk(chunks):
            self._take(chunks)
        else:
            for chunk in chunks:
                self._take(chunk)
        return self

    def _check_chunk(self, chunk):
        # Array-likes with slicing (h5py, zarr) are read slab by slab.
        X = chunk if isinstance(chunk, np.ndarray) or (
            hasattr(chunk, "shape") and hasattr(chunk, "dtype")
            and hasattr(chunk, "__getitem__")) else np.asarray(chunk)
        if len(X.shape) != 2:
            raise ValueError(f"a chunk must be 2-D (b, m), got "
                             f"{len(X.shape)}-D")
        if self.n_features_in_ is not None and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"chunk has {X.shape[1]} features, the stream has "
                f"{self.n_features_in_}")
        if X.shape[1] < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} exceeds the "
                f"{X.shape[1]} features")
        dtype = self.dtype_
        if dtype is None:
            dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool) \
                or np.iscomplexobj(X):
            raise ValueError(f"chunk dtype {X.dtype} is not a real number type")
        if not np.can_cast(X.dtype, dtype, casting="safe"):
            raise ValueError(
                f"chunk dtype {X.dtype} cannot be cast safely to the stream's "
                f"{np.dtype(dtype)}")
        return X, np.dtype(dtype)

    def _block_rows(self, m, dtype):
        return self.block_rows if self.block_rows is not None else 256

    def _slabs(self, X, dtype, multiple=1):
        """Float-typed slabs of X of about max_memory bytes (views when X
        already has the dtype).  Slabs hold a whole multiple of `multiple`
        rows (at least one).  Finiteness is the caller's to check."""
        rows = max(self._block_rows(X.shape[1], dtype),
                   self.max_memory // max(1, X.shape[1] * dtype.itemsize))
        rows = max(multiple, rows - rows % multiple)
        for start in range(0, X.shape[0], rows):
            yield as_float_array(X[start:start + rows], "chunk", dtype)

    def _take(self, chunk):
        X, dtype = self._check_chunk(chunk)
        if X.shape[0] == 0:
            return
        if self.mode == "gram":
            self._take_gram(X, dtype)
        else:
            self._take_sgd(X, dtype)
        self.n_features_in_ = X.shape[1]
        self.dtype_ = dtype

    def _take_gram(self, X, dtype):
        # One parallel pass per chunk (GramAccumulator); the state only
        # changes once the whole chunk has been read and found finite.
        if self._acc is None:
            self._acc = GramAccumulator(n_threads=self.n_threads,
                                        max_memory=self.max_memory)
        if type(X).__module__.split(".")[0] == "dask":
            # A Dask array: per-block accumulators on its workers, merged.
            from . import _dask
            self._acc.merge(_dask.accumulate(
                _dask._check(X, self.n_features_in_)))
        else:
            self._acc.add(X)
        self.n_samples_seen_ = self._acc.n_samples_seen_
        self.mean_, self.gram_ = self._acc.mean_, self._acc.gram_

    def _take_sgd(self, X, dtype):
        # Pass 1 validates the whole chunk and takes its mean, before any
        # state changes; pass 2 sweeps it in batches.  Slabs hold whole
        # batches, so a memmap read in slabs gives the same steps as the
        # same data in memory (up to the rounding of the mean).
        n_b, m, k = X.shape[0], X.shape[1], self.n_components
        total = np.zeros(m)
        for slab in self._slabs(X, dtype):
            total += slab.sum(axis=0, dtype=np.float64)
            del slab            # before the next slab is read: one at a time
        if not np.isfinite(total).all():
            assert_finite(X, "chunk")
            raise ValueError("chunk has values too large to sum in float64")
        count, mean, _ = _merge(self.n_samples_seen_, self.mean_, None,
                                n_b, total / n_b, None)
        n_total = self.n_samples_total or count
        if self.W1_ is None:
            W1, W2 = _initial_weights(None, m, k, dtype, self.random_state)
        else:
            W1, W2 = self.W1_.copy(), self.W2_.copy()
        alpha = self.alpha
        if alpha is None:
            alpha = self._default_step(X, dtype, mean, n_total, W1, W2)
        decay = self.decay if self.decay is not None else (
            self.batch_size / n_total)
        steps = 0
        block_rows = self._block_rows(m, dtype)
        nt = _data.sgd_threads(n_b, m, k, self.batch_size, block_rows,
                               self.method == "tied", self.n_threads)
        for slab in self._slabs(X, dtype, multiple=self.batch_size):
            with serial_blas(nt):
                steps += _data.sgd_epoch(
                    slab, mean, W1, W2, self.lam, alpha, decay,
                    self.n_steps_ + steps, self.batch_size, block_rows,
                    float(n_total), self.method == "tied", self.n_threads)
            del slab
        if not (np.isfinite(W1).all() and np.isfinite(W2).all()):
            raise DivergenceError(
                "minibatch SGD diverged: the weights stopped being finite. "
                f"The step alpha={alpha:g} is too large; lower it or pass "
                "alpha=None.")
        self.n_samples_seen_, self.mean_ = count, mean
        self.W1_, self.W2_, self.alpha_ = W1, W2, alpha
        self.n_steps_ += steps

    def _default_step(self, X, dtype, mean, n_total, W1, W2):
        """default_alpha's step 1 / (3 c r^2 + lam) for this chunk.

        A batch of b rows has a gradient whose Lipschitz constant is about
        (n / b) lambda_max(X_B^T X_B) <= n max(top eigenvalue per sample,
        max_i ||x_i - mean||^2 / b): c is n_total times the larger of the
        two.  Both are estimated on the chunks' first rows (Lanczos costs
        passes) until 4096 samples have been looked at, then kept.
        """
        if self._scale_samples < 4096:
            rows = np.asarray(X[:4096], dtype=np.float64) - mean
            sq = float(np.einsum("ij,ij->i", rows, rows).max())
            if sq == 0.0:
                # Nothing but the mean so far: the samples' own size is the
                # only scale there is.
                raw = np.asarray(X[:4096], dtype=np.float64)
                sq = float(np.einsum("ij,ij->i", raw, raw).max())
            top = sq
            if rows.shape[0] >= 2:
                problem = GramProblem(data=rows.astype(dtype), mean=None)
                top = problem.eigenvalue_bound() / rows.shape[0]
            self._top_per_sample = max(self._top_per_sample or 0.0, top)
            self._max_sq = max(self._max_sq, sq)
            self._scale_samples += rows.shape[0]
        b = min(self.batch_size, n_total)
        c = n_total * max(self._top_per_sample, self._max_sq / b)
        if c == 0.0 and self.lam == 0.0:
            return 1.0          # all samples are zero: every gradient is 0
        return step_for_bound(c, self.lam, W1, W2)

    # -- output --------------------------------------------------------------

    def solve(self, **kwargs):
        """The principal components of everything seen so far (LAEResult).

        'gram' mode runs :func:`laefast.solve` on the centered Gram matrix
        (keyword arguments go to it; the method defaults to the stream's);
        'sgd' mode reads out the current weights.
        """
        if self.n_samples_seen_ == 0:
            raise ValueError("the stream has seen no samples yet")
        if self.mode == "gram":
            kwargs.setdefault("method", self.method or "exact-tied")
            # The solvers run in the stream's dtype, as for fit().
            result = solve(self.gram_.astype(self.dtype_, copy=False),
                           self.n_components, self.lam, **kwargs)
        else:
            result = make_result(
                self.W1_.copy(), self.W2_.copy(), self.lam,
                method="sgd-" + self.method, alpha=self.alpha_, tol=0.0,
                n_iter=self.n_steps_, converged=False, stop=np.nan,
                stacklevel=2)
        result.mean = self.mean_
        return result


def _is_one_chunk(obj):
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return True
    if isinstance(obj, (list, tuple)):
        try:
            return np.asarray(obj).ndim == 2
        except ValueError:
            return False
    return False
