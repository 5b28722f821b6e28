"""Type stubs for laefast._sgd: the SVRG minibatch sweep on raw samples."""
import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64

# Why a sweep stopped (svrg_sweep's status).
DONE: int
NONFINITE: int
INTERRUPTED: int

# Rows centered at a time, by default.
BLOCK_ROWS: int

def sweep_threads(
    b: int, m: int, k: int, tied: bool, n_threads: int, block_rows: int = ...,
) -> int: ...
def svrg_sweep(
    X: NDArray[_Float],
    mean: NDArray[np.float64],
    W1: NDArray[np.float64],
    W2: NDArray[np.float64],
    A2: NDArray[np.float64],
    G1: NDArray[np.float64],
    G2: NDArray[np.float64],
    lam: float,
    alpha: float,
    decay: float,
    step0: int,
    batch_size: int,
    n_total: float,
    tied: bool,
    n_threads: int,
    block_rows: int = ...,
) -> tuple[int, int]: ...
