"""Fixtures for remote capture tests: keys from the end-to-end tests."""

from tests.e2e.conftest import keys  # noqa: F401 - fixture re-exported
