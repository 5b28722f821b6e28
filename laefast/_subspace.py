"""Rayleigh-Ritz on a decoder's span, and exact-tied accelerated by block
Lanczos: the iterations LAEPCA runs between read-outs.

exact-tied's decoder update W2 <- C W1^T (W1 C W1^T + lam I)^-1 with
W1 = W2^T spans C W2: one step is one product with C.  Rayleigh-Ritz on a
span S gives the Ritz pairs (theta_i, v_i) of C in S, and the minimum of
L_sigma among decoders with columns in S is W2 = V diag(sqrt(1 -
lam / theta_i)) (W1 = W2^T): a read-out of any span is exact.  Block
Lanczos keeps every step's span, [Q, C Q, ..., C^d Q] for a narrow block
Q, and picks the best w directions in all of it: the span of d
exact-tied steps and far more, for the same products.

Every product here goes through SciPy's BLAS/LAPACK, the kernels' own:
alternating with NumPy's OpenBLAS in a loop makes the two idle thread
pools fight for the cores."""

import numpy as np
from scipy.linalg.blas import dgemm, dsyrk, dtrmm, dtrsm
from scipy.linalg.lapack import dgesdd, dpotrf, dsyevd, dtrcon, dtrtri

from . import _lanczos

__all__ = ["ritz_pairs", "block_lanczos", "lanczos_block_width",
           "small_eigh", "residual", "orthonormal_against", "steps_to_reach",
           "tall_svd", "eigenvalue_outside"]


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


def orthonormal_against(Z, K, drop, projected=False):
    """An orthonormal basis of Z's columns orthogonal to K's (K may be
    None); directions whose remainder is below `drop` are dropped (the
    Krylov space is exhausted there).  projected=True: Z is already
    projected off K once (the caller had K^T Z), and the first projection
    is skipped.

    Projection then Cholesky-QR through the w x w Gram matrix's
    eigendecomposition, twice (CholQR2: the second pass restores
    orthogonality to rounding): GEMMs and a tiny eigh, where a QR or SVD
    of the tall block would run LAPACK's panel code at a fraction of the
    BLAS speed.  The second projection comes after the first
    normalization: a direction with a tiny remainder is scaled up by it,
    and so is the rounding that still ties it to K, which the second
    projection removes (without it, block_lanczos's space lost
    orthogonality where X's rank ran out).
    """
    for sweep in range(2):
        if K is not None and not (projected and sweep == 0):
            Z = Z - _mm(K, _mm(K, Z, trans_a=True))
        G = _mm(Z, Z, trans_a=True)
        d, U = small_eigh(G)
        keep = d > (drop * drop if sweep == 0 else 0.25)
        if not keep.any():
            return np.empty((Z.shape[0], 0), order="F")
        Z = _mm(Z, np.asfortranarray(U[:, keep] / np.sqrt(d[keep])))
    return Z


# tall_svd's Cholesky-QR twice is as accurate as Householder QR while A's
# condition number stays below about eps^-1/2 = 6.7e7 (Yamamoto et al.,
# ETNA 44, 2015); it hands back to LAPACK any A whose 2-norm condition
# number may pass this bound: LAPACK's 1-norm estimate of R's (within a
# factor of 3 or so), times k (the two norms' ratio is at most k).
TALL_SVD_MAX_COND = 1e7


