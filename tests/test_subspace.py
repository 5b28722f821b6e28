"""Block Lanczos (laefast._subspace.block_lanczos) on explicit matrices,
against numpy.linalg.eigh: convergence, thick restarts, and the spacing of
its convergence checks."""

import warnings

import numpy as np
import pytest

from laefast import CollapsedComponentWarning, _subspace
from laefast._subspace import _MAX_CHECK_GAP, _check_gap, block_lanczos


def _matrix(m, decay, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    d = decay ** np.arange(m)
    return (U * d) @ U.T, d


def _start(m, w, seed=1):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, w)))
    return np.asfortranarray(Q)


def _sine(V, U):
    """Largest principal-angle sine between the spans of V and U."""
    Qv, _ = np.linalg.qr(V)
    return float(np.linalg.norm(Qv - U @ (U.T @ Qv), 2))


@pytest.mark.parametrize("max_columns", [None, 24, 30])
def test_reaches_eigh_with_and_without_thick_restarts(max_columns):
    # max_columns 24 and 30 restart the space several times (the check
    # before each restart supplies its Ritz vectors); None never does.
    m, w, k = 300, 10, 6
    C, d = _matrix(m, 0.93)
    theta_ref, U = np.linalg.eigh(C)
    calls = []
    V, theta, res, products, stopped = block_lanczos(
        lambda Q: C @ Q, _start(m, w), k, 1e-13, 500, 0.0, 2,
        on_round=lambda p, r: calls.append(p), max_columns=max_columns)
    assert stopped == "tol" and res <= 1e-12
    np.testing.assert_allclose(theta[:k], theta_ref[::-1][:k], rtol=1e-12)
    assert _sine(V[:, :k], U[:, ::-1][:, :k]) < 1e-10
    # V is orthonormal, and theta its Rayleigh quotients.
    np.testing.assert_allclose(V.T @ V, np.eye(w), atol=1e-12)
    np.testing.assert_allclose(np.diag(V.T @ C @ V), theta, rtol=1e-12)
    if max_columns is not None:
        assert 2 * products > max_columns      # it did restart


def test_checks_are_spaced_by_the_measured_rate(monkeypatch):
    m, w, k = 400, 10, 10
    C, _ = _matrix(m, 0.9, seed=2)
    ritz = []
    real = _subspace.small_eigh

    def counting(S):
        if S.shape[0] >= w:                 # the Rayleigh-Ritz solves
            ritz.append(S.shape[0])
        return real(S)

    monkeypatch.setattr(_subspace, "small_eigh", counting)
    history = []

    def stop(hist, columns):
        history[:] = hist
        return None

    V, theta, res, products, stopped = block_lanczos(
        lambda Q: C @ Q, _start(m, w), k, 1e-14, 500, 0.0, 2,
        stop_early=stop)
    assert stopped == "tol"
    # Fewer Rayleigh-Ritz solves than products once the space holds w
    # columns, and the gaps between checks stay within the cap.
    first = w // 2
    assert len(ritz) < products - first + 1
    seen = [p for p, _ in history]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert max(np.diff(seen)) <= _MAX_CHECK_GAP
    assert max(np.diff(seen)) > 1
    np.testing.assert_allclose(theta, np.linalg.eigvalsh(C)[::-1][:w],
                               rtol=1e-12)


def test_check_gap():
    tol = 1e-15
    cap = _MAX_CHECK_GAP
    assert _check_gap([], tol, cap) == 1
    assert _check_gap([(10, 1e-3)], tol, cap) == 1
    # A slow rate (0.9 per product): every product is checked.
    assert _check_gap([(10, 1e-3), (11, 0.9e-3)], tol, cap) == 1
    # No gain, or already below tol: the next product.
    assert _check_gap([(10, 1e-3), (11, 2e-3)], tol, cap) == 1
    assert _check_gap([(10, 1e-3), (11, 1e-16)], tol, cap) == 1
    # A rate of 0.1 per product from 1e-5 needs 10 more: 5, half of them.
    assert _check_gap([(10, 1e-4), (11, 1e-5)], tol, cap) == 5
    # Over two products at 0.1 each: the same rate.
    assert _check_gap([(9, 1e-3), (11, 1e-5)], tol, cap) == 5
    # Far from tol, the gap is capped.
    assert _check_gap([(10, 0.5), (11, 0.25)], tol, cap) == cap


