"""Type stubs for laefast._lanczos: block Lanczos's per-step linear algebra."""
import numpy as np
from numpy.typing import NDArray

def orthonormalize_block(
    basis: NDArray[np.float64], D: int, Z: NDArray[np.float64], nz: int,
    unit: float, drop: float,
) -> int:
    """Orthonormalize Z[:, :nz] / unit against basis[:, :D] into
    basis[:, D:D + nb]; returns nb."""

def project_block(
    basis: NDArray[np.float64], image: NDArray[np.float64],
    H: NDArray[np.float64], Z: NDArray[np.float64], D: int, nb: int,
) -> float:
    """Grow H by the block at basis[:, D:D + nb]; Z = its image projected
    off the space; returns max |H[:D + nb, :D + nb]|."""
