"""The asv suite's and the scripts' harness, benchmarks/laefast_bench.

It lives outside the package (asv imports it from the working tree, so it is
the same for every measured commit); these tests import it the way the
scripts do, with benchmarks/ on sys.path.  Only the paper's problem (m=10)
is built here.
"""

import importlib
import importlib.util
import pathlib
import re
import types

import numpy as np
import pytest

import laefast
from laefast import bench, reference
from laefast.metrics import u_error

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def harness(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("laefast_bench")


def _asv_common(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    path = BENCHMARKS / "benchmarks" / "_common.py"
    spec = importlib.util.spec_from_file_location("asv_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_harness_uses_only_public_laefast_names():
    # The harness must run against any commit with the public API: no
    # private module of the package is imported.
    for path in (BENCHMARKS / "laefast_bench").glob("*.py"):
        text = path.read_text()
        assert "from laefast._" not in text, path.name
        assert "from laefast import _" not in text, path.name
        assert not re.search(r"laefast\._[a-z]", text), path.name


def test_best_of_warmup_settle_and_budget(harness):
    calls = []

    def fn():
        calls.append(1)
        return len(calls)

    t, out, n = harness.best_of(fn, repeats=3, budget=1e9, warmup=2)
    assert (n, out, len(calls)) == (3, 5, 5) and t >= 0
    calls.clear()
    t, out, n = harness.best_of(fn, repeats=4, budget=0.0)
    assert (n, out) == (1, 1)        # the budget stops after one call


def test_interleaved_best_rounds_warmup_and_slow_skip(harness):
    order = []
    fns = {"a": lambda: order.append("a") or "ra",
           "b": lambda: order.append("b") or "rb"}
    best, result = harness.interleaved_best(fns, 3, settle_s=0.0,
                                            warmup=True)
    # One warm-up call each, then one call each per round, interleaved.
    assert order == ["a", "b"] + ["a", "b"] * 3
    assert set(best) == {"a", "b"} and all(v >= 0 for v in best.values())
    assert result == {"a": "ra", "b": "rb"}
    order.clear()
    harness.interleaved_best(fns, 3, settle_s=0.0, warmup=False, slow_s=-1.0)
    assert order == ["a", "b"]       # each "slower" than slow_s: run once


def test_error_per_second_rejects_bad_seconds(harness):
    assert harness.error_per_second(3.0, 1.0, 0.5) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="seconds must be positive"):
        harness.error_per_second(1.0, 0.0, 0.0)


def test_reference_cap_reasons(harness):
    fake = types.SimpleNamespace(
        reference_caps={"untied": 10, "exact-untied": 0}, m=1000, k=20)
    assert harness.reference_cap(fake, "tied") == (None, "")
    cap, reason = harness.reference_cap(fake, "exact-untied")
    assert cap == 0 and "20000 x 20000" in reason and "3.2 GB" in reason


def test_paper_problem_agrees_with_the_command_line(harness):
    # Two copies of the paper's problem (the fixed harness, the command's
    # module laefast.bench): they must describe the same problem.
    P, Q = harness.get_problem("paper"), bench.get_problem("paper")
    assert (P.m, P.n, P.k, P.lam, P.tol, P.gd_alpha) == (10, 10_000, 2, 50.0,
                                                         1e-8, 1e-5)
    assert (P.m, P.n, P.k, P.lam, P.tol, P.gd_alpha) == \
        (Q.m, Q.n, Q.k, Q.lam, Q.tol, Q.gd_alpha)
    np.testing.assert_array_equal(P.C, Q.C)
    np.testing.assert_array_equal(P.W2, Q.W2)
    # U_true: the top-k eigenvectors of C (up to sign).
    w, V = np.linalg.eigh(P.C)
    assert u_error(P.U_true, V[:, ::-1][:, :2]) < 1e-10
    assert harness.METHODS == laefast.METHODS
    assert harness.PEERS == bench.PEERS


def test_step_function_follows_the_reference(harness):
    P = harness.get_problem("paper")
    lae = harness.step_function(P, "exact-tied", "laefast")
    ref = harness.step_function(P, "exact-tied", "reference")
    for _ in range(5):
        assert lae() == pytest.approx(ref(), rel=1e-8)


def test_trajectory_ends_at_the_stopping_rule(harness):
    P = harness.get_problem("paper")
    its, errs = harness.laefast_trajectory(P, "exact-tied")
    res = harness.run_laefast(P, "exact-tied")
    assert its[0] == 1 and its[-1] == res.n_iter
    assert errs[-1] == pytest.approx(
        u_error(res.components.T, P.U_true), rel=1e-6, abs=1e-12)


def test_environment_reports_blas_and_laefast(harness):
    import laefast
    env = harness.environment()
    assert env["laefast"] == laefast.__version__
    assert any(p["user_api"] == "blas" for p in env["threadpools"])
    line = harness.environment_line(env)
    assert "BLAS:" in line and laefast.__version__ in line


@pytest.mark.parametrize("method", ["exact-sync", "tied"])
def test_asv_iterations_to_tolerance_match_the_reference(method, monkeypatch):
    # The asv suite's time-to-tolerance count, found by bisection over
    # laefast.solve runs, against a plain walk over laefast.reference's
    # iterates from the same start.
    common = _asv_common(monkeypatch)
    P = common.problem("paper")
    n = common.iterations_to_tolerance(P, method, u_tol=1e-4)
    alpha = P.ref_alpha if method in common._bench.GD_METHODS else None
    first = None
    for it, (_, W2, _) in enumerate(reference.iterates(
            method, P.C, P.W1, P.W2, P.lam, alpha, tol=-1.0), start=1):
        U = np.linalg.svd(W2, full_matrices=False)[0]
        if u_error(U, P.U_true) <= 1e-4:
            first = it
            break
    assert first is not None and n == first
