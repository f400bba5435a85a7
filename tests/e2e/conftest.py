"""End-to-end tests use the shared fixtures of tests/conftest.py (keys, an isolated home); their
helpers are in tests/support (cli.py: the runner; trees.py: the realistic evidence tree)."""

from __future__ import annotations

# Old import paths of names that moved to tests/support, kept while other branches move:
from tests.support.cli import Run, run_cli  # noqa: F401
from tests.support.fixtures import home, keys  # noqa: F401
from tests.support.trees import make_tree  # noqa: F401
