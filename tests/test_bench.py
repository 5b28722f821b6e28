"""What ``python -m laefast bench`` runs (laefast.bench) and the command.

The asv suite's harness (benchmarks/laefast_bench) is tested in
tests/test_bench_harness.py.

Only the paper's problem (m=10) is run here, with the fast methods, so each
test takes well under two seconds; the spiked problem is exercised by the
asv suite and the bench command itself.
"""

import dataclasses
import doctest
import json
import sys

import numpy as np
import pytest

from laefast import bench
from laefast.__main__ import main


def test_error_per_second_arithmetic():
    assert bench.error_per_second(3.0, 1.0, 0.5) == pytest.approx(4.0)
    assert bench.error_per_second(2.0, 2.0, 1.0) == 0.0
    # A run that made things worse removes a negative amount.
    assert bench.error_per_second(1.0, 2.0, 0.25) == pytest.approx(-4.0)
    for bad in (0.0, -1.0, None, float("nan")):
        with pytest.raises(ValueError, match="seconds must be positive"):
            bench.error_per_second(1.0, 0.0, bad)


def test_best_of_repeats_and_budget():
    calls = []

    def fn():
        calls.append(1)
        return len(calls)

    t, out, n = bench.best_of(fn, repeats=4, budget=1e9)
    assert n == 4 and out == 4 and len(calls) == 4 and t >= 0
    calls.clear()
    t, out, n = bench.best_of(fn, repeats=4, budget=0.0)
    assert n == 1 and out == 1      # the budget stops after one call


def test_capped_and_infeasible_reference_rows_say_why():
    # exact-untied's reference is not run where its Kronecker solve is
    # infeasible (cap 0); a capped reference says how far it ran.
    P = bench.get_problem("paper")
    capped = dataclasses.replace(P, reference_caps={"untied": 10,
                                                    "exact-untied": 0})
    result = bench.measure_problem(capped, ["untied", "exact-untied"],
                                   repeats=1, budget=0.0, with_peers=False,
                                   with_fit=False)
    ref = {r["name"]: r for r in result["rows"] if r["solver"] == "reference"}
    assert ref["exact-untied"]["skipped"].startswith("infeasible: its (mk x "
                                                     "mk) = 20 x 20")
    assert ref["exact-untied"]["seconds"] is None
    assert ref["untied"]["n_iter"] == 10 and ref["untied"]["capped"]
    assert any("capped at 10 iterations" in note for note in result["notes"])
    table = bench.format_table(result)
    assert "reference exact-untied" in table and "skipped" in table


def test_paper_problem_matches_reference():
    P = bench.get_problem("paper")
    assert (P.m, P.n, P.k, P.lam, P.tol, P.gd_alpha) == (10, 10_000, 2, 50.0,
                                                         1e-8, 1e-5)
    # U_true: top-k left singular vectors of the centered data (columns).
    assert np.allclose(P.U_true.T @ P.U_true, np.eye(2))
    assert P.start_error > 0.1


def test_measure_problem_rows_are_consistent():
    P = bench.get_problem("paper")
    result = bench.measure_problem(P, ["exact-sync", "exact-tied"],
                                    repeats=1, budget=0.0, with_peers=False)
    rows = result["rows"]
    lae = {r["name"]: r for r in rows if r["solver"] == "laefast"}
    ref = {r["name"]: r for r in rows if r["solver"] == "reference"}
    assert set(ref) == {"exact-sync", "exact-tied"}
    for method in ref:
        a, b = lae[method], ref[method]
        assert a["n_iter"] == b["n_iter"]            # same start, same rule
        assert a["u_error"] == pytest.approx(b["u_error"], rel=1e-3, abs=1e-9)
        for r in (a, b):
            assert r["error_per_second"] == pytest.approx(
                (P.start_error - r["u_error"]) / r["seconds"])
        assert a["vs_reference"] == pytest.approx(
            a["error_per_second"] / b["error_per_second"])
    fit = lae["fit(X) exact-tied"]
    assert fit["input"] == "data" and fit["u_error"] < 1e-4


