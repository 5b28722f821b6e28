"""
laefast as a backend from another library
=========================================

Another library can use laefast at three levels: as a scikit-learn
estimator inside its pipelines, as a solver on a Gram matrix it already
has, and as single compiled steps inside its own training loop.
"""

# %%
# A PCA step in a scikit-learn pipeline
# -------------------------------------
# :class:`laefast.LAEPCA` follows scikit-learn's estimator conventions, so
# it composes with pipelines and grid searches.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import laefast

X, y = load_digits(return_X_y=True)
pipe = make_pipeline(StandardScaler(), laefast.LAEPCA(random_state=0),
                     LogisticRegression(max_iter=300))
search = GridSearchCV(pipe, {"laepca__n_components": [8, 16, 32]}, cv=3)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")      # lbfgs may stop at max_iter
    search.fit(X, y)
for n_comp, score in zip(search.cv_results_["param_laepca__n_components"],
                         search.cv_results_["mean_test_score"]):
    print(f"n_components={n_comp:2d}: accuracy {score:.3f}")


# %%
# A solver on the library's own Gram matrix
# -----------------------------------------
# Suppose a library keeps a covariance matrix up to date itself (here, of
# the digits). :func:`laefast.solve` takes it as it is (float32 or float64,
# C or Fortran order, read-only) and returns an :class:`laefast.LAEResult`
# with the trained autoencoder and its read-out. ``lam`` is in the units of
# C's eigenvalues: with the exact methods the rotation towards the
# individual directions contracts at about ``|1 - 2 lam / sigma_i^2|`` per
# iteration, so a penalty around a thousandth of the trace (well below the
# kept eigenvalues, but not vanishingly small) converges in a few hundred
# iterations. (:class:`laefast.LAEPCA` needs no such choice: it reads the
# directions out by Rayleigh-Ritz.)
class CovarianceModel:
    """A stand-in for another library's model that owns a Gram matrix."""

    def __init__(self, X):
        self.mean = X.mean(axis=0)
        Xc = X - self.mean
        self.gram = Xc.T @ Xc
        self.gram.setflags(write=False)

    def principal_directions(self, k):
        lam = 1e-3 * np.trace(self.gram)
        result = laefast.solve(self.gram, k, lam, method="exact-tied",
                               random_state=0)
        print(f"exact-tied: {result.n_iter} iterations, "
              f"converged={result.converged}")
        return result.components, result.eigenvalues


model = CovarianceModel(X)
directions, eigenvalues = model.principal_directions(4)
exact = np.linalg.eigvalsh(model.gram)[::-1][:4]
print("eigenvalues, laefast:", np.round(eigenvalues, 1))
print("eigenvalues, eigh   :", np.round(exact, 1))


# %%
# Compiled steps in the library's own loop
# ----------------------------------------
# :func:`laefast.step` updates the encoder ``W1`` (k x m) and the decoder
# ``W2`` (m x k) in place and returns the method's stopping quantity, so the
# caller keeps control: here it records the objective, stops on its own
# rule, and finishes with the exact minimizers :func:`laefast.exact_w1` and
# :func:`laefast.exact_w2`.
C = np.ascontiguousarray(model.gram)
k, lam = 4, 1e-3 * np.trace(C)
rng = np.random.default_rng(0)
W2 = np.ascontiguousarray(0.01 * rng.standard_normal((C.shape[0], k)))
W1 = W2.T.copy()                      # separate memory: step writes both
alpha = laefast.default_alpha(C, lam, W1, W2)
losses = []
for it in range(3000):
    gap = laefast.step(W1, W2, C, lam, method="untied", alpha=alpha)
    if it % 20 == 0:
        losses.append(laefast.metrics.objective(C, W1, W2, lam))
        if len(losses) > 1 and losses[-2] - losses[-1] < 1e-6 * losses[-1]:
            break                        # the library's own stopping rule
W1 = laefast.exact_w1(C, W2, lam)
W2 = laefast.exact_w2(C, W1, lam)
print(f"stopped after {it + 1} gradient steps; objective "
      f"{losses[-1]:.6g} -> {laefast.metrics.objective(C, W1, W2, lam):.6g} "
      "after one exact step")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(len(losses)) * 20, losses)
ax.set_xlabel("gradient step")
ax.set_ylabel("objective L_sigma")
ax.set_title("a caller's own loop over laefast.step")
fig.tight_layout()
plt.show()
