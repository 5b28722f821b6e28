"""Type stubs for laefast._alignment: alignment rules' layer kernels."""
import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64
_Index = NDArray[np.intp]

# Rule codes.
BP: int
FA: int
SA: int
AA: int
WM: int
IA: int
KP: int

def simd(enabled: bool | None = None) -> bool: ...
def kp_kernel_applies(b: int, n_in: int, n_out: int) -> bool: ...
def layer_workspace(
    rule: int, b: int, n_in: int, n_out: int, bt: bool = False
) -> int: ...
def layer_gemm_count(rule: int, b: int) -> int: ...
def layer_update(
    rule: int,
    W: NDArray[_Float],
    B: NDArray[_Float],
    x: NDArray[_Float],
    delta: NDArray[_Float],
    c0: float,
    c1: float,
    c2: float,
    gB: NDArray[_Float],
    gW: NDArray[_Float],
    work: NDArray[_Float],
    bt: bool = False,
    repeats: int = 1,
    gemms_only: bool = False,
    kp_kernel: bool = False,
) -> None: ...
def train_epoch(
    rule: int,
    theta: NDArray[_Float],
    velocity: NDArray[_Float],
    sizes: _Index,
    offW: _Index,
    offc: _Index,
    offB: _Index,
    n_wc: int,
    X: NDArray[_Float],
    y: _Index,
    order: _Index,
    batch: int,
    lr: float,
    momentum: float,
    c0: float,
    c1: float,
    c2: float,
    noise_std: float,
    seed: int,
) -> tuple[float, float, int]:
    """(mean loss, accuracy, the random state after the epoch)."""
def batch_gradient(
    rule: int,
    theta: NDArray[_Float],
    sizes: _Index,
    offW: _Index,
    offc: _Index,
    offB: _Index,
    n_wc: int,
    X: NDArray[_Float],
    y: _Index,
    c0: float,
    c1: float,
    c2: float,
    noise_std: float,
    seed: int,
    grad: NDArray[_Float],
) -> float: ...
def predict_logits(
    theta: NDArray[_Float],
    sizes: _Index,
    offW: _Index,
    offc: _Index,
    offB: _Index,
    n_wc: int,
    X: NDArray[_Float],
    out: NDArray[_Float],
    batch: int = 256,
) -> None: ...
