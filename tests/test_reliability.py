"""Reliability: Ctrl-C, fork, extreme scales, degenerate data and edge
parameters never hang, crash or give a silently wrong answer."""

import json
import multiprocessing
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import laefast
from laefast import LAEPCA, LAEStream, fit, solve, step

from _helpers import random_spd as _spd
from _helpers import scaled_gaussian
from _helpers import subspace_sine as _sine


# -- Ctrl-C ---------------------------------------------------------------------

_INTERRUPT_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    import numpy as np
    import laefast
    # Python keeps SIGINT ignored when its parent ignored it, as a shell
    # does for a background job (`pytest &`): then no Ctrl-C reaches any
    # loop, and the first run below would never end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((1000, 1000))
    C = A @ A.T
    X = rng.standard_normal((20000, 200))
    Xbig = rng.standard_normal((40000, 300))

    def run(name, call):
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        start = time.perf_counter()
        timer.start()
        try:
            call()
            outcome = "finished"
        except KeyboardInterrupt:
            outcome = "interrupted"
        timer.join()
        return {"name": name, "outcome": outcome,
                "seconds": time.perf_counter() - start}

    est = laefast.LAEPCA(3, method="untied", random_state=0).fit(X[:500, :20])
    before = est.components_.copy()
    stream = laefast.LAEStream(4, 1.0, mode="sgd", batch_size=64,
                               random_state=0).partial_fit(X[:2000])
    acc = laefast.GramAccumulator().add(Xbig[:100])
    out = [
        run("untied", lambda: laefast.solve(
            C, 10, 1.0, method="untied", max_iter=10**9, tol=0.0)),
        run("exact-untied", lambda: laefast.solve(
            C, 10, 1.0, method="exact-untied", max_iter=10**9, tol=0.0)),
        run("data", lambda: laefast.fit(
            X, 5, 1.0, method="tied", path="data", max_iter=10**9, tol=0.0,
            alpha=1e-9)),
        run("LAEPCA", lambda: est.set_params(
            tol=0.0, max_iter=10**9).fit(X[:, :100])),
        run("sgd", lambda: [stream.partial_fit(X) for _ in range(10**6)]),
        run("gram", lambda: [acc.add(Xbig) for _ in range(10**6)]),
    ]
    # whole chunks only: nothing of an interrupted chunk is kept, and the
    # weights are those of a run over the same whole chunks
    passes, part = divmod(stream.n_samples_seen_ - 2000, 20000)
    replay = laefast.LAEStream(4, 1.0, mode="sgd", batch_size=64,
                               random_state=0).partial_fit(X[:2000])
    for _ in range(passes):
        replay.partial_fit(X)
    same = {"LAEPCA": bool(np.array_equal(est.components_, before)),
            "sgd": part == 0 and bool(np.array_equal(stream.W2_, replay.W2_)
                                      and np.array_equal(stream.W1_,
                                                         replay.W1_)),
            "gram_n": int(acc.n_samples_seen_) % 40000 == 100}
    print(json.dumps({"runs": out, "same": same}))
""")


def test_ctrl_c_interrupts_every_long_loop():
    """SIGINT after 0.5 s: every long run raises KeyboardInterrupt within a
    second or so (generous for a loaded 2-core machine), and the estimator
    keeps its previous fit."""
    proc = subprocess.run([sys.executable, "-c", _INTERRUPT_SCRIPT],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for run in report["runs"]:
        assert run["outcome"] == "interrupted", run
        assert run["seconds"] < 2.5, run
    assert report["same"]["LAEPCA"]
    assert report["same"]["gram_n"]
    assert report["same"]["sgd"]


# -- fork -----------------------------------------------------------------------

_FORK_X = np.random.default_rng(1).standard_normal((20000, 200))


def _fork_job(_):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = LAEStream(5, 1.0, n_threads=2).partial_fit(_FORK_X)
        est = LAEPCA(5, random_state=0, n_threads=2).fit(_FORK_X)
    return (stream.gram_, est.components_,
            [str(w.message) for w in caught
             if issubclass(w.category, RuntimeWarning)])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_runs_on_one_thread_instead_of_hanging():
    """GNU libgomp's pool does not survive fork: the parent runs parallel
    passes, then a forked worker runs the same without hanging (it falls
    back to one thread, and says why) and gets the same answer."""
    gram, comps, _ = _fork_job(0)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        (gram_c, comps_c, messages), = pool.map_async(
            _fork_job, [0]).get(timeout=120)
    np.testing.assert_allclose(gram_c, gram, rtol=1e-12,
                               atol=1e-12 * np.abs(gram).max())
    np.testing.assert_allclose(np.abs(comps_c), np.abs(comps), atol=1e-10)
    assert any("forked" in m and "'spawn'" in m for m in messages), messages


def test_n_threads_too_large_is_rejected():
    with pytest.raises(ValueError, match=r"The 'n_threads' parameter of solve "
                                         r"must be None or an int in the "
                                         r"range \[1, 65536\]\. Got 2147483648"):
        solve(np.eye(3), 1, 0.1, n_threads=2**31)


def test_stream_fed_by_threads_counts_every_sample():
    """Issue #13: one LAEStream (gram mode) fed by 4 threads: every sample
    is counted and the Gram matrix is the one-shot centered Gram."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(2)
    chunks = [rng.standard_normal((300, 12)) + i for i in range(40)]
    stream = LAEStream(3, 1.0)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(stream.partial_fit, chunks))
    X = np.vstack(chunks)
    Xc = X - X.mean(axis=0)
    assert stream.n_samples_seen_ == 12000
    np.testing.assert_allclose(stream.gram_, Xc.T @ Xc, rtol=1e-10,
                               atol=1e-9 * np.abs(Xc.T @ Xc).max())


