"""Numerical checks of the theory in docs/theory.md ("What the tests check":
statements T1-T5 and T7; T6 is in test_regularizers.py).  Each test is
named test_tN_<what it checks>.

Every reference here is independent of the code under test: singular
vectors and values come from np.linalg.svd of X, the gradients, Hessian and
losses are written out below in NumPy from the formulas of docs/theory.md,
and critical points are built in closed form from the SVD.

Gradients follow docs/theory.md (the factor 2 of the true gradient dropped):

    G1 = W2^T (W2 W1 - I) C + lam W1
    G2 = (W2 W1 - I) C W1^T + lam W2
"""

import warnings

import numpy as np
import pytest

import laefast
from laefast import metrics

# ---------------------------------------------------------------------------
# Problems: X = U diag(sigma) V^T with chosen, well separated singular values,
# rows centered (V orthogonal to the all-ones vector), samples as columns.

PROBLEMS = {
    # name: (m, n, singular values of X, k, lam)  with lam well below sigma_k^2
    "m6k3": (6, 100, [10.0, 8.0, 6.0, 4.0, 3.0, 2.0], 3, 10.0),
    "m8k2": (8, 200, [5.0, 4.0, 3.2, 2.5, 2.0, 1.5, 1.0, 0.5], 2, 4.0),
}


def make_data(m, n, sigma, seed):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((m, m)))
    A = rng.standard_normal((n, m))
    A -= A.mean(axis=0)                  # columns orthogonal to ones
    V, _ = np.linalg.qr(A)               # n x m, orthonormal columns
    X = U @ np.diag(sigma) @ V.T         # m x n, rows centered
    return X


class Problem:
    def __init__(self, name, seed=0):
        m, n, sigma, k, lam = PROBLEMS[name]
        self.name = name
        self.m, self.n, self.k, self.lam = m, n, k, lam
        self.X = make_data(m, n, np.asarray(sigma), seed)
        self.C = self.X @ self.X.T
        # Independent reference: the SVD of X itself.
        U, s, _ = np.linalg.svd(self.X, full_matrices=False)
        self.U, self.s = U, s
        assert np.allclose(s, sorted(sigma, reverse=True), rtol=1e-12)
        assert np.all(np.diff(s) < 0)                      # distinct
        assert 0.1 * s[k - 1] ** 2 < lam < 0.5 * s[k - 1] ** 2   # below sigma_k^2, not tiny


@pytest.fixture(params=sorted(PROBLEMS), scope="module")
def prob(request):
    return Problem(request.param)


# ---------------------------------------------------------------------------
# Independent NumPy references.

def grads(C, W1, W2, lam):
    R = W2 @ W1 - np.eye(C.shape[0])
    G1 = W2.T @ R @ C + lam * W1
    G2 = R @ C @ W1.T + lam * W2
    return G1, G2


def grad_rel(C, W1, W2, lam):
    """||(G1, G2)|| relative to the scale ||C||_2 (||W1|| + ||W2||)."""
    G1, G2 = grads(C, W1, W2, lam)
    g = np.sqrt(np.sum(G1 ** 2) + np.sum(G2 ** 2))
    scale = np.linalg.norm(C, 2) * (np.linalg.norm(W1) + np.linalg.norm(W2))
    return g / scale


def loss_from_X(X, W1, W2, lam):
    """L_sigma computed directly on the data, never through C."""
    return (np.sum((X - W2 @ (W1 @ X)) ** 2)
            + lam * (np.sum(W1 ** 2) + np.sum(W2 ** 2)))


def loss_theory(s, lam, index_set):
    """docs/theory.md: sum_{i not in I} sigma_i^2 + sum_{i in I} (2 lam - lam^2/sigma_i^2)."""
    s2 = np.asarray(s) ** 2
    inside = np.zeros(len(s2), dtype=bool)
    inside[list(index_set)] = True
    return float(np.sum(s2[~inside]) + np.sum(2 * lam - lam ** 2 / s2[inside]))


def random_orthogonal(k, rng):
    Q, R = np.linalg.qr(rng.standard_normal((k, k)))
    return Q * np.sign(np.diag(R))


