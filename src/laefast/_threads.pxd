# How many OpenMP threads a parallel region gets; shared by the kernels.

from laefast._constants cimport PARALLEL_MIN_FLOPS, THREAD_MIN_FLOPS


cdef inline int threads_for(Py_ssize_t n_tasks, int n_threads,
                            double flops) noexcept nogil:
    """Threads for one parallel region: 1 unless each gets real work.

    Below PARALLEL_MIN_FLOPS (4e6) flops a parallel region costs more
    than it saves: waking the team takes tens of microseconds, and on a
    loaded machine a spinning worker can cost a whole scheduler slice.
    """
    if flops < PARALLEL_MIN_FLOPS or n_threads < 1:
        return 1
    return <int> min(<Py_ssize_t> n_threads, max(<Py_ssize_t> 1, n_tasks))


cdef inline int threads_for_work(Py_ssize_t n_tasks, int n_threads,
                                 double flops,
                                 double per_thread=THREAD_MIN_FLOPS) noexcept nogil:
    """Threads for a one-pass kernel over data: each thread gets at least
    per_thread flops (THREAD_MIN_FLOPS, 1e7: about a millisecond), or the
    team costs more than it saves."""
    cdef Py_ssize_t by_work = <Py_ssize_t> (flops / per_thread)
    if n_threads < 1:
        return 1
    return <int> max(<Py_ssize_t> 1, min(min(<Py_ssize_t> n_threads, n_tasks),
                                          by_work))
