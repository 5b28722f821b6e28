"""solve / fit / step: validation, dispatch to one kernel call, read-out."""

import numbers
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _solvers
from ._exceptions import ConvergenceWarning, DivergenceError, caller_stacklevel
from ._methods import GD_METHODS, REGISTRY
from ._parallel import resolve_threads, serial_blas
from ._problem import GramProblem, choose_path
from ._readout import readout, readout_kind
from ._regularizer import check_lam, check_regularizer, lam_summary
from ._validation import (
    check_data,
    check_gram,
    check_method,
    check_n_components,
    check_scalar,
    check_matrix,
    check_weights,
)

__all__ = ["LAEResult", "solve", "fit", "step", "exact_w1", "exact_w2",
           "default_alpha"]

# Methods that stop when ||W1 - W2^T|| <= tol (the sum regularizer's).
_TIE_RULE = ("untied", "exact-untied", "exact-tied")
DEFAULT_MAX_ITER = 100_000
# The longest history segment _run_recorded asks of the kernel at once.
_MAX_SEGMENT = 1 << 20


@dataclass
class LAEResult:
    """What a solver learned, and how it got there.

    Attributes
    ----------
    W1, W2 : ndarray
        Encoder (k x m) and decoder (m x k) at the end of the run.
    components : ndarray (k x m)
        Principal directions as rows, each row's largest-magnitude entry
        positive.  How they are read depends on ``readout``: 'svd' (one lam,
        sum regularizer): the left singular vectors of W2, by decreasing
        variance; 'columns' (a vector lam): W2's columns, normalized,
        ordered by increasing lam (the smallest lam's latent learns the top
        direction); 'subspace' (product regularizer, untied): an
        orthonormal basis of the learned principal subspace, which is all
        L_pi determines for untied weights -- its rows are NOT the
        individual directions.  The product regularizer with sync or tied
        (W1 = W2^T) is 'svd' again: there W2 W2^T is L_pi's symmetric
        product map, whose eigenvectors are the directions.  'ritz'
        (lam = 0, from solve and fit): W2's singular values are then all 1
        and its singular vectors any basis of the principal subspace, so the
        directions and variances are the Ritz pairs of C on span(W2).
    singular_values : ndarray (k,)
        Singular values of X, sigma_i = sqrt(lam_i / (1 - s_i^2)) with s_i
        the singular values of W2 ('svd') or its columns' norms ('columns');
        sigma_i^2 = lam s_i^2 / (1 - s_i^2) under the product regularizer
        (sync, tied); 0 for collapsed components; NaN for 'subspace', whose
        W2 does not identify them.
    eigenvalues : ndarray (k,)
        Eigenvalues of C = X X^T (sigma_i^2); 0 for collapsed components,
        NaN for 'subspace'.
    collapsed : ndarray of bool (k,)
        Components that lam switched off (lam >= sigma_i^2).
    n_iter : int
        Iterations run.
    converged : bool
        Whether the method's stopping rule held (else max_iter was reached).
    stop : float
        The last stopping quantity (the documentation's theory page defines
        it per method).
    method, lam, alpha, tol :
        The settings used (alpha is None for the exact methods; lam a float,
        or a float64 array for a per-latent penalty).
    history : dict or None
        With history=True: ``{"stop": ..., "objective": ...}``, one entry per
        iteration, recorded inside the kernel (objective is the run's loss:
        L_sigma, or L_pi with the product regularizer).  history='weights'
        adds "W1" (n_iter, k, m) and "W2" (n_iter, m, k), the weights after
        each iteration.
    mean : ndarray or None
        The feature means subtracted by :func:`fit` (None from :func:`solve`).
    regularizer : str
        'sum' or 'product'.
    readout : str
        'svd', 'columns', 'subspace' or 'ritz', as described under ``components``.

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> X = np.random.default_rng(0).standard_normal((500, 6)) * [5, 4, 3, 1, 1, 1]
    >>> res = laefast.fit(X, 2, lam=10.0)
    >>> res.components.shape, res.W1.shape, res.W2.shape
    ((2, 6), (2, 6), (6, 2))
    >>> bool(res.converged), bool(res.collapsed.any())
    (True, False)
    """

    W1: np.ndarray
    W2: np.ndarray
    components: np.ndarray
    singular_values: np.ndarray
    eigenvalues: np.ndarray
    collapsed: np.ndarray
    n_iter: int
    converged: bool
    stop: float
    method: str
    lam: float
    alpha: float | None
    tol: float
    history: dict | None = None
    mean: np.ndarray | None = field(default=None, repr=False)
    regularizer: str = "sum"
    readout: str = "svd"

    @property
    def directions_identified(self):
        """Whether ``components`` are the individual principal directions
        (False under the product regularizer: only their span is learned)."""
        return self.readout != "subspace"


