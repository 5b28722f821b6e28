"""Base classes of the asv suite; one module per problem subclasses them.

Every measurement goes through the harness in ``benchmarks/laefast_bench/``
(problems, timers, peers), which asv imports from the working tree it runs
in, not from the measured commit: the same harness measures every commit
(see that package's docstring).  The classes here start with an
underscore so that asv does not collect them; bench_paper.py,
bench_spiked.py and bench_digits.py set ``problem`` and the timeouts, and
define ``setup_cache`` themselves (asv keys a cache by the module and line
of its ``setup_cache``, so an inherited one would be shared by all
problems).

What each benchmark measures, and which direction is better.  asv has no
notion of direction: ``asv compare`` and ``asv continuous`` call every
increase a regression.  That is right for seconds, bytes and iteration
counts, and wrong for the higher-is-better numbers, which are named below.

Lower is better (asv reads these correctly):

- ``time_laefast_to_tolerance``: seconds from the common start until the U
  error is at most ``U_TOL`` (1e-4, the paper's U error summed over the k
  directions): laefast.solve capped at the iteration count where the U
  error crosses U_TOL (found once per problem, in setup_cache, by
  bisection on that count);  ``track_laefast_iterations_to_tolerance`` is
  that count;
- ``time_laefast`` / ``time_reference``: laefast.solve / laefast.reference
  on the problem's Gram matrix from its common start, to the method's
  stopping rule at the problem's ``tol`` (1e-8 on the stopping quantity;
  the reference is skipped where it is capped or infeasible: see
  ``laefast_bench.reference_cap``);
- ``time_laefast_step`` / ``time_reference_step``: one iteration;
- ``track_*_seconds_per_error``: the inverse of error per second, seconds
  per unit of U error removed (the number to watch in ``asv continuous``);
- ``time_peer``: the peers (numpy/scipy eigh on C and forming C; with
  scikit-learn, PCA's solvers and IncrementalPCA), which are direct and
  reach rounding-level accuracy (``track_peer_u_error`` says how close);
- ``track_*_u_error``, ``track_*_iterations``, ``track_*_seconds_per_iteration``;
- ``peakmem_*``: fitting from the samples versus forming C.

Higher is better (asv shows an improvement as a "regression"):

- ``track_*_error_per_second``: U error removed per second from the common
  start to the stopping rule (or to the reference's iteration cap, where
  the ratio compares laefast over the same iterations), best of several
  runs inside the benchmark;
- ``track_laefast_over_reference`` and ``..._per_step``: laefast's error
  per second over the reference's (the speedup).
"""

import os
import sys

# asv imports this suite through an importer for the suite's package alone
# (asv_runner's SpecificImporter), without its parent folder on sys.path:
# put benchmarks/ there, so that the harness beside the suite imports the
# way it does for the scripts.
_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import laefast_bench as _bench  # noqa: E402  (benchmarks/laefast_bench)

METHODS = _bench.METHODS
PEERS = tuple(_bench.PEERS)
REPEATS = 3            # best of, inside the track_ benchmarks
BUDGET = 1.0           # ... stopping once a row has spent this many seconds
# The stated tolerance of time_laefast_to_tolerance: the paper's U error
# (sum over the k directions of min ||u_hat - u||, ||u_hat + u||).
U_TOL = 1e-4


def problem(name):
    """The problem, or NotImplementedError (asv: skipped) if unavailable."""
    return _bench.get_problem(name)   # NotImplementedError: no scikit-learn


def problem_cache(name):
    """setup_cache of the timing benchmarks: the problem without its samples
    (C, truth, start: small to pickle), so that each benchmark process does
    not rebuild it; None where the problem is unavailable."""
    try:
        return problem(name).without_samples()
    except NotImplementedError:
        return None


def memory_cache(name):
    """setup_cache of the memory benchmarks: lam, computed in the cache's
    own process so that the measured ones only hold the samples."""
    try:
        _, k, lam = _bench.problem_samples(name)
    except NotImplementedError:
        return None
    return {"k": k, "lam": lam}


def _u_error_after(P, method, max_iter):
    from laefast.metrics import u_error
    res = _bench.run_laefast(P, method, max_iter=max_iter)
    return res, u_error(res.components.T, P.U_true)


def iterations_to_tolerance(P, method, u_tol=U_TOL):
    """Fewest iterations from the common start after which laefast.solve's
    U error is at most u_tol (bisection on max_iter; the iterates do not
    depend on it), or None if the stopping rule holds first."""
    full, err = _u_error_after(P, method, None)
    if not err <= u_tol:
        return None
    lo, hi = 0, full.n_iter          # hi reaches u_tol, lo is not known to
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _u_error_after(P, method, mid)[1] <= u_tol:
            hi = mid
        else:
            lo = mid
    return hi


