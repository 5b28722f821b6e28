"""Block Lanczos's per-step linear algebra, compiled (laefast._subspace).

A step of block_lanczos orthonormalizes the last image against the space,
multiplies the new block by C (a pass over X, or a product with C: the
caller's), and grows the projected matrix by a block column.  Around the
product that is about ten BLAS calls and two tiny eigensolves on blocks
of 2 to 4 columns, each with 10-30 us of call overhead from Python.
Here they are two calls a step: a wide fit (1500 x 2048, 31 steps,
2 cores) took 0.94-0.97 times as long.  What the step still costs is
mostly the skinny GEMMs, bound by reading the basis.

The arrays are block_lanczos's buffers: the basis and its image
(m x columns, Fortran order), the projected matrix H (C order) and the
last image projected off the space, Z (m x block, Fortran order).  Every
product is the one column-major dgemm the NumPy formulas in the
docstrings call through SciPy, and every elementwise step is the same
IEEE operation, so the results are those formulas' bits.
"""

import numpy as np

from libc.math cimport fabs, sqrt
from libc.stdlib cimport free, malloc

from laefast._blas cimport gemm, trans_if
from scipy.linalg.cython_lapack cimport dsyevd


cdef inline void cm_gemm(bint trans_a, bint trans_b, int M, int N, int K,
                         const double* A, int lda, const double* B, int ldb,
                         double* C, int ldc) noexcept nogil:
    """Column-major C (M x N) = op(A) op(B): _blas.gemm is row-major, and
    the row-major product C^T = op(B)^T op(A)^T is this very dgemm call."""
    gemm(trans_if(trans_b), trans_if(trans_a), N, M, K, 1.0, B, ldb, A, lda,
         0.0, C, ldc)


cdef int eigh_small(int n, double* G, double* d, double* work, int lwork,
                    int* iwork, int liwork) noexcept nogil:
    """G (n x n, lower triangle) <- its eigenvectors, d its eigenvalues
    (ascending): LAPACK's divide and conquer, as _subspace.small_eigh."""
    cdef char jobz = b'V'
    cdef char uplo = b'L'
    cdef int info = 0
    dsyevd(&jobz, &uplo, &n, G, &n, d, work, &lwork, iwork, &liwork, &info)
    return info


cdef int scaled_kept(int n, const double* U, const double* d, double above,
                     double* S) noexcept nogil:
    """S = U[:, keep] / sqrt(d[keep]) with keep = d > above, column-major
    n x (kept); returns the columns kept."""
    cdef Py_ssize_t i, j
    cdef int kept = 0
    cdef double r
    for j in range(n):
        if d[j] > above:
            r = sqrt(d[j])
            for i in range(n):
                S[i + kept * n] = U[i + j * <Py_ssize_t> n] / r
            kept += 1
    return kept


cdef int orthonormalize(int m, double* basis, int D, double* Z, int nz,
                        double unit, double drop, double* buf,
                        int* iwork, int* info_out) noexcept nogil:
    """The body of orthonormalize_block; buf holds workspace(m, D, nz)
    entries, iwork 3 + 5 nz.  Returns the columns kept, or -1 when an
    eigensolve failed (its LAPACK info in info_out)."""
    cdef Py_ssize_t i
    cdef int info, nk, n2
    cdef int lwork = 1 + 6 * nz + 2 * nz * nz, liwork = 3 + 5 * nz
    cdef double* G = buf
    cdef double* S = G + nz * nz
    cdef double* d = S + nz * nz
    cdef double* work = d + nz
    cdef double* T = work + lwork
    cdef double* P = T + <Py_ssize_t> D * nz
    cdef double* Bn = basis + <Py_ssize_t> D * m
    # Sweep one: Z is already projected off the space (projected=True).
    for i in range(<Py_ssize_t> m * nz):
        Z[i] = Z[i] / unit
    cm_gemm(True, False, nz, nz, m, Z, m, Z, m, G, nz)
    info = eigh_small(nz, G, d, work, lwork, iwork, liwork)
    if info != 0:
        info_out[0] = info
        return -1
    nk = scaled_kept(nz, G, d, drop * drop, S)
    if nk == 0:
        return 0
    cm_gemm(False, False, m, nk, nz, Z, m, S, nz, Bn, m)
    # Sweep two: project again, then normalize.
    if D > 0:
        cm_gemm(True, False, D, nk, m, basis, m, Bn, m, T, D)
        cm_gemm(False, False, m, nk, D, basis, m, T, D, P, m)
        for i in range(<Py_ssize_t> m * nk):
            Bn[i] = Bn[i] - P[i]
    cm_gemm(True, False, nk, nk, m, Bn, m, Bn, m, G, nk)
    info = eigh_small(nk, G, d, work, lwork, iwork, liwork)
    if info != 0:
        info_out[0] = info
        return -1
    n2 = scaled_kept(nk, G, d, 0.25, S)
    if n2 == 0:
        return 0
    cm_gemm(False, False, m, n2, nk, Bn, m, S, nk, P, m)
    for i in range(<Py_ssize_t> m * n2):
        Bn[i] = P[i]
    return n2


