"""LAEPCA: a scikit-learn-compatible PCA estimator trained as an LAE.

No tuning: lam, alpha and the solver are chosen from the data, and the
principal directions and variances are read out exactly (Rayleigh-Ritz on
the decoder's span, docs/theory.md) whatever lam is.  When scikit-learn is
importable, LAEPCA derives from its BaseEstimator, TransformerMixin and
ClassNamePrefixFeaturesOutMixin and validates input with its validate_data
(feature names, set_output, the HTML repr, metadata routing); without it,
small fallback bases follow the same conventions by hand.
"""

import collections.abc
import copy
import inspect
import numbers

import numpy as np
import scipy.linalg

from ._accumulator import GramAccumulator
from ._driver import PCAFit, pca_settings, solve_pca
from ._exceptions import NotFittedError
from ._params import check_params, sklearn_constraints
from ._parallel import resolve_threads, serialized
from ._problem import GramProblem, choose_path
from ._validation import (check_array, check_chunk, check_gram,
                          check_n_features, raise_nonfinite, reject_sparse)

__all__ = ["LAEPCA", "NotFittedError"]

try:
    from sklearn.base import (BaseEstimator, ClassNamePrefixFeaturesOutMixin,
                              TransformerMixin)
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:         # scikit-learn is optional
    _SKLEARN = False
else:
    _SKLEARN = True


class _FallbackBase:
    """get_params, set_params, repr and output names without scikit-learn
    (with it, LAEPCA takes them from scikit-learn's bases)."""

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._param_names()}

    @classmethod
    def _param_names(cls):
        import inspect
        return sorted(p.name for p in
                      inspect.signature(cls.__init__).parameters.values()
                      if p.name != "self")

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {self!r}. "
                    f"Valid parameters are: {valid}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = type(self)().get_params()
        changed = [f"{name}={value!r}"
                   for name, value in self.get_params().items()
                   if not _same(value, defaults[name])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def get_feature_names_out(self, input_features=None):
        """Output names 'laepca0', 'laepca1', ... (scikit-learn's style)."""
        self._check_fitted()
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)],
                          dtype=object)


class _LAEProtocol:
    """What laefast's estimators (LAEPCA, LAEStream) tell scikit-learn
    alike: float32 and float64 are kept, fitted means components_, and
    partial_fit's `solve` is an option, not metadata to route.  First in
    the bases, ahead of scikit-learn's mixins, as its MRO wants."""

    __metadata_request__partial_fit = {"solve": "$UNUSED$"}

    def __sklearn_tags__(self):
        # Only reached when scikit-learn itself asks.
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "components_")


# The bases of laefast's estimators (LAEPCA, LAEStream): scikit-learn's
# when it is installed, else a small stand-in with the same protocol.
ESTIMATOR_BASES = (_LAEProtocol,) + (
    (ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator)
    if _SKLEARN else (_FallbackBase,))


