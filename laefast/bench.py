"""Benchmark laefast on this machine: what ``laefast bench`` runs.

The command (``laefast bench``, or ``python -m laefast bench``) times
laefast against its NumPy reference and its peers on three problems and
prints one table per problem; :func:`run_bench` is the whole command, and
its pieces are here for a script or a notebook:

- the problems (:data:`PROBLEMS`, :func:`get_problem`): the paper's default
  problem, a spiked covariance problem and scikit-learn's digits (when
  scikit-learn is installed), each with its Gram matrix C, the true top-k
  directions, lam, tol and one common start (W1, W2) for laefast and the
  reference (a :class:`Problem`);
- the metric: U error (:func:`laefast.metrics.u_error`) removed per second
  of wall time from the common start (:func:`error_per_second`);
- best-of timing with a time budget (:func:`time_once`, :func:`best_of`);
- the rows of one problem (:func:`measure_problem`, each a
  :class:`Measurement`) and their table (:func:`format_table`): laefast's
  methods, ``fit`` and ``LAEPCA``, the reference, and the peers
  (:data:`PEERS`: ``numpy``/``scipy`` ``eigh`` on C, with and without
  forming it, and scikit-learn's PCA solvers and IncrementalPCA, skipped
  when scikit-learn is missing);
- the machine, BLAS and thread report (:func:`environment`,
  :func:`environment_line`).

The project's asv suite and benchmark scripts do not use this module: they
have their own harness in the repository (``benchmarks/laefast_bench/``),
which stays the same for every commit asv measures, while this module
changes with the package.

Timing traps: NumPy and SciPy bundle separate OpenBLAS builds whose idle
threads spin for a while after a call; before a measurement that switches
from one to the other on a problem large enough for BLAS to use threads, the
run sleeps briefly.
"""

import contextlib
import gc
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy
import scipy.linalg

from . import reference
from ._methods import GD_METHODS, METHODS
from .metrics import u_error

__all__ = [
    "PEERS",
    "PROBLEMS",
    "Measurement",
    "Problem",
    "best_of",
    "environment",
    "environment_line",
    "error_per_second",
    "format_table",
    "get_problem",
    "measure_problem",
    "problem_unavailable",
    "run_bench",
    "time_once",
]

#: The problems :func:`get_problem` builds, by name.
PROBLEMS = ("paper", "spiked", "digits")
# Longer than OpenBLAS's spin-wait (2^28 cycles) before its idle threads
# sleep.
_SETTLE_S = 0.2
# The reference's exact-untied builds an (mk x mk) matrix; beyond this many
# bytes it is reported as infeasible instead of being run.
_KRONECKER_LIMIT = 512 << 20

#: The peers, name -> (input, needs scikit-learn): "C" peers start from the
#: Gram matrix, "data" peers from the samples (forming C if they need it).
PEERS = {
    "numpy.linalg.eigh(C)": ("C", False),
    "numpy.linalg.eigh, forming C": ("data", False),
    "scipy.linalg.eigh(C, subset)": ("C", False),
    "scipy.linalg.eigh, forming C": ("data", False),
    "PCA(covariance_eigh)": ("data", True),
    "PCA(randomized)": ("data", True),
    "PCA(arpack)": ("data", True),
    "IncrementalPCA": ("data", True),
}


# ---------------------------------------------------------------------------
# Problems

@dataclass
class Problem:
    """A benchmark problem: data, Gram matrix, truth, settings and start.

    Built by :func:`get_problem`; laefast, the reference and the peers all
    start from it.

    Attributes
    ----------
    name, title : str
        The problem's name (one of :data:`PROBLEMS`) and a one-line
        description.
    X : ndarray of shape (n, m)
        The samples.
    C : ndarray of shape (m, m)
        Gram matrix of the centered samples (formed once, with NumPy).
    U_true : ndarray of shape (m, k)
        The true top-k directions, as columns.
    eigenvalues : ndarray of shape (k + 1,)
        The top k + 1 eigenvalues of C, decreasing.
    k : int
        Components to find.
    lam, tol : float
        The penalty and the stopping tolerance every solver gets.
    W1, W2 : ndarray of shape (k, m) and (m, k)
        The common start.
    gd_alpha : float or None
        The step laefast's gradient methods get (None: its default).
    ref_alpha : float
        The step that resolves to, which the reference gets.
    start_note, lam_note : str
        How the start and lam were chosen.
    reference_caps : dict
        method -> the reference's max_iter where it is capped (0: not run).
    settle_s : float
        Seconds to sleep before each measurement (BLAS pools settle).
    start_error : float
        U error of the start's read-out.
    n : int
        Number of samples.
    """

    name: str
    title: str                 # one line: what the problem is
    X: np.ndarray              # samples, (n, m)
    C: np.ndarray              # Gram matrix of the centered samples, (m, m)
    U_true: np.ndarray         # true top-k directions, (m, k)
    eigenvalues: np.ndarray    # top k+1 eigenvalues of C, decreasing
    k: int
    lam: float
    tol: float
    W1: np.ndarray             # the common start (k, m)
    W2: np.ndarray             # (m, k)
    gd_alpha: float | None     # alpha laefast gets for GD (None: its default)
    ref_alpha: float           # the alpha that value resolves to
    start_note: str
    lam_note: str
    reference_caps: dict = field(default_factory=dict)  # method -> max_iter
    settle_s: float = 0.0
    start_error: float = 0.0
    n: int = 0                 # number of samples (kept when X is dropped)

    @property
    def m(self):
        """Number of features."""
        return self.C.shape[0]

    def alpha(self, method):
        """The step laefast.solve gets for `method`.

        Parameters
        ----------
        method : str
            One of :data:`laefast.METHODS`.

        Returns
        -------
        float or None
            gd_alpha for the gradient methods, None for the exact ones.
        """
        return self.gd_alpha if method in GD_METHODS else None

    def describe(self):
        """The problem's settings as a JSON-ready dict (no arrays).

        Returns
        -------
        dict
            Name, title, sizes, lam, tol, steps, start, the start's U
            error, the top eigenvalues and the reference's caps.
        """
        return {
            "name": self.name, "title": self.title, "m": self.m, "n": self.n,
            "k": self.k, "lam": self.lam, "lam_note": self.lam_note,
            "tol": self.tol, "gd_alpha": self.gd_alpha,
            "gd_alpha_resolved": self.ref_alpha, "start": self.start_note,
            "start_u_error": self.start_error,
            "eigenvalues_top": [float(v) for v in self.eigenvalues],
            "reference_caps": dict(self.reference_caps),
        }


