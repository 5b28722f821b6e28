"""solve / fit / step / exact_w1 / exact_w2: the functional entry points.

Each checks its parameters (laefast._params) and arrays
(laefast._validation), then hands over to laefast._driver, which owns the
kernel call, the statuses, the read-out and the result.
"""

import numpy as np

from . import _driver
from ._driver import DEFAULT_MAX_ITER, initial_weights, step_for_bound
from ._methods import GD_METHODS
from ._params import check_params
from ._parallel import resolve_threads
from ._problem import GramProblem, choose_path
from ._readout import LAEResult
from ._regularizer import check_lam, check_regularizer
from ._validation import check_array, check_gram, check_matrix

__all__ = ["LAEResult", "solve", "fit", "step", "exact_w1", "exact_w2",
           "default_alpha", "gram_matrix"]

# Methods that stop when ||W1 - W2^T|| <= tol (the sum regularizer's).
_TIE_RULE = ("untied", "exact-untied", "exact-tied")


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


def _solve(owner, problem, params):
    """solve's and fit's common part: the settings checked, the start and
    the step picked, then the driver's run.  params: the call's keyword
    parameters (n_components, lam, method, alpha, tol, max_iter, init,
    random_state, history, n_threads, regularizer)."""
    p = dict(params)
    init, lam = p.pop("init"), p.pop("lam")
    check_params(owner, p)
    method, regularizer = p["method"], p["regularizer"]
    check_regularizer(regularizer, method)
    k = _n_components(p["n_components"], problem.m)
    lam = check_lam(lam, k, regularizer, owner)
    if (np.ndim(lam) == 0 and lam == 0.0 and regularizer == "sum"
            and method in _TIE_RULE):
        raise ValueError(
            f"lam=0 cannot be used with method={method!r}: its stopping rule "
            "||W1 - W2^T|| <= tol needs lam > 0 (at lam = 0 the minima "
            "W2 = U G, W1 = G^-1 U^T are not tied, so the run would never "
            "stop). Pass a small lam > 0 (e.g. 1e-6 times C's largest "
            "eigenvalue), or use method 'sync', 'tied' or 'exact-sync', "
            "which stop on the step size")
    max_iter = DEFAULT_MAX_ITER if p["max_iter"] is None else int(p["max_iter"])
    W1, W2 = initial_weights(init, problem.m, k, problem.dtype,
                             p["random_state"])
    alpha = p["alpha"]
    if method not in GD_METHODS:
        alpha = None            # the exact methods take no step size
    elif alpha is None:
        alpha = default_alpha(problem, lam, W1, W2, regularizer)
    else:
        alpha = float(alpha)
    # A start of the caller's may lack weight on a principal direction
    # (a random one has some on every direction): only then is the learned
    # span checked for a missed direction (it costs up to 9 products).
    return _driver.run(problem, W1, W2, lam, method, alpha, float(p["tol"]),
                       max_iter, p["history"],
                       resolve_threads(p["n_threads"]), regularizer,
                       check_span=init is not None)


def _n_components(n_components, m):
    """k, checked by the rules and against the problem's width m."""
    if isinstance(n_components, (int, np.integer)) and \
            not isinstance(n_components, bool) and \
            not 1 <= n_components <= m:
        raise ValueError(
            f"n_components must be in [1, {m}] (the number of features), "
            f"got {n_components}")
    return int(n_components)


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
        small Gaussian weights from random_state.  A start of yours may
        lack weight on a principal direction: the learned span is then
        checked for a saddle point at the end (see Warns; up to 9 products
        with C, a few percent of a solve from afar, several times one
        that starts at its minimum).
    random_state : int, numpy Generator or None
    history : bool or 'weights'
        Record the stopping quantity and the loss (L_sigma; L_pi with the
        product regularizer) after every iteration; 'weights' also records
        W1 and W2 after every iteration (k m values each per iteration).
    n_threads : int or None
        OpenMP threads for exact-untied's k independent m x m Cholesky
        solves (None: every CPU the process may use: OMP_NUM_THREADS, else
        the cores capped by the affinity mask and cgroup CPU quotas); BLAS runs
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
        max_iter was reached before the stopping rule held, or the run
        ended at or near a saddle point: C has more eigenvalues above lam
        than directions were learned, or (from an init of yours) a
        direction left out of the learned span has more variance than one
        learned, or than lam while a latent holds a direction that lam
        switches off (see LAEResult.converged).
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
    return _solve("solve", problem, dict(
        n_components=n_components, lam=lam, method=method, alpha=alpha,
        tol=tol, max_iter=max_iter, init=init, random_state=random_state,
        history=history, n_threads=n_threads, regularizer=regularizer))


def gram_matrix(X, center=True, *, n_threads=None):
    """C = Xc^T Xc for X of shape (n_samples, n_features); returns (C, mean).

    One parallel pass over X (see :class:`GramAccumulator`): rows are
    centered block by block into thread-local buffers, so X is never
    copied; C is accumulated in float64 and returned in X's dtype.
    """
    check_params("gram_matrix", {"center": center, "n_threads": n_threads})
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
    X = check_array(X, finite=False)     # the first pass over X checks it
    params = dict(n_components=n_components, lam=lam, method=method,
                  alpha=alpha, tol=tol, max_iter=max_iter, init=init,
                  random_state=random_state, history=history,
                  n_threads=n_threads, regularizer=regularizer)
    check_params("fit", {"center": center, "path": path, **{
        name: value for name, value in params.items()
        if name not in ("init", "lam")}})
    check_regularizer(regularizer, method)
    k = _n_components(n_components, X.shape[1])
    check_lam(lam, k, regularizer, "fit")
    if path == "auto":
        path = choose_path(X.shape[0], X.shape[1], k, method, X.itemsize)
    if path == "data" and method == "exact-untied":
        raise ValueError("exact-untied needs the Gram matrix: use path='gram'")
    problem = GramProblem.from_data(X, center, path,
                                    n_threads=resolve_threads(n_threads))
    result = _solve("fit", problem, params)
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
    check_params("step", {"method": method, "alpha": alpha,
                          "regularizer": regularizer})
    check_regularizer(regularizer, method)
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
    lam = check_lam(lam, k, regularizer, "step")
    if method in GD_METHODS and alpha is None:
        raise ValueError(f"{method} needs a step size alpha")
    return _driver.step(W1, W2, C, lam, method,
                        None if alpha is None else float(alpha), regularizer)


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
    check_params("exact_w1", {"n_threads": n_threads})
    C = check_gram(C)
    m = C.shape[0]
    W2 = check_matrix(W2, "W2", (m, None), C.dtype)
    lam = check_lam(lam, W2.shape[1], owner="exact_w1")
    return _driver.exact_w1(C, W2, lam, n_threads)


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
    lam = check_lam(lam, W1.shape[0], owner="exact_w2")
    return _driver.exact_w2(C, W1, lam)
