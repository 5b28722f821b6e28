"""
The paper's six methods and their convergence
=============================================

Kunin et al. train the regularized linear autoencoder six ways: gradient
descent with the encoder and decoder untied, synchronized or tied (a
regularized Oja rule), and the same three with exact alternating
minimization instead of gradient steps. Here each runs on the paper's
default problem (m = 10 features, n = 10000 samples, k = 2, lam = 50, step
1e-5 for the gradient methods) from the same random start, and we follow the
paper's U error: the distance of the learned directions from the true ones,
summed over the k directions.

:func:`laefast.step` runs one compiled iteration in place, so we can watch
every iterate; :func:`laefast.solve` runs the same kernels to the stopping
rule in one call, which we time.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import laefast
from laefast import reference
from laefast.metrics import u_error

X, W1_start, W2_start = reference.paper_problem()       # X: m x n, centered
C = X @ X.T
k, lam, alpha, tol = 2, 50.0, 1e-5, 1e-8
U_true = np.linalg.svd(X, full_matrices=False)[0][:, :k]
gradient = ("untied", "sync", "tied")


def trajectory(method, max_iter=30_000):
    """U error at geometrically spaced iterations until the stopping rule."""
    W1 = W1_start.copy()
    W2 = W2_start.copy()
    if method in ("sync", "tied", "exact-sync"):
        W1[...] = W2.T                    # these start from tied weights
    step_alpha = alpha if method in gradient else None
    its, errs, mark = [], [], 1
    for it in range(1, max_iter + 1):
        stop = laefast.step(W1, W2, C, lam, method=method, alpha=step_alpha)
        if it >= mark or stop <= tol:
            its.append(it)
            errs.append(u_error(np.linalg.svd(W2, full_matrices=False)[0],
                                U_true))
            mark = max(it + 1, int(it * 1.05))
        if stop <= tol:
            break
    return np.array(its), np.array(errs)


# %%
# Iterations and seconds to the stopping rule
# -------------------------------------------
print(f"{'method':13s} {'iterations':>10s} {'seconds':>9s} {'U error':>9s}")
curves = {}
for method in laefast.METHODS:
    step_alpha = alpha if method in gradient else None
    t0 = time.perf_counter()
    res = laefast.solve(C, k, lam, method=method, alpha=step_alpha, tol=tol,
                        init=(W1_start, W2_start))
    seconds = time.perf_counter() - t0
    err = u_error(res.components.T, U_true)
    print(f"{method:13s} {res.n_iter:>10d} {seconds:>9.4f} {err:>9.1e}")
    curves[method] = trajectory(method)

# %%
# U error against iteration
# -------------------------
# The exact methods need hundreds of iterations where gradient descent
# needs tens of thousands. Each curve ends where its stopping rule held.
fig, ax = plt.subplots(figsize=(7, 4.5))
for method, (its, errs) in curves.items():
    ax.loglog(its, errs, "--" if method in gradient else "-", label=method)
ax.set_xlabel("iteration")
ax.set_ylabel("U error")
ax.set_title("the paper's default problem: m=10, n=10000, k=2, lam=50")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The variances come back from the weights
# ----------------------------------------
# At a minimum the decoder's singular values are sqrt(1 - lam / sigma_i^2),
# so the read-out recovers the singular values of X exactly.
res = laefast.solve(C, k, lam, method="exact-tied", init=(W1_start, W2_start))
print("read out :", res.singular_values)
print("SVD of X :", np.linalg.svd(X, compute_uv=False)[:k])