def _sklearn_available():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def problem_unavailable(name):
    """Why the named problem cannot be built here, or None if it can.

    Cheap (no data is built): the command line checks every requested
    problem with it before measuring anything.

    Parameters
    ----------
    name : str
        A problem's name.

    Returns
    -------
    str or None
        The reason (an unknown name, or 'digits' without scikit-learn), or
        None.

    Examples
    --------
    >>> from laefast import bench
    >>> bench.problem_unavailable("paper") is None
    True
    >>> bench.problem_unavailable("mnist")
    "unknown problem 'mnist'; choose from ('paper', 'spiked', 'digits')"
    """
    if name not in PROBLEMS:
        return f"unknown problem {name!r}; choose from {PROBLEMS}"
    if name == "digits" and not _sklearn_available():
        return "the digits problem needs scikit-learn (pip install scikit-learn)"
    return None


def _gram_numpy(X):
    """C = Xc^T Xc with NumPy (the truth and the input every solver shares)."""
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc
    return (C + C.T) / 2


def _top_eigh(C, k):
    w, V = np.linalg.eigh(C)
    return w[::-1][:k + 1].copy(), np.ascontiguousarray(V[:, ::-1][:, :k])


def _small_start(m, k, seed):
    """laefast's default start: N(0, 1) scaled to Frobenius norm about 0.5."""
    rng = np.random.default_rng(seed)
    scale = 0.5 / np.sqrt(m * k)
    W1 = scale * rng.standard_normal((k, m))
    W2 = scale * rng.standard_normal((m, k))
    return W1, W2


def _start_error(W2, U_true):
    """U error of the read-out of a start: left singular vectors of W2."""
    U = np.linalg.svd(W2, full_matrices=False)[0]
    return u_error(U, U_true)


def _finish(problem):
    problem.start_error = _start_error(problem.W2, problem.U_true)
    problem.n = problem.X.shape[0]
    return problem


def _paper():
    m, n, k, lam, alpha, tol = 10, 10_000, 2, 50.0, 1e-5, 1e-8
    X, W1, W2 = reference.paper_problem(m, n, k)
    C = X @ X.T
    U = np.linalg.svd(X, full_matrices=False)[0][:, :k]
    w = np.linalg.eigvalsh(C)[::-1][:k + 1]
    return _finish(Problem(
        name="paper",
        title=f"the paper's default problem: X ~ N(0,1), m={m}, n={n}, k={k}",
        X=X.T, C=C, U_true=np.ascontiguousarray(U), eigenvalues=w, k=k,
        lam=lam, tol=tol, W1=W1, W2=W2, gd_alpha=alpha, ref_alpha=alpha,
        start_note="W1, W2 ~ N(0, 1), reference.paper_problem() (seed 0)",
        lam_note="the paper's lam", settle_s=0.0))


_SPIKED = dict(m=1000, n=20_000, k=20, top=20.0, bottom=10.0, lam_fraction=0.2,
              seed=0, reference_gd_cap=20)
_DIGITS = dict(k=10, lam_fraction=0.2, seed=0)


def _spiked_samples():
    p = _SPIKED
    m, n, k = p["m"], p["n"], p["k"]
    rng = np.random.default_rng(p["seed"])
    Q, _ = np.linalg.qr(rng.standard_normal((m, k)))
    spikes = np.geomspace(p["top"], p["bottom"], k)
    X = rng.standard_normal((n, m))
    Z = rng.standard_normal((n, k)) * np.sqrt(spikes)
    for i in range(0, n, 2048):      # in row blocks: no n x m temporary
        X[i:i + 2048] += Z[i:i + 2048] @ Q.T
    return X


