"""The three loss landscapes in the scalar case m = k = 1, where they can be seen.

With one feature of squared norm sigma2 = ||x||^2 and scalar weights w1, w2
(p = w1 w2 is the whole autoencoder's map):

- L       = sigma2 (1 - p)^2                    (regularizer=None)
- L_pi    = L + lam p^2                         ('product')
- L_sigma = L + lam (w1^2 + w2^2)               ('sum', the paper's)

L and L_pi depend on the weights only through p, so their minima are whole
hyperbolas w1 w2 = c (the GL(1) freedom of the general case); only L_sigma
has isolated, symmetric minima w1 = w2 = +-sqrt(1 - lam / sigma2), which
exist while lam < sigma2 and merge into the origin as lam crosses sigma2.

:func:`scalar_trajectory` runs the same compiled kernels as
:func:`laefast.solve` on the 1 x 1 problem C = [[sigma2]].
"""

from dataclasses import dataclass

import numpy as np

from ._api import default_alpha
from ._driver import run_kernel
from ._methods import GD_METHODS
from ._params import check, check_params
from ._problem import GramProblem
from ._solvers import NEVER_STOP
from ._regularizer import check_regularizer

__all__ = ["CriticalPoint", "scalar_loss", "scalar_gradient",
           "scalar_hessian", "scalar_critical_points", "scalar_trajectory",
           "shrinkage"]

def _check_landscape(regularizer):
    """'sum', 'product' or None (the unregularized L)."""
    return check("regularizer", regularizer, "landscape")


def scalar_loss(w1, w2, sigma2, lam, regularizer="sum"):
    """The scalar-case loss, broadcast over arrays (for grids).

    Parameters
    ----------
    w1, w2 : float or array_like
        Encoder and decoder weights; broadcast against each other and
        against sigma2 and lam.
    sigma2 : float or array_like, > 0
        ||x||^2, the one squared singular value of the data.
    lam : float or array_like, >= 0
        Penalty weight (ignored for regularizer=None).
    regularizer : {'sum', 'product', None}
        L_sigma, L_pi or L (see the module docstring).

    Returns
    -------
    ndarray or float
        The loss, with the broadcast shape of the inputs.

    Raises
    ------
    ValueError
        For an unknown regularizer.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.landscape import scalar_loss
    >>> w = np.linspace(-1, 1, 3)
    >>> scalar_loss(w[:, None], w[None, :], 1.0, 0.5)
    array([[1. , 1.5, 5. ],
           [1.5, 1. , 1.5],
           [5. , 1.5, 1. ]])
    """
    _check_landscape(regularizer)
    w1 = np.asarray(w1, dtype=np.float64)
    w2 = np.asarray(w2, dtype=np.float64)
    p = w1 * w2
    value = sigma2 * (1.0 - p) ** 2
    if regularizer == "product":
        value = value + lam * p * p
    elif regularizer == "sum":
        value = value + lam * (w1 * w1 + w2 * w2)
    return value


def scalar_gradient(w1, w2, sigma2, lam, regularizer="sum"):
    """(dLoss/dw1, dLoss/dw2) of :func:`scalar_loss`, broadcast.

    Parameters and Raises as :func:`scalar_loss`.

    Returns
    -------
    (g1, g2) : tuple of ndarray

    Examples
    --------
    >>> from laefast.landscape import scalar_gradient
    >>> [float(g) for g in scalar_gradient(0.5, 0.5, 1.0, 0.75)]
    [0.0, 0.0]
    """
    _check_landscape(regularizer)
    w1 = np.asarray(w1, dtype=np.float64)
    w2 = np.asarray(w2, dtype=np.float64)
    p = w1 * w2
    dp = -2.0 * sigma2 * (1.0 - p)              # d/dp of the p-only part
    if regularizer == "product":
        dp = dp + 2.0 * lam * p
    g1, g2 = dp * w2, dp * w1
    if regularizer == "sum":
        g1, g2 = g1 + 2.0 * lam * w1, g2 + 2.0 * lam * w2
    return g1, g2


