"""laefast.landscape: closed forms against finite differences and against
laefast.loss, trajectories against the solvers' own records and the NumPy
reference, shrinkage against solver runs, and the landscape command.

The numbers the landscape command draws (laefast._landscape_figures: the
m = 2 tied landscape, the shrinkage runs, the GIF) are checked on the
functions that compute them, since the command's only output is pictures.
"""

import pathlib
import re

import numpy as np
import pytest

import laefast
from laefast import landscape as ls
from laefast import reference
from laefast.__main__ import main
from laefast._landscape_figures import (SHRINK_RATIOS, SHRINK_SIGMA2,
                                        shrinkage_runs, tied2_critical_points,
                                        tied2_loss)

ROOT = pathlib.Path(__file__).resolve().parent.parent
H = 1e-4


def _fd_gradient(f, w1, w2):
    return np.array([(f(w1 + H, w2) - f(w1 - H, w2)) / (2 * H),
                     (f(w1, w2 + H) - f(w1, w2 - H)) / (2 * H)])


def _fd_hessian(f, w1, w2):
    h = 1e-3
    f11 = (f(w1 + h, w2) - 2 * f(w1, w2) + f(w1 - h, w2)) / h ** 2
    f22 = (f(w1, w2 + h) - 2 * f(w1, w2) + f(w1, w2 - h)) / h ** 2
    f12 = (f(w1 + h, w2 + h) - f(w1 + h, w2 - h) - f(w1 - h, w2 + h)
           + f(w1 - h, w2 - h)) / (4 * h * h)
    return np.array([[f11, f12], [f12, f22]])


CASES = [("sum", 1.0, 0.4), ("sum", 2.0, 0.5), ("sum", 1.0, 1.0),
         ("sum", 1.0, 1.7), ("product", 1.0, 0.4), ("product", 3.0, 2.0),
         (None, 1.0, 0.4), ("sum", 1.5, 0.0)]


@pytest.mark.parametrize("regularizer,sigma2,lam", CASES)
def test_critical_points_are_critical_with_the_stated_index(regularizer,
                                                            sigma2, lam):
    def f(a, b):
        return float(ls.scalar_loss(a, b, sigma2, lam, regularizer))

    points = ls.scalar_critical_points(sigma2, lam, regularizer)
    assert points[0].w1 == 0.0 and points[0].w2 == 0.0
    for cp in points:
        if cp.kind == "point":
            where = [(cp.w1, cp.w2)]
        else:
            t = np.array([0.5, 1.3, -0.7, -1.9])
            where = list(zip(t, cp.curve(t)))
        for w1, w2 in where:
            assert f(w1, w2) == pytest.approx(cp.value, abs=1e-12)
            np.testing.assert_allclose(_fd_gradient(f, w1, w2), 0, atol=1e-7)
            H_fd = _fd_hessian(f, w1, w2)
            np.testing.assert_allclose(
                ls.scalar_hessian(w1, w2, sigma2, lam, regularizer), H_fd,
                atol=1e-4)
            ev = np.linalg.eigvalsh(H_fd)
            negative = int(np.sum(ev < -1e-4))
            assert negative == cp.index
            if cp.kind == "curve" or (regularizer == "sum" and lam == sigma2):
                # Degenerate: one flat direction (along the curve, or the
                # quartic bottom at lam = sigma2), the other positive.
                assert abs(ev[0]) < 1e-4 and ev[1] > 1e-2
        expected = {0: "minimum", 1: "saddle", 2: "maximum"}[cp.index]
        assert cp.type == expected


def test_critical_points_closed_forms():
    sigma2, lam = 2.0, 0.5
    saddle, plus, minus = ls.scalar_critical_points(sigma2, lam)
    w = np.sqrt(1 - lam / sigma2)
    assert (saddle.type, plus.type, minus.type) == ("saddle", "minimum",
                                                    "minimum")
    assert plus.w1 == plus.w2 == pytest.approx(w)
    assert minus.w1 == minus.w2 == pytest.approx(-w)
    assert plus.value == pytest.approx(2 * lam - lam ** 2 / sigma2)
    # lam >= sigma2: the origin is the only critical point, a minimum of
    # value sigma2 (L(0, 0) = sigma2).
    (only,) = ls.scalar_critical_points(sigma2, 2.5)
    assert (only.w1, only.w2, only.type) == (0.0, 0.0, "minimum")
    assert only.value == pytest.approx(sigma2)
    curve = ls.scalar_critical_points(sigma2, lam, "product")[1]
    assert curve.kind == "curve"
    assert curve.product == pytest.approx(sigma2 / (sigma2 + lam))
    assert curve.value == pytest.approx(sigma2 * lam / (sigma2 + lam))
    assert ls.scalar_critical_points(sigma2, lam, None)[1].product == 1.0
    with pytest.raises(ValueError, match="curve\\(\\) is for critical curves"):
        saddle.curve(1.0)
    with pytest.raises(ValueError, match=r"The 'sigma2' parameter of "
                                         r"scalar_critical_points must be a "
                                         r"finite float in the range \(0, inf\)"):
        ls.scalar_critical_points(0.0, 1.0)


