"""The penalty on the weights: sum (one lam, or one per latent) or product.

The three losses of a linear autoencoder with encoder W1 (k x m) and
decoder W2 (m x k), on data X with Gram matrix C = X X^T:

- L   = ||X - W2 W1 X||_F^2                       (regularizer=None)
- L_pi = L + lam ||W2 W1||_F^2                      ('product')
- L_sigma = L + lam (||W1||_F^2 + ||W2||_F^2)       ('sum', the paper's)

With a length-k vector lam, the sum penalty is
sum_i lam_i (||W1[i, :]||^2 + ||W2[:, i]||^2): the diagonal Lambda of a
non-uniform l2 penalty on the latents.  Everything is computed from C, never
forming an m x m x m product.
"""

import numbers

import numpy as np

from ._methods import GD_METHODS
from ._params import REGULARIZERS, check

__all__ = ["REGULARIZERS", "check_regularizer", "check_lam", "lam_summary",
           "loss", "loss_gradient"]

def check_regularizer(regularizer, method=None, owner=None):
    """'sum' or 'product' (laefast._params' rule); the exact methods take
    only 'sum'."""
    if type(regularizer) is not str or regularizer not in REGULARIZERS:
        check("regularizer", regularizer, owner)
    if (regularizer == "product" and method is not None
            and method not in GD_METHODS):
        raise ValueError(
            f"regularizer='product' works with the gradient methods "
            f"{GD_METHODS}, not {method!r}: the exact methods "
            "minimize L_sigma's sum penalty in closed form")
    return regularizer


_LAM_VECTOR = "an array-like of shape (n_components,) of finite floats > 0"


def check_lam(lam, k, regularizer="sum", owner=None):
    """A float >= 0 (laefast._params' rule for lam), or a float64 array of
    k positive values (sum regularizer only)."""
    if type(lam) is float or (isinstance(lam, numbers.Real)
                              and not isinstance(lam, bool)):
        return float(check("lam", lam, owner, also=_LAM_ALSO))
    vec = None
    if not isinstance(lam, (str, bytes, bool)) and lam is not None:
        try:
            vec = np.array(lam, dtype=np.float64)
        except (TypeError, ValueError):
            vec = None
    if vec is None:
        check("lam", lam, owner, also=_LAM_ALSO)
    if vec.ndim == 0:
        return float(check("lam", float(vec), owner,
                           also=_LAM_ALSO))
    if regularizer == "product":
        raise ValueError("a vector lam goes with regularizer='sum' (one "
                         "penalty per latent); the product regularizer "
                         "takes a number")
    if vec.shape != (k,):
        raise ValueError(f"a vector lam needs one value per latent: shape "
                         f"({k},), got {vec.shape}")
    if not np.all(np.isfinite(vec)) or not np.all(vec > 0):
        raise ValueError(f"a vector lam must hold finite values > 0, "
                         f"got {vec.tolist()}")
    return vec


def _never(value):
    return False


_LAM_ALSO = (_LAM_VECTOR, _never)


def lam_summary(lam):
    """lam as text for messages."""
    if np.ndim(lam) == 0:
        return f"{lam:g}"
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(lam)) + "]"


