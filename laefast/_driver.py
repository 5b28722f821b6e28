"""The one way from Python to the compiled solver loops.

Every entry point that trains an LAE -- :func:`laefast.solve` and
:func:`laefast.fit`, :func:`laefast.step`, :func:`laefast.exact_w1` /
:func:`laefast.exact_w2`, :class:`laefast.LAEPCA`, :class:`laefast.LAEStream`
('gram' mode) and the scalar trajectories of :mod:`laefast.landscape` --
reaches the kernels of ``laefast._solvers`` through this module, which owns:

- the start (:func:`initial_weights`: given weights, the previous fit's
  basis, or a random start);
- the kernel call (:func:`run_kernel`, with the power-of-two scaling and
  BLAS kept serial where the loop is parallel) and the statuses it returns
  turned into exceptions (:func:`raise_for_status`);
- the plain run of :func:`laefast.solve` (:func:`run`: one kernel call, or
  segments of it with history; the convergence warning; the read-out into
  an :class:`~laefast.LAEResult`);
- the estimators' iteration (:func:`iterate`): rounds of kernel iterations
  with Rayleigh-Ritz between them, or exact-tied accelerated by block
  Lanczos (``laefast._subspace.block_lanczos``) and the dense eigensolver
  it may hand over to; and their read-out
  (:func:`solve_pca`, through ``laefast._readout``).

Inputs are validated by the entry points (``laefast._params``,
``laefast._validation``) before they get here.
"""

import contextlib
import decimal
import sys
import time
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.linalg

from . import _solvers
from ._exceptions import ConvergenceWarning, DivergenceError, caller_stacklevel
from ._methods import GD_METHODS, REGISTRY
from ._parallel import resolve_threads, serial_blas
from ._readout import LAEResult, pca_attributes, readout, readout_kind, \
    ritz_readout
from ._regularizer import lam_summary
from ._subspace import (block_lanczos, lanczos_block_width,
                        orthonormal_against, residual, ritz_pairs, small_eigh,
                        steps_to_reach)
from ._validation import check_weights

__all__ = ["DEFAULT_MAX_ITER", "Start", "initial_weights", "raise_for_status",
           "run_kernel", "run", "step", "exact_w1", "exact_w2",
           "step_for_bound", "PCASettings", "pca_settings", "Iterate",
           "iterate", "PCAFit", "solve_pca", "l_sigma_at_readout"]

DEFAULT_MAX_ITER = 100_000
# The longest history segment run asks of the kernel at once.
_MAX_SEGMENT = 1 << 20


# -- the start -------------------------------------------------------------------

class Start(NamedTuple):
    """Starting weights: W1 (k x m) and W2 (m x k); W1 is None for a basis
    start, whose W2 is an orthonormal float64 (m x k) basis."""

    W1: np.ndarray | None
    W2: np.ndarray


def initial_weights(init, m, k, dtype, random_state, *, warm=None,
                    basis=False):
    """The one start of every solver.

    init (W1, W2): checked copies in dtype.  basis=False (solve, fit, SGD):
    small Gaussian weights of Frobenius norm about 0.5 from random_state --
    far from the saddle at 0 in every direction, and inside the region
    default_alpha covers.  basis=True (LAEPCA, LAEStream): an orthonormal
    (m, k) float64 basis, the previous fit's warm basis when it has that
    shape (partial_fit), else a random one.
    """
    if init is not None:
        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise ValueError("init must be a pair (W1, W2)")
        return Start(*check_weights(init[0], init[1], m, k, dtype))
    if basis:
        if warm is not None and warm.shape == (m, k):
            return Start(None, np.asfortranarray(warm, dtype=np.float64))
        rng = np.random.default_rng(random_state)
        G = rng.standard_normal((k, m)).T           # (m, k), Fortran order
        # Cholesky-QR twice (laefast._subspace): GEMMs and a k x k
        # eigensolve, 0.22 against 0.57 ms for LAPACK's QR at 2048 x 20.
        # A Gaussian matrix is well conditioned unless nearly square, where
        # a direction lost to rounding sends it to the QR.
        Q = orthonormal_against(G, None, 0.0)
        if Q.shape[1] < k:
            Q = scipy.linalg.qr(G, mode="economic", check_finite=False)[0]
        return Start(None, np.asfortranarray(Q))
    rng = np.random.default_rng(random_state)
    scale = 0.5 / np.sqrt(m * k)
    W1 = (scale * rng.standard_normal((k, m))).astype(dtype)
    W2 = (scale * rng.standard_normal((m, k))).astype(dtype)
    return Start(W1, W2)