def test_steps_to_reach():
    # From 1e-3 to 1e-5 over 2 steps: 10x per step; 1e-9 is 4 steps on.
    assert _subspace.steps_to_reach((3, 1e-3), (5, 1e-5), 1e-9) == \
        pytest.approx(4.0)
    # No fall, or a residual of 0: no rate.
    assert _subspace.steps_to_reach((3, 1e-3), (5, 1e-3), 1e-9) is None
    assert _subspace.steps_to_reach((3, 1e-3), (5, 0.0), 1e-9) is None
    # A target of 0 (tol=0) is never reached, and says so without a
    # NumPy divide-by-zero warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _subspace.steps_to_reach((3, 1e-3), (5, 1e-5), 0.0) == np.inf
    # The check gap far from a target of 0 is the cap.
    assert _check_gap([(10, 1e-4), (11, 1e-5)], 0.0, _MAX_CHECK_GAP) == \
        _MAX_CHECK_GAP


def test_max_check_gap_one_checks_every_product():
    # The driver's setting on C, where the switch to the dense solve reads
    # the rate off the last four checks.
    m, w, k = 200, 10, 10
    C, _ = _matrix(m, 0.9, seed=4)
    history = []

    def stop(hist, columns):
        history[:] = hist
        return None

    *_, products, stopped = block_lanczos(
        lambda Q: C @ Q, _start(m, w), k, 1e-14, 500, 0.0, 2,
        stop_early=stop, max_check_gap=1)
    seen = [p for p, _ in history]
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    assert _check_gap([(10, 0.5), (11, 0.25)], 1e-15, cap=1) == 1


def test_max_columns_below_a_restart_is_raised():
    # A space capped below w + block columns would restart before it held
    # w Ritz vectors; the cap is raised to w + block instead.
    m, w, k = 13, 5, 1
    C, _ = _matrix(m, 0.6, seed=5)
    V, theta, res, products, stopped = block_lanczos(
        lambda Q: C @ Q, _start(m, w), k, 1e-12, 2, 0.0, 4, max_columns=6)
    assert products == 2 and V.shape == (m, w)
    np.testing.assert_allclose(V.T @ V, np.eye(w), atol=1e-12)
    np.testing.assert_allclose(np.diag(V.T @ C @ V), theta, rtol=1e-12)


# -- the random start of LAEPCA and LAEStream ------------------------------------

@pytest.mark.parametrize("m, k", [(1, 1), (2, 2), (20, 20), (300, 12)])
def test_random_start_basis_is_orthonormal_and_reproducible(m, k):
    from laefast._driver import initial_weights
    for seed in range(30):
        Q = initial_weights(None, m, k, None, seed, basis=True).W2
        assert Q.shape == (m, k) and Q.flags.f_contiguous
        np.testing.assert_allclose(Q.T @ Q, np.eye(k), rtol=0, atol=1e-14)
        again = initial_weights(None, m, k, None, seed, basis=True).W2
        np.testing.assert_array_equal(Q, again)


def test_random_start_falls_back_to_qr_when_a_direction_is_lost(monkeypatch):
    # Cholesky-QR drops a direction lost to rounding (a nearly square,
    # ill-conditioned draw): the start must still have k columns.
    from laefast import _driver
    monkeypatch.setattr(_driver, "orthonormal_against",
                        lambda Z, K, drop: Z[:, :-1])
    Q = _driver.initial_weights(None, 6, 6, None, 0, basis=True).W2
    assert Q.shape == (6, 6)
    np.testing.assert_allclose(Q.T @ Q, np.eye(6), rtol=0, atol=1e-14)


