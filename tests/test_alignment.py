"""laefast.alignment: primitives, rule kernels, the MLP trainer, the CLI.

References are independent of the code under test: central finite
differences, plain NumPy transcriptions of each formula written out here,
and laefast's LAE-PCA step for the IA/autoencoder identity.
"""

import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import laefast
from laefast import _alignment, alignment as al
from laefast.__main__ import main
from laefast._mlp import _Layout


def _layer(n_out=5, n_in=7, b=6, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n_out, n_in))
    B = rng.standard_normal((n_in, n_out))
    x = rng.standard_normal((b, n_in))
    delta = rng.standard_normal((b, n_out)) / b
    return [a.astype(dtype) for a in (W, B, x, delta)]


def _fd_grad(f, A, h=1e-6):
    g = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        Ap, Am = A.copy(), A.copy()
        Ap[idx] += h
        Am[idx] -= h
        g[idx] = (f(Ap) - f(Am)) / (2 * h)
    return g


# ---------------------------------------------------------------------------
# Primitives

# The values written out sample by sample, as the definitions read.
def _value(name, part, W, B, x):
    b = x.shape[0]
    if name == "decay":
        return np.sum(W ** 2) + np.sum(B ** 2)
    if name == "self":
        return -np.trace(B @ W)
    if name == "amp":
        return -sum(xs @ B @ W @ xs for xs in x) / b
    fwd = part in ("both", "forward")
    bwd = part in ("both", "backward")
    total = 0.0
    for xs in x:
        if name == "sparse":
            total += fwd * np.sum((W @ xs) ** 2) + bwd * np.sum((xs @ B) ** 2)
        else:
            total += (fwd * np.sum((B @ W @ xs) ** 2)
                      + bwd * np.sum((xs @ B @ W) ** 2))
    return total / b


_CASES = [(n, "both") for n in al.PRIMITIVES] + [
    ("null", "forward"), ("null", "backward"),
    ("sparse", "forward"), ("sparse", "backward")]