class LAEPCA(*ESTIMATOR_BASES):
    """Principal component analysis by a trained L2-regularized linear autoencoder.

    A drop-in for :class:`sklearn.decomposition.PCA` (same fitted attributes,
    same ``transform``), fitted by the LAE solvers of :func:`laefast.solve`.

    Parameters
    ----------
    n_components : int, float in (0, 1), 'mle' or None
        Components to keep; None keeps min(n_samples, n_features).  A float
        keeps the fewest components whose explained-variance ratio sums to
        more than it (as scikit-learn's PCA): the ratios are exact, over the
        trace of C, and the solver is rerun with twice as many components
        until enough are found.  'mle' picks the count by Minka's MLE (as
        scikit-learn's PCA); it needs every eigenvalue of C, so it forms C
        (the Gram path, whatever the shape) and takes them by one dense
        symmetric eigenvalue solve (no vectors) before the solver runs.  It
        needs n_samples >= n_features.
    method : str
        'auto' or one of laefast.METHODS.  exact-tied's W2 update spans
        C W2: one step is one product with C (block power iteration).
        'auto' runs exact-tied accelerated by block Lanczos: from a block
        of 4 directions, each step multiplies the newest block by C and
        keeps every step's span, and Rayleigh-Ritz picks the best k + p
        directions of the whole span (restarting thick, from them, when
        the span grows past about 128 columns).  A product with 4 columns
        costs about as much as one with 1 on the samples (both are one
        pass over X), and the deep span needs far fewer products than the
        plain iteration, or than wide blocks, when eigenvalues are close.
        On C, when the measured rate says a dense
        eigensolver is cheaper (no eigengap, or m small against k + p), it
        takes the closed-form minimum of L_sigma from
        ``scipy.linalg.eigh(C, subset_by_index=...)`` instead: by the
        paper's theorem the LAE's global minimum.  The six methods run in
        rounds of compiled iterations whose lengths follow the measured
        rate of convergence.  Where the data live is chosen from the shape:

        ====================================  ================================
        situation                             path
        ====================================  ================================
        ``partial_fit``, or ``batch_size``    each batch is added to the
                                              centered Gram matrix by one
                                              parallel pass
                                              (:class:`GramAccumulator`)
        C (m x m) cheaper than the samples    form C once the same way,
                                              iterate on C
        otherwise, or C would exceed 2 GiB    iterate on the samples, never
                                              forming C: each product is one
                                              parallel pass over X with the
                                              centering fused in
        ====================================  ================================

        C is accumulated and solved in float64 whatever X's dtype (float32
        results are rounded at the end), so float32 data give components as
        accurate as their own rounding allows.
    lam : 'auto' or float >= 0
        L2 penalty, in units of the eigenvalues of C = Xc^T Xc (no 1/n).
        'auto': 10 (k + p) eps times an upper bound on the top eigenvalue
        of C (k + p latents; eps of the dtype the solver computes in:
        float64 for method='auto', whose products are float64 even on
        float32 data, X's dtype for the kernel methods on data): just
        enough to keep the k x k systems positive definite, far below
        every component that the dtype can resolve, so none collapses.
        Directions and variances do not depend on lam (the read-out is
        exact); a lam at or above a kept component's eigenvalue collapses
        it (CollapsedComponentWarning, its variance reported as 0).
    alpha : 'auto' or float > 0
        Step of the gradient methods.  'auto': laefast.default_alpha's step
        1 / (3 c r^2 + lam), re-derived before every round of iterations as
        the weights grow.  Ignored by the exact methods.
    tol : finite float >= 0, or None
        Stop when every kept Ritz pair (theta_i, y_i) has
        ||C y_i - theta_i y_i|| <= tol * theta_1.  None: 'auto' iterates
        until the residual stops falling (rounding) and reports convergence
        below 1e-10; the six methods stop at 1e-10 (1e-4 when they run in
        float32, on float32 samples).
    max_iter : int or None
        Cap on solver iterations (None: 100000); reaching it warns with
        ConvergenceWarning and the residual reached.
    batch_size : int or None
        Fit from X in chunks of this many rows (for memmaps larger than
        memory); None reads X at once.
    oversample : int
        Extra latents trained beside the kept ones (capped at m - k); they
        speed up convergence when the eigengap is small.
    n_threads : int or None
        OpenMP threads for the Gram pass, the products with the samples and
        exact-untied's solves (None: all cores).
    random_state : int, Generator or None
        The solver's random start.
    verbose : int
        1 prints progress (iteration, L_sigma, residual, seconds) to stderr
        at most once a second; 0 prints nothing.
    whiten : bool
        transform divides each projection by sqrt(explained_variance_) (each
        at least eps), so the outputs have unit variance; inverse_transform
        undoes it (as scikit-learn's PCA).  The probabilistic model
        (get_covariance, score) does not depend on it: with whiten=True
        scikit-learn's PCA scales its components by sqrt(explained
        variance) there, so its get_covariance is no longer the data's
        covariance (for n_components = n_features it returns V^T diag(ev^2)
        V); LAEPCA's still is.
    copy : bool
        Accepted for scikit-learn's PCA's signature.  LAEPCA never writes to
        X (it centers inside its products), so X is left as it was whatever
        copy is; scikit-learn's PCA with copy=False may overwrite X.

    Sparse input is rejected with TypeError: densify it (``X.toarray()``),
    feed dense row blocks to :meth:`partial_fit`, or use
    :class:`sklearn.decomposition.TruncatedSVD`, which does not center.

    Attributes
    ----------
    components_ : (n_components, n_features) principal axes, by decreasing
        variance, each row's largest-magnitude entry positive.
    explained_variance_ : variances (ddof=1) along them.
    explained_variance_ratio_, singular_values_, mean_, n_components_,
    n_features_in_, n_samples_seen_, noise_variance_ : as in scikit-learn.
    n_iter_, converged_ : solver iterations (for 'auto', exact-tied steps:
        products with C) and whether tol was met.
    W1_, W2_ : the autoencoder (k x m, m x k) at the minimum of L_sigma in
        the learned span: W2_ = components_^T (I - lam / eig)^(1/2), W1_ =
        W2_^T (docs/theory.md).
    lam_, alpha_ : the lam and (gradient methods) step used.
    feature_names_in_ : the columns of a DataFrame passed to fit (with
        scikit-learn installed).

    Examples
    --------
    >>> import numpy as np
    >>> import laefast
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((500, 8)) * [5, 4, 3, 1, 1, 1, 1, 1]
    >>> est = laefast.LAEPCA(0.8, whiten=True).fit(X)
    >>> int(est.n_components_), bool(est.explained_variance_ratio_.sum() > 0.8)
    (3, True)
    >>> Z = est.transform(X)
    >>> bool(np.allclose(Z.var(axis=0, ddof=1), 1.0))
    True
    """

    def __init__(self, n_components=None, *, method="auto", lam="auto",
                 alpha="auto", tol=None, max_iter=None, batch_size=None,
                 oversample=10, n_threads=None, random_state=None, verbose=0,
                 whiten=False, copy=True):
        self.n_components = n_components
        self.method = method
        self.lam = lam
        self.alpha = alpha
        self.tol = tol
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.oversample = oversample
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self.whiten = whiten
        self.copy = copy

    # -- scikit-learn's estimator protocol ------------------------------------

    # scikit-learn's declaration of the parameters, for its own checks:
    # generated from laefast._params' rules, which _check_params applies
    # (with or without scikit-learn).
    _parameter_constraints = sklearn_constraints("LAEPCA")

    @property
    def _n_features_out(self):
        """Output width (scikit-learn's ClassNamePrefixFeaturesOutMixin)."""
        return self.n_components_

    def _check_params(self, reset=False):
        """Every parameter against laefast._params' rules (the same with
        or without scikit-learn).  reset (fit): a fit whose input carries
        no names (a Dask array) drops those of the previous fit; _validate
        sets them for the X it checks."""
        check_params("LAEPCA", {name: getattr(self, name)
                                for name in _PARAMETERS})
        if reset:
            self._pending_names = None
        else:
            self.__dict__.pop("_pending_names", None)

    # -- fitting ---------------------------------------------------------------

    @serialized
    def fit(self, X, y=None):
        """Fit on X of shape (n_samples, n_features); y is ignored.

        X may be a NumPy array, a memmap or, with ``batch_size``, any 2-D
        array-like with ``shape``, ``dtype`` and row slicing (h5py, zarr):
        it is then read once, ``batch_size`` rows at a time, each slab
        converted and checked on its own.  A 2-D ``dask.array`` is fitted
        on its workers (laefast._dask): no block is gathered.
        """
        self._check_params(reset=True)
        if _is_dask(X):
            from . import _dask
            return _dask.fit(self, X)
        self._fit(self._validate(X, reset=True))
        return self

    @serialized
    def fit_transform(self, X, y=None):
        """Fit on X and return its projection (n_samples, n_components).

        A Dask array gives a lazy Dask array; an out-of-core array-like
        (with ``batch_size``) is projected slab by slab."""
        self._check_params(reset=True)
        if _is_dask(X):
            return self.fit(X).transform(X)
        X = self._validate(X, reset=True)
        self._fit(X)
        if not isinstance(X, np.ndarray) or X.dtype.kind != "f":
            return self._project_slabs(X)
        return self._project(X)

    @serialized
    def fit_gram(self, C, mean=None, n_samples=None):
        """Fit from a centered Gram matrix gathered elsewhere.

        Parameters
        ----------
        C : array (n_features, n_features) or GramAccumulator
            The paper's C = sum_i (x_i - mean)(x_i - mean)^T over the
            samples: centered, no 1/n (``GramAccumulator.gram_``).  A
            :class:`laefast.GramAccumulator` (for instance merged from
            those of other processes) gives C, mean and n_samples itself.
        mean : array (n_features,)
            The samples' mean (ignored for an accumulator).
        n_samples : int >= 2
            How many samples C sums over (ignored for an accumulator).

        Returns
        -------
        self : LAEPCA
            Fitted as by :meth:`fit` on those samples, in float64 (in
            float32 for an accumulator of float32 data).  The accumulator
            is copied and kept: :meth:`partial_fit` adds to it.

        Raises
        ------
        ValueError
            C not square, symmetric and finite; mean of the wrong shape or
            not finite; n_samples below 2.  The model is then unchanged.

        Examples
        --------
        >>> import numpy as np
        >>> from laefast import GramAccumulator, LAEPCA
        >>> X = np.random.default_rng(0).standard_normal((500, 6))
        >>> acc = GramAccumulator().add(X[:200]).merge(
        ...     GramAccumulator().add(X[200:]))
        >>> a = LAEPCA(2).fit_gram(acc.gram_, acc.mean_, acc.n_samples_seen_)
        >>> b = LAEPCA(2).fit(X)
        >>> bool(np.allclose(a.components_, b.components_))
        True
        """
        # A Gram matrix carries no feature names: a previous fit's go.
        self._check_params(reset=True)
        if isinstance(C, GramAccumulator):
            if C.n_samples_seen_ < 2:
                raise ValueError(
                    "LAEPCA needs at least 2 samples to estimate variances, "
                    f"got n_samples = {C.n_samples_seen_}")
            if not C.center:
                raise ValueError("fit_gram needs a centered accumulator "
                                 "(center=True)")
            acc = copy.copy(C)          # its own lock (__setstate__)
        else:
            C = check_gram(C)
            m = C.shape[0]
            mean = np.asarray(mean, dtype=np.float64) if mean is not None \
                else None
            if mean is None or mean.shape != (m,) or \
                    not np.isfinite(mean).all():
                raise ValueError(
                    f"mean must be a finite array of shape ({m},), got "
                    f"{None if mean is None else mean.shape}")
            if (not isinstance(n_samples, numbers.Integral)
                    or isinstance(n_samples, bool) or n_samples < 2):
                raise ValueError(
                    "n_samples must be an integer >= 2 (LAEPCA needs at "
                    f"least 2 samples to estimate variances), got "
                    f"{n_samples!r}")
            acc = GramAccumulator(n_threads=self.n_threads)
            acc.n_samples_seen_, acc.n_features_in_ = int(n_samples), m
            acc.mean_ = mean.copy()
            acc.gram_ = np.array(C, dtype=np.float64)
            acc.dtype_ = np.dtype(np.float64)
        self._solve_accumulator(acc, acc.dtype_ or np.dtype(np.float64))
        return self

    def _solve_accumulator(self, acc, dtype, keep_width=False):
        problem = GramProblem.from_accumulator(acc)
        warm = getattr(self, "_warm", None)
        if keep_width and self.n_components is None and \
                hasattr(self, "n_components_"):
            # partial_fit, as IncrementalPCA: the first solve fixes the width.
            fitted = self._solve_count(problem, acc.n_samples_seen_, dtype,
                                       warm, self.n_components_)
        else:
            fitted = self._solve_counted(problem, acc.n_samples_seen_, dtype,
                                         warm=warm)
        self._acc = acc
        if keep_width and "_acc_names" in self.__dict__:
            # partial_fit's first solve: the names of its first batch.
            self._pending_names = self._acc_names
        self._set_fitted(fitted, acc.mean_, acc.n_samples_seen_,
                         acc.n_features_in_)

    def _accumulator_to_extend(self):
        """The GramAccumulator partial_fit adds to (None before the first
        batch).  A fit on the samples kept none: there is nothing to add
        to."""
        acc = getattr(self, "_acc", None)
        if acc is None and hasattr(self, "components_"):
            raise ValueError(
                "this LAEPCA was fitted on the samples without forming the "
                "Gram matrix (too large to keep), so partial_fit cannot add "
                "to it; refit, or use partial_fit from the start")
        return acc

    @serialized
    def partial_fit(self, X, y=None, solve=True):
        """Add a batch of samples and refit on everything seen so far.

        The running count, mean and centered Gram matrix are kept in a
        :class:`laefast.GramAccumulator` (:meth:`fit` keeps them too,
        unless it iterated on the samples without forming C), and the
        solver restarts from the previous components.  Batches after the
        first are cast to the model's dtype.  A bad batch raises
        ValueError and changes nothing.

        ``solve=False`` only adds the batch: the fitted attributes stay
        those of the last solve (or absent) until a call with solve=True;
        ``partial_fit(None)`` solves on what was added without adding rows.
        A Dask array is added block by block on its workers.
        With n_components=None the first solve fixes the count, min(its
        rows, n_features), as IncrementalPCA does; a float or 'mle' chooses
        it again each time.
        """
        self._check_params()
        if X is None:
            acc = getattr(self, "_acc", None)
            if acc is None or acc.n_samples_seen_ < 2:
                raise ValueError(
                    "partial_fit(None) solves on the batches added with "
                    "solve=False, and fewer than 2 samples were added")
            if solve:
                dtype = (self.components_.dtype
                         if hasattr(self, "components_") else acc.dtype_)
                self._solve_accumulator(acc, dtype, keep_width=True)
            return self
        if _is_dask(X):
            from . import _dask
            return _dask.partial_fit(self, X, solve)
        if isinstance(X, collections.abc.Iterator):
            raise TypeError(
                f"partial_fit takes one batch, an array of shape (n_samples, "
                f"n_features); got an iterator ({type(X).__name__}): call "
                "it once per batch (for batch in batches: "
                "est.partial_fit(batch)), or use laefast.LAEStream, whose "
                "partial_fit also takes an iterable of batches")
        acc = self._accumulator_to_extend()
        X = self._validate(X, reset=acc is None)
        if acc is not None and "n_features_in_" not in self.__dict__:
            # Batches added without a solve fix the width, as a fit would.
            check_n_features(X.shape[1], acc.n_features_in_, "LAEPCA")
        dtype = (self.components_.dtype if hasattr(self, "components_")
                 else acc.dtype_ if acc is not None
                 else X.dtype if X.dtype.kind == "f" else np.dtype("f8"))
        # The model's dtype holds, as a float32 model's does in
        # scikit-learn: later batches are cast to it (an out-of-core
        # batch slab by slab, by the accumulator).
        if isinstance(X, np.ndarray):
            X = X.astype(dtype, copy=False)
        return self._add_batch(X.shape[0], lambda a: a.add(X), dtype, solve)

    def _add_batch(self, rows, add, dtype, solve):
        """partial_fit's common end: add(copy of the accumulator), solve."""
        acc = getattr(self, "_acc", None)
        seen = acc.n_samples_seen_ if acc is not None else 0
        if solve and seen + rows < 2:
            raise ValueError(
                "LAEPCA needs at least 2 samples to estimate variances, got "
                f"n_samples = {seen + rows}")
        # The accumulator replaces its arrays, never changes them: a shallow
        # copy is a snapshot, and the model changes only if all succeeds.
        if acc is not None:
            acc = copy.copy(acc)
        else:
            acc = GramAccumulator(n_threads=self.n_threads)
        add(acc)
        if solve:
            self._solve_accumulator(acc, dtype, keep_width=True)
        else:
            if seen == 0:
                # The first batch's names wait with it for the first solve
                # (the batches between are checked against them).
                self._acc_names = self.__dict__.pop("_pending_names", None)
            self._acc = acc
        return self

    def _fit(self, X):
        n, m = X.shape
        if n < 2:
            raise ValueError(
                "LAEPCA needs at least 2 samples to estimate variances, got "
                f"n_samples = {n}")
        k = self._n_components(n, m)
        width = min(m, k + int(self.oversample))
        n_threads = resolve_threads(self.n_threads)
        acc = None
        if self.batch_size is not None:
            batch = int(self.batch_size)
            # Each slab read once, converted and checked on its own: at
            # most batch rows in float64 beside the m x m state.
            acc = GramAccumulator(n_threads=n_threads,
                                  max_memory=batch * m * 8)
            for start in range(0, n, batch):
                try:
                    acc.add(X[start:start + batch])
                except ValueError as exc:
                    raise ValueError(
                        f"rows {start}:{min(n, start + batch)}: {exc}") \
                        from None
        elif (self.n_components == "mle"     # needs every eigenvalue of C
              or choose_path(n, m, width, self._method(), 8) == "gram"):
            acc = GramAccumulator(n_threads=n_threads).add(X)
        if acc is not None:
            # The accumulator is kept, so that partial_fit after fit adds to
            # what fit saw; on the samples path there is none.
            problem = GramProblem.from_accumulator(acc)
            mean = acc.mean_
        else:
            problem = GramProblem.from_data(X, path="data",
                                            n_threads=n_threads,
                                            trace_now=False)
            mean = problem.mean
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
        fitted = self._solve_counted(problem, n, dtype)
        self._acc = acc
        self._set_fitted(fitted, mean, n, m)

    def _set_fitted(self, fitted, mean, n_samples, n_features):
        # Everything was computed first: a failure above leaves the
        # previous fit (or none) intact.
        self._warm = fitted.warm
        for name, value in fitted.attributes.items():
            setattr(self, name, value)
        self.mean_ = np.asarray(mean, dtype=self.components_.dtype)
        self.n_samples_seen_ = int(n_samples)
        self.n_features_in_ = int(n_features)
        # The feature names of the X that reset the fit (see _validate).
        self.__dict__.pop("_acc_names", None)
        pending = self.__dict__.pop("_pending_names", False)
        if pending is not False:
            if pending is None:
                self.__dict__.pop("feature_names_in_", None)
            else:
                self.feature_names_in_ = pending

    # -- the solver ------------------------------------------------------------

    def _method(self):
        check_params("LAEPCA", {"method": self.method})
        return self.method

    def _n_components(self, n, m):
        """The count to solve for: n_components, or for a float or 'mle' the
        count _solve_counted is trying (min(n, m) before it starts)."""
        k = self.__dict__.get("_count_trial")
        if k is not None:
            return k
        k = self.n_components
        if k is None:
            return min(n, m)
        if isinstance(k, str) and k == "mle":
            if n < m:
                raise ValueError(
                    "n_components='mle' is only supported if n_samples >= "
                    f"n_features (got n_samples={n} < n_features={m})")
            return min(n, m)
        check_params("LAEPCA", {"n_components": k})
        if not isinstance(k, numbers.Integral):
            return min(n, m, _FIRST_COUNT)       # a fraction in (0, 1)
        if k > min(n, m):
            raise ValueError(
                f"n_components={k} must be between 1 and min(n_samples, "
                f"n_features)={min(n, m)}")
        return int(k)

    def _solve_counted(self, problem, n_samples, data_dtype, warm=None):
        """_solve for the count n_components asks for.  A float in (0, 1):
        the fewest components whose exact explained-variance ratios
        (eigenvalue / trace of C) sum to more than it, solving for twice as
        many until the solved ones reach it.  'mle': Minka's choice from
        every eigenvalue of C (one dense eigenvalue solve)."""
        spec = self.n_components
        m = problem.m
        limit = min(n_samples, m)
        if isinstance(spec, str) and spec == "mle":
            self._n_components(n_samples, m)         # n_samples >= m
            eig = scipy.linalg.eigh(problem.C, eigvals_only=True,
                                    check_finite=False)[::-1][:limit]
            k = infer_dimension(np.maximum(eig, 0.0) / max(n_samples - 1, 1),
                                n_samples)
            return self._solve_count(problem, n_samples, data_dtype, warm, k)
        if (spec is None or isinstance(spec, numbers.Integral)
                or not isinstance(spec, numbers.Real) or not 0 < spec < 1):
            return self._solve(problem, n_samples, data_dtype, warm=warm)
        trace = problem.trace()
        k = self._n_components(n_samples, m)
        while True:
            fitted = self._solve_count(problem, n_samples, data_dtype, warm, k)
            ratio = np.cumsum(fitted.attributes["explained_variance_"]
                              .astype(np.float64)
                              * max(n_samples - 1, 1)) / (trace or 1.0)
            if ratio[-1] > spec or k >= limit:
                # scikit-learn's rule: searchsorted(cumsum, f, 'right') + 1
                keep = min(int(np.searchsorted(ratio, spec, side="right")) + 1,
                           k)
                return _keep_first(fitted, keep, n_samples, problem, limit)
            warm, k = fitted.warm, min(2 * k, limit)

    def _solve_count(self, problem, n_samples, data_dtype, warm, k):
        self._count_trial = int(k)
        try:
            return self._solve(problem, n_samples, data_dtype, warm=warm)
        finally:
            del self._count_trial

    def _settings(self, problem, n_samples, data_dtype):
        """The solver's settings, 'auto' and None resolved (the parameters
        were checked by _check_params)."""
        return pca_settings(
            problem, self._n_components(n_samples, problem.m), data_dtype,
            method=self._method(), lam=self.lam, alpha=self.alpha,
            tol=self.tol, max_iter=self.max_iter, oversample=self.oversample,
            n_threads=self.n_threads, random_state=self.random_state,
            verbose=self.verbose)

    def _solve(self, problem, n_samples, data_dtype, warm=None):
        """Train the LAE on `problem` (laefast._driver: iteration, read-out,
        attributes): a PCAFit."""
        return solve_pca(problem, self._settings(problem, n_samples,
                                                 data_dtype),
                         n_samples, warm)

    # -- using the fit ------------------------------------------------------

    def transform(self, X):
        """Project X onto the components: (X - mean_) @ components_.T."""
        self._check_fitted()
        if _is_dask(X):
            from . import _dask
            return _dask.transform(self, X)
        return self._project(self._validate(X, reset=False))

    def inverse_transform(self, X):
        """Map projections back to feature space: X @ components_ + mean_
        (with whiten, X @ (sqrt(explained_variance_) components_) + mean_)."""
        self._check_fitted()
        if _is_dask(X):
            from . import _dask
            return _dask.inverse_transform(self, X)
        Z = np.asarray(X)
        if Z.ndim != 2 or Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X must have shape (n_samples, {self.n_components_}), got "
                f"{Z.shape}")
        dtype = self.components_.dtype
        components = self.components_
        if self.whiten:
            components = np.sqrt(self.explained_variance_)[:, None] * components
        return Z.astype(dtype, copy=False) @ components + self.mean_

    def get_covariance(self):
        """Covariance of the probabilistic PCA model (n_features, n_features)."""
        self._check_fitted()
        V = self.components_.astype(np.float64)
        d = np.maximum(self.explained_variance_ - self.noise_variance_, 0.0)
        cov = (V.T * d) @ V
        cov.flat[::cov.shape[0] + 1] += self.noise_variance_
        return cov.astype(self.components_.dtype)

    def get_precision(self):
        """Inverse of :meth:`get_covariance`."""
        return np.linalg.inv(self.get_covariance().astype(np.float64)).astype(
            self.components_.dtype)

    def score_samples(self, X):
        """Log-likelihood of each sample under the probabilistic PCA model."""
        self._check_fitted()
        X = self._validate(X, reset=False)
        Xc = X.astype(np.float64) - self.mean_
        if not np.isfinite(Xc).all():
            raise_nonfinite(X)
        cov = self.get_covariance().astype(np.float64)
        sign, logdet = np.linalg.slogdet(cov)
        if sign <= 0:
            raise ValueError(
                "the model's covariance is singular (noise_variance_ = 0 "
                "with fewer components than features): score is undefined")
        solved = np.linalg.solve(cov, Xc.T).T
        m = X.shape[1]
        return -0.5 * (np.sum(Xc * solved, axis=1) + m * np.log(2 * np.pi)
                       + logdet)

    def score(self, X, y=None):
        """Average log-likelihood of the samples."""
        return float(np.mean(self.score_samples(X)))

    # -- helpers ---------------------------------------------------------------

    def _project_slabs(self, X):
        """_project of an out-of-core X, batch_size rows at a time."""
        batch = int(self.batch_size or X.shape[0])
        dtype = self.components_.dtype
        return np.concatenate([
            self._project(np.asarray(X[i:i + batch]).astype(dtype,
                                                            copy=False))
            for i in range(0, X.shape[0], batch)])

    def _project(self, X):
        dtype = self.components_.dtype
        Z = (X - self.mean_.astype(dtype)) @ self.components_.T
        if not np.isfinite(Z).all():
            raise_nonfinite(X)
        if self.whiten:
            # As scikit-learn: each scale at least eps, so that components
            # of (numerically) zero variance give finite outputs.
            scale = np.sqrt(self.explained_variance_)
            Z /= np.maximum(scale, np.finfo(scale.dtype).eps)
        return Z

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise NotFittedError(
                "This LAEPCA instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator.")

    def _validate(self, X, reset):
        """X as a float32/float64 2-D array, copied only if needed.

        laefast._validation's check_array (one message per fault, with or
        without scikit-learn); finiteness is read off the first pass over X
        that follows (the Gram pass, the mean, the projection): no pass of
        its own.  Out-of-core X (with batch_size: a memmap of integers,
        h5py, zarr) is checked as a chunk, for shape and dtype only, and
        read slab by slab.  The feature count, and with scikit-learn the
        feature names, are checked against the fit; with reset, the names
        are applied by _set_fitted, so that a fit that fails keeps the
        previous names.
        """
        reject_sparse(X)
        if (reset and self.batch_size is not None and hasattr(X, "shape")
                and hasattr(X, "dtype") and hasattr(X, "__getitem__")
                and (not isinstance(X, np.ndarray)
                     or np.dtype(X.dtype).kind in "biu")):
            X_arr = check_chunk(X, "X", min_rows=1)[0]
            self._pending_names = None
            return X_arr
        X_arr = check_array(X, finite=False)
        if _SKLEARN:
            self._check_names(X, reset)
        elif not reset:
            check_n_features(X_arr.shape[1],
                             getattr(self, "n_features_in_", None), "LAEPCA")
        return X_arr

    def _check_names(self, X, reset):
        """scikit-learn's feature-name and feature-count bookkeeping
        (validate_data without its array checks, done by check_array)."""
        state = self.__dict__
        # Before partial_fit's first solve, its first batch's names.
        unsolved = ("feature_names_in_" not in state
                    and state.get("_acc_names") is not None)
        if type(X) is np.ndarray and (reset or not unsolved and getattr(
                self, "feature_names_in_", None) is None):
            # A plain ndarray has no names, and none are fitted to warn
            # about: what scikit-learn would do, without its dataframe
            # probes (a tenth of a small fit's time).
            if reset:
                self._pending_names = None
            else:
                self.__dict__.pop("_pending_names", None)
                check_n_features(X.shape[1],
                                 getattr(self, "n_features_in_", None),
                                 "LAEPCA")
            return
        kwargs = dict(skip_check_array=True)
        if not reset:
            state.pop("_pending_names", None)   # a failed fit's
            if unsolved:
                state["feature_names_in_"] = state["_acc_names"]
            try:
                _sk_validate_data(self, X, reset=False, **kwargs)
            finally:
                if unsolved:
                    del state["feature_names_in_"]
            return
        saved = {name: state[name] for name in ("n_features_in_",
                                                  "feature_names_in_")
                 if name in state}
        try:
            _sk_validate_data(self, X, reset=True, **kwargs)
            names = state.get("feature_names_in_")
        finally:
            state.pop("n_features_in_", None)
            state.pop("feature_names_in_", None)
            state.update(saved)
        self._pending_names = names


