"""From trained decoder weights to principal directions and variances.

DESIGN.md §2.3: the left singular vectors of W2 are the principal directions
and its singular values s_i = sqrt(1 - lam / sigma_i^2), so
sigma_i = sqrt(lam / (1 - s_i^2)).
"""

import warnings

import numpy as np
import scipy.linalg

from ._exceptions import CollapsedComponentWarning

__all__ = ["readout", "flip_signs"]


def flip_signs(components):
    """Make the largest-magnitude entry of each row positive (in place)."""
    rows = np.arange(components.shape[0])
    signs = np.sign(components[rows, np.abs(components).argmax(axis=1)])
    signs[signs == 0] = 1
    components *= signs[:, None]
    return components


def readout(W2, lam, tol=0.0, stacklevel=2):
    """Return (components k x m, singular_values, eigenvalues, collapsed mask).

    A direction whose decoder singular value vanished (lam >= sigma_i^2 up to
    rounding) carries no information about sigma_i: it is reported as
    collapsed, with singular value and eigenvalue 0, and a warning names it.
    """
    # SciPy's LAPACK, the kernels' own: right after a kernel, NumPy's
    # OpenBLAS pool would wake while SciPy's still spins.
    u, s, _ = scipy.linalg.svd(W2, full_matrices=False, check_finite=False)
    components = flip_signs(np.ascontiguousarray(u.T))
    s = s.astype(np.float64)
    # A switched-off direction decays towards s = 0 but a run that stops at
    # tol leaves a remnant of order tol.  Below sqrt(max(eps, tol)),
    # sigma^2 = lam / (1 - s^2) differs from lam by less than max(eps, tol)
    # relative: indistinguishable from lam, so the component is reported as
    # collapsed rather than given a made-up variance.
    collapsed = s <= np.sqrt(max(np.finfo(W2.dtype).eps, tol))
    one_minus = 1.0 - s * s
    if np.any(one_minus[~collapsed] <= 0):
        # Only a run stopped far from a critical point gets here.
        bad = np.flatnonzero((one_minus <= 0) & ~collapsed)
        warnings.warn(
            f"decoder singular values >= 1 for components {bad.tolist()}: the "
            "run is not at a minimum, so their variances cannot be read out "
            "(reported as inf)", RuntimeWarning, stacklevel=stacklevel + 1)
    with np.errstate(divide="ignore"):
        eigenvalues = np.where(one_minus > 0, lam / np.where(one_minus > 0, one_minus, 1), np.inf)
    eigenvalues[collapsed] = 0.0
    if collapsed.any():
        idx = np.flatnonzero(collapsed).tolist()
        warnings.warn(
            f"components {idx} collapsed: lam = {lam:g} is at or above their "
            "eigenvalue of C = X X^T, so their directions are arbitrary and "
            "their variances are reported as 0. Lower lam below the "
            "k-th eigenvalue of C to learn them.",
            CollapsedComponentWarning, stacklevel=stacklevel + 1)
    singular_values = np.sqrt(eigenvalues)
    return components, singular_values, eigenvalues, collapsed