# -- scale ----------------------------------------------------------------------

def _data(n=400, m=12, seed=3):
    return scaled_gaussian(n, m, np.linspace(4.0, 0.5, m), seed=seed)


@pytest.mark.parametrize("method", laefast.METHODS)
@pytest.mark.parametrize("dtype,scales", [
    (np.float64, (1e-300, 1e-150, 1e150, 1e300)),
    (np.float32, (1e-30, 1e-18, 1e18, 1e30)),
])
def test_solve_is_scale_invariant(method, dtype, scales):
    """solve on f C0 with lam = f lam0: the components and f times the
    eigenvalues of np.linalg.eigh(C0), converged and without a warning, at
    every scale f the dtype can hold C at."""
    X = _data()
    Xc = X - X.mean(axis=0)
    C0 = Xc.T @ Xc
    w, V = np.linalg.eigh(C0)
    top = V[:, ::-1][:, :3].T
    lam0 = 0.2 * w[-3]
    tol = 1e-10 if dtype == np.float64 else 1e-5
    for f in scales:
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # converged, no warning
            r = solve((C0 * f).astype(dtype), 3, lam0 * f, method=method,
                      tol=tol, max_iter=200_000, random_state=0)
        assert r.converged
        assert _sine(r.components, top) < (1e-6 if dtype == np.float64
                                          else 3e-3), (f, method)
        np.testing.assert_allclose(r.eigenvalues / f, w[::-1][:3],
                                   rtol=1e-6 if dtype == np.float64 else 3e-2)


