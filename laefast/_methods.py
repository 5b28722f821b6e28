"""One place for what laefast knows about each training method.

Every entry point (solve/fit/step, LAEPCA, LAEStream, the cost model, the
CLI and the benchmarks) reads the methods from here: their names, the
compiled loop that runs each, whether it is gradient descent or exact
alternating minimization, whether it needs the Gram matrix itself, and its
cost per iteration for choosing between iterating on C and on the samples.
"""

from dataclasses import dataclass

from . import _solvers

__all__ = ["MethodInfo", "REGISTRY", "METHODS", "GD_METHODS", "AUTO",
           "method_info"]


@dataclass(frozen=True)
class MethodInfo:
    """What the code needs to know about one training method.

    gram_flops and data_flops are the flops of one iteration in units of
    k m^2 (on C) and k m n (on the samples); assumed_iterations is the count
    the cost model assumes before running (None flops: the method cannot
    run that way).
    """

    name: str
    code: int | None          # the compiled loop in laefast._solvers.run
    kind: str                 # 'gradient' or 'exact'
    needs_gram: bool          # True: its m x m solves need C itself
    gram_flops: float | None
    data_flops: float | None
    assumed_iterations: int


REGISTRY = {info.name: info for info in (
    MethodInfo("untied", _solvers.UNTIED, "gradient", False, 4, 8, 1000),
    MethodInfo("sync", _solvers.SYNC, "gradient", False, 2, 4, 1000),
    MethodInfo("tied", _solvers.TIED, "gradient", False, 2, 4, 1000),
    MethodInfo("exact-untied", _solvers.EXACT_UNTIED, "exact", True, None, None,
               100),
    MethodInfo("exact-sync", _solvers.EXACT_SYNC, "exact", False, 4, 8, 100),
    MethodInfo("exact-tied", _solvers.EXACT_TIED, "exact", False, 2, 4, 100),
)}
METHODS = tuple(REGISTRY)
GD_METHODS = tuple(name for name, info in REGISTRY.items()
                   if info.kind == "gradient")
# LAEPCA's method='auto': exact-tied's products, accelerated by block
# Lanczos (laefast._subspace), so far fewer of them.
AUTO = MethodInfo("auto", None, "exact", False, 2, 4, 25)


def method_info(name):
    """The MethodInfo of one of METHODS, or of LAEPCA's 'auto'."""
    return AUTO if name == "auto" else REGISTRY[name]