def step_for_bound(c, lam, W1, W2):
    """default_alpha's 1 / (3 c r^2 + lam) for a known bound c, for callers
    that keep c while the weights change."""
    r2 = max(1.0, float(np.sum(W1 * W1)), float(np.sum(W2 * W2)))
    if c > np.finfo(np.float64).tiny:
        # (1 / c) / (3 r^2 + lam / c): 3 c r^2 itself overflows for C near
        # the top of float64's range.
        return (1.0 / c) / (3.0 * r2 + lam / c)
    # C = 0 (to rounding): only lam curves the loss; with lam = 0 too the
    # gradient is 0 and any step is as good as another.
    return 1.0 / lam if lam > 0.0 else 1.0


# -- the kernel call -------------------------------------------------------------

def raise_for_status(status, method, n_iter, which, alpha, lam):
    """The exception for a kernel's failure status (nothing for success)."""
    positive = bool(np.all(np.asarray(lam) > 0))
    lam = lam_summary(lam)
    if status == _solvers.NONFINITE:
        if method in GD_METHODS:
            raise DivergenceError(
                f"{method} gradient descent diverged at iteration {n_iter}: "
                f"the weights stopped being finite. The step alpha={alpha:g} "
                "is too large for this problem; lower it, or pass alpha=None "
                "(LAEPCA: alpha='auto') for a safe step. (If C is not "
                "positive semi-definite, i.e. not a Gram matrix X^T X, no "
                "step converges: check how C was formed.)")
        raise DivergenceError(
            f"{method} produced non-finite weights at iteration {n_iter}; "
            "the problem is too badly scaled for this dtype.")
    if status in (_solvers.NOT_PD_W2, _solvers.NOT_PD_W1):
        matrix = ("the k x k matrix W1 C W1^T + lam I"
                  if status == _solvers.NOT_PD_W2 else
                  f"the m x m matrix d_{which} C + lam I of the exact W1 step")
        if positive:
            # With lam > 0 only a negative eigenvalue of C can do this.
            why = ("so C has a negative eigenvalue: it is not positive "
                   "semi-definite to working precision (rounding alone, "
                   "about -eps ||C|| for a singular C in float32, is enough "
                   "once the weights grow). Pass C in float64, raise lam well "
                   "above eps ||C||, or check how C was formed.")
        elif status == _solvers.NOT_PD_W2:
            why = ("with lam = 0 this happens when W1 C W1^T is singular "
                   "(rank-deficient C or start); use lam > 0.")
        else:
            why = ("with lam = 0 this happens when C is singular or W2 is "
                   "rank-deficient; use lam > 0.")
        raise np.linalg.LinAlgError(
            f"{method}, iteration {n_iter + 1}: {matrix} is not positive "
            f"definite (lam={lam}); {why}")
    if status == _solvers.EIGH_FAILED:
        raise np.linalg.LinAlgError(
            f"{method}, iteration {n_iter + 1}: the eigendecomposition of "
            "W2^T W2 did not converge.")


def _split_lam(lam):
    """(scalar lam for the kernel, vector lam or None)."""
    if np.ndim(lam) == 0:
        return lam, None
    return float(lam[0]), lam


def run_kernel(problem, W1, W2, method, lam, alpha, tol, max_iter,
               n_threads=1, hist_stop=None, hist_obj=None, *,
               regularizer="sum", hist_w1=None, hist_w2=None):
    """One compiled solver loop, in place on W1 and W2: (n_iter, status, stop).

    Inputs are validated already (lam: a float, or a vector from
    check_lam); failures (divergence, a k x k or m x m system that is not
    positive definite) raise here.  hist_w1/hist_w2: flat buffers of
    max_iter k m entries of W1's dtype for the weights after each iteration.
    """
    lam, lam_vec = _split_lam(lam)
    # The loop runs on scale C (scale a power of two near 1 / tr C: exact),
    # with lam scale and alpha / scale: the same iterates, and every
    # quantity near 1 whatever the data's magnitude (1e-150 or 1e150).
    scale = problem.kernel_scale()
    # Only exact-untied's k independent m x m solves run in parallel; the
    # other loops are chains of GEMMs that BLAS's own threads serve best.
    parallel = (_solvers.exact_w1_threads(problem.m, W1.shape[0], n_threads)
                if method == "exact-untied" else 1)
    with serial_blas(parallel):
        n_iter, status, stop, which = _solvers.run(
            REGISTRY[method].code, W1, W2, lam=lam * scale,
            alpha=0.0 if alpha is None else alpha / scale, tol=tol,
            max_iter=max_iter, hist_stop=hist_stop, hist_obj=hist_obj,
            trace_c=(problem.trace() * scale if hist_stop is not None
                     else 0.0),
            n_threads=n_threads,
            lam_vec=None if lam_vec is None else lam_vec * scale,
            product=regularizer == "product", hist_w1=hist_w1,
            hist_w2=hist_w2, scale=scale, **problem.kernel_args())
    if hist_obj is not None:
        hist_obj[:n_iter] /= scale
    raise_for_status(status, method, n_iter, which, alpha,
                     lam if lam_vec is None else lam_vec)
    return n_iter, status, stop