def default_alpha(problem, lam, W1, W2, regularizer="sum"):
    """The step used when alpha=None: 1 / (3 c r^2 + lam).

    c bounds the largest eigenvalue of C from above (on C:
    ``min(tr C, max_i sum_j |C_ij|)``; on data: a Lanczos estimate plus 5%), and
    r^2 = max(1, ||W1||_F^2, ||W2||_F^2).  Near a minimum the gradient's
    Lipschitz constant is about 2 sigma_1^2, and while the weights stay
    within spectral norm sqrt(4/3) it is at most 3 sigma_1^2 + lam (the
    scalar case's Hessian), so this step cannot overshoot there.
    `problem` is a Gram matrix C or a laefast._problem.GramProblem.
    A vector lam counts by its largest entry.  The product regularizer's
    half-gradient is the reconstruction's with C + lam I in place of C
    (in its W2^T W2 W1 C term), so it takes 1 / (3 (c + lam) r^2).

    Parameters
    ----------
    problem : array_like (m, m)
        The Gram matrix C (or laefast's internal problem object, which
        holds C or the samples).
    lam : float >= 0 or array_like (k,)
        The L2 penalty (a vector counts by its largest entry).
    W1, W2 : ndarray (k, m) and (m, k)
        The weights the step starts from.
    regularizer : {'sum', 'product'}
        The penalty the step is for.

    Returns
    -------
    float
        The step 1 / (3 c r^2 + lam).

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> C = np.diag([4.0, 2.0, 1.0])
    >>> W1, W2 = np.zeros((1, 3)), np.zeros((3, 1))
    >>> laefast.default_alpha(C, 0.5, W1, W2)    # c = 4 (row sums), r^2 = 1
    0.08
    """
    if not isinstance(problem, GramProblem):
        problem = GramProblem.from_gram(problem)
    c = problem.eigenvalue_bound()
    lam = float(np.max(lam))
    if regularizer == "product":
        return step_for_bound(c + lam, 0.0, W1, W2)
    return step_for_bound(c, lam, W1, W2)


def step_for_bound(c, lam, W1, W2):
    """default_alpha's 1 / (3 c r^2 + lam) for a known bound c, for callers
    that keep c while the weights change."""
    r2 = max(1.0, float(np.sum(W1 * W1)), float(np.sum(W2 * W2)))
    if c > np.finfo(np.float64).tiny:
        # (1 / c) / (3 r^2 + lam / c): 3 c r^2 itself overflows for C near
        # the top of float64's range.
        return (1.0 / c) / (3.0 * r2 + lam / c)
    # C = 0 (to rounding): only lam curves the loss; with lam = 0 too the
    # gradient is 0 and any step is as good as another.
    return 1.0 / lam if lam > 0.0 else 1.0


def initial_weights(init, m, k, dtype, random_state):
    if init is not None:
        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise ValueError("init must be a pair (W1, W2)")
        W1, W2 = init
        return check_weights(W1, W2, m, k, dtype)
    # Small random weights (Frobenius norm about 0.5): far from the saddle
    # at 0 in every direction, and inside the region default_alpha covers.
    rng = np.random.default_rng(random_state)
    scale = 0.5 / np.sqrt(m * k)
    W1 = (scale * rng.standard_normal((k, m))).astype(dtype)
    W2 = (scale * rng.standard_normal((m, k))).astype(dtype)
    return W1, W2


def _check_max_iter(max_iter):
    if max_iter is None:
        return DEFAULT_MAX_ITER
    if (not isinstance(max_iter, numbers.Integral)
            or isinstance(max_iter, bool) or max_iter < 0):
        raise ValueError(
            f"max_iter must be a non-negative integer, got {max_iter!r}")
    if max_iter > _MAX_ITER_LIMIT:
        raise ValueError(
            f"max_iter={max_iter} is beyond what an iteration counter holds "
            f"(2**62); pass at most {_MAX_ITER_LIMIT}, or None for the "
            f"default {DEFAULT_MAX_ITER}")
    return int(max_iter)


