"""What the sealing pipeline (capture.py) needs from any kind of evidence.

A :class:`Source` is numbered and named once (:meth:`Source.place`), gives the records of
manifest.json's ``sources`` list, an estimate for the progress bar, and then its entries, in
order. An entry is one of two kinds:

- a :class:`evidencekit.walk.Entry`, something found in the file system: folders, links, special
  files and errors are recorded from their metadata alone; a regular file is opened and read by
  capture itself, through the entry's ``dir_fd`` and ``name`` (no link followed, access time kept);
- a :class:`StreamEntry`, a file whose content comes from a :class:`Content` stream the pipeline
  reads once (hash, libmagic's first block and the payload tar from the same read). What is
  known before reading (its size, if any; its tar mode and time) is in the entry; what the
  reader learns while reading (a short read, a change) ends up in the manifest entry.

A new kind of evidence is one module here implementing :class:`Source`; capture.py does not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from evidencekit.records import bytes_field
from evidencekit.walk import Entry

Skip = set[tuple[int, int]]  # (device, inode) never to read: the bundle being written, the key


class Content(Protocol):
    """A content stream, read once, in order, by the sealing pipeline."""

    @property
    def size(self) -> int | None:
        """The length known before reading, or None: then the pipeline holds what it reads
        (evidencekit.spool) until the end, since a tar header names the size first."""

    def readinto(self, buffer: memoryview) -> int:
        """Fill the start of *buffer*; the count filled, 0 at the end. A read error is an
        OSError: what was read before it is stored, and the manifest entry's ``error`` says so."""

    def changes(self) -> list[str]:
        """After reading: a sentence for each sign that the content changed while it was read
        (none when nothing can tell). A short read of a known size is noted by the pipeline."""


@dataclass
class StreamEntry:
    """A file whose content is a stream (manifest kind ``file``; no stat fields)."""

    source: int  # the index of its source record
    path: bytes  # the manifest's ``path``: starts with the source's own name
    bag_path: str  # "data/…", as in walk.Entry
    content: Content
    # The payload tar member's modification time (not in the manifest). Its mode is 0600 and
    # its owner 0, which verify expects of an entry without stat fields (FORMAT.md §4.2).
    mtime_ns: int


@dataclass(frozen=True)
class SourceRecord:
    """One record of manifest.json's ``sources`` list (docs/FORMAT.md §4.3)."""

    index: int
    given: bytes  # as typed
    path: bytes  # what was captured
    bag_name: str  # its name under data/
    via_symlink: bool = False
    kind: str | None = None  # None: files in the file system (the field is left out)

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"index": self.index, "bag_name": self.bag_name,
                                  "via_symlink": self.via_symlink}
        record.update(bytes_field("given", self.given))
        record.update(bytes_field("path", self.path))
        if self.kind is not None:
            record["kind"] = self.kind
        return record


class Source(Protocol):
    """One kind of evidence, as the sealing pipeline takes it in."""

    def place(self, first_index: int, taken: set[str]) -> None:
        """Number this source's records from *first_index* and choose their names under data/
        among those not in *taken* (adding them to it). Called once, before anything else."""

    def records(self) -> list[SourceRecord]:
        """Its records for manifest.json's ``sources``, numbered from the first index placed."""

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        """Files and bytes to expect, for the progress bar only (bytes None: not known). From
        metadata alone: content is read once, by the pipeline."""

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        """Everything found, in the order the manifest lists it, a folder before what it holds."""
