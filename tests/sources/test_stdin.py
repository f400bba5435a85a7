"""sources/stdin.py: what standard input is, before and while it is read."""

from __future__ import annotations

import os
import pty
from pathlib import Path

import pytest

from evidencekit.errors import UsageError
from evidencekit.sources import StdinSource, StreamEntry


def read_all(entry: StreamEntry) -> bytes:
    buffer = memoryview(bytearray(1 << 16))
    pieces = []
    while count := entry.content.readinto(buffer):
        pieces.append(bytes(buffer[:count]))
    return b"".join(pieces)


def only_entry(source: StdinSource) -> StreamEntry:
    [entry] = list(source.entries(set()))
    assert isinstance(entry, StreamEntry)
    return entry


def test_a_pipe_has_no_size_until_its_end() -> None:
    reading, writing = os.pipe()
    try:
        os.write(writing, b"journal lines\n")
        os.close(writing)
        source = StdinSource("journal.export", fd=reading, clock=lambda: 7)
        source.place(3, {"journal.export"})
        assert source.estimate(set()) == (1, None)
        [record] = source.records()
        assert record.to_json() == {"index": 3, "given": "-", "path": "-",
                                    "bag_name": "journal.export~1", "via_symlink": False,
                                    "kind": "stdin"}
        entry = only_entry(source)
        assert (entry.source, entry.path, entry.bag_path, entry.mtime_ns) == \
            (3, b"journal.export", "data/journal.export~1", 7)
        assert entry.content.size is None
        assert read_all(entry) == b"journal lines\n" and entry.content.changes() == []
    finally:
        os.close(reading)


def test_a_redirected_file_is_read_from_where_it_stands_and_watched(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"header" + b"x" * 1000)
    fd = os.open(image, os.O_RDONLY)
    try:
        os.lseek(fd, 6, os.SEEK_SET)  # a caller that read the first bytes itself
        source = StdinSource("disk.img", fd=fd)
        source.place(0, set())
        assert source.estimate(set()) == (1, 1000)
        entry = only_entry(source)
        assert entry.content.size == 1000
        with open(image, "ab") as more:
            more.write(b"appended while read")
        assert read_all(entry).startswith(b"x" * 1000)
        [change] = entry.content.changes()[:1]
        assert "grew while being read" in change and "the first 1000 bytes" in change
    finally:
        os.close(fd)


def test_a_terminal_is_refused() -> None:
    controller, terminal = pty.openpty()
    try:
        with pytest.raises(UsageError, match="standard input is a terminal"):
            StdinSource("x.log", fd=terminal)
    finally:
        os.close(controller)
        os.close(terminal)


def test_a_closed_descriptor_is_refused() -> None:
    reading, writing = os.pipe()
    os.close(reading)
    os.close(writing)
    with pytest.raises(UsageError, match="standard input is closed"):
        StdinSource("x.log", fd=reading)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/x", "tab\there", "del\x7f",
                                  "x" * 256])
def test_only_one_plain_file_name_is_taken(name: str) -> None:
    with pytest.raises(UsageError, match="plain file name"):
        StdinSource(name, fd=0)


def test_a_name_that_is_not_utf8_is_kept_as_bytes() -> None:
    reading, writing = os.pipe()
    os.close(writing)
    try:
        source = StdinSource(os.fsdecode(b"caf\xe9.log"), fd=reading)
        source.place(0, set())
        [record] = source.records()
        assert record.bag_name == "caf\\xe9.log"
        assert only_entry(source).path == b"caf\xe9.log"
    finally:
        os.close(reading)
