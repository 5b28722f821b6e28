"""Kernels that read raw samples: Gram accumulation and centered products.

(Minibatch SGD is in laefast._sgd.)

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

from laefast._blas cimport NO_TRANS, TRANS, gemm, syrk_at_a, mirror_upper

from laefast._constants cimport (
    CENTERED_BLOCK_ENTRIES, CENTERED_BLOCK_MAX_ROWS, CENTERED_BLOCK_MIN_ROWS,
    CHECK_FLOPS, GRAM_BLOCK_BYTES, GRAM_BLOCK_MAX_ROWS, GRAM_BLOCK_MIN_ROWS,
    COLUMNS_PER_Q_COLUMN, GRAM_AVX2_MAX_M, GRAM_MIN_ROWS, GRAM_SIMD_MAX_M,
    GRAM_TILES_MIN_ROWS, PARTIAL_SLACK, PRODUCT_MIN_ROWS,
    PRODUCT_THREAD_MIN_FLOPS,
)
from laefast._threads cimport threads_for_work

cdef extern from "laefast/_simd_product.h" nogil:
    int laefast_cpu_has_avx2_fma()
    int laefast_cpu_has_avx512()
    Py_ssize_t laefast_product_width(Py_ssize_t r)
    double laefast_product_block_f64(
        const double* X, Py_ssize_t ldx, Py_ssize_t rows, Py_ssize_t ahead,
        Py_ssize_t m, const double* mean, const double* Qt, Py_ssize_t r,
        double* Pt, int want_sq)
    double laefast_product_block_f32(
        const float* X, Py_ssize_t ldx, Py_ssize_t rows, Py_ssize_t ahead,
        Py_ssize_t m, const double* mean, const double* Qt, Py_ssize_t r,
        double* Pt, int want_sq)
    double laefast_product_block_512_f64(
        const double* X, Py_ssize_t ldx, Py_ssize_t rows, Py_ssize_t ahead,
        Py_ssize_t m, const double* mean, const double* Qt, Py_ssize_t r,
        double* Pt, int want_sq)
    double laefast_product_block_512_f32(
        const float* X, Py_ssize_t ldx, Py_ssize_t rows, Py_ssize_t ahead,
        Py_ssize_t m, const double* mean, const double* Qt, Py_ssize_t r,
        double* Pt, int want_sq)
    double laefast_columns_y_f64(
        const double* X, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
        Py_ssize_t n, const double* mean, const double* Q, Py_ssize_t r,
        double* Y, int want_sq)
    double laefast_columns_y_f32(
        const float* X, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
        Py_ssize_t n, const double* mean, const double* Q, Py_ssize_t r,
        double* Y, int want_sq)
    void laefast_columns_p_f64(
        const double* X, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
        Py_ssize_t n, const double* mean, const double* Y, Py_ssize_t r,
        double* out)
    void laefast_columns_p_f32(
        const float* X, Py_ssize_t ldc, Py_ssize_t j0, Py_ssize_t j1,
        Py_ssize_t n, const double* mean, const double* Y, Py_ssize_t r,
        double* out)

cdef extern from "laefast/_simd_gram.h" nogil:
    void laefast_gram_upper_512(Py_ssize_t rows, Py_ssize_t m, const double* B,
                                double* P, int first)
    void laefast_gram_upper_512_f32(Py_ssize_t rows, Py_ssize_t m,
                                    const float* B, double* P, int first)
    void laefast_gram_upper_avx2(Py_ssize_t rows, Py_ssize_t m,
                                 const double* B, double* P, int first)
    void laefast_gram_upper_avx2_f32(Py_ssize_t rows, Py_ssize_t m,
                                     const float* B, double* P, int first)

cdef extern from "laefast/_simd_center.h" nogil:
    void laefast_center_rows_f32(
        const float* X, Py_ssize_t ldx, Py_ssize_t rows, Py_ssize_t m,
        const double* shift, float* buf, double* s)

# The AVX2 kernels (centered_product's, and the Gram pass's centering of
# float32 rows), when the CPU has AVX2 and FMA.
cdef bint SIMD_PRODUCT = laefast_cpu_has_avx2_fma() != 0
# Its AVX-512 version for 1 or 2 columns, when the CPU has AVX-512F.
cdef bint SIMD512_PRODUCT = laefast_cpu_has_avx512() != 0
# The Gram pass's block update for narrow blocks: GRAM_AVX512 (at most
# GRAM_SIMD_MAX_M features) where the CPU has AVX-512F, GRAM_AVX2 (at most
# GRAM_AVX2_MAX_M) where it has AVX2 and FMA only, else syrk.
cdef enum:
    GRAM_SYRK, GRAM_AVX2, GRAM_AVX512
GRAM_KERNELS = ("syrk", "avx2", "avx512")


cdef int best_gram_kernel() noexcept nogil:
    if laefast_cpu_has_avx512():
        return GRAM_AVX512
    if laefast_cpu_has_avx2_fma():
        return GRAM_AVX2
    return GRAM_SYRK


cdef int GRAM_KERNEL = best_gram_kernel()


def simd(enabled=None):
    """Whether centered_product and the Gram pass's centering take their
    AVX2 code on row-contiguous X; enabled=False forces the portable paths
    (BLAS for the product), True restores the AVX2 code where the CPU has
    it (tests compare the two), as laefast._alignment.simd does."""
    global SIMD_PRODUCT
    if enabled is not None:
        SIMD_PRODUCT = bool(enabled) and laefast_cpu_has_avx2_fma() != 0
    return bool(SIMD_PRODUCT)


def simd512(enabled=None):
    """Whether centered_product's SIMD code takes its AVX-512 kernel for
    1 or 2 columns (where the CPU has AVX-512F; the AVX2 kernel otherwise);
    enabled as in simd."""
    global SIMD512_PRODUCT
    if enabled is not None:
        SIMD512_PRODUCT = bool(enabled) and laefast_cpu_has_avx512() != 0
    return bool(SIMD512_PRODUCT)


def gram_kernel(name=None):
    """The Gram pass's block update for narrow blocks (_simd_gram.h):
    "avx512" (at most GRAM_SIMD_MAX_M features), "avx2" (at most
    GRAM_AVX2_MAX_M) or "syrk" (BLAS).  The default is the best this CPU
    runs; a name sets it (tests and benchmarks compare them), ValueError
    if the CPU lacks it.  Returns the current one."""
    global GRAM_KERNEL
    if name is not None:
        if name not in GRAM_KERNELS:
            raise ValueError(f"gram_kernel: one of {GRAM_KERNELS}, got "
                             f"{name!r}")
        code = GRAM_KERNELS.index(name)
        if code > best_gram_kernel():
            raise ValueError(f"gram_kernel: this CPU cannot run {name!r}")
        GRAM_KERNEL = code
    return GRAM_KERNELS[GRAM_KERNEL]


cdef inline bint simd_rows(Py_ssize_t row_stride, Py_ssize_t column_stride,
                           Py_ssize_t itemsize) noexcept nogil:
    """Whether centered_product and the Gram pass's centering take their
    AVX2 code for these strides (in bytes): rows of unit stride, whole
    items apart."""
    return (SIMD_PRODUCT and column_stride == itemsize
            and row_stride % itemsize == 0)


cdef inline bint simd_columns(Py_ssize_t row_stride,
                              Py_ssize_t column_stride, Py_ssize_t itemsize,
                              Py_ssize_t m, Py_ssize_t r) noexcept nogil:
    """Whether centered_product takes its AVX2 code for column-major X
    (columns of unit stride, whole items apart) and Q of r columns: X at
    least COLUMNS_PER_Q_COLUMN columns wide per column of Q."""
    return (SIMD_PRODUCT and row_stride == itemsize
            and column_stride % itemsize == 0
            and m >= COLUMNS_PER_Q_COLUMN * r)


cdef inline int column_threads(int nt, Py_ssize_t m,
                               Py_ssize_t r) noexcept nogil:
    """Threads of the column kernel: at most one per COLUMNS_PER_Q_COLUMN
    r columns of X (each holds an n x r partial)."""
    return <int> max(1, min(<Py_ssize_t> nt,
                            m // max(COLUMNS_PER_Q_COLUMN * r, 1)))


def centered_product_cost_grows(X, Py_ssize_t r=2):
    """True when centered_product on X with a Q of r columns (the samples
    path's 2 by default) takes its SIMD kernels, on rows or columns of unit
    stride, which cost in proportion to Q's columns; False when it takes
    BLAS on centered blocks, where a pass costs about the same for 1 to 4
    columns."""
    return X.ndim == 2 and r > 0 and (
        simd_rows(X.strides[0], X.strides[1], X.itemsize)
        or simd_columns(X.strides[0], X.strides[1], X.itemsize,
                        X.shape[1], r))


cdef extern from "Python.h":
    # No exception value: a raising signal handler's error stays set until
    # the parallel region ends and raise_pending() raises it.
    int PyErr_CheckSignals()

# Signals are checked after CHECK_FLOPS flops (1 to 20 ms of work): Ctrl-C
# lands within ~50 ms and the checks cost well under 1%.  Inside a parallel
# region only the team's master thread (the caller's own) checks, between
# blocks; it raises a shared flag the other threads read between theirs.


cdef int raise_pending() except -1:
    return -1


cdef inline bint master_check(double* work, double flops,
                              int* flag) noexcept nogil:
    """Thread 0 counts flops and past CHECK_FLOPS runs the signal handlers
    (with the GIL); True once any thread saw the flag raised."""
    if threadid() == 0:
        work[0] += flops
        if work[0] >= CHECK_FLOPS:
            work[0] = 0.0
            with gil:
                if PyErr_CheckSignals() != 0:
                    flag[0] = 1
    return flag[0] != 0


# -- the Gram pass -------------------------------------------------------------
#
# One pass over X's rows accumulates s = sum_i (x_i - K) and
# G = sum_i (x_i - K)(x_i - K)^T in float64, K a shift close to the mean (the
# caller's).  Two layouts of the parallel work, chosen by the caller:
#
# - partials: each thread takes one contiguous range of rows and syrk's it,
#   block by block, into its own m x m float64 partial; the partials are
#   summed at the end (parallel over rows).  Extra memory (threads - 1) m^2
#   doubles; the work per thread is as large as the data allows.
# - tiles: one shared G; for each block of rows, the threads center it
#   together, then each updates its own column panel of G's upper triangle
#   with one GEMM.  Extra memory: the shared block and, for float32, a panel
#   per thread; for large m, where partials would not fit.
#
# float32 rows are centered in float64 and rounded once, multiplied in
# float32 (a block of at most 4096 rows), and every block's product is
# added in float64: the rounding of a whole-array float32 product is gone.


cdef inline void center_block(const floating[:, :] X, Py_ssize_t start,
                              Py_ssize_t rows, const double* shift,
                              floating* buf, double* s) noexcept nogil:
    """buf (rows x m, row-major) = X[start:start + rows] - shift; s += its
    column sums (of the rounded values, so that s matches G)."""
    cdef Py_ssize_t i, j, m = X.shape[1]
    cdef floating v
    cdef const floating* row
    cdef floating* out
    if (floating is float and rows > 0
            and simd_rows(X.strides[0], X.strides[1], sizeof(float))):
        # (A signed division: X.strides[0] is negative for X[::-1].)
        laefast_center_rows_f32(&X[start, 0],
                                X.strides[0] // <Py_ssize_t> sizeof(float),
                                rows, m, shift, buf, s)
        return
    if X.strides[1] == sizeof(floating):
        # Unit-stride rows: a loop the compiler vectorizes (the strided
        # one below multiplies by a stride it cannot know).
        for i in range(rows):
            row = &X[start + i, 0]
            out = buf + i * m
            for j in range(m):
                v = <floating> (row[j] - shift[j])
                out[j] = v
                s[j] += v
        return
    for i in range(rows):
        for j in range(m):
            v = <floating> (X[start + i, j] - shift[j])
            buf[i * m + j] = v
            s[j] += v


cdef inline void add_upper(Py_ssize_t m, const float* src, double* dst,
                           bint assign) noexcept nogil:
    """dst's upper triangle (row-major) += (or =) src's, in float64."""
    cdef Py_ssize_t i, j
    for i in range(m):
        if assign:
            for j in range(i, m):
                dst[i * m + j] = src[i * m + j]
        else:
            for j in range(i, m):
                dst[i * m + j] += src[i * m + j]


# Slack, in entries, for a buffer to start on a 64-byte line (16 float32
# entries make one line).
cdef enum:
    LINE_ITEMS = 16


cdef inline bint takes_kernel(Py_ssize_t m) noexcept nogil:
    """Whether syrk_block multiplies blocks of m features with a compiled
    block update rather than syrk."""
    if GRAM_KERNEL == GRAM_AVX512:
        return m <= GRAM_SIMD_MAX_M
    return GRAM_KERNEL == GRAM_AVX2 and m <= GRAM_AVX2_MAX_M


cdef void syrk_block(Py_ssize_t m, Py_ssize_t rows, const floating* buf,
                     double* P, float* scratch, bint first) noexcept nogil:
    """P's upper triangle (+)= buf^T buf, in float64."""
    if takes_kernel(m):
        # float32: sums over at most 256 rows, then float64.
        if GRAM_KERNEL == GRAM_AVX2:
            if floating is float:
                laefast_gram_upper_avx2_f32(rows, m, buf, P, first)
            else:
                laefast_gram_upper_avx2(rows, m, buf, P, first)
        elif floating is float:
            laefast_gram_upper_512_f32(rows, m, buf, P, first)
        else:
            laefast_gram_upper_512(rows, m, buf, P, first)
    elif floating is double:
        syrk_at_a(m, rows, 1.0, buf, m, 0.0 if first else 1.0, P, m)
    else:
        syrk_at_a(m, rows, 1.0, buf, m, 0.0, scratch, m)
        add_upper(m, scratch, P, first)


def gram_pass_threads(Py_ssize_t n, Py_ssize_t m, int n_threads):
    """The thread count gram_pass uses on n rows of m features: 1 below a
    few Mflop, and never less than GRAM_MIN_ROWS rows per thread."""
    return threads_for_work(n // GRAM_MIN_ROWS, n_threads, <double> n * m * m)


def gram_block_rows(Py_ssize_t m, bint tiles):
    """Rows per syrk/GEMM call: about 2 MiB of doubles, 256 to 4096 rows
    (512 at least for the tiles layout, whose G is large).  Measured on a
    16-core Xeon: at m = 256, 1024 rows ran 10% faster than 256 or 4096;
    at m = 1024, 256 to 2048 rows within 7%."""
    return max(GRAM_TILES_MIN_ROWS if tiles else GRAM_BLOCK_MIN_ROWS,
               min(GRAM_BLOCK_MAX_ROWS,
                   GRAM_BLOCK_BYTES // (8 * max(m, 1))))


cdef Py_ssize_t panel_edge(Py_ssize_t m, Py_ssize_t t, Py_ssize_t nt) noexcept nogil:
    # Column panels [edge(t), edge(t+1)) of the upper triangle with equal
    # areas: the triangle up to column c holds about c^2 / 2 entries.
    if t >= nt:
        return m
    return <Py_ssize_t> (m * sqrt(<double> t / nt))


def gram_pass(const floating[:, :] X, const double[::1] shift,
              double[:, ::1] G, double[::1] s, int n_threads, bint tiles,
              Py_ssize_t block_rows=0):
    """G = sum_i (x_i - K)(x_i - K)^T (full, symmetric), s = sum_i (x_i - K).

    X (n x m) in any layout and strides, float32 or float64; K = shift
    (float64, or None for 0).  G and s are overwritten, in float64.
    Threads: gram_pass_threads(n, m, n_threads); the caller keeps BLAS
    serial when that is > 1.  tiles picks the layout described above.
    Rows are split into the same ranges for a given thread count, and
    summed in the same order: the result is reproducible for it on one
    CPU (the block update taken, gram_kernel, depends on the CPU; float32
    results differ by about 1e-6 between its kernels).
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1]
    cdef int nt = gram_pass_threads(n, m, n_threads)
    cdef Py_ssize_t B, t, r0, r1, start, rows, i, j, c0, c1, part
    cdef bint first
    cdef double acc, work
    cdef int[::1] flag = np.zeros(1, dtype=np.intc)
    cdef double* P
    cdef float* scr
    cdef floating* buf
    cdef const double* K
    dtype = np.float32 if floating is float else np.float64
    if shift is None:
        zeros = np.zeros(m)
        shift = zeros
    K = &shift[0]
    B = block_rows if block_rows > 0 else gram_block_rows(m, tiles)
    if not tiles:
        B = max(1, min(B, (n + nt - 1) // nt))
    cdef double[:, ::1] S_t = np.zeros((nt, m), dtype=np.float64)
    cdef double[:, :, ::1] P_t
    cdef float[:, ::1] scratch
    cdef floating[:, ::1] bufs
    cdef double[:, ::1] Gv = G
    if n == 0 or m == 0:
        G[:, :] = 0
        s[:] = 0
        return
    if not tiles:
        P_t = np.empty((nt - 1, m, m), dtype=np.float64)
        # Each thread's block starts on a cache line (NumPy's buffers start
        # 16 bytes into one): the block updates' vector loads then never
        # straddle two lines where rows are whole lines apart.
        bufs = np.empty((nt, B * m + LINE_ITEMS), dtype=dtype)
        # float32 blocks that syrk multiplies land in float32 scratch.
        scratch = np.empty((nt, m * m if floating is float
                                and not takes_kernel(m) else 1),
                           dtype=np.float32)
        for t in prange(nt, nogil=True, num_threads=nt, schedule="static",
                        chunksize=1):
            # Thread t: rows [n t / nt, n (t + 1) / nt), block by block.
            r0 = n * t // nt
            r1 = n * (t + 1) // nt
            P = &Gv[0, 0] if t == 0 else &P_t[t - 1, 0, 0]
            buf = &bufs[t, 0] + place(&bufs[t, 0], 0, 64)
            scr = &scratch[t, 0] if floating is float else NULL
            first = True
            start = r0
            work = 0.0
            while start < r1:
                rows = min(B, r1 - start)
                center_block(X, start, rows, K, buf, &S_t[t, 0])
                syrk_block(m, rows, buf, P, scr, first)
                first = False
                start = start + rows
                if master_check(&work, <double> rows * m * m, &flag[0]):
                    break
            if first:
                for i in range(m * m):
                    P[i] = 0.0
        if flag[0]:
            raise_pending()
        # Sum the partials into G's upper triangle; rows dealt round-robin
        # (row i holds m - i entries), then mirror.
        for i in prange(m, nogil=True, num_threads=nt, schedule="static",
                        chunksize=1):
            for part in range(nt - 1):
                for j in range(i, m):
                    Gv[i, j] += P_t[part, i, j]
    else:
        bufs = np.empty((1, B * m), dtype=dtype)
        scratch = np.empty((nt if floating is float else 1,
                            m * m // nt + 2 * m + 1 if floating is float else 1),
                           dtype=np.float32)
        G[:, :] = 0
        start = 0
        while start < n:
            rows = min(B, n - start)
            # Center the block together (rows split over the threads) ...
            for t in prange(nt, nogil=True, num_threads=nt,
                            schedule="static", chunksize=1):
                r0 = rows * t // nt
                r1 = rows * (t + 1) // nt
                center_block(X, start + r0, r1 - r0, K,
                             &bufs[0, r0 * m], &S_t[t, 0])
            # ... then each thread updates its panel of columns [c0, c1)
            # in rows [0, c1): G[:c1, c0:c1] += buf[:, :c1]^T buf[:, c0:c1].
            for t in prange(nt, nogil=True, num_threads=nt,
                            schedule="static", chunksize=1):
                c0 = panel_edge(m, t, nt)
                c1 = panel_edge(m, t + 1, nt)
                if c1 > c0:
                    panel_update(m, rows, c0, c1, &bufs[0, 0], &Gv[0, 0],
                                 &scratch[t, 0] if floating is float else NULL)
            start = start + rows
            # Between blocks, with the GIL: Ctrl-C raises here.
            if PyErr_CheckSignals() != 0:
                raise_pending()
    with nogil:
        for t in range(nt):
            for j in range(m):
                s[j] = (s[j] if t > 0 else 0.0) + S_t[t, j]
        mirror_upper(m, &Gv[0, 0], m)


cdef void panel_update(Py_ssize_t m, Py_ssize_t rows, Py_ssize_t c0,
                       Py_ssize_t c1, const floating* buf, double* G,
                       float* scratch) noexcept nogil:
    """G[:c1, c0:c1] += buf[:, :c1]^T buf[:, c0:c1] (row-major, float64)."""
    cdef Py_ssize_t i, j, w = c1 - c0
    if floating is double:
        gemm(TRANS, NO_TRANS, c1, w, rows, 1.0, buf, m, buf + c0, m, 1.0,
             G + c0, m)
    else:
        gemm(TRANS, NO_TRANS, c1, w, rows, <float> 1.0, buf, m, buf + c0, m,
             <float> 0.0, scratch, w)
        for i in range(c1):
            for j in range(w):
                G[i * m + c0 + j] += scratch[i * w + j]


def centered_product_threads(Py_ssize_t n, Py_ssize_t m, Py_ssize_t r,
                             int n_threads):
    """The thread count centered_product uses."""
    return threads_for_work(n // PRODUCT_MIN_ROWS, n_threads, 4.0 * n * m * r,
                            PRODUCT_THREAD_MIN_FLOPS)


def centered_product_block_rows(Py_ssize_t m):
    """Rows centered at a time: about 1 MiB of doubles, 16 to 1024 rows."""
    return max(CENTERED_BLOCK_MIN_ROWS,
               min(CENTERED_BLOCK_MAX_ROWS, CENTERED_BLOCK_ENTRIES // max(m, 1)))


def centered_product_workspace(Py_ssize_t n, Py_ssize_t m, Py_ssize_t r,
                               int n_threads, simd=None):
    """Doubles of workspace centered_product needs on the path it takes:
    with BLAS (simd False), one block and its product per thread and an
    m x r partial for every thread but one; with the SIMD kernels (simd
    True: centered_product_cost_grows(X, r)), on rows, Q^T, the mean and one
    partial per thread, r padded to whole column groups, each after up to
    PARTIAL_SLACK doubles of slack (simd_layout), and on columns an n x r
    partial of Xc Q per thread (column_threads of them); simd None: the
    most either needs.  (The BLAS path's blocks are at least
    CENTERED_BLOCK_MIN_ROWS rows of m: on very wide data far more than the
    SIMD kernels need, 150 MB at m = 100000 and 12 threads.)"""
    cdef int nt = centered_product_threads(n, m, r, n_threads)
    cdef Py_ssize_t B = centered_product_block_rows(m)
    cdef Py_ssize_t r4 = laefast_product_width(r)
    cdef Py_ssize_t blas = nt * B * (m + r) + (nt - 1) * m * r
    cdef Py_ssize_t columns = (column_threads(nt, m, r) * r * n
                               if m >= COLUMNS_PER_Q_COLUMN * r else 0)
    cdef Py_ssize_t kernels = max((nt + 1) * r4 * m + m
                                  + (nt + 2) * PARTIAL_SLACK, columns)
    if simd is None:
        return max(blas, kernels)
    return kernels if simd else blas


cdef inline Py_ssize_t place(const floating* at, size_t offset,
                             size_t period) noexcept nogil:
    """Entries from `at` to the first address at `offset` bytes modulo
    `period` (a power of two; offset a multiple of the entry size)."""
    return <Py_ssize_t> (((offset - <size_t> at) & (period - 1))
                         // sizeof(floating))


cdef void simd_layout(const double* work, const void* X, Py_ssize_t n,
                      Py_ssize_t ldx_bytes, Py_ssize_t itemsize,
                      Py_ssize_t m, Py_ssize_t r4, int nt,
                      Py_ssize_t* offsets) noexcept nogil:
    """Where the SIMD product puts Q^T (offsets[0]), the mean (offsets[1])
    and thread t's partial P (offsets[2 + t]) in its workspace, in doubles.

    Two placements, both measured on one pass of the AVX-512 kernel over
    1500 x 2048 float64 (Zen 4):
    - the AVX-512 kernel's vectors start where a row loads whole cache
      lines (after its first j0 entries, _simd_product.h); Q, the mean and
      P are placed so that their loads at row 0's j0 are whole lines too.
      NumPy's arrays start 16 or 32 bytes into a line: with X, the mean and
      Q's copy at different offsets the AVX-512 kernel ran 1.2x slower
      than with all three on lines.  Every row then matches where rows are
      a whole number of lines apart (m a multiple of 8 float64 or 16
      float32, rows of unit stride); otherwise only the groups whose first
      row starts at row 0's offset do (the reviewer's 1500 x 2047, 2
      threads: 1.05-1.16x the AVX2 kernel's speed, against 1.17-1.27x at
      m = 2048);
    - each partial about 2 KiB from its thread's rows modulo 4 KiB: the
      kernels store to P and then load X, and where the two addresses
      agree modulo 4 KiB the CPU takes the loads for dependent on the
      stores (4K aliasing).  With m a multiple of 512 (every row, and both
      columns of P, at one offset modulo 4 KiB) it happened at every
      vector: 96 x 2048 rows in L2, one core, 60-73 us with P at X's
      offset, 51 us 1-2 KiB away.
    """
    cdef Py_ssize_t t, at
    cdef size_t row, line
    cdef size_t vector_bytes = 8 * <size_t> itemsize
    # The first whole vector of row 0 is its entry j0; an array of doubles
    # is on a line at j0 when it starts `line` bytes into one.
    cdef size_t j0 = ((0 - <size_t> X) & (vector_bytes - 1)) // <size_t> itemsize
    line = (0 - 8 * j0) & 63
    offsets[0] = place(work, line, 64)
    at = offsets[0] + r4 * m
    offsets[1] = at + place(work + at, line, 64)
    at = offsets[1] + m
    for t in range(nt):
        row = <size_t> X + <size_t> ((n * t // nt) * ldx_bytes)
        offsets[2 + t] = at + place(work + at,
                                    ((row + 2048) & 4032) | line, 4096)
        at = offsets[2 + t] + r4 * m


cdef inline double center_row_f64(const floating[:, :] X, Py_ssize_t row,
                                   const double* mean, double* out,
                                   bint want_sq) noexcept nogil:
    """out = X[row] - mean in float64; returns ||out||^2 when want_sq."""
    cdef Py_ssize_t j, m = X.shape[1]
    cdef Py_ssize_t stride = X.strides[1] // sizeof(floating)
    cdef const floating* x = &X[row, 0]
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    if stride == 1:
        for j in range(m):
            out[j] = x[j] - mean[j]
    else:
        for j in range(m):
            out[j] = x[j * stride] - mean[j]
    if want_sq:
        # Four running sums: one would chain every add to the last.
        j = 0
        while j + 4 <= m:
            a0 += out[j] * out[j]
            a1 += out[j + 1] * out[j + 1]
            a2 += out[j + 2] * out[j + 2]
            a3 += out[j + 3] * out[j + 3]
            j += 4
        while j < m:
            a0 += out[j] * out[j]
            j += 1
    return (a0 + a1) + (a2 + a3)


def centered_product(const floating[:, :] X, const double[::1] mean,
                     const double[:, ::1] Q, double[:, ::1] out,
                     int n_threads, bint want_trace=False,
                     double[::1] work=None):
    """out = Xc^T (Xc Q) for Xc = X - mean (m x r, float64); returns
    ||Xc||_F^2 when want_trace (else 0).

    X is never copied, whatever its layout.  On rows of unit stride (C
    order) one pass over X: each thread takes a contiguous range of rows
    and adds their Xc^T (Xc Q) into its own m x r partial, by the SIMD
    kernels of _simd_product.h.  On columns of unit stride (Fortran order)
    two passes, by columns (columns_centered_product).  Elsewhere one pass
    by BLAS: each thread centers its rows, block by block, into a float64
    buffer (float32 data are then multiplied exactly as the float64 values
    they are), forms Y = B Q and adds B^T Y into its own partial.  The
    partials are summed in thread order.  `work` (at least
    centered_product_workspace(n, m, r, n_threads, simd) doubles, simd =
    centered_product_cost_grows(X, r)) is reused across calls by iterative
    callers: fresh memory for every product would cost page faults on
    every call.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], r = Q.shape[1]
    cdef int nt = centered_product_threads(n, m, r, n_threads)
    cdef Py_ssize_t B = centered_product_block_rows(m)
    cdef bint by_rows = r > 0 and simd_rows(X.strides[0], X.strides[1],
                                            sizeof(floating))
    cdef bint by_columns = r > 0 and simd_columns(X.strides[0], X.strides[1],
                                                  sizeof(floating), m, r)
    # (by_rows or by_columns is centered_product_cost_grows(X, r).)
    cdef Py_ssize_t need = centered_product_workspace(
        n, m, r, n_threads, by_rows or by_columns)
    cdef Py_ssize_t t, r0, r1, start, rows, i, j
    cdef double v
    cdef double* buf
    cdef double* P
    cdef double* ws
    cdef double[::1] sq = np.zeros(nt)
    cdef double[:, ::1] outv = out
    cdef bint first
    cdef double cwork
    cdef int[::1] flag = np.zeros(1, dtype=np.intc)
    if X.strides[1] % sizeof(floating) != 0:
        raise ValueError("X's column stride is not a multiple of its itemsize")
    if work is None or work.shape[0] < need:
        work = np.empty(max(need, 1))
    # (No columns: the BLAS path's loop still sums the squares.)
    if by_rows:
        return simd_centered_product(X, mean, Q, out, nt, want_trace, work)
    if by_columns:
        return columns_centered_product(X, mean, Q, out,
                                        column_threads(nt, m, r), want_trace,
                                        work)
    ws = &work[0]
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static",
                    chunksize=1):
        r0 = n * t // nt
        r1 = n * (t + 1) // nt
        buf = ws + t * B * (m + r)
        P = &outv[0, 0] if t == 0 else ws + nt * B * (m + r) + (t - 1) * m * r
        first = True
        start = r0
        v = 0.0
        cwork = 0.0
        while start < r1:
            rows = min(B, r1 - start)
            for i in range(rows):
                v = v + center_row_f64(X, start + i, &mean[0], buf + i * m,
                                       want_trace)
            # Y (rows x r) after the block, then P (+)= B^T Y
            gemm(NO_TRANS, NO_TRANS, rows, r, m, 1.0, buf, m, &Q[0, 0], r, 0.0,
                 buf + B * m, r)
            gemm(TRANS, NO_TRANS, m, r, rows, 1.0, buf, m, buf + B * m, r,
                 0.0 if first else 1.0, P, r)
            first = False
            start = start + rows
            if master_check(&cwork, 4.0 * rows * m * r, &flag[0]):
                break
        sq[t] = v
        if first:
            for i in range(m * r):
                P[i] = 0.0
    if flag[0]:
        raise_pending()
    if nt > 1:
        for i in prange(m, nogil=True, num_threads=nt, schedule="static"):
            for t in range(nt - 1):
                for j in range(r):
                    outv[i, j] += ws[nt * B * (m + r) + t * m * r + i * r + j]
    with nogil:
        v = 0.0
        for t in range(nt):
            v += sq[t]
    return v


cdef double simd_centered_product(const floating[:, :] X,
                                  const double[::1] mean,
                                  const double[:, ::1] Q, double[:, ::1] out,
                                  int nt, bint want_trace,
                                  double[::1] work) except? -1.0:
    """centered_product on rows of unit stride, by the AVX2 kernel of
    _simd_product.h (its AVX-512 one for 1 or 2 columns, where the CPU has
    it): each thread adds its contiguous range of rows into its own
    transposed partial; the partials are summed in thread order."""
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], r = Q.shape[1]
    cdef Py_ssize_t r4 = laefast_product_width(r)
    cdef Py_ssize_t B = centered_product_block_rows(m)
    cdef Py_ssize_t ldx = X.strides[0] // <Py_ssize_t> sizeof(floating)
    cdef Py_ssize_t t, r0, r1, start, rows, i, j, c
    cdef double v, cwork, total
    cdef double* Qt
    cdef double* Pt
    cdef double* mu
    cdef double[::1] sq = np.zeros(nt)
    cdef int[::1] flag = np.zeros(1, dtype=np.intc)
    cdef bint wide_vectors = SIMD512_PRODUCT and 0 < r4 <= 2
    cdef Py_ssize_t[::1] at = np.empty(nt + 2, dtype=np.intp)
    with nogil:
        simd_layout(&work[0], &X[0, 0], n, X.strides[0], sizeof(floating),
                    m, r4, nt, &at[0])
        Qt = &work[at[0]]
        mu = &work[at[1]]
        for c in range(r4):
            for j in range(m):
                Qt[c * m + j] = Q[j, c] if c < r else 0.0
        for j in range(m):
            mu[j] = mean[j]
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static",
                    chunksize=1):
        r0 = n * t // nt
        r1 = n * (t + 1) // nt
        Pt = &work[at[2 + t]]
        for i in range(r4 * m):
            Pt[i] = 0.0
        v = 0.0
        cwork = 0.0
        start = r0
        while start < r1:
            rows = min(B, r1 - start)
            # The rows after this block (r1 - start - rows) may be
            # prefetched: they are this thread's next block.
            if wide_vectors:
                if floating is double:
                    v = v + laefast_product_block_512_f64(
                        &X[start, 0], ldx, rows, r1 - start - rows, m,
                        mu, Qt, r4, Pt, want_trace)
                else:
                    v = v + laefast_product_block_512_f32(
                        &X[start, 0], ldx, rows, r1 - start - rows, m,
                        mu, Qt, r4, Pt, want_trace)
            elif floating is double:
                v = v + laefast_product_block_f64(
                    &X[start, 0], ldx, rows, r1 - start - rows, m,
                    mu, Qt, r4, Pt, want_trace)
            else:
                v = v + laefast_product_block_f32(
                    &X[start, 0], ldx, rows, r1 - start - rows, m,
                    mu, Qt, r4, Pt, want_trace)
            start = start + rows
            if master_check(&cwork, 4.0 * rows * m * r4, &flag[0]):
                break
        sq[t] = v
    if flag[0]:
        raise_pending()
    # The partials' sum, split over the team as the rows were: m r nt
    # loads, which at m = 4096, r = 2 and 16 threads took 136 us serially
    # on one Zen 4 core, a large part of a pass that 16 threads share.
    for j in prange(m, nogil=True, num_threads=nt, schedule="static"):
        for c in range(r):
            total = 0.0
            for t in range(nt):
                total = total + work[at[2 + t] + c * m + j]
            out[j, c] = total
    with nogil:
        v = 0.0
        for t in range(nt):
            v = v + sq[t]
    return v


