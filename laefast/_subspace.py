"""Rayleigh-Ritz on a decoder's span, and exact-tied accelerated by block
Krylov extension: the iterations LAEPCA runs between read-outs.

exact-tied's decoder update W2 <- C W1^T (W1 C W1^T + lam I)^-1 with
W1 = W2^T spans C W2: one step is one product with C.  Rayleigh-Ritz on a
span S gives the Ritz pairs (theta_i, v_i) of C in S, and the minimum of
L_sigma among decoders with columns in S is W2 = V diag(sqrt(1 -
lam / theta_i)) (W1 = W2^T): a read-out of any span is exact.  Block
Krylov extension keeps every step's span of a round, [Q, C Q, ..., C^d Q],
and picks the best w directions in all of it, the way LOBPCG keeps the
previous block: the same products, far fewer of them.

Every product here goes through SciPy's BLAS/LAPACK, the kernels' own:
alternating with NumPy's OpenBLAS in a loop makes the two idle thread
pools fight for the cores.
"""

import numpy as np
from scipy.linalg.blas import dgemm
from scipy.linalg.lapack import dsyevd

__all__ = ["ritz_pairs", "block_krylov", "small_eigh", "KRYLOV_DEPTH"]

# Products per round of block Krylov extension (the round's span is
# KRYLOV_DEPTH + 1 blocks of w columns).
KRYLOV_DEPTH = 4


def _mm(A, B, trans_a=False):
    """A @ B (or A^T @ B) in SciPy's BLAS, float64, Fortran-ordered result."""
    return dgemm(1.0, A, B, trans_a=trans_a)


def small_eigh(S):
    """Eigenvalues (ascending) and eigenvectors of a small symmetric matrix,
    by LAPACK's divide and conquer called directly: scipy.linalg.eigh's
    checks and driver choice cost more than the solve at these sizes."""
    w, V, info = dsyevd(S, compute_v=1, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"the eigendecomposition of a {S.shape[0]} x {S.shape[0]} Ritz "
            f"matrix did not converge (LAPACK info {info})")
    return w, V


def _orthonormal_against(Z, K, drop):
    """An orthonormal basis of Z's columns orthogonal to K's (K may be
    None); directions whose remainder is below `drop` are dropped (the
    Krylov space is exhausted there).

    Projection then Cholesky-QR through the w x w Gram matrix's
    eigendecomposition, twice (CholQR2: the second pass restores
    orthogonality to rounding): GEMMs and a tiny eigh, where a QR or SVD
    of the tall block would run LAPACK's panel code at a fraction of the
    BLAS speed.
    """
    for sweep in range(2):
        if K is not None:
            Z = Z - _mm(K, _mm(K, Z, trans_a=True))
        G = _mm(Z, Z, trans_a=True)
        d, U = small_eigh(G)
        keep = d > (drop * drop if sweep == 0 else 0.25)
        if not keep.any():
            return np.empty((Z.shape[0], 0), order="F")
        Z = _mm(Z, np.asfortranarray(U[:, keep] / np.sqrt(d[keep])))
    return Z


def ritz_pairs(K, CK, w):
    """Top-w Ritz pairs of C on span(K) (K orthonormal, CK = C K).

    Returns (V, CV, theta), V = K Y of the w largest Ritz values theta
    (descending), CV = C V without another product.
    """
    H = _mm(K, CK, trans_a=True)
    theta, Y = small_eigh((H + H.T) / 2)
    Y = np.asfortranarray(Y[:, ::-1][:, :w])
    return _mm(K, Y), _mm(CK, Y), theta[::-1][:w]


def residual(V, CV, theta, k, floor):
    """max_i ||C v_i - theta_i v_i|| / theta_1 over the first k pairs whose
    theta_i > floor (those below hold no direction to learn)."""
    top = max(theta[0], 0.0)
    meaningful = theta[:k] > floor
    if not meaningful.any() or top == 0.0:
        return 0.0
    # Divided by theta_1 before squaring: squares of a residual of C scaled
    # by 1e-100 (or 1e150) would underflow to 0 (or overflow to inf), and a
    # 0 would pass for convergence.
    R = (CV[:, :k] - V[:, :k] * theta[:k]) / top
    return float(np.sqrt((R[:, meaningful] ** 2).sum(axis=0)).max())


def block_krylov(times, Q, k, tol, max_products, floor, on_round=None,
                 give_up=None):
    """Exact-tied steps from span(Q), accelerated by block Krylov extension.

    times(Q) returns C Q (float64); Q is (m, w) with orthonormal columns.
    Each round extends the current block by KRYLOV_DEPTH exact-tied steps,
    orthonormalizes, and restarts from the top w Ritz vectors of the whole
    span; the first block's product is carried over from the previous
    round's Ritz vectors.  Stops when the relative Ritz residual of the k
    kept pairs is at most tol, or after max_products products, or when
    give_up(residual_history, products) says another method is cheaper.

    Returns (V, theta, residual, n_products, stopped_by) with V (m, w)
    orthonormal Ritz vectors by decreasing Ritz value theta, stopped_by
    'tol', 'max_iter' or 'give_up'.
    """
    m, w = Q.shape
    Q = np.asfortranarray(Q, dtype=np.float64)
    CQ = np.asfortranarray(times(Q))
    products = 1
    V, CV, theta = ritz_pairs(Q, CQ, w)
    res = residual(V, CV, theta, k, floor)
    history = [res]
    if on_round is not None:
        on_round(products, res)
    while res > tol and products < max_products:
        # The images are divided by theta_1 before they are orthonormalized
        # (only their span matters): their Gram matrix would square C's
        # scale, and overflow from about 1e154 (data scaled by 1e77).
        unit = max(abs(theta[0]), np.finfo(float).tiny)
        blocks, images = [V], [CV]
        for _ in range(min(KRYLOV_DEPTH, max_products - products)):
            K = np.hstack(blocks)
            B = _orthonormal_against(images[-1] / unit, K, 1e-13)
            if B.shape[1] == 0:
                break                    # an invariant subspace: done
            blocks.append(B)
            images.append(np.asfortranarray(times(B)))
            products += 1
        K, CK = np.hstack(blocks), np.hstack(images)
        V, CV, theta = ritz_pairs(np.asfortranarray(K), np.asfortranarray(CK),
                                  w)
        res = residual(V, CV, theta, k, floor)
        history.append(res)
        if on_round is not None:
            on_round(products, res)
        if len(blocks) == 1:
            break                        # nothing left to add to the span
        reason = give_up(history, products) if give_up and res > tol else None
        if reason:
            return V, theta, res, products, reason
    return V, theta, res, products, ("tol" if res <= tol else "max_iter")
