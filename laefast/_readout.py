"""From trained decoder weights to principal directions and variances.

docs/theory.md: the left singular vectors of W2 are the principal directions
and its singular values s_i = sqrt(1 - lam / sigma_i^2), so
sigma_i = sqrt(lam / (1 - s_i^2)).

What a trained decoder identifies depends on the penalty (readout_kind):

- 'svd' (sum regularizer, one lam): the minima are W2 = U_k D O for any
  orthogonal O, so the directions are W2's left singular vectors.
- 'columns' (sum regularizer, one lam_i per latent, all distinct): the
  rotation O is pinned down (Bao et al., NeurIPS 2020): at the minimum
  column i of W2 is u_j sqrt(1 - lam_i / sigma_j^2), the latent with the
  smallest lam holding the top direction, the next smallest the second,
  and so on.  The directions are read from W2's columns directly, ordered
  by increasing lam, with no SVD.
- 'subspace' (product regularizer, untied gradient descent): the minima
  fix only W2 W1 = U_k diag(sigma_i^2 / (sigma_i^2 + lam)) U_k^T, so
  W2 = U_k G for any invertible G.  W2 spans the principal subspace but
  neither its columns nor its singular vectors are the directions, and its
  singular values say nothing about the variances.  (The k x k
  eigenproblem of W1 W2 would recover both; laefast reports what W2
  holds.)
- The product regularizer with a tied method (sync, tied: W1 = W2^T) is
  'svd' again: W2 W2^T is then the product map above, so W2's left
  singular vectors are the directions and its singular values
  s_i^2 = sigma_i^2 / (sigma_i^2 + lam) give sigma_i^2 = lam s_i^2 / (1 - s_i^2).
  That shrinkage never reaches 0: no direction collapses.
"""

import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.linalg

from ._exceptions import CollapsedComponentWarning, caller_stacklevel
from ._subspace import (eigenvalue_outside, orthonormal_against,
                        small_eigh, tall_svd)

# Products of 4 columns with C that the span check (_missed_by_span) may
# make beyond one with the learned span.
SPAN_CHECK_PRODUCTS = 8

__all__ = ["LAEResult", "Readout", "readout", "readout_kind", "flip_signs",
           "warn_collapsed", "RitzReadout", "ritz_readout", "pca_attributes"]


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
        Components left at zero in W2: lam switched them off
        (lam >= sigma_i^2), or, with converged False, the run ended at or
        near a saddle point before they grew (a ConvergenceWarning says so).
    n_iter : int
        Iterations run.
    converged : bool
        Whether the method's stopping rule held (else max_iter was
        reached), and, where components were left near zero, C has no
        more eigenvalues above lam than directions were learned that
        laefast could find, and, for a run from the caller's init, no
        direction orthogonal to the learned ones was found with a variance
        above the smallest learned by more than twice their residual (or
        above lam while a latent holds a direction of variance at most
        lam; else the run stopped at or near a saddle point).
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


def readout_kind(lam, regularizer="sum", method=None, ritz=False):
    """'svd', 'columns', 'subspace' or 'ritz': what the decoder identifies
    ('ritz': lam = 0 with C at hand, see readout)."""
    if ritz and np.ndim(lam) == 0 and lam == 0:
        return "ritz"
    if regularizer == "product":
        return "svd" if method in ("sync", "tied") else "subspace"
    return "svd" if np.ndim(lam) == 0 else "columns"


def flip_signs(components):
    """Make the largest-magnitude entry of each row positive (in place)."""
    rows = np.arange(components.shape[0])
    signs = np.sign(components[rows, np.abs(components).argmax(axis=1)])
    signs[signs == 0] = 1
    components *= signs[:, None]
    return components


class Missed(NamedTuple):
    """A run that stopped at or near a saddle point (see readout): C has
    one more eigenvalue above lam than the run learned, `bound` a lower
    bound on it (above lam), and `unlearned` the components whose decoder
    singular values are near zero: collapsed, or with s^2 below a fraction
    tol of the minimum's for their variance.  Or, with `unlearned` empty,
    the `learned` directions are near a saddle point's, not C's top ones:
    `bound` is a lower bound on the variance of a direction orthogonal to
    them, above `smallest`, the smallest variance learned, by more than
    twice their residual, or (`smallest` NaN) above lam while a latent
    holds a direction of variance at most lam (see _missed_by_span)."""

    bound: float
    unlearned: np.ndarray
    smallest: float = float("nan")
    learned: int = 0            # the directions the proof counts as learned


