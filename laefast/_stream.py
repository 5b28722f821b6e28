"""LAEStream: a scikit-learn estimator fitted from chunks of samples."""

import copy
import inspect

import numpy as np
import scipy.linalg

from . import _sgd
from ._api import solve
from ._accumulator import GramAccumulator
from ._driver import initial_weights, pca_settings, solve_pca
from ._estimator import ESTIMATOR_BASES
from ._exceptions import DivergenceError, NotFittedError
from .metrics import max_principal_sine
from ._params import check_params, sklearn_constraints
from ._parallel import resolve_threads, serial_blas, serialized
from ._problem import GramProblem
from ._readout import LAEResult, flip_signs
from ._subspace import ritz_pairs
from ._validation import (as_float_array, assert_finite, check_chunk,
                          reject_sparse)

__all__ = ["LAEStream"]

# What partial_fit keeps besides the fitted attributes (fit drops it).
_STATE = ("_acc", "_warm", "_trace", "_scale")
# SGD: rows looked at for the step's scale, and the default cap on passes.
_SCALE_ROWS = 4096
_SGD_MAX_PASSES = 100
# SGD's convergence criterion: the largest principal sine between the
# decoder's span before and after a pass, at most this (tol=None).
_SGD_TOL = 1e-4
# SGD's automatic step: _ETA / (estimated top eigenvalue of C), decaying as
# 1 / (1 + _DECAY_PER_PASS * passes).
_ETA = 0.5
_DECAY_PER_PASS = 0.1