@pytest.mark.parametrize("name,part", _CASES)
def test_primitive_value_and_gradients_match_finite_differences(name, part):
    W, B, x, _ = _layer()
    p = al.primitive(name, W, B, x, part=part)
    assert p.value == pytest.approx(_value(name, part, W, B, x), rel=1e-12)
    gW = _fd_grad(lambda A: _value(name, part, A, B, x), W)
    gB = _fd_grad(lambda A: _value(name, part, W, A, x), B)
    np.testing.assert_allclose(p.grad_W, gW, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p.grad_B, gB, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# Rule updates: compiled kernel against NumPy transcriptions

def _formula(rule, W, B, x, delta):
    """grad_B (and grad_W for KP) as the module docstring writes them."""
    b = x.shape[0]
    C = x.T @ x / b
    c = rule.coefficients
    if rule.name in ("bp", "fa"):
        return np.zeros_like(B), None
    if rule.name == "sa":
        return 2 * c["alpha"] * B - c["beta"] * W.T, None
    if rule.name == "aa":
        return 2 * c["alpha"] * C @ B - c["beta"] * C @ W.T, None
    if rule.name == "wm":
        return 2 * c["alpha"] * B - c["beta"] * C @ W.T, None
    if rule.name == "ia":
        return (-c["alpha"] * C @ W.T + 2 * c["beta"] * B @ W @ C @ W.T
                + 2 * c["gamma"] * B), None
    G = delta.T @ x
    return G.T + 2 * c["alpha"] * B, G + 2 * c["alpha"] * W


_RULES = [al.BP(), al.FA(), al.SA(alpha=0.3, beta=0.7), al.AA(alpha=0.4, beta=1.1),
          al.WM(alpha=0.2, beta=0.9), al.IA(alpha=0.5, beta=0.8, gamma=0.3),
          al.KP(alpha=0.25)]


# B in Fortran order is B^T in W's layout: the kernels take it as it is,
# with the transposes of their GEMMs swapped and SA's and KP's terms in W^T
# elementwise.  grad_B comes back in B's order.
_ORDERS = ["C", "F"]


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("b", [33, 100])   # AA has a thin-batch form
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("rule", _RULES, ids=lambda r: r.name)
def test_update_matches_numpy_formula(rule, dtype, tol, b, order):
    W, B, x, delta = _layer(n_out=9, n_in=40, b=b, seed=3, dtype=dtype)
    B = np.asarray(B, order=order)
    out = al.update(rule, W, B, x, delta)
    assert out.grad_B.dtype == dtype
    assert out.grad_B.flags[f"{order}_CONTIGUOUS"]
    w64 = [a.astype(np.float64) for a in (W, B, x, delta)]
    gB, gW = _formula(rule, *w64)
    scale = max(np.abs(gB).max(), 1.0)
    assert np.abs(out.grad_B - gB).max() <= tol * scale
    if rule.name == "kp":
        assert np.abs(out.grad_W - gW).max() <= tol * max(np.abs(gW).max(), 1)
    else:
        assert out.grad_W is None


def test_update_takes_b_in_either_order_without_a_copy(monkeypatch):
    W, B, x, delta = _layer(n_out=9, n_in=40, b=20, seed=4)
    rule = al.KP(alpha=0.25)
    passed = []
    kernel = _alignment.layer_update

    def spy(code, W_, B_, *args, **kwargs):
        passed.append(B_)
        return kernel(code, W_, B_, *args, **kwargs)

    monkeypatch.setattr(_alignment, "layer_update", spy)
    gB, _ = _formula(rule, W, B, x, delta)
    for given in (np.ascontiguousarray(B), np.asfortranarray(B)):
        out = al.update(rule, W, given, x, delta)
        assert np.shares_memory(passed[-1], given)
        np.testing.assert_allclose(out.grad_B, gB, rtol=1e-12, atol=1e-12)
    # Not contiguous (copied, to C order), or F-ordered in another dtype
    # (converted once, keeping its order): the same values.
    wide = np.asfortranarray(np.repeat(B, 2, axis=1))
    for given in (wide[:, ::2], np.asfortranarray(B, dtype=np.float32)):
        out = al.update(rule, W, given, x, delta)
        assert out.grad_B.dtype == np.float64
        tol = 1e-12 if given.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(out.grad_B, _formula(
            rule, W, given.astype(np.float64), x, delta)[0], rtol=tol,
            atol=tol)


def test_update_with_one_output_unit():
    # B of shape (n_in, 1) is both C- and F-contiguous: held as itself.
    W, B, x, delta = _layer(n_out=1, n_in=7, b=5, seed=6)
    for rule in _RULES:
        out = al.update(rule, W, B, x, delta)
        gB, gW = _formula(rule, W, B, x, delta)
        np.testing.assert_allclose(out.grad_B, gB, rtol=1e-12, atol=1e-12)
        if gW is not None:
            np.testing.assert_allclose(out.grad_W, gW, rtol=1e-12,
                                       atol=1e-12)


@pytest.mark.parametrize("order", _ORDERS)
@pytest.mark.parametrize("b", [5, 70])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("rule", [_RULES[2], _RULES[3], _RULES[6]],
                         ids=lambda r: r.name)
def test_update_matches_numpy_formula_across_several_panels(rule, dtype, tol,
                                                            b, order):
    # A wide, odd n_in.  With B in C order the kernels that read W or
    # delta^T x transposed do it in tiles of 256 columns (1001 = 3 x 256 +
    # 233: the last one short; KP's are 512 columns at b = 70), two rows of
    # the result at a time (an odd n_in leaves one over); AA with b > 64
    # reads W^T the same way.  With B in Fortran order KP forms delta^T x
    # in panels of whole rows (32 at b = 5, 65 at b = 70: the last one
    # short).
    W, B, x, delta = _layer(n_out=75, n_in=1001, b=b, seed=8, dtype=dtype)
    out = al.update(rule, W, np.asarray(B, order=order), x, delta)
    w64 = [a.astype(np.float64) for a in (W, B, x, delta)]
    gB, gW = _formula(rule, *w64)
    assert np.abs(out.grad_B - gB).max() <= tol * max(np.abs(gB).max(), 1)
    if rule.name == "kp":
        assert np.abs(out.grad_W - gW).max() <= tol * max(np.abs(gW).max(), 1)


# The transposed passes (KP's tie, SA's and AA's W^T) have an AVX2+FMA path
# (laefast/_align_simd.h) chosen at run time, and portable loops that
# _alignment.simd(False) forces.  Sizes: n_in and the tile's rows not
# multiples of 4 or 8 (the tiles' edges), n_in above the 256-column tiles
# (KP's are 512 columns at b = 65: 1001 = 512 + 489, and 120 rows: 200 =
# 120 + 80), several panels of rows.
_SIMD_SHAPES = [(75, 1001, 70), (200, 1001, 65), (600, 41, 66), (11, 13, 65),
                (9, 8, 3)]


def _both_paths(fn):
    """fn() with the AVX2 path, then with the portable loops forced."""
    if not _alignment.simd():
        pytest.skip("no AVX2+FMA path on this CPU or compiler")
    try:
        fast = fn()
        assert _alignment.simd(False) is False
        slow = fn()
    finally:
        assert _alignment.simd(True) is True
    return fast, slow


@pytest.mark.parametrize("shape", _SIMD_SHAPES, ids=str)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("rule", [_RULES[2], _RULES[3], _RULES[6]],
                         ids=lambda r: r.name)
def test_simd_and_portable_updates_agree_and_match_numpy(rule, dtype, tol,
                                                         shape):
    n_out, n_in, b = shape   # AA takes the W^T pass for b > 64
    W, B, x, delta = _layer(n_out=n_out, n_in=n_in, b=b, seed=5, dtype=dtype)
    fast, slow = _both_paths(lambda: al.update(rule, W, B, x, delta))
    gB, gW = _formula(rule, *[a.astype(np.float64) for a in (W, B, x, delta)])
    for out in (fast, slow):
        assert np.abs(out.grad_B - gB).max() <= tol * max(np.abs(gB).max(), 1)
    assert np.abs(fast.grad_B - slow.grad_B).max() <= tol * max(
        np.abs(slow.grad_B).max(), 1)
    if rule.name == "kp":
        for out in (fast, slow):
            assert np.abs(out.grad_W - gW).max() <= tol * max(
                np.abs(gW).max(), 1)


# KP's own kernel for delta^T x (B held transposed, G of 65536 entries or
# more, b <= 128, AVX2): x in blocks of 8 (float64) or 16 (float32)
# columns, delta in blocks of 4; n_in and n_out off those multiples leave
# short blocks, zero-padded, whose results go through a small tile.
@pytest.mark.parametrize("shape", [(257, 261, 1), (259, 300, 33),
                                   (67, 1001, 128), (1024, 70, 7)], ids=str)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_kp_kernel_matches_numpy_and_blas(shape, dtype, tol):
    n_out, n_in, b = shape
    rule = al.KP(alpha=0.3)
    W, B, x, delta = _layer(n_out=n_out, n_in=n_in, b=b, seed=11, dtype=dtype)
    gB, gW = _formula(rule, *[a.astype(np.float64) for a in (W, B, x, delta)])
    Bt = np.ascontiguousarray(B.T)
    work = np.empty(_alignment.layer_workspace(rule.code, b, n_in, n_out,
                                               True), dtype)
    out = {}
    for kernel in (True, False):
        gBt, gW_ = np.full_like(W, np.nan), np.full_like(W, np.nan)
        _alignment.layer_update(rule.code, W, Bt, x, delta,
                                *rule._kernel_coefficients(), gBt, gW_, work,
                                True, kp_kernel=kernel)
        out[kernel] = gBt, gW_
        assert np.abs(gBt.T - gB).max() <= tol * np.abs(gB).max()
        assert np.abs(gW_ - gW).max() <= tol * np.abs(gW).max()
    # update() takes the kernel with BLAS on one thread; the same numbers.
    with threadpool_limits(1):
        via_update = al.update(rule, W, np.asfortranarray(B), x, delta)
    if _alignment.simd():
        np.testing.assert_array_equal(via_update.grad_B.T, out[True][0])
        np.testing.assert_array_equal(via_update.grad_W, out[True][1])


@pytest.mark.parametrize("rule", ["sa", "kp"])
def test_trainer_steps_on_b_held_transposed_match_numpy(rule):
    # The trainer holds B as B^T: SA's and KP's momentum steps are
    # elementwise passes fused with the tie.  KP's on 3000 -> 37 at batches
    # of 70 takes two panels of whole rows (21, then 16).
    rule = al.get_rule(rule, **({"alpha": 0.05} if rule == "kp" else {}))
    layout, theta, X, y = _net(sizes=(7, 3000, 37, 3), b=140, seed=6)
    theta *= 0.3
    order = np.random.default_rng(1).permutation(140).astype(np.intp)

    t, v = theta.copy(), np.zeros_like(theta)
    tr, vr = theta.copy(), np.zeros_like(theta)
    for _ in range(2):
        _alignment.train_epoch(rule.code, t, v, *layout.args(), X, y, order,
                               70, 0.05, 0.9, *rule._kernel_coefficients(),
                               0.0, 3)
        _np_epoch(rule, layout, tr, vr, X, y, order, 70, 0.05, 0.9)
    np.testing.assert_allclose(t, tr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(v, vr, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_kp_trainer_through_its_own_kernel_matches_numpy(dtype, tol):
    # A 3000 -> 37 layer (G of 111000 entries) at batches of 64, 64 and a
    # short 12: KP's own kernel for G on every batch where the CPU has AVX2
    # (the trainer's workspace sized by the first, the last one shorter),
    # against the NumPy transcription in float64.
    rule = al.KP(alpha=0.05)
    layout, theta, X, y = _net(sizes=(7, 3000, 37, 3), b=140, seed=6)
    theta *= 0.3
    assert _alignment.kp_kernel_applies(64, 3000, 37) == _alignment.simd()
    assert _alignment.kp_kernel_applies(12, 3000, 37) == _alignment.simd()
    order = np.random.default_rng(2).permutation(140).astype(np.intp)
    t, v = theta.astype(dtype), np.zeros(theta.shape, dtype)
    tr, vr = theta.copy(), np.zeros_like(theta)
    for _ in range(2):
        _alignment.train_epoch(rule.code, t, v, *layout.args(),
                               X.astype(dtype), y, order, 64, 0.05, 0.9,
                               *rule._kernel_coefficients(), 0.0, 3)
        _np_epoch(rule, layout, tr, vr, X, y, order, 64, 0.05, 0.9)
    assert not np.allclose(tr, theta, rtol=1e-3)
    np.testing.assert_allclose(t, tr, rtol=0, atol=tol * np.abs(tr).max())
    np.testing.assert_allclose(v, vr, rtol=0, atol=tol * np.abs(vr).max())


@pytest.mark.parametrize("rule", ["sa", "kp", "wm"])
def test_float32_trainer_follows_the_float64_one(rule):
    rule = al.get_rule(rule, **({"alpha": 0.05} if rule == "kp" else {}))
    layout, theta, X, y = _net(sizes=(7, 300, 37, 3), b=60, seed=7)
    theta = 0.3 * theta
    order = np.arange(60, dtype=np.intp)

    def epoch(dtype):
        t, v = theta.astype(dtype), np.zeros_like(theta, dtype=dtype)
        _alignment.train_epoch(rule.code, t, v, *layout.args(),
                               X.astype(dtype), y, order, 20, 0.05, 0.9,
                               *rule._kernel_coefficients(),
                               getattr(rule, "noise_std", 0.0), 3)
        return t

    t32, t64 = epoch(np.float32), epoch(np.float64)
    assert t32.dtype == np.float32
    assert not np.allclose(t64, theta, rtol=1e-3)
    np.testing.assert_allclose(t32, t64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_simd_and_portable_wm_noise_are_the_same_draws(dtype):
    # WM's noise, four draws at a time on the AVX2 path, must be the
    # documented stream bit for bit: counts of 7 x 9 and 7 x 13 draws leave
    # a tail of three and three.
    layout, theta, X, y = _net(sizes=(6, 9, 13, 3), b=7, seed=9)
    rule = al.WM(alpha=0.2, beta=0.9, noise_std=0.7)
    theta, X = theta.astype(dtype), X.astype(dtype)

    def grad():
        g = np.zeros_like(theta)
        _alignment.batch_gradient(rule.code, theta, *layout.args(), X, y,
                                  *rule._kernel_coefficients(),
                                  rule.noise_std, 2 ** 64 - 5, g)
        return g

    fast, slow = _both_paths(grad)
    np.testing.assert_array_equal(fast, slow)
    noise, _ = _wm_noise(layout, len(y), 2 ** 64 - 5, rule.noise_std)
    Ws, _, Bs = layout.views(theta.astype(np.float64))
    _, _, gBs = layout.views(fast.astype(np.float64))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for l, N in noise.items():
        ref = _formula(rule, Ws[l], Bs[l], N.astype(dtype).astype(np.float64),
                       None)[0]
        np.testing.assert_allclose(gBs[l], ref, rtol=tol, atol=tol)


def test_simd_switch_reports_the_path_in_use():
    default = _alignment.simd()
    try:
        assert _alignment.simd(False) is False
        assert _alignment.simd() is False
    finally:
        # True restores the AVX2 path exactly where the CPU has it.
        assert _alignment.simd(True) is default


@pytest.mark.parametrize("rule", _RULES[2:6], ids=lambda r: r.name)
def test_update_is_the_gradient_of_the_rules_regularizer(rule):
    # The compiled update equals dR/dB of R summed from the primitives.
    W, B, x, delta = _layer(seed=4)
    np.testing.assert_allclose(al.update(rule, W, B, x).grad_B,
                               rule.regularizer(W, B, x).grad_B, rtol=1e-12,
                               atol=1e-12)


def test_ia_update_is_the_lae_decoder_gradient():
    # IA with (alpha, beta, gamma) = (2, 1, lam) gives the gradient of
    # ||X - W2 W1 X||^2 + lam (||W1||^2 + ||W2||^2) w.r.t. the decoder
    # W2 = B, for encoder W1 = W and C = x^T x / b.  laefast's untied step
    # descends half that gradient: W2 <- W2 - a ((W2 W1 - I) C W1^T + lam W2)
    # at the freshly updated W1.
    W, B, x, _ = _layer(n_out=4, n_in=9, b=50, seed=5)
    lam, step = 0.3, 1.0
    C = x.T @ x / x.shape[0]
    W1, W2 = W.copy(), B.copy()
    laefast.step(W1, W2, C, lam, method="untied", alpha=step)
    lae_grad = 2 * (B - W2) / step
    ia = al.update(al.IA(alpha=2, beta=1, gamma=lam), W1, B, x).grad_B
    assert np.linalg.norm(ia - lae_grad) <= 1e-10 * np.linalg.norm(lae_grad)
    # The same against laefast.reference's plain gradient.
    ref = 2 * (((B @ W1 - np.eye(9)) @ C) @ W1.T + lam * B)
    np.testing.assert_allclose(ia, ref, rtol=1e-10, atol=1e-12)


def test_kp_drives_w_minus_bt_down_geometrically():
    W, B, x, delta = _layer(seed=6)
    rule = al.KP(alpha=0.1)
    lr = 0.5
    gap0 = np.linalg.norm(W - B.T)
    u = al.update(rule, W, B, x, delta)
    W1, B1 = W - lr * u.grad_W, B - lr * u.grad_B
    assert np.linalg.norm(W1 - B1.T) == pytest.approx(
        (1 - 2 * rule.alpha * lr) * gap0, rel=1e-12)


# ---------------------------------------------------------------------------
# The network

def _net(sizes=(6, 5, 4, 3), seed=0, b=7):
    rng = np.random.default_rng(seed)
    layout = _Layout(sizes)
    theta = 0.7 * rng.standard_normal(layout.n_params)
    X = rng.standard_normal((b, sizes[0]))
    y = rng.integers(0, sizes[-1], b).astype(np.intp)
    return layout, theta, X, y


def _batch_gradient(rule, layout, theta, X, y):
    rule = al.get_rule(rule)
    grad = np.zeros_like(theta)
    loss = _alignment.batch_gradient(rule.code, theta, *layout.args(), X, y,
                                     *rule._kernel_coefficients(), 0.0, 1, grad)
    return loss, grad


def _np_loss(layout, theta, X, y):
    Ws, cs, _ = layout.views(theta)
    a = X
    for l, (W, c) in enumerate(zip(Ws, cs)):
        a = a @ W.T + c
        if l < len(Ws) - 1:
            a = np.maximum(a, 0)
    a = a - a.max(axis=1, keepdims=True)
    logp = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def test_bp_gradient_matches_finite_differences_of_the_network_loss():
    layout, theta, X, y = _net()
    loss, grad = _batch_gradient("bp", layout, theta, X, y)
    assert loss == pytest.approx(_np_loss(layout, theta, X, y), rel=1e-12)
    n = layout.n_wc
    fd = np.zeros(n)
    h = 1e-6
    for i in range(n):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        fd[i] = (_np_loss(layout, tp, X, y) - _np_loss(layout, tm, X, y)) / (2 * h)
    np.testing.assert_allclose(grad[:n], fd, rtol=1e-5, atol=1e-8)
    assert not grad[n:].any()          # BP leaves B alone


def test_fa_with_b_equal_to_wt_is_bp():
    layout, theta, X, y = _net(seed=1)
    Ws, _, Bs = layout.views(theta)
    for W, B in zip(Ws, Bs):
        if B is not None:
            B[...] = W.T
    lb, gb = _batch_gradient("bp", layout, theta, X, y)
    lf, gf = _batch_gradient("fa", layout, theta, X, y)
    assert lf == lb
    np.testing.assert_array_equal(gf, gb)
    # ... and one SGD step moves W and the biases identically (after it, W
    # has moved and FA's B has not).
    order = np.arange(len(y), dtype=np.intp)
    out = []
    for rule in ("bp", "fa"):
        t, v = theta.copy(), np.zeros_like(theta)
        _alignment.train_epoch(al.get_rule(rule).code, t, v, *layout.args(),
                               X, y, order, len(y), 0.1, 0.9, 0, 0, 0, 0, 1)
        out.append(t[:layout.n_wc])
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-14)


def _np_epoch(rule, layout, theta, vel, X, y, order, batch, lr, mu,
              state=None):
    """One epoch written out in NumPy (WM: with the noise stream from
    state; returns the state after)."""
    Ws, cs, Bs = layout.views(theta)
    vWs, vcs, vBs = layout.views(vel)
    L = len(Ws)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        xb, yb, b = X[idx], y[idx], len(idx)
        acts = [xb]
        for l in range(L):
            z = acts[-1] @ Ws[l].T + cs[l]
            acts.append(np.maximum(z, 0) if l < L - 1 else z)
        z = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        d = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        d[np.arange(b), yb] -= 1
        d /= b
        if rule.name == "wm":
            noise, state = _wm_noise(layout, b, state, rule.noise_std)
        grads = []
        for l in range(L - 1, -1, -1):
            gW, gc, gB = d.T @ acts[l], d.sum(axis=0), None
            if l > 0:
                back = Ws[l] if rule.name == "bp" else Bs[l].T
                if rule.name in ("sa", "aa", "ia"):
                    gB = _formula(rule, Ws[l], Bs[l], acts[l], None)[0]
                elif rule.name == "wm":
                    gB = _formula(rule, Ws[l], Bs[l], noise[l], None)[0]
                elif rule.name == "kp":
                    gB = gW.T + 2 * rule.alpha * Bs[l]
                    gW = gW + 2 * rule.alpha * Ws[l]
                d = (d @ back) * (acts[l] > 0)
            grads.append((l, gW, gc, gB))
        for l, gW, gc, gB in grads:
            for p, v, g in ((Ws[l], vWs[l], gW), (cs[l], vcs[l], gc),
                            (Bs[l], vBs[l], gB)):
                if g is not None:
                    v *= mu
                    v += g
                    p -= lr * v
    return state


_GAMMA = 0x9E3779B97F4A7C15


def _splitmix_noise(state, n, std):
    """The trainer's WM noise written out: draw k (from 1) of splitmix64 is
    the mix of state + k gamma, mapped to U(-a, a), a = sqrt(3) std."""
    with np.errstate(over="ignore"):
        z = np.uint64(state) + np.uint64(_GAMMA) * np.arange(
            1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (np.sqrt(3.0) * std * (2 * u - 1),
            (int(state) + int(n) * _GAMMA) % 2 ** 64)


def _wm_noise(layout, b, state, std):
    """{layer: noise (b x n_in)} for one batch, drawn layer L-1 first (the
    order the trainer has always used), and the state after."""
    s, noise = layout.sizes, {}
    for l in range(len(s) - 2, 0, -1):
        v, state = _splitmix_noise(state, b * int(s[l]), std)
        noise[l] = v.reshape(b, s[l])
    return noise, state


def test_wm_batch_gradient_uses_the_documented_noise_stream():
    layout, theta, X, y = _net(sizes=(6, 9, 8, 3), b=7, seed=3)
    rule = al.WM(alpha=0.2, beta=0.9, noise_std=0.7)
    grad = np.zeros_like(theta)
    _alignment.batch_gradient(rule.code, theta, *layout.args(), X, y,
                              *rule._kernel_coefficients(), rule.noise_std,
                              12345, grad)
    noise, _ = _wm_noise(layout, len(y), 12345, rule.noise_std)
    Ws, _, Bs = layout.views(theta)
    _, _, gBs = layout.views(grad)
    for l, N in noise.items():
        ref = _formula(rule, Ws[l], Bs[l], N, None)[0]
        np.testing.assert_allclose(gBs[l], ref, rtol=1e-12, atol=1e-13)
    # W and the biases: the error goes back through B, as in FA.
    gfa = _batch_gradient("fa", layout, theta, X, y)[1]
    np.testing.assert_allclose(grad[:layout.n_wc], gfa[:layout.n_wc],
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("sizes", [(6, 5, 4, 3), (7, 41, 600, 3)],
                         ids=["small", "panels"])
@pytest.mark.parametrize("rule", ["bp", "fa", "sa", "aa", "wm", "ia", "kp"])
def test_training_epoch_matches_numpy_transcription(rule, sizes):
    # "panels": a 41 -> 600 layer (odd n_in; B held as its 600 x 41
    # transpose) and a 600 -> 3 one (SA's and KP's elementwise ties over
    # matrices of 1800 and 24600 entries).  Three
    # epochs of five batches: the trainer folds each batch's last pass over
    # B's velocity into the next batch's first, and unfolds it at the end of
    # an epoch; the velocity must come out right too.
    rule = al.get_rule(rule, **({"alpha": 0.05} if rule == "kp" else {}))
    layout, theta, X, y = _net(sizes=sizes, b=23, seed=2)
    theta *= 0.5 if sizes[1] > 10 else 1
    order = np.random.default_rng(0).permutation(23).astype(np.intp)
    t, v = theta.copy(), np.zeros_like(theta)
    tr, vr = theta.copy(), np.zeros_like(theta)
    noise_std = getattr(rule, "noise_std", 0.0)
    seed = seed_np = 77
    for _ in range(3):
        *_, seed = _alignment.train_epoch(
            rule.code, t, v, *layout.args(), X, y, order, 5, 0.05, 0.9,
            *rule._kernel_coefficients(), noise_std, seed)
        seed_np = _np_epoch(rule, layout, tr, vr, X, y, order, 5, 0.05, 0.9,
                            state=seed_np)
    np.testing.assert_allclose(t, tr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(v, vr, rtol=1e-10, atol=1e-12)
    if rule.name == "wm":
        assert seed == seed_np


def test_float32_training_tracks_float64():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    r64 = al.train_mlp(X, y, "sa", hidden=(16,), epochs=3)
    r32 = al.train_mlp(X, y, "sa", hidden=(16,), epochs=3, dtype=np.float32)
    assert r32.weights[0].dtype == np.float32
    for a, b in zip(r64.weights, r32.weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * np.abs(a).max())


def test_wm_trainer_aligns_b_from_noise_alone():
    # The weight mirror never sees the data in its B update; B still turns
    # towards W^T from its random start (about 90 degrees away).
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 10))
    y = (X[:, :3].sum(axis=1) > 0).astype(int)
    res = al.train_mlp(X, y, "wm", hidden=(32, 32), epochs=20)
    first, last = res.history["angles"][0], res.history["angles"][-1]
    assert max(last) < 30 and min(first) > max(last)


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return al.load_dataset("digits")


def test_sa_and_kp_align_and_match_bp_on_digits(digits):
    # The claim of docs/alignment.md on a fixed problem: with the default
    # coefficients SA and KP bring every B within 5 degrees of W^T and reach
    # BP's test accuracy within 1 point (mean over three seeds; one seed's
    # test accuracy moves by about a point from the shuffles alone).
    Xtr, ytr, Xte, yte = digits
    acc = {}
    for rule in ("bp", "sa", "kp"):
        runs = [al.train_mlp(Xtr, ytr, rule, epochs=50, X_test=Xte,
                             y_test=yte, seed=s) for s in range(3)]
        acc[rule] = np.mean([r.history["test_accuracy"][-1] for r in runs])
        if rule != "bp":
            assert max(max(r.angles()) for r in runs) < 5.0
        if rule == "kp":
            # KP closes the gap gradually: after one epoch it is still wide
            assert min(runs[0].history["angles"][0]) > 20.0
    assert acc["bp"] > 0.95
    for rule in ("sa", "kp"):
        assert acc[rule] >= acc["bp"] - 0.01, acc


def test_fa_does_not_align():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 6))
    y = (X[:, 0] > 0).astype(int)
    res = al.train_mlp(X, y, "fa", hidden=(16, 16), epochs=5)
    assert min(res.angles()) > 30
    B0 = res.backward[1].copy()
    assert res.score(X, y) > 0.8
    np.testing.assert_array_equal(res.backward[1], B0)


def test_result_predict_and_bp_backward_copy():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((150, 4))
    y = np.where(X[:, 0] > 0, "pos", "neg")
    res = al.train_mlp(X, y, "bp", hidden=(8, 8), epochs=10)
    assert set(res.predict(X)) <= {"pos", "neg"}
    assert res.score(X, y) > 0.9
    assert res.backward[0] is None
    np.testing.assert_array_equal(res.backward[1], res.weights[1].T)
    assert res.angles() == [0.0, 0.0]
    # B_l as a view of B_l^T, held in the parameter vector in W's layout.
    for B in res.backward[1:]:
        assert B.flags.f_contiguous and not B.flags.c_contiguous
        assert np.shares_memory(B, res._theta)


def test_angle():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 4))
    assert al.angle(2 * W.T, W) == pytest.approx(0.0, abs=1e-6)
    assert al.angle(-W.T, W) == pytest.approx(180.0)
    Q = np.zeros((4, 3))
    Q[0, 0] = 1
    V = np.zeros((3, 4))
    V[1, 1] = 1
    assert al.angle(Q, V) == pytest.approx(90.0)


