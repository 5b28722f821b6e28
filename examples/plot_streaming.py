"""
Streaming and out-of-core data
==============================

When the samples arrive in chunks, or live in a file larger than memory,
:class:`laefast.LAEPCA` keeps only the running mean and the centered
``m x m`` Gram matrix: :meth:`~laefast.LAEPCA.partial_fit` adds a chunk
(one OpenMP ``syrk`` pass) and refits from the previous weights, and
``batch_size`` makes :meth:`~laefast.LAEPCA.fit` read an array, such as a
:class:`numpy.memmap`, a slab at a time. Because the Gram matrix of the
chunks is exact, the result after the last chunk is the result of fitting
everything at once, unlike an incremental SVD.
"""

# %%
import os
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import IncrementalPCA

import laefast
from laefast.metrics import max_principal_sine

rng = np.random.default_rng(0)
n, m, k = 40_000, 120, 8
basis = np.linalg.qr(rng.standard_normal((m, k)))[0]

# %%
# A data set on disk
# ------------------
# Written once to a file and opened as a read-only memmap: nothing below
# holds all of it in memory at once except the in-memory reference fit.
folder = tempfile.mkdtemp()
path = os.path.join(folder, "samples.f64")
mm = np.memmap(path, dtype=np.float64, mode="w+", shape=(n, m))
for start in range(0, n, 10_000):
    rows = min(10_000, n - start)
    block = (rng.standard_normal((rows, k)) * np.linspace(5, 2, k)) @ basis.T
    mm[start:start + rows] = block + rng.standard_normal((rows, m)) + 1.0
mm.flush()
data = np.memmap(path, dtype=np.float64, mode="r", shape=(n, m))
print(f"{n} x {m} float64 on disk: {os.path.getsize(path) / 2**20:.1f} MiB")

# %%
# One fit from the memmap, in slabs
# ---------------------------------
t0 = time.perf_counter()
slabs = laefast.LAEPCA(k, batch_size=5_000, random_state=0).fit(data)
t_slabs = time.perf_counter() - t0

t0 = time.perf_counter()
whole = laefast.LAEPCA(k, random_state=0).fit(np.asarray(data))
t_whole = time.perf_counter() - t0
print(f"fit(memmap, batch_size=5000): {t_slabs:.3f} s; "
      f"fit(in memory): {t_whole:.3f} s")
print("largest principal-angle sine between the two:",
      max_principal_sine(slabs.components_.T, whole.components_.T))
print("variances agree to:",
      np.abs(slabs.explained_variance_ / whole.explained_variance_ - 1).max())

# %%
# partial_fit over chunks, against IncrementalPCA
# -----------------------------------------------
# After each chunk, how far is each estimator from the final answer?
chunks = np.array_split(np.arange(n), 10)
lae = laefast.LAEPCA(k, random_state=0)
ipca = IncrementalPCA(k)
seen, err_lae, err_ipca, t_lae, t_ipca = [], [], [], 0.0, 0.0
for idx in chunks:
    chunk = np.asarray(data[idx[0]:idx[-1] + 1])
    t0 = time.perf_counter()
    lae.partial_fit(chunk)
    t_lae += time.perf_counter() - t0
    t0 = time.perf_counter()
    ipca.partial_fit(chunk)
    t_ipca += time.perf_counter() - t0
    seen.append(lae.n_samples_seen_)
    err_lae.append(max_principal_sine(lae.components_.T, whole.components_.T))
    err_ipca.append(max_principal_sine(ipca.components_.T,
                                       whole.components_.T))
print(f"10 partial_fit calls: LAEPCA {t_lae:.3f} s, "
      f"IncrementalPCA {t_ipca:.3f} s")
print(f"final sine vs the in-memory fit: LAEPCA {err_lae[-1]:.1e}, "
      f"IncrementalPCA {err_ipca[-1]:.1e}")

fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogy(seen, np.maximum(err_lae, 1e-16), "o-", label="LAEPCA.partial_fit")
ax.semilogy(seen, np.maximum(err_ipca, 1e-16), "s-",
            label="IncrementalPCA.partial_fit")
ax.set_xlabel("samples seen")
ax.set_ylabel("sine to the fit on all samples")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

del data, mm
os.remove(path)
os.rmdir(folder)
