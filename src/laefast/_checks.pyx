"""One-pass checks of large inputs, with the GIL released.

A Gram matrix is read once, in tiles (so that C[i, j] and C[j, i] are both
in cache), for everything the entry points need to know about it.
"""

import numpy as np

from cython cimport floating
from libc.math cimport fabs
from cython.parallel cimport prange

from laefast._constants cimport CHECK_TILE
from laefast._threads cimport threads_for_work

cdef extern from "laefast/_cpu.h" nogil:
    int laefast_cpu_has_avx2_fma()

cdef extern from "laefast/_simd_checks.h" nogil:
    double laefast_tile_asym_f64(const double* A, const double* B,
                                 Py_ssize_t ld, Py_ssize_t h, Py_ssize_t w)
    double laefast_tile_asym_f32(const float* A, const float* B,
                                 Py_ssize_t ld, Py_ssize_t h, Py_ssize_t w)
    void laefast_row_sums_f64(const double* c, Py_ssize_t m, double* abs_sum,
                              double* sum)
    void laefast_row_sums_f32(const float* c, Py_ssize_t m, double* abs_sum,
                              double* sum)

# The AVX2 sweeps of _simd_checks.h, when the CPU has AVX2.
cdef bint SIMD_CHECKS = laefast_cpu_has_avx2_fma() != 0


def simd(enabled=None):
    """Whether gram_stats takes its AVX2 sweeps; enabled=False forces the
    portable loops, True restores the AVX2 ones where the CPU has them
    (tests compare the two), as laefast._passes.simd does."""
    global SIMD_CHECKS
    if enabled is not None:
        SIMD_CHECKS = bool(enabled) and laefast_cpu_has_avx2_fma() != 0
    return bool(SIMD_CHECKS)


cdef inline void row_sums(const floating* c, Py_ssize_t m, double* row,
                          double* tot) noexcept nogil:
    """row = sum |c_j| and tot = sum c_j over one row, in float64: 8 AVX2
    lanes where the CPU has them, else four running sums each (one would
    chain every add to the last: 1.8 ms of the checks of a 1000 x 1000 C,
    against 0.5 ms).  The two orders differ in the last bits."""
    if SIMD_CHECKS:
        if floating is double:
            laefast_row_sums_f64(c, m, row, tot)
        else:
            laefast_row_sums_f32(c, m, row, tot)
        return
    cdef double r0 = 0.0, r1 = 0.0, r2 = 0.0, r3 = 0.0
    cdef double t0 = 0.0, t1 = 0.0, t2 = 0.0, t3 = 0.0
    cdef double a0, a1, a2, a3
    cdef Py_ssize_t j = 0
    while j + 4 <= m:
        a0 = c[j]
        a1 = c[j + 1]
        a2 = c[j + 2]
        a3 = c[j + 3]
        r0 += fabs(a0)
        r1 += fabs(a1)
        r2 += fabs(a2)
        r3 += fabs(a3)
        t0 += a0
        t1 += a1
        t2 += a2
        t3 += a3
        j += 4
    while j < m:
        r0 += fabs(c[j])
        t0 += c[j]
        j += 1
    row[0] = (r0 + r1) + (r2 + r3)
    tot[0] = (t0 + t1) + (t2 + t3)


cdef inline double tile_asym(const floating[:, ::1] C, Py_ssize_t ti,
                             Py_ssize_t tj, Py_ssize_t m) noexcept nogil:
    """max |C[i, j] - C[j, i]| over the tile (ti, tj) (tj >= ti)."""
    cdef Py_ssize_t bi = ti * CHECK_TILE, bj = tj * CHECK_TILE, i, j
    cdef Py_ssize_t h = min(CHECK_TILE, m - bi), w = min(CHECK_TILE, m - bj)
    cdef double d, asym = 0.0
    if SIMD_CHECKS:
        if floating is double:
            return laefast_tile_asym_f64(&C[bi, bj], &C[bj, bi], m, h, w)
        else:
            return laefast_tile_asym_f32(&C[bi, bj], &C[bj, bi], m, h, w)
    for i in range(bi, bi + h):
        for j in range(max(bj, i + 1), bj + w):
            d = fabs(C[i, j] - C[j, i])
            if d > asym:
                asym = d
    return asym


def gram_stats(const floating[:, ::1] C, int n_threads=1):
    """(max |C - C^T|, max |diag|, max row sum of |C_ij|, trace, total).

    `total` is the sum of every entry: not finite when C holds NaN or inf
    (or values too large to sum), which the caller then looks into.
    Parallel (for large C) over bands of CHECK_TILE rows: each band reads
    its own rows whole (row sums need no merging) and the transposed tiles
    beside its diagonal for the symmetry test; per-band results are merged
    in band order, so any thread count gives the same numbers.
    """
    cdef Py_ssize_t m = C.shape[0]
    cdef Py_ssize_t n_tiles = (m + CHECK_TILE - 1) // CHECK_TILE
    cdef Py_ssize_t ti, tj, bi, i
    cdef double tot
    cdef double asym = 0.0, diag = 0.0, trace = 0.0, total = 0.0
    cdef double row_max = 0.0
    # Per band: asym, diag, row_max, trace, total.
    cdef double[:, ::1] band = np.zeros((n_tiles, 5), dtype=np.float64)
    cdef double[::1] rows = np.zeros(m, dtype=np.float64)
    # Each thread gets 1e7 entries at least (about 3 ms of the sweep):
    # right after a BLAS call (solve, step) BLAS's own workers still spin,
    # and a team member that waits for a core costs a scheduler slice.
    # Measured on 2 cores at m = 1000 (a 0.3 ms sweep), interleaved:
    # solve(max_iter=1) took 3.4 ms (median 4.8) with one thread, 3.9
    # (median 6.1) with two; a laefast.step call 2.2 (3.1) against 2.8
    # (4.2) ms.
    cdef int nt = threads_for_work(n_tiles, n_threads, <double> m * m)
    for ti in prange(n_tiles, nogil=True, num_threads=max(nt, 1),
                     schedule="dynamic"):
        bi = ti * CHECK_TILE
        for i in range(bi, min(bi + CHECK_TILE, m)):
            # Whole rows: the row sums and the total, in one read.  (tot is
            # assigned here so that Cython makes it private to the thread:
            # written only through its address it would be shared, and the
            # threads would race on it.)
            tot = 0.0
            row_sums(&C[i, 0], m, &rows[i], &tot)
            band[ti, 4] += tot
            band[ti, 3] += C[i, i]
            if fabs(C[i, i]) > band[ti, 1]:
                band[ti, 1] = fabs(C[i, i])
        # Symmetry: each tile right of the diagonal against its transpose,
        # which stays in cache a tile at a time.
        for tj in range(ti, n_tiles):
            band[ti, 0] = max(band[ti, 0], tile_asym(C, ti, tj, m))
    with nogil:
        for ti in range(n_tiles):
            asym = max(asym, band[ti, 0])
            diag = max(diag, band[ti, 1])
            trace += band[ti, 3]
            total += band[ti, 4]
        for i in range(m):
            if rows[i] > row_max:
                row_max = rows[i]
    return asym, diag, row_max, trace, total