def test_a_start_of_one_block_gives_the_same_iteration():
    # block_lanczos reads only the start's first block: given that block
    # and width=w it runs the same iteration, bit for bit, as given all w
    # columns; a start narrower than the block is refused.
    m, w, k, block = 200, 10, 6, 2
    C, _ = _matrix(m, 0.9, seed=3)
    Q = _start(m, w)
    assert _subspace.lanczos_block_width(w, block, 500) == block
    assert _subspace.lanczos_block_width(w, block, 3) == 4   # ceil(10 / 3)
    full = block_lanczos(lambda Z: C @ Z, Q, k, 1e-13, 500, 0.0, block)
    first = block_lanczos(lambda Z: C @ Z, np.asfortranarray(Q[:, :block]),
                          k, 1e-13, 500, 0.0, block, width=w)
    assert full[0].shape == first[0].shape == (m, w)
    np.testing.assert_array_equal(full[0], first[0])
    np.testing.assert_array_equal(full[1], first[1])
    assert full[3:] == first[3:]
    with pytest.raises(ValueError, match="first block needs 4"):
        block_lanczos(lambda Z: C @ Z, np.asfortranarray(Q[:, :2]), k, 1e-13,
                      3, 0.0, block, width=w)


# -- the compiled step (laefast._lanczos) against its NumPy formulas ----------

def _space(m, D, seed):
    rng = np.random.default_rng(seed)
    K = np.linalg.qr(rng.standard_normal((m, D)))[0] if D else np.empty((m, 0))
    return rng, K


@pytest.mark.parametrize("D, nz", [(0, 2), (6, 2), (20, 4), (9, 1)])
def test_orthonormalize_block_is_orthonormal_against(D, nz):
    # The same arithmetic as orthonormal_against(Z / unit, K, drop,
    # projected=True): the same bits, written after the space.
    from laefast import _lanczos
    m = 300
    rng, K = _space(m, D, D + nz)
    Z = rng.standard_normal((m, nz)) * 3.0
    Z -= K @ (K.T @ Z)
    basis = np.zeros((m, D + nz + 3), order="F")
    basis[:, :D] = K
    Zbuf = np.asfortranarray(np.c_[Z, np.full((m, 2), np.nan)])
    nb = _lanczos.orthonormalize_block(basis, D, Zbuf, nz, 7.5, 1e-13)
    expected = _subspace.orthonormal_against(Z / 7.5, K if D else None,
                                             1e-13, projected=True)
    assert nb == expected.shape[1] == nz
    np.testing.assert_array_equal(basis[:, D:D + nb], expected)
    np.testing.assert_array_equal(basis[:, :D], K)        # the space kept
    assert not basis[:, D + nb:].any()                    # nothing past it
    B = basis[:, :D + nb]
    np.testing.assert_allclose(B.T @ B, np.eye(D + nb), atol=1e-14)


def test_orthonormalize_block_drops_what_the_space_holds():
    # A direction inside the space (a remainder below drop) is dropped; a
    # block wholly inside it leaves nothing.
    from laefast import _lanczos
    m, D = 200, 8
    rng, K = _space(m, D, 3)
    fresh = rng.standard_normal(m)
    fresh -= K @ (K.T @ fresh)
    inside = K @ rng.standard_normal(D)
    Z = np.c_[fresh, 1e-16 * inside]
    Z -= K @ (K.T @ Z)
    basis = np.zeros((m, D + 2), order="F")
    basis[:, :D] = K
    nb = _lanczos.orthonormalize_block(basis, D, np.asfortranarray(Z), 2,
                                       1.0, 1e-13)
    assert nb == 1
    v = basis[:, D]
    assert abs(np.linalg.norm(v) - 1) < 1e-14 and np.abs(K.T @ v).max() < 1e-14
    Z = np.asfortranarray(1e-16 * (K @ rng.standard_normal((D, 2))))
    assert _lanczos.orthonormalize_block(basis, D, Z, 2, 1.0, 1e-13) == 0


