"""capture's own helpers: the progress bar's totals, and what looking at the sources leaves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evidencekit.capture import CaptureRequest, CaseInfo, capture
from evidencekit.crypto import age
from evidencekit.crypto.keys import SigningKey
from evidencekit.errors import OutputError
from evidencekit.progress import Throttled
from evidencekit.sources.files.source import scan_totals
from evidencekit.sources.files.walk import resolve_sources
from tests.support.tools import atimes, stale_atimes


class Bar:
    """A progress reporter that asks for totals, as the terminal bar does."""

    wants_totals = True

    def __init__(self) -> None:
        self.totals: list[tuple[int | None, int | None]] = []

    def start(self, label: str, total_files: int | None, total_bytes: int | None) -> None:
        self.totals.append((total_files, total_bytes))

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass


def make_tree(root: Path) -> list[Path]:
    """Files, a nested folder, a link to a folder outside and one to a file; the folders."""
    outside = root.parent / f"{root.name}-outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "not-evidence.bin").write_bytes(b"z" * 1000)
    (root / "mail" / "2026").mkdir(parents=True)
    (root / "note.txt").write_bytes(b"12345")
    (root / "mail" / "a.eml").write_bytes(b"x" * 300)
    (root / "mail" / "2026" / "b.eml").write_bytes(b"y" * 40)
    (root / "to-outside").symlink_to(outside)
    (root / "to-note").symlink_to(root / "note.txt")
    os.mkfifo(root / "pipe")
    return [root, root / "mail", root / "mail" / "2026"]


def test_totals_count_regular_files_and_follow_no_link(tmp_path: Path):
    tree = tmp_path / "tree"
    make_tree(tree)
    sources = resolve_sources([os.fsencode(tree)])
    assert scan_totals(sources, set()) == (3, 345)
    skipped = os.stat(tree / "note.txt")
    assert scan_totals(sources, {(skipped.st_dev, skipped.st_ino)}) == (2, 340)
    single = resolve_sources([os.fsencode(tree / "note.txt")])
    assert scan_totals(single, set()) == (1, 5)


@pytest.mark.parametrize("counted_while_capturing", [True, False])
def test_the_bars_count_keeps_the_folders_access_times(tmp_path: Path,
                                                       counted_while_capturing: bool):
    tree = tmp_path / "tree"
    folders = make_tree(tree)
    stale = stale_atimes(*folders)
    bar = Bar()
    progress = Throttled(bar) if counted_while_capturing else bar
    identity = age.X25519Identity.generate()
    result = capture(CaptureRequest([os.fsencode(tree)], tmp_path / "out.evidence",
                                    CaseInfo("ATIME-1", "Jane"), [identity.recipient()],
                                    SigningKey.generate(), ["test"], progress=progress))
    assert result.seal.counts["files"] == 3
    assert bar.totals == [(3, 345)]
    assert atimes(*folders) == stale


def test_a_source_named_again_is_captured_once_with_a_warning(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    tree = tmp_path / "tree"
    make_tree(tree)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    identity = age.X25519Identity.generate()
    named = [b"tree", os.fsencode(other), b"./tree/", os.fsencode(tree)]
    result = capture(CaptureRequest(named, tmp_path / "out.evidence",
                                    CaseInfo("TWICE-1", "Jane"), [identity.recipient()],
                                    SigningKey.generate(), ["test"]))
    assert result.seal.counts["files"] == 4
    assert result.warnings == ["tree: named more than once: captured once"]


def test_sources_the_caller_resolved_are_not_resolved_again(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    """The CLI resolves the paths for its own checks and hands them over (roots)."""
    tree = tmp_path / "tree"
    make_tree(tree)
    named = [os.fsencode(tree)]
    roots = resolve_sources(named)

    def again(*args: object) -> None:
        raise AssertionError("the sources were resolved a second time")

    monkeypatch.setattr("evidencekit.capture.sources_of", again)
    identity = age.X25519Identity.generate()
    result = capture(CaptureRequest(named, tmp_path / "out.evidence", CaseInfo("ONCE-1", "Jane"),
                                    [identity.recipient()], SigningKey.generate(), ["test"],
                                    roots=roots))
    assert result.seal.counts["files"] == 3 and result.seal.complete


# --- format version 4: a disk image's bundle has no size known in advance


class _Free:
    """os.statvfs's answer for a disk with *free* bytes available."""

    def __init__(self, free: int) -> None:
        self.f_bavail, self.f_frsize = free // 4096, 4096