def step(W1, W2, C, lam, method, alpha, regularizer):
    """laefast.step's one iteration, in place: the stopping quantity."""
    lam_s, lam_vec = _split_lam(lam)
    n_iter, status, stop, which = _solvers.run(
        REGISTRY[method].code, W1, W2, C, lam_s if lam_vec is None else 0.0,
        alpha or 0.0, _solvers.NEVER_STOP, 1, lam_vec=lam_vec,
        product=regularizer == "product")
    raise_for_status(status, method, 0, which, alpha, lam)
    return float(stop)


def exact_w1(C, W2, lam, n_threads):
    """The encoder minimizing L_sigma for the decoder W2 (k solves of size
    m, in parallel)."""
    m, k = W2.shape
    lam_s, lam_vec = _split_lam(lam)
    W1 = np.empty((k, m), dtype=C.dtype)
    parallel = _solvers.exact_w1_threads(m, k, resolve_threads(n_threads))
    with serial_blas(parallel):
        status, which = _solvers.exact_w1_given_w2(
            W1, W2, C, lam if lam_vec is None else 0.0, parallel,
            lam_vec=lam_vec)
    raise_for_status(status, "exact_w1", -1, which, None, lam)
    return W1


def exact_w2(C, W1, lam):
    """The decoder minimizing L_sigma for the encoder W1 (one k x k
    Cholesky solve)."""
    lam_s, lam_vec = _split_lam(lam)
    W2 = np.empty((C.shape[0], W1.shape[0]), dtype=C.dtype)
    if _solvers.exact_w2_given_w1(W2, W1, C, lam if lam_vec is None else 0.0,
                                  lam_vec=lam_vec) != 0:
        raise_for_status(_solvers.NOT_PD_W2, "exact_w2", -1, -1, None, lam)
    return W2


# -- solve and fit: one run, its warning, its read-out --------------------------

def run(problem, W1, W2, lam, method, alpha, tol, max_iter, history,
        n_threads, regularizer="sum", check_span=False):
    """solve's and fit's run: the kernel (in segments with history), the
    convergence warning, the read-out.  Inputs already validated.
    check_span: the run started from the caller's weights (see readout)."""
    if history:
        n_iter, status, stop, records = _run_recorded(
            problem, W1, W2, method, lam, alpha, tol, max_iter, n_threads,
            regularizer, history == "weights")
    else:
        n_iter, status, stop = run_kernel(problem, W1, W2, method, lam,
                                          alpha, tol, max_iter, n_threads,
                                          regularizer=regularizer)
    converged = status == _solvers.CONVERGED
    if not converged:
        warnings.warn(
            f"{method} stopped at max_iter={max_iter} with stopping quantity "
            f"{stop:.3g} > tol={tol:g}; raise max_iter or tol.",
            ConvergenceWarning, stacklevel=caller_stacklevel())
    hist = None
    if history:
        hist = {"stop": records[0], "objective": records[1]}
    if history == "weights":
        k, m = W1.shape
        hist["W1"] = records[2].reshape(n_iter, k, m)
        hist["W2"] = records[3].reshape(n_iter, m, k)
    return _result(W1, W2, lam, method=method, alpha=alpha, tol=tol,
                   n_iter=n_iter, converged=converged, stop=stop,
                   history=hist, regularizer=regularizer, problem=problem,
                   check_span=check_span)


def _run_recorded(problem, W1, W2, method, lam, alpha, tol, max_iter,
                  n_threads, regularizer, weights):
    """run_kernel with history, in segments of growing length (1024, 2048,
    ...): the records take memory for the iterations actually run, not
    max_iter's.  A loop resumed where the last segment stopped takes the
    same steps (each loop's state is its weights), so the result is that
    of one call."""
    parts = [[], [], [], []]
    n_iter, done, seg = 0, False, 1024
    status = _solvers.MAX_ITER
    stop = np.inf
    size = W1.size
    while not done:
        steps = min(seg, max_iter - n_iter)
        bufs = [np.empty(steps), np.empty(steps), None, None]
        if weights:
            bufs[2] = np.empty(steps * size, dtype=W1.dtype)
            bufs[3] = np.empty(steps * size, dtype=W1.dtype)
        ran, status, stop = run_kernel(
            problem, W1, W2, method, lam, alpha, tol, steps, n_threads,
            bufs[0], bufs[1], regularizer=regularizer, hist_w1=bufs[2],
            hist_w2=bufs[3])
        parts[0].append(bufs[0][:ran])
        parts[1].append(bufs[1][:ran])
        if weights:
            parts[2].append(bufs[2][:ran * size])
            parts[3].append(bufs[3][:ran * size])
        n_iter += ran
        done = (status != _solvers.MAX_ITER or n_iter >= max_iter or ran == 0)
        seg = min(2 * seg, _MAX_SEGMENT)
    records = [np.concatenate(p) if p else None for p in parts]
    return n_iter, status, stop, records


