"""Links made as another user would make them; the isolated user, keys and evidence tree are
the shared fixtures of tests/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from evidencekit.sources.files import walk

STRANGER = 54321  # a uid that is neither root nor the user running the tests


@pytest.fixture
def plant(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, Path], Path]:
    """Make a symbolic link as another user would have planted it. Run as root (as CI does),
    the link is given to another uid; otherwise the tests' own user stops counting as one whose
    links are followed (only root's are)."""

    def make(link: Path, target: Path) -> Path:
        link.symlink_to(target)
        if os.geteuid() == 0:
            os.lchown(link, STRANGER, STRANGER)
        else:
            monkeypatch.setattr(walk, "trusted_owners", lambda: frozenset({0}))
        return link

    return make