# ---------------------------------------------------------------------------
# Bad input

def test_mismatched_shapes_are_rejected():
    W, B, x, delta = _layer()
    with pytest.raises(ValueError, match=r"B must have shape \(n_in, n_out\)"):
        al.update("sa", W, B.T, x)
    with pytest.raises(ValueError, match=r"x must have shape \(b, n_in\)"):
        al.update("aa", W, B, x[:, :3])
    with pytest.raises(ValueError, match=r"delta must have shape \(b, n_out\)"):
        al.update("kp", W, B, x, delta[:, :2])
    with pytest.raises(ValueError, match=r"B must have shape"):
        al.primitive("null", W, B[:3], x)
    with pytest.raises(ValueError, match="one label per row of X"):
        al.train_mlp(x, np.arange(3), "bp", hidden=(4,), epochs=1)
    with pytest.raises(ValueError, match="the network expects 7"):
        res = al.train_mlp(x, np.arange(6) % 2, "bp", hidden=(4,), epochs=1)
        res.predict(x[:, :5])
    with pytest.raises(ValueError, match="W must have W\\^T's shape|B must have W"):
        al.angle(B, B)


def test_unknown_rule_and_primitive():
    W, B, x, _ = _layer()
    with pytest.raises(ValueError, match="unknown rule 'xx'; choose one of bp"):
        al.update("xx", W, B, x)
    with pytest.raises(ValueError, match="unknown rule 'backprop'"):
        al.train_mlp(x, np.arange(6) % 2, "backprop")
    with pytest.raises(ValueError, match="unknown primitive 'decays'"):
        al.primitive("decays", W, B)
    with pytest.raises(ValueError, match="has no coefficient gamma"):
        al.get_rule("sa", gamma=1.0)
    with pytest.raises(ValueError, match="KP needs the layer's error signal"):
        al.update("kp", W, B, x)
    with pytest.raises(ValueError, match="needs the input batch x"):
        al.primitive("amp", W, B)