def format_down(bound, digits=6):
    """bound to `digits` significant digits, rounded down: a lower bound
    printed as 'at least' stays one."""
    context = decimal.Context(prec=digits, rounding=decimal.ROUND_FLOOR)
    # The nearest double to a decimal of `digits` digits prints back as it.
    return f"{float(context.create_decimal(float(bound))):.{digits}g}"


def _result(W1, W2, lam, *, method, alpha, tol, n_iter, converged, stop,
            history, regularizer, problem, check_span=False):
    """An LAEResult from trained weights: the read-out of docs/theory.md
    (and its per-latent and product variants, see laefast._readout); with
    the problem at hand, lam = 0 and small decoder singular values are read
    out against C itself."""
    out = readout(W2, lam, tol, regularizer=regularizer, method=method,
                  times=problem.times, trace=problem.trace,
                  check_span=check_span)
    learned = None if out.missed is None else out.missed.learned
    if out.missed is not None and out.missed.unlearned.size == 0:
        span = ("the learned direction" if learned == 1
                else f"the {learned} learned directions")
        if np.isnan(out.missed.smallest):
            above = f"above lam = {float(lam):g}"
            verdict = ("a latent that holds a direction of variance at most "
                       "lam should hold it instead")
        else:
            above = ("above the smallest variance learned "
                     f"({out.missed.smallest:.6g})")
            verdict = ("it is not C's top direction" if learned == 1
                       else f"they are not C's top {learned}")
        warnings.warn(
            f"{method} stopped at or near a saddle point: a direction "
            f"orthogonal to {span} has a variance u^T C u of at least "
            f"{format_down(out.missed.bound)}, {above}, so {verdict}. The "
            "start may have had little or no weight on a principal "
            "direction: start at random (init=None), or use LAEPCA.",
            ConvergenceWarning, stacklevel=caller_stacklevel())
        converged = False
    elif out.missed is not None:
        unlearned = out.missed.unlearned.tolist()
        eigenvalues = "eigenvalues" if learned else "eigenvalue"
        were = "component was" if learned == 1 else "components were"
        warnings.warn(
            f"{method} stopped at or near a saddle point: C has {learned + 1} "
            f"{eigenvalues} of at least {format_down(out.missed.bound)} > "
            f"lam = {float(lam):g} but only {learned} {were} learned; the "
            "decoder's singular values are near zero for components "
            f"{unlearned}. The start had little or no weight on a direction "
            "above lam, or tol stopped the run before it grew: start at "
            "random (init=None), lower tol, or use LAEPCA.",
            ConvergenceWarning, stacklevel=caller_stacklevel())
        converged = False
    return LAEResult(
        W1=W1, W2=W2, components=out.components,
        singular_values=out.singular_values.astype(W2.dtype),
        eigenvalues=out.eigenvalues.astype(W2.dtype),
        collapsed=out.collapsed, n_iter=int(n_iter), converged=bool(converged),
        stop=float(stop), method=method, lam=lam, alpha=alpha, tol=tol,
        history=history, regularizer=regularizer,
        readout=readout_kind(lam, regularizer, method, ritz=True))


# -- the estimators: settings -----------------------------------------------------

@dataclass(frozen=True)
class PCASettings:
    """An estimator's solver settings with 'auto' and None resolved (lam
    and alpha stay 'auto' until the iteration sees the problem's scale)."""

    method: str             # 'auto' or one of METHODS
    k: int                  # components kept
    width: int              # latents trained: k + oversample, at most m
    tol: float
    to_rounding: bool       # tol=None: 'auto' iterates to rounding
    max_iter: int
    n_threads: int
    lam: object             # 'auto' or a float >= 0
    alpha: object           # 'auto' or a float > 0
    random_state: object
    verbose: int
    data_dtype: np.dtype    # the samples' dtype (C may be float64 anyway)


def pca_settings(problem, k, data_dtype, *, method, lam, alpha, tol,
                 max_iter, oversample, n_threads, random_state, verbose=0):
    """PCASettings from parameters checked by laefast._params."""
    if tol is None:
        # 'auto' runs to rounding (its products are few) and calls that
        # converged below 1e-10; the kernel methods stop at their dtype's
        # usual tolerance.
        resolved = 1e-10 if (method == "auto" or problem.dtype == np.float64) \
            else 1e-4
    else:
        resolved = float(tol)
    return PCASettings(
        method=method, k=int(k), width=min(problem.m, int(k) + int(oversample)),
        tol=resolved, to_rounding=tol is None,
        max_iter=DEFAULT_MAX_ITER if max_iter is None else int(max_iter),
        n_threads=resolve_threads(n_threads), lam=lam, alpha=alpha,
        random_state=random_state, verbose=int(verbose),
        data_dtype=np.dtype(data_dtype))


