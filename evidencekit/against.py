"""``verify BUNDLE -i KEY --against DEVICE_OR_IMAGE``: read the device (or an image of it) again
and say which windows of the image in the bundle it still matches, and which it does not.

The bundle's own checks come first: the windows document (``data/NAME.windows``, FORMAT.md §4.3,
kind ``device``) is used only once its hash matched the signed manifest, i.e. when verify found
nothing wrong. The device is read as capture reads it (evidencekit.sources.sectors: O_DIRECT,
bad sectors as zeros), only read, never set read-only nor written; every window's SHA-256 is
compared with the one sealed. A window that differs is named with its byte range, so an examiner
knows where to look; if every window matches, the device holds the same bytes as the image.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evidencekit.errors import UsageError
from evidencekit.findings import Findings
from evidencekit.progress import NoProgress, Progress
from evidencekit.sources.sectors import BAD, NON_TRIMMED, NOT_READ, READ, SectorReader
from evidencekit.verify import Report

CHECK = "device-against"
_LARGEST = 256 << 20  # a windows document of 16 Mi windows: 4 PiB of device


class WindowsCollector:
    """A payload Visitor keeping the windows documents of device sources (small text files)."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.mapfiles: dict[str, bytes] = {}  # what could not be read at capture

    def directory(self, name: str, member: tarfile.TarInfo) -> None:
        pass

    def hard_link(self, name: str, member: tarfile.TarInfo, target: str) -> None:
        pass

    def file(self, name: str, member: tarfile.TarInfo, chunks: Iterator[bytes]) -> None:
        if name.startswith("data/") and name.endswith(".windows") and member.size <= _LARGEST:
            self.documents[name] = b"".join(chunks)
        elif name.startswith("data/") and name.endswith(".mapfile") and member.size <= _LARGEST:
            self.mapfiles[name] = b"".join(chunks)


@dataclass
class Window:
    offset: int
    size: int
    sealed: str
    found: str | None = None
    unread_now: int = 0  # bytes of it that could not be read this time
    unread_at_capture: int = 0  # bytes of it stored as zeros because they could not be read


@dataclass
class Comparison:
    target: str
    image: str  # the image's bag path
    image_size: int
    target_size: int
    windows: list[Window] = field(default_factory=list)
    # how the target stopped answering while it was read (the rest compared as zeros), or None
    stopped: str | None = None

    @property
    def differing(self) -> list[Window]:
        return [w for w in self.windows if w.found != w.sealed]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "image": self.image, "image_size": self.image_size,
                "target_size": self.target_size, "windows": len(self.windows),
                "differing": [{"offset": w.offset, "size": w.size, "sealed": w.sealed,
                               "found": w.found, "unread_now": w.unread_now,
                               "unread_at_capture": w.unread_at_capture}
                              for w in self.differing],
                "same": not self.differing and self.image_size == self.target_size
                and self.stopped is None,
                "stopped": self.stopped}


def unread_at_capture(mapfile: bytes) -> list[tuple[int, int]]:
    """(position, size) of the runs of a device's mapfile that were not read (``-`` bad,
    ``?`` never tried): stored as zeros, so a device that reads there now differs."""
    runs = []
    lines = [line for line in mapfile.decode("ascii").splitlines()
             if line.strip() and not line.startswith("#")]
    for line in lines[1:]:  # the first is the status line
        position, size, status = line.split()
        if status != "+":
            runs.append((int(position, 16), int(size, 16)))
    return runs


def _overlap(ranges: list[tuple[int, int]], start: int, end: int) -> int:
    return sum(min(p + s, end) - max(p, start) for p, s in ranges if p < end and p + s > start)


def parse_windows(text: bytes) -> list[Window]:
    windows = []
    for line in text.decode("ascii").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        offset, size, digest = line.split()
        windows.append(Window(int(offset), int(size), digest))
    return windows


def compare(report: Report, collected: WindowsCollector, target: str, findings: Findings,
            progress: Progress | None = None) -> Comparison | None:
    """Compare *target* with the device image in the verified *report*'s bundle; an error in
    *findings* per differing window (kept apart from the bundle's own: the bundle may be sound
    and the device changed). None when there was nothing to compare."""
    if not report.decrypted:
        findings.error(CHECK, target, "not compared: --against needs the bundle's key (-i) to "
                       "read the hash windows")
        return None
    if report.findings.errors:
        findings.error(CHECK, target, "not compared: the bundle itself did not verify, so its "
                       "hash windows cannot be trusted")
        return None
    if not collected.documents:
        findings.error(CHECK, target, "not compared: the bundle holds no device image "
                       "(capture --device) with hash windows")
        return None
    if len(collected.documents) > 1:
        names = ", ".join(sorted(collected.documents))
        raise UsageError(f"--against: the bundle holds several device images ({names}); "
                         "compare one bundle per device")
    [(name, text)] = collected.documents.items()
    image = name[: -len(".windows")]
    windows = parse_windows(text)
    image_size = sum(w.size for w in windows)
    unread = unread_at_capture(collected.mapfiles.get(image + ".mapfile", b""))
    for window in windows:
        window.unread_at_capture = _overlap(unread, window.offset, window.offset + window.size)
    fd, size, sector, direct = _open(target)
    result = Comparison(target, image, image_size, size, windows)
    try:
        result.stopped = _read_windows(fd, min(size, image_size), sector, direct, windows,
                                       progress or NoProgress())
    finally:
        os.close(fd)
    if result.stopped is not None:  # not a change of the device: said apart, before the windows
        findings.error(CHECK, target, f"{target} stopped answering while it was read again "
                       f"({result.stopped}); what was not read was compared as zeros")
    if size != image_size:
        findings.error(CHECK, target, f"{target} holds {size} bytes, the image {image} "
                       f"{image_size}", expected=image_size, found=size)
    for window in result.differing:
        end = window.offset + window.size - 1
        said = (f"bytes {window.offset}–{end} ({window.size} bytes) of {target} differ from the "
                f"image {image}")
        if window.found is None:
            said = f"bytes {window.offset}–{end} of the image {image} are past the end of {target}"
        elif window.unread_now:
            said += f" ({window.unread_now} bytes of it could not be read now)"
        if window.unread_at_capture:
            said += (f"; {window.unread_at_capture} bytes of it could not be read at capture and "
                     "were stored as zeros (see the .mapfile), so a sector that reads now differs")
        findings.error(CHECK, f"{image} window {window.offset}", said, expected=window.sealed,
                       found=window.found)
    return result