def scalar_hessian(w1, w2, sigma2, lam, regularizer="sum"):
    """The 2 x 2 Hessian of :func:`scalar_loss` at one point (w1, w2).

    Parameters and Raises as :func:`scalar_loss` (scalars only).

    Returns
    -------
    ndarray (2, 2)

    Examples
    --------
    >>> from laefast.landscape import scalar_hessian
    >>> scalar_hessian(0.0, 0.0, 1.0, 0.5)          # a saddle: eigenvalues -1, 3
    array([[ 1., -2.],
           [-2.,  1.]])
    """
    _check_landscape(regularizer)
    w1, w2 = float(w1), float(w2)
    p = w1 * w2
    # Loss = f(p) (+ lam (w1^2 + w2^2)); H = f''(p) grad p grad p^T
    # + f'(p) [[0, 1], [1, 0]].
    d1 = -2.0 * sigma2 * (1.0 - p)
    d2 = 2.0 * sigma2
    if regularizer == "product":
        d1 += 2.0 * lam * p
        d2 += 2.0 * lam
    H = d2 * np.array([[w2 * w2, w1 * w2], [w1 * w2, w1 * w1]])
    H += d1 * np.array([[0.0, 1.0], [1.0, 0.0]])
    if regularizer == "sum":
        H += 2.0 * lam * np.eye(2)
    return H


@dataclass(frozen=True)
class CriticalPoint:
    """A critical point of a scalar landscape, or a curve of them.

    Attributes
    ----------
    kind : str
        'point', or 'curve' for the hyperbola w1 w2 = product (both
        branches), along which the loss is constant.
    w1, w2 : float or None
        The point (None for a curve).
    product : float
        w1 w2: on a curve, the constant that defines it.
    type : str
        'minimum', 'saddle' or 'maximum'.
    index : int
        The number of negative Hessian eigenvalues (0 for a minimum).
    hessian_eigenvalues : tuple of float
        At the point; on a curve, at its point w1 = w2 = sqrt(product),
        where one eigenvalue is 0 (the direction along the curve).
    value : float
        The loss there.
    description : str
        In words.
    """

    kind: str
    w1: float | None
    w2: float | None
    product: float
    type: str
    index: int
    hessian_eigenvalues: tuple
    value: float
    description: str

    def curve(self, w1):
        """The curve's w2 = product / w1 for an array of w1 (nonzero)."""
        if self.kind != "curve":
            raise ValueError("curve() is for critical curves; this is a point")
        return self.product / np.asarray(w1, dtype=np.float64)


def _classify(eigenvalues, scale):
    # Relative to the Hessian's scale: the zero eigenvalue of a curve or of
    # the degenerate origin at lam = sigma2 is zero up to rounding.
    tol = 1e-12 * scale
    negative = int(np.sum(eigenvalues < -tol))
    if negative == 0:
        return "minimum", 0
    if negative == len(eigenvalues):
        return "maximum", negative
    return "saddle", negative


def _point(w1, w2, sigma2, lam, regularizer, description):
    H = scalar_hessian(w1, w2, sigma2, lam, regularizer)
    ev = np.linalg.eigvalsh(H)
    kind, index = _classify(ev, max(sigma2, lam, 1.0))
    return CriticalPoint("point", float(w1), float(w2), float(w1 * w2), kind,
                         index, tuple(float(e) for e in ev),
                         float(scalar_loss(w1, w2, sigma2, lam, regularizer)),
                         description)


def _curve(c, sigma2, lam, regularizer, description):
    w = np.sqrt(c)
    H = scalar_hessian(w, w, sigma2, lam, regularizer)
    ev = np.linalg.eigvalsh(H)
    ev[np.abs(ev) < 1e-12 * max(sigma2, lam, 1.0)] = 0.0
    return CriticalPoint("curve", None, None, float(c), "minimum", 0,
                         tuple(float(e) for e in ev),
                         float(scalar_loss(w, w, sigma2, lam, regularizer)),
                         description)