class LAEStream(*ESTIMATOR_BASES):
    """Principal components from a stream of (b, m) chunks of samples.

    An estimator in scikit-learn's sense (``fit``, ``partial_fit``,
    ``transform``, ``get_params``; ``clone`` works; parameters are checked
    when it is fitted, not in the constructor), with two ways to hold the
    stream:

    - ``mode='gram'``: one parallel pass over each chunk adds it to the
      running mean and centered Gram matrix (m x m, float64;
      :class:`laefast.GramAccumulator`), and every :meth:`partial_fit` ends
      with the solve :class:`LAEPCA` runs (Rayleigh-Ritz on the decoder's
      span, block Lanczos accelerated, started from the previous
      components): ``components_`` are exact whatever lam is.
    - ``mode='sgd'``: each chunk is swept once by minibatch SGD on
      L_sigma, holding only the weights (no m x m matrix), with a step
      chosen and decayed automatically.

    Parameters
    ----------
    n_components : int or None
        Components to keep.  None: min(rows of the first chunk, features),
        fixed by the first :meth:`partial_fit` (as IncrementalPCA).
    lam : 'auto' or float >= 0
        L2 penalty, in the units of the eigenvalues of C = Xc^T Xc over all
        the samples (the paper's convention, no 1/n).  'auto': LAEPCA's
        'auto' in 'gram' mode (just enough to keep the small systems
        definite; the read-out is exact whatever lam is); in 'sgd' mode
        1e-6 times the estimated top eigenvalue of C.
    mode : {'gram', 'sgd'}
    method : str or None
        'gram' mode: the solver ('auto', as LAEPCA, by default; or one of
        laefast.METHODS).  'sgd' mode: 'untied' (default) or 'tied'.
    alpha : float or None
        SGD's first step.  None: 1 / (c max(1, ||W1||_2^2, ||W2||_2^2) +
        lam), with c = n_samples_total times the larger of the top
        eigenvalue per sample and the 99th percentile of ||x_i - mean||^2 /
        batch_size, estimated on the first 4096 rows after dropping the
        rows whose squared distance to the median row is over 100 times the
        median one (a few outliers do not shrink the step).  The estimate
        is kept once 4096 rows have been looked at.
    decay : float or None
        SGD step t is alpha / (1 + decay t).  None: batch_size /
        n_samples_total: the step halves after one pass over the data and
        keeps falling as 1 / passes.
    batch_size : int
        Samples per SGD step.  Each step descends
        (n / b) ||X_B - W2 W1 X_B||^2 + lam (||W1||^2 + ||W2||^2), an
        unbiased estimate of L_sigma.
    n_samples_total : int or None
        n in the line above (SGD only).  None: the samples seen so far,
        which suits a stream seen once; for several passes over the same
        data, pass its size (:meth:`fit` does).
    tol : float or None
        'gram' mode: LAEPCA's tol.  'sgd' mode: ``converged_`` is True when
        the largest principal sine between the decoder's span before and
        after the last :meth:`partial_fit` call is at most tol (None: 1e-4);
        :meth:`fit` passes over X until then.
    max_iter : int or None
        'gram' mode: LAEPCA's max_iter.  'sgd' mode: the passes :meth:`fit`
        makes at most (None: 100).
    oversample : int
        'gram' mode: LAEPCA's extra latents.
    n_threads : int or None
        OpenMP threads for the chunk kernels (None: all, following
        OMP_NUM_THREADS).  Any thread count gives the same SGD result bit
        for bit; the Gram pass is reproducible for a given count.
    block_rows : int or None
        'sgd' mode: rows per parallel work item (None: 256).
    max_memory : int
        Bytes of a chunk converted at a time: chunks that are not float32
        or float64 arrays are cast in slabs of at most this size, and SGD
        reads memmaps in slabs of it.
    random_state : int, Generator or None
        The solver's or SGD's random start.

    Attributes
    ----------
    components_, explained_variance_, explained_variance_ratio_,
    singular_values_, noise_variance_, n_components_, mean_,
    n_samples_seen_, n_features_in_ : as :class:`LAEPCA` ('gram' mode,
        exact).  In 'sgd' mode, components_ is an orthonormal basis of the
        decoder's span ordered by Rayleigh-Ritz on the covariance of the
        last call's last chunk, whose Ritz values (per sample, ddof=1) are
        explained_variance_; the ratios divide them by the total variance
        of all the samples (kept exactly, one number).
    converged_, n_iter_ : 'gram': LAEPCA's.  'sgd': the criterion under tol,
        and SGD steps taken (n_steps_).
    stop_ : 'sgd' mode: the sine of the criterion (inf after one call).
    W1_, W2_ : the autoencoder's weights.
    lam_, alpha_ : lam and (SGD) the first step used.
    gram_ : 'gram' mode: the centered Gram matrix (float64).
    dtype_ : the stream's dtype (the first chunk's float type).

    A chunk that holds NaN or inf, has the wrong number of features, a
    dtype that cannot be cast safely to the stream's, or (SGD) values whose
    squares overflow, raises ValueError and leaves every attribute exactly
    as it was before that chunk, the step estimate included.

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((3000, 20)) * np.r_[6, 5, 4, np.ones(17)]
    >>> est = laefast.LAEStream(3)
    >>> for chunk in np.array_split(X, 6):
    ...     est = est.partial_fit(chunk)
    >>> est.components_.shape, est.transform(X[:4]).shape
    ((3, 20), (4, 3))
    >>> ref = laefast.LAEPCA(3).fit(X)
    >>> bool(np.allclose(est.explained_variance_, ref.explained_variance_))
    True
    """

    def __init__(self, n_components=None, lam="auto", *, mode="gram",
                 method=None, alpha=None, decay=None, batch_size=1024,
                 n_samples_total=None, tol=None, max_iter=None, oversample=10,
                 n_threads=None, block_rows=None, max_memory=256 << 20,
                 random_state=None):
        self.n_components = n_components
        self.lam = lam
        self.mode = mode
        self.method = method
        self.alpha = alpha
        self.decay = decay
        self.batch_size = batch_size
        self.n_samples_total = n_samples_total
        self.tol = tol
        self.max_iter = max_iter
        self.oversample = oversample
        self.n_threads = n_threads
        self.block_rows = block_rows
        self.max_memory = max_memory
        self.random_state = random_state

    # -- scikit-learn's protocol -----------------------------------------------
    # scikit-learn's declaration of the parameters, generated from
    # laefast._params' rules, which _settings applies.
    _parameter_constraints = sklearn_constraints("LAEStream")

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise NotFittedError(
                "This LAEStream instance is not fitted yet. Call 'fit' or "
                "'partial_fit' before using this estimator.")

    def _settings(self):
        """Every parameter checked (at fit time, as scikit-learn wants)
        against laefast._params' rules."""
        check_params("LAEStream", {name: getattr(self, name)
                                   for name in _PARAMETERS})
        method = self.method
        if self.mode == "sgd":
            method = "untied" if method is None else method
            if method not in ("untied", "tied"):
                raise ValueError(
                    f"sgd mode runs 'untied' or 'tied', got {method!r}")
        return {"method": method, "n_threads": resolve_threads(self.n_threads)}

    # -- fitting ---------------------------------------------------------------

    @serialized
    def fit(self, X, y=None):
        """Fit on X from scratch ('sgd': passes over X, as n_samples_total
        samples, until converged_ or max_iter passes).  y is ignored."""
        self._settings()
        reject_sparse(X)
        if _is_one_chunk(X):
            check_chunk(X, "X", min_rows=1)
        fresh = copy.copy(self)
        for name in list(fresh.__dict__):
            if name.endswith("_") or name in _STATE:
                del fresh.__dict__[name]
        if self.mode == "gram":
            fresh.partial_fit(X)
        else:
            X = _one_array(X)
            fresh.n_samples_total = (self.n_samples_total
                                     or (X.shape[0] if len(X.shape) == 2
                                         else None))
            passes = _SGD_MAX_PASSES if self.max_iter is None else self.max_iter
            for _ in range(max(passes, 1)):
                fresh.partial_fit(X)
                if fresh.converged_:
                    break
            fresh.n_samples_total = self.n_samples_total
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)
        return self

    @serialized
    def partial_fit(self, X, y=None, solve=True):
        """Take one chunk (an (b, m) array or memmap) or an iterable of them,
        then update the fitted attributes.

        Chunks are taken one at a time: a bad chunk in an iterable raises
        and leaves the chunks before it taken (and the fit updated to them).
        'gram' mode, as LAEPCA.partial_fit: ``solve=False`` only adds the
        chunks (the fitted attributes stay those of the last solve), and
        ``partial_fit(None)`` solves on everything added.  'sgd' mode always
        updates (its read-out is one product with the last chunk).
        """
        opts = self._settings()
        if X is None:
            if getattr(self, "n_samples_seen_", 0) == 0 or self.mode != "gram":
                raise ValueError(
                    "partial_fit(None) solves on the chunks added with "
                    "solve=False ('gram' mode), and none were added")
            self._update_fit(opts, None, None)
            return self
        reject_sparse(X)
        chunks = [X] if _is_one_chunk(X) else X
        before = getattr(self, "W2_", None)
        taken, last = 0, None
        try:
            for chunk in chunks:
                checked = self._take(chunk, opts)
                if checked is not None:
                    taken, last = taken + 1, checked
        finally:
            if taken and (solve or self.mode == "sgd"):
                self._update_fit(opts, last, before)
        return self

    def _check_chunk(self, chunk):
        """(X, the stream's dtype): laefast._validation's chunk check, and
        what the stream adds (enough features, a dtype it can cast)."""
        X, own = check_chunk(chunk, "X",
                             n_features=getattr(self, "n_features_in_", None),
                             owner="LAEStream")
        if self.n_components is not None and X.shape[1] < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} exceeds the "
                f"{X.shape[1]} features")
        dtype = getattr(self, "dtype_", None) or own
        if not np.can_cast(X.dtype, dtype, casting="safe"):
            raise ValueError(
                f"chunk dtype {X.dtype} cannot be cast safely to the stream's "
                f"{np.dtype(dtype)}")
        return X, np.dtype(dtype)

    def _block_rows(self):
        return self.block_rows if self.block_rows is not None else 256

    def _slabs(self, X, dtype, multiple=1):
        """Float-typed slabs of X of about max_memory bytes (views when X
        already has the dtype).  Slabs hold a whole multiple of `multiple`
        rows (at least one).  Finiteness is the caller's to check."""
        rows = max(self._block_rows(),
                   self.max_memory // max(1, X.shape[1] * dtype.itemsize))
        rows = max(multiple, rows - rows % multiple)
        for start in range(0, X.shape[0], rows):
            yield as_float_array(X[start:start + rows], "chunk", dtype)

    def _take(self, chunk, opts):
        """Add one chunk; every attribute changes only once it succeeded."""
        X, dtype = self._check_chunk(chunk)
        if X.shape[0] == 0:
            return None
        if getattr(self, "n_components_", None) is None:
            k = (self.n_components if self.n_components is not None
                 else min(X.shape[0], X.shape[1]))
        else:
            k = self.n_components_
        if self.mode == "gram":
            new = self._take_gram(X, opts)
        else:
            new = self._take_sgd(X, dtype, k, opts)
        new.update(n_features_in_=X.shape[1], dtype_=dtype, n_components_=k)
        self.__dict__.update(new)
        return X

    def _take_gram(self, X, opts):
        # One parallel pass per chunk (GramAccumulator) into a copy: the
        # accumulator replaces its arrays, so a shallow copy is a snapshot.
        acc = getattr(self, "_acc", None)
        acc = (copy.copy(acc) if acc is not None else
               GramAccumulator(n_threads=opts["n_threads"],
                               max_memory=self.max_memory))
        if type(X).__module__.split(".")[0] == "dask":
            # A Dask array: per-block accumulators on its workers, merged.
            from . import _dask
            acc.merge(_dask.accumulate(
                _dask._check(X, getattr(self, "n_features_in_", None))))
        else:
            acc.add(X)
        return {"_acc": acc, "n_samples_seen_": acc.n_samples_seen_,
                "mean_": acc.mean_, "gram_": acc.gram_}

    def _take_sgd(self, X, dtype, k, opts):
        # Pass 1 validates the whole chunk and takes its mean and spread,
        # before any state changes; pass 2 sweeps it in batches.  Slabs hold
        # whole batches, so a memmap read in slabs gives the same steps as
        # the same data in memory (up to the rounding of the mean).
        n_b, m = X.shape
        total = np.zeros(m)
        for slab in self._slabs(X, dtype):
            total += slab.sum(axis=0, dtype=np.float64)
            del slab            # before the next slab is read: one at a time
        if not np.isfinite(total).all():
            assert_finite(X, "chunk")
            raise ValueError("chunk has values too large to sum in float64")
        seen = getattr(self, "n_samples_seen_", 0)
        old_mean = getattr(self, "mean_", None)
        count = seen + n_b
        chunk_mean = total / n_b
        mean = chunk_mean if old_mean is None else \
            old_mean + (chunk_mean - old_mean) * (n_b / count)
        # The total variance (trace of the centered Gram matrix), merged
        # by Chan's formula: a few numbers, for explained_variance_ratio_.
        sq = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for slab in self._slabs(X, dtype):
                d = slab - chunk_mean
                sq += float(np.einsum("ij,ij->", d, d, dtype=np.float64))
        trace = getattr(self, "_trace", 0.0) + sq
        if old_mean is not None:
            delta = chunk_mean - old_mean
            with np.errstate(over="ignore", invalid="ignore"):
                trace += float(delta @ delta) * seen * n_b / count
        if not np.isfinite(trace):
            raise ValueError(
                "chunk has values whose squares overflow float64 (largest "
                f"|x| = {float(np.nanmax(np.abs(X))):.3g}); rescale the data")
        n_total = self.n_samples_total or count
        if getattr(self, "W2_", None) is None:
            W1, W2 = initial_weights(None, m, k, dtype, self.random_state)
            W2 = W2.astype(np.float64)
        else:
            W2 = self.W2_.astype(np.float64)
        scale = self._step_scale(X)
        lam = (1e-6 * n_total * scale["top"] if isinstance(self.lam, str)
               else float(self.lam))
        if self.alpha is not None:
            alpha = float(self.alpha)
        else:
            b = min(self.batch_size, n_total)
            c = n_total * max(scale["top"], scale["sq"] / b)
            # tied's gradient sums both of untied's: half the step.
            eta = _ETA / 2 if opts["method"] == "tied" else _ETA
            alpha = eta / (c + lam) if c + lam > 0 else 1.0
        decay = self.decay if self.decay is not None else (
            _DECAY_PER_PASS * self.batch_size / n_total)
        tied = opts["method"] == "tied"
        t0 = getattr(self, "n_steps_", 0)
        with serial_blas(opts["n_threads"]):
            W1, W2, steps = self._sweep(X, dtype, mean, W2, lam, alpha,
                                        decay, t0, n_total, tied,
                                        opts["n_threads"])
        if not (np.isfinite(W1).all() and np.isfinite(W2).all()):
            advice = ("lower it or pass alpha=None" if self.alpha is not None
                      else "pass a smaller alpha (does the chunk hold "
                      "outliers far beyond its first 4096 rows?)")
            raise DivergenceError(
                "minibatch SGD diverged: the weights stopped being finite. "
                f"The step alpha={alpha:g} is too large; {advice}.")
        return {"n_samples_seen_": count, "mean_": mean,
                "W1_": W1.astype(dtype), "W2_": W2.astype(dtype),
                "alpha_": alpha, "lam_": lam, "n_steps_": t0 + steps,
                "_trace": trace, "_scale": scale}

    def _sweep(self, X, dtype, mean, W2, lam, alpha, decay, t0, n_total,
               tied, n_threads):
        """One variance-reduced SGD sweep (SVRG) over the chunk.

        1. Restart: Rayleigh-Ritz of the chunk's covariance on span(W2)
           sets W2 = V diag(s), W1 = W2^T, the minimum of L_sigma inside
           that span (s_i = sqrt(1 - lam / theta_i), at least 0.1), as
           LAEPCA's rounds do.  That removes the slow rotation and balance
           modes of the untied weights; the span is unchanged.
        2. The anchor A = (W1, W2) and the chunk's full gradient G(A), from
           the products of the restart (no pass of its own).
        3. Minibatch steps W -= alpha_t (g_B(W) - g_B(A) + G(A)): unbiased,
           with a variance that vanishes as W nears A, so the iteration
           converges (linearly on a fixed data set) instead of stalling at
           a noise floor proportional to the step.
        The loss of a batch B is (n / |B|) ||X_B - X_B W1^T W2^T||^2 + lam
        (||W1||^2 + ||W2||^2), n = n_samples_total: an unbiased estimate of
        L_sigma.  'tied' keeps W1 = W2^T (only W2's gradient, summed).
        Steps 1 and 2 run here once per sweep; step 3 is compiled
        (laefast._sgd.svrg_sweep, n_threads OpenMP threads).
        """
        n_b = X.shape[0]
        Q = scipy.linalg.qr(W2, mode="economic", check_finite=False)[0]
        CQ = np.zeros_like(Q)
        for slab in self._slabs(X, dtype):
            Xc = slab - mean
            CQ += Xc.T @ (Xc @ Q)
            del slab, Xc
        CQ *= n_total / n_b
        V, CV, theta = ritz_pairs(np.asfortranarray(Q), np.asfortranarray(CQ),
                                  Q.shape[1])
        s = np.zeros_like(theta)
        live = theta > lam
        s[live] = np.sqrt(1.0 - lam / theta[live])
        s = np.clip(s, 0.1, 1.0)
        W2 = np.ascontiguousarray(V * s)
        W1 = np.ascontiguousarray(W2.T)
        A2 = W2.copy()
        # G(A) with C = (n / n_b) Xc^T Xc of the chunk: C A1^T = CV s.
        CA = CV * s
        G2 = 2.0 * (A2 @ (A2.T @ CA) - CA) + 2.0 * lam * A2
        G1 = np.ascontiguousarray(
            2.0 * ((A2.T @ A2) @ CA.T - CA.T) + 2.0 * lam * W1)
        # Step 3: one compiled call per slab (slabs hold whole batches).
        steps, b = 0, self.batch_size
        for slab in self._slabs(X, dtype, multiple=b):
            taken, status = _sgd.svrg_sweep(
                slab, mean, W1, W2, A2, G1, G2, lam, alpha, decay,
                t0 + steps, b, float(n_total), tied, n_threads,
                self._block_rows())
            steps += taken
            del slab
            if status == _sgd.NONFINITE:
                break           # the caller raises DivergenceError
        return W1, W2, steps

    def _step_scale(self, X):
        """The top eigenvalue per sample and a high quantile of ||x_i -
        mean||^2, from the first 4096 rows the stream looked at, after
        dropping outlying rows (squared distance to the median row over 100
        times the median): a few outliers do not change the step.  Returned,
        not stored: the caller keeps it only if the chunk is taken."""
        scale = dict(getattr(self, "_scale", {"rows": 0, "top": 0.0,
                                              "sq": 0.0}))
        if scale["rows"] >= _SCALE_ROWS:
            return scale
        rows = np.asarray(X[:_SCALE_ROWS - scale["rows"]], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            med = np.median(rows, axis=0)
            dist = np.einsum("ij,ij->i", rows - med, rows - med)
            typical = np.median(dist)
            keep = dist <= 100.0 * typical if typical > 0 else \
                np.ones(len(rows), bool)
            # Centered on the kept rows' own mean: the running mean moves
            # with the outliers.
            centered = rows[keep] - rows[keep].mean(axis=0)
            sq = np.einsum("ij,ij->i", centered, centered)
        if not np.isfinite(sq).all():
            raise ValueError(
                "chunk has values whose squares overflow float64; rescale "
                "the data")
        if sq.size == 0 or sq.max() == 0.0:
            raw = np.einsum("ij,ij->i", rows, rows)
            top = q = float(raw.max()) if raw.size else 0.0
        else:
            q = float(np.quantile(sq, 0.99))
            top = q
            if centered.shape[0] >= 2:
                # The top eigenvalue of the kept rows' second moment.
                w = min(centered.shape)
                G = centered.T @ centered if centered.shape[1] <= 512 \
                    else centered @ centered.T
                top = float(scipy.linalg.eigh(
                    G, eigvals_only=True, subset_by_index=[w - 1, w - 1]
                    if G.shape[0] == w else [G.shape[0] - 1, G.shape[0] - 1],
                    check_finite=False)[0]) / centered.shape[0]
        scale["top"] = max(scale["top"], top)
        scale["sq"] = max(scale["sq"], q)
        scale["rows"] += rows.shape[0]
        return scale

    def _update_fit(self, opts, last, before):
        """The fitted attributes from the state: LAEPCA's solve ('gram'), or
        the SGD decoder's span, rotated by Rayleigh-Ritz on the last chunk."""
        k = self.n_components_
        if self.mode == "gram":
            if self.n_samples_seen_ < max(2, k):
                return          # too few samples to solve for k components
            problem = GramProblem.from_accumulator(self._acc)
            settings = pca_settings(
                problem, k, self.dtype_, method=opts["method"] or "auto",
                lam=self.lam, alpha="auto", tol=self.tol,
                max_iter=self.max_iter, oversample=self.oversample,
                n_threads=self.n_threads, random_state=self.random_state)
            fitted = solve_pca(problem, settings, self.n_samples_seen_,
                               warm=getattr(self, "_warm", None))
            self._warm = fitted.warm
            self.__dict__.update(fitted.attributes)
            self.mean_ = self._acc.mean_
            return
        Q = scipy.linalg.qr(self.W2_.astype(np.float64), mode="economic",
                            check_finite=False)[0]
        CQ = np.zeros_like(Q)
        for slab in self._slabs(last, np.dtype(np.float64)):
            Xc = slab - self.mean_
            CQ += Xc.T @ (Xc @ Q)
            del slab, Xc
        V, _, theta = ritz_pairs(np.asfortranarray(Q), np.asfortranarray(CQ),
                                 k)
        ddof_n = max(last.shape[0] - 1, 1)
        explained = np.maximum(theta[:k], 0.0) / ddof_n
        total = self._trace / max(self.n_samples_seen_ - 1, 1)
        dtype = self.dtype_
        self.components_ = flip_signs(np.ascontiguousarray(V[:, :k].T)).astype(
            dtype)
        self.explained_variance_ = explained.astype(dtype)
        self.explained_variance_ratio_ = (explained / total if total > 0
                                          else np.zeros(k)).astype(dtype)
        self.singular_values_ = np.sqrt(
            explained * max(self.n_samples_seen_ - 1, 1)).astype(dtype)
        rest = min(self.n_samples_seen_, self.n_features_in_) - k
        self.noise_variance_ = (max(total - explained.sum(), 0.0) / rest
                                if rest > 0 else 0.0)
        self.stop_ = (np.inf if before is None else
                      max_principal_sine(self.W2_, before))
        tol = _SGD_TOL if self.tol is None else float(self.tol)
        self.converged_ = bool(self.stop_ <= tol)
        self.n_iter_ = self.n_steps_

    # -- using the fit ---------------------------------------------------------

    def transform(self, X):
        """Project X onto the components: (X - mean_) @ components_.T."""
        self._check_fitted()
        X, dtype = self._check_chunk(X)
        X = as_float_array(X, "X", self.components_.dtype)
        Z = (X - self.mean_.astype(X.dtype)) @ self.components_.T
        if not np.isfinite(Z).all():
            assert_finite(X, "X")
        return Z

    def inverse_transform(self, X):
        """Map projections back to feature space: X @ components_ + mean_."""
        self._check_fitted()
        Z = np.asarray(X)
        if Z.ndim != 2 or Z.shape[1] != self.components_.shape[0]:
            raise ValueError(
                f"X must have shape (n_samples, {self.components_.shape[0]}),"
                f" got {Z.shape}")
        return Z.astype(self.components_.dtype, copy=False) @ \
            self.components_ + self.mean_

    def solve(self, **kwargs):
        """The principal components of everything seen so far (LAEResult).

        Without arguments: the fitted attributes as an LAEResult (nothing
        is run again).  'gram' mode with keyword arguments: runs
        :func:`laefast.solve` on the centered Gram matrix with them (the
        method defaults to the stream's, or 'exact-tied'; lam to lam_).
        """
        if getattr(self, "n_samples_seen_", 0) == 0:
            raise ValueError("the stream has seen no samples yet")
        if self.mode == "gram" and kwargs:
            kwargs.setdefault("method", self.method or "exact-tied")
            # The solvers run in the stream's dtype, as for fit().
            result = solve(self.gram_.astype(self.dtype_, copy=False),
                           self.n_components_, self.lam_, **kwargs)
            result.mean = self.mean_
            return result
        eig = (self.explained_variance_.astype(np.float64)
               * max(self.n_samples_seen_ - 1, 1))
        return LAEResult(
            W1=self.W1_, W2=self.W2_, components=self.components_,
            singular_values=np.sqrt(eig).astype(self.dtype_),
            eigenvalues=eig.astype(self.dtype_),
            collapsed=eig == 0, n_iter=int(self.n_iter_),
            converged=bool(self.converged_),
            stop=float(getattr(self, "stop_", 0.0)),
            method=("sgd-" + (self.method or "untied") if self.mode == "sgd"
                    else self.method or "auto"),
            lam=float(self.lam_), alpha=self.alpha_,
            tol=float(self.tol or 0.0), mean=self.mean_,
            regularizer="sum", readout="svd")


# The constructor's parameters, checked by _settings.
_PARAMETERS = tuple(name for name in
                    inspect.signature(LAEStream.__init__).parameters
                    if name != "self")

# scikit-learn generates set_partial_fit_request for the solve option; there
# is no metadata to request, so it is removed (it would only be noise).
if "set_partial_fit_request" in LAEStream.__dict__:
    del LAEStream.set_partial_fit_request




def _one_array(chunk):
    """The chunk as an array: ndarrays, memmaps and array-likes with shape,
    dtype and row slicing (h5py, zarr, Dask: read slab by slab) as they
    are; anything else through np.asarray."""
    if isinstance(chunk, np.ndarray) or (
            hasattr(chunk, "shape") and hasattr(chunk, "dtype")
            and hasattr(chunk, "__getitem__") and len(chunk.shape) == 2):
        return chunk
    return np.asarray(chunk)


def _is_one_chunk(obj):
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return True
    if isinstance(obj, (list, tuple)):
        try:
            return np.asarray(obj).ndim == 2
        except ValueError:
            return False
    return False
