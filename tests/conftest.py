"""Hooks and the fixtures every test folder may use. Helpers are in tests/support (imported as
a library; a conftest never is)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

# The shared fixtures (an isolated user and home, keys, a tree, a bundle), visible to every test
pytest_plugins = ["tests.support.fixtures"]

SLOW_TESTS = frozenset(
    line.strip() for line in (Path(__file__).parent / "slow_tests.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#"))


def pytest_configure(config: pytest.Config) -> None:
    """The commands the tests interrupt (Ctrl-C's SIGINT, Ctrl-\\'s SIGQUIT) must not inherit
    those signals ignored: a shell without job control starts a background job (``pytest … &``)
    with both ignored, children inherit that, and evidencekit then rightly keeps ignoring them
    (as under nohup), so those tests failed only when pytest ran in the background. Python's own
    SIGINT handler is not inherited; SIGQUIT gets its default action."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests listed in tests/slow_tests.txt slow (every parameter case of each)."""
    for item in items:
        if item.nodeid.split("[", 1)[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real S3 server (SeaweedFS) on 127.0.0.1 for the whole session (support/s3server)."""
    from tests.support.s3server import seaweedfs

    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
