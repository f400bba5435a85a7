"""The smallest kind of evidence there can be, for tests of the sealing pipeline: a Source of one
stream (:class:`OneStream`) whose content comes in given pieces (:class:`Pieces`)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from evidencekit.sources import Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.walk import Entry, unique_name

NOW = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


class Pieces:
    """Content given in *pieces*, announcing *size*; an OSError after them if *fail*."""

    def __init__(self, pieces: list[bytes], size: int | None, fail: bool = False) -> None:
        self._pieces = list(pieces)
        self._size = size
        self._fail = fail

    @property
    def size(self) -> int | None:
        return self._size

    def readinto(self, buffer: memoryview) -> int:
        if not self._pieces:
            if self._fail:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return 0
        piece = self._pieces.pop(0)
        count = min(len(piece), len(buffer))
        buffer[:count] = piece[:count]
        if count < len(piece):
            self._pieces.insert(0, piece[count:])
        return count

    def changes(self) -> list[str]:
        return []


class OneStream:
    """A Source of one stream named *name*: the smallest kind of evidence there can be."""

    def __init__(self, name: str, content: Pieces) -> None:
        self._name = name
        self._content = content
        self._index = -1
        self._bag_name = ""

    def place(self, first_index: int, taken: set[str]) -> None:
        self._index = first_index
        self._bag_name = unique_name(self._name, taken)
        taken.add(self._bag_name)

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self._index, b"test:" + self._name.encode(), b"-", self._bag_name,
                             kind="test")]

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        return 1, self._content.size

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        yield StreamEntry(self._index, self._name.encode(), f"data/{self._bag_name}",
                          self._content, mtime_ns=NOW)