def auto_lam(spec, top, width, dtype, m=None):
    """lam, with 'auto' = 10 (k + p) eps top: just enough to keep the
    k x k systems positive definite in this dtype when the data hold
    zero-variance directions, far below every resolvable component.
    exact-untied (m given) also solves m x m systems d_i C + lam I, whose
    rounding on a singular C is of order m eps ||C||: 'auto' is
    100 m eps top there."""
    if isinstance(spec, str):
        if m is not None:
            width = max(width, 10 * m)
        return 10.0 * width * float(np.finfo(dtype).eps) * top
    return float(spec)


# -- the estimators: iteration ----------------------------------------------------

class Iterate(NamedTuple):
    """Where an estimator's iteration ended: the Ritz pairs (V, theta) of C
    on the trained span, their residual, the iterations and the lam and
    alpha used."""

    V: np.ndarray
    theta: np.ndarray
    residual: float
    n_iter: int
    lam: float
    alpha: float | None


_FIRST_ROUND = 8          # kernel iterations before the first check
_MAX_ROUND = 1024         # ... and at most this many between checks
_MIN_RESTART_SCALE = 0.1  # see _restart
# method='auto' without tol iterates until the residual stops falling or
# reaches this (a few eps): as accurate as a dense eigensolver.
_ROUNDING = 1e-15
# scipy.linalg.eigh(C, subset_by_index) of the top few pairs costs about as
# much as this many m^3 flops of GEMM (measured, m = 500 to 1000).
_EIGH_FLOPS = 4.0
# Up to this m the dense eigensolver costs less than the Lanczos steps'
# fixed costs (about 0.2-0.3 ms a step: the Python around it and the
# projected matrix's eigendecomposition).  Fits on 12 m samples, 2 threads,
# Lanczos against dense: m = 256, decaying spectrum (22 products) 16.1
# against 14.2 ms; m = 384: decaying 32.4 against 26.3, but spiked (12
# products) 25.3 against 29.1, and the Krylov space wins from there on.
_DENSE_M = 256
# Up to this m method='auto' keeps BLAS on one thread for a solve on C.  Each
# multithreaded BLAS call leaves OpenBLAS's workers spinning for about
# 0.1 s (see iterate), and a loop of fits, or of partial_fit calls, starts
# its next Gram pass in that window: on 2 cores LAEPCA on 200000 x 256
# took 200-212 ms right after another fit against 162-164 after a pause,
# on noise of 10000 x 500 58-64 against 39-41.  With the solve on one
# thread both took their paused time either way (the solve itself 0-2 ms
# slower: scipy.linalg.eigh of the top 20 of 500 took 10.3 ms on one
# thread, 8.7 to 10.4 on two).  (python benchmarks/bench_contention.py,
# 'after itself')
_SOLO_BLAS_M = 512
# ... and from this m on: below it nothing in the solve is large enough for
# OpenBLAS to thread (its dsyevd threads from m = 65 on, its GEMMs later),
# while the limit costs 50-70 us after an idle pause, a twentieth of a fit
# of digits (1797 x 64).
_SOLO_BLAS_MIN_M = 65


def iterate(problem, settings, warm=None, progress=None):
    """Train the LAE of an estimator on `problem`: an Iterate."""
    # On the samples every product is an OpenMP pass: BLAS stays on one
    # thread for the whole iteration, the start included.  A multithreaded
    # BLAS call leaves OpenBLAS's pool spinning for about 0.1 s, and the
    # spinning threads take the cores from the passes (products ran 3-10x
    # slower right after the start's QR).
    with serial_blas(settings.n_threads if problem.on_data else 1):
        return _iterate(problem, settings, warm, progress)


