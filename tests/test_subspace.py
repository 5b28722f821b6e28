"""Block Lanczos (laefast._subspace.block_lanczos) on explicit matrices,
against numpy.linalg.eigh: convergence, thick restarts, and the spacing of
its convergence checks; and the dense top-eigenpair solve that 'auto'
switches to (laefast._solvers.top_eigenpairs, laefast._driver's
_dense_pairs)."""

import numpy as np
import pytest

from laefast import _subspace
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


# -- the dense top eigenpairs ---------------------------------------------------

def _spectrum_matrix(m, spectrum, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    if spectrum == "decaying":
        d = 0.9 ** np.arange(m)
    elif spectrum == "clustered":       # the top ones equal in threes
        d = np.repeat(np.linspace(3.0, 1.0, -(-m // 3)), 3)[:m]
    elif spectrum == "rank 3":
        d = np.r_[[5.0, 2.0, 1.0], np.zeros(max(m - 3, 0))][:m]
    else:                               # indefinite, signs mixed
        d = np.linspace(-2.0, 3.0, m)
    C = (U * d) @ U.T
    return (C + C.T) / 2


@pytest.mark.parametrize("m, w", [(1, 1), (2, 1), (2, 2), (5, 3), (97, 20),
                                  (130, 130), (300, 31)])
@pytest.mark.parametrize("spectrum", ["decaying", "clustered", "rank 3",
                                      "indefinite"])
def test_top_eigenpairs_against_eigh(m, w, spectrum):
    from laefast._solvers import top_eigenpairs
    C = _spectrum_matrix(m, spectrum)
    theta, V = top_eigenpairs(C, w)
    ev, EV = np.linalg.eigh(C)
    scale = max(np.abs(ev).max(), 1.0)
    assert theta.shape == (w,) and V.shape == (m, w)
    assert V.flags.f_contiguous
    np.testing.assert_allclose(theta, ev[::-1][:w], rtol=0, atol=1e-13 * scale)
    assert np.all(np.diff(theta) <= 0)
    np.testing.assert_allclose(V.T @ V, np.eye(w), rtol=0, atol=4e-15)
    assert np.abs(C @ V - V * theta).max() <= 1e-13 * scale
    if spectrum == "decaying" and w < m:
        # separated eigenvalues: the vectors themselves, up to sign
        assert _sine(V, EV[:, ::-1][:, :w]) < 1e-10


def test_top_eigenpairs_rejects_a_bad_count():
    from laefast._solvers import top_eigenpairs
    C = np.eye(4)
    for w in (0, 5):
        with pytest.raises(ValueError, match="w must be in"):
            top_eigenpairs(C, w)


@pytest.mark.parametrize("m", [60, 150])
def test_dense_pairs_and_its_fallback(m, monkeypatch):
    # Both of _dense_pairs' solvers (divide and conquer up to
    # _SMALL_EIGH_M, MRRR above), and scipy's subset when MRRR fails.
    from laefast import _driver, _solvers
    from laefast._problem import GramProblem
    C = _spectrum_matrix(m, "decaying", seed=3)
    ev, EV = np.linalg.eigh(C)
    problem = GramProblem.from_gram(C)

    def check(theta, V):
        np.testing.assert_allclose(theta, ev[::-1][:12], rtol=1e-12,
                                   atol=1e-14)
        assert V.flags.f_contiguous
        assert _sine(V, EV[:, ::-1][:, :12]) < 1e-10

    check(*_driver._dense_pairs(problem, 12))

    def fail(C, w):
        raise np.linalg.LinAlgError("planted")
    monkeypatch.setattr(_solvers, "top_eigenpairs", fail)
    check(*_driver._dense_pairs(problem, 12))
