"""The compiled kernels against laefast.reference, iterate by iterate.

A kernel-contract file: it drives the kernels through the public step,
solve, exact_w1 and exact_w2, and reads one private fact of the compiled
module laefast._solvers, ``exact_w1_threads``, to make sure the parallel
W1 test's problem is above the cutoff where the latent solves run on two
threads (nothing public says how many threads a call used).
"""

import itertools
import warnings

import numpy as np
import pytest

import laefast
from laefast import reference
from laefast.metrics import max_principal_sine

from _helpers import make_problem, rel_error, start_weights

GD = ("untied", "sync", "tied")


def _setup(method, dtype=np.float64):
    X, C, U, s = make_problem()
    m, k = C.shape[0], 3
    lam = 0.2 * s[k - 1] ** 2
    alpha = 0.3 / s[0] ** 2 if method in GD else None
    W1, W2 = start_weights(m, k)
    return C.astype(dtype), W1, W2, lam, alpha


@pytest.mark.parametrize("method", laefast.METHODS)
def test_step_matches_reference_for_100_iterations(method):
    C, W1, W2, lam, alpha = _setup(method)
    ref = reference.iterates(method, C, W1, W2, lam, alpha, tol=-1.0)
    w1, w2 = W1.copy(), W2.copy()
    if method == "tied":
        w1 = np.ascontiguousarray(w2.T)
    for t in range(100):
        stop = laefast.step(w1, w2, C, lam, method=method, alpha=alpha)
        r1, r2, rstop = next(ref)
        assert rel_error(w1, r1) < 1e-10, (t, rel_error(w1, r1))
        assert rel_error(w2, r2) < 1e-10, (t, rel_error(w2, r2))
        assert stop == pytest.approx(rstop, rel=1e-8, abs=1e-14)