_MAX_ITER_LIMIT = 1 << 62


def _raise_for_status(status, method, n_iter, which, alpha, lam):
    lam = lam_summary(lam)
    if status == _solvers.NONFINITE:
        if method in GD_METHODS:
            raise DivergenceError(
                f"{method} gradient descent diverged at iteration {n_iter}: "
                f"the weights stopped being finite. The step alpha={alpha:g} "
                "is too large for this problem; lower it, or pass alpha=None "
                "(LAEPCA: alpha='auto') for a safe step. (If C is not "
                "positive semi-definite, i.e. not a Gram matrix X^T X, no "
                "step converges: check how C was formed.)")
        raise DivergenceError(
            f"{method} produced non-finite weights at iteration {n_iter}; "
            "the problem is too badly scaled for this dtype.")
    if status == _solvers.NOT_PD_W2:
        raise np.linalg.LinAlgError(
            f"{method}, iteration {n_iter + 1}: the k x k matrix "
            f"W1 C W1^T + lam I is not positive definite (lam={lam}). With "
            "lam = 0 this happens when W1 C W1^T is singular (rank-deficient "
            "C or start); use lam > 0.")
    if status == _solvers.NOT_PD_W1:
        raise np.linalg.LinAlgError(
            f"{method}, iteration {n_iter + 1}: the m x m matrix "
            f"d_{which} C + lam I of the exact W1 step is not positive "
            f"definite (lam={lam}). With lam = 0 this happens when C is "
            "singular or W2 is rank-deficient; use lam > 0.")
    if status == _solvers.EIGH_FAILED:
        raise np.linalg.LinAlgError(
            f"{method}, iteration {n_iter + 1}: the eigendecomposition of "
            "W2^T W2 did not converge.")


def run_kernel(problem, W1, W2, method, lam, alpha, tol, max_iter,
               n_threads=1, hist_stop=None, hist_obj=None, *,
               regularizer="sum", hist_w1=None, hist_w2=None):
    """One compiled solver loop, in place on W1 and W2: (n_iter, status, stop).

    Inputs are validated already (lam: a float, or a vector from
    check_lam); failures (divergence, a k x k or m x m system that is not
    positive definite) raise here.  hist_w1/hist_w2: flat buffers of
    max_iter k m entries of W1's dtype for the weights after each iteration.
    """
    if np.ndim(lam) == 0:
        lam_vec = None
    else:
        lam_vec, lam = lam, float(lam[0])
    # The loop runs on scale C (scale a power of two near 1 / tr C: exact),
    # with lam scale and alpha / scale: the same iterates, and every
    # quantity near 1 whatever the data's magnitude (1e-150 or 1e150).
    scale = problem.kernel_scale()
    # Only exact-untied's k independent m x m solves run in parallel; the
    # other loops are chains of GEMMs that BLAS's own threads serve best.
    parallel = (_solvers.exact_w1_threads(problem.m, W1.shape[0], n_threads)
                if method == "exact-untied" else 1)
    with serial_blas(parallel):
        n_iter, status, stop, which = _solvers.run(
            REGISTRY[method].code, W1, W2, lam=lam * scale,
            alpha=0.0 if alpha is None else alpha / scale, tol=tol,
            max_iter=max_iter, hist_stop=hist_stop, hist_obj=hist_obj,
            trace_c=(problem.trace() * scale if hist_stop is not None
                     else 0.0),
            n_threads=n_threads,
            lam_vec=None if lam_vec is None else lam_vec * scale,
            product=regularizer == "product", hist_w1=hist_w1,
            hist_w2=hist_w2, scale=scale, **problem.kernel_args())
    if hist_obj is not None:
        hist_obj[:n_iter] /= scale
    _raise_for_status(status, method, n_iter, which, alpha,
                      lam if lam_vec is None else lam_vec)
    return n_iter, status, stop


def _check_history(history):
    if isinstance(history, str):
        if history != "weights":
            raise ValueError(f"history must be True, False or 'weights', "
                             f"got {history!r}")
        return history
    return bool(history)


