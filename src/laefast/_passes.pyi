"""Type stubs for laefast._passes: one-pass kernels on raw samples."""
import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64

def gram_pass_threads(n: int, m: int, n_threads: int) -> int: ...
def gram_block_rows(m: int, tiles: bool) -> int: ...
def gram_pass(
    X: NDArray[_Float],
    shift: NDArray[np.float64],
    G: NDArray[np.float64],
    s: NDArray[np.float64],
    n_threads: int,
    tiles: bool,
    block_rows: int = 0,
) -> None: ...
def centered_product_threads(n: int, m: int, r: int, n_threads: int) -> int: ...
def centered_product_block_rows(m: int) -> int: ...
def centered_product_workspace(n: int, m: int, r: int, n_threads: int) -> int: ...
def centered_product(
    X: NDArray[_Float],
    mean: NDArray[np.float64],
    Q: NDArray[np.float64],
    out: NDArray[np.float64],
    n_threads: int,
    want_trace: bool = False,
    work: NDArray[np.float64] | None = None,
) -> float: ...
def column_sums(X: NDArray[_Float], n_threads: int) -> NDArray[np.float64]: ...