def _digits_samples():
    if not _sklearn_available():
        raise NotImplementedError("the digits problem needs scikit-learn")
    from sklearn.datasets import load_digits
    return np.ascontiguousarray(load_digits().data, dtype=np.float64)


def _spiked():
    from . import default_alpha
    p = _SPIKED
    m, n, k = p["m"], p["n"], p["k"]
    X = _spiked_samples()
    C = _gram_numpy(X)
    w, U = _top_eigh(C, k)
    lam = p["lam_fraction"] * float(w[k - 1])
    W1, W2 = _small_start(m, k, p["seed"] + 1)
    ref_alpha = default_alpha(C, lam, W1, W2)
    caps = {meth: p["reference_gd_cap"] for meth in GD_METHODS}
    mk = m * k
    if mk * mk * 8 > _KRONECKER_LIMIT:
        caps["exact-untied"] = 0
    return _finish(Problem(
        name="spiked",
        title=(f"spiked covariance: m={m}, n={n}, k={k}, {k} variances "
               f"{p['top']:g}..{p['bottom']:g} (geometric) above unit noise "
               f"along random directions, seed {p['seed']}"),
        X=X, C=C, U_true=U, eigenvalues=w, k=k, lam=lam, tol=1e-8, W1=W1,
        W2=W2, gd_alpha=None, ref_alpha=ref_alpha,
        start_note="laefast's default recipe, N(0,1) x 0.5/sqrt(mk), seed "
                   f"{p['seed'] + 1}",
        lam_note=f"{p['lam_fraction']:g} x eigenvalue {k} of C",
        reference_caps=caps, settle_s=_SETTLE_S))


def _digits():
    from . import default_alpha
    p = _DIGITS
    X = _digits_samples()
    k = p["k"]
    C = _gram_numpy(X)
    Xc = X - X.mean(axis=0)
    U = np.ascontiguousarray(np.linalg.svd(Xc, full_matrices=False)[2][:k].T)
    w = np.linalg.eigvalsh(C)[::-1][:k + 1]
    lam = p["lam_fraction"] * float(w[k - 1])
    W1, W2 = _small_start(C.shape[0], k, p["seed"])
    return _finish(Problem(
        name="digits",
        title=(f"scikit-learn's digits: n={X.shape[0]} images of "
               f"m={X.shape[1]} pixels, k={k}"),
        X=X, C=C, U_true=U, eigenvalues=w, k=k, lam=lam, tol=1e-8, W1=W1,
        W2=W2, gd_alpha=None, ref_alpha=default_alpha(C, lam, W1, W2),
        start_note=f"laefast's default recipe, seed {p['seed']}",
        lam_note=f"{p['lam_fraction']:g} x eigenvalue {k} of C",
        settle_s=_SETTLE_S))


_BUILDERS = {"paper": _paper, "spiked": _spiked, "digits": _digits}
_CACHE = {}


def get_problem(name):
    """The named problem, built once per process (later calls return it).

    Parameters
    ----------
    name : {'paper', 'spiked', 'digits'}
        'paper': the paper's default problem (m=10, n=10000, k=2, lam=50,
        its own start); 'spiked': m=1000, n=20000, k=20 spikes above unit
        noise; 'digits': scikit-learn's digits, k=10.

    Returns
    -------
    Problem

    Raises
    ------
    ValueError
        An unknown name.
    NotImplementedError
        'digits' without scikit-learn.

    Examples
    --------
    >>> from laefast import bench
    >>> P = bench.get_problem("paper")
    >>> P.m, P.n, P.k, P.lam
    (10, 10000, 2, 50.0)
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown problem {name!r}; choose from {PROBLEMS}")
    if name not in _CACHE:
        _CACHE[name] = _BUILDERS[name]()
    return _CACHE[name]


# ---------------------------------------------------------------------------
# Timing and the metric

def error_per_second(start_error, end_error, seconds):
    """U error removed per second: (start_error - end_error) / seconds.

    Parameters
    ----------
    start_error, end_error : float
        U error of the start and of the result.
    seconds : float
        Wall time of the run, > 0.

    Returns
    -------
    float
        Negative when the run made the error worse.

    Raises
    ------
    ValueError
        seconds is not a positive number.

    Examples
    --------
    >>> from laefast import bench
    >>> bench.error_per_second(3.0, 1.0, 0.5)
    4.0
    """
    if seconds is None or not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    return (float(start_error) - float(end_error)) / float(seconds)


def _settle(seconds=_SETTLE_S):
    """Let the other BLAS pool's spinning threads go idle."""
    if seconds > 0:
        time.sleep(seconds)


def time_once(fn):
    """Time one call, with the garbage collector off.

    Parameters
    ----------
    fn : callable
        Called with no arguments.

    Returns
    -------
    seconds : float
        Wall time of the call.
    result : object
        What fn returned.

    Examples
    --------
    >>> from laefast import bench
    >>> seconds, result = bench.time_once(lambda: sum(range(10)))
    >>> result, seconds >= 0
    (45, True)
    """
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out
    finally:
        if gc_was:
            gc.enable()