def test_project_block_is_its_formula():
    from laefast import _lanczos
    m, D, nb = 150, 7, 3
    rng, K = _space(m, D + nb, 5)
    A = rng.standard_normal((m, m))
    C = A @ A.T
    basis = np.asfortranarray(np.c_[K, np.zeros((m, 2))])
    image = np.asfortranarray(C @ basis)
    H = np.zeros((D + nb + 2, D + nb + 2))
    H[:D, :D] = rng.standard_normal((D, D))
    Z = np.full((m, nb + 1), np.nan, order="F")
    unit = _lanczos.project_block(basis, image, H, Z, D, nb)
    top = K.T @ image[:, D:D + nb]
    np.testing.assert_allclose(H[:D + nb, D:D + nb], top, rtol=1e-13)
    np.testing.assert_array_equal(H[D:D + nb, :D], H[:D, D:D + nb].T)
    np.testing.assert_allclose(Z[:, :nb], image[:, D:D + nb] - K @ top,
                               atol=1e-10 * np.abs(C).max())
    assert unit == np.abs(H[:D + nb, :D + nb]).max()
    assert not H[D + nb:].any() and not H[:, D + nb:].any()
    H[1, 2] = np.nan
    assert np.isnan(_lanczos.project_block(basis, image, H, Z, D, nb))


def test_compiled_step_refuses_inconsistent_shapes():
    from laefast import _lanczos
    basis = np.zeros((10, 4), order="F")
    Z = np.zeros((10, 2), order="F")
    with pytest.raises(ValueError, match="inconsistent"):
        _lanczos.orthonormalize_block(basis, 3, Z, 2, 1.0, 1e-13)   # 3 + 2 > 4
    with pytest.raises(ValueError, match="inconsistent"):
        _lanczos.orthonormalize_block(basis, 0, Z, 3, 1.0, 1e-13)   # nz > 2
    with pytest.raises(ValueError, match="inconsistent"):
        _lanczos.project_block(basis, basis, np.zeros((3, 3)), Z, 2, 2)
    with pytest.raises(ValueError):
        _lanczos.project_block(basis, basis, np.zeros((4, 4)),
                               np.zeros((10, 2)), 2, 2)          # Z in C order


def _check_against_lapack(A, U, s):
    """Normwise, as LAPACK's SVD is accurate: s to 50 eps s_1, each vector
    to 50 eps s_1 / (its gap, or its s); U orthonormal."""
    eps = np.finfo(np.float64).eps
    u, sv, _ = np.linalg.svd(A, full_matrices=False)
    np.testing.assert_allclose(s, sv, rtol=0, atol=50 * eps * sv[0])
    signs = np.sign(np.sum(U * u, axis=0))
    for i in range(len(sv)):
        gap = min([abs(sv[i] - sv[j]) for j in range(len(sv)) if j != i]
                  + [sv[i]])
        np.testing.assert_allclose(U[:, i] * signs[i], u[:, i], rtol=0,
                                   atol=50 * eps * sv[0] / gap)
    np.testing.assert_allclose(U.T @ U, np.eye(len(sv)), rtol=0,
                               atol=50 * eps)


