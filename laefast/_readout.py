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

import numpy as np
import scipy.linalg

from ._exceptions import CollapsedComponentWarning

__all__ = ["readout", "readout_kind", "flip_signs"]

READOUTS = ("svd", "columns", "subspace", "ritz")


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


def readout(W2, lam, tol=0.0, stacklevel=2, regularizer="sum", method=None,
            times=None):
    """Return (components k x m, singular_values, eigenvalues, collapsed mask).

    times(Q) -> C Q (float64), when C is at hand, makes two read-outs
    exact.  lam = 0 ('ritz'): W2's singular values are all 1 there and its
    singular vectors any basis of the principal subspace, so the directions
    and variances are the Ritz pairs of C on span(W2).  And a component
    whose s is small enough to be a collapsed remnant is only reported
    collapsed when its direction's variance u^T C u is not above lam: a
    run stopped early at a loose tol leaves live components with small s
    too (their variance is then reported as u^T C u).

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
        # SciPy's LAPACK, the kernels' own: right after a kernel, NumPy's
        # OpenBLAS pool would wake while SciPy's still spins.
        u, s, _ = scipy.linalg.svd(W2, full_matrices=False,
                                   check_finite=False)
        components = flip_signs(np.ascontiguousarray(u.T))
        s = s.astype(np.float64)
    if kind == "subspace":
        nan = np.full(s.shape, np.nan)
        return components, nan, nan.copy(), np.zeros(s.shape, dtype=bool)
    if regularizer == "product":
        with np.errstate(divide="ignore"):
            eigenvalues = np.where(s < 1, lam * s * s / np.where(s < 1, 1 - s * s, 1),
                                   np.inf)
        return (components, np.sqrt(eigenvalues), eigenvalues,
                np.zeros(s.shape, dtype=bool))
    # A switched-off direction decays towards s = 0 but a run that stops at
    # tol leaves a remnant of order tol.  Below sqrt(max(eps, tol)),
    # sigma^2 = lam / (1 - s^2) differs from lam by less than max(eps, tol)
    # relative: indistinguishable from lam, so the component is reported as
    # collapsed rather than given a made-up variance.
    eps = np.finfo(W2.dtype).eps
    collapsed = s <= np.sqrt(max(eps, tol))
    variance = None
    if times is not None and collapsed.any():
        U = np.asfortranarray(components[collapsed].T, dtype=np.float64)
        variance = np.full(s.shape, np.nan)
        variance[collapsed] = np.einsum("ij,ij->j", U, times(U))
        lam_c = np.broadcast_to(lam, s.shape)
        live = collapsed & (variance > lam_c * (1.0 + np.sqrt(eps)))
        collapsed = collapsed & ~live
    one_minus = 1.0 - s * s
    if np.any(one_minus[~collapsed] <= 0):
        # Only a run stopped far from a critical point gets here.
        bad = np.flatnonzero((one_minus <= 0) & ~collapsed)
        warnings.warn(
            f"decoder singular values >= 1 for components {bad.tolist()}: the "
            "run is not at a minimum, so their variances cannot be read out "
            "(reported as inf)", RuntimeWarning, stacklevel=stacklevel + 1)
    with np.errstate(divide="ignore"):
        eigenvalues = np.where(one_minus > 0,
                               lam / np.where(one_minus > 0, one_minus, 1),
                               np.inf)
    eigenvalues[collapsed] = 0.0
    if variance is not None:
        live = ~collapsed & np.isfinite(variance)
        eigenvalues[live] = variance[live]
    if collapsed.any():
        idx = np.flatnonzero(collapsed).tolist()
        warnings.warn(
            f"components {idx} collapsed: lam = {_lam_text(lam, idx)} is "
            "at or above their "
            "eigenvalue of C = X X^T, so their directions are arbitrary and "
            "their variances are reported as 0. Lower lam below the "
            "k-th eigenvalue of C to learn them.",
            CollapsedComponentWarning, stacklevel=stacklevel + 1)
    singular_values = np.sqrt(eigenvalues)
    return components, singular_values, eigenvalues, collapsed


def _lam_text(lam, idx):
    if np.ndim(lam) == 0:
        return f"{lam:g}"
    return "[" + ", ".join(f"{lam[i]:g}" for i in idx) + "]"


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
    return (components, np.sqrt(eigenvalues), eigenvalues,
            np.zeros(k, dtype=bool))