def best_of(fn, repeats=3, budget=0.5):
    """The best wall time of up to `repeats` calls, within a time budget.

    Stops repeating once `budget` seconds have been spent (at least one
    call), so that a long run is timed once and a short one several times.
    The garbage collector is off while a call is timed (:func:`time_once`).

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeats : int
        Calls at most.
    budget : float
        Seconds after which no further call is made.

    Returns
    -------
    seconds : float
        The best wall time.
    result : object
        What the last call returned.
    calls : int
        Calls made.

    Examples
    --------
    >>> from laefast import bench
    >>> seconds, result, calls = bench.best_of(lambda: 42, repeats=3,
    ...                                        budget=10.0)
    >>> result, calls
    (42, 3)
    """
    best, out, calls, spent = np.inf, None, 0, 0.0
    for _ in range(max(1, int(repeats))):
        t, out = time_once(fn)
        best = min(best, t)
        calls += 1
        spent += t
        if spent >= budget:
            break
    return best, out, calls


@contextlib.contextmanager
def _quiet():
    """Silence the warnings a capped or oddly started run may give."""
    from ._exceptions import CollapsedComponentWarning, ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", CollapsedComponentWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _run_laefast(problem, method, max_iter=None):
    """laefast.solve on the problem's C from its common start."""
    from . import solve
    with _quiet():
        return solve(problem.C, problem.k, problem.lam, method=method,
                     alpha=problem.alpha(method), tol=problem.tol,
                     max_iter=max_iter, init=(problem.W1, problem.W2))


def _fit_laefast(problem, method="exact-tied"):
    """laefast.fit on the samples (centering, C or not by its cost model)."""
    from . import fit
    with _quiet():
        return fit(problem.X, problem.k, problem.lam, method=method,
                   alpha=problem.alpha(method), tol=problem.tol,
                   init=(problem.W1, problem.W2))


def _fit_laepca(problem):
    """laefast.LAEPCA with its defaults (nothing tuned) on the samples."""
    from ._estimator import LAEPCA
    with _quiet():
        return LAEPCA(problem.k, random_state=0).fit(problem.X)


def _reference_cap(problem, method):
    """(max_iter or None, reason): how far the reference runs on `problem`.

    max_iter 0 means it is not run at all; None means to the stopping rule.
    """
    cap = problem.reference_caps.get(method)
    if cap is None:
        return None, ""
    m, k = problem.m, problem.k
    if cap == 0:
        mk = m * k
        return 0, (f"infeasible: its (mk x mk) = {mk} x {mk} Kronecker solve "
                   f"needs {mk * mk * 8 / 1e9:.1f} GB and "
                   f"~{(mk) ** 3 / 3 / 1e12:.1f} TFLOP per iteration")
    return cap, (f"capped at {cap} iterations: each costs the m^3 = {m}^3 "
                 "product (W2 W1 - I) C")


def _run_reference(problem, method, max_iter=None):
    """laefast.reference.run on the problem's C from the common start."""
    alpha = problem.ref_alpha if method in GD_METHODS else None
    return reference.run(method, problem.C, problem.W1, problem.W2,
                         problem.lam, alpha, problem.tol,
                         max_iter=100_000 if max_iter is None else max_iter)



@dataclass
class Measurement:
    """One row of a problem's table (see :func:`measure_problem`).

    Attributes
    ----------
    solver : {'laefast', 'reference', 'peer'}
    name : str
        The method or peer.
    input : {'C', 'data'}
        What the row started from: the Gram matrix or the samples.
    n_iter : int or None
    converged : bool or None
    seconds : float or None
        Best wall time.
    seconds_per_iter : float or None
    u_error : float or None
        U error of the result against the problem's true directions.
    error_per_second : float or None
        See :func:`error_per_second`.
    repeats : int
        Timed calls made.
    capped : bool
        The run stopped at an iteration cap, not its stopping rule.
    skipped : str or None
        Why the row was not run.
    note : str
    vs_reference, per_step_vs_reference : float or None
        laefast's error per second, and its speed per iteration, over the
        reference's.
    vs_reference_over : dict or None
        laefast's run over the reference's capped iterations.
    vs_peers : float or None
        Error per second over that of the fastest peer on the same input.
    vs_peers_name : str or None
        That peer.
    """

    solver: str                     # 'laefast', 'reference' or 'peer'
    name: str                       # method or peer name
    input: str = "C"                # 'C' or 'data'
    n_iter: int | None = None
    converged: bool | None = None
    seconds: float | None = None
    seconds_per_iter: float | None = None
    u_error: float | None = None
    error_per_second: float | None = None
    repeats: int = 0
    capped: bool = False
    skipped: str | None = None
    note: str = ""
    vs_reference: float | None = None
    per_step_vs_reference: float | None = None
    vs_reference_over: dict | None = None   # the capped comparison's run
    vs_peers: float | None = None
    vs_peers_name: str | None = None

    def as_dict(self):
        """The row as a JSON-ready dict.

        Returns
        -------
        dict
            Every attribute, by name.
        """
        return asdict(self)