@pytest.mark.parametrize("m,k,cond", [(1000, 20, 1e4), (300, 7, 10.0),
                                      (41, 20, 1e3), (6, 3, 10.0)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_tall_svd_matches_lapacks_svd(m, k, cond, order):
    # Singular values spread over cond, a close pair included.
    rng = np.random.default_rng(m + k)
    U0, _ = np.linalg.qr(rng.standard_normal((m, k)))
    V0, _ = np.linalg.qr(rng.standard_normal((k, k)))
    s0 = np.geomspace(1.0, 1.0 / cond, k)
    s0[1] = s0[0] * (1 - 1e-3)
    A = np.asarray((U0 * s0) @ V0.T, order=order)
    _check_against_lapack(A, *_subspace.tall_svd(A))


@pytest.mark.parametrize("seed", range(6))
def test_tall_svd_is_accurate_with_nearly_parallel_columns(seed):
    # Condition numbers of 1e4 to 1e5, inside the gate: forming Q1 through
    # R1's inverse instead of a triangular solve put the singular values
    # off by up to 1e-11 relative here.
    rng = np.random.default_rng(1804 + seed)
    A = rng.standard_normal((15 + 40 * seed, 3))
    j = 1 + seed // 2 % 2
    A[:, j] = A[:, j - 1] + 10 ** -(4 + seed % 2) * A[:, j]
    found = _subspace.tall_svd(A)
    assert found is not None
    _check_against_lapack(A, *found)


def test_tall_svd_hands_ill_conditioned_input_back():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 6))
    noise = rng.standard_normal(200)
    for delta, usable in ((1e-9, False), (0.0, False), (1e-4, True)):
        A[:, 3] = A[:, 2] + delta * noise   # condition number about 1/delta
        found = _subspace.tall_svd(A)
        assert (found is not None) == usable
    np.testing.assert_allclose(found[1], np.linalg.svd(A, compute_uv=False),
                               rtol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_readout_of_a_tall_decoder_matches_lapack(dtype):
    # The read-out takes tall_svd for a tall W2 and LAPACK's SVD for an
    # ill-conditioned one: both give W2's left singular vectors, in its
    # dtype, and the variances lam / (1 - s^2).
    from laefast._readout import readout
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((400, 5)))
    R, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    for weak in (0.5, 1e-9):
        W2 = ((Q * [0.9, 0.8, 0.7, 0.6, weak]) @ R).astype(dtype)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            components, _, eig, collapsed, _ = readout(W2, 1.0, tol=1e-12)
        assert collapsed.tolist() == [False] * 4 + [weak < 1e-6]
        assert [w.category for w in caught] == (
            [CollapsedComponentWarning] if weak < 1e-6 else [])
        assert components.dtype == dtype
        u, sv, _ = np.linalg.svd(W2.astype(np.float64), full_matrices=False)
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(eig[:4], 1.0 / (1 - sv[:4] ** 2),
                                   rtol=rtol)
        for i in range(4):
            cos = abs(float(components[i].astype(np.float64) @ u[:, i]))
            assert cos > 1 - rtol


def _spectrum(ev, seed=4):
    """C with eigenvalues ev (descending) along a random basis U."""
    m = len(ev)
    U, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, m)))
    return (U * ev) @ U.T, U


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e-200, 1e200])
def test_eigenvalue_outside_finds_a_direction_just_above_lam(scale):
    # Live: u_1, u_2, u_4 (u_3 missing, at 1.1 lam); the rest of the
    # complement sits just below lam.  The bound is a lower bound on the
    # (r+1)-th eigenvalue, lambda_4 = 1.05 lam.  At any scale of C: the
    # search's cut-offs are relative to it, and nothing overflows.
    m, lam = 300, scale
    ev = scale * np.concatenate([[5.0, 3.0, 1.1, 1.05],
                                 np.linspace(0.95, 0.01, m - 4)])
    C, U = _spectrum(ev)
    live = U[:, [0, 1, 3]]
    eps = np.finfo(np.float64).eps
    for trace in (None, ev.sum()):
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # no overflow at 1e200
            bound = _subspace.eigenvalue_outside(lambda Q: C @ Q, live,
                                                 U[:, 200:202], lam, eps,
                                                 trace=trace)
        assert bound is not None and lam < bound <= ev[3] * (1 + 1e-12)
    # With u_3 learned too the complement's top is below lam: no proof.
    assert _subspace.eigenvalue_outside(lambda Q: C @ Q, U[:, :4],
                                        U[:, 200:202], lam, eps) is None