def _parts(C, W1, W2):
    C = np.asarray(C, dtype=np.float64)
    W1 = np.asarray(W1, dtype=np.float64)
    W2 = np.asarray(W2, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be a square matrix, got shape {C.shape}")
    m = C.shape[0]
    if W1.ndim != 2 or W1.shape[1] != m or W2.shape != (m, W1.shape[0]):
        raise ValueError(
            f"W1 must be k x m and W2 m x k with m = {m}, got {W1.shape} "
            f"and {W2.shape}")
    return C, W1, W2


def _penalty_lam(lam, regularizer, k):
    check("regularizer", regularizer, "loss")
    if regularizer is None:
        return 0.0
    return check_lam(lam, k, regularizer, "loss")


def loss(C, W1, W2, lam, regularizer="sum"):
    """L, L_pi or L_sigma of a linear autoencoder, from C = X X^T.

    Parameters
    ----------
    C : array_like (m, m)
        Gram matrix of the centered data, no 1/n (the paper's convention).
    W1 : array_like (k, m)
        Encoder.
    W2 : array_like (m, k)
        Decoder.
    lam : float >= 0 or array_like (k,)
        Penalty weight; a vector (positive entries, regularizer='sum' only)
        gives each latent its own.  Ignored when regularizer is None.
    regularizer : {'sum', 'product', None}
        'sum': L_sigma = ||X - W2 W1 X||^2 + lam (||W1||^2 + ||W2||^2);
        'product': L_pi = ||X - W2 W1 X||^2 + lam ||W2 W1||^2;
        None: the unregularized L = ||X - W2 W1 X||^2.

    Returns
    -------
    float
        The loss, computed in float64 as tr C - 2 tr(W1 C W2)
        + tr((W2^T W2)(W1 C W1^T)) plus the penalty.

    Raises
    ------
    ValueError
        For mismatched shapes, an unknown regularizer, or an invalid lam.

    Examples
    --------
    >>> import numpy as np, laefast
    >>> C = np.diag([4.0, 1.0])
    >>> W = np.array([[1.0], [0.0]])
    >>> laefast.loss(C, W.T, W, 0.5, regularizer=None)
    1.0
    >>> laefast.loss(C, W.T, W, 0.5)            # + 0.5 (1 + 1)
    2.0
    >>> laefast.loss(C, W.T, W, 0.5, regularizer="product")
    1.5
    """
    C, W1, W2 = _parts(C, W1, W2)
    lam = _penalty_lam(lam, regularizer, W1.shape[0])
    P = W1 @ C
    A = W2.T @ W2
    value = (np.trace(C) - 2.0 * np.sum(P * W2.T) + np.sum(A * (P @ W1.T)))
    if regularizer == "product":
        value += lam * np.sum(A * (W1 @ W1.T))
    elif regularizer == "sum":
        value += np.sum(lam * (np.sum(W1 * W1, axis=1)
                               + np.sum(W2 * W2, axis=0)))
    return float(value)


def loss_gradient(C, W1, W2, lam, regularizer="sum"):
    """The gradient of :func:`loss` in W1 and in W2.

    Parameters
    ----------
    C, W1, W2, lam, regularizer
        As in :func:`loss`.

    Returns
    -------
    (G1, G2) : tuple of ndarray
        dLoss/dW1 (k x m) and dLoss/dW2 (m x k), float64.  These are the
        true gradients: twice the half-gradients that the solvers step on
        (laefast folds the factor 2 into the step alpha, like the paper):
        G1 = 2 (W2^T (W2 W1 - I) C + R1), G2 = 2 ((W2 W1 - I) C W1^T + R2)
        with R1 = Lambda W1, R2 = W2 Lambda for 'sum' and
        R1 = lam W2^T W2 W1, R2 = lam W2 W1 W1^T for 'product'.

    Raises
    ------
    ValueError
        As :func:`loss`.

    Examples
    --------
    >>> import numpy as np, laefast
    >>> C = np.diag([4.0, 1.0])
    >>> w = np.sqrt(1 - 0.5 / 4.0)       # the minimum for lam = 0.5
    >>> W = np.array([[w], [0.0]])
    >>> G1, G2 = laefast.loss_gradient(C, W.T, W, 0.5)
    >>> bool(np.allclose(G1, 0) and np.allclose(G2, 0))
    True
    """
    C, W1, W2 = _parts(C, W1, W2)
    lam = _penalty_lam(lam, regularizer, W1.shape[0])
    P = W1 @ C                      # W1 C
    A = W2.T @ W2
    G1 = A @ P - W2.T @ C
    G2 = W2 @ (P @ W1.T) - P.T
    if regularizer == "product":
        G1 += lam * (A @ W1)
        G2 += lam * (W2 @ (W1 @ W1.T))
    elif regularizer == "sum":
        lam_col = np.broadcast_to(np.asarray(lam, dtype=np.float64),
                                  (W1.shape[0],))
        G1 += lam_col[:, None] * W1
        G2 += W2 * lam_col[None, :]
    return 2.0 * G1, 2.0 * G2