def scalar_critical_points(sigma2, lam, regularizer="sum"):
    """All critical points of a scalar landscape, in closed form.

    Parameters
    ----------
    sigma2 : float > 0
    lam : float >= 0
    regularizer : {'sum', 'product', None}

    Returns
    -------
    list of CriticalPoint
        The origin first, then the minima:

        - L (None, or lam = 0): a saddle at the origin (Hessian eigenvalues
          -+2 sigma2) and the curve of minima w1 w2 = 1, loss 0.
        - L_pi ('product'): a saddle at the origin and the curve of minima
          w1 w2 = sigma2 / (sigma2 + lam), loss sigma2 lam / (sigma2 + lam):
          shrunk, never collapsed.
        - L_sigma ('sum'): for lam < sigma2 a saddle at the origin and the
          two minima w1 = w2 = +-sqrt(1 - lam / sigma2), loss
          2 lam - lam^2 / sigma2; for lam >= sigma2 the origin alone, a
          minimum (degenerate at lam = sigma2, where the loss grows as
          sigma2 t^4 along the diagonal).

    Raises
    ------
    ValueError
        For sigma2 <= 0, lam < 0 or an unknown regularizer.

    Examples
    --------
    >>> from laefast.landscape import scalar_critical_points
    >>> [(c.type, c.w1, c.w2) for c in scalar_critical_points(1.0, 0.75)]
    [('saddle', 0.0, 0.0), ('minimum', 0.5, 0.5), ('minimum', -0.5, -0.5)]
    >>> c = scalar_critical_points(1.0, 1.0, "product")[1]
    >>> c.kind, c.product
    ('curve', 0.5)
    """
    check_params("scalar_critical_points", {"sigma2": sigma2, "lam": lam})
    sigma2, lam = float(sigma2), float(lam)
    _check_landscape(regularizer)
    if regularizer is None or lam == 0.0:
        return [
            _point(0.0, 0.0, sigma2, lam, regularizer,
                   "origin: saddle (w1 w2 = 0, loss sigma2)"),
            _curve(1.0, sigma2, lam, regularizer,
                   "hyperbola w1 w2 = 1 of minima, loss 0: any rescaling "
                   "w1 -> g w1, w2 -> w2 / g keeps the map"),
        ]
    if regularizer == "product":
        c = sigma2 / (sigma2 + lam)
        return [
            _point(0.0, 0.0, sigma2, lam, regularizer,
                   "origin: saddle"),
            _curve(c, sigma2, lam, regularizer,
                   f"hyperbola w1 w2 = sigma2 / (sigma2 + lam) = {c:.6g} of "
                   "minima: the map is shrunk but not symmetric, any "
                   "rescaling of w1 against w2 keeps it"),
        ]
    if lam < sigma2:
        w = np.sqrt(1.0 - lam / sigma2)
        return [
            _point(0.0, 0.0, sigma2, lam, regularizer,
                   "origin: saddle (lam < sigma2)"),
            _point(w, w, sigma2, lam, regularizer,
                   "minimum w1 = w2 = sqrt(1 - lam / sigma2)"),
            _point(-w, -w, sigma2, lam, regularizer,
                   "minimum w1 = w2 = -sqrt(1 - lam / sigma2)"),
        ]
    return [_point(0.0, 0.0, sigma2, lam, regularizer,
                   "origin: the only critical point, a minimum (lam >= "
                   "sigma2: the direction collapses)"
                   + (", degenerate at lam = sigma2" if lam == sigma2 else ""))]