def _eps(problem, seconds, end_error):
    return error_per_second(problem.start_error, end_error, seconds)


def _measure_laefast(problem, method, repeats=3, budget=0.5, max_iter=None):
    t, res, calls = best_of(lambda: _run_laefast(problem, method, max_iter),
                            repeats, budget)
    err = u_error(res.components.T, problem.U_true)
    return Measurement(
        solver="laefast", name=method, n_iter=res.n_iter,
        converged=res.converged, seconds=t,
        seconds_per_iter=t / max(res.n_iter, 1), u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        capped=max_iter is not None)


def _measure_fit(problem, method="exact-tied", repeats=3, budget=0.5):
    t, res, calls = best_of(lambda: _fit_laefast(problem, method), repeats,
                            budget)
    err = u_error(res.components.T, problem.U_true)
    return Measurement(
        solver="laefast", name=f"fit(X) {method}", input="data",
        n_iter=res.n_iter, converged=res.converged, seconds=t,
        seconds_per_iter=None, u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        note="from the samples: centering and C (or not) included")


def _measure_laepca(problem, repeats=3, budget=0.5):
    t, est, calls = best_of(lambda: _fit_laepca(problem), repeats, budget)
    err = u_error(est.components_.T, problem.U_true)
    return Measurement(
        solver="laefast", name="LAEPCA()", input="data",
        n_iter=est.n_iter_, converged=est.converged_, seconds=t,
        seconds_per_iter=None, u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        note="the estimator, untuned: lam, step and path chosen from the "
             "data, Rayleigh-Ritz read-out")


def _measure_reference(problem, method, repeats=1, budget=0.5):
    cap, reason = _reference_cap(problem, method)
    if cap == 0:
        return Measurement(solver="reference", name=method, skipped=reason,
                           note=reason)
    t, run, calls = best_of(lambda: _run_reference(problem, method, cap),
                            repeats, budget)
    U = np.linalg.svd(run.W2, full_matrices=False)[0]
    err = u_error(U, problem.U_true)
    return Measurement(
        solver="reference", name=method, n_iter=run.n_iter,
        converged=run.converged, seconds=t,
        seconds_per_iter=t / max(run.n_iter, 1), u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        capped=cap is not None and not run.converged, note=reason)


def _peer_names(with_sklearn=None):
    if with_sklearn is None:
        with_sklearn = _sklearn_available()
    return [name for name, (_, needs) in PEERS.items()
            if with_sklearn or not needs]


def _form_gram(X):
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc


def _peer_function(problem, name):
    """A zero-argument function returning the peer's (m, k) directions."""
    k, m = problem.k, problem.m
    C, X = problem.C, problem.X
    lo = m - k

    def top(V):
        return V[:, ::-1][:, :k]

    if name == "numpy.linalg.eigh(C)":
        return lambda: top(np.linalg.eigh(C)[1])
    if name == "numpy.linalg.eigh, forming C":
        return lambda: top(np.linalg.eigh(_form_gram(X))[1])
    if name == "scipy.linalg.eigh(C, subset)":
        return lambda: top(
            scipy.linalg.eigh(C, subset_by_index=[lo, m - 1])[1])
    if name == "scipy.linalg.eigh, forming C":
        return lambda: top(scipy.linalg.eigh(
            _form_gram(X), subset_by_index=[lo, m - 1])[1])
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from {list(PEERS)}")
    if not _sklearn_available():
        raise NotImplementedError(f"{name} needs scikit-learn")
    from sklearn.decomposition import PCA, IncrementalPCA
    if name == "IncrementalPCA":
        return lambda: IncrementalPCA(n_components=k).fit(X).components_.T
    solver = name[len("PCA("):-1]
    return lambda: PCA(n_components=k, svd_solver=solver,
                       random_state=0).fit(X).components_.T


def _measure_peer(problem, name, repeats=3, budget=0.5):
    fn = _peer_function(problem, name)
    t, U, calls = best_of(fn, repeats, budget)
    err = u_error(U, problem.U_true)
    return Measurement(
        solver="peer", name=name, input=PEERS[name][0], seconds=t,
        u_error=err, error_per_second=_eps(problem, t, err), repeats=calls)


# ---------------------------------------------------------------------------
# One problem, all rows

def _ratio(a, b):
    if a is None or b is None or not b > 0:
        return None
    return a / b


