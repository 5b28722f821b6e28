"""Accuracy measures for learned principal directions."""

import numpy as np

__all__ = ["u_error", "max_principal_sine", "objective"]


def _as_columns(U, m=None):
    U = np.asarray(U, dtype=np.float64)
    if U.ndim == 1:
        U = U[:, None]
    return U


def u_error(U_hat, U_true):
    """The paper's "error in SVD factor U".

    Sum over the k columns of min(||u_hat_j - u_j||, ||u_hat_j + u_j||):
    direction by direction, up to sign.  Both arguments are m x k with
    directions as columns (pass ``result.components.T``).

    Parameters
    ----------
    U_hat, U_true : array_like (m, k) or (m,)
        Learned and true unit directions, as columns, in the same order.

    Returns
    -------
    float
        0 when every direction matches up to sign; it grows with each
        direction's distance, and does not forgive swapped directions.

    Raises
    ------
    ValueError
        The shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.metrics import u_error
    >>> U = np.eye(3)[:, :2]
    >>> u_error(-U, U)                       # signs do not count
    0.0
    >>> round(u_error(U[:, ::-1], U), 6)     # swapped directions do
    2.828427
    """
    U_hat = _as_columns(U_hat)
    U_true = _as_columns(U_true)
    if U_hat.shape != U_true.shape:
        raise ValueError(
            f"shapes differ: {U_hat.shape} and {U_true.shape} (both m x k)")
    minus = np.linalg.norm(U_hat - U_true, axis=0)
    plus = np.linalg.norm(U_hat + U_true, axis=0)
    return float(np.minimum(minus, plus).sum())


def max_principal_sine(A, B):
    """Sine of the largest principal angle between span(A) and span(B).

    A and B are m x k with the spanning vectors as columns (they need not be
    orthonormal).  0 means the same subspace, 1 an orthogonal direction.

    Parameters
    ----------
    A, B : array_like (m, k_a) and (m, k_b)
        Spanning vectors as columns (B may have more columns than A).

    Returns
    -------
    float
        The sine of the largest principal angle, in [0, 1]; computed as
        ||(I - Q_B Q_B^T) Q_A||_2, accurate for tiny angles too.

    Raises
    ------
    ValueError
        A and B have different numbers of rows.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.metrics import max_principal_sine
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> max_principal_sine(A, A @ [[2.0, 1.0], [0.0, 3.0]])   # same span
    0.0
    >>> t = 1e-9
    >>> B = np.array([[1.0, 0.0], [0.0, np.cos(t)], [0.0, np.sin(t)]])
    >>> bool(np.isclose(max_principal_sine(A, B), np.sin(t), rtol=1e-6))
    True
    """
    A = _as_columns(A)
    B = _as_columns(B)
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must have the same number of rows, "
                         f"got {A.shape} and {B.shape}")
    Qa, _ = np.linalg.qr(A)
    Qb, _ = np.linalg.qr(B)
    # sin of the largest angle = ||(I - Qb Qb^T) Qa||_2, which stays accurate
    # for tiny angles (unlike sqrt(1 - cos^2)).
    residual = Qa - Qb @ (Qb.T @ Qa)
    if Qa.shape[1] > Qb.shape[1]:
        return 1.0
    return float(min(1.0, np.linalg.norm(residual, 2)))


def objective(C, W1, W2, lam):
    """L_sigma = ||X - W2 W1 X||_F^2 + lam (||W1||_F^2 + ||W2||_F^2), from C = X X^T.

    Parameters
    ----------
    C : array_like (m, m)
        The Gram matrix X X^T (no 1/n).
    W1, W2 : array_like (k, m) and (m, k)
        Encoder and decoder.
    lam : float
        The L2 penalty.

    Returns
    -------
    float
        The regularized reconstruction loss, computed from C alone.

    Examples
    --------
    >>> import numpy as np
    >>> from laefast.metrics import objective
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((4, 50))
    >>> W1, W2 = rng.standard_normal((2, 4)), rng.standard_normal((4, 2))
    >>> direct = np.sum((X - W2 @ W1 @ X) ** 2) + 0.5 * (np.sum(W1**2) + np.sum(W2**2))
    >>> bool(np.isclose(objective(X @ X.T, W1, W2, 0.5), direct))
    True
    """
    C = np.asarray(C, dtype=np.float64)
    W1 = np.asarray(W1, dtype=np.float64)
    W2 = np.asarray(W2, dtype=np.float64)
    P = W1 @ C
    reconstruction = (np.trace(C) - 2.0 * np.sum(P * W2.T)
                      + np.sum((W2.T @ W2) * (P @ W1.T)))
    return float(reconstruction + lam * (np.sum(W1 * W1) + np.sum(W2 * W2)))
