"""What ``python -m laefast bench`` (and ``python -m laefast demo``) run for
a user, from the installed package.

The command times laefast against its reference and its peers on three
problems and prints one table per problem:

- the problems: the paper's default problem, a spiked covariance problem and
  scikit-learn's digits (when scikit-learn is installed), each with its Gram
  matrix C (formed once, with NumPy), the true top-k directions, lam, tol,
  and one common start (W1, W2) for laefast and the reference;
- the metric: U error (:func:`laefast.metrics.u_error`) removed per second
  of wall time, from the common start to the end of the run;
- best-of timing, with a time budget that stops repeating long runs
  (:func:`time_once`, :func:`best_of`; the demo uses them too);
- the peers: ``numpy.linalg.eigh`` and ``scipy.linalg.eigh(subset_by_index)``
  on C (with and without forming C), and scikit-learn's PCA solvers and
  IncrementalPCA on the samples (imported lazily; skipped when missing);
- the environment report (:func:`environment`, :func:`environment_line`).

The asv suite and the benchmark scripts do not use this module: they have
their own harness in ``benchmarks/laefast_bench/``, which stays the same for
every commit asv measures, while this module changes with the package.

Timing traps: NumPy and SciPy bundle separate OpenBLAS builds whose idle
threads spin for a while after a call; before a measurement that switches
from one to the other on a problem large enough for BLAS to use threads, the
run sleeps briefly (:func:`settle`).
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
    "PROBLEMS",
    "DEFAULT_PROBLEMS",
    "METHODS",
    "GD_METHODS",
    "PEERS",
    "Problem",
    "Measurement",
    "get_problem",
    "sklearn_available",
    "problem_unavailable",
    "error_per_second",
    "best_of",
    "settle",
    "run_laefast",
    "run_reference",
    "measure_laefast",
    "measure_reference",
    "measure_peer",
    "measure_problem",
    "peer_names",
    "peer_function",
    "reference_cap",
    "time_once",
    "environment",
    "environment_line",
    "format_table",
    "run_bench",
]

PROBLEMS = ("paper", "spiked", "digits")
DEFAULT_PROBLEMS = PROBLEMS
SETTLE_S = 0.2            # > OpenBLAS's spin-wait (2^28 cycles) before its
                          # idle threads sleep
# The reference's exact-untied builds an (mk x mk) matrix; beyond this many
# bytes it is reported as infeasible instead of being run.
KRONECKER_LIMIT = 512 << 20

# Peers: name -> (input, needs scikit-learn).  "C" peers start from the Gram
# matrix, "data" peers from the samples (forming C inside if they need it).
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
    """A benchmark problem: data, Gram matrix, truth, settings and start."""

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
        return self.C.shape[0]

    def alpha(self, method):
        """alpha for laefast.solve (None for the exact methods)."""
        return self.gd_alpha if method in GD_METHODS else None

    def describe(self):
        return {
            "name": self.name, "title": self.title, "m": self.m, "n": self.n,
            "k": self.k, "lam": self.lam, "lam_note": self.lam_note,
            "tol": self.tol, "gd_alpha": self.gd_alpha,
            "gd_alpha_resolved": self.ref_alpha, "start": self.start_note,
            "start_u_error": self.start_error,
            "eigenvalues_top": [float(v) for v in self.eigenvalues],
            "reference_caps": dict(self.reference_caps),
        }


def sklearn_available():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def problem_unavailable(name):
    """Why the named problem cannot be built here, or None if it can.

    Cheap (no data is built): the command line checks every requested
    problem with it before measuring anything.
    """
    if name not in PROBLEMS:
        return f"unknown problem {name!r}; choose from {PROBLEMS}"
    if name == "digits" and not sklearn_available():
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


def start_error(W2, U_true):
    """U error of the read-out of a start: left singular vectors of W2."""
    U = np.linalg.svd(W2, full_matrices=False)[0]
    return u_error(U, U_true)


def _finish(problem):
    problem.start_error = start_error(problem.W2, problem.U_true)
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


SPIKED = dict(m=1000, n=20_000, k=20, top=20.0, bottom=10.0, lam_fraction=0.2,
              seed=0, reference_gd_cap=20)
DIGITS = dict(k=10, lam_fraction=0.2, seed=0)


def _spiked_samples():
    p = SPIKED
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
    if not sklearn_available():
        raise NotImplementedError("the digits problem needs scikit-learn")
    from sklearn.datasets import load_digits
    return np.ascontiguousarray(load_digits().data, dtype=np.float64)


def _spiked():
    from . import default_alpha
    p = SPIKED
    m, n, k = p["m"], p["n"], p["k"]
    X = _spiked_samples()
    C = _gram_numpy(X)
    w, U = _top_eigh(C, k)
    lam = p["lam_fraction"] * float(w[k - 1])
    W1, W2 = _small_start(m, k, p["seed"] + 1)
    ref_alpha = default_alpha(C, lam, W1, W2)
    caps = {meth: p["reference_gd_cap"] for meth in GD_METHODS}
    mk = m * k
    if mk * mk * 8 > KRONECKER_LIMIT:
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
        reference_caps=caps, settle_s=SETTLE_S))


def _digits():
    from . import default_alpha
    p = DIGITS
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
        settle_s=SETTLE_S))


_BUILDERS = {"paper": _paper, "spiked": _spiked, "digits": _digits}
_CACHE = {}


def get_problem(name):
    """The named problem, built once per process.

    Raises NotImplementedError for 'digits' without scikit-learn.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown problem {name!r}; choose from {PROBLEMS}")
    if name not in _CACHE:
        _CACHE[name] = _BUILDERS[name]()
    return _CACHE[name]


