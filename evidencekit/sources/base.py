"""What the sealing pipeline (capture.py) needs from any kind of evidence.

A :class:`Source` is numbered and named once (:meth:`Source.place`), gives the records of
manifest.json's ``sources`` list, an estimate for the progress bar, and then its entries, in
order. An entry is one of two kinds:

- a :class:`evidencekit.sources.files.walk.Entry`, something found in the file system: folders, links, special
  files and errors are recorded from their metadata alone; a regular file is opened through the
  entry's ``dir_fd`` and ``name`` (no link followed, access time kept) by files.open_regular, and
  read by the pipeline like any Content;
- a :class:`StreamEntry`, a file whose content comes from a :class:`Content` stream the pipeline
  reads once (hash, libmagic's first block and the payload tar from the same read). What is
  known before reading (its size, if any; its tar mode and time) is in the entry; what the
  reader learns while reading (a short read, a change) ends up in the manifest entry.

What a source learns while being read (a device's bad sectors, its hash windows) reaches the
bundle three ways, all signed with the manifest:

- the pipeline takes the entries one at a time, storing each completely before it asks for the
  next: an entry yielded after another may be a document of what reading that one found
  (:class:`BytesContent`, e.g. a mapfile of the sectors that could not be read);
- :meth:`Source.records` is asked again after every entry was stored, for manifest.json: a
  record's ``details`` may hold counts learned while reading;
- a :class:`Content` that filled gaps itself (sectors that never read, stored as zeros) says so
  after reading through :class:`PartlyRead`: the entry's ``error`` is that sentence, and the
  capture is incomplete.

A new kind of evidence is one module here implementing :class:`Source`; capture.py does not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from evidencekit.format.entries import bytes_field
from evidencekit.sources.files.walk import Entry

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


@runtime_checkable
class PartlyRead(Protocol):
    """A :class:`Content` that may have stored some of its bytes as zeros because they could not
    be read (a device's bad sectors), and goes on reading past them rather than raising."""

    def unread(self) -> str | None:
        """After reading: a sentence saying what could not be read and was stored as zeros, or
        None when everything was read. The manifest entry's ``error`` is that sentence."""


@runtime_checkable
class WholeOrNothing(Protocol):
    """A source whose content is all stored or is worthless (a disk image): the destination's
    free space is checked for it before anything is written, not when the disk fills hours
    later (a file that cannot fit is skipped instead, FORMAT.md §8)."""

    def required_bytes(self) -> int:
        """Bytes of content it will store."""


class BytesContent:
    """Content already in memory: a document a source wrote about what it read."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    @property
    def size(self) -> int:
        return len(self._data)

    def readinto(self, buffer: memoryview) -> int:
        count = min(len(buffer), len(self._data) - self._offset)
        buffer[:count] = self._data[self._offset:self._offset + count]
        self._offset += count
        return count

    def changes(self) -> list[str]:
        return []


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
    # The manifest's ``mime`` when the source knows it (a JSON document it wrote, a message a
    # mail server served as one): libmagic is not asked, which costs about 1 ms a text file.
    mime: str | None = None


@dataclass(frozen=True)
class SourceRecord:
    """One record of manifest.json's ``sources`` list (docs/FORMAT.md §4.3)."""

    index: int
    given: bytes  # as typed
    path: bytes  # what was captured
    bag_name: str  # its name under data/
    via_symlink: bool = False
    kind: str | None = None  # None: files in the file system (the field is left out)
    # What the source of this kind says about itself (docs/FORMAT.md §4.3, by kind), e.g. a
    # device's size and bad-sector counts; None: the field is left out.
    details: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"index": self.index, "bag_name": self.bag_name,
                                  "via_symlink": self.via_symlink}
        record.update(bytes_field("given", self.given))
        record.update(bytes_field("path", self.path))
        if self.kind is not None:
            record["kind"] = self.kind
        if self.details is not None:
            record["details"] = self.details
        return record


class Source(Protocol):
    """One kind of evidence, as the sealing pipeline takes it in."""

    def place(self, first_index: int, taken: set[str]) -> None:
        """Number this source's records from *first_index* and choose their names under data/
        among those not in *taken* (adding them to it). Called once, before anything else."""

    def records(self) -> list[SourceRecord]:
        """Its records for manifest.json's ``sources``, numbered from the first index placed.
        Asked once after placing (to count them) and again after all entries were stored: the
        number and names must not change, their ``details`` may have grown."""

    def estimate(self, skip: Skip) -> tuple[int, int | None]:
        """Files and bytes to expect, for the progress bar only (bytes None: not known). From
        metadata alone: content is read once, by the pipeline."""

    def entries(self, skip: Skip) -> Iterator[Entry | StreamEntry]:
        """Everything found, in the order the manifest lists it, a folder before what it holds."""

    # A source may also have, and the pipeline uses them when it does (getattr):
    # - ``volatile = True``: read before the other sources (RFC 3227's order of volatility);
    # - ``public_details() -> dict[str, str]``: counts for the first custody event (public);
    # - ``stored(entry, record)``: told what was recorded of each of its entries (the manifest
    #   entry, a format.entries.ManifestEntry) before the next is asked for, e.g. the files
    #   source remembers a file with more than one name, for the others to link to.