def _run(problem, W1, W2, k, lam, method, alpha, tol, max_iter, history,
         n_threads, regularizer="sum"):
    """The one kernel call, then the read-out.  Inputs already validated."""
    if history:
        n_iter, status, stop, records = _run_recorded(
            problem, W1, W2, method, lam, alpha, tol, max_iter, n_threads,
            regularizer, history == "weights")
    else:
        n_iter, status, stop = run_kernel(problem, W1, W2, method, lam,
                                          alpha, tol, max_iter, n_threads,
                                          regularizer=regularizer)
    converged = status == _solvers.CONVERGED
    if not converged:
        warnings.warn(
            f"{method} stopped at max_iter={max_iter} with stopping quantity "
            f"{stop:.3g} > tol={tol:g}; raise max_iter or tol.",
            ConvergenceWarning, stacklevel=caller_stacklevel())
    hist = None
    if history:
        hist = {"stop": records[0], "objective": records[1]}
    if history == "weights":
        m = W1.shape[1]
        hist["W1"] = records[2].reshape(n_iter, k, m)
        hist["W2"] = records[3].reshape(n_iter, m, k)
    # _run <- _solve <- solve/fit <- the caller
    return make_result(
        W1, W2, lam, method=method, alpha=alpha, tol=tol, n_iter=n_iter,
        converged=converged, stop=stop, stacklevel=5, history=hist,
        regularizer=regularizer, problem=problem)


def _run_recorded(problem, W1, W2, method, lam, alpha, tol, max_iter,
                  n_threads, regularizer, weights):
    """run_kernel with history, in segments of growing length (1024, 2048,
    ...): the records take memory for the iterations actually run, not
    max_iter's.  A loop resumed where the last segment stopped takes the
    same steps (each loop's state is its weights), so the result is that
    of one call."""
    parts = [[], [], [], []]
    n_iter, done, seg = 0, False, 1024
    status = _solvers.MAX_ITER
    stop = np.inf
    size = W1.size
    while not done:
        steps = min(seg, max_iter - n_iter)
        bufs = [np.empty(steps), np.empty(steps), None, None]
        if weights:
            bufs[2] = np.empty(steps * size, dtype=W1.dtype)
            bufs[3] = np.empty(steps * size, dtype=W1.dtype)
        ran, status, stop = run_kernel(
            problem, W1, W2, method, lam, alpha, tol, steps, n_threads,
            bufs[0], bufs[1], regularizer=regularizer, hist_w1=bufs[2],
            hist_w2=bufs[3])
        parts[0].append(bufs[0][:ran])
        parts[1].append(bufs[1][:ran])
        if weights:
            parts[2].append(bufs[2][:ran * size])
            parts[3].append(bufs[3][:ran * size])
        n_iter += ran
        done = (status != _solvers.MAX_ITER or n_iter >= max_iter or ran == 0)
        seg = min(2 * seg, _MAX_SEGMENT)
    records = [np.concatenate(p) if p else None for p in parts]
    return n_iter, status, stop, records


def make_result(W1, W2, lam, *, method, alpha, tol, n_iter, converged, stop,
                history=None, mean=None, stacklevel=2, regularizer="sum",
                problem=None):
    """An LAEResult from trained weights: the read-out of docs/theory.md
    (and its per-latent and product variants, see laefast._readout); with
    the problem at hand, lam = 0 and small decoder singular values are read
    out against C itself."""
    times = problem.times if problem is not None else None
    components, sing, eig, collapsed = readout(W2, lam, tol,
                                               stacklevel=stacklevel,
                                               regularizer=regularizer,
                                               method=method, times=times)
    return LAEResult(
        W1=W1, W2=W2, components=components,
        singular_values=sing.astype(W2.dtype), eigenvalues=eig.astype(W2.dtype),
        collapsed=collapsed, n_iter=int(n_iter), converged=bool(converged),
        stop=float(stop), method=method, lam=lam, alpha=alpha, tol=tol,
        history=history, mean=mean, regularizer=regularizer,
        readout=readout_kind(lam, regularizer, method,
                             ritz=times is not None))