def test_capped_reference_compares_the_same_iterations():
    P = bench.get_problem("paper")
    capped = dataclasses.replace(P, reference_caps={"exact-tied": 30})
    result = bench.measure_problem(capped, ["exact-tied"], repeats=1,
                                    budget=0.0, with_peers=False,
                                    with_fit=False)
    lae, ref = result["rows"]
    assert ref["capped"] and ref["n_iter"] == 30
    assert lae["n_iter"] > 30 and lae["converged"]
    assert "first 30 its" in lae["note"]
    over = lae["vs_reference_over"]
    assert over["iterations"] == 30
    assert lae["vs_reference"] == pytest.approx(
        over["laefast_error_per_second"] / ref["error_per_second"])
    # Same start, same 30 iterations: the same U error.
    assert over["laefast_u_error"] == pytest.approx(ref["u_error"], rel=1e-6)
    assert any("capped at 30" in note for note in result["notes"])


def test_bench_command_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    rc = main(["bench", "--problems", "paper", "--methods", "exact-tied",
               "--repeats", "1", "--budget", "0", "--json", str(path),
               "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "machine:" in out and "BLAS:" in out and "exact-tied" in out
    report = json.loads(path.read_text())
    assert set(report) >= {"environment", "environment_line", "settings",
                           "problems", "elapsed_s"}
    env = report["environment"]
    assert any(p["user_api"] == "blas" for p in env["threadpools"])
    assert isinstance(env["openmp_enabled"], bool)
    (problem,) = report["problems"]
    assert problem["problem"]["name"] == "paper"
    solvers = {r["solver"] for r in problem["rows"]}
    assert solvers == {"laefast", "reference", "peer"}
    peers = {r["name"] for r in problem["rows"] if r["solver"] == "peer"}
    assert {"numpy.linalg.eigh(C)", "scipy.linalg.eigh(C, subset)",
            "numpy.linalg.eigh, forming C"} <= peers
    for row in problem["rows"]:
        assert set(row) >= {"solver", "name", "n_iter", "seconds", "u_error",
                            "error_per_second", "vs_reference", "vs_peers"}
        # error/s is the error removed from the common start over the time.
        assert row["error_per_second"] == pytest.approx(
            (problem["problem"]["start_u_error"] - row["u_error"])
            / row["seconds"])
    (lae,) = [r for r in problem["rows"]
              if r["solver"] == "laefast" and r["name"] == "exact-tied"]
    (ref,) = [r for r in problem["rows"]
              if r["solver"] == "reference" and r["name"] == "exact-tied"]
    assert lae["vs_reference"] == pytest.approx(
        lae["error_per_second"] / ref["error_per_second"])
    # vs peers: over the fastest peer that starts from the same input.
    best = max(r["error_per_second"] for r in problem["rows"]
               if r["solver"] == "peer" and r["input"] == lae["input"])
    assert lae["vs_peers"] == pytest.approx(lae["error_per_second"] / best)


def test_bench_json_to_stdout(capsys):
    rc = main(["bench", "--problems", "paper", "--methods", "exact-sync",
               "--repeats", "1", "--budget", "0", "--no-reference",
               "--no-peers", "--json", "-", "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)      # the table went to stderr
    assert "machine:" in captured.err
    names = [r["name"] for r in report["problems"][0]["rows"]]
    assert names == ["exact-sync", "fit(X) exact-tied", "LAEPCA()"]


def test_digits_skipped_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)     # not installed
    monkeypatch.delitem(bench._CACHE, "digits", raising=False)
    with pytest.raises(NotImplementedError, match="needs scikit-learn"):
        bench.get_problem("digits")
    assert "needs scikit-learn" in bench.problem_unavailable("digits")
    assert bench.problem_unavailable("paper") is None
    # Only the peers that need no scikit-learn run, and a note says so.
    result = bench.measure_problem("paper", ["exact-tied"], repeats=1,
                                   budget=0.0, with_reference=False,
                                   with_fit=False)
    peers = [r["name"] for r in result["rows"] if r["solver"] == "peer"]
    assert peers == [p for p, (_, needs) in bench.PEERS.items() if not needs]
    assert any("scikit-learn is not installed" in n for n in result["notes"])
    # The exit status of run_bench is tested with the command line
    # (tests/test_cli.py).


def test_unknown_problem_is_rejected():
    with pytest.raises(ValueError, match="unknown problem 'mnist'"):
        bench.get_problem("mnist")


def test_public_names_and_docstring_examples():
    # The module's public surface is what the command needs, each name with
    # numpydoc sections; the Examples run as doctests.
    for name in bench.__all__:
        obj = getattr(bench, name)
        if callable(obj):
            doc = obj.__doc__ or ""
            assert "Returns" in doc or "Attributes" in doc, name
    result = doctest.testmod(bench, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10 and result.failed == 0
