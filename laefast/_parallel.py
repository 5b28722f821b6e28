"""Thread counts for the OpenMP kernels, and BLAS kept serial inside them."""

import contextlib
import functools
import math
import os
import threading
import warnings
import weakref

from threadpoolctl import ThreadpoolController

from ._openmp import max_threads, openmp_enabled
from ._params import check

__all__ = ["resolve_threads", "available_cpus", "serial_blas",
           "blas_is_serial", "instance_lock", "serialized"]


def resolve_threads(n_threads):
    """The thread count to use: None means every CPU this process may use.

    None follows OMP_NUM_THREADS when it is set; otherwise it is OpenMP's
    count capped by :func:`available_cpus` (the CPU affinity mask and a
    cgroup CPU quota, as scikit-learn's _openmp_effective_n_threads does):
    in a container limited to 2 CPUs on a 64-core host, 2, not 64.
    Without OpenMP in the build the answer is always 1.

    In a process forked from one that had already loaded laefast (for
    example a multiprocessing worker under Linux's default 'fork' start
    method) the answer is 1, with a RuntimeWarning the first time: GNU
    libgomp's thread pool does not survive fork, and a parallel region in
    the child would wait for threads that no longer exist.
    """
    global _fork_warned
    if n_threads is None:
        n_threads = max_threads()
        if "OMP_NUM_THREADS" not in os.environ:
            n_threads = min(n_threads, available_cpus())
    else:
        check("n_threads", n_threads)
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
    return max(1, int(n_threads))


# cgroup CPU limits (as loky, which scikit-learn's thread count uses):
# v2's "quota period" (or "max period"), v1's quota and period files.
_CGROUP_V2_CPU_MAX = "/sys/fs/cgroup/cpu.max"
_CGROUP_V1_QUOTA = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
_CGROUP_V1_PERIOD = "/sys/fs/cgroup/cpu/cpu.cfs_period_us"
_available = None       # available_cpus(), read once


def _cgroup_cpu_limit():
    """The cgroup CPU quota in CPUs (a float), or None when unlimited."""
    try:
        if os.path.exists(_CGROUP_V2_CPU_MAX):
            with open(_CGROUP_V2_CPU_MAX) as f:
                quota, period = f.read().split()[:2]
            if quota == "max":
                return None
        elif os.path.exists(_CGROUP_V1_QUOTA):
            with open(_CGROUP_V1_QUOTA) as f:
                quota = f.read().strip()
            with open(_CGROUP_V1_PERIOD) as f:
                period = f.read().strip()
        else:
            return None
        quota, period = int(quota), int(period)
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:        # v1 writes -1 for no limit
        return None
    return quota / period


def available_cpus(refresh=False):
    """CPUs this process may use: os.cpu_count(), capped by the affinity
    mask (os.sched_getaffinity) and by a cgroup v1/v2 CPU quota (rounded
    up, at least 1).  Read once; refresh=True reads again."""
    global _available
    if _available is None or refresh:
        n = os.cpu_count() or 1
        if hasattr(os, "sched_getaffinity"):
            try:
                n = min(n, len(os.sched_getaffinity(0)))
            except OSError:
                pass
        quota = _cgroup_cpu_limit()
        if quota is not None:
            n = min(n, math.ceil(quota))
        _available = max(1, n)
    return _available


_forked = False
_fork_warned = False


def _after_fork_in_child():
    global _forked, _lock, _scan_lock
    _forked = True
    # A lock another thread held at the fork would never be released here.
    _lock = threading.Lock()
    _scan_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_blas_libs = None   # threadpoolctl controllers of the loaded BLAS libraries
_scan_lock = threading.Lock()
# serial_blas may be entered from several Python threads at once: the first
# to enter limits BLAS, the last to leave restores it (a per-call save and
# restore would let one thread restore another's limit as the "original").
_lock = threading.Lock()
_active = 0
_saved_limits = None


def _blas_controllers():
    """threadpoolctl's controllers of the loaded BLAS libraries, found once
    (scanning the loaded libraries cost about 10 ms here).  Its own lock:
    serial_blas calls this holding _lock."""
    global _blas_libs
    if _blas_libs is None:
        with _scan_lock:
            if _blas_libs is None:
                _blas_libs = ThreadpoolController().select(
                    user_api="blas").lib_controllers
    return _blas_libs


def blas_is_serial():
    """Whether every loaded BLAS (NumPy's, SciPy's) runs on one thread now:
    a call into each library, about a microsecond (the first call scans
    the loaded libraries).  The count is process-wide: another thread's
    serial_blas makes it true for every thread while it lasts."""
    return all(lib.num_threads == 1 for lib in _blas_controllers())


@contextlib.contextmanager
def serial_blas(n_threads=2):
    """Limit BLAS (NumPy's and SciPy's) to one thread for the block.

    The OpenMP kernels call BLAS from every thread of a parallel region;
    a threaded BLAS inside would oversubscribe the cores.  With
    n_threads == 1 there is no parallel region and nothing to limit.
    Safe to enter from several threads at once: the limits in force
    before the first entry are restored when the last one leaves.
    """
    global _active, _saved_limits
    if n_threads <= 1:
        yield
        return
    with _lock:
        _blas_controllers()
        if _active == 0:
            # The libraries' own setters, not threadpoolctl's limit():
            # entering and leaving cost 17 us that way, a part of a small
            # fit's time.
            _saved_limits = [lib.num_threads for lib in _blas_libs]
            for lib, threads in zip(_blas_libs, _saved_limits):
                if threads != 1:
                    lib.set_num_threads(1)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                for lib, threads in zip(_blas_libs, _saved_limits):
                    if threads != 1:
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
