"""scikit-learn's digits (1797 x 64), k=10, lam = 0.2 x the 10th eigenvalue
of C.  Skipped when scikit-learn is not installed."""

from . import _common as _c

_PROBLEM = "digits"


def _solver_cache(self):
    # One measurement of every method, shared by ErrorPerSecond and
    # ReferenceErrorPerSecond (asv keys the cache by this function's line).
    return _c.solver_cache(_PROBLEM)


_solver_cache.timeout = 120


def _tolerance_cache(self):
    # The problem without its samples, and per method the iterations after
    # which the U error is at most _c.U_TOL (bisection over solve runs).
    return _c.tolerance_cache(_PROBLEM)


_tolerance_cache.timeout = 120


def _problem_cache(self):
    # The problem without its samples, shared by the timing classes.
    return _c.problem_cache(_PROBLEM)


_problem_cache.timeout = 120


def _memory_cache(self):
    # lam, computed in the cache's process: the measured one holds only X.
    return _c.memory_cache(_PROBLEM)


class TimeToTolerance(_c._TimeToTolerance):
    problem = _PROBLEM
    setup_cache = _tolerance_cache


class Solve(_c._Solve):
    problem = _PROBLEM
    setup_cache = _problem_cache


class SolveReference(_c._SolveReference):
    problem = _PROBLEM
    setup_cache = _problem_cache
    timeout = 60


class Step(_c._Step):
    problem = _PROBLEM
    setup_cache = _problem_cache


class StepReference(_c._StepReference):
    problem = _PROBLEM
    setup_cache = _problem_cache


class ErrorPerSecond(_c._ErrorPerSecond):
    problem = _PROBLEM
    setup_cache = _solver_cache


class ReferenceErrorPerSecond(_c._ReferenceErrorPerSecond):
    problem = _PROBLEM
    setup_cache = _solver_cache


class Peers(_c._Peers):
    problem = _PROBLEM


class PeerAccuracy(_c._PeerAccuracy):
    problem = _PROBLEM

    def setup_cache(self):
        return _c.peer_cache(_PROBLEM)
    setup_cache.timeout = 60


class Memory(_c._Memory):
    problem = _PROBLEM
    setup_cache = _memory_cache
