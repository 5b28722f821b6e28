"""``python -m laefast demo``: the paper's default problem, all six methods."""

import numpy as np

from . import reference
from ._api import solve
from .bench import best_of, environment_line, get_problem
from ._methods import METHODS
from .metrics import u_error

def _best_time(fn, repeats):
    """(best wall time, last result) of `repeats` calls (no time budget)."""
    t, out, _ = best_of(fn, repeats, budget=np.inf)
    return t, out


def run_demo(methods=None, with_reference=True, repeats=3):
    methods = list(methods or METHODS)
    P = get_problem("paper")      # docs/theory.md: the seed's defaults
    alpha_gd = P.alpha("untied")
    print(f"paper problem: m={P.m} n={P.n} k={P.k} lam={P.lam:g} "
          f"alpha={alpha_gd:g} eps={P.tol:g}, start W1, W2 ~ N(0, 1)")
    print(f"machine: {environment_line()}")
    header = (f"{'method':<13} {'iters':>7} {'seconds':>9} {'U error':>9} "
              f"{'ref iters':>9} {'ref secs':>9} {'speedup':>8}")
    print(header)
    print("-" * len(header))
    for method in methods:
        alpha = P.alpha(method)
        t, res = _best_time(lambda: solve(
            P.C, P.k, P.lam, method=method, alpha=alpha, tol=P.tol,
            init=(P.W1, P.W2)), repeats)
        err = u_error(res.components.T, P.U_true)
        line = f"{method:<13} {res.n_iter:>7} {t:>9.4f} {err:>9.1e}"
        if with_reference:
            t_ref, ref = _best_time(lambda: reference.run(
                method, P.C, P.W1, P.W2, P.lam, alpha, P.tol), 1)
            line += f" {ref.n_iter:>9} {t_ref:>9.3f} {t_ref / t:>7.0f}x"
        print(line, flush=True)
    return 0
