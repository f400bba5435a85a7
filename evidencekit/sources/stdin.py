"""One stream read from standard input, stored as ``data/NAME`` (``capture --stdin NAME``).

For playbooks: ``journalctl -o export | evidencekit capture --stdin journal.export …``. The
stream's length is unknown until its end (a pipe, a socket, a terminal-less device), so the
sealing pipeline holds it, encrypted past a few MiB (evidencekit.spool), before storing it;
standard input redirected from a regular file (``< disk.img``) has a known length and is
streamed like any file, checked for changes while it was read.

The manifest records the source with ``kind: "stdin"`` and ``given``/``path`` ``-``, and its one
entry as a file without stat fields: a stream has no owner, mode or times of its own
(docs/FORMAT.md §4.3).
"""

from __future__ import annotations

import os
import select
import stat
from collections.abc import Iterator

from evidencekit.clock import Clock, rfc3339, system_clock
from evidencekit.errors import UsageError
from evidencekit.sources.base import Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.walk import Entry, escape_name, unique_name

KIND = "stdin"
GIVEN = b"-"  # how standard input is named by convention; the name chosen is the bag_name
_MAX_NAME = 255  # bytes: the longest name most file systems take, for extract


def check_name(name: str) -> bytes:
    """The bytes of a name for ``data/NAME``: one plain file name; UsageError otherwise."""
    raw = os.fsencode(name)
    if raw in (b"", b".", b"..") or b"/" in raw or len(raw) > _MAX_NAME or \
            any(byte < 0x20 or byte == 0x7F for byte in raw):
        raise UsageError(f"--stdin needs a plain file name for the stream, not {name!r}",
                         hint="e.g. --stdin journal.export (no '/', no control characters, at "
                         f"most {_MAX_NAME} bytes)")
    return raw


class StdinSource:
    """Standard input (the descriptor *fd*) as a Source of one file named *name*.

    Refuses (UsageError) a terminal, which would wait for typing, and a closed descriptor, or
    one that was closed when the program started (*closed_at_start*: the command line gives it
    the null device then, so that no file opened later takes its number)."""

    def __init__(self, name: str, fd: int = 0, clock: Clock = system_clock, *,
                 closed_at_start: bool = False) -> None:
        self._raw = check_name(name)
        self._fd = fd
        self._clock = clock
        try:
            if closed_at_start:
                raise OSError(f"descriptor {fd} was closed at start")
            self._info = os.fstat(fd)
        except OSError:
            raise UsageError("--stdin: standard input is closed",
                             hint="pipe the data in: COMMAND | evidencekit capture --stdin "
                             f"{name} …") from None
        if os.isatty(fd):
            raise UsageError("--stdin reads what is piped in, and standard input is a terminal",
                             hint=f"pipe the data in: COMMAND | evidencekit capture --stdin {name} "
                             "…  (or redirect a file: < FILE)")
        # a redirected file is stored at the length it has now, like any file (FORMAT.md §4.3)
        self._size = _known_size(fd, self._info)
        self._index = 0
        self._bag_name = escape_name(self._raw)

    def place(self, first_index: int, taken: set[str]) -> None:
        self._index = first_index
        self._bag_name = unique_name(escape_name(self._raw), taken)
        taken.add(self._bag_name)

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(self._index, GIVEN, GIVEN, self._bag_name, kind=KIND)]

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        return 1, self._size

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        content = _StdinContent(self._fd, self._size, self._info)
        yield StreamEntry(self._index, self._raw, f"data/{self._bag_name}", content,
                          mtime_ns=self._clock())


def _known_size(fd: int, info: os.stat_result) -> int | None:
    """What is left to read of a regular file; None for anything else (pipe, socket, device)."""
    if not stat.S_ISREG(info.st_mode):
        return None
    try:
        return max(0, info.st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except OSError:
        return None


class _StdinContent:
    def __init__(self, fd: int, size: int | None, before: os.stat_result) -> None:
        self._fd = fd
        self._size = size
        self._before = before

    @property
    def size(self) -> int | None:
        return self._size

    def readinto(self, buffer: memoryview) -> int:
        while True:
            try:
                return os.readv(self._fd, [buffer])
            except BlockingIOError:  # a descriptor left non-blocking by whoever started us
                select.select([self._fd], [], [])

    def changes(self) -> list[str]:
        """For a regular file: whether it grew or was modified while it was read (its first
        ``size`` bytes are what is stored). A pipe's times say nothing."""
        if self._size is None:
            return []
        after = os.fstat(self._fd)
        found = []
        if after.st_size > self._before.st_size:
            found.append(f"the file on standard input grew while being read (from "
                         f"{self._before.st_size} to {after.st_size} bytes); the first "
                         f"{self._size} bytes from where it was read are stored")
        if after.st_mtime_ns != self._before.st_mtime_ns:
            found.append("the file on standard input was modified while being read "
                         f"({rfc3339(self._before.st_mtime_ns)} → {rfc3339(after.st_mtime_ns)})")
        return found
