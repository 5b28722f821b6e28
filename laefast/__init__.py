"""laefast: PCA by training L2-regularized linear autoencoders, fast.

The public surface:

- :func:`solve` fits from a Gram matrix C = X X^T, :func:`fit` from data X of
  shape (n_samples, n_features); both return an :class:`LAEResult`.
- :func:`step`, :func:`exact_w1`, :func:`exact_w2`: single compiled steps
  for libraries that drive their own loop.
- :class:`LAEPCA`: a scikit-learn-compatible PCA estimator that needs no
  tuning; :class:`LAEStream` fits from chunks of samples.
- :class:`GramAccumulator`: count, mean and centered Gram matrix of data
  seen in pieces, one parallel pass each, mergeable (Chan et al.).
- :mod:`laefast.reference`: the paper's algorithms in plain NumPy.
- :mod:`laefast.metrics`: U error, principal-angle sine, L_sigma.
- :func:`loss`, :func:`loss_gradient`: L, L_pi or L_sigma and their
  gradients; :mod:`laefast.landscape`: the scalar case's landscapes,
  critical points and trajectories.
- :mod:`laefast.alignment`: alignment learning rules (backward weights B
  trained to stand in for W^T) as compiled layer kernels, and a small MLP.
- :mod:`laefast.bench`: what ``laefast bench`` runs (problems, timing,
  peers, the environment report), for scripts and notebooks.
"""

# The compiled modules exist only in a build.  Python started in the
# repository root finds the source folder laefast/ first (it shadows an
# installed copy), and the source folder has no compiled modules: say how to
# install instead of failing later on some missing name.
import importlib as _importlib
import os as _os

# GNU libgomp's threads spin for about 300,000 pauses (several ms) after
# each parallel region before they sleep, and meanwhile take the cores that
# OpenBLAS's threads need for the GEMMs and eigensolvers that follow a pass:
# 50 `laefast.step` calls (each checks C in a parallel region) ran 2.6-10x
# slower on 2 cores.  libgomp reads GOMP_SPINCOUNT once, when it loads with
# laefast's first compiled module; 10,000 (a fraction of a millisecond)
# still keeps a team hot between back-to-back regions.  The variable is set
# only for that load, and only when the user has set neither it nor
# OMP_WAIT_POLICY.
_SPIN = not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(_os.environ)
if _SPIN:
    _os.environ["GOMP_SPINCOUNT"] = "10000"
try:
    _importlib.import_module(__name__ + "._solvers")
except ModuleNotFoundError as _exc:
    if _exc.name != __name__ + "._solvers":
        raise
    raise ImportError(
        f"laefast's compiled modules were not found next to {__file__}: "
        "this is the source tree, not a build (a source folder laefast/ in "
        "the current directory shadows an installed copy). Install it in "
        "place with\n"
        "    pip install -r requirements-dev.txt && "
        "pip install --no-build-isolation -e .\n"
        "(see README.md), or run Python from outside the repository root to "
        "use an installed laefast."
    ) from None
finally:
    if _SPIN:
        del _os.environ["GOMP_SPINCOUNT"]
del _importlib, _os, _SPIN

from . import landscape, metrics, reference
from ._accumulator import GramAccumulator
from ._estimator import LAEPCA, NotFittedError
from ._api import LAEResult, default_alpha, exact_w1, exact_w2, fit, gram_matrix, solve, step
from ._exceptions import CollapsedComponentWarning, ConvergenceWarning, DivergenceError
from ._openmp import openmp_enabled
from ._regularizer import REGULARIZERS, loss, loss_gradient
from ._stream import LAEStream
from ._validation import METHODS
from . import alignment, bench
from ._version import __version__

__all__ = [
    "METHODS",
    "REGULARIZERS",
    "CollapsedComponentWarning",
    "ConvergenceWarning",
    "DivergenceError",
    "GramAccumulator",
    "LAEPCA",
    "LAEResult",
    "LAEStream",
    "alignment",
    "bench",
    "default_alpha",
    "exact_w1",
    "exact_w2",
    "fit",
    "gram_matrix",
    "landscape",
    "loss",
    "loss_gradient",
    "metrics",
    "NotFittedError",
    "openmp_enabled",
    "reference",
    "solve",
    "step",
]