@pytest.mark.parametrize("regularizer", ["sum", "product", None])
def test_scalar_loss_is_laefast_loss_at_m_k_1(regularizer):
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal(20), rng.standard_normal(20)
    sigma2, lam = 1.7, 0.6
    grid = ls.scalar_loss(w1[:, None], w2[None, :], sigma2, lam, regularizer)
    assert grid.shape == (20, 20)
    C = np.array([[sigma2]])
    for i in range(0, 20, 3):
        for j in range(0, 20, 4):
            expected = laefast.loss(C, [[w1[i]]], [[w2[j]]], lam, regularizer)
            assert grid[i, j] == pytest.approx(expected, rel=1e-13)
    g1, g2 = ls.scalar_gradient(w1, w2, sigma2, lam, regularizer)
    for i in range(0, 20, 5):
        G1, G2 = laefast.loss_gradient(C, [[w1[i]]], [[w2[i]]], lam,
                                       regularizer)
        assert g1[i] == pytest.approx(G1[0, 0], rel=1e-12, abs=1e-14)
        assert g2[i] == pytest.approx(G2[0, 0], rel=1e-12, abs=1e-14)


TRAJECTORIES = [(m, "sum") for m in laefast.METHODS] + [
    (m, "product") for m in ("untied", "sync", "tied")]


@pytest.mark.parametrize("method,regularizer", TRAJECTORIES)
@pytest.mark.filterwarnings("ignore::laefast.ConvergenceWarning")
def test_trajectory_is_the_solvers_iterates(method, regularizer):
    sigma2, lam, w1, w2, n = 1.3, 0.4, 1.4, -0.35, 40
    gd = method in ("untied", "sync", "tied")
    alpha = 0.1 if gd else None
    path = ls.scalar_trajectory(method, w1, w2, sigma2, lam, alpha=alpha,
                                n_iter=n, regularizer=regularizer)
    assert path.shape == (n + 1, 2)
    tied_start = method in ("sync", "exact-sync", "tied")
    assert tuple(path[0]) == ((w2, w2) if tied_start else (w1, w2))
    res = laefast.solve([[sigma2]], 1, lam, method=method, alpha=alpha,
                        init=([[w1]], [[w2]]), tol=0.0, max_iter=n,
                        history="weights", regularizer=regularizer)
    # solve stops early only where its stopping quantity is exactly 0.
    t = res.n_iter
    assert t >= 10
    assert np.array_equal(path[1:t + 1, 0], res.history["W1"][:, 0, 0])
    assert np.array_equal(path[1:t + 1, 1], res.history["W2"][:, 0, 0])
    # And independently, against the NumPy reference's iterates.
    ref = reference.iterates(method, [[sigma2]], [[w1]], [[w2]], lam, alpha,
                             tol=-1.0, regularizer=regularizer)
    for i in range(1, n + 1):
        r1, r2, _ = next(ref)
        np.testing.assert_allclose(path[i], [r1[0, 0], r2[0, 0]], rtol=1e-12,
                                   atol=1e-14)


def test_trajectories_reach_the_closed_form_minima():
    sigma2, lam = 1.0, 0.4
    w = np.sqrt(1 - lam / sigma2)
    for method in laefast.METHODS:
        gd = method in ("untied", "sync", "tied")
        end = ls.scalar_trajectory(method, 1.2, 0.9, sigma2, lam,
                                   alpha=0.1 if gd else None,
                                   n_iter=600 if gd else 200)[-1]
        np.testing.assert_allclose(end, [w, w], rtol=1e-9)
    end = ls.scalar_trajectory("untied", 1.2, 0.3, sigma2, lam, alpha=0.1,
                               n_iter=2000, regularizer="product")[-1]
    # On L_pi's curve of minima, not on the diagonal.
    assert end[0] * end[1] == pytest.approx(sigma2 / (sigma2 + lam), rel=1e-9)
    assert abs(end[0] - end[1]) > 0.1