def _solve(problem, method, n_components, lam, alpha, tol, max_iter, init,
           random_state, history, n_threads, regularizer="sum"):
    """Validate the settings, pick the start and the step, run."""
    m = problem.m
    method = check_method(method)
    regularizer = check_regularizer(regularizer, method)
    k = check_n_components(n_components, m)
    lam = check_lam(lam, k, regularizer)
    if (np.ndim(lam) == 0 and lam == 0.0 and regularizer == "sum"
            and method in _TIE_RULE):
        raise ValueError(
            f"lam=0 cannot be used with method={method!r}: its stopping rule "
            "||W1 - W2^T|| <= tol needs lam > 0 (at lam = 0 the minima "
            "W2 = U G, W1 = G^-1 U^T are not tied, so the run would never "
            "stop). Pass a small lam > 0 (e.g. 1e-6 times C's largest "
            "eigenvalue), or use method 'sync', 'tied' or 'exact-sync', "
            "which stop on the step size")
    tol = check_scalar(tol, "tol")
    max_iter = _check_max_iter(max_iter)
    history = _check_history(history)
    n_threads = resolve_threads(n_threads)
    W1, W2 = initial_weights(init, m, k, problem.dtype, random_state)
    if method in GD_METHODS:
        if alpha is None:
            alpha = default_alpha(problem, lam, W1, W2, regularizer)
        else:
            alpha = check_scalar(alpha, "alpha", allow_zero=False)
    elif alpha is not None:
        check_scalar(alpha, "alpha", allow_zero=False)
        alpha = None  # the exact methods take no step size
    return _run(problem, W1, W2, k, lam, method, alpha, tol, max_iter, history,
                n_threads, regularizer)


def solve(C, n_components, lam, *, method="exact-tied", alpha=None, tol=1e-8,
          max_iter=None, init=None, random_state=None, history=False,
          n_threads=None, regularizer="sum"):
    """Fit an L2-regularized linear autoencoder to a Gram matrix C = X X^T.

    Parameters
    ----------
    C : array_like (m, m)
        Symmetric positive semi-definite Gram matrix of centered data, the
        paper's convention: no 1/n, so lam is compared with sigma_i^2.
        float32 and float64 are used as they are (C or Fortran order, no
        copy); other numeric types are converted to float64.
    n_components : int
        k, the latent width, 1 <= k <= m.
    lam : float >= 0, or array_like (k,) of floats > 0
        L2 penalty lambda.  Components with sigma_i^2 <= lam collapse.
        lam = 0 is read out as the Ritz pairs of C on the learned subspace
        (``result.readout == 'ritz'``), and is rejected for untied,
        exact-untied and exact-tied, whose stopping rule needs lam > 0.  A
        vector gives latent i its own lam_i (non-uniform l2, sum regularizer
        only, every method): with distinct values the minimum pins the
        rotation, and W2's columns, ordered by increasing lam, are the
        principal directions themselves (``result.readout == 'columns'``).
        Gradient descent reaches that order slowly: the rotation converges
        at a rate set by the gaps between the lam_i and between the
        sigma_i^2, so raise max_iter.
    method : str
        'untied', 'sync', 'tied' (gradient descent), or 'exact-untied',
        'exact-sync', 'exact-tied' (alternating exact minimization).
    alpha : float > 0 or None
        Step size of the gradient methods (ignored by the exact ones).  None
        picks 1 / (3 c r^2 + lam), c an upper bound on the largest eigenvalue
        of C and r^2 = max(1, ||W1||_F^2, ||W2||_F^2) of the start: a step
        that does not diverge from the default start (see default_alpha).
    tol : float >= 0
        The threshold eps of the method's stopping rule (see the theory
        page: ||W1 - W2^T||_F <= eps for untied, exact-untied and
        exact-tied, the size of the last update for the others).
    max_iter : int or None
        Cap on iterations (None: 100000).  Reaching it warns with
        ConvergenceWarning.
    init : (W1, W2) or None
        Starting weights (k x m, m x k); copied, never modified.  None draws
        small Gaussian weights from random_state.
    random_state : int, numpy Generator or None
    history : bool or 'weights'
        Record the stopping quantity and the loss (L_sigma; L_pi with the
        product regularizer) after every iteration; 'weights' also records
        W1 and W2 after every iteration (k m values each per iteration).
    n_threads : int or None
        OpenMP threads for exact-untied's k independent m x m Cholesky
        solves (None: all cores, following OMP_NUM_THREADS); BLAS runs
        single-threaded inside them.  Below about 4e6 flops per W1 step
        they run serially.  The other methods are chains of GEMMs and use
        BLAS's own threads (limit those with threadpoolctl).
    regularizer : {'sum', 'product'}
        'sum' (default): the paper's L_sigma, penalty
        lam (||W1||^2 + ||W2||^2), whose minima give the directions.
        'product': L_pi, penalty lam ||W2 W1||^2, for the gradient methods
        (same flops per step up to O(k^2 m); untied then stops when
        ||dW1|| + ||dW2|| <= tol, since L_pi's minima are not tied).  Its
        minima fix only W2 W1, so untied's result holds the principal
        subspace, not the directions (``result.readout == 'subspace'``,
        variances NaN); sync and tied force W1 = W2^T, which pins them.

    Returns
    -------
    LAEResult
        The trained weights, the directions and variances read out from
        them, and how the run went.

    Raises
    ------
    ValueError
        C not square, not symmetric or not finite; a parameter out of
        range, e.g. regularizer='product' with an exact method, a vector
        lam of the wrong length, or lam = 0 with untied, exact-untied or
        exact-tied.
    numpy.linalg.LinAlgError
        A k x k or m x m system that is not positive definite (lam = 0 with
        a rank-deficient C).
    DivergenceError
        A gradient method produced non-finite weights (alpha too large).

    Warns
    -----
    ConvergenceWarning
        max_iter was reached before the stopping rule held.
    CollapsedComponentWarning
        lam is at or above sigma_i^2 for some kept components.

    See Also
    --------
    fit : the same from the samples.
    LAEPCA : the estimator, with nothing to tune.

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((5, 1000)) * [[5], [4], [3], [2], [1]]
    >>> X -= X.mean(axis=1, keepdims=True)
    >>> C = X @ X.T                                # the paper's C, no 1/n
    >>> res = laefast.solve(C, 2, lam=100.0, method="exact-tied")
    >>> U = np.linalg.eigh(C)[1][:, ::-1][:, :2]
    >>> laefast.metrics.max_principal_sine(res.components.T, U) < 1e-6
    True
    >>> np.allclose(res.eigenvalues, np.linalg.eigvalsh(C)[::-1][:2])
    True
    >>> res = laefast.solve(np.diag([9.0, 4.0, 1.0]), 2, lam=[0.5, 1.0],
    ...                     method="exact-tied", tol=1e-12, max_iter=10_000)
    >>> res.readout, np.round(np.abs(res.W2[:, 0]) ** 2, 6)
    ('columns', array([0.944444, 0.      , 0.      ]))
    """
    problem = GramProblem.from_gram(C)
    return _solve(problem, method, n_components, lam, alpha, tol, max_iter,
                  init, random_state, history, n_threads, regularizer)