def measure_problem(problem, methods=METHODS, repeats=3, budget=0.5,
                    with_reference=True, with_peers=True, with_fit=True,
                    ref_repeats=None, progress=None):
    """Measure every row of one problem.

    Per method, laefast and the reference are timed back to back (so that
    machine noise hits both alike); where the reference is capped, laefast
    is also timed over the same iterations and 'vs_reference' compares
    those two runs.

    Parameters
    ----------
    problem : Problem or str
        The problem, or its name (:func:`get_problem`).
    methods : sequence of str
        laefast's methods to run (default: all of :data:`laefast.METHODS`).
    repeats, budget : int, float
        Timing per row (:func:`best_of`).
    with_reference : bool
        Also run :mod:`laefast.reference` per method.
    with_peers : bool
        Also run the peers (:data:`PEERS`).
    with_fit : bool
        Also run ``laefast.fit`` (exact-tied) and ``LAEPCA`` on the samples.
    ref_repeats : int or None
        Timed calls of the reference (None: at most 2).
    progress : callable or None
        Called with a line of text per row measured.

    Returns
    -------
    dict
        'problem' (:meth:`Problem.describe`), 'rows' (one
        :meth:`Measurement.as_dict` each: laefast's, then the reference's,
        then the peers') and 'notes' (a list of str).

    Examples
    --------
    >>> from laefast import bench
    >>> result = bench.measure_problem("paper", ["exact-tied"], repeats=1,
    ...                                with_reference=False,
    ...                                with_peers=False)
    >>> [(row["solver"], row["name"]) for row in result["rows"]]
    [('laefast', 'exact-tied'), ('laefast', 'fit(X) exact-tied'), ('laefast', 'LAEPCA()')]
    >>> bool(result["rows"][0]["u_error"] < 1e-4)
    True
    """
    if isinstance(problem, str):
        problem = get_problem(problem)
    ref_repeats = ref_repeats or max(1, min(2, repeats))
    say = progress or (lambda msg: None)
    rows, notes = [], []
    lae_rows, ref_rows = {}, {}
    for method in methods:
        _settle(problem.settle_s)
        row = _measure_laefast(problem, method, repeats, budget)
        say(f"[{problem.name}] laefast   {method:13s} {row.n_iter:>7} its "
            f"{row.seconds:9.4f} s  U error {row.u_error:.1e}")
        lae_rows[method] = row
        if not with_reference:
            continue
        _settle(problem.settle_s)
        ref = _measure_reference(problem, method, ref_repeats, budget)
        ref_rows[method] = ref
        if ref.skipped:
            say(f"[{problem.name}] reference {method:13s} skipped: "
                f"{ref.skipped}")
            notes.append(f"reference {method}: {ref.skipped}")
            continue
        say(f"[{problem.name}] reference {method:13s} {ref.n_iter:>7} its "
            f"{ref.seconds:9.4f} s  U error {ref.u_error:.1e}")
        if ref.capped:
            _settle(problem.settle_s)
            same = _measure_laefast(problem, method, repeats, budget,
                                   max_iter=ref.n_iter)
            row.vs_reference = _ratio(same.error_per_second,
                                      ref.error_per_second)
            row.vs_reference_over = {
                "iterations": same.n_iter, "laefast_seconds": same.seconds,
                "laefast_u_error": same.u_error,
                "laefast_error_per_second": same.error_per_second}
            # Per step: the reference's capped run against laefast's full
            # run, whose fixed costs (checks, read-out) are amortized.
            step_ratio = _ratio(ref.seconds_per_iter, row.seconds_per_iter)
            row.per_step_vs_reference = step_ratio
            full = ref.seconds_per_iter * row.n_iter
            row.note = (f"vs ref over the first {ref.n_iter} its (laefast "
                        f"{same.seconds:.3g} s there); per step "
                        f"{step_ratio:.0f}x")
            notes.append(
                f"reference {method}: {ref.note}; to laefast's "
                f"{row.n_iter} iterations it would take about {full:.0f} s. "
                f"error/s and vs ref for {method} are over the first "
                f"{ref.n_iter} iterations of both.")
            ref.note = f"capped at {ref.n_iter} its"
        else:
            row.vs_reference = _ratio(row.error_per_second,
                                      ref.error_per_second)
            row.per_step_vs_reference = _ratio(ref.seconds_per_iter,
                                               row.seconds_per_iter)
            if ref.n_iter != row.n_iter:
                row.note = f"reference took {ref.n_iter} its"
    rows.extend(lae_rows.values())
    if with_fit:
        _settle(problem.settle_s)
        fit_row = _measure_fit(problem, "exact-tied", repeats, budget)
        say(f"[{problem.name}] laefast   fit(X) exact-tied "
            f"{fit_row.seconds:9.4f} s  U error {fit_row.u_error:.1e}")
        rows.append(fit_row)
        _settle(problem.settle_s)
        pca_row = _measure_laepca(problem, repeats, budget)
        say(f"[{problem.name}] laefast   LAEPCA()          "
            f"{pca_row.seconds:9.4f} s  U error {pca_row.u_error:.1e}")
        rows.append(pca_row)
    rows.extend(ref_rows.values())
    peer_rows = []
    if with_peers:
        if not _sklearn_available():
            notes.append("scikit-learn is not installed: its peers are "
                         "skipped")
        for name in _peer_names():
            _settle(problem.settle_s)
            prow = _measure_peer(problem, name, repeats, budget)
            say(f"[{problem.name}] peer      {name:28s} {prow.seconds:9.4f} s"
                f"  U error {prow.u_error:.1e}")
            peer_rows.append(prow)
    rows.extend(peer_rows)
    # vs peers: against the fastest peer (highest error/s) on the same input.
    for row in rows:
        if row.solver != "laefast" or row.error_per_second is None:
            continue
        same_input = [p for p in peer_rows if p.input == row.input]
        if not same_input:
            continue
        best = max(same_input, key=lambda p: p.error_per_second)
        row.vs_peers = _ratio(row.error_per_second, best.error_per_second)
        row.vs_peers_name = best.name
    if peer_rows:
        best_c = [p for p in peer_rows if p.input == "C"]
        best_d = [p for p in peer_rows if p.input == "data"]
        parts = []
        for label, group in (("from C", best_c), ("from the samples", best_d)):
            if group:
                b = max(group, key=lambda p: p.error_per_second)
                parts.append(f"{label}: {b.name}")
        notes.append("vs peers: error/s over that of the fastest peer on "
                     "the same input (" + "; ".join(parts) + ")")
    return {"problem": problem.describe(),
            "rows": [r.as_dict() for r in rows], "notes": notes}


