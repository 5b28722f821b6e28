"""Warnings and errors that laefast raises.

When scikit-learn is importable, :class:`NotFittedError` and
:class:`ConvergenceWarning` subclass scikit-learn's classes of the same
names, so ``except sklearn.exceptions.NotFittedError`` and
``warnings.filterwarnings('ignore', category=sklearn.exceptions.
ConvergenceWarning)`` catch laefast's too.  Without scikit-learn they derive
from the same builtins as scikit-learn's (ValueError and AttributeError;
UserWarning).
"""

import os
import sys

__all__ = ["ConvergenceWarning", "CollapsedComponentWarning",
           "DivergenceError", "NotFittedError"]

try:
    from sklearn.exceptions import ConvergenceWarning as _SkConvergence
    from sklearn.exceptions import NotFittedError as _SkNotFitted
except ImportError:          # scikit-learn is optional
    _SkConvergence = UserWarning
    _SkNotFitted = None

if _SkNotFitted is not None:
    _NOT_FITTED_BASES = (_SkNotFitted,)
else:
    _NOT_FITTED_BASES = (ValueError, AttributeError)


class ConvergenceWarning(_SkConvergence):
    """A solver stopped at max_iter before its stopping rule held.

    A subclass of ``sklearn.exceptions.ConvergenceWarning`` when scikit-learn
    is installed (else of UserWarning).
    """


class NotFittedError(*_NOT_FITTED_BASES):
    """The estimator was used before fit.

    A subclass of ``sklearn.exceptions.NotFittedError`` when scikit-learn is
    installed; always a ValueError and an AttributeError, as scikit-learn's.
    """


class CollapsedComponentWarning(UserWarning):
    """lam is at or above sigma_i^2 for a kept component: it was not learned."""


class DivergenceError(FloatingPointError):
    """A gradient-descent run produced non-finite weights (step too large)."""


def caller_stacklevel():
    """The ``stacklevel`` for warnings.warn, called in the function that
    warns, that points at the first frame outside the laefast package: the
    user's line, however deep inside laefast the warning is raised."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_PACKAGE):
            # laefast's own frames carry absolute paths; others may not.
            if os.path.isabs(name) or not os.path.abspath(name).startswith(
                    _PACKAGE):
                break
        frame, level = frame.f_back, level + 1
    return level


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
