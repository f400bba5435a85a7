"""sources/files/source.py: the file walk as a source (FileSource: a profile's filters, hard
links), a regular file opened and read for capture (open_regular, OpenedFile), the Content the
sealing pipeline reads once; what changed while it was read is said after."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from evidencekit.format.entries import NOT_READ, ManifestEntry
from evidencekit.sources.files import kernel_files
from evidencekit.sources.files.selection import Filters
from evidencekit.sources.files.source import FileSource, OpenedFile, Replaced, open_regular
from evidencekit.sources.files.walk import Entry, resolve_sources, walk


@contextmanager
def _listed(path: Path) -> Iterator[Entry]:
    """The walk's entry for the file *path*, while the walk holds its folder open."""
    for entry in walk(resolve_sources([os.fsencode(path)])):
        if entry.kind == "file":
            yield entry
            return
    raise AssertionError(f"{path} was not listed as a file")


def _read_all(opened: OpenedFile, piece: int = 4) -> bytes:
    buffer = memoryview(bytearray(piece))
    data = bytearray()
    left = opened.size
    while left:
        count = opened.readinto(buffer[:min(piece, left)])
        if not count:
            break
        data += buffer[:count]
        left -= count
    return bytes(data)


def test_a_file_is_read_at_its_size_and_nothing_changed(tmp_path: Path):
    (tmp_path / "a.txt").write_bytes(b"some evidence\n")
    with _listed(tmp_path / "a.txt") as entry, open_regular(entry) as opened:
        assert opened.size == 14 and _read_all(opened) == b"some evidence\n"
        assert opened.changes() == [] and opened.unread() is None


def test_a_file_that_grew_while_read_says_so(tmp_path: Path):
    path = tmp_path / "log"
    path.write_bytes(b"12345678")
    with _listed(path) as entry, open_regular(entry) as opened:
        first = _read_all(opened)
        with open(path, "ab") as more:
            more.write(b"9")
        os.utime(path, ns=(0, opened.before.st_mtime_ns))  # the same modification time
        assert first == b"12345678"
        assert opened.changes() == ["file grew while being read (from 8 to 9 bytes); the "
                                    "first 8 bytes are stored",
                                    "status change time changed while being read"]


def test_a_file_cut_short_leaves_the_shortfall_to_the_pipeline(tmp_path: Path):
    """A read that ends early is the pipeline's to say (it fills with zeros); truncation found
    only afterwards is the file's."""
    path = tmp_path / "doc"
    path.write_bytes(b"12345678")
    with _listed(path) as entry, open_regular(entry) as opened:
        os.truncate(path, 4)
        os.utime(path, ns=(0, opened.before.st_mtime_ns))
        assert _read_all(opened) == b"1234"  # the read ended before the size
        assert opened.changes() == ["status change time changed while being read"]
    path.write_bytes(b"12345678")
    with _listed(path) as entry, open_regular(entry) as opened:
        assert _read_all(opened) == b"12345678"
        os.truncate(path, 4)
        os.utime(path, ns=(0, opened.before.st_mtime_ns))
        assert opened.changes() == ["file shrank while being read (from 8 to 4 bytes)",
                                    "status change time changed while being read"]


def test_a_new_modification_time_is_a_change(tmp_path: Path):
    path = tmp_path / "doc"
    path.write_bytes(b"abc")
    with _listed(path) as entry, open_regular(entry) as opened:
        _read_all(opened)
        os.utime(path, ns=(0, 1_000_000_000))
        [change] = opened.changes()
    assert change.startswith("modification time changed while being read (")


def test_an_empty_file_is_read_to_its_end(tmp_path: Path):
    (tmp_path / "empty").write_bytes(b"")
    with _listed(tmp_path / "empty") as entry, open_regular(entry) as opened:
        assert opened.size == 0 and _read_all(opened) == b"" and opened.unread() is None