def gram_matrix(X, center=True, *, n_threads=None):
    """C = Xc^T Xc for X of shape (n_samples, n_features); returns (C, mean).

    One parallel pass over X (see :class:`GramAccumulator`): rows are
    centered block by block into thread-local buffers, so X is never
    copied; C is accumulated in float64 and returned in X's dtype.
    """
    problem = GramProblem.from_data(X, center, path="gram",
                                    n_threads=resolve_threads(n_threads))
    return problem.C, problem.mean


def fit(X, n_components, lam, *, center=True, path="auto", method="exact-tied",
        alpha=None, tol=1e-8, max_iter=None, init=None, random_state=None,
        history=False, n_threads=None, regularizer="sum"):
    """Fit from data X of shape (n_samples, n_features).

    X is the paper's data matrix transposed (samples as rows, the NumPy and
    scikit-learn layout); C- or Fortran-ordered X is used without a copy.

    Parameters
    ----------
    X : array_like (n_samples, n_features)
        The samples, float32 or float64 (other numeric types become
        float64).
    n_components : int
        k, the latent width, 1 <= k <= n_features.
    lam : float >= 0
        L2 penalty, in units of the eigenvalues of C = Xc^T Xc (no 1/n).
    center : bool
        Subtract the feature means (on the fly, X is not copied).
    path : {'auto', 'gram', 'data'}
        'gram' forms C = Xc^T Xc once (syrk, n m^2 flops, m^2 memory) and
        iterates on it; 'data' never forms C and runs every product against
        the samples (untied ~8kmn, tied and exact-tied ~4kmn flops per
        iteration), centering on the fly.  'auto' picks the cheaper by a
        flop count with an assumed iteration count (1000 for the gradient
        methods, 100 for the exact ones), and 'data' whenever C would
        exceed 2 GiB.  exact-untied always needs C.
    method, alpha, tol, max_iter, init, random_state, history, n_threads
        As in :func:`solve`.

    Returns
    -------
    LAEResult
        As from :func:`solve`; its ``mean`` holds the subtracted feature
        means (None with center=False).

    Raises
    ------
    ValueError
        Non-finite or non-2-D X, a parameter out of range, or
        exact-untied with path='data'.
    numpy.linalg.LinAlgError, DivergenceError
        As in :func:`solve`.

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((2000, 8)) * np.arange(8, 0, -1) + 3.0
    >>> res = laefast.fit(X, 3, lam=50.0, path="data")      # never forms C
    >>> Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2]
    >>> laefast.metrics.max_principal_sine(res.components.T, Vt[:3].T) < 1e-6
    True
    """
    X = check_data(X, finite=False)      # the first pass over X checks it
    method = check_method(method)
    check_regularizer(regularizer, method)
    k = check_n_components(n_components, X.shape[1])
    check_lam(lam, k, regularizer)
    if path == "auto":
        path = choose_path(X.shape[0], X.shape[1], k, method, X.itemsize)
    elif path not in ("gram", "data"):
        raise ValueError(f"path must be 'auto', 'gram' or 'data', got {path!r}")
    if path == "data" and method == "exact-untied":
        raise ValueError("exact-untied needs the Gram matrix: use path='gram'")
    problem = GramProblem.from_data(X, center, path,
                                    n_threads=resolve_threads(n_threads))
    result = _solve(problem, method, k, lam, alpha, tol, max_iter, init,
                    random_state, history, n_threads, regularizer)
    result.mean = problem.mean
    return result


