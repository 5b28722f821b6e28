"""Sum against product regularization, and non-uniform l2, on real data.

    python benchmarks/sum_vs_product.py [--repeats 5] [--max-iter 300000]

For scikit-learn's digits (m = 64) and a spiked covariance problem
(m = 100), both with k = 5, it trains linear autoencoders under

- the sum penalty lam (||W1||^2 + ||W2||^2), one lam: the left singular
  vectors of W2 are the principal directions;
- the product penalty lam ||W2 W1||^2: untied weights learn the principal
  subspace only (any invertible mixing of the directions);
- the sum penalty with one lam_i per latent (lam_1 < ... < lam_k): W2's
  columns are the ordered directions themselves, no SVD needed;

and prints, per run, the iterations, the time to converge (best of
--repeats), the U error of what the result reports as directions, the U
error of W2's raw columns, and the largest principal-angle sine of W2's
span against the true top-k subspace.  Then it times one iteration of
each gradient method under the three penalties on a Gram matrix with
m = 1000, k = 20 (interleaved, best of --repeats): the product penalty and
the per-latent lams add only O(k^2 m) work to the two k x m x m GEMMs of a
step.  docs/landscapes.md shows a run.
"""

import argparse
import platform
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import laefast
from laefast.metrics import max_principal_sine, u_error

K = 5
TOL = 1e-12


def spiked(m=100, n=2000, k=K, seed=0):
    """k spikes of variance 20 .. 10 (geometric) over unit noise."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((m, k)))
    X = rng.standard_normal((n, m))
    X += (rng.standard_normal((n, k)) * np.sqrt(np.geomspace(20, 10, k))) @ Q.T
    return X


def digits():
    from sklearn.datasets import load_digits
    return np.ascontiguousarray(load_digits().data, dtype=np.float64)


def truth(X, k=K):
    """C of the centered samples, its top k directions and eigenvalues."""
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc
    w, V = np.linalg.eigh(C)
    return C, V[:, ::-1][:, :k], w[::-1][:k + 1]


def runs(eigenvalues, k=K):
    """(label, method, lam, regularizer) of the runs compared."""
    lam = 0.5 * eigenvalues[k - 1]
    # lam_i increasing, paired with decreasing sigma_i^2; all below it.
    lam_vec = lam * np.linspace(0.5, 1.0, k)
    return [
        ("sum, one lam", "exact-tied", lam, "sum"),
        ("sum, one lam", "untied", lam, "sum"),
        ("product", "untied", lam, "product"),
        ("product", "tied", lam, "product"),
        ("sum, lam_1 < ... < lam_k", "exact-tied", lam_vec, "sum"),
        ("sum, lam_1 < ... < lam_k", "tied", lam_vec, "sum"),
        ("sum, lam_1 < ... < lam_k", "untied", lam_vec, "sum"),
    ]


def measure(C, U, method, lam, regularizer, repeats, max_iter):
    best, result = np.inf, None
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", laefast.ConvergenceWarning)
            start = time.perf_counter()
            res = laefast.solve(C, K, lam, method=method, tol=TOL,
                                max_iter=max_iter, random_state=0,
                                regularizer=regularizer)
            best = min(best, time.perf_counter() - start)
        result = res
    order = np.argsort(lam) if np.ndim(lam) else np.arange(K)
    cols = result.W2[:, order] / np.linalg.norm(result.W2[:, order], axis=0)
    return {"n_iter": result.n_iter, "converged": result.converged,
            "seconds": best, "readout": result.readout,
            "u_error": u_error(result.components.T, U),
            "columns_u_error": u_error(cols, U),
            "sine": max_principal_sine(result.W2, U)}


def step_costs(repeats, m=1000, k=20, n_iter=200):
    """Seconds per iteration of untied, sync and tied under each penalty,
    on one BLAS thread (steadier on a shared machine; the ratios are what
    matter)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, m))
    C = A @ A.T / m
    lam = 0.5
    penalties = {"sum": (lam, "sum"),
                 "per-latent": (lam * np.linspace(0.5, 1.0, k), "sum"),
                 "product": (lam, "product")}
    best = {(meth, p): np.inf for meth in ("untied", "sync", "tied")
            for p in penalties}
    with threadpool_limits(1):
        for _ in range(repeats):
            for (meth, p) in best:
                penalty, reg = penalties[p]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    laefast.solve(C, k, penalty, method=meth, tol=0.0,
                                  max_iter=n_iter, random_state=0,
                                  regularizer=reg)
                    elapsed = time.perf_counter() - start
                best[meth, p] = min(best[meth, p], elapsed / n_iter)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-iter", type=int, default=300_000)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.max_iter < 1:
        parser.error("--repeats and --max-iter must be >= 1")
    print(f"# {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, "
          f"laefast {laefast.__version__}; tol = {TOL:g}, k = {K}, "
          f"best of {args.repeats}")
    problems = [("spiked (m=100, n=2000)", spiked)]
    try:
        import sklearn  # noqa: F401
        problems.insert(0, ("digits (m=64, n=1797)", digits))
    except ImportError:
        print("# digits skipped: scikit-learn is not installed")
    for name, make in problems:
        C, U, ev = truth(make())
        print(f"\n## {name}: top eigenvalues of C "
              + ", ".join(f"{v:.4g}" for v in ev[:K])
              + f" (next {ev[K]:.4g}); lam = 0.5 x eigenvalue {K}")
        print(f"| penalty | method | iterations | converged | time (s) | "
              f"read-out | U error (components) | U error (W2 columns) | "
              f"subspace sine |")
        print("|---|---|---:|---|---:|---|---:|---:|---:|")
        for label, method, lam, reg in runs(ev):
            r = measure(C, U, method, lam, reg, args.repeats, args.max_iter)
            print(f"| {label} | {method} | {r['n_iter']} | "
                  f"{'yes' if r['converged'] else 'no'} | {r['seconds']:.4f} "
                  f"| {r['readout']} | {r['u_error']:.1e} | "
                  f"{r['columns_u_error']:.1e} | {r['sine']:.1e} |")
    best = step_costs(args.repeats)
    print("\n## seconds per iteration on C, m = 1000, k = 20 (ratio to 'sum')")
    print("| method | sum | per-latent lam | product |")
    print("|---|---:|---:|---:|")
    for meth in ("untied", "sync", "tied"):
        base = best[meth, "sum"]
        print(f"| {meth} | {base:.2e} | {best[meth, 'per-latent']:.2e} "
              f"({best[meth, 'per-latent'] / base:.2f}x) | "
              f"{best[meth, 'product']:.2e} "
              f"({best[meth, 'product'] / base:.2f}x) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
