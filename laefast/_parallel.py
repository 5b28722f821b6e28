"""Thread counts for the OpenMP kernels, and BLAS kept serial inside them."""

import contextlib
import functools
import numbers
import os
import threading
import warnings
import weakref

from threadpoolctl import ThreadpoolController

from ._openmp import max_threads, openmp_enabled

__all__ = ["resolve_threads", "serial_blas", "instance_lock", "serialized"]


def resolve_threads(n_threads):
    """The thread count to use: None means every core OpenMP offers.

    None follows OMP_NUM_THREADS when it is set.  Without OpenMP in the
    build the answer is always 1.

    In a process forked from one that had already loaded laefast (for
    example a multiprocessing worker under Linux's default 'fork' start
    method) the answer is 1, with a RuntimeWarning the first time: GNU
    libgomp's thread pool does not survive fork, and a parallel region in
    the child would wait for threads that no longer exist.
    """
    global _fork_warned
    if n_threads is None:
        n_threads = max_threads()
    elif (not isinstance(n_threads, numbers.Integral)
          or isinstance(n_threads, bool) or n_threads < 1):
        raise ValueError(
            f"n_threads must be a positive integer or None, got {n_threads!r}")
    elif n_threads > _MAX_THREADS:
        raise ValueError(
            f"n_threads={n_threads} is more threads than OpenMP can start; "
            "pass None (every core) or the number of cores")
    if not openmp_enabled():
        return 1
    if _forked and n_threads > 1:
        if not _fork_warned:
            _fork_warned = True
            warnings.warn(
                "laefast runs on one thread in this process: it was forked "
                "(os.fork, or multiprocessing's 'fork' start method) from a "
                "process that had loaded laefast, and the OpenMP runtime "
                "cannot start threads after fork. Use the 'spawn' or "
                "'forkserver' start method for parallel kernels in workers.",
                RuntimeWarning, stacklevel=3)
        return 1
    return int(n_threads)


# OpenMP thread counts are C ints; anything near that is a mistake.
_MAX_THREADS = 1 << 16
_forked = False
_fork_warned = False


def _after_fork_in_child():
    global _forked, _lock
    _forked = True
    # A lock another thread held at the fork would never be released here.
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_controller = None
# serial_blas may be entered from several Python threads at once: the first
# to enter limits BLAS, the last to leave restores it (a per-call save and
# restore would let one thread restore another's limit as the "original").
_lock = threading.Lock()
_active = 0
_saved_limits = None


@contextlib.contextmanager
def serial_blas(n_threads=2):
    """Limit BLAS (NumPy's and SciPy's) to one thread for the block.

    The OpenMP kernels call BLAS from every thread of a parallel region;
    a threaded BLAS inside would oversubscribe the cores.  With
    n_threads == 1 there is no parallel region and nothing to limit.
    Safe to enter from several threads at once: the limits in force
    before the first entry are restored when the last one leaves.
    """
    global _controller, _active, _saved_limits
    if n_threads <= 1:
        yield
        return
    with _lock:
        if _controller is None:
            # Scanning the loaded libraries costs about a millisecond: once.
            _controller = ThreadpoolController()
        if _active == 0:
            blas = _controller.select(user_api="blas")
            _saved_limits = [lib.num_threads for lib in blas.lib_controllers]
            blas.limit(limits=1)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                blas = _controller.select(user_api="blas")
                for lib, threads in zip(blas.lib_controllers, _saved_limits):
                    lib.set_num_threads(threads)


# One re-entrant lock per estimator, held by the methods that change its
# state: two Python threads feeding one LAEPCA or LAEStream take turns, and
# no batch is lost (each partial_fit copies the state, adds to the copy and
# swaps it in, which without the lock would drop a concurrent batch).  The
# locks live here rather than on the objects, so that pickling and
# scikit-learn's clone never meet them.
_instance_locks = weakref.WeakKeyDictionary()
_instance_locks_guard = threading.Lock()


def instance_lock(obj):
    """The re-entrant lock that serializes `obj`'s state-changing calls."""
    with _instance_locks_guard:
        lock = _instance_locks.get(obj)
        if lock is None:
            lock = _instance_locks[obj] = threading.RLock()
        return lock


def serialized(method):
    """Decorator: run the method holding instance_lock(self)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with instance_lock(self):
            return method(self, *args, **kwargs)
    return locked
