"""Runs and measurements: laefast and its reference from the common start,
per-step functions, trajectories, the peers (``numpy.linalg.eigh`` and
``scipy.linalg.eigh(subset_by_index)`` on C, with and without forming C;
scikit-learn's PCA solvers and IncrementalPCA, imported lazily and skipped
when missing) and every row of one problem.

Part of the benchmark harness in ``benchmarks/laefast_bench/``, which the
asv suite and the benchmark scripts share.  It uses only laefast's public
names, and it is not part of the package: it stays the same whichever commit
asv measures (see ``benchmarks/laefast_bench/__init__.py``).
"""

import contextlib
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg

from laefast import (LAEPCA, CollapsedComponentWarning, ConvergenceWarning,
                     fit, reference, solve, step)
from laefast.metrics import u_error

from .problems import (GD_METHODS, METHODS, get_problem, sklearn_available,
                       start_error)
from .timing import best_of, error_per_second, settle

__all__ = ["PEERS", "Measurement", "run_laefast", "fit_laefast",
           "fit_laepca", "run_reference", "reference_cap", "step_function",
           "laefast_trajectory", "reference_trajectory", "measure_laefast",
           "measure_fit", "measure_laepca", "measure_reference",
           "peer_names", "peer_function", "measure_peer", "measure_problem"]

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


@contextlib.contextmanager
def _quiet():
    """Silence the warnings a capped or oddly started run may give."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", CollapsedComponentWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def run_laefast(problem, method, max_iter=None):
    """laefast.solve on the problem's C from its common start."""
    with _quiet():
        return solve(problem.C, problem.k, problem.lam, method=method,
                     alpha=problem.alpha(method), tol=problem.tol,
                     max_iter=max_iter, init=(problem.W1, problem.W2))


def fit_laefast(problem, method="exact-tied"):
    """laefast.fit on the samples (centering, C or not by its cost model)."""
    with _quiet():
        return fit(problem.X, problem.k, problem.lam, method=method,
                   alpha=problem.alpha(method), tol=problem.tol,
                   init=(problem.W1, problem.W2))


def fit_laepca(problem):
    """laefast.LAEPCA with its defaults (nothing tuned) on the samples."""
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


def _laefast_iterates(problem, method, tol=-1.0):
    """laefast.step in place on copies of the common start, as a generator
    of (W1, W2, stopping quantity) like laefast.reference.iterates."""
    alpha = problem.ref_alpha if method in GD_METHODS else None
    W1 = np.array(problem.W1, dtype=np.float64, order="C", copy=True)
    W2 = np.array(problem.W2, dtype=np.float64, order="C", copy=True)
    if method in ("sync", "tied", "exact-sync"):
        W1[...] = W2.T
    while True:
        stop = step(W1, W2, problem.C, problem.lam, method=method,
                    alpha=alpha)
        yield W1, W2, stop
        if stop <= tol:
            return


def _reference_iterates(problem, method, tol=-1.0):
    alpha = problem.ref_alpha if method in GD_METHODS else None
    return reference.iterates(method, problem.C, problem.W1, problem.W2,
                              problem.lam, alpha, tol=tol)


def step_function(problem, method, implementation="laefast"):
    """A zero-argument function doing one iteration per call (state kept).

    laefast: laefast.step in place on copies of the start; reference: the
    next iterate of laefast.reference.iterates; the stopping rule never
    holds.  Returns the stopping quantity.
    """
    iterates = (_laefast_iterates if implementation == "laefast"
                else _reference_iterates)
    gen = iterates(problem, method)

    def one_step():
        return next(gen)[2]
    return one_step


def _checkpoints(ratio):
    """1, 2, 3, ... then geometrically spaced iteration numbers."""
    it = 1
    while True:
        yield it
        it = max(it + 1, int(it * ratio))


def _trajectory(gen, problem, max_iter, ratio):
    """(iterations, U errors) at geometrically thinned checkpoints of the
    iterates `gen`, up to the stopping rule or max_iter."""
    marks = _checkpoints(ratio)
    mark = next(marks)
    its, errs = [], []
    for it, (_, W2, stop) in enumerate(gen, start=1):
        done = stop <= problem.tol or it == max_iter
        if it == mark or done:
            its.append(it)
            errs.append(start_error(W2, problem.U_true))
            while mark <= it:
                mark = next(marks)
        if done:
            break
    return np.array(its), np.array(errs)


def laefast_trajectory(problem, method, max_iter=100_000, ratio=1.01):
    """U error after iterations 1, 2, ... (geometrically thinned) of
    laefast.step from the common start, up to the stopping rule.

    Returns (iterations, u_errors) as arrays; the last entry is the
    iteration at which the stopping rule held (or max_iter).  The steps
    are the kernels laefast.solve runs, one call per iteration (the same
    iterates; not a timing).
    """
    return _trajectory(_laefast_iterates(problem, method, problem.tol),
                       problem, max_iter, ratio)


def reference_trajectory(problem, method, max_iter=None, ratio=1.01):
    """Like laefast_trajectory, for laefast.reference.iterates."""
    max_iter = 100_000 if max_iter is None else max_iter
    return _trajectory(_reference_iterates(problem, method, problem.tol),
                       problem, max_iter, ratio)


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

