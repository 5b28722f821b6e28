"""The paper's six LAE-PCA solvers, on a Gram matrix C = X X^T or on data.

Each solver runs its whole loop in one call with the GIL released, on
preallocated workspace, and follows the update order and stopping rule of
docs/theory.md exactly (``laefast.reference`` is the readable twin).
No m x m x m product is ever formed: with P = W1 C and Q = C W2 a gradient
step needs only (k x m) x (m x m) GEMMs plus O(k^2 m) work (docs/theory.md).

The loops touch C only through products W C and C W^T (GramOp below), so
the same loops run on raw data, never forming C: W C = (Xc W^T)^T Xc costs
two GEMMs against the samples instead of one against C.  Only exact-untied
needs C itself (its m x m Cholesky solves).

Storage is row-major throughout: W1 is (k, m), W2 is (m, k), C is (m, m).

The penalty (a Reg below) is the paper's sum regularizer with one lam, or one
lam per latent (the diagonal Lambda), or the product regularizer
lam ||W2 W1||_F^2 (gradient methods only).  Its half-gradients, the factor 2
absorbed into the step like the reconstruction term's, are Lambda W1 and
W2 Lambda for the sum, and lam (W2^T W2) W1 and lam W2 (W1 W1^T) for the
product: k x k products, O(k^2 m) flops per step.
"""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt, isfinite, INFINITY
from libc.string cimport memcpy

from laefast._blas cimport (
    NO_TRANS, TRANS, blas_int, gemm, potrf, potrs_cm, syev, syev_lwork,
    trans_if,
)
from laefast._constants cimport (
    CHECK_FLOPS, DATA_BLOCK_ENTRIES, DATA_BLOCK_MAX_ROWS, DATA_BLOCK_MIN_ROWS,
)
from laefast._threads cimport threads_for

cdef extern from "Python.h":
    # Declared without an exception value: a pending KeyboardInterrupt is
    # left set while the loop unwinds, and run() then raises it.
    int PyErr_CheckSignals()


# Method codes, shared with laefast._api (one kernel loop each).
cdef enum Method:
    M_UNTIED, M_SYNC, M_TIED, M_EXACT_UNTIED, M_EXACT_SYNC, M_EXACT_TIED

# Why a loop stopped.
cdef enum Status:
    S_CONVERGED
    S_MAX_ITER
    S_NONFINITE
    S_NOT_PD_W2     # W1 C W1^T + lam I is not positive definite (k x k)
    S_NOT_PD_W1     # d_i C + lam I is not positive definite (m x m)
    S_EIGH_FAILED   # syev did not converge on W2^T W2
    S_INTERRUPTED   # a signal handler raised (Ctrl-C): the error is set
    S_RUNNING = -1  # loop_head: no reason to stop yet

UNTIED, SYNC, TIED = M_UNTIED, M_SYNC, M_TIED
EXACT_UNTIED, EXACT_SYNC, EXACT_TIED = M_EXACT_UNTIED, M_EXACT_SYNC, M_EXACT_TIED
CONVERGED, MAX_ITER, NONFINITE = S_CONVERGED, S_MAX_ITER, S_NONFINITE
NOT_PD_W2, NOT_PD_W1, EIGH_FAILED = S_NOT_PD_W2, S_NOT_PD_W1, S_EIGH_FAILED
INTERRUPTED = S_INTERRUPTED

# Whether one m x m Cholesky solve of exact_w1 succeeded.
cdef enum FactorStatus:
    FACTOR_OK = 0
    FACTOR_FAILED = 1

# A tolerance that is never met (every stopping rule reads stop <= tol with
# stop >= 0): the loop runs all max_iter iterations.
NEVER_STOP = -1.0

# Signals are checked (with the GIL, a microsecond or so) once CHECK_FLOPS
# flops of work have been done since the last check: 1 to 20 ms at 1 to 20
# Gflop/s, so checking costs well under 1% and Ctrl-C lands within ~50 ms.


# ---------------------------------------------------------------------------
# Small helpers (O(km) or O(k^2 m) work)

cdef double tie_gap(Py_ssize_t m, Py_ssize_t k, const floating* W1,
                    const floating* W2) noexcept nogil:
    """||W1 - W2^T||_F, accumulated in double."""
    cdef Py_ssize_t i, j
    cdef double d, s = 0.0
    for i in range(k):
        for j in range(m):
            d = <double> W1[i * m + j] - <double> W2[j * k + i]
            s += d * d
    return sqrt(s)


cdef inline double rounding(floating x) noexcept nogil:
    """The unit roundoff of x's type."""
    if floating is float:
        return 1.1920928955078125e-07
    return 2.220446049250313e-16


cdef double frobenius(Py_ssize_t n, const floating* x) noexcept nogil:
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(n):
        s += <double> x[i] * <double> x[i]
    return sqrt(s)


cdef double distance(Py_ssize_t n, const floating* x,
                     const floating* y) noexcept nogil:
    """||x - y||_2, accumulated in double."""
    cdef Py_ssize_t i
    cdef double d, s = 0.0
    for i in range(n):
        d = <double> x[i] - <double> y[i]
        s += d * d
    return sqrt(s)


cdef void transpose_into(Py_ssize_t rows, Py_ssize_t cols, const floating* src,
                         floating* dst) noexcept nogil:
    """dst (cols x rows) = src (rows x cols)^T."""
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            dst[j * rows + i] = src[i * cols + j]

cdef struct Reg:
    # lr: k entries of the loop's dtype, the lam of each latent's weight
    # decay (all equal when uniform; all 0 under the product regularizer).
    # lam: the uniform lam, or the product regularizer's.
    const void* lr
    double lam
    bint uniform
    bint product


cdef struct Hist:
    # Per-iteration records, each NULL when not wanted: the stopping
    # quantity and the loss (which needs trace_c = tr C), and the weights
    # (w1: max_iter x k x m, w2: max_iter x m x k, of the loop's dtype).
    double* stop
    double* obj
    void* w1
    void* w2
    double trace_c

# ---------------------------------------------------------------------------
# Products with C, explicit or implicit

