"""The documentation site's API page lists every public name.

The page itself (docs/api.rst) is generated from the docstrings by Sphinx
(autosummary + numpydoc); the build, with warnings as errors, runs in
.ci/run:  python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import doctest
import importlib
import pathlib
import re

import pytest

import laefast

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def autosummary_entries(text):
    """Names listed in the ``.. autosummary::`` blocks of an rst page."""
    names, inside = [], False
    for line in text.splitlines():
        if line.startswith(".. autosummary::"):
            inside = True
            continue
        if inside:
            if line and not line[0].isspace():
                inside = False          # the block ended
                continue
            entry = line.strip()
            if entry and not entry.startswith(":"):
                names.append(entry)
    return names


def test_autosummary_parser():
    text = (".. autosummary::\n   :toctree: generated/\n\n   fit\n   solve\n"
            "\nSection\n-------\n\n   not_listed\n")
    assert autosummary_entries(text) == ["fit", "solve"]


def test_api_page_covers_every_public_name():
    listed = autosummary_entries((DOCS / "api.rst").read_text())
    assert len(listed) == len(set(listed)), "a name is listed twice"
    assert sorted(listed) == sorted(laefast.__all__), (
        "docs/api.rst and laefast.__all__ differ: "
        f"missing {sorted(set(laefast.__all__) - set(listed))}, "
        f"extra {sorted(set(listed) - set(laefast.__all__))}")


def test_every_gallery_example_is_in_the_build():
    examples = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
    pattern = re.compile(r"^plot_\w+\.py$")
    # sphinx-gallery runs the files named plot_*.py (docs/conf.py's
    # filename_pattern); anything else would be shown without output.
    assert examples and all(pattern.match(name) for name in examples), examples
    for name in examples:
        head = (ROOT / "examples" / name).read_text().lstrip()
        assert head.startswith('"""'), f"{name} lacks its title docstring"


@pytest.mark.parametrize("module", ["laefast._api", "laefast.metrics",
                                    "laefast._estimator", "laefast._stream",
                                    "laefast._readout"])
def test_docstring_examples_run(module):
    # The Examples sections shown on the API pages are doctests.
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
