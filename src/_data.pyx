"""Kernels on raw data X of shape (n_samples, n_features)."""

import numpy as np

from cython cimport floating
from libc.string cimport memcpy

from _blas cimport syrk_at_a, mirror_upper


def gram(const floating[:, :] X, const floating[::1] mean, floating[:, ::1] out,
         Py_ssize_t chunk_rows):
    """out = (X - mean)^T (X - mean), the paper's C = X X^T (no 1/n).

    X is read in chunks of rows that are centered into one small buffer, so
    any layout works and the input is never copied whole.  With mean None and
    a C-contiguous X, one syrk runs over X itself.
    """
    cdef Py_ssize_t n = X.shape[0], m = X.shape[1]
    cdef Py_ssize_t start, b, i, j
    cdef bint centered = mean is not None
    cdef floating beta
    dtype = np.float32 if floating is float else np.float64
    if not centered and n > 0 and X.strides[1] == sizeof(floating) \
            and X.strides[0] == m * sizeof(floating):
        with nogil:
            syrk_at_a(m, n, 1, &X[0, 0], m, 0, &out[0, 0], m)
            mirror_upper(m, &out[0, 0], m)
        return
    chunk_rows = max(1, min(chunk_rows, n))
    cdef floating[:, ::1] buf = np.empty((chunk_rows, m), dtype=dtype)
    with nogil:
        start = 0
        while start < n:
            b = min(chunk_rows, n - start)
            for i in range(b):
                if centered:
                    for j in range(m):
                        buf[i, j] = X[start + i, j] - mean[j]
                else:
                    for j in range(m):
                        buf[i, j] = X[start + i, j]
            beta = 0 if start == 0 else 1
            syrk_at_a(m, b, 1, &buf[0, 0], m, beta, &out[0, 0], m)
            start += b
        if n == 0:
            for i in range(m):
                for j in range(m):
                    out[i, j] = 0
        mirror_upper(m, &out[0, 0], m)