def test_negative_coefficients_are_rejected():
    with pytest.raises(ValueError, match="SA alpha must be a finite number >= 0"):
        al.SA(alpha=-1.0)
    with pytest.raises(ValueError, match="IA gamma must be a finite number >= 0"):
        al.get_rule("ia", gamma=-0.1)
    with pytest.raises(ValueError, match="WM noise_std must be a finite number"):
        al.WM(noise_std=float("nan"))
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="lr must be >= 0"):
        al.train_mlp(X, y, lr=-0.1)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        al.train_mlp(X, y, momentum=1.0)


def test_nan_data_is_rejected():
    W, B, x, delta = _layer()
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN \(first at row "):
        al.update("ia", W, B, x)
    W2 = W.copy()
    W2[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"W contains infinity \(first at row 0\)"):
        al.update("sa", W2, B, x[:2])
    X = np.random.default_rng(0).standard_normal((20, 3))
    X[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN \(first at row 5\)"):
        al.train_mlp(X, np.arange(20) % 2, "bp")


def test_divergence_is_reported():
    # SA's B step is lr * 2 alpha per unit of misalignment: 2e4 overshoots.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(FloatingPointError, match="diverged in epoch"):
        al.train_mlp(X, y, al.SA(alpha=1e4, beta=2e4), hidden=(8,), lr=1.0,
                     momentum=0.0, batch_size=1, epochs=20)


# ---------------------------------------------------------------------------
# Command line

def test_cli_align_prints_accuracy_and_angles(tmp_path, capsys):
    pytest.importorskip("sklearn")
    path = tmp_path / "align.json"
    assert main(["align", "--rules", "bp", "sa", "kp", "--epochs", "2",
                 "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "sa epoch   2" in err
    lines = {line.split()[0]: line.split() for line in out.splitlines()
             if line.split() and line.split()[0] in ("bp", "sa", "kp")}
    assert set(lines) == {"bp", "sa", "kp"}
    assert float(lines["bp"][3]) == 0.0            # BP's angle, layer 2
    data = json.loads(path.read_text())
    assert set(data["rules"]) == {"bp", "sa", "kp"}
    assert len(data["rules"]["kp"]["history"]["angles"]) == 2
    assert float(lines["kp"][1]) == pytest.approx(
        100 * data["rules"]["kp"]["test_accuracy"], abs=0.006)


def test_cli_align_plot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    path = tmp_path / "align.png"
    assert main(["align", "--rules", "bp", "fa", "--epochs", "2", "--quiet",
                 "--plot", str(path)]) == 0
    assert path.stat().st_size > 1000
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv,message", [
    (["align", "--epochs", "0"], "--epochs must be >= 1"),
    (["align", "--rules", "backprop"], "invalid choice: 'backprop'"),
    (["align", "--json", "/nonexistent-dir/x.json"], "does not exist"),
    (["align", "--seed", "-1"], "--seed must be >= 0"),
])
def test_cli_align_validates_before_work(argv, message, capsys):
    with pytest.raises(SystemExit, match="^2$"):
        main(argv)
    assert message in capsys.readouterr().err