@pytest.mark.parametrize("method", ["auto", "exact-tied", "untied"])
@pytest.mark.parametrize("dtype,scale", [
    (np.float64, 1e-150), (np.float64, 1e-100), (np.float64, 1e90),
    (np.float64, 1e150), (np.float32, 1e-18), (np.float32, 1e18),
])
def test_laepca_is_scale_invariant(method, dtype, scale):
    """Issue #4, #5: LAEPCA(oversample=0) on X * scale gives the components
    and variance ratios it gives at scale 1, converges, and warns of
    nothing (no residual underflow to 0 or overflow to inf)."""
    X = _data(n=600, m=20)
    base = LAEPCA(4, method=method, oversample=0, random_state=0).fit(
        X.astype(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = LAEPCA(4, method=method, oversample=0, random_state=0).fit(
            (X * scale).astype(dtype))
    assert est.converged_
    Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2][:4]
    tol = 1e-7 if dtype == np.float64 else 1e-3
    assert _sine(est.components_, Vt) < tol
    np.testing.assert_allclose(est.explained_variance_ratio_,
                               base.explained_variance_ratio_,
                               rtol=1e-9 if dtype == np.float64 else 1e-4)
    np.testing.assert_allclose(est.explained_variance_ / scale ** 2,
                               base.explained_variance_,
                               rtol=1e-9 if dtype == np.float64 else 1e-4)


def test_squares_that_underflow_are_an_error_not_zero_variance():
    X = _data() * 1e-200
    for fit_call in (lambda: LAEPCA(3).fit(X),
                     lambda: fit(X, 2, 0.0, path="data"),
                     lambda: laefast.GramAccumulator().add(X)):
        with pytest.raises(ValueError, match=r"squares of its deviations "
                                             r"underflow float64 to 0"):
            fit_call()
    # constant data are not an error: every variance is 0
    est = LAEPCA(2).fit(np.full((10, 4), 3.0))
    assert not est.explained_variance_.any()


def test_float32_gram_blocks_that_overflow_are_redone_in_float64():
    X = (_data(n=5000) * 1e18).astype(np.float32)
    acc = laefast.GramAccumulator().add(X)
    X64 = X.astype(np.float64)
    Xc = X64 - X64.mean(axis=0)
    np.testing.assert_allclose(acc.gram_, Xc.T @ Xc, rtol=1e-6,
                               atol=1e-9 * np.abs(Xc.T @ Xc).max())


# -- degenerate data and parameters ---------------------------------------------

@pytest.mark.parametrize("shape", [(13, 25), (18, 18)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", laefast.METHODS + ("auto",))
def test_laepca_on_singular_data(shape, dtype, method):
    """Issue #6: rank-deficient data (n <= m) in every method, lam='auto':
    no LinAlgError, and the variances of np.linalg.eigh."""
    for seed in (8, 11, 27):
        X = np.random.default_rng(seed).standard_normal(shape)
        est = LAEPCA(3, method=method, random_state=0).fit(X.astype(dtype))
        Xc = X - X.mean(axis=0)
        w = np.linalg.eigvalsh(Xc.T @ Xc)[::-1][:3] / (shape[0] - 1)
        np.testing.assert_allclose(est.explained_variance_, w,
                                   rtol=1e-8 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("method", laefast.METHODS)
def test_a_start_that_meets_the_stopping_rule_is_still_trained(method):
    """Issue #7: a tied start has ||W1 - W2^T|| = 0; the run still steps
    and returns the answer, not the start."""
    C = _spd(6)
    rng = np.random.default_rng(0)
    W2 = rng.standard_normal((6, 3)) * 0.3
    r = solve(C, 3, 1.0, method=method, init=(W2.T, W2), max_iter=200_000,
              tol=1e-10)
    assert r.n_iter >= 1
    w, V = np.linalg.eigh(C)
    assert _sine(r.components, V[:, ::-1][:, :3].T) < 1e-6


@pytest.mark.parametrize("method", ["sync", "tied", "exact-sync"])
def test_lam_zero_reads_out_the_ritz_pairs(method):
    """Issue #8: lam = 0 with a method that stops on the step: the
    eigenpairs of np.linalg.eigh, none collapsed, not inf."""
    C = _spd(7, seed=1)
    w, V = np.linalg.eigh(C)
    r = solve(C, 3, 0.0, method=method, tol=1e-12, max_iter=200_000)
    assert r.readout == "ritz" and r.converged
    assert not r.collapsed.any()
    np.testing.assert_allclose(r.eigenvalues, w[::-1][:3], rtol=1e-8)
    assert _sine(r.components, V[:, ::-1][:, :3].T) < 1e-6
    res = fit(np.ones((10, 4)), 2, 0.0, method="sync")      # issue #14
    assert not res.eigenvalues.any()


@pytest.mark.parametrize("method", ["untied", "exact-untied", "exact-tied"])
def test_lam_zero_rejected_where_the_stopping_rule_needs_lam(method):
    with pytest.raises(ValueError, match=rf"lam=0 cannot be used with "
                                         rf"method='{method}': its stopping "
                                         rf"rule"):
        solve(_spd(4), 2, 0.0, method=method)
    with pytest.raises(ValueError, match=r"lam=0 cannot be used"):
        fit(np.ones((10, 4)), 2, 0.0, method=method)     # issue #14


def test_loose_tol_never_marks_a_live_component_collapsed():
    """Issue #9: lam = 0.5 sigma_3^2 with tol = 0.3: component 3 is live
    (its variance is twice lam), so it is neither reported collapsed nor
    warned about as collapsed; its variance is within the run's accuracy.
    (A run this loose can stop with the third direction less than a
    fraction tol of the way from the saddle point to the minimum, and is
    then told it stopped near a saddle point; this start does not.)"""
    C = _spd(8, seed=2)
    w = np.linalg.eigvalsh(C)[::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", laefast.CollapsedComponentWarning)
        warnings.simplefilter("error", laefast.ConvergenceWarning)
        r = solve(C, 3, 0.5 * w[2], tol=0.3, random_state=0)
    assert not r.collapsed.any()
    assert np.all(r.eigenvalues > 0.5 * w[2])
    # and a component that lam switched off still is reported collapsed
    with pytest.warns(laefast.CollapsedComponentWarning, match=r"\[2\] "
                                                                 r"collapsed"):
        r = solve(C, 3, 1.5 * w[2], tol=1e-12, max_iter=100_000)
    assert r.collapsed.tolist() == [False, False, True]


@pytest.mark.parametrize("method", laefast.METHODS)
def test_a_run_stopped_at_a_saddle_point_is_not_converged(method):
    """A start with no weight on the second principal direction (C
    diagonal, so rounding never brings it in) ends at a saddle point of the
    loss: directions 1 and 3 learned, the third latent at zero although
    sigma_2^2 = 5 > lam.  That is reported as not converged, with a
    ConvergenceWarning that names it, not as a collapse under lam."""
    m, k = 30, 3
    ev = 10.0 * 2.0 ** -np.arange(m)             # 10, 5, 2.5, 1.25, ...
    lam = 1.7                                    # three directions live
    W2 = 0.1 * np.random.default_rng(0).standard_normal((m, k))
    W2[1] = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = solve(np.diag(ev), k, lam, method=method, init=(W2.T.copy(), W2),
                  tol=1e-10, max_iter=100_000)
    assert [w.category for w in caught] == [laefast.ConvergenceWarning]
    assert re.search(r"saddle point: C has 3 eigenvalues of at least "
                     r"[0-9.]+ > lam = 1\.7 but only 2 components were "
                     r"learned; the decoder's singular values are near zero "
                     r"for components \[2\]", str(caught[0].message))
    bound = float(re.search(r"at least ([0-9.]+)",
                            str(caught[0].message)).group(1))
    # The printed bound is rounded down: still at most lambda_3.
    assert lam < bound <= ev[2]
    assert not r.converged
    assert r.collapsed.tolist() == [False, False, True]
    np.testing.assert_allclose(r.eigenvalues[:2], [ev[0], ev[2]], rtol=1e-6)
    # From a random start the same problem converges with nothing missing.
    r = solve(np.diag(ev), k, lam, method=method, tol=1e-10,
              max_iter=100_000, random_state=0)
    assert r.converged and not r.collapsed.any()


def test_a_saddle_point_is_found_where_rounding_began_the_missing_direction():
    """Along a rotated basis rounding brings a little of the missing
    direction back, so its component's decoder singular value is tiny but
    not zero, and its variance u^T C u is near sigma_2^2 > lam.  Only
    components with singular values above the remnant level count as
    learned: the run is still at a saddle point, not converged."""
    rng = np.random.default_rng(0)
    m, k, lam = 8, 4, 2.0
    ev = np.array([5.0, 3.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1])
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    C = (U * ev) @ U.T
    C = (C + C.T) / 2
    W2 = 0.1 * rng.standard_normal((m, k))
    W2 -= np.outer(U[:, 1], U[:, 1] @ W2)
    with pytest.warns(laefast.ConvergenceWarning,
                      match=r"saddle point: C has 2 eigenvalues of at least "
                            r"[0-9.]+ > lam = 2 but only 1 component was "
                            r"learned"):
        r = solve(C, k, lam, method="exact-tied", init=(W2.T.copy(), W2),
                  tol=1e-10)
    assert not r.converged
    # The same read-out, decoder made by hand: u_1 learned, u_2's column at
    # 1e-7 (below the remnant level sqrt(tol) = 1e-5).
    from laefast._readout import readout

    def times(Q):
        return C @ Q
    W2 = np.column_stack([U[:, 0] * np.sqrt(1 - lam / ev[0]),
                          U[:, 1] * 1e-7])
    out = readout(W2, lam, 1e-10, times=times, trace=lambda: np.trace(C))
    assert out.missed is not None and out.missed.unlearned.tolist() == [1]
    assert lam < out.missed.bound <= ev[1] * (1 + 1e-12)
    # A live component at lam's edge (sigma_2^2 = lam (1 + 5e-5), its s^2
    # = 5e-5 below a loose tol = 1e-4) is not a missed one: lam / (1 - tol)
    # is above its eigenvalue.
    lam = ev[1] / (1 + 5e-5)
    W2 = np.column_stack([U[:, 0] * np.sqrt(1 - lam / ev[0]),
                          U[:, 1] * np.sqrt(1 - lam / ev[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = readout(W2, lam, 1e-4, times=times, trace=lambda: np.trace(C))
    assert out.missed is None and not out.collapsed.any()
    np.testing.assert_allclose(out.eigenvalues, ev[:2], rtol=1e-12)


@pytest.mark.parametrize("tol", [0.5, 0.99, 1.0, 2.0])
def test_a_run_at_the_minimum_is_no_saddle_point_at_a_loose_tol(tol):
    """At tol >= sqrt(0.9) every singular value of this minimum is below
    the remnant level sqrt(tol); none may pass for one at s = 0."""
    rng = np.random.default_rng(0)
    m, k, lam = 6, 2, 1.0
    ev = np.array([10.0, 5.0, 0.5, 0.3, 0.2, 0.1])
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    C = (U * ev) @ U.T
    C = (C + C.T) / 2
    W2 = U[:, :k] * np.sqrt(1 - lam / ev[:k])
    for method in laefast.METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = solve(C, k, lam, method=method, tol=tol,
                      init=(W2.T.copy(), W2.copy()))
        assert r.converged, method


_LESSER_EV = 10.0 * 2.0 ** -np.arange(12)        # 10, 5, 2.5, 1.25, ...


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", laefast.METHODS)
def test_a_run_that_learned_a_lesser_direction_is_not_converged(method,
                                                                 dtype):
    """Six directions above lam, k = 3, a start of the caller's with no
    weight on the second principal direction (C diagonal: rounding never
    brings it in).  Every latent is learned, but the third learns
    sigma_4^2 = 1.25 in place of sigma_2^2 = 5: a saddle point with no
    latent near zero.  The direction left out, orthogonal to the learned
    ones, has a variance above the smallest one learned: not converged,
    one ConvergenceWarning that says so."""
    k, lam = 3, 0.05
    C = np.diag(_LESSER_EV).astype(dtype)
    W2 = 0.1 * np.random.default_rng(0).standard_normal((12, k))
    W2[1] = 0.0
    W2 = W2.astype(dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = solve(C, k, lam, method=method, init=(W2.T.copy(), W2),
                  tol=1e-10 if dtype == np.float64 else 1e-6,
                  max_iter=200_000)
    saddle = [w for w in caught if "saddle" in str(w.message)]
    assert len(saddle) == 1 and all(
        w.category is laefast.ConvergenceWarning for w in caught)
    message = str(saddle[0].message)
    assert re.search(r"saddle point: a direction orthogonal to the 3 learned "
                     r"directions has a variance u\^T C u of at least "
                     r"[0-9.]+, above the smallest variance learned "
                     r"\(1\.2[0-9]*\), so they are not C's top 3", message)
    bound = float(re.search(r"at least ([0-9.]+)", message).group(1))
    assert 1.25 < bound <= 5.0
    assert not r.converged
    np.testing.assert_allclose(np.sort(r.eigenvalues)[::-1],
                               _LESSER_EV[[0, 2, 3]], rtol=1e-2)


def test_a_learned_span_is_checked_only_from_a_start_of_the_callers(
        monkeypatch):
    """The check costs up to 17 products with C: a random start (which
    has weight on every direction) does not pay for it."""
    import laefast._readout as readout_module

    def fail(*args, **kwargs):
        raise AssertionError("the span check ran")
    monkeypatch.setattr(readout_module, "_missed_by_span", fail)
    r = solve(np.diag(_LESSER_EV), 3, 0.05, tol=1e-10, random_state=0)
    assert r.converged
    np.testing.assert_allclose(r.eigenvalues, _LESSER_EV[:3], rtol=1e-6)
    with pytest.raises(AssertionError, match="the span check ran"):
        W2 = np.eye(12)[:, :3] * 0.5
        solve(np.diag(_LESSER_EV), 3, 0.05, init=(W2.T.copy(), W2))


def test_a_span_near_a_saddle_point_is_told_from_one_short_of_the_minimum():
    """The read-out by hand (rotated basis).  u_1 and u_3 learned, the
    second tilted by phi towards u_2 (sigma_2^2 = 6 > sigma_3^2 = 3): near
    a saddle point, whatever the small tilt.  u_1 and u_2 learned, tilted
    by phi towards u_3, or the halfway mixture of u_2 and u_3: a run short
    of its minimum, whose residual grows with the tilt as fast as the
    variance left outside could: no alarm.  Nor at phi = 1 (57 degrees),
    where the direction left out has more variance than u_2's tilted
    one (5.1 against 3.9) but the span is far from any invariant one
    (a residual of 1.4): not near a saddle point."""
    from laefast._readout import readout
    rng = np.random.default_rng(3)
    m, lam = 9, 0.5
    ev = np.array([10.0, 6.0, 3.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.1])
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    C = (U * ev) @ U.T
    C = (C + C.T) / 2

    def times(Q):
        return C @ Q
    cases = [(2, 1, 0.0, True), (2, 1, 0.05, True), (2, 1, 0.2, True),
             (1, 2, 0.0, False), (1, 2, 0.05, False), (1, 2, 0.3, False),
             (1, 2, np.pi / 4, False), (1, 2, 1.0, False)]
    for main, toward, phi, saddle in cases:
        u2 = np.cos(phi) * U[:, main] + np.sin(phi) * U[:, toward]
        v2 = u2 @ C @ u2
        W2 = np.column_stack([U[:, 0] * np.sqrt(1 - lam / ev[0]),
                              u2 * np.sqrt(1 - lam / v2)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = readout(W2, lam, 1e-10, times=times,
                          trace=lambda: np.trace(C), check_span=True)
            unchecked = readout(W2, lam, 1e-10, times=times,
                                trace=lambda: np.trace(C))
        assert unchecked.missed is None
        assert (out.missed is not None) == saddle, (main, phi)
        if saddle:
            assert out.missed.unlearned.size == 0
            np.testing.assert_allclose(out.missed.smallest, v2, rtol=1e-12)
            # at most the largest variance orthogonal to the span
            outside = (np.sin(phi) ** 2 * ev[main]
                       + np.cos(phi) ** 2 * ev[toward])
            assert v2 < out.missed.bound <= outside * (1 + 1e-12)


def test_a_latent_that_lam_is_switching_off_is_no_direction_learned():
    """Review of the span check: k = 4 with three eigenvalues above lam.
    The fourth latent, on u_6 (variance 0.1 < lam = 1.2), decays slowly
    and a loose tol stops the run before it reaches the remnant level.
    Its direction is no direction learned: u_4 (variance 1 < lam) outside
    the span is no missed direction either.  But where the direction
    outside is above lam (u_3 left out, 2.0 > lam), the latent on a
    switched-off direction should hold it: at or near a saddle point."""
    from laefast._readout import readout
    ev = np.array([10.0, 5.0, 2.0, 1.0, 0.5, 0.1])
    C = np.diag(ev)
    lam = 1.2

    def times(Q):
        return C @ Q
    live = np.sqrt(1 - lam / ev[:3])
    W2 = np.zeros((6, 4))
    W2[[0, 1, 2], [0, 1, 2]] = live
    W2[5, 3] = 0.9
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = solve(C, 4, lam, method="tied", init=(W2.T.copy(), W2),
                  tol=1e-3)
    assert not caught and r.converged
    assert 0.0316 < np.linalg.svd(r.W2, compute_uv=False)[3] < 0.1
    # A spare latent beside a principal span tilted by 0.2 rad (u_1
    # towards u_4): the direction left outside has a variance of 1.36 >
    # lam, but the residual (about 1.8) says the span is just short of
    # the minimum (a fuzz of fit runs near the minimum found 26 such
    # false alarms before the residual counted here too).
    u = np.zeros(6)
    u[0], u[3] = np.cos(0.2), np.sin(0.2)
    W2 = np.zeros((6, 4))
    W2[:, 0] = u * np.sqrt(1 - lam / (u @ C @ u))
    W2[[1, 2], [1, 2]] = live[1:]
    W2[5, 3] = 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = readout(W2, lam, 1e-10, times=times, trace=lambda: ev.sum(),
                      check_span=True)
    assert out.missed is None
    W2 = np.zeros((6, 3))
    W2[[0, 1], [0, 1]] = live[:2]
    W2[3, 2] = 0.3                   # u_4 held, u_3 (2.0 > lam) left out
    out = readout(W2, lam, 1e-10, times=times, trace=lambda: ev.sum(),
                  check_span=True)
    assert out.missed is not None and np.isnan(out.missed.smallest)
    assert out.missed.learned == 2 and lam < out.missed.bound <= 2.0
    with pytest.warns(laefast.ConvergenceWarning,
                      match=r"orthogonal to the 2 learned directions has a "
                            r"variance u\^T C u of at least [0-9.]+, above "
                            r"lam = 1\.2, so a latent that holds a "
                            r"direction of variance at most lam should hold "
                            r"it instead"):
        r = solve(C, 3, lam, method="tied", alpha=1e-6,
                  init=(W2.T.copy(), W2), tol=1e-6, max_iter=1)
    assert not r.converged


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e160, 1e300])
def test_the_span_check_holds_at_extreme_scales(scale):
    """Review of the span check: its residual's squares overflowed from
    about 1e154 (the saddle went unseen, with a RuntimeWarning) and
    underflowed below 1e-154 (false alarms)."""
    k, lam = 3, 0.05 * scale
    C = np.diag(_LESSER_EV) * scale
    W2 = 0.1 * np.random.default_rng(0).standard_normal((12, k))
    W2[1] = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = solve(C, k, lam, method="exact-tied", init=(W2.T.copy(), W2),
                  tol=1e-10)
    assert [w.category for w in caught] == [laefast.ConvergenceWarning]
    assert "orthogonal to the 3 learned" in str(caught[0].message)
    assert not r.converged
    # The principal span {u_1, u_2}, u_1 tilted by 0.28 rad towards u_3:
    # no alarm.
    from laefast._readout import readout
    u = np.zeros(12)
    u[0], u[2] = np.cos(0.28), np.sin(0.28)
    v = u @ C @ u
    W2 = np.column_stack([u * np.sqrt(1 - lam / v),
                          np.eye(12)[1] * np.sqrt(1 - lam / C[1, 1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = readout(W2, lam, 1e-10, times=lambda Q: C @ Q,
                      trace=lambda: np.trace(C), check_span=True)
    assert out.missed is None


def test_the_printed_saddle_bound_is_still_a_lower_bound():
    from laefast._driver import format_down
    assert [format_down(x) for x in (10.0, 120.0, 2.9999996, 1.2345678e-7)] \
        == ["10", "120", "2.99999", "1.23456e-07"]
    for x in np.random.default_rng(0).uniform(0, 1, 200) * 10.0 ** \
            np.arange(-100, 100):
        assert float(format_down(x)) <= x


def test_step_rejects_aliased_arrays():
    """Issue #12: W2 = W1.T (k = 1: both layouts at once) or W1 a view of
    C would be read while written."""
    C = _spd(5)
    W1 = np.full((1, 5), 0.1)
    with pytest.raises(ValueError, match=r"W1 and W2 share memory"):
        step(W1, W1.T, C, 0.5, method="untied", alpha=1e-3)
    with pytest.raises(ValueError, match=r"W1 and C share memory"):
        step(C[:1], np.full((5, 1), 0.1), C, 0.5, method="exact-tied")
    C_before = C.copy()
    with pytest.raises(ValueError, match=r"W2 and C share memory"):
        step(np.full((5, 5), 0.1), C, C, 0.5, method="sync", alpha=1e-3)
    np.testing.assert_array_equal(C, C_before)


@pytest.mark.filterwarnings("ignore:.*stopped at max_iter")
@pytest.mark.filterwarnings("ignore:.*collapsed")
def test_history_is_sized_to_the_iterations_run():
    """Issue #16: max_iter=10**9 with history no longer allocates for 10**9
    iterations; records match a run without history, across segments."""
    C = _spd(6)
    r = solve(C, 3, 10.0, history=True, max_iter=10**9)
    assert r.converged and len(r.history["stop"]) == r.n_iter
    for method in ("untied", "tied"):
        a = solve(C, 3, 1.0, method=method, history="weights", tol=1e-12,
                  max_iter=3000, random_state=1)
        b = solve(C, 3, 1.0, method=method, tol=1e-12, max_iter=3000,
                  random_state=1)
        assert a.n_iter == b.n_iter > 1024          # spans two segments
        np.testing.assert_array_equal(a.W2, b.W2)
        np.testing.assert_array_equal(a.history["W2"][-1], a.W2)
        assert a.history["W1"].shape == (a.n_iter, 3, 6)


# -- messages -------------------------------------------------------------------

def test_messages_name_the_input_and_the_remedy():
    with pytest.raises(ValueError, match=r"C must be positive semi-definite "
                                         r".* C\[1, 1\] = -2 is negative"):
        solve(np.diag([1.0, -2.0, 3.0]), 1, 0.1, method="untied")
    with pytest.raises(ValueError, match=r"The 'max_iter' parameter of solve "
                                         r"must be None or an int in the "
                                         r"range \[0, 2\*\*62\]\. Got "
                                         r"9223372036854775808 instead"):
        solve(np.eye(3), 1, 0.1, max_iter=2**63)
    with pytest.raises(ValueError, match=r"The 'n_threads' parameter of fit "
                                         r"must be None or an int"):
        fit(np.ones((5, 3)), 1, 0.1, n_threads=2**31)
    X = _data() * 1e155
    for call in (lambda: LAEPCA(3).fit(X), lambda: fit(X, 2, 1.0)):
        with pytest.raises(ValueError, match=r"Input X has values whose "
                                             r"squares overflow float64 .* "
                                             r"rescale the data"):
            call()


@pytest.mark.parametrize("scale", [1e-150, 1e100, 1e150])
def test_laepca_krylov_rounds_are_scale_invariant(scale):
    """method='auto' on many features runs block Krylov rounds, whose
    orthonormalization squared C's scale (overflow from about 1e77)."""
    X = _data(n=300, m=150, seed=5)
    base = LAEPCA(3, oversample=0, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = LAEPCA(3, oversample=0, random_state=0).fit(X * scale)
    assert est.converged_
    np.testing.assert_allclose(est.explained_variance_ratio_,
                               base.explained_variance_ratio_, rtol=1e-9)
    assert _sine(est.components_, base.components_) < 1e-8


def test_gram_matrix_near_the_top_of_float64():
    """A finite C whose entries sum past float64's range is solved (the
    loops run on C scaled by a power of two); one whose trace overflows is
    an error that says what to do."""
    X = _data()
    Xc = X - X.mean(axis=0)
    C = Xc.T @ Xc
    f = 2.0 ** 1000
    w, V = np.linalg.eigh(C)
    lam = 0.3 * w[-3]
    for method in ("untied", "exact-untied", "exact-tied"):
        r = solve(C * f, 3, lam * f, method=method, tol=1e-10,
                  max_iter=100_000)
        assert r.converged
        np.testing.assert_allclose(r.eigenvalues / f, w[::-1][:3], rtol=1e-6)
    with pytest.raises(ValueError, match=r"C is too large for float64: its "
                                         r"trace overflows .* Rescale it"):
        solve(C * (np.finfo(float).max / np.abs(C).max() / 2), 3, 1.0)
    with pytest.raises(ValueError, match=r"divide it by \d\.\d+e\+15\d "
                                         r"\(a power of two: exact\)"):
        LAEPCA(3).fit(X * 1e155)


def test_accumulator_names_an_iterator():
    chunks = (np.ones((3, 2)) for _ in range(2))
    with pytest.raises(TypeError, match=r"got an iterator \(generator\): "
                                        r"pass its chunks one at a time"):
        laefast.GramAccumulator().add(chunks)


def test_laepca_fed_by_threads_counts_every_sample():
    """Issue #11 item 3: one LAEPCA fed by partial_fit from 4 threads takes
    the batches one at a time (a per-estimator lock): none is lost."""
    from concurrent.futures import ThreadPoolExecutor
    from laefast import LAEPCA
    rng = np.random.default_rng(5)
    chunks = [rng.standard_normal((200, 10)) * np.linspace(3, 1, 10) + i
              for i in range(24)]
    est = LAEPCA(3, random_state=0)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(est.partial_fit, chunks))
    X = np.vstack(chunks)
    assert est.n_samples_seen_ == X.shape[0]
    w = np.linalg.eigvalsh(np.cov(X.T))[::-1][:3]
    np.testing.assert_allclose(est.explained_variance_, w, rtol=1e-8)


def test_laepca_partial_fit_of_an_iterator_says_what_to_do():
    """Issue #11 row 15: a generator is not a batch; the message says how
    to feed batches, and nothing is fitted."""
    from laefast import LAEPCA
    X = np.random.default_rng(0).standard_normal((50, 4))
    est = LAEPCA(2)
    with pytest.raises(TypeError, match=r"one batch.*got an iterator "
                                        r"\(generator\).*once per batch"):
        est.partial_fit(row for row in [X])
    assert not hasattr(est, "components_")


@pytest.mark.parametrize("preset", [{}, {"GOMP_SPINCOUNT": "300000"},
                                    {"OMP_WAIT_POLICY": "active"}])
def test_import_leaves_the_openmp_environment_as_it_found_it(preset):
    """laefast sets GOMP_SPINCOUNT only while its OpenMP runtime loads, and
    only when the user chose neither it nor OMP_WAIT_POLICY: afterwards the
    environment (which child processes and other libraries read) is the
    user's own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(preset)
    code = ("import os, json, laefast\n"
            "print(json.dumps({k: os.environ.get(k) for k in "
            "('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY')}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout
    expected = {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": None}
    expected.update(preset)
    assert json.loads(out.strip().splitlines()[-1]) == expected