# ---------------------------------------------------------------------------
# Environment

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _owner(path):
    """The package that bundles a shared library (numpy, scipy, sklearn...)."""
    parts = (path or "").replace("\\", "/").split("/")
    for part in reversed(parts[:-1]):
        for name in ("numpy", "scipy", "scikit_learn", "sklearn", "laefast"):
            if part.startswith(name):
                return "sklearn" if name == "scikit_learn" else name
    return "system"


def environment():
    """The machine, versions, BLAS and thread counts.

    Returns
    -------
    dict
        JSON-ready: platform, CPU and usable CPUs, the versions of Python,
        NumPy, SciPy, scikit-learn and laefast, OpenMP and its thread count,
        OMP_NUM_THREADS, and threadpoolctl's list of thread pools (BLAS and
        OpenMP libraries, with the package that bundles each).

    Examples
    --------
    >>> import laefast
    >>> from laefast import bench
    >>> env = bench.environment()
    >>> env["laefast"] == laefast.__version__
    True
    """
    from threadpoolctl import threadpool_info

    from . import __version__, openmp_enabled
    from ._openmp import max_threads
    pools = []
    for pool in threadpool_info():
        pools.append({
            "user_api": pool.get("user_api"),
            "internal_api": pool.get("internal_api"),
            "version": pool.get("version"),
            "num_threads": pool.get("num_threads"),
            "architecture": pool.get("architecture"),
            "threading_layer": pool.get("threading_layer"),
            "owner": _owner(pool.get("filepath")),
            "filepath": pool.get("filepath"),
        })
    try:
        import sklearn
        sk = sklearn.__version__
    except ImportError:
        sk = None
    affinity = (len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sk,
        "laefast": __version__,
        "openmp_enabled": bool(openmp_enabled()),
        "openmp_threads": int(max_threads()) if openmp_enabled() else 1,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threadpools": pools,
    }


def environment_line(env=None):
    """The environment in one line, for a table header or a footnote.

    Parameters
    ----------
    env : dict or None
        An :func:`environment` report (None: taken now).

    Returns
    -------
    str
        CPU and CPUs, platform, BLAS libraries with their thread counts,
        laefast's version and OpenMP threads, NumPy and SciPy versions.

    Examples
    --------
    >>> from laefast import bench
    >>> "BLAS:" in bench.environment_line()
    True
    """
    env = env or environment()
    blas = [f"{p['owner']} {p['internal_api']} {p['version']} "
            f"({p['architecture']}, {p['num_threads']} threads)"
            for p in env["threadpools"] if p["user_api"] == "blas"]
    omp = (f"OpenMP {env['openmp_threads']} threads" if env["openmp_enabled"]
           else "no OpenMP")
    return (f"{env['cpu']} ({env['usable_cpus']} CPUs), {env['platform']} | "
            f"BLAS: {'; '.join(blas) or 'unknown'} | laefast "
            f"{env['laefast']} {omp}, numpy {env['numpy']}, scipy "
            f"{env['scipy']}")


# ---------------------------------------------------------------------------
# The table

def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _fmt_ratio(value):
    if value is None:
        return "-"
    return f"{value:.3g}x"