def _iterate(problem, settings, warm, progress):
    dense = _dense_at_once(problem, settings)
    # 'auto' on a small C goes straight to the dense solve: no start.
    # Block Lanczos starts from one block: a random start draws only that
    # (at 2048 x 20 the whole basis cost 0.8 ms, 2-3% of a wide fit).
    columns = settings.width
    if warm is None or warm.shape != (problem.m, columns):
        # (A previous fit's basis of another width is no start.)
        warm = None
        if settings.method == "auto":
            columns = lanczos_block_width(columns, problem.lanczos_block(),
                                          settings.max_iter)
    Q = None if dense else initial_weights(
        None, problem.m, columns, None, settings.random_state,
        warm=warm, basis=True).W2
    progress = progress or _Progress(settings.verbose)
    if settings.max_iter == 0 or (settings.method != "auto"
                                  and problem.trace() <= 0.0):
        # C = 0 (constant data, or squares below the dtype's range): every
        # variance is 0 and there is nothing to train.  (The Lanczos
        # iteration finds that out from its first product.)
        # (Q is whole here: with max_iter = 0 the first block is all of it.)
        if Q is None:
            Q = initial_weights(None, problem.m, settings.width, None,
                                settings.random_state, warm=warm,
                                basis=True).W2
        lam = auto_lam(settings.lam, 0.0, settings.width, problem.dtype)
        return Iterate(Q, np.zeros(settings.width), 0.0, 0, lam, None)
    if settings.method == "auto":
        return _run_krylov(problem, Q, settings, progress)
    return _run_kernel_rounds(problem, Q, settings, progress)


def _dense_at_once(problem, settings):
    """'auto' on C when a Krylov space would be a large part of C: the
    dense eigensolver is then the cheaper way to the same minimum.  That
    is so for m up to _DENSE_M, when the k + p columns kept are a tenth of
    m or more, and when C's spectrum is nearly flat: its effective rank
    tr(C)^2 / ||C||_F^2 (m for equal eigenvalues, 1 for one direction) at
    least m / 2, as for white noise, where no gap separates the top k and
    the measured rate would only send the iteration there after a dozen
    products."""
    if settings.method != "auto" or problem.on_data:
        return False
    if 10 * settings.width >= problem.m or problem.m <= _DENSE_M:
        return True
    trace = problem.trace()
    if not trace > 0:
        return False
    # ||C / tr C||_F^2 <= 2 / m, C scaled before squaring (C near 1e150
    # would overflow), 256 rows at a time (no m x m temporary), by einsum:
    # np.vdot would wake NumPy's BLAS threads, which then spin on the
    # cores SciPy's eigensolver needs next.
    C, scale, squares = problem.C, 1.0 / trace, 0.0
    for start in range(0, problem.m, 256):
        rows = C[start:start + 256] * scale
        squares += float(np.einsum("ij,ij->", rows, rows))
    return squares <= 2.0 / problem.m


def _next_round(history, tol, current):
    """The next round's length for the kernel methods: the iterations the
    measured rate needs to reach tol (10% spare), between 8 and 1024."""
    need = (steps_to_reach(history[-2], history[-1], tol)
            if len(history) >= 2 else None)
    if need is None:
        return min(2 * current, _MAX_ROUND)
    return int(np.clip(1.1 * need + 1, _FIRST_ROUND, _MAX_ROUND))


def _run_krylov(problem, Q, settings, progress):
    """method='auto': exact-tied accelerated by block Lanczos
    (laefast._subspace), or, on C, the dense eigensolver when the measured
    convergence says it is cheaper."""
    w, k = settings.width, settings.k

    def floor():
        # Needs the trace: on the samples a by-product of the first product.
        return zero_floor(0.0, problem.trace(), problem.product_dtype)

    if Q is None:
        stopped = "eigh"             # _dense_at_once: no start was drawn
        V, theta, res, n_iter = Q, None, np.inf, 0
    else:
        block = problem.lanczos_block()
        V, theta, res, n_iter, stopped = block_lanczos(
            problem.times, Q, k,
            _ROUNDING if settings.to_rounding else settings.tol,
            settings.max_iter, floor, block,
            on_round=lambda p, r: progress.report(p, residual=r),
            stop_early=_lanczos_stop(problem, settings, block),
            # On C the switch to the dense solve reads the rate off the
            # last four checks: spaced checks would delay it.
            max_check_gap=None if problem.on_data else 1, width=w)
    if stopped == "eigh":
        theta, V = _dense_pairs(problem, w)
        res = residual(V, problem.times(V), theta, k, floor())
        n_iter = max(n_iter, 1)
    # Every product here is in problem.product_dtype (float64 on float32
    # samples): lam and the zero floor follow its rounding, not X's dtype,
    # or components that float64 resolves would read out as 0.
    lam = auto_lam(settings.lam, problem.trace(), w, problem.product_dtype)
    return Iterate(V, theta, res, n_iter, lam, None)


def _lanczos_stop(problem, settings, block):
    """block_lanczos's stop_early: rounding reached (below tol, three
    checks that did not halve the residual); or, on C, the dense solve
    as soon as the products the measured rate still needs cost more."""
    m, tol = problem.m, settings.tol
    target = _ROUNDING if settings.to_rounding else tol

    def stop(history, columns):
        if (len(history) >= 4 and history[-1][1] <= tol
                and history[-1][1] > 0.5 * history[-4][1]):
            return "stalled"
        if not problem.on_data and (
                _predicted_products(history, target)
                * _lanczos_step_flops(m, columns, block)
                > _EIGH_FLOPS * m ** 3):
            return "eigh"
        return None

    return stop


