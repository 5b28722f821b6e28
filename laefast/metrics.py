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
    """L_sigma = ||X - W2 W1 X||_F^2 + lam (||W1||_F^2 + ||W2||_F^2), from C = X X^T."""
    C = np.asarray(C, dtype=np.float64)
    W1 = np.asarray(W1, dtype=np.float64)
    W2 = np.asarray(W2, dtype=np.float64)
    P = W1 @ C
    reconstruction = (np.trace(C) - 2.0 * np.sum(P * W2.T)
                      + np.sum((W2.T @ W2) * (P @ W1.T)))
    return float(reconstruction + lam * (np.sum(W1 * W1) + np.sum(W2 * W2)))
