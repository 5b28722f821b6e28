"""Type stubs for laefast._checks: one-pass checks of large inputs."""
import numpy as np
from numpy.typing import NDArray

def gram_stats(
    C: NDArray[np.float32 | np.float64], n_threads: int = 1,
) -> tuple[float, float, float, float, float]:
    """(max |C - C^T|, max |diag|, max row sum of |C_ij|, trace, total)."""

def simd(enabled: bool | None = None) -> bool: ...