def tolerance_cache(name):
    """setup_cache of the time-to-tolerance benchmarks: the problem
    without its samples and, per method, iterations_to_tolerance."""
    try:
        P = problem(name)
    except NotImplementedError:
        return None
    return {"problem": P.without_samples(),
            "iterations": {m: iterations_to_tolerance(P, m) for m in METHODS}}


def _cached(P):
    if P is None:
        raise NotImplementedError("problem unavailable")
    return P


def solver_cache(name):
    """setup_cache of the error-per-second benchmarks: all six methods."""
    try:
        P = problem(name)
    except NotImplementedError:
        return None
    result = _bench.measure_problem(
        P, METHODS, repeats=REPEATS, budget=BUDGET, with_reference=True,
        with_peers=False, with_fit=False)
    return {row["name"]: row for row in result["rows"]
            if row["solver"] == "laefast"} | {
        "reference " + row["name"]: row for row in result["rows"]
        if row["solver"] == "reference"}


def peer_cache(name):
    """setup_cache of the peers' accuracy benchmarks."""
    try:
        P = problem(name)
    except NotImplementedError:
        return None
    rows = {}
    for peer in _bench.peer_names():
        _bench.settle(P.settle_s)
        rows[peer] = _bench.measure_peer(P, peer, REPEATS, BUDGET).as_dict()
    return rows


def _value(cache, key, field):
    if cache is None:
        raise NotImplementedError("problem unavailable")
    row = cache.get(key)
    if row is None or row.get("skipped") or row.get(field) is None:
        raise NotImplementedError(f"{key}: not measured")
    return row[field]


class _TimeToTolerance:
    """Seconds until laefast.solve's U error is at most U_TOL (lower is
    better), and the iterations that takes."""

    problem = None
    params = [METHODS]
    param_names = ["method"]

    def setup(self, cache, method):
        if cache is None:
            raise NotImplementedError("problem unavailable")
        self.n_iter = cache["iterations"][method]
        if self.n_iter is None:
            raise NotImplementedError(
                f"{method}: U error > {U_TOL:g} when its stopping rule holds")
        self.P = cache["problem"]

    def time_laefast_to_tolerance(self, cache, method):
        _bench.run_laefast(self.P, method, max_iter=self.n_iter)

    def track_laefast_iterations_to_tolerance(self, cache, method):
        return self.n_iter
    track_laefast_iterations_to_tolerance.unit = "iterations"


def _inverse(error_per_second):
    """Seconds per unit of U error removed: the lower-is-better form; NaN
    (asv: n/a) for a run that removed none (its U error grew from the
    start: the number has no meaning, and no direction)."""
    if not error_per_second > 0:
        return float("nan")
    return 1.0 / error_per_second


class _Solve:
    """Wall time of laefast.solve to the stopping rule at the problem's tol
    (lower is better)."""

    problem = None
    params = [METHODS]
    param_names = ["method"]

    def setup(self, P, method):
        self.P = _cached(P)

    def time_laefast(self, P, method):
        _bench.run_laefast(self.P, method)


class _SolveReference:
    """Wall time of laefast.reference to the stopping rule."""

    problem = None
    params = [METHODS]
    param_names = ["method"]

    def setup(self, P, method):
        self.P = _cached(P)
        cap, reason = _bench.reference_cap(self.P, method)
        if cap is not None:
            raise NotImplementedError(reason)

    def time_reference(self, P, method):
        _bench.run_reference(self.P, method)


class _Step:
    """Wall time of one laefast.step (in place; the state carries over)."""

    problem = None
    params = [METHODS]
    param_names = ["method"]

    def setup(self, P, method):
        self.P = _cached(P)
        self.step = _bench.step_function(self.P, method, "laefast")

    def time_laefast_step(self, P, method):
        self.step()


class _StepReference:
    """Wall time of one iteration of laefast.reference."""

    problem = None
    params = [METHODS]
    param_names = ["method"]

    def setup(self, P, method):
        self.P = _cached(P)
        cap, reason = _bench.reference_cap(self.P, method)
        if cap == 0:
            raise NotImplementedError(reason)
        self.step = _bench.step_function(self.P, method, "reference")

    def time_reference_step(self, P, method):
        self.step()


