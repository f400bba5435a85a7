"""Files and folders in the file system: the sources named on the command line or found by a
profile, walked by evidencekit.sources.files.walk (sorted, read-only, no link followed).

The source decides what the pipeline does with each file the walk finds (`FileSource`): a file
a profile's filters leave out is yielded with the reason as its error (not read), and another
name of a file already stored whole and unchanged is yielded with ``link_to`` (stored as a tar
hard link to the first name, FORMAT.md §4.2). Each regular file to read is opened and read here
(`open_regular`, `OpenedFile`, a Content the pipeline reads once). The roots a capture walks
are the paths given, each once (`sources_of`, `repeat_warnings`), resolved by
walk.resolve_sources; the walk itself is in walk.py; what a file's manifest entry says from its
metadata is in records.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType

from evidencekit.clock import rfc3339
from evidencekit.format.entries import ManifestEntry
from evidencekit.fs.noatime import open_keeping_atime
from evidencekit.sources.base import BytesContent, Skip, SourceRecord, StreamEntry
from evidencekit.sources.files import kernel_files, records
from evidencekit.sources.files.selection import Filters, relative_to_source
from evidencekit.sources.files.walk import (
    Entry,
    entries_below,
    escape_name,
    named_again,
    resolve_sources,
    unique_name,
    walk,
)
from evidencekit.sources.files.walk import Source as Root
from evidencekit.text import human_size


class FileSource:
    """The file walk as a Source: one record per root, then one per path a profile named but
    the system refused to look up (each recorded as a source whose one entry holds the error, so
    that the capture is incomplete rather than silently smaller).

    Its roots are numbered from 0 and named when resolved (walk.resolve_sources): it is the
    first source of every capture.

    *filters* (a profile's) choose which files are read; *captured_bytes* says how much the
    capture holds so far, every source's (a profile's ``max_total``).
    """

    def __init__(self, roots: list[Root], unreachable: Sequence[tuple[bytes, str]] = (),
                 filters: Filters | None = None,
                 captured_bytes: Callable[[], int] = lambda: 0) -> None:
        self._roots = roots
        self._unreachable = unreachable
        self._blocked: list[tuple[Root, str]] = []
        self._filters = filters
        self._captured_bytes = captured_bytes
        # Files with more than one name, by (device, inode): the first name stored whole and
        # unchanged, so that the others become hard links to it in the bag (FORMAT.md §4.2).
        self._stored_once: dict[tuple[int, int], _FirstName] = {}

    def place(self, first_index: int, taken: set[str]) -> None:
        if first_index != 0 or taken:
            raise ValueError("the file walk numbers its sources from 0: it comes first")
        taken.update(root.bag_name for root in self._roots)
        self._blocked = _unreachable_roots(self._unreachable, len(self._roots), taken)

    def records(self) -> list[SourceRecord]:
        return [SourceRecord(root.index, root.given, root.path, root.bag_name, root.via_symlink)
                for root in [*self._roots, *(root for root, _ in self._blocked)]]

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        return scan_totals(self._roots, skip)

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        # The pipeline stores each entry before it asks for the next: what a file's filters and
        # links depend on (the bytes captured, the names stored) is known when it is yielded.
        for entry in walk(self._roots, skip):
            if entry.kind == "file" and entry.error is None and entry.lstat is not None:
                self._choose(entry, entry.lstat)
            yield entry
        for root, problem in self._blocked:
            yield _unreachable_entry(root, problem)

    def stored(self, entry: Entry | StreamEntry, record: ManifestEntry) -> None:
        """What the pipeline recorded of *entry*, once stored: a file with other names stored
        whole and unchanged is remembered, for them to link to."""
        info = record.stat
        if info is not None and info.nlink > 1 and record.link_to is None and \
                record.error is None and record.stored is not None and not record.stored.changes:
            self._stored_once[(info.device, info.inode)] = _FirstName(
                record.bag_path, record.size, info.mtime, info.ctime)

    def _choose(self, entry: Entry, info: os.stat_result) -> None:
        """A file the filters leave out gets the reason as its ``error`` ("skipped: …": not
        read); another name of a file stored gets ``link_to``."""
        if self._filters is not None:
            entry.error = self._filters.skip_reason(relative_to_source(entry.path), info.st_size,
                                                    self._captured_bytes())
        if entry.error is None:
            entry.link_to = self._first_name(info)

    def _first_name(self, info: os.stat_result) -> str | None:
        """The bag path of the name this file was stored under, when it is the same file
        unchanged: same inode, same size and times (else the inode was reused, or the file
        changed, and this name is read like any file)."""
        if info.st_nlink < 2:
            return None
        first = self._stored_once.get((info.st_dev, info.st_ino))
        if first is None or first.size != info.st_size or \
                first.mtime != rfc3339(info.st_mtime_ns) or first.ctime != rfc3339(info.st_ctime_ns):
            return None
        return first.bag_path


@dataclass(frozen=True)
class _FirstName:
    """A file with more than one name, as stored under the first: what a later name must match."""

    bag_path: str
    size: int | None
    mtime: str
    ctime: str


def sources_of(paths: Sequence[bytes], unreachable: Sequence[tuple[bytes, str]] = (),
               found_by_profile: Mapping[bytes, bytes] | None = None) -> list[Root]:
    """The sources a capture of *paths* walks: those a profile could not reach are left out (they
    are recorded as errors instead), as are those named again (warned of by repeat_warnings),
    each checked to exist (InputError)."""
    blocked = {os.path.normpath(path) for path, _ in unreachable}
    again = {position for later in named_again(paths).values() for position in later}
    return resolve_sources([path for position, path in enumerate(paths)
                            if position not in again and os.path.normpath(path) not in blocked],
                           found_by_profile)


def repeat_warnings(paths: Sequence[bytes]) -> list[str]:
    """One warning per source named more than once (typed twice, or typed and found by a
    profile), which is captured once (sources_of)."""
    return [f"{os.fsdecode(paths[kept])}: named more than once: captured once"
            for kept in named_again(paths)]


def _unreachable_roots(unreachable: Sequence[tuple[bytes, str]], first_index: int,
                       taken: set[str]) -> list[tuple[Root, str]]:
    """A root for each unreachable path, numbered and named after the reachable ones."""
    found: list[tuple[Root, str]] = []
    for path, problem in unreachable:
        base = escape_name(os.path.basename(path.rstrip(b"/")) or b"root")
        name = unique_name(base, taken)  # as resolve_sources names a second source of a name
        taken.add(name)
        found.append((Root(first_index + len(found), path, path, name, False), problem))
    return found


def _unreachable_entry(root: Root, problem: str) -> Entry:
    """The one entry of an unreachable root: kind unknown (it could not even be stat'ed)."""
    name = os.path.basename(root.path.rstrip(b"/")) or b"root"
    return Entry(root, name, f"data/{root.bag_name}", "unknown", None, -1, root.path,
                 error=problem)


def scan_totals(sources: list[Root], skip: Skip) -> tuple[int, int]:
    """Count files and bytes for the progress bar (metadata only; content is read once, later).

    An estimate (one lstat per file, no records), a small fraction of the cost of the walk
    itself; nothing that is recorded depends on it. Folders are listed as the walk lists them
    (walk.entries_below: no link followed, access times kept), and each file is looked up in
    its folder's descriptor rather than by its full path (a quarter less CPU for small files).
    """
    files = size = 0
    for source in sources:
        with suppress(OSError):
            info = os.lstat(source.path)
            if stat.S_ISDIR(info.st_mode):
                for child in entries_below(source.path):
                    try:
                        if child.is_file(follow_symlinks=False):
                            info = child.stat(follow_symlinks=False)
                            if (info.st_dev, info.st_ino) not in skip:
                                files, size = files + 1, size + info.st_size
                    except OSError:
                        pass  # gone since it was listed: the walk records what it finds
            elif stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in skip:
                files, size = files + 1, size + info.st_size
    return files, size


# ------------------------------------------------------------------------------ reading a file

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PIECE = 1 << 20  # what a read asks for when a file is read to its end
_SEQUENTIAL_FROM = 1 << 20  # files larger than this are announced as read in order


class Replaced(Exception):
    """The name no longer holds the regular file that was listed (a race, or an attack)."""


def open_regular(entry: Entry) -> OpenedFile:
    """Open the regular file *entry* without following links, without blocking, and without
    touching its access time. OSError when it cannot be opened; Replaced when what opened is
    not the file listed."""
    assert entry.lstat is not None
    fd = open_keeping_atime(entry.name, _OPEN_FLAGS, entry.dir_fd)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or before.st_ino != entry.lstat.st_ino:
            raise Replaced("replaced by something else between listing and opening")
        return OpenedFile(fd, before)
    except BaseException:
        os.close(fd)
        raise


class OpenedFile:
    """A regular file opened for capture: a Content read once, at the size ``fstat`` gave when it
    was opened (``before``; what is missing at the end is the pipeline's to fill with zeros).

    A file whose size says nothing (kernel_files: /proc, /sys, or a size of 0) is read to its
    end first, at most kernel_files.READ_TO_END_LIMIT bytes, since the tar header names the size
    before the content: ``size`` is then the length read, and ``unread`` says what went wrong.
    """

    def __init__(self, fd: int, before: os.stat_result) -> None:
        self.fd = fd
        self.before = before
        self._ended_early = False  # a read gave nothing before the size: the pipeline says so
        self._read_to_end = kernel_files.read_to_end(before)
        self._whole: BytesContent | None = None  # a file read to its end: what it gave
        self._unread: str | None = None
        if not self._read_to_end and before.st_size > _SEQUENTIAL_FROM:
            with suppress(OSError, AttributeError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    @property
    def size(self) -> int:
        """What is stored: the size when opened, or the length a file read to its end gave (it
        is read on the first question)."""
        if not self._read_to_end:
            return self.before.st_size
        return self._read_whole().size

    def describe(self, record: ManifestEntry, entry: Entry) -> None:
        """Fill *record* (the manifest entry of *entry*) with what is known before reading: the
        stat fields from ``fstat`` of the file opened, how much disk it occupies if less than
        its size (sparse, FORMAT.md §4.3), its extended attributes."""
        record.stat = records.stat_fields(self.before, entry)
        record.allocated_bytes = records.allocated_bytes(self.before)
        record.xattrs = records.read_xattrs(entry, self.fd)

    def described_after_reading(self, record: ManifestEntry) -> None:
        """Complete *record* once the file is stored: its ``size`` is what was stored (even if
        the file changed since it was listed); for a file read to its end, ``reported_size`` is
        what fstat said instead (its blocks say nothing then), and ``error`` why not all of it
        was read."""
        record.size = self.size
        if self.size != self.before.st_size:
            record.reported_size = self.before.st_size
            record.allocated_bytes = None
        record.error = record.error or self.unread()

    def readinto(self, buffer: memoryview) -> int:
        if self._read_to_end:
            return self._read_whole().readinto(buffer)
        count = os.readv(self.fd, [buffer])
        if not count:
            self._ended_early = True
        return count

    def changes(self) -> list[str]:
        """After reading: every difference between the file now and when it was opened."""
        changes: list[str] = []
        if not self._read_to_end:
            grew = self._grew()
            after = os.fstat(self.fd)
            self._size_changes(grew, after, changes)
        else:
            after = os.fstat(self.fd)
        _time_changes(self.before, after, changes)
        return changes

    def unread(self) -> str | None:
        """A file read to its end: why not all of it was read (then what was is stored)."""
        return self._unread

    def _grew(self) -> bool:
        """Whether there is more to read past the size the file had when opened."""
        try:
            return bool(os.pread(self.fd, 1, self.before.st_size))
        except OSError:
            return False

    def _size_changes(self, grew: bool, after: os.stat_result, changes: list[str]) -> None:
        before = self.before
        if grew or after.st_size > before.st_size:
            changes.append(f"file grew while being read (from {before.st_size} to "
                           f"{after.st_size} bytes); the first {before.st_size} bytes are stored")
        elif after.st_size < before.st_size and not self._ended_early:
            changes.append(f"file shrank while being read (from {before.st_size} to "
                           f"{after.st_size} bytes)")

    def _read_whole(self) -> BytesContent:
        if self._whole is None:
            self._whole = BytesContent(self._read_until_end())
        return self._whole

    def _read_until_end(self) -> bytes:
        limit = kernel_files.READ_TO_END_LIMIT
        pieces: list[bytes] = []
        read = 0
        try:
            while read < limit:
                piece = os.read(self.fd, min(_PIECE, limit - read))
                if not piece:
                    return b"".join(pieces)
                pieces.append(piece)
                read += len(piece)
            more = bool(os.read(self.fd, 1))
        except OSError as exc:
            self._unread = (f"read error at byte {read}: {exc.strerror}; the {read} bytes read "
                            "before it are stored")
            return b"".join(pieces)
        if more:
            self._unread = (f"not read to its end: the file system reported "
                            f"{self.before.st_size} bytes, and it still gave more after "
                            f"{human_size(limit)}; the first {limit} bytes are stored")
        return b"".join(pieces)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _time_changes(before: os.stat_result, after: os.stat_result, changes: list[str]) -> None:
    if after.st_mtime_ns != before.st_mtime_ns:
        changes.append(f"modification time changed while being read ({rfc3339(before.st_mtime_ns)}"
                       f" → {rfc3339(after.st_mtime_ns)})")
    elif after.st_ctime_ns != before.st_ctime_ns:
        changes.append("status change time changed while being read")