# ---------------------------------------------------------------------------
# Timing and the metric

def error_per_second(start_error, end_error, seconds):
    """U error removed per second: (start_error - end_error) / seconds."""
    if seconds is None or not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    return (float(start_error) - float(end_error)) / float(seconds)


def settle(seconds=SETTLE_S):
    """Let the other BLAS pool's spinning threads go idle."""
    if seconds > 0:
        time.sleep(seconds)


def time_once(fn):
    """(wall time, result) of one call, with the garbage collector off."""
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
    """(best wall time, last result, calls made) over up to `repeats` calls.

    Stops repeating once `budget` seconds have been spent (at least one
    call), so that a long run is timed once and a short one several times.
    The garbage collector is off while a call is timed.
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


def run_laefast(problem, method, max_iter=None):
    """laefast.solve on the problem's C from its common start."""
    from . import solve
    with _quiet():
        return solve(problem.C, problem.k, problem.lam, method=method,
                     alpha=problem.alpha(method), tol=problem.tol,
                     max_iter=max_iter, init=(problem.W1, problem.W2))


def fit_laefast(problem, method="exact-tied"):
    """laefast.fit on the samples (centering, C or not by its cost model)."""
    from . import fit
    with _quiet():
        return fit(problem.X, problem.k, problem.lam, method=method,
                   alpha=problem.alpha(method), tol=problem.tol,
                   init=(problem.W1, problem.W2))


def fit_laepca(problem):
    """laefast.LAEPCA with its defaults (nothing tuned) on the samples."""
    from ._estimator import LAEPCA
    with _quiet():
        return LAEPCA(problem.k, random_state=0).fit(problem.X)


def reference_cap(problem, method):
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


def run_reference(problem, method, max_iter=None):
    """laefast.reference.run on the problem's C from the common start."""
    alpha = problem.ref_alpha if method in GD_METHODS else None
    return reference.run(method, problem.C, problem.W1, problem.W2,
                         problem.lam, alpha, problem.tol,
                         max_iter=100_000 if max_iter is None else max_iter)



@dataclass
class Measurement:
    """One row of the comparison."""

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
        return asdict(self)


def _eps(problem, seconds, end_error):
    return error_per_second(problem.start_error, end_error, seconds)


def measure_laefast(problem, method, repeats=3, budget=0.5, max_iter=None):
    t, res, calls = best_of(lambda: run_laefast(problem, method, max_iter),
                            repeats, budget)
    err = u_error(res.components.T, problem.U_true)
    return Measurement(
        solver="laefast", name=method, n_iter=res.n_iter,
        converged=res.converged, seconds=t,
        seconds_per_iter=t / max(res.n_iter, 1), u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        capped=max_iter is not None)


def measure_fit(problem, method="exact-tied", repeats=3, budget=0.5):
    t, res, calls = best_of(lambda: fit_laefast(problem, method), repeats,
                            budget)
    err = u_error(res.components.T, problem.U_true)
    return Measurement(
        solver="laefast", name=f"fit(X) {method}", input="data",
        n_iter=res.n_iter, converged=res.converged, seconds=t,
        seconds_per_iter=None, u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        note="from the samples: centering and C (or not) included")


def measure_laepca(problem, repeats=3, budget=0.5):
    t, est, calls = best_of(lambda: fit_laepca(problem), repeats, budget)
    err = u_error(est.components_.T, problem.U_true)
    return Measurement(
        solver="laefast", name="LAEPCA()", input="data",
        n_iter=est.n_iter_, converged=est.converged_, seconds=t,
        seconds_per_iter=None, u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        note="the estimator, untuned: lam, step and path chosen from the "
             "data, Rayleigh-Ritz read-out")


