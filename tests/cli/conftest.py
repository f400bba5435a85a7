"""The CLI tests use the shared fixtures of tests/conftest.py (an isolated user, keys, a small
evidence tree, a bundle); their helpers are in tests/support (cli.py, schemas.py)."""

from __future__ import annotations

# Old import paths of names that moved to tests/support, kept while other branches move:
from tests.support.cli import Result, invoke  # noqa: F401
from tests.support.fixtures import bundle, keys, passphrase_bundle, tree, user  # noqa: F401
from tests.support.schemas import (  # noqa: F401
    ROOT,
    SCHEMAS,
    assert_valid,
    assert_valid_definition,
    schema_validator,
)