def critical_point(U, s, lam, index_set, k, O):
    """W2 = [U_I (I - lam S_I^-2)^(1/2), 0] O (m x k), W1 = W2^T."""
    index_set = list(index_set)
    m = U.shape[0]
    B = np.zeros((m, k))
    B[:, :len(index_set)] = U[:, index_set] * np.sqrt(1 - lam / s[index_set] ** 2)
    W2 = B @ O
    return W2.T.copy(), W2


def hvp(C, W1, W2, lam, E1, E2):
    """Directional derivative of (G1, G2) along (E1, E2) (exact: G is cubic)."""
    I = np.eye(C.shape[0])
    R = W2 @ W1 - I
    dR = E2 @ W1 + W2 @ E1
    dG1 = E2.T @ R @ C + W2.T @ dR @ C + lam * E1
    dG2 = dR @ C @ W1.T + R @ C @ E1.T + lam * E2
    return dG1, dG2


def pack(A1, A2):
    return np.concatenate([A1.ravel(), A2.ravel()])


def unpack(v, k, m):
    return v[:k * m].reshape(k, m), v[k * m:].reshape(m, k)


def hessian(C, W1, W2, lam):
    """Hessian of L_sigma / 2 in the 2km variables (vec W1, vec W2)."""
    k, m = W1.shape
    N = 2 * k * m
    H = np.empty((N, N))
    for j in range(N):
        e = np.zeros(N)
        e[j] = 1.0
        H[:, j] = pack(*hvp(C, W1, W2, lam, *unpack(e, k, m)))
    return H