def measure_reference(problem, method, repeats=1, budget=0.5):
    cap, reason = reference_cap(problem, method)
    if cap == 0:
        return Measurement(solver="reference", name=method, skipped=reason,
                           note=reason)
    t, run, calls = best_of(lambda: run_reference(problem, method, cap),
                            repeats, budget)
    U = np.linalg.svd(run.W2, full_matrices=False)[0]
    err = u_error(U, problem.U_true)
    return Measurement(
        solver="reference", name=method, n_iter=run.n_iter,
        converged=run.converged, seconds=t,
        seconds_per_iter=t / max(run.n_iter, 1), u_error=err,
        error_per_second=_eps(problem, t, err), repeats=calls,
        capped=cap is not None and not run.converged, note=reason)


def peer_names(with_sklearn=None):
    if with_sklearn is None:
        with_sklearn = sklearn_available()
    return [name for name, (_, needs) in PEERS.items()
            if with_sklearn or not needs]


def _form_gram(X):
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc


def peer_function(problem, name):
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
    if not sklearn_available():
        raise NotImplementedError(f"{name} needs scikit-learn")
    from sklearn.decomposition import PCA, IncrementalPCA
    if name == "IncrementalPCA":
        return lambda: IncrementalPCA(n_components=k).fit(X).components_.T
    solver = name[len("PCA("):-1]
    return lambda: PCA(n_components=k, svd_solver=solver,
                       random_state=0).fit(X).components_.T


def measure_peer(problem, name, repeats=3, budget=0.5):
    fn = peer_function(problem, name)
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
    """Every row for one problem: a dict with 'problem', 'rows', 'notes'.

    Per method, laefast and the reference are timed back to back (so that
    machine noise hits both alike); where the reference is capped, laefast
    is also timed over the same iterations and 'vs_reference' compares
    those two runs.
    """
    if isinstance(problem, str):
        problem = get_problem(problem)
    ref_repeats = ref_repeats or max(1, min(2, repeats))
    say = progress or (lambda msg: None)
    rows, notes = [], []
    lae_rows, ref_rows = {}, {}
    for method in methods:
        settle(problem.settle_s)
        row = measure_laefast(problem, method, repeats, budget)
        say(f"[{problem.name}] laefast   {method:13s} {row.n_iter:>7} its "
            f"{row.seconds:9.4f} s  U error {row.u_error:.1e}")
        lae_rows[method] = row
        if not with_reference:
            continue
        settle(problem.settle_s)
        ref = measure_reference(problem, method, ref_repeats, budget)
        ref_rows[method] = ref
        if ref.skipped:
            say(f"[{problem.name}] reference {method:13s} skipped: "
                f"{ref.skipped}")
            notes.append(f"reference {method}: {ref.skipped}")
            continue
        say(f"[{problem.name}] reference {method:13s} {ref.n_iter:>7} its "
            f"{ref.seconds:9.4f} s  U error {ref.u_error:.1e}")
        if ref.capped:
            settle(problem.settle_s)
            same = measure_laefast(problem, method, repeats, budget,
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
        settle(problem.settle_s)
        fit_row = measure_fit(problem, "exact-tied", repeats, budget)
        say(f"[{problem.name}] laefast   fit(X) exact-tied "
            f"{fit_row.seconds:9.4f} s  U error {fit_row.u_error:.1e}")
        rows.append(fit_row)
        settle(problem.settle_s)
        pca_row = measure_laepca(problem, repeats, budget)
        say(f"[{problem.name}] laefast   LAEPCA()          "
            f"{pca_row.seconds:9.4f} s  U error {pca_row.u_error:.1e}")
        rows.append(pca_row)
    rows.extend(ref_rows.values())
    peer_rows = []
    if with_peers:
        if not sklearn_available():
            notes.append("scikit-learn is not installed: its peers are "
                         "skipped")
        for name in peer_names():
            settle(problem.settle_s)
            prow = measure_peer(problem, name, repeats, budget)
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
    """Machine, versions, BLAS and thread counts, as a JSON-ready dict."""
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
    """One line for a table header or a figure's footnote."""
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
    """The rows of one problem as text."""
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


def run_bench(problems=DEFAULT_PROBLEMS, methods=METHODS, repeats=3,
              budget=0.5, with_reference=True, with_peers=True,
              json_path=None, progress=True, out=None):
    """``python -m laefast bench``: measure and print the tables.

    Returns 0, or 1 when a requested problem could not be built (it is
    reported as skipped and the others still run).
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