cdef double columns_centered_product(const floating[:, :] X,
                                    const double[::1] mean,
                                    const double[:, ::1] Q,
                                    double[:, ::1] out, int nt,
                                    bint want_trace,
                                    double[::1] work) except? -1.0:
    """centered_product on columns of unit stride (a Fortran-ordered X),
    by the column kernel of _simd_product.h, in two passes over X: each
    thread adds its contiguous range of columns into its own n x r partial
    of Y = Xc Q, the partials are summed in thread order, then each thread
    forms its columns' rows of Xc^T Y.

    1500 x 2048 float64, 2 columns, 2 threads, X in cache: 0.69 ms, against
    2.6 ms for the BLAS path, which gathers each row's entries from m cache
    lines (0.48-0.57 ms for the row kernel on the same data in C order).
    Blocks of rows instead, each block's two passes made while it is in
    cache (one pass over X from memory), ran slower here: 0.94 ms with
    blocks of 1 MiB (64 rows, so the kernel's loops are 16 vectors long),
    0.83 ms with 256 rows.  Where X is far larger than the caches, the two
    passes read it from memory twice.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], r = Q.shape[1]
    cdef Py_ssize_t ldc = X.strides[1] // <Py_ssize_t> sizeof(floating)
    cdef Py_ssize_t t, j0, j1, j, jend, i
    cdef double v, cwork, total
    cdef double* Y = &work[0]
    cdef double* P = &out[0, 0]
    cdef double[::1] sq = np.zeros(nt)
    cdef int[::1] flag = np.zeros(1, dtype=np.intc)
    # Columns per call between two checks for Ctrl-C: about 1 MiB of X, at
    # least 4 columns (the kernel's group).  Thread 0, which checks, has
    # columns: column_threads gives each thread some.
    cdef Py_ssize_t column_bytes = max(n * <Py_ssize_t> sizeof(floating), 1)
    cdef Py_ssize_t group = max(4, (1 << 20) // column_bytes // 4 * 4)
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static",
                    chunksize=1):
        j0 = m * t // nt
        j1 = m * (t + 1) // nt
        for i in range(r * n):
            Y[t * r * n + i] = 0.0
        v = 0.0
        cwork = 0.0
        j = j0
        while j < j1:
            jend = min(j + group, j1)
            if floating is double:
                v = v + laefast_columns_y_f64(
                    &X[0, 0], ldc, j, jend, n, &mean[0], &Q[0, 0], r,
                    Y + t * r * n, want_trace)
            else:
                v = v + laefast_columns_y_f32(
                    &X[0, 0], ldc, j, jend, n, &mean[0], &Q[0, 0], r,
                    Y + t * r * n, want_trace)
            j = jend
            if master_check(&cwork, 2.0 * n * group * r, &flag[0]):
                break
        sq[t] = v
    if flag[0]:
        raise_pending()
    if nt > 1:
        for i in prange(r * n, nogil=True, num_threads=nt,
                        schedule="static"):
            total = Y[i]
            for t in range(1, nt):
                total = total + Y[t * r * n + i]
            Y[i] = total
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static",
                    chunksize=1):
        j0 = m * t // nt
        j1 = m * (t + 1) // nt
        cwork = 0.0
        j = j0
        while j < j1:
            jend = min(j + group, j1)
            if floating is double:
                laefast_columns_p_f64(&X[0, 0], ldc, j, jend, n, &mean[0],
                                      Y, r, P)
            else:
                laefast_columns_p_f32(&X[0, 0], ldc, j, jend, n, &mean[0],
                                      Y, r, P)
            j = jend
            if master_check(&cwork, 2.0 * n * group * r, &flag[0]):
                break
    if flag[0]:
        raise_pending()
    with nogil:
        v = 0.0
        for t in range(nt):
            v = v + sq[t]
    return v


cdef inline void add_rows(const floating[:, :] X, Py_ssize_t r0,
                          Py_ssize_t r1, double* s) noexcept nogil:
    """s += rows r0:r1 of X (rows of unit stride), by pointer loops the
    compiler vectorizes: indexing X through a stride it cannot know kept
    the loop scalar (1500 x 2048 float64, one core: 1.47 ms, against
    NumPy's 1.06)."""
    cdef Py_ssize_t i = r0, j, m = X.shape[1]
    cdef const floating* a
    cdef const floating* b
    cdef const floating* c
    cdef const floating* d
    # Four rows per visit of s: s's loads and stores, not X's, bound a
    # row-at-a-time loop.
    while i + 4 <= r1:
        a, b, c, d = &X[i, 0], &X[i + 1, 0], &X[i + 2, 0], &X[i + 3, 0]
        for j in range(m):
            s[j] += (<double> a[j] + <double> b[j]) + (<double> c[j]
                                                       + <double> d[j])
        i += 4
    while i < r1:
        a = &X[i, 0]
        for j in range(m):
            s[j] += a[j]
        i += 1


cdef inline double sum_run(const floating* x, Py_ssize_t n) noexcept nogil:
    """sum of n contiguous entries, in 8 running sums: one running sum
    waits a full add latency per entry."""
    cdef double a[8]
    cdef Py_ssize_t i, u, n8 = n - n % 8
    for u in range(8):
        a[u] = 0.0
    for i in range(0, n8, 8):
        for u in range(8):
            a[u] += x[i + u]
    for i in range(n8, n):
        a[i - n8] += x[i]
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))


