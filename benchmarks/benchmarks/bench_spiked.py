"""A spiked covariance problem: m=1000, n=20000, k=20, twenty variances
20..10 above unit noise, lam = 0.2 x the 20th eigenvalue of C, laefast's
default alpha and start recipe (laefast_bench.SPIKED).

The reference is capped here: each of its gradient steps costs the m^3
product (W2 W1 - I) C, and its exact-untied needs the 20000 x 20000
Kronecker solve; those reference benchmarks are skipped (with the reason),
and the error-per-second ratio compares both over the capped iterations.
Single runs take seconds (laefast exact-untied, IncrementalPCA), so the
timing classes take few samples.
"""

from . import _common as _c

_PROBLEM = "spiked"


def _solver_cache(self):
    # One measurement of every method, shared by ErrorPerSecond and
    # ReferenceErrorPerSecond (asv keys the cache by this function's line).
    return _c.solver_cache(_PROBLEM)


_solver_cache.timeout = 300


def _tolerance_cache(self):
    # The problem without its samples, and per method the iterations after
    # which the U error is at most _c.U_TOL (bisection over solve runs).
    return _c.tolerance_cache(_PROBLEM)


_tolerance_cache.timeout = 900


def _problem_cache(self):
    # The problem without its samples, shared by the timing classes.
    return _c.problem_cache(_PROBLEM)


_problem_cache.timeout = 120


def _memory_cache(self):
    # lam, computed in the cache's process: the measured one holds only X.
    return _c.memory_cache(_PROBLEM)


class _Few:
    number = 1
    repeat = (1, 3, 20.0)
    rounds = 1
    warmup_time = 0
    timeout = 120


class TimeToTolerance(_Few, _c._TimeToTolerance):
    problem = _PROBLEM
    setup_cache = _tolerance_cache


class Solve(_Few, _c._Solve):
    problem = _PROBLEM
    setup_cache = _problem_cache


class SolveReference(_Few, _c._SolveReference):
    problem = _PROBLEM
    setup_cache = _problem_cache


class Step(_c._Step):
    problem = _PROBLEM
    setup_cache = _problem_cache
    rounds = 1
    timeout = 120


class StepReference(_c._StepReference):
    problem = _PROBLEM
    setup_cache = _problem_cache
    rounds = 1
    warmup_time = 0
    timeout = 120


class ErrorPerSecond(_c._ErrorPerSecond):
    problem = _PROBLEM
    setup_cache = _solver_cache


class ReferenceErrorPerSecond(_c._ReferenceErrorPerSecond):
    problem = _PROBLEM
    setup_cache = _solver_cache


class Peers(_Few, _c._Peers):
    problem = _PROBLEM


class PeerAccuracy(_c._PeerAccuracy):
    problem = _PROBLEM

    def setup_cache(self):
        return _c.peer_cache(_PROBLEM)
    setup_cache.timeout = 180


class Memory(_c._Memory):
    problem = _PROBLEM
    setup_cache = _memory_cache
    timeout = 120