def tall_svd(A):
    """Left singular vectors and singular values (U m x k, s descending,
    float64) of a tall A (m x k), or None where A is too ill-conditioned
    for this route (the caller then takes LAPACK's SVD).

    Cholesky-QR twice, A = Q1 R1 = Q R2 R1, then LAPACK's SVD of the k x k
    R2 R1 = u s v^T: U = Q u = Q1 R2^-1 u.  Four BLAS-3 calls on the tall
    operand, where LAPACK's SVD of A runs its bidiagonalization at a
    fraction of BLAS speed (m = 1000, k = 20: 0.40 ms, a tenth of a
    solve's fixed cost).  Q1 comes from a triangular solve: through R1's
    explicit inverse (a GEMM, 2.6x faster) its backward error grew with
    R1's condition number, singular values off by 1e-11 relative at a
    condition number of 7e5.  The second pass may use R2's inverse: R2
    is within rounding of the identity.  Works on A^T (k x m, Fortran
    order: a C-ordered A is that without a copy)."""
    At = np.asfortranarray(np.asarray(A, dtype=np.float64).T)
    if At.shape[0] == 0:
        return None
    R1 = _cholesky(dsyrk(1.0, At))
    if R1 is None:
        return None
    rcond, info = dtrcon(R1)
    if info != 0 or not rcond * TALL_SVD_MAX_COND >= 3.0 * R1.shape[0]:
        return None
    Q1t = dtrsm(1.0, R1, At, side=0, lower=0, trans_a=1)   # (A R1^-1)^T
    R2 = _cholesky(dsyrk(1.0, Q1t))
    if R2 is None:
        return None
    u, s, _, info = dgesdd(dtrmm(1.0, R2, R1), compute_uv=1, full_matrices=0)
    if info != 0:
        return None
    return _mm(Q1t, dtrmm(1.0, _upper_inverse(R2), u), trans_a=True), s


def _cholesky(G):
    """Upper Cholesky factor of G (its upper triangle), None if not
    positive definite."""
    R, info = dpotrf(G, lower=0, clean=1)
    return R if info == 0 else None


def _upper_inverse(R):
    Rinv, info = dtrtri(R, lower=0)
    if info != 0:
        raise np.linalg.LinAlgError("singular triangular factor")
    return Rinv


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