def test_eigenvalue_outside_checks_the_space_it_ends_with():
    # m = 12, three live directions, blocks of 4: products 1 and 2 (checked)
    # span 8 of the 9 complement directions, product 3 the last, and the
    # next block is empty.  lam sits just below the missing lambda_4, so
    # only the whole space proves it: the search must check the space it
    # ends with, after the last product or when the space stops growing.
    m = 12
    ev = np.array([9.0, 8.0, 7.0, 1.0, 0.99, 0.98, 0.97, 0.6, 0.5, 0.4,
                   0.3, 0.2])
    C, U = _spectrum(ev)
    times = lambda Q: C @ Q                                    # noqa: E731
    lam, eps = 1.0 - 1e-9, np.finfo(np.float64).eps
    start = np.random.default_rng(1).standard_normal((m, 1))
    assert _subspace.eigenvalue_outside(times, U[:, :3], start, lam, eps,
                                        max_products=2) is None
    for max_products in (3, 16):
        bound = _subspace.eigenvalue_outside(times, U[:, :3], start, lam,
                                             eps, max_products=max_products)
        assert bound is not None and lam < bound <= 1.0 + 1e-12


def test_eigenvalue_outside_ends_at_once_where_the_trace_rules_it_out():
    # C of rank 5 with all 5 directions learned (k above X's rank): the
    # rest of the trace is rounding, below lam, so no eigenvalue outside
    # can pass lam and the search makes no product beyond live's.  A
    # missing direction keeps the trace's rest above lam: searched, found.
    m, lam = 200, 1e-3
    ev = np.concatenate([[5.0, 4.0, 3.0, 2.0, 1.0], np.zeros(m - 5)])
    C, U = _spectrum(ev)
    calls = []

    def times(Q):
        calls.append(Q.shape[1])
        return C @ Q
    eps = np.finfo(np.float64).eps
    assert _subspace.eigenvalue_outside(times, U[:, :5], U[:, 50:51], lam,
                                        eps, trace=np.trace(C)) is None
    assert calls == [5]
    calls.clear()
    bound = _subspace.eigenvalue_outside(times, U[:, [0, 1, 2, 4]],
                                         U[:, 50:51], lam, eps,
                                         trace=np.trace(C))
    assert bound is not None and lam < bound <= 2.0 * (1 + 1e-12)
    assert len(calls) > 1


def test_eigenvalue_outside_raises_no_false_alarm_from_an_inexact_span():
    # The learned span is the top 3 directions tilted by 0.2 rad into u_1
    # ... u_3's complement, and lambda_4 = 0.9 lam: C projected off the
    # tilted span has a top eigenvalue near 0.2^2 * 50 = 2 > lam (a
    # projection test would call a direction missing), but lambda_4 is
    # below lam, and the interlacing bound never passes it.
    m, lam = 200, 1.0
    ev = np.concatenate([[50.0, 20.0, 10.0], np.linspace(0.9, 0.01, m - 3)])
    C, U = _spectrum(ev)
    tilt = np.sin(0.2)
    live = U[:, :3] * np.cos(0.2) + U[:, 3:6] * tilt
    P = np.eye(m) - live @ live.T
    assert np.linalg.eigvalsh(P @ C @ P)[-1] > 1.5 * lam
    assert _subspace.eigenvalue_outside(lambda Q: C @ Q, live, U[:, 50:51],
                                        lam, 1e-15) is None


def test_eigenvalue_outside_with_nothing_learned():
    # r = 0 (every component collapsed) with lambda_1 > lam: the proof is
    # lambda_1's Ritz value; and none where C's top is below lam.
    C, U = _spectrum(np.linspace(2.0, 0.1, 50))
    none = np.empty((50, 0))
    bound = _subspace.eigenvalue_outside(lambda Q: C @ Q, none, U[:, 40:41],
                                         1.0, 1e-15)
    assert bound is not None and 1.0 < bound <= 2.0 * (1 + 1e-12)
    assert _subspace.eigenvalue_outside(lambda Q: C @ Q, none, U[:, 40:41],
                                        2.5, 1e-15) is None
