"""``python -m laefast demo``: the paper's default problem, all six methods."""

import time

import numpy as np
from threadpoolctl import threadpool_info

from . import reference
from ._api import solve
from ._validation import METHODS
from .metrics import u_error

# docs/theory.md: the seed's defaults.
PAPER = dict(m=10, n=10_000, k=2, lam=50.0, alpha=1e-5, tol=1e-8)


def _best_time(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _blas_line():
    parts = [f"{i.get('internal_api')} {i.get('version')} "
             f"({i.get('num_threads')} threads, {i.get('prefix')})"
             for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(parts) or "unknown"


def run_demo(methods=None, with_reference=True, repeats=3):
    methods = list(methods or METHODS)
    p = PAPER
    X, W1, W2 = reference.paper_problem(p["m"], p["n"], p["k"])
    C = X @ X.T
    U_true = np.linalg.svd(X, full_matrices=False)[0][:, :p["k"]]
    print(f"paper problem: m={p['m']} n={p['n']} k={p['k']} lam={p['lam']:g} "
          f"alpha={p['alpha']:g} eps={p['tol']:g}, start W1, W2 ~ N(0, 1)")
    print(f"BLAS: {_blas_line()}")
    header = (f"{'method':<13} {'iters':>7} {'seconds':>9} {'U error':>9} "
              f"{'ref iters':>9} {'ref secs':>9} {'speedup':>8}")
    print(header)
    print("-" * len(header))
    for method in methods:
        alpha = p["alpha"] if method in ("untied", "sync", "tied") else None
        t, res = _best_time(lambda: solve(
            C, p["k"], p["lam"], method=method, alpha=alpha, tol=p["tol"],
            init=(W1, W2)), repeats)
        err = u_error(res.components.T, U_true)
        line = f"{method:<13} {res.n_iter:>7} {t:>9.4f} {err:>9.1e}"
        if with_reference:
            t_ref, ref = _best_time(lambda: reference.run(
                method, C, W1, W2, p["lam"], alpha, p["tol"]), 1)
            line += f" {ref.n_iter:>9} {t_ref:>9.3f} {t_ref / t:>7.0f}x"
        print(line, flush=True)
    return 0