def lanczos_block_width(width, block, max_products):
    """Columns of block_lanczos's blocks for `width` directions: `block`,
    or wider where max_products products of it would not reach width
    columns (a short max_iter still trains every latent)."""
    return min(width, max(block, -(-width // max(int(max_products), 1))))


def block_lanczos(times, Q, k, tol, max_products, floor, block, on_round=None,
                  stop_early=None, max_columns=None, max_check_gap=None,
                  width=None):
    """Exact-tied steps from span(Q[:, :block]) by block Lanczos with a
    narrow block: the samples path's iteration, where every product is a
    pass over X.

    A pass over X costs about the same for 1 to 4 columns as for one (it
    is bound by reading X), and a deep Krylov space of a narrow block
    converges in far fewer columns than a shallow one of a wide block.
    Each step multiplies the last block by C and orthonormalizes the image
    against the whole space (twice); Rayleigh-Ritz on the space picks the
    best w directions (w = width, or Q.shape[1]).  The projected matrix
    grows by a block row per step instead of being formed again, and the
    Ritz residuals come from the recurrence: C K y - theta K y = Z y_last,
    with Z the image of the last block projected off the space (which the
    next step needs anyway) and y_last the last block's part of y.  When
    the space would pass `max_columns`, it restarts thick: it keeps the w
    Ritz vectors, whose residuals lie in the next block's span, so the
    recurrence goes on.  As in LAEPCA's other iterations, the result read
    out is the minimum of L_sigma on the span.

    The start is Q's first block (its first lanczos_block_width(w, block,
    max_products) columns; the rest are not read), and w Ritz pairs are
    returned: w = width, or Q's columns when width is None.
    times(Q) returns C Q (float64) for an orthonormal (m, r) Q; k pairs
    are checked; the iteration stops when their relative Ritz residual is
    at most tol or after max_products products; theta at or below floor
    (numerically zero; a number, or a function called after the first
    product) hold nothing to learn.
    stop_early(history, n_columns) may end the iteration: it returns the
    reason (rounding reached, or a dense solve is cheaper), or None;
    history holds (products, residual) at each check.
    Returns (V, theta, residual, n_products, stopped_by); the residual is
    computed from C V, not from the recurrence.

    The Rayleigh-Ritz solve that checks convergence costs more than a
    product's bookkeeping once the space has a few dozen columns (LAPACK
    is slow per flop on small matrices: 0.3 ms at 62 x 62 against a
    0.6-0.9 ms product on 1500 x 2048 data, 2 cores), so checks are spaced
    by the measured rate: after two, the next comes after half the
    products that rate still needs (at most max_check_gap, default
    _MAX_CHECK_GAP), which leaves room for the rate to speed up, as Krylov
    methods' rates do.
    max_check_gap=1 checks after every product (for a stop_early that
    reads the rate off the last few checks).
    """
    m = Q.shape[0]
    w = Q.shape[1] if width is None else width
    b = lanczos_block_width(w, block, max_products)
    if Q.shape[1] < b:
        raise ValueError(f"the start has {Q.shape[1]} columns, the first "
                         f"block needs {b}")
    if max_columns is None:
        max_columns = max(2 * w + 2 * b, min(128, (256 << 20) // (16 * m)))
    # A thick restart keeps w Ritz vectors and adds a block.
    max_columns = max(max_columns, w + b)
    if max_check_gap is None:
        max_check_gap = _MAX_CHECK_GAP
    # The space, its image and the projected matrix live in preallocated
    # buffers (K = basis[:, :D] is a view); a step appends a block in place.
    # Each step's linear algebra around the product is compiled
    # (laefast._lanczos: orthonormalize_block, project_block).
    basis = np.empty((m, max_columns + b), order="F")
    image = np.empty_like(basis)
    Hbuf = np.zeros((max_columns + b, max_columns + b))
    # The last image projected off the space (its first sweep): the next
    # block's direction, and the span of the Ritz residuals.
    Zbuf = np.empty((m, b), order="F")
    basis[:, :b] = Q[:, :b]
    image[:, :b] = times(basis[:, :b])
    if callable(floor):
        floor = floor()
    nb = b
    unit = _lanczos.project_block(basis, image, Hbuf, Zbuf, 0, nb)
    D = nb
    Z = Zbuf[:, :nb]
    products, history, next_check = 1, [], 1
    theta = Y = None
    stopped = None
    while stopped is None:
        K, H = basis[:, :D], Hbuf[:D, :D]
        # A thick restart needs this step's Ritz vectors.
        restart = D + b > max_columns
        if D >= w and (products >= next_check or restart
                       or products >= max_products):
            theta, Y = small_eigh((H + H.T) / 2)
            theta, Y = theta[::-1], np.asfortranarray(Y[:, ::-1])
            est = _recurrence_residual(Z, Y[-nb:, :k], theta[:k], floor)
            history.append((products, est))
            if on_round is not None:
                on_round(products, est)
            if est <= tol:
                stopped = "tol"
            elif products >= max_products:
                stopped = "max_iter"
            elif stop_early is not None:
                stopped = stop_early(history, D)
            if stopped:
                break
            next_check = products + _check_gap(history, tol, max_check_gap)
        elif products >= max_products:
            break
        # The next block, into basis[:, D:D + nb] (orthonormal_against's
        # arithmetic, on Z / unit, projected=True).
        nb = _lanczos.orthonormalize_block(
            basis, D, Zbuf, nb, max(unit, np.finfo(float).tiny), 1e-13)
        if nb == 0 and D < w:
            # The start spans an invariant subspace smaller than w: fill the
            # rest at random.
            B = orthonormal_against(np.random.default_rng(D)
                                     .standard_normal((m, b)), K, 1e-13)
            nb = B.shape[1]
            basis[:, D:D + nb] = B
        if nb == 0:
            stopped = "invariant"        # an invariant subspace: done
            break
        if D + nb > max_columns:
            # Thick restart: keep the w Ritz vectors (the block is
            # orthogonal to the whole space, so to them).
            B = basis[:, D:D + nb].copy()
            Yw = np.asfortranarray(Y[:, :w])
            basis[:, :w], image[:, :w] = _mm(K, Yw), _mm(image[:, :D], Yw)
            D = w
            Hbuf[:D, :D] = np.diag(theta[:w])
            basis[:, D:D + nb] = B
        image[:, D:D + nb] = times(basis[:, D:D + nb])
        products += 1
        # The projected matrix grows by [K B]^T C B, which also gives the
        # new image's first projection sweep.
        unit = _lanczos.project_block(basis, image, Hbuf, Zbuf, D, nb)
        Z = Zbuf[:, :nb]
        D += nb
    if theta is None or stopped == "invariant":
        # Every other exit follows a check on the current space.
        H = Hbuf[:D, :D]
        theta, Y = small_eigh((H + H.T) / 2)
        theta, Y = theta[::-1], np.asfortranarray(Y[:, ::-1])
    w = min(w, D)
    Yw = np.asfortranarray(Y[:, :w])
    V, CV = _mm(basis[:, :D], Yw), _mm(image[:, :D], Yw)
    res = residual(V, CV, theta[:w], min(k, w), floor)
    if stopped in (None, "invariant"):
        stopped = "tol" if res <= tol else "max_iter"
    return V, theta[:w], res, products, stopped


def eigenvalue_outside(times, live, start, above, rounding, trace=None,
                       max_products=16, block=4, complement=False,
                       live_image=None):
    """A proof that C (symmetric positive semi-definite) has more than r
    eigenvalues above `above`, r the number of live's columns: the learned
    directions, orthonormal (m, r).  Returns the proof's value, a lower
    bound on lambda_{r+1}(C) that is above `above`, or None where none was
    found.  With complement=True, a proof that a direction orthogonal to
    live has a variance v^T C v above `above`: the bound is then on the
    largest eigenvalue of C compressed to live's orthogonal complement,
    the top Ritz value of the Krylov part alone.  live_image, C live,
    saves that product when live is orthonormal already (it is then used
    as it is).

    A gradient run started without weight on a principal direction (or
    with too little for a loose tol) can stop at a saddle point of the
    loss with that direction missing, its latent left at zero.  The space
    searched is span(live) plus a block Krylov space grown off span(live)
    from start's columns and random ones, `block` in all: block Lanczos on
    the complement, whose top eigenvector is the missing direction if
    there is one.  Rayleigh-Ritz of C on the space gives Ritz values whose
    (r+1)-th is at most lambda_{r+1}(C) (Cauchy interlacing), however
    inexact live is: a value above `above` is a proof.  It must pass
    `above` by a margin for the rounding of the products, 4 sqrt(m)
    `rounding` (the data's eps) times the top Ritz value: several times
    their typical rounding, not a bound on the worst case.

    With trace(C) given, the search ends before its first product where
    trace(C) - trace(live^T C live), a bound on the sum of C's eigenvalues
    outside the top r (Ky Fan), is below `above`: no eigenvalue outside
    can pass it (k above X's rank, where the rest is rounding).

    max_products bounds the products with C of `block` columns (the one
    product with live is not counted); fewer where the space's Krylov
    part, 16 m `block` bytes a product, would pass 256 MiB, but at least
    two.  The space and its image take 16 m (r + block max_products)
    bytes, and a copy of live and one product's result come and go.
    Rayleigh-Ritz (eigenvalues only) runs after products 1, 2, 4, 8, 12,
    ... and once more where the space stops growing.
    """
    m, r = live.shape
    if r >= m:
        return None
    # Random columns fill the block: a product of a few columns costs
    # about what one costs (it reads C once), and each widens the search.
    fill = np.random.default_rng(0).standard_normal(
        (m, max(1, block - start.shape[1])))
    b = start.shape[1] + fill.shape[1]      # the widest a block can be
    max_products = min(max_products, max(2, (256 << 20) // (16 * m * b)))
    if live_image is not None:
        Q = np.asfortranarray(live, dtype=np.float64) if r else None
    else:
        Q = (orthonormal_against(np.asfortranarray(live, dtype=np.float64),
                                 None, 0.0) if r else None)
    r = 0 if Q is None else Q.shape[1]
    width = r + b * max_products
    # The space and its image, learned span first; Q and C Q are written
    # into them rather than kept beside them (r can be large).
    K = np.empty((m, width), order="F")
    CK = np.empty_like(K)
    # H = K^T C K, its upper triangle filled a block of columns at a time.
    H = np.zeros((width, width), order="F")
    margin = 4.0 * np.sqrt(m) * rounding
    if r:
        K[:, :r] = Q
        Q = K[:, :r]
        CK[:, :r] = times(Q) if live_image is None else live_image
        H[:r, :r] = _mm(Q, CK[:, :r], trans_a=True)
    if trace is not None:
        captured = float(np.trace(H[:r, :r]))
        if trace - captured + margin * abs(trace) <= above:
            return None
    Z = orthonormal_against(np.hstack([start, fill]), Q, 1e-8)
    D = checked = r

    def proof():
        first = r if complement else 0
        ritz, _, info = dsyevd(H[first:D, first:D], compute_v=0, lower=0)
        if info != 0:
            return None
        ritz = ritz[::-1]
        i = 0 if complement else r
        if ritz.shape[0] <= i:
            return None
        # The rounding is relative to C's scale: the top Ritz value of the
        # whole space, or, for the complement alone, the largest Rayleigh
        # quotient of C in the space (which includes the learned span's).
        top = (abs(ritz[0]) if not complement
               else max(abs(ritz[0]), float(np.abs(np.diagonal(H)[:D]).max())))
        if ritz[i] > above + margin * top:
            return float(ritz[i])
        return None

    for product in range(1, max_products + 1):
        b = Z.shape[1]
        if b == 0:
            break                    # the space is invariant under C
        K[:, D:D + b], CK[:, D:D + b] = Z, times(Z)
        H[:D + b, D:D + b] = _mm(K[:, :D + b], CK[:, D:D + b], trans_a=True)
        D += b
        if product in (1, 2) or product % 4 == 0:
            checked, found = D, proof()
            if found is not None:
                return found
        CZ = CK[:, D - b:D]
        # The drop is relative to the block's size, C's scale being the
        # data's; its largest entry, whose square cannot overflow.
        scale = float(np.abs(CZ).max())
        if not 0.0 < scale < np.inf:
            break
        Z = orthonormal_against(CZ / scale, K[:, :D], 1e-10)
    return proof() if D > checked else None


# The most products between two convergence checks of block_lanczos.
_MAX_CHECK_GAP = 8


def steps_to_reach(earlier, later, target):
    """Steps (products, iterations) still needed to bring the residual to
    target at the rate measured between two (steps, residual) points,
    `later` the last; None where the residual did not fall.  The kernel
    rounds' lengths, block_lanczos's check spacing and the switch to the
    dense solve all extrapolate this way.  A target of 0 (tol=0: run to
    max_iter) is never reached: inf."""
    (p0, r0), (p1, r1) = earlier, later
    if r0 <= 0 or r1 <= 0 or r1 >= r0:
        return None
    if target <= 0:
        return np.inf
    return np.log(target / r1) / (np.log(r1 / r0) / (p1 - p0))


def _check_gap(history, tol, cap):
    """Products until block_lanczos's next check: half of those the rate
    between the last two checks still needs to reach tol, at most cap; 1
    before two checks, and while the rate is slow (a stall must be seen at
    once)."""
    if len(history) < 2:
        return 1
    (p0, r0), (p1, r1) = history[-2], history[-1]
    if not (0.0 < r1 < 0.8 ** (p1 - p0) * r0) or r1 <= tol:
        return 1
    needed = steps_to_reach(history[-2], history[-1], tol)
    return int(min(cap, max(1.0, needed / 2)))     # inf for tol = 0


def _recurrence_residual(Z, Y_last, theta, floor):
    """max_i ||Z y_i|| / theta_1 over the Ritz pairs with theta_i > floor,
    Z the projected last image: the Ritz residuals of a Krylov space
    without forming C V."""
    top = max(theta[0], 0.0)
    meaningful = theta > floor
    if not meaningful.any() or top == 0.0:
        return 0.0
    # Divided by theta_1 before squaring (see residual).
    R = _mm(Z, np.asfortranarray(Y_last[:, meaningful])) / top
    return float(np.sqrt((R ** 2).sum(axis=0)).max())