def format_table(result):
    """The rows of one problem as a text table.

    Parameters
    ----------
    result : dict
        What :func:`measure_problem` returned.

    Returns
    -------
    str
        A header with the problem and its settings, one line per row
        (iterations, seconds, U error, error per second, ratios to the
        reference and the fastest peer, note), and the notes.

    Examples
    --------
    >>> from laefast import bench
    >>> result = bench.measure_problem("paper", ["exact-tied"], repeats=1,
    ...                                with_reference=False,
    ...                                with_peers=False, with_fit=False)
    >>> print(bench.format_table(result).splitlines()[0])
    == paper: the paper's default problem: X ~ N(0,1), m=10, n=10000, k=2
    """
    d = result["problem"]
    alpha = (f"alpha={d['gd_alpha']:g}" if d["gd_alpha"] is not None else
             f"alpha=None (laefast's default, {d['gd_alpha_resolved']:.3g})")
    lines = [
        f"== {d['name']}: {d['title']}",
        f"   lam={d['lam']:.4g} ({d['lam_note']}), tol={d['tol']:g}, GD "
        f"{alpha}; start: {d['start']}; U error at the start "
        f"{d['start_u_error']:.3f}",
    ]
    header = (f"   {'solver':<38} {'iters':>7} {'seconds':>10} {'U error':>9} "
              f"{'error/s':>9} {'vs ref':>8} {'vs peers':>9}  note")
    lines += [header, "   " + "-" * (len(header) - 3)]
    for r in result["rows"]:
        label = {"laefast": "laefast ", "reference": "reference ",
                 "peer": ""}[r["solver"]] + r["name"]
        if r["skipped"]:
            lines.append(f"   {label:<38} {'-':>7} {'-':>10} {'-':>9} "
                         f"{'-':>9} {'-':>8} {'-':>9}  skipped (see notes)")
            continue
        conv = "" if r["converged"] in (None, True) else "*"
        iters = "-" if r["n_iter"] is None else f"{r['n_iter']}{conv}"
        lines.append(
            f"   {label:<38} {iters:>7} {_fmt(r['seconds'], '10.4g'):>10} "
            f"{_fmt(r['u_error'], '9.1e'):>9} "
            f"{_fmt(r['error_per_second'], '9.3g'):>9} "
            f"{_fmt_ratio(r['vs_reference']):>8} "
            f"{_fmt_ratio(r['vs_peers']):>9}  {r['note']}")
    lines.append("   error/s: (U error at the start - U error at the end) / "
                 "seconds; vs ref, vs peers: ratios of error/s; "
                 "* = stopped before the stopping rule held")
    for note in result["notes"]:
        lines.append(f"   note: {note}")
    return "\n".join(lines)


def run_bench(problems=PROBLEMS, methods=METHODS, repeats=3,
              budget=0.5, with_reference=True, with_peers=True,
              json_path=None, progress=True, out=None):
    """``laefast bench``: measure every problem and print its table.

    Parameters
    ----------
    problems : sequence of str
        Problem names (default: all of :data:`PROBLEMS`).
    methods : sequence of str
        laefast's methods (default: all of :data:`laefast.METHODS`).
    repeats, budget : int, float
        Timing per row (:func:`best_of`).
    with_reference, with_peers : bool
        Also run the reference and the peers.
    json_path : str or None
        Also write every number there as JSON ('-': JSON on stdout, and
        the tables to stderr).
    progress : bool
        Print a line per row measured on stderr.
    out : file-like or None
        Where the tables go (None: stdout).

    Returns
    -------
    int
        0, or 1 when a requested problem could not be built here (it is
        reported as skipped and the others still run).

    Examples
    --------
    >>> import io
    >>> from laefast import bench
    >>> out = io.StringIO()
    >>> bench.run_bench(["paper"], ["exact-tied"], repeats=1,
    ...                 with_reference=False, with_peers=False,
    ...                 progress=False, out=out)
    0
    >>> "== paper" in out.getvalue()
    True
    """
    out = out or sys.stdout
    if json_path == "-":
        out = sys.stderr
    err = sys.stderr

    def say(msg):
        if progress:
            print(msg, file=err, flush=True)

    t_start = time.perf_counter()
    env = environment()
    print(f"machine: {environment_line(env)}", file=out, flush=True)
    print(f"timing: best of up to {repeats} runs per row (fewer once a row "
          f"has spent {budget:g} s), wall time from the call to its return",
          file=out, flush=True)
    report = {"environment": env, "environment_line": environment_line(env),
              "settings": {"problems": list(problems),
                           "methods": list(methods), "repeats": repeats,
                           "budget_s": budget,
                           "with_reference": with_reference,
                           "with_peers": with_peers},
              "problems": [], "skipped_problems": {}}
    for name in problems:
        say(f"[{name}] building the problem ...")
        t0 = time.perf_counter()
        try:
            problem = get_problem(name)
        except NotImplementedError as exc:
            print(f"\n== {name}: skipped ({exc})", file=out, flush=True)
            report["skipped_problems"][name] = str(exc)
            continue
        say(f"[{name}] built in {time.perf_counter() - t0:.1f} s")
        result = measure_problem(problem, methods, repeats, budget,
                                 with_reference, with_peers, progress=say)
        report["problems"].append(result)
        print("\n" + format_table(result), file=out, flush=True)
    # Thread pools may have changed (scikit-learn's OpenMP loads lazily).
    report["environment"] = environment()
    report["environment_line"] = environment_line(report["environment"])
    report["elapsed_s"] = time.perf_counter() - t_start
    print(f"\nmachine: {report['environment_line']}", file=out)
    print(f"total {report['elapsed_s']:.1f} s", file=out, flush=True)
    if json_path:
        text = json.dumps(report, indent=2, default=_json_default)
        if json_path == "-":
            print(text)
        else:
            with open(json_path, "w") as f:
                f.write(text + "\n")
            say(f"JSON written to {json_path}")
    return 1 if report["skipped_problems"] else 0


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
