"""The paper's six LAE-PCA algorithms, in plain NumPy, as the paper states them.

This is the baseline that tests and benchmarks measure laefast against, so it
keeps the paper's operation order -- including the m x m x m product
(W2 W1 - I) C and the (mk x mk) Kronecker solve of exact-untied -- and is
kept deliberately slow and readable.  Do not optimize it.

Every function takes the Gram matrix C = X X^T (no 1/n), starting weights
W1 (k x m) and W2 (m x k), and returns a :class:`ReferenceRun`.  The inputs
are copied, never modified.  ``iterates(...)`` yields the weights after each
iteration, for iterate-by-iterate comparisons.

Beyond the paper: ``lam`` may be a length-k vector (one penalty per latent,
the diagonal Lambda: lam W1 becomes Lambda W1 and lam W2 becomes W2 Lambda),
and ``regularizer='product'`` replaces lam (||W1||^2 + ||W2||^2) by
lam ||W2 W1||^2 in the gradient methods, whose half-gradients gain
lam W2^T W2 W1 and lam W2 W1 W1^T instead of lam W1 and lam W2.
"""

from dataclasses import dataclass

import numpy as np
import scipy.linalg

__all__ = [
    "METHODS",
    "ReferenceRun",
    "untied",
    "sync",
    "tied",
    "exact_untied",
    "exact_sync",
    "exact_tied",
    "run",
    "iterates",
    "exact_w1",
    "exact_w2",
    "paper_problem",
    "REGULARIZERS",
]


@dataclass
class ReferenceRun:
    W1: np.ndarray
    W2: np.ndarray
    n_iter: int
    converged: bool
    stop: float


REGULARIZERS = ("sum", "product")


def _left(lam, W):
    """lam W, or Lambda W = diag(lam) W for a vector lam."""
    return lam * W if np.ndim(lam) == 0 else np.asarray(lam)[:, None] * W


def _right(W, lam):
    """lam W, or W Lambda for a vector lam."""
    return lam * W if np.ndim(lam) == 0 else W * np.asarray(lam)[None, :]


def _grad1(C, W1, W2, lam, regularizer, I):
    """Half the gradient of the loss in W1, the paper's operation order."""
    G = (W2.T @ (W2 @ W1 - I)) @ C
    if regularizer == "product":
        return G + lam * ((W2.T @ W2) @ W1)
    return G + _left(lam, W1)


def _grad2(C, W1, W2, lam, regularizer, I):
    """Half the gradient of the loss in W2."""
    G = ((W2 @ W1 - I) @ C) @ W1.T
    if regularizer == "product":
        return G + lam * (W2 @ (W1 @ W1.T))
    return G + _right(W2, lam)


def exact_w1(C, W2, lam):
    """Exact W1 given W2, via the seed's (mk x mk) Kronecker system.

    Solves (W2^T W2) W1 C + Lambda W1 = W2^T C with W1 stored row by row
    (Lambda = lam I, or diag(lam) for a vector lam).
    """
    m, k = W2.shape
    coefficient = np.kron(W2.T @ W2, C)
    if np.ndim(lam) == 0:
        coefficient[np.diag_indices_from(coefficient)] += lam
    else:
        coefficient += np.kron(np.diag(lam), np.eye(m))
    rhs = (W2.T @ C).reshape(m * k)
    return scipy.linalg.solve(coefficient, rhs, assume_a="pos").reshape(k, m)


def exact_w2(C, W1, lam):
    """Exact W2 given W1: C W1^T (W1 C W1^T + Lambda)^-1."""
    k = W1.shape[0]
    rhs = W1 @ C
    coefficient = rhs @ W1.T + _left(lam, np.eye(k))
    return scipy.linalg.solve(coefficient, rhs, assume_a="pos").T


def _untied(C, W1, W2, lam, alpha, tol, regularizer="sum"):
    # L_pi's minima are not tied (W1 != W2^T): under the product
    # regularizer untied GD stops on the size of its step, like sync.
    I = np.eye(C.shape[0])
    product = regularizer == "product"
    stop = np.inf if product else np.linalg.norm(W1 - W2.T)
    while stop > tol:
        dW1 = alpha * _grad1(C, W1, W2, lam, regularizer, I)
        W1 = W1 - dW1
        dW2 = alpha * _grad2(C, W1, W2, lam, regularizer, I)
        W2 = W2 - dW2
        if product:
            stop = np.linalg.norm(dW1) + np.linalg.norm(dW2)
        else:
            stop = np.linalg.norm(W1 - W2.T)
        yield W1, W2, stop


def _sync(C, W1, W2, lam, alpha, tol, regularizer="sum"):
    I = np.eye(C.shape[0])
    W1 = W2.T.copy()
    stop = np.inf
    while stop > tol:
        dW1 = alpha * _grad1(C, W1, W2, lam, regularizer, I)
        dW2 = alpha * _grad2(C, W1, W2, lam, regularizer, I)
        W1 = W1 - dW1
        W2 = W2 - dW2
        W1 = (W1 + W2.T) / 2
        W2 = W1.T.copy()
        stop = np.linalg.norm(dW1) + np.linalg.norm(dW2)
        yield W1, W2, stop


