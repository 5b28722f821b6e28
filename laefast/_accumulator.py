"""GramAccumulator: the sample count, mean and centered Gram matrix of data
seen in pieces, built by one parallel pass over each piece."""

import threading

import numpy as np

from . import _passes
from ._params import check_params
from ._parallel import resolve_threads, serial_blas
from ._validation import check_chunk, raise_if_squares_vanish, raise_nonfinite

__all__ = ["GramAccumulator"]

# Beyond this many bytes of per-thread m x m partials, the threads share one
# Gram matrix and split its columns instead (see src/laefast/_passes.pyx).
PARTIALS_MEMORY = 256 << 20
# Rows used to pick the first shift (the mean of rows spread over X).
SHIFT_SAMPLE_ROWS = 1024


class GramAccumulator:
    """Running count, mean and centered Gram matrix of (n, m) pieces of data.

    ``add(X)`` reads each piece once: the rows are split into one large
    contiguous range per thread, each range is centered block by block
    into a thread-local buffer (a shift close to the mean, so nothing is
    lost to cancellation), its column sums taken in the same sweep, and its
    blocks multiplied into the thread's own float64 partial by syrk.  The
    partials are then summed and the piece is merged into the state by
    Chan et al.'s formula.  There is no separate pass for the mean or for
    finiteness: a NaN or infinity in X reaches the diagonal or the sums.

    float32 data are centered in float64, multiplied in float32 within
    blocks of at most 4096 rows, and summed in float64: the Gram matrix is
    as accurate as float32 data allow, whatever the number of rows.

    Parameters
    ----------
    n_threads : int or None
        OpenMP threads for the pass (None: all the cores this process may
        use).  A given count always gives the same bits.
    center : bool
        False accumulates X^T X itself (the mean is still tracked).
    max_memory : int
        Bytes of one piece converted at a time: data that are not float32
        or float64 (integers, say), and array-likes that are not NumPy
        arrays (h5py, zarr), are read in slabs of about this size.
    partials_memory : int
        Bytes the per-thread m x m float64 partials may take, (threads - 1)
        m^2 8 in all.  Above it the threads share the Gram matrix and each
        updates its own panel of columns; extra memory is then one block of
        rows (at most 4096 rows x m) and, for float32, an m^2 / threads
        panel per thread.

    Attributes
    ----------
    n_samples_seen_ : int
    n_features_in_ : int or None
    mean_ : ndarray (m,), float64
    gram_ : ndarray (m, m), float64
        sum_i (x_i - mean)(x_i - mean)^T over all rows seen (no 1/n): the
        paper's C.  (With center=False: sum_i x_i x_i^T.)
    dtype_ : numpy dtype or None
        The float dtype of the first piece (float64 for integer data).

    Notes
    -----
    Memory: the m x m state, the partials described above and, per thread,
    one block of at most 4096 rows (about 4 MiB).  ``add`` and ``merge``
    hold a lock: several Python threads may feed one accumulator, and no
    rows are lost.  A piece that holds NaN or infinity, or whose squares
    overflow, raises ValueError and leaves the state as it was.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast import GramAccumulator
    >>> X = np.random.default_rng(0).standard_normal((1000, 5))
    >>> a = GramAccumulator().add(X[:600])
    >>> b = GramAccumulator().add(X[600:])
    >>> whole = GramAccumulator().add(X)
    >>> bool(np.allclose(a.merge(b).gram_, whole.gram_))
    True
    """

    def __init__(self, *, n_threads=None, center=True, max_memory=256 << 20,
                 partials_memory=PARTIALS_MEMORY):
        self.n_threads = n_threads
        self.center = center
        self.max_memory = max_memory
        self.partials_memory = partials_memory
        self.n_samples_seen_ = 0
        self.n_features_in_ = None
        self.mean_ = None
        self.gram_ = None
        self.dtype_ = None
        self._lock = threading.Lock()

    # -- pickling: the lock is not state --------------------------------------

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- adding data ----------------------------------------------------------

    def add(self, X):
        """Add the rows of X (n, m): one parallel pass; returns self.

        X may be any 2-D array-like of real numbers in any layout (C or
        Fortran order, strided views, memmaps are read in place).  Raises
        ValueError, changing nothing, when X holds NaN or infinity, has
        the wrong number of features, or is not numeric.
        """
        X, dtype = self._check_piece(X)
        if X.shape[0] == 0:
            return self         # an empty piece adds nothing
        with self._lock:
            state = (self.n_samples_seen_, self.mean_, self.gram_)
            for slab in _slabs(X, dtype, self.max_memory):
                state = self._merge_piece(state, *self._pass(slab, state[1]))
                del slab        # before the next slab is read: one at a time
            n, mean, G = state
            if n > self.n_samples_seen_:
                self.n_samples_seen_, self.mean_, self.gram_ = n, mean, G
                self.n_features_in_ = X.shape[1]
                if self.dtype_ is None:
                    self.dtype_ = dtype
        return self

    def merge(self, other):
        """Add another accumulator's data to this one; returns self.

        Chan et al.'s pairwise formula: for counts n_a, n_b, means mu_a,
        mu_b and centered Gram matrices M_a, M_b, the union has
        n = n_a + n_b, mu = mu_a + (mu_b - mu_a) n_b / n and
        M = M_a + M_b + (n_a n_b / n) (mu_b - mu_a)(mu_b - mu_a)^T.
        Exact in exact arithmetic, and free of the cancellation of
        sum x x^T - n mu mu^T.  The other accumulator is not changed.
        """
        if not isinstance(other, GramAccumulator):
            raise TypeError(
                f"merge takes a GramAccumulator, got {type(other).__name__}")
        if other.center != self.center:
            raise ValueError("cannot merge a centered accumulator with an "
                             "uncentered one")
        if other.n_samples_seen_ == 0:
            return self
        if (self.n_features_in_ is not None
                and other.n_features_in_ != self.n_features_in_):
            raise ValueError(
                f"cannot merge an accumulator of {other.n_features_in_} "
                f"features into one of {self.n_features_in_}")
        with other._lock:
            theirs = (other.n_samples_seen_, other.mean_, other.gram_)
        with self._lock:
            n, mean, G = _chan_merge((self.n_samples_seen_, self.mean_,
                                      self.gram_), theirs, self.center)
            self.n_samples_seen_, self.mean_, self.gram_ = n, mean, G
            self.n_features_in_ = other.n_features_in_
            if self.dtype_ is None:
                self.dtype_ = other.dtype_
        return self

    # -- internals ------------------------------------------------------------

    def _check_piece(self, X):
        """laefast._params' rules for the settings, laefast._validation's
        chunk check for X: (X, its float dtype)."""
        check_params("GramAccumulator", {
            "n_threads": self.n_threads, "center": self.center,
            "max_memory": self.max_memory,
            "partials_memory": self.partials_memory})
        return check_chunk(X, "X", n_features=self.n_features_in_,
                           owner="GramAccumulator")

    def _pass(self, X, mean):
        """(n, s, G, shift) for one float slab: the shifted sums of one pass."""
        n, m = X.shape
        if not self.center:
            shift = None
        elif mean is not None:
            shift = mean
        else:
            # The first piece's shift: the mean of rows spread over it.
            step = max(1, n // SHIFT_SAMPLE_ROWS)
            sample = np.asarray(X[::step][:SHIFT_SAMPLE_ROWS],
                                dtype=np.float64)
            with np.errstate(all="ignore"):
                # np.mean's own sum and divide, without its Python layer.
                shift = np.add.reduce(sample, axis=0) / sample.shape[0]
            if not np.isfinite(shift).all():
                shift = np.zeros(m)     # the pass below names the culprit
        n_threads = resolve_threads(self.n_threads)
        nt = _passes.gram_pass_threads(n, m, n_threads)
        tiles = (nt - 1) * m * m * 8 > self.partials_memory
        G = np.empty((m, m))
        s = np.empty(m)
        with serial_blas(nt):
            _passes.gram_pass(X, shift, G, s, n_threads, tiles)
        if (not (np.isfinite(np.diagonal(G)).all() and np.isfinite(s).all())
                and X.dtype == np.float32):
            # float32 blocks are multiplied in float32: squares of 1e18
            # summed over a block overflow it.  Finite data get the pass
            # again in float64, a bounded block of rows at a time.
            G, s = self._pass_float64(X, shift, n_threads)
        if not (np.isfinite(np.diagonal(G)).all() and np.isfinite(s).all()):
            raise_nonfinite(X)
        if n > 1 and not np.diagonal(G).any():
            raise_if_squares_vanish(X, self.center)
        return n, s, G, shift

    def _pass_float64(self, X, shift, n_threads):
        n, m = X.shape
        G, s = np.zeros((m, m)), np.zeros(m)
        G_b, s_b = np.empty((m, m)), np.empty(m)
        rows = max(1, (32 << 20) // (8 * m))
        for start in range(0, n, rows):
            block = np.asarray(X[start:start + rows], dtype=np.float64)
            nt = _passes.gram_pass_threads(block.shape[0], m, n_threads)
            with serial_blas(nt):
                _passes.gram_pass(block, shift, G_b, s_b, n_threads,
                                (nt - 1) * m * m * 8 > self.partials_memory)
            G += G_b
            s += s_b
        return G, s

    def _merge_piece(self, state, n_b, s, G, shift):
        if shift is None:
            mean_b = s / n_b
            M_b = G                       # uncentered: sum x x^T
        else:
            mean_b = shift + s / n_b
            # sum (x - K)(x - K)^T - s s^T / n_b: the batch's own centered
            # Gram (s / n_b is small, K being near the mean).
            M_b = G
            u = s / np.sqrt(n_b)           # outer(u, u): exactly symmetric
            M_b -= np.outer(u, u)
        return _chan_merge(state, (n_b, mean_b, M_b), self.center)


def _chan_merge(a, b, center):
    n_a, mean_a, M_a = a
    n_b, mean_b, M_b = b
    if n_a == 0:
        return n_b, np.array(mean_b, dtype=np.float64), np.array(M_b)
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    M = M_a + M_b
    if center:
        u = delta * np.sqrt(n_a * n_b / n)
        M += np.outer(u, u)
    return n, mean, M


def _slabs(X, dtype, max_memory):
    """X itself when the kernel can read it in place (a float NumPy array,
    memmaps included), else float slabs of about max_memory bytes."""
    if isinstance(X, np.ndarray) and X.dtype == dtype:
        yield X
        return
    rows = max(1, int(max_memory) // max(1, X.shape[1] * dtype.itemsize))
    for start in range(0, X.shape[0], rows):
        yield np.asarray(X[start:start + rows], dtype=dtype)
