"""
Threads and scaling
===================

laefast uses two kinds of threads. BLAS (SciPy's OpenBLAS) threads every
matrix product of the solvers; limit it with
:func:`threadpoolctl.threadpool_limits`. laefast's own OpenMP regions run
the streaming Gram pass (``partial_fit``, ``batch_size``) and the ``k``
independent Cholesky solves of the exact-untied encoder step; their thread
count is ``n_threads`` (``None``: all cores, following ``OMP_NUM_THREADS``),
and BLAS is kept to one thread inside them.

Here we time both OpenMP paths for ``n_threads`` from 1 to the number of
cores of the machine that built this page. On a machine with few cores,
or one shared with other work, the speedup is bounded by what the cores can
give.
"""

# %%
import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

import laefast

cores = os.cpu_count() or 1
threads = sorted({1, 2, 4, 8, 16, cores} & set(range(1, cores + 1)))
print("cores:", cores, "| OpenMP build:", laefast.openmp_enabled(),
      "| threads tried:", threads)

rng = np.random.default_rng(0)
n, m = 30_000, 250
basis = np.linalg.qr(rng.standard_normal((m, 5)))[0]
X = (rng.standard_normal((n, 5)) * [9, 8, 7, 6, 5]) @ basis.T
X += rng.standard_normal((n, m))
C = laefast.gram_matrix(X)[0]
lam = 1e-3 * np.trace(C) / m


def best(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# %%
# Time per thread count
# ---------------------
# ``batch_size`` makes ``fit`` take the streaming path: one OpenMP pass
# accumulates the Gram matrix, then the solver runs on it. Three
# exact-untied iterations are timed without their stopping rule (tol=0),
# so they warn that they did not converge, which is expected here.
gram_pass, cholesky = [], []
with warnings.catch_warnings():
    warnings.simplefilter("ignore", laefast.ConvergenceWarning)
    for t in threads:
        gram_pass.append(best(lambda: laefast.LAEPCA(
            5, batch_size=10_000, n_threads=t, random_state=0).fit(X)))
        cholesky.append(best(lambda: laefast.solve(
            C, 8, lam, method="exact-untied", max_iter=3, tol=0.0,
            n_threads=t, random_state=0)))
for t, a, b in zip(threads, gram_pass, cholesky):
    print(f"n_threads={t:2d}: fit(batch_size=10000) {a:.3f} s, "
          f"3 exact-untied iterations {b:.3f} s")

# %%
# Speedup over one thread
# -----------------------
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(threads, gram_pass[0] / np.array(gram_pass), "o-",
        label="fit(batch_size=...): streaming Gram pass")
ax.plot(threads, cholesky[0] / np.array(cholesky), "s-",
        label="exact-untied: k Cholesky solves")
ax.plot(threads, threads, ":", color="gray", label="ideal")
ax.set_xlabel("n_threads")
ax.set_ylabel("speedup over n_threads=1")
ax.set_xticks(threads)
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()
