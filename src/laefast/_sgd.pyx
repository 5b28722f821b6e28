"""Minibatch SGD on raw samples: the SVRG steps of LAEStream(mode='sgd').

One call runs every minibatch step of a sweep over the rows of X (a chunk,
or one slab of a chunk read in slabs) with the GIL released.  The step is
the variance-reduced one of ``LAEStream._sweep`` (docs/theory.md): with the
anchor A = (A2^T, A2) fixed for the sweep and G(A) the chunk's full gradient
at A,

    W <- W - a_t (g_B(W) - g_B(A) + G(A)),   a_t = alpha / (1 + decay t),

where g_B is the gradient of the batch loss
(n_total / b) ||X_B - X_B W1^T W2^T||^2 + lam (||W1||^2 + ||W2||^2) of the
batch's centered rows X_B (b of them).  'tied' keeps W1 = W2^T: its step
is the sum of both gradients, taken on W2.

The batch loss touches X_B only through C_B = X_B^T X_B, and both gradients
only through W1 C_B, W2^T C_B and A1 C_B = A2^T C_B (the anchor is tied, as
the sweep's Rayleigh-Ritz restart leaves it).  Those three (k x m) products
are one stacked pair of GEMMs per block of rows, S = [W1; W2^T; A2^T]:
Y = X_B S^T, then Y^T X_B; 'tied' stacks two (W1 C_B = W2^T C_B).  The
rest of a step is O(k^2 m).

Parallel layout: the batch's rows are split into at most SGD_MAX_SLOTS
contiguous ranges, whatever the thread count; each range is centered (in
float64, the mean subtraction fused) block by block into a thread-local
buffer and multiplied into its own product slot, and the slots are summed
in range order.  The result is the same bit for bit for every thread count.
The threads call BLAS from inside the parallel region: the caller limits
BLAS to one thread (laefast._parallel.serial_blas), or the two thread pools
fight for the cores.

Weights, anchor and gradients are float64 whatever X's type: float32 rows
are widened when they are centered, as NumPy's float32 - float64 does.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport isfinite

from laefast._blas cimport NO_TRANS, TRANS, gemm
from laefast._constants cimport (
    CHECK_FLOPS, SGD_BLOCK_ROWS, SGD_MAX_SLOTS, SGD_MIN_SLOTS, SGD_SLOT_BYTES,
)
from laefast._threads cimport threads_for

cdef extern from "Python.h":
    # No exception value: a raising signal handler's error stays set until
    # svrg_sweep returns and raise_pending() raises it.
    int PyErr_CheckSignals()


# Why a sweep stopped.
cdef enum SweepStatus:
    S_DONE          # every batch taken
    S_NONFINITE     # the weights stopped being finite (left as they are)
    S_INTERRUPTED   # a signal handler raised (Ctrl-C): the error is set

DONE, NONFINITE, INTERRUPTED = S_DONE, S_NONFINITE, S_INTERRUPTED
BLOCK_ROWS = SGD_BLOCK_ROWS


cdef int raise_pending() except -1:
    # The exception a signal handler set is still pending: returning the
    # error value makes Cython raise it.
    return -1


cdef inline Py_ssize_t n_slots(Py_ssize_t b, Py_ssize_t block_rows,
                               Py_ssize_t r, Py_ssize_t m) noexcept nogil:
    """Row ranges a batch of b rows is split into (thread-independent):
    one per block, at most SGD_MAX_SLOTS, and fewer where the slots (r x m
    doubles each) would pass SGD_SLOT_BYTES, but never fewer than
    SGD_MIN_SLOTS (blocks permitting)."""
    cdef Py_ssize_t blocks = (b + block_rows - 1) // block_rows
    cdef Py_ssize_t by_memory = SGD_SLOT_BYTES // max(<Py_ssize_t> 1,
                                                      8 * r * m)
    cdef Py_ssize_t cap = min(<Py_ssize_t> SGD_MAX_SLOTS,
                              max(<Py_ssize_t> SGD_MIN_SLOTS, by_memory))
    return max(<Py_ssize_t> 1, min(blocks, cap))


cdef inline Py_ssize_t slot_start(Py_ssize_t b, Py_ssize_t block_rows,
                                  Py_ssize_t s, Py_ssize_t ns) noexcept nogil:
    """First row of row range s of ns (ns: one past the last row): whole
    blocks of block_rows rows, as evenly as they go."""
    cdef Py_ssize_t blocks = (b + block_rows - 1) // block_rows
    return min(b, (blocks * s // ns) * block_rows)


def sweep_threads(Py_ssize_t b, Py_ssize_t m, Py_ssize_t k, bint tied,
                  int n_threads, Py_ssize_t block_rows=SGD_BLOCK_ROWS):
    """The OpenMP threads svrg_sweep uses for batches of b rows."""
    cdef Py_ssize_t r = (2 if tied else 3) * k
    return threads_for(n_slots(b, block_rows, r, m), n_threads,
                       4.0 * b * m * r)


cdef void slot_products(const floating[:, :] X, bint colmajor,
                        Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t block_rows,
                        const double* mean, const double* S, Py_ssize_t r,
                        double* buf, double* Y, double* P) noexcept nogil:
    """P (r x m) = S (X[r0:r1] - mean)^T (X[r0:r1] - mean), block by block."""
    cdef Py_ssize_t m = X.shape[1], start, rows, i, j
    start = r0
    while start < r1:
        rows = min(block_rows, r1 - start)
        # Centered into float64; a column-major X is read down its columns.
        if colmajor:
            for j in range(m):
                for i in range(rows):
                    buf[i * m + j] = <double> X[start + i, j] - mean[j]
        else:
            for i in range(rows):
                for j in range(m):
                    buf[i * m + j] = <double> X[start + i, j] - mean[j]
        gemm(NO_TRANS, TRANS, rows, r, m, 1.0, buf, m, S, m, 0.0, Y, r)
        gemm(TRANS, NO_TRANS, r, m, rows, 1.0, Y, r, buf, m,
             0.0 if start == r0 else 1.0, P, m)
        start += rows


def svrg_sweep(const floating[:, :] X, const double[::1] mean,
               double[:, ::1] W1, double[:, ::1] W2,
               const double[:, ::1] A2, const double[:, ::1] G1,
               const double[:, ::1] G2, double lam, double alpha,
               double decay, Py_ssize_t step0, Py_ssize_t batch_size,
               double n_total, bint tied, int n_threads,
               Py_ssize_t block_rows=SGD_BLOCK_ROWS):
    """The SVRG minibatch steps over the rows of X, in place on W1, W2.

    X: (n, m) float32 or float64 in any layout (rows are samples), centered
    on the fly by mean (m,).  W1 (k, m), W2 (m, k): the weights, float64;
    'tied' reads W2 only and leaves W1 = W2^T.  A2 (m, k): the anchor
    (A1 = A2^T); G1 (k, m), G2 (m, k): the full gradient at the anchor
    (untied's two; 'tied' steps on G2 + G1^T).  Batches are consecutive
    runs of batch_size rows (the last one may be shorter); step t (counted
    from step0) uses alpha / (1 + decay t) and weight n_total / b.
    block_rows: rows centered at a time.  n_threads: OpenMP threads at most
    (sweep_threads says how many run).

    Returns (steps taken, status): DONE, or NONFINITE when a step left a
    weight NaN or infinite (the sweep stops there, the weights as they
    are).  Ctrl-C raises KeyboardInterrupt between batches.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], k = W1.shape[0]
    if (W2.shape[0] != m or W2.shape[1] != k or W1.shape[1] != m
            or A2.shape[0] != m or A2.shape[1] != k or G1.shape[0] != k
            or G1.shape[1] != m or G2.shape[0] != m or G2.shape[1] != k
            or mean.shape[0] != m):
        raise ValueError("svrg_sweep: the shapes of X, mean, W1, W2, A2, "
                         "G1 and G2 do not agree")
    if batch_size < 1 or block_rows < 1:
        raise ValueError("svrg_sweep: batch_size and block_rows must be "
                         "positive")
    cdef Py_ssize_t r = (2 if tied else 3) * k
    cdef Py_ssize_t b_max = min(batch_size, n)
    cdef int nt = sweep_threads(b_max, m, k, tied, n_threads, block_rows)
    cdef Py_ssize_t slots_max = n_slots(b_max, block_rows, r, m)
    cdef Py_ssize_t brows = min(block_rows, max(b_max, <Py_ssize_t> 1))
    cdef bint colmajor = X.strides[0] < X.strides[1] and n > 1
    cdef double[:, ::1] bufs = np.empty((nt, brows * m + brows * r))
    cdef double[:, ::1] slots = np.empty((slots_max, r * m))
    cdef double[::1] S = np.empty(r * m)       # [W1; W2^T; A2^T], stacked
    cdef double[::1] P = np.empty(r * m)       # S C_B, the slots summed
    cdef double[::1] K = np.empty(k * k)       # W2^T W2
    cdef double[::1] KA = np.empty(k * k)      # A2^T A2 - I
    cdef double[::1] B = np.empty(k * k)       # (W1 C_B) W1^T
    cdef double[::1] BA = np.empty(k * k)      # (A2^T C_B) A2
    cdef double[::1] T1 = np.empty(k * m)
    cdef double[::1] T2 = np.empty(m * k)
    cdef double[::1] GT = np.empty(m * k)      # tied: G2 + G1^T
    cdef double* W1p = &W1[0, 0]
    cdef double* W2p = &W2[0, 0]
    cdef const double* A2p = &A2[0, 0]
    cdef const double* mu = &mean[0]
    cdef double* QW                     # W1 C_B ('tied': W2^T C_B)
    cdef double* QT                     # W2^T C_B
    cdef double* QA                     # A2^T C_B
    cdef Py_ssize_t start = 0, b, ns, s, t, i, j, steps = 0
    cdef double a, w, d, lam2 = 2.0 * lam, work = 0.0
    cdef bint bad = False
    cdef int status = S_DONE
    if n == 0 or k == 0:
        return 0, S_DONE
    QW = &P[0]
    QT = QW if tied else QW + k * m
    QA = QT + k * m
    with nogil:
        # The anchor's rows of S and its k x k Gram matrix, once per call.
        for j in range(m):
            for i in range(k):
                S[(r - k + i) * m + j] = A2p[j * k + i]
        gemm(TRANS, NO_TRANS, k, k, m, 1.0, A2p, k, A2p, k, 0.0, &KA[0], k)
        for i in range(k):
            KA[i * k + i] -= 1.0
        if tied:
            for j in range(m):
                for i in range(k):
                    GT[j * k + i] = G2[j, i] + G1[i, j]
        while start < n:
            b = min(batch_size, n - start)
            ns = n_slots(b, block_rows, r, m)
            # S's weight rows from the current weights.
            if not tied:
                for i in range(k * m):
                    S[i] = W1p[i]
            for j in range(m):
                for i in range(k):
                    S[(r - 2 * k + i) * m + j] = W2p[j * k + i]
            # Dynamic: on a loaded machine the ranges of a descheduled
            # thread go to the others (measured faster than static there);
            # each range keeps its own slot, so the result does not change.
            for s in prange(ns, num_threads=nt, schedule="dynamic",
                            chunksize=1):
                t = threadid()
                slot_products(X, colmajor, start + slot_start(b, block_rows,
                                                              s, ns),
                              start + slot_start(b, block_rows, s + 1, ns),
                              block_rows, mu, &S[0], r, &bufs[t, 0],
                              &bufs[t, brows * m], &slots[s, 0])
            for i in range(r * m):
                P[i] = slots[0, i]
            for s in range(1, ns):
                for i in range(r * m):
                    P[i] += slots[s, i]
            w = 2.0 * n_total / b
            a = alpha / (1.0 + decay * (step0 + steps))
            # T1 = (W2^T W2) W1 C_B - (A2^T A2 - I) A2^T C_B       (k x m)
            # T2 = W2 (W1 C_B W1^T) - A2 (A2^T C_B A2)             (m x k)
            gemm(TRANS, NO_TRANS, k, k, m, 1.0, W2p, k, W2p, k, 0.0, &K[0], k)
            gemm(NO_TRANS, NO_TRANS, k, m, k, 1.0, &K[0], k, QW, m, 0.0,
                 &T1[0], m)
            gemm(NO_TRANS, NO_TRANS, k, m, k, -1.0, &KA[0], k, QA, m, 1.0,
                 &T1[0], m)
            if tied:
                gemm(NO_TRANS, NO_TRANS, k, k, m, 1.0, QW, m, W2p, k, 0.0,
                     &B[0], k)
            else:
                gemm(NO_TRANS, TRANS, k, k, m, 1.0, QW, m, W1p, m, 0.0,
                     &B[0], k)
            gemm(NO_TRANS, NO_TRANS, k, k, m, 1.0, QA, m, A2p, k, 0.0,
                 &BA[0], k)
            gemm(NO_TRANS, NO_TRANS, m, k, k, 1.0, W2p, k, &B[0], k, 0.0,
                 &T2[0], k)
            gemm(NO_TRANS, NO_TRANS, m, k, k, -1.0, A2p, k, &BA[0], k, 1.0,
                 &T2[0], k)
            if tied:
                # (g1 - h1)^T + g2 - h2 + G2 + G1^T, on W2.
                for j in range(m):
                    for i in range(k):
                        d = (w * (T1[i * m + j] + T2[j * k + i]
                                  - 2.0 * QW[i * m + j] + QA[i * m + j])
                             + 2.0 * lam2 * (W2p[j * k + i] - A2p[j * k + i])
                             + GT[j * k + i])
                        W2p[j * k + i] -= a * d
                        bad = bad or not isfinite(W2p[j * k + i])
            else:
                for i in range(k):
                    for j in range(m):
                        d = (w * (T1[i * m + j] - QT[i * m + j])
                             + lam2 * (W1p[i * m + j] - A2p[j * k + i])
                             + G1[i, j])
                        W1p[i * m + j] -= a * d
                        d = (w * (T2[j * k + i] - QW[i * m + j]
                                  + QA[i * m + j])
                             + lam2 * (W2p[j * k + i] - A2p[j * k + i])
                             + G2[j, i])
                        W2p[j * k + i] -= a * d
                        bad = bad or not (isfinite(W1p[i * m + j])
                                          and isfinite(W2p[j * k + i]))
            steps += 1
            start += b
            if bad:
                status = S_NONFINITE
                break
            # Between batches: Python's signal handlers past CHECK_FLOPS.
            work += 4.0 * b * m * r
            if work >= CHECK_FLOPS:
                work = 0.0
                with gil:
                    if PyErr_CheckSignals() != 0:
                        status = S_INTERRUPTED
                if status == S_INTERRUPTED:
                    break
        if tied:
            for i in range(k):
                for j in range(m):
                    W1p[i * m + j] = W2p[j * k + i]
    if status == S_INTERRUPTED:
        raise_pending()
    return steps, status