cdef struct GramOp:
    # Exactly one of C (m x m) and D is set.  D holds the n samples as rows:
    # row-major (n x m), or column-major, i.e. the paper's X (m x n)
    # row-major.  With mean set, products use the centered data D - 1 mean^T,
    # centered block by block.  Y is workspace (data_workspace entries).
    const void* C
    const void* D
    const double* mean     # float64 whatever the data's dtype
    void* Y
    Py_ssize_t n
    Py_ssize_t m
    bint d_colmajor
    # The loops see scale C (a power of two: exact), which keeps every
    # quantity near 1 whatever the data's magnitude; half = sqrt(scale)
    # scales the samples on the data path.
    double scale
    double half


cdef void times_gram(const GramOp* op, Py_ssize_t k, const floating* W,
                     bint w_is_mk, floating* out, bint out_t) noexcept nogil:
    """out = W' C (k x m), or with out_t its transpose C W'^T (m x k).

    W' is W itself (k x m), or W^T for an (m x k) W when w_is_mk.
    """
    cdef Py_ssize_t n = op.n, m = op.m, i, j, r
    cdef Py_ssize_t ldw = k if w_is_mk else m
    cdef const floating* C = <const floating*> op.C
    cdef const floating* D = <const floating*> op.D
    cdef floating* Y = <floating*> op.Y
    cdef floating sc = <floating> op.scale, hf = <floating> op.half
    if C != NULL:
        if not out_t:
            gemm(trans_if(w_is_mk), NO_TRANS, k, m, m, sc, W, ldw, C, m, 0, out, m)
        else:
            gemm(NO_TRANS, trans_if(not w_is_mk), m, k, m, sc, C, m, W, ldw, 0, out, k)
        return
    if op.mean != NULL:
        centered_times(op, k, W, w_is_mk, out, out_t)
        return
    # Y = half D W'^T (n x k), then out = half Y^T D (k x m) or half D^T Y
    if not op.d_colmajor:
        gemm(NO_TRANS, trans_if(not w_is_mk), n, k, m, hf, D, m, W, ldw, 0, Y, k)
    else:
        gemm(TRANS, trans_if(not w_is_mk), n, k, m, hf, D, n, W, ldw, 0, Y, k)
    if not out_t:
        if not op.d_colmajor:
            gemm(TRANS, NO_TRANS, k, m, n, hf, Y, k, D, m, 0, out, m)
        else:
            gemm(TRANS, TRANS, k, m, n, hf, Y, k, D, n, 0, out, m)
    else:
        if not op.d_colmajor:
            gemm(TRANS, NO_TRANS, m, k, n, hf, D, m, Y, k, 0, out, k)
        else:
            gemm(NO_TRANS, NO_TRANS, m, k, n, hf, D, n, Y, k, 0, out, k)