cdef Py_ssize_t workspace(Py_ssize_t m, Py_ssize_t D, Py_ssize_t nz):
    return 2 * nz * nz + nz + (1 + 6 * nz + 2 * nz * nz) + D * nz + m * nz


def orthonormalize_block(double[::1, :] basis, Py_ssize_t D,
                         double[::1, :] Z, Py_ssize_t nz, double unit,
                         double drop):
    """Orthonormalize Z[:, :nz] / unit against basis[:, :D] into
    basis[:, D:D + nb]; returns nb (0: nothing is left).

    The same arithmetic as laefast._subspace.orthonormal_against(
    Z[:, :nz] / unit, basis[:, :D], drop, projected=True): Cholesky-QR
    through the Gram matrix's eigendecomposition, twice, the second time
    after projecting off the space again; a direction is dropped where
    its remainder is below drop (first sweep) or 1/2 (second).  Z is
    overwritten (scaled by 1 / unit).
    """
    cdef Py_ssize_t m = basis.shape[0]
    cdef int nb, info = 0
    if not (0 <= D and 0 < nz <= Z.shape[1] and Z.shape[0] == m
            and D + nz <= basis.shape[1]):
        raise ValueError("orthonormalize_block: inconsistent shapes")
    cdef double* buf = <double*> malloc(sizeof(double) * workspace(m, D, nz))
    cdef int* iwork = <int*> malloc(sizeof(int) * (3 + 5 * nz))
    if buf == NULL or iwork == NULL:
        free(buf)
        free(iwork)
        raise MemoryError()
    try:
        with nogil:
            nb = orthonormalize(m, &basis[0, 0], D, &Z[0, 0], nz, unit,
                                drop, buf, iwork, &info)
    finally:
        free(buf)
        free(iwork)
    if nb < 0:
        raise np.linalg.LinAlgError(
            f"the eigendecomposition of a {nz} x {nz} block's Gram matrix "
            f"did not converge (LAPACK info {info})")
    return nb


def project_block(double[::1, :] basis, double[::1, :] image,
                  double[:, ::1] H, double[::1, :] Z, Py_ssize_t D,
                  Py_ssize_t nb):
    """Grow the projected matrix by the new block B = basis[:, D:D + nb]
    with image CB = image[:, D:D + nb], and project CB off the space.

    With K = basis[:, :D + nb]: top = K^T CB, H[:D + nb, D:D + nb] = top,
    H[D:D + nb, :D] = top[:D]^T, Z[:, :nb] = CB - K top.  Returns
    max |H[:D + nb, :D + nb]| (NaN if it holds one): the scale of the
    next orthonormalization.
    """
    cdef Py_ssize_t m = basis.shape[0], Dn = D + nb, ldh = H.shape[1]
    cdef Py_ssize_t i, j
    cdef double mx = 0.0, v
    if not (0 <= D and 0 < nb <= Z.shape[1] and Z.shape[0] == m
            and image.shape[0] == m and Dn <= basis.shape[1]
            and Dn <= image.shape[1] and Dn <= H.shape[0]
            and Dn <= H.shape[1]):
        raise ValueError("project_block: inconsistent shapes")
    cdef double* T = <double*> malloc(sizeof(double) * (Dn * nb + m * nb))
    if T == NULL:
        raise MemoryError()
    cdef double* P = T + Dn * nb
    cdef const double* K = &basis[0, 0]
    cdef const double* CB = &image[0, 0] + D * m
    cdef double* h = &H[0, 0]
    cdef double* z = &Z[0, 0]
    try:
        with nogil:
            cm_gemm(True, False, Dn, nb, m, K, m, CB, m, T, Dn)
            for j in range(nb):
                for i in range(Dn):
                    h[i * ldh + D + j] = T[i + j * Dn]
                for i in range(D):
                    h[(D + j) * ldh + i] = T[i + j * Dn]
            cm_gemm(False, False, m, nb, Dn, K, m, T, Dn, P, m)
            for i in range(m * nb):
                z[i] = CB[i] - P[i]
            for i in range(Dn):
                for j in range(Dn):
                    v = fabs(h[i * ldh + j])
                    if v > mx:
                        mx = v
                    elif v != v:
                        mx = v
                        break
                if mx != mx:
                    break
    finally:
        free(T)
    return mx