def column_sums(const floating[:, :] X, int n_threads):
    """sum_i x_i in float64 (m,): one parallel pass, any layout.

    Each thread sums a contiguous range of rows (of columns, for a
    Fortran-ordered X); the partial sums are added in thread order
    (reproducible for a given thread count).  A NaN
    or infinity anywhere in X makes the result non-finite.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1], t, i, j, r0, r1
    cdef int nt = threads_for_work(n // GRAM_MIN_ROWS, n_threads, 8.0 * n * m)
    cdef double[:, ::1] S_t = np.zeros((nt, m))
    cdef double[::1] out = np.zeros(m)
    cdef double work
    cdef int[::1] flag = np.zeros(1, dtype=np.intc)
    # A Fortran-ordered X is summed a column at a time, along its memory
    # (across its rows it took twice as long).  1500 x 2048 float64, 1 and
    # 2 threads: C order 0.87-0.95 and 0.26-0.56 ms, Fortran order
    # 0.48-0.51 and 0.21-0.29 ms (NumPy's X.sum(axis=0): 1.0-1.3 ms).
    cdef bint by_columns = (X.strides[0] == sizeof(floating)
                            and X.strides[1] != sizeof(floating))
    if by_columns and nt > m:
        # Whole columns per thread (below): no more threads than columns,
        # and thread 0, which checks for Ctrl-C, always has some.
        nt = max(1, <int> m)
        S_t = np.zeros((nt, m))
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static",
                    chunksize=1):
        r0 = n * t // nt
        r1 = n * (t + 1) // nt
        work = 0.0
        if by_columns:
            # Whole columns per thread, each thread's a contiguous range of
            # memory: split by rows, two threads took twice one thread's
            # time (every column's run cut in two restarts the prefetch).
            for j in range(m * t // nt, m * (t + 1) // nt):
                S_t[t, j] = sum_run(&X[0, j], n)
                if master_check(&work, 20.0 * n, &flag[0]):
                    break
        elif X.strides[1] == sizeof(floating):
            # In blocks of rows: the interrupt check costs a call per block.
            i = r0
            while i < r1:
                add_rows(X, i, min(i + 64, r1), &S_t[t, 0])
                if master_check(&work, 20.0 * m * 64, &flag[0]):
                    break
                i = i + 64
        else:
            for i in range(r0, r1):
                for j in range(m):
                    S_t[t, j] += X[i, j]
                if master_check(&work, 20.0 * m, &flag[0]):
                    break
    if flag[0]:
        raise_pending()
    with nogil:
        for t in range(nt):
            for j in range(m):
                out[j] += S_t[t, j]
    return np.asarray(out)
