# Fused float/double wrappers over SciPy's BLAS and LAPACK, in row-major terms.
#
# Every kernel in laefast calls BLAS/LAPACK only through these helpers, so that
# the one BLAS that runs is SciPy's (mixing it with NumPy's in a hot loop makes
# the two thread pools fight) and so that the row-major bookkeeping lives in one
# place.  All arrays are C-contiguous; a row-major (r x c) block with leading
# dimension ld is the column-major (c x r) block with the same ld, so a
# row-major product is computed as the column-major product of the transposes.
#
# The helpers are inline and header-only: no extra extension module is needed.

from cython cimport floating
from scipy.linalg.cython_blas cimport (
    sgemm, dgemm, ssyrk, dsyrk, snrm2, dnrm2,
)
from scipy.linalg.cython_lapack cimport (
    spotrf, dpotrf, spotrs, dpotrs, ssyev, dsyev,
)

# SciPy's cython_blas takes Fortran INTEGER arguments as C int (LP64).
ctypedef int blas_int


# Whether gemm() transposes an operand, as scikit-learn's _cython_blas names
# it: gemm(NO_TRANS, TRANS, ...) reads C = A B^T.
cdef enum BLAS_Trans:
    NO_TRANS = 0
    TRANS = 1


cdef inline BLAS_Trans trans_if(bint transpose) noexcept nogil:
    """TRANS if transpose else NO_TRANS, for a flag known at run time."""
    return TRANS if transpose else NO_TRANS


cdef inline void gemm(BLAS_Trans trans_a, BLAS_Trans trans_b,
                      blas_int m, blas_int n, blas_int k,
                      floating alpha, const floating* a, blas_int lda,
                      const floating* b, blas_int ldb,
                      floating beta, floating* c, blas_int ldc) noexcept nogil:
    """Row-major C (m x n) = alpha op(A) op(B) + beta C."""
    # Column-major C^T = op(B)^T op(A)^T: swap the operands, keep the flags.
    cdef char ta = b'T' if trans_a == TRANS else b'N'
    cdef char tb = b'T' if trans_b == TRANS else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb,
              <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb,
              <double*> a, &lda, &beta, c, &ldc)


cdef inline void syrk_at_a(blas_int n, blas_int k, floating alpha,
                           const floating* a, blas_int lda, floating beta,
                           floating* c, blas_int ldc) noexcept nogil:
    """Row-major C (n x n) = alpha A^T A + beta C for row-major A (k x n).

    Only the upper triangle of C (row-major sense) is written; call
    mirror_upper() for the full matrix.
    """
    # Row-major A (k x n) is column-major A^T (n x k): C = (A^T)(A^T)^T, 'N'.
    # Column-major lower triangle == row-major upper triangle.
    cdef char uplo = b'L'
    cdef char trans = b'N'
    if floating is float:
        ssyrk(&uplo, &trans, &n, &k, &alpha, <float*> a, &lda, &beta, c, &ldc)
    else:
        dsyrk(&uplo, &trans, &n, &k, &alpha, <double*> a, &lda, &beta, c, &ldc)


cdef inline void mirror_upper(Py_ssize_t n, floating* c,
                              Py_ssize_t ldc) noexcept nogil:
    """Copy the row-major upper triangle of C into its lower triangle."""
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(i):
            c[i * ldc + j] = c[j * ldc + i]


cdef inline floating nrm2(blas_int n, const floating* x,
                          blas_int incx) noexcept nogil:
    if floating is float:
        return snrm2(&n, <float*> x, &incx)
    else:
        return dnrm2(&n, <double*> x, &incx)


cdef inline blas_int potrf(blas_int n, floating* a, blas_int lda) noexcept nogil:
    """Cholesky factor of a symmetric matrix in place; returns LAPACK's info."""
    # Symmetric input: row- and column-major agree.
    cdef char uplo = b'L'
    cdef blas_int info = 0
    if floating is float:
        spotrf(&uplo, &n, a, &lda, &info)
    else:
        dpotrf(&uplo, &n, a, &lda, &info)
    return info


cdef inline blas_int potrs_cm(blas_int n, blas_int nrhs, const floating* a,
                              blas_int lda, floating* b,
                              blas_int ldb) noexcept nogil:
    """Solve A X = B after potrf, with B *column-major* (n x nrhs).

    A row-major (nrhs x n) block holds exactly that: each of its rows is one
    right-hand side.
    """
    cdef char uplo = b'L'
    cdef blas_int info = 0
    if floating is float:
        spotrs(&uplo, &n, &nrhs, <float*> a, &lda, b, &ldb, &info)
    else:
        dpotrs(&uplo, &n, &nrhs, <double*> a, &lda, b, &ldb, &info)
    return info


cdef inline blas_int syev_lwork(blas_int n) noexcept nogil:
    """A work size for syev() that is always valid (3n - 1 is the minimum)."""
    return 3 * n + 64 * n


cdef inline blas_int syev(blas_int n, floating* a, blas_int lda, floating* w,
                          floating* work, blas_int lwork) noexcept nogil:
    """Eigendecomposition of a symmetric matrix, eigenvalues ascending.

    On exit the *rows* of the row-major A are the eigenvectors (LAPACK writes
    them as columns of the column-major matrix).
    """
    cdef char jobz = b'V'
    cdef char uplo = b'L'
    cdef blas_int info = 0
    if floating is float:
        ssyev(&jobz, &uplo, &n, a, &lda, w, work, &lwork, &info)
    else:
        dsyev(&jobz, &uplo, &n, a, &lda, w, work, &lwork, &info)
    return info