class Readout(NamedTuple):
    """What readout reads off a decoder: components (k, m), singular values
    and eigenvalues of C (k,), the collapsed mask, and missed: None, or a
    Missed (the run stopped at or near a saddle point; see readout)."""

    components: np.ndarray
    singular_values: np.ndarray
    eigenvalues: np.ndarray
    collapsed: np.ndarray
    missed: Missed | None = None


def readout(W2, lam, tol=0.0, regularizer="sum", method=None, times=None,
            trace=None, check_span=False):
    """Return a Readout: components k x m, singular_values, eigenvalues,
    the collapsed mask, and `missed`.

    times(Q) -> C Q (float64), when C is at hand, makes two read-outs
    exact.  lam = 0 ('ritz'): W2's singular values are all 1 there and its
    singular vectors any basis of the principal subspace, so the directions
    and variances are the Ritz pairs of C on span(W2).  And a component
    whose s is small enough to be a collapsed remnant is only reported
    collapsed when its direction's variance u^T C u is not above lam: a
    run stopped early at a loose tol leaves live components with small s
    too (their variance is then reported as u^T C u).  And where
    components have near-zero singular values under one lam (sum
    regularizer), C is checked for more eigenvalues above lam than learned
    components: all but the near-zero ones that are collapsed or have made
    less than a fraction tol of their way to the minimum (_subspace.
    eigenvalue_outside; trace() -> trace(C), called only then, lets the
    check end at once where the rest of C's spectrum is too small).  A
    run that started without weight on a direction, or stopped before a
    weakly started one grew, ends at or near a saddle point with that
    direction's latent near zero.  Such a proof comes back as `missed`
    (the caller reports the run as not converged), and no
    CollapsedComponentWarning is raised: lam did not switch those
    components off.  With check_span (the run started from the caller's
    weights), a run whose every latent was learned is checked too: a start
    without weight on a principal direction can also end at a saddle
    point where more eigenvalues than latents are above lam and a latent
    learned a lesser direction instead (_missed_by_span).

    A direction whose decoder singular value vanished (lam >= sigma_i^2 up to
    rounding) carries no information about sigma_i: it is reported as
    collapsed, with singular value and eigenvalue 0, and a warning names it.
    With a vector lam the components are W2's normalized columns, ordered by
    increasing lam (s_i is the column's norm, lam_i its own lam); with the
    product regularizer and untied weights they are an orthonormal basis of
    W2's span and the variances are NaN (see the module docstring).
    """
    kind = readout_kind(lam, regularizer, method, ritz=times is not None)
    if kind == "ritz":
        return _ritz_readout(W2, times)
    if kind == "columns":
        order = np.argsort(lam, kind="stable")
        cols = np.asarray(W2, dtype=np.float64)[:, order]
        s = np.linalg.norm(cols, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            components = np.where(s > 0, cols / np.where(s > 0, s, 1), 0.0).T
        components = flip_signs(np.ascontiguousarray(components,
                                                     dtype=W2.dtype))
        lam = np.asarray(lam, dtype=np.float64)[order]
    else:
        # SciPy's BLAS and LAPACK, the kernels' own: right after a kernel,
        # NumPy's OpenBLAS pool would wake while SciPy's still spins.
        tall = (W2.shape[0] >= 2 * W2.shape[1]
                and W2.dtype in (np.float32, np.float64))
        found = tall_svd(W2) if tall else None
        if found is None:
            u, s, _ = scipy.linalg.svd(W2, full_matrices=False,
                                       check_finite=False)
        else:
            u, s = found
        components = flip_signs(np.ascontiguousarray(u.T, dtype=W2.dtype))
        s = s.astype(np.float64)
    if kind == "subspace":
        nan = np.full(s.shape, np.nan)
        return Readout(components, nan, nan.copy(),
                       np.zeros(s.shape, dtype=bool))
    if regularizer == "product":
        with np.errstate(divide="ignore"):
            eigenvalues = np.where(s < 1, lam * s * s / np.where(s < 1, 1 - s * s, 1),
                                   np.inf)
        return Readout(components, np.sqrt(eigenvalues), eigenvalues,
                       np.zeros(s.shape, dtype=bool))
    # A switched-off direction decays towards s = 0 but a run that stops at
    # tol leaves a remnant of order tol.  Below sqrt(max(eps, tol)),
    # sigma^2 = lam / (1 - s^2) differs from lam by less than max(eps, tol)
    # relative: indistinguishable from lam, so the component is reported as
    # collapsed rather than given a made-up variance.
    eps = np.finfo(W2.dtype).eps
    near_zero = s <= np.sqrt(max(eps, tol))
    collapsed = near_zero
    variance = None
    if times is not None and near_zero.any():
        U = np.asfortranarray(components[near_zero].T, dtype=np.float64)
        variance = np.full(s.shape, np.nan)
        variance[near_zero] = np.einsum("ij,ij->j", U, times(U))
        lam_c = np.broadcast_to(lam, s.shape)
        live = near_zero & (variance > lam_c * (1.0 + np.sqrt(eps)))
        collapsed = near_zero & ~live
    one_minus = 1.0 - s * s
    if np.any(one_minus[~collapsed] <= 0):
        # Only a run stopped far from a critical point gets here.
        bad = np.flatnonzero((one_minus <= 0) & ~collapsed)
        warnings.warn(
            f"decoder singular values >= 1 for components {bad.tolist()}: the "
            "run is not at a minimum, so their variances cannot be read out "
            "(reported as inf)", RuntimeWarning, stacklevel=caller_stacklevel())
    with np.errstate(divide="ignore"):
        eigenvalues = np.where(one_minus > 0,
                               lam / np.where(one_minus > 0, one_minus, 1),
                               np.inf)
    eigenvalues[collapsed] = 0.0
    if variance is not None:
        live = ~collapsed & np.isfinite(variance)
        eigenvalues[live] = variance[live]
    missed = None
    unlearned = np.zeros(s.shape, dtype=bool)
    edge = float(min(max(np.sqrt(eps), tol), 0.5))
    if times is not None and kind == "svd" and near_zero.any():
        # A near-zero component is unlearned where it is collapsed, or where
        # its s^2 is below a fraction t of the minimum's 1 - lam / v for its
        # variance v = u^T C u: the run has made less than about 2 t of the
        # descent along it from the saddle point (s = 0) to the minimum.  A
        # loose tol's run stopped part way is not at a saddle point.  t is
        # capped as the edge below is: at tol >= 1 every component is near
        # zero, and one at its minimum would pass for one at s = 0.
        t = min(max(eps, tol), edge)
        with np.errstate(invalid="ignore", divide="ignore"):
            at_saddle = s * s <= t * (1.0 - lam / variance)
        unlearned = near_zero & (collapsed | at_saddle)
    if unlearned.any():
        # The search starts from the unlearned directions, largest variance
        # first.  The proof must pass lam / (1 - edge): at a minimum, every
        # direction above that has s^2 = 1 - lam / v > edge >= t, so none of
        # them is unlearned there (edge is at least sqrt(eps)).
        start = np.flatnonzero(unlearned)
        start = start[np.argsort(-variance[start], kind="stable")][:3]
        try:
            bound = eigenvalue_outside(
                times, components[~unlearned].T, components[start].T,
                lam / (1.0 - edge), float(eps),
                trace=None if trace is None else trace())
        except MemoryError:
            # The run itself succeeded: a check that does not fit is skipped.
            bound = None
        if bound is not None:
            missed = Missed(bound, np.flatnonzero(unlearned),
                            learned=int(np.count_nonzero(~unlearned)))
    if check_span and missed is None and times is not None and kind == "svd":
        missed = _missed_by_span(times, components[~(collapsed | unlearned)],
                                 float(lam), edge, float(eps), trace)
    if collapsed.any() and missed is None:
        warn_collapsed(np.flatnonzero(collapsed), lam)
    singular_values = np.sqrt(eigenvalues)
    return Readout(components, singular_values, eigenvalues, collapsed,
                   missed)


def _missed_by_span(times, learned, lam, edge, rounding, trace):
    """A Missed where the learned directions (rows of `learned`) span a
    subspace near a saddle point's: invariant up to its residual, but with
    a direction orthogonal to it whose variance passes the smallest one
    learned by more than twice that residual (and a relative tie margin);
    else None.

    A start without weight on a principal direction can end at a saddle
    point where every latent is learned, one of them a lesser direction
    in place of the principal one, which is left orthogonal to the span
    with its full variance.  The span tested is that of the Ritz vectors
    of C on the learned directions with Ritz values above lam: a latent
    that lam is switching off (variance at most lam, still decaying at a
    loose tol) is no direction learned, and would make a lesser variance
    the smallest.  With Q their orthonormal basis, H = Q^T C Q, theta its
    smallest eigenvalue and R = C Q - Q H: a symmetric matrix A with span(Q)
    invariant has ||A - C||_2 >= ||(A - C) Q||_2 >= ||R||_2 (C - R Q^T -
    Q R^T attains it), and by Weyl, within ||R||_2 of C its eigenvalues
    on span(Q) are at most theta + ||R||_2 at the smallest and those on
    its complement at least mu - ||R||_2 at the largest, mu the largest of
    C compressed to the complement.  So mu > theta + 2 ||R||_F proves that
    span(Q) is not the principal subspace of any matrix within ||R||_2 of
    C that leaves it invariant.  That the run is then at or near a saddle
    point, not merely short of the minimum, is the heuristic reading (a
    span tilted from the principal one leaves a residual of first order
    in the tilt, a variance outside of second order).  And where a
    learned latent holds a direction of variance at most lam (a Ritz value
    at most lam, not yet decayed to the remnant level), a direction
    outside the span above lam / (1 - edge), again by more than twice the
    residual, is one the minimum would learn with that latent: the run is
    short of it, at or near a saddle point (`smallest` is NaN then).
    Variances within `edge` (sqrt(eps), or tol if larger, at most 1/2)
    times the largest learned one are taken as ties: a near-tie at the
    k-th eigenvalue can end with either direction, at no cost in the
    loss.  mu's lower bound
    comes from block Lanczos on the complement (_subspace.
    eigenvalue_outside with complement=True, from random columns: nothing
    hints at the missing direction), SPAN_CHECK_PRODUCTS products of 4
    columns at most."""
    m, r = learned.shape[1], learned.shape[0]
    if r == 0 or r >= m:
        return None
    try:
        U = orthonormal_against(np.asfortranarray(learned.T,
                                                  dtype=np.float64),
                                None, 0.0)
        if U.shape[1] == 0:
            return None
        CU = times(U)
        H = U.T @ CU
        theta, V = small_eigh((H + H.T) / 2)
        keep = theta > lam
        if not keep.any():
            return None
        # A latent on a direction of variance at most lam (decaying, not
        # yet near zero) frees a latent: then any direction above lam
        # outside the span is one the minimum would hold instead.
        spare = not keep.all()
        V = np.asfortranarray(V[:, keep])
        Q, CQ, theta = U @ V, CU @ V, theta[keep]
        smallest = float(theta[0])
        # Twice the residual in both: a span tilted from the principal one
        # leaves variance outside it (see above).
        slack = 2.0 * _frobenius(CQ - Q * theta)
        wrong = smallest + slack + edge * float(np.abs(theta).max())
        above = min(wrong, lam / (1.0 - edge) + slack) if spare else wrong
        bound = eigenvalue_outside(times, np.asfortranarray(Q),
                                   np.empty((m, 0)), above, rounding,
                                   trace=None if trace is None else trace(),
                                   max_products=SPAN_CHECK_PRODUCTS,
                                   complement=True,
                                   live_image=np.asfortranarray(CQ))
    except MemoryError:
        return None        # the run succeeded: a check that does not fit
    if bound is None:
        return None
    # smallest NaN: the proof is against lam, with a latent spare.
    return Missed(bound, np.zeros(0, dtype=np.intp),
                  smallest if bound > wrong else float("nan"), Q.shape[1])


def _frobenius(A):
    """||A||_F without overflow or underflow in the squares (C may be near
    1e300 or 1e-300)."""
    scale = float(np.abs(A).max()) if A.size else 0.0
    if not 0.0 < scale < np.inf:
        return scale
    return scale * float(np.linalg.norm(A / scale))


def warn_collapsed(idx, lam):
    """The one CollapsedComponentWarning: components idx (positions in the
    result) collapsed under lam (one value, or one per component)."""
    idx = [int(i) for i in idx]
    if np.ndim(lam) == 0:
        text = f"{float(lam):g}"
    else:
        text = "[" + ", ".join(f"{lam[i]:g}" for i in idx) + "]"
    warnings.warn(
        f"components {idx} collapsed: lam = {text} is at or above their "
        "eigenvalue of C (the centered Gram matrix, no 1/n), so their "
        "directions are arbitrary and their variances are reported as 0. "
        "Lower lam below the k-th eigenvalue of C to learn them.",
        CollapsedComponentWarning, stacklevel=caller_stacklevel())


def _ritz_readout(W2, times):
    """lam = 0: the Ritz pairs of C on span(W2), by decreasing variance."""
    from ._subspace import ritz_pairs
    k = W2.shape[1]
    Q = np.asfortranarray(scipy.linalg.svd(
        np.asarray(W2, dtype=np.float64), full_matrices=False,
        check_finite=False)[0])
    V, _, theta = ritz_pairs(Q, np.asfortranarray(times(Q)), k)
    components = flip_signs(np.ascontiguousarray(V.T, dtype=W2.dtype))
    eigenvalues = np.maximum(theta, 0.0)
    return Readout(components, np.sqrt(eigenvalues), eigenvalues,
                   np.zeros(k, dtype=bool))


class RitzReadout(NamedTuple):
    """The read-out of Ritz pairs: components (k, m) float64 by decreasing
    variance, eigenvalues of C (k,) float64 (0 where collapsed), the
    collapsed mask, and the decoder W2 (m, k) at the minimum of L_sigma on
    their span."""

    components: np.ndarray
    eigenvalues: np.ndarray
    collapsed: np.ndarray
    W2: np.ndarray


def ritz_readout(V, theta, lam, k, floor, warn=True):
    """The estimators' read-out from the Ritz pairs (V, theta) of C on the
    trained span (decreasing theta): the first k, exact whatever lam is.
    Eigenvalues at or below floor (lam, or what the dtype cannot tell from
    0) carry no direction and are reported as 0; with warn, a collapse
    under the user's lam warns."""
    components = flip_signs(np.ascontiguousarray(V[:, :k].T))
    eig = np.maximum(theta[:k], 0.0)
    collapsed = eig <= floor
    if collapsed.any() and warn:
        warn_collapsed(np.flatnonzero(collapsed), lam)
    eig = np.where(collapsed, 0.0, eig)
    # The minimum of L_sigma on span(V): W2 = V (I - lam / eig)^(1/2).
    scale = np.sqrt(np.clip(1.0 - lam / np.where(eig > 0, eig, 1.0),
                            0.0, None)) * (eig > 0)
    return RitzReadout(components, eig, collapsed, components.T * scale)


def pca_attributes(out, lam, trace, m, n_samples, dtype):
    """scikit-learn PCA's fitted attributes (and the LAE's weights) from a
    RitzReadout of C over n_samples samples, in dtype."""
    k = out.eigenvalues.shape[0]
    W2 = out.W2.astype(dtype)
    ddof_n = max(n_samples - 1, 1)
    total_var = trace / ddof_n
    explained = out.eigenvalues / ddof_n
    rest = min(n_samples, m) - k
    noise = (max(total_var - explained.sum(), 0.0) / rest
             if rest > 0 else 0.0)
    return {
        "components_": out.components.astype(dtype),
        "explained_variance_": explained.astype(dtype),
        "explained_variance_ratio_": (explained / total_var
                                      if total_var > 0 else
                                      np.zeros(k)).astype(dtype),
        "singular_values_": np.sqrt(out.eigenvalues).astype(dtype),
        "noise_variance_": float(noise),
        "n_components_": k,
        "W1_": np.ascontiguousarray(W2.T),
        "W2_": W2,
        "lam_": lam,
    }