def test_reading_to_the_end_stops_at_the_limit_and_says_so(tmp_path: Path, monkeypatch):
    """A file whose size says nothing (here: any file, kernel_files made to say so) is read
    whole first, at most READ_TO_END_LIMIT bytes; the rest is refused in words."""
    path = tmp_path / "status"
    path.write_bytes(b"x" * 10)
    monkeypatch.setattr(kernel_files, "read_to_end", lambda info: True)
    monkeypatch.setattr(kernel_files, "READ_TO_END_LIMIT", 6)
    with _listed(path) as entry, open_regular(entry) as opened:
        assert opened.size == 6 and _read_all(opened) == b"x" * 6
        assert opened.unread() == ("not read to its end: the file system reported 10 bytes, "
                                   "and it still gave more after 6 bytes; the first 6 bytes are "
                                   "stored")
        assert opened.changes() == []  # a size change is no news for such a file


def test_a_name_that_no_longer_holds_the_listed_file_is_not_read(tmp_path: Path):
    path = tmp_path / "doc"
    path.write_bytes(b"listed")
    with _listed(path) as entry:
        (tmp_path / "new").write_bytes(b"another file under the same name")
        os.replace(tmp_path / "new", path)  # a new inode: the old one is still there
        with pytest.raises(Replaced, match="replaced by something else between listing and "
                           "opening"):
            open_regular(entry)
        path.unlink()
        os.symlink("/etc/passwd", path)
        with pytest.raises(OSError):  # never followed
            open_regular(entry)


def test_the_manifest_entry_says_what_fstat_gave_and_what_was_stored(tmp_path: Path):
    path = tmp_path / "sparse.img"
    with open(path, "wb") as f:
        f.truncate(8 << 20)  # a hole: occupies (almost) nothing
    with _listed(path) as entry, open_regular(entry) as opened:
        record = ManifestEntry(0, entry.bag_path, "file", entry.path)
        opened.describe(record, entry)
        assert record.stat is not None and record.stat.inode == opened.before.st_ino
        assert record.allocated_bytes is not None and record.allocated_bytes < 8 << 20
        assert record.xattrs is not NOT_READ
        _read_all(opened, 1 << 20)
        opened.described_after_reading(record)
    assert (record.size, record.reported_size, record.error) == (8 << 20, None, None)


def test_a_file_read_to_its_end_reports_the_size_fstat_gave_beside_the_size_stored(
        tmp_path: Path, monkeypatch):
    path = tmp_path / "status"
    path.write_bytes(b"x" * 10)
    monkeypatch.setattr(kernel_files, "read_to_end", lambda info: True)
    monkeypatch.setattr(kernel_files, "READ_TO_END_LIMIT", 6)
    with _listed(path) as entry, open_regular(entry) as opened:
        record = ManifestEntry(0, entry.bag_path, "file", entry.path)
        opened.describe(record, entry)
        record.allocated_bytes = 1  # as if the blocks had said something: they do not count
        _read_all(opened)
        opened.described_after_reading(record)
    assert (record.size, record.reported_size, record.allocated_bytes) == (6, 10, None)
    assert record.error is not None and record.error.startswith("not read to its end")


def test_the_files_source_leaves_out_what_the_filters_say_counting_every_sources_bytes(
        tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    for name, size in (("a.log", 10), ("b.txt", 10), ("c.txt", 30)):
        (src / name).write_bytes(b"x" * size)
    captured = [70]  # what the capture holds so far: other sources' bytes count too
    source = FileSource(resolve_sources([os.fsencode(src)]), (),
                        Filters(exclude=("*.log",), max_total_bytes=100), lambda: captured[0])
    source.place(0, set())
    errors = {}
    for entry in source.entries(set()):
        errors[entry.path] = entry.error
        if entry.kind == "file" and entry.error is None and entry.lstat is not None:
            captured[0] += entry.lstat.st_size  # stored, as the pipeline would
    assert errors[b"src"] is None and errors[b"src/b.txt"] is None
    assert errors[b"src/a.log"] == "skipped: excluded by profile rule (exclude '*.log')"
    assert errors[b"src/c.txt"] is not None and "past max_total of 100 bytes" in errors[b"src/c.txt"]