def _check_inplace(W, name, shape, dtype):
    if not isinstance(W, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array (it is updated in place)")
    if W.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {W.shape}")
    if W.dtype != dtype:
        raise ValueError(f"{name} must have C's dtype {dtype}, got {W.dtype}")
    if not (W.flags.c_contiguous and W.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous and writeable "
                         "(it is updated in place)")


def step(W1, W2, C, lam, *, method="untied", alpha=None, regularizer="sum"):
    """One iteration of `method`, in place on W1 (k x m) and W2 (m x k).

    For another library's own loop: the kernels are the ones :func:`solve`
    runs.  (A lone untied step costs three k x m x m GEMMs; inside
    :func:`solve` W1 C is carried over and a step costs two.)

    Parameters
    ----------
    W1, W2 : ndarray (k, m) and (m, k)
        The weights, updated in place: C-contiguous, writeable, of C's
        dtype.
    C : array_like (m, m)
        The Gram matrix, as in :func:`solve`.
    lam : float >= 0 or array_like (k,)
        The L2 penalty, as in :func:`solve`.
    method : str
        One of laefast.METHODS.
    alpha : float > 0 or None
        The step of the gradient methods (required for them; see
        :func:`default_alpha`); ignored by the exact ones.
    regularizer : {'sum', 'product'}
        As in :func:`solve`.

    Returns
    -------
    float
        The method's stopping quantity after the iteration.

    Raises
    ------
    ValueError
        Weights of the wrong shape, dtype or layout; no alpha for a
        gradient method.
    DivergenceError, numpy.linalg.LinAlgError
        As in :func:`solve`.

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> C = np.diag([9.0, 4.0, 1.0])
    >>> W2 = np.full((3, 1), 0.3)
    >>> W1 = W2.T.copy()                  # its own memory: both are written
    >>> for _ in range(200):
    ...     gap = laefast.step(W1, W2, C, 0.5, method="exact-tied")
    >>> np.round(W2.ravel() / np.linalg.norm(W2), 6)     # the top direction
    array([1., 0., 0.])
    """
    method = check_method(method)
    regularizer = check_regularizer(regularizer, method)
    C = check_gram(C)
    m = C.shape[0]
    k = W1.shape[0] if isinstance(W1, np.ndarray) and W1.ndim == 2 else -1
    _check_inplace(W1, "W1", (k, m), C.dtype)
    _check_inplace(W2, "W2", (m, k), C.dtype)
    for a, b, names in ((W1, W2, "W1 and W2"), (W1, C, "W1 and C"),
                        (W2, C, "W2 and C")):
        if np.shares_memory(a, b):
            raise ValueError(
                f"{names} share memory (e.g. W2 = W1.T, or a view of C): "
                "step writes W1 and W2 in place while it reads all three, "
                "so each must be its own array; pass copies "
                "(W1.copy(), W2.copy())")
    lam = check_lam(lam, k, regularizer)
    if method in GD_METHODS:
        if alpha is None:
            raise ValueError(f"{method} needs a step size alpha")
        alpha = check_scalar(alpha, "alpha", allow_zero=False)
    lam_vec = None if np.ndim(lam) == 0 else lam
    n_iter, status, stop, which = _solvers.run(
        REGISTRY[method].code, W1, W2, C, lam if lam_vec is None else 0.0,
        alpha or 0.0, _solvers.NEVER_STOP, 1, lam_vec=lam_vec,
        product=regularizer == "product")
    _raise_for_status(status, method, 0, which, alpha, lam)
    return float(stop)


def exact_w1(C, W2, lam, *, n_threads=None):
    """The encoder minimizing L_sigma for a fixed decoder W2 (m x k).

    Solves (W2^T W2) W1 C + lam W1 = W2^T C through the eigendecomposition of
    W2^T W2 and k Cholesky solves of size m (never the mk x mk system),
    run in parallel over n_threads (see :func:`solve`).  A vector lam
    (k positive values) solves (W2^T W2) W1 C + diag(lam) W1 = W2^T C.

    Parameters
    ----------
    C : array_like (m, m)
        The Gram matrix, as in :func:`solve`.
    W2 : array_like (m, k)
        The fixed decoder.
    lam : float >= 0 or array_like (k,)
        The L2 penalty, one value or one per latent.
    n_threads : int or None
        OpenMP threads for the k solves (None: all cores).

    Returns
    -------
    ndarray (k, m)
        The new encoder W1, in C's dtype.

    Raises
    ------
    numpy.linalg.LinAlgError
        An m x m system d_i C + lam I that is not positive definite.

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((4, 4))
    >>> C, W2, lam = A @ A.T + np.eye(4), rng.standard_normal((4, 2)), 0.5
    >>> W1 = laefast.exact_w1(C, W2, lam)
    >>> np.allclose((W2.T @ W2) @ W1 @ C + lam * W1, W2.T @ C)
    True
    """
    C = check_gram(C)
    m = C.shape[0]
    W2 = check_matrix(W2, "W2", (m, None), C.dtype)
    k = W2.shape[1]
    lam = check_lam(lam, k)
    lam_vec = None if np.ndim(lam) == 0 else lam
    W1 = np.empty((k, m), dtype=C.dtype)
    parallel = _solvers.exact_w1_threads(m, k, resolve_threads(n_threads))
    with serial_blas(parallel):
        status, which = _solvers.exact_w1_given_w2(
            W1, W2, C, lam if lam_vec is None else 0.0, parallel,
            lam_vec=lam_vec)
    _raise_for_status(status, "exact_w1", -1, which, None, lam)
    return W1


def exact_w2(C, W1, lam):
    """The decoder minimizing L_sigma for a fixed encoder W1 (k x m).

    W2 = C W1^T (W1 C W1^T + Lambda)^-1, Lambda = lam I or diag(lam), by
    one k x k Cholesky solve.

    Parameters
    ----------
    C : array_like (m, m)
        The Gram matrix, as in :func:`solve`.
    W1 : array_like (k, m)
        The fixed encoder.
    lam : float >= 0 or array_like (k,)
        The L2 penalty, one value or one per latent.

    Returns
    -------
    ndarray (m, k)
        The new decoder W2, in C's dtype.

    Raises
    ------
    numpy.linalg.LinAlgError
        W1 C W1^T + lam I is not positive definite.

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((4, 4))
    >>> C, W1, lam = A @ A.T + np.eye(4), rng.standard_normal((2, 4)), 0.5
    >>> W2 = laefast.exact_w2(C, W1, lam)
    >>> np.allclose(W2, C @ W1.T @ np.linalg.inv(W1 @ C @ W1.T + lam * np.eye(2)))
    True
    """
    C = check_gram(C)
    m = C.shape[0]
    W1 = check_matrix(W1, "W1", (None, m), C.dtype)
    lam = check_lam(lam, W1.shape[0])
    lam_vec = None if np.ndim(lam) == 0 else lam
    W2 = np.empty((m, W1.shape[0]), dtype=C.dtype)
    if _solvers.exact_w2_given_w1(W2, W1, C, lam if lam_vec is None else 0.0,
                               lam_vec=lam_vec) != 0:
        _raise_for_status(_solvers.NOT_PD_W2, "exact_w2", -1, -1, None, lam)
    return W2