cdef inline Py_ssize_t centered_block_rows(Py_ssize_t m) noexcept nogil:
    # About 2 MiB of doubles per block: it stays in cache between the two
    # GEMMs that read it.
    return max(DATA_BLOCK_MIN_ROWS,
               min(DATA_BLOCK_MAX_ROWS, DATA_BLOCK_ENTRIES // max(m, 1)))


cdef Py_ssize_t data_workspace(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k,
                               bint centered) noexcept nogil:
    cdef Py_ssize_t rows
    if not centered:
        return n * k
    rows = min(n, centered_block_rows(m))
    return rows * m + rows * k


cdef void centered_times(const GramOp* op, Py_ssize_t k, const floating* W,
                         bint w_is_mk, floating* out,
                         bint out_t) noexcept nogil:
    """times_gram on D - 1 mean^T, centered block by block.

    Forming X v and subtracting mean^T v afterwards cancels catastrophically
    when the mean is large against the spread (an offset of 1e5 over unit
    noise loses every digit of the small eigenvalues).  Each block of rows
    is centered into a small buffer, which both GEMMs then read from cache:
    one pass over D per product.
    """
    cdef Py_ssize_t n = op.n, m = op.m, i, j, r0, rows
    cdef Py_ssize_t R = min(n, centered_block_rows(m))
    cdef Py_ssize_t ldw = k if w_is_mk else m
    cdef const floating* D = <const floating*> op.D
    cdef const double* mu = op.mean
    cdef floating* B = <floating*> op.Y
    cdef floating* Yb = B + R * m
    cdef floating beta = 0
    cdef double hf = op.half
    r0 = 0
    while r0 < n:
        rows = min(R, n - r0)
        if not op.d_colmajor:
            for i in range(rows):
                for j in range(m):
                    B[i * m + j] = <floating> ((D[(r0 + i) * m + j] - mu[j])
                                               * hf)
        else:
            for j in range(m):
                for i in range(rows):
                    B[i * m + j] = <floating> ((D[j * n + r0 + i] - mu[j])
                                               * hf)
        gemm(NO_TRANS, trans_if(not w_is_mk), rows, k, m, 1, B, m, W, ldw, 0, Yb, k)
        if not out_t:
            gemm(TRANS, NO_TRANS, k, m, rows, 1, Yb, k, B, m, beta, out, m)
        else:
            gemm(TRANS, NO_TRANS, m, k, rows, 1, B, m, Yb, k, beta, out, k)
        beta = 1
        r0 += rows


cdef double objective(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                      double trace_c, const floating* W1, const floating* W2,
                      const Reg* rg, floating* ws) noexcept nogil:
    """The loss from C alone: L_sigma = ||X - W2 W1 X||^2 + lam (||W1||^2 +
    ||W2||^2) (per latent: sum_i lam_i (||W1_i:||^2 + ||W2_:i||^2)), or
    L_pi = ||X - W2 W1 X||^2 + lam ||W2 W1||^2 under the product regularizer.

    ||X - W2 W1 X||^2 = tr C - 2 tr(W1 C W2) + tr((W2^T W2)(W1 C W1^T)),
    ||W2 W1||^2 = tr((W2^T W2)(W1 W1^T)).  Workspace: k m + 3 k^2.
    """
    cdef floating* P = ws
    cdef floating* A = P + k * m
    cdef floating* B = A + k * k
    cdef floating* E = B + k * k
    cdef const floating* lr = <const floating*> rg.lr
    cdef Py_ssize_t i, j
    cdef double cross = 0.0, quad = 0.0, reg, row
    times_gram(op, k, W1, False, P, False)
    for i in range(k):
        for j in range(m):
            cross += <double> P[i * m + j] * <double> W2[j * k + i]
    gemm(TRANS, NO_TRANS, k, k, m, 1, W2, k, W2, k, 0, A, k)
    gemm(NO_TRANS, TRANS, k, k, m, 1, P, m, W1, m, 0, B, k)
    for i in range(k * k):
        quad += <double> A[i] * <double> B[i]
    if rg.product:
        gemm(NO_TRANS, TRANS, k, k, m, 1, W1, m, W1, m, 0, E, k)
        reg = 0.0
        for i in range(k * k):
            reg += <double> A[i] * <double> E[i]
        return trace_c - 2.0 * cross + quad + rg.lam * reg
    if rg.uniform:
        reg = frobenius(k * m, W1) ** 2 + frobenius(m * k, W2) ** 2
        return trace_c - 2.0 * cross + quad + rg.lam * reg
    reg = 0.0
    for i in range(k):
        # Row i of W1 and column i of W2 (A's diagonal) carry lam_i.
        row = frobenius(m, W1 + i * m)
        reg += <double> lr[i] * (row * row + <double> A[i * k + i])
    return trace_c - 2.0 * cross + quad + reg


# ---------------------------------------------------------------------------
# Exact half-steps

cdef blas_int exact_w2(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                       const floating* W1, floating* W2, const floating* lr,
                       floating* S) noexcept nogil:
    """W2 = C W1^T (W1 C W1^T + Lambda)^-1, the minimizer given W1
    (Lambda = diag(lr), lam I for a uniform lam).

    Row-major W2 (m x k) is column-major (k x m); filled with C W1^T it holds
    P = W1 C column-major, which is exactly potrs's right-hand side layout, so
    the solve lands in W2 with no transpose.  Workspace S: k^2.
    Returns LAPACK's potrf info (0 on success).
    """
    cdef Py_ssize_t i
    cdef blas_int info
    cdef Py_ssize_t attempt
    cdef floating top = 0, shift = 0
    times_gram(op, k, W1, False, W2, True)
    for attempt in range(2):
        # W1 C W1^T + Lambda; like latent_solve, a factorization that
        # rounding broke is retried once with the diagonal raised by
        # 10 (k + 1) eps max_i (W1 C W1^T)_ii.
        gemm(NO_TRANS, NO_TRANS, k, k, m, 1, W1, m, W2, k, 0, S, k)
        for i in range(k):
            if S[i * k + i] > top:
                top = S[i * k + i]
            S[i * k + i] += lr[i] + shift
        info = potrf(k, S, k)
        if info == 0:
            return potrs_cm(k, m, S, k, W2, k)
        shift = <floating> (10.0 * (k + 1) * rounding(top) * top)
        for i in range(k):
            if lr[i] <= 0:
                shift = 0   # lam = 0: W1 C W1^T may be singular in exact
        if shift <= 0:      # arithmetic, a failure to report
            break
    return info


cdef Py_ssize_t exact_w1_workspace(Py_ssize_t m, Py_ssize_t k,
                                   int n_threads) noexcept nogil:
    return 2 * k * m + k * k + 2 * k + syev_lwork(k) + n_threads * m * m


cdef FactorStatus latent_solve(Py_ssize_t m, const floating* C, floating d,
                               floating lam, floating* M,
                               floating* z) noexcept nogil:
    """z <- z (d C + lam I)^{-1}, with M (m x m) as scratch.

    Returns FACTOR_OK, or FACTOR_FAILED when d C + lam I is not positive
    definite.

    d C + lam I is positive definite in exact arithmetic (C is a Gram
    matrix, lam > 0), but a singular C carries eigenvalues of order
    -m eps ||d C|| from rounding, which a tiny lam does not cover: with
    lam > 0 a failed factorization is retried once with the diagonal
    raised by
    10 (m + 1) eps max_p d C_pp, a change at the rounding level of the
    solution.  A C that is indefinite beyond rounding still fails.
    """
    cdef Py_ssize_t p, attempt
    cdef floating top = 0, shift = 0
    for attempt in range(2):
        for p in range(m * m):
            M[p] = d * C[p]
        for p in range(m):
            if M[p * m + p] > top:
                top = M[p * m + p]
            M[p * m + p] += lam + shift
        if potrf(m, M, m) == 0:
            potrs_cm(m, 1, M, m, z, m)
            return FACTOR_OK
        shift = <floating> (10.0 * (m + 1) * rounding(top) * top)
        if shift <= 0 or lam <= 0:
            break       # lam = 0: d C may be singular in exact arithmetic
    return FACTOR_FAILED


cdef int exact_w1(Py_ssize_t m, Py_ssize_t k, const floating* C,
                  floating* W1, const floating* W2, const floating* lr,
                  bint uniform, floating* ws, int n_threads,
                  Py_ssize_t* which, LoopOut* out,
                  double scale=1.0) noexcept nogil:
    """W1 = minimizer given W2: solves (W2^T W2) W1 C + Lambda W1 = W2^T C.

    The (mk x mk) Kronecker system separates: with W2^T W2 = V D V^T and
    W1 = V Z, row i of Z solves z_i (d_i C + lam I) = (V^T W2^T C)_i, one
    m x m Cholesky solve per latent.  A per-latent Lambda = diag(lr) does
    not commute with V, so it is scaled out first: with
    W1 = Lambda^-1/2 Y the equation reads
    (Lambda^-1/2 W2^T W2 Lambda^-1/2) Y C + Y = Lambda^-1/2 W2^T C, and the
    same separation, on that k x k matrix, gives z_i (d_i C + I) = rhs_i.

    The k solves are independent: with n_threads > 1 they run in parallel,
    each with its own m x m scratch (the caller keeps BLAS serial inside; at
    moderate m one single-threaded potrf per core beats a threaded potrf per
    latent).  Every solve is the same computation whatever the thread
    count.  Returns a status code; `which` gets the first latent whose
    system failed.
    """
    cdef Py_ssize_t i, j
    # Written by thread 0, read by the others (volatile: read each time).
    cdef volatile int stop[1]
    cdef blas_int lwork = syev_lwork(k)
    cdef floating lam = lr[0] if uniform else 1
    cdef floating* Qt = ws
    cdef floating* Vt = Qt + k * m
    cdef floating* d = Vt + k * k
    # k floating slots of the workspace hold the k latents' FactorStatus
    # (an int is no larger than a float).
    cdef FactorStatus* failed = <FactorStatus*> (d + k)
    cdef floating* work = d + 2 * k
    cdef floating* M = work + lwork     # n_threads scratch matrices
    cdef floating* Z = M + n_threads * m * m
    cdef floating sc = <floating> scale                      # C is scale C
    gemm(TRANS, NO_TRANS, k, m, m, sc, W2, k, C, m, 0, Qt, m)    # W2^T C
    gemm(TRANS, NO_TRANS, k, k, m, 1, W2, k, W2, k, 0, Vt, k)    # W2^T W2
    if not uniform:
        for i in range(k):
            for j in range(k):
                Vt[i * k + j] /= sqrt(lr[i]) * sqrt(lr[j])
            for j in range(m):
                Qt[i * m + j] /= sqrt(lr[i])
    if syev(k, Vt, k, d, work, lwork) != 0:
        return S_EIGH_FAILED
    gemm(NO_TRANS, NO_TRANS, k, m, k, 1, Vt, k, Qt, m, 0, Z, m)    # V^T W2^T C
    # Signals are checked between solves: one m x m Cholesky is m^3 / 3
    # flops.  In parallel, all k solves are one region (latents dealt round
    # robin), thread 0 checks for the team and raises stop, and the others
    # skip what is left.  A region per round of n_threads solves woke the
    # team k / n_threads times a call, and each wake waits for a core while
    # another pool's BLAS workers spin: 4-6 ms a call instead of 1 at m = 200,
    # k = 10 on 2 cores (benchmarks/bench_contention.py).
    if n_threads > 1:
        stop[0] = 0
        for i in prange(k, num_threads=n_threads, schedule="static",
                        chunksize=1):
            if stop[0] == 0:
                failed[i] = latent_solve(m, C, d[i] * sc, lam,
                                         M + threadid() * m * m, Z + i * m)
                if threadid() == 0 and interrupted(
                        out, n_threads * <double> m * m * m / 3.0):
                    stop[0] = 1
        if out != NULL and out.interrupted:
            return S_INTERRUPTED
    else:
        for i in range(k):
            failed[i] = latent_solve(m, C, d[i] * sc, lam, M, Z + i * m)
            if interrupted(out, <double> m * m * m / 3.0):
                return S_INTERRUPTED
    for i in range(k):
        if failed[i] != FACTOR_OK:
            which[0] = i
            return S_NOT_PD_W1
    gemm(TRANS, NO_TRANS, k, m, k, 1, Vt, k, Z, m, 0, W1, m)     # W1 = V Z
    if not uniform:
        for i in range(k):
            for j in range(m):
                W1[i * m + j] /= sqrt(lr[i])
    return S_CONVERGED


# ---------------------------------------------------------------------------
# The six loops.  Each returns a status code and writes n_iter and the last
# stopping quantity; with history, record t holds the stopping quantity and
# the loss (and, when asked, the weights) of the iterate that quantity was
# measured on.

cdef struct LoopOut:
    Py_ssize_t n_iter
    double stop
    Py_ssize_t which
    double iter_work    # flops of one iteration (for the signal checks)
    double work         # flops since the last check
    bint interrupted


cdef bint interrupted(LoopOut* out, double work) noexcept nogil:
    """Count `work` flops; past CHECK_FLOPS, run Python's signal handlers.

    True once a handler raised (KeyboardInterrupt): the exception is left
    set for run() to raise, and the loop stops where it is.
    """
    if out == NULL:
        return False
    out.work += work
    if out.work < CHECK_FLOPS:
        return out.interrupted
    out.work = 0.0
    with gil:
        if PyErr_CheckSignals() != 0:
            out.interrupted = True
    return out.interrupted


cdef inline void record(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                        const Hist* h, const floating* W1, const floating* W2,
                        const Reg* rg, floating* obj_ws, Py_ssize_t t,
                        double stop) noexcept nogil:
    if h.stop != NULL:
        h.stop[t] = stop
        h.obj[t] = objective(op, m, k, h.trace_c, W1, W2, rg, obj_ws)
    if h.w1 != NULL:
        memcpy(<floating*> h.w1 + t * k * m, W1, k * m * sizeof(floating))
        memcpy(<floating*> h.w2 + t * k * m, W2, k * m * sizeof(floating))


cdef inline bint end_iteration(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                               const Hist* h, const floating* W1,
                               const floating* W2, const Reg* rg,
                               floating* obj_ws, Py_ssize_t* it,
                               double stop) noexcept nogil:
    """The end of every loop's iteration: record iterate it (with history),
    count it, and say whether the stopping quantity stopped being finite
    (the loop then stops with S_NONFINITE)."""
    record(op, m, k, h, W1, W2, rg, obj_ws, it[0], stop)
    it[0] += 1
    return not isfinite(stop)


cdef inline int loop_head(LoopOut* out, Py_ssize_t it, double stop,
                          double tol, Py_ssize_t max_iter) noexcept nogil:
    """The start of every loop's iteration: S_RUNNING, or why it stops.
    The stopping rule is tested only after a first step: a start that
    already meets it (a tied init) is still improved, never returned as
    is."""
    if it > 0 and stop <= tol:
        return S_CONVERGED
    if it >= max_iter:
        return S_MAX_ITER
    if interrupted(out, out.iter_work):
        return S_INTERRUPTED
    return S_RUNNING


cdef inline int loop_exit(LoopOut* out, Py_ssize_t it, double stop,
                          int status) noexcept nogil:
    """A loop's last lines: its iteration count and last stopping quantity
    into out; returns the status."""
    out.n_iter = it
    out.stop = stop
    return status


cdef int untied_loop(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                     floating* W1, floating* W2, const Reg* rg,
                     floating alpha, double tol, Py_ssize_t max_iter,
                     floating* ws, const Hist* h,
                     LoopOut* out) noexcept nogil:
    """Untied GD, Gauss-Seidel order: W1 first, then W2 from the new W1.

    It stops when ||W1 - W2^T|| <= tol: L_sigma's critical points are tied.
    L_pi's are not (its minima fix only W2 W1), so with the product
    regularizer it stops on the step instead, ||dW1|| + ||dW2|| <= tol,
    sync's rule.
    """
    cdef const floating* lr = <const floating*> rg.lr
    cdef floating lam_pi = <floating> rg.lam
    cdef floating* P = ws              # W1 C, carried from one step to the next
    cdef floating* Qt = P + k * m      # W2^T C
    cdef floating* A = Qt + k * m      # W2^T W2
    cdef floating* B = A + k * k       # W1 C W1^T (+ lam W1 W1^T: product)
    cdef floating* T = B + k * k       # W2 B
    cdef floating* shrink = T + m * k  # 1 - alpha lam_i, per latent
    cdef floating* prev = shrink + k   # W1 and W2 before the step (product)
    cdef floating* obj_ws = prev + 2 * k * m
    cdef Py_ssize_t i, j, it = 0
    cdef double stop = INFINITY if rg.product else tie_gap(m, k, W1, W2)
    cdef int status
    for i in range(k):
        shrink[i] = 1 - alpha * lr[i]
    times_gram(op, k, W1, False, P, False)
    while True:
        status = loop_head(out, it, stop, tol, max_iter)
        if status != S_RUNNING:
            break
        # W1 -= alpha ((W2^T W2) W1 C - W2^T C + Lambda W1); the product
        # regularizer's lam (W2^T W2) W1 joins the first term: P += lam W1.
        times_gram(op, k, W2, True, Qt, False)
        gemm(TRANS, NO_TRANS, k, k, m, 1, W2, k, W2, k, 0, A, k)
        if rg.product:
            memcpy(prev, W1, k * m * sizeof(floating))
            memcpy(prev + k * m, W2, k * m * sizeof(floating))
            for i in range(k * m):
                P[i] += lam_pi * W1[i]
        for i in range(k):
            for j in range(m):
                W1[i * m + j] = (shrink[i] * W1[i * m + j]
                                 + alpha * Qt[i * m + j])
        gemm(NO_TRANS, NO_TRANS, k, m, k, -alpha, A, k, P, m, 1, W1, m)
        # W2 -= alpha (W2 (W1 C W1^T) - (W1 C)^T + W2 Lambda), with the new
        # W1; the product's lam W2 (W1 W1^T) joins B.
        times_gram(op, k, W1, False, P, False)
        gemm(NO_TRANS, TRANS, k, k, m, 1, P, m, W1, m, 0, B, k)
        if rg.product:
            gemm(NO_TRANS, TRANS, k, k, m, lam_pi, W1, m, W1, m, 1, B, k)
        gemm(NO_TRANS, NO_TRANS, m, k, k, 1, W2, k, B, k, 0, T, k)
        for j in range(m):
            for i in range(k):
                W2[j * k + i] = (shrink[i] * W2[j * k + i]
                                 + alpha * (P[i * m + j] - T[j * k + i]))
        if rg.product:
            stop = (distance(k * m, W1, prev)
                    + distance(k * m, W2, prev + k * m))
        else:
            stop = tie_gap(m, k, W1, W2)
        if end_iteration(op, m, k, h, W1, W2, rg, obj_ws, &it, stop):
            status = S_NONFINITE
            break
    return loop_exit(out, it, stop, status)


cdef int sync_loop(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                   floating* W1, floating* W2, const Reg* rg, floating alpha,
                   double tol, Py_ssize_t max_iter, floating* ws,
                   const Hist* h, LoopOut* out) noexcept nogil:
    """Sync GD: both gradients from the old, tied weights; then re-tie."""
    cdef const floating* lr = <const floating*> rg.lr
    cdef floating lam_pi = <floating> rg.lam
    cdef floating* P = ws              # W1 C == W2^T C while tied
    cdef floating* G1 = P + k * m
    cdef floating* G2 = G1 + k * m
    cdef floating* A = G2 + m * k      # W1 W1^T == W2^T W2
    cdef floating* B = A + k * k       # W1 C W1^T
    cdef floating* obj_ws = B + k * k
    cdef Py_ssize_t i, j, it = 0
    cdef double stop = INFINITY
    cdef floating w
    cdef int status
    transpose_into(m, k, W2, W1)
    while True:
        status = loop_head(out, it, stop, tol, max_iter)
        if status != S_RUNNING:
            break
        times_gram(op, k, W1, False, P, False)
        gemm(NO_TRANS, TRANS, k, k, m, 1, W1, m, W1, m, 0, A, k)
        gemm(NO_TRANS, TRANS, k, k, m, 1, P, m, W1, m, 0, B, k)
        # G1 = A P - P + Lambda W1 ; G2 = W2 B - P^T + W2 Lambda; the
        # product adds lam A W1 to G1 and lam W2 A to G2 (A = W1 W1^T).
        for i in range(k):
            for j in range(m):
                G1[i * m + j] = lr[i] * W1[i * m + j] - P[i * m + j]
        gemm(NO_TRANS, NO_TRANS, k, m, k, 1, A, k, P, m, 1, G1, m)
        if rg.product:
            gemm(NO_TRANS, NO_TRANS, k, m, k, lam_pi, A, k, W1, m, 1, G1, m)
            for i in range(k * k):
                B[i] += lam_pi * A[i]
        for j in range(m):
            for i in range(k):
                G2[j * k + i] = lr[i] * W2[j * k + i] - P[i * m + j]
        gemm(NO_TRANS, NO_TRANS, m, k, k, 1, W2, k, B, k, 1, G2, k)
        stop = alpha * frobenius(k * m, G1) + alpha * frobenius(m * k, G2)
        for i in range(k):
            for j in range(m):
                w = ((W1[i * m + j] - alpha * G1[i * m + j])
                     + (W2[j * k + i] - alpha * G2[j * k + i])) / 2
                W1[i * m + j] = w
                W2[j * k + i] = w
        if end_iteration(op, m, k, h, W1, W2, rg, obj_ws, &it, stop):
            status = S_NONFINITE
            break
    return loop_exit(out, it, stop, status)


cdef int tied_loop(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                   floating* W1, floating* W2, const Reg* rg, floating alpha,
                   double tol, Py_ssize_t max_iter, floating* ws,
                   const Hist* h, LoopOut* out) noexcept nogil:
    """Tied GD (regularized Oja): U = alpha ((W2 W2^T - I) C W2 + W2 Lambda),
    or with the product regularizer U = alpha ((W2 W2^T - I) C W2 +
    lam W2 (W2^T W2))."""
    cdef const floating* lr = <const floating*> rg.lr
    cdef floating lam_pi = <floating> rg.lam
    cdef floating* Q = ws              # C W2
    cdef floating* B = Q + m * k       # W2^T C W2 (+ lam W2^T W2: product)
    cdef floating* T = B + k * k       # W2 B
    cdef floating* obj_ws = T + m * k
    cdef Py_ssize_t i, j, it = 0
    cdef double s, stop = INFINITY
    cdef floating u
    cdef int status
    while True:
        status = loop_head(out, it, stop, tol, max_iter)
        if status != S_RUNNING:
            break
        times_gram(op, k, W2, True, Q, True)
        gemm(TRANS, NO_TRANS, k, k, m, 1, W2, k, Q, k, 0, B, k)
        if rg.product:
            gemm(TRANS, NO_TRANS, k, k, m, lam_pi, W2, k, W2, k, 1, B, k)
        gemm(NO_TRANS, NO_TRANS, m, k, k, 1, W2, k, B, k, 0, T, k)
        s = 0.0
        for j in range(m):
            for i in range(k):
                u = alpha * (T[j * k + i] - Q[j * k + i]
                             + lr[i] * W2[j * k + i])
                W2[j * k + i] -= u
                s += <double> u * <double> u
        stop = 2.0 * sqrt(s)
        if h.stop != NULL or h.w1 != NULL:
            transpose_into(m, k, W2, W1)      # for the record
        if end_iteration(op, m, k, h, W1, W2, rg, obj_ws, &it, stop):
            status = S_NONFINITE
            break
    transpose_into(m, k, W2, W1)
    return loop_exit(out, it, stop, status)


cdef int exact_untied_loop(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                           floating* W1, floating* W2, const Reg* rg,
                           double tol, Py_ssize_t max_iter, floating* ws,
                           const Hist* h, int n_threads,
                           LoopOut* out) noexcept nogil:
    """Alternate the exact W1 (Sylvester) and exact W2 (k x k) minimizers."""
    cdef const floating* lr = <const floating*> rg.lr
    cdef floating* S = ws
    cdef floating* w1_ws = S + k * k
    cdef floating* obj_ws = w1_ws + exact_w1_workspace(m, k, n_threads)
    cdef Py_ssize_t it = 0
    cdef double stop = tie_gap(m, k, W1, W2)
    cdef int status
    while True:
        status = loop_head(out, it, stop, tol, max_iter)
        if status != S_RUNNING:
            break
        status = exact_w1(m, k, <const floating*> op.C, W1, W2, lr,
                          rg.uniform, w1_ws, n_threads, &out.which, out,
                          op.scale)
        if status != S_CONVERGED:
            break
        if exact_w2(op, m, k, W1, W2, lr, S) != 0:
            status = S_NOT_PD_W2
            break
        stop = tie_gap(m, k, W1, W2)
        if end_iteration(op, m, k, h, W1, W2, rg, obj_ws, &it, stop):
            status = S_NONFINITE
            break
    return loop_exit(out, it, stop, status)


cdef int exact_sync_loop(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                         floating* W1, floating* W2, const Reg* rg,
                         double tol, Py_ssize_t max_iter, floating* ws,
                         const Hist* h, LoopOut* out) noexcept nogil:
    """Exact sync: W1 = (W2^T C W2 + Lambda)^-1 W2^T C, W2 exact, average."""
    cdef const floating* lr = <const floating*> rg.lr
    cdef floating* S = ws
    cdef floating* W1_prev = S + k * k
    cdef floating* T = W1_prev + k * m
    cdef floating* obj_ws = T + m * k
    cdef Py_ssize_t i, j, it = 0
    cdef double d, stop = INFINITY
    cdef floating w
    cdef int status
    transpose_into(m, k, W2, W1)
    while True:
        status = loop_head(out, it, stop, tol, max_iter)
        if status != S_RUNNING:
            break
        memcpy(W1_prev, W1, k * m * sizeof(floating))
        # While tied (W1 == W2^T), (W2^T C W2 + Lambda)^-1 W2^T C is the
        # transpose of the exact W2 given W1 (Lambda is diagonal).
        if exact_w2(op, m, k, W1, T, lr, S) != 0:
            status = S_NOT_PD_W2
            break
        transpose_into(m, k, T, W1)
        if exact_w2(op, m, k, W1, W2, lr, S) != 0:
            status = S_NOT_PD_W2
            break
        stop = 0.0
        for i in range(k):
            for j in range(m):
                w = (W1[i * m + j] + W2[j * k + i]) / 2
                W1[i * m + j] = w
                W2[j * k + i] = w
                d = <double> w - <double> W1_prev[i * m + j]
                stop += d * d
        stop = sqrt(stop)
        if end_iteration(op, m, k, h, W1, W2, rg, obj_ws, &it, stop):
            status = S_NONFINITE
            break
    return loop_exit(out, it, stop, status)


cdef int exact_tied_loop(const GramOp* op, Py_ssize_t m, Py_ssize_t k,
                         floating* W1, floating* W2, const Reg* rg,
                         double tol, Py_ssize_t max_iter, floating* ws,
                         const Hist* h, LoopOut* out) noexcept nogil:
    """Exact tied: W2 = exact given W1, test ||W1 - W2^T||, then W1 = W2^T."""
    cdef const floating* lr = <const floating*> rg.lr
    cdef floating* S = ws
    cdef floating* obj_ws = S + k * k
    cdef Py_ssize_t it = 0
    cdef double stop = INFINITY
    cdef int status
    while True:
        # stop > tol here: the loop ends below once it reaches tol.
        status = loop_head(out, it, stop, tol, max_iter)
        if status != S_RUNNING:
            break
        if exact_w2(op, m, k, W1, W2, lr, S) != 0:
            status = S_NOT_PD_W2
            break
        stop = tie_gap(m, k, W1, W2)
        if stop > tol:
            transpose_into(m, k, W2, W1)
        # Recorded on the iterate as it is left, copy included, so the last
        # record always describes the weights returned.
        if end_iteration(op, m, k, h, W1, W2, rg, obj_ws, &it, stop):
            status = S_NONFINITE
            break
        if stop <= tol:
            status = S_CONVERGED
            break
    return loop_exit(out, it, stop, status)


# ---------------------------------------------------------------------------
# Python entry points

cdef GramOp make_op(const floating[:, ::1] C, const floating[:, ::1] data,
                    bint data_colmajor, const double[::1] mean,
                    floating[::1] Y, double scale=1.0):
    cdef GramOp op
    op.scale = scale
    op.half = sqrt(scale)
    op.C = NULL
    op.D = NULL
    op.mean = NULL
    op.Y = NULL
    op.d_colmajor = data_colmajor
    if C is not None:
        op.C = &C[0, 0]
        op.m = C.shape[0]
        op.n = 0
    else:
        op.D = &data[0, 0]
        op.n = data.shape[1] if data_colmajor else data.shape[0]
        op.m = data.shape[0] if data_colmajor else data.shape[1]
        op.Y = &Y[0]
        if mean is not None:
            op.mean = &mean[0]
    return op


def _data_workspace(dtype, data, data_colmajor, k, centered):
    if data is None:
        return None
    n = data.shape[1] if data_colmajor else data.shape[0]
    m = data.shape[0] if data_colmajor else data.shape[1]
    return np.empty(max(1, data_workspace(n, m, k, centered)), dtype=dtype)


def _per_latent(lam, lam_vec, k, dtype, product):
    """The k per-latent weight-decay lams a loop reads (see Reg)."""
    if product:
        return np.zeros(k, dtype=dtype)
    if lam_vec is None:
        return np.full(k, lam, dtype=dtype)
    lr = np.ascontiguousarray(lam_vec, dtype=dtype)
    if lr.shape != (k,):
        raise ValueError(f"lam_vec must have k = {k} entries")
    return lr


cdef Reg make_reg(double lam, const floating[::1] lr, object lam_vec,
                  bint product):
    cdef Reg rg
    rg.lr = &lr[0]
    # The uniform lam as the loops' dtype sees it, so the recorded loss
    # uses the same lam as the steps.
    rg.lam = <double> (<floating> lam)
    rg.uniform = lam_vec is None or product
    rg.product = product
    return rg


def run(int method, floating[:, ::1] W1, floating[:, ::1] W2,
        const floating[:, ::1] C, double lam, double alpha, double tol,
        Py_ssize_t max_iter, double[::1] hist_stop=None,
        double[::1] hist_obj=None, const floating[:, ::1] data=None,
        bint data_colmajor=False, const double[::1] mean=None,
        double trace_c=0.0, int n_threads=1, lam_vec=None,
        bint product=False, floating[::1] hist_w1=None,
        floating[::1] hist_w2=None, double scale=1.0):
    """Run one solver loop in place on W1 (k, m) and W2 (m, k).

    The problem is the Gram matrix C, or (C None) the samples `data`: an
    (n, m) array, or with data_colmajor the paper's X as an (m, n) array,
    centered on the fly by `mean` when given.  Shapes, dtypes and values are
    validated by the caller (laefast._api).  Returns (n_iter, status, last
    stopping quantity, failing latent index).  With hist_stop/hist_obj
    (length >= max_iter), record t holds the stopping quantity and the loss
    (which needs trace_c = tr C) after iteration t; with hist_w1/hist_w2
    (length >= max_iter k m), the weights after iteration t.  scale: the
    loop runs on scale C (a power of two with an even exponent, so that
    both it and its square root scale exactly); lam, alpha and trace_c
    are the scaled problem's, i.e. lam scale, alpha / scale and
    scale tr C.  n_threads: the
    threads exact-untied's W1 step may use (exact_w1_threads decides how
    many it does use; the caller keeps BLAS serial when that is > 1).

    The penalty: lam (uniform sum regularizer); or lam_vec, k positive
    per-latent lams (then lam is ignored); or with product=True the
    product regularizer lam ||W2 W1||^2 (gradient methods only).
    """
    cdef Py_ssize_t k = W1.shape[0], m = W1.shape[1]
    cdef int status
    cdef LoopOut out
    cdef Hist h
    cdef floating falpha = <floating> alpha
    dtype = np.float32 if floating is float else np.float64
    if C is None and method == M_EXACT_UNTIED:
        raise ValueError("exact-untied needs the Gram matrix")
    if product and method not in (M_UNTIED, M_SYNC, M_TIED):
        raise ValueError("the product regularizer needs a gradient method")
    cdef floating[::1] lr = _per_latent(lam, lam_vec, k, dtype, product)
    cdef Reg rg = make_reg(lam, lr, lam_vec, product)
    cdef floating[::1] Y = _data_workspace(dtype, data, data_colmajor, k,
                                           mean is not None)
    cdef GramOp op = make_op(C, data, data_colmajor, mean, Y, scale)
    # Enough for every loop: the largest (untied) needs 6 km + 2 k^2 + k
    # plus the objective's k m + 3 k^2; exact-untied adds the Sylvester
    # solve's.
    cdef Py_ssize_t n_ws = 7 * k * m + 5 * k * k + k + 1
    if method == M_EXACT_UNTIED:
        n_threads = exact_w1_threads(m, k, n_threads)
        n_ws += exact_w1_workspace(m, k, n_threads)
    cdef floating[::1] ws = np.empty(n_ws, dtype=dtype)

    out.n_iter = 0
    out.stop = INFINITY
    out.which = -1
    out.work = 0.0
    out.interrupted = False
    out.iter_work = iteration_flops(method, &op, m, k,
                                    hist_stop is not None)
    h.stop = h.obj = NULL
    h.w1 = h.w2 = NULL
    h.trace_c = trace_c
    if hist_stop is not None:
        if hist_stop.shape[0] < max_iter or hist_obj is None \
                or hist_obj.shape[0] < max_iter:
            raise ValueError("history buffers shorter than max_iter")
        h.stop = &hist_stop[0] if max_iter > 0 else NULL
        h.obj = &hist_obj[0] if max_iter > 0 else NULL
    if hist_w1 is not None:
        if hist_w1.shape[0] < max_iter * k * m or hist_w2 is None \
                or hist_w2.shape[0] < max_iter * k * m:
            raise ValueError("weight history buffers shorter than "
                             "max_iter k m")
        if max_iter > 0:
            h.w1 = &hist_w1[0]
            h.w2 = &hist_w2[0]

    with nogil:
        if method == M_UNTIED:
            status = untied_loop(&op, m, k, &W1[0, 0], &W2[0, 0], &rg,
                                 falpha, tol, max_iter, &ws[0], &h, &out)
        elif method == M_SYNC:
            status = sync_loop(&op, m, k, &W1[0, 0], &W2[0, 0], &rg,
                               falpha, tol, max_iter, &ws[0], &h, &out)
        elif method == M_TIED:
            status = tied_loop(&op, m, k, &W1[0, 0], &W2[0, 0], &rg,
                               falpha, tol, max_iter, &ws[0], &h, &out)
        elif method == M_EXACT_UNTIED:
            status = exact_untied_loop(&op, m, k, &W1[0, 0], &W2[0, 0],
                                       &rg, tol, max_iter, &ws[0], &h,
                                       n_threads, &out)
        elif method == M_EXACT_SYNC:
            status = exact_sync_loop(&op, m, k, &W1[0, 0], &W2[0, 0],
                                     &rg, tol, max_iter, &ws[0], &h, &out)
        elif method == M_EXACT_TIED:
            status = exact_tied_loop(&op, m, k, &W1[0, 0], &W2[0, 0],
                                     &rg, tol, max_iter, &ws[0], &h, &out)
        else:
            status = -1
    if status == S_INTERRUPTED:
        raise_pending()
    if status == -1:
        raise ValueError(f"unknown method code {method}")
    return out.n_iter, status, out.stop, out.which


cdef int raise_pending() except -1:
    # The exception a signal handler set in interrupted() is still pending:
    # returning the error value makes Cython raise it.
    return -1


cdef double iteration_flops(int method, const GramOp* op, Py_ssize_t m,
                            Py_ssize_t k, bint history) noexcept nogil:
    """About the flops of one iteration, for the signal checks' pacing."""
    cdef double product = (2.0 * k * m * m if op.C != NULL
                           else 4.0 * op.n * m * k)
    cdef double products = 2.0 if method in (M_UNTIED, M_EXACT_SYNC) else 1.0
    if history:
        products += 1.0
    return products * product + 8.0 * k * k * m + 1.0


def exact_w1_threads(Py_ssize_t m, Py_ssize_t k, int n_threads):
    """The threads the exact W1 step uses: one per latent solve at most,
    and 1 when the k Cholesky factorizations (k m^3 / 3 flops) are small."""
    return threads_for(k, n_threads, k * <double> m * m * m / 3)


def exact_w1_given_w2(floating[:, ::1] W1, const floating[:, ::1] W2,
                      const floating[:, ::1] C, double lam, int n_threads=1,
                      lam_vec=None):
    """Write the exact minimizer W1 given W2 into W1; returns (status, which).

    n_threads as in run(): the caller keeps BLAS serial when
    exact_w1_threads(m, k, n_threads) > 1.  lam_vec: k per-latent lams
    (then lam is ignored).
    """
    cdef Py_ssize_t m = C.shape[0], k = W2.shape[1]
    cdef Py_ssize_t which = -1
    cdef int status
    cdef LoopOut out
    cdef bint uniform = lam_vec is None
    n_threads = exact_w1_threads(m, k, n_threads)
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] lr = _per_latent(lam, lam_vec, k, dtype, False)
    cdef floating[::1] ws = np.empty(exact_w1_workspace(m, k, n_threads),
                                     dtype=dtype)
    with nogil:
        out.work = 0.0
        out.interrupted = False
        status = exact_w1(m, k, &C[0, 0], &W1[0, 0], &W2[0, 0], &lr[0],
                          uniform, &ws[0], n_threads, &which, &out)
    if status == S_INTERRUPTED:
        raise_pending()
    return status, which


def exact_w2_given_w1(floating[:, ::1] W2, const floating[:, ::1] W1,
                      const floating[:, ::1] C, double lam, lam_vec=None):
    """Write the exact minimizer W2 given W1 into W2; returns potrf's info.

    lam_vec: k per-latent lams (then lam is ignored)."""
    cdef Py_ssize_t m = C.shape[0], k = W1.shape[0]
    cdef blas_int info
    cdef GramOp op
    op.C = &C[0, 0]
    op.D = op.mean = op.Y = NULL
    op.d_colmajor = False
    op.scale = op.half = 1.0
    op.m = m
    op.n = 0
    dtype = np.float32 if floating is float else np.float64
    cdef floating[::1] lr = _per_latent(lam, lam_vec, k, dtype, False)
    cdef floating[::1] S = np.empty(k * k, dtype=dtype)
    with nogil:
        info = exact_w2(&op, m, k, &W1[0, 0], &W2[0, 0], &lr[0], &S[0])
    return info
