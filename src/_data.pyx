"""Kernels that read raw samples: Gram accumulation and minibatch SGD.

X has shape (n_samples, n_features) in any layout.  Work is split into
blocks of rows; each block is centered into a small thread-local buffer
(which also makes it contiguous for BLAS), so the input is never copied
whole.  The OpenMP loops call BLAS from inside the parallel region: the
caller limits BLAS to one thread there (threadpoolctl), or the two thread
pools fight for the cores.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt

from _blas cimport gemm, syrk_at_a, mirror_upper
from _threads cimport threads_for


cdef void center_rows(const floating[:, :] X, Py_ssize_t start,
                      Py_ssize_t rows, const double* shift,
                      floating* buf) noexcept nogil:
    """buf (rows x m, row-major) = X[start:start + rows] - shift."""
    cdef Py_ssize_t i, j, m = X.shape[1]
    for i in range(rows):
        if shift != NULL:
            for j in range(m):
                buf[i * m + j] = <floating> (X[start + i, j] - shift[j])
        else:
            for j in range(m):
                buf[i * m + j] = X[start + i, j]


def gram(const floating[:, :] X, const double[::1] mean, floating[:, ::1] out,
         Py_ssize_t chunk_rows):
    """out = (X - mean)^T (X - mean), the paper's C = X X^T (no 1/n).

    Rows are centered chunk by chunk into one small buffer.  With mean None
    and a C-contiguous X, one syrk runs over X itself.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1]
    cdef Py_ssize_t start, b, j
    cdef floating beta
    cdef const double[::1] shift
    cdef const double* shift_ptr = NULL
    dtype = np.float32 if floating is float else np.float64
    if mean is None and n > 0 and X.strides[1] == sizeof(floating) \
            and X.strides[0] == m * sizeof(floating):
        with nogil:
            syrk_at_a(m, n, 1, &X[0, 0], m, 0, &out[0, 0], m)
            mirror_upper(m, &out[0, 0], m)
        return
    if mean is not None:
        shift = mean
        shift_ptr = &shift[0]
    chunk_rows = max(1, min(chunk_rows, n))
    cdef floating[::1] buf = np.empty(chunk_rows * m, dtype=dtype)
    with nogil:
        out[:, :] = 0
        start = 0
        while start < n:
            b = min(chunk_rows, n - start)
            center_rows(X, start, b, shift_ptr, &buf[0])
            syrk_at_a(m, b, 1, &buf[0], m, 1, &out[0, 0], m)
            start += b
        mirror_upper(m, &out[0, 0], m)


def gram_accumulate_threads(Py_ssize_t n, Py_ssize_t m, Py_ssize_t block_rows,
                            int n_threads):
    """The thread count gram_accumulate will use."""
    return threads_for((n + block_rows - 1) // block_rows, n_threads,
                       <double> n * m * m)


def sgd_threads(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, Py_ssize_t batch_size,
                Py_ssize_t block_rows, bint tied, int n_threads):
    """The thread count sgd_epoch will use."""
    cdef Py_ssize_t b = min(batch_size, n)
    return threads_for((b + block_rows - 1) // block_rows, n_threads,
                       (4 if tied else 8) * <double> b * m * k)