class _ErrorPerSecond:
    """laefast's U error removed per second, U error, iterations and time
    per iteration, to the stopping rule.

    The numbers come from setup_cache (``solver_cache``: one measurement
    per method, best of REPEATS inside); each track_ reads one of them.
    """

    problem = None
    params = [METHODS]
    param_names = ["method"]

    def setup(self, cache, method):
        if cache is None or method not in cache:
            raise NotImplementedError("problem unavailable")

    def track_laefast_error_per_second(self, cache, method):
        # Higher is better: asv shows an improvement here as a regression.
        return _value(cache, method, "error_per_second")
    track_laefast_error_per_second.unit = "U error/s (higher is better)"

    def track_laefast_seconds_per_error(self, cache, method):
        return _inverse(_value(cache, method, "error_per_second"))
    track_laefast_seconds_per_error.unit = "s per U error"

    def track_laefast_u_error(self, cache, method):
        return _value(cache, method, "u_error")
    track_laefast_u_error.unit = "U error"

    def track_laefast_seconds_per_iteration(self, cache, method):
        # laefast.solve's wall time over its iterations: the per-step cost
        # inside the compiled loop (time_laefast_step adds a Python call).
        return _value(cache, method, "seconds_per_iter")
    track_laefast_seconds_per_iteration.unit = "seconds"

    def track_laefast_iterations(self, cache, method):
        return _value(cache, method, "n_iter")
    track_laefast_iterations.unit = "iterations"


class _ReferenceErrorPerSecond:
    """The reference's U error removed per second, and laefast over it.

    Shares the setup_cache of _ErrorPerSecond.  Where the reference is
    capped, its numbers are over the capped run and the ratio compares
    laefast over the same iterations; where it is infeasible the benchmark
    is skipped with the reason.
    """

    problem = None
    params = [METHODS]
    param_names = ["method"]

    def setup(self, cache, method):
        row = None if cache is None else cache.get("reference " + method)
        if row is None:
            raise NotImplementedError("problem unavailable")
        if row.get("skipped"):
            raise NotImplementedError(row["skipped"])

    def track_reference_error_per_second(self, cache, method):
        # Higher is better: asv shows an improvement here as a regression.
        return _value(cache, "reference " + method, "error_per_second")
    track_reference_error_per_second.unit = "U error/s (higher is better)"

    def track_reference_seconds_per_error(self, cache, method):
        return _inverse(_value(cache, "reference " + method,
                               "error_per_second"))
    track_reference_seconds_per_error.unit = "s per U error"

    def track_laefast_over_reference(self, cache, method):
        # laefast's error per second over the reference's: higher is better.
        return _value(cache, method, "vs_reference")
    track_laefast_over_reference.unit = "ratio (higher is better)"

    def track_laefast_over_reference_per_step(self, cache, method):
        return _value(cache, method, "per_step_vs_reference")
    track_laefast_over_reference_per_step.unit = "ratio (higher is better)"

    def track_reference_seconds_per_iteration(self, cache, method):
        return _value(cache, "reference " + method, "seconds_per_iter")
    track_reference_seconds_per_iteration.unit = "seconds"


class _Peers:
    """Wall time of each peer: eigh on C, eigh forming C, scikit-learn."""

    problem = None
    params = [PEERS]
    param_names = ["peer"]

    def setup(self, peer):
        self.P = problem(self.problem)
        self.fn = _bench.peer_function(self.P, peer)  # NotImplementedError

    def time_peer(self, peer):
        self.fn()


class _PeerAccuracy:
    """Each peer's U error and error per second (best of REPEATS inside)."""

    problem = None
    params = [PEERS]
    param_names = ["peer"]

    def setup(self, cache, peer):
        if cache is None or peer not in cache:
            raise NotImplementedError(f"{peer} unavailable")

    def track_peer_u_error(self, cache, peer):
        return _value(cache, peer, "u_error")
    track_peer_u_error.unit = "U error"

    def track_peer_error_per_second(self, cache, peer):
        # Higher is better: asv shows an improvement here as a regression.
        return _value(cache, peer, "error_per_second")
    track_peer_error_per_second.unit = "U error/s (higher is better)"

    def track_peer_seconds_per_error(self, cache, peer):
        return _inverse(_value(cache, peer, "error_per_second"))
    track_peer_seconds_per_error.unit = "s per U error"


class _Memory:
    """Peak memory: laefast.fit on the samples (path 'data' never forms C,
    'gram' forms it once) against forming C, with laefast.gram_matrix and
    with NumPy (centered copy, then Xc^T Xc).  The samples themselves
    (built in setup) are part of every number, and so are the BLAS
    libraries' own work buffers, allocated on first use."""

    problem = None

    def setup(self, cache):
        if cache is None:
            raise NotImplementedError("problem unavailable")
        self.X, self.k, self.lam = _bench.problem_samples(self.problem,
                                                          cache["lam"])

    def _fit(self, path):
        import laefast
        laefast.fit(self.X, self.k, self.lam, path=path,
                    method="exact-tied", random_state=0, max_iter=10_000)

    def peakmem_fit_data(self, cache):
        self._fit("data")

    def peakmem_fit_gram(self, cache):
        self._fit("gram")

    def peakmem_gram_matrix_laefast(self, cache):
        import laefast
        laefast.gram_matrix(self.X)

    def peakmem_gram_matrix_numpy(self, cache):
        Xc = self.X - self.X.mean(axis=0)
        Xc.T @ Xc
