"""
Quick start
===========

Fit :class:`laefast.LAEPCA` like scikit-learn's ``PCA``, check it against
NumPy's SVD, and look at the trained autoencoder it keeps.
"""

# %%
# Data with a few strong directions
# ---------------------------------
# 2000 samples of 40 features: five directions with large variance over
# isotropic noise.
import matplotlib.pyplot as plt
import numpy as np

import laefast

rng = np.random.default_rng(0)
n, m, k = 2000, 40, 5
basis = np.linalg.qr(rng.standard_normal((m, k)))[0]
X = (rng.standard_normal((n, k)) * [8.0, 6.0, 5.0, 4.0, 3.0]) @ basis.T
X += rng.standard_normal((n, m)) + 3.0          # noise and an offset

# %%
# Fit and transform
# -----------------
# Nothing to tune: ``lam``, the step and the stopping rule are chosen from
# the data.
pca = laefast.LAEPCA(n_components=k, random_state=0).fit(X)
Z = pca.transform(X)
print("projection:", Z.shape)
print("explained variance ratio:", np.round(pca.explained_variance_ratio_, 4))
print("iterations:", pca.n_iter_, "converged:", pca.converged_)

# %%
# Against the SVD
# ---------------
# The principal directions are the right singular vectors of the centered
# data; up to sign they match to rounding.
Xc = X - X.mean(axis=0)
_, s, Vt = np.linalg.svd(Xc, full_matrices=False)
signs = np.sign(np.sum(pca.components_ * Vt[:k], axis=1))
print("max |direction error|:",
      np.abs(pca.components_ - signs[:, None] * Vt[:k]).max())
print("max relative variance error:",
      np.abs(pca.explained_variance_ / (s[:k] ** 2 / (n - 1)) - 1).max())
print("largest principal-angle sine:",
      laefast.metrics.max_principal_sine(pca.components_.T, Vt[:k].T))

# %%
# The trained autoencoder
# -----------------------
# ``W1_`` (encoder) and ``W2_`` (decoder) minimize the regularized loss. The
# left singular vectors of the decoder are the principal directions, and its
# singular values are ``sqrt(1 - lam / sigma_i^2)``, with ``sigma_i^2`` the
# eigenvalues of the centered Gram matrix. ``lam='auto'`` picks a penalty far
# below every component, so these are all just under 1.
sv = np.linalg.svd(pca.W2_, compute_uv=False)
sigma2 = s[:k] ** 2
print("lam_:", pca.lam_)
print("1 - decoder singular values^2:", 1 - sv ** 2)
print("lam / sigma_i^2              :", pca.lam_ / sigma2)
print("encoder = decoder^T:", np.allclose(pca.W1_, pca.W2_.T))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(np.arange(1, k + 1) - 0.2, pca.explained_variance_, width=0.4,
       label="LAEPCA")
ax.bar(np.arange(1, k + 1) + 0.2, s[:k] ** 2 / (n - 1), width=0.4,
       label="SVD of the centered data")
ax.set_xlabel("component")
ax.set_ylabel("explained variance")
ax.legend()
fig.tight_layout()
plt.show()