@pytest.mark.parametrize("method", laefast.METHODS)
@pytest.mark.parametrize("n_iter", [1, 2, 17, 100])
def test_solve_loop_matches_reference(method, n_iter):
    # The fused loop (W1 C carried between steps) must agree with the
    # reference after exactly n_iter iterations.
    C, W1, W2, lam, alpha = _setup(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", laefast.ConvergenceWarning)
        # A few steps from the N(0, 1) start are far from a minimum: the
        # read-out says so, which is not what this test is about.
        warnings.filterwarnings("ignore", "decoder singular values",
                                RuntimeWarning)
        res = laefast.solve(C, 3, lam, method=method, alpha=alpha, tol=0.0,
                            max_iter=n_iter, init=(W1, W2))
    ref = reference.run(method, C, W1, W2, lam, alpha, tol=0.0,
                        max_iter=n_iter)
    assert res.n_iter == ref.n_iter == n_iter
    assert rel_error(res.W1, ref.W1) < 1e-10
    assert rel_error(res.W2, ref.W2) < 1e-10
    assert res.stop == pytest.approx(ref.stop, rel=1e-8)


@pytest.mark.parametrize("method", laefast.METHODS)
def test_float32_tracks_reference(method):
    C, W1, W2, lam, alpha = _setup(method, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", laefast.ConvergenceWarning)
        res = laefast.solve(C, 3, lam, method=method, alpha=alpha, tol=0.0,
                            max_iter=100, init=(W1, W2))
    ref = reference.run(method, C.astype(np.float64), W1, W2, lam, alpha,
                        tol=0.0, max_iter=100)
    assert res.W1.dtype == res.W2.dtype == np.float32
    assert res.singular_values.dtype == np.float32
    # float32 rounding (eps 6e-8) accumulated over 100 iterations.
    assert rel_error(res.W1, ref.W1) < 2e-5
    assert rel_error(res.W2, ref.W2) < 2e-5


@pytest.mark.parametrize("method", laefast.METHODS)
def test_history_is_recorded_in_kernel(method):
    C, W1, W2, lam, alpha = _setup(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", laefast.ConvergenceWarning)
        res = laefast.solve(C, 3, lam, method=method, alpha=alpha, tol=0.0,
                            max_iter=30, init=(W1, W2), history=True)
    stops = [s for _, _, s in itertools.islice(
        reference.iterates(method, C, W1, W2, lam, alpha, tol=0.0), 30)]
    np.testing.assert_allclose(res.history["stop"], stops, rtol=1e-8)
    assert len(res.history["objective"]) == 30
    last = laefast.metrics.objective(C, res.W1, res.W2, lam)
    assert res.history["objective"][-1] == pytest.approx(last, rel=1e-10)


def test_exact_w1_matches_kronecker_solve():
    _, C, _, s = make_problem(m=12, k=4)
    rng = np.random.default_rng(5)
    W2 = rng.standard_normal((12, 4))
    lam = 0.1 * s[3] ** 2
    expected = reference.exact_w1(C, W2, lam)
    np.testing.assert_allclose(laefast.exact_w1(C, W2, lam), expected,
                               rtol=1e-10, atol=1e-12)
    W1 = rng.standard_normal((4, 12))
    np.testing.assert_allclose(laefast.exact_w2(C, W1, lam),
                               reference.exact_w2(C, W1, lam),
                               rtol=1e-10, atol=1e-12)


def test_exact_w1_with_rank_deficient_w2():
    # W2^T W2 singular: d_i = 0 for one latent; lam > 0 keeps it solvable.
    _, C, _, s = make_problem(m=6)
    rng = np.random.default_rng(2)
    W2 = rng.standard_normal((6, 3))
    W2[:, 2] = W2[:, 0]
    lam = 0.5
    np.testing.assert_allclose(laefast.exact_w1(C, W2, lam),
                               reference.exact_w1(C, W2, lam),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not laefast.openmp_enabled(), reason="built without OpenMP")
def test_parallel_exact_w1_matches_serial_and_kronecker():
    # m=120, k=8: 8 * 120^3 / 3 flops, enough for the parallel latent solves.
    m, k = 120, 8
    assert laefast._solvers.exact_w1_threads(m, k, 2) == 2
    _, C, _, s = make_problem(m=m, n=400, k=k, seed=3)
    rng = np.random.default_rng(4)
    W2 = rng.standard_normal((m, k))
    lam = 0.05 * s[k - 1] ** 2
    serial = laefast.exact_w1(C, W2, lam, n_threads=1)
    parallel = laefast.exact_w1(C, W2, lam, n_threads=2)
    # Each latent's solve is the same computation on any thread; only the
    # BLAS thread count of the GEMMs around them may differ.
    np.testing.assert_allclose(parallel, serial, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(parallel, reference.exact_w1(C, W2, lam),
                               rtol=1e-8, atol=1e-12)


@pytest.mark.skipif(not laefast.openmp_enabled(), reason="built without OpenMP")
def test_parallel_exact_w1_with_more_latents_than_a_round():
    # k = 5 on 2 threads: the latents are dealt round robin in one parallel
    # region, thread 0 taking three; each solve is the serial one, bit for
    # bit (the GEMMs around them run on one BLAS thread either way here).
    m, k = 160, 5
    assert laefast._solvers.exact_w1_threads(m, k, 2) == 2
    _, C, _, s = make_problem(m=m, n=400, k=k, seed=5)
    W2 = np.random.default_rng(6).standard_normal((m, k))
    lam = 0.05 * s[k - 1] ** 2
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, user_api="blas"):
        serial = laefast.exact_w1(C, W2, lam, n_threads=1)
        parallel = laefast.exact_w1(C, W2, lam, n_threads=2)
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_allclose(parallel, reference.exact_w1(C, W2, lam),
                               rtol=1e-8, atol=1e-12)


@pytest.mark.skipif(not laefast.openmp_enabled(), reason="built without OpenMP")
def test_parallel_exact_untied_agrees_with_one_thread():
    m, k = 120, 8
    _, C, U, s = make_problem(m=m, n=400, k=k, seed=3)
    lam = 0.05 * s[k - 1] ** 2
    runs = [laefast.solve(C, k, lam, method="exact-untied", random_state=0,
                          tol=1e-10, n_threads=t) for t in (1, 2)]
    assert runs[0].n_iter == runs[1].n_iter
    np.testing.assert_allclose(runs[1].W2, runs[0].W2, rtol=1e-9, atol=1e-12)
    assert max_principal_sine(runs[1].components.T, U[:, :k]) < 1e-6


def test_parallel_exact_w1_names_the_failing_latent():
    # lam = 0 and C of rank 2: every d_i C is singular, so latent 0 fails
    # first, whatever thread gets it.
    m, k = 120, 4
    rng = np.random.default_rng(0)
    B = rng.standard_normal((m, 2))
    C = B @ B.T
    W2 = rng.standard_normal((m, k))
    with pytest.raises(np.linalg.LinAlgError, match="d_0 C"):
        laefast.exact_w1(C, W2, 0.0, n_threads=2)


@pytest.mark.parametrize("method", laefast.METHODS)
def test_full_rank_k_equals_m(method):
    X, C, U, s = make_problem(m=4, n=100)
    lam = 0.1 * s[-1] ** 2
    alpha = 0.3 / s[0] ** 2 if method in GD else None
    res = laefast.solve(C, 4, lam, method=method, alpha=alpha, tol=1e-10,
                        random_state=0)
    assert res.converged
    assert laefast.metrics.u_error(res.components.T, U) < 1e-5
    np.testing.assert_allclose(res.singular_values, s, rtol=1e-6)
