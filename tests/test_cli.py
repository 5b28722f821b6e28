"""The command line checks every argument before doing any work.

Through ``laefast.__main__.main`` and ``python -m laefast``.  To show that
nothing started, the fixture no_work replaces the commands' work functions
(laefast.bench.run_bench and get_problem, laefast._demo.run_demo) by
ones that fail (nothing public says whether work began), and
scikit-learn's absence is simulated by hiding it from sys.modules (the suite
runs with scikit-learn installed).
"""

import importlib.metadata
import pathlib
import re
import subprocess
import sys

import pytest

import laefast
from laefast import _demo, bench
from laefast.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts measuring."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command started work before rejecting "
                             "its arguments")
    monkeypatch.setattr(bench, "run_bench", refuse)
    monkeypatch.setattr(bench, "get_problem", refuse)
    monkeypatch.setattr(_demo, "run_demo", refuse)


def _exit(argv, capsys, code):
    """main(argv) exits with status code; returns what it printed."""
    with pytest.raises(SystemExit, match=f"^{code}$"):
        main(argv)
    return capsys.readouterr()


def test_program_name_and_version(capsys):
    out = _exit(["--help"], capsys, 0)
    assert out.out.startswith("usage: laefast ")
    out = _exit(["--version"], capsys, 0)
    assert out.out.strip() == f"laefast {laefast.__version__}"


def test_version_has_one_source():
    text = (ROOT / "meson.build").read_text()
    (declared,) = re.findall(r"^project\([^)]*?\bversion:\s*'([^']+)'",
                             text, re.M | re.S)
    assert laefast.__version__ == declared
    assert importlib.metadata.version("laefast") == declared


@pytest.mark.parametrize("argv, message", [
    (["demo", "--methods", "foo"],
     r"laefast demo: error: argument --methods: invalid choice: 'foo'"),
    (["bench", "--methods", "exact-tied", "bar"],
     r"argument --methods: invalid choice: 'bar'"),
    (["bench", "--problems", "mnist"],
     r"argument --problems: invalid choice: 'mnist'"),
    (["bench", "--repeats", "0"],
     r"argument --repeats: must be an integer >= 1, got '0'"),
    (["bench", "--repeats", "two"],
     r"argument --repeats: must be an integer >= 1, got 'two'"),
    (["bench", "--budget", "-1"],
     r"argument --budget: must be a finite number of seconds >= 0"),
    (["bench", "--budget", "nan"],
     r"argument --budget: must be a finite number of seconds >= 0"),
    (["bench", "--json", "/nonexistent-laefast-dir/x.json"],
     r"argument --json: directory '/nonexistent-laefast-dir' does not exist"),
    ([], r"the following arguments are required"),
])
def test_bad_arguments_exit_2_before_any_work(argv, message, capsys, no_work):
    out = _exit(argv, capsys, 2)
    assert re.search(message, out.err), out.err
    assert out.out == ""                 # no header, no partial table


def test_json_path_that_is_a_directory(tmp_path, capsys, no_work):
    out = _exit(["bench", "--json", str(tmp_path)], capsys, 2)
    assert f"{tmp_path} is a directory" in out.err


def test_writable_json_path_is_accepted_and_left_alone(tmp_path, monkeypatch,
                                                       capsys):
    calls = []
    monkeypatch.setattr(bench, "run_bench",
                        lambda **kw: calls.append(kw) or 0)
    path = tmp_path / "out.json"
    assert main(["bench", "--problems", "paper", "--json", str(path)]) == 0
    assert calls[0]["json_path"] == str(path)
    assert list(tmp_path.iterdir()) == []     # the probe file is removed


def test_unavailable_problem_exits_nonzero_before_any_work(monkeypatch, capsys,
                                                          no_work):
    monkeypatch.setitem(sys.modules, "sklearn", None)   # not installed
    out = _exit(["bench", "--problems", "paper", "digits"], capsys, 2)
    assert "problem 'digits' cannot run" in out.err
    assert "needs scikit-learn" in out.err


def test_bench_returns_nonzero_when_a_problem_is_skipped(monkeypatch, capsys):
    # run_bench itself (called from Python, past the command line's checks)
    # still reports a problem it could not build through its status.
    monkeypatch.setitem(sys.modules, "sklearn", None)   # not installed
    monkeypatch.delitem(bench._CACHE, "digits", raising=False)
    assert bench.run_bench(problems=["digits"], progress=False) == 1
    assert "digits: skipped" in capsys.readouterr().out


def test_exit_status_through_python_dash_m(tmp_path):
    # From outside the repository, as a user runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "laefast", "demo", "--methods", "foo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "laefast demo: error: argument --methods: invalid choice" in proc.stderr
    assert proc.stdout == ""