def _tied(C, W1, W2, lam, alpha, tol, regularizer="sum"):
    I = np.eye(C.shape[0])
    stop = np.inf
    while stop > tol:
        # The decoder's half-gradient at W1 = W2^T (regularized Oja's rule).
        update = alpha * _grad2(C, W2.T, W2, lam, regularizer, I)
        W2 = W2 - update
        W1 = W2.T.copy()
        stop = 2 * np.linalg.norm(update)
        yield W1, W2, stop


def _exact_untied(C, W1, W2, lam, alpha, tol):
    stop = np.linalg.norm(W1 - W2.T)
    while stop > tol:
        W1 = exact_w1(C, W2, lam)
        W2 = exact_w2(C, W1, lam)
        stop = np.linalg.norm(W1 - W2.T)
        yield W1, W2, stop


def _exact_sync(C, W1, W2, lam, alpha, tol):
    k = W2.shape[1]
    W1 = W2.T.copy()
    stop = np.inf
    while stop > tol:
        W1_prev = W1
        W1 = np.linalg.solve(W2.T @ C @ W2 + _left(lam, np.eye(k)), W2.T @ C)
        W2 = exact_w2(C, W1, lam)
        W1 = (W1 + W2.T) / 2
        W2 = W1.T.copy()
        stop = np.linalg.norm(W1 - W1_prev)
        yield W1, W2, stop


def _exact_tied(C, W1, W2, lam, alpha, tol):
    while True:
        W2 = exact_w2(C, W1, lam)
        stop = np.linalg.norm(W1 - W2.T)
        if stop <= tol:
            yield W1, W2, stop
            return
        W1 = W2.T.copy()
        yield W1, W2, stop


_LOOPS = {
    "untied": _untied,
    "sync": _sync,
    "tied": _tied,
    "exact-untied": _exact_untied,
    "exact-sync": _exact_sync,
    "exact-tied": _exact_tied,
}
METHODS = tuple(_LOOPS)


def iterates(method, C, W1, W2, lam, alpha=None, tol=1e-8, regularizer="sum"):
    """Yield (W1, W2, stopping quantity) after each iteration of `method`.

    The first yield is the state after iteration 1.  It ends when the
    stopping rule holds (that iterate is yielded last).  `lam` is a number
    or a length-k vector; regularizer='product' works with the gradient
    methods and a scalar lam.
    """
    loop = _LOOPS[method]
    W1 = np.array(W1, dtype=float, copy=True)
    W2 = np.array(W2, dtype=float, copy=True)
    if np.ndim(lam) != 0:
        lam = np.array(lam, dtype=float)
    if regularizer not in REGULARIZERS:
        raise ValueError(
            f"regularizer must be 'sum' or 'product', got {regularizer!r}")
    if regularizer == "product":
        if method not in ("untied", "sync", "tied") or np.ndim(lam) != 0:
            raise ValueError("regularizer='product' needs a gradient method "
                             "and a scalar lam")
        return loop(np.asarray(C, dtype=float), W1, W2, lam, alpha, tol,
                    regularizer)
    return loop(np.asarray(C, dtype=float), W1, W2, lam, alpha, tol)


def run(method, C, W1, W2, lam, alpha=None, tol=1e-8, max_iter=100_000,
        regularizer="sum"):
    """Run `method` to its stopping rule or `max_iter` iterations."""
    W1 = np.array(W1, dtype=float, copy=True)
    W2 = np.array(W2, dtype=float, copy=True)
    n_iter, stop, converged = 0, np.inf, False
    if method in ("untied", "exact-untied") and regularizer == "sum":
        stop = np.linalg.norm(W1 - W2.T)
        converged = stop <= tol
    if method == "tied":
        W1 = W2.T.copy()
    for W1, W2, stop in iterates(method, C, W1, W2, lam, alpha, tol,
                                 regularizer):
        n_iter += 1
        converged = stop <= tol
        if n_iter >= max_iter:
            break
    return ReferenceRun(W1, W2, n_iter, bool(converged), float(stop))


def untied(C, W1, W2, lam, alpha, tol=1e-8, max_iter=100_000):
    return run("untied", C, W1, W2, lam, alpha, tol, max_iter)


def sync(C, W1, W2, lam, alpha, tol=1e-8, max_iter=100_000):
    return run("sync", C, W1, W2, lam, alpha, tol, max_iter)


def tied(C, W1, W2, lam, alpha, tol=1e-8, max_iter=100_000):
    return run("tied", C, W1, W2, lam, alpha, tol, max_iter)


def exact_untied(C, W1, W2, lam, tol=1e-8, max_iter=100_000):
    return run("exact-untied", C, W1, W2, lam, None, tol, max_iter)


def exact_sync(C, W1, W2, lam, tol=1e-8, max_iter=100_000):
    return run("exact-sync", C, W1, W2, lam, None, tol, max_iter)


def exact_tied(C, W1, W2, lam, tol=1e-8, max_iter=100_000):
    return run("exact-tied", C, W1, W2, lam, None, tol, max_iter)


def paper_problem(m=10, n=10_000, k=2, seed=0):
    """The seed code's default problem and start, drawn exactly as it does.

    Returns (X, W1, W2) with X (m x n), rows centered, columns samples;
    defaults lam = 50, alpha = 1e-5, eps = 1e-8 go with it.
    """
    rng = np.random.RandomState(seed)  # same stream as np.random.seed(seed)
    X = rng.normal(size=(m, n))
    X = X - np.mean(X, axis=1, keepdims=True)
    W1 = rng.normal(size=(k, m))
    W2 = rng.normal(size=(m, k))
    return X, W1, W2
