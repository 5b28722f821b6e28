"""The problems: the paper's default problem, a spiked covariance problem
and scikit-learn's digits (when scikit-learn is installed), each with its
Gram matrix C (formed once, with NumPy), the true top-k directions (NumPy's
SVD or eigh), lam, tol, and one common start (W1, W2) for laefast and the
reference.

Part of the benchmark harness in ``benchmarks/laefast_bench/``, which the
asv suite and the benchmark scripts share.  It uses only laefast's public
names, and it is not part of the package: it stays the same whichever commit
asv measures (see ``benchmarks/laefast_bench/__init__.py``).
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from laefast import default_alpha, gram_matrix, reference
from laefast.metrics import u_error

from .timing import SETTLE_S

__all__ = ["METHODS", "GD_METHODS", "PROBLEMS", "DEFAULT_PROBLEMS",
           "SPIKED", "DIGITS", "Problem", "get_problem", "problem_samples",
           "problem_unavailable", "sklearn_available", "start_error"]

# What the suite measures, spelled out here so that it does not change with
# the measured commit.
METHODS = ("untied", "sync", "tied", "exact-untied", "exact-sync",
           "exact-tied")
GD_METHODS = ("untied", "sync", "tied")
PROBLEMS = ("paper", "spiked", "digits")
DEFAULT_PROBLEMS = PROBLEMS
                          # idle threads sleep
# The reference's exact-untied builds an (mk x mk) matrix; beyond this many
# bytes it is reported as infeasible instead of being run.
KRONECKER_LIMIT = 512 << 20
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

    def without_samples(self):
        """A copy without X: small enough to pickle (asv's setup_cache)."""
        return dataclasses.replace(self, X=None)

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


def problem_samples(name, lam=None):
    """(X, k, lam) of a problem, built without a copy of X or NumPy's C.

    For the memory benchmarks: the samples (n, m) are all this process
    holds.  Without `lam`, it is read off laefast.gram_matrix (which then
    has run in this process); pass the value from another process to keep
    this one clean.
    """
    if name == "paper":
        X, _, _ = reference.paper_problem()
        return np.ascontiguousarray(X.T), 2, 50.0
    if name not in ("spiked", "digits"):
        raise ValueError(f"unknown problem {name!r}; choose from {PROBLEMS}")
    p = SPIKED if name == "spiked" else DIGITS
    X = _spiked_samples() if name == "spiked" else _digits_samples()
    if lam is not None:
        return X, p["k"], float(lam)
    C, _ = gram_matrix(X)
    w = scipy.linalg.eigvalsh(C, subset_by_index=[C.shape[0] - p["k"],
                                                  C.shape[0] - 1])
    del C
    return X, p["k"], p["lam_fraction"] * float(w[0])


def _spiked():
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

