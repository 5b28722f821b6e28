"""Sphinx configuration of the laefast documentation.

Build (warnings are errors):
    python -m sphinx -W --keep-going -b html docs docs/_build/html
The API reference is generated from the docstrings of the installed
package (autosummary + numpydoc); the gallery runs examples/*.py
(sphinx-gallery) and embeds their output and figures.
"""

import os
import sys
import warnings

import laefast

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "_ext"))

project = "laefast"
author = "the laefast developers"
copyright = "2026, the laefast developers"
version = release = laefast.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints",
                    "auto_examples/*.md5", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.ipynb",
                    "auto_examples/*.json"]
nitpicky = False

# -- API reference ----------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = True
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- Markdown pages (the user guide and the theory page) --------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# -- Gallery -------------------------------------------------------------------
# Examples run at build time on whatever machine builds the docs: each is
# sized to take a few seconds on two cores.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # From first steps to integration, not alphabetically (docs/_ext).
    "within_subsection_order": "gallery_order.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "doc_module": ("laefast",),
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
}
os.environ.setdefault("MPLBACKEND", "Agg")
# matplotlib's Agg backend cannot show figures; sphinx-gallery captures them.
warnings.filterwarnings("ignore", message="FigureCanvasAgg is non-interactive")

# -- Links to the libraries laefast works with ---------------------------------
# Left off by default: the build then needs no network.  Set
# LAEFAST_DOCS_INTERSPHINX=1 to link numpy/scipy/scikit-learn names.
intersphinx_mapping = {}
if os.environ.get("LAEFAST_DOCS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
    }

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"laefast {release}"
html_static_path = []
html_theme_options = {
    "github_url": "https://github.com/laefast/laefast",
    "navigation_with_keys": False,
    "show_toc_level": 2,
}


# -- Docstrings written for the terminal -------------------------------------
# laefast's docstrings name fitted attributes as plain words (components_,
# mean_, W2_), which reStructuredText reads as hyperlink references
# ("Unknown target name").  Escape a trailing underscore outside literals
# and doctest lines after numpydoc has run, so that help() and the web
# page read the same.
import re

_TRAILING_UNDERSCORE = re.compile(
    r"(?<![\\\w`])([A-Za-z][A-Za-z0-9_]*[A-Za-z0-9])_(?![\w`])")


def _escape_outside_literals(line):
    parts = re.split(r"(``.*?``|`[^`]*`)", line)
    return "".join(part if part.startswith("`")
                   else _TRAILING_UNDERSCORE.sub(r"\1\\_", part)
                   for part in parts)


def _escape_attribute_names(app, what, name, obj, options, lines):
    in_literal = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith((">>>", "...")):
            continue
        if in_literal:
            if stripped and not line.startswith(" " * (literal_indent + 1)):
                in_literal = False
            else:
                continue
        if stripped.endswith("::") or stripped.startswith(".. "):
            in_literal = True
            literal_indent = len(line) - len(line.lstrip())
        lines[i] = _escape_outside_literals(line)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_attribute_names,
                priority=900)
