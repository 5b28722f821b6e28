"""One-pass checks of large inputs, with the GIL released.

A Gram matrix is read once, in tiles (so that C[i, j] and C[j, i] are both
in cache), for everything the entry points need to know about it.
"""

import numpy as np

from cython cimport floating
from libc.math cimport fabs


cdef enum:
    TILE = 64


def gram_stats(const floating[:, ::1] C):
    """(max |C - C^T|, max |diag|, max row sum of |C_ij|, trace, total).

    `total` is the sum of every entry: not finite when C holds NaN or inf
    (or values too large to sum), which the caller then looks into.
    """
    cdef Py_ssize_t m = C.shape[0]
    cdef Py_ssize_t n_tiles = (m + TILE - 1) // TILE
    cdef Py_ssize_t ti, tj, bi, bj, i, j, j0
    cdef double a, b, d, asym = 0.0, diag = 0.0, trace = 0.0, total = 0.0
    cdef double row_max = 0.0
    cdef double[::1] rows = np.zeros(m, dtype=np.float64)
    with nogil:
        for ti in range(n_tiles):
            bi = ti * TILE
            for tj in range(ti, n_tiles):
                bj = tj * TILE
                for i in range(bi, min(bi + TILE, m)):
                    j0 = i if bj == bi else bj
                    for j in range(j0, min(bj + TILE, m)):
                        a = C[i, j]
                        if j == i:
                            rows[i] += fabs(a)
                            trace += a
                            total += a
                            if fabs(a) > diag:
                                diag = fabs(a)
                            continue
                        b = C[j, i]
                        total += a + b
                        rows[i] += fabs(a)
                        rows[j] += fabs(b)
                        d = fabs(a - b)
                        if d > asym:
                            asym = d
        for i in range(m):
            if rows[i] > row_max:
                row_max = rows[i]
    return asym, diag, row_max, trace, total
