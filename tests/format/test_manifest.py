"""manifest.json's write side (format/manifest.py, format/entries.py): typed entries encoded as
canonical JSON, the document given in pieces, and read back by the reader beside it."""

from __future__ import annotations

import base64
import json

import pytest

from evidencekit import canonical
from evidencekit.format import manifest
from evidencekit.format.entries import (
    NOT_READ,
    EntryChecker,
    ManifestEntry,
    StatFields,
    Stored,
)

STAT = StatFields(mode=0o640, uid=1000, gid=100, owner="ana", group=None,
                  mtime="2026-01-01T00:00:00.000000001Z", atime="2026-01-02T00:00:00.000000000Z",
                  ctime="2026-01-01T00:00:00.000000001Z", birthtime=None, inode=12, device=2049,
                  nlink=1)
HEAD = manifest.ManifestHead(
    case={"case_id": "C-1", "examiner": "ana"}, capture={"started": "2026-01-01T00:00:00Z"},
    sources=[{"index": 0, "bag_name": "evidence"}], incident_sha256=None,
    counts={"files": 1}, total_bytes=3, manifest_root="0" * 64)


def test_an_entry_without_optional_fields_has_only_the_five_every_entry_has():
    entry = ManifestEntry(3, "data/x", "unknown", b"x", "could not look it up")
    assert entry.to_json() == {"source": 3, "bag_path": "data/x", "kind": "unknown",
                               "path": "x", "error": "could not look it up"}
    assert entry.xattrs is NOT_READ  # not asked for: left out, unlike None (asked, none given)


def test_a_stored_file_has_every_field_of_format_section_4_3():
    entry = ManifestEntry(0, "data/e/a", "file", b"e/a", stat=STAT, size=3, allocated_bytes=0,
                          xattrs=None, mime="text/plain",
                          stored=Stored("ab" * 32, ("file grew while being read",)))
    record = entry.to_json()
    assert record == {"source": 0, "bag_path": "data/e/a", "kind": "file", "error": None,
                      "path": "e/a", **STAT.to_json(), "size": 3, "allocated_bytes": 0,
                      "xattrs": None, "mime": "text/plain", "sha256": "ab" * 32,
                      "changed_during_read": True, "changes": ["file grew while being read"]}
    assert record["group"] is None and record["birthtime"] is None  # present, null
    assert list(EntryChecker().problems(record)) == []


def test_names_that_are_not_utf8_are_kept_as_base64_and_a_device_as_two_numbers():
    entry = ManifestEntry(0, "data/e/l", "symlink", b"e/\xe9", stat=STAT, size=1,
                          target=b"\xff", xattrs={"user.a": "Yg=="})
    record = entry.to_json()
    assert "path" not in record and base64.b64decode(record["path_b64"]) == b"e/\xe9"
    assert "target" not in record and base64.b64decode(record["target_b64"]) == b"\xff"
    assert record["xattrs"] == {"user.a": "Yg=="}
    device = ManifestEntry(0, "data/e/d", "char-device", b"e/d", rdev=(1, 3)).to_json()
    assert (device["rdev_major"], device["rdev_minor"]) == (1, 3)
    link = ManifestEntry(0, "data/e/b", "file", b"e/b", link_to="data/e/a", mime="text/plain",
                         stored=Stored("ab" * 32)).to_json()
    assert link["link_to"] == "data/e/a"
    assert (link["changed_during_read"], link["changes"]) == (False, [])
    assert list(EntryChecker().problems(link)) == []


def test_reported_size_is_kept_beside_the_size_stored():
    record = ManifestEntry(0, "data/p", "file", b"p", size=5, reported_size=4096).to_json()
    assert (record["size"], record["reported_size"]) == (5, 4096)


def _entries(count: int, note_size: int = 0) -> list[ManifestEntry]:
    return [ManifestEntry(0, f"data/e/{n:06d}", "file", f"e/{n:06d}".encode(),
                          error="x" * note_size or None, stat=STAT, size=n,
                          mime="application/octet-stream", stored=Stored(f"{n:064x}"))
            for n in range(count)]


@pytest.mark.parametrize("raw_bytes", [0, 2 << 20, manifest.RAW_BYTES])
@pytest.mark.parametrize(("count", "note_size"), [(0, 0), (1, 0), (3000, 1000)])
def test_the_document_is_the_canonical_json_of_head_and_entries(count: int, note_size: int,
                                                                raw_bytes: int):
    """3000 entries of about 1.7 KB: several blocks (compressed, held as they are, or the first
    held and the others compressed), joined back in order."""
    entries = _entries(count, note_size)
    writer = manifest.ManifestWriter(raw_bytes)
    for entry in entries:
        writer.add(entry)
    pieces, size = writer.document(HEAD)
    data = b"".join(pieces)
    expected = canonical.dumps({**HEAD.to_json(), "entries": [e.to_json() for e in entries]})
    assert data == expected and size == len(data)
    assert json.loads(data)["type"] == "evidencekit.manifest"
    seen: list[object] = []
    read = manifest.read(data, "manifest.json", seen.append)
    assert len(read) == count and seen == [e.to_json() for e in entries]
    assert read.get("summary") == {"counts": {"files": 1}, "total_bytes": 3,
                                   "manifest_root": "0" * 64}


def test_entries_are_held_packed_not_as_objects():
    """Constant memory per entry: what the writer holds for 3000 entries of 1.7 KB each
    (5 MB of JSON) beyond its first 2 MiB is a few compressed blocks, not the entries."""
    writer = manifest.ManifestWriter(raw_bytes=2 << 20)
    for entry in _entries(3000, 1000):
        writer.add(entry)
    held = sum(len(block) for _, block in writer._blocks) + sum(map(len, writer._current))
    assert writer.count == 3000 and held < (2 << 20) + 1.2 * (1 << 20)
    assert [compressed for compressed, _ in writer._blocks][:2] == [False, True]


def test_the_entry_checker_says_which_bag_paths_it_has_seen_unsafe_ones_too():
    """verify asks it (EntryChecker.seen) instead of keeping its own set of every path."""
    checker = EntryChecker()
    file = ManifestEntry(0, "data/e/a", "file", b"e/a", size=3,
                         stored=Stored("ab" * 32)).to_json()
    unsafe = {**file, "bag_path": "data/../x"}
    assert not checker.seen("data/e/a")
    assert list(checker.problems(file)) == []
    assert checker.seen("data/e/a")
    assert list(checker.problems(file)) == [("data/e/a", "manifest lists this bag_path twice")]
    for _ in range(2):  # unsafe each time, never also "twice"
        assert [problem for _, problem in checker.problems(unsafe)] == [
            "manifest entry has an unsafe or malformed bag_path 'data/../x'"]
    assert checker.seen("data/../x") and not checker.seen("data/e/b")
