"""A kind of evidence plugs into capture through evidencekit.sources.Source alone: a source
written here, in the test, is sealed, verified and extracted like the file walk's files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidencekit.capture import CaptureRequest, CaptureResult, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.extract import extract
from evidencekit.sources import BytesContent, Skip, SourceRecord, StreamEntry
from evidencekit.sources.files.walk import Entry
from evidencekit.verify import Report, verify
from tests.support.streams import NOW, OneStream, Pieces


class Bar:
    wants_totals = True

    def __init__(self) -> None:
        self.totals: list[tuple[int | None, int | None]] = []
        self.nbytes = 0

    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
        self.totals.append((total_files, total_bytes))

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        self.nbytes += nbytes

    def finish(self) -> None:
        pass


def sealed(tmp_path: Path, *sources: OneStream, files: tuple[Path, ...] = (),
           progress: Bar | None = None) -> tuple[CaptureResult, Report, Path]:
    identity = age.X25519Identity.generate()
    output = tmp_path / "out.evidence"
    request = CaptureRequest([os.fsencode(f) for f in files], output, CaseInfo("SRC-1", "Jane"),
                             [identity.recipient()], SigningKey.generate(), ["test"],
                             more_sources=sources, **({"progress": progress} if progress else {}))
    result = capture(request)
    report = verify(output, [identity])
    assert report.ok, report.findings.items
    extract(output, tmp_path / "out", [identity])
    return result, report, tmp_path / "out" / "data"


def entry(report: Report, bag_path: str) -> dict:
    assert report.manifest is not None
    [found] = [e for e in report.manifest.entries() if e["bag_path"] == bag_path]
    return found


@pytest.mark.parametrize("size", [None, 3 * (1 << 20) + 5], ids=["unknown", "known"])
def test_a_stream_is_sealed_verified_and_extracted(tmp_path: Path, size: int | None) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    pieces = [data[i:i + 100_000] for i in range(0, len(data), 100_000)]
    bar = Bar()
    result, report, out = sealed(tmp_path, OneStream("s.bin", Pieces(pieces, size)), progress=bar)
    assert (out / "s.bin").read_bytes() == data
    assert result.seal.complete and result.seal.counts["files"] == 1
    assert result.seal.total_bytes == len(data)
    assert bar.totals == [(1, size)] and bar.nbytes == len(data)
    found = entry(report, "data/s.bin")
    assert found["sha256"] == hashlib.sha256(data).hexdigest() and found["size"] == len(data)
    assert found["kind"] == "file" and found["error"] is None and found["path"] == "s.bin"
    assert "mode" not in found and "mtime" not in found  # a stream has no stat of its own
    assert report.manifest is not None
    assert report.manifest.get("sources") == [{"index": 0, "given": "test:s.bin", "path": "-",
                                               "bag_name": "s.bin", "via_symlink": False,
                                               "kind": "test"}]


def test_a_short_stream_of_known_size_is_zero_filled_and_said(tmp_path: Path) -> None:
    result, report, out = sealed(tmp_path, OneStream("short", Pieces([b"abc"], 10)))
    assert (out / "short").read_bytes() == b"abc" + bytes(7)
    assert not result.seal.complete and result.seal.counts["changed"] == 1
    assert "only 3 of 10 bytes" in entry(report, "data/short")["changes"][0]


def test_a_read_error_keeps_what_was_read_before_it(tmp_path: Path) -> None:
    result, report, out = sealed(tmp_path, OneStream("cut", Pieces([b"x" * 5000], None, True)))
    assert (out / "cut").read_bytes() == b"x" * 5000
    assert result.seal.counts["errors"] == 1 and not result.seal.complete
    assert "read error at byte 5000" in entry(report, "data/cut")["error"]


def test_streams_come_after_the_files_and_take_free_names(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"file")
    bar = Bar()
    _, report, out = sealed(tmp_path, OneStream("x", Pieces([b"1"], 1)),
                            OneStream("x", Pieces([b"22"], None)), files=(folder,),
                            progress=bar)
    assert (out / "x" / "a.txt").read_bytes() == b"file"
    assert (out / "x~1").read_bytes() == b"1" and (out / "x~2").read_bytes() == b"22"
    assert report.manifest is not None
    assert [(s["index"], s["bag_name"], s.get("kind")) for s in report.manifest.get("sources")] \
        == [(0, "x", None), (1, "x~1", "test"), (2, "x~2", "test")]
    assert [e["source"] for e in report.manifest.entries()] == [0, 0, 1, 2]
    assert bar.totals == [(3, None)]  # one size unknown: no byte total to promise


class WithGap(Pieces):
    """Content that stored a gap as zeros itself (as a device's bad sector) and says so."""

    def unread(self) -> str | None:
        return "bytes 3 to 5 could not be read; stored as zeros"


class Learning(OneStream):
    """A source that reports what reading taught it: a document after its stream, and
    ``details`` in its record once every entry was stored."""

    def __init__(self, name: str, content: Pieces) -> None:
        super().__init__(name, content)
        self.read_sizes: list[int] = []

    def records(self) -> list[SourceRecord]:
        [record] = super().records()
        details = {"seen": self.read_sizes[-1]} if self.read_sizes else None
        return [dataclasses.replace(record, details=details)]

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        yield from super().entries(skip)
        # the pipeline stored the stream completely before asking for this one
        self.read_sizes.append(len(self._content._pieces))
        yield StreamEntry(self._index, b"dev.notes", f"data/{self._bag_name}.notes",
                          BytesContent(b"pieces left: %d\n" % len(self._content._pieces)),
                          mtime_ns=NOW)


def test_a_source_reports_what_reading_taught_it(tmp_path: Path) -> None:
    source = Learning("dev", WithGap([b"abc", bytes(3), b"xyz"], 9))
    result, report, out = sealed(tmp_path, source)
    assert (out / "dev").read_bytes() == b"abc\0\0\0xyz"
    assert (out / "dev.notes").read_bytes() == b"pieces left: 0\n"
    assert entry(report, "data/dev")["error"] == "bytes 3 to 5 could not be read; stored as zeros"
    assert entry(report, "data/dev.notes")["error"] is None
    assert result.seal.counts["errors"] == 1 and not result.seal.complete
    assert report.manifest is not None
    [record] = report.manifest.get("sources")
    assert record["details"] == {"seen": 0}