def _lanczos_step_flops(m, columns, b):
    """Flops of one block Lanczos step on C (m x m) with a space of
    `columns` and blocks of b: the product, the orthogonalization against
    the space, and the projected matrix's eigendecomposition (small, so
    slow per flop)."""
    return 2.0 * m * m * b + 16.0 * m * columns * b + 20.0 * columns ** 3


def _predicted_products(history, target):
    """Products still needed to reach target at the rate over the last
    four checks, history's (products, residual) pairs (inf if they did not
    gain; 0 before four are known)."""
    if len(history) < 4 or history[-1][1] <= target:
        return 0.0
    need = steps_to_reach(history[-4], history[-1], target)
    return np.inf if need is None else need


def _dense_pairs(problem, w):
    """The top w eigenpairs of C (decreasing), Fortran-ordered vectors:
    the closed-form minimum of L_sigma, by the paper's theorem the LAE's
    global minimum."""
    m = problem.m
    # In float64, as the Krylov iteration works (the accumulator's C is
    # float64; a float32 one would otherwise get float32 pairs).
    C = np.asarray(problem.C.T, dtype=np.float64)
    if m <= 200:
        # Small: all pairs by divide and conquer beat a subset (top 24 of
        # m, 2 threads: 1.0 against 1.3 ms at m = 128, even at 192 to 224,
        # 4.7 against 3.6 ms at 256).
        theta, V = small_eigh(C)
        theta, V = theta[m - w:], V[:, m - w:]
    else:
        theta, V = scipy.linalg.eigh(C, subset_by_index=[m - w, m - 1],
                                     check_finite=False)
    return theta[::-1], np.asfortranarray(V[:, ::-1])


def _round_lam(problem, settings, top):
    """The kernel rounds' lam: 'auto' covers the dtype's rounding (and,
    for float32 data held in a float64 C, float32's)."""
    w, dtype = settings.width, problem.dtype
    m_eu = problem.m if settings.method == "exact-untied" else None
    lam = auto_lam(settings.lam, top, w, dtype, m_eu)
    if settings.data_dtype == np.float32 and dtype == np.float64:
        # C from float32 data carries float32 rounding (eigenvalues off by
        # about eps32 ||C||, negative ones included) even when held in
        # float64: 'auto' must cover that.
        lam = max(lam, auto_lam(settings.lam, top, w if m_eu else 1,
                                np.float32, m_eu))
    return lam


def _run_kernel_rounds(problem, Q, settings, progress):
    """One of the paper's six methods, in rounds of compiled iterations;
    after each, Rayleigh-Ritz on the decoder's span measures convergence
    and restarts the weights at the minimum of L_sigma inside that span,
    which keeps the k x k systems well conditioned whatever lam is.
    Round lengths follow the measured rate of convergence."""
    method, w, k = settings.method, settings.width, settings.k
    tol, max_iter = settings.tol, settings.max_iter
    dtype = problem.dtype
    top = (problem.eigenvalue_bound() if method in GD_METHODS
           else problem.trace())
    lam = _round_lam(problem, settings, top)
    W2 = np.ascontiguousarray(Q, dtype=dtype)
    W1 = np.empty((w, problem.m), dtype=dtype)
    floor = zero_floor(lam, top, dtype)
    V, theta, res = _rayleigh_ritz(problem, W2, k, floor)
    n_iter, round_len, alpha, history = 0, _FIRST_ROUND, None, []
    # At least one iteration, even when the start already spans the
    # answer (k + p = m): the weights are trained.
    while n_iter < max_iter and (n_iter == 0 or res > tol):
        _restart(W1, W2, V, theta, lam)
        if method in GD_METHODS:
            # default_alpha's step for the current weights.
            alpha = (float(settings.alpha)
                     if not isinstance(settings.alpha, str)
                     else step_for_bound(top, lam, W1, W2))
        steps = min(round_len, max_iter - n_iter)
        run_kernel(problem, W1, W2, method, lam, alpha, _solvers.NEVER_STOP,
                   steps, settings.n_threads)
        n_iter += steps
        V, theta, res = _rayleigh_ritz(problem, W2, k, floor)
        progress.report(n_iter, residual=res)
        history.append((n_iter, res))
        round_len = _next_round(history, tol, round_len)
    return Iterate(V, theta, res, n_iter, lam, alpha)


