"""docs/api.md is generated from the docstrings: it must be up to date."""

import importlib.util
import pathlib

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def test_api_reference_is_current():
    spec = importlib.util.spec_from_file_location(
        "make_api_reference", DOCS / "make_api_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "api.md").read_text() == module.render(), (
        "docs/api.md is stale: run python docs/make_api_reference.py")
