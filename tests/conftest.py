"""pytest configuration for laefast's tests.

The tests import their shared data generators, references and state
snapshots as ``from _helpers import ...`` (tests/_helpers.py): this folder
goes on sys.path, also under ``--import-mode=importlib``.
"""

import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
# Its asserts explain themselves as the tests' own do.
pytest.register_assert_rewrite("_helpers")