def check_target(target: str) -> None:
    """Refuse a target that cannot be compared (missing, a folder, a FIFO, not readable) before
    the bundle is verified, which can take hours, rather than after."""
    fd, _, _, _ = _open(target)
    os.close(fd)


def _read_windows(fd: int, size: int, sector: int, direct: bool, windows: list[Window],
                  progress: Progress) -> str | None:
    """Each window's SHA-256 as read now; how the target stopped answering, if it did.

    As capture does, what reads is read first: a block that fails leaves its window for later
    (a failing disk may not last through thousands of sector reads, and the rest of it would
    then not be compared at all); once every window was read, each window with a failed block
    is read again, its failing blocks split down to the sector and retried, as at capture."""
    reader = SectorReader(fd, size, sector, direct=direct, split_later=True)
    blocks = reader.blocks()
    progress.start("Comparing", None, size)
    buffer = memoryview(bytearray(4 << 20))
    try:
        for window in windows:
            end = min(window.offset + window.size, size)
            if window.offset >= size and window.size:  # (an empty image has one empty window)
                break
            digest = hashlib.sha256()
            left = end - window.offset
            while left:
                count = blocks.readinto(buffer[:min(len(buffer), left)])
                if not count:
                    break
                digest.update(buffer[:count])
                left -= count
                progress.advance(nbytes=count)
            if end == window.offset + window.size:
                window.found = digest.hexdigest()
            window.unread_now = reader.map.overlap(BAD + NOT_READ, window.offset, end)
        if reader.vanished is not None:
            return reader.vanished.how
        for window in windows:
            if reader.map.overlap(NON_TRIMMED, window.offset, window.offset + window.size):
                stopped = _read_again(fd, size, sector, direct, window)
                if stopped is not None:
                    return stopped
        return None
    finally:
        buffer.release()
        progress.finish()
        reader.close()


def _read_again(fd: int, size: int, sector: int, direct: bool, window: Window) -> str | None:
    """Read *window* again, its failing blocks split down to the sector and each bad sector
    retried (capture's in-place engine); how the target stopped answering, if it did."""
    reader = SectorReader(fd, size, sector, direct=direct)
    end = min(window.offset + window.size, size)
    reader.map.add(0, window.offset, READ)  # (compared already: only this window is read)
    digest = hashlib.sha256()
    try:
        position = window.offset
        while position < end:
            block = reader.read_block(position)
            count = min(len(block), end - position)
            digest.update(block[:count])
            block.release()
            position += count
        if end == window.offset + window.size:
            window.found = digest.hexdigest()
        window.unread_now = reader.map.overlap(BAD + NOT_READ, window.offset, end)
        return None if reader.vanished is None else reader.vanished.how
    finally:
        reader.close()


def _open(target: str) -> tuple[int, int, int, bool]:
    """The target read-only (O_DIRECT for a device): descriptor, size, sector size, direct."""
    from evidencekit.sources.device import BLKGETSIZE64, BLKSSZGET, ioctl_int

    try:
        info = os.stat(target)
    except OSError as exc:
        raise UsageError(f"--against {target}: {exc.strerror}") from None
    device = stat.S_ISBLK(info.st_mode)
    if not device and not stat.S_ISREG(info.st_mode):
        raise UsageError(f"--against {target}: neither a block device nor a file")
    flags = os.O_RDONLY | (getattr(os, "O_DIRECT", 0) if device else 0)
    try:
        # without updating its access time, as capture reads it (O_NOATIME is allowed to the
        # file's owner and to root; anyone else opens it as it is)
        try:
            fd = os.open(target, flags | getattr(os, "O_NOATIME", 0))
        except PermissionError:
            fd = os.open(target, flags)
    except OSError as exc:
        raise UsageError(f"--against {target}: cannot be opened: {exc.strerror}") from None
    if not device:
        return fd, os.fstat(fd).st_size, 512, False
    size = ioctl_int(fd, BLKGETSIZE64, "Q") or 0
    return fd, size, ioctl_int(fd, BLKSSZGET, "i") or 512, bool(flags & getattr(os, "O_DIRECT", 0))
