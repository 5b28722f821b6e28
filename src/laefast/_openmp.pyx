"""What the build got for OpenMP."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define LAEFAST_OPENMP 1
    #else
    #define LAEFAST_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    """
    int LAEFAST_OPENMP
    int omp_get_max_threads() noexcept nogil


def openmp_enabled():
    """True when the compiled kernels were built with OpenMP."""
    return bool(LAEFAST_OPENMP)


def max_threads():
    """The thread count an OpenMP region would use now (1 without OpenMP)."""
    return omp_get_max_threads()
