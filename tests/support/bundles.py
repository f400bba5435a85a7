"""Take a bundle's outer tar apart and put it back together, for tests that tamper with it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from evidencekit.format.outer import OuterWriter, read_member, read_members

Member = tuple[str, bytes, int]  # an outer member: name, data, header mtime


def contents(path: Path) -> list[Member]:
    """(name, data, header mtime) of every member, in order."""
    with open(path, "rb") as f:
        return [(m.name, read_member(f, m, 1 << 34), m.mtime) for m in read_members(f)]


def rebuild(path: Path, members: Iterable[Member]) -> Path:
    """Write a structurally perfect bundle (canonical headers) from (name, data, mtime) members."""
    with open(path, "wb") as f:
        writer = OuterWriter(f)
        for name, data, mtime in members:
            writer.add_bytes(name, data, mtime)
        writer.finish()
    return path
