"""Files and folders in the file system: the sources named on the command line or found by a
profile, walked by evidencekit.walk (sorted, read-only, no link followed).

For now a thin adapter: resolving the paths (walk.resolve_sources, capture.sources_of) and the
walk itself stay in walk.py, and capture.py still opens and reads each regular file itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import suppress

from evidencekit.sources.base import Skip, SourceRecord, StreamEntry
from evidencekit.walk import Entry, entries_below, escape_name, unique_name, walk
from evidencekit.walk import Source as Root


class FileSource:
    """The file walk as a Source: one record per root, then one per path a profile named but
    the system refused to look up (each recorded as a source whose one entry holds the error, so
    that the capture is incomplete rather than silently smaller).

    Its roots are numbered from 0 and named when resolved (walk.resolve_sources): it is the
    first source of every capture."""

    def __init__(self, roots: list[Root], unreachable: Sequence[tuple[bytes, str]] = ()) -> None:
        self._roots = roots
        self._unreachable = unreachable
        self._blocked: list[tuple[Root, str]] = []

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
        yield from walk(self._roots, skip)
        for root, problem in self._blocked:
            yield _unreachable_entry(root, problem)


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