def gram_accumulate(const floating[:, :] X, const double[::1] shift,
                    Py_ssize_t block_rows, int n_threads, floating[:, ::1] G,
                    double[::1] s, const floating[:, ::1] G_init=None,
                    double n_correct=0.0):
    """Add a batch of rows to shifted sums, in parallel over row blocks.

    s += sum_i (x_i - K) (float64) and
    G = B + sum_i (x_i - K)(x_i - K)^T [- s s^T / n_correct]
    (m x m, X's dtype, symmetric), K = shift, B = G_init if given, else G's
    own contents; the bracket applies when n_correct > 0, with s the total
    after this batch.  With K the running mean (or the first rows' mean),
    G_init the centered Gram so far and n_correct the new sample count, G is
    the centered Gram of everything (Chan et al.'s merge, whose cross term
    and the batch's own centering combine into - s s^T / n), with nothing
    lost to cancellation.

    Each thread syrk's its static share of the blocks into its own partial;
    the partials are added in thread order, so a given thread count gives
    the same bits.  The merge and the mirror run in parallel over rows.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1]
    cdef Py_ssize_t n_blocks = (n + block_rows - 1) // block_rows
    cdef int nt = gram_accumulate_threads(n, m, block_rows, n_threads)
    cdef Py_ssize_t blk, start, rows, t, i, j
    cdef floating* buf
    cdef double* s_t
    cdef floating v
    cdef double acc
    cdef bint has_init = G_init is not None
    dtype = np.float32 if floating is float else np.float64
    # Partials need no zeroing: a thread's first syrk overwrites (beta 0).
    cdef floating[:, :, ::1] G_t = np.empty((nt, m, m), dtype=dtype)
    cdef int[::1] started = np.zeros(nt, dtype=np.intc)
    cdef double[:, ::1] S_t = np.zeros((nt, m), dtype=np.float64)
    cdef floating[:, ::1] bufs = np.empty((nt, block_rows * m), dtype=dtype)
    for blk in prange(n_blocks, nogil=True, num_threads=nt,
                      schedule="static"):
        t = threadid()
        start = blk * block_rows
        rows = min(block_rows, n - start)
        buf = &bufs[t, 0]
        s_t = &S_t[t, 0]
        # Center into the buffer and sum in the same pass.
        for i in range(rows):
            for j in range(m):
                v = <floating> (X[start + i, j] - shift[j])
                buf[i * m + j] = v
                s_t[j] += v
        syrk_at_a(m, rows, 1, buf, m, started[t], &G_t[t, 0, 0], m)
        started[t] = 1
    with nogil:
        for t in range(nt):
            for j in range(m):
                s[j] += S_t[t, j]
    # syrk fills the upper triangle; rows are dealt round-robin, since row
    # i holds m - i entries.
    for i in prange(m, nogil=True, num_threads=nt, schedule="static",
                    chunksize=1):
        for j in range(i, m):
            acc = G_init[i, j] if has_init else G[i, j]
            for t in range(nt):
                if started[t]:
                    acc = acc + G_t[t, i, j]
            if n_correct > 0:
                acc = acc - s[i] * s[j] / n_correct
            G[i, j] = <floating> acc
    for i in prange(m, nogil=True, num_threads=nt, schedule="static",
                    chunksize=1):
        for j in range(i):
            G[i, j] = G[j, i]


cdef void block_products(const floating[:, :] X, Py_ssize_t start,
                         Py_ssize_t rows, const double* shift,
                         const floating* W1, const floating* W2,
                         Py_ssize_t k, bint tied, floating* buf, floating* Y,
                         floating* P, floating* Qt) noexcept nogil:
    """For one block B of centered rows: P = (B W1^T)^T B, Qt = (B W2)^T B."""
    cdef Py_ssize_t m = X.shape[1]
    center_rows(X, start, rows, shift, buf)
    if not tied:
        gemm(False, True, rows, k, m, 1, buf, m, W1, m, 0, Y, k)
        gemm(True, False, k, m, rows, 1, Y, k, buf, m, 0, P, m)
    gemm(False, False, rows, k, m, 1, buf, m, W2, k, 0, Y, k)
    gemm(True, False, k, m, rows, 1, Y, k, buf, m, 0, Qt, m)


def sgd_epoch(const floating[:, :] X, const double[::1] mean,
              floating[:, ::1] W1, floating[:, ::1] W2, double lam,
              double alpha, double decay, Py_ssize_t step0,
              Py_ssize_t batch_size, Py_ssize_t block_rows, double n_total,
              bint tied, int n_threads):
    """Minibatch SGD on L_sigma over the rows of X, one batch per step.

    Each step descends the unbiased estimate of L_sigma from its batch B of
    b rows: (n_total / b) ||X_B - W2 W1 X_B||^2 + lam (||W1||^2 + ||W2||^2),
    i.e. the paper's batch loss with lam scaled by b / n, times n / b, so
    that alpha means what it means for full-batch GD.  Step t uses
    alpha / (1 + decay t), t counted from step0.  Untied steps update W1 and
    W2 from the same (old) weights; tied steps update W2 and set W1 = W2^T.

    The batch is split into blocks of block_rows rows; blocks run in
    parallel, each writing its own slot, and the slots are summed in block
    order: the result is the same for every thread count.
    Returns the number of steps taken.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], k = W1.shape[0]
    cdef Py_ssize_t max_blocks = (min(batch_size, n) + block_rows - 1) // block_rows
    cdef int nt = sgd_threads(n, m, k, batch_size, block_rows, tied,
                              n_threads)
    cdef Py_ssize_t start, b, n_blocks, blk, t, i, j, steps = 0
    cdef double scale, a
    cdef const double* mu = &mean[0] if mean is not None else NULL
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] bufs = np.empty((nt, block_rows * m), dtype=dtype)
    cdef floating[:, ::1] Ys = np.empty((nt, block_rows * k), dtype=dtype)
    cdef floating[:, ::1] P_slots = np.empty((max_blocks, k * m), dtype=dtype)
    cdef floating[:, ::1] Q_slots = np.empty((max_blocks, k * m), dtype=dtype)
    cdef floating[::1] P = np.empty(k * m, dtype=dtype)
    cdef floating[::1] Qt = np.empty(k * m, dtype=dtype)
    cdef floating[::1] A = np.empty(k * k, dtype=dtype)
    cdef floating[::1] Bk = np.empty(k * k, dtype=dtype)
    cdef floating[::1] T1 = np.empty(k * m, dtype=dtype)
    cdef floating[::1] T2 = np.empty(m * k, dtype=dtype)
    cdef floating* W1p = &W1[0, 0]
    cdef floating* W2p = &W2[0, 0]
    start = 0
    while start < n:
        b = min(batch_size, n - start)
        n_blocks = (b + block_rows - 1) // block_rows
        for blk in prange(n_blocks, nogil=True, num_threads=nt,
                          schedule="static"):
            t = threadid()
            block_products(X, start + blk * block_rows,
                           min(block_rows, b - blk * block_rows), mu, W1p,
                           W2p, k, tied, &bufs[t, 0], &Ys[t, 0],
                           &P_slots[blk, 0], &Q_slots[blk, 0])
        with nogil:
            for i in range(k * m):
                Qt[i] = Q_slots[0, i]
                if not tied:
                    P[i] = P_slots[0, i]
            for blk in range(1, n_blocks):
                for i in range(k * m):
                    Qt[i] += Q_slots[blk, i]
                    if not tied:
                        P[i] += P_slots[blk, i]
            scale = n_total / b
            a = alpha / (1.0 + decay * (step0 + steps))
            if tied:
                # U = a (scale (W2 (W2^T C_B W2) - C_B W2) + lam W2)
                gemm(False, False, k, k, m, 1, &Qt[0], m, W2p, k, 0, &Bk[0], k)
                gemm(False, False, m, k, k, 1, W2p, k, &Bk[0], k, 0, &T2[0], k)
                for j in range(m):
                    for i in range(k):
                        W2p[j * k + i] -= <floating> (a * (
                            scale * (T2[j * k + i] - Qt[i * m + j])
                            + lam * W2p[j * k + i]))
                for i in range(k):
                    for j in range(m):
                        W1p[i * m + j] = W2p[j * k + i]
            else:
                # G1 = scale (A P - Qt) + lam W1, A = W2^T W2
                # G2 = scale (W2 (P W1^T) - P^T) + lam W2, from the old W1
                gemm(True, False, k, k, m, 1, W2p, k, W2p, k, 0, &A[0], k)
                gemm(False, False, k, m, k, 1, &A[0], k, &P[0], m, 0, &T1[0], m)
                gemm(False, True, k, k, m, 1, &P[0], m, W1p, m, 0, &Bk[0], k)
                gemm(False, False, m, k, k, 1, W2p, k, &Bk[0], k, 0, &T2[0], k)
                for i in range(k):
                    for j in range(m):
                        W1p[i * m + j] -= <floating> (a * (
                            scale * (T1[i * m + j] - Qt[i * m + j])
                            + lam * W1p[i * m + j]))
                        W2p[j * k + i] -= <floating> (a * (
                            scale * (T2[j * k + i] - P[i * m + j])
                            + lam * W2p[j * k + i]))
        steps += 1
        start += b
    return steps
