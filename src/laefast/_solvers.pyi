"""Type stubs for laefast._solvers: the six LAE-PCA solver loops."""
import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64

# Method codes (one kernel loop each).
UNTIED: int
SYNC: int
TIED: int
EXACT_UNTIED: int
EXACT_SYNC: int
EXACT_TIED: int

# Why a loop stopped (run's status).
CONVERGED: int
MAX_ITER: int
NONFINITE: int
NOT_PD_W2: int
NOT_PD_W1: int
EIGH_FAILED: int
INTERRUPTED: int

# A tolerance that is never met: the loop runs every iteration.
NEVER_STOP: float

def run(
    method: int,
    W1: NDArray[_Float],
    W2: NDArray[_Float],
    C: NDArray[_Float] | None,
    lam: float,
    alpha: float,
    tol: float,
    max_iter: int,
    hist_stop: NDArray[np.float64] | None = None,
    hist_obj: NDArray[np.float64] | None = None,
    data: NDArray[_Float] | None = None,
    data_colmajor: bool = False,
    mean: NDArray[np.float64] | None = None,
    trace_c: float = 0.0,
    n_threads: int = 1,
    lam_vec: NDArray[np.floating] | None = None,
    product: bool = False,
    hist_w1: NDArray[_Float] | None = None,
    hist_w2: NDArray[_Float] | None = None,
    scale: float = 1.0,
) -> tuple[int, int, float, int]:
    """(n_iter, status, last stopping quantity, failing latent or -1)."""

def exact_w1_threads(m: int, k: int, n_threads: int) -> int: ...

def exact_w1_given_w2(
    W1: NDArray[_Float],
    W2: NDArray[_Float],
    C: NDArray[_Float],
    lam: float,
    n_threads: int = 1,
    lam_vec: NDArray[np.floating] | None = None,
) -> tuple[int, int]:
    """(status, failing latent or -1)."""

def exact_w2_given_w1(
    W2: NDArray[_Float],
    W1: NDArray[_Float],
    C: NDArray[_Float],
    lam: float,
    lam_vec: NDArray[np.floating] | None = None,
) -> int:
    """LAPACK potrf's info: 0 on success."""
