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
