"""``manifest.json``, written (`ManifestWriter`) and read (`read`) entry by entry, never held whole.

The manifest has an entry per captured item (about 550 bytes each; 55 MB for 100,000 files), and
parsed into Python objects it takes four times that. `read` checks the canonical form and hands
each entry to a callback (verify checks it there and lets it go); the `Manifest` it returns keeps
the bytes, the fields other than ``entries``, and where each entry lies, so extract and the report
can walk the entries again, one at a time. Capture writes it the same way round: each entry is
encoded as it is captured and packed (`ManifestWriter`), and the document is given as pieces to hash,
sign and store.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from evidencekit import canonical
from evidencekit.format.documents import FORMAT_VERSION, MANIFEST_TYPE
from evidencekit.format.entries import ManifestEntry


class Manifest:
    """A canonical manifest.json that has been read through once (see `read`)."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._what = what
        self._offsets = array("Q")
        self._lengths = array("Q")
        self.fields: dict[str, Any] = {}  # every top-level field but "entries"

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def __len__(self) -> int:
        return len(self._offsets)

    def entry(self, number: int) -> Any:
        """Entry *number* (from 0), parsed again from the bytes."""
        return canonical.load_item(self._data, self._offsets[number], self._lengths[number],
                                   self._what)

    def entries(self) -> Iterator[Any]:
        """Every entry in manifest order, parsed one at a time (each may be any JSON value:
        `format.entries` says which are sane)."""
        for number in range(len(self)):
            yield self.entry(number)

    def _place(self, offset: int, length: int) -> None:
        self._offsets.append(offset)
        self._lengths.append(length)


def read(data: bytes, what: str, on_entry: Callable[[Any], None] | None = None) -> Manifest:
    """Check that *data* is canonical JSON and hand each of its entries to *on_entry*.

    Raises BundleError when it is not valid canonical JSON (nothing is returned half-read) or
    when ``entries`` is missing or not a list.
    """
    manifest = Manifest(data, what)

    def entry(item: Any, offset: int, length: int) -> None:
        manifest._place(offset, length)
        if on_entry is not None:
            on_entry(item)

    manifest.fields = canonical.load_streaming(data, what, "entries", entry)
    return manifest


@dataclass(frozen=True)
class ManifestHead:
    """Every field of manifest.json but ``entries`` (docs/FORMAT.md §4.3)."""

    case: dict[str, str]
    capture: dict[str, Any]
    sources: list[dict[str, Any]]
    incident_sha256: str | None
    counts: dict[str, int]
    total_bytes: int
    manifest_root: str

    def to_json(self) -> dict[str, Any]:
        return {"type": MANIFEST_TYPE, "format_version": FORMAT_VERSION, "case": self.case,
                "capture": self.capture, "sources": self.sources,
                "incident_sha256": self.incident_sha256,
                "summary": {"counts": self.counts, "total_bytes": self.total_bytes,
                            "manifest_root": self.manifest_root},
                "entries": []}


RAW_BYTES = 16 << 20  # entries held as they are before the writer starts compressing


class ManifestWriter:
    """The entries of a manifest.json being written, each encoded as it comes, in order, in
    blocks of about 1 MiB; then the whole document, as pieces.

    For 100,000 files the entries are some 60 MB of JSON, held until the manifest is written at
    the end of a capture. The first *raw_bytes* are held as they are (30,000 files or so: no
    zlib work, 5-7 µs of CPU per file on a capture's busiest thread); the blocks after them are
    zlib-compressed, to a tenth of their size, so that memory stays bounded however many files.
    """

    def __init__(self, raw_bytes: int = RAW_BYTES) -> None:
        self._raw_left = raw_bytes
        self._blocks: list[tuple[bool, bytes]] = []  # (compressed, data)
        self._current: list[bytes] = []
        self._current_size = 0
        self.count = 0
        self._size = 0  # of the entries joined with commas

    def add(self, entry: ManifestEntry) -> None:
        encoded = canonical.dumps_typed(entry.to_json())
        self._size += len(encoded) + (1 if self.count else 0)
        self.count += 1
        self._current.append(encoded)
        self._current_size += len(encoded)
        if self._current_size >= 1 << 20:
            self._pack()

    def _pack(self) -> None:
        if self._current:
            block = b",".join(self._current)
            if len(block) <= self._raw_left:
                self._raw_left -= len(block)
                self._blocks.append((False, block))
            else:
                self._raw_left = 0  # from here on every block is compressed
                self._blocks.append((True, zlib.compress(block, 1)))
            self._current, self._current_size = [], 0

    def document(self, head: ManifestHead) -> tuple[Iterator[bytes], int]:
        """The canonical manifest.json of *head* and the entries added, in pieces of about
        1 MiB, and its size. Call once, after the last entry."""
        # Canonical JSON sorts the keys: the entries are spliced into the place of the empty
        # list, and every piece stays in canonical form.
        prefix, suffix = canonical.dumps(head.to_json()).split(b'"entries":[]', 1)
        prefix, suffix = prefix + b'"entries":[', b"]" + suffix
        return self._pieces(prefix, suffix), len(prefix) + self._size + len(suffix)

    def _pieces(self, prefix: bytes, suffix: bytes) -> Iterator[bytes]:
        yield prefix
        self._pack()
        for index, (compressed, block) in enumerate(self._blocks):
            if index:
                yield b","
            yield zlib.decompress(block) if compressed else block
        yield suffix