def _keep_first(fitted, k, n_samples, problem, limit):
    """The fitted attributes cut to their first k components."""
    if k == fitted.attributes["n_components_"]:
        return fitted
    out = dict(fitted.attributes)
    for name in ("components_", "explained_variance_",
                 "explained_variance_ratio_", "singular_values_"):
        out[name] = np.ascontiguousarray(out[name][:k])
    out["W2_"] = np.ascontiguousarray(out["W2_"][:, :k])
    out["W1_"] = np.ascontiguousarray(out["W2_"].T)
    out["n_components_"] = k
    ddof_n = max(n_samples - 1, 1)
    total_var = problem.trace() / ddof_n
    rest = limit - k
    kept = float(np.sum(out["explained_variance_"], dtype=np.float64))
    out["noise_variance_"] = (max(total_var - kept, 0.0) / rest
                              if rest > 0 else 0.0)
    return PCAFit(out, fitted.warm)


def infer_dimension(spectrum, n_samples):
    """Minka's MLE of the PCA dimension (as scikit-learn's _infer_dimension):
    the rank in [1, len(spectrum)) of highest log-likelihood, from the
    variances (ddof=1) in decreasing order."""
    spectrum = np.asarray(spectrum, dtype=np.float64)
    ll = np.full(len(spectrum), -np.inf)
    for rank in range(1, len(spectrum)):
        ll[rank] = _assess_dimension(spectrum, rank, n_samples)
    return max(int(np.argmax(ll)), 1)


