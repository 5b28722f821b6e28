"""The compiled modules' layout: package module names, installed .pxd/.pyi."""
import importlib
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "laefast"
COMPILED = sorted(p.stem for p in SRC.glob("*.pyx"))


def test_sources_found():
    assert "_blas" in {p.stem for p in SRC.glob("*.pxd")}
    assert len(COMPILED) >= 5


@pytest.mark.parametrize("name", COMPILED)
def test_compiled_module_has_package_name(name):
    mod = importlib.import_module("laefast." + name)
    assert mod.__name__ == "laefast." + name
    funcs = [v for k, v in vars(mod).items()
             if callable(v) and not k.startswith("__")
             and type(v).__name__ in ("cython_function_or_method",
                                      "fused_cython_function",
                                      "builtin_function_or_method")]
    assert funcs, name
    for f in funcs:
        assert f.__module__ == "laefast." + name, (name, f)


@pytest.mark.parametrize("name", COMPILED)
def test_cimports_are_package_qualified(name):
    text = (SRC / (name + ".pyx")).read_text()
    for line in text.splitlines():
        if line.startswith("from _") or line.startswith("cimport _"):
            pytest.fail(f"{name}.pyx has a flat cimport: {line}")


def test_every_pxd_is_installed():
    # Another package can "cimport laefast._blas" only if the .pxd files are
    # installed into the package beside the extension modules.
    build = (SRC.parent / "meson.build").read_text()
    for p in SRC.glob("*.pxd"):
        if p.stem != "__init__":
            assert f"'laefast/{p.name}'" in build, p.name


def test_status_codes_are_distinct_integers():
    from laefast import _solvers
    names = ["CONVERGED", "MAX_ITER", "NONFINITE", "NOT_PD_W2", "NOT_PD_W1",
             "EIGH_FAILED", "INTERRUPTED"]
    codes = [getattr(_solvers, n) for n in names]
    assert all(type(c) is int for c in codes)
    assert len(set(codes)) == len(codes)


def test_run_returns_integer_status_and_never_stop_runs_every_step():
    import numpy as np
    from laefast import _solvers
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6))
    C = X.T @ X
    W1 = 0.1 * rng.standard_normal((2, 6))
    W2 = W1.T.copy()
    n_iter, status, stop, which = _solvers.run(
        _solvers.UNTIED, W1, W2, C, 1.0, 1e-3, _solvers.NEVER_STOP, 25)
    assert type(status) is int and status == _solvers.MAX_ITER
    assert n_iter == 25


@pytest.mark.parametrize("name", ["_alignment", "_passes", "_sgd", "_solvers"])
def test_gemm_calls_name_their_transposes(name):
    import re
    text = (SRC / (name + ".pyx")).read_text()
    calls = re.findall(r"gemm\(([^,]+), ([^,]+),", text)
    assert calls
    for a, b in calls:
        for flag in (a, b):
            assert flag in ("NO_TRANS", "TRANS") or flag.startswith(
                "trans_if("), (name, a, b)


def _pyx_signatures(name):
    """{function: [parameter names]} of a .pyx file's public def functions."""
    import re
    text = (SRC / (name + ".pyx")).read_text()
    sigs = {}
    for m in re.finditer(r"^def (\w+)\((.*?)\):", text, re.S | re.M):
        if m.group(1).startswith("_"):
            continue
        params = []
        for p in re.sub(r"\[[^\]]*\]", "", m.group(2)).split(","):
            p = p.split("=")[0].strip()
            if p:
                params.append(re.split(r"[\s\]]", p)[-1])
        sigs[m.group(1)] = params
    return sigs


@pytest.mark.parametrize("name", COMPILED)
def test_stub_matches_compiled_module(name):
    import ast
    stub = SRC / (name + ".pyi")
    build = (SRC.parent / "meson.build").read_text()
    assert f"'laefast/{name}.pyi'" in build, "stub not installed"
    tree = ast.parse(stub.read_text())
    stubbed = {f.name: [a.arg for a in f.args.args] for f in tree.body
               if isinstance(f, ast.FunctionDef)}
    assert stubbed == _pyx_signatures(name)
    mod = importlib.import_module("laefast." + name)
    for f in stubbed:
        assert callable(getattr(mod, f))
    names = [t.id for a in tree.body if isinstance(a, ast.AnnAssign)
             for t in [a.target]]
    for n in names:
        assert isinstance(getattr(mod, n), (int, float)), n


PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "laefast"


def test_source_tree_without_build_says_how_to_install(tmp_path):
    # A copy of the Python sources with no compiled modules, imported the
    # way Python run from the repository root would find it; -S leaves out
    # site-packages (and with it the editable install's import hook).
    import shutil
    import subprocess
    import sys
    shutil.copytree(PACKAGE, tmp_path / "laefast",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd",
                                                  "__pycache__"))
    assert not list((tmp_path / "laefast").glob("_solvers*"))
    r = subprocess.run([sys.executable, "-S", "-c", "import laefast"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0
    assert "ImportError: laefast's compiled modules were not found" in r.stderr
    assert "pip install --no-build-isolation -e ." in r.stderr
    assert "ModuleNotFoundError" not in r.stderr


def test_editable_install_imports_from_repository_root():
    import subprocess
    import sys
    code = ("import laefast; print(laefast._solvers.__name__); "
            "print(laefast.solve.__module__)")
    r = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["laefast._solvers", "laefast._api"]


def test_third_party_extension_cimports_installed_blas_layer(tmp_path):
    # Another package's extension, built against the installed laefast's
    # .pxd files (tools/check_cimport.py; tools/check_wheel.sh runs the same
    # check against the release wheel), computes 2 x 2 products through
    # "from laefast._blas cimport gemm, NO_TRANS, TRANS".
    import importlib.util
    pytest.importorskip("Cython", minversion="3.0")
    spec = importlib.util.spec_from_file_location(
        "check_cimport", SRC.parents[1] / "tools" / "check_cimport.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    if tool.compiler() is None:
        pytest.skip("no C compiler")
    AB, ABt = tool.check(tmp_path)
    assert AB.tolist() == [[19.0, 22.0], [43.0, 50.0]]
    assert ABt.tolist() == [[17.0, 23.0], [39.0, 53.0]]