def solve_quiet(C, k, lam, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", laefast.ConvergenceWarning)
        return laefast.solve(C, k, lam, **kw)


def untied_start(k, m, seed):
    """W1 and W2 drawn independently: far from W1 = W2^T."""
    rng = np.random.default_rng(seed)
    W1 = 0.3 * rng.standard_normal((k, m))
    W2 = 0.3 * rng.standard_normal((m, k))
    assert np.linalg.norm(W1 - W2.T) > 0.5
    return W1, W2


# ---------------------------------------------------------------------------
# Self-checks of the references (so a wrong reference cannot hide a bug).

def test_reference_gradient_is_half_the_finite_difference_gradient(prob):
    rng = np.random.default_rng(11)
    k, m, lam = prob.k, prob.m, prob.lam
    W1 = 0.4 * rng.standard_normal((k, m))
    W2 = 0.4 * rng.standard_normal((m, k))
    G1, G2 = grads(prob.C, W1, W2, lam)
    g = pack(G1, G2)
    h = 1e-5
    fd = np.empty_like(g)
    x0 = pack(W1, W2)
    for j in range(x0.size):
        xp, xm = x0.copy(), x0.copy()
        xp[j] += h
        xm[j] -= h
        fd[j] = (loss_from_X(prob.X, *unpack(xp, k, m), lam)
                 - loss_from_X(prob.X, *unpack(xm, k, m), lam)) / (2 * h)
    np.testing.assert_allclose(2 * g, fd, rtol=0, atol=1e-6 * np.abs(fd).max())


def test_reference_hvp_matches_finite_differences_of_gradient(prob):
    rng = np.random.default_rng(12)
    k, m, lam, C = prob.k, prob.m, prob.lam, prob.C
    W1 = 0.4 * rng.standard_normal((k, m))
    W2 = 0.4 * rng.standard_normal((m, k))
    E1 = rng.standard_normal((k, m))
    E2 = rng.standard_normal((m, k))
    h = 1e-4
    fd = (pack(*grads(C, W1 + h * E1, W2 + h * E2, lam))
          - pack(*grads(C, W1 - h * E1, W2 - h * E2, lam))) / (2 * h)
    exact = pack(*hvp(C, W1, W2, lam, E1, E2))
    np.testing.assert_allclose(exact, fd, rtol=0, atol=1e-7 * np.abs(exact).max())


def test_metrics_objective_matches_direct_loss(prob):
    rng = np.random.default_rng(13)
    for _ in range(3):
        W1 = rng.standard_normal((prob.k, prob.m))
        W2 = rng.standard_normal((prob.m, prob.k))
        ref = loss_from_X(prob.X, W1, W2, prob.lam)
        assert metrics.objective(prob.C, W1, W2, prob.lam) == pytest.approx(ref, rel=1e-12)


# ---------------------------------------------------------------------------
# Item 1: every critical point has W1 = W2^T; GL(k) transforms are not critical.

@pytest.mark.parametrize("method", laefast.METHODS)
def test_t1_critical_points_are_tied_minima_found_by_every_method(prob, method):
    W1, W2 = untied_start(prob.k, prob.m, seed=3)
    r = solve_quiet(prob.C, prob.k, prob.lam, method=method, init=(W1, W2), tol=1e-10)
    assert r.converged
    # init is copied, never modified
    assert np.array_equal(W1, untied_start(prob.k, prob.m, seed=3)[0])
    # A critical point (by our own gradient) ...
    assert grad_rel(prob.C, r.W1, r.W2, prob.lam) < 1e-7
    # ... and it is tied, and balanced.
    assert np.linalg.norm(r.W1 - r.W2.T) <= 1e-7 * np.linalg.norm(r.W2)
    np.testing.assert_allclose(r.W1 @ r.W1.T, r.W2.T @ r.W2, atol=1e-7)


def test_t2_closed_form_minimum_is_critical_and_its_gl_orbit_is_not(prob):
    rng = np.random.default_rng(5)
    k, lam, C = prob.k, prob.lam, prob.C
    O = random_orthogonal(k, rng)
    W1, W2 = critical_point(prob.U, prob.s, lam, range(k), k, O)
    assert grad_rel(C, W1, W2, lam) < 1e-12

    # Another orthogonal O: still critical (the O(k) orbit of minima).
    W1o, W2o = critical_point(prob.U, prob.s, lam, range(k), k, random_orthogonal(k, rng))
    assert grad_rel(C, W1o, W2o, lam) < 1e-12

    # G in GL(k), clearly not orthogonal: same product W2 W1, not critical.
    G = random_orthogonal(k, rng) @ np.diag(np.linspace(2.0, 0.5, k)) @ random_orthogonal(k, rng)
    assert np.linalg.norm(G.T @ G - np.eye(k)) > 0.5
    W1g = np.linalg.solve(G, W1)
    W2g = W2 @ G
    np.testing.assert_allclose(W2g @ W1g, W2 @ W1, atol=1e-12)
    assert np.linalg.norm(W1g - W2g.T) > 0.1
    assert grad_rel(C, W1g, W2g, lam) > 1e-2
    # Same reconstruction, larger penalty: strictly worse loss.
    assert loss_from_X(prob.X, W1g, W2g, lam) > loss_from_X(prob.X, W1, W2, lam) + 0.1 * lam


def test_t1_exact_steps_zero_their_partial_gradient(prob):
    """exact_w1 / exact_w2 are the exact block minimizers: G1 = 0 resp. G2 = 0."""
    rng = np.random.default_rng(7)
    k, m, lam, C = prob.k, prob.m, prob.lam, prob.C
    W2 = rng.standard_normal((m, k))
    W1 = laefast.exact_w1(C, W2, lam)
    G1, G2 = grads(C, W1, W2, lam)
    scale = np.linalg.norm(C, 2) * np.linalg.norm(W2) ** 2 * np.linalg.norm(W1)
    assert np.linalg.norm(G1) < 1e-12 * scale
    assert np.linalg.norm(G2) > 1e-3 * scale          # W2 itself is not optimal

    W1 = rng.standard_normal((k, m))
    W2 = laefast.exact_w2(C, W1, lam)
    G1, G2 = grads(C, W1, W2, lam)
    scale = np.linalg.norm(C, 2) * np.linalg.norm(W1) ** 2 * np.linalg.norm(W2)
    assert np.linalg.norm(G2) < 1e-12 * scale
    assert np.linalg.norm(G1) > 1e-3 * scale


# ---------------------------------------------------------------------------
# Item 2: the minima are W2 = U_k (I - lam S_k^-2)^(1/2) O.

@pytest.mark.parametrize("method", laefast.METHODS)
def test_t2_minimum_found_has_the_closed_form(prob, method):
    k, lam = prob.k, prob.lam
    r = solve_quiet(prob.C, k, lam, method=method, init=untied_start(k, prob.m, seed=4),
                    tol=1e-10)
    W2 = r.W2
    d = 1 - lam / prob.s[:k] ** 2                         # theory, decreasing
    np.testing.assert_allclose(np.linalg.eigvalsh(W2.T @ W2)[::-1], d, rtol=1e-8, atol=1e-10)
    Uk = prob.U[:, :k]
    # W2 lies in span U_k ...
    assert np.linalg.norm(W2 - Uk @ (Uk.T @ W2)) < 1e-8
    # ... and D^(-1/2) U_k^T W2 is orthogonal.
    O = (Uk.T @ W2) / np.sqrt(d)[:, None]
    np.testing.assert_allclose(O @ O.T, np.eye(k), atol=1e-8)
    np.testing.assert_allclose(O.T @ O, np.eye(k), atol=1e-8)
    np.testing.assert_allclose(W2, Uk @ np.diag(np.sqrt(d)) @ O, atol=1e-8)


# ---------------------------------------------------------------------------
# Item 3: the read-out.

@pytest.mark.parametrize("method", laefast.METHODS)
def test_t3_readout_gives_the_svd_directions_and_values(prob, method):
    k, lam = prob.k, prob.lam
    r = solve_quiet(prob.C, k, lam, method=method, random_state=1, tol=1e-10)
    Uk = prob.U[:, :k]
    assert r.components.shape == (k, prob.m)
    np.testing.assert_allclose(r.components @ r.components.T, np.eye(k), atol=1e-12)
    assert metrics.u_error(r.components.T, Uk) < 1e-6
    # own check, direction by direction up to sign
    np.testing.assert_allclose(np.abs(np.sum(r.components.T * Uk, axis=0)), 1.0, atol=1e-10)
    assert metrics.max_principal_sine(r.components.T, Uk) < 1e-6
    np.testing.assert_allclose(r.singular_values, prob.s[:k], rtol=1e-7)
    np.testing.assert_allclose(r.eigenvalues, prob.s[:k] ** 2, rtol=1e-7)
    # eigenvalues of C, independently
    np.testing.assert_allclose(r.eigenvalues, np.linalg.eigvalsh(prob.C)[::-1][:k], rtol=1e-7)
    assert not r.collapsed.any()


def test_t3_readout_at_the_closed_form_minimum_is_exact(prob):
    """Started at the closed-form minimum, the read-out is exact to rounding."""
    k, lam = prob.k, prob.lam
    W1, W2 = critical_point(prob.U, prob.s, lam, range(k), k,
                            random_orthogonal(k, np.random.default_rng(8)))
    r = solve_quiet(prob.C, k, lam, method="exact-tied", init=(W1, W2))
    assert r.n_iter == 1 and r.converged
    np.testing.assert_allclose(r.singular_values, prob.s[:k], rtol=1e-11)
    np.testing.assert_allclose(r.eigenvalues, prob.s[:k] ** 2, rtol=1e-11)
    assert metrics.u_error(r.components.T, prob.U[:, :k]) < 1e-11


def _check_collapsed_result(r, prob, lam):
    np.testing.assert_array_equal(r.collapsed, [False, True])
    assert r.singular_values[1] == 0 and r.eigenvalues[1] == 0
    assert r.singular_values[0] == pytest.approx(prob.s[0], rel=1e-6)
    assert r.eigenvalues[0] == pytest.approx(prob.s[0] ** 2, rel=1e-6)
    assert metrics.u_error(r.components[:1].T, prob.U[:, :1]) < 1e-6
    # item 4 with I = {1}: the collapsed direction contributes sigma_2^2
    assert metrics.objective(prob.C, r.W1, r.W2, lam) == pytest.approx(
        loss_theory(prob.s, lam, [0]), rel=1e-9)


COLLAPSE_LAM = 80.0   # sigma_2^2 = 64 < lam < sigma_1^2 = 100 for problem m6k3


@pytest.mark.parametrize("method", laefast.METHODS)
def test_t3_collapse_reported_at_tight_tol(method):
    prob = Problem("m6k3")
    assert prob.s[1] ** 2 < COLLAPSE_LAM < prob.s[0] ** 2
    with pytest.warns(laefast.CollapsedComponentWarning,
                      match=r"components \[1\] collapsed"):
        r = laefast.solve(prob.C, 2, COLLAPSE_LAM, method=method, random_state=0, tol=1e-12)
    _check_collapsed_result(r, prob, COLLAPSE_LAM)


@pytest.mark.parametrize("method", ["exact-tied", "tied"])
def test_t3_collapse_reported_at_default_tol(method):
    """Same as above with the default tol=1e-8: the contract must not depend on tol."""
    prob = Problem("m6k3")
    with pytest.warns(laefast.CollapsedComponentWarning,
                      match=r"components \[1\] collapsed"):
        r = laefast.solve(prob.C, 2, COLLAPSE_LAM, method=method, random_state=0)
    # A non-collapsed report would claim sigma_2 = sqrt(lam) > true sigma_2.
    _check_collapsed_result(r, prob, COLLAPSE_LAM)


# ---------------------------------------------------------------------------
# Item 4: the loss at the minimum and at the other critical points.

@pytest.mark.parametrize("method", laefast.METHODS)
def test_t4_loss_at_the_minimum(prob, method):
    k, lam = prob.k, prob.lam
    r = solve_quiet(prob.C, k, lam, method=method, random_state=2, tol=1e-10)
    expected = loss_theory(prob.s, lam, range(k))
    assert metrics.objective(prob.C, r.W1, r.W2, lam) == pytest.approx(expected, rel=1e-10)
    assert loss_from_X(prob.X, r.W1, r.W2, lam) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("index_set,k", [([0, 2], 2), ([1], 2), ([0, 2], 3), ([1, 2], 2)])
def test_t4_loss_at_the_other_critical_points(index_set, k):
    prob = Problem("m6k3")
    lam, C = prob.lam, prob.C
    assert all(prob.s[i] ** 2 > lam for i in index_set)
    W1, W2 = critical_point(prob.U, prob.s, lam, index_set, k,
                            random_orthogonal(k, np.random.default_rng(9)))
    assert grad_rel(C, W1, W2, lam) < 1e-12
    expected = loss_theory(prob.s, lam, index_set)
    assert metrics.objective(C, W1, W2, lam) == pytest.approx(expected, rel=1e-12)
    assert loss_from_X(prob.X, W1, W2, lam) == pytest.approx(expected, rel=1e-12)
    # Strictly above the minimum's loss, and a saddle: the Hessian has a
    # clearly negative eigenvalue.
    assert expected > loss_theory(prob.s, lam, range(k)) + 1.0
    ev = np.linalg.eigvalsh(hessian(C, W1, W2, lam))
    assert ev[0] < -1e-2 * ev[-1]


# ---------------------------------------------------------------------------
# Item 5: the Hessian at the minimum: k(k-1)/2 zero eigenvalues, others > 0.

def _check_minimum_hessian(C, W1, W2, lam, k):
    H = hessian(C, W1, W2, lam)
    np.testing.assert_allclose(H, H.T, atol=1e-10 * np.abs(H).max())
    ev = np.linalg.eigvalsh((H + H.T) / 2)
    top = ev[-1]
    n0 = k * (k - 1) // 2
    zero, positive = ev[:n0], ev[n0:]
    assert np.all(np.abs(zero) < 1e-9 * top), ev
    assert positive[0] > 1e-3 * top, ev
    # A clear gap between the zero and the positive eigenvalues.
    assert positive[0] > 1e5 * max(np.abs(zero).max(initial=0.0), 1e-16 * top)
    # The null space is the O(k) orbit: dW2 = W2 A, dW1 = -A W1, A skew.
    kk, m = W1.shape
    for i in range(k):
        for j in range(i + 1, k):
            A = np.zeros((k, k))
            A[i, j], A[j, i] = 1.0, -1.0
            v = pack(-A @ W1, W2 @ A)
            assert np.linalg.norm(H @ v) < 1e-9 * top * np.linalg.norm(v)


def test_t5_hessian_at_the_closed_form_minimum(prob):
    k = prob.k
    W1, W2 = critical_point(prob.U, prob.s, prob.lam, range(k), k,
                            random_orthogonal(k, np.random.default_rng(10)))
    _check_minimum_hessian(prob.C, W1, W2, prob.lam, k)


def test_t5_hessian_at_a_solved_minimum(prob):
    k = prob.k
    r = solve_quiet(prob.C, k, prob.lam, method="exact-untied", random_state=3, tol=1e-12)
    # Hessian eigenvalues move by O(||W - W*||); tol 1e-12 keeps that tiny.
    _check_minimum_hessian(prob.C, r.W2.T.copy(), r.W2, prob.lam, k)


# ---------------------------------------------------------------------------
# Item 7: the tied fixed point also solves regularized Oja's rule.

def oja_rel(C, W, lam):
    R = (W @ W.T - np.eye(C.shape[0])) @ C @ W + lam * W
    return np.linalg.norm(R) / (np.linalg.norm(C, 2) * np.linalg.norm(W))


def test_t7_minimum_is_a_fixed_point_of_regularized_oja(prob):
    k, lam, C = prob.k, prob.lam, prob.C
    _, W = critical_point(prob.U, prob.s, lam, range(k), k,
                          random_orthogonal(k, np.random.default_rng(14)))
    assert oja_rel(C, W, lam) < 1e-12
    # Without the (I - lam S^-2)^(1/2) shrinkage, U_k is not a fixed point
    # (it is one of plain, unregularized Oja).
    assert oja_rel(C, prob.U[:, :k], lam) > 1e-2
    assert oja_rel(C, prob.U[:, :k], 0.0) < 1e-12
    # Solvers' results satisfy it too.
    for method in ("tied", "exact-tied", "untied"):
        r = solve_quiet(C, k, lam, method=method, random_state=5, tol=1e-10)
        assert oja_rel(C, r.W2, lam) < 1e-7, method


# ---------------------------------------------------------------------------
# History: the recorded objective is L_sigma of the iterates.

@pytest.mark.parametrize("method", laefast.METHODS)
def test_history_objective_of_final_iterate(prob, method):
    k, lam = prob.k, prob.lam
    r = solve_quiet(prob.C, k, lam, method=method, random_state=6, history=True)
    obj, stop = r.history["objective"], r.history["stop"]
    assert len(obj) == len(stop) == r.n_iter
    assert stop[-1] == r.stop <= r.tol
    assert obj[-1] == pytest.approx(metrics.objective(prob.C, r.W1, r.W2, lam), rel=1e-12)
    assert obj[-1] == pytest.approx(loss_from_X(prob.X, r.W1, r.W2, lam), rel=1e-12)
    assert obj[-1] == pytest.approx(loss_theory(prob.s, lam, range(k)), rel=1e-7)


@pytest.mark.parametrize("method", laefast.METHODS)
# Three iterations are far from a minimum; the read-out's warning about it
# is expected here.
@pytest.mark.filterwarnings("ignore:decoder singular values:RuntimeWarning")
def test_history_objective_of_final_iterate_truncated(method):
    """Also when max_iter stops the run: the last record describes (W1, W2) returned."""
    prob = Problem("m6k3")
    k, lam = prob.k, prob.lam
    with pytest.warns(laefast.ConvergenceWarning, match="stopped at max_iter=3"):
        r = laefast.solve(prob.C, k, lam, method=method, random_state=6, history=True,
                          max_iter=3)
    assert r.n_iter == 3 and not r.converged
    obj = r.history["objective"]
    assert obj[-1] == pytest.approx(loss_from_X(prob.X, r.W1, r.W2, lam), rel=1e-12)


@pytest.mark.parametrize("method", ["exact-untied"])
def test_history_objective_non_increasing(prob, method):
    """exact-untied is block coordinate descent: monotone by construction.
    (exact-tied records the re-tied pair (W2^T, W2), whose objective can rise.)"""
    k, lam = prob.k, prob.lam
    for seed in range(5):
        r = solve_quiet(prob.C, k, lam, method=method, random_state=seed, history=True)
        obj = r.history["objective"]
        assert r.n_iter >= 5
        assert np.all(np.diff(obj) <= 1e-12 * obj[0]), (seed, np.diff(obj).max())
        assert obj[0] - obj[-1] > 1.0     # it actually descended
