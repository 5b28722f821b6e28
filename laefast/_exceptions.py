"""Warnings and errors that laefast raises."""

__all__ = ["ConvergenceWarning", "CollapsedComponentWarning", "DivergenceError"]


class ConvergenceWarning(UserWarning):
    """A solver stopped at max_iter before its stopping rule held."""


class CollapsedComponentWarning(UserWarning):
    """lam is at or above sigma_i^2 for a kept component: it was not learned."""


class DivergenceError(FloatingPointError):
    """A gradient-descent run produced non-finite weights (step too large)."""