def _restart(W1, W2, V, theta, lam):
    """W2 = V diag(s), W1 = W2^T, in place: the minimum of L_sigma on
    span(V), s_i = sqrt(1 - lam / theta_i) (docs/theory.md), except that no
    s_i goes below 0.1.  A latent zeroed here could never come back, and a
    Ritz value below lam early on may belong to a direction the iterations
    have not found yet; a genuinely collapsed latent decays again."""
    # Ritz values of zero-variance directions come out as rounding, maybe
    # negative: 1 - lam / theta must not blow up there.
    s = np.zeros_like(theta)
    positive = theta > lam
    s[positive] = np.sqrt(1.0 - lam / theta[positive])
    s = np.clip(s, _MIN_RESTART_SCALE, 1.0)
    W2[...] = V * s
    W1[...] = W2.T


def zero_floor(lam, top, dtype):
    """Eigenvalues at or below this are collapsed or numerically 0."""
    return max(lam, 10.0 * float(np.finfo(dtype).eps) * top)


def _rayleigh_ritz(problem, W2, k, floor):
    """Ritz pairs of C on span(W2): (V, theta, residual), see
    laefast._subspace.  Latents that collapsed leave W2 rank-deficient; the
    SVD's orthonormal basis still spans width columns, and their Ritz
    values say how much variance those directions hold."""
    Q = scipy.linalg.svd(W2.astype(np.float64), full_matrices=False,
                         check_finite=False)[0]
    Q = np.asfortranarray(Q)
    V, CV, theta = ritz_pairs(Q, np.asfortranarray(problem.times(Q)),
                              Q.shape[1])
    return V, theta, residual(V, CV, theta, k, floor)


def l_sigma_at_readout(trace, theta, lam):
    """L_sigma at W2 = V diag(sqrt(1 - lam / theta)), W1 = W2^T:
    tr C - sum over theta_i > lam of (theta_i - lam)^2 / theta_i."""
    live = theta[theta > lam]
    # (theta - lam) ((theta - lam) / theta): no square that could overflow.
    return float(trace - np.sum((live - lam) * ((live - lam) / live)))


class _Progress:
    """verbose=1: one line at most every second, and one at the end."""

    def __init__(self, verbose):
        self.verbose = verbose
        self.start = self.last = time.perf_counter()

    def report(self, n_iter, residual, objective=None, final=False):
        if not self.verbose:
            return
        now = time.perf_counter()
        if not final and now - self.last < 1.0:
            return
        self.last = now
        tag = "done" if final else "iter"
        obj = "" if objective is None else f"  L_sigma {objective:.6e}"
        print(f"[LAEPCA] {tag} {n_iter:7d}{obj}  residual {residual:.3e}  "
              f"{now - self.start:8.2f} s", file=sys.stderr, flush=True)


# -- the estimators: iteration, warning, read-out, attributes --------------------

class PCAFit(NamedTuple):
    """An estimator's solve: its fitted attributes (name -> value) and the
    basis the next solve restarts from (partial_fit)."""

    attributes: dict
    warm: np.ndarray


def solve_pca(problem, settings, n_samples, warm=None):
    """LAEPCA's and LAEStream's solve: iterate, warn if not converged, read
    the Ritz pairs out, and return the fitted attributes (a PCAFit)."""
    progress = _Progress(settings.verbose)
    # (The paper's methods are chains of GEMMs that BLAS's threads serve.)
    solo = (settings.method == "auto" and not problem.on_data
            and _SOLO_BLAS_MIN_M <= problem.m <= _SOLO_BLAS_M)
    with serial_blas() if solo else contextlib.nullcontext():
        return _solve_pca(problem, settings, n_samples, warm, progress)


def _solve_pca(problem, settings, n_samples, warm, progress):
    it = iterate(problem, settings, warm, progress)
    converged = it.residual <= settings.tol
    if settings.verbose:
        progress.report(it.n_iter, residual=it.residual, final=True,
                        objective=l_sigma_at_readout(problem.trace(),
                                                     it.theta, it.lam))
    if not converged:
        warnings.warn(
            f"LAEPCA ({settings.method}) stopped at max_iter="
            f"{settings.max_iter} with relative Ritz residual "
            f"{it.residual:.3g} > tol={settings.tol:g}; raise max_iter or "
            "tol.", ConvergenceWarning, stacklevel=caller_stacklevel())
    precision = (problem.product_dtype if settings.method == "auto"
                 else problem.dtype)
    out = ritz_readout(it.V, it.theta, it.lam, settings.k,
                       zero_floor(it.lam, max(it.theta[0], 0.0)
                                  if len(it.theta) else 0.0, precision),
                       warn=not isinstance(settings.lam, str))
    attributes = pca_attributes(out, it.lam, problem.trace(), problem.m,
                                n_samples, settings.data_dtype)
    attributes.update(n_iter_=int(it.n_iter), converged_=bool(converged),
                      alpha_=it.alpha)
    return PCAFit(attributes, it.V)