def test_trajectory_errors():
    with pytest.raises(ValueError, match="regularizer='product' works with "
                                         "the gradient methods"):
        ls.scalar_trajectory("exact-tied", 1.0, 1.0, 1.0, 0.5,
                             regularizer="product")
    with pytest.raises(ValueError, match=r"The 'n_iter' parameter of "
                                         r"scalar_trajectory must be an int in "
                                         r"the range \[0, inf\)"):
        ls.scalar_trajectory("tied", 1.0, 1.0, 1.0, 0.5, n_iter=-1)
    with pytest.raises(ValueError, match=r"The 'w1' parameter of scalar_trajectory "
                                         r"must be a finite float in the range "
                                         r"\(-inf, inf\)\. Got inf instead"):
        ls.scalar_trajectory("tied", np.inf, 1.0, 1.0, 0.5)
    with pytest.raises(laefast.DivergenceError, match="diverged"):
        ls.scalar_trajectory("untied", 3.0, 3.0, 1.0, 0.5, alpha=5.0,
                             n_iter=100)


@pytest.mark.parametrize("regularizer,ratios", [("sum", None),
                                                ("product", None),
                                                ("sum", SHRINK_RATIOS)])
def test_shrinkage_curves_match_solver_runs(regularizer, ratios):
    lams = (0.3, 0.9, 1.6, 2.7, 4.6)
    runs = shrinkage_runs(lams, regularizer, ratios)
    s2 = np.asarray(SHRINK_SIGMA2)
    for row, lam in zip(runs, lams):
        penalty = lam if ratios is None else lam * np.asarray(ratios)
        np.testing.assert_allclose(row, ls.shrinkage(s2, penalty,
                                                     regularizer), atol=1e-8)


def test_tied_m2_landscape():
    s1, s2, lam = 2.0, 1.0, 0.6
    rng = np.random.default_rng(1)
    C = np.diag([s1, s2])
    for a, b in rng.standard_normal((5, 2)):
        W = np.array([[a], [b]])
        assert tied2_loss(a, b, s1, s2, lam) == pytest.approx(
            laefast.loss(C, W.T, W, lam), rel=1e-12)
    kinds = {}
    for a, b, kind, value in tied2_critical_points(s1, s2, lam):
        W = np.array([[a], [b]])
        # Critical for the tied loss: its gradient in W is G1^T + G2.
        G1, G2 = laefast.loss_gradient(C, W.T, W, lam)
        np.testing.assert_allclose(G1.T + G2, 0, atol=1e-12)
        kinds[(round(a, 6), round(b, 6))] = kind
    w1, w2 = np.sqrt(1 - lam / s1), np.sqrt(1 - lam / s2)
    assert kinds == {(0.0, 0.0): "maximum", (round(w1, 6), 0.0): "minimum",
                     (round(-w1, 6), 0.0): "minimum",
                     (0.0, round(w2, 6)): "saddle",
                     (0.0, round(-w2, 6)): "saddle"}


# ---------------------------------------------------------------------------
# The command

@pytest.mark.parametrize("args,message", [
    (["--sigma2", "0"], "--sigma2 must be a finite number > 0"),
    (["--lam", "-1"], "--lam must be a finite number >= 0"),
    (["--lam", "nan"], "--lam must be a finite number >= 0"),
    (["--no-png", "--no-html"], "leave nothing to write"),
])
def test_landscape_command_validates_first(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit, match="^2$"):       # argparse's usage error
        main(["landscape", "--out", str(tmp_path / "figs")] + args)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()


def test_landscape_command_rejects_a_file_as_out(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(SystemExit, match="^2$"):
        main(["landscape", "--out", str(target)])
    assert "exists and is not a folder" in capsys.readouterr().err


def test_landscape_command_writes_the_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("plotly")
    out = tmp_path / "figs"
    assert main(["landscape", "--out", str(out)]) == 0
    for name in ("landscapes.png", "trajectories.png", "shrinkage.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert 10_000 < len(data) < 300_000
    html = (out / "landscapes.html").read_text()
    # Self-contained: plotly.js inlined, no script fetched from anywhere.
    assert not re.search(r"<script[^>]+src=", html)
    assert "plotly_sliderchange" in html and len(html) > 1_000_000
    printed = capsys.readouterr().out.split()
    written = sorted(str(p) for p in out.iterdir())
    assert sorted(printed) == written and len(written) == 4


def test_readme_shows_the_committed_figures():
    readme = (ROOT / "README.md").read_text()
    for name in ("landscapes.png", "trajectories.png", "shrinkage.png"):
        path = ROOT / "docs" / name
        assert path.exists() and path.stat().st_size < 300_000
        assert f"docs/{name}" in readme


def test_docstring_examples_run():
    import doctest
    import laefast._regularizer
    for module in (ls, laefast._regularizer):
        failed, attempted = doctest.testmod(module)
        assert attempted > 0 and failed == 0, module.__name__


def test_trajectories_gif(tmp_path):
    pytest.importorskip("matplotlib")
    Image = pytest.importorskip("PIL.Image")
    from laefast._landscape_figures import trajectories_gif
    path = tmp_path / "t.gif"
    trajectories_gif(str(path), 1.0, 0.4, frames=3)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 3