def test_a_compressed_image_larger_than_the_free_space_is_not_refused_in_advance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidencekit import capture as capturing

    monkeypatch.setattr(capturing.os, "statvfs", lambda _: _Free(1 << 30))
    with pytest.raises(OutputError, match=r"does not fit in the 1\.0 GiB free"):
        capturing._refuse_without_room(tmp_path / "out.evidence", 64 << 30)
    capturing._refuse_without_room(tmp_path / "out.evidence", 64 << 30, compressed=True)
    monkeypatch.setattr(capturing.os, "statvfs", lambda _: _Free(100 << 20))
    with pytest.raises(OutputError, match="too little for any bundle of a disk image"):
        capturing._refuse_without_room(tmp_path / "out.evidence", 64 << 30, compressed=True)


def test_a_compressed_image_that_outgrows_the_free_space_stops_before_the_disk_is_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evidencekit import capture as capturing

    written: list[int] = []

    class Disk:
        def write(self, data: memoryview) -> None:
            written.append(len(data))

    free = [1 << 30]
    monkeypatch.setattr(capturing.os, "statvfs", lambda _: _Free(free[0]))
    watch = capturing._RoomWatch(Disk(), tmp_path / "out.evidence")  # type: ignore[arg-type]
    block = memoryview(bytes(1 << 20))
    for _ in range(600):  # 600 MiB with 1 GiB free: goes on
        watch.write(block)
    free[0] = 200 << 20  # then the disk fills (what did not compress)
    with pytest.raises(OutputError, match="does not compress enough to fit"):
        for _ in range(600):
            watch.write(block)
    assert sum(written) < 900 << 20


def test_only_a_disk_image_makes_a_version_4_bundle(tmp_path: Path) -> None:
    """A capture of files stays a version 2 seal, uncompressed (byte for byte as before: see
    benchmarks/same_bytes.py); one holding a disk image is version 4, its payload zstd."""
    import tarfile

    from evidencekit.sources.device import DeviceSource

    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "note.txt").write_bytes(b"hello\n" * 1000)
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(1 << 20)
    identity, key = age.X25519Identity.generate(), SigningKey.generate()
    files = capture(CaptureRequest([os.fsencode(tree)], tmp_path / "files.evidence",
                                   CaseInfo("V-2", "Jane"), [identity.recipient()], key, ["t"]))
    device = capture(CaptureRequest([], tmp_path / "device.evidence", CaseInfo("V-4", "Jane"),
                                    [identity.recipient()], key, ["t"],
                                    more_sources=(DeviceSource(str(image)),)))
    assert (files.seal.format_version, files.seal.payload_compression) == (2, None)
    assert (device.seal.format_version, device.seal.payload_compression) == (4, "zstd")
    for name, version, opening in (("files", 2, b"age -d)"), ("device", 4, b"age -d, zstd -d)")):
        with tarfile.open(tmp_path / f"{name}.evidence") as bundle:
            seal = bundle.extractfile("seal.json").read()  # type: ignore[union-attr]
            readme = bundle.extractfile("README.txt").read()  # type: ignore[union-attr]
            payload = bundle.extractfile("payload.age").read()  # type: ignore[union-attr]
        assert (b'"payload_compression":"zstd"' in seal) == (version == 4)
        assert f"format version {version}.".encode() in readme and opening in readme
        plaintext = age.decrypt(payload, [identity])
        assert plaintext.startswith(b"\x28\xb5\x2f\xfd") == (version == 4)  # zstd's magic