def _assess_dimension(spectrum, rank, n_samples):
    """Log-likelihood of rank under Minka's approximation (T. P. Minka,
    Automatic choice of dimensionality for PCA, NIPS 2000), the formula of
    scikit-learn's _assess_dimension."""
    from scipy.special import gammaln
    n_features = spectrum.shape[0]
    if spectrum[rank - 1] < 1e-15:
        return -np.inf
    pu = -rank * np.log(2.0)
    for i in range(1, rank + 1):
        pu += (gammaln((n_features - i + 1) / 2.0)
               - np.log(np.pi) * (n_features - i + 1) / 2.0)
    pl = -np.sum(np.log(spectrum[:rank])) * n_samples / 2.0
    v = max(1e-15, np.sum(spectrum[rank:]) / (n_features - rank))
    pv = -np.log(v) * n_samples * (n_features - rank) / 2.0
    m = n_features * rank - rank * (rank + 1.0) / 2.0
    pp = np.log(2.0 * np.pi) * (m + rank) / 2.0
    # Minka's pa term, vectorized: pairs i < rank, j > i.
    spectrum_ = spectrum.copy()
    spectrum_[rank:] = v
    i, j = np.triu_indices(len(spectrum), k=1)
    keep = i < rank
    i, j = i[keep], j[keep]
    pa = np.sum(np.log((spectrum[i] - spectrum[j])
                       * (1.0 / spectrum_[j] - 1.0 / spectrum_[i]))
                + np.log(n_samples))
    return pu + pl + pv + pp - pa / 2.0 - rank * np.log(n_samples) / 2.0


def _is_dask(X):
    """A Dask collection, told without importing Dask."""
    return (type(X).__module__.split(".")[0] == "dask"
            and hasattr(X, "__dask_graph__"))


# The constructor's parameters, checked by _check_params.
_PARAMETERS = tuple(name for name in
                    inspect.signature(LAEPCA.__init__).parameters
                    if name != "self")

# scikit-learn generates set_partial_fit_request for the solve option; there
# is no metadata to request, so it is removed (it would only be noise).
if "set_partial_fit_request" in LAEPCA.__dict__:
    del LAEPCA.set_partial_fit_request


_FIRST_COUNT = 16         # n_components as a float: the first count tried


def _same(a, b):
    try:
        return bool(a is b or a == b)
    except Exception:
        return False