def scalar_trajectory(method, w1, w2, sigma2, lam, alpha=None, n_iter=100,
                      *, regularizer="sum"):
    """The iterates of one of the six methods in the scalar case.

    Runs the compiled solver loop of :func:`laefast.solve` on C = [[sigma2]]
    for exactly n_iter iterations (no stopping rule), recording the weights
    inside the kernel after every iteration.

    Parameters
    ----------
    method : str
        One of laefast.METHODS.
    w1, w2 : float
        The start.  sync, exact-sync and tied start from w1 = w2 (they tie
        the weights first); exact-tied's first step overwrites w2.
    sigma2 : float > 0
    lam : float >= 0
    alpha : float > 0 or None
        Step of the gradient methods; None picks :func:`laefast.default_alpha`
        for this problem and start.  Ignored by the exact methods.
    n_iter : int >= 0
    regularizer : {'sum', 'product'}
        'product' is for the gradient methods (untied, sync, tied).

    Returns
    -------
    ndarray (n_iter + 1, 2)
        Row 0 is the start as the method sees it ((w2, w2) for sync,
        exact-sync and tied), row t the (w1, w2) after iteration t.

    Raises
    ------
    ValueError
        For invalid arguments, or 'product' with an exact method.
    laefast.DivergenceError
        When gradient descent's step is too large and the weights blow up.
    numpy.linalg.LinAlgError
        When an exact step's 1 x 1 system is singular (lam = 0 at w = 0).

    Examples
    --------
    >>> from laefast.landscape import scalar_trajectory
    >>> path = scalar_trajectory("exact-tied", 0.2, 0.2, 1.0, 0.5, n_iter=60)
    >>> path.shape, [round(float(v), 8) for v in path[-1]]
    ((61, 2), [0.70710678, 0.70710678])
    """
    check_params("scalar_trajectory", {
        "method": method, "regularizer": regularizer, "w1": w1, "w2": w2,
        "sigma2": sigma2, "lam": lam, "alpha": alpha, "n_iter": n_iter})
    check_regularizer(regularizer, method)
    w1, w2, sigma2, lam = float(w1), float(w2), float(sigma2), float(lam)
    n_iter = int(n_iter)
    problem = GramProblem.from_gram(np.array([[sigma2]]))
    W1 = np.array([[w1]])
    W2 = np.array([[w2]])
    if method not in GD_METHODS:
        alpha = None
    elif alpha is None:
        alpha = default_alpha(problem, lam, W1, W2, regularizer)
    else:
        alpha = float(alpha)
    path = np.empty((n_iter + 1, 2))
    path[0] = (w2, w2) if method in ("sync", "exact-sync", "tied") else (w1, w2)
    hist_w1 = np.empty(n_iter)
    hist_w2 = np.empty(n_iter)
    # NEVER_STOP: the stopping rule never holds, every iteration is run.
    run_kernel(problem, W1, W2, method, lam, alpha, NEVER_STOP, n_iter,
               regularizer=regularizer, hist_w1=hist_w1, hist_w2=hist_w2)
    path[1:, 0] = hist_w1
    path[1:, 1] = hist_w2
    return path


def shrinkage(sigma2, lam, regularizer="sum"):
    """The eigenvalues of the trained map W2 W1 at the minimum, per direction.

    For a direction of variance sigma2 (an eigenvalue of C) and its penalty
    lam, broadcast over arrays:

    - 'sum': s^2 = max(0, 1 - lam / sigma2), s the decoder's singular value;
      the direction collapses (s = 0) at lam = sigma2.  With per-latent
      lams, pair lam_i with the i-th largest sigma2 (the minimum gives the
      smallest lam to the top direction).
    - 'product': sigma2 / (sigma2 + lam), which never reaches 0.
    - None: 1.

    Parameters
    ----------
    sigma2 : float or array_like, > 0
    lam : float or array_like, >= 0
    regularizer : {'sum', 'product', None}

    Returns
    -------
    ndarray

    Raises
    ------
    ValueError
        For an unknown regularizer.

    Examples
    --------
    >>> from laefast.landscape import shrinkage
    >>> shrinkage([4.0, 2.0, 1.0], 2.0)
    array([0.5, 0. , 0. ])
    >>> shrinkage([4.0, 2.0, 1.0], 2.0, "product")
    array([0.66666667, 0.5       , 0.33333333])
    """
    _check_landscape(regularizer)
    sigma2 = np.asarray(sigma2, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    if regularizer is None:
        return np.ones(np.broadcast(sigma2, lam).shape)
    if regularizer == "product":
        return sigma2 / (sigma2 + lam)
    return np.maximum(0.0, 1.0 - lam / sigma2)
