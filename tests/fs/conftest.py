"""Fixtures: a mounted exFAT or FAT32 stick (tests.support.mounts); keys and the runner are shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mounts import KINDS, mounted


@pytest.fixture(params=KINDS)
def stick(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A USB stick's file system, exFAT and FAT32 in turn, mounted for the test only."""
    with mounted(request.param, tmp_path) as where:
        yield where
